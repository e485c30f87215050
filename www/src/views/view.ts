// One view: a card with a title, a canvas, a PNG button, and the loading/ready/error states the
// page and its end-to-end test read from `data-ready` / `data-error`.

import { attachHover, exportPng, prepareCanvas, readTheme, type Theme, type Tooltip } from './chart.ts';
import { VIEW_TEXT } from './texts.ts';
import type { ViewId, ViewState } from './types.ts';

export interface ViewHost {
  tooltip: Tooltip;
  state(): ViewState;
  /** A view asks for a state change (e.g. a click on a layer). */
  pick(change: Partial<ViewState>): void;
}

/** `L`: what `draw` leaves for hit-testing (`layout`); null until drawn and when nothing is. */
export abstract class CanvasView<D, L = never> {
  readonly section: HTMLElement;
  protected readonly canvas: HTMLCanvasElement;
  protected readonly body: HTMLDivElement;
  private readonly meta: HTMLSpanElement;
  private readonly errorBox: HTMLParagraphElement;
  protected data: D | null = null;
  protected width = 0;
  protected theme: Theme | null = null;
  protected layout: L | null = null;

  constructor(
    readonly id: ViewId,
    protected readonly host: ViewHost,
  ) {
    const { title, caption } = VIEW_TEXT[id];
    this.section = document.createElement('section');
    this.section.className = 'card qv-view';
    this.section.dataset.view = id;
    this.section.dataset.ready = 'false';
    this.section.setAttribute('aria-busy', 'true');

    const head = document.createElement('div');
    head.className = 'card-head';
    const h = document.createElement('h2');
    h.textContent = title;
    const actions = document.createElement('div');
    actions.className = 'qv-actions';
    this.meta = document.createElement('span');
    this.meta.className = 'meta';
    const png = document.createElement('button');
    png.type = 'button';
    png.className = 'button secondary qv-png';
    png.textContent = 'PNG';
    png.title = 'Save this chart as a PNG image';
    png.dataset.export = id;
    png.addEventListener('click', () => {
      exportPng(this.canvas, `quantscope-${id}.png`).catch((e: unknown) => this.showError(e));
    });
    actions.append(this.meta, png);
    head.append(h, actions);

    const p = document.createElement('p');
    p.className = 'qv-caption';
    p.textContent = caption;

    this.body = document.createElement('div');
    this.body.className = 'qv-body';
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'qv-canvas';
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', title);
    this.body.appendChild(this.canvas);
    attachHover(this.canvas, host.tooltip, (x, y) => (this.data ? this.describe(x, y) : null));
    this.canvas.addEventListener('click', (e) => {
      if (!this.data) return;
      const r = this.canvas.getBoundingClientRect();
      const change = this.clickAt(e.clientX - r.left, e.clientY - r.top);
      if (change) host.pick(change);
    });

    this.errorBox = document.createElement('p');
    this.errorBox.className = 'qv-error';
    this.errorBox.hidden = true;

    this.section.append(head, p, this.body, this.errorBox);
  }

  /** Data is on its way: keep drawing the old data (dimmed) until it arrives. */
  setLoading(): void {
    this.section.dataset.ready = 'false';
    this.section.setAttribute('aria-busy', 'true');
  }

  setData(data: D): void {
    this.data = data;
    this.errorBox.hidden = true;
    delete this.section.dataset.error;
    this.render();
    this.section.dataset.ready = 'true';
    this.section.setAttribute('aria-busy', 'false');
  }

  showError(e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    this.errorBox.textContent = message;
    this.errorBox.hidden = false;
    this.section.dataset.error = 'true';
    this.section.setAttribute('aria-busy', 'false');
  }

  protected setMeta(text: string): void {
    this.meta.textContent = text;
  }

  /** Redraws the current data at the body's width (after a resize or a state change). */
  render(): void {
    const width = Math.floor(this.body.clientWidth) || 600;
    this.width = width;
    this.theme = readTheme(this.section);
    if (!this.data) return;
    this.layout = null;
    this.draw(this.data, width, this.theme);
  }

  protected context(width: number, height: number, theme: Theme): CanvasRenderingContext2D {
    return prepareCanvas(this.canvas, width, height, theme);
  }

  /** Draws `data` across `width` CSS pixels (choosing its own height). */
  protected abstract draw(data: D, width: number, theme: Theme): void;

  /** Tooltip lines for the point (x, y) in CSS pixels, or null. */
  protected abstract describe(x: number, y: number): string[] | null;

  /** The state change a click at (x, y) asks for, if any. */
  protected clickAt(_x: number, _y: number): Partial<ViewState> | null {
    return null;
  }
}
