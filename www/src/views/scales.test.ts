import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  formatNumber,
  formatPowerOfTen,
  linearScale,
  linearTicks,
  logBounds,
  logNormalizer,
  logScale,
  logTicks,
  ramp,
} from './scales.ts';

test('the log normalizer maps decades evenly and clamps both ends', () => {
  const norm = logNormalizer(1e-3, 10);
  assert.equal(norm(1e-3), 0);
  assert.equal(norm(10), 1);
  assert.ok(Math.abs(norm(1e-2) - 0.25) < 1e-12);
  assert.ok(Math.abs(norm(1) - 0.75) < 1e-12);
  // Sign does not matter: the scale is of |x|.
  assert.equal(norm(-1), norm(1));
  assert.equal(norm(0), 0);
  assert.equal(norm(1e-9), 0);
  assert.equal(norm(1e9), 1);
  assert.equal(norm(Number.NaN), 0);
});

test('the log normalizer refuses bounds that are not positive', () => {
  assert.throws(() => logNormalizer(0, 1), /positive/);
  assert.throws(() => logNormalizer(1, -1), /positive/);
});

test('log bounds put the maximum at the top and span the asked decades', () => {
  assert.deepEqual(logBounds(5000, 4), [0.5, 5000]);
  const [lo, hi] = logBounds(0, 3);
  assert.ok(lo > 0 && hi > lo);
});

test('the colour ramp runs from viridis purple to yellow and is monotone in lightness', () => {
  assert.deepEqual(ramp(0), [68, 1, 84]);
  assert.deepEqual(ramp(1), [253, 231, 37]);
  assert.deepEqual(ramp(-3), ramp(0));
  assert.deepEqual(ramp(7), ramp(1));
  const luma = (t: number) => {
    const [r, g, b] = ramp(t);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  for (let t = 0; t < 1; t += 0.05) assert.ok(luma(t + 0.05) > luma(t), `lightness must grow at ${t}`);
});

test('scales map and invert', () => {
  const x = linearScale(0, 10, 100, 200);
  assert.equal(x(5), 150);
  assert.equal(x.invert(150), 5);
  const y = logScale(1, 1000, 300, 0);
  assert.equal(y(1), 300);
  assert.equal(y(1000), 0);
  assert.ok(Math.abs(y(10) - 200) < 1e-9);
  assert.ok(Math.abs(y.invert(100) - 100) < 1e-9);
  assert.equal(y(0), 300);
});

test('ticks are round numbers covering the range', () => {
  assert.deepEqual(logTicks(0.03, 250), [0.01, 0.1, 1, 10, 100, 1000]);
  assert.deepEqual(linearTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(linearTicks(0, 1535, 6), [0, 500, 1000, 1500]);
  const t = linearTicks(-0.13, 0.27, 4);
  assert.ok(t[0] >= -0.13 && t[t.length - 1] <= 0.27);
  assert.ok(t.includes(0));
});

test('numbers print short', () => {
  assert.equal(formatNumber(0), '0');
  assert.equal(formatNumber(1234.5), '1235');
  assert.equal(formatNumber(0.012345), '0.0123');
  assert.equal(formatNumber(2.5e-5), '2.50e-5');
  assert.equal(formatNumber(3e7), '3.00e7');
  assert.equal(formatPowerOfTen(1000), '1000');
  assert.equal(formatPowerOfTen(0.01), '0.01');
  assert.equal(formatPowerOfTen(1e-6), '1e-6');
});
