// Generation, side by side: the reference (the model as loaded, or the pinned configuration)
// streams its continuation of the prompt first, then the model under study; Stop ends the running
// one after its current token.

import { $, hide, showNotice } from '../dom';
import type { Engine } from '../engine';
import type { Store } from '../store';
import type { Control } from './control';
import { currentReference } from './pin';

let running: { engine: Engine; id: number } | null = null;
let stopped = false;

const outputs = (): HTMLElement[] => [$('generate-reference'), $('generate-quantized')];

function reset(): void {
  for (const out of outputs()) {
    out.querySelector('.generated-prompt')!.textContent = '';
    out.querySelector('.generated-text')!.textContent = '';
    out.dataset.state = 'idle';
    for (const key of ['stop', 'text', 'pieces', 'tokens', 'tokensPerSecond', 'backend']) delete out.dataset[key];
  }
  $('generate-stats').textContent = '';
  hide('generate-error');
}

function params(store: Store) {
  const num = (id: string, fallback: number) => {
    const el = $<HTMLInputElement>(id);
    const v = Number(el.value);
    return el.value.trim() === '' || !Number.isFinite(v) ? fallback : v;
  };
  return {
    prompt: store.state.prompt,
    maxTokens: Math.max(1, Math.floor(num('generate-max-tokens', 24))),
    temperature: Math.max(0, num('generate-temperature', 0)),
    topP: num('generate-top-p', 1),
    seed: Math.max(0, Math.floor(num('generate-seed', 0))),
    chat: $<HTMLInputElement>('generate-chat').checked,
  };
}

async function run(store: Store): Promise<void> {
  const current = store.loaded?.engine;
  if (!current || running) return;
  const isCurrent = () => store.loaded?.engine === current;
  const p = params(store);
  reset();
  stopped = false;
  $('generate-button').toggleAttribute('disabled', true);
  $('stop-button').hidden = false;
  $('stop-button').toggleAttribute('disabled', false);
  const sides: { out: HTMLElement; asLoaded: boolean }[] = [{ out: outputs()[0], asLoaded: true }];
  if (store.gpu) sides.push({ out: outputs()[1], asLoaded: false });
  const stats: string[] = [];
  const reference = currentReference(store);
  $('generate-reference-heading').textContent = reference.heading;
  const sideName = (asLoaded: boolean) => (asLoaded ? reference.short : 'quantized');
  try {
    for (const { out, asLoaded } of sides) {
      if (stopped) break;
      const textEl = out.querySelector('.generated-text')!;
      out.querySelector('.generated-prompt')!.textContent = p.prompt;
      out.dataset.state = 'running';
      let pieces = 0;
      const t0 = performance.now();
      const call = current.call(
        'generate',
        { ...p, asLoaded },
        {
          onToken: (piece, n) => {
            if (!isCurrent()) return;
            if (piece) {
              textEl.append(piece);
              pieces += 1;
              out.dataset.pieces = String(pieces);
            }
            $('generate-stats').textContent =
              `${sideName(asLoaded)}: ${n} token${n === 1 ? '' : 's'} · ${((performance.now() - t0) / 1000).toFixed(1)} s`;
          },
        },
      );
      running = { engine: current, id: call.id };
      const g = await call.result;
      if (!isCurrent()) return;
      // The pieces add up to the whole decode by construction; trust the whole if they do not.
      if (textEl.textContent !== g.text) textEl.textContent = g.text;
      out.dataset.text = g.text;
      out.dataset.state = 'done';
      out.dataset.stop = g.stop;
      out.dataset.tokens = String(g.tokens.length);
      out.dataset.tokensPerSecond = String(g.tokensPerSecond);
      out.dataset.backend = g.backend;
      const why = { 'max-tokens': 'max tokens', eos: 'end of text', stopped: 'stopped' }[g.stop] ?? g.stop;
      stats.push(`${sideName(asLoaded)}: ${g.tokens.length} tokens, ${g.tokensPerSecond.toFixed(1)} tokens/s, ${why}`);
      $('generate-stats').textContent = stats.join(' · ');
    }
  } catch (e) {
    if (!isCurrent()) return;
    for (const out of outputs()) if (out.dataset.state === 'running') out.dataset.state = 'error';
    showNotice('generate-error', null, (e as Error).message);
  } finally {
    running = null;
    $('stop-button').hidden = true;
    $('generate-button').toggleAttribute('disabled', !store.loaded);
  }
}

function stop(): void {
  stopped = true;
  $('stop-button').toggleAttribute('disabled', true);
  if (running) running.engine.stop(running.id);
}

export const generation: Control = {
  mount(store) {
    $('generate-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void run(store);
    });
    $('stop-button').addEventListener('click', stop);
    store.subscribe((change) => {
      if (change === 'loaded') reset();
      // What the quantized column would show is no longer what is set: a new run is the user's.
      else if ((change === 'settings' || change === 'restored') && running) stop();
    });
  },

  enable(store, on) {
    $('generate-button').toggleAttribute('disabled', !on);
    $('generate-quantized-column').hidden = on && !store.gpu;
  },
};
