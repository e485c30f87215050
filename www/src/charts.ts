// The page's own charts (the outlier views draw theirs): the per-layer error of the quantized
// model, drawn on a canvas, with hover read-out and PNG export.

import type { LayerError } from './messages';

export interface BarLayout {
  /** Plot area in CSS pixels. */
  left: number;
  top: number;
  width: number;
  height: number;
  count: number;
}

/** The bar under x (CSS pixels), or -1 outside the plot. */
export function barIndexAt(x: number, layout: BarLayout): number {
  if (layout.count <= 0 || x < layout.left || x >= layout.left + layout.width) return -1;
  return Math.min(layout.count - 1, Math.floor(((x - layout.left) / layout.width) * layout.count));
}

/** A "nice" axis maximum at or above v: 1, 2 or 5 times a power of ten. */
export function niceMax(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v * (1 - 1e-12)) return m * p;
  return 10 * p;
}

const COLORS = {
  bar: '#4f46e5',
  previous: '#f59e0b',
  axis: '#94a3b8',
  text: '#475569',
  grid: '#e2e8f0',
  hover: '#312e81',
};

export class LayerErrorChart {
  private layers: LayerError[] = [];
  private previous: LayerError[] | null = null;
  private layout: BarLayout = { left: 0, top: 0, width: 0, height: 0, count: 0 };
  private hover = -1;

  constructor(
    readonly canvas: HTMLCanvasElement,
    tooltip: HTMLElement,
  ) {
    canvas.addEventListener('mousemove', (e) => {
      const rect = canvas.getBoundingClientRect();
      const i = barIndexAt(e.clientX - rect.left, this.layout);
      if (i !== this.hover) {
        this.hover = i;
        this.draw();
      }
      if (i < 0) {
        tooltip.hidden = true;
        return;
      }
      const l = this.layers[i];
      const before = this.previous?.[i];
      tooltip.textContent =
        `layer ${l.layer}: relative error ${l.relative_error.toExponential(3)}` +
        (before ? ` (previous ${before.relative_error.toExponential(3)})` : '');
      tooltip.style.left = `${e.clientX - rect.left + 12}px`;
      tooltip.style.top = `${e.clientY - rect.top + 12}px`;
      tooltip.hidden = false;
    });
    canvas.addEventListener('mouseleave', () => {
      this.hover = -1;
      tooltip.hidden = true;
      this.draw();
    });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  /** New errors; the ones shown before stay as a faint line for comparison. */
  set(layers: LayerError[]): void {
    if (this.layers.length === layers.length && this.layers.length > 0) this.previous = this.layers;
    this.layers = layers;
    this.draw();
  }

  clear(): void {
    this.layers = [];
    this.previous = null;
    this.draw();
  }

  draw(): void {
    const canvas = this.canvas;
    const cssWidth = canvas.clientWidth || 600;
    const cssHeight = canvas.clientHeight || 200;
    const dpr = globalThis.devicePixelRatio || 1;
    canvas.width = Math.round(cssWidth * dpr);
    canvas.height = Math.round(cssHeight * dpr);
    const g = canvas.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, cssWidth, cssHeight);
    const pad = { left: 52, right: 12, top: 14, bottom: 28 };
    this.layout = {
      left: pad.left,
      top: pad.top,
      width: Math.max(10, cssWidth - pad.left - pad.right),
      height: Math.max(10, cssHeight - pad.top - pad.bottom),
      count: this.layers.length,
    };
    const { left, top, width, height, count } = this.layout;
    g.font = '11px system-ui, sans-serif';
    if (count === 0) {
      g.fillStyle = COLORS.text;
      g.fillText('Per-layer error appears after the metrics run.', left, top + height / 2);
      return;
    }
    const max = niceMax(
      Math.max(...this.layers.map((l) => l.relative_error), ...(this.previous ?? []).map((l) => l.relative_error)),
    );
    g.strokeStyle = COLORS.grid;
    g.fillStyle = COLORS.text;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const y = top + height - (height * i) / 4;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(left + width, y);
      g.stroke();
      g.fillText(v === 0 ? '0' : v.toPrecision(2), left - 6, y);
    }
    const step = width / count;
    for (let i = 0; i < count; i++) {
      const h = (this.layers[i].relative_error / max) * height;
      g.fillStyle = i === this.hover ? COLORS.hover : COLORS.bar;
      g.fillRect(left + i * step + step * 0.15, top + height - h, step * 0.7, h);
    }
    if (this.previous) {
      g.strokeStyle = COLORS.previous;
      g.lineWidth = 1.5;
      g.beginPath();
      this.previous.forEach((l, i) => {
        const x = left + (i + 0.5) * step;
        const y = top + height - (l.relative_error / max) * height;
        if (i === 0) g.moveTo(x, y);
        else g.lineTo(x, y);
      });
      g.stroke();
      g.lineWidth = 1;
    }
    g.fillStyle = COLORS.text;
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const labelEvery = Math.max(1, Math.ceil(count / Math.max(1, width / 28)));
    for (let i = 0; i < count; i += labelEvery)
      g.fillText(String(this.layers[i].layer), left + (i + 0.5) * step, top + height + 4);
    g.textAlign = 'left';
    g.fillText('layer', left + width - 30, top + height + 15);
  }
}

/** Saves a canvas as a PNG file (canvas.toBlob; no server round trip). */
export function exportCanvasPng(canvas: HTMLCanvasElement, fileName: string): Promise<void> {
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => {
      if (!blob) {
        reject(new Error('the browser could not encode the chart as PNG'));
        return;
      }
      downloadBlob(blob, fileName);
      resolve();
    }, 'image/png');
  });
}

export function downloadBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
