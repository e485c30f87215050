// The sensitivity map's layout: one column per layer, one row per tensor class (in the forward's
// order), a label gutter on the left and the colour legend below; and the way back from a pointer
// position to the cell under it. Pure: the unit tests run it without a DOM.

export interface GridLayout {
  /** The cells' area, in CSS pixels from the canvas's top left. */
  left: number;
  top: number;
  cellWidth: number;
  cellHeight: number;
  layers: number;
  classes: number;
  /** The whole canvas. */
  width: number;
  height: number;
  /** Where the legend goes, under the cells. */
  legendTop: number;
}

export const GRID_LABEL_WIDTH = 48;
export const GRID_TOP = 18;
export const GRID_CELL_HEIGHT = 22;
const LEGEND_HEIGHT = 34;
const RIGHT_MARGIN = 8;

/** The layout of `layers × classes` cells across `width` CSS pixels (cells at least 4 px wide). */
export function gridLayout(width: number, layers: number, classes: number): GridLayout {
  const cellWidth = Math.max(4, Math.floor((width - GRID_LABEL_WIDTH - RIGHT_MARGIN) / Math.max(1, layers)));
  const cellsBottom = GRID_TOP + classes * GRID_CELL_HEIGHT;
  return {
    left: GRID_LABEL_WIDTH,
    top: GRID_TOP,
    cellWidth,
    cellHeight: GRID_CELL_HEIGHT,
    layers,
    classes,
    width: Math.max(width, GRID_LABEL_WIDTH + layers * cellWidth + RIGHT_MARGIN),
    height: cellsBottom + LEGEND_HEIGHT,
    legendTop: cellsBottom + 12,
  };
}

export interface CellRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Where the cell of (`layer`, class number `classIndex`) is drawn. */
export function cellRect(g: GridLayout, layer: number, classIndex: number): CellRect {
  return {
    x: g.left + layer * g.cellWidth,
    y: g.top + classIndex * g.cellHeight,
    width: g.cellWidth,
    height: g.cellHeight,
  };
}

/** The cell under the point (x, y), or null outside the cells. */
export function cellAt(g: GridLayout, x: number, y: number): { layer: number; classIndex: number } | null {
  const layer = Math.floor((x - g.left) / g.cellWidth);
  const classIndex = Math.floor((y - g.top) / g.cellHeight);
  if (x < g.left || y < g.top || layer >= g.layers || classIndex >= g.classes) return null;
  return { layer, classIndex };
}

/** Every how many layers a column gets its number, so the labels do not overlap (about 18 px each). */
export function layerLabelStep(cellWidth: number): number {
  const steps = [1, 2, 5, 10, 20, 50];
  return steps.find((s) => s * cellWidth >= 18) ?? 100;
}
