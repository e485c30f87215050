// Loading a model: into a fresh engine (a new worker) each time, so a bad file, or a crash while
// loading it, leaves the model that was already loaded working. Only once the new engine has
// loaded does it replace the current one in the store.
//
// ?backend=cpu skips WebGPU (the CPU reference runs the model; nothing can be re-quantized).
// ?backend=webgpu runs the model as loaded on WebGPU even on a software adapter, where by default
// the engine times the CPU reference against WebGPU at load and takes the faster (forward.ts).

import { $, hide, ProgressBar, showNotice, status } from './dom';
import { Engine } from './engine';
import { baseName, formatBytes, formatInt, formatMs } from './format';
import { parseBackendParam } from './forward';
import { writeHash } from './link';
import type { EngineSetting } from './controls/control';
import type { Loaded, ModelSource } from './messages';
import type { Store } from './store';

export const BACKEND = parseBackendParam(new URLSearchParams(location.search).get('backend'));

const STAGE_TITLES: Record<string, string> = {
  webgpu: 'Starting WebGPU for',
  upload: 'Uploading to the GPU:',
  measure: 'Timing the CPU against WebGPU for',
  download: 'Downloading',
  cache: 'Reading from this browser’s cache:',
  read: 'Reading file',
  parse: 'Parsing',
  validate: 'Validating',
  tensors: 'Reading tensors',
  dequantize: 'Dequantizing',
  tokenizer: 'Building tokenizer',
};

function showLoadProgress(bar: ProgressBar, name: string, stage: string, done: number, total: number): void {
  const title = `${STAGE_TITLES[stage] ?? stage[0].toUpperCase() + stage.slice(1)} ${name}`;
  if (stage === 'download' || stage === 'read' || stage === 'cache') {
    const detail = total > 0 ? `${formatBytes(done)} of ${formatBytes(total)}` : formatBytes(done);
    bar.update(title, detail, total > 0 ? done / total : null);
  } else if (total > 1) {
    const detail =
      total >= 10000 ? `${Math.floor((done / total) * 100)}%` : `${formatInt(done)} of ${formatInt(total)}`;
    bar.update(title, detail, done / total);
  } else {
    bar.update(title, '', null);
  }
}

/** Where the bytes of a model named in the URL state come from. */
export function sourceFor(model: string): { name: string; source: ModelSource } {
  if (model.startsWith('local:'))
    return { name: model.slice(6), source: { kind: 'cached-local', name: model.slice(6) } };
  const url = new URL(model, location.href);
  return { name: baseName(url.pathname), source: { kind: 'url', url: url.href } };
}

export class Loader {
  private seq = 0;
  private readonly progress = new ProgressBar($('load-progress'));

  constructor(
    private readonly store: Store,
    /** What a fresh engine holds of each setting. */
    private readonly settings: readonly EngineSetting[],
    /** Turns the controls on or off with the model. */
    private readonly enable: (on: boolean) => void,
  ) {}

  async load(name: string, source: ModelSource, modelKey: string): Promise<void> {
    const { store } = this;
    const seq = ++this.seq;
    const candidate = new Engine();
    const previous = store.loaded?.engine ?? null;
    hide('load-error');
    this.progress.show(`Loading ${name}`);
    status.set('busy', 'loading model…');
    let loaded: Loaded;
    let caps;
    try {
      caps = await candidate.ready;
      loaded = await candidate.run(
        'load',
        { name, source, useGpu: BACKEND.useGpu, forward: BACKEND.forward },
        {
          onProgress: (stage, done, total) => {
            if (seq === this.seq) showLoadProgress(this.progress, name, stage, done, total);
          },
        },
      );
      if (seq !== this.seq) {
        candidate.terminate();
        return;
      }
    } catch (e) {
      candidate.terminate();
      if (seq !== this.seq) return;
      this.progress.hide();
      const alive = previous !== null && !previous.dead;
      const kept = alive ? ` The previous model (${$('summary-name').textContent}) is still loaded and working.` : '';
      // The title names the file already; engine errors start with it too ("x.gguf: ...").
      let message = (e as Error).message;
      if (message.startsWith(`${name}: `)) message = message.slice(name.length + 2);
      message = message.charAt(0).toUpperCase() + message.slice(1).replace(/[.\s]*$/, '.');
      showNotice('load-error', `Could not load ${name}`, `${message}${kept}`);
      status.set(alive ? 'ready' : 'error', alive ? 'ready' : 'no model loaded');
      // The link keeps naming the model that is loaded.
      if (store.loaded) {
        store.state.model = store.loaded.model;
        writeHash(store.state);
      }
      if (!alive && !previous) this.enable(false);
      return;
    }
    previous?.terminate();
    candidate.onCrash = (reason) => this.crashed(candidate, reason);
    candidate.onDeviceLost = (reason) => void this.deviceLost(candidate, reason);
    store.state.model = modelKey;
    this.progress.hide();
    // Before the refresh that the new model starts says what it is doing.
    status.set('ready', `ready · loaded in ${formatMs(loaded.ms)}`);
    store.setLoaded({
      engine: candidate,
      caps,
      summary: loaded.summary,
      device: loaded.device,
      model: modelKey,
      holds: Object.fromEntries(this.settings.map((s) => [s.id, s.initial])),
      applied: null,
      fileBytes: loaded.bytes,
      fromCache: loaded.fromCache,
      loadMs: loaded.ms,
    });
  }

  /**
   * The GPU device under `engine` was lost (a driver reset): load the same model again, from this
   * browser's cache, into a new engine on a new device. The store's state is untouched, so the
   * refresh after the load sends the same settings to the new engine.
   */
  private async deviceLost(engine: Engine, reason: string): Promise<void> {
    const loaded = this.store.loaded;
    if (loaded?.engine !== engine) return;
    const notice = $('device-lost');
    notice.dataset.state = 'reloading';
    reason = reason.replace(/[.\s]*$/, '');
    showNotice(
      'device-lost',
      'The GPU device was lost',
      `${reason}. Reloading the model from this browser’s cache on a new device…`,
    );
    const { name, source } = sourceFor(loaded.model);
    await this.load(name, source, loaded.model);
    const recovered = this.store.loaded?.engine !== engine;
    notice.dataset.state = recovered ? 'recovered' : 'failed';
    showNotice(
      'device-lost',
      null,
      recovered
        ? `${reason}. The model was reloaded from this browser’s cache on a new device, with the same settings.`
        : `${reason}. The model could not be loaded again: reload the page.`,
    );
  }

  private crashed(engine: Engine, reason: string): void {
    if (this.store.loaded?.engine !== engine) return;
    this.store.loaded = null;
    showNotice('load-error', 'The engine stopped', `${reason}. Reload the page or open the model again.`);
    status.set('error', 'engine crashed');
    this.enable(false);
  }
}
