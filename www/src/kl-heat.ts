// The colour of a KL divergence, shared by the sensitivity map and the token view: a log scale
// (KL spans decades: one broken position or matrix is 10³ times the rest) over the decades below
// the largest value shown, on the views' viridis ramp. Pure: the unit tests run it without a DOM.

import { logBounds, logNormalizer, ramp, rgbCss, type Rgb } from './views/scales.ts';

/** Decades of KL below the largest that still get their own colour; smaller ones share the lowest. */
export const KL_DECADES = 3;

/** The highlight's colour (a red, the page's "danger") and its opacity at the top of the scale. */
const TINT = [220, 38, 38] as const;
const TINT_MAX_ALPHA = 0.75;

export interface KlScale {
  /** Position of `kl` on the scale, 0 (at or below `low`, zero and NaN included) to 1 (at `high`). */
  t(kl: number): number;
  /** The fill colour of `kl`. */
  color(kl: number): string;
  /** The colour at position `t` of the scale (for its legend). */
  colorAt(t: number): string;
  /** A text colour readable on `color(kl)`. */
  ink(kl: number): string;
  /**
   * A translucent highlight for running text: clear at the bottom of the scale, strongest at the
   * top, so a long text stays readable and only where it breaks stands out.
   */
  tint(kl: number): string;
  low: number;
  high: number;
}

/** The scale for KL values up to `maxKl` (a zero or non-finite maximum gives a nominal one). */
export function klScale(maxKl: number, decades = KL_DECADES): KlScale {
  const [low, high] = logBounds(maxKl, decades);
  const t = logNormalizer(low, high);
  const rgb = (kl: number): Rgb => ramp(t(kl));
  return {
    t,
    color: (kl) => rgbCss(rgb(kl)),
    colorAt: (at) => rgbCss(ramp(at)),
    // Viridis runs dark to light: dark text on its upper part, white below.
    ink: (kl) => (luminance(rgb(kl)) > 0.45 ? '#111' : '#fff'),
    tint: (kl) => `rgba(${TINT.join(',')},${(TINT_MAX_ALPHA * t(kl)).toFixed(3)})`,
    low,
    high,
  };
}

/** Relative luminance of an sRGB colour, 0 (black) to 1 (white), close enough to choose an ink. */
function luminance([r, g, b]: Rgb): number {
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}

/** The largest finite value of `values` (0 when there is none). */
export function finiteMax(values: Iterable<number>): number {
  let max = 0;
  for (const v of values) if (Number.isFinite(v) && v > max) max = v;
  return max;
}
