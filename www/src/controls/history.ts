// The table of every configuration measured in this session: sortable by any column, exported
// as CSV or JSON, and a click on a row restores that configuration.

import { downloadBlob } from '../charts';
import { $ } from '../dom';
import { baseName } from '../format';
import { COLUMNS, sortEntries, toCsv, toJson, type HistoryEntry, type SortDirection } from '../history';
import type { EvalMetrics, RuntimeQuantConfig } from '../messages';
import { buildRecipe, describeRecipe } from '../recipe';
import type { Store } from '../store';
import { decodeState } from '../url-state';
import type { Control, PageActions } from './control';

const entries: HistoryEntry[] = [];
let sort: { key: keyof HistoryEntry; direction: SortDirection } = { key: 'run', direction: 'asc' };
let actions: PageActions;

const sorted = () => sortEntries(entries, sort.key, sort.direction);

function runtimeLabel(r: RuntimeQuantConfig): string {
  const parts: string[] = [];
  if (r.a) parts.push(`A ${r.a}`);
  if (r.aDown) parts.push(`A-down ${r.aDown}`);
  if (r.kv) parts.push(`KV ${r.kv}`);
  if (r.attn) parts.push(`attn ${r.attn}`);
  if (r.method) parts.push(`${r.method} (${r.calibTokens} tok)`);
  return parts.join(' · ') || 'none';
}

/** Adds the metrics `m` of the store's current configuration, measured `ms` after the change. */
export function recordHistory(store: Store, m: EvalMetrics, ms: number): void {
  const { state, loaded } = store;
  entries.push({
    run: entries.length + 1,
    time: new Date().toISOString(),
    model: loaded?.summary.name || baseName(loaded?.summary.source ?? state.model),
    weights:
      state.recipeMode === 'json' ? state.recipeText.replace(/\s+/g, ' ') : describeRecipe(buildRecipe(state.weights)),
    runtime: loaded?.caps.runtime ? runtimeLabel(state.runtime) : 'n/a',
    intervention: state.intervention || 'none',
    bitsPerWeight: loaded?.applied?.bitsPerWeight ?? NaN,
    bytes: loaded?.applied?.bytes ?? NaN,
    tokens: m.tokens,
    kl: m.kl,
    pdKl: m.pd_kl,
    top1: m.top1_agreement,
    perplexity: m.perplexity,
    referencePerplexity: m.reference_perplexity,
    qid: m.qid,
    ms,
    link: actions.shareLink(),
  });
  renderHistory();
}

function renderHistory(): void {
  const table = $('history');
  const headRow = table.querySelector('thead tr');
  const body = table.querySelector('tbody');
  if (!headRow || !body) return;
  headRow.replaceChildren(
    ...COLUMNS.map((c) => {
      const th = document.createElement('th');
      th.scope = 'col';
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.key = c.key;
      b.textContent = c.label;
      const isSorted = sort.key === c.key;
      th.setAttribute('aria-sort', isSorted ? (sort.direction === 'asc' ? 'ascending' : 'descending') : 'none');
      if (isSorted) b.append(sort.direction === 'asc' ? ' ▲' : ' ▼');
      b.addEventListener('click', () => {
        sort = { key: c.key, direction: isSorted && sort.direction === 'asc' ? 'desc' : 'asc' };
        renderHistory();
      });
      th.append(b);
      if (c.numeric) th.classList.add('num');
      return th;
    }),
  );
  body.replaceChildren(...(entries.length === 0 ? [emptyRow()] : sorted().map(row)));
  $('history-csv').toggleAttribute('disabled', entries.length === 0);
  $('history-json').toggleAttribute('disabled', entries.length === 0);
}

function row(e: HistoryEntry): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.run = String(e.run);
  for (const c of COLUMNS) {
    const td = document.createElement('td');
    const v = e[c.key];
    td.dataset.key = c.key;
    td.dataset.value = String(v);
    td.textContent = typeof v === 'number' && c.format ? c.format(v) : String(v);
    if (c.numeric) td.classList.add('num');
    if (c.key === 'weights') td.title = String(v);
    tr.append(td);
  }
  tr.title = 'Click to restore this configuration';
  tr.addEventListener('click', () => actions.restore(decodeState(new URL(e.link).hash).state));
  return tr;
}

function emptyRow(): HTMLTableRowElement {
  const td = document.createElement('td');
  td.colSpan = COLUMNS.length;
  td.className = 'empty';
  td.textContent = 'Each configuration you try is listed here, with its metrics.';
  const tr = document.createElement('tr');
  tr.append(td);
  return tr;
}

export const historyTable: Control = {
  mount(_store, page) {
    actions = page;
    $('history-csv').addEventListener('click', () =>
      downloadBlob(new Blob([toCsv(sorted())], { type: 'text/csv' }), 'quantscope-history.csv'),
    );
    $('history-json').addEventListener('click', () =>
      downloadBlob(new Blob([toJson(sorted())], { type: 'application/json' }), 'quantscope-history.json'),
    );
    renderHistory();
  },
};
