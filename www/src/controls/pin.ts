// Any configuration as the reference: "Pin as reference" pins the current configuration, a
// history row's Pin pins that row's, and a link's `pin` restores one. The engine then compares
// the prediction, the metrics, the token view and the breakage with it instead of the model as
// loaded (src/web/pin.rs); the outlier views keep the model as loaded, and the sensitivity map
// waits for Unpin. The pin is an engine setting like the recipe: the refresh pipeline sends it
// (again to a new engine after a reload), and what the engine holds is part of the keys of the
// results it changes.

import { pinRequest } from '../configuration';
import { $, ProgressBar, showNotice, status } from '../dom';
import { formatInt, formatMs } from '../format';
import type { PinRequest } from '../messages';
import { AS_LOADED, referenceWords, type ReferenceWords } from '../reference';
import type { Store } from '../store';
import { configurationOf, type Configuration } from '../url-state';
import type { Control } from './control';

/** Preparing a pinned configuration: the stages of src/study/prepared.rs, on the CPU, then the upload. */
const STAGE_TITLES: Record<string, string> = {
  calibrate: 'Calibrating',
  allocate: 'Allocating bits for',
  quantize: 'Quantizing',
  upload: 'Uploading to the GPU:',
};

let progress: ProgressBar;

/** The label of the configuration the engine compares with now, or null: the model as loaded. */
export function pinnedLabel(store: Store): string | null {
  const held = store.loaded?.holds.pin;
  return held ? (JSON.parse(held) as PinRequest).label : null;
}

/** How the page names what the results it computes now are compared with. */
export function currentReference(store: Store): ReferenceWords {
  return referenceWords(pinnedLabel(store));
}

/** Pinning needs the engine's pinReference, and the model on WebGPU (where the comparisons run). */
export function canPin(store: Store): boolean {
  return store.gpu && Boolean(store.loaded?.caps.study.pin);
}

/** Makes `c` the reference of every later comparison. */
export function pinConfiguration(store: Store, c: Configuration): void {
  store.update((s) => (s.pin = configurationOf(c)));
}

function showReference(words: ReferenceWords): void {
  $('reference').dataset.pinned = String(words.pinned);
  $('reference-text').textContent = `Compared with: ${words.name}`;
  $('pin-unpin').hidden = !words.pinned;
}

export const pin: Control = {
  engine: {
    id: 'pin',
    initial: '',
    asLoaded: '',
    // What the model is compared with, not what it is: the outlier views keep theirs.
    stages: ['predict', 'metrics'],
    available: (store) => Boolean(store.loaded?.caps.study.pin),
    wanted(store) {
      const pinned = store.state.pin;
      if (pinned === null) return '';
      try {
        return JSON.stringify(pinRequest(pinned, store.loaded?.summary.config.n_layers));
      } catch (e) {
        showNotice(
          'quant-error',
          'The reference was not pinned',
          `${(e as Error).message}. The comparisons keep their reference.`,
        );
        return store.loaded?.holds.pin ?? '';
      }
    },
    async send(engine, value) {
      if (value === '') {
        await engine.run('unpinReference', {});
        showReference(AS_LOADED);
        return 'unpinned';
      }
      const request = JSON.parse(value) as PinRequest;
      status.set('busy', 'pinning the reference…');
      progress.show(`Pinning ${request.label}`);
      try {
        const r = await engine.run(
          'pinReference',
          { request },
          {
            onProgress: (stage, done, total) =>
              progress.update(
                `${STAGE_TITLES[stage] ?? stage} ${request.label}`,
                total > 1 ? `${formatInt(done)} of ${formatInt(total)}` : '',
                total > 1 ? done / total : null,
              ),
          },
        );
        showReference(referenceWords(r.label));
        return `pinned on ${r.backend === 'cpu' ? 'the CPU' : 'WebGPU'} in ${formatMs(r.ms)}`;
      } finally {
        progress.hide();
      }
    },
    refused: (message) => ['The reference was not pinned', `${message}. The comparisons keep their reference.`],
  },

  mount(store) {
    progress = new ProgressBar($('pin-progress'));
    $('pin-current').addEventListener('click', () => pinConfiguration(store, store.state));
    $('pin-unpin').addEventListener('click', () => store.update((s) => (s.pin = null)));
    store.subscribe((change) => {
      // A new engine holds nothing pinned until the refresh sends the pin again.
      if (change === 'loaded') showReference(AS_LOADED);
    });
    showReference(AS_LOADED);
  },

  enable(store, on) {
    $('pin-current').toggleAttribute('disabled', !(on && canPin(store)));
  },
};
