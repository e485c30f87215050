// Run-time quantization: activations, the down projection's input, the KV cache, attention
// probabilities and a calibrated method, from the engine's menus (`runtimeSchemes()`). Shown only
// where the engine build has it.

import { $, fillOptions, status } from '../dom';
import { formatMs } from '../format';
import type { Capabilities, RuntimeApplied, RuntimeQuantConfig } from '../messages';
import { defaultRuntime } from '../url-state';
import type { Control } from './control';

const FIELDS: {
  key: keyof Omit<RuntimeQuantConfig, 'calibTokens'>;
  list: keyof NonNullable<Capabilities['runtime']>;
}[] = [
  { key: 'a', list: 'activations' },
  { key: 'aDown', list: 'activations' },
  { key: 'kv', list: 'kv' },
  { key: 'attn', list: 'attention' },
  { key: 'method', list: 'methods' },
];

function renderResult(r: RuntimeApplied): void {
  const el = $('runtime-result');
  const parts = [`On the GPU: ${r.gpu}.`];
  if (r.cpuMethod)
    parts.push(
      `${r.cpuMethod} answers the prediction and the metrics on the CPU reference (its rewritten weights and norms live there, not on the GPU); the outlier views and generation show the GPU model.`,
    );
  if (r.recipe) parts.push("Bit allocation chose the weights' schemes: see the recipe.");
  if (r.bitsPerWeight != null) parts.push(`${r.bitsPerWeight.toFixed(2)} bits per weight.`);
  el.textContent = parts.join(' ');
  el.hidden = false;
}

export const runtime: Control = {
  engine: {
    id: 'runtime',
    initial: JSON.stringify(defaultRuntime()),
    asLoaded: JSON.stringify(defaultRuntime()),
    available: (store) => Boolean(store.loaded?.caps.runtime),
    wanted: (store) => JSON.stringify(store.state.runtime),
    async send(engine, value, store) {
      status.set('busy', 'setting runtime quantization…');
      const r = await engine.run(
        'setRuntimeQuant',
        { config: JSON.parse(value) as RuntimeQuantConfig },
        {
          onProgress: (stage, done, total) =>
            status.set('busy', `calibrating (${stage}${total > 1 ? ` ${done}/${total}` : ''})…`),
        },
      );
      renderResult(r);
      if (r.recipe) {
        // Bit allocation decides the weights' schemes: its recipe becomes the free recipe, which
        // the pipeline then sends like any other.
        const recipe = r.recipe;
        store.update((s) => {
          s.recipeMode = 'json';
          s.recipeText = recipe;
        }, 'restored');
      }
      return `runtime quantization in ${formatMs(r.ms)}`;
    },
    refused: (message) => ['Runtime quantization was not applied', message],
  },

  mount(store) {
    for (const { key } of FIELDS) {
      $<HTMLSelectElement>(`runtime-${key}`).addEventListener('change', (e) => {
        const v = (e.target as HTMLSelectElement).value;
        store.update((s) => (s.runtime = { ...s.runtime, [key]: v === '' ? null : v }));
      });
    }
    $<HTMLInputElement>('runtime-calib').addEventListener('change', (e) => {
      const input = e.target as HTMLInputElement;
      const n = Math.round(Number(input.value));
      store.update(
        (s) => (s.runtime = { ...s.runtime, calibTokens: Number.isFinite(n) ? Math.min(4096, Math.max(2, n)) : 64 }),
      );
      input.value = String(store.state.runtime.calibTokens);
    });
    store.subscribe((change) => {
      if (change === 'loaded') $('runtime-result').hidden = true;
    });
  },

  render(store) {
    // Its options are the engine's: nothing to show before one is loaded.
    if (!store.loaded) return;
    const menus = store.loaded?.caps.runtime ?? null;
    $('runtime').hidden = menus === null;
    $('runtime-missing').hidden = menus !== null;
    if (!menus) return;
    for (const { key, list } of FIELDS) {
      const select = $<HTMLSelectElement>(`runtime-${key}`);
      fillOptions(
        select,
        ['', ...menus[list]].map((name) => [name, name === '' ? 'none' : name]),
      );
      select.value = store.state.runtime[key] ?? '';
    }
    $<HTMLInputElement>('runtime-calib').value = String(store.state.runtime.calibTokens);
  },
};
