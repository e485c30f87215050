// Which optional engine entry points a wasm build has. They arrive in separate changes to src/web
// (runtime quantization, the outlier views' methods), and the page must run on engine builds from
// before and after each of them: everything optional is looked up by name, never imported.

import type { Capabilities, InterventionInfo, RuntimeSchemes, SchemeInfo } from './messages';

type Lookup = Record<string, unknown>;

/** A method of the engine's Playground class, or null where this build lacks it. */
export function optionalMethod(prototype: object, name: string): ((...args: unknown[]) => unknown) | null {
  const f = (prototype as Lookup)[name];
  return typeof f === 'function' ? (f as (...args: unknown[]) => unknown) : null;
}

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * The runtime quantization menus, when the build has both `runtimeSchemes()` and
 * `Playground.setRuntimeQuant`, and the menus have the expected shape; else null (the page then
 * hides those controls). A build whose `runtimeSchemes()` throws or answers something else is
 * reported on the console and treated as lacking them.
 */
export function runtimeCapability(exports: object, prototype: object): RuntimeSchemes | null {
  const list = (exports as Lookup).runtimeSchemes;
  if (typeof list !== 'function' || !optionalMethod(prototype, 'setRuntimeQuant')) return null;
  let value: unknown;
  try {
    value = list();
  } catch (e) {
    console.warn('quantscope: runtimeSchemes() failed; runtime quantization is off', e);
    return null;
  }
  const v = value as Lookup | null;
  if (
    !v ||
    !isStringList(v.activations) ||
    !isStringList(v.kv) ||
    !isStringList(v.attention) ||
    !isStringList(v.methods)
  ) {
    console.warn('quantscope: runtimeSchemes() answered an unexpected shape; runtime quantization is off', value);
    return null;
  }
  return { activations: v.activations, kv: v.kv, attention: v.attention, methods: v.methods };
}

/**
 * A catalog the engine serves as `name()` (interventions, probe points, outlier rules), or an empty
 * one where the build lacks it or answers something else (reported on the console): the menu then
 * offers nothing.
 */
export function catalogCapability<T>(exports: object, name: string, valid: (v: unknown) => v is T[]): T[] {
  const list = (exports as Lookup)[name];
  if (typeof list !== 'function') return [];
  try {
    const value: unknown = list();
    if (valid(value)) return value;
    console.warn(`quantscope: ${name}() answered an unexpected shape; its menu is empty`, value);
  } catch (e) {
    console.warn(`quantscope: ${name}() failed; its menu is empty`, e);
  }
  return [];
}

const isInterventionList = (v: unknown): v is InterventionInfo[] =>
  Array.isArray(v) && v.every((i) => typeof i?.name === 'string' && typeof i?.label === 'string');

export function capabilities(version: string, schemes: SchemeInfo[], exports: object, prototype: object): Capabilities {
  return {
    version,
    schemes,
    runtime: runtimeCapability(exports, prototype),
    interventions: catalogCapability(exports, 'interventions', isInterventionList),
    probePoints: catalogCapability(exports, 'probePoints', isStringList),
    outlierRules: catalogCapability(exports, 'outlierRules', isStringList),
    views: {
      attentionMaps: optionalMethod(prototype, 'attentionMaps') !== null,
      weightStats: optionalMethod(prototype, 'weightStats') !== null,
      outlierReport: optionalMethod(prototype, 'outlierReport') !== null,
    },
    study: {
      sensitivity: optionalMethod(prototype, 'sensitivity') !== null,
      // The token view is useless without the detail of a position: both, or neither.
      tokenView:
        optionalMethod(prototype, 'tokenView') !== null && optionalMethod(prototype, 'positionDetail') !== null,
      breakage: optionalMethod(prototype, 'breakage') !== null,
      pin: optionalMethod(prototype, 'pinReference') !== null && optionalMethod(prototype, 'unpinReference') !== null,
      allocate: optionalMethod(prototype, 'allocateByMeasurement') !== null,
    },
    exportGguf: optionalMethod(prototype, 'exportGguf') !== null,
  };
}
