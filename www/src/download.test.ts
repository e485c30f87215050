import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cacheStamp, readToBlob } from './download';

function streamOf(chunks: number[][]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(new Uint8Array(chunks[i++]));
      else controller.close();
    },
  });
}

test('progress is throttled', async () => {
  const reports: number[] = [];
  const chunks = Array.from({ length: 100 }, () => [0]);
  await readToBlob(
    streamOf(chunks),
    100,
    (d) => reports.push(d),
    () => 0,
  );
  assert.equal(reports.length, 2, 'one report at the start of the interval, one at the end');
});

test('a cache stamp needs Last-Modified or a length', () => {
  assert.equal(
    cacheStamp(new Headers({ 'Last-Modified': 'Tue, 01 Jan 2026 00:00:00 GMT', 'Content-Length': '10' })),
    'Tue, 01 Jan 2026 00:00:00 GMT|10',
  );
  assert.equal(cacheStamp(new Headers({ 'Content-Length': '10' })), '|10');
  assert.equal(cacheStamp(new Headers()), null);
});

test('reads a stream into a Blob of every byte, reporting progress to the end', async () => {
  const reports: [number, number][] = [];
  let clock = 0;
  const blob = await readToBlob(
    streamOf([[1, 2], [3], [4, 5, 6]]),
    6,
    (d, t) => reports.push([d, t]),
    () => (clock += 100),
  );
  assert.deepEqual([...new Uint8Array(await blob.arrayBuffer())], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(reports.at(-1), [6, 6]);
  assert.ok(reports.length >= 2);
});
