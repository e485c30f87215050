// Where the model as loaded runs, and how the page says so. On a software WebGPU adapter
// (SwiftShader, lavapipe) the GPU kernels run on the CPU, and a forward can take ten times as long
// as the CPU reference in wasm; the engine then times both once at load (`chooseForward` of
// src/web.rs) and sends the runs the CPU reference computes exactly (the weights as loaded, no
// intervention, no run-time quantization) to the faster. The re-quantized model and everything
// else that lives on the GPU stays there.

import { formatMs } from './format';
import type { Backend, ForwardChoice, ForwardPolicy } from './messages';
import { AS_LOADED, type ReferenceWords } from './reference';

/** What `?backend=` in the page's address asks for. */
export interface BackendParam {
  /** false: never ask for WebGPU (`backend=cpu`, as a browser without WebGPU). */
  useGpu: boolean;
  /** `backend=webgpu`: WebGPU for everything, unmeasured; otherwise the engine decides. */
  forward: ForwardPolicy;
}

export function parseBackendParam(value: string | null): BackendParam {
  if (value === 'cpu') return { useGpu: false, forward: 'auto' };
  if (value === 'webgpu') return { useGpu: true, forward: 'webgpu' };
  return { useGpu: true, forward: 'auto' };
}

/**
 * The policy the worker hands `chooseForward`: 'measure' when the browser names the adapter a
 * software one (wgpu's summary in the browser may carry only a description, so the engine's own
 * check can miss it), else the page's wish.
 */
export function enginePolicy(forward: ForwardPolicy, softwareByBrowser: boolean): 'auto' | 'measure' | 'webgpu' {
  if (forward === 'webgpu') return 'webgpu';
  return softwareByBrowser ? 'measure' : 'auto';
}

/** Plain text, or text shown in bold. */
export type Segment = string | { bold: string };

export function backendName(backend: Backend, gpuLabel: string): string {
  return backend === 'cpu' ? 'the CPU (WebAssembly)' : gpuLabel;
}

/** "CPU 270 ms against WebGPU 3.01 s on a 5-token prompt", or null when nothing was measured. */
export function measuredWords(forward: ForwardChoice | null | undefined): string | null {
  const m = forward?.measured;
  if (!m) return null;
  return `CPU ${formatMs(m.cpuMs)} against WebGPU ${formatMs(m.gpuMs ?? m.gpuFirstMs)} on a ${m.promptTokens}-token prompt`;
}

/**
 * What the page says under a prediction: which backend computed each column, in how long, and
 * why the CPU computed the reference (the model as loaded, or a pinned configuration: `words`)
 * while a GPU is there. `quantized` is null when only one column is shown. The backend is 'mixed'
 * when the columns came from different ones.
 */
export function computedOn(
  reference: Backend,
  quantized: Backend | null,
  gpuLabel: string,
  forward: ForwardChoice | null | undefined,
  ms: number,
  words: ReferenceWords = AS_LOADED,
): { backend: Backend | 'mixed'; segments: Segment[] } {
  const name = (b: Backend) => ({ bold: backendName(b, gpuLabel) });
  const segments: Segment[] = [];
  const same = quantized === null || quantized === reference;
  if (same) {
    segments.push('Computed on ', name(reference), ` in ${formatMs(ms)}.`);
  } else {
    segments.push(
      `${words.subject} computed on `,
      name(reference),
      ', the quantized model on ',
      name(quantized),
      ` (its weights and run-time quantizers live there), in ${formatMs(ms)} together.`,
    );
  }
  const measured = measuredWords(forward);
  if (reference === 'cpu' && forward?.backend === 'cpu' && measured) {
    segments.push(` The CPU reference was measured faster than WebGPU here at load (${measured}).`);
  }
  return { backend: same ? reference : 'mixed', segments };
}

/** The device panel's line: where the model as loaded runs, with the times behind it. */
export function forwardSummary(forward: ForwardChoice, gpuLabel: string): string {
  const where = `The model as loaded runs on ${backendName(forward.backend, gpuLabel)}`;
  const m = forward.measured;
  if (!m) return `${where}: ${forward.reason}.`;
  // serde's None arrives as undefined.
  const gpu =
    m.gpuMs == null
      ? `WebGPU ${formatMs(m.gpuFirstMs)} (its first run, compiling the pipelines; ${m.gpuFirstMs <= m.cpuMs ? 'faster even so' : 'too slow for compiling to explain, so not run again'})`
      : `WebGPU ${formatMs(m.gpuMs)} (its first run, ${formatMs(m.gpuFirstMs)}, also compiled the pipelines)`;
  return (
    `${where}, the faster here, measured at load on a ${m.promptTokens}-token prompt: CPU reference ${formatMs(m.cpuMs)}, ${gpu}. ` +
    'Generation follows (the CPU reference recomputes the whole sequence each token, which still beats a software adapter). ' +
    'The re-quantized model, interventions, run-time quantizers and the outlier views run on WebGPU.'
  );
}
