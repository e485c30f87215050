import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  configurationOf,
  decodeState,
  defaultState,
  encodeState,
  modelLink,
  DEFAULT_MODEL,
  SERVED_MODELS,
  type AppState,
} from './url-state';
import { uniformControls } from './recipe';

test('the default state encodes to an empty hash and back', () => {
  assert.equal(encodeState(defaultState()), '');
  const { state, problems } = decodeState('');
  assert.deepEqual(state, defaultState());
  assert.deepEqual(problems, []);
});

test('a full state round-trips through the hash', () => {
  const s: AppState = {
    ...defaultState(),
    model: 'local:my model & co.gguf',
    prompt: 'Ünïcödé = "quotes" & #hash ?query\nnew line',
    weights: {
      groups: [
        { layers: '', schemes: { attn_q: 'int4-g128-asym', ffn_down: 'keep' } },
        { layers: '0-3', schemes: { ffn_down: 'int8-ch-sym' } },
      ],
      embeddings: 'q8_0',
      output: '',
    },
    runtime: { a: 'int8-tensor', aDown: null, kv: 'int4-token', attn: null, method: 'smoothquant', calibTokens: 128 },
    intervention: 'clip:99.5',
    pin: {
      recipeMode: 'json',
      weights: defaultState().weights,
      recipeText: '{"default": "nf4", "rules": []}',
      runtime: { ...defaultState().runtime, kv: 'int8-token' },
      intervention: 'drop-sink',
    },
    evalTokens: 32,
    outliers: true,
    view: {
      view: 'attention-maps',
      layer: 3,
      point: 'down_input',
      head: -1,
      tensor: 'blk.3.ffn_down.weight',
      rule: 'massive',
    },
  };
  const hash = encodeState(s);
  const { state, problems } = decodeState(`#${hash}`);
  assert.deepEqual(problems, []);
  assert.deepEqual(state, s);
  // Encoding the decoded state gives the same link.
  assert.equal(encodeState(state), hash);
});

test('a free recipe round-trips and selects the recipe mode', () => {
  const s: AppState = { ...defaultState(), recipeMode: 'json', recipeText: '{"default": "nf4", "rules": []}' };
  const { state } = decodeState(encodeState(s));
  assert.equal(state.recipeMode, 'json');
  assert.equal(state.recipeText, s.recipeText);
});

test('equal weight settings give equal links however empty choices are spelled', () => {
  const a = { ...defaultState(), weights: uniformControls('int2-g32-asym') };
  const b = { ...defaultState(), weights: { ...uniformControls('int2-g32-asym') } };
  b.weights.groups[0].schemes = { ...b.weights.groups[0].schemes };
  assert.equal(encodeState(a), encodeState(b));
  const withEmpty = {
    ...defaultState(),
    weights: { groups: [{ layers: ' ', schemes: { attn_q: '' } }], embeddings: '', output: '' },
  };
  assert.equal(encodeState(withEmpty), '');
});

test('bad values are dropped with a message naming them, the rest still applies', () => {
  const hash = new URLSearchParams({
    prompt: 'kept',
    intervene: 'rm -rf',
    tokens: '-3',
    weights: '{"groups": [{"layers": "x-y", "schemes": {}}]}',
    runtime: '{not json',
    view: '{"layer": 1.5}',
    bogus: '1',
  }).toString();
  const { state, problems } = decodeState(hash);
  assert.equal(state.prompt, 'kept');
  assert.equal(state.intervention, '');
  assert.equal(state.evalTokens, defaultState().evalTokens);
  assert.deepEqual(state.weights, defaultState().weights);
  assert.equal(state.model, DEFAULT_MODEL);
  const text = problems.join('\n');
  for (const key of ['intervene', 'tokens', 'weights', 'runtime', 'view', 'bogus'])
    assert.match(text, new RegExp(key), `a problem names ${key}`);
  assert.equal(problems.length, 6);
});

test('unknown tensor classes and odd scheme names in weights are refused', () => {
  const bad = (w: unknown) => decodeState(new URLSearchParams({ weights: JSON.stringify(w) }).toString()).problems;
  assert.match(bad({ groups: [{ layers: '', schemes: { attn_z: 'int4' } }] }).join(), /unknown tensor class "attn_z"/);
  assert.match(
    bad({ groups: [{ layers: '', schemes: { attn_q: '<script>' } }] }).join(),
    /attn_q has no valid scheme name/,
  );
  assert.match(bad({ groups: [] }).join(), /non-empty list/);
  assert.deepEqual(bad({ groups: [{ layers: '2 - 5', schemes: { attn_q: 'int4' } }], embeddings: 'keep' }), []);
});

test('the evaluation window is in the link only when set, and a bad one is reported', () => {
  const s: AppState = { ...defaultState(), evalWindow: 32 };
  assert.equal(encodeState(s), 'window=32');
  assert.deepEqual(decodeState('#window=32'), { state: s, problems: [] });
  const bad = decodeState('#window=1');
  assert.equal(bad.state.evalWindow, null);
  assert.deepEqual(bad.problems, ['window: "1" is not a whole number from 2 to 4096']);
});

test('a pinned configuration round-trips in one key, with the keys and values of the current one', () => {
  const pinned = { ...defaultState(), weights: uniformControls('int2-g32-asym'), intervention: 'mean-massive' };
  const s: AppState = { ...defaultState(), pin: configurationOf(pinned) };
  const hash = encodeState(s);
  const params = new URLSearchParams(hash);
  assert.deepEqual([...params.keys()], ['pin']);
  const inner = JSON.parse(params.get('pin') ?? '');
  // The same encoding as the link's own keys for the same configuration.
  const own = new URLSearchParams(encodeState(pinned));
  assert.deepEqual(inner, { weights: JSON.parse(own.get('weights') ?? ''), intervene: own.get('intervene') });
  const { state, problems } = decodeState(hash);
  assert.deepEqual(problems, []);
  assert.deepEqual(state, s);
  assert.equal(encodeState(state), hash);
});

test('the model as loaded can be pinned, and no pin is no key', () => {
  const s: AppState = { ...defaultState(), pin: configurationOf(defaultState()) };
  assert.equal(encodeState(s), 'pin=%7B%7D');
  assert.deepEqual(decodeState('#pin={}'), { state: s, problems: [] });
  assert.equal(decodeState(encodeState(defaultState())).state.pin, null);
});

test('a pin with a bad part is dropped whole, with the part named', () => {
  const decode = (pin: unknown) => decodeState(new URLSearchParams({ pin: JSON.stringify(pin) }).toString());
  const bad = decode({ weights: { groups: [] }, intervene: 'drop-sink' });
  assert.equal(bad.state.pin, null);
  assert.deepEqual(bad.problems, ['pin: weights: "groups" must be a non-empty list']);
  assert.deepEqual(decode({ intervene: 'bogus' }).problems, [
    'pin: intervene: "bogus" is not zero-massive, mean-massive, drop-sink or clip:P',
  ]);
  assert.deepEqual(decode({ label: 'x' }).problems, ['pin: unknown setting "label"']);
  assert.deepEqual(decode('int4').problems, ['pin: not an object']);
  assert.match(decodeState('#pin={oops').problems.join(), /^pin: not valid JSON/);
});

test('a configuration is a copy: later changes to the state do not reach it', () => {
  const state = { ...defaultState(), weights: uniformControls('int4-g128-asym'), intervention: 'drop-sink' };
  const c = configurationOf(state);
  assert.deepEqual(Object.keys(c).sort(), ['intervention', 'recipeMode', 'recipeText', 'runtime', 'weights']);
  state.weights.groups[0].schemes.attn_q = 'int2-g32-asym';
  state.runtime.kv = 'int2';
  assert.equal(c.weights.groups[0].schemes.attn_q, 'int4-g128-asym');
  assert.equal(c.runtime.kv, null);
});

test('the served models are the files scripts/fetch-model fetches, the default first, and their links open them', () => {
  const fetchModel = readFileSync(new URL('../../scripts/fetch-model', import.meta.url), 'utf8');
  assert.equal(SERVED_MODELS[0].model, DEFAULT_MODEL);
  for (const { model } of SERVED_MODELS) {
    const file = model.replace(/^models\//, '');
    assert.ok(fetchModel.includes(`fetch ${file} `), `scripts/fetch-model fetches ${file}`);
    const { state, problems } = decodeState(modelLink(model));
    assert.deepEqual(problems, []);
    assert.deepEqual(state, { ...defaultState(), model });
  }
});
