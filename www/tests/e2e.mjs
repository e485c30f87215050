// End-to-end test of the playground page in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; never `npx playwright install`).
//
//   cd www && npm ci && node --test tests/e2e.mjs     (or: npm run test:e2e)
//
// Needs www/pkg (scripts/build-web) and models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup).
// Starts scripts/serve on a free port, and always stops it. Screenshots go to target/e2e/.
//
// Chromium runs with --enable-unsafe-webgpu: headless and without a GPU it offers SwiftShader's
// WebGPU adapter, so the page must compute on WebGPU. The generated text is compared with the
// native CLI's CPU reference (target/debug/quantscope, built by `cargo test`; built here with
// `cargo build --bin quantscope` when missing).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
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
const GENERATE_TIMEOUT_MS = 120_000;
const CLI = join(ROOT, 'target/debug/quantscope');
const GENERATE_PROMPT = 'Once upon a time';
const GENERATE_TOKENS = 8;

let server;
let serverLog = '';
let context;
let userDataDir;
let baseUrl;
let cliGeneration;
const browserErrors = [];

/** What the native CLI generates (greedy, CPU reference) for GENERATE_PROMPT. */
function cliGenerate() {
  if (!existsSync(CLI)) {
    execFileSync('cargo', ['build', '--bin', 'quantscope'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const out = execFileSync(CLI, ['generate', '--backend', 'cpu', '--model', MODEL, '--prompt', GENERATE_PROMPT,
    '--max-tokens', String(GENERATE_TOKENS), '--json'], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out);
}

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
  cliGeneration = cliGenerate();
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

  // ... and it was computed on WebGPU (SwiftShader here), which the page says in words.
  const computedOn = page.getByTestId('predict-backend');
  assert.equal(await computedOn.getAttribute('data-backend'), 'webgpu',
    `the prediction ran on WebGPU: ${await computedOn.innerText()} / ${await page.getByTestId('device').innerText()}`);
  const computedText = await computedOn.innerText();
  t.diagnostic(computedText);
  assert.match(computedText, /Computed on WebGPU \(.+\)/);
  assert.equal(await page.getByTestId('device').getAttribute('data-backend'), 'webgpu');
  assert.equal(await page.getByTestId('gpu-unavailable').isVisible(), false);
  const features = await page.$$eval('[data-testid="device-features"] li[data-feature]',
    (lis) => Object.fromEntries(lis.map((li) => [li.dataset.feature, li.dataset.on === 'true'])));
  assert.ok('shader-f16' in features && 'subgroups' in features, `features are listed: ${JSON.stringify(features)}`);
  const deviceText = (await page.getByTestId('device').innerText()).replace(/\s+/g, ' ');
  t.diagnostic(`device: ${deviceText}`);
  assert.match(deviceText, /shader-f16 (yes|no)/);
  assert.match(deviceText, /subgroups (yes|no)/);

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

  // 2b. Greedy generation streams text, and it is exactly what the native CPU reference generates.
  await page.getByTestId('generate-prompt').fill(GENERATE_PROMPT);
  await page.getByTestId('generate-max-tokens').fill(String(GENERATE_TOKENS));
  await page.getByTestId('generate-temperature').fill('0');
  await page.getByTestId('generate-button').click();
  const output = page.getByTestId('generate-output');
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-testid="generate-output"]');
    return el.dataset.state === 'done' || el.dataset.state === 'error';
  }, null, { timeout: GENERATE_TIMEOUT_MS });
  const generated = await output.evaluate((el) => ({
    state: el.dataset.state, text: el.dataset.text, stop: el.dataset.stop, tokens: Number(el.dataset.tokens),
    pieces: Number(el.dataset.pieces), backend: el.dataset.backend, tokensPerSecond: Number(el.dataset.tokensPerSecond),
    streamed: el.querySelector('[data-testid="generate-text"]').textContent,
  }));
  assert.equal(generated.state, 'done', `generation finished: ${await page.getByTestId('generate-error').innerText()}`);
  t.diagnostic(`generated ${JSON.stringify(generated.streamed)} on ${generated.backend}: ${generated.tokens} tokens, ` +
    `${generated.pieces} pieces, ${generated.tokensPerSecond.toFixed(2)} tokens/s; CLI: ${JSON.stringify(cliGeneration.text)}`);
  assert.ok(generated.streamed.length > 0, 'some text was generated');
  assert.ok(generated.pieces > 1, 'the text arrived in several pieces');
  assert.equal(generated.backend, 'webgpu');
  assert.equal(generated.streamed, cliGeneration.text, 'the streamed text matches the native CPU reference');
  assert.equal(generated.text, cliGeneration.text);
  assert.equal(generated.tokens, cliGeneration.tokens.length);
  assert.match(await page.getByTestId('generate-stats').innerText(), /tokens\/s/);
  await page.screenshot({ path: join(SHOTS, 'playground.png'), fullPage: true, animations: 'disabled' });

  // 2c. Stop ends a long generation early.
  await page.getByTestId('generate-max-tokens').fill('500');
  await page.getByTestId('generate-button').click();
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="generate-output"]').dataset.pieces ?? 0) >= 2,
    null, { timeout: GENERATE_TIMEOUT_MS });
  await page.getByTestId('stop-button').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="generate-output"]').dataset.state === 'done',
    null, { timeout: GENERATE_TIMEOUT_MS });
  assert.equal(await output.getAttribute('data-stop'), 'stopped');
  assert.ok(Number(await output.getAttribute('data-tokens')) < 500, 'stopped before max tokens');
  assert.equal(await page.getByTestId('stop-button').isVisible(), false);

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
  await page.close();
});

test('playground: without WebGPU it says so and predicts on the CPU', { timeout: 300_000 }, async (t) => {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  // ?backend=cpu stands in for a browser without WebGPU: the engine never asks for an adapter.
  await page.goto(`${baseUrl}?backend=cpu`);
  const top = await waitForPrediction(page, 'The capital of France is', LOAD_TIMEOUT_MS);
  assert.equal(top[0].token, ' Paris');
  const notice = page.getByTestId('gpu-unavailable');
  assert.ok(await notice.isVisible(), 'the page says WebGPU is not used');
  const text = (await notice.innerText()).replace(/\s+/g, ' ');
  t.diagnostic(text);
  assert.match(text, /WebGPU unavailable: .+ — predictions run on the CPU/);
  assert.equal(await page.getByTestId('device').getAttribute('data-backend'), 'cpu');
  assert.equal(await page.getByTestId('predict-backend').getAttribute('data-backend'), 'cpu');
  assert.match(await page.getByTestId('predict-backend').innerText(), /Computed on the CPU/);
  await page.screenshot({ path: join(SHOTS, 'playground-cpu.png'), fullPage: true, animations: 'disabled' });
  assert.deepEqual(errors, [], 'no errors in the browser console');
  await page.close();
});
