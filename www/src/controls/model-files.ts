// Opening a model from disk: the file picker and dropping files on the model card (a .gguf, or a
// .safetensors with its config.json and tokenizer.json, or a sharded checkpoint with its index).

import { $, dismissible, showNotice } from '../dom';
import { classifyModelFiles } from '../files';
import type { Control, PageActions } from './control';

async function openFiles(page: PageActions, files: File[]): Promise<void> {
  let picked;
  try {
    picked = classifyModelFiles(files);
  } catch (e) {
    showNotice('load-error', 'Could not open those files', `${(e as Error).message}.`);
    return;
  }
  const key = `local:${picked.name}`;
  if (picked.kind === 'gguf') {
    await page.loadModel(picked.name, { kind: 'gguf-file', file: picked.file }, key);
  } else if (picked.kind === 'safetensors') {
    const { weights, config, tokenizer } = picked;
    await page.loadModel(picked.name, { kind: 'safetensors-files', weights, config, tokenizer }, key);
  } else {
    const { index, shards, config, tokenizer } = picked;
    await page.loadModel(picked.name, { kind: 'safetensors-shards', index, shards, config, tokenizer }, key);
  }
}

export const modelFiles: Control = {
  mount(_store, page) {
    const input = $<HTMLInputElement>('file-input');
    input.addEventListener('change', () => {
      const files = [...(input.files ?? [])];
      input.value = ''; // picking the same file again must fire `change` again
      if (files.length) void openFiles(page, files);
    });
    const drop = $('drop-zone');
    drop.addEventListener('dragover', (e) => {
      e.preventDefault();
      drop.classList.add('dragging');
    });
    drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('dragging');
      const files = [...(e.dataTransfer?.files ?? [])];
      if (files.length) void openFiles(page, files);
    });
    dismissible('load-error');
  },
};
