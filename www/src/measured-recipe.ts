// The measured recipe's words and inputs (the panel is panels/measured-recipe.ts): pure, for the
// unit tests.

import { formatMs } from './format';
import type { MeasuredRecipe } from './messages';

/** The ladder typed (comma-separated, most bits first), or null for the engine's default. */
export function ladderOf(text: string): string[] | null {
  const schemes = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return schemes.length ? schemes : null;
}

/** The result in words: what the matrices average, against the budget, and how many sit on each rung. */
export function describeAllocation(r: MeasuredRecipe): string {
  const rungs = r.rungCounts.filter(([, n]) => n > 0).map(([scheme, n]) => `${n} × ${scheme}`);
  const over = r.budgetOver === 'linears' ? 'the matrices that got a rung' : 'the whole model';
  return (
    `${r.bitsPerWeight.toFixed(3)} bits per weight over ${over} (budget ${r.targetBitsPerWeight}): ` +
    `${rungs.join(', ')}. ${r.cells} cell${r.cells === 1 ? '' : 's'} measured on ${r.tokens} tokens in ${formatMs(r.ms)}.`
  );
}
