/**
 * IQ1_S (ggml type 19), 1.56 bits per weight: 256 values in 50 bytes, d f16 @0, qs u8[32] @2, qh u16[8]
 * @34. Per 32 values one qh: bits 0–11 the high 3 bits of four 11-bit indices into the iq1s grid (2048
 * points × 8 values in {−1, 0, 1}), bits 12–14 a scale k, bit 15 the sign of the shift δ = ±1/8;
 * y = d·(2k + 1)·(grid + δ) (ggml-quants.c dequantize_row_iq1_s).
 */
import { rdF16 } from './ggml-ref.js';
import { defineIQ, IQ1_DELTA, IQ1S_GRID, rd16 } from './iq-grids.js';

export const IQ1_S = defineIQ({
  name: 'iq1_s', ggmlId: 19, bytesPerBlock: 50, layout: { d: 2, qs: 32, qh: 16 },
  block(src, o, y) {
    const d = rdF16(src, o);
    for (let ib = 0; ib < 8; ib++) {
      const qh = rd16(src, o + 34 + 2 * ib);
      const dl = Math.fround(d * (2 * ((qh >> 12) & 7) + 1));
      const delta = qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;
      for (let l = 0; l < 4; l++) {
        const g = 8 * (src[o + 2 + 4 * ib + l]! | (((qh >> (3 * l)) & 7) << 8));
        for (let j = 0; j < 8; j++) y[32 * ib + 8 * l + j] = Math.fround(dl * (IQ1S_GRID[g + j]! + delta));
      }
    }
  },
});
