// The outlier report of the CPU reference: the outlier table with token categories, and the
// causal chain weight column → activation channel → attention sink.

import { drawColorLegend, drawMessage, fitText, fontOf, type Theme } from './chart.ts';
import { cellAt, contains, plotArea, type Rect } from './layout.ts';
import { formatNumber, logNormalizer, ramp, rgbCss } from './scales.ts';
import {
  CATEGORY_LABELS,
  chainRows,
  exceedanceMatrix,
  hiddenStateName,
  outlierRows,
  visibleToken,
  type ChainNode,
  type ChainRow,
} from './shape.ts';
import type { OutlierReport, TokenCategory } from './types.ts';
import { CanvasView, type ViewHost } from './view.ts';

/** The exceedance colours span |x|/threshold from 1/1000 (quiet) to 10 (far over the rule). */
const EXCEEDANCE_RANGE: [number, number] = [1e-3, 10];

function categoryColor(c: TokenCategory, theme: Theme): string {
  switch (c) {
    case 'initial':
      return theme.danger;
    case 'strong_delimiter':
      return theme.warn;
    case 'weak_semantic':
      return theme.accent;
    case 'other':
      return theme.muted;
  }
}

export class OutlierTable extends CanvasView<
  OutlierReport,
  { area: Rect; states: number; tokens: number; values: Float32Array }
> {
  private readonly table: HTMLTableElement;

  constructor(host: ViewHost) {
    super('outlier-table', host);
    this.table = document.createElement('table');
    this.table.className = 'qv-table';
    this.body.appendChild(this.table);
  }

  protected draw(report: OutlierReport, width: number, theme: Theme): void {
    const m = exceedanceMatrix(report);
    const rowHeight = Math.max(14, Math.min(22, Math.floor(300 / Math.max(1, m.tokens))));
    const margins = { top: 6, right: 12, bottom: 48, left: 120 };
    const height = margins.top + margins.bottom + rowHeight * Math.max(1, m.tokens);
    const ctx = this.context(width, height, theme);
    this.renderTable(report, theme);
    if (m.tokens === 0 || m.states === 0) {
      drawMessage(ctx, width, height, 'no tokens', theme);
      return;
    }
    const area = plotArea(width, height, margins);
    this.layout = { area, ...m };
    const norm = logNormalizer(...EXCEEDANCE_RANGE);
    const cw = area.width / m.states;
    for (let s = 0; s < m.states; s++) {
      for (let t = 0; t < m.tokens; t++) {
        const v = m.values[s * m.tokens + t];
        ctx.fillStyle = rgbCss(ramp(norm(v)));
        ctx.fillRect(area.x + s * cw, area.y + t * rowHeight, Math.ceil(cw), rowHeight);
        if (v > 1) {
          ctx.strokeStyle = theme.danger;
          ctx.lineWidth = 2;
          ctx.strokeRect(area.x + s * cw + 1, area.y + t * rowHeight + 1, cw - 2, rowHeight - 2);
          ctx.lineWidth = 1;
        }
      }
    }
    ctx.font = fontOf(theme, 11.5, 500, true);
    ctx.textAlign = 'right';
    report.tokens.forEach((t, i) => {
      ctx.fillStyle = categoryColor(t.category, theme);
      ctx.fillText(
        fitText(ctx, `${visibleToken(t.text)} ${t.index}`, margins.left - 10),
        area.x - 6,
        area.y + (i + 0.5) * rowHeight,
      );
    });
    ctx.fillStyle = theme.muted;
    ctx.font = fontOf(theme, 10.5);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const every = Math.max(1, Math.ceil(28 / cw));
    for (let s = 0; s < m.states; s += every) {
      ctx.fillText(s === 0 ? 'emb' : String(s - 1), area.x + (s + 0.5) * cw, area.y + area.height + 4);
    }
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'left';
    ctx.fillText('hidden state (block)', area.x, height - 12);
    drawColorLegend(
      ctx,
      { x: width - 170, y: height - 17, width: 120, height: 10 },
      (t) => rgbCss(ramp(t)),
      formatNumber(EXCEEDANCE_RANGE[0]),
      formatNumber(EXCEEDANCE_RANGE[1]),
      theme,
      'max|x| / threshold',
    );
    const flagged = report.hidden_states.filter((s) => s.outlier_tokens.length > 0).length;
    this.setMeta(
      `rule ${report.rule} · ${flagged} of ${m.states} hidden states with outliers${report.ms ? ` · ${formatNumber(report.ms)} ms` : ''}`,
    );
  }

  private renderTable(report: OutlierReport, theme: Theme): void {
    const rows = outlierRows(report, true);
    const head = document.createElement('thead');
    head.innerHTML =
      '<tr><th>hidden state</th><th>max|x|</th><th>median|x|</th><th>threshold</th><th>outlier tokens (category, channel)</th></tr>';
    const bodyEl = document.createElement('tbody');
    if (rows.length === 0) {
      const tr = bodyEl.insertRow();
      const td = tr.insertCell();
      td.colSpan = 5;
      td.className = 'qv-empty';
      td.textContent = `no activation exceeds the ${report.rule} threshold in any hidden state`;
    }
    for (const r of rows) {
      const tr = bodyEl.insertRow();
      tr.insertCell().textContent = r.state;
      for (const v of [r.maxAbs, r.medianAbs, r.threshold]) {
        const td = tr.insertCell();
        td.className = 'qv-num';
        td.textContent = formatNumber(v);
      }
      const td = tr.insertCell();
      for (const t of r.tokens) {
        const chip = document.createElement('span');
        chip.className = 'qv-chip';
        chip.dataset.category = t.category;
        chip.style.borderColor = categoryColor(t.category, theme);
        chip.title = `token ${t.token}, max|x| ${formatNumber(t.maxAbs)} in channel ${t.channel}`;
        const text = document.createElement('code');
        text.textContent = t.text;
        chip.append(text, ` ${CATEGORY_LABELS[t.category]} · ch ${t.channel}`);
        td.appendChild(chip);
      }
    }
    this.table.replaceChildren(head, bodyEl);
  }

  protected describe(x: number, y: number): string[] | null {
    const l = this.layout;
    const r = this.data;
    if (!l || !r) return null;
    const c = cellAt(l.area, l.tokens, l.states, x, y);
    if (!c) return null;
    const state = r.hidden_states[c.col];
    const token = r.tokens[c.row];
    const ratio = l.values[c.col * l.tokens + c.row];
    return [
      `${hiddenStateName(c.col)} · token ${token.index} ${JSON.stringify(token.text)}`,
      `category: ${CATEGORY_LABELS[token.category]}`,
      `max|x| ${formatNumber(state.token_max_abs[c.row] ?? 0)} = ${formatNumber(ratio)} × threshold ${formatNumber(state.threshold)}`,
      ratio > 1 ? 'outlier under this rule' : 'below the threshold',
    ];
  }
}

export class CausalChain extends CanvasView<OutlierReport> {
  private boxes: { rect: Rect; node: ChainNode; row: ChainRow }[] = [];

  constructor(host: ViewHost) {
    super('causal-chain', host);
  }

  protected draw(report: OutlierReport, width: number, theme: Theme): void {
    const rows = chainRows(report, 4);
    const rowHeight = 84;
    const gap = 14;
    const height = Math.max(110, rows.length * (rowHeight + gap) + 24);
    const ctx = this.context(width, height, theme);
    this.boxes = [];
    if (rows.length === 0) {
      drawMessage(ctx, width, height, `no activation exceeds the ${report.rule} threshold: no chain to draw`, theme);
      this.setMeta(`rule ${report.rule}`);
      return;
    }
    const arrow = 34;
    const boxWidth = (width - 2 * arrow - 4) / 3;
    const colors: Record<ChainNode['kind'], string> = { weight: theme.warn, channel: theme.accent, sink: theme.danger };
    const headers = ['weight column', 'activation channel', 'attention sink'];
    ctx.font = fontOf(theme, 11, 600);
    ctx.fillStyle = theme.muted;
    ctx.textAlign = 'left';
    headers.forEach((h, i) => ctx.fillText(h.toUpperCase(), 2 + i * (boxWidth + arrow), 9));
    rows.forEach((row, r) => {
      const top = 20 + r * (rowHeight + gap);
      row.nodes.forEach((node, i) => {
        const rect = { x: 2 + i * (boxWidth + arrow), y: top, width: boxWidth, height: rowHeight };
        this.boxes.push({ rect, node, row });
        ctx.fillStyle = theme.card;
        ctx.strokeStyle = colors[node.kind];
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.roundRect(rect.x, rect.y, rect.width, rect.height, 8);
        ctx.fill();
        ctx.stroke();
        ctx.fillStyle = colors[node.kind];
        ctx.fillRect(rect.x + 1, rect.y + 8, 3, rect.height - 16);
        ctx.fillStyle = theme.text;
        ctx.font = fontOf(theme, 12.5, 650);
        ctx.fillText(fitText(ctx, node.title, rect.width - 20), rect.x + 12, rect.y + 15);
        ctx.font = fontOf(theme, 11);
        ctx.fillStyle = theme.muted;
        node.lines.forEach((line, j) =>
          ctx.fillText(fitText(ctx, line, rect.width - 20), rect.x + 12, rect.y + 35 + j * 16),
        );
        if (i < 2) {
          const ax = rect.x + rect.width + 4;
          const ay = rect.y + rect.height / 2;
          ctx.strokeStyle = theme.muted;
          ctx.fillStyle = theme.muted;
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.moveTo(ax, ay);
          ctx.lineTo(ax + arrow - 10, ay);
          ctx.stroke();
          ctx.beginPath();
          ctx.moveTo(ax + arrow - 8, ay);
          ctx.lineTo(ax + arrow - 15, ay - 5);
          ctx.lineTo(ax + arrow - 15, ay + 5);
          ctx.closePath();
          ctx.fill();
        }
      });
    });
    ctx.lineWidth = 1;
    this.setMeta(
      `rule ${report.rule} · ${report.chain.length} outlier channel${report.chain.length === 1 ? '' : 's'}${report.chain.length > rows.length ? `, first ${rows.length} shown` : ''}`,
    );
  }

  protected describe(x: number, y: number): string[] | null {
    const hit = this.boxes.find((b) => contains(b.rect, x, y));
    if (!hit) return null;
    const action =
      hit.node.kind === 'weight' && hit.row.tensor
        ? 'click: open this tensor'
        : hit.node.kind === 'channel' && hit.row.block !== null
          ? `click: open block ${hit.row.block}`
          : null;
    return [hit.node.title, ...hit.node.lines, ...(action ? [action] : [])];
  }

  /** A weight box opens its tensor in the weight views; a channel box opens its first block. */
  protected override clickAt(x: number, y: number) {
    const hit = this.boxes.find((b) => contains(b.rect, x, y));
    if (!hit) return null;
    if (hit.node.kind === 'weight' && hit.row.tensor) return { tensor: hit.row.tensor };
    if (hit.node.kind === 'channel' && hit.row.block !== null) return { layer: hit.row.block };
    return null;
  }
}
