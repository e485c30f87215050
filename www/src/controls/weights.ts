// The weights' schemes: one per tensor class for every layer plus layer ranges that override it,
// the embeddings and the head, or a free recipe (JSON or one scheme name). The engine holds the
// recipe built from them; only the matrices whose scheme changed are re-quantized.

import { configurationRecipe } from '../configuration';
import { $, dismissible, fillOptions, showNotice, status } from '../dom';
import { formatMs } from '../format';
import {
  BLOCK_CLASSES,
  CLASS_LABELS,
  buildRecipe,
  recipeJson,
  uniformControls,
  uniformScheme,
  type BlockClass,
} from '../recipe';
import { metrics } from '../panels/metrics';
import type { Store } from '../store';
import type { Control } from './control';

const KEEP = recipeJson({ default: 'keep', rules: [] });
const MIXED = '(mixed)';

/** The recipe (JSON or one scheme name) the controls ask for; throws on a bad one. */
export function desiredRecipe(store: Store): string {
  return configurationRecipe(store.state, store.loaded?.summary.config.n_layers);
}

/** The engine's schemes, those it re-quantizes on the CPU marked so. */
function schemeOptions(store: Store, select: HTMLSelectElement, emptyLabel: string, includeKeep: boolean): void {
  const options: [string, string, string?][] = [['', emptyLabel]];
  if (includeKeep) options.push(['keep', 'as loaded']);
  for (const s of store.loaded?.caps.schemes ?? []) {
    options.push([
      s.name,
      s.gpu ? s.name : `${s.name} (CPU)`,
      s.gpu ? 'quantized on the GPU' : 'quantized by the CPU reference, then uploaded: slower',
    ]);
  }
  fillOptions(select, options);
}

function groupRow(store: Store, index: number): HTMLElement {
  const group = store.state.weights.groups[index];
  const row = document.createElement('div');
  row.className = 'group';
  row.dataset.group = String(index);
  const head = document.createElement('div');
  head.className = 'group-head';
  if (index === 0) {
    head.textContent = 'Every layer';
  } else {
    const label = document.createElement('label');
    label.textContent = 'Layers ';
    const input = document.createElement('input');
    input.type = 'text';
    input.placeholder = `0-${(store.loaded?.summary.config.n_layers ?? 1) - 1}`;
    input.value = group.layers;
    input.dataset.testid = `group-layers-${index}`;
    input.size = 7;
    input.addEventListener('change', () =>
      changed(store, (s) => (s.weights.groups[index].layers = input.value.trim())),
    );
    label.append(input);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'button secondary small';
    remove.textContent = 'Remove';
    remove.dataset.testid = `group-remove-${index}`;
    remove.addEventListener('click', () => {
      changed(store, (s) => s.weights.groups.splice(index, 1));
      renderGroups(store);
    });
    head.append(label, remove);
  }
  row.append(head);
  const grid = document.createElement('div');
  grid.className = 'class-grid';
  for (const cls of BLOCK_CLASSES) {
    const label = document.createElement('label');
    label.textContent = CLASS_LABELS[cls];
    label.title = `blk.*.${cls}.weight`;
    const select = document.createElement('select');
    select.dataset.testid = `scheme-${index}-${cls}`;
    schemeOptions(store, select, index === 0 ? 'as loaded' : '(unchanged)', index > 0);
    select.value = group.schemes[cls] ?? '';
    select.addEventListener('change', () => {
      changed(store, (s) => (s.weights.groups[index].schemes[cls as BlockClass] = select.value));
      syncAllWeights(store);
    });
    label.append(select);
    grid.append(label);
  }
  row.append(grid);
  return row;
}

function renderGroups(store: Store): void {
  $('layer-groups').replaceChildren(...store.state.weights.groups.map((_, i) => groupRow(store, i)));
  syncAllWeights(store);
}

function syncAllWeights(store: Store): void {
  const u = uniformScheme(store.state.weights);
  $<HTMLSelectElement>('all-weights').value = u === null ? MIXED : u === 'keep' ? '' : u;
}

function renderMode(store: Store): void {
  const json = store.state.recipeMode === 'json';
  $<HTMLInputElement>('recipe-mode-json').checked = json;
  $<HTMLInputElement>('recipe-mode-controls').checked = !json;
  $('weight-controls').hidden = json;
  $('recipe-editor').hidden = !json;
  const text = $<HTMLTextAreaElement>('recipe-json');
  if (json && text.value !== store.state.recipeText) text.value = store.state.recipeText;
}

function renderPreview(store: Store): void {
  let text: string;
  try {
    const r = desiredRecipe(store);
    text = r.startsWith('{') ? JSON.stringify(JSON.parse(r), null, 2) : r;
  } catch (e) {
    text = `(${(e as Error).message})`;
  }
  $('recipe-preview').textContent = text;
}

/** A weight setting changed: into the store, and the preview of the recipe follows. */
function changed(store: Store, mutate: Parameters<Store['update']>[0]): void {
  store.update(mutate);
  renderPreview(store);
}

function renderSpecial(store: Store): void {
  const embeddings = $<HTMLSelectElement>('scheme-embeddings');
  const output = $<HTMLSelectElement>('scheme-output');
  embeddings.value = store.state.weights.embeddings;
  output.value = store.state.weights.output;
  const hasOutput = store.loaded?.summary.tensors.some((t) => t.name === 'output.weight') ?? true;
  output.disabled = !hasOutput;
  output.title = hasOutput ? '' : 'This model has no output.weight: its head is the embedding matrix (tied).';
}

export const weights: Control = {
  engine: {
    id: 'recipe',
    initial: null,
    asLoaded: KEEP,
    wanted(store) {
      try {
        return desiredRecipe(store);
      } catch (e) {
        showNotice(
          'quant-error',
          'That recipe was not applied',
          `${(e as Error).message}. The model keeps its previous weights.`,
        );
        return store.loaded?.holds.recipe ?? KEEP;
      }
    },
    async send(engine, recipe, store) {
      status.set('busy', 're-quantizing…');
      const r = await engine.run(
        'applyRecipe',
        { recipe },
        {
          onProgress: (_stage, done, total) => {
            if (total > 0) status.set('busy', `re-quantizing ${done}/${total}…`);
          },
        },
      );
      if (store.loaded) store.loaded.applied = r;
      metrics.renderSize(r);
      const n = r.requantizedOnGpu + r.requantizedOnCpu;
      return `re-quantized ${n} matri${n === 1 ? 'x' : 'ces'}${r.restored ? `, restored ${r.restored}` : ''} in ${formatMs(r.ms)}`;
    },
    refused: (message) => ['That recipe was not applied', `${message}. The model keeps its previous weights.`],
  },

  mount(store) {
    dismissible('quant-error');
    $<HTMLSelectElement>('all-weights').addEventListener('change', (e) => {
      const v = (e.target as HTMLSelectElement).value;
      if (v === MIXED) return;
      changed(store, (s) => (s.weights = uniformControls(v)));
      renderGroups(store);
      renderSpecial(store);
    });
    $('add-group').addEventListener('click', () => {
      const n = store.loaded?.summary.config.n_layers ?? 1;
      changed(store, (s) => s.weights.groups.push({ layers: `0-${Math.min(n - 1, 3)}`, schemes: {} }));
      renderGroups(store);
    });
    for (const [id, key] of [
      ['scheme-embeddings', 'embeddings'],
      ['scheme-output', 'output'],
    ] as const) {
      $<HTMLSelectElement>(id).addEventListener('change', (e) => {
        changed(store, (s) => (s.weights[key] = (e.target as HTMLSelectElement).value));
        syncAllWeights(store);
      });
    }
    for (const id of ['recipe-mode-controls', 'recipe-mode-json']) {
      $(id).addEventListener('change', () => {
        changed(store, (s) => {
          s.recipeMode = $<HTMLInputElement>('recipe-mode-json').checked ? 'json' : 'controls';
          if (s.recipeMode === 'json' && s.recipeText.trim() === '') {
            s.recipeText = JSON.stringify(buildRecipe(s.weights), null, 2);
          }
        });
        renderMode(store);
      });
    }
    $('recipe-apply').addEventListener('click', () =>
      changed(store, (s) => (s.recipeText = $<HTMLTextAreaElement>('recipe-json').value)),
    );
    $('recipe-from-controls').addEventListener('click', () => {
      changed(store, (s) => (s.recipeText = JSON.stringify(buildRecipe(s.weights), null, 2)));
      $<HTMLTextAreaElement>('recipe-json').value = store.state.recipeText;
    });
  },

  /** The whole quantizer card (weights, run-time quantization, intervention) needs WebGPU. */
  enable(store, on) {
    $<HTMLFieldSetElement>('quant-fields').disabled = !(on && store.gpu);
    if (on && !store.gpu) {
      showNotice(
        'quant-unavailable',
        null,
        'Re-quantizing needs WebGPU, and this model runs on the CPU: the controls are off. The prediction shows the model as loaded.',
      );
    } else {
      $('quant-unavailable').hidden = true;
    }
  },

  render(store) {
    // Its options are the engine's: nothing to show before one is loaded.
    if (!store.loaded) return;
    const all = $<HTMLSelectElement>('all-weights');
    schemeOptions(store, all, 'as loaded', false);
    const mixed = document.createElement('option');
    mixed.value = MIXED;
    mixed.textContent = MIXED;
    mixed.disabled = true;
    all.append(mixed);
    for (const id of ['scheme-embeddings', 'scheme-output'])
      schemeOptions(store, $<HTMLSelectElement>(id), 'as loaded', false);
    renderSpecial(store);
    renderGroups(store);
    renderMode(store);
    renderPreview(store);
  },
};
