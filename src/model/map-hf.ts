/**
 * Hugging Face Grok-1 ports (safetensors, formats.md §4.2) → ModelBinding, by literal tables.
 *
 * Both families store PyTorch [out, in] matrices ('rows' layout, no transpose) with experts split into
 * one 2-D tensor each. Family A (keyfan/grok-1-hf) keeps the xAI module names; family B (hpcai-tech)
 * uses model.layers.N.* names and `.scale` norms. Each slot lists every spelling seen in the wild, tried
 * in order: derivative files name the router `block_sparse_moe.gate` and the experts
 * `block_sparse_moe.experts.E.linear…`, and llama.cpp also accepts Mixtral-style `w1/w2/w3`
 * (w1 = linear = gate, w3 = linear_v = up, w2 = linear_1 = down).
 * The config comes from config.json beside the weights (metadata 'hf.config') or an explicit configPath.
 */
import { ConfigError, FormatError } from '../base/errors.js';
import { type ModelSource, type TensorRef } from '../formats/tensor-ref.js';
import type { Binding, ModelBinding } from './binding.js';
import { configFromJson, readConfigFile, type GrokConfig } from './config.js';

type Kind = 'vector' | 'rows';
/** `{L}` = layer number, `{E}` = expert number. */
interface Family {
  readonly name: string;
  /** A tensor whose presence identifies the family. */
  readonly marker: string;
  readonly global: ReadonlyArray<readonly [canonical: string, kind: Kind, names: readonly string[]]>;
  readonly optional: ReadonlyArray<readonly [canonical: string, kind: Kind, names: readonly string[]]>;
  readonly layer: ReadonlyArray<readonly [canonical: string, kind: Kind, names: readonly string[]]>;
}

const A = 'transformer.decoder_layer.{L}.';
const B = 'model.layers.{L}.';

export const FAMILY_A: Family = {
  name: 'A (xAI-like names, keyfan/grok-1-hf)',
  marker: 'transformer.in_out_embed.weight',
  global: [
    ['token_embd', 'rows', ['transformer.in_out_embed.weight']],
    ['output_norm', 'vector', ['transformer.rms_norm.weight']],
  ],
  // keyfan's files store lm_head as a copy of the embedding; use it when present.
  optional: [['output', 'rows', ['lm_head.weight']]],
  layer: [
    ['attn_norm', 'vector', [`${A}rms_norm.weight`]],
    ['attn_q', 'rows', [`${A}multi_head_attention.query.weight`]],
    ['attn_k', 'rows', [`${A}multi_head_attention.key.weight`]],
    ['attn_v', 'rows', [`${A}multi_head_attention.value.weight`]],
    ['attn_output', 'rows', [`${A}multi_head_attention.linear.weight`]],
    ['attn_output_norm', 'vector', [`${A}rms_norm_1.weight`]],
    ['ffn_norm', 'vector', [`${A}rms_norm_2.weight`]],
    ['ffn_gate_inp', 'rows', [`${A}router.weight`, `${A}block_sparse_moe.gate.weight`]],
    ['layer_output_norm', 'vector', [`${A}rms_norm_3.weight`]],
    ['ffn_gate_exps.{E}', 'rows', [`${A}moe.{E}.linear.weight`, `${A}block_sparse_moe.experts.{E}.linear.weight`, `${A}block_sparse_moe.experts.{E}.w1.weight`]],
    ['ffn_up_exps.{E}', 'rows', [`${A}moe.{E}.linear_v.weight`, `${A}block_sparse_moe.experts.{E}.linear_v.weight`, `${A}block_sparse_moe.experts.{E}.w3.weight`]],
    ['ffn_down_exps.{E}', 'rows', [`${A}moe.{E}.linear_1.weight`, `${A}block_sparse_moe.experts.{E}.linear_1.weight`, `${A}block_sparse_moe.experts.{E}.w2.weight`]],
  ],
};

export const FAMILY_B: Family = {
  name: 'B (hpcai-tech/grok-1 names)',
  marker: 'model.embed_tokens.weight',
  global: [
    ['token_embd', 'rows', ['model.embed_tokens.weight']],
    // vLLM renames norm .scale → .weight; accept both spellings.
    ['output_norm', 'vector', ['model.norm.scale', 'model.norm.weight']],
  ],
  // tie_word_embeddings is true in this family; lm_head may be absent.
  optional: [['output', 'rows', ['lm_head.weight']]],
  layer: [
    ['attn_norm', 'vector', [`${B}pre_attn_norm.scale`, `${B}pre_attn_norm.weight`]],
    ['attn_q', 'rows', [`${B}attn.q_proj.weight`]],
    ['attn_k', 'rows', [`${B}attn.k_proj.weight`]],
    ['attn_v', 'rows', [`${B}attn.v_proj.weight`]],
    ['attn_output', 'rows', [`${B}attn.o_proj.weight`]],
    ['attn_output_norm', 'vector', [`${B}post_attn_norm.scale`, `${B}post_attn_norm.weight`]],
    ['ffn_norm', 'vector', [`${B}pre_moe_norm.scale`, `${B}pre_moe_norm.weight`]],
    ['ffn_gate_inp', 'rows', [`${B}moe_block.gate.weight`, `${B}block_sparse_moe.gate.weight`]],
    ['layer_output_norm', 'vector', [`${B}post_moe_norm.scale`, `${B}post_moe_norm.weight`]],
    ['ffn_gate_exps.{E}', 'rows', [`${B}moe_block.experts.{E}.linear.weight`, `${B}block_sparse_moe.experts.{E}.linear.weight`, `${B}block_sparse_moe.experts.{E}.w1.weight`]],
    ['ffn_up_exps.{E}', 'rows', [`${B}moe_block.experts.{E}.linear_v.weight`, `${B}block_sparse_moe.experts.{E}.linear_v.weight`, `${B}block_sparse_moe.experts.{E}.w3.weight`]],
    ['ffn_down_exps.{E}', 'rows', [`${B}moe_block.experts.{E}.linear_1.weight`, `${B}block_sparse_moe.experts.{E}.linear_1.weight`, `${B}block_sparse_moe.experts.{E}.w2.weight`]],
  ],
};

export const HF_FAMILIES: readonly Family[] = [FAMILY_A, FAMILY_B];

export function detectHfFamily(source: ModelSource): Family {
  const f = HF_FAMILIES.find((fam) => source.tensors.has(fam.marker));
  if (!f) {
    throw new FormatError(source.path, `not a known Hugging Face Grok-1 layout: found neither ${HF_FAMILIES.map((x) => `'${x.marker}'`).join(' nor ')} ` +
      `(first tensors: ${[...source.tensors.keys()].slice(0, 3).join(', ')})`);
  }
  return f;
}

/** The HF config: an explicit file, else config.json read beside the weights. */
export function hfConfig(source: ModelSource, configPath?: string): GrokConfig {
  if (configPath !== undefined) return readConfigFile(configPath);
  const c = source.metadata.get('hf.config');
  if (c === undefined) {
    throw new ConfigError(source.path, 'no config.json beside the safetensors weights: the model\'s hyper-parameters are unknown. ' +
      'Put the port\'s config.json next to the weights or pass a config file (configPath / --config).');
  }
  return configFromJson(c, `${source.path} (config.json)`);
}

export function bindHf(source: ModelSource, configPath?: string): ModelBinding {
  const family = detectHfFamily(source);
  const config = hfConfig(source, configPath);
  const tensors = new Map<string, Binding>();
  const put = (canonical: string, kind: Kind, names: readonly string[], required: boolean) => {
    let ref: TensorRef | undefined;
    for (const n of names) if ((ref = source.tensors.get(n))) break;
    if (!ref) {
      if (!required) return;
      throw new FormatError(source.path, `missing tensor ${names.map((n) => `'${n}'`).join(' or ')} (for ${canonical}; HF family ${family.name})`);
    }
    tensors.set(canonical, { kind, ref });
  };
  for (const [c, k, names] of family.global) put(c, k, names, true);
  for (const [c, k, names] of family.optional) put(c, k, names, false);
  for (let l = 0; l < config.nLayers; l++) {
    const sub = (s: string, e = 0) => s.replaceAll('{L}', String(l)).replaceAll('{E}', String(e));
    for (const [c, k, names] of family.layer) {
      const perExpert = c.includes('{E}');
      for (let e = 0; e < (perExpert ? config.nExperts : 1); e++) {
        put(`blk.${l}.${sub(c, e)}`, k, names.map((n) => sub(n, e)), true);
      }
    }
  }
  return { config, tensors };
}
