/**
 * Mapping table for the released checkpoint (formats.md §1.4, §1.7): xAI parameter paths → canonical
 * names. Matrices are stored [in, out]: int8 ones stay in that layout ('xai8'), plain float ones (routers)
 * are transposed at load.
 */
import { FormatError } from '../base/errors.js';
import fs from 'node:fs';
import path from 'node:path';
import { CKPT_EMBEDDING, CKPT_FINAL_NORM } from '../formats/ckpt.js';
import { isQuantizedRef, type ModelSource, type TensorRef } from '../formats/tensor-ref.js';
import type { Binding, ModelBinding } from './binding.js';
import { GROK1, readConfigFile, type GrokConfig } from './config.js';

/** Canonical per-layer name → xAI path under `transformer/decoder_layer_N/`. */
const LAYER_TABLE: Record<string, string> = {
  attn_norm: 'rms_norm/scale',
  attn_q: 'multi_head_attention/query/w',
  attn_k: 'multi_head_attention/key/w',
  attn_v: 'multi_head_attention/value/w',
  attn_output: 'multi_head_attention/linear/w',
  attn_output_norm: 'rms_norm_1/scale',
  ffn_norm: 'rms_norm_2/scale',
  ffn_gate_inp: 'router/w',
  layer_output_norm: 'rms_norm_3/scale',
};
const EXPERT_TABLE: Record<string, string> = {
  ffn_gate_exps: 'moe/linear/w',
  ffn_up_exps: 'moe/linear_v/w',
  ffn_down_exps: 'moe/linear_1/w',
};

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
  tensors.set('token_embd', { kind: 'rows', ref: get(CKPT_EMBEDDING) });
  tensors.set('output_norm', { kind: 'vector', ref: get(CKPT_FINAL_NORM) });
  const nLayers = Number(source.metadata.get('ckpt.layers'));
  if (nLayers !== config.nLayers) {
    throw new FormatError(source.path, `checkpoint has ${nLayers} layers of files, the config says ${config.nLayers}`);
  }
  for (let l = 0; l < nLayers; l++) {
    const pre = `transformer/decoder_layer_${l}/`;
    for (const [name, p] of Object.entries(LAYER_TABLE)) {
      const ref = get(pre + p);
      tensors.set(`blk.${l}.${name}`, name.endsWith('norm') ? { kind: 'vector', ref } : matrix(ref));
    }
    for (const [name, p] of Object.entries(EXPERT_TABLE)) {
      const ref = get(pre + p);
      for (let e = 0; e < config.nExperts; e++) tensors.set(`blk.${l}.${name}.${e}`, matrix(ref, e));
    }
  }
  return { config, tensors };
}
