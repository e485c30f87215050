// The session's history of configurations tried: one row per evaluated configuration, sortable by
// any column, exported as CSV (RFC 4180) or JSON.

export interface HistoryEntry {
  /** 1, 2, ... in the order tried. */
  run: number;
  /** ISO time of the measurement. */
  time: string;
  model: string;
  weights: string;
  runtime: string;
  intervention: string;
  /** What the metrics compared with: "as loaded", or the pinned configuration's label. */
  reference: string;
  bitsPerWeight: number;
  bytes: number;
  tokens: number;
  kl: number;
  pdKl: number;
  top1: number;
  perplexity: number;
  referencePerplexity: number;
  qid: number;
  /** From the change to the metrics on screen, milliseconds. */
  ms: number;
  /** The shareable link of this configuration. */
  link: string;
}

export interface Column {
  key: keyof HistoryEntry;
  label: string;
  numeric: boolean;
  /** How the table shows the value (exports keep the raw value). */
  format?: (v: number) => string;
}

/** Not measured (NaN) reads as a dash; infinities as themselves. */
const shown = (f: (v: number) => string) => (v: number) =>
  Number.isNaN(v) ? '–' : Number.isFinite(v) ? f(v) : String(v);
const fixed = (digits: number) => shown((v) => v.toFixed(digits));

export const COLUMNS: readonly Column[] = [
  { key: 'run', label: '#', numeric: true },
  { key: 'weights', label: 'Weights', numeric: false },
  { key: 'runtime', label: 'Runtime', numeric: false },
  { key: 'intervention', label: 'Intervention', numeric: false },
  { key: 'reference', label: 'Against', numeric: false },
  { key: 'bitsPerWeight', label: 'Bits/w', numeric: true, format: fixed(2) },
  { key: 'bytes', label: 'MB', numeric: true, format: shown((v) => (v / 1e6).toFixed(1)) },
  { key: 'kl', label: 'KL', numeric: true, format: fixed(4) },
  { key: 'pdKl', label: 'PD-KL', numeric: true, format: fixed(4) },
  { key: 'top1', label: 'Top-1', numeric: true, format: shown((v) => `${(v * 100).toFixed(1)}%`) },
  { key: 'perplexity', label: 'PPL', numeric: true, format: fixed(2) },
  { key: 'qid', label: 'QiD', numeric: true, format: fixed(4) },
  { key: 'tokens', label: 'Tokens', numeric: true },
  { key: 'ms', label: 'Time (ms)', numeric: true, format: shown((v) => String(Math.round(v))) },
];

export type SortDirection = 'asc' | 'desc';

/**
 * The entries sorted by `key` (a copy). Numbers compare numerically with NaN last either way;
 * text compares by locale, numbers inside it by value ("int2" before "int10"). Ties keep the
 * order tried.
 */
export function sortEntries(
  entries: readonly HistoryEntry[],
  key: keyof HistoryEntry,
  direction: SortDirection,
): HistoryEntry[] {
  const sign = direction === 'asc' ? 1 : -1;
  const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
  return entries
    .map((e, i) => ({ e, i }))
    .sort((x, y) => {
      const a = x.e[key];
      const b = y.e[key];
      let c: number;
      if (typeof a === 'number' && typeof b === 'number') {
        const an = Number.isNaN(a);
        const bn = Number.isNaN(b);
        if (an || bn) return an === bn ? x.i - y.i : an ? 1 : -1;
        c = a - b;
      } else {
        c = collator.compare(String(a), String(b));
      }
      return c !== 0 ? sign * c : x.i - y.i;
    })
    .map(({ e }) => e);
}

/** One CSV field: quoted when it holds a comma, quote, CR or LF, with quotes doubled. */
export function csvField(value: string | number): string {
  const s = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : value;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const EXPORT_KEYS: readonly (keyof HistoryEntry)[] = [
  'run',
  'time',
  'model',
  'weights',
  'runtime',
  'intervention',
  'reference',
  'bitsPerWeight',
  'bytes',
  'tokens',
  'kl',
  'pdKl',
  'top1',
  'perplexity',
  'referencePerplexity',
  'qid',
  'ms',
  'link',
];

/** The entries as CSV: a header row of field names, then one row per entry, CRLF line ends. */
export function toCsv(entries: readonly HistoryEntry[]): string {
  const rows = [EXPORT_KEYS.join(',')];
  for (const e of entries) rows.push(EXPORT_KEYS.map((k) => csvField(e[k])).join(','));
  return rows.join('\r\n') + '\r\n';
}

export function toJson(entries: readonly HistoryEntry[]): string {
  return JSON.stringify(entries, null, 2) + '\n';
}
