// The playground page: loads a model into an engine (a Web Worker running the wasm, see
// worker.ts), shows its prediction as loaded and as quantized side by side, lets the user change
// the quantizer and see the metrics and the outlier views follow, and keeps the whole setup in the
// URL so that a link reproduces it.
//
// This file only wires the parts together: the state lives in the store (store.ts), every control
// and panel is a module in the list of controls/index.ts, the refresh pipeline (refresh.ts)
// recomputes what a change made stale, and the loader (loader.ts) swaps engines.

import './style.css';
import type { PageActions } from './controls/control';
import { CONTROLS } from './controls/index';
import { dismissible, hide, showNotice } from './dom';
import { shareLink, writeHash } from './link';
import { Loader, sourceFor } from './loader';
import { RefreshPipeline } from './refresh';
import { Store } from './store';
import { decodeState, encodeState, type AppState } from './url-state';

const store = new Store();
const pipeline = new RefreshPipeline(store, CONTROLS);
const enable = (on: boolean) => CONTROLS.forEach((c) => c.enable?.(store, on));
const loader = new Loader(
  store,
  CONTROLS.flatMap((c) => (c.engine ? [c.engine] : [])),
  enable,
);

/** Puts a state on the page (a link, a history row) and recomputes; loads the model if it differs. */
function restore(next: AppState, initial = false): void {
  const modelChanged = initial || next.model !== store.state.model;
  store.replace(next);
  if (modelChanged) {
    const { name, source } = sourceFor(next.model);
    void loader.load(name, source, next.model);
  } else {
    store.changedAt = performance.now();
    pipeline.settingsChanged();
  }
}

const page: PageActions = {
  refresh: () => pipeline.request(),
  loadModel: (name, source, modelKey) => loader.load(name, source, modelKey),
  restore: (state) => restore(state),
  shareLink: () => shareLink(store.state),
};

function showUrlProblems(problems: string[]): void {
  if (problems.length === 0) hide('url-notice');
  else showNotice('url-notice', null, `${problems.join('; ')}.`);
}

for (const control of CONTROLS) control.mount(store, page);
store.subscribe((change) => {
  writeHash(store.state);
  if (change === 'restored' || change === 'loaded') CONTROLS.forEach((c) => c.render?.(store));
  if (change === 'loaded') {
    enable(true);
    pipeline.loaded();
  }
  if (change === 'settings') pipeline.settingsChanged();
});
enable(false);
dismissible('url-notice');

window.addEventListener('hashchange', () => {
  if (location.hash.replace(/^#/, '') === encodeState(store.state)) return;
  const decoded = decodeState(location.hash);
  showUrlProblems(decoded.problems);
  restore(decoded.state);
});

const decoded = decodeState(location.hash);
showUrlProblems(decoded.problems);
restore(decoded.state, true);
