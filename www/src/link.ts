// The page's address carries its state (url-state.ts): kept up to date as settings change, and
// given out whole by Copy link and in each history row.

import { encodeState, type AppState } from './url-state';

export function writeHash(state: AppState): void {
  const hash = encodeState(state);
  const url = `${location.pathname}${location.search}${hash ? `#${hash}` : ''}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) window.history.replaceState(null, '', url);
}

export function shareLink(state: AppState): string {
  const hash = encodeState(state);
  return `${location.origin}${location.pathname}${location.search}${hash ? `#${hash}` : ''}`;
}
