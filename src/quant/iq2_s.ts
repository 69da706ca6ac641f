/**
 * IQ2_S (ggml type 22), 2.56 bits per weight: 256 values in 82 bytes, d f16 @0, qs u8[32] @2 (grid index
 * low bits), signs u8[32] @34 (one sign bit per value), qh u8[8] @66 (2 high index bits per 8 values),
 * scales u8[8] @74 (4 bits per 16 values). 10-bit index into the iq2s grid (1024 points, {8, 25, 43});
 * y = d·(0.5 + ls)·0.25·grid·sign (ggml-quants.c dequantize_row_iq2_s).
 */
import { nearestInt, rdF16, wrF16 } from './ggml-ref.js';
import { absSigns8, iq2Code, iq2Search16, iq2Tables, iq2Weights } from './iq2-search.js';
import { defineIQ, IQ2_GRID_VALUES, IQ2S_GRID, put8 } from './iq-grids.js';

const sx = {
  weight: new Float32Array(16), waux: new Float32Array(16), xval: new Float32Array(16), L: new Uint8Array(16), Laux: new Uint8Array(16),
  signs: new Uint8Array(2), scales: new Float32Array(16),
};

/** ggml's GROUP_MAX_EPS_IQ2_S (1e-8f). */
const EPS = Math.fround(1e-8);

/**
 * One IQ2_S super-block (256 values at x[xo]) into dst[o]: llama.cpp quantize_row_iq2_s_impl, weighted by
 * qw[qwo … qwo + 256) (weights qw·√(σ² + x²), σ² = 2·mean x²) or, without, by σ²/4 + x². The search of
 * IQ2_XS (iq2Search16) on the 1024-point grid with the single nearest ring of neighbours, signs stored as
 * they are (8 bits per 8 values); d = max scale/31 stored × 0.9875. As in llama.cpp, a super-block whose
 * scales are all 0 keeps the indices and signs already written, with d = 0.
 */
export function iq2sQuantizeBlock(x: Float32Array, xo: number, dst: Uint8Array, o: number, qw?: Float32Array, qwo = 0): void {
  const t = iq2Tables(IQ2S_GRID, IQ2_GRID_VALUES, 1);
  const { weight, waux, xval, L, Laux, signs, scales } = sx;
  dst.fill(0, o, o + 82);
  let sumx2 = 0;
  for (let i = 0; i < 256; i++) sumx2 = Math.fround(sumx2 + Math.fround(x[xo + i]! * x[xo + i]!));
  const sigma2 = Math.fround(Math.fround(2 * sumx2) / 256);
  let maxScale = 0;
  for (let ib = 0; ib < 16; ib++) {
    const xb = xo + 16 * ib;
    iq2Weights(16, x, xb, qw, qwo + 16 * ib, sigma2, weight, waux, 0.25);
    for (let k = 0; k < 2; k++) signs[k] = absSigns8(x, xb + 8 * k, xval, 8 * k);
    let max = xval[0]!;
    for (let i = 1; i < 16; i++) max = max > xval[i]! ? max : xval[i]!;
    L.fill(0);
    if (max < EPS) { scales[ib] = 0; continue; }
    let scale = iq2Search16(t, xval, weight, waux, max, L, Laux);
    if (scale < 0) {
      scale = -scale;
      for (let k = 0; k < 2; k++) signs[k] = ~signs[k]! & 255;
    }
    for (let k = 0; k < 2; k++) {
      const gi = t.map[iq2Code(L, 8 * k)]!;
      if (gi < 0) throw new Error(`iq2_s: levels ${L.subarray(8 * k, 8 * k + 8).join(',')} not on the grid`);
      const i8 = 2 * ib + k;
      dst[o + 2 + i8] = gi & 255;
      dst[o + 66 + (i8 >> 2)] |= (gi >> 8) << (2 * (i8 & 3));
      dst[o + 34 + i8] = signs[k]!;
    }
    scales[ib] = scale;
    maxScale = maxScale > scale ? maxScale : scale;
  }
  if (maxScale === 0) return;
  const d = Math.fround(maxScale / 31);
  wrF16(dst, o, Math.fround(d * Math.fround(0.9875)));
  const id = Math.fround(1 / d);
  for (let ib = 0; ib < 16; ib++) {
    const l = Math.max(0, Math.min(15, nearestInt(Math.fround(0.5 * Math.fround(Math.fround(id * scales[ib]!) - 1)))));
    dst[o + 74 + (ib >> 1)] |= ib & 1 ? l << 4 : l;
  }
}

export const IQ2_S = defineIQ({
  name: 'iq2_s', ggmlId: 22, bytesPerBlock: 82, layout: { d: 2, qs: 32, signs: 32, qh: 8, scales: 8 },
  block(src, o, y) {
    const d = rdF16(src, o);
    for (let ib = 0; ib < 8; ib++) {
      const sc = src[o + 74 + ib]!;
      const qh = src[o + 66 + ib]!;
      for (let l = 0; l < 4; l++) {
        const db = Math.fround(Math.fround(d * (0.5 + (l < 2 ? sc & 15 : sc >> 4))) * 0.25);
        const idx = src[o + 2 + 4 * ib + l]! | ((qh << (8 - 2 * l)) & 0x300);
        put8(y, 32 * ib + 8 * l, db, IQ2S_GRID, 8 * idx, src[o + 34 + 4 * ib + l]!);
      }
    }
  },
  quantizeBlock: (x, xo, dst, o) => iq2sQuantizeBlock(x, xo, dst, o),
});
