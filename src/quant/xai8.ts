/**
 * The released checkpoint's weight form (grok-1 model.py QuantizedWeight8bit): int8 q[nIn, nOut] (input-major) and bf16
 * scales[G, nOut]; W[k, n] = q[k, n] · scales[floor(k / (nIn/G)), n]. Reference dequantise / dot helpers,
 * and the conversion of such a matrix into GGUF rows (llama.cpp's [out, in] layout), including a Q8_0
 * encoder that keeps the checkpoint's own scale where that loses nothing.
 */
import type { Xai8Matrix } from './matrix.js';
import { roundAway, wrF16 } from './ggml-ref.js';
import { bf16ToF32, f16ToF32, f32ToF16 } from './half.js';

export function checkXai8(m: Xai8Matrix): void {
  const { nIn, nOut, groups } = m;
  if (!(groups > 0) || nIn % groups !== 0) throw new Error(`xai8: ${groups} scale groups do not divide ${nIn} input rows`);
  if (m.q.length !== nIn * nOut) throw new Error(`xai8: q has ${m.q.length} values, expected ${nIn}×${nOut}`);
  if (m.scales.length !== groups * nOut) throw new Error(`xai8: scales have ${m.scales.length} values, expected ${groups}×${nOut}`);
}

/** W[k, n] in float32 (q·s rounded once, as float32 kernels compute it). */
export function xai8Value(m: Xai8Matrix, k: number, n: number): number {
  const g = Math.floor(k / (m.nIn / m.groups));
  return Math.fround(m.q[k * m.nOut + n]! * bf16ToF32(m.scales[g * m.nOut + n]!));
}

/** Dequantise the whole matrix into out[k·nOut + n] (the checkpoint's [in, out] order). */
export function xai8Dequantize(m: Xai8Matrix, out: Float32Array, outOffset = 0): void {
  checkXai8(m);
  const gs = m.nIn / m.groups;
  for (let k = 0; k < m.nIn; k++) {
    const srow = Math.floor(k / gs) * m.nOut;
    for (let n = 0; n < m.nOut; n++) out[outOffset + k * m.nOut + n] = m.q[k * m.nOut + n]! * bf16ToF32(m.scales[srow + n]!);
  }
}

/**
 * Output n of y = x·W: Σ_k W[k, n]·x[xOffset + k], float64 accumulation; per scale group the int8 sum is
 * formed first and multiplied by the group's scale once (q·s is exact in float64).
 */
export function xai8Dot(m: Xai8Matrix, n: number, x: Float32Array, xOffset = 0): number {
  const gs = m.nIn / m.groups;
  let s = 0;
  for (let g = 0; g < m.groups; g++) {
    let acc = 0;
    for (let k = g * gs; k < (g + 1) * gs; k++) acc += m.q[k * m.nOut + n]! * x[xOffset + k]!;
    s += acc * bf16ToF32(m.scales[g * m.nOut + n]!);
  }
  return s;
}

/**
 * Rows r0 … r0+count−1 of Wᵀ (GGUF/PyTorch [out, in]: row n holds W[·, n]) into out[(r − r0)·nIn + k].
 * A transposition: done in 32×32 tiles so that both the int8 reads and the float writes stay in cache.
 */
export function xai8Rows(m: Xai8Matrix, r0: number, count: number, out: Float32Array): void {
  const { nIn, nOut, groups } = m;
  const gs = nIn / groups;
  if (r0 < 0 || count < 0 || r0 + count > nOut) throw new Error(`xai8Rows: rows ${r0}…${r0 + count - 1} outside 0…${nOut - 1}`);
  const sc = new Float32Array(groups * count);
  for (let g = 0; g < groups; g++) for (let j = 0; j < count; j++) sc[g * count + j] = bf16ToF32(m.scales[g * nOut + r0 + j]!);
  const T = 32;
  for (let k0 = 0; k0 < nIn; k0 += T) {
    const k1 = Math.min(nIn, k0 + T);
    for (let j0 = 0; j0 < count; j0 += T) {
      const j1 = Math.min(count, j0 + T);
      for (let k = k0; k < k1; k++) {
        const qrow = k * nOut + r0;
        const srow = Math.floor(k / gs) * count;
        for (let j = j0; j < j1; j++) out[j * nIn + k] = m.q[qrow + j]! * sc[srow + j]!;
      }
    }
  }
}

/**
 * Q8_0 blocks (34 bytes per 32 inputs) for rows r0 … r0+count−1 of Wᵀ, losing as little as possible.
 * A 32-value block of a row lies inside one scale group (when 32 divides nIn/G), so its values are s·q
 * with one bf16 scale s. Candidate A stores d = f16(s) and the checkpoint's levels q unchanged — exact when
 * s is an f16 value (bf16's 8-bit mantissa fits f16's 11 bits inside f16's exponent range) and no q is −128.
 * Candidate B is llama.cpp's Q8_0 rule on the values (d = max|W|/127, levels roundf(W/d)). The block keeps
 * the candidate with the smaller squared error against s·q; ties keep A.
 * Returns the number of blocks that took candidate A (for reporting).
 */
export function xai8RowsToQ8_0(m: Xai8Matrix, r0: number, count: number, dst: Uint8Array, dstOffset: number, rowsScratch?: Float32Array): number {
  const { nIn } = m;
  if (nIn % 32 !== 0) throw new Error(`xai8 → q8_0: ${nIn} inputs is not a multiple of 32`);
  const vals = rowsScratch && rowsScratch.length >= count * nIn ? rowsScratch : new Float32Array(count * nIn);
  xai8Rows(m, r0, count, vals);
  const gs = nIn / m.groups;
  const aligned = gs % 32 === 0;
  const qA = new Int8Array(32);
  const qB = new Int8Array(32);
  let keptA = 0;
  for (let j = 0; j < count; j++) {
    const n = r0 + j;
    // per scale group of this row: its scale s, f16(s), whether f16 holds s exactly, 1/s
    let lastG = -1, sA = 0, hA = 0, sExact = false, inv = 0;
    for (let b = 0; b < nIn / 32; b++) {
      const xo = j * nIn + 32 * b;
      const o = dstOffset + (j * (nIn / 32) + b) * 34;
      if (aligned) {
        const g = Math.floor((32 * b) / gs);
        if (g !== lastG) {
          lastG = g;
          sA = bf16ToF32(m.scales[g * m.nOut + n]!);
          hA = f32ToF16(sA);
          sExact = f16ToF32(hA) === sA;
          inv = sA === 0 ? 0 : 1 / sA;
        }
        if (sExact) {
          // Candidate A is exact here unless a level is −128: nothing can beat it. vals = q·s exactly
          // (8 + 8 significant bits fit float32), so round(vals·(1/s)) = q: no strided reads of q.
          let ok = true;
          for (let i = 0; i < 32; i++) {
            const q = Math.round(vals[xo + i]! * inv);
            if (q === -128) { ok = false; break; }
            dst[o + 2 + i] = q & 0xff;
          }
          if (ok) {
            dst[o] = hA & 0xff;
            dst[o + 1] = hA >> 8;
            keptA++;
            continue;
          }
        }
      }
      // Candidate B: llama.cpp quantize_row_q8_0_ref on the exact values.
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(vals[xo + i]!));
      const dB = Math.fround(amax / 127);
      const idB = dB ? Math.fround(1 / dB) : 0;
      for (let i = 0; i < 32; i++) qB[i] = roundAway(Math.fround(vals[xo + i]! * idB));
      const hB = f32ToF16(dB);
      const dBv = f16ToF32(hB);
      let errB = 0;
      for (let i = 0; i < 32; i++) errB += (qB[i]! * dBv - vals[xo + i]!) ** 2;
      let useA = false;
      if (aligned) {
        const dAv = f16ToF32(hA);
        let ok = Number.isFinite(dAv);
        let errA = 0;
        for (let i = 0; ok && i < 32; i++) {
          const q = Math.round(vals[xo + i]! * inv);
          if (q === -128) ok = false;
          qA[i] = q;
          errA += (q * dAv - vals[xo + i]!) ** 2;
        }
        useA = ok && errA <= errB;
      }
      if (useA) {
        dst[o] = hA & 0xff;
        dst[o + 1] = hA >> 8;
        for (let i = 0; i < 32; i++) dst[o + 2 + i] = qA[i]! & 0xff;
        keptA++;
      } else {
        wrF16(dst, o, dB);
        for (let i = 0; i < 32; i++) dst[o + 2 + i] = qB[i]! & 0xff;
      }
    }
  }
  return keptA;
}
