// Runs the TypeScript unit tests (src/**/*.test.ts, the outlier views' included) with node's test
// runner through tsx. Node 20's --test takes no glob, so the files are listed here; its report
// (with the "# pass N" / "# fail N" lines scripts/test sums) goes to stdout unchanged.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const www = join(dirname(fileURLToPath(import.meta.url)), '..');

function testFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return testFiles(path);
    return e.name.endsWith('.test.ts') ? [relative(www, path)] : [];
  });
}

const files = testFiles(join(www, 'src')).sort();
if (files.length === 0) {
  console.error('unit: no src/**/*.test.ts files found');
  process.exit(1);
}
const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', ...files], {
  cwd: www,
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
