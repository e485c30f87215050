// The table of every configuration measured in this session: sortable by any column, exported
// as CSV or JSON; a click on a row restores that configuration, its Pin makes it the reference.

import { downloadBlob } from '../charts';
import { describeRuntime, describeWeights } from '../configuration';
import { $ } from '../dom';
import { baseName } from '../format';
import { COLUMNS, sortEntries, toCsv, toJson, type HistoryEntry, type SortDirection } from '../history';
import type { EvalMetrics } from '../messages';
import type { Store } from '../store';
import { decodeState } from '../url-state';
import type { Control, PageActions } from './control';
import { canPin, pinConfiguration, pinnedLabel } from './pin';

const entries: HistoryEntry[] = [];
let sort: { key: keyof HistoryEntry; direction: SortDirection } = { key: 'run', direction: 'asc' };
let actions: PageActions;
let store: Store;

const sorted = () => sortEntries(entries, sort.key, sort.direction);

/** Adds the metrics `m` of the store's current configuration, measured `ms` after the change. */
export function recordHistory(m: EvalMetrics, ms: number): void {
  const { state, loaded } = store;
  entries.push({
    run: entries.length + 1,
    time: new Date().toISOString(),
    model: loaded?.summary.name || baseName(loaded?.summary.source ?? state.model),
    weights: describeWeights(state),
    runtime: loaded?.caps.runtime ? describeRuntime(state.runtime) : 'n/a',
    intervention: state.intervention || 'none',
    reference: pinnedLabel(store) ?? 'as loaded',
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
    pinHeader(),
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
  tr.append(pinCell(e));
  tr.title = 'Click to restore this configuration';
  tr.addEventListener('click', () => actions.restore(stateOf(e)));
  return tr;
}

const stateOf = (e: HistoryEntry) => decodeState(new URL(e.link).hash).state;

function pinHeader(): HTMLTableCellElement {
  const th = document.createElement('th');
  th.scope = 'col';
  const label = document.createElement('span');
  label.className = 'visually-hidden';
  label.textContent = 'Pin as reference';
  th.append(label);
  return th;
}

/** Pins the row's configuration (not the reference it was measured against). */
function pinCell(e: HistoryEntry): HTMLTableCellElement {
  const td = document.createElement('td');
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'button secondary small';
  b.textContent = 'Pin';
  b.title = 'Compare every configuration with this one';
  b.dataset.testid = 'history-pin';
  b.dataset.run = String(e.run);
  b.disabled = !canPin(store);
  b.addEventListener('click', (event) => {
    event.stopPropagation();
    pinConfiguration(store, stateOf(e));
  });
  td.append(b);
  return td;
}

function emptyRow(): HTMLTableRowElement {
  const td = document.createElement('td');
  td.colSpan = COLUMNS.length + 1;
  td.className = 'empty';
  td.textContent = 'Each configuration you try is listed here, with its metrics.';
  const tr = document.createElement('tr');
  tr.append(td);
  return tr;
}

export const historyTable: Control = {
  mount(pageStore, page) {
    actions = page;
    store = pageStore;
    $('history-csv').addEventListener('click', () =>
      downloadBlob(new Blob([toCsv(sorted())], { type: 'text/csv' }), 'quantscope-history.csv'),
    );
    $('history-json').addEventListener('click', () =>
      downloadBlob(new Blob([toJson(sorted())], { type: 'application/json' }), 'quantscope-history.json'),
    );
    renderHistory();
  },
  enable() {
    // Whether rows can be pinned depends on the engine.
    renderHistory();
  },
};
