// Attention: per-head maps of one layer, and the sink score of every layer × head.

import { drawColorLegend, drawMessage, fitText, fontOf, type Theme } from './chart.ts';
import { cellAt, panelAt, panelRect, plotArea, smallMultiples, type GridLayout, type Rect } from './layout.ts';
import { formatNumber, logNormalizer, ramp, rgbCss } from './scales.ts';
import { attentionIndex, sinkMatrix, visibleToken } from './shape.ts';
import type { AttentionMapsData, ProbeData } from './types.ts';
import { CanvasView, type ViewHost } from './view.ts';

/** Attention below this probability draws as the lowest colour. */
const MIN_PROBABILITY = 1e-3;

export class AttentionMaps extends CanvasView<
  AttentionMapsData,
  { grid: GridLayout; heads: number[]; offsetX: number; offsetY: number; n: number }
> {
  constructor(host: ViewHost) {
    super('attention-maps', host);
  }

  protected draw(data: AttentionMapsData, width: number, theme: Theme): void {
    const head = this.host.state().head;
    const heads = head >= 0 && head < data.heads ? [head] : Array.from({ length: data.heads }, (_, h) => h);
    const single = heads.length === 1;
    // A single head gets token labels on both axes.
    const labelSpace = single && data.n <= 48 ? 96 : 0;
    const grid = smallMultiples(heads.length, width - labelSpace, 12, 18, single ? 380 : 200);
    const legendHeight = 30;
    const height = grid.height + labelSpace + legendHeight;
    const ctx = this.context(width, height, theme);
    this.layout = { grid, heads, offsetX: labelSpace, offsetY: 0, n: data.n };
    if (data.n === 0) {
      drawMessage(ctx, width, height, 'no tokens', theme);
      return;
    }
    const norm = logNormalizer(MIN_PROBABILITY, 1);
    const outlier = new Set(data.outlierKeys);
    heads.forEach((h, i) => {
      const r = panelRect(grid, i);
      const area: Rect = { x: r.x + labelSpace, y: r.y, width: r.width, height: r.height };
      const image = new ImageData(data.n, data.n);
      for (let q = 0; q < data.n; q++) {
        for (let k = 0; k < data.n; k++) {
          const o = (q * data.n + k) * 4;
          if (k > q) {
            // Causal mask: future keys are not attended; draw them as background.
            image.data.set([0, 0, 0, 0], o);
            continue;
          }
          const c = ramp(norm(data.probs[attentionIndex(data.heads, data.n, h, q, k)]));
          image.data.set([c[0], c[1], c[2], 255], o);
        }
      }
      const off = document.createElement('canvas');
      off.width = data.n;
      off.height = data.n;
      off.getContext('2d')?.putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, area.x, area.y, area.width, area.height);
      ctx.strokeStyle = theme.line;
      ctx.strokeRect(area.x + 0.5, area.y + 0.5, area.width - 1, area.height - 1);
      const cell = area.width / data.n;
      ctx.strokeStyle = theme.danger;
      ctx.lineWidth = Math.max(1, Math.min(2, cell / 4));
      for (const k of outlier) {
        // The column of key k below the diagonal (queries k..n-1).
        ctx.strokeRect(area.x + k * cell, area.y + k * cell, cell, area.height - k * cell);
      }
      ctx.lineWidth = 1;
      ctx.fillStyle = theme.text;
      ctx.font = fontOf(theme, 11.5, 600);
      ctx.textAlign = 'left';
      const sink = data.sinkScores[h];
      ctx.fillText(`head ${h}`, area.x, r.y - grid.caption / 2);
      if (sink !== undefined) {
        ctx.font = fontOf(theme, 11);
        ctx.fillStyle = sink >= 0.5 ? theme.danger : theme.muted;
        ctx.textAlign = 'right';
        ctx.fillText(`sink ${sink.toFixed(2)}`, area.x + area.width, r.y - grid.caption / 2);
      }
      if (labelSpace > 0) {
        ctx.font = fontOf(theme, 10.5, 400, true);
        ctx.fillStyle = theme.text;
        ctx.textAlign = 'right';
        data.tokens.forEach((t, q) =>
          ctx.fillText(fitText(ctx, visibleToken(t.text), labelSpace - 8), area.x - 6, area.y + (q + 0.5) * cell),
        );
        ctx.save();
        data.tokens.forEach((t, k) => {
          ctx.save();
          ctx.translate(area.x + (k + 0.5) * cell, area.y + area.height + 6);
          ctx.rotate(-Math.PI / 2);
          ctx.fillStyle = outlier.has(k) ? theme.danger : theme.text;
          ctx.fillText(fitText(ctx, visibleToken(t.text), labelSpace - 10), 0, 0);
          ctx.restore();
        });
        ctx.restore();
      }
    });
    drawColorLegend(
      ctx,
      { x: width - 170, y: height - 16, width: 120, height: 10 },
      (t) => rgbCss(ramp(t)),
      formatNumber(MIN_PROBABILITY),
      '1',
      theme,
      'p (log)',
    );
    const keys = data.outlierKeys.map((k) => `${k} ${visibleToken(data.tokens[k]?.text ?? '')}`).join(', ');
    this.setMeta(`layer ${data.layer} · ${data.backend} · outlier keys: ${keys || 'none'}`);
  }

  protected describe(x: number, y: number): string[] | null {
    const l = this.layout;
    const d = this.data;
    if (!l || !d || l.n === 0) return null;
    const at = panelAt(l.grid, l.heads.length, x - l.offsetX, y - l.offsetY);
    if (!at) return null;
    const q = Math.min(l.n - 1, Math.floor((at.py / l.grid.size) * l.n));
    const k = Math.min(l.n - 1, Math.floor((at.px / l.grid.size) * l.n));
    const h = l.heads[at.index];
    const tq = d.tokens[q];
    const tk = d.tokens[k];
    const lines = [
      `head ${h} · query ${q} → key ${k}`,
      `query ${JSON.stringify(tq?.text ?? '')} → key ${JSON.stringify(tk?.text ?? '')}`,
      k > q ? 'masked (future key)' : `p = ${formatNumber(d.probs[attentionIndex(d.heads, d.n, h, q, k)])}`,
    ];
    if (d.outlierKeys.includes(k))
      lines.push(`key ${k} is an outlier key (Σ attention ${formatNumber(d.keyAttention[k])})`);
    return lines;
  }

  protected override clickAt(x: number, y: number) {
    const l = this.layout;
    if (!l) return null;
    const at = panelAt(l.grid, l.heads.length, x - l.offsetX, y - l.offsetY);
    if (!at) return null;
    // Clicking a small multiple opens that head; clicking the single head goes back to all.
    return { head: l.heads.length === 1 ? -1 : l.heads[at.index] };
  }
}

export class SinkHeatmap extends CanvasView<
  ProbeData,
  { area: Rect; layers: number[]; heads: number; values: Float32Array }
> {
  constructor(host: ViewHost) {
    super('sink-heatmap', host);
  }

  protected draw(data: ProbeData, width: number, theme: Theme): void {
    const m = sinkMatrix(data.attention);
    const cellHeight = 18;
    const margins = { top: 6, right: 12, bottom: 54, left: 58 };
    const height = margins.top + margins.bottom + Math.max(1, m.heads) * cellHeight;
    const ctx = this.context(width, height, theme);
    if (m.layers.length === 0 || m.heads === 0) {
      drawMessage(ctx, width, height, 'no attention summaries (the prompt needs at least two tokens)', theme);
      return;
    }
    const area = plotArea(width, height, margins);
    this.layout = { area, ...m };
    const cw = area.width / m.layers.length;
    const selected = this.host.state();
    for (let i = 0; i < m.layers.length; i++) {
      for (let h = 0; h < m.heads; h++) {
        const v = m.values[i * m.heads + h];
        ctx.fillStyle = Number.isNaN(v) ? theme.line : rgbCss(ramp(v));
        ctx.fillRect(area.x + i * cw, area.y + h * cellHeight, Math.ceil(cw), cellHeight);
      }
    }
    const col = m.layers.indexOf(selected.layer);
    if (col >= 0) {
      ctx.strokeStyle = theme.text;
      ctx.lineWidth = 2;
      ctx.strokeRect(area.x + col * cw + 1, area.y + 1, cw - 2, area.height - 2);
      ctx.lineWidth = 1;
    }
    ctx.fillStyle = theme.muted;
    ctx.font = fontOf(theme, 10.5);
    ctx.textAlign = 'right';
    for (let h = 0; h < m.heads; h++) ctx.fillText(`head ${h}`, area.x - 6, area.y + (h + 0.5) * cellHeight);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const every = Math.max(1, Math.ceil(24 / cw));
    m.layers.forEach((layer, i) => {
      if (i % every === 0) ctx.fillText(String(layer), area.x + (i + 0.5) * cw, area.y + area.height + 4);
    });
    ctx.textBaseline = 'middle';
    drawColorLegend(
      ctx,
      { x: width - 170, y: height - 14, width: 120, height: 10 },
      (t) => rgbCss(ramp(t)),
      '0',
      '1',
      theme,
      'sink score',
    );
    ctx.fillStyle = theme.muted;
    ctx.textAlign = 'left';
    ctx.fillText('layer', area.x, height - 14);
    const strong = Array.from(m.values).filter((v) => v >= 0.5).length;
    this.setMeta(`${strong} of ${m.layers.length * m.heads} heads with sink score ≥ 0.5`);
  }

  private cell(x: number, y: number) {
    const l = this.layout;
    if (!l) return null;
    const c = cellAt(l.area, l.heads, l.layers.length, x, y);
    return c ? { layer: l.layers[c.col], head: c.row, value: l.values[c.col * l.heads + c.row] } : null;
  }

  protected describe(x: number, y: number): string[] | null {
    const c = this.cell(x, y);
    if (!c) return null;
    return [`layer ${c.layer} · head ${c.head}`, `sink score ${Number.isNaN(c.value) ? '—' : c.value.toFixed(3)}`];
  }

  protected override clickAt(x: number, y: number) {
    const c = this.cell(x, y);
    return c ? { layer: c.layer, head: c.head } : null;
  }
}
