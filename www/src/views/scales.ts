// Colour and axis scales. Pure functions: the unit tests run them without a DOM.

export type Rgb = readonly [number, number, number];

/** Viridis at nine evenly spaced stops: perceptually ordered, readable on light and dark cards. */
const VIRIDIS: readonly Rgb[] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** The colour of t ∈ [0, 1] on the ramp (clamped; NaN draws as the lowest colour). */
export function ramp(t: number): Rgb {
  const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  const f = x * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(f));
  const w = f - i;
  const a = VIRIDIS[i];
  const b = VIRIDIS[i + 1];
  return [
    Math.round(a[0] + (b[0] - a[0]) * w),
    Math.round(a[1] + (b[1] - a[1]) * w),
    Math.round(a[2] + (b[2] - a[2]) * w),
  ];
}

export function rgbCss(c: Rgb): string {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/**
 * Maps a magnitude onto [0, 1] on a log scale between `low` and `high` (both > 0; |v| below
 * `low`, zero included, maps to 0; above `high` to 1). The log keeps a heatmap readable when one
 * massive activation is 10⁴ times the rest.
 */
export function logNormalizer(low: number, high: number): (v: number) => number {
  if (!(low > 0) || !(high > 0)) throw new RangeError(`log scale bounds must be positive, got [${low}, ${high}]`);
  const lo = Math.log10(low);
  const span = Math.log10(high) - lo;
  return (v: number) => {
    const a = Math.abs(v);
    if (!(a > low)) return 0;
    if (span <= 0) return 1;
    return Math.min(1, (Math.log10(a) - lo) / span);
  };
}

/**
 * The bounds of a log colour scale for magnitudes up to `maxAbs`: `decades` decades below the
 * maximum, so that small values do not all collapse onto the lowest colour and the largest is the
 * brightest. A zero or non-finite maximum gives [1e-6, 1e-6 · 10^decades].
 */
export function logBounds(maxAbs: number, decades = 4): [number, number] {
  const high = Number.isFinite(maxAbs) && maxAbs > 0 ? maxAbs : 10 ** (decades - 6);
  return [high / 10 ** decades, high];
}

/** A map from a domain to a pixel range, and back. */
export interface Scale {
  (v: number): number;
  invert(px: number): number;
}

export function linearScale(d0: number, d1: number, r0: number, r1: number): Scale {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  const f = ((v: number) => r0 + (v - d0) * k) as Scale;
  f.invert = (px: number) => (k === 0 ? d0 : d0 + (px - r0) / k);
  return f;
}

/** Log10 scale; values ≤ 0 map to the low end (r0). */
export function logScale(d0: number, d1: number, r0: number, r1: number): Scale {
  if (!(d0 > 0) || !(d1 > 0)) throw new RangeError(`log scale domain must be positive, got [${d0}, ${d1}]`);
  const l0 = Math.log10(d0);
  const l1 = Math.log10(d1);
  const inner = linearScale(l0, l1, r0, r1);
  const f = ((v: number) => (v > 0 ? inner(Math.log10(v)) : r0)) as Scale;
  f.invert = (px: number) => 10 ** inner.invert(px);
  return f;
}

/** Powers of ten within [min, max] (both > 0), extended to the decades around them. */
export function logTicks(min: number, max: number): number[] {
  if (!(min > 0) || !(max > 0)) return [];
  const first = Math.floor(Math.log10(Math.min(min, max)));
  const last = Math.ceil(Math.log10(Math.max(min, max)));
  const ticks: number[] = [];
  for (let e = first; e <= last; e++) ticks.push(10 ** e);
  return ticks;
}

/** About `count` round ticks (1, 2 or 5 × 10^k apart) covering [min, max]. */
export function linearTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max === min) return [min];
  const lo = Math.min(min, max);
  const hi = Math.max(min, max);
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  // Integer multiples of the step, rounded to its decimals, so 0.1 + 0.2 prints as 0.3.
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const ticks: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) {
    ticks.push(Number((k * step).toFixed(decimals)) || 0);
  }
  return ticks;
}

/** A short, readable number: 3 significant digits, exponent form outside [1e-3, 1e5). */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2).replace('e+', 'e');
  if (a >= 100) return v.toFixed(0);
  return Number(v.toPrecision(3)).toString();
}

/** A tick label for a power of ten: "1", "10", "0.01", or "1e-5" / "1e6" beyond that. */
export function formatPowerOfTen(v: number): string {
  const e = Math.round(Math.log10(v));
  if (e >= -2 && e <= 4) return String(10 ** e >= 1 ? 10 ** e : Number((10 ** e).toFixed(-e)));
  return `1e${e}`;
}
