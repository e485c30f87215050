import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatMetric, formatProb, tokenParts } from './format';

test('whitespace and control characters in tokens are made visible', () => {
  assert.deepEqual(tokenParts(' Paris'), [
    { text: '␣', mark: true },
    { text: 'Paris', mark: false },
  ]);
  assert.deepEqual(tokenParts('a\nb\t'), [
    { text: 'a', mark: false },
    { text: '↵', mark: true },
    { text: 'b', mark: false },
    { text: '→', mark: true },
  ]);
  assert.deepEqual(tokenParts('\u0001'), [{ text: '\\x01', mark: true }]);
  assert.deepEqual(tokenParts(''), [{ text: '∅', mark: true }]);
});

test('numbers', () => {
  assert.equal(formatBytes(96_600_000), '96.6 MB');
  assert.equal(formatProb(0.773), '77.3%');
  assert.equal(formatProb(0.00041), '4.1e-2%');
  assert.equal(formatMetric(0), '0');
  assert.equal(formatMetric(0.01234), '0.0123');
  assert.equal(formatMetric(1.5e-5), '1.50e-5');
  assert.equal(formatMetric(38.666), '38.666');
});
