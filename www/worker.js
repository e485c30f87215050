// The engine's thread: loads the wasm (./pkg/quantscope.js, built by scripts/build-web) and runs
// every heavy step here, so the page never freezes. One worker holds at most one model; the page
// starts a fresh worker for every load, which keeps the previous model alive (in its own worker)
// until the new one has loaded, and contains a crash (a Rust panic aborts the wasm instance).
//
// Messages. Every request carries an `id`; every reply to it repeats that id.
//
// page -> worker
/** @typedef {{type: 'load', id: number, name: string, source: {kind: 'url', url: string} | {kind: 'file', file: File}, useGpu: boolean}} LoadRequest */
/** @typedef {{type: 'predict', id: number, prompt: string, topK: number}} PredictRequest */
/** @typedef {{type: 'generate', id: number, prompt: string, maxTokens: number, temperature: number, topP: number, seed: number}} GenerateRequest */
/** @typedef {{type: 'stop', id: number, target: number}} StopRequest
 *  Stops the generation whose request id is `target` after its current token. Handled at once,
 *  not queued behind the generation; it gets no reply of its own (the generation's reply says
 *  stop: 'stopped'). */
//
// worker -> page
/** @typedef {{type: 'ready', version: string}} Ready  (sent once, unprompted, when the wasm is instantiated) */
/** @typedef {{type: 'progress', id: number, stage: string, done: number, total: number}} ProgressReply
 *  stage 'download' / 'read' count bytes (total 0 when unknown); other stages come from the engine. */
/** @typedef {{type: 'loaded', id: number, summary: object, device: object, bytes: number, ms: number}} LoadedReply
 *  device: Playground.deviceInfo() — {backend: 'webgpu'|'cpu', adapter, reason, gpuBytes, timings},
 *  plus adapterInfo {vendor, architecture, device, description} from the browser when it has one. */
/** @typedef {{type: 'prediction', id: number, prediction: object, ms: number}} PredictionReply
 *  prediction.backend says where it ran ('webgpu' | 'cpu'); prediction.ms is the engine's time. */
/** @typedef {{type: 'token', id: number, piece: string, count: number}} TokenReply  (streamed, then:) */
/** @typedef {{type: 'generated', id: number, generation: object}} GeneratedReply
 *  generation: {promptTokens, tokens, text, stop, backend, tokensPerSecond, promptMs, ms}. */
/** @typedef {{type: 'error', id: number | null, message: string, fatal: boolean}} ErrorReply
 *  fatal: the engine crashed (a panic or a wasm trap) and this worker must be thrown away. */

import init, { Playground, takePanicMessage, engineVersion } from './pkg/quantscope.js';

/** @type {Playground | null} */
let model = null;
let crashed = false;
/** Ids of generations asked to stop. */
const stopRequested = new Set();

const post = (msg) => self.postMessage(msg);

// Progress messages for byte streams: about 20 a second is plenty for a progress bar.
const PROGRESS_INTERVAL_MS = 50;

/**
 * Reads a stream to the end into one Uint8Array, reporting bytes as they come. With a known
 * length the bytes go straight into one buffer (no second copy of a 100 MB file).
 */
async function readAll(stream, total, onProgress) {
  const reader = stream.getReader();
  let buffer = total > 0 ? new Uint8Array(total) : null;
  const chunks = [];
  let done = 0;
  let lastReport = 0;
  for (;;) {
    const { done: finished, value } = await reader.read();
    if (finished) break;
    if (buffer && done + value.length <= buffer.length) {
      buffer.set(value, done);
    } else {
      // Unknown length, or more bytes than announced: fall back to collecting chunks.
      if (buffer) { chunks.push(buffer.subarray(0, done)); buffer = null; }
      chunks.push(value);
    }
    done += value.length;
    const now = performance.now();
    if (now - lastReport >= PROGRESS_INTERVAL_MS) {
      lastReport = now;
      onProgress(done, total);
    }
  }
  onProgress(done, total);
  if (buffer) return done === buffer.length ? buffer : buffer.subarray(0, done);
  const out = new Uint8Array(done);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

async function fetchBytes(id, source) {
  if (source.kind === 'file') {
    const file = source.file;
    return readAll(file.stream(), file.size, (done, total) =>
      post({ type: 'progress', id, stage: 'read', done, total }));
  }
  let response;
  try {
    response = await fetch(source.url);
  } catch (e) {
    throw new Error(`could not download ${source.url}: ${e.message} (is scripts/serve running?)`);
  }
  if (!response.ok) {
    const hint = response.status === 404 ? ' (run scripts/setup to download the default model)' : '';
    throw new Error(`could not download ${source.url}: HTTP ${response.status} ${response.statusText}${hint}`);
  }
  // Content-Length is the on-the-wire size: only trust it when the body is not compressed.
  const encoded = response.headers.get('Content-Encoding');
  const length = Number(response.headers.get('Content-Length'));
  const total = !encoded && Number.isFinite(length) ? length : 0;
  return readAll(response.body, total, (done, t) =>
    post({ type: 'progress', id, stage: 'download', done, total: t }));
}

/** Turns an exception from the engine into a reply; marks the worker dead after a crash. */
function reportError(id, e) {
  let panic = null;
  try { panic = takePanicMessage() ?? null; } catch { /* the instance may be unusable */ }
  if (panic || e instanceof WebAssembly.RuntimeError) {
    crashed = true;
    const detail = panic ?? `${e.name}: ${e.message}`;
    post({ type: 'error', id, fatal: true, message: `the engine crashed (a bug, not your input): ${detail}` });
  } else {
    post({ type: 'error', id, fatal: false, message: e?.message ?? String(e) });
  }
}

/**
 * What the browser says about its WebGPU adapter (wgpu reports only the description, which
 * Chromium often leaves empty). Best effort: null when there is none.
 */
async function browserAdapterInfo() {
  try {
    const adapter = await navigator.gpu?.requestAdapter({ powerPreference: 'high-performance' });
    const info = adapter?.info;
    if (!info) return null;
    return { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description };
  } catch {
    return null;
  }
}

async function handleLoad({ id, name, source, useGpu }) {
  const t0 = performance.now();
  let bytes = await fetchBytes(id, source);
  const size = bytes.length;
  const downloadMs = performance.now() - t0;
  const progress = (stage, done, total) => post({ type: 'progress', id, stage, done, total });
  progress('parse', 0, 1);
  const loading = Playground.load(bytes, name, progress, useGpu !== false);
  bytes = null; // the engine holds its own copy now
  const loaded = await loading;
  model?.free();
  model = loaded;
  const device = model.deviceInfo();
  if (device.backend === 'webgpu') device.adapterInfo = await browserAdapterInfo();
  device.timings.downloadMs = downloadMs;
  post({ type: 'loaded', id, summary: model.summary(), device, bytes: size, ms: performance.now() - t0 });
}

async function handlePredict({ id, prompt, topK }) {
  if (!model) throw new Error('no model is loaded');
  const t0 = performance.now();
  const prediction = await model.predict(prompt, topK);
  post({ type: 'prediction', id, prediction, ms: performance.now() - t0 });
}

async function handleGenerate({ id, prompt, maxTokens, temperature, topP, seed }) {
  if (!model) throw new Error('no model is loaded');
  try {
    const onToken = (piece, count) => {
      post({ type: 'token', id, piece, count });
      return !stopRequested.has(id);
    };
    const generation = await model.generate(prompt, maxTokens, temperature, topP, seed, onToken);
    post({ type: 'generated', id, generation });
  } finally {
    stopRequested.delete(id);
  }
}

const ready = init().then(
  () => post({ type: 'ready', version: engineVersion() }),
  (e) => {
    crashed = true;
    post({ type: 'error', id: null, fatal: true,
           message: `could not start the WebAssembly engine: ${e.message ?? e} (run scripts/build-web)` });
    throw e;
  });
ready.catch(() => {}); // reported above; requests see the rejection through `await ready`

// Requests are handled one at a time, in order: the engine is single-threaded anyway, and a
// predict that arrives during a load waits for it instead of seeing a half-built model.
let queue = Promise.resolve();

self.onmessage = (event) => {
  const msg = event.data;
  // A stop must not wait in the queue behind the generation it stops.
  if (msg.type === 'stop') { stopRequested.add(msg.target); return; }
  queue = queue.then(async () => {
    if (crashed) {
      post({ type: 'error', id: msg.id, fatal: true, message: 'the engine has crashed; load the model again' });
      return;
    }
    try {
      await ready;
      switch (msg.type) {
        case 'load': await handleLoad(msg); break;
        case 'predict': await handlePredict(msg); break;
        case 'generate': await handleGenerate(msg); break;
        default: throw new Error(`unknown request type ${JSON.stringify(msg.type)}`);
      }
    } catch (e) {
      reportError(msg.id, e);
    }
  });
};
