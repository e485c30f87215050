// The playground page: loads a model into an engine (a Web Worker running the wasm, see
// worker.js), shows its summary and the device it runs on (WebGPU, or the CPU when WebGPU is
// unavailable), the top next tokens for the prompt as bars, and generates text token by token.
//
// ?backend=cpu skips WebGPU (the CPU reference runs everything); ?model=URL loads another file.
//
// One engine = one worker = one model. Loading a file starts a *new* engine; only once it has
// loaded does it replace the current one, so a bad file (or a crash while loading it) leaves the
// model that was already there working.

const DEFAULT_MODEL = 'models/SmolLM2-135M-Instruct.Q4_1.gguf';
const TOP_K = 10;
const TYPING_DEBOUNCE_MS = 350;
const PARAMS = new URLSearchParams(location.search);
const USE_GPU = PARAMS.get('backend') !== 'cpu';

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

// ---------------------------------------------------------------------------------------------
// Engine: promise-based requests to one worker.

class Engine {
  constructor() {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.nextId = 1;
    /** @type {Map<number, {resolve: Function, reject: Function, onEvent?: Function}>} */
    this.pending = new Map();
    this.dead = null; // the reason, once the worker has crashed
    this.version = null;
    this.onCrash = null;
    this.worker.onmessage = (event) => this.#receive(event.data);
    this.worker.onerror = (event) => {
      // A module worker that fails to import (pkg/ missing, syntax error) lands here.
      event.preventDefault();
      this.#die(`the engine could not start: ${event.message || 'worker script failed to load'} ` +
                '(is www/pkg built? run scripts/build-web)');
    };
  }

  #receive(msg) {
    if (msg.type === 'ready') { this.version = msg.version; return; }
    const request = this.pending.get(msg.id);
    if (msg.type === 'error' && msg.fatal) { this.#die(msg.message); return; }
    if (!request) return;
    switch (msg.type) {
      case 'progress': case 'token': request.onEvent?.(msg); break;
      case 'error': this.pending.delete(msg.id); request.reject(new Error(msg.message)); break;
      default: this.pending.delete(msg.id); request.resolve(msg); break;
    }
  }

  #die(reason) {
    if (this.dead) return;
    this.dead = reason;
    for (const { reject } of this.pending.values()) reject(new Error(reason));
    this.pending.clear();
    this.worker.terminate();
    this.onCrash?.(reason);
  }

  /** Sends a request; `onEvent` gets its 'progress' and 'token' messages. */
  request(message, onEvent) {
    if (this.dead) return Promise.reject(new Error(this.dead));
    const id = this.nextId++;
    this.lastId = id;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onEvent });
      this.worker.postMessage({ ...message, id });
    });
  }

  load(name, source, useGpu, onProgress) { return this.request({ type: 'load', name, source, useGpu }, onProgress); }
  predict(prompt, topK) { return this.request({ type: 'predict', prompt, topK }); }

  /** Streams tokens to `onToken({piece, count})`; resolves with {generation}. */
  generate(params, onToken) {
    const reply = this.request({ type: 'generate', ...params }, onToken);
    const id = this.lastId;
    this.generating = id;
    reply.finally(() => { if (this.generating === id) this.generating = null; }).catch(() => {});
    return reply;
  }

  /** Asks the running generation to stop after its current token. */
  stopGenerating() {
    if (this.generating != null && !this.dead) this.worker.postMessage({ type: 'stop', id: 0, target: this.generating });
  }

  /** Stops the worker. Requests still in flight are rejected, so nobody waits forever. */
  terminate() {
    this.dead ??= 'this engine was replaced';
    this.onCrash = null;
    this.worker.terminate();
    for (const { reject } of this.pending.values()) reject(new Error(this.dead));
    this.pending.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Formatting.

const nf = new Intl.NumberFormat('en-US');

function formatBytes(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

function formatCount(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

function formatMs(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

function formatProb(p) {
  const pct = p * 100;
  if (pct >= 10) return `${pct.toFixed(1)}%`;
  if (pct >= 0.1) return `${pct.toFixed(2)}%`;
  return `${pct.toExponential(1)}%`;
}

/** The part of a URL or path after the last slash. */
const baseName = (s) => decodeURIComponent(s.split(/[\\/]/).pop() || s);

/**
 * Renders token text so that whitespace and control characters are visible: a space is "␣",
 * a newline "↵", a tab "→", other control characters \xNN; the empty token is "∅". Visible
 * marks get class "ws" so they read as marks, not as text.
 */
function tokenNode(text) {
  const span = document.createElement('span');
  span.className = 'token-text';
  if (text.length === 0) {
    span.append(mark('∅'));
    return span;
  }
  let run = '';
  const flush = () => { if (run) { span.append(run); run = ''; } };
  for (const ch of text) {
    const code = ch.codePointAt(0);
    let shown = null;
    if (ch === ' ') shown = '␣';
    else if (ch === '\n') shown = '↵';
    else if (ch === '\t') shown = '→';
    else if (ch === '\r') shown = '␍';
    else if (code < 0x20 || code === 0x7f) shown = `\\x${code.toString(16).padStart(2, '0')}`;
    else if (ch === '\ufffd') shown = '�';
    if (shown === null) run += ch;
    else { flush(); span.append(mark(shown)); }
  }
  flush();
  return span;
}

function mark(s) {
  const m = document.createElement('span');
  m.className = 'ws';
  m.textContent = s;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Views.

const status = {
  set(state, text) {
    const el = $('status');
    el.dataset.state = state;
    el.textContent = text;
  },
};

const progressView = {
  show(title) {
    $('load-progress').hidden = false;
    this.update(title, '', 0);
  },
  update(title, detail, fraction) {
    $('load-stage').textContent = title;
    $('load-detail').textContent = detail;
    const track = $('load-progress').querySelector('.progress-track');
    const fill = track.querySelector('.progress-fill');
    if (fraction == null) {
      track.classList.add('indeterminate');
      track.removeAttribute('aria-valuenow');
      fill.style.width = '';
    } else {
      track.classList.remove('indeterminate');
      const pct = Math.max(0, Math.min(100, fraction * 100));
      fill.style.width = `${pct}%`;
      track.setAttribute('aria-valuenow', pct.toFixed(0));
    }
  },
  hide() { $('load-progress').hidden = true; },
};

const STAGE_TITLES = {
  webgpu: 'Starting WebGPU for',
  upload: 'Uploading to the GPU:',
  download: 'Downloading',
  read: 'Reading file',
  parse: 'Parsing',
  validate: 'Validating',
  tensors: 'Reading tensors',
  dequantize: 'Dequantizing',
  tokenizer: 'Building tokenizer',
};

function showProgress(name, { stage, done, total }) {
  const title = `${STAGE_TITLES[stage] ?? stage[0].toUpperCase() + stage.slice(1)} ${name}`;
  if (stage === 'download' || stage === 'read') {
    const detail = total > 0 ? `${formatBytes(done)} of ${formatBytes(total)}` : formatBytes(done);
    progressView.update(title, detail, total > 0 ? done / total : null);
  } else if (total > 1) {
    const detail = total >= 10000 ? `${Math.floor((done / total) * 100)}%` : `${nf.format(done)} of ${nf.format(total)}`;
    progressView.update(title, detail, done / total);
  } else {
    progressView.update(title, '', null);
  }
}

const errorView = {
  show(testid, title, body) {
    const el = $(testid);
    if (title != null) el.querySelector('.notice-title').textContent = title;
    el.querySelector('.notice-body').textContent = body;
    el.hidden = false;
  },
  hide(testid) { $(testid).hidden = true; },
};

function setFact(testid, value, shown = value) {
  const el = $(testid);
  el.dataset.value = String(value);
  el.textContent = typeof shown === 'number' ? nf.format(shown) : shown;
}

function renderSummary(summary, fileBytes) {
  const c = summary.config ?? {};
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
  setFact('summary-params', summary.parameters, `${formatCount(summary.parameters)}`);
  const bpw = summary.parameters > 0 ? (summary.bytes * 8) / summary.parameters : 0;
  setFact('summary-size', summary.bytes, formatBytes(summary.bytes));
  setFact('summary-bpw', bpw, bpw.toFixed(2));

  const extra = [];
  if (c.rope_base != null) extra.push(`RoPE base ${nf.format(c.rope_base)}`);
  if (c.rope_layout != null) extra.push(`RoPE ${c.rope_layout}`);
  if (c.rms_eps != null) extra.push(`RMS ε ${Number(c.rms_eps).toExponential(0)}`);
  if (c.qkv_bias) extra.push('QKV bias');
  if (c.tied_embeddings != null) extra.push(c.tied_embeddings ? 'tied embeddings' : 'separate output head');
  if (fileBytes != null) extra.push(`file ${formatBytes(fileBytes)}`);
  $('summary-extra').textContent = extra.join(' · ');

  // Tensor types: count and bytes per dtype, largest share first.
  const byType = new Map();
  for (const t of summary.tensors ?? []) {
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

/** The adapter's name as well as the browser tells it (Chromium often leaves it blank). */
function adapterName(device) {
  const a = device.adapter ?? {};
  const info = device.adapterInfo ?? {};
  const vendorArch = [info.vendor, info.architecture].filter(Boolean).join(' ');
  return a.name || info.description || vendorArch || 'unnamed adapter';
}

/** A short name for "computed on WebGPU (…)": SwiftShader, or the adapter's name. */
function adapterShortName(device) {
  const info = device.adapterInfo ?? {};
  const all = [device.adapter?.name, info.description, info.architecture, info.vendor].filter(Boolean).join(' ');
  if (/swiftshader/i.test(all)) return 'SwiftShader';
  return adapterName(device);
}

/** Where predictions run, in words: "WebGPU (SwiftShader)" or "the CPU (WebAssembly)". */
function backendLabel(device) {
  return device?.backend === 'webgpu' ? `WebGPU (${adapterShortName(device)})` : 'the CPU (WebAssembly)';
}

/** @type {object | null} the current engine's deviceInfo() */
let device = null;

function renderDevice(d) {
  device = d;
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
    const facts = [
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
    li.textContent = `${nf.format(a.max_compute_invocations_per_workgroup)} invocations / workgroup`;
    features.append(li);
    unavailable.hidden = true;
    // A software adapter works, but slowly: say so, so nobody reads its speed as the GPU's.
    const software = a.device_type === 'Cpu' || adapterShortName(d) === 'SwiftShader';
    $('device-note').textContent = software
      ? 'This is a software WebGPU adapter (no GPU found): it runs the GPU kernels on the CPU, slowly.'
      : '';
    $('device-note').hidden = !software;
  } else {
    $('device-note').hidden = true;
    $('device-name').textContent = 'WebAssembly on the CPU';
    $('device-name').title = '';
    const body = unavailable.querySelector('.notice-body');
    body.replaceChildren();
    const b = document.createElement('b');
    b.textContent = 'WebGPU unavailable:';
    body.append(b, ` ${d.reason ?? 'unknown reason'} — predictions run on the CPU.`);
    unavailable.hidden = false;
  }
  const t = d.timings ?? {};
  const parts = [];
  if (t.downloadMs != null) parts.push(`read ${formatMs(t.downloadMs)}`);
  if (t.parseMs != null) parts.push(`parse ${formatMs(t.parseMs)}`);
  if (d.backend === 'webgpu') {
    parts.push(`adapter ${formatMs(t.adapterMs)}`);
    parts.push(`upload ${formatMs(t.uploadMs)} (${formatBytes(d.gpuBytes)} on the GPU)`);
  }
  $('device-timings').textContent = parts.join(' · ');
  el.hidden = false;
}

function renderPrediction(prediction, ms) {
  const list = $('top-tokens');
  list.dataset.prompt = prediction.prompt;
  list.dataset.model = prediction.model;
  list.replaceChildren();
  prediction.top.forEach((t, i) => {
    const li = document.createElement('li');
    li.dataset.token = t.token;
    li.dataset.id = String(t.id);
    li.dataset.prob = String(t.prob);
    li.dataset.logit = String(t.logit);
    li.title = `token id ${t.id} · logit ${t.logit.toFixed(3)} · ${JSON.stringify(t.token)}`;

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
  $('tokens-placeholder').hidden = prediction.top.length > 0;
  const n = prediction.tokens.length;
  $('predict-meta').textContent = `${n} prompt token${n === 1 ? '' : 's'} · ${formatMs(prediction.ms ?? ms)}`;
  const on = $('predict-backend');
  on.dataset.backend = prediction.backend;
  on.replaceChildren('Computed on ');
  const b = document.createElement('b');
  b.textContent = prediction.backend === 'webgpu' ? backendLabel(device) : 'the CPU (WebAssembly)';
  on.append(b, ` in ${formatMs(prediction.ms ?? ms)}.`);
  on.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// State and actions.

/** @type {Engine | null} the engine whose model is shown and used for predictions */
let engine = null;
let loadSeq = 0; // a newer load supersedes an older one still in flight

async function loadModel(name, source) {
  const seq = ++loadSeq;
  const candidate = new Engine();
  const previous = engine;
  errorView.hide('load-error');
  progressView.show(`Loading ${name}`);
  status.set('busy', 'loading model…');
  try {
    const reply = await candidate.load(name, source, USE_GPU, (p) => { if (seq === loadSeq) showProgress(name, p); });
    if (seq !== loadSeq) { candidate.terminate(); return; }
    previous?.terminate();
    engine = candidate;
    engine.onCrash = onEngineCrash;
    generator.reset();
    renderDevice(reply.device);
    renderSummary(reply.summary, reply.bytes);
    $('engine-version').textContent = candidate.version ? `Engine v${candidate.version}.` : '';
    progressView.hide();
    status.set('ready', `ready · loaded in ${formatMs(reply.ms)}`);
    $('generate-button').disabled = false;
    predictor.now();
  } catch (e) {
    candidate.terminate();
    if (seq !== loadSeq) return;
    progressView.hide();
    const kept = previous && !previous.dead
      ? ` The previous model (${$('summary-name').textContent}) is still loaded and working.`
      : '';
    // The title names the file already; engine errors start with it too ("x.gguf: ...").
    let message = e.message.startsWith(`${name}: `) ? e.message.slice(name.length + 2) : e.message;
    message = message.charAt(0).toUpperCase() + message.slice(1).replace(/[.\s]*$/, '.');
    errorView.show('load-error', `Could not load ${name}`, `${message}${kept}`);
    status.set(previous && !previous.dead ? 'ready' : 'error', previous && !previous.dead ? 'ready' : 'no model loaded');
  }
}

function onEngineCrash(reason) {
  engine = null;
  errorView.show('load-error', 'The engine stopped', `${reason}. Reload the page or open the model again.`);
  status.set('error', 'engine crashed');
  $('predict-button').disabled = true;
  $('generate-button').disabled = true;
}

/**
 * Runs predictions so that at most one is in flight and the latest prompt always wins: while one
 * runs, a newer request replaces any waiting one instead of queueing behind it.
 */
const predictor = {
  timer: null,
  running: false,
  wanted: false,

  /** Typing: predict once the user pauses. */
  soon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.now(), TYPING_DEBOUNCE_MS);
  },

  /** Enter, the button, or a freshly loaded model: predict as soon as the engine is free. */
  now() {
    clearTimeout(this.timer);
    this.wanted = true;
    if (!this.running) this.run();
  },

  async run() {
    while (this.wanted && engine) {
      this.wanted = false;
      this.running = true;
      const current = engine;
      const prompt = $('prompt').value;
      $('predict-button').disabled = true;
      $('top-tokens').classList.add('stale');
      status.set('busy', 'predicting…');
      try {
        const reply = await current.predict(prompt, TOP_K);
        if (current !== engine) continue; // a new model arrived meanwhile; its result is moot
        errorView.hide('predict-error');
        renderPrediction(reply.prediction, reply.ms);
        status.set('ready', 'ready');
      } catch (e) {
        if (current !== engine) continue;
        errorView.show('predict-error', null, e.message);
        $('top-tokens').dataset.prompt = prompt;
        status.set('ready', 'ready');
      } finally {
        this.running = false;
        $('top-tokens').classList.remove('stale');
        $('predict-button').disabled = !engine;
      }
    }
  },
};

/** Generation: one at a time; the Stop button asks the engine to stop after the current token. */
const generator = {
  running: false,

  /** A new model: whatever was generated belongs to the old one. */
  reset() {
    $('generate-output-prompt').textContent = '';
    $('generate-text').textContent = '';
    $('generate-stats').textContent = '';
    $('generate-output').dataset.state = 'idle';
    errorView.hide('generate-error');
  },

  readParams() {
    const num = (id, fallback) => {
      const v = Number($(id).value);
      return $(id).value.trim() === '' || !Number.isFinite(v) ? fallback : v;
    };
    return {
      prompt: $('generate-prompt').value,
      maxTokens: Math.max(1, Math.floor(num('generate-max-tokens', 32))),
      temperature: Math.max(0, num('generate-temperature', 0)),
      topP: num('generate-top-p', 1),
      seed: Math.max(0, Math.floor(num('generate-seed', 0))),
    };
  },

  async run() {
    if (this.running || !engine) return;
    const current = engine;
    const params = this.readParams();
    this.running = true;
    const out = $('generate-output');
    const textEl = $('generate-text');
    $('generate-output-prompt').textContent = params.prompt;
    textEl.textContent = '';
    out.dataset.state = 'running';
    for (const key of ['stop', 'text', 'pieces', 'tokens', 'tokensPerSecond', 'backend']) delete out.dataset[key];
    errorView.hide('generate-error');
    $('generate-button').disabled = true;
    $('stop-button').hidden = false;
    $('stop-button').disabled = false;
    const t0 = performance.now();
    let count = 0;
    let pieces = 0;
    $('generate-stats').textContent = 'generating…';
    try {
      const reply = await current.generate(params, ({ piece, count: n }) => {
        if (current !== engine) return;
        count = n;
        if (piece) { textEl.append(piece); pieces += 1; out.dataset.pieces = String(pieces); }
        const s = (performance.now() - t0) / 1000;
        $('generate-stats').textContent = `${n} token${n === 1 ? '' : 's'} · ${s.toFixed(1)} s`;
      });
      if (current !== engine) return;
      const g = reply.generation;
      // The pieces add up to the whole decode by construction; trust the whole if they do not.
      if (textEl.textContent !== g.text) textEl.textContent = g.text;
      out.dataset.text = g.text;
      out.dataset.state = 'done';
      out.dataset.stop = g.stop;
      out.dataset.tokens = String(g.tokens.length);
      out.dataset.tokensPerSecond = String(g.tokensPerSecond);
      out.dataset.backend = g.backend;
      const why = { 'max-tokens': 'max tokens', eos: 'end of text', stopped: 'stopped' }[g.stop] ?? g.stop;
      $('generate-stats').textContent =
        `${g.tokens.length} tokens · ${g.tokensPerSecond.toFixed(1)} tokens/s · ${why} · ${g.backend === 'webgpu' ? 'WebGPU' : 'CPU'}`;
    } catch (e) {
      if (current !== engine) return;
      out.dataset.state = 'error';
      errorView.show('generate-error', null, e.message);
      $('generate-stats').textContent = count ? `${count} tokens, then an error` : '';
    } finally {
      this.running = false;
      $('stop-button').hidden = true;
      $('generate-button').disabled = !engine;
    }
  },

  stop() {
    $('stop-button').disabled = true;
    engine?.stopGenerating();
  },
};

// ---------------------------------------------------------------------------------------------
// Wiring.

function init() {
  const promptEl = $('prompt');
  $('prompt-form').addEventListener('submit', (e) => { e.preventDefault(); predictor.now(); });
  promptEl.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); predictor.now(); }
  });
  promptEl.addEventListener('input', () => predictor.soon());

  $('file-input').addEventListener('change', (e) => {
    const file = e.target.files?.[0];
    e.target.value = ''; // picking the same file again must fire `change` again
    if (file) loadModel(file.name, { kind: 'file', file });
  });
  $('load-error').querySelector('.notice-close').addEventListener('click', () => errorView.hide('load-error'));

  $('generate-form').addEventListener('submit', (e) => { e.preventDefault(); generator.run(); });
  $('generate-prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); generator.run(); }
  });
  $('stop-button').addEventListener('click', () => generator.stop());

  // ?model=URL loads another served file instead of the default (handy for trying models).
  const modelUrl = new URL(PARAMS.get('model') ?? DEFAULT_MODEL, location.href);
  loadModel(baseName(modelUrl.pathname), { kind: 'url', url: modelUrl.href });
}

init();
