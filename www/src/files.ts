// Which model a set of dropped or picked files makes: one GGUF, or a Hugging Face checkpoint
// (weights.safetensors + config.json + tokenizer.json, or its shards with
// model.safetensors.index.json in place of the one weights file).

export type ModelFiles<F> =
  | { kind: 'gguf'; name: string; file: F }
  | { kind: 'safetensors'; name: string; weights: F; config: F; tokenizer: F }
  | { kind: 'safetensors-shards'; name: string; index: F; shards: F[]; config: F; tokenizer: F };

export class ModelFilesError extends Error {
  override name = 'ModelFilesError';
}

const lower = (s: string) => s.toLowerCase();

/**
 * Sorts the files into a model, or throws a ModelFilesError saying what is missing or extra.
 * A checkpoint is named after its weights file without ".safetensors".
 */
export function classifyModelFiles<F extends { name: string }>(files: readonly F[]): ModelFiles<F> {
  if (files.length === 0) throw new ModelFilesError('no file was given');
  const ggufs = files.filter((f) => lower(f.name).endsWith('.gguf'));
  const weights = files.filter((f) => lower(f.name).endsWith('.safetensors'));
  if (ggufs.length > 0) {
    if (ggufs.length > 1 || files.length > 1) {
      throw new ModelFilesError(`open one .gguf file at a time (got ${files.map((f) => f.name).join(', ')})`);
    }
    return { kind: 'gguf', name: ggufs[0].name, file: ggufs[0] };
  }
  if (weights.length === 0) {
    // A single file of unknown type goes to the GGUF parser, whose error says what it is not.
    if (files.length === 1 && !lower(files[0].name).endsWith('.json'))
      return { kind: 'gguf', name: files[0].name, file: files[0] };
    throw new ModelFilesError(
      `no model weights among ${files.map((f) => f.name).join(', ')}: open a .gguf, or a .safetensors with its config.json and tokenizer.json`,
    );
  }
  const indexes = files.filter((f) => lower(f.name).endsWith('.safetensors.index.json'));
  const sharded = weights.length > 1 || indexes.length > 0;
  if (sharded && indexes.length !== 1) {
    throw new ModelFilesError(
      `several .safetensors files are the shards of one checkpoint: select its model.safetensors.index.json with them (got ${files.map((f) => f.name).join(', ')})`,
    );
  }
  const config = files.find((f) => lower(f.name) === 'config.json');
  const tokenizer = files.find((f) => lower(f.name) === 'tokenizer.json');
  const missing = [config ? null : 'config.json', tokenizer ? null : 'tokenizer.json'].filter(Boolean);
  if (!config || !tokenizer) {
    const what = sharded ? indexes[0].name : weights[0].name;
    throw new ModelFilesError(
      `${what} needs ${missing.join(' and ')} beside it: select them together with the weights`,
    );
  }
  if (sharded) {
    const name = indexes[0].name.replace(/\.safetensors\.index\.json$/i, '');
    return { kind: 'safetensors-shards', name, index: indexes[0], shards: weights, config, tokenizer };
  }
  const name = weights[0].name.replace(/\.safetensors$/i, '');
  return { kind: 'safetensors', name, weights: weights[0], config, tokenizer };
}
