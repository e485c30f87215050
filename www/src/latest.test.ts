import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LatestRunner } from './latest';

const tick = () => new Promise((r) => setTimeout(r, 1));

test('requests during a run collapse into one more run', async () => {
  let runs = 0;
  let release: () => void = () => {};
  const runner = new LatestRunner(async () => {
    runs += 1;
    await new Promise<void>((r) => (release = r));
  });
  const first = runner.request();
  await tick();
  assert.equal(runs, 1);
  assert.equal(runner.superseded, false);
  const second = runner.request();
  const third = runner.request();
  assert.equal(runner.superseded, true, 'the running task can see it is superseded');
  release();
  await tick();
  assert.equal(runs, 2, 'two requests during the run make one more run, not two');
  release();
  await Promise.all([first, second, third]);
  assert.equal(runs, 2);
  assert.equal(runner.running, false);
});

test('a failing run is reported and does not stop later ones', async () => {
  const errors: unknown[] = [];
  let n = 0;
  const runner = new LatestRunner(
    async () => {
      n += 1;
      if (n === 1) throw new Error('boom');
    },
    (e) => errors.push(e),
  );
  await runner.request();
  await runner.request();
  assert.equal(n, 2);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /boom/);
});
