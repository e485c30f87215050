// How the page names the reference side of every comparison (the prediction's first column, the
// metrics, the token view, why it broke): the model as loaded, or the configuration pinned in its
// place (controls/pin.ts). Pure: the unit tests run it without a DOM.

export interface ReferenceWords {
  pinned: boolean;
  /** A column's heading: "As loaded", or "LABEL (pinned)". */
  heading: string;
  /** In a sentence: "the model as loaded", or "LABEL (pinned)". */
  name: string;
  /** A sentence's subject: "The model as loaded", or "The pinned LABEL". */
  subject: string;
  /** Before a count: "as loaded", or "pinned". */
  short: string;
  /** After a value: "as loaded", or "in LABEL (pinned)". */
  where: string;
}

export const AS_LOADED: ReferenceWords = {
  pinned: false,
  heading: 'As loaded',
  name: 'the model as loaded',
  subject: 'The model as loaded',
  short: 'as loaded',
  where: 'as loaded',
};

/** The words for a reference pinned as `label`, or for the model as loaded (null). */
export function referenceWords(label: string | null): ReferenceWords {
  if (label === null) return AS_LOADED;
  const name = `${label} (pinned)`;
  return { pinned: true, heading: name, name, subject: `The pinned ${label}`, short: 'pinned', where: `in ${name}` };
}
