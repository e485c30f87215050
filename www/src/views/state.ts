// The views' state: completing and clamping what the URL or the shell hands in, and which data a
// change makes stale. Pure, unit-tested.

import { defaultTensor } from './shape.ts';
import { VIEW_IDS, type ViewMenus, type ViewState } from './types.ts';

export const DEFAULT_STATE: ViewState = {
  view: 'residual-heatmap',
  layer: 0,
  point: 'residual',
  head: -1,
  tensor: '',
  rule: 'systematic',
};

/** Clamps and completes a partial state; unknown values fall back to the defaults. */
export function normalizeState(
  s: Partial<ViewState>,
  base: ViewState,
  layers: number,
  tensors: readonly string[],
  menus: ViewMenus,
): ViewState {
  const int = (v: unknown, fallback: number) => (typeof v === 'number' && Number.isInteger(v) ? v : fallback);
  const layer = Math.max(0, Math.min(Math.max(0, layers - 1), int(s.layer, base.layer)));
  const point = menus.points.includes(s.point as never) ? (s.point as string) : base.point;
  const tensor =
    s.tensor && tensors.includes(s.tensor)
      ? s.tensor
      : tensors.includes(base.tensor)
        ? base.tensor
        : defaultTensor(tensors);
  return {
    view: VIEW_IDS.includes(s.view as never) ? (s.view as string) : base.view,
    layer,
    point,
    head: Math.max(-1, int(s.head, base.head)),
    tensor,
    rule: menus.rules.includes(s.rule as never) ? (s.rule as string) : base.rule,
  };
}

/** Which data a state change makes stale. */
export type Need = 'probe' | 'attention' | 'weights' | 'report';

export function needsOf(before: ViewState, after: ViewState): Set<Need> {
  const needs = new Set<Need>();
  if (before.layer !== after.layer || before.point !== after.point) needs.add('probe');
  if (before.layer !== after.layer) needs.add('attention');
  if (before.tensor !== after.tensor) needs.add('weights');
  if (before.rule !== after.rule) needs.add('report');
  return needs;
}

/** Fetched results by key; a rejected fetch is forgotten so that it can be retried. */
export class Cache<T> {
  private readonly entries = new Map<string, Promise<T>>();

  get(key: string, fetch: () => Promise<T>): Promise<T> {
    let p = this.entries.get(key);
    if (!p) {
      p = fetch();
      this.entries.set(key, p);
      const pending = p;
      // Only this fetch's own entry: after a clear() the key may hold a newer one.
      pending.catch(() => {
        if (this.entries.get(key) === pending) this.entries.delete(key);
      });
    }
    return p;
  }

  clear(): void {
    this.entries.clear();
  }
}
