/**
 * IQ2_XS (ggml type 17), 2.31 bits per weight: 256 values in 74 bytes, d f16 @0, qs u16[32] @2, scales
 * u8[8] @66. Each u16 covers 8 values: a 9-bit index into the iq2xs grid (512 points, values {8, 25, 43})
 * and a 7-bit sign index (ksigns); per 16 values a 4-bit scale ls (low nibble first):
 * y = d·(0.5 + ls)·0.25·grid·sign (ggml-quants.c dequantize_row_iq2_xs).
 */
import { GROUP_MAX_EPS, nearestInt, rdF16, wrF16 } from './ggml-ref.js';
import { iq2Code, iq2Search16, iq2Sigma2, iq2Signs, iq2Tables, iq2Weights } from './iq2-search.js';
import { defineIQ, IQ2_GRID_VALUES, IQ2XS_GRID, KSIGNS, put8, rd16 } from './iq-grids.js';

const sx = {
  weight: new Float32Array(16), waux: new Float32Array(16), xval: new Float32Array(16), L: new Uint8Array(16), Laux: new Uint8Array(16),
  signs: new Uint8Array(2), scales: new Float32Array(16), q2: new Uint16Array(32),
};

/**
 * One IQ2_XS super-block (256 values at x[xo]) into dst[o], weighted by qw[qwo … qwo + 256): llama.cpp
 * quantize_row_iq2_xs_impl (which requires the weights). Per 16 values: 19 candidate scales (5 + 0.1·is)/max,
 * each group of 8 levels round((id·|x| − 1)/2) clamped to 0…2 and, off the grid, replaced by the best of its
 * neighbouring grid points; the best weighted least-squares fit wins, groups off the grid are re-picked at
 * the fitted scale and the scale refitted. d = max scale/31, 4-bit sub-scales round((scale/d − 1)/2).
 */
export function iq2xsQuantizeBlock(x: Float32Array, xo: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number): void {
  const t = iq2Tables(IQ2XS_GRID, IQ2_GRID_VALUES, 2);
  const { weight, waux, xval, L, Laux, signs, scales, q2 } = sx;
  q2.fill(0);
  const sigma2 = iq2Sigma2(x, xo);
  let maxScale = 0;
  for (let ib = 0; ib < 16; ib++) {
    const xb = xo + 16 * ib;
    iq2Weights(16, x, xb, qw, qwo + 16 * ib, sigma2, weight, waux);
    for (let k = 0; k < 2; k++) signs[k] = iq2Signs(x, xb + 8 * k, weight, 8 * k, xval, 8 * k);
    let max = xval[0]!;
    for (let i = 1; i < 16; i++) max = max > xval[i]! ? max : xval[i]!;
    L.fill(0);
    if (max < GROUP_MAX_EPS) { scales[ib] = 0; continue; }
    let scale = iq2Search16(t, xval, weight, waux, max, L, Laux);
    if (scale < 0) {
      scale = -scale;
      for (let k = 0; k < 2; k++) signs[k] = ~signs[k]! & 127;
    }
    for (let k = 0; k < 2; k++) {
      const gi = t.map[iq2Code(L, 8 * k)]!;
      if (gi < 0) throw new Error(`iq2_xs: levels ${L.subarray(8 * k, 8 * k + 8).join(',')} not on the grid`);
      q2[2 * ib + k] = gi | (signs[k]! << 9);
    }
    scales[ib] = scale;
    maxScale = maxScale > scale ? maxScale : scale;
  }
  dst.fill(0, o, o + 74);
  if (maxScale === 0) return;
  const d = Math.fround(maxScale / 31);
  wrF16(dst, o, d);
  const id = Math.fround(1 / d);
  for (let ib = 0; ib < 16; ib++) {
    const l = Math.max(0, Math.min(15, nearestInt(Math.fround(0.5 * Math.fround(Math.fround(id * scales[ib]!) - 1)))));
    dst[o + 66 + (ib >> 1)] |= ib & 1 ? l << 4 : l;
  }
  for (let i = 0; i < 32; i++) { dst[o + 2 + 2 * i] = q2[i]! & 255; dst[o + 3 + 2 * i] = q2[i]! >> 8; }
}

export const IQ2_XS = defineIQ({
  name: 'iq2_xs', ggmlId: 17, bytesPerBlock: 74, layout: { d: 2, qs: 64, scales: 8 },
  block(src, o, y) {
    const d = rdF16(src, o);
    for (let ib = 0; ib < 8; ib++) {
      const sc = src[o + 66 + ib]!;
      for (let l = 0; l < 4; l++) {
        const db = Math.fround(Math.fround(d * (0.5 + (l < 2 ? sc & 15 : sc >> 4))) * 0.25);
        const q = rd16(src, o + 2 + 2 * (4 * ib + l));
        put8(y, 32 * ib + 8 * l, db, IQ2XS_GRID, 8 * (q & 511), KSIGNS[q >> 9]!);
      }
    }
  },
});
