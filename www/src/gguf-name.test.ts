import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ggufFileName } from './gguf-name';

const SERVED = 'models/SmolLM2-135M-Instruct.Q4_1.gguf';

test('a uniform recipe names its scheme, after the model file without folder and extension', () => {
  assert.equal(ggufFileName(SERVED, 'q4_0'), 'quantscope-SmolLM2-135M-Instruct.Q4_1-q4_0.gguf');
  assert.equal(
    ggufFileName(SERVED, '{"default":"q8_0","rules":[]}'),
    'quantscope-SmolLM2-135M-Instruct.Q4_1-q8_0.gguf',
  );
});

test('nothing applied is "as-loaded", rules make it "mixed", an unknown recipe is left out', () => {
  assert.equal(ggufFileName(SERVED, 'keep'), 'quantscope-SmolLM2-135M-Instruct.Q4_1-as-loaded.gguf');
  assert.equal(
    ggufFileName(SERVED, '{"default":"keep","rules":[{"tensors":"blk.0.ffn_down.weight","scheme":"q8_0"}]}'),
    'quantscope-SmolLM2-135M-Instruct.Q4_1-mixed.gguf',
  );
  assert.equal(ggufFileName(SERVED, '{not json'), 'quantscope-SmolLM2-135M-Instruct.Q4_1-mixed.gguf');
  assert.equal(ggufFileName(SERVED, null), 'quantscope-SmolLM2-135M-Instruct.Q4_1.gguf');
});

test('a file opened from disk and odd characters give a name every file system takes', () => {
  assert.equal(ggufFileName('local:my model (v2).gguf', 'q8_0'), 'quantscope-my-model-v2-q8_0.gguf');
  assert.equal(ggufFileName('local:model.safetensors', 'keep'), 'quantscope-model-as-loaded.gguf');
  assert.equal(ggufFileName('local:../..', 'q4_k'), 'quantscope-model-q4_k.gguf');
  assert.equal(ggufFileName('', null), 'quantscope-model.gguf');
});
