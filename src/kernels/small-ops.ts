/**
 * The kernels that touch only activations, in plain JavaScript: RMSNorm, RoPE and GELU (KBs per token
 * against the ~GB of weights a matmul reads: well under 1 % of a decoded token; a copy into wasm memory
 * would cost about as much as the work), and attention, which wasm.ts runs in WebAssembly and falls
 * back to here when the cache slice exceeds the activation area. Numerics follow
 * src/kernels/reference.ts (float64 sums). Both attention paths validate their arguments with
 * checkAttentionArgs.
 */
import { attentionKV, kvAsF32 } from './kv.js';
import { attentionTemperature } from './reference.js';
import type { AttentionArgs } from './types.js';

// RMSNorm, RoPE and GELU are the reference versions themselves (already as fast as plain JS gets).
export { geluReference as gelu, rmsnormReference as rmsnorm, ropeReference as rope } from './reference.js';

let scoreBuf = new Float64Array(1024);
let accBuf = new Float64Array(256);

/** temperatureLen: absent, 0, or a number > 1 (log2(1) = 0 would divide by zero). */
export function checkTemperatureLen(L: number | undefined): void {
  if (L !== undefined && !(L === 0 || (Number.isFinite(L) && L > 1))) throw new Error(`attention: temperatureLen must be 0 (off) or a finite number > 1, got ${L}`);
}

/** Throws an error naming the first argument that does not fit the contract of Kernels.attention (types.ts). */
export function checkAttentionArgs(a: AttentionArgs): void {
  const { q, kCache, vCache, keyMask, T, pos0, nHeads, nKV, headDim, out } = a;
  for (const [name, v] of [['T', T], ['pos0', pos0], ['nHeads', nHeads], ['nKV', nKV], ['headDim', headDim]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`attention: ${name} must be a non-negative integer, got ${v}`);
  }
  if (nKV < 1 || nHeads < 1 || nHeads % nKV !== 0) throw new Error(`attention: nHeads (${nHeads}) must be a positive multiple of nKV (${nKV})`);
  checkTemperatureLen(a.temperatureLen);
  const { kvType, rowElements } = attentionKV(a);
  if (T === 0) return;
  const qn = T * nHeads * headDim;
  const keys = pos0 + T;
  const kvn = keys * nKV * rowElements;
  if (q.length < qn) throw new Error(`attention: q has ${q.length} values, needs ${T}×${nHeads}×${headDim}`);
  if (out.length < qn) throw new Error(`attention: out has ${out.length} values, needs ${T}×${nHeads}×${headDim}`);
  const row = kvType === 'f32' ? `${headDim}` : `${headDim} (${rowElements} ${kvType} elements)`;
  if (kCache.length < kvn) throw new Error(`attention: kCache has ${kCache.length} values, needs ${keys} positions × ${nKV}×${row}`);
  if (vCache.length < kvn) throw new Error(`attention: vCache has ${vCache.length} values, needs ${keys} positions × ${nKV}×${row}`);
  if (keyMask.length < keys) throw new Error(`attention: keyMask has ${keyMask.length} entries, needs ${keys}`);
}

/**
 * Causal GQA over the cache (contract in types.ts). Per (token, head): scores, softmax, weighted V sum.
 * f16 / q8_0 caches are widened to float32 first (this is the fallback path).
 */
export function attention(a: AttentionArgs): void {
  checkAttentionArgs(a);
  const { q, keyMask, T, pos0, nHeads, nKV, headDim, scale, softcap, out } = a;
  if (T === 0) return;
  const { k: kCache, v: vCache } = kvAsF32(a, pos0 + T);
  const perKV = nHeads / nKV;
  if (scoreBuf.length < pos0 + T) scoreBuf = new Float64Array(2 * (pos0 + T));
  if (accBuf.length < headDim) accBuf = new Float64Array(headDim);
  const scores = scoreBuf;
  const acc = accBuf;
  const kvStride = nKV * headDim;
  for (let t = 0; t < T; t++) {
    const nKeys = pos0 + t + 1;
    const tau = attentionTemperature(pos0 + t, a.temperatureLen ?? 0);
    for (let h = 0; h < nHeads; h++) {
      const g = Math.floor(h / perKV);
      const qo = (t * nHeads + h) * headDim;
      let max = -Infinity;
      for (let p = 0; p < nKeys; p++) {
        let s = -1e30;
        if (keyMask[p]) {
          const ko = p * kvStride + g * headDim;
          let d0 = 0, d1 = 0;
          let d = 0;
          for (; d + 1 < headDim; d += 2) {
            d0 += q[qo + d]! * kCache[ko + d]!;
            d1 += q[qo + d + 1]! * kCache[ko + d + 1]!;
          }
          if (d < headDim) d0 += q[qo + d]! * kCache[ko + d]!;
          s = (d0 + d1) * scale;
          if (softcap > 0) s = softcap * Math.tanh(s / softcap);
          s *= tau;
        }
        scores[p] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let p = 0; p < nKeys; p++) {
        const e = Math.exp(scores[p]! - max);
        scores[p] = e;
        sum += e;
      }
      acc.fill(0, 0, headDim);
      for (let p = 0; p < nKeys; p++) {
        const wgt = scores[p]!;
        if (wgt === 0) continue;
        const vo = p * kvStride + g * headDim;
        for (let d = 0; d < headDim; d++) acc[d] += wgt * vCache[vo + d]!;
      }
      const inv = 1 / sum;
      for (let d = 0; d < headDim; d++) out[qo + d] = acc[d]! * inv;
    }
  }
}
