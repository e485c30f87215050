// Download recipe JSON: the weights' recipe of the current configuration as a file, in the form
// `quantscope eval --recipe` and `quantize --recipe` read (src/quant/recipe.rs). The current
// configuration is what the engine holds (what the metrics measured), not a recipe being typed
// or one the engine refused; before anything was sent, what the controls ask for.

import { downloadBlob } from '../charts';
import { $, showNotice } from '../dom';
import { recipeObject } from '../recipe';
import type { Control } from './control';
import { desiredRecipe } from './weights';

export const RECIPE_FILE = 'quantscope-recipe.json';

export const recipeDownload: Control = {
  mount(store) {
    $('recipe-download').addEventListener('click', () => {
      let recipe;
      try {
        recipe = recipeObject(store.loaded?.holds.recipe ?? desiredRecipe(store));
      } catch (e) {
        showNotice('quant-error', 'That recipe cannot be saved', `${(e as Error).message}.`);
        return;
      }
      const blob = new Blob([`${JSON.stringify(recipe, null, 2)}\n`], { type: 'application/json' });
      downloadBlob(blob, RECIPE_FILE);
    });
  },
};
