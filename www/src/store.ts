// The page's one state store: what the user asked for (`state`, the URL's hash), the model that
// is loaded with what its engine holds now, and the keys derived from them that tell the refresh
// pipeline which results on screen are out of date.
//
// A result's key is the model as it runs (the loaded model and every engine setting it holds that
// changes that result) plus each control's part for that stage (`Control.keys`): the prompt for
// the prediction, the evaluation's size for the metrics. A result is recomputed exactly when its
// key changed.

import type { Engine } from './engine';
import type { Applied, Capabilities, DeviceInfo, ModelSummary } from './messages';
import { defaultState, type AppState } from './url-state';

/** A model loaded into an engine: everything that lives exactly as long as that engine. */
export interface LoadedModel {
  engine: Engine;
  caps: Capabilities;
  summary: ModelSummary;
  device: DeviceInfo;
  /** The model as the URL state names it (a served path or `local:NAME`). */
  model: string;
  /** What the engine holds now, per engine setting id (null: unknown, send it). */
  holds: Record<string, string | null>;
  /** The recipe the engine applied last, with its sizes. */
  applied: Applied | null;
  /** Size of the model file(s), and whether they came from this browser's cache. */
  fileBytes: number;
  fromCache: boolean;
  /** How long the load took, milliseconds. */
  loadMs: number;
}

/** The results the refresh pipeline computes after syncing the engine, in order. */
export type Stage = 'predict' | 'metrics' | 'views';

/**
 * - `settings`: a control changed what the model is or how it is measured: save it in the link,
 *   drop the evaluation of the previous settings, recompute what depends on it;
 * - `saved`: a change only the link keeps (the prompt, the open view); its control asks for what
 *   it needs recomputed;
 * - `restored`: the state was replaced (a link, a history row, or the engine chose part of it):
 *   every control shows it again;
 * - `loaded`: a new model is loaded (options, limits and availability may differ).
 */
export type Change = 'settings' | 'saved' | 'restored' | 'loaded';

export type KeyPart = (state: AppState) => unknown;

export class Store {
  state: AppState = defaultState();
  loaded: LoadedModel | null = null;
  /** When the user last changed a setting, for the "change → metrics" time. */
  changedAt: number | null = null;
  private readonly listeners: ((change: Change) => void)[] = [];
  private readonly keyParts: Record<Stage, KeyPart[]> = { predict: [], metrics: [], views: [] };
  /** The results each engine setting changes, where not all (`EngineSetting.stages`). */
  private readonly settingStages = new Map<string, readonly Stage[]>();

  subscribe(listener: (change: Change) => void): void {
    this.listeners.push(listener);
  }

  /** Changes the state in place and tells every subscriber. */
  update(mutate: (state: AppState) => void, change: Change = 'settings'): void {
    mutate(this.state);
    if (change === 'settings') this.changedAt = performance.now();
    this.emit(change);
  }

  replace(next: AppState): void {
    this.state = next;
    this.emit('restored');
  }

  setLoaded(loaded: LoadedModel): void {
    this.loaded = loaded;
    this.emit('loaded');
  }

  private emit(change: Change): void {
    for (const listener of this.listeners) listener(change);
  }

  /** The model runs on WebGPU (re-quantization, metrics and the views need it). */
  get gpu(): boolean {
    return this.loaded?.device.backend === 'webgpu';
  }

  addKeyPart(stage: Stage, part: KeyPart): void {
    this.keyParts[stage].push(part);
  }

  /** The engine setting `id` changes only the results of `stages`. */
  limitSetting(id: string, stages: readonly Stage[]): void {
    this.settingStages.set(id, stages);
  }

  /**
   * The model as it runs now: the loaded model and what its engine holds (not what is asked for);
   * for `stage`, only the settings that change its result.
   */
  engineKey(stage?: Stage): string {
    const l = this.loaded;
    if (!l) return 'null';
    const held = Object.entries(l.holds).filter(
      ([id]) => stage === undefined || (this.settingStages.get(id)?.includes(stage) ?? true),
    );
    return JSON.stringify([l.model, held.sort(([a], [b]) => a.localeCompare(b))]);
  }

  /** The key of a stage's result: the model as it runs, and what each control adds for that stage. */
  key(stage: Stage): string {
    return JSON.stringify([this.engineKey(stage), ...this.keyParts[stage].map((part) => part(this.state))]);
  }
}
