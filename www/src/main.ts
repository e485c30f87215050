// The playground page: loads a model into an engine (a Web Worker running the wasm, see
// worker.ts), shows its prediction as loaded and as quantized side by side, lets the user change
// the quantizer and see the metrics and the outlier views follow, and keeps the whole setup in the
// URL so that a link reproduces it.
//
// ?backend=cpu skips WebGPU (the CPU reference runs the model; nothing can be re-quantized).
// ?backend=webgpu runs the model as loaded on WebGPU even on a software adapter, where by default
// the engine times the CPU reference against WebGPU at load and takes the faster (forward.ts).
// Everything else lives in the hash (url-state.ts).

import './style.css';
import { Engine } from './engine';
import { LatestRunner } from './latest';
import { LayerErrorChart, downloadBlob, exportCanvasPng } from './charts';
import { classifyModelFiles } from './files';
import { COLUMNS, sortEntries, toCsv, toJson, type HistoryEntry, type SortDirection } from './history';
import {
  BLOCK_CLASSES,
  CLASS_LABELS,
  buildRecipe,
  describeRecipe,
  parseRecipeText,
  recipeJson,
  tensorClass,
  uniformControls,
  uniformScheme,
  type BlockClass,
} from './recipe';
import { EVAL_TOKEN_CHOICES, decodeState, defaultState, encodeState, type AppState } from './url-state';
import { baseName, formatBytes, formatCount, formatInt, formatMetric, formatMs, formatProb, tokenNode } from './format';
import { browserGpuNotice, deviceNotice, isSoftwareAdapter, type GpuNotice } from './webgpu';
import { computedOn, forwardSummary, parseBackendParam, type Segment } from './forward';
import type {
  Applied,
  Backend,
  Capabilities,
  DeviceInfo,
  EvalMetrics,
  Loaded,
  ModelSource,
  ModelSummary,
  RuntimeApplied,
  RuntimeQuantConfig,
  TopToken,
} from './messages';
import { mountOutlierViews, type OutlierViews, type ViewDataSource, type ViewState } from './views/index';

const TOP_K = 10;
const TYPING_DEBOUNCE_MS = 350;
const PARAMS = new URLSearchParams(location.search);
const BACKEND = parseBackendParam(PARAMS.get('backend'));
const USE_GPU = BACKEND.useGpu;

function $<T extends HTMLElement = HTMLElement>(testid: string, root: ParentNode = document): T {
  const el = root.querySelector<T>(`[data-testid="${testid}"]`);
  if (!el) throw new Error(`the page has no [data-testid="${testid}"]`);
  return el;
}

// ---------------------------------------------------------------------------------------------
// Small views.

const status = {
  set(state: 'starting' | 'busy' | 'ready' | 'error', text: string) {
    const el = $('status');
    el.dataset.state = state;
    el.textContent = text;
  },
};

function showNotice(testid: string, title: string | null, body: string): void {
  const el = $(testid);
  const t = el.querySelector('.notice-title');
  if (title !== null && t) t.textContent = title;
  const b = el.querySelector('.notice-body');
  if (b) b.textContent = body;
  el.hidden = false;
}

const hide = (testid: string) => ($(testid).hidden = true);

function showGpuNotice(notice: GpuNotice | null): void {
  const el = $('webgpu-notice');
  if (!notice) {
    el.hidden = true;
    return;
  }
  el.classList.toggle('info', notice.level === 'info');
  el.dataset.level = notice.level;
  showNotice('webgpu-notice', notice.title, notice.body);
}

class ProgressBar {
  constructor(private readonly root: HTMLElement) {}

  show(title: string): void {
    this.root.hidden = false;
    this.update(title, '', 0);
  }

  update(title: string, detail: string, fraction: number | null): void {
    const stage = this.root.querySelector('[data-testid="load-stage"]');
    const det = this.root.querySelector('[data-testid="load-detail"]');
    if (stage) stage.textContent = title;
    if (det) det.textContent = detail;
    const track = this.root.querySelector<HTMLElement>('.progress-track');
    const fill = this.root.querySelector<HTMLElement>('.progress-fill');
    if (!track || !fill) return;
    if (fraction === null) {
      track.classList.add('indeterminate');
      track.removeAttribute('aria-valuenow');
      fill.style.width = '';
    } else {
      track.classList.remove('indeterminate');
      const pct = Math.max(0, Math.min(100, fraction * 100));
      fill.style.width = `${pct}%`;
      track.setAttribute('aria-valuenow', pct.toFixed(0));
    }
  }

  hide(): void {
    this.root.hidden = true;
  }
}

const loadProgress = new ProgressBar($('load-progress'));
const metricsProgress = new ProgressBar($('metrics-progress'));

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

function showLoadProgress(name: string, stage: string, done: number, total: number): void {
  const title = `${STAGE_TITLES[stage] ?? stage[0].toUpperCase() + stage.slice(1)} ${name}`;
  if (stage === 'download' || stage === 'read' || stage === 'cache') {
    const detail = total > 0 ? `${formatBytes(done)} of ${formatBytes(total)}` : formatBytes(done);
    loadProgress.update(title, detail, total > 0 ? done / total : null);
  } else if (total > 1) {
    const detail =
      total >= 10000 ? `${Math.floor((done / total) * 100)}%` : `${formatInt(done)} of ${formatInt(total)}`;
    loadProgress.update(title, detail, done / total);
  } else {
    loadProgress.update(title, '', null);
  }
}

function setFact(testid: string, value: string | number, shown: string | number = value): void {
  const el = $(testid);
  el.dataset.value = String(value);
  el.textContent = typeof shown === 'number' ? formatInt(shown) : shown;
}

function renderSummary(summary: ModelSummary, fileBytes: number, fromCache: boolean): void {
  const c = summary.config;
  $('summary-name').textContent = summary.name || baseName(summary.source);
  $('summary-source').textContent = summary.name ? summary.source : '';
  setFact('summary-architecture', c.architecture ?? '?');
  setFact('summary-layers', c.n_layers);
  setFact('summary-width', c.d_model);
  setFact('summary-heads', c.n_heads);
  setFact('summary-kv-heads', c.n_kv_heads);
  setFact('summary-head-dim', c.head_dim);
  setFact('summary-ffn', c.d_ff);
  setFact('summary-vocab', c.vocab_size);
  setFact('summary-context', c.context_length);
  setFact('summary-params', summary.parameters, formatCount(summary.parameters));
  const bpw = summary.parameters > 0 ? (summary.bytes * 8) / summary.parameters : 0;
  setFact('summary-size', summary.bytes, formatBytes(summary.bytes));
  setFact('summary-bpw', bpw, bpw.toFixed(2));
  const extra: string[] = [];
  if (c.rope_base != null) extra.push(`RoPE base ${formatInt(c.rope_base)}`);
  if (c.rms_eps != null) extra.push(`RMS ε ${Number(c.rms_eps).toExponential(0)}`);
  if (c.qkv_bias) extra.push('QKV bias');
  if (c.tied_embeddings != null) extra.push(c.tied_embeddings ? 'tied embeddings' : 'separate output head');
  extra.push(`file ${formatBytes(fileBytes)}${fromCache ? ' (from this browser’s cache)' : ''}`);
  $('summary-extra').textContent = extra.join(' · ');

  const byType = new Map<string, { count: number; bytes: number }>();
  for (const t of summary.tensors) {
    const e = byType.get(t.dtype) ?? { count: 0, bytes: 0 };
    e.count += 1;
    e.bytes += t.bytes;
    byType.set(t.dtype, e);
  }
  const list = $('summary-dtypes');
  list.replaceChildren();
  const total = summary.bytes || 1;
  for (const [dtype, { count, bytes }] of [...byType].sort((a, b) => b[1].bytes - a[1].bytes)) {
    const li = document.createElement('li');
    li.dataset.dtype = dtype;
    li.dataset.count = String(count);
    const name = document.createElement('span');
    name.className = 'dtype-name';
    name.textContent = dtype;
    const info = document.createElement('span');
    info.className = 'dtype-info';
    info.textContent = `${count} tensor${count === 1 ? '' : 's'} · ${formatBytes(bytes)} · ${Math.round((bytes / total) * 100)}%`;
    li.append(name, info);
    list.append(li);
  }
  $('summary').hidden = false;
}

function adapterName(device: DeviceInfo): string {
  const info = device.adapterInfo;
  const vendorArch = [info?.vendor, info?.architecture].filter(Boolean).join(' ');
  return device.adapter?.name || info?.description || vendorArch || 'unnamed adapter';
}

function backendLabel(device: DeviceInfo | null): string {
  if (device?.backend !== 'webgpu') return 'the CPU (WebAssembly)';
  return gpuLabel(device);
}

/** "WebGPU (adapter)": how the page names the GPU backend. */
function gpuLabel(device: DeviceInfo): string {
  return `WebGPU (${isSoftwareAdapter(device) ? 'SwiftShader' : adapterName(device)})`;
}

/** Puts text segments into `el`, the bold ones in <b>. */
function renderSegments(el: HTMLElement, segments: Segment[]): void {
  el.replaceChildren(
    ...segments.map((s) => {
      if (typeof s === 'string') return s;
      const b = document.createElement('b');
      b.textContent = s.bold;
      return b;
    }),
  );
}

function renderDevice(d: DeviceInfo): void {
  const el = $('device');
  el.dataset.backend = d.backend;
  el.dataset.adapter = d.adapter ? adapterName(d) : '';
  $('device-backend').textContent = d.backend === 'webgpu' ? 'WebGPU' : 'CPU';
  const features = $('device-features');
  features.replaceChildren();
  const unavailable = $('gpu-unavailable');
  if (d.adapter) {
    const a = d.adapter;
    $('device-name').textContent = adapterName(d);
    $('device-name').title = `wgpu backend ${a.backend} · device type ${a.device_type}`;
    const facts: [string, boolean][] = [
      ['shader-f16', a.features.shader_f16],
      ['subgroups', a.features.subgroups],
      ['timestamps', a.features.timestamps],
    ];
    for (const [name, on] of facts) {
      const li = document.createElement('li');
      li.dataset.feature = name;
      li.dataset.on = String(on);
      li.append(`${name} `);
      const b = document.createElement('b');
      b.textContent = on ? 'yes' : 'no';
      li.append(b);
      features.append(li);
    }
    const li = document.createElement('li');
    li.textContent = `${formatInt(a.max_compute_invocations_per_workgroup)} invocations / workgroup`;
    features.append(li);
    unavailable.hidden = true;
    const software = isSoftwareAdapter(d);
    $('device-note').textContent = software
      ? 'This is a software WebGPU adapter (no GPU found): it runs the GPU kernels on the CPU, slowly.'
      : '';
    $('device-note').hidden = !software;
  } else {
    $('device-note').hidden = true;
    $('device-name').textContent = 'WebAssembly on the CPU';
    $('device-name').title = '';
    const body = unavailable.querySelector('.notice-body');
    if (body) {
      body.replaceChildren();
      const b = document.createElement('b');
      b.textContent = 'WebGPU unavailable:';
      body.append(b, ` ${d.reason ?? 'unknown reason'} — predictions run on the CPU.`);
    }
    unavailable.hidden = false;
  }
  const forward = $('device-forward');
  const f = d.backend === 'webgpu' ? d.forward : null;
  forward.dataset.backend = f?.backend ?? '';
  forward.dataset.measured = String(Boolean(f?.measured));
  forward.textContent = f ? forwardSummary(f, gpuLabel(d)) : '';
  forward.hidden = !f;
  const t = d.timings;
  const parts: string[] = [];
  if (t.downloadMs != null) parts.push(`read ${formatMs(t.downloadMs)}`);
  parts.push(`parse ${formatMs(t.parseMs)}`);
  if (d.backend === 'webgpu') {
    parts.push(`adapter ${formatMs(t.adapterMs)}`);
    parts.push(`upload ${formatMs(t.uploadMs)} (${formatBytes(d.gpuBytes)} on the GPU)`);
    if (f?.measured && t.measureMs != null) parts.push(`timing CPU against WebGPU ${formatMs(t.measureMs)}`);
  }
  $('device-timings').textContent = parts.join(' · ');
  el.hidden = false;
}

function renderTokenList(list: HTMLElement, top: TopToken[], prompt: string, compareTo: TopToken[] | null): void {
  list.dataset.prompt = prompt;
  list.replaceChildren();
  const reference = compareTo ? new Map(compareTo.map((t, i) => [t.id, i])) : null;
  top.forEach((t, i) => {
    const li = document.createElement('li');
    li.dataset.token = t.token;
    li.dataset.id = String(t.id);
    li.dataset.prob = String(t.prob);
    li.dataset.logit = String(t.logit);
    li.title = `token id ${t.id} · logit ${t.logit.toFixed(3)} · ${JSON.stringify(t.token)}`;
    if (reference) {
      const was = reference.get(t.id);
      li.dataset.moved = was === undefined ? 'new' : was === i ? 'same' : 'moved';
    }
    const rank = document.createElement('span');
    rank.className = 'rank';
    rank.textContent = String(i + 1);
    const bar = document.createElement('span');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.className = 'bar-fill';
    fill.style.width = `${Math.max(0.5, t.prob * 100)}%`;
    bar.append(fill, tokenNode(t.token));
    const prob = document.createElement('span');
    prob.className = 'prob';
    prob.textContent = formatProb(t.prob);
    li.append(rank, bar, prob);
    list.append(li);
  });
}

// ---------------------------------------------------------------------------------------------
// State.

let state: AppState = defaultState();
let engine: Engine | null = null;
let caps: Capabilities | null = null;
let summary: ModelSummary | null = null;
let device: DeviceInfo | null = null;
/** What the current engine holds now, to re-send only what changed. */
let engineConfig: { recipe: string | null; runtime: string; intervention: string } = {
  recipe: null,
  runtime: '',
  intervention: '',
};
let lastApplied: Applied | null = null;
/** Keys of what the prediction, the metrics and the views on screen were computed for. */
let predictKey: string | null = null;
let metricsKey: string | null = null;
let viewsKey: string | null = null;
/** The model the current engine holds, as the URL state names it. */
let loadedModel: string | null = null;
/** When the user last changed the configuration (for "change → metrics" timing). */
let changedAt: number | null = null;
const historyEntries: HistoryEntry[] = [];
let historySort: { key: keyof HistoryEntry; direction: SortDirection } = { key: 'run', direction: 'asc' };
let views: OutlierViews | null = null;
let layerChart: LayerErrorChart;
let loadSeq = 0;
/** The user asked to evaluate even though nothing changed the model. */
let forceMetrics = false;
/** The model state whose exact (as loaded) metrics are on screen, if any. */
let identityShownFor: string | null = null;

const gpuReady = () => device?.backend === 'webgpu';

function writeHash(): void {
  const hash = encodeState(state);
  const url = `${location.pathname}${location.search}${hash ? `#${hash}` : ''}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) window.history.replaceState(null, '', url);
}

function shareLink(): string {
  const hash = encodeState(state);
  return `${location.origin}${location.pathname}${location.search}${hash ? `#${hash}` : ''}`;
}

/** The recipe (JSON or one scheme name) the current controls ask for; throws on a bad one. */
function desiredRecipe(): string {
  if (state.recipeMode === 'json') {
    const parsed = parseRecipeText(state.recipeText);
    return typeof parsed === 'string' ? parsed : recipeJson(parsed);
  }
  return recipeJson(buildRecipe(state.weights, summary?.config.n_layers));
}

function runtimeLabel(r: RuntimeQuantConfig): string {
  const parts: string[] = [];
  if (r.a) parts.push(`A ${r.a}`);
  if (r.aDown) parts.push(`A-down ${r.aDown}`);
  if (r.kv) parts.push(`KV ${r.kv}`);
  if (r.attn) parts.push(`attn ${r.attn}`);
  if (r.method) parts.push(`${r.method} (${r.calibTokens} tok)`);
  return parts.join(' · ') || 'none';
}

/** The model as it now runs: what every result depends on. */
function engineKey(): unknown[] {
  return [loadedModel, engineConfig.recipe, engineConfig.runtime, engineConfig.intervention];
}

const configKey = () => JSON.stringify([...engineKey(), state.evalTokens]);
const promptKey = () => JSON.stringify([...engineKey(), state.prompt]);

// ---------------------------------------------------------------------------------------------
// The refresh pipeline: apply what changed, predict, evaluate, update the views.

const refresher = new LatestRunner(refresh, (e) => console.error('quantscope: refresh failed', e));

/** The evaluation running now, so that a change can cancel it rather than wait for it. */
let runningEvaluation: { eng: Engine; id: number } | null = null;

/** A setting changed: remember when, save it in the URL, and recompute what depends on it. The
 * evaluation of the previous settings is moot: it is cancelled, and the new one starts. */
function settingsChanged(): void {
  changedAt = performance.now();
  writeHash();
  renderRecipePreview();
  if (runningEvaluation) runningEvaluation.eng.stop(runningEvaluation.id);
  void refresher.request();
}

async function syncEngine(eng: Engine, timings: string[]): Promise<void> {
  if (!gpuReady()) return;
  hide('quant-error');
  let recipe: string;
  try {
    recipe = desiredRecipe();
  } catch (e) {
    showNotice(
      'quant-error',
      'That recipe was not applied',
      `${(e as Error).message}. The model keeps its previous weights.`,
    );
    recipe = engineConfig.recipe ?? recipeJson({ default: 'keep', rules: [] });
  }
  if (recipe !== engineConfig.recipe) {
    status.set('busy', 're-quantizing…');
    try {
      const r = await eng.run(
        'applyRecipe',
        { recipe },
        {
          onProgress: (_stage, done, total) => {
            if (total > 0) status.set('busy', `re-quantizing ${done}/${total}…`);
          },
        },
      );
      engineConfig.recipe = recipe;
      lastApplied = r;
      const n = r.requantizedOnGpu + r.requantizedOnCpu;
      timings.push(
        `re-quantized ${n} matri${n === 1 ? 'x' : 'ces'}${r.restored ? `, restored ${r.restored}` : ''} in ${formatMs(r.ms)}`,
      );
      renderSize(r);
    } catch (e) {
      showNotice(
        'quant-error',
        'That recipe was not applied',
        `${(e as Error).message}. The model keeps its previous weights.`,
      );
    }
  }
  const runtime = JSON.stringify(state.runtime);
  if (caps?.runtime && runtime !== engineConfig.runtime) {
    status.set('busy', 'setting runtime quantization…');
    try {
      const r = await eng.run(
        'setRuntimeQuant',
        { config: state.runtime },
        {
          onProgress: (stage, done, total) =>
            status.set('busy', `calibrating (${stage}${total > 1 ? ` ${done}/${total}` : ''})…`),
        },
      );
      engineConfig.runtime = runtime;
      timings.push(`runtime quantization in ${formatMs(r.ms)}`);
      renderRuntimeResult(r);
      if (r.recipe) {
        // Bit allocation decides the weights' schemes: its recipe becomes the free recipe.
        state.recipeMode = 'json';
        state.recipeText = r.recipe;
        renderModeControls();
        renderRecipePreview();
        writeHash();
        await syncEngine(eng, timings);
      }
    } catch (e) {
      showNotice('quant-error', 'Runtime quantization was not applied', (e as Error).message);
    }
  }
  if (state.intervention !== engineConfig.intervention) {
    status.set('busy', 'setting the intervention…');
    try {
      const r = await eng.run('setIntervention', { name: state.intervention });
      engineConfig.intervention = state.intervention;
      const on = r.calibration
        ? ` (means of the model ${r.calibration.model}, ${r.calibration.tokens} tokens of the shipped text)`
        : '';
      timings.push(`intervention in ${formatMs(r.ms)}${on}`);
    } catch (e) {
      showNotice('quant-error', 'The intervention was not applied', (e as Error).message);
    }
  }
}

function renderRuntimeResult(r: RuntimeApplied): void {
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

function renderSize(r: Applied): void {
  setFact('metric-bpw', r.bitsPerWeight, r.bitsPerWeight.toFixed(2));
  setFact('metric-size', r.bytes, formatBytes(r.bytes));
}

async function predictNow(eng: Engine): Promise<number> {
  const prompt = state.prompt;
  const lists = [$('top-reference'), $('top-quantized')];
  lists.forEach((l) => l.classList.add('stale'));
  $('predict-button').toggleAttribute('disabled', true);
  status.set('busy', 'predicting…');
  const t0 = performance.now();
  try {
    if (gpuReady()) {
      const both = await eng.run('predictBoth', { prompt, topK: TOP_K });
      if (eng !== engine) return 0;
      renderTokenList(lists[0], both.reference, prompt, null);
      renderTokenList(lists[1], both.quantized, prompt, both.reference);
      setPredictMeta(both.tokens.length, both.ms, both.referenceBackend ?? 'webgpu', both.quantizedBackend ?? 'webgpu');
    } else {
      const p = await eng.run('predict', { prompt, topK: TOP_K });
      if (eng !== engine) return 0;
      renderTokenList(lists[0], p.top, prompt, null);
      lists[1].replaceChildren();
      setPredictMeta(p.tokens.length, p.ms, p.backend, null);
    }
    lists.forEach((l) => (l.dataset.model = summary?.source ?? ''));
    hide('predict-error');
    $('tokens-placeholder').hidden = true;
  } catch (e) {
    if (eng !== engine) return 0;
    showNotice('predict-error', null, (e as Error).message);
    lists.forEach((l) => (l.dataset.prompt = prompt));
  } finally {
    lists.forEach((l) => l.classList.remove('stale'));
    $('predict-button').toggleAttribute('disabled', !engine);
  }
  return performance.now() - t0;
}

/** Which backend computed each column (`quantized` null: one column), and why the CPU beside a GPU. */
function setPredictMeta(tokens: number, ms: number, reference: Backend, quantized: Backend | null): void {
  $('predict-meta').textContent = `${tokens} prompt token${tokens === 1 ? '' : 's'} · ${formatMs(ms)}`;
  const on = $('predict-backend');
  const said = computedOn(reference, quantized, backendLabel(device), device?.forward, ms);
  on.dataset.backend = said.backend;
  on.dataset.referenceBackend = reference;
  on.dataset.quantizedBackend = quantized ?? '';
  renderSegments(on, said.segments);
  on.hidden = false;
}

async function evaluateNow(eng: Engine): Promise<EvalMetrics | null> {
  const panel = $('metrics');
  panel.dataset.state = 'running';
  metricsProgress.show('');
  status.set('busy', 'evaluating…');
  try {
    const call = eng.call(
      'evaluate',
      { maxTokens: state.evalTokens, window: state.evalTokens, text: '' },
      { onProgress: (_stage, done, total) => metricsProgress.update('', '', total > 0 ? done / total : null) },
    );
    runningEvaluation = { eng, id: call.id };
    const m = await call.result;
    if (eng !== engine) return null;
    hide('metrics-error');
    renderMetrics(m);
    return m;
  } catch (e) {
    // Cancelled by a newer change: its own evaluation follows, nothing to report.
    if (eng !== engine || refresher.superseded) return null;
    panel.dataset.state = 'error';
    showNotice('metrics-error', null, (e as Error).message);
    return null;
  } finally {
    runningEvaluation = null;
    metricsProgress.hide();
  }
}

function renderMetrics(m: EvalMetrics): void {
  setFact('metric-kl', m.kl, formatMetric(m.kl));
  setFact('metric-pdkl', m.pd_kl, formatMetric(m.pd_kl));
  setFact('metric-top1', m.top1_agreement, `${(m.top1_agreement * 100).toFixed(1)}%`);
  setFact('metric-ppl', m.perplexity, formatMetric(m.perplexity));
  setFact('metric-ref-ppl', m.reference_perplexity, formatMetric(m.reference_perplexity));
  setFact('metric-qid', m.qid, formatMetric(m.qid));
  for (const id of ['metric-ppl', 'metric-ref-ppl']) $(id).title = '';
  layerChart.set(m.layers);
  const panel = $('metrics');
  panel.dataset.state = 'done';
  panel.dataset.exact = 'false';
  $('metrics-note').textContent = `Measured on ${m.tokens} tokens in ${formatMs(m.ms)}.`;
  panel.dataset.run = String(Number(panel.dataset.run ?? '0') + 1);
}

/**
 * Shows (and records) the exact metrics of the model as loaded, once per model state: more or
 * fewer evaluation tokens change nothing about an exact comparison.
 */
function showExactMetrics(ms: number): void {
  const key = JSON.stringify(engineKey());
  if (identityShownFor === key) return;
  identityShownFor = key;
  renderIdentityMetrics();
  recordHistory(
    {
      tokens: 0,
      positions: 0,
      kl: 0,
      pd_kl: 0,
      top1_agreement: 1,
      perplexity: NaN,
      reference_perplexity: NaN,
      qid: 0,
      layers: [],
      ms: 0,
    },
    ms,
  );
}

/** The model under study is the model as loaded: no recipe, runtime quantization or intervention. */
function modelIsAsLoaded(): boolean {
  return (
    engineConfig.recipe === recipeJson({ default: 'keep', rules: [] }) &&
    engineConfig.runtime === JSON.stringify(defaultState().runtime) &&
    engineConfig.intervention === ''
  );
}

function renderIdentityMetrics(): void {
  setFact('metric-kl', 0, '0');
  setFact('metric-pdkl', 0, '0');
  setFact('metric-top1', 1, '100%');
  setFact('metric-qid', 0, '0');
  for (const id of ['metric-ppl', 'metric-ref-ppl']) {
    setFact(id, NaN, '–');
    $(id).title = 'Press Measure to run the evaluation text through the model';
  }
  layerChart.clear();
  const panel = $('metrics');
  panel.dataset.state = 'done';
  panel.dataset.exact = 'true';
  panel.dataset.run = String(Number(panel.dataset.run ?? '0') + 1);
  $('metrics-note').textContent =
    'Nothing is quantized: the model is the reference, so KL is 0 and top-1 agreement 100% by definition. Measure runs the evaluation text anyway (perplexity).';
}

function recordHistory(m: EvalMetrics, ms: number): void {
  historyEntries.push({
    run: historyEntries.length + 1,
    time: new Date().toISOString(),
    model: summary?.name || baseName(summary?.source ?? state.model),
    weights:
      state.recipeMode === 'json' ? state.recipeText.replace(/\s+/g, ' ') : describeRecipe(buildRecipe(state.weights)),
    runtime: caps?.runtime ? runtimeLabel(state.runtime) : 'n/a',
    intervention: state.intervention || 'none',
    bitsPerWeight: lastApplied?.bitsPerWeight ?? NaN,
    bytes: lastApplied?.bytes ?? NaN,
    tokens: m.tokens,
    kl: m.kl,
    pdKl: m.pd_kl,
    top1: m.top1_agreement,
    perplexity: m.perplexity,
    referencePerplexity: m.reference_perplexity,
    qid: m.qid,
    ms,
    link: shareLink(),
  });
  renderHistory();
}

/** The scheme a matrix holds now ("keep": as loaded), or null before any recipe was applied. */
function schemeOf(tensor: string): string | null {
  return lastApplied?.tensors.find((t) => t.name === tensor)?.scheme ?? null;
}

async function refresh(): Promise<void> {
  const eng = engine;
  if (!eng || !summary) return;
  const started = changedAt ?? performance.now();
  const timings: string[] = [];
  await syncEngine(eng, timings);
  if (refresher.superseded || eng !== engine) return;
  if (promptKey() !== predictKey) {
    const key = promptKey();
    const predictMs = await predictNow(eng);
    if (eng === engine) predictKey = key;
    timings.push(`prediction ${formatMs(predictMs)}`);
  }
  if (refresher.superseded || eng !== engine) return;
  if (gpuReady() && configKey() !== metricsKey && !forceMetrics && modelIsAsLoaded()) {
    // Nothing changes the model: it is the reference, so the comparison is exact without
    // running it (which takes a minute on a software adapter).
    metricsKey = configKey();
    showExactMetrics(performance.now() - started);
  } else if (gpuReady() && (configKey() !== metricsKey || forceMetrics)) {
    forceMetrics = false;
    const m = await evaluateNow(eng);
    if (m && eng === engine) {
      metricsKey = configKey();
      identityShownFor = null;
      const total = performance.now() - started;
      timings.push(`metrics ${formatMs(m.ms)}`);
      recordHistory(m, total);
      $('apply-timing').dataset.changeToMetricsMs = String(Math.round(total));
    }
  }
  if (refresher.superseded || eng !== engine) return;
  if (state.outliers && views && promptKey() !== viewsKey) {
    status.set('busy', 'drawing the outlier views…');
    const t0 = performance.now();
    const key = promptKey();
    try {
      // The scheme per tensor, so a tensor picked in the views shows its own grid; the model key
      // lets the views keep what depends only on the weights as loaded.
      await views.update(state.prompt, (tensor) => schemeOf(tensor) ?? 'keep', `${loadedModel}|${summary.bytes}`);
      viewsKey = key;
      hide('outliers-error');
      timings.push(`views ${formatMs(performance.now() - t0)}`);
    } catch (e) {
      showNotice('outliers-error', null, (e as Error).message);
    }
  }
  const total = performance.now() - started;
  changedAt = null;
  $('apply-timing').textContent = `${timings.join(' · ')} — ${formatMs(total)} in all`;
  $('apply-timing').dataset.totalMs = String(Math.round(total));
  status.set('ready', 'ready');
}

// ---------------------------------------------------------------------------------------------
// Loading.

function sourceFor(model: string): { name: string; source: ModelSource } {
  if (model.startsWith('local:'))
    return { name: model.slice(6), source: { kind: 'cached-local', name: model.slice(6) } };
  const url = new URL(model, location.href);
  return { name: baseName(url.pathname), source: { kind: 'url', url: url.href } };
}

async function loadModel(name: string, source: ModelSource, modelKey: string): Promise<void> {
  const seq = ++loadSeq;
  const candidate = new Engine();
  const previous = engine;
  hide('load-error');
  loadProgress.show(`Loading ${name}`);
  status.set('busy', 'loading model…');
  let loaded: Loaded;
  try {
    const capabilities = await candidate.ready;
    loaded = await candidate.run(
      'load',
      { name, source, useGpu: USE_GPU, forward: BACKEND.forward },
      {
        onProgress: (stage, done, total) => {
          if (seq === loadSeq) showLoadProgress(name, stage, done, total);
        },
      },
    );
    if (seq !== loadSeq) {
      candidate.terminate();
      return;
    }
    caps = capabilities;
  } catch (e) {
    candidate.terminate();
    if (seq !== loadSeq) return;
    loadProgress.hide();
    const alive = previous !== null && !previous.dead;
    const kept = alive ? ` The previous model (${$('summary-name').textContent}) is still loaded and working.` : '';
    // The title names the file already; engine errors start with it too ("x.gguf: ...").
    let message = (e as Error).message;
    if (message.startsWith(`${name}: `)) message = message.slice(name.length + 2);
    message = message.charAt(0).toUpperCase() + message.slice(1).replace(/[.\s]*$/, '.');
    showNotice('load-error', `Could not load ${name}`, `${message}${kept}`);
    status.set(alive ? 'ready' : 'error', alive ? 'ready' : 'no model loaded');
    // The link keeps naming the model that is loaded.
    if (loadedModel !== null) {
      state.model = loadedModel;
      writeHash();
    }
    if (!alive && !previous) enableControls(false);
    return;
  }
  previous?.terminate();
  engine = candidate;
  engine.onCrash = onEngineCrash;
  summary = loaded.summary;
  device = loaded.device;
  state.model = modelKey;
  loadedModel = modelKey;
  engineConfig = { recipe: null, runtime: JSON.stringify(defaultState().runtime), intervention: '' };
  lastApplied = null;
  predictKey = metricsKey = viewsKey = identityShownFor = null;
  $('runtime-result').hidden = true;
  generator.reset();
  renderDevice(loaded.device);
  renderSummary(loaded.summary, loaded.bytes, loaded.fromCache);
  showGpuNotice(deviceNotice(loaded.device, !USE_GPU));
  $('engine-version').textContent = caps ? `Engine v${caps.version}.` : '';
  $('summary').dataset.fromCache = String(loaded.fromCache);
  loadProgress.hide();
  fillSchemeControls();
  enableControls(true);
  layerChart.clear();
  mountViews();
  writeHash();
  status.set('ready', `ready · loaded in ${formatMs(loaded.ms)}`);
  void refresher.request();
}

function onEngineCrash(reason: string): void {
  engine = null;
  showNotice('load-error', 'The engine stopped', `${reason}. Reload the page or open the model again.`);
  status.set('error', 'engine crashed');
  enableControls(false);
}

function enableControls(on: boolean): void {
  $('predict-button').toggleAttribute('disabled', !on);
  $('generate-button').toggleAttribute('disabled', !on);
  const quant = on && gpuReady();
  ($('quant-fields') as HTMLFieldSetElement).disabled = !quant;
  const unavailable = $('quant-unavailable');
  if (on && !gpuReady()) {
    showNotice(
      'quant-unavailable',
      null,
      'Re-quantizing needs WebGPU, and this model runs on the CPU: the controls are off. The prediction shows the model as loaded.',
    );
  } else {
    unavailable.hidden = true;
  }
  $('metrics-unavailable').hidden = !(on && !gpuReady());
  $('quantized-column').hidden = on && !gpuReady();
  $('generate-quantized-column').hidden = on && !gpuReady();
  $('outliers-toggle').toggleAttribute('disabled', !(on && gpuReady()));
  $('metrics-run').toggleAttribute('disabled', !(on && gpuReady()));
}

async function openFiles(files: File[]): Promise<void> {
  let picked;
  try {
    picked = classifyModelFiles(files);
  } catch (e) {
    showNotice('load-error', 'Could not open those files', `${(e as Error).message}.`);
    return;
  }
  if (picked.kind === 'gguf') {
    await loadModel(picked.name, { kind: 'gguf-file', file: picked.file }, `local:${picked.name}`);
  } else {
    const { weights, config, tokenizer } = picked;
    await loadModel(picked.name, { kind: 'safetensors-files', weights, config, tokenizer }, `local:${picked.name}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Quantizer controls.

function schemeOptions(select: HTMLSelectElement, emptyLabel: string, includeKeep: boolean): void {
  const current = select.value;
  select.replaceChildren();
  const add = (value: string, label: string, title = '') => {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = label;
    if (title) o.title = title;
    select.append(o);
  };
  add('', emptyLabel);
  if (includeKeep) add('keep', 'as loaded');
  for (const s of caps?.schemes ?? []) {
    add(
      s.name,
      s.gpu ? s.name : `${s.name} (CPU)`,
      s.gpu ? 'quantized on the GPU' : 'quantized by the CPU reference, then uploaded: slower',
    );
  }
  select.value = current;
}

function groupRow(index: number): HTMLElement {
  const group = state.weights.groups[index];
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
    input.placeholder = `0-${(summary?.config.n_layers ?? 1) - 1}`;
    input.value = group.layers;
    input.dataset.testid = `group-layers-${index}`;
    input.size = 7;
    input.addEventListener('change', () => {
      state.weights.groups[index].layers = input.value.trim();
      settingsChanged();
    });
    label.append(input);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'button secondary small';
    remove.textContent = 'Remove';
    remove.dataset.testid = `group-remove-${index}`;
    remove.addEventListener('click', () => {
      state.weights.groups.splice(index, 1);
      renderGroups();
      settingsChanged();
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
    schemeOptions(select, index === 0 ? 'as loaded' : '(unchanged)', index > 0);
    select.value = group.schemes[cls] ?? '';
    select.addEventListener('change', () => {
      state.weights.groups[index].schemes[cls as BlockClass] = select.value;
      syncAllWeightsSelect();
      settingsChanged();
    });
    label.append(select);
    grid.append(label);
  }
  row.append(grid);
  return row;
}

function renderGroups(): void {
  const root = $('layer-groups');
  root.replaceChildren(...state.weights.groups.map((_, i) => groupRow(i)));
  syncAllWeightsSelect();
}

function syncAllWeightsSelect(): void {
  const all = $<HTMLSelectElement>('all-weights');
  const u = uniformScheme(state.weights);
  all.value = u === null ? '(mixed)' : u === 'keep' ? '' : u;
}

function fillSchemeControls(): void {
  const all = $<HTMLSelectElement>('all-weights');
  schemeOptions(all, 'as loaded', false);
  const mixed = document.createElement('option');
  mixed.value = '(mixed)';
  mixed.textContent = '(mixed)';
  mixed.disabled = true;
  all.append(mixed);
  for (const id of ['scheme-embeddings', 'scheme-output']) schemeOptions($<HTMLSelectElement>(id), 'as loaded', false);
  $<HTMLSelectElement>('scheme-embeddings').value = state.weights.embeddings;
  $<HTMLSelectElement>('scheme-output').value = state.weights.output;
  const hasOutput = summary?.tensors.some((t) => t.name === 'output.weight') ?? true;
  $<HTMLSelectElement>('scheme-output').disabled = !hasOutput;
  $<HTMLSelectElement>('scheme-output').title = hasOutput
    ? ''
    : 'This model has no output.weight: its head is the embedding matrix (tied).';
  renderGroups();
  renderRuntimeControls();
  renderInterventionControls();
  renderModeControls();
  renderRecipePreview();
}

function renderModeControls(): void {
  const json = state.recipeMode === 'json';
  $<HTMLInputElement>('recipe-mode-json').checked = json;
  $<HTMLInputElement>('recipe-mode-controls').checked = !json;
  $('weight-controls').hidden = json;
  $('recipe-editor').hidden = !json;
  const text = $<HTMLTextAreaElement>('recipe-json');
  if (json && text.value !== state.recipeText) text.value = state.recipeText;
}

function renderRecipePreview(): void {
  let text: string;
  try {
    const r = desiredRecipe();
    text = r.startsWith('{') ? JSON.stringify(JSON.parse(r), null, 2) : r;
  } catch (e) {
    text = `(${(e as Error).message})`;
  }
  $('recipe-preview').textContent = text;
}

const RUNTIME_FIELDS: {
  key: keyof Omit<RuntimeQuantConfig, 'calibTokens'>;
  list: keyof NonNullable<Capabilities['runtime']>;
}[] = [
  { key: 'a', list: 'activations' },
  { key: 'aDown', list: 'activations' },
  { key: 'kv', list: 'kv' },
  { key: 'attn', list: 'attention' },
  { key: 'method', list: 'methods' },
];

function renderRuntimeControls(): void {
  const runtime = caps?.runtime ?? null;
  $('runtime').hidden = runtime === null;
  $('runtime-missing').hidden = runtime !== null;
  if (!runtime) return;
  for (const { key, list } of RUNTIME_FIELDS) {
    const select = $<HTMLSelectElement>(`runtime-${key}`);
    select.replaceChildren();
    for (const name of ['', ...runtime[list]]) {
      const o = document.createElement('option');
      o.value = name;
      o.textContent = name === '' ? 'none' : name;
      select.append(o);
    }
    select.value = state.runtime[key] ?? '';
  }
  $<HTMLInputElement>('runtime-calib').value = String(state.runtime.calibTokens);
}

function renderInterventionControls(): void {
  const select = $<HTMLSelectElement>('intervention');
  const clip = /^clip:(.+)$/.exec(state.intervention);
  select.value = clip ? 'clip' : state.intervention;
  if (clip) $<HTMLInputElement>('intervention-clip').value = clip[1];
  $('intervention-clip-label').hidden = !clip;
}

function readIntervention(): string {
  const v = $<HTMLSelectElement>('intervention').value;
  if (v !== 'clip') return v;
  const p = Number($<HTMLInputElement>('intervention-clip').value);
  return `clip:${Number.isFinite(p) ? p : 99.9}`;
}

function wireQuantizerControls(): void {
  $<HTMLSelectElement>('all-weights').addEventListener('change', (e) => {
    const v = (e.target as HTMLSelectElement).value;
    if (v === '(mixed)') return;
    state.weights = uniformControls(v);
    renderGroups();
    $<HTMLSelectElement>('scheme-embeddings').value = state.weights.embeddings;
    $<HTMLSelectElement>('scheme-output').value = state.weights.output;
    settingsChanged();
  });
  $('add-group').addEventListener('click', () => {
    const n = summary?.config.n_layers ?? 1;
    state.weights.groups.push({ layers: `0-${Math.min(n - 1, 3)}`, schemes: {} });
    renderGroups();
    settingsChanged();
  });
  $<HTMLSelectElement>('scheme-embeddings').addEventListener('change', (e) => {
    state.weights.embeddings = (e.target as HTMLSelectElement).value;
    syncAllWeightsSelect();
    settingsChanged();
  });
  $<HTMLSelectElement>('scheme-output').addEventListener('change', (e) => {
    state.weights.output = (e.target as HTMLSelectElement).value;
    syncAllWeightsSelect();
    settingsChanged();
  });
  for (const id of ['recipe-mode-controls', 'recipe-mode-json']) {
    $(id).addEventListener('change', () => {
      state.recipeMode = $<HTMLInputElement>('recipe-mode-json').checked ? 'json' : 'controls';
      if (state.recipeMode === 'json' && state.recipeText.trim() === '') {
        state.recipeText = JSON.stringify(buildRecipe(state.weights), null, 2);
      }
      renderModeControls();
      settingsChanged();
    });
  }
  $('recipe-apply').addEventListener('click', () => {
    state.recipeText = $<HTMLTextAreaElement>('recipe-json').value;
    settingsChanged();
  });
  $('recipe-from-controls').addEventListener('click', () => {
    state.recipeText = JSON.stringify(buildRecipe(state.weights), null, 2);
    $<HTMLTextAreaElement>('recipe-json').value = state.recipeText;
    settingsChanged();
  });
  for (const { key } of RUNTIME_FIELDS) {
    $<HTMLSelectElement>(`runtime-${key}`).addEventListener('change', (e) => {
      const v = (e.target as HTMLSelectElement).value;
      state.runtime = { ...state.runtime, [key]: v === '' ? null : v };
      settingsChanged();
    });
  }
  $<HTMLInputElement>('runtime-calib').addEventListener('change', (e) => {
    const n = Math.round(Number((e.target as HTMLInputElement).value));
    state.runtime = { ...state.runtime, calibTokens: Number.isFinite(n) ? Math.min(4096, Math.max(2, n)) : 64 };
    (e.target as HTMLInputElement).value = String(state.runtime.calibTokens);
    settingsChanged();
  });
  const onIntervention = () => {
    state.intervention = readIntervention();
    $('intervention-clip-label').hidden = !state.intervention.startsWith('clip:');
    settingsChanged();
  };
  $('intervention').addEventListener('change', onIntervention);
  $('intervention-clip').addEventListener('change', onIntervention);
  $('quant-error')
    .querySelector('.notice-close')
    ?.addEventListener('click', () => hide('quant-error'));
}

// ---------------------------------------------------------------------------------------------
// Metrics panel: evaluation size, chart export, history table.

function wireMetrics(): void {
  const select = $<HTMLSelectElement>('eval-tokens');
  const choices = new Set<number>([...EVAL_TOKEN_CHOICES, state.evalTokens]);
  for (const n of [...choices].sort((a, b) => a - b)) {
    const o = document.createElement('option');
    o.value = String(n);
    o.textContent = String(n);
    select.append(o);
  }
  select.value = String(state.evalTokens);
  select.addEventListener('change', () => {
    state.evalTokens = Number(select.value);
    settingsChanged();
  });
  $('metrics-run').addEventListener('click', () => {
    forceMetrics = true;
    metricsKey = null;
    changedAt = performance.now();
    void refresher.request();
  });
  layerChart = new LayerErrorChart($<HTMLCanvasElement>('layer-chart'), $('layer-chart-tooltip'));
  $('layer-chart-png').addEventListener('click', () => {
    void exportCanvasPng(layerChart.canvas, 'quantscope-layer-error.png');
  });
  $('history-csv').addEventListener('click', () =>
    downloadBlob(new Blob([toCsv(sortedHistory())], { type: 'text/csv' }), 'quantscope-history.csv'),
  );
  $('history-json').addEventListener('click', () =>
    downloadBlob(new Blob([toJson(sortedHistory())], { type: 'application/json' }), 'quantscope-history.json'),
  );
  renderHistory();
}

const sortedHistory = () => sortEntries(historyEntries, historySort.key, historySort.direction);

function renderHistory(): void {
  const table = $('history');
  const headRow = table.querySelector('thead tr');
  const body = table.querySelector('tbody');
  if (!headRow || !body) return;
  headRow.replaceChildren(
    ...COLUMNS.map((c) => {
      const th = document.createElement('th');
      th.scope = 'col';
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.key = c.key;
      b.textContent = c.label;
      const sorted = historySort.key === c.key;
      th.setAttribute('aria-sort', sorted ? (historySort.direction === 'asc' ? 'ascending' : 'descending') : 'none');
      if (sorted) b.append(historySort.direction === 'asc' ? ' ▲' : ' ▼');
      b.addEventListener('click', () => {
        historySort = { key: c.key, direction: sorted && historySort.direction === 'asc' ? 'desc' : 'asc' };
        renderHistory();
      });
      th.append(b);
      if (c.numeric) th.classList.add('num');
      return th;
    }),
  );
  body.replaceChildren(...(historyEntries.length === 0 ? [emptyHistoryRow()] : sortedHistory().map(historyRow)));
  $('history-csv').toggleAttribute('disabled', historyEntries.length === 0);
  $('history-json').toggleAttribute('disabled', historyEntries.length === 0);
}

function historyRow(e: HistoryEntry): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.run = String(e.run);
  for (const c of COLUMNS) {
    const td = document.createElement('td');
    const v = e[c.key];
    td.dataset.key = c.key;
    td.dataset.value = String(v);
    td.textContent = typeof v === 'number' && c.format ? c.format(v) : String(v);
    if (c.numeric) td.classList.add('num');
    if (c.key === 'weights') td.title = String(v);
    tr.append(td);
  }
  tr.title = 'Click to restore this configuration';
  tr.addEventListener('click', () => applyDecodedState(decodeState(new URL(e.link).hash).state, false));
  return tr;
}

function emptyHistoryRow(): HTMLTableRowElement {
  const td = document.createElement('td');
  td.colSpan = COLUMNS.length;
  td.className = 'empty';
  td.textContent = 'Each configuration you try is listed here, with its metrics.';
  const tr = document.createElement('tr');
  tr.append(td);
  return tr;
}

// ---------------------------------------------------------------------------------------------
// Outlier views.

function matrixNames(): string[] {
  return (summary?.tensors ?? []).filter((t) => t.shape.length >= 2 && tensorClass(t.name) !== null).map((t) => t.name);
}

const viewSource: ViewDataSource = {
  probe: (prompt, asLoaded, layer, point) => requireEngine().run('probe', { prompt, asLoaded, layer, point }),
  attentionMaps: (prompt, layer, asLoaded) => requireEngine().run('attentionMaps', { prompt, layer, asLoaded }),
  // The histogram shows the grid of the scheme the tensor holds now: `update` passes the scheme of
  // the tensor chosen then, and the user may pick another tensor, of another class, since.
  weightStats: (tensor, scheme) => requireEngine().run('weightStats', { tensor, scheme: schemeOf(tensor) ?? scheme }),
  outlierReport: (prompt, rule) => requireEngine().run('outlierReport', { prompt, rule }),
  tensorNames: () => matrixNames(),
};

function requireEngine(): Engine {
  if (!engine) throw new Error('no model is loaded');
  return engine;
}

function mountViews(): void {
  const root = $('outliers-root');
  views = null;
  root.replaceChildren();
  if (!gpuReady()) return;
  try {
    views = mountOutlierViews(root, viewSource, state.view as Partial<ViewState>, (s) => {
      state.view = { ...s };
      writeHash();
    });
  } catch (e) {
    showNotice('outliers-error', null, (e as Error).message);
  }
}

function setOutliersOpen(open: boolean): void {
  state.outliers = open;
  const card = $('outliers');
  card.dataset.open = String(open);
  $('outliers-root').hidden = !open;
  const toggle = $('outliers-toggle');
  toggle.setAttribute('aria-expanded', String(open));
  toggle.textContent = open ? 'Hide the outlier views' : 'Show the outlier views';
}

// ---------------------------------------------------------------------------------------------
// Generation, side by side: the reference streams first, then the quantized model.

const generator = {
  running: null as { engine: Engine; id: number } | null,
  stopped: false,

  outputs(): HTMLElement[] {
    return [$('generate-reference'), $('generate-quantized')];
  },

  reset(): void {
    for (const out of this.outputs()) {
      out.querySelector('.generated-prompt')!.textContent = '';
      out.querySelector('.generated-text')!.textContent = '';
      out.dataset.state = 'idle';
      for (const key of ['stop', 'text', 'pieces', 'tokens', 'tokensPerSecond', 'backend']) delete out.dataset[key];
    }
    $('generate-stats').textContent = '';
    hide('generate-error');
  },

  params() {
    const num = (id: string, fallback: number) => {
      const el = $<HTMLInputElement>(id);
      const v = Number(el.value);
      return el.value.trim() === '' || !Number.isFinite(v) ? fallback : v;
    };
    return {
      prompt: state.prompt,
      maxTokens: Math.max(1, Math.floor(num('generate-max-tokens', 24))),
      temperature: Math.max(0, num('generate-temperature', 0)),
      topP: num('generate-top-p', 1),
      seed: Math.max(0, Math.floor(num('generate-seed', 0))),
    };
  },

  async run(): Promise<void> {
    const current = engine;
    if (!current || this.running) return;
    const params = this.params();
    this.reset();
    this.stopped = false;
    $('generate-button').toggleAttribute('disabled', true);
    $('stop-button').hidden = false;
    $('stop-button').toggleAttribute('disabled', false);
    const sides: { out: HTMLElement; asLoaded: boolean }[] = [{ out: this.outputs()[0], asLoaded: true }];
    if (gpuReady()) sides.push({ out: this.outputs()[1], asLoaded: false });
    const stats: string[] = [];
    try {
      for (const { out, asLoaded } of sides) {
        if (this.stopped) break;
        const textEl = out.querySelector('.generated-text')!;
        out.querySelector('.generated-prompt')!.textContent = params.prompt;
        out.dataset.state = 'running';
        let pieces = 0;
        const t0 = performance.now();
        const call = current.call(
          'generate',
          { ...params, asLoaded },
          {
            onToken: (piece, n) => {
              if (current !== engine) return;
              if (piece) {
                textEl.append(piece);
                pieces += 1;
                out.dataset.pieces = String(pieces);
              }
              $('generate-stats').textContent =
                `${asLoaded ? 'as loaded' : 'quantized'}: ${n} token${n === 1 ? '' : 's'} · ${((performance.now() - t0) / 1000).toFixed(1)} s`;
            },
          },
        );
        this.running = { engine: current, id: call.id };
        const g = await call.result;
        if (current !== engine) return;
        // The pieces add up to the whole decode by construction; trust the whole if they do not.
        if (textEl.textContent !== g.text) textEl.textContent = g.text;
        out.dataset.text = g.text;
        out.dataset.state = 'done';
        out.dataset.stop = g.stop;
        out.dataset.tokens = String(g.tokens.length);
        out.dataset.tokensPerSecond = String(g.tokensPerSecond);
        out.dataset.backend = g.backend;
        const why = { 'max-tokens': 'max tokens', eos: 'end of text', stopped: 'stopped' }[g.stop] ?? g.stop;
        stats.push(
          `${asLoaded ? 'as loaded' : 'quantized'}: ${g.tokens.length} tokens, ${g.tokensPerSecond.toFixed(1)} tokens/s, ${why}`,
        );
        $('generate-stats').textContent = stats.join(' · ');
      }
    } catch (e) {
      if (current !== engine) return;
      for (const out of this.outputs()) if (out.dataset.state === 'running') out.dataset.state = 'error';
      showNotice('generate-error', null, (e as Error).message);
    } finally {
      this.running = null;
      $('stop-button').hidden = true;
      $('generate-button').toggleAttribute('disabled', !engine);
    }
  },

  stop(): void {
    this.stopped = true;
    $('stop-button').toggleAttribute('disabled', true);
    if (this.running) this.running.engine.stop(this.running.id);
  },
};

// ---------------------------------------------------------------------------------------------
// Wiring.

/** Puts a decoded state on the page (a link, a history row) and recomputes; reloads the model if it differs. */
function applyDecodedState(next: AppState, initial: boolean): void {
  const modelChanged = next.model !== state.model || initial;
  state = next;
  $<HTMLTextAreaElement>('prompt').value = state.prompt;
  $<HTMLSelectElement>('eval-tokens').value = String(state.evalTokens);
  setOutliersOpen(state.outliers);
  if (modelChanged) {
    const { name, source } = sourceFor(state.model);
    void loadModel(name, source, state.model);
    return;
  }
  if (caps) fillSchemeControls();
  if (views) void views.setState(state.view as Partial<ViewState>);
  settingsChanged();
}

async function checkBrowserGpu(): Promise<void> {
  if (!USE_GPU) return;
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) {
    showGpuNotice(browserGpuNotice(false, null));
    return;
  }
  try {
    const adapter = await gpu.requestAdapter();
    showGpuNotice(browserGpuNotice(true, adapter !== null));
  } catch {
    showGpuNotice(browserGpuNotice(true, false));
  }
}

function init(): void {
  const promptEl = $<HTMLTextAreaElement>('prompt');
  let typingTimer: ReturnType<typeof setTimeout> | undefined;
  const promptChanged = (now: boolean) => {
    clearTimeout(typingTimer);
    const go = () => {
      state.prompt = promptEl.value;
      writeHash();
      void refresher.request();
    };
    if (now) go();
    else typingTimer = setTimeout(go, TYPING_DEBOUNCE_MS);
  };
  $('prompt-form').addEventListener('submit', (e) => {
    e.preventDefault();
    promptChanged(true);
  });
  promptEl.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      promptChanged(true);
    }
  });
  promptEl.addEventListener('input', () => promptChanged(false));

  const fileInput = $<HTMLInputElement>('file-input');
  fileInput.addEventListener('change', () => {
    const files = [...(fileInput.files ?? [])];
    fileInput.value = ''; // picking the same file again must fire `change` again
    if (files.length) void openFiles(files);
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
    if (files.length) void openFiles(files);
  });
  $('load-error')
    .querySelector('.notice-close')
    ?.addEventListener('click', () => hide('load-error'));
  $('url-notice')
    .querySelector('.notice-close')
    ?.addEventListener('click', () => hide('url-notice'));

  $('generate-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void generator.run();
  });
  $('stop-button').addEventListener('click', () => generator.stop());

  $('share-button').addEventListener('click', async () => {
    const link = shareLink();
    const button = $('share-button');
    button.dataset.link = link;
    try {
      await navigator.clipboard.writeText(link);
      button.textContent = 'Link copied';
    } catch {
      // No clipboard permission (an insecure origin, a headless browser): the address bar has it.
      button.textContent = 'Link is in the address bar';
    }
    setTimeout(() => (button.textContent = 'Copy link'), 2000);
  });

  $('outliers-toggle').addEventListener('click', () => {
    setOutliersOpen(!state.outliers);
    writeHash();
    if (state.outliers) void refresher.request();
  });

  wireQuantizerControls();
  wireMetrics();
  enableControls(false);

  window.addEventListener('hashchange', () => {
    if (location.hash.replace(/^#/, '') === encodeState(state)) return;
    const decoded = decodeState(location.hash);
    showUrlProblems(decoded.problems);
    applyDecodedState(decoded.state, false);
  });

  const decoded = decodeState(location.hash);
  showUrlProblems(decoded.problems);
  void checkBrowserGpu();
  applyDecodedState(decoded.state, true);
}

function showUrlProblems(problems: string[]): void {
  if (problems.length === 0) hide('url-notice');
  else showNotice('url-notice', null, `${problems.join('; ')}.`);
}

init();
