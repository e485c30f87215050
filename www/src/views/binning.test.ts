import assert from 'node:assert/strict';
import { test } from 'node:test';

import { binColumnsMax, binRange, binSeriesMax, valueBin, valueBinRange } from './binning.ts';

test('bins cover every item exactly once', () => {
  for (const [bins, items] of [
    [7, 1536],
    [700, 1536],
    [576, 576],
    [3, 10],
  ]) {
    let next = 0;
    for (let b = 0; b < bins; b++) {
      const [start, end] = binRange(b, bins, items);
      assert.equal(start, next, `bin ${b} of ${bins} over ${items}`);
      assert.ok(end > start);
      next = end;
    }
    assert.equal(next, items);
  }
});

test('a single massive channel survives reduction to fewer pixels than channels', () => {
  const rows = 3;
  const cols = 1536;
  const values = new Float32Array(rows * cols).map((_, i) => ((i * 7919) % 13) / 100 - 0.06);
  values[1 * cols + 1234] = -2500;
  const bins = binColumnsMax(values, rows, cols, 700);
  assert.equal(bins.bins, 700);
  let found = false;
  for (let b = 0; b < bins.bins; b++) {
    if (bins.maxAbs[1 * bins.bins + b] === 2500) {
      found = true;
      assert.equal(bins.argmax[1 * bins.bins + b], 1234);
      const [start, end] = binRange(b, bins.bins, cols);
      assert.ok(start <= 1234 && 1234 < end);
    }
  }
  assert.ok(found, "the outlier must be some bin's maximum");
  // Row 0 never sees it.
  assert.ok(Math.max(...bins.maxAbs.slice(0, bins.bins)) < 1);
});

test('with at least as many pixels as columns every column is its own bin', () => {
  const values = [1, -5, 3, 2, -4, 0];
  const bins = binColumnsMax(values, 2, 3, 1000);
  assert.equal(bins.bins, 3);
  assert.deepEqual(Array.from(bins.maxAbs), [1, 5, 3, 2, 4, 0]);
  assert.deepEqual(Array.from(bins.argmax), [0, 1, 2, 0, 1, 2]);
});

test('a matrix of the wrong size is refused', () => {
  assert.throws(() => binColumnsMax([1, 2, 3], 2, 2, 10), /2 × 2/);
});

test('series binning keeps the largest value and where it is', () => {
  const { max, argmax } = binSeriesMax([1, 9, 2, 2, 3, 1, 8, 1], 2);
  assert.deepEqual(max, [9, 8]);
  assert.deepEqual(argmax, [1, 6]);
});

test('value bins: edges, clamping, and the maximum in the last bin', () => {
  assert.equal(valueBin(-1, -1, 1, 4), 0);
  assert.equal(valueBin(1, -1, 1, 4), 3);
  assert.equal(valueBin(0, -1, 1, 4), 2);
  assert.equal(valueBin(-0.01, -1, 1, 4), 1);
  assert.equal(valueBin(5, -1, 1, 4), 3);
  assert.equal(valueBin(-5, -1, 1, 4), 0);
  assert.equal(valueBin(3, 2, 2, 4), 0);
  assert.deepEqual(valueBinRange(1, -1, 1, 4), [-0.5, 0]);
});
