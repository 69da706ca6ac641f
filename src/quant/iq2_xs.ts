/**
 * IQ2_XS (ggml type 17), 2.31 bits per weight: 256 values in 74 bytes, d f16 @0, qs u16[32] @2, scales
 * u8[8] @66. Each u16 covers 8 values: a 9-bit index into the iq2xs grid (512 points, values {8, 25, 43})
 * and a 7-bit sign index (ksigns); per 16 values a 4-bit scale ls (low nibble first):
 * y = d·(0.5 + ls)·0.25·grid·sign (ggml-quants.c dequantize_row_iq2_xs).
 */
import { rdF16 } from './ggml-ref.js';
import { defineIQ, IQ2XS_GRID, KSIGNS, put8, rd16 } from './iq-grids.js';

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
