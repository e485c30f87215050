// How many tokens of the shipped evaluation text the metrics run on: more is steadier, slower.

import { $, fillOptions } from '../dom';
import { EVAL_TOKEN_CHOICES } from '../url-state';
import type { Control } from './control';

export const evalTokens: Control = {
  keys: { metrics: (s) => s.evalTokens },
  evaluateArgs: (s) => ({ maxTokens: s.evalTokens }),

  mount(store) {
    const select = $<HTMLSelectElement>('eval-tokens');
    select.addEventListener('change', () => store.update((s) => (s.evalTokens = Number(select.value))));
  },

  render(store) {
    // A link may name a count that is not one of the choices: it is offered too.
    const choices = new Set<number>([...EVAL_TOKEN_CHOICES, store.state.evalTokens]);
    const select = $<HTMLSelectElement>('eval-tokens');
    fillOptions(
      select,
      [...choices].sort((a, b) => a - b).map((n) => [String(n), String(n)]),
    );
    select.value = String(store.state.evalTokens);
  },
};
