// Reducing data to the pixels that draw it. A heatmap of 1536 channels on 700 pixels must not
// drop the one channel with the massive activation, so every reduction keeps the maximum |x| of
// the items a pixel covers, and which item it was (for the tooltip).

/** The item range [start, end) that bin `b` of `bins` covers when `items` items are spread evenly. */
export function binRange(b: number, bins: number, items: number): [number, number] {
  return [Math.floor((b * items) / bins), Math.floor(((b + 1) * items) / bins)];
}

/** Per-bin maximum |x| of a row-major `[rows × cols]` matrix, with the column where it is reached. */
export interface ColumnBins {
  rows: number;
  bins: number;
  /** `[rows × bins]`: max |x| over the bin's columns. */
  maxAbs: Float32Array;
  /** `[rows × bins]`: the column of that maximum (the first on ties). */
  argmax: Int32Array;
}

/**
 * Reduces the columns of `values` (`[rows × cols]`) into at most `maxBins` bins per row, keeping
 * each bin's max |x|. With `maxBins ≥ cols` every column is its own bin.
 */
export function binColumnsMax(values: ArrayLike<number>, rows: number, cols: number, maxBins: number): ColumnBins {
  if (!(cols > 0) || values.length !== rows * cols) {
    throw new RangeError(`expected ${rows} × ${cols} values, got ${values.length}`);
  }
  const bins = Math.max(1, Math.min(cols, Math.floor(maxBins)));
  const maxAbs = new Float32Array(rows * bins);
  const argmax = new Int32Array(rows * bins);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < bins; b++) {
      const [start, end] = binRange(b, bins, cols);
      let best = -1;
      let at = start;
      for (let c = start; c < end; c++) {
        const a = Math.abs(values[r * cols + c]);
        if (a > best) {
          best = a;
          at = c;
        }
      }
      maxAbs[r * bins + b] = Math.max(0, best);
      argmax[r * bins + b] = at;
    }
  }
  return { rows, bins, maxAbs, argmax };
}

/** Per-bin maximum of a series (e.g. column ratios) and the index where it is reached. */
export function binSeriesMax(values: ArrayLike<number>, maxBins: number): { max: number[]; argmax: number[] } {
  const bins = binColumnsMax(values, 1, values.length, maxBins);
  return { max: Array.from(bins.maxAbs), argmax: Array.from(bins.argmax) };
}

/** The bin of `x` among `bins` equal bins over [min, max] (clamped; the max falls in the last bin). */
export function valueBin(x: number, min: number, max: number, bins: number): number {
  if (!(max > min)) return 0;
  const b = Math.floor(((x - min) / (max - min)) * bins);
  return Math.min(bins - 1, Math.max(0, b));
}

/** The [low, high) value range of bin `b` of `bins` equal bins over [min, max]. */
export function valueBinRange(b: number, min: number, max: number, bins: number): [number, number] {
  const w = (max - min) / bins;
  return [min + b * w, min + (b + 1) * w];
}
