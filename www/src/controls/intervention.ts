// The outlier lab's interventions in the forward of the model under study, from the engine's
// catalog (`interventions()`): zero or mean the massive activations, drop the attention sink,
// clip at a percentile. One that takes a number ("clip:P") shows an input for it.

import { $, fillOptions, status } from '../dom';
import { formatMs } from '../format';
import type { InterventionInfo } from '../messages';
import type { Store } from '../store';
import type { Control } from './control';

const catalog = (store: Store): InterventionInfo[] => store.loaded?.caps.interventions ?? [];

/** The catalog entry a state value ("clip:99.5", "drop-sink") belongs to, and its number. */
function parse(store: Store, value: string): { info: InterventionInfo; number: string | null } | null {
  for (const info of catalog(store)) {
    if (info.parameter && value.startsWith(`${info.name}:`)) return { info, number: value.slice(info.name.length + 1) };
    if (!info.parameter && value === info.name) return { info, number: null };
  }
  return null;
}

/** The intervention the select and its number ask for ("" for none). */
function read(store: Store): string {
  const name = $<HTMLSelectElement>('intervention').value;
  const info = catalog(store).find((i) => i.name === name);
  if (!info?.parameter) return name;
  const p = Number($<HTMLInputElement>('intervention-clip').value);
  return `${name}:${Number.isFinite(p) ? p : info.parameter.default}`;
}

/** Shows the number's input for an intervention that takes one, with its name and range. */
function showParameter(info: InterventionInfo | undefined): void {
  const label = $('intervention-clip-label');
  label.hidden = !info?.parameter;
  if (!info?.parameter) return;
  const input = $<HTMLInputElement>('intervention-clip');
  label.firstChild!.textContent = `${info.parameter.name} `;
  input.min = String(info.parameter.min);
  input.max = String(info.parameter.max);
}

export const intervention: Control = {
  engine: {
    id: 'intervention',
    initial: '',
    asLoaded: '',
    wanted: (store) => store.state.intervention,
    async send(engine, name) {
      status.set('busy', 'setting the intervention…');
      const r = await engine.run('setIntervention', { name });
      const on = r.calibration
        ? ` (means of the model ${r.calibration.model}, ${r.calibration.tokens} tokens of the shipped text)`
        : '';
      return `intervention in ${formatMs(r.ms)}${on}`;
    },
    refused: (message) => ['The intervention was not applied', message],
  },

  mount(store) {
    const changed = () => {
      store.update((s) => (s.intervention = read(store)));
      showParameter(parse(store, store.state.intervention)?.info);
    };
    $('intervention').addEventListener('change', changed);
    $('intervention-clip').addEventListener('change', changed);
  },

  render(store) {
    if (!store.loaded) return;
    const select = $<HTMLSelectElement>('intervention');
    fillOptions(select, [['', 'none'], ...catalog(store).map((i): [string, string] => [i.name, i.label])]);
    const chosen = parse(store, store.state.intervention);
    select.value = chosen?.info.name ?? '';
    const input = $<HTMLInputElement>('intervention-clip');
    if (chosen?.number != null) input.value = chosen.number;
    else if (chosen?.info.parameter) input.value = String(chosen.info.parameter.default);
    showParameter(chosen?.info);
  },
};
