// The outlier views of the playground, mounted by the page shell:
//
//   const views = mountOutlierViews(root, source, initialState, (s) => saveToUrl(s));
//   await views.update(prompt, scheme);   // after every model or quantizer change
//   // scheme: one name for all tensors, or (tensor) => the scheme that tensor holds now
//
// Each view is a `<section data-view="ID" data-ready="true|false">` with a canvas and a PNG
// button. Fetched data is cached per (model state, prompt, arguments), so moving between layers,
// heads or tensors already seen redraws without asking the worker again; a change only refetches
// and redraws the views that depend on it.

import './views.css';

import { Tooltip } from './chart.ts';
import { AttentionMaps, SinkHeatmap } from './attention.ts';
import { CausalChain, OutlierTable } from './report.ts';
import { ResidualHeatmap, ResidualLayers } from './residual.ts';
import { layerCount } from './shape.ts';
import { Cache, DEFAULT_STATE, needsOf, normalizeState, type Need } from './state.ts';
import {
  type AttentionMapsData,
  type OutlierReport,
  type OutlierViews,
  type SchemeChoice,
  type ProbeData,
  type ViewDataSource,
  type ViewMenus,
  type ViewState,
  type WeightStatsData,
} from './types.ts';
import type { CanvasView, ViewHost } from './view.ts';
import { WeightColumns, WeightHistogram } from './weights.ts';

export * from './types.ts';

export function mountOutlierViews(
  root: HTMLElement,
  source: ViewDataSource,
  initial: Partial<ViewState>,
  onStateChange: (s: ViewState) => void,
): OutlierViews {
  const tensors = source.tensorNames();
  const menus = source.menus();
  const layers = Math.max(1, layerCount(tensors));
  let state = normalizeState(initial, DEFAULT_STATE, layers, tensors, menus);
  let prompt: string | null = null;
  // The weight scheme each tensor holds now, for the histogram's grid.
  let schemeOf: (tensor: string) => string = () => 'keep';
  // Everything fetched belongs to one model state; `update` starts a new one.
  let epoch = 0;
  const probes = new Cache<ProbeData>();
  const attention = new Cache<AttentionMapsData>();
  const weights = new Cache<WeightStatsData>();
  const reports = new Cache<OutlierReport>();
  // The latest request of each kind: an older answer arriving late is dropped.
  const latest: Record<Need, number> = { probe: 0, attention: 0, weights: 0, report: 0 };

  root.classList.add('qv-root');
  root.replaceChildren();
  const tooltip = Tooltip.shared(document.body);

  const host: ViewHost = {
    tooltip,
    state: () => state,
    pick: (change) => {
      void setState(change).then(() => onStateChange(state));
    },
  };

  const controls = buildControls(root, tensors, menus, layers, (change) => {
    void setState(change).then(() => onStateChange(state));
  });

  const heatmap = new ResidualHeatmap(host);
  const layerChart = new ResidualLayers(host);
  const table = new OutlierTable(host);
  const maps = new AttentionMaps(host);
  const sinks = new SinkHeatmap(host);
  const columns = new WeightColumns(host);
  const histogram = new WeightHistogram(host);
  const chain = new CausalChain(host);
  // Half-width charts in pairs between the full-width ones, so no grid cell stays empty.
  const all: CanvasView<unknown>[] = [
    heatmap,
    layerChart,
    sinks,
    table,
    maps,
    columns,
    histogram,
    chain,
  ] as CanvasView<unknown>[];

  const grid = document.createElement('div');
  grid.className = 'qv-grid';
  for (const v of all) {
    grid.appendChild(v.section);
    v.section.addEventListener('pointerdown', () => {
      if (state.view !== v.id) {
        state = { ...state, view: v.id };
        markOpen();
        onStateChange(state);
      }
    });
  }
  root.appendChild(grid);

  function markOpen() {
    for (const v of all) v.section.dataset.open = String(v.id === state.view);
  }
  markOpen();

  /** Fetches one kind of data for the current state and hands it to its views. */
  async function load<T>(
    need: Need,
    cache: Cache<T>,
    key: string,
    fetch: () => Promise<T>,
    views: CanvasView<T>[],
    then?: (data: T) => void,
  ): Promise<void> {
    const ticket = ++latest[need];
    for (const v of views) v.setLoading();
    try {
      const data = await cache.get(key, fetch);
      if (ticket !== latest[need]) return;
      for (const v of views) v.setData(data);
      then?.(data);
    } catch (e) {
      if (ticket !== latest[need]) return;
      for (const v of views) v.showError(e);
    }
  }

  function refresh(needs: Set<Need>): Promise<void> {
    if (prompt === null) return Promise.resolve();
    const p = prompt;
    const s = state;
    const jobs: Promise<void>[] = [];
    // The probe point "embeddings" exists only in layer 0.
    const probeLayer = s.point === 'embeddings' ? 0 : s.layer;
    // Started in order of cost: the GPU ones first, the CPU reference report last.
    if (needs.has('probe')) {
      jobs.push(
        load(
          'probe',
          probes,
          JSON.stringify([epoch, p, probeLayer, s.point]),
          () => source.probe(p, false, probeLayer, s.point),
          [heatmap, layerChart, sinks] as CanvasView<ProbeData>[],
        ),
      );
    }
    if (needs.has('attention')) {
      jobs.push(
        load(
          'attention',
          attention,
          JSON.stringify([epoch, p, s.layer]),
          () => source.attentionMaps(p, s.layer, false),
          [maps] as CanvasView<AttentionMapsData>[],
          (d) => controls.setHeads(d.heads),
        ),
      );
    }
    if (needs.has('weights') && s.tensor) {
      const sc = schemeOf(s.tensor) || 'keep';
      jobs.push(
        load('weights', weights, JSON.stringify([s.tensor, sc]), () => source.weightStats(s.tensor, sc), [
          columns,
          histogram,
        ] as CanvasView<WeightStatsData>[]),
      );
    }
    if (needs.has('report')) {
      jobs.push(
        load('report', reports, JSON.stringify([p, s.rule]), () => source.outlierReport(p, s.rule), [
          table,
          chain,
        ] as CanvasView<OutlierReport>[]),
      );
    }
    return Promise.all(jobs).then(() => undefined);
  }

  async function setState(change: Partial<ViewState>): Promise<void> {
    const before = state;
    state = normalizeState({ ...state, ...change }, state, layers, tensors, menus);
    controls.show(state);
    markOpen();
    if (change.view && change.view !== before.view) {
      all.find((v) => v.id === state.view)?.section.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    }
    // Redraws that need no new data: the highlighted layer, the chosen head or point.
    if (before.layer !== state.layer || before.point !== state.point) {
      layerChart.render();
      sinks.render();
    }
    if (before.head !== state.head) maps.render();
    await refresh(needsOf(before, state));
  }

  let lastModelKey: string | null = null;

  async function update(newPrompt: string, newScheme: SchemeChoice, modelKey?: string): Promise<void> {
    // The loaded weights (behind weightStats and the report) change only with the model; the
    // quantized model (behind the probes and attention maps) changes with every call.
    if (modelKey === undefined || modelKey !== lastModelKey) {
      weights.clear();
      reports.clear();
      lastModelKey = modelKey ?? null;
    }
    epoch++;
    probes.clear();
    attention.clear();
    prompt = newPrompt;
    schemeOf = typeof newScheme === 'function' ? newScheme : () => newScheme;
    await refresh(new Set<Need>(['probe', 'attention', 'weights', 'report']));
  }

  let frame = 0;
  const observer = new ResizeObserver(() => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => all.forEach((v) => v.render()));
  });
  observer.observe(grid);
  controls.show(state);

  return {
    update,
    state: () => state,
    setState,
  };
}

/** The shared controls above the views: layer, probe point, head, tensor, rule. */
function buildControls(
  root: HTMLElement,
  tensors: readonly string[],
  menus: ViewMenus,
  layers: number,
  change: (c: Partial<ViewState>) => void,
): { show(s: ViewState): void; setHeads(n: number): void } {
  const bar = document.createElement('div');
  bar.className = 'qv-controls';
  const select = (
    name: keyof ViewState,
    label: string,
    options: [string, string][],
    parse: (v: string) => Partial<ViewState>,
  ) => {
    const wrap = document.createElement('label');
    wrap.className = 'qv-control';
    const span = document.createElement('span');
    span.textContent = label;
    const el = document.createElement('select');
    el.dataset.control = name;
    for (const [value, text] of options) el.add(new Option(text, value));
    el.addEventListener('change', () => change(parse(el.value)));
    wrap.append(span, el);
    bar.appendChild(wrap);
    return el;
  };
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const layer = select(
    'layer',
    'Layer',
    range(layers).map((i) => [String(i), String(i)]),
    (v) => ({ layer: Number(v) }),
  );
  const point = select(
    'point',
    'Probe point',
    menus.points.map((p) => [p, p.replace(/_/g, ' ')]),
    (v) => ({ point: v }),
  );
  const head = select('head', 'Head', [['-1', 'all']], (v) => ({ head: Number(v) }));
  const tensor = select(
    'tensor',
    'Tensor',
    tensors.map((t) => [t, t]),
    (v) => ({ tensor: v }),
  );
  const rule = select(
    'rule',
    'Rule',
    menus.rules.map((r) => [r, r]),
    (v) => ({ rule: v }),
  );
  root.appendChild(bar);
  return {
    show(s: ViewState) {
      layer.value = String(s.layer);
      point.value = s.point;
      if (s.head >= head.options.length - 1) setHeads(s.head + 1);
      head.value = String(s.head);
      tensor.value = s.tensor;
      rule.value = s.rule;
    },
    setHeads,
  };

  /** Offers heads 0..n-1 (known once the attention maps of the model have arrived). */
  function setHeads(n: number) {
    const chosen = head.value;
    while (head.options.length - 1 > n) head.remove(head.options.length - 1);
    for (let h = head.options.length - 1; h < n; h++) head.add(new Option(String(h), String(h)));
    head.value = Number(chosen) < n ? chosen : '-1';
  }
}
