/**
 * IQ2_XXS (ggml type 16), 2.06 bits per weight: 256 values in 66 bytes, d f16 @0, qs u16[32] @2. Per 32
 * values two u32: a = 4 grid indices (one byte each, iq2xxs grid of 256 points × 8 values in {8, 25, 43}),
 * b = four 7-bit sign indices (ksigns) and a 4-bit scale ls in bits 28–31; y = d·(0.5 + ls)·0.25·grid·sign
 * (ggml-quants.c dequantize_row_iq2_xxs).
 */
import { rdF16 } from './ggml-ref.js';
import { defineIQ, IQ2XXS_GRID, KSIGNS, put8 } from './iq-grids.js';

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
