/**
 * A random-weight Grok-2 in its release layout (`grok synth --preset grok2 --form release`): config.json in
 * Grok-2's spelling, a synthetic tokenizer.tok.json of the config's vocabulary size, and the release's
 * safetensors files — `pytorch_model-000NN-TP-common.safetensors` with one kind of tensor for all layers,
 * `pytorch_model-0000{6,7,8}-TP-00r.safetensors` with rank r's rows of every expert's w1 / w3 and its columns
 * of w2 — all bf16, matrices ≈ N(0, 0.02²), norms 1. A benchmark subject at Grok-2's widths (one layer is
 * 8.4 GB, the embedding and lm_head 2.1 GB each) and a source for `grok convert`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors, type SafetensorsTensor } from '../formats/safetensors-writer.js';
import { validateConfig, type GrokConfig } from '../model/config.js';
import { f32ToBf16 } from '../quant/half.js';
import { gaussianFill } from './pool-jobs.js';

/** Tensor-parallel ranks of the release (its expert files). */
export const GROK2_RANKS = 8;

function streamSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h || 1;
}

/** A bf16 tensor of `shape`, values from stream `stream` (default: its name; sigma 0: all ones). */
function bf16Tensor(seed: number, name: string, shape: readonly number[], sigma: number, stream = name): SafetensorsTensor {
  return {
    name, dtype: 'BF16', shape,
    write(put) {
      const n = shape.reduce((a, d) => a * d, 1);
      const CHUNK = 1 << 21;
      const v = new Float32Array(CHUNK);
      const s0 = streamSeed(seed, stream);
      for (let i = 0, k = 0; i < n; i += CHUNK, k++) {
        const m = Math.min(CHUNK, n - i);
        const x = v.subarray(0, m);
        if (sigma === 0) x.fill(1);
        else gaussianFill(x, Math.imul(s0 ^ k, 0x9e3779b1) >>> 0, sigma);
        const out = new Uint16Array(m);
        for (let j = 0; j < m; j++) out[j] = f32ToBf16(x[j]!);
        put(new Uint8Array(out.buffer));
      }
    },
  };
}

/**
 * A tiktoken-style tok.json (Grok-2's format) of exactly `vocab` ids: 16 specials as the release numbers them
 * (<|pad|> 0, <|separator|> 1, <|eos|> 2, reserved, control), the 256 bytes, then merges of two earlier
 * tokens (letters and spaces mostly, at most 12 bytes), each new and ranked after its parts.
 */
export function syntheticTokJson(vocab: number, seed = 0): string {
  const specials = ['<|pad|>', '<|separator|>', '<|eos|>', ...Array.from({ length: 5 }, (_, i) => `<|reserved_${i + 3}|>`), ...Array.from({ length: 8 }, (_, i) => `<|control${i + 1}|>`)];
  if (vocab < specials.length + 256) throw new Error(`synthetic tokenizer: a vocabulary of ${vocab} cannot hold 16 specials and 256 bytes`);
  const regular: number[][] = Array.from({ length: 256 }, (_, b) => [b]);
  const seen = new Set(regular.map((b) => b.join(',')));
  let s = streamSeed(seed, 'tokenizer') >>> 0;
  const rand = (n: number) => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % n; };
  const letters = 'etaoinshrdlucmfwypvbgkjqxz '.split('').map((c) => c.charCodeAt(0));
  const start = regular.length;
  // Seed the merges with letter pairs, then grow words from tokens already made.
  while (specials.length + regular.length < vocab) {
    const a = regular.length === start || rand(4) === 0 ? [letters[rand(letters.length)]!] : regular[start + rand(regular.length - start)]!;
    const b = rand(3) === 0 ? regular[start + rand(Math.max(1, regular.length - start))] ?? [letters[rand(letters.length)]!] : [letters[rand(letters.length)]!];
    const t = [...a, ...b];
    const key = t.join(',');
    if (t.length > 12 || seen.has(key)) continue;
    seen.add(key);
    regular.push(t);
  }
  return JSON.stringify({
    regular_tokens: regular.map((bytes, i) => ({ token: specials.length + i, bytes })),
    special_tokens: specials.map((t, i) => ({ token: i, bytes: [...Buffer.from(t)] })),
    word_split: 'V1',
    vocab_size: vocab,
  });
}

/** Writes the release layout into `dir` (which must be empty or absent); returns the bytes of tensors written. */
export function synthGrok2Release(opts: { config: GrokConfig; dir: string; seed?: number; onProgress?: (done: number, total: number, file: string) => void }): number {
  const c = opts.config;
  validateConfig(c, 'synth config');
  if (c.family !== 'grok-2') throw new Error('synth --form release writes Grok-2\'s layout: use --preset grok2');
  if (c.ffnSize % GROK2_RANKS !== 0) throw new Error(`the expert width ${c.ffnSize} does not split into ${GROK2_RANKS} ranks`);
  const seed = opts.seed ?? 0;
  fs.mkdirSync(opts.dir, { recursive: true });
  if (fs.readdirSync(opts.dir).length) throw new Error(`${opts.dir}: not empty (refusing to mix models)`);
  const D = c.dModel, I = c.denseFfnSize, F = c.ffnSize, R = GROK2_RANKS, L = c.nLayers, E = c.nExperts;
  const Q = c.nHeads * c.headDim, KV = c.nKVHeads * c.headDim;
  const layers = (f: (l: number) => SafetensorsTensor[]) => Array.from({ length: L }, (_, l) => f(l)).flat();
  const m = (name: string, shape: number[]) => bf16Tensor(seed, name, shape, 0.02);
  const norm = (name: string) => bf16Tensor(seed, name, [D], 0);
  const lp = (l: number) => `model.layers.${l}.`;
  // Rank r's shard of each expert of layer l: same name in every rank's file, its own values.
  const experts = (l: number, w: string, shape: number[], r: number) => Array.from({ length: E }, (_, e) => {
    const name = `${lp(l)}block_sparse_moe.experts.${e}.${w}.weight`;
    return bf16Tensor(seed, name, shape, 0.02, `${name}@${r}`);
  });
  const files: [string, () => SafetensorsTensor[]][] = [
    ['00000-TP-common', () => [m('model.embed_tokens.weight', [c.vocabSize, D])]],
    ['00001-TP-common', () => [m('lm_head.weight', [c.vocabSize, D])]],
    ['00002-TP-common', () => [norm('model.norm.weight')]],
    ['00003-TP-common', () => layers((l) => [m(`${lp(l)}mlp.gate_proj.weight`, [I, D])])],
    ['00004-TP-common', () => layers((l) => [m(`${lp(l)}mlp.down_proj.weight`, [D, I])])],
    ['00005-TP-common', () => layers((l) => [m(`${lp(l)}mlp.up_proj.weight`, [I, D])])],
    ...Array.from({ length: R }, (_, r) => [`00006-TP-00${r}`, () => layers((l) => experts(l, 'w1', [F / R, D], r))] as [string, () => SafetensorsTensor[]]),
    ...Array.from({ length: R }, (_, r) => [`00007-TP-00${r}`, () => layers((l) => experts(l, 'w2', [D, F / R], r))] as [string, () => SafetensorsTensor[]]),
    ...Array.from({ length: R }, (_, r) => [`00008-TP-00${r}`, () => layers((l) => experts(l, 'w3', [F / R, D], r))] as [string, () => SafetensorsTensor[]]),
    ['00009-TP-common', () => layers((l) => [m(`${lp(l)}self_attn.k_proj.weight`, [KV, D])])],
    ['00010-TP-common', () => layers((l) => [m(`${lp(l)}self_attn.o_proj.weight`, [D, Q])])],
    ['00011-TP-common', () => layers((l) => [m(`${lp(l)}self_attn.q_proj.weight`, [Q, D])])],
    ['00012-TP-common', () => layers((l) => [m(`${lp(l)}self_attn.v_proj.weight`, [KV, D])])],
    ['00013-TP-common', () => layers((l) => [norm(`${lp(l)}pre_attn_norm.weight`)])],
    ['00014-TP-common', () => layers((l) => [norm(`${lp(l)}post_attn_norm.weight`)])],
    ['00015-TP-common', () => layers((l) => [norm(`${lp(l)}pre_moe_norm.weight`)])],
    ['00016-TP-common', () => layers((l) => [norm(`${lp(l)}post_moe_norm.weight`)])],
    ['00017-TP-common', () => layers((l) => [m(`${lp(l)}block_sparse_moe.gate.weight`, [E, D])])],
  ];
  const bytes = (ts: SafetensorsTensor[]) => ts.reduce((a, t) => a + 2 * t.shape.reduce((x, d) => x * d, 1), 0);
  const total = files.reduce((a, [, f]) => a + bytes(f()), 0);
  let done = 0;
  for (const [stem, tensors] of files) {
    const name = `pytorch_model-${stem}.safetensors`;
    const ts = tensors();
    writeSafetensors(path.join(opts.dir, name), ts);
    done += bytes(ts);
    opts.onProgress?.(done, total, name);
  }
  const config = {
    architectures: ['Grok1ForCausalLM'], model_type: 'git', torch_dtype: 'bfloat16',
    vocab_size: c.vocabSize, hidden_size: D, intermediate_size: I, moe_intermediate_size: F, residual_moe: I > 0,
    num_hidden_layers: L, num_attention_heads: c.nHeads, num_key_value_heads: c.nKVHeads, head_dim: c.headDim,
    num_local_experts: E, num_experts_per_tok: c.nExpertsUsed, max_position_embeddings: c.contextLength,
    embedding_multiplier_scale: c.embeddingMultiplier, output_multiplier_scale: c.outputMultiplier, rms_norm_eps: c.rmsNormEps,
    attn_logit_softcapping: c.attnSoftcap, router_logit_softcapping: c.routerSoftcap, final_logit_softcapping: c.finalLogitSoftcap,
    attn_temperature_len: c.attnTemperatureLen, rope_theta: c.ropeBase, rope_type: 'original',
    pad_token_id: c.padToken, eos_token_id: c.eosToken, bos_token_id: c.bosToken,
  };
  fs.writeFileSync(path.join(opts.dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  fs.writeFileSync(path.join(opts.dir, 'tokenizer.tok.json'), syntheticTokJson(c.vocabSize, seed));
  return total;
}
