// "Why it broke, in words": the engine's breakage (src/study/breakage.rs: the reference's massive
// activation and attention sink against the model under study's) as sentences for the metrics
// panel, and which outlier view shows it. Pure: the unit tests run it without a DOM.

import type { Breakage } from './messages';
import { AS_LOADED, type ReferenceWords } from './reference';
import type { SharedViewState } from './url-state';

/** "×3.2" for growth, "÷4.0" for shrinking: a factor either way reads the same. */
export function factorText(ratio: number): string {
  if (!Number.isFinite(ratio)) return 'beyond measure';
  if (ratio === 0) return 'to zero';
  return ratio >= 1 ? `×${ratio.toFixed(1)}` : `÷${(1 / ratio).toFixed(1)}`;
}

const percent = (v: number) => `${(v * 100).toFixed(1)}%`;

/** One sentence per outlier the configuration broke (none when it broke nothing), against `reference`. */
export function describeBreakage(b: Breakage, reference: ReferenceWords = AS_LOADED): string[] {
  const out: string[] = [];
  const limit = `more than the ${b.breakFactor}× that counts as broken`;
  if (b.breaks.includes('massive activation')) {
    const m = b.reference.massive;
    out.push(
      `The massive activation moved ${factorText(b.massive_ratio)}, ${limit}: after block ${m.block}, token ${m.token}, ` +
        `channel ${m.channel} holds ${m.value.toPrecision(4)} ${reference.where} and ${b.under_study.massive.value.toPrecision(4)} quantized.`,
    );
  }
  if (b.breaks.includes('attention sink')) {
    out.push(
      `The attention sink moved ${factorText(b.sink_ratio)}, ${limit}: later tokens put ${percent(b.reference.sink)} of ` +
        `their attention on the first token ${reference.where}, ${percent(b.under_study.sink)} quantized.`,
    );
  }
  return out;
}

/** The outlier view that shows what broke: the residual stream at the massive activation's block, else the sinks. */
export function breakageView(b: Breakage): SharedViewState {
  if (b.breaks.includes('massive activation')) return { view: 'residual-heatmap', layer: b.reference.massive.block };
  return { view: 'sink-heatmap' };
}
