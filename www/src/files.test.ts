import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelFilesError, classifyModelFiles } from './files';

const f = (name: string) => ({ name });

test('one GGUF is a GGUF model', () => {
  assert.deepEqual(classifyModelFiles([f('SmolLM.Q4_1.GGUF')]), {
    kind: 'gguf',
    name: 'SmolLM.Q4_1.GGUF',
    file: f('SmolLM.Q4_1.GGUF'),
  });
});

test('a single file of unknown type goes to the GGUF parser, which says what it is not', () => {
  assert.equal(classifyModelFiles([f('garbage.bin')]).kind, 'gguf');
});

test('safetensors with config.json and tokenizer.json, in any order', () => {
  const m = classifyModelFiles([f('tokenizer.json'), f('model.safetensors'), f('config.json')]);
  assert.equal(m.kind, 'safetensors');
  if (m.kind === 'safetensors') {
    assert.equal(m.name, 'model');
    assert.equal(m.weights.name, 'model.safetensors');
    assert.equal(m.config.name, 'config.json');
    assert.equal(m.tokenizer.name, 'tokenizer.json');
  }
});

test('what is missing or extra is named', () => {
  assert.throws(
    () => classifyModelFiles([f('model.safetensors'), f('config.json')]),
    /needs tokenizer\.json beside it/,
  );
  assert.throws(() => classifyModelFiles([f('model.safetensors')]), /needs config\.json and tokenizer\.json/);
  assert.throws(() => classifyModelFiles([f('a.gguf'), f('b.gguf')]), /one \.gguf file at a time/);
  assert.throws(
    () =>
      classifyModelFiles([f('a-00001.safetensors'), f('a-00002.safetensors'), f('config.json'), f('tokenizer.json')]),
    /select its model\.safetensors\.index\.json with them/,
  );
  assert.throws(
    () => classifyModelFiles([f('model.safetensors.index.json'), f('model-00001-of-00002.safetensors')]),
    /model\.safetensors\.index\.json needs config\.json and tokenizer\.json/,
  );
  assert.throws(() => classifyModelFiles([f('config.json'), f('tokenizer.json')]), /no model weights/);
  assert.throws(() => classifyModelFiles([]), ModelFilesError);
});

test('shards with their index, config.json and tokenizer.json are one sharded checkpoint', () => {
  const m = classifyModelFiles([
    f('model-00002-of-00002.safetensors'),
    f('config.json'),
    f('model.safetensors.index.json'),
    f('model-00001-of-00002.safetensors'),
    f('tokenizer.json'),
  ]);
  assert.equal(m.kind, 'safetensors-shards');
  if (m.kind === 'safetensors-shards') {
    assert.equal(m.name, 'model');
    assert.equal(m.index.name, 'model.safetensors.index.json');
    assert.deepEqual(
      m.shards.map((s) => s.name),
      ['model-00002-of-00002.safetensors', 'model-00001-of-00002.safetensors'],
    );
  }
});
