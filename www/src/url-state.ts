// The page's whole state in the URL's hash, so a link reproduces a view: `#` + URL search params,
// one readable key per setting, only those that differ from the defaults. Structured settings (the
// weight controls, runtime quantization, the views' state) are JSON in their key. A pinned
// reference (`pin`) is a configuration too: one JSON object holding the same keys with the same
// values as the current configuration's (`recipe` or `weights`, `runtime`, `intervene`).
//
// Decoding never throws: a malformed or unknown value is dropped with a message saying which, and
// the rest of the link still applies.

import { BLOCK_CLASSES, defaultWeightControls, type BlockClass, type LayerGroup, type WeightControls } from './recipe';
import type { RuntimeQuantConfig } from './messages';

export const DEFAULT_MODEL = 'models/SmolLM2-135M-Instruct.Q4_1.gguf';
/** The models scripts/fetch-model puts in models/ (served there by scripts/serve and Vite), to pick from. */
export const SERVED_MODELS: readonly { label: string; model: string; terms: string }[] = [
  { label: 'SmolLM2 135M', model: DEFAULT_MODEL, terms: 'Apache-2.0' },
  {
    label: 'Gemma 3 270M',
    model: 'models/gemma-3-270m-q4_k_m.gguf',
    terms: 'the Gemma Terms of Use (ai.google.dev/gemma/terms) and its Prohibited Use Policy',
  },
];
export const DEFAULT_PROMPT = 'The capital of France is';
export const DEFAULT_EVAL_TOKENS = 64;
export const EVAL_TOKEN_CHOICES = [16, 32, 64, 128, 256, 512] as const;

/** The views' state (ViewState of views/index.ts), kept as given: the views module checks it. */
export interface SharedViewState {
  view?: string;
  layer?: number;
  point?: string;
  head?: number;
  tensor?: string;
  rule?: string;
}

/** A configuration of the model: what the quantizer card sets, and what a pinned reference holds. */
export interface Configuration {
  recipeMode: 'controls' | 'json';
  weights: WeightControls;
  /** The free recipe text (recipeMode 'json'). */
  recipeText: string;
  runtime: RuntimeQuantConfig;
  /** "" (none), "zero-massive", "mean-massive", "drop-sink" or "clip:P". */
  intervention: string;
}

export interface AppState extends Configuration {
  /** A served URL (relative to the page) or `local:NAME` (a file opened from disk, cached here). */
  model: string;
  prompt: string;
  /** The configuration every comparison is made against; null: the model as loaded. */
  pin: Configuration | null;
  evalTokens: number;
  /** Tokens per evaluation window; null: one window over the whole evaluation. */
  evalWindow: number | null;
  /** The outlier views are open (they are computed only then). */
  outliers: boolean;
  view: SharedViewState;
}

/** A copy of the configuration part of `state`, shared with nothing (the controls change the state in place). */
export function configurationOf(state: Configuration): Configuration {
  const { recipeMode, weights, recipeText, runtime, intervention } = state;
  return structuredClone({ recipeMode, weights, recipeText, runtime, intervention });
}

export function defaultRuntime(): RuntimeQuantConfig {
  // 32 calibration tokens: the engine's own default, since calibration runs single-threaded in wasm.
  return { a: null, aDown: null, kv: null, attn: null, method: null, calibTokens: 32 };
}

export function defaultState(): AppState {
  return {
    model: DEFAULT_MODEL,
    prompt: DEFAULT_PROMPT,
    recipeMode: 'controls',
    weights: defaultWeightControls(),
    recipeText: '',
    runtime: defaultRuntime(),
    intervention: '',
    pin: null,
    evalTokens: DEFAULT_EVAL_TOKENS,
    evalWindow: null,
    outliers: false,
    view: {},
  };
}

/** The link (a hash) that opens `model` with every other setting at its default. */
export function modelLink(model: string): string {
  return `#${encodeState({ ...defaultState(), model })}`;
}

/** The keys a link may hold, one per setting. */
const SETTING_KEYS = new Set([
  'model',
  'prompt',
  'recipe',
  'weights',
  'runtime',
  'intervene',
  'pin',
  'tokens',
  'window',
  'outliers',
  'view',
]);

const VIEW_KEYS = ['view', 'layer', 'point', 'head', 'tensor', 'rule'] as const;

const INTERVENTION = /^(zero-massive|mean-massive|drop-sink|clip:\d+(\.\d+)?)$/;

/** The hash (without '#') for `state`; empty for the defaults. */
export function encodeState(state: AppState): string {
  const d = defaultState();
  const p = new URLSearchParams();
  if (state.model !== d.model) p.set('model', state.model);
  if (state.prompt !== d.prompt) p.set('prompt', state.prompt);
  const { recipe, weights, runtime, intervene } = configurationEntries(state);
  if (recipe !== undefined) p.set('recipe', recipe);
  if (weights !== undefined) p.set('weights', JSON.stringify(weights));
  if (runtime !== undefined) p.set('runtime', JSON.stringify(runtime));
  if (intervene !== undefined) p.set('intervene', intervene);
  if (state.pin !== null) p.set('pin', JSON.stringify(configurationEntries(state.pin)));
  if (state.evalTokens !== d.evalTokens) p.set('tokens', String(state.evalTokens));
  if (state.evalWindow !== null) p.set('window', String(state.evalWindow));
  if (state.outliers) p.set('outliers', '1');
  // A fixed key order, so that the same view state always gives the same link.
  const view = Object.fromEntries(
    VIEW_KEYS.map((k) => [k, state.view[k]] as const).filter(([, v]) => v !== undefined && v !== ''),
  );
  if (Object.keys(view).length > 0) p.set('view', JSON.stringify(view));
  return p.toString();
}

/** A configuration's keys of the link, with their values: only those that differ from the defaults. */
interface ConfigurationEntries {
  recipe?: string;
  weights?: WeightControls;
  runtime?: RuntimeQuantConfig;
  intervene?: string;
}

function configurationEntries(c: Configuration): ConfigurationEntries {
  const d = defaultState();
  const out: ConfigurationEntries = {};
  if (c.recipeMode === 'json') out.recipe = c.recipeText;
  else if (JSON.stringify(compactWeights(c.weights)) !== JSON.stringify(compactWeights(d.weights)))
    out.weights = compactWeights(c.weights);
  if (JSON.stringify(c.runtime) !== JSON.stringify(d.runtime)) out.runtime = c.runtime;
  if (c.intervention !== '') out.intervene = c.intervention;
  return out;
}

/** Drops empty choices so that equal settings encode the same. */
function compactWeights(w: WeightControls): WeightControls {
  return {
    groups: w.groups.map((g) => ({
      layers: g.layers.trim(),
      schemes: Object.fromEntries(
        BLOCK_CLASSES.filter((c) => (g.schemes[c] ?? '') !== '').map((c) => [c, g.schemes[c]]),
      ),
    })),
    embeddings: w.embeddings,
    output: w.output,
  };
}

export interface Decoded {
  state: AppState;
  /** What was ignored and why, for a notice on the page. */
  problems: string[];
}

/** The state a hash describes, on top of the defaults. Accepts the hash with or without '#'. */
export function decodeState(hash: string): Decoded {
  const state = defaultState();
  const problems: string[] = [];
  const p = new URLSearchParams(hash.replace(/^#/, ''));
  for (const key of p.keys()) if (!SETTING_KEYS.has(key)) problems.push(`unknown setting "${key}"`);

  const model = p.get('model');
  if (model !== null) {
    if (model.trim() === '') problems.push('model: empty');
    else state.model = model;
  }
  const prompt = p.get('prompt');
  if (prompt !== null) state.prompt = prompt;

  const parsed = (key: string) => {
    const text = p.get(key);
    return text === null ? undefined : parseJson(text, key, problems);
  };
  readConfiguration(
    state,
    {
      recipe: p.get('recipe') ?? undefined,
      weights: parsed('weights'),
      runtime: parsed('runtime'),
      intervene: p.get('intervene') ?? undefined,
    },
    '',
    problems,
  );
  const pin = parsed('pin');
  if (pin !== undefined) state.pin = readPin(pin, problems);
  state.evalTokens = tokenCount(p, 'tokens', problems) ?? state.evalTokens;
  state.evalWindow = tokenCount(p, 'window', problems) ?? state.evalWindow;
  const outliers = p.get('outliers');
  if (outliers !== null) state.outliers = outliers === '1' || outliers === 'true';
  const view = p.get('view');
  if (view !== null) {
    const v = parseJson(view, 'view', problems);
    if (v !== undefined) {
      const checked = checkView(v);
      if (typeof checked === 'string') problems.push(`view: ${checked}`);
      else state.view = checked;
    }
  }
  return { state, problems };
}

const CONFIGURATION_KEYS: readonly (keyof ConfigurationEntries)[] = ['recipe', 'weights', 'runtime', 'intervene'];

/**
 * The pinned configuration of a link's `pin` (parsed), or null with the problems found: half a
 * reference would compare with something nobody pinned, so it is all of it or the model as loaded.
 */
function readPin(value: unknown, problems: string[]): Configuration | null {
  if (!isObject(value)) {
    problems.push('pin: not an object');
    return null;
  }
  const before = problems.length;
  for (const key of Object.keys(value))
    if (!(CONFIGURATION_KEYS as readonly string[]).includes(key)) problems.push(`pin: unknown setting "${key}"`);
  const pin = configurationOf(defaultState());
  readConfiguration(pin, value, 'pin: ', problems);
  return problems.length === before ? pin : null;
}

/**
 * Reads a configuration's entries (the link's own keys, or those inside `pin`, with the JSON ones
 * already parsed; undefined where absent) into `into`; a bad value is left out with a problem
 * named `where` + its key.
 */
function readConfiguration(
  into: Configuration,
  entries: Partial<Record<keyof ConfigurationEntries, unknown>>,
  where: string,
  problems: string[],
): void {
  const { recipe, weights, runtime, intervene } = entries;
  if (recipe !== undefined) {
    if (typeof recipe !== 'string') {
      problems.push(`${where}recipe: not a recipe or a scheme name`);
    } else {
      into.recipeMode = 'json';
      into.recipeText = recipe;
    }
  }
  if (weights !== undefined) {
    const checked = checkWeights(weights);
    if (typeof checked === 'string') problems.push(`${where}weights: ${checked}`);
    else into.weights = checked;
  }
  if (runtime !== undefined) {
    const checked = checkRuntime(runtime);
    if (typeof checked === 'string') problems.push(`${where}runtime: ${checked}`);
    else into.runtime = checked;
  }
  if (intervene !== undefined) {
    if (typeof intervene === 'string' && INTERVENTION.test(intervene)) into.intervention = intervene;
    else
      problems.push(
        `${where}intervene: ${JSON.stringify(intervene)} is not zero-massive, mean-massive, drop-sink or clip:P`,
      );
  }
}

/** The token count under `key` (a whole number from 2 to 4096), or null: absent, or a problem. */
function tokenCount(p: URLSearchParams, key: string, problems: string[]): number | null {
  const text = p.get(key);
  if (text === null) return null;
  const n = Number(text);
  if (Number.isInteger(n) && n >= 2 && n <= 4096) return n;
  problems.push(`${key}: "${text}" is not a whole number from 2 to 4096`);
  return null;
}

function parseJson(text: string, key: string, problems: string[]): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    problems.push(`${key}: not valid JSON (${(e as Error).message})`);
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const SCHEME_NAME = /^[A-Za-z0-9_.:+-]*$/;

function checkWeights(v: unknown): WeightControls | string {
  if (!isObject(v)) return 'not an object';
  if (!Array.isArray(v.groups) || v.groups.length === 0) return '"groups" must be a non-empty list';
  const groups: LayerGroup[] = [];
  for (const [i, g] of v.groups.entries()) {
    if (!isObject(g)) return `group ${i + 1} is not an object`;
    if (typeof g.layers !== 'string' || !/^\s*(\d+(\s*-\s*\d+)?)?\s*$/.test(g.layers))
      return `group ${i + 1}: layers must be "", "N" or "A-B"`;
    if (!isObject(g.schemes)) return `group ${i + 1}: "schemes" must be an object`;
    const schemes: Partial<Record<BlockClass, string>> = {};
    for (const [k, s] of Object.entries(g.schemes)) {
      if (!(BLOCK_CLASSES as readonly string[]).includes(k)) return `group ${i + 1}: unknown tensor class "${k}"`;
      if (typeof s !== 'string' || !SCHEME_NAME.test(s)) return `group ${i + 1}: ${k} has no valid scheme name`;
      schemes[k as BlockClass] = s;
    }
    groups.push({ layers: g.layers, schemes });
  }
  const embeddings = v.embeddings ?? '';
  const output = v.output ?? '';
  if (typeof embeddings !== 'string' || !SCHEME_NAME.test(embeddings)) return '"embeddings" has no valid scheme name';
  if (typeof output !== 'string' || !SCHEME_NAME.test(output)) return '"output" has no valid scheme name';
  return { groups, embeddings, output };
}

function checkRuntime(v: unknown): RuntimeQuantConfig | string {
  if (!isObject(v)) return 'not an object';
  const out = defaultRuntime();
  for (const key of ['a', 'aDown', 'kv', 'attn', 'method'] as const) {
    const s = v[key];
    if (s === undefined || s === null) continue;
    if (typeof s !== 'string' || !SCHEME_NAME.test(s)) return `"${key}" must be a scheme name or null`;
    out[key] = s;
  }
  if (v.calibTokens !== undefined) {
    const n = v.calibTokens;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 2 || n > 4096)
      return '"calibTokens" must be a whole number from 2 to 4096';
    out.calibTokens = n;
  }
  return out;
}

function checkView(v: unknown): SharedViewState | string {
  if (!isObject(v)) return 'not an object';
  const out: SharedViewState = {};
  for (const key of ['view', 'point', 'tensor', 'rule'] as const) {
    if (v[key] === undefined) continue;
    if (typeof v[key] !== 'string') return `"${key}" must be a string`;
    out[key] = v[key] as string;
  }
  for (const key of ['layer', 'head'] as const) {
    if (v[key] === undefined) continue;
    if (typeof v[key] !== 'number' || !Number.isInteger(v[key])) return `"${key}" must be a whole number`;
    out[key] = v[key] as number;
  }
  return out;
}
