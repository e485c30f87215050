// What the page tells the user about WebGPU: missing, no adapter, or an adapter that lacks
// something the engine uses, each with what to do about it.

import type { DeviceInfo } from './messages';

export interface GpuNotice {
  level: 'warn' | 'info';
  title: string;
  body: string;
}

const WHAT_NEEDS_IT =
  'Re-quantizing, the metrics and the outlier views need it; the next-token prediction runs on the CPU meanwhile.';

/** Before loading: the browser's own answer (no navigator.gpu, or no adapter). */
export function browserGpuNotice(hasNavigatorGpu: boolean, adapterFound: boolean | null): GpuNotice | null {
  if (!hasNavigatorGpu) {
    return {
      level: 'warn',
      title: 'This browser has no WebGPU',
      body: `navigator.gpu is missing. Use a current Chrome or Edge (113+), or enable WebGPU (in Chromium on Linux: start it with --enable-unsafe-webgpu, or turn on chrome://flags/#enable-unsafe-webgpu); pages served over plain http need localhost or 127.0.0.1. ${WHAT_NEEDS_IT}`,
    };
  }
  if (adapterFound === false) {
    return {
      level: 'warn',
      title: 'WebGPU found no adapter',
      body: `The browser has WebGPU but no GPU adapter (a blocklisted driver, or no GPU). Update the GPU driver, or in Chromium try --enable-unsafe-webgpu (it offers a software adapter). ${WHAT_NEEDS_IT}`,
    };
  }
  return null;
}

/** A software adapter (SwiftShader, lavapipe): it works, but runs the GPU kernels on the CPU. */
export function isSoftwareAdapter(device: DeviceInfo): boolean {
  const a = device.adapter;
  if (!a) return false;
  const info = device.adapterInfo;
  const names = [a.name, info?.description, info?.architecture, info?.vendor].filter(Boolean).join(' ');
  return a.device_type === 'Cpu' || /swiftshader|llvmpipe|lavapipe/i.test(names);
}

/**
 * After loading: where the engine ended up. The engine asks for shader-f16, subgroups and
 * timestamps only where offered and runs without them, so a missing feature is no problem; what
 * is one is no usable adapter or device (the reason says which limit or call failed), or a
 * software adapter, whose speed must not be read as the GPU's.
 */
export function deviceNotice(device: DeviceInfo, cpuRequested: boolean): GpuNotice | null {
  if (device.backend === 'cpu') {
    if (cpuRequested) return null; // the user asked for it (?backend=cpu): nothing to fix
    return {
      level: 'warn',
      title: 'WebGPU could not be used',
      body: `${device.reason ?? 'unknown reason'}. ${WHAT_NEEDS_IT} Fix: a current Chrome or Edge with hardware acceleration on (chrome://settings/system), an up-to-date GPU driver, then reload.`,
    };
  }
  if (isSoftwareAdapter(device)) {
    return {
      level: 'info',
      title: 'Software WebGPU adapter',
      body: 'No GPU was found, so WebGPU runs its kernels on the CPU (SwiftShader or lavapipe): everything works, slowly. Keep the evaluation tokens small, or open the page in a browser with a hardware GPU.',
    };
  }
  return null;
}
