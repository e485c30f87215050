// What each outlier view is called and what its caption says: the words of the views in one place.

import type { ViewId } from './types.ts';

export const VIEW_TEXT: Record<ViewId, { title: string; caption: string }> = {
  'attention-maps': {
    title: 'Attention maps',
    caption:
      'Attention probability of each query (row) to each key (column), per head of the chosen layer, log colour scale. Keys outlined in red are outlier keys: they receive at least 0.1·n of the head-averaged attention.',
  },
  'sink-heatmap': {
    title: 'Attention sinks by layer and head',
    caption:
      'Sink score of every head in every layer: the mean attention that queries after the first give to the first token. Click a cell to open that layer and head.',
  },
  'outlier-table': {
    title: 'Outlier tokens',
    caption:
      "Which tokens carry activations over the rule's threshold, in which hidden state (CPU reference forward of the model as loaded). Cells: max|x| of the token over the threshold, outlined where it exceeds it; token labels coloured by category.",
  },
  'causal-chain': {
    title: 'Causal chain',
    caption:
      'How each outlier channel arises and what it does: the down-projection weight column that writes it, the activation channel and the tokens carrying it, and the share of later attention those tokens receive (the sink).',
  },
  'residual-heatmap': {
    title: 'Residual stream heatmap',
    caption:
      '|x| of every token (rows) and channel (columns) at the chosen layer and probe point, log colour scale. Each pixel column shows the largest |x| of the channels it covers, so no outlier is lost.',
  },
  'residual-layers': {
    title: 'Magnitude by layer',
    caption:
      'max|x| and median|x| of the probe point in every layer (log scale). Massive activations show as a jump of max|x| by orders of magnitude while the median stays put. Click a layer to open it.',
  },
  'weight-columns': {
    title: 'Weight columns: max / mean',
    caption:
      'For every input column of the chosen tensor, max|W| over its rows divided by mean|W| (log scale). Columns far above the median are weight outliers; the top ones are labelled.',
  },
  'weight-histogram': {
    title: 'Weight values and the quantization grid',
    caption:
      "Histogram of the tensor's values as loaded (bars) and after quantizing with the scheme (line), log count. Vertical lines: the values the scheme can represent in the group holding the largest |w|; shaded: beyond that grid, where weights are clipped.",
  },
};
