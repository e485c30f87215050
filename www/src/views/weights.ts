// Weights: per-column max/mean ratio bars, and the value histogram with the scheme's grid over it.

import { binRange, binSeriesMax, valueBin, valueBinRange } from './binning.ts';
import { drawMessage, drawXLabels, drawYAxis, fitText, fontOf, type Theme } from './chart.ts';
import { bandAt, plotArea, type Rect } from './layout.ts';
import { formatNumber, linearScale, linearTicks, logScale, logTicks, type Scale } from './scales.ts';
import type { WeightColumn, WeightStatsData } from './types.ts';
import { CanvasView, type ViewHost } from './view.ts';

export class WeightColumns extends CanvasView<
  WeightStatsData,
  { area: Rect; max: number[]; argmax: number[]; cols: number }
> {
  constructor(host: ViewHost) {
    super('weight-columns', host);
  }

  protected draw(data: WeightStatsData, width: number, theme: Theme): void {
    const height = 240;
    const ctx = this.context(width, height, theme);
    const ratios = data.columnRatios;
    if (ratios.length === 0) {
      drawMessage(ctx, width, height, 'this tensor has no columns', theme);
      return;
    }
    const area = plotArea(width, height, { top: 16, right: 14, bottom: 36, left: 52 });
    const { max, argmax } = binSeriesMax(ratios, Math.floor(area.width));
    this.layout = { area, max, argmax, cols: ratios.length };
    const positive = ratios.filter((r) => r > 0);
    const lo = Math.max(1e-3, Math.min(...positive, 1) * 0.8);
    const hi = Math.max(...positive, 2) * 1.6;
    const y = logScale(lo, hi, area.y + area.height, area.y);
    drawYAxis(ctx, area, y, logTicks(lo, hi), theme, true, 'max/mean');
    const top = new Set(data.outliers.top_columns.map((c) => c.column));
    const bw = area.width / max.length;
    for (let b = 0; b < max.length; b++) {
      const py = y(max[b]);
      ctx.fillStyle = top.has(argmax[b]) ? theme.accent : theme.bar;
      ctx.fillRect(area.x + b * bw, py, Math.max(1, bw - (bw > 3 ? 1 : 0)), area.y + area.height - py);
    }
    const median = data.outliers.median_ratio;
    if (median > 0) {
      ctx.save();
      ctx.strokeStyle = theme.ok;
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(area.x, y(median));
      ctx.lineTo(area.x + area.width, y(median));
      ctx.stroke();
      ctx.restore();
      ctx.fillStyle = theme.ok;
      ctx.font = fontOf(theme, 10.5);
      ctx.textAlign = 'right';
      ctx.fillText(`median ${formatNumber(median)}`, area.x + area.width - 4, y(median) - 7);
    }
    const x = linearScale(0, ratios.length, area.x, area.x + area.width);
    ctx.font = fontOf(theme, 10.5, 600);
    ctx.fillStyle = theme.text;
    ctx.textAlign = 'center';
    for (const c of data.outliers.top_columns.slice(0, 5)) {
      ctx.fillText(String(c.column), x(c.column + 0.5), Math.max(area.y + 4, y(c.ratio) - 7));
    }
    drawXLabels(
      ctx,
      area,
      linearTicks(0, ratios.length - 1, 6).map((c) => ({ x: x(c + 0.5), text: String(c) })),
      theme,
      `input column (of ${ratios.length})`,
    );
    this.setMeta(`${data.tensor} · ${data.rows}×${data.cols} · max ratio ${formatNumber(data.outliers.max_ratio)}`);
  }

  protected describe(x: number, y: number): string[] | null {
    const l = this.layout;
    const d = this.data;
    if (!l || !d || y < l.area.y || y > l.area.y + l.area.height) return null;
    const b = bandAt(x, l.area.x, l.area.width, l.max.length);
    if (b < 0) return null;
    const column = l.argmax[b];
    const [start, end] = binRange(b, l.max.length, l.cols);
    const lines = [
      `column ${column}${end - start > 1 ? ` (largest of ${start}–${end - 1})` : ''}`,
      `max/mean ${formatNumber(l.max[b])}`,
    ];
    const top: WeightColumn | undefined = d.outliers.top_columns.find((c) => c.column === column);
    if (top) {
      lines.push(`max|W| ${formatNumber(top.max_abs)} · mean|W| ${formatNumber(top.mean_abs)}`);
      lines.push(`largest rows: ${top.rows.map((r) => `${r.row} (${formatNumber(r.value)})`).join(', ')}`);
    }
    return lines;
  }
}

export class WeightHistogram extends CanvasView<WeightStatsData, { area: Rect; x: Scale; bins: number }> {
  constructor(host: ViewHost) {
    super('weight-histogram', host);
  }

  protected draw(data: WeightStatsData, width: number, theme: Theme): void {
    const height = 290;
    const ctx = this.context(width, height, theme);
    const h = data.histogram;
    const bins = h.loaded.length;
    if (bins === 0 || !(h.max >= h.min)) {
      drawMessage(ctx, width, height, 'no values', theme);
      return;
    }
    const area = plotArea(width, height, { top: 36, right: 14, bottom: 40, left: 52 });
    const x = linearScale(h.min, h.max, area.x, area.x + area.width);
    this.layout = { area, x, bins };
    const peak = Math.max(1, ...h.loaded, ...(h.quantized ?? []));
    const y = logScale(0.8, peak * 1.5, area.y + area.height, area.y);
    const levels = data.levels;

    if (levels && levels.values.length > 0) {
      // Beyond the outlier group's grid: what the scheme cannot reach there is clipped to its ends.
      const lo = levels.values[0];
      const hi = levels.values[levels.values.length - 1];
      ctx.fillStyle = theme.dangerSoft;
      if (lo > h.min) ctx.fillRect(area.x, area.y, x(lo) - area.x, area.height);
      if (hi < h.max) ctx.fillRect(x(hi), area.y, area.x + area.width - x(hi), area.height);
    }
    drawYAxis(ctx, area, y, logTicks(1, peak), theme, true, 'count');

    const bw = area.width / bins;
    ctx.fillStyle = theme.bar;
    ctx.globalAlpha = h.quantized ? 0.75 : 1;
    h.loaded.forEach((count, b) => {
      if (count <= 0) return;
      const py = y(count);
      ctx.fillRect(area.x + b * bw, py, Math.max(1, bw), area.y + area.height - py);
    });
    ctx.globalAlpha = 1;

    if (levels && levels.values.length > 0) {
      ctx.save();
      ctx.strokeStyle = theme.warn;
      ctx.globalAlpha = levels.values.length > 64 ? 0.35 : 0.8;
      ctx.beginPath();
      for (const v of levels.values) {
        const px = Math.round(x(v)) + 0.5;
        ctx.moveTo(px, area.y);
        ctx.lineTo(px, area.y + area.height);
      }
      ctx.stroke();
      ctx.restore();
    }

    if (h.quantized) {
      // The quantized histogram as an outline over the bars: a step line along the tops of
      // adjacent bins, dropping to the axis only around empty ones.
      const base = area.y + area.height;
      ctx.save();
      ctx.strokeStyle = theme.accent;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let previous = 0;
      h.quantized.forEach((count, b) => {
        const x0 = area.x + b * bw;
        const top = count > 0 ? y(count) : base;
        if (previous === 0 && count > 0) ctx.moveTo(x0, base);
        if (previous > 0 || count > 0) ctx.lineTo(x0, top);
        if (count > 0) ctx.lineTo(x0 + bw, top);
        previous = count;
      });
      if (previous > 0) ctx.lineTo(area.x + area.width, base);
      ctx.stroke();
      ctx.restore();
    }

    drawXLabels(
      ctx,
      area,
      linearTicks(h.min, h.max, 6).map((v) => ({ x: x(v), text: formatNumber(v) })),
      theme,
      'w',
    );
    // Two caption lines above the plot: what the scheme costs and does, then which grid is drawn.
    const clipped =
      data.clipped > 0
        ? ` · ${data.clipped} clipped (${formatNumber((100 * data.clipped) / (data.rows * data.cols))}%)`
        : data.error
          ? ' · none clipped'
          : '';
    // No SQNR with an error summary means the scheme gave back the loaded values exactly.
    const sqnr = data.error
      ? data.error.sqnr_db != null
        ? ` · SQNR ${data.error.sqnr_db.toFixed(1)} dB`
        : ' · lossless'
      : '';
    const bpw = data.bitsPerWeight ? ` · ${formatNumber(data.bitsPerWeight)} bpw` : '';
    const grid = levels
      ? `${levels.values.length} levels of the ${levels.shared} holding the largest |w| (row ${levels.row}, columns ${levels.start}–${levels.end - 1})${levels.basis === 'rotated' ? ', rotated basis' : ''}`
      : data.scheme === 'keep'
        ? 'as loaded: choose a scheme to see its grid'
        : 'a float format: no grid to draw';
    ctx.textAlign = 'left';
    ctx.fillStyle = theme.text;
    ctx.font = fontOf(theme, 11.5, 600);
    ctx.fillText(fitText(ctx, `${data.scheme}${bpw}${sqnr}${clipped}`, width - area.x), area.x, 9);
    ctx.fillStyle = theme.muted;
    ctx.font = fontOf(theme, 11);
    ctx.fillText(fitText(ctx, grid, width - area.x), area.x, 24);
    this.setMeta(data.tensor);
  }

  protected describe(px: number, py: number): string[] | null {
    const l = this.layout;
    const d = this.data;
    if (!l || !d || py < l.area.y || py > l.area.y + l.area.height || px < l.area.x || px > l.area.x + l.area.width)
      return null;
    const v = l.x.invert(px);
    const b = valueBin(v, d.histogram.min, d.histogram.max, l.bins);
    const [lo, hi] = valueBinRange(b, d.histogram.min, d.histogram.max, l.bins);
    const lines = [`w in [${formatNumber(lo)}, ${formatNumber(hi)})`, `as loaded: ${d.histogram.loaded[b]}`];
    if (d.histogram.quantized) lines.push(`quantized: ${d.histogram.quantized[b]}`);
    const levels = d.levels?.values ?? [];
    if (levels.length) {
      const nearest = levels.reduce((best, x) => (Math.abs(x - v) < Math.abs(best - v) ? x : best), levels[0]);
      lines.push(`nearest level ${formatNumber(nearest)}`);
      if (v < levels[0] || v > levels[levels.length - 1]) lines.push("beyond the outlier group's grid: clipped there");
    }
    return lines;
  }
}
