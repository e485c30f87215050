// Turning what the wasm returns into what a chart draws. Pure functions, unit-tested.

import { formatNumber } from './scales.ts';
import type { AttentionSummary, ChainLink, OutlierReport, ProbePoint, ProbeResult, TokenCategory } from './types.ts';

/** A token's text with its whitespace made visible (a leading space as "␣", a newline as "↵"). */
export function visibleToken(text: string): string {
  if (text === '') return '∅';
  return text.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/ /g, '␣');
}

/** The number of blocks of a model from its GGUF tensor names (`blk.N.*`); 0 when there are none. */
export function layerCount(tensorNames: readonly string[]): number {
  let max = -1;
  for (const name of tensorNames) {
    const m = /^blk\.(\d+)\./.exec(name);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

/** The tensor the weight views open on: the first block's down projection, the classic home of
 * weight outliers, else the first 2-D-looking block weight, else the first name. */
export function defaultTensor(tensorNames: readonly string[]): string {
  return (
    tensorNames.find((n) => /^blk\.0\.ffn_down\.weight$/.test(n)) ??
    tensorNames.find((n) => /\.ffn_down\.weight$/.test(n)) ??
    tensorNames.find((n) => /^blk\.\d+\.(attn_|ffn_).*\.weight$/.test(n)) ??
    tensorNames[0] ??
    ''
  );
}

/** One point of the per-layer magnitude chart. */
export interface LayerPoint {
  /** The x position: −1 for the embeddings, else the block. */
  layer: number;
  label: string;
  maxAbs: number;
  /** The median |x|, estimated as the geometric middle of the histogram bin that holds it. */
  medianAbs: number;
  meanAbs: number;
}

/** The median |x| a probe summary reports: its histogram bin's geometric middle. */
export function probeMedian(range: readonly [number, number]): number {
  const [low, high] = range;
  return low > 0 && high > 0 ? Math.sqrt(low * high) : Math.max(0, high);
}

/**
 * Per-layer max, median and mean |x| at probe point `point`, in layer order. For the residual
 * stream the embeddings come first (the stream before block 0), as layer −1.
 */
export function layerSeries(probes: readonly ProbeResult[], point: ProbePoint): LayerPoint[] {
  const wanted = probes.filter((p) => p.point === point || (point === 'residual' && p.point === 'embeddings'));
  return wanted
    .map((p) => {
      const embeddings = p.point === 'embeddings';
      return {
        layer: embeddings && point !== 'embeddings' ? -1 : p.layer,
        label: embeddings ? 'emb' : String(p.layer),
        maxAbs: p.summary.max_abs,
        medianAbs: probeMedian(p.summary.median_range),
        meanAbs: p.summary.mean_abs,
      };
    })
    .sort((a, b) => a.layer - b.layer);
}

/**
 * The largest jump of max|x| from one block to the next (ratio), where massive activations
 * appear; null with fewer than two blocks. The step from the embeddings into block 0 is left
 * out: embeddings are always small, so that step is large in every model.
 */
export function largestJump(series: readonly LayerPoint[]): { from: number; to: number; ratio: number } | null {
  let best: { from: number; to: number; ratio: number } | null = null;
  for (let i = 1; i < series.length; i++) {
    if (series[i - 1].layer < 0) continue;
    const before = series[i - 1].maxAbs;
    const ratio = before > 0 ? series[i].maxAbs / before : Infinity;
    if (!best || ratio > best.ratio) best = { from: series[i - 1].layer, to: series[i].layer, ratio };
  }
  return best;
}

/** Sink scores as a `[layers × heads]` matrix (layer order); missing entries are NaN. */
export function sinkMatrix(attention: readonly AttentionSummary[]): {
  layers: number[];
  heads: number;
  values: Float32Array;
} {
  const sorted = [...attention].sort((a, b) => a.layer - b.layer);
  const heads = sorted.reduce((m, a) => Math.max(m, a.sink_scores.length), 0);
  const values = new Float32Array(sorted.length * heads).fill(NaN);
  sorted.forEach((a, i) => a.sink_scores.forEach((s, h) => (values[i * heads + h] = s)));
  return { layers: sorted.map((a) => a.layer), heads, values };
}

/** Index of `probs[(h·n + q)·n + k]`, with bounds checked. */
export function attentionIndex(heads: number, n: number, h: number, q: number, k: number): number {
  if (h < 0 || h >= heads || q < 0 || q >= n || k < 0 || k >= n) {
    throw new RangeError(`attention index (${h}, ${q}, ${k}) outside ${heads} heads × ${n} × ${n}`);
  }
  return (h * n + q) * n + k;
}

export const CATEGORY_LABELS: Record<TokenCategory, string> = {
  initial: 'initial',
  strong_delimiter: 'delimiter',
  weak_semantic: 'weak semantic',
  other: 'other',
};

/** The name of hidden state `index` of an outlier report: 0 is the embeddings. */
export function hiddenStateName(index: number): string {
  return index === 0 ? 'embeddings' : `block ${index - 1}`;
}

/** Consecutive indices as runs: [3,4,5,9] → [[3,5],[9,9]]. */
export function runs(indices: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const i of indices) {
    const last = out[out.length - 1];
    if (last && last[1] + 1 === i) last[1] = i;
    else out.push([i, i]);
  }
  return out;
}

/** One box of the causal-chain diagram. */
export interface ChainNode {
  kind: 'weight' | 'channel' | 'sink';
  title: string;
  lines: string[];
}

/** One row of the diagram: weight column → activation channel → attention sink. */
export interface ChainRow {
  channel: number;
  /** The down projection's tensor, and the block where the channel first appears (null: embeddings). */
  tensor: string | null;
  block: number | null;
  nodes: [ChainNode, ChainNode, ChainNode];
}

/**
 * The causal chain of a report as diagram rows, at most `max` (the report orders links by the
 * first hidden state showing them, largest first).
 */
export function chainRows(report: OutlierReport, max: number): ChainRow[] {
  const text = (t: number) => visibleToken(report.tokens[t]?.text ?? `#${t}`);
  return report.chain.slice(0, Math.max(0, max)).map((link: ChainLink) => {
    const d = link.down_projection;
    const weight: ChainNode = d
      ? {
          kind: 'weight',
          title: `${shortTensor(d.tensor)} col ${d.dominant_column}`,
          lines: [
            `writes row ${d.row}: w = ${formatNumber(d.weight)}`,
            `${d.row_ratio.toFixed(1)}× the row's mean |W|`,
            `column ratio ${d.column_ratio.toFixed(1)} (rank ${d.column_rank})`,
          ],
        }
      : { kind: 'weight', title: 'embeddings', lines: ['present before block 0', '(no down projection)'] };
    const peak = link.carriers[0];
    const states = runs(link.hidden_states)
      .map(([a, b]) => (a === b ? hiddenStateName(a) : `${hiddenStateName(a)}–${(b - 1).toString()}`))
      .join(', ');
    const channel: ChainNode = {
      kind: 'channel',
      title: `channel ${link.channel}`,
      lines: [
        peak ? `${text(peak.token)} (token ${peak.token}) = ${formatNumber(peak.value)}` : 'no carrier',
        `first in ${hiddenStateName(link.first_hidden_state)}`,
        `outlier in ${states}`,
      ],
    };
    const later = link.attention;
    const meanShare = later.length ? later.reduce((s, c) => s + c.share, 0) / later.length : 0;
    const peakShare = later.reduce(
      (m, c) => (c.share > m.share ? c : m),
      later[0] ?? { block: -1, share: 0, mean_sink_score: 0 },
    );
    const carriers = [...new Set(link.carriers.map((e) => e.token))].slice(0, 3).map(text).join(' ');
    const sink: ChainNode = {
      kind: 'sink',
      title: `sink on ${carriers || '—'}`,
      lines: later.length
        ? [
            `${(meanShare * 100).toFixed(0)}% of attention, mean of ${later.length} later blocks`,
            `peak ${(peakShare.share * 100).toFixed(0)}% in block ${peakShare.block}`,
            `mean sink score ${(later.reduce((s, c) => s + c.mean_sink_score, 0) / later.length).toFixed(2)}`,
          ]
        : ['no later block'],
    };
    return {
      channel: link.channel,
      tensor: d?.tensor ?? null,
      block: link.first_block ?? null,
      nodes: [weight, channel, sink],
    };
  });
}

/** "blk.3.ffn_down.weight" → "blk.3.ffn_down". */
export function shortTensor(name: string): string {
  return name.replace(/\.weight$/, '');
}

/** One row of the outlier table: a hidden state with its outlier tokens. */
export interface OutlierRow {
  state: string;
  maxAbs: number;
  medianAbs: number;
  threshold: number;
  tokens: { token: number; text: string; category: TokenCategory; channel: number; maxAbs: number }[];
}

/** The report's hidden states as table rows; with `onlyOutliers`, those that have outlier tokens. */
export function outlierRows(report: OutlierReport, onlyOutliers: boolean): OutlierRow[] {
  return report.hidden_states
    .filter((s) => !onlyOutliers || s.outlier_tokens.length > 0)
    .map((s) => ({
      state: hiddenStateName(s.index),
      maxAbs: s.max_abs,
      medianAbs: s.median_abs,
      threshold: s.threshold,
      tokens: s.outlier_tokens.map((t) => ({
        token: t.token,
        text: visibleToken(t.text),
        category: t.category,
        channel: t.channel,
        maxAbs: t.max_abs,
      })),
    }));
}

/** `max|x| / threshold` for every (hidden state, token): > 1 exactly where the rule flags it. */
export function exceedanceMatrix(report: OutlierReport): { states: number; tokens: number; values: Float32Array } {
  const states = report.hidden_states.length;
  const tokens = report.tokens.length;
  const values = new Float32Array(states * tokens);
  report.hidden_states.forEach((s, i) => {
    for (let t = 0; t < tokens; t++) {
      values[i * tokens + t] = s.threshold > 0 ? (s.token_max_abs[t] ?? 0) / s.threshold : 0;
    }
  });
  return { states, tokens, values };
}
