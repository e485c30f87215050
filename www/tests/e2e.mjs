// End-to-end test of the playground page in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; never `npx playwright install`).
//
//   cd www && npm ci && node --test tests/e2e.mjs     (or: npm run test:e2e)
//
// Needs www/pkg (scripts/build-web) and models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup).
// Starts scripts/serve on a free port, and always stops it. Screenshots go to target/e2e/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MODEL = join(ROOT, 'models/SmolLM2-135M-Instruct.Q4_1.gguf');
const SHOTS = join(ROOT, 'target/e2e');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Download (98 MB over loopback) + parse + the first forward pass, in wasm on a slow CI core.
const LOAD_TIMEOUT_MS = 180_000;
const PREDICT_TIMEOUT_MS = 60_000;

let server;
let serverLog = '';
let context;
let userDataDir;
let baseUrl;
const browserErrors = [];

/** Starts scripts/serve on a free port (--port 0) and resolves with its URL. */
function startServer() {
  return new Promise((resolveUrl, reject) => {
    server = spawn('python3', [join(ROOT, 'scripts/serve'), '--port', '0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => reject(new Error(`scripts/serve did not start in 15 s:\n${serverLog}`)), 15_000);
    server.stdout.setEncoding('utf8');
    server.stderr.setEncoding('utf8');
    server.stderr.on('data', (d) => { serverLog = (serverLog + d).slice(-20_000); });
    server.stdout.on('data', (d) => {
      serverLog += d;
      const m = /quantscope playground: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(serverLog);
      if (m) { clearTimeout(timer); resolveUrl(m[1]); }
    });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`scripts/serve exited (${code}):\n${serverLog}`)); });
  });
}

function stopServer() {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
}
// Also on an abrupt exit of the test process, so no server outlives the run.
process.on('exit', stopServer);

before(async () => {
  assert.ok(existsSync(join(ROOT, 'www/pkg/quantscope.js')), 'www/pkg is missing: run scripts/build-web');
  assert.ok(existsSync(MODEL), `${MODEL} is missing: run scripts/setup`);
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  mkdirSync(SHOTS, { recursive: true });
  baseUrl = await startServer();
  userDataDir = mkdtempSync(join(tmpdir(), 'quantscope-e2e-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1280, height: 860 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
  });
});

after(async () => {
  try {
    await context?.close();
  } finally {
    stopServer();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  }
});

/** The page's list of top tokens, as the test reads it. */
async function topTokens(page) {
  return page.$$eval('[data-testid="top-tokens"] li', (lis) =>
    lis.map((li) => ({ token: li.dataset.token, prob: Number(li.dataset.prob) })));
}

/**
 * Waits until the list shows a prediction for `prompt` (by the model loaded from `model`, when
 * given) and nothing is being computed.
 */
async function waitForPrediction(page, prompt, timeout = PREDICT_TIMEOUT_MS, model = null) {
  await page.waitForFunction(([p, m]) => {
    const list = document.querySelector('[data-testid="top-tokens"]');
    return list && list.dataset.prompt === p && (m === null || list.dataset.model === m)
      && !list.classList.contains('stale') && list.children.length > 0;
  }, [prompt, model], { timeout });
  return topTokens(page);
}

/** The first `n` bytes of a file: a real GGUF header cut short. */
function head(path, n) {
  const buf = Buffer.alloc(n);
  const fd = openSync(path, 'r');
  try { return buf.subarray(0, readSync(fd, buf, 0, n, 0)); } finally { closeSync(fd); }
}

async function setPrompt(page, prompt) {
  await page.getByTestId('prompt').fill(prompt);
  await page.getByTestId('prompt').press('Enter');
  return waitForPrediction(page, prompt);
}

function checkDistribution(tokens) {
  assert.equal(tokens.length, 10, 'ten tokens are shown');
  let sum = 0;
  for (let i = 0; i < tokens.length; i++) {
    const p = tokens[i].prob;
    assert.ok(Number.isFinite(p) && p > 0 && p <= 1, `token ${i} has a probability in (0, 1]: ${p}`);
    if (i > 0) assert.ok(p <= tokens[i - 1].prob, `probabilities are sorted: ${tokens[i - 1].prob} then ${p}`);
    sum += p;
  }
  assert.ok(sum <= 1.0001, `the top ten probabilities sum to at most 1: ${sum}`);
}

test('playground: load, summary, predict, bad file, screenshot', { timeout: 420_000 }, async (t) => {
  const page = await context.newPage();
  page.on('pageerror', (e) => browserErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') browserErrors.push(`console: ${m.text()}`); });
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(baseUrl) && !r.url().startsWith('data:')) external.push(r.url()); });

  const t0 = Date.now();
  await page.goto(baseUrl);

  // 1. The default model loads and the default prompt predicts " Paris".
  const first = await waitForPrediction(page, 'The capital of France is', LOAD_TIMEOUT_MS).catch(async (e) => {
    await page.screenshot({ path: join(SHOTS, 'playground-failure.png'), fullPage: true });
    const shown = await page.locator('body').innerText();
    throw new Error(`${e.message}\n--- page text ---\n${shown}\n--- browser errors ---\n${browserErrors.join('\n')}`);
  });
  t.diagnostic(`model loaded and first prediction shown in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  checkDistribution(first);
  assert.equal(first[0].token, ' Paris', `top-1 token after "The capital of France is": ${JSON.stringify(first.map((x) => x.token))}`);
  // The token is shown with its space made visible.
  assert.equal(await page.locator('[data-testid="top-tokens"] li').first().locator('.token-text').innerText(), '␣Paris');

  // 2. The summary describes SmolLM2-135M.
  const fact = (id) => page.getByTestId(id).getAttribute('data-value');
  assert.equal(await fact('summary-architecture'), 'llama');
  assert.equal(await fact('summary-layers'), '30');
  assert.equal(await fact('summary-width'), '576');
  assert.equal(await fact('summary-heads'), '9');
  assert.equal(await fact('summary-kv-heads'), '3');
  assert.equal(await fact('summary-ffn'), '1536');
  assert.equal(await fact('summary-vocab'), '49152');
  const params = Number(await fact('summary-params'));
  assert.ok(params > 100e6 && params < 170e6, `about 135 M parameters: ${params}`);
  assert.match(await page.getByTestId('summary-layers').innerText(), /^30$/);
  const dtypes = await page.$$eval('[data-testid="summary-dtypes"] li', (lis) => lis.map((li) => li.dataset.dtype));
  assert.ok(dtypes.includes('Q4_1'), `the dtype list names Q4_1: ${dtypes}`);
  await page.screenshot({ path: join(SHOTS, 'playground.png'), fullPage: true, animations: 'disabled' });

  // 3. Another prompt gives another list: typing alone predicts (debounced), no Enter needed.
  await page.getByTestId('prompt').fill('My favourite colour is');
  const other = await waitForPrediction(page, 'My favourite colour is');
  checkDistribution(other);
  assert.notDeepEqual(other.map((x) => x.token), first.map((x) => x.token), 'a different prompt changes the list');

  // An empty prompt is an error shown in words, cleared by the next good prediction.
  await page.getByTestId('prompt').fill('');
  await page.getByTestId('prompt').press('Enter');
  const predictError = page.getByTestId('predict-error');
  await predictError.waitFor({ state: 'visible', timeout: PREDICT_TIMEOUT_MS });
  assert.match(await predictError.innerText(), /empty/);
  await setPrompt(page, 'My favourite colour is');
  assert.equal(await predictError.isVisible(), false, 'a good prediction clears the error');

  // 4. A file of random bytes is refused with a clear error, and the loaded model keeps working.
  await page.getByTestId('file-input').setInputFiles({
    name: 'garbage.gguf', mimeType: 'application/octet-stream', buffer: randomBytes(1 << 20),
  });
  const error = page.getByTestId('load-error');
  await error.waitFor({ state: 'visible', timeout: 30_000 });
  const message = await error.innerText();
  t.diagnostic(`error shown: ${message.replace(/\s+/g, ' ')}`);
  assert.match(message, /Could not load garbage\.gguf/);
  assert.match(message, /Not a GGUF file/, 'the error says what is wrong');
  assert.match(message, /still loaded/, 'the error says the previous model is kept');
  assert.equal(await fact('summary-layers'), '30', 'the summary still shows the previous model');

  // A real GGUF cut short after 1 MiB (inside its metadata) is refused the same way.
  await page.getByTestId('file-input').setInputFiles({
    name: 'truncated.gguf', mimeType: 'application/octet-stream', buffer: head(MODEL, 1 << 20),
  });
  await page.waitForFunction(() => /truncated\.gguf/.test(document.querySelector('[data-testid="load-error"]')?.innerText ?? ''),
    null, { timeout: 30_000 });
  const truncated = await error.innerText();
  t.diagnostic(`error shown: ${truncated.replace(/\s+/g, ' ')}`);
  assert.match(truncated, /Could not load truncated\.gguf/);
  assert.match(truncated, /offset \d+/, 'the error says where the file broke');
  assert.doesNotMatch(truncated, /crashed/, 'a bad file is an error, not a crash');
  assert.match(truncated, /still loaded/);
  const again = await setPrompt(page, 'The capital of France is');
  assert.equal(again[0].token, ' Paris', 'the previous model still predicts after the bad file');
  assert.deepEqual(again.map((x) => x.token), first.map((x) => x.token), 'and predicts the same as before');
  await page.screenshot({ path: join(SHOTS, 'playground-error.png'), fullPage: true, animations: 'disabled' });

  // 5. The error can be dismissed.
  await error.locator('.notice-close').click();
  await error.waitFor({ state: 'hidden' });

  // 6. A good file from the picker replaces the model (same weights under another name).
  const copy = join(userDataDir, 'smollm2-copy.gguf');
  symlinkSync(MODEL, copy);
  await page.getByTestId('file-input').setInputFiles(copy);
  await page.waitForFunction(() =>
    document.querySelector('[data-testid="summary-source"]')?.textContent === 'smollm2-copy.gguf'
    || document.querySelector('[data-testid="summary-name"]')?.textContent === 'smollm2-copy.gguf'
    || !document.querySelector('[data-testid="load-error"]').hidden, null, { timeout: LOAD_TIMEOUT_MS });
  assert.equal(await error.isVisible(), false, `loading a good file shows no error: ${await error.innerText()}`);
  assert.equal(await fact('summary-layers'), '30');
  const reloaded = await waitForPrediction(page, 'The capital of France is', PREDICT_TIMEOUT_MS, 'smollm2-copy.gguf');
  assert.equal(reloaded[0].token, ' Paris', 'the newly loaded model predicts');

  // No request left the local server; the console stayed clean.
  assert.deepEqual(external, [], 'the page requests nothing outside the local server');
  assert.deepEqual(browserErrors, [], 'no errors in the browser console');
  t.diagnostic(`total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});
