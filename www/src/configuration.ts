// A configuration of the model (url-state.ts `Configuration`: the weights' recipe, run-time
// quantization, the intervention) as the page names it and as the engine takes it: the history's
// columns, a pinned reference's label, and the recipe sent to `applyRecipe` or `pinReference`.
// Pure: the unit tests run it without a DOM.

import type { PinRequest, RuntimeQuantConfig } from './messages';
import { buildRecipe, describeRecipe, parseRecipeText, recipeJson } from './recipe';
import type { Configuration } from './url-state';

/** The recipe as the engine takes it (JSON, or one scheme name); throws on a bad free recipe. */
export function configurationRecipe(c: Configuration, layers?: number): string {
  if (c.recipeMode === 'json') {
    const parsed = parseRecipeText(c.recipeText);
    return typeof parsed === 'string' ? parsed : recipeJson(parsed);
  }
  return recipeJson(buildRecipe(c.weights, layers));
}

/** The weights in a few words: the free recipe on one line, or what the controls set ("int4 everywhere"). */
export function describeWeights(c: Configuration): string {
  return c.recipeMode === 'json' ? c.recipeText.replace(/\s+/g, ' ') : describeRecipe(buildRecipe(c.weights));
}

/** "A int8-tensor · KV int4-token · smoothquant (64 tok)", or "none". */
export function describeRuntime(r: RuntimeQuantConfig): string {
  const parts: string[] = [];
  if (r.a) parts.push(`A ${r.a}`);
  if (r.aDown) parts.push(`A-down ${r.aDown}`);
  if (r.kv) parts.push(`KV ${r.kv}`);
  if (r.attn) parts.push(`attn ${r.attn}`);
  if (r.method) parts.push(`${r.method} (${r.calibTokens} tok)`);
  return parts.join(' · ') || 'none';
}

/** The whole configuration in a few words, leaving out what it does not set ("as loaded" when nothing). */
export function describeConfiguration(c: Configuration): string {
  const weights = describeWeights(c);
  const runtime = describeRuntime(c.runtime);
  const parts = [
    ...(weights === 'as loaded' ? [] : [weights]),
    ...(runtime === 'none' ? [] : [runtime]),
    ...(c.intervention ? [c.intervention] : []),
  ];
  return parts.join(' · ') || 'as loaded';
}

/** What `pinReference` takes for `c`; throws on a bad free recipe. */
export function pinRequest(c: Configuration, layers?: number): PinRequest {
  return {
    label: describeConfiguration(c),
    recipe: configurationRecipe(c, layers),
    runtime: c.runtime,
    intervention: c.intervention,
  };
}
