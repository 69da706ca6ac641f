/**
 * The forward pass on configurations unlike the fixtures (D ≠ H·K, no GQA, top-1 and top-all routing,
 * one layer, odd sizes): cache and batching invariants that must hold for any configuration.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GrokConfig } from '../src/model/config.js';
import { GROK1, GROK1_FEATURES, validateConfig } from '../src/model/config.js';
import { GrokModel, KVCache, type GrokWeights } from '../src/model/grok.js';
import type { KVType } from '../src/kernels/types.js';
import { referenceKernels } from '../src/kernels/reference.js';
import type { Matrix } from '../src/quant/matrix.js';
import { maxAbsDiff } from './fixtures.js';

function randomModel(c: GrokConfig, seed: number, kvType?: KVType): GrokModel {
  let s = seed;
  const r = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const mat = (nIn: number, nOut: number): Matrix => {
    const v = Float32Array.from({ length: nIn * nOut }, () => r() / Math.sqrt(nIn));
    return { layout: 'rows', type: 'f32', nIn, nOut, data: new Uint8Array(v.buffer) };
  };
  const vec = (n: number) => Float32Array.from({ length: n }, () => 1 + 0.2 * r());
  const w: GrokWeights = {
    token_embd: mat(c.dModel, c.vocabSize),
    output_norm: vec(c.dModel),
    layers: Array.from({ length: c.nLayers }, () => ({
      attn_norm: vec(c.dModel), attn_q: mat(c.dModel, c.nHeads * c.headDim), attn_k: mat(c.dModel, c.nKVHeads * c.headDim),
      attn_v: mat(c.dModel, c.nKVHeads * c.headDim), attn_output: mat(c.nHeads * c.headDim, c.dModel), attn_output_norm: vec(c.dModel),
      ffn_norm: vec(c.dModel), ffn_gate_inp: mat(c.dModel, c.nExperts),
      ffn_gate_exps: Array.from({ length: c.nExperts }, () => mat(c.dModel, c.ffnSize)),
      ffn_up_exps: Array.from({ length: c.nExperts }, () => mat(c.dModel, c.ffnSize)),
      ffn_down_exps: Array.from({ length: c.nExperts }, () => mat(c.ffnSize, c.dModel)),
      layer_output_norm: vec(c.dModel),
    })),
  };
  return new GrokModel(c, w, referenceKernels, kvType ? { kvType } : {});
}

const base: GrokConfig = {
  vocabSize: 37, dModel: 24, nLayers: 2, nHeads: 3, nKVHeads: 1, headDim: 6, ffnSize: 13, nExperts: 3, nExpertsUsed: 2,
  embeddingMultiplier: 1.7, outputMultiplier: 0.5773502691896257, attnOutputMultiplier: 0.4, attnSoftcap: 30,
  rmsNormEps: 1e-5, ropeBase: 10000, contextLength: 64, padToken: 0, eosToken: 2, bosToken: 1,
  ...GROK1_FEATURES,
};

const variants: [string, Partial<GrokConfig>][] = [
  ['D ≠ H·K, GQA 3:1, top-2 of 3', {}],
  ['no GQA (H = G), top-1', { nKVHeads: 3, nExpertsUsed: 1 }],
  ['all experts active, one layer, odd vocab', { nExpertsUsed: 3, nLayers: 1, vocabSize: 11 }],
  ['wide heads (H·K > D), 5 experts', { nHeads: 4, nKVHeads: 2, headDim: 10, nExperts: 5 }],
];

for (const [name, v] of variants) {
  test(`general config (${name}): prefill + decode and batching equal one full pass`, () => {
    const c = { ...base, ...v };
    validateConfig(c, 'test');
    const model = randomModel(c, 42);
    const tokens = Array.from({ length: 11 }, (_, i) => (i * 7 + 3) % c.vocabSize);
    const V = c.vocabSize;
    const full = model.forward([{ tokens, cache: model.newCache() }]);
    assert.ok(full.every(Number.isFinite));
    const cache = model.newCache();
    const parts = [model.forward([{ tokens: tokens.slice(0, 4), cache }])];
    for (let t = 4; t < tokens.length; t += 3) parts.push(model.forward([{ tokens: tokens.slice(t, t + 3), cache }]));
    const joined = new Float32Array(full.length);
    let o = 0;
    for (const p of parts) { joined.set(p, o); o += p.length; }
    assert.ok(maxAbsDiff(joined, full) < 1e-5);
    const other = model.newCache();
    const batched = model.forward([{ tokens, cache: model.newCache() }, { tokens: tokens.slice(0, 5), cache: other }], { lastOnly: true });
    assert.ok(maxAbsDiff(batched.subarray(0, V), full.subarray((tokens.length - 1) * V)) < 1e-5);
    assert.ok(maxAbsDiff(batched.subarray(V), full.subarray(4 * V, 5 * V)) < 1e-5);
  });
}

test('top-all routing makes the MoE independent of the router order: gates are the plain softmax', () => {
  // With A = E every expert is used with weight softmax(router)_e, so permuting experts together with
  // the router's columns must not change the output.
  const c = { ...base, nExpertsUsed: 3 };
  const m = randomModel(c, 9);
  const tokens = [5, 9, 14, 3];
  const a = m.forward([{ tokens, cache: m.newCache() }]);
  for (const L of m.weights.layers) {
    const perm = [2, 0, 1];
    L.ffn_gate_exps = perm.map((e) => L.ffn_gate_exps[e]!);
    L.ffn_up_exps = perm.map((e) => L.ffn_up_exps[e]!);
    L.ffn_down_exps = perm.map((e) => L.ffn_down_exps[e]!);
    const r = L.ffn_gate_inp;
    if (r.layout !== 'rows') throw new Error('rows expected');
    const rowBytes = r.nIn * 4;
    const data = new Uint8Array(r.data.length);
    perm.forEach((e, i) => data.set(r.data.subarray(e * rowBytes, (e + 1) * rowBytes), i * rowBytes));
    L.ffn_gate_inp = { ...r, data };
  }
  const b = m.forward([{ tokens, cache: m.newCache() }]);
  assert.ok(maxAbsDiff(a, b) < 1e-5);
});

test('KV cache types: f16 and q8_0 caches give prefill + decode equal to one full pass, logits near the f32 cache\'s', () => {
  // q8_0 rows are blocks of 32 along the head width; every expert active, so that the logits are a
  // continuous function of the cache (a top-2 of 3 near a tie flips with the rounding).
  const c = { ...base, nHeads: 4, nKVHeads: 2, headDim: 32, nExpertsUsed: 3 };
  const tokens = Array.from({ length: 13 }, (_, i) => (i * 5 + 3) % c.vocabSize);
  const exact = randomModel(c, 7).forward([{ tokens, cache: randomModel(c, 7).newCache() }]);
  // The stored keys and values round: f16 to 2^-11 relative, q8_0 to 1/254 of each 32-block's largest value.
  for (const [kvType, tol] of [['f32', 0], ['f16', 2e-3], ['q8_0', 3e-2]] as const) {
    const model = randomModel(c, 7, kvType);
    assert.equal(model.kvType, kvType);
    const cache = model.newCache();
    assert.equal(cache.kvType, kvType);
    const full = model.forward([{ tokens, cache }]);
    assert.ok(maxAbsDiff(full, exact) <= tol, `${kvType}: logits differ from the f32 cache's by ${maxAbsDiff(full, exact)}`);
    // Chunked prefill and decode through a growing (reserve) and cloned cache: the same logits bit for bit.
    const c2 = new KVCache(c, 64, 2, kvType);
    const parts = [model.forward([{ tokens: tokens.slice(0, 5), cache: c2 }])];
    const copy = c2.clone();
    for (let t = 5; t < tokens.length; t++) parts.push(model.forward([{ tokens: [tokens[t]!], cache: copy }]));
    const joined = new Float32Array(full.length);
    let o = 0;
    for (const p of parts) { joined.set(p, o); o += p.length; }
    assert.ok(Buffer.from(joined.buffer).equals(Buffer.from(full.buffer)), `${kvType}: prefill + decode differs from one pass`);
  }
});

test('KV cache types: default by the kernels\' numerics, sizes per position, and rejected widths', () => {
  assert.equal(randomModel(base, 1).kvType, 'f32'); // the reference kernels: exact
  assert.equal(new GrokModel(base, randomModel(base, 1).weights, { ...referenceKernels, mode: 'fast' }).kvType, 'f16');
  // Grok-1: 64 layers × 8 KV heads × 128, keys and values
  assert.equal(KVCache.bytesPerPosition(GROK1, 'f32'), 512 * 1024);
  assert.equal(KVCache.bytesPerPosition(GROK1, 'f16'), 256 * 1024);
  assert.equal(KVCache.bytesPerPosition(GROK1, 'q8_0'), 64 * 2 * 8 * 4 * 34);
  assert.throws(() => randomModel(base, 1, 'q8_0'), /multiple of 32, got 6/);
  assert.throws(() => new KVCache(base, 8, 0, 'q4_0' as KVType), /KV type must be one of f32, f16, q8_0/);
});
