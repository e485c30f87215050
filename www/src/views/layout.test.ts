import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bandAt, cellAt, panelAt, panelRect, plotArea, smallMultiples } from './layout.ts';

test('the plot area is the canvas less its margins', () => {
  assert.deepEqual(plotArea(600, 300, { top: 10, right: 20, bottom: 30, left: 40 }), {
    x: 40,
    y: 10,
    width: 540,
    height: 260,
  });
  assert.deepEqual(plotArea(50, 20, { top: 10, right: 20, bottom: 30, left: 40 }).width, 0);
});

test('bands and cells hit-test, including the edges', () => {
  assert.equal(bandAt(0, 0, 100, 10), 0);
  assert.equal(bandAt(99.99, 0, 100, 10), 9);
  assert.equal(bandAt(100, 0, 100, 10), -1);
  assert.equal(bandAt(-0.1, 0, 100, 10), -1);
  assert.equal(bandAt(35, 10, 50, 5), 2);
  const area = { x: 100, y: 10, width: 300, height: 90 };
  assert.deepEqual(cellAt(area, 9, 30, 100, 10), { row: 0, col: 0 });
  assert.deepEqual(cellAt(area, 9, 30, 399, 99), { row: 8, col: 29 });
  assert.equal(cellAt(area, 9, 30, 99, 50), null);
});

test('small multiples fit the width and prefer larger panels', () => {
  const g = smallMultiples(9, 1000, 12, 18, 200);
  assert.ok(g.width <= 1000);
  assert.ok(g.cols * g.rows >= 9);
  assert.equal(g.size, 200);
  // At the cap, the fewest rows, and no more columns than that needs: 3 × 3, not 4 + 4 + 1.
  assert.deepEqual([g.cols, g.rows], [3, 3]);
  const narrow = smallMultiples(9, 300, 12, 18, 200);
  assert.ok(narrow.width <= 300);
  assert.ok(narrow.cols * narrow.rows >= 9);
  const one = smallMultiples(1, 900, 12, 18, 460);
  assert.deepEqual([one.cols, one.rows, one.size], [1, 1, 460]);
});

test('panel hit-testing inverts panel placement and skips gaps and captions', () => {
  const g = smallMultiples(9, 700, 10, 16, 150);
  for (let i = 0; i < 9; i++) {
    const r = panelRect(g, i);
    const hit = panelAt(g, 9, r.x + 3, r.y + r.height - 1);
    assert.deepEqual(hit, { index: i, px: 3, py: r.height - 1 });
    // The caption strip above the square is not the panel.
    assert.equal(panelAt(g, 9, r.x + 3, r.y - 2), null);
  }
  const first = panelRect(g, 0);
  assert.equal(panelAt(g, 9, first.x + first.width + 5, first.y + 5), null, 'gap between panels');
  assert.equal(panelAt(g, 9, -1, 20), null);
  // A grid cell past the last panel is empty.
  if (g.cols * g.rows > 9) {
    const r = panelRect(g, 9);
    assert.equal(panelAt(g, 9, r.x + 1, r.y + 1), null);
  }
});
