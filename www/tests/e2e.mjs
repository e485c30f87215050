// End-to-end test of the playground page in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; never `npx playwright install`).
//
//   cd www && npm run test:e2e        (builds the page, then runs this file)
//
// Needs www/pkg (scripts/build-web), www/dist (npm run build) and
// models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup). Serves the page with scripts/serve on a
// free port, and always stops it. Screenshots go to target/e2e/.
//
// Chromium runs with --enable-unsafe-webgpu: headless and without a GPU it offers SwiftShader's
// WebGPU adapter, so the page computes on WebGPU, slowly (a forward of a few tokens takes
// seconds): the evaluation is kept at 16 tokens. On that software adapter the engine times the
// CPU reference against WebGPU at load, and the model as loaded runs on the CPU, which wins here.
// Prints `e2e: predict N ms` (a new prompt, nothing quantized), `e2e: predict-quantized N ms`
// (2-bit weights) and `e2e: toggle-to-metrics N ms`. The reference generation is compared with the
// native CLI's CPU reference (target/debug/quantscope, built by `cargo test`; built here with
// `cargo build --bin quantscope` when missing).
//
// The tests run in order and share one browser profile (the second page load reads the model
// from the Cache API that the first one filled).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  closeSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { tsImport } from 'tsx/esm/api';
import { CHROMIUM_ARGS, startServer, stopServer } from './harness.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MODEL = join(ROOT, 'models/SmolLM2-135M-Instruct.Q4_1.gguf');
const GEMMA3 = 'models/gemma-3-270m-q4_k_m.gguf';
const SHOTS = join(ROOT, 'target/e2e');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const DEFAULT_PROMPT = 'The capital of France is';
// Download (98 MB over loopback) + parse + upload + the first forward passes, on a slow CI core.
const LOAD_TIMEOUT_MS = 180_000;
const PREDICT_TIMEOUT_MS = 180_000;
const METRICS_TIMEOUT_MS = 240_000;
const VIEWS_TIMEOUT_MS = 300_000;
const GENERATE_TIMEOUT_MS = 120_000;
const CLI = join(ROOT, 'target/debug/quantscope');
const GENERATE_TOKENS = 4;
const EVAL_TOKENS = '16';
const TWO_BIT = 'int2-g32-asym';
/** A scheme that is a GGUF type, for the download that loads back. */
const GGUF_SCHEME = 'q4_0';
const VIEW_IDS = [
  'residual-heatmap',
  'residual-layers',
  'outlier-table',
  'attention-maps',
  'sink-heatmap',
  'weight-columns',
  'weight-histogram',
  'causal-chain',
];

let context;
let userDataDir;
let baseUrl;
/** The page the tests share (the first tests build on each other's state). */
let page;
const browserErrors = [];
const external = [];
/** The shapes of the engine's results that reached the pages, by method (checked by the last test). */
const resultShapes = {};

/**
 * Runs in each page before its scripts: every result a worker sends is recorded, as a shape (kinds,
 * field names, short strings; the first two items of an array), through `__quantscopeResult`.
 */
function recordWorkerResults() {
  const shapeOf = (v) => {
    if (v === null || v === undefined) return { kind: v === null ? 'null' : 'undefined' };
    if (typeof v === 'number' || typeof v === 'boolean') return { kind: typeof v };
    if (typeof v === 'string') return { kind: 'string', value: v };
    if (ArrayBuffer.isView(v)) return { kind: 'typedarray' };
    if (Array.isArray(v)) return { kind: 'array', items: v.slice(0, 2).map(shapeOf) };
    return { kind: 'object', fields: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shapeOf(x)])) };
  };
  const NativeWorker = window.Worker;
  window.Worker = class extends NativeWorker {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        if (e.data?.type === 'result') window.__quantscopeResult(e.data.method, shapeOf(e.data.result));
      });
    }
  };
}

function cliGenerate(prompt) {
  if (!existsSync(CLI)) {
    execFileSync('cargo', ['build', '--bin', 'quantscope'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const out = execFileSync(
    CLI,
    [
      'generate',
      '--backend',
      'cpu',
      '--model',
      MODEL,
      '--prompt',
      prompt,
      '--max-tokens',
      String(GENERATE_TOKENS),
      '--json',
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  return JSON.parse(out);
}

function watch(p, errors) {
  p.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  p.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  p.on('request', (r) => {
    if (!r.url().startsWith(baseUrl) && !/^(data|blob):/.test(r.url())) external.push(r.url());
  });
}

before(async () => {
  assert.ok(
    existsSync(join(ROOT, 'www/dist/index.html')),
    'www/dist is missing: run scripts/setup (or cd www && npm run build)',
  );
  assert.ok(existsSync(MODEL), `${MODEL} is missing: run scripts/setup`);
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  mkdirSync(SHOTS, { recursive: true });
  baseUrl = await startServer(ROOT);
  userDataDir = mkdtempSync(join(tmpdir(), 'quantscope-e2e-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 1000 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
    acceptDownloads: true,
  });
  await context.exposeBinding('__quantscopeResult', (_source, method, shape) => {
    const seen = (resultShapes[method] ??= []);
    const key = JSON.stringify(shape);
    if (seen.length < 8 && !seen.some((s) => JSON.stringify(s) === key)) seen.push(shape);
  });
  await context.addInitScript(recordWorkerResults);
});

after(async () => {
  try {
    await context?.close();
  } finally {
    stopServer();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Reading the page.

/** One column of next tokens: [{token, prob}]. */
function tokens(p, testid) {
  return p.$$eval(`[data-testid="${testid}"] li`, (lis) =>
    lis.map((li) => ({ token: li.dataset.token, prob: Number(li.dataset.prob) })),
  );
}

/** Waits until both columns show a prediction for `prompt` and nothing is being computed. */
async function waitForPrediction(p, prompt, timeout = PREDICT_TIMEOUT_MS, { quantized = true } = {}) {
  await p.waitForFunction(
    ([want, both]) => {
      const lists = both ? ['top-reference', 'top-quantized'] : ['top-reference'];
      return lists.every((id) => {
        const l = document.querySelector(`[data-testid="${id}"]`);
        return l && l.dataset.prompt === want && !l.classList.contains('stale') && l.children.length > 0;
      });
    },
    [prompt, quantized],
    { timeout },
  );
  return { reference: await tokens(p, 'top-reference'), quantized: quantized ? await tokens(p, 'top-quantized') : [] };
}

const metricsRun = (p) => p.getByTestId('metrics').evaluate((el) => Number(el.dataset.run));

/** Waits for the metrics panel to show a result newer than run `after`. */
async function waitForMetrics(p, after, timeout = METRICS_TIMEOUT_MS) {
  // A measured result (not the exact as-loaded one), or an error.
  await p.waitForFunction(
    (n) => {
      const el = document.querySelector('[data-testid="metrics"]');
      return (
        Number(el.dataset.run) > n &&
        ((el.dataset.state === 'done' && el.dataset.exact === 'false') || el.dataset.state === 'error')
      );
    },
    after,
    { timeout },
  );
  return doneMetrics(p);
}

/** The metrics once the panel says it is done (else fails with the panel's error). */
async function doneMetrics(p) {
  const state = await p.getByTestId('metrics').getAttribute('data-state');
  const error = await p
    .getByTestId('metrics-error')
    .innerText()
    .catch(() => '');
  assert.equal(state, 'done', `the metrics were computed: ${error}`);
  return readMetrics(p);
}

async function readMetrics(p) {
  const v = async (id) => Number(await p.getByTestId(id).getAttribute('data-value'));
  return {
    kl: await v('metric-kl'),
    pdKl: await v('metric-pdkl'),
    top1: await v('metric-top1'),
    ppl: await v('metric-ppl'),
    qid: await v('metric-qid'),
    bpw: await v('metric-bpw'),
    size: await v('metric-size'),
  };
}

function checkDistribution(list) {
  assert.equal(list.length, 10, 'ten tokens are shown');
  let sum = 0;
  for (let i = 0; i < list.length; i++) {
    const p = list[i].prob;
    assert.ok(Number.isFinite(p) && p > 0 && p <= 1, `token ${i} has a probability in (0, 1]: ${p}`);
    if (i > 0) assert.ok(p <= list[i - 1].prob, `probabilities are sorted: ${list[i - 1].prob} then ${p}`);
    sum += p;
  }
  assert.ok(sum <= 1.0001, `the top ten probabilities sum to at most 1: ${sum}`);
}

function head(path, n) {
  const buf = Buffer.alloc(n);
  const fd = openSync(path, 'r');
  try {
    return buf.subarray(0, readSync(fd, buf, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

async function failWithPage(p, e, shot) {
  await p.screenshot({ path: join(SHOTS, shot), fullPage: true }).catch(() => {});
  const shown = await p
    .locator('body')
    .innerText()
    .catch(() => '');
  throw new Error(
    `${e.message}\n--- page text ---\n${shown.slice(0, 4000)}\n--- browser errors ---\n${browserErrors.join('\n')}`,
  );
}

async function download(p, testid, timeout = 30_000) {
  const [file] = await Promise.all([p.waitForEvent('download', { timeout }), p.getByTestId(testid).click()]);
  return { name: file.suggestedFilename(), bytes: readFileSync(await file.path()) };
}

// ---------------------------------------------------------------------------------------------

test(
  'default model: loads, predicts " Paris" as loaded and quantized, generates like the CLI',
  { timeout: 420_000 },
  async (t) => {
    const cli = cliGenerate(DEFAULT_PROMPT);
    page = await context.newPage();
    watch(page, browserErrors);
    const t0 = Date.now();
    await page.goto(baseUrl);

    const first = await waitForPrediction(page, DEFAULT_PROMPT, LOAD_TIMEOUT_MS).catch((e) =>
      failWithPage(page, e, 'load-failure.png'),
    );
    t.diagnostic(`model loaded and first prediction shown in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    checkDistribution(first.reference);
    assert.equal(
      first.reference[0].token,
      ' Paris',
      `top-1 as loaded: ${JSON.stringify(first.reference.map((x) => x.token))}`,
    );
    assert.deepEqual(first.quantized, first.reference, 'nothing is quantized yet: both columns agree exactly');
    assert.equal(
      await page.locator('[data-testid="top-reference"] li').first().locator('.token-text').innerText(),
      '␣Paris',
    );

    // The model is on WebGPU (SwiftShader here), but the engine timed the CPU reference against it
    // at load and the CPU won: the model as loaded runs there, and the page says so, and why.
    assert.equal(await page.getByTestId('device').getAttribute('data-backend'), 'webgpu');
    const forward = page.getByTestId('device-forward');
    const forwardText = await forward.innerText();
    t.diagnostic(`device: ${forwardText}`);
    assert.equal(await forward.getAttribute('data-measured'), 'true', 'a software adapter is measured');
    assert.equal(await forward.getAttribute('data-backend'), 'cpu', `the CPU wins on SwiftShader: ${forwardText}`);
    assert.match(
      forwardText,
      /measured at load on a \d+-token prompt: CPU reference [\d.]+ m?s, WebGPU [\d.]+ m?s \(its first run/,
    );
    assert.doesNotMatch(forwardText, /NaN|undefined/);
    assert.match(await page.getByTestId('device-timings').innerText(), /timing CPU against WebGPU [\d.]+ m?s/);
    const predictedOn = page.getByTestId('predict-backend');
    assert.equal(await predictedOn.getAttribute('data-backend'), 'cpu');
    assert.match(
      await predictedOn.innerText(),
      /^Computed on the CPU \(WebAssembly\) in .+\. The CPU reference was measured faster than WebGPU here at load \(CPU [\d.]+ m?s against WebGPU [\d.]+ m?s on a \d+-token prompt\)\.$/,
    );
    const features = await page.$$eval('[data-testid="device-features"] li[data-feature]', (lis) =>
      Object.fromEntries(lis.map((li) => [li.dataset.feature, li.dataset.on === 'true'])),
    );
    assert.ok('shader-f16' in features && 'subgroups' in features, `features are listed: ${JSON.stringify(features)}`);
    const notice = page.getByTestId('webgpu-notice');
    assert.ok(await notice.isVisible(), 'the software adapter is pointed out');
    assert.match(await notice.innerText(), /Software WebGPU adapter/);

    // The summary describes SmolLM2-135M.
    const fact = (id) => page.getByTestId(id).getAttribute('data-value');
    assert.equal(await fact('summary-architecture'), 'llama');
    assert.equal(await fact('summary-layers'), '30');
    assert.equal(await fact('summary-width'), '576');
    assert.equal(await fact('summary-vocab'), '49152');
    assert.equal(await page.getByTestId('summary').getAttribute('data-from-cache'), 'false', 'a first visit downloads');

    // Nothing quantized: the metrics say so exactly, without a run; the size is the file's.
    const baseline = await readMetrics(page);
    assert.equal(baseline.kl, 0);
    assert.equal(baseline.top1, 1);
    assert.equal(await page.getByTestId('metrics').getAttribute('data-exact'), 'true');
    assert.ok(
      baseline.bpw > 5 && baseline.bpw < 6.5,
      `Q4_1 with f32 norms: about 5.7 bits per weight, got ${baseline.bpw}`,
    );

    // Greedy generation streams both continuations; the reference is exactly the CLI's.
    await page.getByTestId('generate-max-tokens').fill(String(GENERATE_TOKENS));
    await page.getByTestId('generate-temperature').fill('0');
    await page.getByTestId('generate-button').click();
    await page.waitForFunction(
      () =>
        ['done', 'error'].includes(document.querySelector('[data-testid="generate-quantized"]').dataset.state) ||
        document.querySelector('[data-testid="generate-reference"]').dataset.state === 'error',
      null,
      { timeout: GENERATE_TIMEOUT_MS },
    );
    const side = (id) =>
      page.getByTestId(id).evaluate((el) => ({
        state: el.dataset.state,
        text: el.dataset.text,
        tokens: Number(el.dataset.tokens),
        pieces: Number(el.dataset.pieces),
        backend: el.dataset.backend,
        streamed: el.querySelector('.generated-text').textContent,
      }));
    const ref = await side('generate-reference');
    const quant = await side('generate-quantized');
    t.diagnostic(
      `generated ${JSON.stringify(ref.streamed)} / ${JSON.stringify(quant.streamed)}; CLI ${JSON.stringify(cli.text)}`,
    );
    assert.equal(ref.state, 'done', await page.getByTestId('generate-error').innerText());
    assert.equal(quant.state, 'done');
    assert.ok(ref.pieces > 1, 'the text arrived in several pieces');
    // Generation follows the choice; the model under study is the model as loaded, so both run there.
    assert.equal(ref.backend, 'cpu');
    assert.equal(quant.backend, 'cpu');
    assert.equal(ref.streamed, cli.text, 'the streamed reference matches the native CPU reference');
    assert.equal(ref.text, cli.text);
    assert.equal(quant.text, ref.text, 'nothing is quantized: the same text');

    // Stop ends a long generation early, and the quantized side does not start.
    await page.getByTestId('generate-max-tokens').fill('400');
    await page.getByTestId('generate-button').click();
    await page.waitForFunction(
      () => Number(document.querySelector('[data-testid="generate-reference"]').dataset.pieces ?? 0) >= 2,
      null,
      { timeout: GENERATE_TIMEOUT_MS },
    );
    await page.getByTestId('stop-button').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="stop-button"]').hidden, null, {
      timeout: GENERATE_TIMEOUT_MS,
    });
    assert.equal(await page.getByTestId('generate-reference').getAttribute('data-stop'), 'stopped');
    assert.equal(await page.getByTestId('generate-quantized').getAttribute('data-state'), 'idle');

    // So does a change of the settings while it runs.
    await page.getByTestId('generate-button').click();
    await page.waitForFunction(
      () => Number(document.querySelector('[data-testid="generate-reference"]').dataset.pieces ?? 0) >= 2,
      null,
      { timeout: GENERATE_TIMEOUT_MS },
    );
    const evalTokens = await page.getByTestId('eval-tokens').inputValue();
    await page.getByTestId('eval-tokens').selectOption(evalTokens === EVAL_TOKENS ? '32' : EVAL_TOKENS);
    await page.waitForFunction(() => document.querySelector('[data-testid="stop-button"]').hidden, null, {
      timeout: GENERATE_TIMEOUT_MS,
    });
    assert.equal(await page.getByTestId('generate-reference').getAttribute('data-stop'), 'stopped');
    assert.equal(await page.getByTestId('generate-quantized').getAttribute('data-state'), 'idle');
    await page.getByTestId('eval-tokens').selectOption(evalTokens);

    // One prediction of a new prompt, from Enter to both columns shown, then back to the default.
    const t1 = Date.now();
    await page.getByTestId('prompt').fill('The capital of Spain is');
    await page.getByTestId('prompt').press('Enter');
    const spain = await waitForPrediction(page, 'The capital of Spain is');
    const predictMs = Date.now() - t1;
    console.log(`e2e: predict ${predictMs} ms`);
    t.diagnostic(`predict ${predictMs} ms: ${await page.getByTestId('predict-backend').innerText()}`);
    assert.equal(spain.reference[0].token, ' Madrid');
    assert.deepEqual(spain.quantized, spain.reference);
    await page.getByTestId('prompt').fill(DEFAULT_PROMPT);
    await page.getByTestId('prompt').press('Enter');
    await waitForPrediction(page, DEFAULT_PROMPT);
  },
);

test('every outlier view renders', { timeout: 480_000 }, async (t) => {
  // The weights as loaded: the views show the model's own outliers.
  const t0 = Date.now();
  await page.getByTestId('outliers-toggle').click();
  for (const id of VIEW_IDS) {
    const view = page.locator(`[data-view="${id}"]`);
    await page
      .locator(`[data-view="${id}"][data-ready="true"]`)
      .waitFor({ timeout: VIEWS_TIMEOUT_MS })
      .catch(async (e) => {
        const why = await view.getAttribute('data-error').catch(() => null);
        await failWithPage(
          page,
          new Error(`view ${id} did not render${why ? `: ${why}` : ''}: ${e.message}`),
          `view-${id}-failure.png`,
        );
      });
    await view.scrollIntoViewIfNeeded();
    await view.screenshot({ path: join(SHOTS, `view-${id}.png`), animations: 'disabled' });
  }
  t.diagnostic(`all ${VIEW_IDS.length} views rendered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(
    new URLSearchParams(new URL(page.url()).hash.slice(1)).get('outliers'),
    '1',
    'the open views are in the link',
  );
  await page.screenshot({ path: join(SHOTS, 'playground-outliers.png'), fullPage: true, animations: 'disabled' });
  // Hidden views are not recomputed: the next tests time the quantizer alone.
  await page.getByTestId('outliers-toggle').click();
  assert.equal(await page.getByTestId('outliers-root').isVisible(), false);
});

test(
  'switching every weight to 2 bits raises KL; history sorts and exports; charts export as PNG',
  { timeout: 420_000 },
  async (t) => {
    const before = await readMetrics(page);
    // Fewer evaluation tokens change nothing while the model is the reference: no run, no new row.
    await page.getByTestId('eval-tokens').selectOption(EVAL_TOKENS);

    const run = await metricsRun(page);
    const t0 = Date.now();
    await page.getByTestId('all-weights').selectOption(TWO_BIT);
    const after = await waitForMetrics(page, run).catch((e) => failWithPage(page, e, 'metrics-failure.png'));
    const toggleMs = Date.now() - t0;
    console.log(`e2e: toggle-to-metrics ${toggleMs} ms`);
    t.diagnostic(`toggle to metrics ${toggleMs} ms (${await page.getByTestId('apply-timing').innerText()})`);
    t.diagnostic(`metrics: ${JSON.stringify(after)}`);
    assert.equal(await page.getByTestId('metrics').getAttribute('data-exact'), 'false', 'measured, not assumed');
    assert.ok(after.kl > before.kl + 0.01, `2-bit weights raise KL: ${before.kl} -> ${after.kl}`);
    assert.ok(after.top1 < 1, `and lower top-1 agreement: ${after.top1}`);
    assert.ok(Number.isFinite(after.ppl) && after.ppl > 1, `perplexity is measured: ${after.ppl}`);
    assert.ok(after.bpw < before.bpw - 2, `fewer bits per weight: ${before.bpw} -> ${after.bpw}`);
    assert.ok(after.size < before.size, `a smaller model: ${before.size} -> ${after.size}`);
    assert.match(await page.getByTestId('apply-timing').innerText(), /re-quantized \d+ matrices/);

    // The quantized column follows, the reference does not.
    const both = await waitForPrediction(page, DEFAULT_PROMPT);
    assert.equal(both.reference[0].token, ' Paris');
    assert.notDeepEqual(both.quantized, both.reference, '2-bit weights change the quantized prediction');
    // The 2-bit weights live on the GPU: the quantized column comes from there, the reference not.
    const predictedOn = page.getByTestId('predict-backend');
    assert.equal(await predictedOn.getAttribute('data-reference-backend'), 'cpu');
    assert.equal(await predictedOn.getAttribute('data-quantized-backend'), 'webgpu');
    assert.equal(await predictedOn.getAttribute('data-backend'), 'mixed');
    assert.match(
      await predictedOn.innerText(),
      /model as loaded computed on the CPU \(WebAssembly\), the quantized model on WebGPU \(.+\)/,
    );

    // The per-layer chart has the layers' errors; hovering reads one out.
    const chart = page.getByTestId('layer-chart');
    await chart.scrollIntoViewIfNeeded();
    const box = await chart.boundingBox();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5);
    assert.match(await page.getByTestId('layer-chart-tooltip').innerText(), /layer \d+: relative error \d/);

    // The URL says what is set.
    const hash = new URLSearchParams(new URL(page.url()).hash.slice(1));
    assert.equal(JSON.parse(hash.get('weights')).groups[0].schemes.attn_q, TWO_BIT);
    assert.equal(hash.get('tokens'), EVAL_TOKENS);

    // History: the reference and the 2-bit model, sortable both ways.
    const rows = () =>
      page.$$eval('[data-testid="history"] tbody tr', (trs) =>
        trs.map((tr) => ({
          run: Number(tr.dataset.run),
          kl: Number(tr.querySelector('td[data-key="kl"]').dataset.value),
        })),
      );
    assert.deepEqual(
      (await rows()).map((r) => r.run),
      [1, 2],
    );
    await page.locator('[data-testid="history"] th button[data-key="kl"]').click();
    assert.deepEqual(
      (await rows()).map((r) => r.run),
      [1, 2],
      'ascending KL: the reference first',
    );
    await page.locator('[data-testid="history"] th button[data-key="kl"]').click();
    assert.deepEqual(
      (await rows()).map((r) => r.run),
      [2, 1],
      'descending KL: the 2-bit model first',
    );

    const csv = await download(page, 'history-csv');
    assert.equal(csv.name, 'quantscope-history.csv');
    const lines = csv.bytes.toString('utf8').trimEnd().split('\r\n');
    assert.equal(lines.length, 3, 'a header and two rows');
    assert.match(lines[0], /^run,time,model,weights,runtime,intervention,reference,bitsPerWeight,bytes,tokens,kl,/);
    assert.match(lines[1], new RegExp(`,${TWO_BIT} everywhere,`), 'rows follow the table order (2-bit first)');
    const json = JSON.parse((await download(page, 'history-json')).bytes.toString('utf8'));
    assert.equal(json.length, 2);
    assert.ok(json[0].kl > 0);

    const png = await download(page, 'layer-chart-png');
    assert.equal(png.name, 'quantscope-layer-error.png');
    assert.deepEqual([...png.bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG file');
    await page.screenshot({ path: join(SHOTS, 'playground-2bit.png'), fullPage: true, animations: 'disabled' });
  },
);

test('a corrupt file gives a readable error and the previous model keeps working', { timeout: 300_000 }, async (t) => {
  await page
    .getByTestId('file-input')
    .setInputFiles({ name: 'garbage.gguf', mimeType: 'application/octet-stream', buffer: randomBytes(1 << 20) });
  const error = page.getByTestId('load-error');
  await error.waitFor({ state: 'visible', timeout: 60_000 });
  const message = await error.innerText();
  t.diagnostic(`error shown: ${message.replace(/\s+/g, ' ')}`);
  assert.match(message, /Could not load garbage\.gguf/);
  assert.match(message, /Not a GGUF file/, 'the error says what is wrong');
  assert.match(message, /still loaded/, 'the error says the previous model is kept');

  await page
    .getByTestId('file-input')
    .setInputFiles({ name: 'truncated.gguf', mimeType: 'application/octet-stream', buffer: head(MODEL, 1 << 20) });
  await page.waitForFunction(
    () => /truncated\.gguf/.test(document.querySelector('[data-testid="load-error"]').innerText),
    null,
    { timeout: 60_000 },
  );
  const truncated = await error.innerText();
  assert.match(truncated, /offset \d+/, 'the error says where the file broke');
  assert.doesNotMatch(truncated, /crashed/, 'a bad file is an error, not a crash');

  // A file dropped on the model card goes the same way.
  await page.evaluate(() => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(4096).fill(7)], 'dropped.gguf'));
    document
      .querySelector('[data-testid="drop-zone"]')
      .dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
  });
  await page.waitForFunction(
    () => /Could not load dropped\.gguf/.test(document.querySelector('[data-testid="load-error"]').innerText),
    null,
    { timeout: 60_000 },
  );

  // Two files that make no model are refused before anything is read.
  await page.getByTestId('file-input').setInputFiles([
    { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('{}') },
    { name: 'config.json', mimeType: 'application/json', buffer: Buffer.from('{}') },
  ]);
  await page.waitForFunction(
    () => /tokenizer\.json/.test(document.querySelector('[data-testid="load-error"]').innerText),
    null,
    { timeout: 10_000 },
  );

  // The loaded model (still 2-bit) predicts a new prompt, and the link still names it.
  assert.equal(await page.getByTestId('summary-layers').getAttribute('data-value'), '30');
  assert.doesNotMatch(new URL(page.url()).hash, /garbage|truncated/);
  await page.getByTestId('prompt').fill('The capital of Germany is');
  const t1 = Date.now();
  await page.getByTestId('prompt').press('Enter');
  const germany = await waitForPrediction(page, 'The capital of Germany is');
  console.log(`e2e: predict-quantized ${Date.now() - t1} ms`);
  t.diagnostic(`as loaded: ${JSON.stringify(germany.reference.slice(0, 3).map((x) => x.token))}`);
  assert.equal(germany.reference[0].token, ' Berlin');
  await error.locator('.notice-close').click();
  await error.waitFor({ state: 'hidden' });

  // A recipe the engine refuses is reported in its words, and changes nothing.
  await page.locator('label:has([data-testid="recipe-mode-json"])').click();
  assert.deepEqual(
    JSON.parse(await page.getByTestId('recipe-json').inputValue()),
    { default: TWO_BIT, rules: [] },
    'the recipe editor starts from what the controls set',
  );
  const runs = await metricsRun(page);
  await page.getByTestId('recipe-json').fill('{"default": "int9"}');
  await page.getByTestId('recipe-apply').click();
  const quantError = page.getByTestId('quant-error');
  await quantError.waitFor({ state: 'visible', timeout: 60_000 });
  assert.match(await quantError.innerText(), /int takes 2 to 8 bits/);
  assert.match(await quantError.innerText(), /keeps its previous weights/);
  assert.equal(await metricsRun(page), runs, 'nothing was re-measured');
  await page.screenshot({ path: join(SHOTS, 'playground-error.png'), fullPage: true, animations: 'disabled' });
});

test(
  'where it breaks: why in words, the recipe as a file, the token view of a flipped token, the sensitivity map applying a cell',
  { timeout: 480_000 },
  async (t) => {
    // On the page the tests before left: every weight at 2 bits (a refused recipe in the editor
    // since), measured on EVAL_TOKENS tokens.
    const { BLOCK_CLASSES } = await tsImport('../src/recipe.ts', import.meta.url);
    const { cellRect, gridLayout } = await tsImport('../src/sensitivity-grid.ts', import.meta.url);
    const p = page;
    const twoBit = await readMetrics(p);
    const phase = (name, since) => t.diagnostic(`${name} in ${((Date.now() - since) / 1000).toFixed(1)} s`);

    // Why it broke: measured after the metrics; said in words only when something moved by more than 2×.
    const breakage = p.getByTestId('breakage');
    await p.waitForFunction(
      () => document.querySelector('[data-testid="breakage"]').dataset.breaks !== undefined,
      null,
      {
        timeout: METRICS_TIMEOUT_MS,
      },
    );
    const breaks = await breakage.getAttribute('data-breaks');
    t.diagnostic(`breaks: "${breaks}"; ${await p.getByTestId('breakage-text').textContent()}`);
    assert.equal(await breakage.isVisible(), breaks !== '', 'the notice is shown exactly when something broke');
    if (breaks !== '') assert.match(await p.getByTestId('breakage-text').innerText(), /moved [×÷][\d.]+, more than/);

    // The recipe of what is measured, as a file.
    const file = await download(p, 'recipe-download');
    assert.equal(file.name, 'quantscope-recipe.json');
    const recipe = JSON.parse(file.bytes.toString('utf8'));
    assert.deepEqual(recipe, { default: TWO_BIT, rules: [] }, 'what the engine holds, not the refused recipe');

    // No GGUF of 2-bit weights: int2 is no GGUF type, and the page says which tensor asks for it.
    await p.getByTestId('gguf-download').click();
    const ggufError = p.getByTestId('gguf-error');
    await ggufError.waitFor({ state: 'visible', timeout: 60_000 });
    const refusal = await ggufError.innerText();
    t.diagnostic(`GGUF refused: ${refusal.replace(/\s+/g, ' ')}`);
    assert.match(refusal, new RegExp(`tensor "[\\w.]+\\.weight" would be ${TWO_BIT}, which has no GGUF type`));
    assert.equal(await p.getByTestId('gguf-note').isVisible(), false, 'nothing was saved');
    await ggufError.locator('.notice-close').click();

    // The token view of the 2-bit model: every predicted token coloured, the flipped ones marked.
    let t0 = Date.now();
    await p.getByTestId('token-view-toggle').click();
    await p
      .waitForFunction(() => document.querySelector('[data-testid="token-view"]').dataset.state === 'done', null, {
        timeout: METRICS_TIMEOUT_MS,
      })
      .catch((e) => failWithPage(p, e, 'token-view-failure.png'));
    phase('token view', t0);
    const spans = await p.$$eval('[data-testid="token-text"] span[data-index]', (all) =>
      all.map((s) => ({ kl: s.dataset.kl === undefined ? null : Number(s.dataset.kl), flipped: s.dataset.flipped })),
    );
    assert.equal(spans.length, Number(EVAL_TOKENS), 'every token of the evaluation is shown');
    assert.equal(spans.filter((s) => s.kl !== null).length, Number(EVAL_TOKENS) - 1, 'all but the first are predicted');
    const flippedCount = spans.filter((s) => s.flipped === 'true').length;
    assert.ok(flippedCount > 0, `2-bit blocks flip some top-1 (top-1 agreement ${twoBit.top1})`);
    const worst = await p.$$eval('[data-testid="token-worst"] button', (all) => all.map((b) => b.dataset.index));
    const maxKl = Math.max(...spans.map((s) => s.kl ?? 0));
    const worstKl = Number(
      await p.locator(`[data-testid="token-text"] span[data-index="${worst[0]}"]`).getAttribute('data-kl'),
    );
    assert.equal(worstKl, maxKl, 'the worst position is listed first');

    const flipped = p.locator('[data-testid="token-text"] span[data-flipped="true"]').first();
    const index = await flipped.getAttribute('data-index');
    t0 = Date.now();
    await flipped.click();
    await p.waitForFunction(
      (i) => {
        const d = document.querySelector('[data-testid="token-detail"]');
        return d.dataset.state === 'done' && d.dataset.index === i;
      },
      index,
      { timeout: PREDICT_TIMEOUT_MS },
    );
    phase('position detail', t0);
    const reference = await tokens(p, 'detail-reference');
    const quantized = await tokens(p, 'detail-quantized');
    checkDistribution(reference);
    checkDistribution(quantized);
    assert.notEqual(reference[0].token, quantized[0].token, `a flipped token's top-1s differ: ${index}`);
    const layers = await p.$$eval('[data-testid="detail-layers"] li', (all) =>
      all.map((li) => Number(li.dataset.error)),
    );
    assert.equal(layers.length, 31, 'the embeddings and each of the 30 blocks');
    assert.ok(layers.at(-1) > 0, `the predicting token's residual stream has moved: ${layers.at(-1)}`);
    const carriers = await p.$$eval('[data-testid="detail-layers"] li[data-massive="true"]', (all) => all.length);
    assert.equal(
      /carries a massive activation in the model as loaded/.test(await p.getByTestId('detail-massive').innerText()),
      carriers > 0,
      'the text says what the layer list marks',
    );
    await p.screenshot({ path: join(SHOTS, 'playground-token-view.png'), fullPage: true, animations: 'disabled' });
    await p.getByTestId('token-view-toggle').click();

    // The sensitivity map of block 0's MLP: each cell is a full evaluation, seconds on this
    // software adapter, so three matrices.
    await p.getByTestId('sensitivity-scheme').selectOption(TWO_BIT);
    await p.getByTestId('sensitivity-tokens').selectOption(EVAL_TOKENS);
    await p.getByTestId('sensitivity-tensors').fill('blk.0.ffn_*');
    t0 = Date.now();
    await p.getByTestId('sensitivity-run').click();
    const count = p.getByTestId('sensitivity-count');
    await p.waitForFunction(
      () => {
        const c = document.querySelector('[data-testid="sensitivity-count"]');
        return document.querySelector('[data-testid="sensitivity"]').dataset.state === 'running' && c.dataset.done >= 1;
      },
      null,
      { timeout: METRICS_TIMEOUT_MS },
    );
    assert.match(await count.innerText(), /^[12] \/ 3 cells$/, 'the first cells are drawn while the others run');
    await p
      .waitForFunction(() => document.querySelector('[data-testid="sensitivity"]').dataset.state !== 'running', null, {
        timeout: METRICS_TIMEOUT_MS,
      })
      .catch((e) => failWithPage(p, e, 'sensitivity-failure.png'));
    phase('sensitivity of 3 matrices', t0);
    assert.equal(await p.getByTestId('sensitivity').getAttribute('data-state'), 'done');
    assert.equal(await count.innerText(), '3 / 3 cells');
    const perClass = await p.$$eval('[data-testid="sensitivity-totals"] li', (all) =>
      all.map((li) => [li.dataset.name, Number(li.dataset.kl)]),
    );
    assert.equal(perClass.length, 3 + 1, 'three classes and one layer');
    assert.ok(
      perClass.every(([, kl]) => kl > 0),
      `each 2-bit matrix alone moves the predictions: ${JSON.stringify(perClass)}`,
    );
    const downKl = perClass.find(([name]) => name === 'ffn_down')[1];

    // Hovering a cell reads it out; clicking it applies that one change.
    const canvas = p.getByTestId('sensitivity-grid');
    await canvas.scrollIntoViewIfNeeded();
    const box = await canvas.boundingBox();
    const width = await p.evaluate(
      () => document.querySelector('[data-testid="sensitivity-grid"]').parentElement.clientWidth,
    );
    const cell = cellRect(gridLayout(width, 30, 7), 0, BLOCK_CLASSES.indexOf('ffn_down'));
    await p.mouse.move(box.x + cell.x + cell.width / 2, box.y + cell.y + cell.height / 2);
    const tip = await p.locator('.qv-tooltip').innerText();
    assert.match(tip, /blk\.0\.ffn_down\.weight/);
    assert.match(tip, /KL [\d.e-]+/);
    const run = await metricsRun(p);
    t0 = Date.now();
    await p.mouse.click(box.x + cell.x + cell.width / 2, box.y + cell.y + cell.height / 2);
    const applied = await waitForMetrics(p, run).catch((e) => failWithPage(p, e, 'sensitivity-apply-failure.png'));
    phase('cell applied and measured', t0);
    t.diagnostic(`blk.0.ffn_down alone: cell KL ${downKl}, measured ${applied.kl}`);
    const hash = new URLSearchParams(new URL(p.url()).hash.slice(1));
    assert.deepEqual(JSON.parse(hash.get('recipe')), {
      default: 'keep',
      rules: [{ tensors: 'blk.0.ffn_down.weight', scheme: TWO_BIT }],
    });
    assert.ok(applied.kl < twoBit.kl, `one 2-bit matrix is closer than every one: ${applied.kl} vs ${twoBit.kl}`);
    // The same tokens in one window: the metrics measure exactly what the cell did.
    assert.ok(Math.abs(applied.kl - downKl) <= 1e-3 * downKl, `the cell said ${downKl}, the metrics ${applied.kl}`);

    // Cancelled at once (it stops before its next cell), the map leaves the model as it was: the
    // same metrics again. It has already re-quantized from the masters by then, so this is the
    // restore, not an untouched model.
    t0 = Date.now();
    await p.getByTestId('sensitivity-tensors').fill('blk.1.ffn_*');
    await p.getByTestId('sensitivity-run').click();
    await p.getByTestId('sensitivity-cancel').click();
    await p.waitForFunction(
      () => document.querySelector('[data-testid="sensitivity"]').dataset.state === 'cancelled',
      null,
      { timeout: METRICS_TIMEOUT_MS },
    );
    assert.ok(Number(await count.getAttribute('data-done')) < 3, 'cancelled before the last cell');
    phase('cancelled map', t0);
    const again = await metricsRun(p);
    await p.getByTestId('metrics-run').click();
    const after = await waitForMetrics(p, again);
    assert.equal(after.kl, applied.kl, 'the model under study is exactly as before the cancelled map');

    // A recipe for a budget from measurements, the page's flow on one cell: blk.0.ffn_down alone
    // on a ladder of one rung, the 2-bit scheme (3 bits per weight with its scales), within a
    // budget of 3 (the descent itself is tested natively, tests/native/sensitivity.rs). It is the
    // recipe the cell above applied, so Apply changes nothing (no new run) and the link keeps it.
    t0 = Date.now();
    await p.getByTestId('sensitivity-tensors').fill('blk.0.ffn_down.weight');
    await p.getByTestId('allocate-budget').fill('3');
    await p.getByTestId('allocate-ladder').fill(TWO_BIT);
    await p.getByTestId('allocate-run').click();
    await p.waitForFunction(
      () => !['idle', 'running'].includes(document.querySelector('[data-testid="allocate"]').dataset.state),
      null,
      { timeout: METRICS_TIMEOUT_MS },
    );
    phase('recipe from one measured cell', t0);
    const allocate = p.getByTestId('allocate');
    assert.equal(await allocate.getAttribute('data-state'), 'done', await p.getByTestId('allocate-error').innerText());
    const chosen = JSON.parse(await allocate.getAttribute('data-recipe'));
    assert.deepEqual(chosen, { default: 'keep', rules: [{ tensors: 'blk.0.ffn_down.weight', scheme: TWO_BIT }] });
    const result = await p.getByTestId('allocate-result').innerText();
    t.diagnostic(`measured recipe: ${result}`);
    assert.match(result, new RegExp(`over the matrices that got a rung \\(budget 3\\): 1 × ${TWO_BIT}\\.`));
    const runs = await metricsRun(p);
    await p.getByTestId('allocate-apply').click();
    const linked = new URLSearchParams(new URL(p.url()).hash.slice(1)).get('recipe');
    assert.deepEqual(JSON.parse(linked), chosen, 'the applied recipe is in the link');
    assert.equal(await metricsRun(p), runs, 'the recipe already applied: nothing re-measured');
    await p.screenshot({ path: join(SHOTS, 'playground-sensitivity.png'), fullPage: true, animations: 'disabled' });
  },
);

/**
 * After one or more control changes: waits until the page is idle with measured metrics and
 * the run-time result says `pattern`, and returns the metrics.
 */
async function waitForRuntime(p, after, pattern, timeout = METRICS_TIMEOUT_MS * 2) {
  await p.waitForFunction(
    ([n, source]) => {
      const metrics = document.querySelector('[data-testid="metrics"]');
      const status = document.querySelector('[data-testid="status"]');
      const result = document.querySelector('[data-testid="runtime-result"]');
      return (
        Number(metrics.dataset.run) > n &&
        status.dataset.state !== 'busy' &&
        (metrics.dataset.state === 'error' ||
          (metrics.dataset.state === 'done' && result && !result.hidden && new RegExp(source).test(result.textContent)))
      );
    },
    [after, pattern.source],
    { timeout },
  );
  return doneMetrics(p);
}

test(
  'a pinned history row is the reference of the predictions and the metrics, and Unpin goes back',
  { timeout: 300_000 },
  async (t) => {
    // The model as loaded under study (no run: exact) against the 2-bit row pinned: both run on
    // the CPU here (the pin runs where the model as loaded does), so this costs the pin's
    // preparation and one quick measurement, not a software adapter's forwards.
    await page.locator('label:has([data-testid="recipe-mode-controls"])').click();
    await page.getByTestId('all-weights').selectOption('');
    await page.waitForFunction(() => document.querySelector('[data-testid="metrics"]').dataset.exact === 'true', null, {
      timeout: METRICS_TIMEOUT_MS,
    });
    const twoBitRow = page.locator('[data-testid="history"] tbody tr[data-run="2"]');
    const cell = async (key) => Number(await twoBitRow.locator(`td[data-key="${key}"]`).getAttribute('data-value'));
    const twoBitTop1 = await cell('top1');
    const reference = page.getByTestId('reference');
    const label = `${TWO_BIT} everywhere (pinned)`;

    let run = await metricsRun(page);
    let t0 = Date.now();
    await page.locator('[data-testid="history-pin"][data-run="2"]').click();
    const pinned = await waitForMetrics(page, run).catch((e) => failWithPage(page, e, 'pin-failure.png'));
    t.diagnostic(`pinned and measured in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(pinned)}`);
    // The same two models as row 2, the other way round: top-1 agreement is symmetric, KL is not
    // (and is large either way).
    assert.ok(Math.abs(pinned.top1 - twoBitTop1) < 1e-9, `top-1 ${pinned.top1} against row 2's ${twoBitTop1}`);
    assert.ok(pinned.kl > 0.5, `the model as loaded against the 2-bit model: KL ${pinned.kl}`);
    assert.equal(await reference.getAttribute('data-pinned'), 'true');
    assert.equal(await page.getByTestId('reference-text').innerText(), `Compared with: ${label}`);
    assert.match(
      await page.getByTestId('metrics-note').innerText(),
      new RegExp(`^Measured against ${label.replace(/[()]/g, '\\$&')} on`),
    );
    const pin = JSON.parse(new URLSearchParams(new URL(page.url()).hash.slice(1)).get('pin'));
    assert.equal(pin.weights.groups[0].schemes.attn_q, TWO_BIT, `the link has the pin: ${JSON.stringify(pin)}`);
    // The first column is the pinned 2-bit model now, the second the model as loaded (on the prompt
    // the tests before left).
    const prompt = await page.getByTestId('prompt').inputValue();
    const both = await waitForPrediction(page, prompt);
    assert.equal(await page.getByTestId('reference-heading').textContent(), label, 'the column is named by the pin');
    assert.notDeepEqual(both.reference, both.quantized, 'the pinned 2-bit model predicts otherwise');
    // The sensitivity map and the measured recipe measure against the model as loaded: they wait.
    assert.equal(await page.getByTestId('sensitivity-run').isDisabled(), true);
    assert.equal(await page.getByTestId('allocate-run').isDisabled(), true);
    assert.ok(await page.getByTestId('sensitivity-pinned').isVisible());

    // Unpinned: the model as loaded against itself, exact again without a run.
    t0 = Date.now();
    await page.getByTestId('pin-unpin').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="metrics"]').dataset.exact === 'true', null, {
      timeout: METRICS_TIMEOUT_MS,
    });
    t.diagnostic(`unpinned in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal((await readMetrics(page)).kl, 0);
    assert.equal(await page.getByTestId('reference-text').innerText(), 'Compared with: the model as loaded');
    assert.equal(new URLSearchParams(new URL(page.url()).hash.slice(1)).get('pin'), null);
    assert.equal(await page.getByTestId('sensitivity-run').isDisabled(), false);
    const unpinned = await waitForPrediction(page, prompt);
    assert.deepEqual(unpinned.reference, both.quantized, 'the model as loaded is the first column again');
  },
);

test(
  'run-time quantization: the KV cache on the GPU, FireQ, and a weight-rewriting method on the CPU reference',
  { timeout: 600_000 },
  async (t) => {
    // Back to the controls and the weights as loaded (the test before left a refused recipe and
    // 2-bit weights), so what follows is the run-time quantizers' own effect.
    await page.locator('label:has([data-testid="recipe-mode-controls"])').click();
    await page.getByTestId('all-weights').selectOption('');
    const prompt = await page.getByTestId('prompt').inputValue();
    let run = await metricsRun(page);
    await page.getByTestId('runtime-kv').selectOption('int2');
    const kv2 = await waitForRuntime(page, run, /On the GPU: KV int2\./).catch((e) =>
      failWithPage(page, e, 'runtime-kv-failure.png'),
    );
    t.diagnostic(`KV int2: ${JSON.stringify(kv2)}`);
    assert.ok(kv2.kl > 0.05, `a 2-bit KV cache moves the predictions: KL ${kv2.kl}`);

    run = await metricsRun(page);
    await page.getByTestId('runtime-kv').selectOption('int4-e4m3');
    await page.getByTestId('runtime-method').selectOption('fireq');
    const fireq = await waitForRuntime(page, run, /KV int4-e4m3, FireQ key scales/).catch((e) =>
      failWithPage(page, e, 'runtime-fireq-failure.png'),
    );
    t.diagnostic(`KV int4-e4m3 + FireQ: ${JSON.stringify(fireq)}`);
    assert.ok(
      fireq.kl < kv2.kl,
      `a 4-bit cache with FireQ's key scales is closer than a 2-bit one: ${fireq.kl} vs ${kv2.kl}`,
    );

    run = await metricsRun(page);
    await page.getByTestId('runtime-kv').selectOption('');
    await page.getByTestId('runtime-method').selectOption('ptq161');
    const ptq = await waitForRuntime(
      page,
      run,
      /ptq161 answers the prediction and the metrics on the CPU reference/,
    ).catch((e) => failWithPage(page, e, 'runtime-ptq-failure.png'));
    t.diagnostic(`PTQ1.61: ${JSON.stringify(ptq)}`);
    assert.ok(ptq.kl > fireq.kl, `binarizing 80% of the weights breaks more: ${ptq.kl}`);
    const both = await waitForPrediction(page, prompt);
    assert.equal(both.reference[0].token, ' Berlin', 'the reference column is untouched');
    assert.notDeepEqual(both.quantized, both.reference, 'the CPU method answers the quantized column');
    await page.screenshot({ path: join(SHOTS, 'playground-runtime.png'), fullPage: true, animations: 'disabled' });

    // Off again, for the tests after this one.
    await page.getByTestId('runtime-method').selectOption('');
    await page.waitForFunction(() => document.querySelector('[data-testid="status"]').dataset.state !== 'busy', null, {
      timeout: METRICS_TIMEOUT_MS,
    });
  },
);

test(
  'the quantized model downloads as a GGUF that loads back into the page and predicts what the CLI predicts from it',
  { timeout: 600_000 },
  async (t) => {
    // The last test on the shared page: it leaves another model loaded. No run-time quantization
    // (the test before turned it off); every weight at q4_0 (a GGUF type), set by the controls.
    const p = page;
    const prompt = await p.getByTestId('prompt').inputValue();
    let t0 = Date.now();
    await p.locator('label:has([data-testid="recipe-mode-controls"])').click();
    await p.getByTestId('all-weights').selectOption(GGUF_SCHEME);
    // Applied once the bits per weight are q4_0's (4.5 per matrix weight, the norms in f32).
    await p
      .waitForFunction(
        () => Math.abs(Number(document.querySelector('[data-testid="metric-bpw"]').dataset.value) - 4.5) < 0.05,
        null,
        { timeout: METRICS_TIMEOUT_MS },
      )
      .catch((e) => failWithPage(p, e, 'gguf-apply-failure.png'));
    t.diagnostic(`${GGUF_SCHEME} applied in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // The export reports each tensor it quantizes, then the browser saves the file. The engine
    // runs calls in order, so the export writes q4_0 although the weights go back to as loaded
    // right after the click: that spares the q4_0 model's evaluation (and the loaded file a
    // q4_0 recipe on top of it).
    t0 = Date.now();
    const counted = p.waitForFunction(
      () => /^quantizing tensor \d+ of \d+$/.test(document.querySelector('[data-testid="gguf-detail"]')?.textContent),
      null,
      { timeout: METRICS_TIMEOUT_MS, polling: 50 },
    );
    const saved = download(p, 'gguf-download', METRICS_TIMEOUT_MS);
    await p.getByTestId('all-weights').selectOption('');
    const [file] = await Promise.all([saved, counted]).catch((e) => failWithPage(p, e, 'gguf-download-failure.png'));
    t.diagnostic(`${file.name}: ${file.bytes.length} bytes in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(file.name, `quantscope-SmolLM2-135M-Instruct.Q4_1-${GGUF_SCHEME}.gguf`);
    assert.equal(file.bytes.subarray(0, 4).toString('latin1'), 'GGUF', 'the GGUF magic');
    assert.match(await p.getByTestId('gguf-note').innerText(), /^Saved quantscope-.+\.gguf \(/);

    // Opened in the same page as a file from disk, it is the model as loaded, and the page
    // predicts with it what the CLI predicts from the same file.
    t0 = Date.now();
    const dir = mkdtempSync(join(tmpdir(), 'quantscope-gguf-'));
    let expected;
    try {
      // Over 50 MB a file goes to the page by path; its name is what the page sees.
      const path = join(dir, file.name);
      writeFileSync(path, file.bytes);
      expected = JSON.parse(
        execFileSync(
          CLI,
          ['predict', '--backend', 'cpu', '--model', path, '--prompt', prompt, '--top', '10', '--json'],
          {
            cwd: ROOT,
            encoding: 'utf8',
          },
        ),
      ).top.map((x) => x.token);
      await p.getByTestId('file-input').setInputFiles(path);
      await p
        .waitForFunction(
          (name) =>
            document.querySelector('[data-testid="top-reference"]').dataset.model === name ||
            !document.querySelector('[data-testid="load-error"]').hidden,
          file.name,
          { timeout: LOAD_TIMEOUT_MS },
        )
        .catch((e) => failWithPage(p, e, 'gguf-load-failure.png'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(await p.getByTestId('load-error').isVisible(), false, await p.getByTestId('load-error').innerText());
    const loaded = await waitForPrediction(p, prompt);
    t.diagnostic(`loaded back and predicted in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(await p.getByTestId('summary-source').innerText(), file.name, 'the summary names the file');
    const dtypes = await p.$$eval('[data-testid="summary-dtypes"] li', (all) => all.map((li) => li.dataset.dtype));
    assert.deepEqual(dtypes.sort(), ['F32', GGUF_SCHEME.toUpperCase()], `every matrix is ${GGUF_SCHEME}: ${dtypes}`);
    assert.ok(decodeURIComponent(new URL(p.url()).hash).includes(`model=local:${file.name}`), p.url());
    checkDistribution(loaded.reference);
    t.diagnostic(`${prompt} → ${JSON.stringify(loaded.reference.slice(0, 3).map((x) => x.token))}`);
    assert.match(loaded.reference[0].token, /\S/, 'a real token');
    assert.deepEqual(
      loaded.reference.map((x) => x.token),
      expected,
      'the page predicts from the file what the CLI does',
    );
  },
);

test(
  'the URL state round-trips: a link restores the controls, and the page links back to the same state',
  { timeout: 420_000 },
  async () => {
    const state = new URLSearchParams({
      prompt: 'The capital of Italy is',
      weights: JSON.stringify({
        groups: [
          { layers: '', schemes: { ffn_down: 'int8-ch-sym' } },
          { layers: '0-3', schemes: { attn_q: 'int4-g128-asym' } },
        ],
        embeddings: '',
        output: '',
      }),
      intervene: 'clip:99.5',
      tokens: EVAL_TOKENS,
      view: JSON.stringify({
        view: 'attention-maps',
        layer: 2,
        point: 'down_input',
        head: 1,
        tensor: 'blk.2.ffn_down.weight',
        rule: 'massive',
      }),
    });
    const linked = await context.newPage();
    watch(linked, browserErrors);
    await linked.goto(`${baseUrl}#${state}`);
    await waitForPrediction(linked, 'The capital of Italy is', LOAD_TIMEOUT_MS).catch((e) =>
      failWithPage(linked, e, 'url-failure.png'),
    );
    await waitForMetrics(linked, 0).catch((e) => failWithPage(linked, e, 'url-metrics-failure.png'));

    assert.equal(
      await linked.getByTestId('summary').getAttribute('data-from-cache'),
      'true',
      'the second load reads the Cache API',
    );
    assert.equal(await linked.getByTestId('prompt').inputValue(), 'The capital of Italy is');
    assert.equal(await linked.getByTestId('scheme-0-ffn_down').inputValue(), 'int8-ch-sym');
    assert.equal(await linked.getByTestId('scheme-0-attn_q').inputValue(), '');
    assert.equal(await linked.getByTestId('group-layers-1').inputValue(), '0-3');
    assert.equal(await linked.getByTestId('scheme-1-attn_q').inputValue(), 'int4-g128-asym');
    assert.equal(await linked.getByTestId('all-weights').inputValue(), '(mixed)');
    assert.equal(await linked.getByTestId('intervention').inputValue(), 'clip');
    assert.equal(await linked.getByTestId('intervention-clip').inputValue(), '99.5');
    assert.equal(await linked.getByTestId('eval-tokens').inputValue(), EVAL_TOKENS);
    // textContent: the preview sits in a closed <details>.
    const preview = JSON.parse(await linked.getByTestId('recipe-preview').textContent());
    assert.deepEqual(preview.rules, [
      { tensors: 'blk.*.ffn_down.weight', scheme: 'int8-ch-sym' },
      { tensors: 'blk.*.attn_q.weight', layers: '0-3', scheme: 'int4-g128-asym' },
    ]);
    const metrics = await readMetrics(linked);
    assert.ok(metrics.kl > 0, `the linked configuration is what was measured: KL ${metrics.kl}`);

    // The page's own link for what it shows is the link it was opened with.
    const back = new URLSearchParams(new URL(linked.url()).hash.slice(1));
    assert.deepEqual(Object.fromEntries(back), Object.fromEntries(state));
    await linked.getByTestId('share-button').click();
    assert.equal(
      await linked.getByTestId('share-button').getAttribute('data-link'),
      linked.url(),
      'Copy link gives the same link',
    );

    // A bad value in a link is reported, and the rest of it applies.
    await linked.goto(`${baseUrl}#prompt=Hello&intervene=bogus`);
    await linked.getByTestId('url-notice').waitFor({ state: 'visible', timeout: 30_000 });
    assert.match(await linked.getByTestId('url-notice').innerText(), /intervene: "bogus"/);
    await waitForPrediction(linked, 'Hello', LOAD_TIMEOUT_MS);
    await linked.close();
  },
);

test('?backend=webgpu runs the model as loaded on WebGPU, unmeasured', { timeout: 300_000 }, async () => {
  const gpu = await context.newPage();
  watch(gpu, browserErrors);
  await gpu.goto(`${baseUrl}?backend=webgpu`);
  const top = await waitForPrediction(gpu, DEFAULT_PROMPT, LOAD_TIMEOUT_MS).catch((e) =>
    failWithPage(gpu, e, 'backend-webgpu-failure.png'),
  );
  assert.equal(top.reference[0].token, ' Paris');
  assert.deepEqual(top.quantized, top.reference, 'one run answers both columns');
  const forward = gpu.getByTestId('device-forward');
  assert.equal(await forward.getAttribute('data-measured'), 'false');
  assert.equal(await forward.getAttribute('data-backend'), 'webgpu');
  assert.match(await forward.innerText(), /backend=webgpu/);
  assert.equal(await gpu.getByTestId('predict-backend').getAttribute('data-backend'), 'webgpu');
  assert.match(await gpu.getByTestId('predict-backend').innerText(), /^Computed on WebGPU \(.+\) in [\d.]+ m?s\.$/);
  await gpu.close();
});

test('without WebGPU it says so and predicts on the CPU', { timeout: 300_000 }, async () => {
  const cpu = await context.newPage();
  const errors = [];
  watch(cpu, errors);
  // ?backend=cpu stands in for a browser without WebGPU: the engine never asks for an adapter.
  await cpu.goto(`${baseUrl}?backend=cpu`);
  const top = await waitForPrediction(cpu, DEFAULT_PROMPT, LOAD_TIMEOUT_MS, { quantized: false });
  assert.equal(top.reference[0].token, ' Paris');
  const notice = cpu.getByTestId('gpu-unavailable');
  assert.ok(await notice.isVisible(), 'the page says WebGPU is not used');
  assert.match((await notice.innerText()).replace(/\s+/g, ' '), /WebGPU unavailable: .+ — predictions run on the CPU/);
  assert.equal(await cpu.getByTestId('predict-backend').getAttribute('data-backend'), 'cpu');
  assert.equal(await cpu.getByTestId('device-forward').isVisible(), false, 'no GPU: nothing to choose between');
  assert.ok(await cpu.getByTestId('quant-unavailable').isVisible(), 'the quantizer says why it is off');
  assert.equal(await cpu.getByTestId('quantized-column').isVisible(), false);
  assert.notEqual(
    await cpu.getByTestId('quant-fields').getAttribute('disabled'),
    null,
    'the quantizer controls are off',
  );
  await cpu.screenshot({ path: join(SHOTS, 'playground-cpu.png'), fullPage: true, animations: 'disabled' });

  // Chat: the prompt as a user's message in the model's own template; the reply is the CLI's.
  const chatArgs = ['generate', '--backend', 'cpu', '--model', MODEL, '--prompt', DEFAULT_PROMPT, '--chat'];
  const chatCli = JSON.parse(
    execFileSync(CLI, [...chatArgs, '--max-tokens', '6', '--json'], { cwd: ROOT, encoding: 'utf8' }),
  ).text;
  assert.equal(await cpu.getByTestId('generate-chat').isEnabled(), true, 'the default model has a chat template');
  await cpu.getByTestId('generate-chat').check();
  await cpu.getByTestId('generate-max-tokens').fill('6');
  await cpu.getByTestId('generate-button').click();
  await cpu.waitForFunction(
    () => document.querySelector('[data-testid="generate-reference"]').dataset.state === 'done',
    null,
    { timeout: GENERATE_TIMEOUT_MS },
  );
  assert.equal(await cpu.getByTestId('generate-reference').getAttribute('data-text'), chatCli);
  await cpu.getByTestId('generate-chat').uncheck();

  // A Hugging Face checkpoint (safetensors + config.json + tokenizer.json) loads from the file
  // picker and predicts what the CLI predicts from the same files: the default model cut to four
  // layers, written by the Python oracle that tests/native/reference_forward.rs checks (into a
  // folder of this test's own: the native tests may run at the same time).
  const hf = join(SHOTS, 'hf_export');
  const parts = ['model.safetensors', 'config.json', 'tokenizer.json'].map((f) => join(hf, f));
  execFileSync(join(ROOT, '.venv/bin/python'), [join(ROOT, 'tests/oracle/export_hf.py'), MODEL, hf, '4'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const layers = JSON.parse(readFileSync(parts[1], 'utf8')).num_hidden_layers;
  const expected = JSON.parse(
    execFileSync(
      CLI,
      ['predict', '--backend', 'cpu', '--model', parts[0], '--prompt', DEFAULT_PROMPT, '--top', '10', '--json'],
      { cwd: ROOT, encoding: 'utf8' },
    ),
  ).top.map((x) => x.token);
  await cpu.getByTestId('file-input').setInputFiles(parts);
  await cpu.waitForFunction(
    () =>
      document.querySelector('[data-testid="top-reference"]').dataset.model === 'model' ||
      !document.querySelector('[data-testid="load-error"]').hidden,
    null,
    { timeout: LOAD_TIMEOUT_MS },
  );
  assert.equal(await cpu.getByTestId('load-error').isVisible(), false, await cpu.getByTestId('load-error').innerText());
  assert.equal(await cpu.getByTestId('summary-layers').getAttribute('data-value'), String(layers));
  assert.match(decodeURIComponent(new URL(cpu.url()).hash), /model=local:model/);
  const hfTop = await waitForPrediction(cpu, DEFAULT_PROMPT, PREDICT_TIMEOUT_MS, { quantized: false });
  assert.deepEqual(
    hfTop.reference.map((x) => x.token),
    expected,
    'the safetensors checkpoint predicts what the CLI does',
  );
  assert.deepEqual(errors, [], 'no errors in the browser console');
  await cpu.close();

  assert.deepEqual(external, [], 'the page requests nothing outside the local server');
  assert.deepEqual(browserErrors, [], 'no errors in the browser console');
});

test(
  'Gemma 3 270M, a served model, loads and predicts what the CLI predicts from it',
  { timeout: 600_000 },
  async () => {
    const g = await context.newPage();
    const errors = [];
    watch(g, errors);
    await g.goto(`${baseUrl}#model=${encodeURIComponent(GEMMA3)}`);
    const expected = JSON.parse(
      execFileSync(
        CLI,
        [
          'predict',
          '--backend',
          'cpu',
          '--model',
          join(ROOT, GEMMA3),
          '--prompt',
          DEFAULT_PROMPT,
          '--top',
          '10',
          '--json',
        ],
        { cwd: ROOT, encoding: 'utf8' },
      ),
    ).top.map((x) => x.token);
    const top = await waitForPrediction(g, DEFAULT_PROMPT, LOAD_TIMEOUT_MS + PREDICT_TIMEOUT_MS, {
      quantized: false,
    }).catch((e) => failWithPage(g, e, 'gemma3-failure.png'));
    assert.deepEqual(
      top.reference.map((x) => x.token),
      expected,
      'the page predicts what the CLI does',
    );
    assert.equal(await g.getByTestId('summary-architecture').innerText(), 'gemma3');
    assert.equal(await g.getByTestId('generate-chat').isDisabled(), true, 'its file carries no chat template');
    const current = g.getByTestId('served-models').locator('a[aria-current]');
    assert.equal(await current.innerText(), 'Gemma 3 270M', 'the served-model list marks it');
    await g.screenshot({ path: join(SHOTS, 'playground-gemma3.png'), fullPage: true, animations: 'disabled' });
    assert.deepEqual(errors, [], 'no errors in the browser console');
    await g.close();
  },
);

test(
  'a lost GPU device is reported, and the model comes back from the cache on a new device with its settings',
  { timeout: 600_000 },
  async (t) => {
    const p = await context.newPage();
    const errors = [];
    watch(p, errors);
    // An intervention, so that the metrics are measured (on the GPU) and must be set again after the loss.
    await p.goto(`${baseUrl}#intervene=drop-sink&tokens=${EVAL_TOKENS}&window=8`);
    await waitForPrediction(p, DEFAULT_PROMPT, LOAD_TIMEOUT_MS).catch((e) =>
      failWithPage(p, e, 'lost-load-failure.png'),
    );
    const before = await waitForMetrics(p, 0).catch((e) => failWithPage(p, e, 'lost-metrics-failure.png'));
    assert.match(await p.getByTestId('metrics-note').innerText(), /on 16 tokens in windows of 8/);
    const run = await metricsRun(p);

    // The test-only protocol method, called inside the engine's worker as if the page had sent it.
    const workers = p.workers();
    assert.equal(workers.length, 1, 'one engine');
    await workers[0].evaluate(() =>
      self.onmessage({ data: { type: 'call', id: -1, method: 'debugDestroyDevice', args: {} } }),
    );
    const notice = p.getByTestId('device-lost');
    await notice.waitFor({ state: 'visible', timeout: 60_000 });
    assert.match(await notice.innerText(), /The GPU device was lost/);
    await p
      .waitForFunction(
        () => document.querySelector('[data-testid="device-lost"]').dataset.state !== 'reloading',
        null,
        {
          timeout: LOAD_TIMEOUT_MS,
        },
      )
      .catch((e) => failWithPage(p, e, 'lost-reload-failure.png'));
    t.diagnostic(`notice: ${await notice.innerText()}`);
    assert.equal(await notice.getAttribute('data-state'), 'recovered');
    assert.equal(await p.getByTestId('summary').getAttribute('data-from-cache'), 'true', 'reloaded from the Cache API');

    // The same settings, sent to the new engine and measured again on the new device.
    const after = await waitForMetrics(p, run).catch((e) => failWithPage(p, e, 'lost-remeasure-failure.png'));
    t.diagnostic(`KL before ${before.kl}, after ${after.kl}`);
    assert.match(await p.getByTestId('apply-timing').innerText(), /intervention in/);
    assert.ok(Math.abs(after.kl - before.kl) <= 1e-3 * before.kl, `the same model: KL ${before.kl} -> ${after.kl}`);
    const spain = await waitForPrediction(p, DEFAULT_PROMPT).then(async () => {
      await p.getByTestId('prompt').fill('The capital of Spain is');
      await p.getByTestId('prompt').press('Enter');
      return waitForPrediction(p, 'The capital of Spain is');
    });
    assert.equal(spain.reference[0].token, ' Madrid', 'the new engine predicts');
    assert.equal(p.workers().length, 1, 'the engine of the lost device was stopped');
    t.diagnostic(`browser errors: ${JSON.stringify(errors)}`);
    await p.close();
  },
);

test('every result the engine sent has the fields and types that messages.ts declares', async () => {
  const { checkResults } = await tsImport('../src/protocol-shape.ts', import.meta.url);
  const methods = Object.keys(resultShapes).sort();
  for (const m of [
    'load',
    'predict',
    'predictBoth',
    'generate',
    'applyRecipe',
    'evaluate',
    'probe',
    'weightStats',
    'sensitivity',
    'tokenView',
    'positionDetail',
    'breakage',
    'exportGguf',
    'pinReference',
    'allocateByMeasurement',
  ])
    assert.ok(methods.includes(m), `${m}'s result was recorded (recorded: ${methods.join(', ')})`);
  writeFileSync(join(SHOTS, 'protocol-shapes.json'), JSON.stringify(resultShapes, null, 1));
  assert.deepEqual(checkResults(join(ROOT, 'www/src/messages.ts'), resultShapes), []);
});
