/**
 * Shared by the kernel tests (WebAssembly and native): seeded inputs, matrices built through a kernel set's allocator,
 * the tolerance scale Σ|w·x|, and fast mode's activation rounding from its definition (per 32 values
 * d = max|x|/127, q = round-half-even(x/d), as f32x4.nearest and the C kernels round).
 */
import assert from 'node:assert/strict';
import { attentionReference, attentionTemperature, geluReference, matmulReference } from '../src/kernels/reference.js';
import { allocKV, kvRowElements, writeKVRows } from '../src/kernels/kv.js';
import { KV_TYPES, type KVData, type Kernels, type KVType } from '../src/kernels/types.js';
import { bf16ToF32, f32ToBf16 } from '../src/quant/half.js';
import { blockFormat, rowBytes, type BlockType } from '../src/quant/index.js';
import type { Matrix, RowMatrix, Xai8Matrix } from '../src/quant/matrix.js';
import { hasRandomBlocks, randomBlocks } from '../src/quant/random-blocks.js';

export const ALL_TYPES: BlockType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl',
  'iq4_xs', 'iq1_s', 'iq1_m', 'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs', 'iq3_s'];
export const FLOAT_TYPES = new Set<BlockType>(['f32', 'f16', 'bf16']);
export const BLOCKS = [1, 3, 7, 17, 33, 127, 129];

import { mulberry32, randn } from './random.js';

export { mulberry32 as rng, randn } from './random.js';

export function rowsMatrix(k: Kernels, type: BlockType, nIn: number, nOut: number, r: () => number): RowMatrix {
  const f = blockFormat(type);
  const rb = rowBytes(f, nIn);
  const data = k.allocWeight(rb * nOut);
  if (hasRandomBlocks(type)) {
    // Types we only read: random codes and signs, scales set for values of RMS ≈ 1 like randn's.
    data.set(randomBlocks(type, (rb / f.bytesPerBlock) * nOut, () => Math.floor(r() * 4294967296), 1));
    return { layout: 'rows', type, nIn, nOut, data };
  }
  const vals = randn(r, nIn * nOut);
  const quantize = f.quantize;
  assert.ok(quantize, `${type} has a quantiser`);
  for (let o = 0; o < nOut; o++) quantize(vals, o * nIn, nIn, data, o * rb);
  return { layout: 'rows', type, nIn, nOut, data };
}

export function xai8Matrix(k: Kernels, nIn: number, nOut: number, groups: number, r: () => number): Xai8Matrix {
  const qb = k.allocWeight(nIn * nOut);
  const sb = k.allocWeight(2 * groups * nOut);
  const q = new Int8Array(qb.buffer, qb.byteOffset, nIn * nOut);
  const scales = new Uint16Array(sb.buffer, sb.byteOffset, groups * nOut);
  for (let i = 0; i < q.length; i++) q[i] = Math.floor(r() * 256) - 128;
  for (let i = 0; i < scales.length; i++) scales[i] = f32ToBf16((0.5 + r()) / 64);
  return { layout: 'xai8', nIn, nOut, groups, q, scales };
}

/** Σ|w·x| per output: the scale of float32 summation error. */
export function absBound(w: Matrix, x: Float32Array, T: number): Float32Array {
  const ax = x.map(Math.abs);
  const out = new Float32Array(T * w.nOut);
  if (w.layout === 'rows') {
    const f = blockFormat(w.type);
    const vals = new Float32Array(w.nIn * w.nOut);
    const rb = rowBytes(f, w.nIn);
    for (let o = 0; o < w.nOut; o++) f.dequantize(w.data, o * rb, w.nIn, vals, o * w.nIn);
    const data = new Uint8Array(vals.map(Math.abs).buffer);
    matmulReference({ layout: 'rows', type: 'f32', nIn: w.nIn, nOut: w.nOut, data }, ax, T, out);
  } else {
    matmulReference({ ...w, q: w.q.map(Math.abs), scales: w.scales.map((s) => s & 0x7fff) }, ax, T, out);
  }
  return out;
}

export function assertClose(got: Float32Array, want: Float32Array, bound: Float32Array, rel: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = rel * bound[i]! + 1e-30;
    if (!(Math.abs(got[i]! - want[i]!) <= tol)) {
      assert.fail(`${what}: element ${i}: got ${got[i]}, want ${want[i]} (tolerance ${tol.toExponential(2)})`);
    }
  }
}

/** Fast mode's activation quantisation, from its definition (round half to even). */
export function quantDequantX(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]!));
    const d = Math.fround(amax / 127);
    const id = d > 0 ? Math.fround(1 / d) : 0;
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b + j]! * id);
      let q = Math.round(v);
      if (q - v === 0.5 && q % 2 !== 0) q -= 1;
      out[b + j] = Math.fround(q * d);
    }
  }
  return out;
}

/** Activations rounded to bf16 (nearest even) and back: what the native avx512_bf16 level multiplies bf16 rows
 * with in fast mode (vdpbf16ps, as llama.cpp's BF16 dot), from the definition. */
export function bf16RoundX(x: Float32Array): Float32Array {
  return x.map((v) => bf16ToF32(f32ToBf16(v)));
}

/** The activations native kernels at `level` in `mode` multiply rows of `type` with (the reference is applied to these). */
export function nativeActivations(level: string, mode: 'exact' | 'fast', type: BlockType, x: Float32Array): Float32Array {
  if (mode !== 'fast') return x;
  if (!FLOAT_TYPES.has(type)) return quantDequantX(x);
  return type === 'bf16' && level === 'avx512_bf16' ? bf16RoundX(x) : x;
}

export function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Batch invariance: each of the T output rows of k.matmul(w, tokens off … off+T−1) equals, bit for bit,
 * `solo[token]` (that token computed alone).
 */
export function assertSameAsAlone(k: Kernels, w: Matrix, x: Float32Array, off: number, T: number, solo: readonly Buffer[], what: string): void {
  const { nIn, nOut } = w;
  const y = new Float32Array(T * nOut);
  k.matmul(w, x.subarray(off * nIn, (off + T) * nIn), T, y);
  for (let t = 0; t < T; t++) {
    const got = bytesOf(y.subarray(t * nOut, (t + 1) * nOut));
    if (!got.equals(solo[off + t]!)) {
      const a = new Float32Array(solo[off + t]!.buffer, solo[off + t]!.byteOffset, nOut);
      const b = y.subarray(t * nOut, (t + 1) * nOut);
      const j = b.findIndex((v, i) => !Object.is(v, a[i]));
      assert.fail(`${what}, ${k.name}: token ${off + t} at position ${t} of T = ${T}: output ${j} is ${b[j]}, alone ${a[j]}`);
    }
  }
}

/** KL(p‖q) of softmax(a) against softmax(b), in nats. */
export function klDivergence(a: Float32Array, b: Float32Array): number {
  const lse = (v: Float32Array): number => {
    let m = -Infinity;
    for (const x of v) m = Math.max(m, x);
    let s = 0;
    for (const x of v) s += Math.exp(x - m);
    return m + Math.log(s);
  };
  const la = lse(a), lb = lse(b);
  let kl = 0;
  for (let i = 0; i < a.length; i++) kl += Math.exp(a[i]! - la) * (a[i]! - la - (b[i]! - lb));
  return kl;
}

/** Attention at Grok-1's head sizes (48/8 heads of 128, 203 keys, one masked; and an odd head width) against the reference. */
export function checkAttentionAtGrokSizes(k: Kernels): void {
  const r = mulberry32(52);
  for (const [nHeads, nKV, headDim, pos0, T] of [[48, 8, 128, 200, 3], [6, 2, 33, 40, 17]] as const) {
    const cap = pos0 + T + 5;
    const q = randn(r, T * nHeads * headDim, 2);
    const kCache = randn(r, cap * nKV * headDim, 2), vCache = randn(r, cap * nKV * headDim);
    const keyMask = Uint8Array.from({ length: cap }, (_, i) => (i === 7 ? 0 : 1));
    const args = { q, kCache, vCache, keyMask, T, pos0, nHeads, nKV, headDim, scale: 0.08838834764831845, softcap: 30 };
    const o1 = new Float32Array(T * nHeads * headDim), o2 = new Float32Array(T * nHeads * headDim);
    k.attention({ ...args, out: o1 });
    attentionReference({ ...args, out: o2 });
    assertClose(o1, o2, o2.map(() => 1), 1e-5, `attention ${nHeads}/${nKV}×${headDim} pos0=${pos0} T=${T}`);
  }
}

/** rows float32 rows of headDim values stored as a kvType cache. */
export function kvCache(kvType: KVType, values: Float32Array, headDim: number): KVData {
  const rows = values.length / headDim;
  const c = allocKV(kvType, rows * kvRowElements(kvType, headDim));
  writeKVRows(kvType, values, rows, headDim, c, 0);
  return c;
}

/**
 * Attention with a KV cache of each type against the reference reading the same cache (f16 / q8_0 rows
 * dequantised): odd head counts and widths; decoded queries with 1, 7, 33, 129, 257, 1001 and 1301 keys
 * (across the fast path's 256-key chunks); prefill calls (T = 5 across a chunk boundary, T = 17 from 0,
 * causal); a masked key in every chunk; softcap 30 (scores of s.d. ≈ 8: peaked softmax, deep in the cap's
 * curve) and none.
 * |Δ| ≤ tol · max|v| (values are N(0, 1)).
 */
export function checkAttentionKVTypes(k: Pick<Kernels, 'name' | 'attention'>, tol: number, kvTypes: readonly KVType[] = KV_TYPES): void {
  const r = mulberry32(91);
  const shapes = [[48, 8, 128], [5, 1, 64], [9, 3, 32], [3, 1, 7]] as const;
  const calls = [[1, 0], [1, 6], [1, 32], [1, 128], [1, 256], [1, 1000], [1, 1300], [5, 253], [17, 0]] as const;
  let worst = 0;
  for (const [nHeads, nKV, headDim] of shapes) {
    for (const kvType of kvTypes) {
      if (kvType === 'q8_0' && headDim % 32 !== 0) continue;
      for (const [T, pos0] of calls) {
        if (nHeads === 48 && pos0 === 1300) continue; // the largest shape at 1001 keys already
        const n = pos0 + T;
        const kf = randn(r, n * nKV * headDim, 2), vf = randn(r, n * nKV * headDim);
        const keyMask = Uint8Array.from({ length: n }, (_, i) => (i % 256 === 3 ? 0 : 1));
        const kCache = kvCache(kvType, kf, headDim), vCache = kvCache(kvType, vf, headDim);
        for (const softcap of [30, 0]) {
          const args = { q: randn(r, T * nHeads * headDim, 2), kCache, vCache, kvType, keyMask, T, pos0, nHeads, nKV, headDim, scale: 2 / Math.sqrt(headDim), softcap };
          const o1 = new Float32Array(T * nHeads * headDim), o2 = new Float32Array(T * nHeads * headDim);
          k.attention({ ...args, out: o1 });
          attentionReference({ ...args, out: o2 });
          let vmax = 0;
          for (const x of vf) vmax = Math.max(vmax, Math.abs(x));
          for (let i = 0; i < o1.length; i++) worst = Math.max(worst, Math.abs(o1[i]! - o2[i]!) / vmax);
          assertClose(o1, o2, o2.map(() => vmax), tol, `${k.name} attention ${kvType} ${nHeads}/${nKV}×${headDim} pos0=${pos0} T=${T} softcap=${softcap}`);
        }
      }
    }
  }
  if (process.env.GROK_SHOW_ERRORS) console.log(`${k.name}: attention max |Δ|/max|v| = ${worst.toExponential(2)}`);
}

/**
 * Grok-2's attention temperature (Kernels.attention in types.ts: the soft-capped scores of the query at
 * position p > L multiplied by log2(p)/log2(L)) on every kernel set given, against the reference reading the
 * same cache. Query positions straddle L: L = 8 over positions 0…40 in one prefill call and in decoded
 * calls at 7, 8, 9 and 40; L = 1024 from pos0 = 1019 (T = 8, across the fast path's chunk bound at 1024)
 * and decoded at 1025 and 1100; L = 100.3 (not an integer, nor a float32) from pos0 = 98. Head widths 6, 12, 16 and
 * 128; GQA groups of 8, 3, 1 and 6 query heads per KV head; each KV type the width allows; soft-cap 30 and
 * none. |Δ| ≤ tol · max|v| (values N(0, 1)). Where some τ exceeds 1.01, the same call without the temperature
 * differs from the reference by more than 3·tol, so the check fails if a kernel leaves τ out (just past L, as
 * at 1026 with L = 1024, τ − 1 is a few 1e-4: those calls check the boundary, not that τ is there).
 */
export function checkAttentionTemperature(sets: readonly Pick<Kernels, 'name' | 'attention'>[], tol: number, kvTypes: readonly KVType[] = KV_TYPES): void {
  const r = mulberry32(23);
  const shapes = [[8, 1, 16], [6, 2, 6], [3, 3, 12], [48, 8, 128]] as const;
  const calls = [[8, 41, 0], [8, 1, 7], [8, 1, 8], [8, 1, 9], [8, 1, 40], [1024, 8, 1019], [1024, 1, 1025], [1024, 1, 1100], [100.3, 5, 98]] as const;
  const worst = new Map<string, number>();
  for (const [nHeads, nKV, headDim] of shapes) {
    for (const [L, T, pos0] of calls) {
      if (nHeads === 48 && T === 1) continue; // the largest shape: the two calls of many queries suffice
      const n = pos0 + T;
      const kf = randn(r, n * nKV * headDim, 2), vf = randn(r, n * nKV * headDim);
      const keyMask = Uint8Array.from({ length: n }, (_, i) => (i % 256 === 3 ? 0 : 1));
      let vmax = 0;
      for (const x of vf) vmax = Math.max(vmax, Math.abs(x));
      for (const kvType of kvTypes) {
        if (kvType === 'q8_0' && headDim % 32 !== 0) continue;
        const kCache = kvCache(kvType, kf, headDim), vCache = kvCache(kvType, vf, headDim);
        for (const softcap of [30, 0]) {
          const args = { q: randn(r, T * nHeads * headDim, 2), kCache, vCache, kvType, keyMask, T, pos0, nHeads, nKV, headDim, scale: 2 / Math.sqrt(headDim), softcap };
          const want = new Float32Array(T * nHeads * headDim), plain = new Float32Array(T * nHeads * headDim);
          attentionReference({ ...args, temperatureLen: L, out: want });
          attentionReference({ ...args, out: plain });
          const what = `attention ${kvType} ${nHeads}/${nKV}×${headDim} L=${L} pos0=${pos0} T=${T} softcap=${softcap}`;
          if (attentionTemperature(pos0 + T - 1, L) > 1.01) {
            let moved = 0;
            for (let i = 0; i < want.length; i++) moved = Math.max(moved, Math.abs(want[i]! - plain[i]!));
            // Past tol plus a kernel's own error (≤ 2e-6·max|v| measured), so a kernel ignoring τ fails below.
            assert.ok(moved > 3 * tol * vmax, `${what}: the temperature should move the reference's output (max |Δ| ${moved})`);
          } else if (pos0 + T - 1 <= L) assert.deepEqual(want, plain, `${what}: no query past L, so τ = 1 everywhere`);
          for (const k of sets) {
            const got = new Float32Array(T * nHeads * headDim);
            k.attention({ ...args, temperatureLen: L, out: got });
            let w = worst.get(k.name) ?? 0;
            for (let i = 0; i < got.length; i++) w = Math.max(w, Math.abs(got[i]! - want[i]!) / vmax);
            worst.set(k.name, w);
            assertClose(got, want, want.map(() => vmax), tol, `${k.name} ${what}`);
          }
        }
      }
    }
  }
  if (process.env.GROK_SHOW_ERRORS) for (const [name, w] of worst) console.log(`${name}: attention with temperature max |Δ|/max|v| = ${w.toExponential(2)}`);
}

/** temperatureLen values outside the contract (0, or finite > 1), each with the error every backend throws, T = 0 included. */
export function checkTemperatureLenErrors(k: Pick<Kernels, 'name' | 'attention'>): void {
  const base = { q: new Float32Array(16), kCache: new Float32Array(16), vCache: new Float32Array(16), keyMask: new Uint8Array(2).fill(1), T: 2, pos0: 0, nHeads: 1, nKV: 1, headDim: 8, scale: 1, softcap: 0, out: new Float32Array(16) };
  for (const L of [1, -1, -1024, 0.5, NaN, Infinity, -Infinity]) {
    for (const T of [2, 0]) {
      assert.throws(() => k.attention({ ...base, T, temperatureLen: L }), new RegExp(`attention: temperatureLen must be 0 \\(off\\) or a finite number > 1, got ${L}$`), `${k.name} L=${L} T=${T}`);
    }
  }
  for (const L of [0, 1.0000001, 2, 1024, undefined]) k.attention({ ...base, temperatureLen: L }); // valid: they run
}

/**
 * GELU, erf form (exact x·½(1 + erf(x/√2)), Grok-2) on a kernel set against the reference: over [−10, 10]
 * (200 values: one thread; 200k: the threaded path; odd lengths for vector tails), gated by `up`, far tails
 * to ±40, ±0, subnormals, ±1e30, ±Infinity and NaN. Within float32 rounding: |Δ| ≤ 2.4e-7·|want| (the two
 * float64 results round to the same float32 or neighbours) + 1e-12 (1 + erf cancels for x ≪ 0, in both, to
 * an absolute ~1e-16·|x|); an approximation of erf within ε adds tolX = ε/2 times |x|. Non-finite results as
 * the tanh form's: NaN → NaN, −∞ → NaN (−∞ · 0), +∞ → +∞.
 */
export function checkGeluErf(k: Pick<Kernels, 'name' | 'gelu'>, tolX = 0): void {
  const r = mulberry32(61);
  const special = [0, -0, 1e-40, -1e-40, 1e-30, -1e-30, 5.9, -5.9, 8.5, -8.5, 10, -10, 12, -12, 20, -20, 40, -40, 1e30, -1e30, Infinity, -Infinity, NaN];
  const check = (x: Float32Array, got: Float32Array, want: Float32Array, what: string): void => {
    for (let i = 0; i < want.length; i++) {
      const g = got[i]!, w = want[i]!;
      if (Number.isNaN(w) || !Number.isFinite(w)) { assert.ok(Object.is(g, w), `${k.name} ${what}: element ${i}: got ${g}, want ${w}`); continue; }
      assert.ok(Math.abs(g - w) <= 2.4e-7 * Math.abs(w) + tolX * Math.abs(x[i]!) + 1e-12, `${k.name} ${what}: element ${i} (x = ${x[i]}): got ${g}, want ${w}`);
    }
  };
  for (const len of [200, 203, 200_007]) {
    const x = Float32Array.from({ length: len }, (_, i) => -10 + (20 * i) / len + r() * 1e-3);
    x.set(special.slice(0, Math.min(special.length, len)), 0);
    const got = x.slice(), want = x.slice();
    k.gelu(got, len, undefined, 'erf');
    geluReference(want, len, undefined, 'erf');
    check(x, got, want, `gelu erf ×${len}`);
    const up = randn(r, len), g2 = x.slice(), w2 = x.slice();
    k.gelu(g2, len, up, 'erf');
    geluReference(w2, len, up, 'erf');
    check(x, g2, w2, `gelu erf ⊙ up ×${len}`);
  }
  // The tanh form's non-finite results, which the erf form keeps.
  const nf = Float32Array.from([NaN, -Infinity, Infinity]), t = nf.slice(), e = nf.slice();
  k.gelu(t, 3);
  k.gelu(e, 3, undefined, 'erf');
  assert.deepEqual(Array.from(e), Array.from(t), `${k.name}: gelu erf and tanh of NaN, −∞, +∞`);
  assert.deepEqual(Array.from(e), [NaN, NaN, Infinity]);
  // n < length: values past n stay as they were (a vector tail writes only its own values).
  const tail = Float32Array.from({ length: 40 }, (_, i) => i - 20);
  k.gelu(tail, 37, undefined, 'erf');
  assert.deepEqual(Array.from(tail.subarray(37)), [17, 18, 19]);
  assert.throws(() => k.gelu(new Float32Array(4), 4, undefined, 'exact' as 'erf'), /gelu: form must be 'tanh' or 'erf', got 'exact'/);
}

/**
 * The published values erf(0.5) = 0.5204998778130465, erf(1) = 0.8427007929497149, erf(2) = 0.9953222650189527,
 * erf(3) = 0.9999779095030014 through a kernel's erf GELU: at x = fround(√2·a), gelu(x) = ½x(1 + erf(a) + δ·2/√π·e^(−a²)),
 * δ = x/√2 − a (|δ| < 1e-7·a: the first-order term is exact to ~1e-15). Within one float32 rounding of the result,
 * plus tolX·|x| for an approximation of erf (as checkGeluErf).
 */
export function checkGeluErfConstants(k: Pick<Kernels, 'name' | 'gelu'>, tolX = 0): void {
  const published = [[0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [3, 0.9999779095030014]] as const;
  for (const [a, erfA] of published) {
    for (const sign of [1, -1]) {
      const x = Math.fround(sign * Math.SQRT2 * a);
      const d = x * Math.SQRT1_2 - sign * a;
      const want = 0.5 * x * (1 + sign * erfA + d * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a));
      const got = Float32Array.from([x]);
      k.gelu(got, 1, undefined, 'erf');
      assert.ok(Math.abs(got[0]! - want) <= 1.2e-7 * Math.abs(want) + tolX * Math.abs(x), `${k.name}: gelu erf(${x}) = ${got[0]}, want ${want} (erf(${sign * a}) = ${sign * erfA})`);
    }
  }
}

/**
 * Attention batch invariance: every query row of calls of T queries (at positions 0, 7 and the end of a
 * `cap`-key cache) is bit-identical to that query computed alone, on every kernel set given. With
 * temperatureLen, the positions straddle it when it is below cap.
 */
export function checkAttentionAsAlone(sets: readonly Kernels[], cap: number, TS: readonly number[], kvType: KVType = 'f32', temperatureLen = 0): void {
  const nHeads = 6, nKV = 2, headDim = kvType === 'q8_0' ? 32 : 20;
  const r = mulberry32(77);
  const kCache = kvCache(kvType, randn(r, cap * nKV * headDim), headDim);
  const vCache = kvCache(kvType, randn(r, cap * nKV * headDim), headDim);
  const keyMask = new Uint8Array(cap).fill(1);
  keyMask[5] = 0;
  const per = nHeads * headDim;
  const qAll = randn(r, cap * per);
  for (const softcap of [0, 30]) {
    const base = { kCache, vCache, kvType, keyMask, nHeads, nKV, headDim, scale: 0.8, softcap, temperatureLen };
    // Alone: the query at position p sees keys 0…p.
    const solo: Buffer[] = [];
    for (let p = 0; p < cap; p++) {
      const out = new Float32Array(per);
      sets[0]!.attention({ ...base, q: qAll.subarray(p * per, (p + 1) * per), T: 1, pos0: p, out });
      solo.push(Buffer.from(bytesOf(out)));
    }
    for (const k of sets) {
      for (const T of TS) {
        for (const pos0 of new Set([0, 7, cap - T])) {
          const out = new Float32Array(T * per);
          k.attention({ ...base, q: qAll.subarray(pos0 * per, (pos0 + T) * per), T, pos0, out });
          for (let t = 0; t < T; t++) {
            assert.ok(bytesOf(out.subarray(t * per, (t + 1) * per)).equals(solo[pos0 + t]!), `${k.name} ${kvType} softcap ${softcap} temperatureLen ${temperatureLen}: query at ${pos0 + t}, position ${t} of T = ${T}`);
          }
        }
      }
    }
  }
}
