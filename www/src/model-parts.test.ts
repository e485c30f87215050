import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadParts, partsSize, type ModelParts, type PartsLoader, type RangeReader } from './model-parts';

/** A Blob whose bytes may be read a range at a time (slice) but never whole. */
class RangeOnlyBlob extends Blob {
  constructor(
    size: number,
    readonly label: string,
  ) {
    super([new Uint8Array(size)]);
  }
  override arrayBuffer(): Promise<ArrayBuffer> {
    throw new Error(`${this.label} was read whole`);
  }
  override bytes(): Promise<Uint8Array<ArrayBuffer>> {
    throw new Error(`${this.label} was read whole`);
  }
  override stream(): ReadableStream<Uint8Array<ArrayBuffer>> {
    throw new Error(`${this.label} was read whole`);
  }
  override text(): Promise<string> {
    throw new Error(`${this.label} was read whole`);
  }
}

/** A reader that says which Blob it reads. */
type NamedReader = RangeReader & { of: string };
const readerOf = (blob: Blob): RangeReader =>
  Object.assign(() => new Uint8Array(), { of: (blob as RangeOnlyBlob).label });
/** A reader's Blob by name; any other argument as it is. */
const shown = (arg: unknown) => (typeof arg === 'function' && 'of' in arg ? (arg as NamedReader).of : arg);

/** An engine that records which entry point it was called through, and with what. */
function recordingEngine(): { engine: PartsLoader<string>; calls: unknown[][] } {
  const calls: unknown[][] = [];
  const record =
    (method: string) =>
    async (...args: unknown[]) => {
      calls.push([method, ...args.map(shown)]);
      return method;
    };
  const engine = {
    loadLazy: record('loadLazy'),
    loadSafetensors: record('loadSafetensors'),
    loadSafetensorsShards: async (
      index: Uint8Array,
      names: string[],
      lengths: Float64Array,
      reads: RangeReader[],
      ...rest: unknown[]
    ) => {
      calls.push(['loadSafetensorsShards', index, names, [...lengths], reads.map(shown), ...rest]);
      return 'loadSafetensorsShards';
    },
  } as PartsLoader<string>;
  return { engine, calls };
}

const progress = () => {};
const json = (text: string) => new TextEncoder().encode(text);

test('a GGUF is read a range at a time by loadLazy', async () => {
  const { engine, calls } = recordingEngine();
  const parts: ModelParts = { gguf: new RangeOnlyBlob(100, 'model.gguf') };
  assert.equal(await loadParts(engine, parts, readerOf, 'm', progress, true), 'loadLazy');
  assert.deepEqual(calls, [['loadLazy', 100, 'model.gguf', 'm', progress, true]]);
  assert.equal(partsSize(parts), 100);
});

test('a safetensors file is read a range at a time; its JSON files go whole', async () => {
  const { engine, calls } = recordingEngine();
  const [config, tokenizer] = [json('{"a":1}'), json('{}')];
  const parts: ModelParts = { weights: new RangeOnlyBlob(5000, 'model.safetensors'), config, tokenizer };
  assert.equal(await loadParts(engine, parts, readerOf, 'm', progress, false), 'loadSafetensors');
  assert.deepEqual(calls, [['loadSafetensors', 5000, 'model.safetensors', config, tokenizer, 'm', progress, false]]);
  assert.equal(partsSize(parts), 5000 + 7 + 2);
});

test("each shard is read a range at a time, its name, length and reader in the index's order", async () => {
  const { engine, calls } = recordingEngine();
  const [index, config, tokenizer] = [json('{"weight_map":{}}'), json('{}'), json('{}')];
  const shards = [
    { name: 'model-00001-of-00002.safetensors', blob: new RangeOnlyBlob(300, 'first') },
    { name: 'model-00002-of-00002.safetensors', blob: new RangeOnlyBlob(200, 'second') },
  ];
  const parts: ModelParts = { index, shards, config, tokenizer };
  assert.equal(await loadParts(engine, parts, readerOf, 'm', progress, true), 'loadSafetensorsShards');
  assert.deepEqual(calls, [
    [
      'loadSafetensorsShards',
      index,
      ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'],
      [300, 200],
      ['first', 'second'],
      config,
      tokenizer,
      'm',
      progress,
      true,
    ],
  ]);
  assert.equal(partsSize(parts), 500 + 2 + 2);
});
