import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AS_LOADED, referenceWords } from './reference';

test('without a pin the reference is the model as loaded', () => {
  assert.equal(referenceWords(null), AS_LOADED);
  assert.equal(AS_LOADED.heading, 'As loaded');
  assert.equal(AS_LOADED.where, 'as loaded');
});

test('a pinned reference is named by its label everywhere', () => {
  const w = referenceWords('int8 everywhere');
  assert.deepEqual(w, {
    pinned: true,
    heading: 'int8 everywhere (pinned)',
    name: 'int8 everywhere (pinned)',
    subject: 'The pinned int8 everywhere',
    short: 'pinned',
    where: 'in int8 everywhere (pinned)',
  });
});
