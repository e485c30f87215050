import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COLUMNS, csvField, sortEntries, toCsv, toJson, type HistoryEntry } from './history';

function entry(run: number, over: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    run,
    time: '2026-01-01T00:00:00.000Z',
    model: 'm.gguf',
    weights: 'as loaded',
    runtime: 'none',
    intervention: 'none',
    reference: 'as loaded',
    bitsPerWeight: 5,
    bytes: 1e6,
    tokens: 64,
    kl: 0,
    pdKl: 0,
    top1: 1,
    perplexity: 10,
    referencePerplexity: 10,
    qid: 0,
    ms: 100,
    link: 'http://x/#',
    ...over,
  };
}

test('sorting by a number column, both ways, NaN last, ties in the order tried', () => {
  const es = [entry(1, { kl: 0.5 }), entry(2, { kl: NaN }), entry(3, { kl: 0.1 }), entry(4, { kl: 0.5 })];
  assert.deepEqual(
    sortEntries(es, 'kl', 'asc').map((e) => e.run),
    [3, 1, 4, 2],
  );
  assert.deepEqual(
    sortEntries(es, 'kl', 'desc').map((e) => e.run),
    [1, 4, 3, 2],
  );
  assert.deepEqual(
    es.map((e) => e.run),
    [1, 2, 3, 4],
    'the input is not reordered',
  );
});

test('sorting text compares numbers inside names by value', () => {
  const es = [
    entry(1, { weights: 'int10 everywhere' }),
    entry(2, { weights: 'int2 everywhere' }),
    entry(3, { weights: 'Int4 everywhere' }),
  ];
  assert.deepEqual(
    sortEntries(es, 'weights', 'asc').map((e) => e.run),
    [2, 3, 1],
  );
});

test('CSV fields are quoted only when needed, quotes doubled', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField('cr\r'), '"cr\r"');
  assert.equal(csvField(0.25), '0.25');
  assert.equal(csvField(NaN), '');
});

test('CSV export: a header, one row per entry, CRLF, parseable back', () => {
  const es = [entry(1, { weights: 'attn_q int4, "odd" · ffn_down@0-3 keep' }), entry(2, { kl: 1.5e-7 })];
  const csv = toCsv(es);
  const lines = csv.split('\r\n');
  assert.equal(lines.length, 4, 'header, two rows, and the final line end');
  assert.equal(lines[3], '');
  assert.match(lines[0], /^run,time,model,weights,/);
  // A minimal RFC 4180 reader gets the fields back.
  const parse = (line: string) => {
    const out: string[] = [];
    let field = '';
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') {
          field += '"';
          i++;
        } else if (ch === '"') quoted = false;
        else field += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ',') {
        out.push(field);
        field = '';
      } else field += ch;
    }
    out.push(field);
    return out;
  };
  const header = parse(lines[0]);
  const row = parse(lines[1]);
  assert.equal(row.length, header.length);
  assert.equal(row[header.indexOf('weights')], 'attn_q int4, "odd" · ffn_down@0-3 keep');
  assert.equal(Number(parse(lines[2])[header.indexOf('kl')]), 1.5e-7);
});

test('JSON export is the entries', () => {
  const es = [entry(1), entry(2, { intervention: 'drop-sink' })];
  assert.deepEqual(JSON.parse(toJson(es)), es);
});

test('every column names a field of an entry', () => {
  const e = entry(1);
  for (const c of COLUMNS) assert.ok(c.key in e, c.key);
});

test('the table shows an unmeasured value as a dash', () => {
  const ppl = COLUMNS.find((c) => c.key === 'perplexity');
  assert.equal(ppl?.format?.(NaN), '–');
  assert.equal(ppl?.format?.(38.6661), '38.67');
  assert.equal(ppl?.format?.(Infinity), 'Infinity');
});
