import { test } from 'node:test';
import assert from 'node:assert/strict';
import { browserGpuNotice, deviceNotice } from './webgpu';
import type { DeviceInfo } from './messages';

const gpu = (
  over: Partial<NonNullable<DeviceInfo['adapter']>> = {},
  info: DeviceInfo['adapterInfo'] = null,
): DeviceInfo => ({
  backend: 'webgpu',
  adapter: {
    name: 'NVIDIA H100',
    backend: 'BrowserWebGpu',
    device_type: 'DiscreteGpu',
    features: { shader_f16: true, subgroups: true, timestamps: true },
    max_storage_buffer_binding_size: 1 << 30,
    max_buffer_size: 1 << 30,
    max_compute_invocations_per_workgroup: 1024,
    max_compute_workgroups_per_dimension: 65535,
    ...over,
  },
  reason: null,
  gpuBytes: 1,
  timings: { parseMs: 1, adapterMs: 1, uploadMs: 1 },
  adapterInfo: info,
});

test('no navigator.gpu, or no adapter: say which, and what to do', () => {
  const missing = browserGpuNotice(false, null);
  assert.match(missing?.title ?? '', /no WebGPU/);
  assert.match(missing?.body ?? '', /enable-unsafe-webgpu/);
  const noAdapter = browserGpuNotice(true, false);
  assert.match(noAdapter?.title ?? '', /no adapter/);
  assert.match(noAdapter?.body ?? '', /driver/);
  assert.equal(browserGpuNotice(true, true), null);
});

test('after loading: the CPU fallback gives the reason, unless the user asked for the CPU', () => {
  const cpu: DeviceInfo = {
    backend: 'cpu',
    adapter: null,
    reason: 'uploading the weights failed: buffer too large',
    gpuBytes: 0,
    timings: { parseMs: 1, adapterMs: 0, uploadMs: 0 },
  };
  const n = deviceNotice(cpu, false);
  assert.equal(n?.level, 'warn');
  assert.match(n?.body ?? '', /buffer too large/);
  assert.equal(deviceNotice(cpu, true), null);
});

test('a software adapter is named as such; a hardware one needs no notice', () => {
  assert.equal(deviceNotice(gpu(), false), null);
  assert.equal(
    deviceNotice(gpu({ features: { shader_f16: false, subgroups: false, timestamps: false } }), false),
    null,
    'missing optional features are listed, not warned about',
  );
  const soft = deviceNotice(
    gpu({ name: '' }, { vendor: 'google', architecture: 'swiftshader', device: '', description: '' }),
    false,
  );
  assert.match(soft?.title ?? '', /Software/);
  assert.equal(deviceNotice(gpu({ device_type: 'Cpu' }), false)?.level, 'info');
});
