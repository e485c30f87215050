// What the browser tests (e2e.mjs, cold-load.mjs) share: scripts/serve, started on a free port,
// its URL read from its output (kept for the error messages), stopped when node exits; and the
// flags headless Chromium runs with (WebGPU without a GPU, nothing fetched but the page).
import { spawn } from 'node:child_process';
import { join } from 'node:path';

let server = null;
let log = '';

/** Starts scripts/serve (from the repository at `root`) on a free port and resolves with its URL. */
export function startServer(root, extraArgs = []) {
  return new Promise((resolveUrl, reject) => {
    server = spawn('python3', [join(root, 'scripts/serve'), '--port', '0', ...extraArgs], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => reject(new Error(`scripts/serve did not start in 15 s:\n${log}`)), 15_000);
    server.stdout.setEncoding('utf8');
    server.stderr.setEncoding('utf8');
    server.stderr.on('data', (d) => {
      log = (log + d).slice(-20_000);
    });
    server.stdout.on('data', (d) => {
      log += d;
      const m = /quantscope playground: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    server.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`scripts/serve exited (${code}):\n${log}`));
    });
  });
}

export function stopServer() {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
}
process.on('exit', stopServer);

export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
