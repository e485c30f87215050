// The metrics panel: the model under study against the model as loaded on the evaluation text
// (KL, PD-KL, top-1, perplexity, QiD, the per-layer error chart), its size, and Measure.

import { LayerErrorChart, exportCanvasPng } from '../charts';
import { $, hide, ProgressBar, setFact, showNotice, status } from '../dom';
import type { Engine } from '../engine';
import { formatBytes, formatMetric, formatMs } from '../format';
import type { Applied, EvalMetrics } from '../messages';
import type { Store } from '../store';
import type { Control, EvaluateArgs } from '../controls/control';

let layerChart: LayerErrorChart;
let progress: ProgressBar;
/** The evaluation running now, so that a change can cancel it rather than wait for it. */
let running: { eng: Engine; id: number } | null = null;
/** The user asked to evaluate even though nothing changed the model. */
let forced = false;
/** The engine key whose exact (as loaded) metrics are on screen, if any. */
let exactShownFor: string | null = null;

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

function renderMetrics(m: EvalMetrics): void {
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
  $('metrics-note').textContent = `Measured on ${m.tokens} tokens${windows} in ${formatMs(m.ms)}.`;
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
    const panel = $('metrics');
    panel.dataset.state = 'running';
    progress.show('');
    status.set('busy', 'evaluating…');
    try {
      const call = eng.call('evaluate', args, {
        onProgress: (_stage, done, total) => progress.update('', '', total > 0 ? done / total : null),
      });
      running = { eng, id: call.id };
      const m = await call.result;
      if (store.loaded?.engine !== eng) return null;
      exactShownFor = null;
      hide('metrics-error');
      renderMetrics(m);
      return m;
    } catch (e) {
      // Cancelled by a newer change: its own evaluation follows, nothing to report.
      if (store.loaded?.engine !== eng || superseded()) return null;
      panel.dataset.state = 'error';
      showNotice('metrics-error', null, (e as Error).message);
      return null;
    } finally {
      running = null;
      progress.hide();
    }
  },

  /** The settings changed: the evaluation of the previous ones is moot. */
  cancel(): void {
    if (running) running.eng.stop(running.id);
  },

  renderSize(r: Applied): void {
    setFact('metric-bpw', r.bitsPerWeight, r.bitsPerWeight.toFixed(2));
    setFact('metric-size', r.bytes, formatBytes(r.bytes));
  },
};

export const metricsPanel: Control = {
  mount(store, page) {
    progress = new ProgressBar($('metrics-progress'));
    layerChart = new LayerErrorChart($<HTMLCanvasElement>('layer-chart'), $('layer-chart-tooltip'));
    $('layer-chart-png').addEventListener('click', () => {
      void exportCanvasPng(layerChart.canvas, 'quantscope-layer-error.png');
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
