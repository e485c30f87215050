import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BLOCK_CLASSES,
  LayerRangeError,
  buildRecipe,
  checkLayerRange,
  defaultWeightControls,
  describeRecipe,
  parseRecipeText,
  recipeJson,
  recipeObject,
  singleTensorRecipe,
  tensorClass,
  uniformControls,
  uniformScheme,
  type WeightControls,
} from './recipe';

test('nothing set is the model as loaded', () => {
  assert.deepEqual(buildRecipe(defaultWeightControls()), { default: 'keep', rules: [] });
  assert.equal(describeRecipe(buildRecipe(defaultWeightControls())), 'as loaded');
});

test('one scheme everywhere becomes the default', () => {
  const c = uniformControls('int2-g32-asym');
  assert.equal(uniformScheme(c), 'int2-g32-asym');
  assert.deepEqual(buildRecipe(c), { default: 'int2-g32-asym', rules: [] });
  assert.equal(describeRecipe(buildRecipe(c)), 'int2-g32-asym everywhere');
});

test('per-class schemes and layer ranges become rules in order, later groups overriding', () => {
  const c: WeightControls = {
    groups: [
      { layers: '', schemes: { attn_q: 'int4-g128-asym', ffn_down: 'nf4-g64' } },
      { layers: '0 - 3', schemes: { ffn_down: 'keep', attn_q: '' } },
    ],
    embeddings: 'q8_0',
    output: '',
  };
  assert.equal(uniformScheme(c), null);
  assert.deepEqual(buildRecipe(c, 30), {
    default: 'keep',
    rules: [
      { tensors: 'blk.*.attn_q.weight', scheme: 'int4-g128-asym' },
      { tensors: 'blk.*.ffn_down.weight', scheme: 'nf4-g64' },
      { tensors: 'blk.*.ffn_down.weight', layers: '0-3', scheme: 'keep' },
      { tensors: 'token_embd.weight', scheme: 'q8_0' },
    ],
  });
  assert.equal(
    describeRecipe(buildRecipe(c)),
    'attn_q int4-g128-asym · ffn_down nf4-g64 · ffn_down@0-3 keep · token_embd q8_0',
  );
});

test('every block class has a rule when all are set in one group', () => {
  const schemes = Object.fromEntries(BLOCK_CLASSES.map((k, i) => [k, `int${(i % 7) + 2}`]));
  const r = buildRecipe({ groups: [{ layers: '', schemes }], embeddings: '', output: '' });
  assert.deepEqual(
    r.rules.map((x) => x.tensors),
    BLOCK_CLASSES.map((k) => `blk.*.${k}.weight`),
  );
});

test('layer ranges are checked against the model', () => {
  assert.deepEqual(checkLayerRange('', 30), { from: 0, to: 29 });
  assert.deepEqual(checkLayerRange('7', 30), { from: 7, to: 7 });
  assert.deepEqual(checkLayerRange(' 2-5 ', 30), { from: 2, to: 5 });
  assert.throws(() => checkLayerRange('5-2', 30), /starts after it ends/);
  assert.throws(() => checkLayerRange('0-30', 30), /past the last layer \(29\)/);
  assert.throws(() => checkLayerRange('a-b', 30), LayerRangeError);
  const c: WeightControls = {
    groups: [
      { layers: '', schemes: {} },
      { layers: '40', schemes: { attn_k: 'int8' } },
    ],
    embeddings: '',
    output: '',
  };
  assert.throws(() => buildRecipe(c, 30), /past the last layer/);
  assert.doesNotThrow(() => buildRecipe(c), 'without a layer count nothing is checked');
});

test('free recipe text: JSON, one scheme name, or a clear error', () => {
  assert.equal(parseRecipeText(' nf4 '), 'nf4');
  assert.deepEqual(
    parseRecipeText('{"rules": [{"tensors": "blk.*.ffn_down.weight", "layers": "0-3", "scheme": "int8"}]}'),
    {
      default: 'keep',
      rules: [{ tensors: 'blk.*.ffn_down.weight', layers: '0-3', scheme: 'int8' }],
    },
  );
  assert.throws(() => parseRecipeText(''), /empty/);
  assert.throws(() => parseRecipeText('int4 please'), /neither a recipe/);
  assert.throws(() => parseRecipeText('{"default": 4}'), /"default" must be a scheme name/);
  assert.throws(() => parseRecipeText('{"default": "nf4",}'), /not valid JSON/);
  assert.throws(() => parseRecipeText('{"defualt": "nf4"}'), /unknown field "defualt"/);
  assert.throws(() => parseRecipeText('{"rules": [{"scheme": "nf4"}]}'), /rule 1 needs "tensors"/);
  assert.throws(() => parseRecipeText('{"rules": {"tensors": "x"}}'), /must be a list/);
});

test('tensor classes from matrix names', () => {
  assert.equal(tensorClass('blk.12.ffn_down.weight'), 'ffn_down');
  assert.equal(tensorClass('blk.0.attn_output.weight'), 'attn_output');
  assert.equal(tensorClass('token_embd.weight'), 'token_embd');
  assert.equal(tensorClass('output.weight'), 'output');
  assert.equal(tensorClass('blk.0.attn_norm.weight'), null);
  assert.equal(tensorClass('output_norm.weight'), null);
});

test('a sensitivity cell is the recipe of one tensor, and any recipe sent becomes an object for its file', () => {
  const one = singleTensorRecipe('blk.3.ffn_down.weight', 'int4-g32-asym');
  assert.deepEqual(one, { default: 'keep', rules: [{ tensors: 'blk.3.ffn_down.weight', scheme: 'int4-g32-asym' }] });
  assert.deepEqual(recipeObject(recipeJson(one)), one, 'JSON round-trips');
  assert.deepEqual(recipeObject('q4_0'), { default: 'q4_0', rules: [] }, 'one scheme name is the default');
  assert.equal(describeRecipe(one), 'blk.3.ffn_down int4-g32-asym');
  assert.throws(() => recipeObject('not a recipe'), /neither a recipe/);
});
