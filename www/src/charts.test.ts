import { test } from 'node:test';
import assert from 'node:assert/strict';
import { barIndexAt, niceMax } from './charts';

test('the bar under the pointer', () => {
  const layout = { left: 50, top: 0, width: 300, height: 100, count: 30 };
  assert.equal(barIndexAt(49.9, layout), -1);
  assert.equal(barIndexAt(50, layout), 0);
  assert.equal(barIndexAt(59.9, layout), 0);
  assert.equal(barIndexAt(60, layout), 1);
  assert.equal(barIndexAt(349.99, layout), 29);
  assert.equal(barIndexAt(350, layout), -1);
  assert.equal(barIndexAt(100, { ...layout, count: 0 }), -1);
});

test('nice axis maxima', () => {
  assert.equal(niceMax(0.73), 1);
  assert.equal(niceMax(0.13), 0.2);
  assert.equal(niceMax(0.041), 0.05);
  assert.equal(niceMax(3), 5);
  assert.equal(niceMax(10), 10);
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(NaN), 1);
});
