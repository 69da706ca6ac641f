/**
 * IQ2_S (ggml type 22), 2.56 bits per weight: 256 values in 82 bytes, d f16 @0, qs u8[32] @2 (grid index
 * low bits), signs u8[32] @34 (one sign bit per value), qh u8[8] @66 (2 high index bits per 8 values),
 * scales u8[8] @74 (4 bits per 16 values). 10-bit index into the iq2s grid (1024 points, {8, 25, 43});
 * y = d·(0.5 + ls)·0.25·grid·sign (ggml-quants.c dequantize_row_iq2_s).
 */
import { rdF16 } from './ggml-ref.js';
import { defineIQ, IQ2S_GRID, put8 } from './iq-grids.js';

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
});
