/**
 * IQ3_XXS (ggml type 18), 3.06 bits per weight: 256 values in 98 bytes, d f16 @0, qs u8[64] @2 (one index
 * per 4 values into the iq3xxs grid: 256 points × 4 values in {4, 12, …, 52, 62}), then per 32 values a
 * u32 @66 with four 7-bit sign indices (ksigns) and a 4-bit scale ls in bits 28–31;
 * y = d·(0.5 + ls)·0.5·grid·sign (ggml-quants.c dequantize_row_iq3_xxs).
 */
import { rdF16 } from './ggml-ref.js';
import { defineIQ, IQ3XXS_GRID, KSIGNS } from './iq-grids.js';

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
});
