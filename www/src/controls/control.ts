// What a part of the page is to the shell (main.ts) and the refresh pipeline (refresh.ts). Every
// control group and panel is one module exporting one `Control`, registered in controls/index.ts;
// each hook is optional, so a module says only what it takes part in.

import type { Engine } from '../engine';
import type { ArgsOf, ModelSource } from '../messages';
import type { Stage, Store } from '../store';
import type { AppState } from '../url-state';

/** What the page does for a control, beyond the store. */
export interface PageActions {
  /** Recompute what is out of date (after a change the store did not see, e.g. Measure). */
  refresh(): void;
  /** Load a model into a new engine; the current one keeps working until it has loaded. */
  loadModel(name: string, source: ModelSource, modelKey: string): Promise<void>;
  /** Put a whole state on the page (a history row): reloads the model when it names another. */
  restore(state: AppState): void;
  /** The link to the current state. */
  shareLink(): string;
}

export type EvaluateArgs = ArgsOf<'evaluate'>;

/**
 * A setting the engine holds (the weights' recipe, run-time quantization, the intervention). The
 * pipeline sends it before predicting whenever what the controls ask for differs from what the
 * engine holds, and what it holds is part of every result's key.
 */
export interface EngineSetting {
  /** Its name in `LoadedModel.holds`. */
  id: string;
  /** What a freshly loaded engine holds (null: unknown, so the first refresh sends it). */
  initial: string | null;
  /** The value that leaves the model as loaded (and compares with it). */
  asLoaded: string;
  /**
   * The results it changes, where not all of them: a pinned reference changes what the model is
   * compared with, not the model, so the outlier views keep theirs.
   */
  stages?: readonly Stage[];
  /** Whether this engine build has it at all. */
  available?(store: Store): boolean;
  /** The value the controls ask for now (a bad one is reported by the control, which then asks for what the engine holds). */
  wanted(store: Store): string;
  /** Sends `value`; resolves to a few words on what it did and how long it took. Rejects when the engine refused it (nothing changed). */
  send(engine: Engine, value: string, store: Store): Promise<string>;
  /** The notice's title and body when the engine refused it. */
  refused(message: string): [string, string];
}

export interface Control {
  /** Finds (or builds) its elements and wires their events; once, before anything loads. */
  mount(store: Store, page: PageActions): void;
  /** Shows the store's state: after a load (options may have changed), a link, a history row. */
  render?(store: Store): void;
  /** With a model (`on`) or without one; `store.gpu` says whether it runs on WebGPU. */
  enable?(store: Store, on: boolean): void;
  /** Its part of the key of each result that depends on it. */
  keys?: Partial<Record<Stage, (state: AppState) => unknown>>;
  /** Its part of the evaluation's arguments. */
  evaluateArgs?(state: AppState): Partial<EvaluateArgs>;
  engine?: EngineSetting;
}
