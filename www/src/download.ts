// Reading model bytes: streams with progress, and the Cache API store that makes a reload fast.

/** Progress messages for byte streams: about 20 a second is plenty for a progress bar. */
const PROGRESS_INTERVAL_MS = 50;

/** The Cache API bucket for model files; bump the version when the stored layout changes. */
export const MODEL_CACHE_NAME = 'quantscope-models-v1';

/** Passes a stream's bytes on unchanged, reporting how many have passed (throttled, and once at the end). */
export function counted(
  stream: ReadableStream<Uint8Array>,
  total: number,
  onProgress: (done: number, total: number) => void,
  now: () => number = () => performance.now(),
): ReadableStream<Uint8Array> {
  let done = 0;
  let lastReport = -Infinity;
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        done += chunk.length;
        const t = now();
        if (t - lastReport >= PROGRESS_INTERVAL_MS) {
          lastReport = t;
          onProgress(done, total);
        }
        controller.enqueue(chunk);
      },
      flush() {
        onProgress(done, total);
      },
    }),
  );
}

/**
 * Reads a stream to the end into a Blob, reporting bytes as they come. A model file is kept this
 * way, not as an ArrayBuffer: the browser stores a large Blob outside the page's memory (on disk
 * when it must), and the engine reads it a range at a time.
 */
export function readToBlob(
  stream: ReadableStream<Uint8Array>,
  total: number,
  onProgress: (done: number, total: number) => void,
  now: () => number = () => performance.now(),
): Promise<Blob> {
  return new Response(counted(stream, total, onProgress, now)).blob();
}

/**
 * What identifies one version of a served file: its Last-Modified and length. null when the
 * server sends neither (then nothing is cached: a stale copy could never be told apart).
 */
export function cacheStamp(headers: Headers): string | null {
  const modified = headers.get('Last-Modified');
  const length = headers.get('Content-Length');
  if (!modified && !length) return null;
  return `${modified ?? ''}|${length ?? ''}`;
}

/** The cache key of one part of a model the user opened from disk (never a real URL). */
export function localCacheKey(name: string, part: string): string {
  return new URL(`/__quantscope_local__/${encodeURIComponent(name)}/${encodeURIComponent(part)}`, self.location.origin)
    .href;
}

/** The model cache, or null where the Cache API is unavailable (an insecure origin). */
export async function modelCache(): Promise<Cache | null> {
  try {
    return typeof caches === 'undefined' ? null : await caches.open(MODEL_CACHE_NAME);
  } catch {
    return null;
  }
}
