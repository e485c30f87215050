// The protocol between the page (main.ts) and the engine's worker (worker.ts).
//
// Every engine operation is one entry of `EngineApi`: its arguments and its result. The page sends
// `{type: 'call', id, method, args}`; the worker answers with `{type: 'result', id, method, result}`
// or `{type: 'error', id, ...}`, and may stream `progress` and `token` messages for that id before.
// Both unions are discriminated (by `type`, and for calls and results by `method`), so a handler
// that reads `msg.args` after checking `msg.method === 'generate'` gets `generate`'s arguments.

import type { ViewDataSource } from './views/index';

/** What a view data source method resolves to: the views module owns those shapes. */
type ViewResult<K extends keyof ViewDataSource> = ViewDataSource[K] extends (...args: never[]) => Promise<infer R>
  ? R
  : never;

// ---------------------------------------------------------------------------------------------
// Values the engine returns (serde objects from src/web.rs).

export interface TopToken {
  id: number;
  token: string;
  prob: number;
  logit: number;
}

export interface TensorSummary {
  name: string;
  dtype: string;
  /** ggml order: shape[0] is the contiguous row length. */
  shape: number[];
  bits_per_weight: number;
  bytes: number;
}

export interface ModelConfig {
  architecture?: string;
  n_layers: number;
  d_model: number;
  n_heads: number;
  n_kv_heads: number;
  head_dim: number;
  d_ff: number;
  vocab_size: number;
  context_length: number;
  rope_base?: number;
  rope_layout?: string;
  rms_eps?: number;
  qkv_bias?: boolean;
  /** Qwen3's per-head RMSNorm of the queries and keys. */
  qk_norm?: boolean;
  /** Mistral's, Phi-3's or Gemma's attention window, which bounds the context (serde's None: null). */
  sliding_window?: number | null;
  /** Llama 3.1's RoPE scaling: each pair's frequency divisor (serde's None: null). */
  rope_freq_factors?: number[] | null;
  /** The gate's activation: SwiGLU ('silu') or GeGLU ('gelu-tanh', Gemma). */
  ffn_activation?: 'silu' | 'gelu-tanh';
  /** Gemma: embeddings × √width. */
  scale_embeddings?: boolean;
  /** Gemma: RMSNorm of the attention's and the MLP's outputs before the residual adds. */
  post_norms?: boolean;
  /** Gemma 3: of every `period` blocks the last is global, the others local with their own RoPE base. */
  local_layers?: { period: number; rope_base: number } | null;
  /** Gemma: scores scaled by 1/√query_pre_attn_scalar; null where that is head_dim. */
  query_pre_attn_scalar?: number | null;
  /** Gemma 2: attention scores soft-capped, cap·tanh(s/cap), before the softmax (null: none). */
  attn_logit_softcap?: number | null;
  /** Gemma 2: logits soft-capped after the unembedding (null: none). */
  final_logit_softcap?: number | null;
  tied_embeddings?: boolean;
  /** RMSNorm ('rms') or GPT-2's LayerNorm with a bias ('layer'); rms_eps is then its epsilon. */
  norm?: 'rms' | 'layer';
  /** RoPE ('rope') or GPT-2's learned absolute position embeddings ('learned'). */
  positions?: 'rope' | 'learned';
  /** Gated MLP ('gated') or GPT-2's plain one ('plain'), act(up(x)) then down. */
  mlp?: 'gated' | 'plain';
  /** GPT-2: a bias on every linear layer (q, k and v by qkv_bias). */
  linear_bias?: boolean;
}

export interface ModelSummary {
  source: string;
  /** serde's None arrives as undefined. */
  name?: string | null;
  config: ModelConfig;
  parameters: number;
  bytes: number;
  tensors: TensorSummary[];
  /** Whether the model carries a chat template (the Generate card's Chat). */
  has_chat_template?: boolean;
}

export interface AdapterSummary {
  name: string;
  backend: string;
  device_type: string;
  driver?: string;
  features: { shader_f16: boolean; subgroups: boolean; timestamps: boolean };
  max_storage_buffer_binding_size: number;
  max_buffer_size: number;
  max_compute_invocations_per_workgroup: number;
  max_compute_workgroups_per_dimension: number;
}

export interface BrowserAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

export type Backend = 'webgpu' | 'cpu';

/** `chooseForward`'s times (src/web.rs ForwardTimes), milliseconds on its fixed short prompt. */
export interface ForwardTimes {
  promptTokens: number;
  /** The CPU reference's second run (the first lets the browser compile the wasm's hot code). */
  cpuMs: number;
  /** WebGPU's first run, pipeline compilation included. */
  gpuFirstMs: number;
  /** WebGPU's second run; null when the first decided (it beat the CPU, or took over 10 times as long). */
  gpuMs?: number | null;
}

/**
 * Where the runs the CPU reference computes exactly go (the model as loaded: the reference side
 * of predictions and metrics, the reference continuation, and the model under study while
 * nothing changes it), and why: `chooseForward` of src/web.rs.
 */
export interface ForwardChoice {
  /** Predictions, evaluation and generation of the model as loaded. */
  backend: Backend;
  reason: string;
  /** Absent (serde's None) when nothing was measured. */
  measured?: ForwardTimes | null;
}

export interface DeviceInfo {
  /** Whether the model is on the GPU (and the GPU-only features with it); `forward` says where the model as loaded runs. */
  backend: Backend;
  /** Absent (serde's None) without a GPU. */
  adapter?: AdapterSummary | null;
  /** Why there is no GPU; absent when there is one. */
  reason?: string | null;
  gpuBytes: number;
  timings: { parseMs: number; adapterMs: number; uploadMs: number; downloadMs?: number; measureMs?: number };
  /** Added by the worker from `navigator.gpu` (wgpu reports only the description). */
  adapterInfo?: BrowserAdapterInfo | null;
  /** Absent from engine builds before `chooseForward`; null before it ran. */
  forward?: ForwardChoice | null;
}

export interface Prediction {
  model: string;
  prompt: string;
  tokens: number[];
  top: TopToken[];
  backend: Backend;
  ms: number;
}

export interface BothPrediction {
  reference: TopToken[];
  quantized: TopToken[];
  tokens: number[];
  /** Absent from engine builds before `chooseForward` (everything ran on WebGPU then). */
  referenceBackend?: Backend;
  quantizedBackend?: Backend;
  /** The model under study is the model as loaded: one run answered both columns. */
  sameRun?: boolean;
  ms: number;
}

export interface Generation {
  promptTokens: number[];
  tokens: number[];
  text: string;
  stop: 'max-tokens' | 'eos' | 'stopped';
  backend: Backend;
  tokensPerSecond: number;
  promptMs: number;
  ms: number;
}

export interface AppliedTensor {
  name: string;
  scheme: string;
  bitsPerWeight: number;
  onGpu: boolean;
}

export interface Applied {
  requantizedOnGpu: number;
  requantizedOnCpu: number;
  restored: number;
  unchanged: number;
  bitsPerWeight: number;
  bytes: number;
  tensors: AppliedTensor[];
  ms: number;
}

export interface LayerError {
  layer: number;
  relative_error: number;
}

export interface EvalMetrics {
  tokens: number;
  positions: number;
  kl: number;
  pd_kl: number;
  top1_agreement: number;
  perplexity: number;
  reference_perplexity: number;
  qid: number;
  layers: LayerError[];
  /** The tokens per window that ran (clamped to the context; 0 where nothing ran). */
  window: number;
  ms: number;
}

export interface SchemeInfo {
  name: string;
  /** Re-quantized on the GPU (else by the CPU reference, then uploaded). */
  gpu: boolean;
  gguf: boolean;
}

/** One entry of `interventions()` (src/model/intervene.rs `Intervention::catalog`). */
export interface InterventionInfo {
  /** The name, without the number of one that takes a parameter ("clip" of "clip:99.9"). */
  name: string;
  label: string;
  /** The number it takes after "name:", and the range offered for it. */
  parameter?: { name: string; min: number; max: number; default: number } | null;
}

/** `runtimeSchemes()` of src/web/runtime_quant.rs, when the engine has it. */
export interface RuntimeSchemes {
  activations: string[];
  kv: string[];
  attention: string[];
  methods: string[];
}

/** `Playground.setRuntimeQuant`'s configuration; null is "none". */
export interface RuntimeQuantConfig {
  a: string | null;
  aDown: string | null;
  kv: string | null;
  attn: string | null;
  method: string | null;
  calibTokens: number;
}

/** What the engine in this worker can do; sent once in `ready`. */
export interface Capabilities {
  version: string;
  schemes: SchemeInfo[];
  /** null: this engine has no runtime (activation/KV/attention) quantization yet. */
  runtime: RuntimeSchemes | null;
  /** The interventions the engine offers (empty for a build without the catalog). */
  interventions: InterventionInfo[];
  /** The outlier views' menus: the engine's probe points and outlier rules (empty where the build lacks them). */
  probePoints: string[];
  outlierRules: string[];
  /** The outlier views' wasm methods this engine has. */
  views: { attentionMaps: boolean; weightStats: boolean; outlierReport: boolean };
  /** Where a configuration breaks: the sensitivity map, the token view, the breakage, a pinned reference (engine methods this build has). */
  study: { sensitivity: boolean; tokenView: boolean; breakage: boolean; pin: boolean; allocate: boolean };
  /** The engine writes the model under study as a GGUF file (`exportGguf`). */
  exportGguf: boolean;
}

/** What `sensitivity` measures: each matrix (those matching `tensors`, a glob) quantized alone with `scheme`. */
export interface SensitivityConfig {
  scheme: string;
  /** A glob of tensor names ("blk.0.*"); null or "" for every block matrix. */
  tensors: string | null;
}

/** What `allocateByMeasurement` chooses a recipe for: a bits-per-weight budget over the linears that get a rung. */
export interface AllocationConfig {
  budget: number;
  /** Schemes, most bits first; null for bitalloc's ladder (int8 … int2). */
  ladder: string[] | null;
  /** A glob of the matrices that get a rung ("blk.0.*"); null or "" for every block matrix. */
  tensors: string | null;
}

/** The recipe chosen from measured sensitivities (src/web/allocation.rs). */
export interface MeasuredRecipe {
  /** Recipe JSON, as `applyRecipe` takes it. */
  recipe: string;
  targetBitsPerWeight: number;
  bitsPerWeight: number;
  budgetOver: 'linears' | 'model';
  /** Matrices per rung, in ladder order: [scheme, count]. */
  rungCounts: [string, number][];
  /** Cells measured (one map per rung), and the tokens they were measured on. */
  cells: number;
  tokens: number;
  ms: number;
}

/** One (layer, class) cell of the sensitivity map (src/study/sensitivity.rs), streamed as it is measured. */
export interface SensitivityCell {
  layer: number;
  class: string;
  tensor: string;
  /** KL of the model as loaded to the model with only this matrix quantized, nats per token. */
  kl: number;
  top1Agreement: number;
  perplexity: number;
  /** Relative error of the residual stream after the last block. */
  finalError: number;
}

export interface SensitivityTotal {
  name: string;
  /** Sum of the cells' KL: to first order, what quantizing them all together costs. */
  kl: number;
  maxKl: number;
}

export interface SensitivityMap {
  scheme: string;
  /** serde's None arrives as undefined (the page never sets run-time quantizers here). */
  activations?: unknown;
  kv?: unknown;
  tokens: number;
  window: number;
  layers: number;
  classes: string[];
  cells: SensitivityCell[];
  perClass: SensitivityTotal[];
  perLayer: SensitivityTotal[];
  referencePerplexity: number;
  backend: Backend;
  ms: number;
}

/** One token of the evaluation text. */
export interface TextToken {
  index: number;
  id: number;
  text: string;
}

/** One predicted token of the text (src/study/token_view.rs PositionView). */
export interface PositionView {
  /** Index in `TokenView.tokens` of the token that was predicted. */
  index: number;
  nextToken: number;
  kl: number;
  referenceTop1: number;
  quantizedTop1: number;
  nllReference: number;
  nllQuantized: number;
  /** The most likely next token differs between the models. */
  flipped: boolean;
}

export interface TokenView {
  tokens: TextToken[];
  positions: PositionView[];
  /** Indices into `positions`, largest KL first. */
  worst: number[];
  /** The evaluation's metrics, as `evaluate` gives them (without `window` and `ms`). */
  result: Omit<EvalMetrics, 'window' | 'ms'>;
  window: number;
  ms: number;
}

/** One predicted token seen closely (src/study/token_view.rs PositionDetail). */
export interface PositionDetail {
  index: number;
  reference: TopToken[];
  quantized: TopToken[];
  /** Relative error of the predicting token's residual stream: after the embeddings, then after each block. */
  layerErrors: number[];
  /** Blocks after which the predicting token carries a massive activation in the reference. */
  massiveAfter: number[];
}

/** The massive activation's place and signed value (src/study/breakage.rs). */
export interface MassiveAt {
  block: number;
  token: number;
  channel: number;
  value: number;
}

export interface OutlierFootprint {
  massive: MassiveAt;
  /** Mean attention of later queries on token 0. */
  sink: number;
}

/** What the configuration breaks: the reference's outliers against the model under study's. */
export interface Breakage {
  reference: OutlierFootprint;
  under_study: OutlierFootprint;
  massive_ratio: number;
  sink_ratio: number;
  /** "massive activation" and/or "attention sink": moved by more than `breakFactor`. */
  breaks: string[];
  breakFactor: number;
}

/** The model under study's weights recipe as a GGUF file (`exportGguf` of src/web/export.rs). */
export interface GgufExport {
  /** The file; moved from the worker to the page, not copied. */
  bytes: Uint8Array<ArrayBuffer>;
  ms: number;
}

/** Where a model's bytes come from. */
export type ModelSource =
  | { kind: 'url'; url: string }
  | { kind: 'gguf-file'; file: File }
  | { kind: 'safetensors-files'; weights: File; config: File; tokenizer: File }
  /** A sharded checkpoint: model.safetensors.index.json and the shards it names (each read a range at a time). */
  | { kind: 'safetensors-shards'; index: File; shards: File[]; config: File; tokenizer: File }
  /** A file the user opened before, from this browser's cache (`local:NAME` in a shared link). */
  | { kind: 'cached-local'; name: string };

/** What mean-massive was calibrated on (src/model/intervene.rs), the same in the CLI and the page. */
export interface MeanMassiveCalibration {
  model: string;
  text: string;
  tokens: number;
  window: number;
  flagged_pairs: number;
}

/** What `setRuntimeQuant` resolves to (src/web/runtime_quant.rs). serde's None arrives as undefined. */
export interface RuntimeApplied {
  /** What runs in the GPU forward of the model under study, in words ("activations int8-token, KV …"). */
  gpu: string;
  /** The calibrated method answering predictions and metrics on the CPU reference, if any. */
  cpuMethod?: string | null;
  /** What the method or a search decided (per-layer choices, the allocation). */
  decisions?: unknown;
  /** Bit allocation's recipe, to apply with applyRecipe. */
  recipe?: string | null;
  bitsPerWeight?: number | null;
  ms: number;
}

/** A configuration to pin as the reference (src/web/pin.rs PinRequest): the shapes `applyRecipe`, `setRuntimeQuant` and `setIntervention` take. */
export interface PinRequest {
  /** How the page names it. */
  label: string;
  /** A recipe (JSON) or one scheme name; "keep": the weights as loaded. */
  recipe: string;
  runtime: RuntimeQuantConfig;
  /** An intervention name, or "" for none. */
  intervention: string;
}

/** What `pinReference` resolves to (src/study/pin.rs PinnedInfo). serde's None arrives as undefined. */
export interface PinnedReference {
  label: string;
  /** Where the reference now runs. */
  backend: Backend;
  /** Of the pinned weights, when it quantized them. */
  bitsPerWeight?: number | null;
  interventionCalibration?: MeanMassiveCalibration | null;
  /** Preparing (calibrating, quantizing) and uploading. */
  ms: number;
}

export interface Loaded {
  summary: ModelSummary;
  device: DeviceInfo;
  /** Size of the model file(s). */
  bytes: number;
  /** The bytes came from this browser's cache instead of the network or disk. */
  fromCache: boolean;
  ms: number;
}

/** The page's wish for the model as loaded: 'auto' (measure on a software adapter) or 'webgpu'. */
export type ForwardPolicy = 'auto' | 'webgpu';

// ---------------------------------------------------------------------------------------------
// The operations.

/** What an evaluation runs on: the first `maxTokens` of `text` (the shipped text when empty), in windows of `window`. */
export interface EvaluationArgs {
  maxTokens: number;
  window: number;
  text: string;
}

export interface EngineApi {
  /** `forward`: where the model as loaded runs when there is a GPU (forward.ts, `?backend=`). */
  load: { args: { name: string; source: ModelSource; useGpu: boolean; forward: ForwardPolicy }; result: Loaded };
  predict: { args: { prompt: string; topK: number }; result: Prediction };
  predictBoth: { args: { prompt: string; topK: number }; result: BothPrediction };
  generate: {
    /** `chat`: the prompt is a user's message in the model's chat template (summary.has_chat_template). */
    args: {
      prompt: string;
      maxTokens: number;
      temperature: number;
      topP: number;
      seed: number;
      asLoaded: boolean;
      chat: boolean;
    };
    result: Generation;
  };
  applyRecipe: { args: { recipe: string }; result: Applied };
  setIntervention: { args: { name: string }; result: { ms: number; calibration: MeanMassiveCalibration | null } };
  setRuntimeQuant: { args: { config: RuntimeQuantConfig }; result: RuntimeApplied };
  evaluate: { args: EvaluationArgs; result: EvalMetrics };
  /** Every later comparison (predictBoth's reference, evaluate, tokenView, positionDetail, breakage) is against `request`; progress while it is prepared on the CPU. */
  pinReference: { args: { request: PinRequest }; result: PinnedReference };
  /** The model as loaded is the reference again. */
  unpinReference: { args: Record<string, never>; result: null };
  /** Streams each cell as a `cell` message before the result; `stop` cancels before the next cell. */
  sensitivity: { args: { config: SensitivityConfig; maxTokens: number; window: number }; result: SensitivityMap };
  /** One sensitivity map per rung, then the greedy descent to the budget; `stop` cancels before the next cell. The recipe is returned, not applied. */
  allocateByMeasurement: {
    args: { config: AllocationConfig; maxTokens: number; window: number };
    result: MeasuredRecipe;
  };
  tokenView: { args: EvaluationArgs; result: TokenView };
  positionDetail: { args: EvaluationArgs & { index: number }; result: PositionDetail };
  breakage: { args: EvaluationArgs; result: Breakage };
  /** Progress counts the tensors quantized; rejects with the tensor and scheme a GGUF cannot hold. */
  exportGguf: { args: Record<string, never>; result: GgufExport };
  probe: { args: { prompt: string; asLoaded: boolean; layer: number; point: string }; result: ViewResult<'probe'> };
  attentionMaps: { args: { prompt: string; layer: number; asLoaded: boolean }; result: ViewResult<'attentionMaps'> };
  weightStats: { args: { tensor: string; scheme: string }; result: ViewResult<'weightStats'> };
  outlierReport: { args: { prompt: string; rule: string }; result: ViewResult<'outlierReport'> };
  /** Test-only (www/tests/e2e.mjs): destroys the WebGPU device, as a driver reset would lose it. */
  debugDestroyDevice: { args: Record<string, never>; result: { destroyed: boolean } };
}

export type Method = keyof EngineApi;
export type ArgsOf<M extends Method> = EngineApi[M]['args'];
export type ResultOf<M extends Method> = EngineApi[M]['result'];

/** page -> worker: run one operation. */
export type CallRequest<M extends Method = Method> = {
  [K in M]: { type: 'call'; id: number; method: K; args: ArgsOf<K> };
}[M];

/**
 * page -> worker: stop the generation whose request id is `target` after its current token.
 * Handled at once, not queued behind the generation; no reply of its own (the generation's
 * result says stop: 'stopped').
 */
export interface StopRequest {
  type: 'stop';
  target: number;
}

export type PageMessage = CallRequest | StopRequest;

export type ResultReply<M extends Method = Method> = {
  [K in M]: { type: 'result'; id: number; method: K; result: ResultOf<K> };
}[M];

/** worker -> page. */
export type WorkerMessage =
  /** Sent once, unprompted, when the wasm is instantiated. */
  | { type: 'ready'; capabilities: Capabilities }
  /** Stages 'download', 'cache' and 'read' count bytes (total 0 when unknown); others come from the engine. */
  | { type: 'progress'; id: number; stage: string; done: number; total: number }
  /** One generated piece of text (streamed before the generate result). */
  | { type: 'token'; id: number; piece: string; count: number }
  /** One measured cell of a sensitivity map (streamed before the sensitivity result). */
  | { type: 'cell'; id: number; cell: SensitivityCell }
  | ResultReply
  /** The model's WebGPU device was lost (a driver reset, or debugDestroyDevice): this engine cannot compute on the GPU any more. */
  | { type: 'deviceLost'; message: string }
  /** fatal: the engine crashed (a panic or a wasm trap) and this worker must be thrown away. */
  | { type: 'error'; id: number | null; message: string; fatal: boolean };

export function callRequest<M extends Method>(id: number, method: M, args: ArgsOf<M>): CallRequest<M> {
  return { type: 'call', id, method, args } as CallRequest<M>;
}

const WORKER_MESSAGE_TYPES = new Set(['ready', 'progress', 'token', 'cell', 'result', 'deviceLost', 'error']);

/**
 * Whether `data` has the shape of a worker message. The worker is ours, but a message from a
 * stale build (an old cached worker script) must be told apart from a bug in this one.
 */
export function isWorkerMessage(data: unknown): data is WorkerMessage {
  if (typeof data !== 'object' || data === null) return false;
  const m = data as Record<string, unknown>;
  if (typeof m.type !== 'string' || !WORKER_MESSAGE_TYPES.has(m.type)) return false;
  switch (m.type) {
    case 'ready':
      return typeof m.capabilities === 'object' && m.capabilities !== null;
    case 'progress':
      return (
        typeof m.id === 'number' &&
        typeof m.stage === 'string' &&
        typeof m.done === 'number' &&
        typeof m.total === 'number'
      );
    case 'token':
      return typeof m.id === 'number' && typeof m.piece === 'string' && typeof m.count === 'number';
    case 'cell':
      return typeof m.id === 'number' && typeof m.cell === 'object' && m.cell !== null;
    case 'result':
      return typeof m.id === 'number' && typeof m.method === 'string';
    case 'deviceLost':
      return typeof m.message === 'string';
    default:
      return (
        (m.id === null || typeof m.id === 'number') && typeof m.message === 'string' && typeof m.fatal === 'boolean'
      );
  }
}
