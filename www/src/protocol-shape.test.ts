import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { checkResults, type Shape } from './protocol-shape';

const MESSAGES = fileURLToPath(new URL('./messages.ts', import.meta.url));

/** The shape of a plain value, as the e2e test records it in the page. */
function shapeOf(v: unknown): Shape {
  if (v === null) return { kind: 'null' };
  if (v === undefined) return { kind: 'undefined' };
  if (typeof v === 'number') return { kind: 'number' };
  if (typeof v === 'boolean') return { kind: 'boolean' };
  if (typeof v === 'string') return { kind: 'string', value: v };
  if (ArrayBuffer.isView(v)) return { kind: 'typedarray' };
  if (Array.isArray(v)) return { kind: 'array', items: v.slice(0, 2).map(shapeOf) };
  return { kind: 'object', fields: Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, shapeOf(x)])) };
}

const top = { id: 3, token: ' Paris', prob: 0.5, logit: 12 };
const prediction = { model: 'm', prompt: 'p', tokens: [1, 2], top: [top], backend: 'cpu', ms: 1 };

test('a result the engine sends as messages.ts declares it passes', () => {
  assert.deepEqual(checkResults(MESSAGES, { predict: [shapeOf(prediction)] }), []);
  // serde-wasm-bindgen's None is undefined: fine for an optional field.
  const both = {
    reference: [top],
    quantized: [top],
    tokens: [1],
    referenceBackend: 'cpu',
    quantizedBackend: undefined,
    sameRun: true,
    ms: 2,
  };
  assert.deepEqual(checkResults(MESSAGES, { predictBoth: [shapeOf(both)] }), []);
});

test('a field under another name, a missing one and a value of another type are each reported', () => {
  const snake = { ...prediction, top: [{ ...top, logit: undefined, log_it: 1 }] };
  assert.deepEqual(checkResults(MESSAGES, { predict: [shapeOf(snake)] }), [
    'predict.top[0].logit: the engine sent a undefined, the type says number',
    'predict.top[0].log_it: the engine sends it, the type has no such field',
  ]);
  const { ms: _ms, ...noMs } = prediction;
  assert.deepEqual(checkResults(MESSAGES, { predict: [shapeOf(noMs)] }), [
    'predict.ms: the type requires it, the engine did not send it',
  ]);
  assert.deepEqual(checkResults(MESSAGES, { predict: [shapeOf({ ...prediction, backend: 'tpu' })] }), [
    'predict.backend: the engine sent the string "tpu", the type says "webgpu" | "cpu"',
  ]);
  assert.deepEqual(checkResults(MESSAGES, { nosuch: [shapeOf({})] }), [
    'nosuch: the engine answered it, EngineApi has no such method',
  ]);
});

test('a mismatch inside a member of a union is reported where it is, a tuple is read by position', () => {
  // DeviceInfo.adapter is AdapterSummary | null: an adapter with a misspelled field is not "not null".
  const device = {
    backend: 'webgpu',
    adapter: { name: 'a', backend: 'b', device_type: 'c', features: {}, max_compute_invocations: 256 },
    reason: null,
    gpuBytes: 1,
    timings: { parseMs: 1, adapterMs: 1, uploadMs: 1 },
  };
  const problems = checkResults(MESSAGES, {
    load: [shapeOf({ summary: undefined, device, bytes: 1, fromCache: true, ms: 1 })],
  });
  assert.ok(
    problems.includes('load.device.adapter.max_compute_invocations: the engine sends it, the type has no such field'),
    problems.join('\n'),
  );
  assert.ok(!problems.some((p) => p.startsWith('load.device.adapter: ')), problems.join('\n'));
});
