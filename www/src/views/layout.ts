// Where things go on a canvas, and what is under the pointer. Pure maths, in CSS pixels.

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Margins {
  top: number;
  right: number;
  bottom: number;
  left: number;
}

/** The plot area of a `width × height` canvas inside `margins` (never negative). */
export function plotArea(width: number, height: number, m: Margins): Rect {
  return {
    x: m.left,
    y: m.top,
    width: Math.max(0, width - m.left - m.right),
    height: Math.max(0, height - m.top - m.bottom),
  };
}

export function contains(r: Rect, x: number, y: number): boolean {
  return x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height;
}

/** The band (0..count-1) of `count` equal bands along [start, start + size) holding `p`, or −1. */
export function bandAt(p: number, start: number, size: number, count: number): number {
  if (count <= 0 || size <= 0 || p < start || p >= start + size) return -1;
  return Math.min(count - 1, Math.floor(((p - start) / size) * count));
}

/** The cell of a `rows × cols` grid filling `r` under (x, y), or null. */
export function cellAt(r: Rect, rows: number, cols: number, x: number, y: number): { row: number; col: number } | null {
  const row = bandAt(y, r.y, r.height, rows);
  const col = bandAt(x, r.x, r.width, cols);
  return row < 0 || col < 0 ? null : { row, col };
}

/** Small multiples: `count` square panels with a caption strip above each, in a grid. */
export interface GridLayout {
  cols: number;
  rows: number;
  /** Side of a panel's square plot. */
  size: number;
  gap: number;
  caption: number;
  width: number;
  height: number;
}

/**
 * The grid that gives `count` square panels the largest side within `width` (at most `maxSize`,
 * which keeps one head from filling a wide screen), each with a `caption`-high label strip.
 */
export function smallMultiples(
  count: number,
  width: number,
  gap: number,
  caption: number,
  maxSize: number,
): GridLayout {
  const n = Math.max(1, count);
  let best: GridLayout | null = null;
  for (let cols = 1; cols <= n; cols++) {
    const size = Math.min(maxSize, Math.floor((width - gap * (cols - 1)) / cols));
    if (size < 1) break;
    const rows = Math.ceil(n / cols);
    // Prefer the larger panels; among equal sizes, the fewer rows.
    if (!best || size > best.size || (size === best.size && rows < best.rows)) {
      best = {
        cols,
        rows,
        size,
        gap,
        caption,
        width: cols * size + (cols - 1) * gap,
        height: rows * (size + caption) + (rows - 1) * gap,
      };
    }
    // More columns only shrink the panels from here on.
    if (size < best.size) break;
  }
  return best ?? { cols: 1, rows: n, size: 1, gap, caption, width: 1, height: n * (1 + caption) };
}

/** The plot square of panel `i` in `g`. */
export function panelRect(g: GridLayout, i: number): Rect {
  const col = i % g.cols;
  const row = Math.floor(i / g.cols);
  return {
    x: col * (g.size + g.gap),
    y: row * (g.size + g.caption + g.gap) + g.caption,
    width: g.size,
    height: g.size,
  };
}

/** The panel of `g` whose plot square holds (x, y), with the point inside it, or null. */
export function panelAt(
  g: GridLayout,
  count: number,
  x: number,
  y: number,
): { index: number; px: number; py: number } | null {
  const col = Math.floor(x / (g.size + g.gap));
  const row = Math.floor(y / (g.size + g.caption + g.gap));
  if (col < 0 || row < 0 || col >= g.cols || row >= g.rows) return null;
  const index = row * g.cols + col;
  if (index >= count) return null;
  const r = panelRect(g, index);
  if (!contains(r, x, y)) return null;
  return { index, px: x - r.x, py: y - r.y };
}
