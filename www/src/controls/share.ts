// Copy link: the link to exactly what the page shows (the same as the address bar's).

import { $ } from '../dom';
import type { Control } from './control';

export const share: Control = {
  mount(_store, page) {
    const button = $('share-button');
    button.addEventListener('click', async () => {
      const link = page.shareLink();
      button.dataset.link = link;
      try {
        await navigator.clipboard.writeText(link);
        button.textContent = 'Link copied';
      } catch {
        // No clipboard permission (an insecure origin, a headless browser): the address bar has it.
        button.textContent = 'Link is in the address bar';
      }
      setTimeout(() => (button.textContent = 'Copy link'), 2000);
    });
  },
};
