// Cold-load benchmark of the playground page in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core as in e2e.mjs).
//
//   cd www && npm run bench:cold-load                      (5 runs)
//   cd www && npm run bench:cold-load -- --runs 9 --json out.json
//   node tests/cold-load.mjs --url http://127.0.0.1:8080/  (a page that is already served)
//
// Needs www/dist (scripts/build-web, then npm run build) and the default model
// (models/SmolLM2-135M-Instruct.Q4_1.gguf). Without --url it serves the page with scripts/serve on a
// free port. Every run starts Chromium with a fresh profile: no HTTP cache, no Cache API copy of
// the model, no cached wasm code. It measures from the navigation's start (the page's
// performance.timeOrigin) to the marks that www/src/worker.ts sets:
//
//   wasm ready    the engine's wasm fetched, compiled and instantiated (init() resolved)
//   init          wasm-init-start..wasm-ready: the wasm's fetch + compile + instantiate
//   compile       the wasm's response end..wasm-ready: compile + instantiate beyond the download
//   model loaded  the default model downloaded (loopback), parsed and uploaded to the GPU
//   model         load-start..load-end, and its parts (read, parse, adapter, upload; other: the
//                 rest, mostly storing the model in the Cache API)
//
// Chromium runs with --enable-unsafe-webgpu: without a GPU that is SwiftShader's WebGPU, on the CPU.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, startServer, stopServer } from './harness.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MODEL = join(ROOT, 'models/SmolLM2-135M-Instruct.Q4_1.gguf');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const LOAD_TIMEOUT_MS = 180_000;

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    url: { type: 'string' },
    json: { type: 'string' },
    label: { type: 'string', default: '' },
  },
});
const runs = Number(opts.runs);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`cold-load: --runs must be a positive integer, not ${opts.runs}`);
  process.exit(2);
}

/** Polls `f` until it returns a value other than null. */
async function until(f, timeout, what) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await f();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One cold load: a fresh profile, the page opened, the default model loaded. */
async function coldLoad(baseUrl) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'quantscope-cold-load-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 1000 },
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const errors = [];
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    const workerSeen = page.waitForEvent('worker', { timeout: LOAD_TIMEOUT_MS });
    await page.goto(baseUrl);
    const worker = await workerSeen;
    const fromWorker = await until(
      async () => {
        if (errors.length) throw new Error(errors.join('\n'));
        const state = await page.getByTestId('status').getAttribute('data-state');
        if (state === 'error') throw new Error(`the page failed: ${await page.getByTestId('status').textContent()}`);
        return worker.evaluate(() => {
          if (performance.getEntriesByName('quantscope:load-end').length === 0) return null;
          const mark = (name) => performance.getEntriesByName(name, 'mark')[0];
          const wasm = performance.getEntriesByType('resource').find((r) => /\.wasm(\?|$)/.test(r.name));
          return {
            timeOrigin: performance.timeOrigin,
            initStart: mark('quantscope:wasm-init-start').startTime,
            wasmReady: mark('quantscope:wasm-ready').startTime,
            loadStart: mark('quantscope:load-start').startTime,
            loadEnd: mark('quantscope:load-end').startTime,
            timings: mark('quantscope:load-end').detail,
            wasm: wasm
              ? { name: wasm.name, start: wasm.startTime, end: wasm.responseEnd, bytes: wasm.encodedBodySize }
              : null,
          };
        });
      },
      LOAD_TIMEOUT_MS,
      'the default model to load',
    );
    const pageOrigin = await page.evaluate(() => performance.timeOrigin);
    const w = fromWorker;
    const at = (t) => w.timeOrigin - pageOrigin + t;
    const t = w.timings ?? {};
    return {
      workerStart: at(0),
      wasmReady: at(w.wasmReady),
      init: w.wasmReady - w.initStart,
      compile: w.wasm ? w.wasmReady - w.wasm.end : null,
      wasmBytes: w.wasm?.bytes ?? null,
      modelLoaded: at(w.loadEnd),
      model: w.loadEnd - w.loadStart,
      read: t.downloadMs ?? null,
      parse: t.parseMs ?? null,
      adapter: t.adapterMs ?? null,
      upload: t.uploadMs ?? null,
      other: w.loadEnd - w.loadStart - (t.downloadMs ?? 0) - (t.parseMs ?? 0) - (t.adapterMs ?? 0) - (t.uploadMs ?? 0),
    };
  } finally {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => (x == null ? '—' : `${Math.round(x)}`);

const COLUMNS = ['wasmReady', 'init', 'compile', 'modelLoaded', 'model', 'read', 'parse', 'adapter', 'upload', 'other'];

async function main() {
  if (!opts.url) {
    if (!existsSync(join(ROOT, 'www/dist/index.html')))
      throw new Error('www/dist is missing: run scripts/build-web, then npm run build');
    if (!existsSync(MODEL)) throw new Error(`${MODEL} is missing: run scripts/setup`);
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  const baseUrl = opts.url ?? (await startServer(ROOT, ['--quiet']));
  console.log(
    `cold-load${opts.label ? ` (${opts.label})` : ''}: ${runs} run(s) of ${baseUrl}, fresh Chromium profile each; ms from navigation start`,
  );
  console.log(['run', ...COLUMNS].join('\t'));
  const results = [];
  for (let i = 0; i < runs; i++) {
    const r = await coldLoad(baseUrl);
    results.push(r);
    console.log([i + 1, ...COLUMNS.map((c) => ms(r[c]))].join('\t'));
  }
  const summary = {};
  for (const c of COLUMNS) {
    const xs = results.map((r) => r[c]).filter((x) => x != null);
    if (xs.length) summary[c] = { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
  }
  console.log(['median', ...COLUMNS.map((c) => ms(summary[c]?.median))].join('\t'));
  console.log(
    ['range', ...COLUMNS.map((c) => (summary[c] ? `${ms(summary[c].min)}–${ms(summary[c].max)}` : '—'))].join('\t'),
  );
  if (results[0].wasmBytes != null) console.log(`wasm: ${results[0].wasmBytes} bytes on the wire`);
  if (opts.json)
    writeFileSync(
      opts.json,
      JSON.stringify({ label: opts.label, url: baseUrl, runs: results, summary }, null, 2) + '\n',
    );
}

main().then(
  () => stopServer(),
  (e) => {
    console.error(`cold-load: ${e.stack ?? e}`);
    stopServer();
    process.exit(1);
  },
);
