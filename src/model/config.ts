import { ConfigError, FormatError } from '../base/errors.js';
import { parseJsonFile } from '../base/files.js';
import { renderValue } from '../base/render.js';

/**
 * Grok-1 hyper-parameters as a typed record, the released model's values as a preset (run.py), and
 * builders from the configuration files a model may come with. Every builder validates.
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
}

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
  const positive: (keyof GrokConfig)[] = [
    'vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKVHeads', 'headDim', 'ffnSize', 'nExperts', 'nExpertsUsed', 'contextLength',
  ];
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
  for (const k of ['padToken', 'eosToken', 'bosToken'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 0 || c[k] >= c.vocabSize) {
      throw new ConfigError(source, `${k} ${c[k]} is outside the vocabulary (0…${c.vocabSize - 1})`);
    }
  }
}
