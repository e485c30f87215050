// From the quantizer controls to a recipe (src/quant/recipe.rs, the README's JSON): a scheme per
// tensor class, for all layers or for a layer range, plus the embeddings and the output head.
//
// The controls are a list of layer groups. The first covers every layer; each later one covers a
// range and, like the recipe's rules (read in order, later wins), overrides the groups before it
// for the classes it sets. A class left empty in a group is not touched by that group.

export const BLOCK_CLASSES = ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'] as const;
export type BlockClass = (typeof BLOCK_CLASSES)[number];

export const CLASS_LABELS: Record<BlockClass, string> = {
  attn_q: 'Q',
  attn_k: 'K',
  attn_v: 'V',
  attn_output: 'O',
  ffn_gate: 'gate',
  ffn_up: 'up',
  ffn_down: 'down',
};

/** A scheme name, "keep" (as loaded), or "" (this group leaves the class alone). */
export type SchemeChoice = string;

export interface LayerGroup {
  /** "" for every layer, else "N" or "A-B" (inclusive). */
  layers: string;
  schemes: Partial<Record<BlockClass, SchemeChoice>>;
}

export interface WeightControls {
  groups: LayerGroup[];
  /** token_embd.weight; "" or "keep" leaves it as loaded. */
  embeddings: SchemeChoice;
  /** output.weight (absent when the head is tied to the embeddings). */
  output: SchemeChoice;
}

export interface RecipeRule {
  tensors: string;
  layers?: string;
  scheme: string;
}

export interface Recipe {
  default: string;
  rules: RecipeRule[];
}

export function defaultWeightControls(): WeightControls {
  return { groups: [{ layers: '', schemes: {} }], embeddings: '', output: '' };
}

/** Every class of every group, the embeddings and the head at `scheme` (the "all weights" switch). */
export function uniformControls(scheme: SchemeChoice): WeightControls {
  const schemes: Partial<Record<BlockClass, SchemeChoice>> = {};
  for (const c of BLOCK_CLASSES) schemes[c] = scheme;
  return { groups: [{ layers: '', schemes }], embeddings: scheme, output: scheme };
}

/** The one scheme every weight gets, when the controls say so; else null (a mixed setting). */
export function uniformScheme(c: WeightControls): SchemeChoice | null {
  if (c.groups.length !== 1 || c.groups[0].layers !== '') return null;
  const all = [...BLOCK_CLASSES.map((k) => c.groups[0].schemes[k] ?? ''), c.embeddings, c.output].map(normalize);
  return all.every((s) => s === all[0]) ? all[0] : null;
}

const normalize = (s: SchemeChoice) => (s === '' ? 'keep' : s);

export class LayerRangeError extends Error {
  override name = 'LayerRangeError';
}

/**
 * Checks a layer range against the model's layer count: "" (all), "N" or "A-B" with A ≤ B <
 * layers. Throws a LayerRangeError saying what is wrong.
 */
export function checkLayerRange(range: string, layers: number): { from: number; to: number } {
  const text = range.trim();
  if (text === '') return { from: 0, to: layers - 1 };
  const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(text);
  if (!m) throw new LayerRangeError(`layer range "${range}" is not N or A-B (e.g. 0-5)`);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from > to) throw new LayerRangeError(`layer range "${range}" starts after it ends`);
  if (to >= layers) throw new LayerRangeError(`layer range "${range}" goes past the last layer (${layers - 1})`);
  return { from, to };
}

/**
 * The recipe the controls describe. Nothing set gives `{default: "keep", rules: []}` (the model as
 * loaded). Layer ranges are checked when `layers` is given (throws LayerRangeError).
 */
export function buildRecipe(c: WeightControls, layers?: number): Recipe {
  const rules: RecipeRule[] = [];
  c.groups.forEach((group, i) => {
    const range = group.layers.trim();
    if (layers !== undefined && (i > 0 || range !== '')) checkLayerRange(range, layers);
    for (const cls of BLOCK_CLASSES) {
      const scheme = group.schemes[cls] ?? '';
      if (scheme === '') continue;
      const rule: RecipeRule = { tensors: `blk.*.${cls}.weight`, scheme };
      if (range !== '') rule.layers = range.replace(/\s+/g, '');
      rules.push(rule);
    }
  });
  if (c.embeddings !== '') rules.push({ tensors: 'token_embd.weight', scheme: c.embeddings });
  if (c.output !== '') rules.push({ tensors: 'output.weight', scheme: c.output });
  // A recipe with one scheme everywhere reads better as its default.
  const uniform = uniformScheme(c);
  if (uniform !== null && c.groups[0].layers === '') return { default: uniform, rules: [] };
  return { default: 'keep', rules };
}

export function recipeJson(recipe: Recipe): string {
  return JSON.stringify(recipe);
}

/** The recipe that quantizes only `tensor` with `scheme` (a sensitivity map's cell; src/study/sensitivity.rs). */
export function singleTensorRecipe(tensor: string, scheme: string): Recipe {
  return { default: 'keep', rules: [{ tensors: tensor, scheme }] };
}

/** A recipe as the engine takes it (JSON, or one scheme name for every weight) as a recipe object, for a file. */
export function recipeObject(sent: string): Recipe {
  const parsed = parseRecipeText(sent);
  return typeof parsed === 'string' ? { default: parsed, rules: [] } : parsed;
}

/**
 * A short label of a recipe for the history table: "int4-g128-asym everywhere", or the classes
 * and ranges set ("attn_q int2 · ffn_down@0-3 q8_0"), or "as loaded".
 */
export function describeRecipe(recipe: Recipe): string {
  const parts: string[] = [];
  if (recipe.default !== 'keep')
    parts.push(recipe.rules.length ? `default ${recipe.default}` : `${recipe.default} everywhere`);
  for (const r of recipe.rules) {
    const what = r.tensors.replace(/^blk\.\*\./, '').replace(/\.weight$/, '');
    parts.push(`${what}${r.layers ? `@${r.layers}` : ''} ${r.scheme}`);
  }
  return parts.length ? parts.join(' · ') : 'as loaded';
}

/**
 * Reads a free recipe typed by the user: a JSON object with a string `default` (optional) and
 * `rules` of {tensors, layers?, scheme}, or one scheme name. Throws an Error saying what is wrong;
 * the engine checks the scheme names themselves.
 */
export function parseRecipeText(text: string): Recipe | string {
  const trimmed = text.trim();
  if (trimmed === '') throw new Error('the recipe is empty');
  if (!trimmed.startsWith('{')) {
    if (/\s/.test(trimmed)) throw new Error(`"${trimmed}" is neither a recipe (JSON) nor one scheme name`);
    return trimmed;
  }
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (e) {
    throw new Error(`the recipe is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const o = value as Record<string, unknown>;
  const known = new Set(['default', 'rules']);
  for (const k of Object.keys(o)) if (!known.has(k)) throw new Error(`the recipe has an unknown field "${k}"`);
  if (o.default !== undefined && typeof o.default !== 'string')
    throw new Error('the recipe\'s "default" must be a scheme name');
  const rules = o.rules ?? [];
  if (!Array.isArray(rules)) throw new Error('the recipe\'s "rules" must be a list');
  const out: RecipeRule[] = rules.map((r: unknown, i: number) => {
    const rule = r as Record<string, unknown>;
    if (typeof rule !== 'object' || rule === null) throw new Error(`rule ${i + 1} is not an object`);
    if (typeof rule.tensors !== 'string') throw new Error(`rule ${i + 1} needs "tensors" (a name glob)`);
    if (typeof rule.scheme !== 'string') throw new Error(`rule ${i + 1} needs "scheme"`);
    if (rule.layers !== undefined && typeof rule.layers !== 'string')
      throw new Error(`rule ${i + 1}'s "layers" must be a string like "0-5"`);
    const res: RecipeRule = { tensors: rule.tensors, scheme: rule.scheme };
    if (typeof rule.layers === 'string') res.layers = rule.layers;
    return res;
  });
  return { default: (o.default as string | undefined) ?? 'keep', rules: out };
}

/** The tensor class of a matrix name ("blk.3.ffn_down.weight" → "ffn_down"), or null. */
export function tensorClass(name: string): BlockClass | 'token_embd' | 'output' | null {
  if (name === 'token_embd.weight') return 'token_embd';
  if (name === 'output.weight') return 'output';
  const m = /^blk\.\d+\.([a-z_]+)\.weight$/.exec(name);
  return m && (BLOCK_CLASSES as readonly string[]).includes(m[1]) ? (m[1] as BlockClass) : null;
}
