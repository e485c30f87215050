// The refresh pipeline: after any change, bring the engine to what the controls ask for, then
// predict, evaluate (and say what the configuration breaks), compute the open token view and
// redraw the open outlier views, each only when its key (store.ts) says that what is on screen was
// computed for something else. At most one refresh runs; requests
// during it collapse into one more after it (latest.ts), and a running one stops early.

import type { Control, EvaluateArgs } from './controls/control';
import { recordHistory } from './controls/history';
import { updateViews, viewsOpen } from './controls/outliers';
import { $, hide, showNotice, status } from './dom';
import type { Engine } from './engine';
import { formatMs } from './format';
import { LatestRunner } from './latest';
import { EXACT, metrics } from './panels/metrics';
import { predict } from './panels/prediction';
import { tokenView } from './panels/token-view';
import type { LoadedModel, Stage, Store } from './store';
import { DEFAULT_EVAL_TOKENS } from './url-state';

export class RefreshPipeline {
  private readonly runner = new LatestRunner(
    () => this.refresh(),
    (e) => console.error('quantscope: refresh failed', e),
  );
  /** The key each result on screen was computed for. */
  private shown: Record<Stage, string | null> = { predict: null, metrics: null, views: null };
  /** The metrics key the token view on screen was computed for (it runs on the metrics' tokens). */
  private shownTokens: string | null = null;
  private readonly settings;

  constructor(
    private readonly store: Store,
    private readonly controls: readonly Control[],
  ) {
    this.settings = controls.flatMap((c) => (c.engine ? [c.engine] : []));
    for (const s of this.settings) if (s.stages) store.limitSetting(s.id, s.stages);
    for (const c of controls) {
      for (const [stage, part] of Object.entries(c.keys ?? {})) store.addKeyPart(stage as Stage, part);
    }
  }

  request(): void {
    void this.runner.request();
  }

  /** A setting changed: the evaluation of the previous settings is cancelled, and the new one starts. */
  settingsChanged(): void {
    metrics.cancel();
    tokenView.cancel();
    this.request();
  }

  /** A new model: nothing on screen was computed by it. */
  loaded(): void {
    this.shown = { predict: null, metrics: null, views: null };
    this.shownTokens = null;
    this.request();
  }

  /** The evaluation's arguments from the controls: one window over the whole text unless one sets it. */
  evaluateArgs(): EvaluateArgs {
    const parts: Partial<EvaluateArgs> = {};
    for (const c of this.controls) Object.assign(parts, c.evaluateArgs?.(this.store.state));
    const maxTokens = parts.maxTokens ?? DEFAULT_EVAL_TOKENS;
    return { maxTokens, window: parts.window ?? maxTokens, text: parts.text ?? '' };
  }

  /** The engine runs the model as loaded, and compares with it: no setting changes either. */
  private asLoaded(loaded: LoadedModel): boolean {
    return this.settings.every((s) => loaded.holds[s.id] === s.asLoaded);
  }

  /**
   * Sends each engine setting whose wanted value differs from what the engine holds. A setting's
   * answer may change what another asks for (bit allocation chooses the recipe), so it goes round
   * again until nothing is left to send; a value the engine refused is not sent twice.
   */
  private async syncEngine(eng: Engine, timings: string[]): Promise<void> {
    if (!this.store.gpu) return;
    hide('quant-error');
    const tried = new Map<string, string>();
    for (let sent = true; sent;) {
      sent = false;
      for (const setting of this.settings) {
        const loaded = this.store.loaded;
        if (loaded?.engine !== eng) return;
        if (setting.available && !setting.available(this.store)) continue;
        const value = setting.wanted(this.store);
        if (value === loaded.holds[setting.id] || tried.get(setting.id) === value) continue;
        tried.set(setting.id, value);
        try {
          timings.push(await setting.send(eng, value, this.store));
          loaded.holds[setting.id] = value;
          sent = true;
        } catch (e) {
          showNotice('quant-error', ...setting.refused((e as Error).message));
        }
      }
    }
  }

  private async refresh(): Promise<void> {
    const { store } = this;
    const loaded = store.loaded;
    if (!loaded) return;
    const eng = loaded.engine;
    const moot = () => this.runner.superseded || store.loaded?.engine !== eng;
    const started = store.changedAt ?? performance.now();
    const timings: string[] = [];

    await this.syncEngine(eng, timings);
    if (moot()) return;

    const predictKey = store.key('predict');
    if (predictKey !== this.shown.predict) {
      const ms = await predict(eng, store);
      if (store.loaded?.engine === eng) this.shown.predict = predictKey;
      timings.push(`prediction ${formatMs(ms)}`);
    }
    if (moot()) return;

    const metricsKey = store.key('metrics');
    /** A measured run: its breakage is asked for once the rest is on screen. */
    let measured = false;
    const forced = metrics.takeForced();
    if (store.gpu && (metricsKey !== this.shown.metrics || forced)) {
      if (!forced && this.asLoaded(loaded)) {
        // Nothing changes the model: it is the reference, so the comparison is exact without
        // running it (which takes a minute on a software adapter).
        this.shown.metrics = metricsKey;
        if (metrics.showExact(store.engineKey())) recordHistory(EXACT, performance.now() - started);
        metrics.hideBreakage();
      } else {
        const m = await metrics.evaluate(eng, store, this.evaluateArgs(), () => this.runner.superseded);
        if (m && store.loaded?.engine === eng) {
          this.shown.metrics = metricsKey;
          const total = performance.now() - started;
          timings.push(`metrics ${formatMs(m.ms)}`);
          recordHistory(m, total);
          $('apply-timing').dataset.changeToMetricsMs = String(Math.round(total));
          metrics.hideBreakage();
          measured = true;
        }
      }
    }
    if (moot()) return;

    if (tokenView.isOpen() && store.gpu && metricsKey !== this.shownTokens) {
      status.set('busy', 'computing the token view…');
      if (await tokenView.update(eng, store, this.evaluateArgs(), () => this.runner.superseded)) {
        this.shownTokens = metricsKey;
      }
    }
    if (moot()) return;

    const viewsKey = store.key('views');
    if (viewsOpen(store) && viewsKey !== this.shown.views) {
      status.set('busy', 'drawing the outlier views…');
      const t0 = performance.now();
      try {
        await updateViews(store);
        this.shown.views = viewsKey;
        hide('outliers-error');
        timings.push(`views ${formatMs(performance.now() - t0)}`);
      } catch (e) {
        showNotice('outliers-error', null, (e as Error).message);
      }
    }

    const total = performance.now() - started;
    store.changedAt = null;
    $('apply-timing').textContent = `${timings.join(' · ')} — ${formatMs(total)} in all`;
    $('apply-timing').dataset.totalMs = String(Math.round(total));
    status.set('ready', 'ready');
    // Last, so that the timings above are what the user waited for: a forward with every hidden
    // state and attention map, seconds on a software adapter, and a newer refresh waits for it.
    if (measured && !moot()) await metrics.explain(eng, store, this.evaluateArgs());
  }
}
