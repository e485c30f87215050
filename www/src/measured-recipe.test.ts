import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeAllocation, ladderOf } from './measured-recipe.ts';

test('a ladder is the comma-separated schemes typed, or the engine default when none', () => {
  assert.deepEqual(ladderOf(' int8-g128-asym , int2-g32-asym,'), ['int8-g128-asym', 'int2-g32-asym']);
  assert.equal(ladderOf('  '), null);
});

test('an allocation says its bits, its budget and the rungs used, skipping empty ones', () => {
  const text = describeAllocation({
    recipe: '{"default":"keep","rules":[]}',
    targetBitsPerWeight: 3.5,
    bitsPerWeight: 3.4817,
    budgetOver: 'linears',
    rungCounts: [
      ['int8-g128-asym', 0],
      ['int4-g128-asym', 120],
      ['int2-g64-asym', 90],
    ],
    cells: 630,
    tokens: 16,
    ms: 61_000,
  });
  assert.match(text, /^3\.482 bits per weight over the matrices that got a rung \(budget 3\.5\): /);
  assert.match(text, /120 × int4-g128-asym, 90 × int2-g64-asym\./);
  assert.doesNotMatch(text, /int8/);
  assert.match(text, /630 cells measured on 16 tokens/);
});
