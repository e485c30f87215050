// The data the outlier views read, exactly as the wasm `Playground` methods return it (field names
// as Rust's serde writes them: the engine's own structs keep snake_case, the facade's wrappers use
// camelCase), and the contract with the page shell (`ViewDataSource`, `ViewState`).
//
// serde-wasm-bindgen writes a Rust `None` as `undefined`, not `null`: such fields are optional
// here, and the views test them with `== null` or truthiness.

/** Where in a block a probe reads the activations (`gpu::forward::ProbePoint`). */
export type ProbePoint =
  | 'embeddings'
  | 'attn_input'
  | 'o_input'
  | 'residual_mid'
  | 'mlp_input'
  | 'down_input'
  | 'residual'
  | 'keys'
  | 'values';

export type OutlierRuleName = 'systematic' | 'massive';

/** The choices of the views' probe point and rule menus: the engine's catalogs (`probePoints()`, `outlierRules()`). */
export interface ViewMenus {
  points: readonly string[];
  rules: readonly string[];
}

export interface TokenText {
  index: number;
  id: number;
  text: string;
}

export interface Entry {
  token: number;
  channel: number;
  value: number;
}

/** `gpu::kernels::probe::ProbeSummary`: one probed tensor `[tokens × channels]`, reduced on the GPU. */
export interface ProbeSummary {
  tokens: number;
  channels: number;
  max_abs: number;
  mean_abs: number;
  /** The log-spaced |x| histogram bin holding the lower median, and that bin's [low, high). */
  median_bin: number;
  median_range: [number, number];
  histogram: number[];
  channel_max_abs: number[];
  channel_argmax_token: number[];
  token_max_abs: number[];
  token_argmax_channel: number[];
  top: Entry[];
  token_top: Entry[][];
}

export interface ProbeResult {
  layer: number;
  point: ProbePoint;
  summary: ProbeSummary;
}

export interface AttentionSummary {
  layer: number;
  /** Per head: mean attention of queries ≥ 1 to key 0. */
  sink_scores: number[];
  /** Per key: Σ over queries of the head-averaged attention. */
  key_attention: number[];
}

export interface ProbedTensor {
  layer: number;
  point: ProbePoint;
  width: number;
  /** `[tokens × width]`, row-major. */
  values: Float32Array;
}

/** `Playground.probe(prompt, asLoaded, layer, point)`. */
export interface ProbeData {
  tokens: TokenText[];
  probes: ProbeResult[];
  attention: AttentionSummary[];
  tensor: ProbedTensor | null;
  ms: number;
}

/** `Playground.attentionMaps(prompt, layer, asLoaded)`. */
export interface AttentionMapsData {
  tokens: TokenText[];
  layer: number;
  heads: number;
  /** Tokens: queries = keys = n. */
  n: number;
  /** `[heads × n × n]`: probs[(h·n + q)·n + k], zero above the diagonal. */
  probs: Float32Array;
  sinkScores: number[];
  keyAttention: number[];
  /** Keys whose head-averaged attention summed over queries is ≥ 0.1·n (Systematic Outliers). */
  outlierKeys: number[];
  /** "webgpu" (the model as now quantized, or as loaded) or "cpu" (the CPU reference, as loaded). */
  backend: 'webgpu' | 'cpu';
  ms: number;
}

export interface WeightEntry {
  row: number;
  value: number;
}

export interface WeightColumn {
  column: number;
  ratio: number;
  max_abs: number;
  mean_abs: number;
  rows: WeightEntry[];
}

/** `analysis::outliers::WeightOutliers`. */
export interface WeightOutliers {
  rows: number;
  cols: number;
  max_ratio: number;
  median_ratio: number;
  top_columns: WeightColumn[];
}

/** Two histograms over the same bins: `counts[i]` counts values in [min + i·w, min + (i+1)·w). */
export interface ValueHistogram {
  min: number;
  max: number;
  loaded: number[];
  /** The values after quantizing with the scheme (dequantized); absent when the scheme is "keep". */
  quantized?: number[] | null;
}

/**
 * Every value a quantized weight can take in the group (or GGUF block) holding the tensor's
 * largest |w|: for codebook schemes `levels[table]·scale + offset` of that group; for GGUF types
 * `step·q + offset` over the type's codes, decoded from that block's stored scales (the
 * sub-block's for K-quants). Weights beyond its ends are clipped to them.
 */
export interface QuantLevels {
  source: 'codebook' | 'gguf-block';
  /** "rotated" when the scheme quantizes Hadamard-rotated rows: the grid lives in that basis. */
  basis: 'original' | 'rotated';
  /** Which weights share this grid, in words ("row", "group of 32 columns", "block of 32",
   * "sub-block of 16 (super-block of 256)", "tensor"). */
  shared: string;
  row: number;
  /** Columns [start, end) of the group/block (the whole row when shared per row or tensor). */
  start: number;
  end: number;
  /** The largest |w| (in `basis`) and its column. */
  column: number;
  value: number;
  /** Sorted ascending. */
  values: number[];
}

/** `Playground.weightStats(tensor, scheme)`. */
export interface WeightStatsData {
  tensor: string;
  /** The scheme actually used (llama.cpp's fallback where a GGUF block does not divide a row), or "keep". */
  scheme: string;
  requested: string;
  dtype: string;
  rows: number;
  cols: number;
  /** max|W| / (mean|W| + 1e-8) of every column (input feature). */
  columnRatios: number[];
  outliers: WeightOutliers;
  histogram: ValueHistogram;
  levels?: QuantLevels | null;
  /** Weights (in the quantized basis) outside the value range of their own group's grid: clipped. */
  clipped: number;
  error?: { mse: number; sqnr_db?: number | null; max_abs: number } | null;
  bitsPerWeight?: number | null;
  ms: number;
}

export type TokenCategory = 'initial' | 'strong_delimiter' | 'weak_semantic' | 'other';

export interface TokenInfo extends TokenText {
  category: TokenCategory;
}

export interface ChannelMax {
  channel: number;
  max_abs: number;
  token: number;
}

export interface OutlierToken {
  token: number;
  text: string;
  category: TokenCategory;
  max_abs: number;
  channel: number;
}

export interface HiddenStateReport {
  /** 0: the embeddings; i ≥ 1: after block i − 1. */
  index: number;
  block?: number | null;
  max_abs: number;
  mean_abs: number;
  median_abs: number;
  threshold: number;
  top_entries: Entry[];
  top_channels: ChannelMax[];
  token_max_abs: number[];
  outlier_tokens: OutlierToken[];
  outlier_channels: number[];
}

export interface WeightReport extends WeightOutliers {
  tensor: string;
  block: number;
  kind: string;
}

export interface AttentionReport {
  block: number;
  sink_scores: number[];
  sink_heads: number[];
  key_attention: number[];
  median_key_attention: number;
  outlier_keys: number[];
}

export interface DownProjection {
  tensor: string;
  row: number;
  dominant_column: number;
  weight: number;
  row_ratio: number;
  column_ratio: number;
  column_rank: number;
}

export interface CarrierAttention {
  block: number;
  share: number;
  mean_sink_score: number;
}

export interface ChainLink {
  channel: number;
  first_hidden_state: number;
  hidden_states: number[];
  carriers: Entry[];
  first_block?: number | null;
  down_projection?: DownProjection | null;
  attention: CarrierAttention[];
}

/** `Playground.outlierReport(prompt, rule)`: `analysis::outliers::OutlierReport` (CPU reference, as loaded). */
export interface OutlierReport {
  model: string;
  prompt: string;
  rule: OutlierRuleName;
  top_k: number;
  tokens: TokenInfo[];
  hidden_states: HiddenStateReport[];
  weights: WeightReport[];
  attention: AttentionReport[];
  chain: ChainLink[];
  ms?: number;
}

/** What the views need from the model; the page shell implements it over its worker. */
export interface ViewDataSource {
  probe(prompt: string, asLoaded: boolean, layer: number, point: string): Promise<ProbeData>;
  attentionMaps(prompt: string, layer: number, asLoaded: boolean): Promise<AttentionMapsData>;
  weightStats(tensor: string, scheme: string): Promise<WeightStatsData>;
  outlierReport(prompt: string, rule: string): Promise<OutlierReport>;
  tensorNames(): string[];
  menus(): ViewMenus;
}

/** The views' part of the page state (kept in the URL by the shell). `head` −1 means every head. */
export interface ViewState {
  view: string;
  layer: number;
  point: string;
  head: number;
  tensor: string;
  rule: string;
}

/**
 * The weight scheme the histogram draws: one for every tensor, or the scheme each tensor holds
 * now (so that choosing another tensor in the views shows its own scheme). "keep": unquantized.
 */
export type SchemeChoice = string | ((tensor: string) => string);

export interface OutlierViews {
  /**
   * Re-fetch and redraw after a model or quantizer change. `modelKey` names the loaded model
   * (its file and size, say): while it stays the same, the weight statistics and the outlier
   * report (which read only the weights as loaded) are kept; without it they are refetched on
   * every call. Never rejects: a view whose data fails shows the error in its card.
   */
  update(prompt: string, scheme: SchemeChoice, modelKey?: string): Promise<void>;
  state(): ViewState;
  setState(s: Partial<ViewState>): Promise<void>;
}

/** Every view's `data-view` ID, in the order they are laid out. */
export const VIEW_IDS = [
  'residual-heatmap',
  'residual-layers',
  'sink-heatmap',
  'outlier-table',
  'attention-maps',
  'weight-columns',
  'weight-histogram',
  'causal-chain',
] as const;
export type ViewId = (typeof VIEW_IDS)[number];
