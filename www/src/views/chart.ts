// Canvas plumbing shared by the views: crisp drawing at the device pixel ratio, the page's
// colours, axes, a tooltip, and PNG export.

import { formatNumber, formatPowerOfTen, type Scale } from './scales.ts';
import type { Rect } from './layout.ts';

/** The page's palette, read from style.css's custom properties so charts follow light/dark. */
export interface Theme {
  text: string;
  muted: string;
  line: string;
  card: string;
  accent: string;
  accentSoft: string;
  bar: string;
  barTop: string;
  danger: string;
  dangerSoft: string;
  warn: string;
  ok: string;
  sans: string;
  mono: string;
}

export function readTheme(el: Element): Theme {
  const style = getComputedStyle(el);
  const v = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: v('--text', '#1c2030'),
    muted: v('--muted', '#636a80'),
    line: v('--line', '#e3e6ef'),
    card: v('--card', '#ffffff'),
    accent: v('--accent', '#4f46e5'),
    accentSoft: v('--accent-soft', '#e8e7fd'),
    bar: v('--bar', '#c7d2fe'),
    barTop: v('--bar-top', '#8b93f8'),
    danger: v('--danger', '#b42318'),
    dangerSoft: v('--danger-soft', '#fef1f0'),
    warn: v('--warn', '#9a5b00'),
    ok: v('--ok', '#137a4b'),
    sans: v('--sans', 'system-ui, sans-serif'),
    mono: v('--mono', 'monospace'),
  };
}

/**
 * Sizes `canvas` to `width × height` CSS pixels at the device pixel ratio and returns a context
 * that draws in CSS pixels, cleared to the card colour (so an exported PNG has a background).
 */
export function prepareCanvas(
  canvas: HTMLCanvasElement,
  width: number,
  height: number,
  theme: Theme,
): CanvasRenderingContext2D {
  const ratio = Math.max(1, Math.min(3, window.devicePixelRatio || 1));
  const w = Math.max(1, Math.round(width));
  const h = Math.max(1, Math.round(height));
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('this browser gives no 2D canvas context');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = theme.card;
  ctx.fillRect(0, 0, w, h);
  ctx.font = `11px ${theme.sans}`;
  ctx.textBaseline = 'middle';
  return ctx;
}

export function fontOf(theme: Theme, size: number, weight = 400, mono = false): string {
  return `${weight} ${size}px ${mono ? theme.mono : theme.sans}`;
}

/** Text shortened with "…" to fit `maxWidth`. */
export function fitText(ctx: CanvasRenderingContext2D, text: string, maxWidth: number): string {
  if (ctx.measureText(text).width <= maxWidth) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (ctx.measureText(text.slice(0, mid) + '…').width <= maxWidth) lo = mid;
    else hi = mid - 1;
  }
  return lo > 0 ? text.slice(0, lo) + '…' : '';
}

/** A left y axis with grid lines at `ticks`. */
export function drawYAxis(
  ctx: CanvasRenderingContext2D,
  area: Rect,
  y: Scale,
  ticks: number[],
  theme: Theme,
  log: boolean,
  label?: string,
): void {
  ctx.save();
  ctx.strokeStyle = theme.line;
  ctx.fillStyle = theme.muted;
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.font = fontOf(theme, 10.5);
  for (const t of ticks) {
    const py = Math.round(y(t)) + 0.5;
    if (py < area.y - 0.5 || py > area.y + area.height + 0.5) continue;
    ctx.beginPath();
    ctx.moveTo(area.x, py);
    ctx.lineTo(area.x + area.width, py);
    ctx.stroke();
    ctx.fillText(log ? formatPowerOfTen(t) : formatNumber(t), area.x - 5, py);
  }
  if (label) {
    ctx.translate(11, area.y + area.height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'center';
    ctx.fillText(label, 0, 0);
  }
  ctx.restore();
}

/** Labels under the plot at the given x positions, with an axis label at the right end. */
export function drawXLabels(
  ctx: CanvasRenderingContext2D,
  area: Rect,
  labels: { x: number; text: string }[],
  theme: Theme,
  title?: string,
): void {
  ctx.save();
  ctx.fillStyle = theme.muted;
  ctx.font = fontOf(theme, 10.5);
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  let lastRight = -Infinity;
  for (const l of labels) {
    const w = ctx.measureText(l.text).width;
    // Skip a label that would overlap the previous one.
    if (l.x - w / 2 < lastRight + 4) continue;
    ctx.fillText(l.text, l.x, area.y + area.height + 4);
    lastRight = l.x + w / 2;
  }
  if (title) {
    ctx.textAlign = 'right';
    ctx.fillText(title, area.x + area.width, area.y + area.height + 18);
  }
  ctx.restore();
}

/** A colour legend bar: `colorAt(t)` for t from 0 to 1 left to right, with end labels. */
export function drawColorLegend(
  ctx: CanvasRenderingContext2D,
  r: Rect,
  colorAt: (t: number) => string,
  lowLabel: string,
  highLabel: string,
  theme: Theme,
  title: string,
): void {
  ctx.save();
  const steps = Math.max(2, Math.floor(r.width));
  for (let i = 0; i < steps; i++) {
    ctx.fillStyle = colorAt(i / (steps - 1));
    ctx.fillRect(r.x + (i * r.width) / steps, r.y, r.width / steps + 0.5, r.height);
  }
  ctx.fillStyle = theme.muted;
  ctx.font = fontOf(theme, 10.5);
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  ctx.fillText(lowLabel, r.x - 4, r.y + r.height / 2);
  ctx.textAlign = 'left';
  ctx.fillText(highLabel, r.x + r.width + 4, r.y + r.height / 2);
  ctx.textAlign = 'right';
  ctx.fillText(title, r.x - 4 - ctx.measureText(lowLabel).width - 10, r.y + r.height / 2);
  ctx.restore();
}

/** A message in the middle of an empty chart. */
export function drawMessage(
  ctx: CanvasRenderingContext2D,
  width: number,
  height: number,
  text: string,
  theme: Theme,
): void {
  ctx.save();
  ctx.fillStyle = theme.muted;
  ctx.font = fontOf(theme, 13);
  ctx.textAlign = 'center';
  ctx.fillText(text, width / 2, height / 2);
  ctx.restore();
}

/** One tooltip for all views: a fixed-position box that follows the pointer. */
export class Tooltip {
  readonly el: HTMLDivElement;

  /** The page's one tooltip element, created on first use (views mounted again reuse it). */
  static shared(parent: HTMLElement): Tooltip {
    const existing = parent.querySelector<HTMLDivElement>(':scope > .qv-tooltip');
    return new Tooltip(parent, existing ?? undefined);
  }

  constructor(parent: HTMLElement, el?: HTMLDivElement) {
    if (el) {
      this.el = el;
      return;
    }
    this.el = document.createElement('div');
    this.el.className = 'qv-tooltip';
    this.el.setAttribute('role', 'status');
    this.el.hidden = true;
    parent.appendChild(this.el);
  }

  /** Shows `lines` (the first one bold) near the viewport point (x, y). */
  show(lines: string[], clientX: number, clientY: number): void {
    this.el.replaceChildren(
      ...lines.map((line, i) => {
        const div = document.createElement('div');
        div.textContent = line;
        if (i === 0) div.className = 'qv-tooltip-title';
        return div;
      }),
    );
    this.el.hidden = false;
    const pad = 14;
    const { width, height } = this.el.getBoundingClientRect();
    const left = clientX + pad + width > window.innerWidth ? clientX - pad - width : clientX + pad;
    const top = clientY + pad + height > window.innerHeight ? clientY - pad - height : clientY + pad;
    this.el.style.left = `${Math.max(4, left)}px`;
    this.el.style.top = `${Math.max(4, top)}px`;
  }

  hide(): void {
    this.el.hidden = true;
  }
}

/**
 * Shows the tooltip while the pointer is over `canvas`: `describe(x, y)` gets CSS-pixel
 * coordinates in the canvas and returns the lines to show, or null for none.
 */
export function attachHover(
  canvas: HTMLCanvasElement,
  tooltip: Tooltip,
  describe: (x: number, y: number) => string[] | null,
): void {
  canvas.addEventListener('pointermove', (e) => {
    const r = canvas.getBoundingClientRect();
    const lines = describe(e.clientX - r.left, e.clientY - r.top);
    if (lines && lines.length) tooltip.show(lines, e.clientX, e.clientY);
    else tooltip.hide();
  });
  canvas.addEventListener('pointerleave', () => tooltip.hide());
}

/** Saves `canvas` as a PNG file named `name` through a temporary download link. */
export function exportPng(canvas: HTMLCanvasElement, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => {
      if (!blob) {
        reject(new Error('the browser could not encode the chart as PNG'));
        return;
      }
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      // Revoke after the click has started the download.
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      resolve();
    }, 'image/png');
  });
}
