// The file name of a downloaded GGUF: `quantscope-<model>-<recipe>.gguf`, from the model as the
// link names it and the weights recipe the engine holds, so two downloads of different
// configurations do not overwrite each other, in characters every file system takes.

import { recipeObject } from './recipe';

/** What a recipe is called in the name: its one scheme, "as-loaded", or "mixed". */
function recipePart(recipe: string): string {
  let parsed;
  try {
    parsed = recipeObject(recipe);
  } catch {
    return 'mixed';
  }
  if (parsed.rules.length > 0) return 'mixed';
  return parsed.default === 'keep' ? 'as-loaded' : parsed.default;
}

/** The model's file name without its folder and extension (`local:NAME` for a file opened from disk). */
function modelPart(model: string): string {
  return model
    .replace(/^local:/, '')
    .replace(/^.*\//, '')
    .replace(/\.(gguf|safetensors)$/i, '');
}

const safe = (part: string) =>
  part
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');

/** `model` as the link names it (a served path or `local:NAME`); `recipe` as the engine holds it (null: unknown). */
export function ggufFileName(model: string, recipe: string | null): string {
  const parts = [safe(modelPart(model)) || 'model', recipe === null ? '' : safe(recipePart(recipe))];
  return `quantscope-${parts.filter((p) => p !== '').join('-')}.gguf`;
}
