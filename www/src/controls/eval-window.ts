// How many tokens each evaluation window holds: the evaluation text is cut into windows, each run
// from an empty context. One window over the whole text (the default) measures the longest
// contexts; short windows measure what the first positions of a context do.

import { $, fillOptions } from '../dom';
import type { Control } from './control';

const WINDOW_CHOICES = [16, 32, 64, 128, 256, 512];
const WHOLE = '';

export const evalWindow: Control = {
  keys: { metrics: (s) => s.evalWindow },
  evaluateArgs: (s) => (s.evalWindow === null ? {} : { window: s.evalWindow }),

  mount(store) {
    const label = document.createElement('label');
    label.className = 'meta';
    label.textContent = 'Window ';
    const select = document.createElement('select');
    select.dataset.testid = 'eval-window';
    select.title = 'Tokens per evaluation window, each run from an empty context';
    select.addEventListener('change', () =>
      store.update((s) => (s.evalWindow = select.value === WHOLE ? null : Number(select.value))),
    );
    label.append(select);
    $('metrics-run').before(label);
  },

  render(store) {
    const select = $<HTMLSelectElement>('eval-window');
    const choices = new Set(
      store.state.evalWindow === null ? WINDOW_CHOICES : [...WINDOW_CHOICES, store.state.evalWindow],
    );
    fillOptions(select, [
      [WHOLE, 'whole text'],
      ...[...choices].sort((a, b) => a - b).map((n): [string, string] => [String(n), String(n)]),
    ]);
    select.value = store.state.evalWindow === null ? WHOLE : String(store.state.evalWindow);
  },
};
