import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configurationRecipe, describeConfiguration, describeRuntime, pinRequest } from './configuration';
import { uniformControls } from './recipe';
import { defaultState } from './url-state';

test('a configuration is named by what it sets, leaving out the rest', () => {
  const d = defaultState();
  assert.equal(describeConfiguration(d), 'as loaded');
  assert.equal(describeConfiguration({ ...d, weights: uniformControls('q8_0') }), 'q8_0 everywhere');
  assert.equal(
    describeConfiguration({ ...d, runtime: { ...d.runtime, kv: 'int4-token' }, intervention: 'clip:99.5' }),
    'KV int4-token · clip:99.5',
  );
  assert.equal(
    describeConfiguration({ ...d, recipeMode: 'json', recipeText: '{"default":\n "nf4"}', intervention: 'drop-sink' }),
    '{"default": "nf4"} · drop-sink',
  );
  assert.equal(
    describeRuntime({ ...d.runtime, a: 'int8-token', method: 'smoothquant' }),
    'A int8-token · smoothquant (32 tok)',
  );
});

test('the recipe sent is the free recipe or the controls built into one', () => {
  const d = defaultState();
  assert.equal(configurationRecipe(d), '{"default":"keep","rules":[]}');
  assert.equal(configurationRecipe({ ...d, recipeMode: 'json', recipeText: ' nf4 ' }), 'nf4');
  assert.throws(() => configurationRecipe({ ...d, recipeMode: 'json', recipeText: '{' }), /not valid JSON/);
});

test('a pin request carries the label, the recipe, the run-time quantizers and the intervention', () => {
  const d = defaultState();
  const c = { ...d, weights: uniformControls('int2-g32-asym'), intervention: 'mean-massive' };
  assert.deepEqual(pinRequest(c), {
    label: 'int2-g32-asym everywhere · mean-massive',
    recipe: '{"default":"int2-g32-asym","rules":[]}',
    runtime: d.runtime,
    intervention: 'mean-massive',
  });
});
