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

/** The interventions' catalog, or none where the build has no `interventions()` (the menu then offers none). */
export function interventionsCapability(exports: object): InterventionInfo[] {
  const list = (exports as Lookup).interventions;
  if (typeof list !== 'function') return [];
  try {
    const value: unknown = list();
    if (Array.isArray(value) && value.every((v) => typeof v?.name === 'string' && typeof v?.label === 'string'))
      return value as InterventionInfo[];
    console.warn('quantscope: interventions() answered an unexpected shape; no interventions offered', value);
  } catch (e) {
    console.warn('quantscope: interventions() failed; no interventions offered', e);
  }
  return [];
}

export function capabilities(version: string, schemes: SchemeInfo[], exports: object, prototype: object): Capabilities {
  return {
    version,
    schemes,
    runtime: runtimeCapability(exports, prototype),
    interventions: interventionsCapability(exports),
    views: {
      attentionMaps: optionalMethod(prototype, 'attentionMaps') !== null,
      weightStats: optionalMethod(prototype, 'weightStats') !== null,
      outlierReport: optionalMethod(prototype, 'outlierReport') !== null,
    },
  };
}
