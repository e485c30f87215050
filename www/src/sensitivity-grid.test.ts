import assert from 'node:assert/strict';
import { test } from 'node:test';

import { GRID_LABEL_WIDTH, GRID_TOP, cellAt, cellRect, gridLayout, layerLabelStep } from './sensitivity-grid.ts';

test('the cells share the width after the labels, one column per layer', () => {
  const g = gridLayout(648, 30, 7);
  assert.equal(g.cellWidth, Math.floor((648 - GRID_LABEL_WIDTH - 8) / 30));
  assert.equal(g.height, GRID_TOP + 7 * g.cellHeight + 34);
  assert.ok(g.legendTop > GRID_TOP + 7 * g.cellHeight);
  assert.equal(g.width, 648);
});

test('a narrow canvas keeps cells clickable and grows instead', () => {
  const g = gridLayout(100, 30, 7);
  assert.equal(g.cellWidth, 4);
  assert.ok(g.width >= GRID_LABEL_WIDTH + 30 * 4);
});

test('hit-testing finds the cell drawn under every point, and nothing outside', () => {
  const g = gridLayout(500, 12, 7);
  for (let layer = 0; layer < 12; layer++) {
    for (let c = 0; c < 7; c++) {
      const r = cellRect(g, layer, c);
      assert.deepEqual(cellAt(g, r.x, r.y), { layer, classIndex: c }, 'top left corner');
      assert.deepEqual(
        cellAt(g, r.x + r.width - 0.01, r.y + r.height - 0.01),
        { layer, classIndex: c },
        'bottom right',
      );
    }
  }
  const last = cellRect(g, 11, 6);
  assert.equal(cellAt(g, GRID_LABEL_WIDTH - 1, GRID_TOP + 1), null, 'the labels');
  assert.equal(cellAt(g, GRID_LABEL_WIDTH + 1, GRID_TOP - 1), null, 'above');
  assert.equal(cellAt(g, last.x + last.width, last.y), null, 'right of the last layer');
  assert.equal(cellAt(g, last.x, last.y + last.height), null, 'below the last class');
});

test('layer numbers are spaced so that they do not overlap', () => {
  assert.equal(layerLabelStep(20), 1);
  assert.equal(layerLabelStep(9), 2);
  assert.equal(layerLabelStep(4), 5);
  assert.equal(layerLabelStep(1), 20);
});
