// The engine's thread: instantiates the wasm (www/pkg, built by scripts/build-web) and runs every
// heavy step here, so the page never freezes. One worker holds at most one model; the page starts
// a fresh worker for every load, which keeps the previous model alive (in its own worker) until
// the new one has loaded, and contains a crash (a Rust panic aborts the wasm instance).
//
// The protocol is in messages.ts. Calls are handled one at a time, in order: the engine is
// single-threaded anyway, and a call that arrives during a load waits for it instead of seeing a
// half-built model. Only `stop` jumps the queue.

import init, * as wasm from '../pkg/quantscope.js';
import { Playground } from '../pkg/quantscope.js';
import { readToBlob, modelCache, cacheStamp, localCacheKey } from './download';
import { loadParts, partsSize, type ModelParts, type RangeReader } from './model-parts';
import { capabilities, optionalMethod } from './capabilities';
import { enginePolicy } from './forward';
import { isSoftwareAdapter } from './webgpu';
import type {
  ArgsOf,
  BrowserAdapterInfo,
  CallRequest,
  DeviceInfo,
  ForwardChoice,
  MeanMassiveCalibration,
  Method,
  ModelSource,
  PageMessage,
  ResultOf,
  SchemeInfo,
  SensitivityCell,
  WorkerMessage,
} from './messages';

interface WorkerScope {
  postMessage(message: WorkerMessage, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<PageMessage>) => void) | null;
}
const scope = self as unknown as WorkerScope;
const post = (message: WorkerMessage, transfer: Transferable[] = []) => scope.postMessage(message, transfer);

type Optional = (...args: unknown[]) => unknown;
const optional = (name: string): Optional | null => optionalMethod(Playground.prototype, name);

let model: Playground | null = null;
let crashed = false;
/** Ids of generations, evaluations and sensitivity maps asked to stop. */
const stopRequested = new Set<number>();

interface CallContext {
  id: number;
  progress: (stage: string, done: number, total: number) => void;
  /** Buffers of the result that move to the page instead of being copied (a GGUF file is ~100 MB). */
  transfer: Transferable[];
}

function requireModel(): Playground {
  if (!model) throw new Error('no model is loaded');
  return model;
}

function requireOptional(name: string, what: string): Optional {
  const f = optional(name);
  if (!f) throw new Error(`this engine build has no ${what} (${name}); rebuild it with scripts/build-web`);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Loading.

/**
 * A served file, as a Blob (kept by the browser, read by the engine a range at a time). Served files are cached (Cache API) keyed by URL, stamped with the
 * server's Last-Modified and length from a HEAD request: a reload reads the cache instead of the
 * network, and a changed file on the server is downloaded again. Offline (HEAD fails), a cached
 * copy is used as it is.
 */
async function download(
  url: string,
  ctx: CallContext,
): Promise<{ blob: Blob; fromCache: boolean; store: () => Promise<void> }> {
  const cache = await modelCache();
  let stamp: string | null = null;
  let reachable = true;
  try {
    const head = await fetch(url, { method: 'HEAD', cache: 'no-store' });
    if (head.ok) stamp = cacheStamp(head.headers);
  } catch {
    reachable = false;
  }
  const hit = cache ? await cache.match(url) : undefined;
  if (hit?.body && (!reachable || (stamp !== null && hit.headers.get('X-Quantscope-Stamp') === stamp))) {
    const total = Number(hit.headers.get('Content-Length')) || 0;
    const blob = await readToBlob(hit.body, total, (done, t) => ctx.progress('cache', done, t));
    return { blob, fromCache: true, store: async () => {} };
  }
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`could not download ${url}: ${(e as Error).message} (is scripts/serve running?)`, { cause: e });
  }
  if (!response.ok || !response.body) {
    const hint = response.status === 404 ? ' (run scripts/setup to download the default model)' : '';
    throw new Error(`could not download ${url}: HTTP ${response.status} ${response.statusText}${hint}`);
  }
  // Content-Length is the on-the-wire size: only trust it when the body is not compressed.
  const encoded = response.headers.get('Content-Encoding');
  const length = Number(response.headers.get('Content-Length'));
  const total = !encoded && Number.isFinite(length) ? length : 0;
  const blob = await readToBlob(response.body, total, (done, t) => ctx.progress('download', done, t));
  const stampNow = stamp ?? cacheStamp(response.headers);
  const store = async () => {
    if (!cache || stampNow === null) return;
    const headers = { 'Content-Length': String(blob.size), 'X-Quantscope-Stamp': stampNow };
    await cache.put(url, new Response(blob, { headers })).catch(() => {});
  };
  return { blob, fromCache: false, store };
}

/** Keeps a user's file in the cache under `local:NAME`, so a shared link can name it in this browser. */
async function storeLocal(name: string, part: string, body: Blob | Uint8Array): Promise<void> {
  const cache = await modelCache();
  if (!cache) return;
  const size = body instanceof Blob ? body.size : body.length;
  const headers = { 'Content-Length': String(size) };
  const response = new Response(body instanceof Blob ? body : (body as Uint8Array<ArrayBuffer>), { headers });
  await cache.put(localCacheKey(name, part), response).catch(() => {});
}

/** A user's file kept in the cache comes back as a Blob, like a served one. */
async function readLocalBlob(name: string, part: string, ctx: CallContext): Promise<Blob | null> {
  const cache = await modelCache();
  const hit = cache ? await cache.match(localCacheKey(name, part)) : undefined;
  if (!hit?.body) return null;
  const total = Number(hit.headers.get('Content-Length')) || 0;
  return readToBlob(hit.body, total, (done, t) => ctx.progress('cache', done, t));
}

async function readLocal(name: string, part: string, ctx: CallContext): Promise<Uint8Array | null> {
  const blob = await readLocalBlob(name, part, ctx);
  return blob ? new Uint8Array(await blob.arrayBuffer()) : null;
}

async function modelBytes(
  name: string,
  source: ModelSource,
  ctx: CallContext,
): Promise<{ parts: ModelParts; fromCache: boolean; store: () => Promise<void> }> {
  switch (source.kind) {
    case 'url': {
      const { blob, fromCache, store } = await download(source.url, ctx);
      return { parts: { gguf: blob }, fromCache, store };
    }
    case 'gguf-file': {
      const gguf = source.file;
      return { parts: { gguf }, fromCache: false, store: () => storeLocal(name, 'gguf', gguf) };
    }
    case 'safetensors-files': {
      const weights = source.weights;
      const config = new Uint8Array(await source.config.arrayBuffer());
      const tokenizer = new Uint8Array(await source.tokenizer.arrayBuffer());
      const store = async () => {
        await storeLocal(name, 'safetensors', weights);
        await storeLocal(name, 'config.json', config);
        await storeLocal(name, 'tokenizer.json', tokenizer);
      };
      return { parts: { weights, config, tokenizer }, fromCache: false, store };
    }
    case 'safetensors-shards': {
      // Not kept in the cache: a link to it asks for the files again.
      const shards = source.shards.map((file) => ({ name: file.name, blob: file }));
      const index = new Uint8Array(await source.index.arrayBuffer());
      const config = new Uint8Array(await source.config.arrayBuffer());
      const tokenizer = new Uint8Array(await source.tokenizer.arrayBuffer());
      return { parts: { index, shards, config, tokenizer }, fromCache: false, store: async () => {} };
    }
    case 'cached-local': {
      const gguf = await readLocalBlob(source.name, 'gguf', ctx);
      if (gguf) return { parts: { gguf }, fromCache: true, store: async () => {} };
      const weights = await readLocalBlob(source.name, 'safetensors', ctx);
      const config = await readLocal(source.name, 'config.json', ctx);
      const tokenizer = await readLocal(source.name, 'tokenizer.json', ctx);
      if (weights && config && tokenizer)
        return { parts: { weights, config, tokenizer }, fromCache: true, store: async () => {} };
      throw new Error(
        `${source.name} was opened from a computer's disk, and this browser has no copy of it; open the file again`,
      );
    }
  }
}

/** Workers have FileReaderSync; the page's TypeScript libraries (DOM, not WebWorker) do not declare it. */
declare const FileReaderSync: { new (): { readAsArrayBuffer(blob: Blob): ArrayBuffer } };

/** Reads `blob` a range at a time, synchronously (the engine's weights are read from inside its calls). */
function blobReader(blob: Blob): RangeReader {
  const reader = new FileReaderSync();
  return (offset, length) => new Uint8Array(reader.readAsArrayBuffer(blob.slice(offset, offset + length)));
}

/** What the browser says about its WebGPU adapter. Best effort: null when there is none. */
async function browserAdapterInfo(): Promise<BrowserAdapterInfo | null> {
  try {
    const gpu = (
      navigator as Navigator & { gpu?: { requestAdapter(o: object): Promise<{ info?: BrowserAdapterInfo } | null> } }
    ).gpu;
    const adapter = await gpu?.requestAdapter({ powerPreference: 'high-performance' });
    const info = adapter?.info;
    if (!info) return null;
    return { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description };
  } catch {
    return null;
  }
}

async function load({ name, source, useGpu, forward }: ArgsOf<'load'>, ctx: CallContext): Promise<ResultOf<'load'>> {
  const t0 = performance.now();
  performance.mark('quantscope:load-start');
  const { parts, fromCache, store } = await modelBytes(name, source, ctx);
  const size = partsSize(parts);
  const downloadMs = performance.now() - t0;
  ctx.progress('parse', 0, 1);
  const loaded = await loadParts(Playground, parts, blobReader, name, ctx.progress, useGpu);
  // Only a file that loaded is worth keeping: a bad one would fail again from the cache.
  await store();
  model?.free();
  model = loaded;
  let device = model.deviceInfo() as DeviceInfo;
  const adapterInfo = device.backend === 'webgpu' ? await browserAdapterInfo() : null;
  // Where the model as loaded runs: on a software adapter the engine times the CPU reference
  // against WebGPU (seconds; progress stage 'measure'). Engine builds without it run on WebGPU.
  const choose = optional('chooseForward');
  if (choose) {
    const t1 = performance.now();
    const policy = enginePolicy(forward, isSoftwareAdapter({ ...device, adapterInfo }));
    (await choose.call(model, policy, ctx.progress)) as ForwardChoice;
    device = model.deviceInfo() as DeviceInfo;
    device.timings.measureMs = performance.now() - t1;
  }
  if (device.backend === 'webgpu') device.adapterInfo = adapterInfo;
  device.timings.downloadMs = downloadMs;
  watchDeviceLoss(model);
  performance.mark('quantscope:load-end', { detail: device.timings });
  return { summary: model.summary(), device, bytes: size, fromCache, ms: performance.now() - t0 };
}

/** Tells the page when `watched`'s GPU device is lost, while it is still this worker's model. */
function watchDeviceLoss(watched: Playground): void {
  const lost = optional('deviceLost');
  if (!lost) return;
  void (lost.call(watched) as Promise<string>).then((message) => {
    if (model === watched) post({ type: 'deviceLost', message });
  });
}

// ---------------------------------------------------------------------------------------------
// Every operation, typed by method name.

/** Progress that returns false (the engine's "stop") once the page asked this call to stop. */
type StoppableProgress = (stage: string, done: number, total: number) => boolean;

/** Runs a call the page can stop (`stop`), forgetting the request once it has ended. */
async function stoppable<T>(ctx: CallContext, run: (progress: StoppableProgress) => Promise<T>): Promise<T> {
  try {
    return await run((stage, done, total) => {
      ctx.progress(stage, done, total);
      return !stopRequested.has(ctx.id);
    });
  } finally {
    stopRequested.delete(ctx.id);
  }
}

type Handlers = { [M in Method]: (args: ArgsOf<M>, ctx: CallContext) => Promise<ResultOf<M>> };

const handlers: Handlers = {
  load,
  predict: async ({ prompt, topK }) => requireModel().predict(prompt, topK),
  predictBoth: async ({ prompt, topK }) => requireModel().predictBoth(prompt, topK),
  generate: async ({ prompt, maxTokens, temperature, topP, seed, asLoaded, chat }, ctx) => {
    const m = requireModel();
    try {
      const onToken = (piece: string, count: number) => {
        post({ type: 'token', id: ctx.id, piece, count });
        return !stopRequested.has(ctx.id);
      };
      return await m.generate(prompt, maxTokens, temperature, topP, seed, onToken, asLoaded, chat);
    } finally {
      stopRequested.delete(ctx.id);
    }
  },
  applyRecipe: async ({ recipe }, ctx) => requireModel().applyRecipe(recipe, ctx.progress),
  setIntervention: async ({ name }) => {
    const t0 = performance.now();
    const set = requireModel().setIntervention(name) as { calibration?: MeanMassiveCalibration | null };
    return { ms: performance.now() - t0, calibration: set.calibration ?? null };
  },
  setRuntimeQuant: async ({ config }, ctx) =>
    requireOptional('setRuntimeQuant', 'runtime quantization').call(
      requireModel(),
      JSON.stringify(config),
      ctx.progress,
    ) as Promise<ResultOf<'setRuntimeQuant'>>,
  evaluate: async ({ maxTokens, window, text }, ctx) =>
    stoppable(ctx, (progress) => requireModel().evaluate(maxTokens, window, text, progress)),
  pinReference: async ({ request }, ctx) =>
    requireOptional('pinReference', 'pinned reference').call(
      requireModel(),
      JSON.stringify(request),
      ctx.progress,
    ) as Promise<ResultOf<'pinReference'>>,
  unpinReference: async () => {
    requireOptional('unpinReference', 'pinned reference').call(requireModel());
    return null;
  },
  sensitivity: async ({ config, maxTokens, window }, ctx) => {
    const run = requireOptional('sensitivity', 'sensitivity map');
    const onCell = (cell: SensitivityCell) => post({ type: 'cell', id: ctx.id, cell });
    return stoppable(
      ctx,
      (progress) =>
        run.call(requireModel(), JSON.stringify(config), maxTokens, window, onCell, progress) as Promise<
          ResultOf<'sensitivity'>
        >,
    );
  },
  allocateByMeasurement: async ({ config, maxTokens, window }, ctx) => {
    const run = requireOptional('allocateByMeasurement', 'recipe from measurements');
    return stoppable(
      ctx,
      (progress) =>
        run.call(requireModel(), JSON.stringify(config), maxTokens, window, progress) as Promise<
          ResultOf<'allocateByMeasurement'>
        >,
    );
  },
  tokenView: async ({ maxTokens, window, text }, ctx) => {
    const run = requireOptional('tokenView', 'token view');
    return stoppable(
      ctx,
      (progress) => run.call(requireModel(), maxTokens, window, text, progress) as Promise<ResultOf<'tokenView'>>,
    );
  },
  positionDetail: async ({ index, maxTokens, window, text }) =>
    requireOptional('positionDetail', 'position detail').call(
      requireModel(),
      index,
      maxTokens,
      window,
      text,
    ) as Promise<ResultOf<'positionDetail'>>,
  breakage: async ({ maxTokens, window, text }) =>
    requireOptional('breakage', 'breakage').call(requireModel(), maxTokens, window, text) as Promise<
      ResultOf<'breakage'>
    >,
  exportGguf: async (_args, ctx) => {
    const t0 = performance.now();
    // The engine returns a Uint8Array with a buffer of its own (a copy out of wasm memory), so
    // moving that buffer to the page leaves the engine intact.
    const bytes = requireOptional('exportGguf', 'GGUF export').call(
      requireModel(),
      ctx.progress,
    ) as Uint8Array<ArrayBuffer>;
    ctx.transfer.push(bytes.buffer);
    return { bytes, ms: performance.now() - t0 };
  },
  probe: async ({ prompt, asLoaded, layer, point }) => requireModel().probe(prompt, asLoaded, layer, point),
  attentionMaps: async ({ prompt, layer, asLoaded }) =>
    requireOptional('attentionMaps', 'attention maps').call(requireModel(), prompt, layer, asLoaded) as Promise<
      ResultOf<'attentionMaps'>
    >,
  weightStats: async ({ tensor, scheme }) =>
    requireOptional('weightStats', 'weight statistics').call(requireModel(), tensor, scheme) as Promise<
      ResultOf<'weightStats'>
    >,
  outlierReport: async ({ prompt, rule }) =>
    requireOptional('outlierReport', 'outlier report').call(requireModel(), prompt, rule) as Promise<
      ResultOf<'outlierReport'>
    >,
  debugDestroyDevice: async () => ({
    destroyed: requireOptional('debugDestroyDevice', 'test hook for device loss').call(requireModel()) as boolean,
  }),
};

function dispatch<M extends Method>(msg: CallRequest<M>, ctx: CallContext): Promise<ResultOf<M>> {
  return (handlers[msg.method] as (args: ArgsOf<M>, ctx: CallContext) => Promise<ResultOf<M>>)(msg.args, ctx);
}

/** Turns an exception from the engine into a reply; marks the worker dead after a crash. */
function reportError(id: number, e: unknown): void {
  let panic: string | null = null;
  try {
    panic = wasm.takePanicMessage() ?? null;
  } catch {
    /* the instance may be unusable */
  }
  if (panic || e instanceof WebAssembly.RuntimeError) {
    crashed = true;
    const detail = panic ?? `${(e as Error).name}: ${(e as Error).message}`;
    post({ type: 'error', id, fatal: true, message: `the engine crashed (a bug, not your input): ${detail}` });
  } else {
    post({ type: 'error', id, fatal: false, message: e instanceof Error ? e.message : String(e) });
  }
}

// Marks for www/tests/cold-load.mjs (read from this worker's performance timeline): init() is the
// wasm's fetch, compile and instantiate; load-start..load-end the model's bytes, parse and upload.
performance.mark('quantscope:wasm-init-start');
const ready = init().then(
  () => {
    performance.mark('quantscope:wasm-ready');
    post({
      type: 'ready',
      capabilities: capabilities(wasm.engineVersion(), wasm.schemes() as SchemeInfo[], wasm, Playground.prototype),
    });
  },
  (e: unknown) => {
    crashed = true;
    post({
      type: 'error',
      id: null,
      fatal: true,
      message: `could not start the WebAssembly engine: ${(e as Error)?.message ?? e} (run scripts/build-web)`,
    });
    throw e;
  },
);
ready.catch(() => {}); // reported above; calls see the rejection through `await ready`

let queue: Promise<void> = Promise.resolve();

scope.onmessage = (event) => {
  const msg = event.data;
  if (msg.type === 'stop') {
    stopRequested.add(msg.target);
    return;
  }
  queue = queue.then(async () => {
    if (crashed) {
      post({ type: 'error', id: msg.id, fatal: true, message: 'the engine has crashed; load the model again' });
      return;
    }
    const ctx: CallContext = {
      id: msg.id,
      progress: (stage, done, total) => post({ type: 'progress', id: msg.id, stage, done, total }),
      transfer: [],
    };
    try {
      await ready;
      const result = await dispatch(msg, ctx);
      post({ type: 'result', id: msg.id, method: msg.method, result } as WorkerMessage, ctx.transfer);
    } catch (e) {
      reportError(msg.id, e);
    }
  });
};
