// The prompt: Enter (or Predict) predicts at once, typing predicts after a pause. The prediction
// and the outlier views are of this prompt.

import { $ } from '../dom';
import type { Control } from './control';

const TYPING_DEBOUNCE_MS = 350;

export const prompt: Control = {
  keys: { predict: (s) => s.prompt, views: (s) => s.prompt },

  mount(store, page) {
    const el = $<HTMLTextAreaElement>('prompt');
    let typingTimer: ReturnType<typeof setTimeout> | undefined;
    const changed = (now: boolean) => {
      clearTimeout(typingTimer);
      const go = () => {
        store.update((s) => (s.prompt = el.value), 'saved');
        page.refresh();
      };
      if (now) go();
      else typingTimer = setTimeout(go, TYPING_DEBOUNCE_MS);
    };
    $('prompt-form').addEventListener('submit', (e) => {
      e.preventDefault();
      changed(true);
    });
    el.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        changed(true);
      }
    });
    el.addEventListener('input', () => changed(false));
  },

  render(store) {
    const el = $<HTMLTextAreaElement>('prompt');
    if (el.value !== store.state.prompt) el.value = store.state.prompt;
  },
};
