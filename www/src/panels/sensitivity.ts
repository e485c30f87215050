// The sensitivity map: which (layer, tensor class) can take a weight scheme. Each cell is the
// model with that one matrix quantized, everything else as loaded, measured against the model as
// loaded (the engine's `sensitivity`, src/study/sensitivity.rs); cells are drawn as they arrive.
// A click on a cell applies exactly that change, through the recipe, so it lands in the link and
// the history like any other setting. Against the model as loaded only: Run waits while a
// configuration is pinned as the reference (the engine refuses then too).

import { $, fillOptions, hide, ProgressBar, showNotice } from '../dom';
import type { Engine } from '../engine';
import { formatMs } from '../format';
import { finiteMax, klScale } from '../kl-heat';
import type { SensitivityCell, SensitivityMap, SensitivityTotal } from '../messages';
import { BLOCK_CLASSES, CLASS_LABELS, recipeJson, singleTensorRecipe, type BlockClass } from '../recipe';
import { cellAt, cellRect, gridLayout, layerLabelStep, type GridLayout } from '../sensitivity-grid';
import type { Store } from '../store';
import type { Control, PageActions } from '../controls/control';
import {
  attachHover,
  drawColorLegend,
  drawMessage,
  fontOf,
  prepareCanvas,
  readTheme,
  Tooltip,
} from '../views/chart.ts';
import { formatNumber } from '../views/scales.ts';

/** Each cell is a whole evaluation: few tokens keep a map quick on a software adapter. */
export const SENSITIVITY_TOKEN_CHOICES = [8, 16, 32, 64, 128] as const;
const DEFAULT_TOKENS = 16;
/** A scheme that visibly hurts some matrices more than others; the first one the GPU re-quantizes otherwise. */
const PREFERRED_SCHEME = 'int2-g32-asym';

let progress: ProgressBar;
let tooltip: Tooltip;
let canvas: HTMLCanvasElement;
let layout: GridLayout | null = null;
/** The run on screen: its cells by "layer:class", how many it will have, and its result once finished. */
let shown: { scheme: string; layers: number; cells: Map<string, SensitivityCell>; total: number } | null = null;
let running: { eng: Engine; id: number; cancelled: boolean } | null = null;

const cellKey = (layer: number, cls: string) => `${layer}:${cls}`;

function setState(state: 'idle' | 'running' | 'done' | 'cancelled' | 'error'): void {
  $('sensitivity').dataset.state = state;
  $('sensitivity-run').hidden = state === 'running';
  $('sensitivity-cancel').hidden = state !== 'running';
}

function showCount(): void {
  const count = $('sensitivity-count');
  const done = shown?.cells.size ?? 0;
  const total = shown?.total ?? 0;
  count.dataset.done = String(done);
  count.dataset.total = String(total);
  count.textContent = shown ? `${done} / ${total || '…'} cells` : '';
}

function draw(): void {
  const theme = readTheme(canvas);
  const width = Math.floor(canvas.parentElement?.clientWidth ?? 0) || 600;
  const layers = shown?.layers ?? 0;
  layout = gridLayout(width, layers, BLOCK_CLASSES.length);
  const g = layout;
  const ctx = prepareCanvas(canvas, g.width, g.height, theme);
  if (!shown) {
    drawMessage(ctx, g.width, g.height, 'Choose a scheme and press Run: the cells appear as they are measured.', theme);
    return;
  }
  const scale = klScale(finiteMax([...shown.cells.values()].map((c) => c.kl)));
  ctx.font = fontOf(theme, 11);
  ctx.fillStyle = theme.muted;
  ctx.textAlign = 'right';
  BLOCK_CLASSES.forEach((cls, i) => ctx.fillText(CLASS_LABELS[cls], g.left - 6, g.top + (i + 0.5) * g.cellHeight));
  ctx.textAlign = 'center';
  const step = layerLabelStep(g.cellWidth);
  for (let layer = 0; layer < layers; layer += step)
    ctx.fillText(String(layer), g.left + (layer + 0.5) * g.cellWidth, 8);
  for (let layer = 0; layer < layers; layer++) {
    BLOCK_CLASSES.forEach((cls, i) => {
      const r = cellRect(g, layer, i);
      const cell = shown?.cells.get(cellKey(layer, cls));
      // Not measured (yet, or not asked for): the card's line colour.
      ctx.fillStyle = cell ? scale.color(cell.kl) : theme.line;
      ctx.fillRect(r.x + 0.5, r.y + 0.5, r.width - 1, r.height - 1);
    });
  }
  const legend = { x: g.left + 120, y: g.legendTop, width: Math.min(240, g.width - g.left - 220), height: 10 };
  drawColorLegend(ctx, legend, scale.colorAt, formatNumber(scale.low), formatNumber(scale.high), theme, 'KL (log)');
}

/** The tooltip's lines for the point (x, y) of the canvas. */
function describe(x: number, y: number): string[] | null {
  const at = layout && cellAt(layout, x, y);
  if (!at || !shown) return null;
  const cls = BLOCK_CLASSES[at.classIndex];
  const cell = shown.cells.get(cellKey(at.layer, cls));
  if (!cell) return [`layer ${at.layer} · ${CLASS_LABELS[cls]}`, 'not measured'];
  return [
    cell.tensor,
    `KL ${formatNumber(cell.kl)}`,
    `top-1 agreement ${(cell.top1Agreement * 100).toFixed(1)}%`,
    `perplexity ${formatNumber(cell.perplexity)}`,
    `final residual error ${formatNumber(cell.finalError)}`,
    `click: quantize only this matrix with ${shown.scheme}`,
  ];
}

function totalsList(title: string, totals: SensitivityTotal[], label: (name: string) => string): HTMLElement {
  const box = document.createElement('div');
  const h = document.createElement('h3');
  h.textContent = title;
  const list = document.createElement('ol');
  list.className = 'sensitivity-total-list';
  for (const t of totals) {
    const li = document.createElement('li');
    li.dataset.name = t.name;
    li.dataset.kl = String(t.kl);
    li.title = `sum of the cells' KL ${t.kl}; largest cell ${t.maxKl}`;
    li.textContent = `${label(t.name)} ${formatNumber(t.kl)}`;
    list.append(li);
  }
  box.append(h, list);
  return box;
}

function showTotals(map: SensitivityMap | null): void {
  const box = $('sensitivity-totals');
  if (!map) {
    box.replaceChildren();
    return;
  }
  const byKl = (a: SensitivityTotal, b: SensitivityTotal) => b.kl - a.kl;
  box.replaceChildren(
    totalsList('Per class (sum of KL)', [...map.perClass].sort(byKl), (n) => CLASS_LABELS[n as BlockClass] ?? n),
    totalsList('Per layer (sum of KL), worst first', [...map.perLayer].sort(byKl), (n) => `layer ${n}`),
  );
  $('sensitivity-note').textContent =
    `${map.cells.length} matrices with ${map.scheme}, on ${map.tokens} tokens (reference perplexity ` +
    `${formatNumber(map.referencePerplexity)}), on ${map.backend === 'webgpu' ? 'WebGPU' : 'the CPU'} in ${formatMs(map.ms)}.`;
}

async function run(store: Store): Promise<void> {
  const loaded = store.loaded;
  if (!loaded || running) return;
  const eng = loaded.engine;
  const scheme = $<HTMLSelectElement>('sensitivity-scheme').value;
  const maxTokens = Number($<HTMLSelectElement>('sensitivity-tokens').value);
  const tensors = $<HTMLInputElement>('sensitivity-tensors').value.trim();
  shown = { scheme, layers: loaded.summary.config.n_layers, cells: new Map(), total: 0 };
  hide('sensitivity-error');
  showTotals(null);
  $('sensitivity-note').textContent = '';
  setState('running');
  showCount();
  draw();
  progress.show('');
  const call = eng.call(
    'sensitivity',
    { config: { scheme, tensors: tensors || null }, maxTokens, window: maxTokens },
    {
      onCell: (cell) => {
        if (running?.id !== call.id || !shown) return;
        shown.cells.set(cellKey(cell.layer, cell.class), cell);
        showCount();
        draw();
      },
      onProgress: (_stage, done, total) => {
        if (running?.id !== call.id || !shown) return;
        shown.total = total;
        showCount();
        progress.update('', `${done} / ${total}`, total > 0 ? done / total : null);
      },
    },
  );
  const mine = { eng, id: call.id, cancelled: false };
  running = mine;
  try {
    const map = await call.result;
    // A model loaded since: the map on screen was cleared with the engine that computed this.
    if (store.loaded?.engine !== eng || !shown) return;
    shown.total = map.cells.length;
    showCount();
    showTotals(map);
    setState('done');
  } catch (e) {
    if (store.loaded?.engine !== eng) return;
    if (mine.cancelled) {
      setState('cancelled');
      $('sensitivity-note').textContent = 'Cancelled: the cells measured so far are shown; the model is as it was.';
    } else {
      setState('error');
      showNotice('sensitivity-error', null, (e as Error).message);
    }
  } finally {
    running = null;
    progress.hide();
  }
}

/** Applies the change of the cell at (x, y): only that matrix quantized with the map's scheme. */
function apply(store: Store, page: PageActions, x: number, y: number): void {
  const at = layout && cellAt(layout, x, y);
  const cell = at && shown?.cells.get(cellKey(at.layer, BLOCK_CLASSES[at.classIndex]));
  if (!cell || !shown) return;
  const recipeText = recipeJson(singleTensorRecipe(cell.tensor, shown.scheme));
  $('sensitivity').dataset.applied = cell.tensor;
  page.restore({ ...store.state, recipeMode: 'json', recipeText });
}

/** Run is off while a configuration is pinned, saying why. */
function showPinned(store: Store): void {
  const pinned = store.state.pin !== null;
  $('sensitivity-pinned').hidden = !pinned;
  $('sensitivity-run').toggleAttribute('disabled', pinned);
}

function schemeChoices(store: Store): void {
  const select = $<HTMLSelectElement>('sensitivity-scheme');
  const schemes = store.loaded?.caps.schemes ?? [];
  fillOptions(
    select,
    schemes.map((s) => [s.name, s.gpu ? s.name : `${s.name} (CPU)`]),
  );
  if (!schemes.some((s) => s.name === select.value)) {
    select.value = schemes.find((s) => s.name === PREFERRED_SCHEME)?.name ?? schemes.find((s) => s.gpu)?.name ?? '';
  }
}

export const sensitivityPanel: Control = {
  mount(store, page) {
    progress = new ProgressBar($('sensitivity-progress'));
    tooltip = Tooltip.shared(document.body);
    canvas = $<HTMLCanvasElement>('sensitivity-grid');
    attachHover(canvas, tooltip, describe);
    canvas.addEventListener('click', (e) => {
      const r = canvas.getBoundingClientRect();
      apply(store, page, e.clientX - r.left, e.clientY - r.top);
    });
    new ResizeObserver(() => draw()).observe(canvas.parentElement ?? canvas);
    const tokens = $<HTMLSelectElement>('sensitivity-tokens');
    fillOptions(
      tokens,
      SENSITIVITY_TOKEN_CHOICES.map((n) => [String(n), String(n)]),
    );
    tokens.value = String(DEFAULT_TOKENS);
    $('sensitivity-run').addEventListener('click', () => void run(store));
    $('sensitivity-cancel').addEventListener('click', () => {
      if (!running) return;
      running.cancelled = true;
      running.eng.stop(running.id);
    });
    store.subscribe((change) => {
      showPinned(store);
      if (change !== 'loaded') return;
      // A new model: the map on screen was another model's.
      shown = null;
      showCount();
      showTotals(null);
      $('sensitivity-note').textContent = '';
      setState('idle');
      draw();
    });
    setState('idle');
    showPinned(store);
  },

  render(store) {
    if (store.loaded) schemeChoices(store);
  },

  enable(store, on) {
    const available = on && store.gpu && (store.loaded?.caps.study?.sensitivity ?? false);
    $<HTMLFieldSetElement>('sensitivity-fields').disabled = !available;
    $('sensitivity-unavailable').hidden = !on || available;
  },
};
