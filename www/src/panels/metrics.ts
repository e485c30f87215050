// The metrics panel: the model under study against the reference (the model as loaded, or a
// pinned configuration: controls/pin.ts) on the evaluation text (KL, PD-KL, top-1, perplexity,
// QiD, the per-layer error chart), its size, Measure, and why it broke, in words: the engine's
// breakage (the massive activation or the attention sink moved by more than 2×) with a button to
// the outlier view that shows it.

import { breakageView, describeBreakage } from '../breakage-text';
import { LayerErrorChart, exportCanvasPng } from '../charts';
import { showOutlierView } from '../controls/outliers';
import { $, ProgressBar, setFact, status } from '../dom';
import type { Engine } from '../engine';
import { formatBytes, formatMetric, formatMs } from '../format';
import type { Applied, Breakage, EvalMetrics, EvaluationArgs } from '../messages';
import type { Store } from '../store';
import { StoppableCall } from '../stoppable';
import type { Control, EvaluateArgs } from '../controls/control';
import { currentReference } from '../controls/pin';
import type { ReferenceWords } from '../reference';

let layerChart: LayerErrorChart;
/** The evaluation, which a change cancels rather than waits for. */
let evaluation: StoppableCall<'evaluate'>;
/** The user asked to evaluate even though nothing changed the model. */
let forced = false;
/** The engine key whose exact (as loaded) metrics are on screen, if any. */
let exactShownFor: string | null = null;
/** What the breakage on screen says, for its button. */
let broken: Breakage | null = null;

/** The exact metrics of the model as loaded: what a run would give, known without one. */
export const EXACT: EvalMetrics = {
  tokens: 0,
  positions: 0,
  kl: 0,
  pd_kl: 0,
  top1_agreement: 1,
  perplexity: NaN,
  reference_perplexity: NaN,
  qid: 0,
  layers: [],
  window: 0,
  ms: 0,
};

function nextRun(panel: HTMLElement): void {
  panel.dataset.run = String(Number(panel.dataset.run ?? '0') + 1);
}

function renderMetrics(m: EvalMetrics, reference: ReferenceWords): void {
  setFact('metric-kl', m.kl, formatMetric(m.kl));
  setFact('metric-pdkl', m.pd_kl, formatMetric(m.pd_kl));
  setFact('metric-top1', m.top1_agreement, `${(m.top1_agreement * 100).toFixed(1)}%`);
  setFact('metric-ppl', m.perplexity, formatMetric(m.perplexity));
  setFact('metric-ref-ppl', m.reference_perplexity, formatMetric(m.reference_perplexity));
  setFact('metric-qid', m.qid, formatMetric(m.qid));
  for (const id of ['metric-ppl', 'metric-ref-ppl']) $(id).title = '';
  layerChart.set(m.layers);
  const panel = $('metrics');
  panel.dataset.state = 'done';
  panel.dataset.exact = 'false';
  const windows = m.window > 0 && m.window < m.tokens ? ` in windows of ${m.window}` : '';
  $('metrics-note').textContent =
    `Measured against ${reference.name} on ${m.tokens} tokens${windows} in ${formatMs(m.ms)}.`;
  nextRun(panel);
}

function renderExact(): void {
  setFact('metric-kl', 0, '0');
  setFact('metric-pdkl', 0, '0');
  setFact('metric-top1', 1, '100%');
  setFact('metric-qid', 0, '0');
  for (const id of ['metric-ppl', 'metric-ref-ppl']) {
    setFact(id, NaN, '–');
    $(id).title = 'Press Measure to run the evaluation text through the model';
  }
  layerChart.clear();
  const panel = $('metrics');
  panel.dataset.state = 'done';
  panel.dataset.exact = 'true';
  nextRun(panel);
  $('metrics-note').textContent =
    'Nothing is quantized: the model is the reference, so KL is 0 and top-1 agreement 100% by definition. Measure runs the evaluation text anyway (perplexity).';
}

export const metrics = {
  /** Whether Measure asked for a run; reading it clears it. */
  takeForced(): boolean {
    const f = forced;
    forced = false;
    return f;
  },

  /**
   * Shows the exact metrics of the model as loaded, once per model state (`engineKey`): more or
   * fewer evaluation tokens change nothing about an exact comparison. False when already shown.
   */
  showExact(engineKey: string): boolean {
    if (exactShownFor === engineKey) return false;
    exactShownFor = engineKey;
    renderExact();
    return true;
  },

  /** Runs the evaluation with `eng`; null when it failed (shown) or was cancelled. */
  async evaluate(
    eng: Engine,
    store: Store,
    args: EvaluateArgs,
    superseded: () => boolean,
  ): Promise<EvalMetrics | null> {
    status.set('busy', 'evaluating…');
    const m = await evaluation.run(eng, store, args, superseded);
    if (!m) return null;
    exactShownFor = null;
    renderMetrics(m, currentReference(store));
    return m;
  },

  /** The settings changed: the evaluation of the previous ones is moot. */
  cancel(): void {
    evaluation.stop();
  },

  /**
   * Says what the configuration breaks, measured on the evaluation's first window (the engine's
   * `breakage`); nothing when it breaks nothing, the build lacks it, or it fails (a console note:
   * the metrics stand without it).
   */
  async explain(eng: Engine, store: Store, args: EvaluationArgs): Promise<void> {
    metrics.hideBreakage();
    if (!store.loaded?.caps.study?.breakage) return;
    try {
      const b = await eng.run('breakage', args);
      if (store.loaded?.engine !== eng) return;
      const sentences = describeBreakage(b, currentReference(store));
      const box = $('breakage');
      box.dataset.breaks = b.breaks.join(',');
      if (sentences.length === 0) return;
      broken = b;
      $('breakage-text').textContent = sentences.join(' ');
      box.hidden = false;
    } catch (e) {
      console.warn('quantscope: the breakage could not be measured', e);
    }
  },

  hideBreakage(): void {
    broken = null;
    $('breakage').hidden = true;
    delete $('breakage').dataset.breaks;
  },

  renderSize(r: Applied): void {
    setFact('metric-bpw', r.bitsPerWeight, r.bitsPerWeight.toFixed(2));
    setFact('metric-size', r.bytes, formatBytes(r.bytes));
  },
};

export const metricsPanel: Control = {
  mount(store, page) {
    evaluation = new StoppableCall('evaluate', $('metrics'), new ProgressBar($('metrics-progress')), 'metrics-error');
    layerChart = new LayerErrorChart($<HTMLCanvasElement>('layer-chart'), $('layer-chart-tooltip'));
    $('layer-chart-png').addEventListener('click', () => {
      void exportCanvasPng(layerChart.canvas, 'quantscope-layer-error.png');
    });
    $('breakage-show').addEventListener('click', () => {
      if (broken) showOutlierView(store, page, breakageView(broken));
    });
    $('metrics-run').addEventListener('click', () => {
      forced = true;
      store.changedAt = performance.now();
      page.refresh();
    });
    store.subscribe((change) => {
      if (change === 'loaded') {
        exactShownFor = null;
        layerChart.clear();
      }
    });
  },
  enable(store, on) {
    $('metrics-unavailable').hidden = !(on && !store.gpu);
    $('metrics-run').toggleAttribute('disabled', !(on && store.gpu));
  },
};
