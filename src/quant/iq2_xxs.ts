/**
 * IQ2_XXS (ggml type 16), 2.06 bits per weight: 256 values in 66 bytes, d f16 @0, qs u16[32] @2. Per 32
 * values two u32: a = 4 grid indices (one byte each, iq2xxs grid of 256 points × 8 values in {8, 25, 43}),
 * b = four 7-bit sign indices (ksigns) and a 4-bit scale ls in bits 28–31; y = d·(0.5 + ls)·0.25·grid·sign
 * (ggml-quants.c dequantize_row_iq2_xxs).
 */
import { GROUP_MAX_EPS, nearestInt, rdF16, wrF16 } from './ggml-ref.js';
import { iq2BestNeighbour, iq2Code, iq2Fit, iq2Levels, iq2Sigma2, iq2Signs, iq2Tables, iq2Weights } from './iq2-search.js';
import { defineIQ, IQ2_GRID_VALUES, IQ2XXS_GRID, KSIGNS, put8 } from './iq-grids.js';
import { makeQpQuants } from './kquant-weighted.js';

const sx = {
  weight: new Float32Array(32), waux: new Float32Array(32), xval: new Float32Array(32), L: new Uint8Array(32), Laux: new Uint8Array(32),
  Lqp: new Uint8Array(32), signs: new Uint8Array(4), scales: new Float32Array(8), q2: new Uint32Array(16),
};

/**
 * One IQ2_XXS super-block (256 values at x[xo]) into dst[o], weighted by qw[qwo … qwo + 256): llama.cpp
 * quantize_row_iq2_xxs_impl (which requires the weights).
 */
export function iq2xxsQuantizeBlock(x: Float32Array, xo: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number): void {
  const t = iq2Tables(IQ2XXS_GRID, IQ2_GRID_VALUES, 2);
  const { weight, waux, xval, L, Laux, Lqp, signs, scales, q2 } = sx;
  const kMaxQ = 3;
  q2.fill(0);
  const sigma2 = iq2Sigma2(x, xo);
  let maxScale = 0;
  for (let ib = 0; ib < 8; ib++) {
    const xb = xo + 32 * ib;
    iq2Weights(32, x, xb, qw, qwo + 32 * ib, sigma2, weight, waux);
    for (let k = 0; k < 4; k++) signs[k] = iq2Signs(x, xb + 8 * k, weight, 8 * k, xval, 8 * k);
    let max = xval[0]!;
    for (let i = 1; i < 32; i++) max = max > xval[i]! ? max : xval[i]!;
    if (max < GROUP_MAX_EPS) { scales[ib] = 0; continue; }
    let scale = makeQpQuants(32, kMaxQ + 1, xval, 0, Lqp, 0, weight, 0);
    const effMax = Math.fround(scale * kMaxQ);
    if (effMax <= 0) { scales[ib] = 0; continue; }
    let best = 0;
    L.set(Lqp);
    for (let is = -6; is <= 6; is++) {
      const id = Math.fround(Math.fround(2 * kMaxQ - 1 + Math.fround(is * Math.fround(0.1))) / effMax);
      const thisScale = Math.fround(1 / id);
      for (let k = 0; k < 4; k++) {
        const gi = t.map[iq2Levels(xval, 8 * k, id, kMaxQ, Laux, 8 * k)]!;
        if (gi < 0) iq2BestNeighbour(t, -gi - 1, xval, 8 * k, waux, thisScale, Laux, 8 * k);
      }
      const [sumqx, sumq2] = iq2Fit(32, Laux, weight, xval);
      if (sumq2 > 0 && Math.fround(sumqx * sumqx) > Math.fround(best * sumq2)) {
        scale = Math.fround(sumqx / sumq2);
        best = Math.fround(scale * sumqx);
        L.set(Laux);
      }
    }
    if (scale > 0) {
      const id = Math.fround(1 / scale);
      for (let k = 0; k < 4; k++) {
        const gi = t.map[iq2Levels(xval, 8 * k, id, kMaxQ, L, 8 * k)]!;
        if (gi < 0) iq2BestNeighbour(t, -gi - 1, xval, 8 * k, waux, scale, L, 8 * k);
      }
      const [sumqx, sumq2] = iq2Fit(32, L, weight, xval);
      if (sumq2 > 0) scale = Math.fround(sumqx / sumq2);
    }
    if (scale < 0) {
      scale = -scale;
      for (let k = 0; k < 4; k++) signs[k] = ~signs[k]! & 127;
    }
    for (let k = 0; k < 4; k++) {
      const gi = t.map[iq2Code(L, 8 * k)]!;
      if (gi < 0) throw new Error(`iq2_xxs: levels ${L.subarray(8 * k, 8 * k + 8).join(',')} not on the grid`);
      q2[2 * ib] = (q2[2 * ib]! | (gi << (8 * k))) >>> 0;
      q2[2 * ib + 1] = (q2[2 * ib + 1]! | (signs[k]! << (7 * k))) >>> 0;
    }
    scales[ib] = scale;
    maxScale = maxScale > scale ? maxScale : scale;
  }
  dst.fill(0, o, o + 66);
  if (maxScale === 0) return;
  const d = Math.fround(maxScale / 31);
  wrF16(dst, o, d);
  const id = Math.fround(1 / d);
  for (let ib = 0; ib < 8; ib++) {
    const l = Math.max(0, Math.min(15, nearestInt(Math.fround(0.5 * Math.fround(Math.fround(id * scales[ib]!) - 1)))));
    q2[2 * ib + 1] = (q2[2 * ib + 1]! | (l << 28)) >>> 0;
  }
  for (let i = 0; i < 16; i++) {
    const v = q2[i]!;
    dst[o + 2 + 4 * i] = v & 255; dst[o + 3 + 4 * i] = (v >>> 8) & 255; dst[o + 4 + 4 * i] = (v >>> 16) & 255; dst[o + 5 + 4 * i] = v >>> 24;
  }
}

export const IQ2_XXS = defineIQ({
  name: 'iq2_xxs', ggmlId: 16, bytesPerBlock: 66, layout: { d: 2, qs: 64 },
  block(src, o, y) {
    const d = rdF16(src, o);
    for (let ib = 0; ib < 8; ib++) {
      const p = o + 2 + 8 * ib;
      const b = (src[p + 4]! | (src[p + 5]! << 8) | (src[p + 6]! << 16) | (src[p + 7]! << 24)) >>> 0;
      const db = Math.fround(Math.fround(d * (0.5 + (b >>> 28))) * 0.25);
      for (let l = 0; l < 4; l++) put8(y, 32 * ib + 8 * l, db, IQ2XXS_GRID, 8 * src[p + l]!, KSIGNS[(b >>> (7 * l)) & 127]!);
    }
  },
});
