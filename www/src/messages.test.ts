import { test } from 'node:test';
import assert from 'node:assert/strict';
import { callRequest, isWorkerMessage, type CallRequest } from './messages';

test('callRequest builds the message the worker dispatches on', () => {
  const m: CallRequest<'generate'> = callRequest(7, 'generate', {
    prompt: 'p',
    maxTokens: 3,
    temperature: 0,
    topP: 1,
    seed: 0,
    asLoaded: true,
    chat: false,
  });
  assert.deepEqual(m, {
    type: 'call',
    id: 7,
    method: 'generate',
    args: { prompt: 'p', maxTokens: 3, temperature: 0, topP: 1, seed: 0, asLoaded: true, chat: false },
  });
  // Narrowing by method gives that method's arguments.
  const any: CallRequest = m;
  if (any.method === 'generate') assert.equal(any.args.asLoaded, true);
  else assert.fail('method lost');
});

test('worker messages are recognized by shape', () => {
  assert.ok(isWorkerMessage({ type: 'ready', capabilities: { version: '1', schemes: [], runtime: null, views: {} } }));
  assert.ok(isWorkerMessage({ type: 'progress', id: 1, stage: 'parse', done: 0, total: 1 }));
  assert.ok(isWorkerMessage({ type: 'token', id: 1, piece: ' Paris', count: 1 }));
  assert.ok(isWorkerMessage({ type: 'cell', id: 1, cell: { layer: 0, class: 'attn_q', kl: 0.1 } }));
  assert.ok(isWorkerMessage({ type: 'result', id: 1, method: 'predict', result: {} }));
  assert.ok(isWorkerMessage({ type: 'error', id: null, message: 'x', fatal: true }));
});

test('anything else is not a worker message', () => {
  for (const bad of [
    null,
    3,
    'ready',
    {},
    { type: 'loaded', id: 1 },
    { type: 'progress', id: '1', stage: 's', done: 0, total: 1 },
    { type: 'token', id: 1, piece: 5, count: 1 },
    { type: 'cell', id: 1, cell: null },
    { type: 'cell', id: '1', cell: {} },
    { type: 'error', id: 1, message: 'x' },
    { type: 'result', id: 1 },
    { type: 'ready' },
  ]) {
    assert.equal(isWorkerMessage(bad), false, JSON.stringify(bad));
  }
});
