import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceWords } from './reference';
import { computedOn, enginePolicy, forwardSummary, measuredWords, parseBackendParam, type Segment } from './forward';
import type { ForwardChoice } from './messages';

const measuredCpu: ForwardChoice = {
  backend: 'cpu',
  reason: 'measured at load …',
  measured: { promptTokens: 5, cpuMs: 270, gpuMs: 3012, gpuFirstMs: 4100 },
};
const hardware: ForwardChoice = {
  backend: 'webgpu',
  reason: 'a hardware adapter: WebGPU, not measured',
  measured: null,
};
const GPU = 'WebGPU (SwiftShader)';
const text = (segments: Segment[]) => segments.map((s) => (typeof s === 'string' ? s : s.bold)).join('');

test('?backend= : cpu turns WebGPU off, webgpu forces it unmeasured, anything else is automatic', () => {
  assert.deepEqual(parseBackendParam('cpu'), { useGpu: false, forward: 'auto' });
  assert.deepEqual(parseBackendParam('webgpu'), { useGpu: true, forward: 'webgpu' });
  assert.deepEqual(parseBackendParam(null), { useGpu: true, forward: 'auto' });
  assert.deepEqual(parseBackendParam('auto'), { useGpu: true, forward: 'auto' });
  assert.deepEqual(parseBackendParam('CPU'), { useGpu: true, forward: 'auto' }, 'values are exact, as before');
});

test('the engine measures when the browser names a software adapter, unless WebGPU is forced', () => {
  assert.equal(enginePolicy('auto', false), 'auto');
  assert.equal(enginePolicy('auto', true), 'measure');
  assert.equal(enginePolicy('webgpu', true), 'webgpu');
  assert.equal(enginePolicy('webgpu', false), 'webgpu');
});

test('a prediction on the CPU beside a software adapter says so and why, with the times', () => {
  const r = computedOn('cpu', 'cpu', GPU, measuredCpu, 280);
  assert.equal(r.backend, 'cpu');
  assert.deepEqual(
    r.segments.filter((s) => typeof s !== 'string'),
    [{ bold: 'the CPU (WebAssembly)' }],
  );
  assert.match(
    text(r.segments),
    /^Computed on the CPU \(WebAssembly\) in 280 ms\. The CPU reference was measured faster than WebGPU here at load \(CPU 270 ms against WebGPU 3\.01 s on a 5-token prompt\)\.$/,
  );
});

test('columns from different backends are named each', () => {
  const r = computedOn('cpu', 'webgpu', GPU, measuredCpu, 3300);
  assert.equal(r.backend, 'mixed');
  assert.match(
    text(r.segments),
    /model as loaded computed on the CPU \(WebAssembly\), the quantized model on WebGPU \(SwiftShader\)/,
  );
  assert.match(text(r.segments), /measured faster/);
});

test('a pinned reference is named by its label', () => {
  const r = computedOn('cpu', 'webgpu', GPU, measuredCpu, 3300, referenceWords('int8 everywhere'));
  assert.match(
    text(r.segments),
    /^The pinned int8 everywhere computed on the CPU \(WebAssembly\), the quantized model/,
  );
});

test('WebGPU, or the CPU without a GPU, needs no why', () => {
  assert.equal(
    text(computedOn('webgpu', 'webgpu', 'WebGPU (NVIDIA H100)', hardware, 12).segments),
    'Computed on WebGPU (NVIDIA H100) in 12 ms.',
  );
  const noGpu: ForwardChoice = { backend: 'cpu', reason: 'no WebGPU (…)', measured: null };
  const cpu = computedOn('cpu', null, GPU, noGpu, 300);
  assert.equal(cpu.backend, 'cpu');
  assert.equal(text(cpu.segments), 'Computed on the CPU (WebAssembly) in 300 ms.');
  assert.equal(
    text(computedOn('cpu', null, GPU, undefined, 300).segments),
    'Computed on the CPU (WebAssembly) in 300 ms.',
    'an older engine',
  );
});

test('the device panel gives the measured times, or the reason', () => {
  const s = forwardSummary(measuredCpu, GPU);
  assert.match(
    s,
    /^The model as loaded runs on the CPU \(WebAssembly\), the faster here, measured at load on a 5-token prompt: /,
  );
  assert.match(s, /CPU reference 270 ms, WebGPU 3\.01 s \(its first run, 4\.10 s, also compiled the pipelines\)\./);
  assert.match(s, /outlier views run on WebGPU\.$/);
  // A first GPU run that already beats the CPU is not repeated.
  const fast: ForwardChoice = {
    backend: 'webgpu',
    reason: '…',
    measured: { promptTokens: 5, cpuMs: 900, gpuMs: null, gpuFirstMs: 400 },
  };
  assert.match(
    forwardSummary(fast, 'WebGPU (lavapipe)'),
    /^The model as loaded runs on WebGPU \(lavapipe\), the faster here, .*CPU reference 900 ms, WebGPU 400 ms \(its first run, compiling the pipelines; faster even so\)\./,
  );
  assert.equal(measuredWords(fast), 'CPU 900 ms against WebGPU 400 ms on a 5-token prompt');
  // A first GPU run far slower than the CPU is not repeated either.
  const slow: ForwardChoice = {
    backend: 'cpu',
    reason: '…',
    measured: { promptTokens: 5, cpuMs: 400, gpuMs: null, gpuFirstMs: 60000 },
  };
  assert.match(
    forwardSummary(slow, GPU),
    /CPU reference 400 ms, WebGPU 60\.00 s \(its first run, compiling the pipelines; too slow for compiling to explain, so not run again\)\./,
  );
  assert.equal(measuredWords(slow), 'CPU 400 ms against WebGPU 60.00 s on a 5-token prompt');
  // serde's None arrives as undefined, not null.
  const { gpuMs: _, ...withoutGpuMs } = slow.measured!;
  const undef: ForwardChoice = { ...slow, measured: withoutGpuMs };
  assert.equal(forwardSummary(undef, GPU), forwardSummary(slow, GPU));
  assert.equal(
    forwardSummary(hardware, 'WebGPU (NVIDIA H100)'),
    'The model as loaded runs on WebGPU (NVIDIA H100): a hardware adapter: WebGPU, not measured.',
  );
  assert.equal(measuredWords(hardware), null);
  assert.equal(measuredWords(null), null);
});
