// Picking one of the served models (SERVED_MODELS, in models/ on the server): links in the model
// card, so that trying another model needs neither a file on disk nor knowing the link's `model=`.
// The link's address opens that model on a fresh page; a click here keeps the page's settings.

import { $ } from '../dom';
import { sourceFor } from '../loader';
import { SERVED_MODELS, modelLink } from '../url-state';
import type { Control } from './control';

export const servedModels: Control = {
  mount(store, page) {
    const list = $('served-models');
    SERVED_MODELS.forEach(({ label, model, terms }, i) => {
      if (i > 0) list.append(' · ');
      const link = document.createElement('a');
      link.textContent = label;
      link.title = `${model}, under ${terms}`;
      link.href = modelLink(model);
      link.dataset.model = model;
      link.addEventListener('click', (e) => {
        e.preventDefault();
        if (store.loaded?.model === model) return;
        const { name, source } = sourceFor(model);
        void page.loadModel(name, source, model);
      });
      list.append(link);
    });
  },
  render(store) {
    for (const link of $('served-models').querySelectorAll('a')) {
      link.toggleAttribute('aria-current', link.dataset.model === store.state.model);
    }
  },
};
