// An engine call that follows the configuration (the metrics, the token view): one runs at a time
// per panel, a newer change stops it rather than waiting for it, its progress shows in the
// panel's bar and a failure in the panel's notice, and a call that was stopped or whose engine
// was replaced reports nothing.

import { hide, showNotice, type ProgressBar } from './dom';
import type { Engine } from './engine';
import type { ArgsOf, Method, ResultOf } from './messages';
import type { Store } from './store';

export class StoppableCall<M extends Method> {
  private running: { eng: Engine; id: number; stopped: boolean } | null = null;

  constructor(
    private readonly method: M,
    /** The panel: its `data-state` says running, then error (the caller sets done). */
    private readonly panel: HTMLElement,
    private readonly progress: ProgressBar,
    /** The data-testid of the panel's error notice. */
    private readonly errorNotice: string,
  ) {}

  /** The result, or null when it failed (shown), was stopped, or belongs to an engine replaced since. */
  async run(eng: Engine, store: Store, args: ArgsOf<M>, superseded: () => boolean): Promise<ResultOf<M> | null> {
    this.panel.dataset.state = 'running';
    this.progress.show('');
    const call = eng.call(this.method, args, {
      onProgress: (_stage, done, total) => this.progress.update('', '', total > 0 ? done / total : null),
    });
    const mine = { eng, id: call.id, stopped: false };
    this.running = mine;
    try {
      const result = await call.result;
      if (store.loaded?.engine !== eng) return null;
      hide(this.errorNotice);
      return result;
    } catch (e) {
      // Stopped (by a newer change, whose own call follows, or by closing the panel): nothing to report.
      if (store.loaded?.engine !== eng || superseded() || mine.stopped) return null;
      this.panel.dataset.state = 'error';
      showNotice(this.errorNotice, null, (e as Error).message);
      return null;
    } finally {
      this.running = null;
      this.progress.hide();
    }
  }

  /** The configuration changed: the running call is moot. */
  stop(): void {
    if (!this.running) return;
    this.running.stopped = true;
    this.running.eng.stop(this.running.id);
  }
}
