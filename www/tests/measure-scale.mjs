// How large a model the page loads in headless Chromium, and what it costs in memory. A
// measurement, not a test: scripts/measure-scale runs it on the shaped models it generates.
//
//   node www/tests/measure-scale.mjs models/shaped/llama-3.2-1b.q4_0.gguf [--load-only]
//
// Opens the page on the model (served from models/ by scripts/serve), waits until it has loaded
// and, unless --load-only, predicted the next token of a prompt, and prints one JSON line:
// the times, the top tokens, and the peak resident memory of the browser's processes, sampled
// every 250 ms from /proc (the proportional set size, Pss, of the browser started on this run's profile directory and all its
// descendants, summed by Chromium's process type: renderer = the tab and its worker, where the
// wasm heap lives; gpu-process = WebGPU's buffers under SwiftShader; browser, utility).
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, startServer, stopServer } from './harness.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PROMPT = 'The capital of France is';
const TIMEOUT_MS = 40 * 60_000;

const [model, ...flags] = process.argv.slice(2);
if (!model) {
  console.error('usage: node www/tests/measure-scale.mjs models/<file>.gguf [--load-only]');
  process.exit(2);
}
const loadOnly = flags.includes('--load-only');

/** Resident bytes of this run's Chromium processes (the one launched on `profile` and all its descendants), by process type. */
function residentByType(profile) {
  const procs = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      // Zygote-forked children rewrite their command line as one space-separated string.
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/);
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const ppid = /PPid:\s+(\d+)/.exec(status)?.[1];
      // Proportional set size: a page shared between processes (the GPU process and the renderer
      // share the mapped upload buffers) counts once in the sum, split among its sharers.
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      const kib = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? /VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      procs.push({ pid, ppid, cmdline, bytes: kib * 1024 });
    } catch {
      // exited meanwhile
    }
  }
  const ours = new Set(procs.filter((p) => p.cmdline.some((arg) => arg.includes(profile))).map((p) => p.pid));
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs) {
      if (!ours.has(p.pid) && ours.has(p.ppid)) {
        ours.add(p.pid);
        grew = true;
      }
    }
  }
  const byType = {};
  for (const p of procs.filter((p) => ours.has(p.pid))) {
    const type = p.cmdline.find((a) => a.startsWith('--type='))?.slice(7) ?? 'browser';
    byType[type] = (byType[type] ?? 0) + p.bytes;
  }
  return byType;
}

const profile = mkdtempSync(join(tmpdir(), 'quantscope-scale-'));
const peak = { total: 0 };
const sample = () => {
  const now = residentByType(profile);
  const total = Object.values(now).reduce((a, b) => a + b, 0);
  for (const [type, bytes] of Object.entries(now)) peak[type] = Math.max(peak[type] ?? 0, bytes);
  peak.total = Math.max(peak.total, total);
};
const sampler = setInterval(sample, 250);
// MEASURE_TIMELINE=1: every 2 s, seconds since start and GB by process type, on stderr.
const started = Date.now();
const timeline =
  process.env.MEASURE_TIMELINE &&
  setInterval(() => {
    const gb = Object.entries(residentByType(profile)).map(([k, v]) => `${k} ${(v / 1e9).toFixed(2)}`);
    console.error(`${((Date.now() - started) / 1000).toFixed(0)} s: ${gb.join(', ')}`);
  }, 2000);

const baseUrl = await startServer(ROOT, ['--quiet']);
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: CHROMIUM_ARGS,
  viewport: { width: 1400, height: 1000 },
});
const result = { model, loadOnly };
try {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const t0 = Date.now();
  await page.goto(`${baseUrl}#model=${encodeURIComponent(model)}`);
  await page.waitForFunction(
    () => {
      const error = document.querySelector('[data-testid="load-error"]');
      if (error && !error.hidden) return true;
      return (document.querySelector('[data-testid="summary-architecture"]')?.innerText ?? '') !== '';
    },
    null,
    { timeout: TIMEOUT_MS, polling: 1000 },
  );
  const loadError = await page.getByTestId('load-error').evaluate((e) => (e.hidden ? '' : e.innerText));
  if (loadError) throw new Error(`the page could not load the model: ${loadError.replace(/\s+/g, ' ')}`);
  result.loadSeconds = (Date.now() - t0) / 1000;
  result.architecture = await page.getByTestId('summary-architecture').innerText();
  if (!loadOnly) {
    await page.waitForFunction(
      (want) => {
        const l = document.querySelector('[data-testid="top-reference"]');
        return l && l.dataset.prompt === want && !l.classList.contains('stale') && l.children.length > 0;
      },
      PROMPT,
      { timeout: TIMEOUT_MS, polling: 1000 },
    );
    result.predictSeconds = (Date.now() - t0) / 1000 - result.loadSeconds;
    result.top = await page.$$eval('[data-testid="top-reference"] li', (lis) =>
      lis.slice(0, 3).map((li) => li.dataset.token),
    );
  }
  const text = (id) =>
    page
      .getByTestId(id)
      .innerText()
      .catch(() => null);
  result.device = { backend: await text('device-backend'), forward: await text('device-forward') };
  result.errors = errors;
} catch (e) {
  result.error = String(e.message ?? e);
} finally {
  sample();
  clearInterval(sampler);
  if (timeline) clearInterval(timeline);
  result.peakResidentBytes = peak;
  await context.close().catch(() => {});
  stopServer();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
