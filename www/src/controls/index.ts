// Every part of the page, in one list: mounted, rendered and enabled in this order, and asked in
// this order for their parts of the results' keys, the evaluation's arguments and the engine's
// settings (the recipe is sent before run-time quantization, which may choose it, and the pinned
// reference after what the model under study is).

import { devicePanel } from '../panels/device';
import { measuredRecipePanel } from '../panels/measured-recipe';
import { metricsPanel } from '../panels/metrics';
import { predictionPanel } from '../panels/prediction';
import { sensitivityPanel } from '../panels/sensitivity';
import { tokenViewPanel } from '../panels/token-view';
import type { Control } from './control';
import { evalTokens } from './eval-tokens';
import { evalWindow } from './eval-window';
import { generation } from './generation';
import { ggufDownload } from './gguf-download';
import { historyTable } from './history';
import { intervention } from './intervention';
import { modelFiles } from './model-files';
import { outliers } from './outliers';
import { pin } from './pin';
import { prompt } from './prompt';
import { recipeDownload } from './recipe-download';
import { runtime } from './runtime';
import { servedModels } from './served-models';
import { share } from './share';
import { weights } from './weights';

export const CONTROLS: readonly Control[] = [
  modelFiles,
  servedModels,
  devicePanel,
  prompt,
  predictionPanel,
  weights,
  recipeDownload,
  ggufDownload,
  runtime,
  intervention,
  pin,
  generation,
  metricsPanel,
  evalTokens,
  evalWindow,
  historyTable,
  sensitivityPanel,
  measuredRecipePanel,
  tokenViewPanel,
  outliers,
  share,
];
