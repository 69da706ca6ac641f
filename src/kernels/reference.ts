/**
 * Scalar reference kernels: plain loops, float64 accumulation (JS numbers), results stored as float32.
 * Slow and obviously right; every fast kernel is tested against these.
 */
import { bf16ToF32 } from '../quant/half.js';
import { blockFormat, rowBytes } from '../quant/index.js';
import type { Matrix } from '../quant/matrix.js';
import { attentionKV, kvAsF32 } from './kv.js';
import type { AttentionArgs, GeluForm, Kernels } from './types.js';

/**
 * The checks every matmul makes before touching memory (every backend calls this one): T and the shape
 * are sane integers, x and y hold T rows. Returns false when there is nothing to compute.
 */
export function checkMatmul(w: Matrix, x: Float32Array, T: number, y: Float32Array): boolean {
  const { nIn, nOut } = w;
  if (!Number.isInteger(T) || T < 0) throw new Error(`matmul: T must be a non-negative integer, got ${T}`);
  if (!Number.isInteger(nIn) || nIn < 1 || !Number.isInteger(nOut) || nOut < 0 || nIn > 0x7fffffff || nOut > 0x7fffffff) {
    throw new Error(`matmul: bad matrix shape ${nOut}×${nIn}`);
  }
  if (x.length < T * nIn) throw new Error(`matmul: x has ${x.length} values, needs ${T}×${nIn}`);
  if (y.length < T * nOut) throw new Error(`matmul: y has ${y.length} values, needs ${T}×${nOut}`);
  return T > 0 && nOut > 0;
}

export function matmulReference(w: Matrix, x: Float32Array, T: number, y: Float32Array): void {
  if (!checkMatmul(w, x, T, y)) return;
  const { nIn, nOut } = w;
  if (w.layout === 'rows') {
    const f = blockFormat(w.type);
    const rb = rowBytes(f, nIn);
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < nOut; r++) y[t * nOut + r] = f.dot(w.data, r * rb, x, t * nIn, nIn);
    }
    return;
  }
  // xai8: y[n] = Σ_g s[g, n] · Σ_{k in group g} x[k] · q[k, n]   (grok-1 model.py QuantizedWeight8bit)
  const group = nIn / w.groups;
  const acc = new Float64Array(nOut);
  const part = new Float64Array(nOut);
  for (let t = 0; t < T; t++) {
    acc.fill(0);
    for (let g = 0; g < w.groups; g++) {
      part.fill(0);
      for (let k = g * group; k < (g + 1) * group; k++) {
        const xk = x[t * nIn + k]!;
        if (xk === 0) continue;
        const row = k * nOut;
        for (let n = 0; n < nOut; n++) part[n] += xk * w.q[row + n]!;
      }
      const srow = g * nOut;
      for (let n = 0; n < nOut; n++) acc[n] += part[n]! * bf16ToF32(w.scales[srow + n]!);
    }
    for (let n = 0; n < nOut; n++) y[t * nOut + n] = acc[n]!;
  }
}

/** The checks every matmulMany makes (every backend calls this one): as many outputs as matrices, one nIn. */
export function checkMatmulMany(ws: readonly Matrix[], x: Float32Array, T: number, ys: readonly Float32Array[]): void {
  if (ws.length !== ys.length) throw new Error(`matmulMany: ${ws.length} matrices but ${ys.length} outputs`);
  for (const w of ws) {
    if (w.nIn !== ws[0]!.nIn) throw new Error(`matmulMany: matrices of ${ws[0]!.nIn} and ${w.nIn} inputs cannot share one input`);
  }
  ws.forEach((w, i) => checkMatmul(w, x, T, ys[i]!));
}

/** matmulMany as one matmul per matrix (the reference, and the fallback of kernels without a shared version). */
export function matmulManyReference(ws: readonly Matrix[], x: Float32Array, T: number, ys: readonly Float32Array[]): void {
  checkMatmulMany(ws, x, T, ys);
  ws.forEach((w, i) => matmulReference(w, x, T, ys[i]!));
}

export function getRowReference(w: Matrix, r: number, out: Float32Array): void {
  if (!Number.isInteger(r) || r < 0 || r >= w.nOut) throw new Error(`getRow: row ${r} outside 0…${w.nOut - 1}`);
  if (w.layout === 'rows') {
    const f = blockFormat(w.type);
    f.dequantize(w.data, r * rowBytes(f, w.nIn), w.nIn, out, 0);
    return;
  }
  // An xai8 matrix's "row r" of the [out, in] view is its column r.
  const group = w.nIn / w.groups;
  for (let k = 0; k < w.nIn; k++) out[k] = w.q[k * w.nOut + r]! * bf16ToF32(w.scales[Math.floor(k / group) * w.nOut + r]!);
}

export function rmsnormReference(x: Float32Array, weight: Float32Array, eps: number, T: number, n: number, out: Float32Array): void {
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[t * n + i]! * x[t * n + i]!;
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[t * n + i] = weight[i]! * (x[t * n + i]! * inv);
  }
}

/** base^(−2i/headDim) for i < headDim/2, computed once per (headDim, base). */
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

export function ropeReference(x: Float32Array, T: number, nHeads: number, headDim: number, positions: Int32Array, base: number): void {
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

/** Attention as the contract states it (types.ts); f16 / q8_0 caches are dequantised to their float values first. */
export function attentionReference(a: AttentionArgs): void {
  attentionKV(a);
  const { q, keyMask, T, pos0, nHeads, nKV, headDim, scale, softcap, out } = a;
  const { k: kCache, v: vCache } = kvAsF32(a, pos0 + T);
  const perKV = nHeads / nKV;
  const scores = new Float64Array(pos0 + T);
  for (let t = 0; t < T; t++) {
    const nKeys = pos0 + t + 1;
    const tau = attentionTemperature(pos0 + t, a.temperatureLen ?? 0);
    for (let h = 0; h < nHeads; h++) {
      const g = Math.floor(h / perKV);
      const qo = (t * nHeads + h) * headDim;
      let max = -Infinity;
      for (let p = 0; p < nKeys; p++) {
        const ko = (p * nKV + g) * headDim;
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[qo + d]! * kCache[ko + d]!;
        s *= scale;
        if (softcap > 0) s = softcap * Math.tanh(s / softcap);
        s *= tau;
        if (!keyMask[p]) s = -1e30;
        scores[p] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let p = 0; p < nKeys; p++) {
        const e = Math.exp(scores[p]! - max);
        scores[p] = e;
        sum += e;
      }
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        for (let p = 0; p < nKeys; p++) acc += scores[p]! * vCache[(p * nKV + g) * headDim + d]!;
        out[qo + d] = acc / sum;
      }
    }
  }
}

/**
 * Grok-2's attention temperature (SGLang grok.py): scores of the query at 0-based position p are
 * multiplied, after the soft-cap, by log2(p)/log2(L) when p > L > 0; else 1.
 */
export function attentionTemperature(p: number, L: number): number {
  return L > 0 && p > L ? Math.log2(p) / Math.log2(L) : 1;
}

/**
 * erf(x) to double precision: the Maclaurin series below |x| = 2.5 (terms up to 2.5^(2n)/n! stay small
 * enough to lose under 3 digits), the continued fraction of erfc above (converges fast there).
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (!(ax < 6)) return Number.isNaN(x) ? NaN : Math.sign(x);
  if (ax < 2.5) {
    const x2 = x * x;
    let term = x, sum = x;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n; //              (−1)^n x^(2n+1) / n!
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated from the tail.
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + (k / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

const GELU_C = Math.sqrt(2 / Math.PI);
export function geluReference(x: Float32Array, n: number, up?: Float32Array, form: GeluForm = 'tanh'): void {
  if (up && up.length < n) throw new Error(`gelu: up has ${up.length} values, fewer than n = ${n}`);
  if (form !== 'tanh' && form !== 'erf') throw new Error(`gelu: form must be 'tanh' or 'erf', got '${String(form)}'`);
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    x[i] = form === 'erf' ? 0.5 * v * (1 + erf(v * Math.SQRT1_2)) : 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v * v * v)));
    if (up) x[i] = x[i]! * up[i]!;
  }
}

export const referenceKernels: Kernels = {
  name: 'reference',
  allocWeight: (bytes) => new Uint8Array(bytes),
  matmul: matmulReference,
  matmulExact: matmulReference,
  matmulMany: matmulManyReference,
  getRow: getRowReference,
  rmsnorm: rmsnormReference,
  rope: ropeReference,
  attention: attentionReference,
  gelu: geluReference,
};
