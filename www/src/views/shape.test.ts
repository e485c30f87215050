import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  attentionIndex,
  chainRows,
  defaultTensor,
  exceedanceMatrix,
  largestJump,
  layerCount,
  layerSeries,
  outlierRows,
  probeMedian,
  runs,
  sinkMatrix,
  visibleToken,
} from './shape.ts';
import type { OutlierReport, ProbeResult, ProbeSummary } from './types.ts';

function summary(maxAbs: number, median: [number, number], meanAbs: number): ProbeSummary {
  return {
    tokens: 2,
    channels: 4,
    max_abs: maxAbs,
    mean_abs: meanAbs,
    median_bin: 0,
    median_range: median,
    histogram: [],
    channel_max_abs: [],
    channel_argmax_token: [],
    token_max_abs: [],
    token_argmax_channel: [],
    top: [],
    token_top: [],
  };
}

test('whitespace in tokens is made visible', () => {
  assert.equal(visibleToken(' Paris'), '␣Paris');
  assert.equal(visibleToken('\n\n'), '↵↵');
  assert.equal(visibleToken(''), '∅');
});

test('layer count and default tensor come from GGUF names', () => {
  const names = [
    'token_embd.weight',
    'blk.0.attn_q.weight',
    'blk.0.ffn_down.weight',
    'blk.29.ffn_up.weight',
    'output_norm.weight',
  ];
  assert.equal(layerCount(names), 30);
  assert.equal(layerCount(['a', 'b']), 0);
  assert.equal(defaultTensor(names), 'blk.0.ffn_down.weight');
  assert.equal(defaultTensor(['blk.3.attn_k.weight', 'x']), 'blk.3.attn_k.weight');
  assert.equal(defaultTensor(['x']), 'x');
  assert.equal(defaultTensor([]), '');
});

test('the residual series starts with the embeddings and follows the layers', () => {
  const probes: ProbeResult[] = [
    { layer: 1, point: 'residual', summary: summary(900, [0.25, 0.28125], 0.5) },
    { layer: 0, point: 'embeddings', summary: summary(0.5, [0.0625, 0.0703125], 0.07) },
    { layer: 0, point: 'residual', summary: summary(3, [0.125, 0.140625], 0.2) },
    { layer: 0, point: 'down_input', summary: summary(40, [0.01, 0.02], 0.02) },
  ];
  const series = layerSeries(probes, 'residual');
  assert.deepEqual(
    series.map((p) => [p.layer, p.label, p.maxAbs]),
    [
      [-1, 'emb', 0.5],
      [0, '0', 3],
      [1, '1', 900],
    ],
  );
  assert.ok(Math.abs(series[1].medianAbs - Math.sqrt(0.125 * 0.140625)) < 1e-12);
  assert.deepEqual(
    layerSeries(probes, 'down_input').map((p) => p.layer),
    [0],
  );
  assert.deepEqual(largestJump(series), { from: 0, to: 1, ratio: 300 });
  // From the embeddings (0.5) into block 0 (3) is ×6 but never counts; with only that step, no jump.
  assert.equal(largestJump(series.slice(0, 2)), null);
  const bigStart = [{ ...series[0], maxAbs: 0.001 }, ...series.slice(1)];
  assert.deepEqual(largestJump(bigStart), { from: 0, to: 1, ratio: 300 });
});

test("the probe median is its bin's geometric middle, or the bin's top for bin 0", () => {
  assert.equal(probeMedian([1, 4]), 2);
  assert.equal(probeMedian([0, 2 ** -16]), 2 ** -16);
});

test('sink scores become a layer × head matrix with gaps as NaN', () => {
  const m = sinkMatrix([
    { layer: 1, sink_scores: [0.9, 0.1, 0.5], key_attention: [] },
    { layer: 0, sink_scores: [0.2, 0.3], key_attention: [] },
  ]);
  assert.deepEqual(m.layers, [0, 1]);
  assert.equal(m.heads, 3);
  assert.deepEqual(Array.from(m.values.slice(0, 2)), [Math.fround(0.2), Math.fround(0.3)]);
  assert.ok(Number.isNaN(m.values[2]));
  assert.deepEqual(Array.from(m.values.slice(3)), [0.9, 0.1, 0.5].map(Math.fround));
});

test('attention indices are head, query, key major and bounds-checked', () => {
  assert.equal(attentionIndex(9, 5, 0, 0, 0), 0);
  assert.equal(attentionIndex(9, 5, 2, 3, 1), (2 * 5 + 3) * 5 + 1);
  assert.throws(() => attentionIndex(9, 5, 9, 0, 0), /outside/);
  assert.throws(() => attentionIndex(9, 5, 0, 5, 0), /outside/);
});

test('runs join consecutive indices', () => {
  assert.deepEqual(runs([3, 4, 5, 9, 11, 12]), [
    [3, 5],
    [9, 9],
    [11, 12],
  ]);
  assert.deepEqual(runs([]), []);
});

function report(): OutlierReport {
  const state = (index: number, tokenMax: number[], threshold: number, outliers: number[]) => ({
    index,
    block: index === 0 ? null : index - 1,
    max_abs: Math.max(...tokenMax),
    mean_abs: 0.1,
    median_abs: 0.05,
    threshold,
    top_entries: [],
    top_channels: [],
    token_max_abs: tokenMax,
    outlier_tokens: outliers.map((t) => ({
      token: t,
      text: t === 0 ? '<s>' : ' the',
      category: t === 0 ? ('initial' as const) : ('weak_semantic' as const),
      max_abs: tokenMax[t],
      channel: 77,
    })),
    outlier_channels: outliers.length ? [77] : [],
  });
  return {
    model: 'm',
    prompt: 'p',
    rule: 'systematic',
    top_k: 5,
    tokens: [
      { index: 0, id: 1, text: '<s>', category: 'initial' },
      { index: 1, id: 2, text: ' the', category: 'weak_semantic' },
      { index: 2, id: 3, text: ' cat', category: 'other' },
    ],
    hidden_states: [
      state(0, [0.1, 0.1, 0.1], 100, []),
      state(1, [400, 2, 1], 100, [0]),
      state(2, [500, 2, 1], 100, [0]),
    ],
    weights: [],
    attention: [],
    chain: [
      {
        channel: 77,
        first_hidden_state: 1,
        hidden_states: [1, 2],
        carriers: [{ token: 0, channel: 77, value: -400 }],
        first_block: 0,
        down_projection: {
          tensor: 'blk.0.ffn_down.weight',
          row: 77,
          dominant_column: 1234,
          weight: 3.5,
          row_ratio: 120,
          column_ratio: 90,
          column_rank: 0,
        },
        attention: [
          { block: 1, share: 0.6, mean_sink_score: 0.7 },
          { block: 2, share: 0.8, mean_sink_score: 0.9 },
        ],
      },
    ],
  };
}

test('outlier rows list only the hidden states with outliers, tokens made visible', () => {
  const rows = outlierRows(report(), true);
  assert.deepEqual(
    rows.map((r) => r.state),
    ['block 0', 'block 1'],
  );
  assert.deepEqual(rows[0].tokens[0], { token: 0, text: '<s>', category: 'initial', channel: 77, maxAbs: 400 });
  assert.equal(outlierRows(report(), false).length, 3);
});

test('exceedance is max|x| over the threshold per hidden state and token', () => {
  const m = exceedanceMatrix(report());
  assert.deepEqual([m.states, m.tokens], [3, 3]);
  assert.equal(m.values[1 * 3 + 0], 4);
  assert.equal(m.values[2 * 3 + 1], Math.fround(0.02));
  // Exactly the flagged cells exceed 1.
  const flagged = Array.from(m.values)
    .map((v, i) => (v > 1 ? i : -1))
    .filter((i) => i >= 0);
  assert.deepEqual(flagged, [3, 6]);
});

test('the chain diagram reads weight column, channel and sink from the report', () => {
  const [row] = chainRows(report(), 4);
  assert.equal(row.channel, 77);
  assert.equal(row.tensor, 'blk.0.ffn_down.weight');
  assert.equal(row.block, 0);
  assert.equal(row.nodes[0].title, 'blk.0.ffn_down col 1234');
  assert.match(row.nodes[0].lines.join(' '), /row 77/);
  assert.equal(row.nodes[1].title, 'channel 77');
  assert.match(row.nodes[1].lines[0], /<s> \(token 0\) = -400$/);
  assert.match(row.nodes[1].lines[2], /block 0–1/);
  assert.equal(row.nodes[2].title, 'sink on <s>');
  assert.match(row.nodes[2].lines[0], /70% of attention, mean of 2 later blocks/);
  assert.match(row.nodes[2].lines[1], /peak 80% in block 2/);
  assert.equal(chainRows(report(), 0).length, 0);
  const embedded = report();
  // serde-wasm-bindgen leaves out a None: absent fields read as "none", not as block undefined.
  embedded.chain[0].down_projection = undefined;
  embedded.chain[0].first_block = undefined;
  const [fromEmbeddings] = chainRows(embedded, 1);
  assert.equal(fromEmbeddings.nodes[0].title, 'embeddings');
  assert.deepEqual([fromEmbeddings.tensor, fromEmbeddings.block], [null, null]);
});
