import assert from 'node:assert/strict';
import { test } from 'node:test';

import { breakageView, describeBreakage, factorText } from './breakage-text.ts';
import type { Breakage } from './messages';
import { referenceWords } from './reference.ts';

function breakage(massiveRatio: number, sinkRatio: number): Breakage {
  const moved = (r: number) => r > 2 || r < 0.5;
  const breaks = [
    ...(moved(massiveRatio) ? ['massive activation'] : []),
    ...(moved(sinkRatio) ? ['attention sink'] : []),
  ];
  return {
    reference: { massive: { block: 3, token: 0, channel: 17, value: -120 }, sink: 0.6 },
    under_study: { massive: { block: 3, token: 0, channel: 17, value: -120 * massiveRatio }, sink: 0.6 * sinkRatio },
    massive_ratio: massiveRatio,
    sink_ratio: sinkRatio,
    breaks,
    breakFactor: 2,
  };
}

test('factors read the same either way', () => {
  assert.equal(factorText(3.21), '×3.2');
  assert.equal(factorText(0.25), '÷4.0');
  assert.equal(factorText(0), 'to zero');
  assert.equal(factorText(Infinity), 'beyond measure');
});

test('nothing broken says nothing', () => {
  assert.deepEqual(describeBreakage(breakage(1.3, 0.8)), []);
});

test('a moved massive activation is told with its place and both values, and shown at its block', () => {
  const b = breakage(0.1, 1);
  const [text, ...rest] = describeBreakage(b);
  assert.equal(rest.length, 0);
  assert.match(text, /massive activation moved ÷10\.0/);
  assert.match(text, /after block 3, token 0, channel 17 holds -120\.0 as loaded and -12\.00 quantized/);
  assert.match(text, /more than the 2× that counts as broken/);
  assert.deepEqual(breakageView(b), { view: 'residual-heatmap', layer: 3 });
});

test('a moved sink is told in shares of attention, and shown in the sink view', () => {
  const b = breakage(1, 0.3);
  const [text] = describeBreakage(b);
  assert.match(
    text,
    /attention sink moved ÷3\.3.*60\.0% of their attention on the first token as loaded, 18\.0% quantized/,
  );
  assert.deepEqual(breakageView(b), { view: 'sink-heatmap' });
  assert.equal(describeBreakage(breakage(5, 0.3)).length, 2, 'both, when both broke');
});

test('against a pinned reference, its values are named by its label', () => {
  const [massive, sink] = describeBreakage(breakage(0.1, 0.3), referenceWords('int8 everywhere'));
  assert.match(massive, /holds -120\.0 in int8 everywhere \(pinned\) and -12\.00 quantized/);
  assert.match(sink, /on the first token in int8 everywhere \(pinned\), 18\.0% quantized/);
});
