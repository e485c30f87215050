// What every part of the page uses to reach and fill its elements: lookup by data-testid (the
// names the e2e test reads, kept stable), notices, facts with their raw value, the status line,
// progress bars.

import { formatInt } from './format';
import type { Segment } from './forward';

export function $<T extends HTMLElement = HTMLElement>(testid: string, root: ParentNode = document): T {
  const el = root.querySelector<T>(`[data-testid="${testid}"]`);
  if (!el) throw new Error(`the page has no [data-testid="${testid}"]`);
  return el;
}

export function showNotice(testid: string, title: string | null, body: string): void {
  const el = $(testid);
  const t = el.querySelector('.notice-title');
  if (title !== null && t) t.textContent = title;
  const b = el.querySelector('.notice-body');
  if (b) b.textContent = body;
  el.hidden = false;
}

export const hide = (testid: string) => ($(testid).hidden = true);

/** Lets the notice's × button dismiss it. */
export function dismissible(testid: string): void {
  $(testid)
    .querySelector('.notice-close')
    ?.addEventListener('click', () => hide(testid));
}

/** A fact shown formatted, with its raw value in data-value for tests and tooltips. */
export function setFact(testid: string, value: string | number, shown: string | number = value): void {
  const el = $(testid);
  el.dataset.value = String(value);
  el.textContent = typeof shown === 'number' ? formatInt(shown) : shown;
}

export const status = {
  set(state: 'starting' | 'busy' | 'ready' | 'error', text: string) {
    const el = $('status');
    el.dataset.state = state;
    el.textContent = text;
  },
};

/** Puts text segments into `el`, the bold ones in <b>. */
export function renderSegments(el: HTMLElement, segments: Segment[]): void {
  el.replaceChildren(
    ...segments.map((s) => {
      if (typeof s === 'string') return s;
      const b = document.createElement('b');
      b.textContent = s.bold;
      return b;
    }),
  );
}

/** A `<select>`'s options from [value, label, title?] triples, keeping its value where it still exists. */
export function fillOptions(select: HTMLSelectElement, options: [string, string, string?][]): void {
  const current = select.value;
  select.replaceChildren(
    ...options.map(([value, label, title]) => {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = label;
      if (title) o.title = title;
      return o;
    }),
  );
  select.value = current;
}

/**
 * A progress bar built into `root`, an empty `<div class="progress" data-testid="NAME-progress">`:
 * a track, and with `data-labelledby="TITLE-ID"` also a label above it, its stage and detail
 * `NAME-stage` and `NAME-detail` to tests (without, a title and detail given are not shown).
 */
export class ProgressBar {
  private readonly stage: HTMLSpanElement | null = null;
  private readonly detail: HTMLSpanElement | null = null;
  private readonly track: HTMLDivElement;
  private readonly fill: HTMLDivElement;

  constructor(private readonly root: HTMLElement) {
    this.track = document.createElement('div');
    this.track.className = 'progress-track';
    this.fill = document.createElement('div');
    this.fill.className = 'progress-fill';
    this.track.append(this.fill);
    const labelledBy = root.dataset.labelledby;
    if (!labelledBy) {
      root.replaceChildren(this.track);
      return;
    }
    const name = (root.dataset.testid ?? 'progress').replace(/-progress$/, '');
    const label = document.createElement('div');
    label.className = 'progress-label';
    this.stage = document.createElement('span');
    this.stage.dataset.testid = `${name}-stage`;
    this.detail = document.createElement('span');
    this.detail.className = 'progress-detail';
    this.detail.dataset.testid = `${name}-detail`;
    label.append(this.stage, this.detail);
    this.track.setAttribute('role', 'progressbar');
    this.track.setAttribute('aria-valuemin', '0');
    this.track.setAttribute('aria-valuemax', '100');
    this.track.setAttribute('aria-labelledby', labelledBy);
    root.replaceChildren(label, this.track);
  }

  show(title: string): void {
    this.root.hidden = false;
    this.update(title, '', 0);
  }

  update(title: string, detail: string, fraction: number | null): void {
    if (this.stage) this.stage.textContent = title;
    if (this.detail) this.detail.textContent = detail;
    if (fraction === null) {
      this.track.classList.add('indeterminate');
      this.track.removeAttribute('aria-valuenow');
      this.fill.style.width = '';
    } else {
      this.track.classList.remove('indeterminate');
      const pct = Math.max(0, Math.min(100, fraction * 100));
      this.fill.style.width = `${pct}%`;
      this.track.setAttribute('aria-valuenow', pct.toFixed(0));
    }
  }

  hide(): void {
    this.root.hidden = true;
  }
}
