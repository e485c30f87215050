import assert from 'node:assert/strict';
import { test } from 'node:test';

import { finiteMax, klScale } from './kl-heat.ts';

test('the KL scale spans the decades below the largest value', () => {
  const s = klScale(0.5, 3);
  assert.equal(s.high, 0.5);
  assert.ok(Math.abs(s.low - 0.5e-3) < 1e-15);
  assert.equal(s.t(0.5), 1);
  assert.equal(s.t(0), 0, 'an exact match is the lowest colour');
  assert.equal(s.t(Number.NaN), 0);
  assert.ok(Math.abs(s.t(0.5e-1) - 2 / 3) < 1e-12, 'one decade down is a third of the way down');
  assert.equal(s.t(7), 1, 'beyond the largest clamps');
});

test('larger KL is never a lower colour, and the ink stays readable at both ends', () => {
  const s = klScale(2);
  let last = -1;
  for (const kl of [0, 1e-6, 1e-3, 0.01, 0.1, 1, 2]) {
    const t = s.t(kl);
    assert.ok(t >= last, `t(${kl}) = ${t} after ${last}`);
    last = t;
  }
  assert.notEqual(s.color(0), s.color(2));
  assert.equal(s.ink(0), '#fff', 'white on viridis purple');
  assert.equal(s.ink(2), '#111', 'dark on viridis yellow');
});

test('a map with nothing measured yet still has a scale', () => {
  const s = klScale(0);
  assert.ok(s.low > 0 && s.high > s.low);
  assert.equal(finiteMax([]), 0);
  assert.equal(finiteMax([0.1, Number.NaN, Infinity, 0.3, -1]), 0.3);
});

test('the text highlight is clear where nothing changed and strongest at the largest KL', () => {
  const s = klScale(1);
  assert.equal(s.tint(0), 'rgba(220,38,38,0.000)');
  assert.equal(s.tint(1), 'rgba(220,38,38,0.750)');
  const alpha = (kl: number) => Number(/,([\d.]+)\)$/.exec(s.tint(kl))?.[1]);
  assert.ok(alpha(0.01) > 0 && alpha(0.01) < alpha(0.1));
});
