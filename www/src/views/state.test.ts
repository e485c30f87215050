import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Cache, DEFAULT_STATE, needsOf, normalizeState } from './state.ts';

const tensors = ['token_embd.weight', 'blk.0.ffn_down.weight', 'blk.1.attn_q.weight'];
/** Menus as the engine's catalogs give them. */
const menus = { points: ['residual', 'down_input', 'embeddings'], rules: ['systematic', 'massive'] };

test('a partial state is completed from the defaults and the tensor list', () => {
  const s = normalizeState({}, DEFAULT_STATE, 30, tensors, menus);
  assert.deepEqual(s, { ...DEFAULT_STATE, tensor: 'blk.0.ffn_down.weight' });
});

test('values out of range or unknown fall back instead of breaking the views', () => {
  const base = normalizeState({}, DEFAULT_STATE, 30, tensors, menus);
  const s = normalizeState(
    { layer: 99, point: 'nowhere', head: -7, tensor: 'missing', rule: 'loud', view: 'nope' },
    base,
    30,
    tensors,
    menus,
  );
  assert.deepEqual(s, { ...base, layer: 29, head: -1 });
  assert.equal(normalizeState({ layer: 2.5 }, base, 30, tensors, menus).layer, base.layer);
  const good = normalizeState(
    { layer: 3, point: 'down_input', head: 4, tensor: 'blk.1.attn_q.weight', rule: 'massive', view: 'causal-chain' },
    base,
    30,
    tensors,
    menus,
  );
  assert.deepEqual(good, {
    view: 'causal-chain',
    layer: 3,
    point: 'down_input',
    head: 4,
    tensor: 'blk.1.attn_q.weight',
    rule: 'massive',
  });
});

test('each change refetches only what depends on it', () => {
  const s = normalizeState({}, DEFAULT_STATE, 30, tensors, menus);
  assert.deepEqual([...needsOf(s, { ...s, layer: 4 })].sort(), ['attention', 'probe']);
  assert.deepEqual([...needsOf(s, { ...s, point: 'mlp_input' })], ['probe']);
  assert.deepEqual([...needsOf(s, { ...s, head: 2 })], []);
  assert.deepEqual([...needsOf(s, { ...s, view: 'sink-heatmap' })], []);
  assert.deepEqual([...needsOf(s, { ...s, tensor: 'blk.1.attn_q.weight' })], ['weights']);
  assert.deepEqual([...needsOf(s, { ...s, rule: 'massive' })], ['report']);
});

test('the cache fetches each key once and forgets a failed fetch so it can be retried', async () => {
  const cache = new Cache<number>();
  let calls = 0;
  const fetch = () => Promise.resolve(++calls);
  assert.equal(await cache.get('a', fetch), 1);
  assert.equal(await cache.get('a', fetch), 1);
  assert.equal(await cache.get('b', fetch), 2);
  let fail = true;
  const flaky = () => (fail ? Promise.reject(new Error('busy')) : Promise.resolve(7));
  await assert.rejects(cache.get('c', flaky), /busy/);
  fail = false;
  assert.equal(await cache.get('c', flaky), 7);
  cache.clear();
  assert.equal(await cache.get('a', fetch), 3);
});
