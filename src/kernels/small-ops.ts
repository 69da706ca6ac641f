/**
 * The kernels that touch only activations, in plain JavaScript: RMSNorm, RoPE and GELU (KBs per token
 * against the ~GB of weights a matmul reads: well under 1 % of a decoded token; a copy into wasm memory
 * would cost about as much as the work), and attention, which wasm.ts runs in WebAssembly and falls
 * back to here when the cache slice exceeds the activation area. Numerics follow
 * src/kernels/reference.ts (float64 sums), with tables instead of repeated pow.
 */
import type { AttentionArgs } from './types.js';

export function rmsnorm(x: Float32Array, weight: Float32Array, eps: number, T: number, n: number, out: Float32Array): void {
  for (let t = 0; t < T; t++) {
    const o = t * n;
    let ss = 0;
    for (let i = 0; i < n; i++) {
      const v = x[o + i]!;
      ss += v * v;
    }
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[o + i] = weight[i]! * (x[o + i]! * inv);
  }
}

const invFreqCache = new Map<string, Float64Array>();
function invFreq(headDim: number, base: number): Float64Array {
  const key = `${headDim}:${base}`;
  let f = invFreqCache.get(key);
  if (!f) {
    f = new Float64Array(headDim / 2);
    for (let i = 0; i < f.length; i++) f[i] = Math.pow(base, (-2 * i) / headDim);
    invFreqCache.set(key, f);
  }
  return f;
}

export function rope(x: Float32Array, T: number, nHeads: number, headDim: number, positions: Int32Array, base: number): void {
  const half = headDim / 2;
  const f = invFreq(headDim, base);
  for (let t = 0; t < T; t++) {
    const p = positions[t]!;
    for (let i = 0; i < half; i++) {
      const angle = p * f[i]!;
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      for (let h = 0; h < nHeads; h++) {
        const o = (t * nHeads + h) * headDim;
        const a = x[o + i]!;
        const b = x[o + i + half]!;
        x[o + i] = a * c - b * s;
        x[o + i + half] = b * c + a * s;
      }
    }
  }
}

let scoreBuf = new Float64Array(1024);
let accBuf = new Float64Array(256);

/** Causal GQA over the cache (contract in types.ts). Per (token, head): scores, softmax, weighted V sum. */
export function attention(a: AttentionArgs): void {
  const { q, kCache, vCache, keyMask, T, pos0, nHeads, nKV, headDim, scale, softcap, out } = a;
  const perKV = nHeads / nKV;
  if (scoreBuf.length < pos0 + T) scoreBuf = new Float64Array(2 * (pos0 + T));
  if (accBuf.length < headDim) accBuf = new Float64Array(headDim);
  const scores = scoreBuf;
  const acc = accBuf;
  const kvStride = nKV * headDim;
  for (let t = 0; t < T; t++) {
    const nKeys = pos0 + t + 1;
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

const GELU_C = Math.sqrt(2 / Math.PI);
export function gelu(x: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    x[i] = 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v * v * v)));
  }
}
