// The next-token panel: the top-k of the reference (the model as loaded, or a pinned
// configuration) and of the model under study side by side (ranks that moved marked), and which
// backend computed each column.

import { $, hide, renderSegments, showNotice, status } from '../dom';
import type { Engine } from '../engine';
import { formatMs, formatProb, tokenNode } from '../format';
import { computedOn } from '../forward';
import type { Backend, TopToken } from '../messages';
import type { Store } from '../store';
import type { Control } from '../controls/control';
import { currentReference } from '../controls/pin';
import { AS_LOADED } from '../reference';
import { backendLabel } from './device';

const TOP_K = 10;

/** A top-k column: rank, token, probability bar; `compareTo` marks the ranks that moved from it. */
export function renderTokenList(
  list: HTMLElement,
  top: TopToken[],
  prompt: string,
  compareTo: TopToken[] | null,
): void {
  list.dataset.prompt = prompt;
  list.replaceChildren();
  const reference = compareTo ? new Map(compareTo.map((t, i) => [t.id, i])) : null;
  top.forEach((t, i) => {
    const li = document.createElement('li');
    li.dataset.token = t.token;
    li.dataset.id = String(t.id);
    li.dataset.prob = String(t.prob);
    li.dataset.logit = String(t.logit);
    li.title = `token id ${t.id} · logit ${t.logit.toFixed(3)} · ${JSON.stringify(t.token)}`;
    if (reference) {
      const was = reference.get(t.id);
      li.dataset.moved = was === undefined ? 'new' : was === i ? 'same' : 'moved';
    }
    const rank = document.createElement('span');
    rank.className = 'rank';
    rank.textContent = String(i + 1);
    const bar = document.createElement('span');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.className = 'bar-fill';
    fill.style.width = `${Math.max(0.5, t.prob * 100)}%`;
    bar.append(fill, tokenNode(t.token));
    const prob = document.createElement('span');
    prob.className = 'prob';
    prob.textContent = formatProb(t.prob);
    li.append(rank, bar, prob);
    list.append(li);
  });
}

/** Which backend computed each column (`quantized` null: one column), and why the CPU beside a GPU. */
function setPredictMeta(store: Store, tokens: number, ms: number, reference: Backend, quantized: Backend | null): void {
  const device = store.loaded?.device ?? null;
  $('predict-meta').textContent = `${tokens} prompt token${tokens === 1 ? '' : 's'} · ${formatMs(ms)}`;
  const on = $('predict-backend');
  const words = quantized === null ? AS_LOADED : currentReference(store);
  $('reference-heading').textContent = words.heading;
  const said = computedOn(reference, quantized, backendLabel(device), device?.forward, ms, words);
  on.dataset.backend = said.backend;
  on.dataset.referenceBackend = reference;
  on.dataset.quantizedBackend = quantized ?? '';
  renderSegments(on, said.segments);
  on.hidden = false;
}

/** Predicts the store's prompt with `eng` and shows it; resolves to the time it took. */
export async function predict(eng: Engine, store: Store): Promise<number> {
  const prompt = store.state.prompt;
  const current = () => store.loaded?.engine === eng;
  const lists = [$('top-reference'), $('top-quantized')];
  lists.forEach((l) => l.classList.add('stale'));
  $('predict-button').toggleAttribute('disabled', true);
  status.set('busy', 'predicting…');
  const t0 = performance.now();
  try {
    if (store.gpu) {
      const both = await eng.run('predictBoth', { prompt, topK: TOP_K });
      if (!current()) return 0;
      renderTokenList(lists[0], both.reference, prompt, null);
      renderTokenList(lists[1], both.quantized, prompt, both.reference);
      const quantizedOn = both.quantizedBackend ?? 'webgpu';
      setPredictMeta(store, both.tokens.length, both.ms, both.referenceBackend ?? 'webgpu', quantizedOn);
    } else {
      const p = await eng.run('predict', { prompt, topK: TOP_K });
      if (!current()) return 0;
      renderTokenList(lists[0], p.top, prompt, null);
      lists[1].replaceChildren();
      setPredictMeta(store, p.tokens.length, p.ms, p.backend, null);
    }
    lists.forEach((l) => (l.dataset.model = store.loaded?.summary.source ?? ''));
    hide('predict-error');
    $('tokens-placeholder').hidden = true;
  } catch (e) {
    if (!current()) return 0;
    showNotice('predict-error', null, (e as Error).message);
    lists.forEach((l) => (l.dataset.prompt = prompt));
  } finally {
    lists.forEach((l) => l.classList.remove('stale'));
    $('predict-button').toggleAttribute('disabled', !store.loaded);
  }
  return performance.now() - t0;
}

export const predictionPanel: Control = {
  mount() {},
  enable(store, on) {
    $('predict-button').toggleAttribute('disabled', !on);
    $('quantized-column').hidden = on && !store.gpu;
  },
};
