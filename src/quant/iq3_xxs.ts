/**
 * IQ3_XXS (ggml type 18), 3.06 bits per weight: 256 values in 98 bytes, d f16 @0, qs u8[64] @2 (one index
 * per 4 values into the iq3xxs grid: 256 points × 4 values in {4, 12, …, 52, 62}), then per 32 values a
 * u32 @66 with four 7-bit sign indices (ksigns) and a 4-bit scale ls in bits 28–31;
 * y = d·(0.5 + ls)·0.5·grid·sign (ggml-quants.c dequantize_row_iq3_xxs).
 */
import { nearestInt, rdF16, wrF16 } from './ggml-ref.js';
import { iq2Signs, iq2Weights } from './iq2-search.js';
import { iq3Code, iq3Search32, iq3Tables } from './iq3_s.js';
import { defineIQ, IQ3XXS_GRID, KSIGNS } from './iq-grids.js';

const IQ3XXS_VALUES = [4, 12, 20, 28, 36, 44, 52, 62];

const sx = {
  weight: new Float32Array(32), waux: new Float32Array(32), xval: new Float32Array(32), L: new Uint8Array(32), Laux: new Uint8Array(32),
  signs: new Uint8Array(4), scales: new Float32Array(8), ss: new Uint32Array(8),
};

/** ggml's GROUP_MAX_EPS_IQ3_XXS (1e-8f). */
const EPS = Math.fround(1e-8);

/**
 * One IQ3_XXS super-block (256 values at x[xo]) into dst[o]: llama.cpp quantize_row_iq3_xxs_impl(256, …),
 * weighted by qw[qwo … qwo + 256) (weights qw·√(σ² + x²), σ² = 2·mean x²) or, without, by x². Per 32 values:
 * signs as IQ2 (an even count of minus signs, the least weighted value keeps its sign), 31 candidate scales
 * (15 + 0.2·is)/max, groups of 4 levels 0…7 off the grid replaced by the best of their neighbours; the best
 * weighted least-squares fit wins, groups off the grid re-picked at the fitted scale and the scale refitted.
 * d = max scale/31 (stored × 1.0125), 4-bit sub-scales round((scale/d − 1)/2).
 */
export function iq3xxsQuantizeBlock(x: Float32Array, xo: number, dst: Uint8Array, o: number, qw?: Float32Array, qwo = 0): void {
  const t = iq3Tables(IQ3XXS_GRID, IQ3XXS_VALUES, 2);
  const { weight, waux, xval, L, Laux, signs, scales, ss } = sx;
  dst.fill(0, o, o + 98);
  ss.fill(0);
  let sumx2 = 0;
  for (let i = 0; i < 256; i++) sumx2 = Math.fround(sumx2 + Math.fround(x[xo + i]! * x[xo + i]!));
  const sigma2 = Math.fround(Math.fround(2 * sumx2) / 256);
  let maxScale = 0;
  for (let ib = 0; ib < 8; ib++) {
    const xb = xo + 32 * ib;
    iq2Weights(32, x, xb, qw, qwo + 32 * ib, sigma2, weight, waux);
    for (let k = 0; k < 4; k++) signs[k] = iq2Signs(x, xb + 8 * k, weight, 8 * k, xval, 8 * k);
    let max = xval[0]!;
    for (let i = 1; i < 32; i++) max = max > xval[i]! ? max : xval[i]!;
    L.fill(0);
    if (max < EPS) { scales[ib] = 0; continue; }
    let scale = iq3Search32(t, xval, weight, waux, max, L, Laux, 15, false);
    if (scale < 0) {
      scale = -scale;
      for (let k = 0; k < 4; k++) signs[k] = ~signs[k]! & 127;
    }
    for (let k = 0; k < 8; k++) {
      const gi = t.map[iq3Code(L, 4 * k)]!;
      if (gi < 0) throw new Error(`iq3_xxs: levels ${L.subarray(4 * k, 4 * k + 4).join(',')} not on the grid`);
      dst[o + 2 + 8 * ib + k] = gi;
    }
    ss[ib] = (signs[0]! | (signs[1]! << 7) | (signs[2]! << 14) | (signs[3]! << 21)) >>> 0;
    scales[ib] = scale;
    maxScale = maxScale > scale ? maxScale : scale;
  }
  if (maxScale === 0) { dst.fill(0, o, o + 98); return; }
  const d = Math.fround(maxScale / 31);
  wrF16(dst, o, Math.fround(d * Math.fround(1.0125)));
  const id = Math.fround(1 / d);
  for (let ib = 0; ib < 8; ib++) {
    const l = Math.max(0, Math.min(15, nearestInt(Math.fround(0.5 * Math.fround(Math.fround(id * scales[ib]!) - 1)))));
    const v = (ss[ib]! | (l << 28)) >>> 0;
    const p = o + 66 + 4 * ib;
    dst[p] = v & 255; dst[p + 1] = (v >>> 8) & 255; dst[p + 2] = (v >>> 16) & 255; dst[p + 3] = v >>> 24;
  }
}

export const IQ3_XXS = defineIQ({
  name: 'iq3_xxs', ggmlId: 18, bytesPerBlock: 98, layout: { d: 2, qs: 64, scalesAndSigns: 32 },
  block(src, o, y) {
    const d = rdF16(src, o);
    for (let ib = 0; ib < 8; ib++) {
      const p = o + 66 + 4 * ib;
      const a = (src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24)) >>> 0;
      const db = Math.fround(Math.fround(d * (0.5 + (a >>> 28))) * 0.5);
      for (let l = 0; l < 4; l++) {
        const signs = KSIGNS[(a >>> (7 * l)) & 127]!;
        for (let h = 0; h < 2; h++) {
          const g = 4 * src[o + 2 + 8 * ib + 2 * l + h]!;
          for (let j = 0; j < 4; j++) {
            const v = Math.fround(db * IQ3XXS_GRID[g + j]!);
            y[32 * ib + 8 * l + 4 * h + j] = (signs >> (4 * h + j)) & 1 ? -v : v;
          }
        }
      }
    }
  },
  quantizeBlock: (x, xo, dst, o) => iq3xxsQuantizeBlock(x, xo, dst, o),
});
