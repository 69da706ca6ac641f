/**
 * The released checkpoint → canonical names, by the `ckpt` column of the tensor table (tensors.ts; the
 * paths are xai-org/grok-1's parameter tree, checkpoint.py). Matrices are stored [in, out]: int8 ones stay
 * in that layout ('xai8'), plain float ones (routers) are transposed at load.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../base/errors.js';
import { CKPT_EMBEDDING } from '../formats/ckpt.js';
import { isQuantizedRef, type ModelSource, type TensorRef } from '../formats/tensor-ref.js';
import type { Binding, ModelBinding } from './binding.js';
import { GROK1, readConfigFile, type GrokConfig } from './config.js';
import { canonicalName, layerTensors, tensorDef } from './tensors.js';

function matrix(ref: TensorRef, index?: number): Binding {
  if (isQuantizedRef(ref)) return index === undefined ? { kind: 'xai8', ref } : { kind: 'xai8', ref, index };
  return index === undefined ? { kind: 'transpose', ref } : { kind: 'transpose', ref, index };
}

/**
 * The checkpoint carries no configuration. Use, in order: an explicit file, config.json in the checkpoint
 * directory or its parent, a fixture's golden.json in the parent; else the released Grok-1 preset if the
 * tensor shapes are Grok-1's.
 */
export function ckptConfig(source: ModelSource, configPath?: string): GrokConfig {
  const dir = String(source.metadata.get('ckpt.dir'));
  const candidates = configPath ? [configPath] : [
    path.join(dir, 'config.json'), path.join(dir, '..', 'config.json'), path.join(dir, '..', 'golden.json'),
  ];
  for (const c of candidates) {
    if (configPath || fs.existsSync(c)) return readConfigFile(c);
  }
  const emb = source.tensors.get(CKPT_EMBEDDING);
  const layers = Number(source.metadata.get('ckpt.layers'));
  if (emb && emb.shape[0] === GROK1.vocabSize && emb.shape[1] === GROK1.dModel && layers === GROK1.nLayers) return { ...GROK1 };
  throw new FormatError(dir, 'no config.json beside the checkpoint and its shapes are not the released Grok-1\'s: pass --config <config.json>');
}

export function bindCkpt(source: ModelSource, configPath?: string): ModelBinding {
  const config = ckptConfig(source, configPath);
  const get = (p: string): TensorRef => {
    const t = source.tensors.get(p);
    if (!t) throw new FormatError(source.path, `checkpoint has no tensor '${p}'`);
    return t;
  };
  const tensors = new Map<string, Binding>();
  tensors.set('token_embd', { kind: 'rows', ref: get(tensorDef('token_embd').ckpt!) });
  tensors.set('output_norm', { kind: 'vector', ref: get(tensorDef('output_norm').ckpt!) });
  const nLayers = Number(source.metadata.get('ckpt.layers'));
  if (nLayers !== config.nLayers) {
    throw new FormatError(source.path, `checkpoint has ${nLayers} layers of files, the config says ${config.nLayers}`);
  }
  for (let l = 0; l < nLayers; l++) {
    for (const t of layerTensors(config)) {
      const ref = get(`transformer/decoder_layer_${l}/${t.ckpt!}`);
      if (t.kind === 'vector') tensors.set(canonicalName(t, l), { kind: 'vector', ref });
      else if (t.scope === 'layer') tensors.set(canonicalName(t, l), matrix(ref));
      else for (let e = 0; e < config.nExperts; e++) tensors.set(canonicalName(t, l, e), matrix(ref, e));
    }
  }
  return { config, tensors };
}
