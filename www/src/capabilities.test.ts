import { test } from 'node:test';
import assert from 'node:assert/strict';
import { capabilities, catalogCapability, optionalMethod, runtimeCapability } from './capabilities';

const menus = {
  activations: ['int8-tensor', 'int8-token'],
  kv: ['int4-token'],
  attention: ['uint8'],
  methods: ['smoothquant'],
};

test('a build without the runtime API: no runtime controls', () => {
  assert.equal(runtimeCapability({}, {}), null);
  assert.equal(runtimeCapability({ runtimeSchemes: () => menus }, {}), null, 'the setter is needed too');
  assert.equal(runtimeCapability({}, { setRuntimeQuant() {} }), null);
});

test('a build with it: the menus', () => {
  assert.deepEqual(runtimeCapability({ runtimeSchemes: () => menus }, { setRuntimeQuant() {} }), menus);
});

test('a broken runtimeSchemes() turns the controls off instead of breaking the page', () => {
  const warn = console.warn;
  console.warn = () => {};
  try {
    assert.equal(
      runtimeCapability(
        {
          runtimeSchemes: () => {
            throw new Error('x');
          },
        },
        { setRuntimeQuant() {} },
      ),
      null,
    );
    assert.equal(
      runtimeCapability({ runtimeSchemes: () => ({ activations: 'int8' }) }, { setRuntimeQuant() {} }),
      null,
    );
    assert.equal(runtimeCapability({ runtimeSchemes: () => ({ ...menus, kv: [1] }) }, { setRuntimeQuant() {} }), null);
  } finally {
    console.warn = warn;
  }
});

test("the views' methods are detected on the class prototype", () => {
  class Old {}
  class New {
    attentionMaps() {}
    weightStats() {}
    outlierReport() {}
  }
  assert.deepEqual(capabilities('1', [], {}, Old.prototype).views, {
    attentionMaps: false,
    weightStats: false,
    outlierReport: false,
  });
  assert.deepEqual(capabilities('1', [], {}, New.prototype).views, {
    attentionMaps: true,
    weightStats: true,
    outlierReport: true,
  });
  assert.equal(optionalMethod(New.prototype, 'weightStats'), New.prototype.weightStats);
  assert.equal(optionalMethod({ weightStats: 3 }, 'weightStats'), null);
});

test('the GGUF export is offered only by a build that has it', () => {
  class Old {}
  class New {
    exportGguf() {}
  }
  assert.equal(capabilities('1', [], {}, Old.prototype).exportGguf, false);
  assert.equal(capabilities('1', [], {}, New.prototype).exportGguf, true);
});

test('a catalog the build lacks, or answers oddly, is an empty menu', () => {
  const isNames = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const warn = console.warn;
  console.warn = () => {};
  try {
    assert.deepEqual(catalogCapability({}, 'probePoints', isNames), []);
    assert.deepEqual(catalogCapability({ probePoints: () => [1, 2] }, 'probePoints', isNames), []);
    assert.deepEqual(
      catalogCapability(
        {
          probePoints: () => {
            throw new Error('x');
          },
        },
        'probePoints',
        isNames,
      ),
      [],
    );
  } finally {
    console.warn = warn;
  }
  assert.deepEqual(catalogCapability({ probePoints: () => ['residual', 'keys'] }, 'probePoints', isNames), [
    'residual',
    'keys',
  ]);
});
