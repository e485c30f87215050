// "Where it breaks": the evaluation text with every predicted token highlighted by the KL of its
// prediction and a flipped top-1 boxed, the worst positions first; a click on a token shows both
// top-10s, the per-layer error of the residual stream that predicted it, and whether that token
// carries a massive activation (the engine's `tokenView` and `positionDetail`,
// src/study/token_view.rs). It follows the configuration like the metrics, on the metrics' tokens
// and windows, and only while shown.

import { $, hide, ProgressBar, showNotice } from '../dom';
import type { Engine } from '../engine';
import { formatMs, tokenNode } from '../format';
import { finiteMax, klScale } from '../kl-heat';
import type { EvaluationArgs, PositionDetail, PositionView, TextToken, TokenView } from '../messages';
import { StoppableCall } from '../stoppable';
import type { Store } from '../store';
import type { Control } from '../controls/control';
import { currentReference } from '../controls/pin';
import type { ReferenceWords } from '../reference';
import { formatNumber } from '../views/scales.ts';
import { renderTokenList } from './prediction';

let open = false;
/** The token view's computation, which a change cancels rather than waits for. */
let computation: StoppableCall<'tokenView'>;
/** What is on screen: the view, the arguments it was computed with (a position's detail needs the same) and its reference. */
let shown: { view: TokenView; args: EvaluationArgs; eng: Engine; reference: ReferenceWords } | null = null;
/** The latest detail asked for: an older answer arriving late is dropped. */
let detailRequest = 0;

const quoted = (text: string) => JSON.stringify(text);

function showOpen(): void {
  $('token-view').dataset.open = String(open);
  $('token-view-root').hidden = !open;
  const toggle = $('token-view-toggle');
  toggle.setAttribute('aria-expanded', String(open));
  toggle.textContent = open ? 'Hide the token view' : 'Show the token view';
}

function describePosition(p: PositionView, tokens: TextToken[]): string {
  const flip = p.flipped ? ' · top-1 flipped' : '';
  return `${quoted(tokens[p.index]?.text ?? '')} · KL ${formatNumber(p.kl)}${flip}`;
}

function renderText(view: TokenView, reference: ReferenceWords, onPick: (index: number) => void): void {
  const scale = klScale(finiteMax(view.positions.map((p) => p.kl)));
  const byIndex = new Map(view.positions.map((p) => [p.index, p]));
  const spans = view.tokens.map((t) => {
    const span = document.createElement('span');
    span.textContent = t.text;
    span.dataset.index = String(t.index);
    const p = byIndex.get(t.index);
    if (!p) {
      span.title = 'not predicted: the first token of its window has no context';
      return span;
    }
    span.dataset.kl = String(p.kl);
    span.dataset.flipped = String(p.flipped);
    span.style.background = scale.tint(p.kl);
    span.title = `${describePosition(p, view.tokens)} · click for both top-10s`;
    span.tabIndex = 0;
    span.setAttribute('role', 'button');
    span.addEventListener('click', () => onPick(t.index));
    span.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        onPick(t.index);
      }
    });
    return span;
  });
  $('token-text').replaceChildren(...spans);
  const worst = view.worst.map((i) => {
    const p = view.positions[i];
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'button secondary small';
    button.dataset.index = String(p.index);
    button.dataset.flipped = String(p.flipped);
    button.textContent = describePosition(p, view.tokens);
    button.addEventListener('click', () => onPick(p.index));
    li.append(button);
    return li;
  });
  $('token-worst').replaceChildren(...worst);
  const flipped = view.positions.filter((p) => p.flipped).length;
  const r = view.result;
  $('token-view-summary').textContent =
    `${view.positions.length} predicted tokens, ${flipped} with a flipped top-1; KL ${formatNumber(r.kl)}, ` +
    `top-1 agreement ${(r.top1_agreement * 100).toFixed(1)}% against ${reference.name} (windows of ${view.window}, ${formatMs(view.ms)}).`;
}

function renderLayerErrors(detail: PositionDetail): void {
  const max = finiteMax(detail.layerErrors) || 1;
  const massive = new Set(detail.massiveAfter);
  const rows = detail.layerErrors.map((error, i) => {
    const li = document.createElement('li');
    // Entry 0 is the embeddings; entry i the residual stream after block i − 1.
    const block = i - 1;
    li.dataset.error = String(error);
    li.dataset.massive = String(massive.has(block));
    const label = document.createElement('span');
    label.className = 'layer-label';
    label.textContent = i === 0 ? 'embeddings' : `block ${block}${massive.has(block) ? ' (massive)' : ''}`;
    const bar = document.createElement('span');
    bar.className = 'layer-bar';
    bar.style.width = `${Math.max(0.5, (error / max) * 100)}%`;
    const value = document.createElement('span');
    value.textContent = formatNumber(error);
    li.append(label, bar, value);
    return li;
  });
  $('detail-layers').replaceChildren(...rows);
}

function renderDetail(detail: PositionDetail, view: TokenView, reference: ReferenceWords): void {
  const box = $('token-detail');
  const position = view.positions.find((p) => p.index === detail.index);
  const title = $('token-detail-title');
  title.replaceChildren(`Token ${detail.index} `, tokenNode(view.tokens[detail.index]?.text ?? ''));
  if (position) title.append(` · KL ${formatNumber(position.kl)}${position.flipped ? ' · top-1 flipped' : ''}`);
  const label = `position ${detail.index}`;
  $('detail-reference-heading').textContent = reference.heading;
  renderTokenList($('detail-reference'), detail.reference, label, null);
  renderTokenList($('detail-quantized'), detail.quantized, label, detail.reference);
  renderLayerErrors(detail);
  const before = quoted(view.tokens[detail.index - 1]?.text ?? '');
  $('detail-massive').textContent = detail.massiveAfter.length
    ? `The token that predicted it, ${before}, carries a massive activation in ${reference.name} ` +
      `(after blocks ${detail.massiveAfter.join(', ')}): an outlier carrier, like the first token or a delimiter.`
    : `The token that predicted it, ${before}, carries no massive activation.`;
  box.dataset.index = String(detail.index);
  box.dataset.state = 'done';
  box.hidden = false;
}

async function pick(index: number): Promise<void> {
  if (!shown) return;
  const { view, args, eng, reference } = shown;
  const request = ++detailRequest;
  for (const span of $('token-text').querySelectorAll<HTMLElement>('span[data-index]'))
    span.setAttribute('aria-pressed', String(Number(span.dataset.index) === index));
  const box = $('token-detail');
  box.dataset.state = 'running';
  box.dataset.index = String(index);
  try {
    const detail = await eng.run('positionDetail', { ...args, index });
    if (request !== detailRequest || shown?.view !== view) return;
    hide('token-view-error');
    renderDetail(detail, view, reference);
  } catch (e) {
    if (request !== detailRequest) return;
    box.dataset.state = 'error';
    showNotice('token-view-error', null, (e as Error).message);
  }
}

export const tokenView = {
  /** Shown (it is computed only then). */
  isOpen: (): boolean => open,

  /** Computes the token view of the model as it runs now; false when it failed (shown) or was cancelled. */
  async update(eng: Engine, store: Store, args: EvaluationArgs, superseded: () => boolean): Promise<boolean> {
    const view = await computation.run(eng, store, args, superseded);
    if (!view) return false;
    const reference = currentReference(store);
    shown = { view, args, eng, reference };
    $('token-detail').hidden = true;
    renderText(view, reference, (index) => void pick(index));
    const card = $('token-view');
    card.dataset.state = 'done';
    card.dataset.run = String(Number(card.dataset.run ?? '0') + 1);
    return true;
  },

  /** The configuration changed: the token view of the previous one is moot. */
  cancel(): void {
    computation.stop();
  },
};

export const tokenViewPanel: Control = {
  mount(store, page) {
    computation = new StoppableCall(
      'tokenView',
      $('token-view'),
      new ProgressBar($('token-view-progress')),
      'token-view-error',
    );
    $('token-view-toggle').addEventListener('click', () => {
      open = !open;
      showOpen();
      if (open) {
        page.refresh();
      } else {
        tokenView.cancel();
        // What is on screen stays, but a computation cut short is not an error.
        if ($('token-view').dataset.state === 'running') $('token-view').dataset.state = 'idle';
      }
    });
    store.subscribe((change) => {
      if (change !== 'loaded') return;
      shown = null;
      $('token-text').replaceChildren();
      $('token-worst').replaceChildren();
      $('token-detail').hidden = true;
      $('token-view-summary').textContent = '';
    });
    showOpen();
  },

  enable(store, on) {
    const available = on && store.gpu && (store.loaded?.caps.study?.tokenView ?? false);
    $('token-view-toggle').toggleAttribute('disabled', !available);
  },
};
