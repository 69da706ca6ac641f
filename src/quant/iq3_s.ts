/**
 * IQ3_S (ggml type 21), 3.44 bits per weight: 256 values in 110 bytes, d f16 @0, qs u8[64] @2 (index low
 * bits, one per 4 values), qh u8[8] @66 (the 9th index bit), signs u8[32] @74 (one bit per value), scales
 * u8[4] @106 (4 bits per 32 values). Index into the iq3s grid (512 points × 4 values in {1, 3, …, 15});
 * y = d·(1 + 2·ls)·grid·sign (ggml-quants.c dequantize_row_iq3_s).
 */
import { rdF16 } from './ggml-ref.js';
import { defineIQ, IQ3S_GRID } from './iq-grids.js';

export const IQ3_S = defineIQ({
  name: 'iq3_s', ggmlId: 21, bytesPerBlock: 110, layout: { d: 2, qs: 64, qh: 8, signs: 32, scales: 4 },
  block(src, o, y) {
    const d = rdF16(src, o);
    for (let ib = 0; ib < 8; ib++) {
      const sc = src[o + 106 + (ib >> 1)]!;
      const db = Math.fround(d * (1 + 2 * (ib & 1 ? sc >> 4 : sc & 15)));
      const qh = src[o + 66 + ib]!;
      for (let l = 0; l < 4; l++) {
        const signs = src[o + 74 + 4 * ib + l]!;
        for (let h = 0; h < 2; h++) {
          const idx = src[o + 2 + 8 * ib + 2 * l + h]! | ((qh << (8 - 2 * l - h)) & 256);
          for (let j = 0; j < 4; j++) {
            const v = Math.fround(db * IQ3S_GRID[4 * idx + j]!);
            y[32 * ib + 8 * l + 4 * h + j] = (signs >> (4 * h + j)) & 1 ? -v : v;
          }
        }
      }
    }
  },
});
