import { ConfigError, FormatError } from '../base/errors.js';
import { parseJsonFile } from '../base/files.js';
import { renderValue } from '../base/render.js';

/**
 * Grok hyper-parameters as a typed record, the released Grok-1's values as a preset (run.py), and
 * builders from the configuration files a model may come with. Every builder validates.
 *
 * Grok-2 (xai-org/grok-2, 2025) is the same graph with five named differences, each a field below
 * (zero / 'tanh' / true = Grok-1's behaviour): a dense MLP beside the experts (denseFfnSize), a soft-cap
 * on the router logits (routerSoftcap) and on the final logits (finalLogitSoftcap), an attention
 * temperature for queries past attnTemperatureLen, the exact erf GELU, and no masking of pad keys.
 */

export interface GrokConfig {
  vocabSize: number;
  /** D: width of the residual stream (emb_size). */
  dModel: number;
  nLayers: number;
  /** H: query heads. */
  nHeads: number;
  /** G: key/value heads; H % G === 0. */
  nKVHeads: number;
  /** K: width of one head (key_size). Not assumed to be D / H. */
  headDim: number;
  /** F: hidden width of one expert. */
  ffnSize: number;
  /** E: experts per layer. */
  nExperts: number;
  /** A: experts chosen per token. */
  nExpertsUsed: number;
  embeddingMultiplier: number;
  outputMultiplier: number;
  attnOutputMultiplier: number;
  /** c in c·tanh(x/c) on attention logits (model.py: 30); 0 disables. */
  attnSoftcap: number;
  rmsNormEps: number;
  ropeBase: number;
  /** Context length (sequence_len). */
  contextLength: number;
  padToken: number;
  eosToken: number;
  bosToken: number;
  /** Which model this is, for messages and the GGUF writer: the behaviour comes from the fields below. */
  family: 'grok-1' | 'grok-2';
  /** Hidden width of the dense MLP run beside the experts in every layer (Grok-2 `residual_moe`); 0: none. */
  denseFfnSize: number;
  /** c in c·tanh(x/c) on the router logits before the softmax (Grok-2: 30); 0 disables. */
  routerSoftcap: number;
  /** c in c·tanh(x/c) on the output logits after ×outputMultiplier (Grok-2: 50); 0 disables. */
  finalLogitSoftcap: number;
  /**
   * L: a query at 0-based position p > L has its capped attention scores multiplied by log2(p)/log2(L)
   * (Grok-2 attn_temperature_len, 1024 in the release); 0 disables.
   */
  attnTemperatureLen: number;
  /** GELU of the gated FFNs: Grok-1's tanh approximation, or Grok-2's exact x·Φ(x) with erf. */
  gelu: 'tanh' | 'erf';
  /** Keys whose token is padToken are masked out of attention (Grok-1 model.py); Grok-2 (SGLang) masks none. */
  maskPadKeys: boolean;
}

/** The Grok-1 values of the fields Grok-2 added (what every Grok-1 format means when it says nothing). */
export const GROK1_FEATURES = Object.freeze({
  family: 'grok-1' as const, denseFfnSize: 0, routerSoftcap: 0, finalLogitSoftcap: 0, attnTemperatureLen: 0, gelu: 'tanh' as const, maskPadKeys: true,
});

/** ffn_size(D, w) from model.py: floor(w·D)·2 // 3, rounded up to a multiple of 8. */
export function ffnSizeFor(dModel: number, wideningFactor: number): number {
  let f = Math.floor((Math.floor(wideningFactor * dModel) * 2) / 3);
  f = f + ((8 - (f % 8)) % 8);
  return f;
}

/** The released Grok-1 (run.py). */
export const GROK1: Readonly<GrokConfig> = Object.freeze({
  vocabSize: 128 * 1024,
  dModel: 48 * 128,
  nLayers: 64,
  nHeads: 48,
  nKVHeads: 8,
  headDim: 128,
  ffnSize: ffnSizeFor(6144, 8),
  nExperts: 8,
  nExpertsUsed: 2,
  embeddingMultiplier: 78.38367176906169,
  outputMultiplier: 0.5773502691896257,
  attnOutputMultiplier: 0.08838834764831845,
  attnSoftcap: 30,
  rmsNormEps: 1e-5,
  ropeBase: 10000,
  contextLength: 8192,
  padToken: 0,
  eosToken: 2,
  bosToken: 1,
  ...GROK1_FEATURES,
});

/** The released Grok-2 (xai-org/grok-2 config.json; SGLang's reading of it). */
export const GROK2: Readonly<GrokConfig> = Object.freeze({
  vocabSize: 131072,
  dModel: 8192,
  nLayers: 64,
  nHeads: 64,
  nKVHeads: 8,
  headDim: 128,
  ffnSize: 16384,
  nExperts: 8,
  nExpertsUsed: 2,
  embeddingMultiplier: Math.sqrt(8192),
  outputMultiplier: 0.5,
  attnOutputMultiplier: 1 / Math.sqrt(128),
  attnSoftcap: 30,
  rmsNormEps: 1e-5,
  ropeBase: 208533496,
  contextLength: 131072,
  padToken: 0,
  eosToken: 2,
  bosToken: 0,
  family: 'grok-2',
  denseFfnSize: 32768,
  routerSoftcap: 30,
  finalLogitSoftcap: 50,
  attnTemperatureLen: 1024,
  gelu: 'erf',
  maskPadKeys: false,
});

type Json = Record<string, unknown>;

function num(source: string, obj: Json, keys: string[], fallback?: number): number {
  for (const k of keys) {
    if (obj[k] === undefined || obj[k] === null) continue;
    const v = obj[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new ConfigError(source, `field '${k}' must be a finite number, got ${renderValue(v)}`);
    }
    return v;
  }
  if (fallback === undefined) throw new ConfigError(source, `missing field '${keys[0]}'`);
  return fallback;
}

/**
 * Config from a JSON object in either the xAI run.py spelling (emb_size, num_q_heads, key_size, …, as in
 * the fixtures' golden.json) or the Hugging Face Grok-1 spelling (hidden_size, num_attention_heads, …).
 * Missing multipliers take the released model's values.
 */
export function configFromJson(obj: unknown, source: string): GrokConfig {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new ConfigError(source, 'expected a JSON object');
  }
  const o = (obj as Json).config && typeof (obj as Json).config === 'object' ? ((obj as Json).config as Json) : (obj as Json);
  const dModel = num(source, o, ['emb_size', 'hidden_size']);
  const nHeads = num(source, o, ['num_q_heads', 'num_attention_heads']);
  const widening = o.widening_factor;
  // Grok-2's config.json (architectures Grok1ForCausalLM, model_type "git") is told apart by its own fields.
  if (o.residual_moe !== undefined || o.router_logit_softcapping !== undefined || o.attn_temperature_len !== undefined || o.final_logit_softcapping !== undefined) {
    return grok2FromJson(o, source, dModel, nHeads);
  }
  const cfg: GrokConfig = {
    vocabSize: num(source, o, ['vocab_size']),
    dModel,
    nLayers: num(source, o, ['num_layers', 'num_hidden_layers']),
    nHeads,
    nKVHeads: num(source, o, ['num_kv_heads', 'num_key_value_heads'], nHeads),
    headDim: num(source, o, ['key_size', 'head_dim'], Math.floor(dModel / nHeads)),
    ffnSize: num(
      source, o, ['ffn_size', 'intermediate_size', 'moe_intermediate_size'],
      typeof widening === 'number' ? ffnSizeFor(dModel, widening) : undefined,
    ),
    nExperts: num(source, o, ['num_experts', 'num_local_experts']),
    nExpertsUsed: num(source, o, ['num_selected_experts', 'num_experts_per_tok']),
    embeddingMultiplier: num(source, o, ['embedding_multiplier_scale'], GROK1.embeddingMultiplier),
    outputMultiplier: num(source, o, ['output_multiplier_scale'], GROK1.outputMultiplier),
    attnOutputMultiplier: num(source, o, ['attn_output_multiplier'], GROK1.attnOutputMultiplier),
    attnSoftcap: num(source, o, ['max_attn_value', 'attn_logit_softcapping'], GROK1.attnSoftcap),
    rmsNormEps: num(source, o, ['rms_norm_eps'], GROK1.rmsNormEps),
    ropeBase: num(source, o, ['rope_base', 'rope_theta'], GROK1.ropeBase),
    contextLength: num(source, o, ['sequence_len', 'max_position_embeddings'], GROK1.contextLength),
    padToken: num(source, o, ['pad_token', 'pad_token_id'], GROK1.padToken),
    eosToken: num(source, o, ['eos_token', 'eos_token_id'], GROK1.eosToken),
    bosToken: num(source, o, ['bos_token', 'bos_token_id'], GROK1.bosToken),
    ...GROK1_FEATURES,
  };
  validateConfig(cfg, source);
  return cfg;
}

/**
 * Grok-2's config.json (xai-org/grok-2; the semantics SGLang runs): intermediate_size is the dense MLP,
 * moe_intermediate_size one expert; scores × head_dim^-0.5; rope_type "original" means plain RoPE
 * (the YaRN-looking fields beside it are not used), any other rope_type is refused.
 */
function grok2FromJson(o: Json, source: string, dModel: number, nHeads: number): GrokConfig {
  const ropeType = o.rope_type ?? 'original';
  if (ropeType !== 'original') throw new ConfigError(source, `rope_type ${renderValue(ropeType)} is not supported (Grok-2 uses "original": plain RoPE)`);
  const residual = o.residual_moe ?? false;
  if (typeof residual !== 'boolean') throw new ConfigError(source, `field 'residual_moe' must be true or false, got ${renderValue(residual)}`);
  for (const k of ['sliding_window_size']) {
    const v = o[k];
    if (v !== undefined && v !== null && v !== -1 && v !== 0) throw new ConfigError(source, `field '${k}' = ${renderValue(v)}: sliding-window attention is not supported`);
  }
  // Defaults where the file is silent are SGLang's (models/grok.py): head_dim 128, attention and router caps
  // 30 (its router cap is fixed at 30), no temperature, the expert width falling back to intermediate_size.
  const headDim = num(source, o, ['head_dim'], 128);
  const cfg: GrokConfig = {
    vocabSize: num(source, o, ['vocab_size']),
    dModel,
    nLayers: num(source, o, ['num_hidden_layers']),
    nHeads,
    nKVHeads: num(source, o, ['num_key_value_heads'], nHeads),
    headDim,
    ffnSize: num(source, o, ['moe_intermediate_size', 'intermediate_size']),
    nExperts: num(source, o, ['num_local_experts']),
    nExpertsUsed: num(source, o, ['num_experts_per_tok']),
    embeddingMultiplier: num(source, o, ['embedding_multiplier_scale'], 1),
    outputMultiplier: num(source, o, ['output_multiplier_scale'], 1),
    attnOutputMultiplier: 1 / Math.sqrt(headDim),
    attnSoftcap: Math.max(0, num(source, o, ['attn_logit_softcapping'], 30)),
    rmsNormEps: num(source, o, ['rms_norm_eps'], 1e-5),
    ropeBase: num(source, o, ['rope_theta'], 10000),
    contextLength: num(source, o, ['max_position_embeddings'], 131072),
    padToken: num(source, o, ['pad_token_id'], 0),
    eosToken: num(source, o, ['eos_token_id'], 2),
    bosToken: num(source, o, ['bos_token_id'], 0),
    family: 'grok-2',
    denseFfnSize: residual ? num(source, o, ['intermediate_size']) : 0,
    routerSoftcap: Math.max(0, num(source, o, ['router_logit_softcapping'], 30)),
    finalLogitSoftcap: Math.max(0, num(source, o, ['final_logit_softcapping'], 0)),
    attnTemperatureLen: Math.max(0, num(source, o, ['attn_temperature_len'], 0)),
    gelu: 'erf',
    maskPadKeys: false,
  };
  validateConfig(cfg, source);
  return cfg;
}

/** Read a config file (config.json in either spelling, or a fixture's golden.json) and validate it. */
export function readConfigFile(file: string): GrokConfig {
  let json: unknown;
  try {
    json = parseJsonFile(file, 1 << 20);
  } catch (e) {
    throw e instanceof FormatError ? new ConfigError(file, `cannot read the config: ${e.detail}`) : e;
  }
  return configFromJson(json, file);
}

/** Check that the numbers describe a model that can exist; names the offending field. */
export function validateConfig(c: GrokConfig, source: string): void {
  const positive = [
    'vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKVHeads', 'headDim', 'ffnSize', 'nExperts', 'nExpertsUsed', 'contextLength',
  ] as const;
  for (const k of positive) {
    const v = c[k];
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(source, `${k} must be a positive integer, got ${v}`);
  }
  if (c.nHeads % c.nKVHeads !== 0) {
    throw new ConfigError(source, `query heads (${c.nHeads}) must be a multiple of key/value heads (${c.nKVHeads})`);
  }
  if (c.headDim % 2 !== 0) throw new ConfigError(source, `head dimension ${c.headDim} must be even for rotate-half RoPE`);
  if (c.nExpertsUsed > c.nExperts) {
    throw new ConfigError(source, `experts per token (${c.nExpertsUsed}) exceeds the number of experts (${c.nExperts})`);
  }
  if (!(c.rmsNormEps > 0)) throw new ConfigError(source, `rms_norm_eps must be > 0, got ${c.rmsNormEps}`);
  if (!(c.ropeBase > 0)) throw new ConfigError(source, `rope base must be > 0, got ${c.ropeBase}`);
  if (c.attnSoftcap < 0) throw new ConfigError(source, `attention soft-cap must be ≥ 0, got ${c.attnSoftcap}`);
  if (!Number.isInteger(c.denseFfnSize) || c.denseFfnSize < 0) throw new ConfigError(source, `dense MLP width must be a non-negative integer, got ${c.denseFfnSize}`);
  for (const k of ['routerSoftcap', 'finalLogitSoftcap', 'attnTemperatureLen'] as const) {
    if (!(c[k] >= 0) || !Number.isFinite(c[k])) throw new ConfigError(source, `${k} must be a finite number ≥ 0, got ${c[k]}`);
  }
  if (c.attnTemperatureLen === 1) throw new ConfigError(source, 'attn_temperature_len 1 would divide by log2(1) = 0');
  if (c.gelu !== 'tanh' && c.gelu !== 'erf') throw new ConfigError(source, `gelu must be 'tanh' or 'erf', got ${renderValue(c.gelu)}`);
  for (const k of ['padToken', 'eosToken', 'bosToken'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 0 || c[k] >= c.vocabSize) {
      throw new ConfigError(source, `${k} ${c[k]} is outside the vocabulary (0…${c.vocabSize - 1})`);
    }
  }
}
