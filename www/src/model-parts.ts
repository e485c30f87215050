// What a model is made of in the worker, and how the engine is asked to load it. The weights (a
// GGUF, a .safetensors, a sharded checkpoint's shards) stay Blobs, which the browser keeps outside
// the page's memory (on disk when it must) and the engine reads a range at a time, so a model
// larger than wasm memory loads; config.json, tokenizer.json and the shard index are small and
// read whole.

export type ModelParts =
  | { gguf: Blob }
  | { weights: Blob; config: Uint8Array; tokenizer: Uint8Array }
  | { index: Uint8Array; shards: { name: string; blob: Blob }[]; config: Uint8Array; tokenizer: Uint8Array };

/** Reads `length` bytes from `offset`, synchronously (the engine reads weights from inside its calls). */
export type RangeReader = (offset: number, length: number) => Uint8Array;

type Progress = (stage: string, done: number, total: number) => void;

/** The engine's load entry points (the wasm Playground's static methods) that take model parts. */
export interface PartsLoader<M> {
  loadLazy(length: number, read: RangeReader, name: string, progress: Progress, useGpu: boolean): Promise<M>;
  loadSafetensors(
    length: number,
    read: RangeReader,
    config: Uint8Array,
    tokenizer: Uint8Array,
    name: string,
    progress: Progress,
    useGpu: boolean,
  ): Promise<M>;
  loadSafetensorsShards(
    index: Uint8Array,
    names: string[],
    lengths: Float64Array,
    reads: RangeReader[],
    config: Uint8Array,
    tokenizer: Uint8Array,
    name: string,
    progress: Progress,
    useGpu: boolean,
  ): Promise<M>;
}

/** Bytes of the model's files together. */
export function partsSize(parts: ModelParts): number {
  if ('gguf' in parts) return parts.gguf.size;
  const weights = 'shards' in parts ? parts.shards.reduce((n, s) => n + s.blob.size, 0) : parts.weights.size;
  return weights + parts.config.length + parts.tokenizer.length;
}

/** Loads `parts` into the engine, each weights file read through `readerOf(its Blob)`. */
export function loadParts<M>(
  engine: PartsLoader<M>,
  parts: ModelParts,
  readerOf: (blob: Blob) => RangeReader,
  name: string,
  progress: Progress,
  useGpu: boolean,
): Promise<M> {
  if ('gguf' in parts) return engine.loadLazy(parts.gguf.size, readerOf(parts.gguf), name, progress, useGpu);
  if ('weights' in parts) {
    const { weights, config, tokenizer } = parts;
    return engine.loadSafetensors(weights.size, readerOf(weights), config, tokenizer, name, progress, useGpu);
  }
  return engine.loadSafetensorsShards(
    parts.index,
    parts.shards.map((s) => s.name),
    Float64Array.from(parts.shards, (s) => s.blob.size),
    parts.shards.map((s) => readerOf(s.blob)),
    parts.config,
    parts.tokenizer,
    name,
    progress,
    useGpu,
  );
}
