// The residual stream: the tokens × channels heatmap of one probed tensor, and the per-layer
// max|x| / median|x| chart.

import { binColumnsMax, binRange, type ColumnBins } from './binning.ts';
import { drawColorLegend, drawMessage, drawXLabels, drawYAxis, fitText, fontOf, type Theme } from './chart.ts';
import { bandAt, cellAt, plotArea, type Rect } from './layout.ts';
import {
  formatNumber,
  linearScale,
  logBounds,
  logNormalizer,
  logScale,
  logTicks,
  ramp,
  rgbCss,
  type Scale,
} from './scales.ts';
import { largestJump, layerSeries, visibleToken, type LayerPoint } from './shape.ts';
import type { ProbeData, ProbePoint, ProbedTensor, TokenText } from './types.ts';
import { CanvasView, type ViewHost } from './view.ts';

/** Decades of |x| the heatmap's colours span below the tensor's maximum. */
const HEATMAP_DECADES = 4;

/** The channels of the largest max|x| over tokens, largest first. */
export function topChannels(t: ProbedTensor, tokens: number, k: number): number[] {
  const best = new Float32Array(t.width);
  for (let r = 0; r < tokens; r++) {
    for (let c = 0; c < t.width; c++) best[c] = Math.max(best[c], Math.abs(t.values[r * t.width + c]));
  }
  return Array.from(best.keys())
    .sort((a, b) => best[b] - best[a] || a - b)
    .slice(0, k);
}

export class ResidualHeatmap extends CanvasView<
  ProbeData,
  { area: Rect; bins: ColumnBins; tokens: TokenText[]; tensor: ProbedTensor }
> {
  constructor(host: ViewHost) {
    super('residual-heatmap', host);
  }

  protected draw(data: ProbeData, width: number, theme: Theme): void {
    const tensor = data.tensor;
    const tokens = data.tokens;
    if (!tensor || tokens.length === 0) {
      const ctx = this.context(width, 120, theme);
      drawMessage(ctx, width, 120, 'no tensor was captured for this layer and point', theme);
      return;
    }
    const rowHeight = Math.max(12, Math.min(26, Math.floor(360 / tokens.length)));
    const margins = { top: 6, right: 12, bottom: 58, left: 112 };
    const height = margins.top + margins.bottom + rowHeight * tokens.length;
    const ctx = this.context(width, height, theme);
    const area = plotArea(width, height, margins);
    const bins = binColumnsMax(tensor.values, tokens.length, tensor.width, Math.floor(area.width));
    this.layout = { area, bins, tokens, tensor };

    let maxAbs = 0;
    for (const v of bins.maxAbs) maxAbs = Math.max(maxAbs, v);
    const [low, high] = logBounds(maxAbs, HEATMAP_DECADES);
    const norm = logNormalizer(low, high);

    // One pixel per (token, bin) in an offscreen image, scaled up without smoothing: the canvas
    // holds the whole heatmap, never a DOM node per cell.
    const image = new ImageData(bins.bins, tokens.length);
    for (let i = 0; i < bins.maxAbs.length; i++) {
      const c = ramp(norm(bins.maxAbs[i]));
      image.data.set([c[0], c[1], c[2], 255], i * 4);
    }
    const off = document.createElement('canvas');
    off.width = bins.bins;
    off.height = tokens.length;
    off.getContext('2d')?.putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, area.x, area.y, area.width, area.height);

    ctx.font = fontOf(theme, 11.5, 400, true);
    ctx.textAlign = 'right';
    ctx.fillStyle = theme.text;
    tokens.forEach((t, r) => {
      const label = fitText(ctx, `${visibleToken(t.text)} ${t.index}`, margins.left - 10);
      ctx.fillText(label, area.x - 6, area.y + (r + 0.5) * rowHeight);
    });

    const x = linearScale(0, tensor.width, area.x, area.x + area.width);
    const peaks = topChannels(tensor, tokens.length, 3);
    ctx.strokeStyle = theme.text;
    for (const c of peaks) {
      const px = Math.round(x(c + 0.5)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(px, area.y + area.height);
      ctx.lineTo(px, area.y + area.height + 5);
      ctx.stroke();
    }
    const labels = [0, ...peaks, tensor.width - 1]
      .sort((a, b) => a - b)
      .map((c) => ({ x: x(c + 0.5), text: String(c) }));
    drawXLabels(ctx, area, labels, theme);
    drawColorLegend(
      ctx,
      { x: area.x + area.width - 200, y: area.y + area.height + 30, width: 150, height: 10 },
      (t) => rgbCss(ramp(t)),
      formatNumber(low),
      formatNumber(high),
      theme,
      `|x| (log), ${tensor.width} channels`,
    );
    this.setMeta(
      `layer ${tensor.layer} · ${tensor.point} · max |x| ${formatNumber(maxAbs)} · ${formatNumber(data.ms)} ms`,
    );
  }

  protected describe(x: number, y: number): string[] | null {
    const l = this.layout;
    if (!l) return null;
    const cell = cellAt(l.area, l.tokens.length, l.bins.bins, x, y);
    if (!cell) return null;
    const channel = l.bins.argmax[cell.row * l.bins.bins + cell.col];
    const value = l.tensor.values[cell.row * l.tensor.width + channel];
    const token = l.tokens[cell.row];
    const [start, end] = binRange(cell.col, l.bins.bins, l.tensor.width);
    return [
      `token ${token.index} ${JSON.stringify(token.text)}`,
      `channel ${channel}${end - start > 1 ? ` (largest of ${start}–${end - 1})` : ''}`,
      `x = ${formatNumber(value)}`,
    ];
  }
}

export class ResidualLayers extends CanvasView<ProbeData, { area: Rect; series: LayerPoint[]; x: Scale }> {
  constructor(host: ViewHost) {
    super('residual-layers', host);
  }

  private point(): ProbePoint {
    const p = this.host.state().point as ProbePoint;
    // The embeddings are a single point; the residual series already starts with them.
    return p === 'embeddings' ? 'residual' : p;
  }

  protected draw(data: ProbeData, width: number, theme: Theme): void {
    const point = this.point();
    const series = layerSeries(data.probes, point);
    const height = 260;
    const ctx = this.context(width, height, theme);
    if (series.length === 0) {
      drawMessage(ctx, width, height, `no probes at ${point}`, theme);
      return;
    }
    const area = plotArea(width, height, { top: 26, right: 16, bottom: 40, left: 58 });
    const positive = series.flatMap((p) => [p.maxAbs, p.medianAbs, p.meanAbs]).filter((v) => v > 0);
    const lo = Math.min(...positive) / 2;
    const hi = Math.max(...positive) * 2;
    const y = logScale(lo, hi, area.y + area.height, area.y);
    const first = series[0].layer;
    const last = series[series.length - 1].layer;
    const x = linearScale(first - 0.5, last + 0.5, area.x, area.x + area.width);
    this.layout = { area, series, x };

    drawYAxis(ctx, area, y, logTicks(lo, hi), theme, true, '|x|');
    const selected = this.host.state().layer;
    if (selected >= first && selected <= last) {
      ctx.fillStyle = theme.accentSoft;
      const w = Math.max(3, x(1) - x(0));
      ctx.fillRect(x(selected) - w / 2, area.y, w, area.height);
    }

    const line = (values: number[], color: string, dash: number[], widthPx: number) => {
      ctx.save();
      ctx.strokeStyle = color;
      ctx.lineWidth = widthPx;
      ctx.setLineDash(dash);
      ctx.beginPath();
      series.forEach((p, i) => {
        const px = x(p.layer);
        const py = y(values[i]);
        if (i === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      });
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = color;
      series.forEach((p, i) => {
        ctx.beginPath();
        ctx.arc(x(p.layer), y(values[i]), widthPx + 0.5, 0, 2 * Math.PI);
        ctx.fill();
      });
      ctx.restore();
    };
    line(
      series.map((p) => p.meanAbs),
      theme.muted,
      [3, 3],
      1,
    );
    line(
      series.map((p) => p.medianAbs),
      theme.ok,
      [],
      1.5,
    );
    line(
      series.map((p) => p.maxAbs),
      theme.accent,
      [],
      2,
    );

    const jump = largestJump(series);
    if (jump && jump.ratio >= 10) {
      const p = series.find((s) => s.layer === jump.to);
      if (p) {
        ctx.fillStyle = theme.danger;
        ctx.font = fontOf(theme, 11, 600);
        ctx.textAlign = x(p.layer) > area.x + area.width - 90 ? 'right' : 'left';
        ctx.fillText(
          `×${formatNumber(jump.ratio)} jump`,
          x(p.layer) + (ctx.textAlign === 'right' ? -8 : 8),
          y(p.maxAbs) - 2,
        );
      }
    }
    drawXLabels(
      ctx,
      area,
      series.map((p) => ({ x: x(p.layer), text: p.label })),
      theme,
      point === 'residual' ? 'residual stream after block' : `${point} of block`,
    );
    // Legend, above the plot so it never covers a line.
    ctx.font = fontOf(theme, 11);
    ctx.textAlign = 'left';
    let lx = area.x;
    for (const [label, color] of [
      ['max|x|', theme.accent],
      ['median|x|', theme.ok],
      ['mean|x|', theme.muted],
    ] as const) {
      ctx.fillStyle = color;
      ctx.fillRect(lx, 10, 12, 3);
      ctx.fillStyle = theme.text;
      ctx.fillText(label, lx + 16, 12);
      lx += 28 + ctx.measureText(label).width;
    }
    this.setMeta(`${point} · ${series.length} points`);
  }

  private layerAt(x: number, y: number): LayerPoint | null {
    const l = this.layout;
    if (!l || y < l.area.y || y > l.area.y + l.area.height) return null;
    const i = bandAt(x, l.area.x, l.area.width, l.series.length);
    return i < 0 ? null : l.series[i];
  }

  protected describe(x: number, y: number): string[] | null {
    const p = this.layerAt(x, y);
    if (!p) return null;
    return [
      p.layer < 0 ? 'embeddings' : `block ${p.layer}`,
      `max|x| ${formatNumber(p.maxAbs)}`,
      `median|x| ≈ ${formatNumber(p.medianAbs)}`,
      `mean|x| ${formatNumber(p.meanAbs)}`,
      `max / median ${formatNumber(p.medianAbs > 0 ? p.maxAbs / p.medianAbs : Infinity)}`,
    ];
  }

  protected override clickAt(x: number, y: number) {
    const p = this.layerAt(x, y);
    return p && p.layer >= 0 ? { layer: p.layer } : null;
  }
}
