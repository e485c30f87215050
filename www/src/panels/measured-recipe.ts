// A recipe for a bits-per-weight budget, chosen from measurements (the engine's
// `allocateByMeasurement`, src/study/allocation.rs): one sensitivity map per rung of a ladder of
// schemes on the matrices and tokens the map's fields name, then the greedy descent that gives up
// the bits whose measured KL is cheapest. The recipe is shown, then applied on request through
// the recipe, so it lands in the link and the history like any other setting. Like the map, it
// measures against the model as loaded, so it waits while a configuration is pinned.

import { $, hide, ProgressBar, showNotice } from '../dom';
import type { Engine } from '../engine';
import type { AllocationConfig, MeasuredRecipe } from '../messages';
import { describeAllocation, ladderOf } from '../measured-recipe';
import { describeRecipe, recipeJson, recipeObject } from '../recipe';
import type { Store } from '../store';
import type { Control, PageActions } from '../controls/control';

let progress: ProgressBar;
let running: { eng: Engine; id: number; cancelled: boolean } | null = null;
/** The recipe found last (canonical JSON), for Apply. */
let found: string | null = null;

function setState(state: 'idle' | 'running' | 'done' | 'cancelled' | 'error'): void {
  $('allocate').dataset.state = state;
  $('allocate-run').hidden = state === 'running';
  $('allocate-cancel').hidden = state !== 'running';
}

function showResult(r: MeasuredRecipe | null): void {
  const recipe = r ? recipeObject(r.recipe) : null;
  found = recipe ? recipeJson(recipe) : null;
  $('allocate').dataset.recipe = found ?? '';
  $('allocate-result').textContent = r && recipe ? `${describeAllocation(r)} Recipe: ${describeRecipe(recipe)}.` : '';
  $('allocate-apply').hidden = found === null;
}

async function run(store: Store): Promise<void> {
  const loaded = store.loaded;
  if (!loaded || running) return;
  const eng = loaded.engine;
  const maxTokens = Number($<HTMLSelectElement>('sensitivity-tokens').value);
  const tensors = $<HTMLInputElement>('sensitivity-tensors').value.trim();
  const config: AllocationConfig = {
    budget: Number($<HTMLInputElement>('allocate-budget').value),
    ladder: ladderOf($<HTMLInputElement>('allocate-ladder').value),
    tensors: tensors || null,
  };
  hide('allocate-error');
  showResult(null);
  setState('running');
  progress.show('measuring');
  const call = eng.call(
    'allocateByMeasurement',
    { config, maxTokens, window: maxTokens },
    {
      onProgress: (_stage, done, total) => {
        if (running?.id !== call.id) return;
        progress.update('measuring', `${done} / ${total} cells`, total > 0 ? done / total : null);
      },
    },
  );
  const mine = { eng, id: call.id, cancelled: false };
  running = mine;
  try {
    const result = await call.result;
    if (store.loaded?.engine !== eng) return;
    showResult(result);
    setState('done');
  } catch (e) {
    if (store.loaded?.engine !== eng) return;
    if (mine.cancelled) {
      setState('cancelled');
      $('allocate-result').textContent = 'Cancelled: the model is as it was.';
    } else {
      setState('error');
      showNotice('allocate-error', null, (e as Error).message);
    }
  } finally {
    running = null;
    progress.hide();
  }
}

function apply(store: Store, page: PageActions): void {
  if (found === null) return;
  page.restore({ ...store.state, recipeMode: 'json', recipeText: found });
}

/** Find is off while a configuration is pinned (the map's notice says why). */
function showPinned(store: Store): void {
  $('allocate-run').toggleAttribute('disabled', store.state.pin !== null);
}

export const measuredRecipePanel: Control = {
  mount(store, page) {
    progress = new ProgressBar($('allocate-progress'));
    $('allocate-run').addEventListener('click', () => void run(store));
    $('allocate-cancel').addEventListener('click', () => {
      if (!running) return;
      running.cancelled = true;
      running.eng.stop(running.id);
    });
    $('allocate-apply').addEventListener('click', () => apply(store, page));
    store.subscribe((change) => {
      showPinned(store);
      if (change !== 'loaded') return;
      // A new model: the recipe on screen was another model's.
      showResult(null);
      setState('idle');
    });
    setState('idle');
    showPinned(store);
  },

  enable(store, on) {
    const available = on && store.gpu && (store.loaded?.caps.study?.allocate ?? false);
    $<HTMLFieldSetElement>('allocate-fields').disabled = !available;
    $('allocate').hidden = on && !(store.loaded?.caps.study?.allocate ?? false);
  },
};
