// The outlier views (views/): shown or hidden, mounted on each model that runs on WebGPU, fed by
// the engine, and updated by the refresh pipeline only while shown.

import { $, showNotice } from '../dom';
import type { Engine } from '../engine';
import { tensorClass } from '../recipe';
import type { Store } from '../store';
import { mountOutlierViews, type OutlierViews, type ViewDataSource, type ViewState } from '../views/index';
import type { SharedViewState } from '../url-state';
import type { Control, PageActions } from './control';

let views: OutlierViews | null = null;

/** The scheme a matrix holds now ("keep": as loaded), or null before any recipe was applied. */
function schemeOf(store: Store, tensor: string): string | null {
  return store.loaded?.applied?.tensors.find((t) => t.name === tensor)?.scheme ?? null;
}

function source(store: Store): ViewDataSource {
  const engine = (): Engine => {
    if (!store.loaded) throw new Error('no model is loaded');
    return store.loaded.engine;
  };
  return {
    probe: (prompt, asLoaded, layer, point) => engine().run('probe', { prompt, asLoaded, layer, point }),
    attentionMaps: (prompt, layer, asLoaded) => engine().run('attentionMaps', { prompt, layer, asLoaded }),
    // The histogram shows the grid of the scheme the tensor holds now: `update` passes the scheme of
    // the tensor chosen then, and the user may pick another tensor, of another class, since.
    weightStats: (tensor, scheme) => engine().run('weightStats', { tensor, scheme: schemeOf(store, tensor) ?? scheme }),
    outlierReport: (prompt, rule) => engine().run('outlierReport', { prompt, rule }),
    tensorNames: () =>
      (store.loaded?.summary.tensors ?? [])
        .filter((t) => t.shape.length >= 2 && tensorClass(t.name) !== null)
        .map((t) => t.name),
    menus: () => ({ points: store.loaded?.caps.probePoints ?? [], rules: store.loaded?.caps.outlierRules ?? [] }),
  };
}

function mountViews(store: Store): void {
  const root = $('outliers-root');
  views = null;
  root.replaceChildren();
  if (!store.gpu) return;
  try {
    views = mountOutlierViews(root, source(store), store.state.view as Partial<ViewState>, (s) =>
      store.update((state) => (state.view = { ...s }), 'saved'),
    );
  } catch (e) {
    showNotice('outliers-error', null, (e as Error).message);
  }
}

function showOpen(open: boolean): void {
  $('outliers').dataset.open = String(open);
  $('outliers-root').hidden = !open;
  const toggle = $('outliers-toggle');
  toggle.setAttribute('aria-expanded', String(open));
  toggle.textContent = open ? 'Hide the outlier views' : 'Show the outlier views';
}

export const outliers: Control = {
  mount(store, page) {
    $('outliers-toggle').addEventListener('click', () => {
      store.update((s) => (s.outliers = !s.outliers), 'saved');
      showOpen(store.state.outliers);
      if (store.state.outliers) page.refresh();
    });
    store.subscribe((change) => {
      if (change === 'loaded') mountViews(store);
      else if (change === 'restored' && views) void views.setState(store.state.view as Partial<ViewState>);
    });
  },

  render(store) {
    showOpen(store.state.outliers);
  },

  enable(store, on) {
    $('outliers-toggle').toggleAttribute('disabled', !(on && store.gpu));
  },
};

/** Opens the outlier views on `view` (a view and its layer): what another panel points at. */
export function showOutlierView(store: Store, page: PageActions, view: SharedViewState): void {
  store.update((s) => {
    s.outliers = true;
    s.view = { ...s.view, ...view };
  }, 'saved');
  showOpen(true);
  if (views) void views.setState(store.state.view as Partial<ViewState>);
  $('outliers').scrollIntoView({ behavior: 'smooth', block: 'start' });
  page.refresh();
}

/** The views are shown, and mounted on the loaded model. */
export const viewsOpen = (store: Store): boolean => store.state.outliers && views !== null && store.loaded !== null;

/** Redraws the open views for the store's prompt. */
export async function updateViews(store: Store): Promise<void> {
  if (!views || !store.loaded) return;
  const { model, summary } = store.loaded;
  // The scheme per tensor, so a tensor picked in the views shows its own grid; the model key lets
  // the views keep what depends only on the weights as loaded.
  await views.update(store.state.prompt, (tensor) => schemeOf(store, tensor) ?? 'keep', `${model}|${summary.bytes}`);
}
