// Download GGUF: the weights recipe the engine holds, quantized from the weights as loaded and
// written as a GGUF file by the engine (`exportGguf`, the writer of `quantscope export`), to run
// in llama.cpp or to open here again. The engine refuses a scheme that is not a GGUF type (naming
// the tensor), a model not loaded from a GGUF file, and weights a method rewrote; its words are
// shown, since a button that does nothing would not say which tensor to change.

import { downloadBlob } from '../charts';
import { $, dismissible, hide, ProgressBar, showNotice } from '../dom';
import { formatBytes, formatMs } from '../format';
import { ggufFileName } from '../gguf-name';
import type { Store } from '../store';
import type { Control } from './control';

const TITLE = 'Writing the GGUF';

let progress: ProgressBar;
/** One export at a time: the engine queues calls, and a second file would be the same. */
let exporting = false;

function note(text: string): void {
  const el = $('gguf-note');
  el.textContent = text;
  el.hidden = text === '';
}

async function save(store: Store): Promise<void> {
  const loaded = store.loaded;
  if (!loaded || exporting) return;
  const button = $<HTMLButtonElement>('gguf-download');
  exporting = true;
  button.disabled = true;
  hide('gguf-error');
  note('');
  progress.show(TITLE);
  try {
    const file = await loaded.engine.run(
      'exportGguf',
      {},
      {
        onProgress: (_stage, done, total) =>
          progress.update(TITLE, `quantizing tensor ${done} of ${total}`, total > 0 ? done / total : null),
      },
    );
    // Named now, not at the click: the engine wrote what it held after every change queued before.
    const name = ggufFileName(loaded.model, loaded.holds.recipe ?? null);
    downloadBlob(new Blob([file.bytes], { type: 'application/octet-stream' }), name);
    note(`Saved ${name} (${formatBytes(file.bytes.length)}, written in ${formatMs(file.ms)}).`);
  } catch (e) {
    // A model loaded since: the error was the replaced engine's.
    if (store.loaded?.engine === loaded.engine) showNotice('gguf-error', null, `${(e as Error).message}.`);
  } finally {
    exporting = false;
    button.disabled = false;
    progress.hide();
  }
}

export const ggufDownload: Control = {
  mount(store) {
    progress = new ProgressBar($('gguf-progress'));
    dismissible('gguf-error');
    $('gguf-download').addEventListener('click', () => void save(store));
    store.subscribe((change) => {
      // What the notice or the note said was about the configuration before.
      if (change === 'saved') return;
      hide('gguf-error');
      note('');
    });
  },

  enable(store, on) {
    // Engine builds from before the export have no such method: no button, rather than one that fails.
    $('gguf-download').hidden = on && !(store.loaded?.caps.exportGguf ?? false);
  },
};
