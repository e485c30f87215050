// The device panel and the model summary: where the model runs (adapter, features, the CPU
// against WebGPU choice and load times), what the model is, and the banner about WebGPU.

import { $, setFact, showNotice } from '../dom';
import { baseName, formatBytes, formatCount, formatInt, formatMs } from '../format';
import { forwardSummary } from '../forward';
import { BACKEND } from '../loader';
import type { DeviceInfo, ModelSummary } from '../messages';
import type { Store } from '../store';
import { browserGpuNotice, deviceNotice, isSoftwareAdapter, type GpuNotice } from '../webgpu';
import type { Control } from '../controls/control';

export function adapterName(device: DeviceInfo): string {
  const info = device.adapterInfo;
  const vendorArch = [info?.vendor, info?.architecture].filter(Boolean).join(' ');
  return device.adapter?.name || info?.description || vendorArch || 'unnamed adapter';
}

/** "WebGPU (adapter)": how the page names the GPU backend. */
export function gpuLabel(device: DeviceInfo): string {
  return `WebGPU (${isSoftwareAdapter(device) ? 'SwiftShader' : adapterName(device)})`;
}

export function backendLabel(device: DeviceInfo | null): string {
  if (device?.backend !== 'webgpu') return 'the CPU (WebAssembly)';
  return gpuLabel(device);
}

function showGpuNotice(notice: GpuNotice | null): void {
  const el = $('webgpu-notice');
  if (!notice) {
    el.hidden = true;
    return;
  }
  el.classList.toggle('info', notice.level === 'info');
  el.dataset.level = notice.level;
  showNotice('webgpu-notice', notice.title, notice.body);
}

/** Before any model: does this browser offer WebGPU at all? */
async function checkBrowserGpu(): Promise<void> {
  if (!BACKEND.useGpu) return;
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) {
    showGpuNotice(browserGpuNotice(false, null));
    return;
  }
  try {
    const adapter = await gpu.requestAdapter();
    showGpuNotice(browserGpuNotice(true, adapter !== null));
  } catch {
    showGpuNotice(browserGpuNotice(true, false));
  }
}

function renderSummary(summary: ModelSummary, fileBytes: number, fromCache: boolean): void {
  const c = summary.config;
  $('summary-name').textContent = summary.name || baseName(summary.source);
  $('summary-source').textContent = summary.name ? summary.source : '';
  setFact('summary-architecture', c.architecture ?? '?');
  setFact('summary-layers', c.n_layers);
  setFact('summary-width', c.d_model);
  setFact('summary-heads', c.n_heads);
  setFact('summary-kv-heads', c.n_kv_heads);
  setFact('summary-head-dim', c.head_dim);
  setFact('summary-ffn', c.d_ff);
  setFact('summary-vocab', c.vocab_size);
  setFact('summary-context', c.context_length);
  setFact('summary-params', summary.parameters, formatCount(summary.parameters));
  const bpw = summary.parameters > 0 ? (summary.bytes * 8) / summary.parameters : 0;
  setFact('summary-size', summary.bytes, formatBytes(summary.bytes));
  setFact('summary-bpw', bpw, bpw.toFixed(2));
  const extra: string[] = [];
  // GPT-2: learned absolute positions (no RoPE), LayerNorm, a plain MLP, biases everywhere.
  const learnedPositions = c.positions === 'learned';
  if (learnedPositions) extra.push('learned positions');
  else if (c.rope_base != null) extra.push(`RoPE base ${formatInt(c.rope_base)}`);
  if (c.rope_freq_factors != null) extra.push('Llama 3.1 RoPE scaling');
  const normName = c.norm === 'layer' ? 'LayerNorm' : 'RMS';
  if (c.rms_eps != null) extra.push(`${normName} ε ${Number(c.rms_eps).toExponential(0)}`);
  if (c.mlp === 'plain') extra.push('plain GELU MLP');
  if (c.linear_bias) extra.push('biases on every linear');
  else if (c.qkv_bias) extra.push('QKV bias');
  if (c.qk_norm) extra.push('per-head Q/K norm');
  if (c.sliding_window != null) extra.push(`sliding window ${formatInt(c.sliding_window)}`);
  if (c.tied_embeddings != null) extra.push(c.tied_embeddings ? 'tied embeddings' : 'separate output head');
  if (summary.has_chat_template) extra.push('chat template');
  extra.push(`file ${formatBytes(fileBytes)}${fromCache ? ' (from this browser’s cache)' : ''}`);
  $('summary-extra').textContent = extra.join(' · ');
  // Chat needs the model's own template; a model without one continues plain text only.
  const chat = $<HTMLInputElement>('generate-chat');
  chat.disabled = !summary.has_chat_template;
  if (chat.disabled) chat.checked = false;
  chat.title = summary.has_chat_template
    ? 'The prompt as a user’s message in this model’s chat template'
    : 'This model carries no chat template (tokenizer.chat_template)';

  const byType = new Map<string, { count: number; bytes: number }>();
  for (const t of summary.tensors) {
    const e = byType.get(t.dtype) ?? { count: 0, bytes: 0 };
    e.count += 1;
    e.bytes += t.bytes;
    byType.set(t.dtype, e);
  }
  const list = $('summary-dtypes');
  list.replaceChildren();
  const total = summary.bytes || 1;
  for (const [dtype, { count, bytes }] of [...byType].sort((a, b) => b[1].bytes - a[1].bytes)) {
    const li = document.createElement('li');
    li.dataset.dtype = dtype;
    li.dataset.count = String(count);
    const name = document.createElement('span');
    name.className = 'dtype-name';
    name.textContent = dtype;
    const info = document.createElement('span');
    info.className = 'dtype-info';
    info.textContent = `${count} tensor${count === 1 ? '' : 's'} · ${formatBytes(bytes)} · ${Math.round((bytes / total) * 100)}%`;
    li.append(name, info);
    list.append(li);
  }
  $('summary').dataset.fromCache = String(fromCache);
  $('summary').hidden = false;
}

function renderDevice(d: DeviceInfo): void {
  const el = $('device');
  el.dataset.backend = d.backend;
  el.dataset.adapter = d.adapter ? adapterName(d) : '';
  $('device-backend').textContent = d.backend === 'webgpu' ? 'WebGPU' : 'CPU';
  const features = $('device-features');
  features.replaceChildren();
  const unavailable = $('gpu-unavailable');
  if (d.adapter) {
    const a = d.adapter;
    $('device-name').textContent = adapterName(d);
    $('device-name').title = `wgpu backend ${a.backend} · device type ${a.device_type}`;
    const facts: [string, boolean][] = [
      ['shader-f16', a.features.shader_f16],
      ['subgroups', a.features.subgroups],
      ['timestamps', a.features.timestamps],
    ];
    for (const [name, on] of facts) {
      const li = document.createElement('li');
      li.dataset.feature = name;
      li.dataset.on = String(on);
      li.append(`${name} `);
      const b = document.createElement('b');
      b.textContent = on ? 'yes' : 'no';
      li.append(b);
      features.append(li);
    }
    const li = document.createElement('li');
    li.textContent = `${formatInt(a.max_compute_invocations_per_workgroup)} invocations / workgroup`;
    features.append(li);
    unavailable.hidden = true;
    const software = isSoftwareAdapter(d);
    $('device-note').textContent = software
      ? 'This is a software WebGPU adapter (no GPU found): it runs the GPU kernels on the CPU, slowly.'
      : '';
    $('device-note').hidden = !software;
  } else {
    $('device-note').hidden = true;
    $('device-name').textContent = 'WebAssembly on the CPU';
    $('device-name').title = '';
    const body = unavailable.querySelector('.notice-body');
    if (body) {
      body.replaceChildren();
      const b = document.createElement('b');
      b.textContent = 'WebGPU unavailable:';
      body.append(b, ` ${d.reason ?? 'unknown reason'} — predictions run on the CPU.`);
    }
    unavailable.hidden = false;
  }
  const forward = $('device-forward');
  const f = d.backend === 'webgpu' ? d.forward : null;
  forward.dataset.backend = f?.backend ?? '';
  forward.dataset.measured = String(Boolean(f?.measured));
  forward.textContent = f ? forwardSummary(f, gpuLabel(d)) : '';
  forward.hidden = !f;
  const t = d.timings;
  const parts: string[] = [];
  if (t.downloadMs != null) parts.push(`read ${formatMs(t.downloadMs)}`);
  parts.push(`parse ${formatMs(t.parseMs)}`);
  if (d.backend === 'webgpu') {
    parts.push(`adapter ${formatMs(t.adapterMs)}`);
    parts.push(`upload ${formatMs(t.uploadMs)} (${formatBytes(d.gpuBytes)} on the GPU)`);
    if (f?.measured && t.measureMs != null) parts.push(`timing CPU against WebGPU ${formatMs(t.measureMs)}`);
  }
  $('device-timings').textContent = parts.join(' · ');
  el.hidden = false;
}

/** Renders what is loaded once per load: a link or a setting does not change the device. */
let shownFor: unknown = null;

export const devicePanel: Control = {
  mount() {
    void checkBrowserGpu();
  },
  render(store: Store) {
    const l = store.loaded;
    if (!l || shownFor === l) return;
    shownFor = l;
    renderDevice(l.device);
    renderSummary(l.summary, l.fileBytes, l.fromCache);
    showGpuNotice(deviceNotice(l.device, !BACKEND.useGpu));
    $('engine-version').textContent = `Engine v${l.caps.version}.`;
  },
};
