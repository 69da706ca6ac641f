/**
 * IQ1_M (ggml type 29), 1.75 bits per weight: 256 values in 56 bytes, qs u8[32] @0 (index low bits), qh
 * u8[16] @32 (per 8 values a nibble: 3 high index bits and the sign of δ = ±1/8), scales u16[4] @48: 3-bit
 * scales k per 16 values in bits 0–11 of each u16, and the super-block's f16 d spread over their top
 * nibbles; y = d·(2k + 1)·(grid + δ), grid the iq1s grid (ggml-quants.c dequantize_row_iq1_m).
 */
import { f16ToF32 } from './half.js';
import { defineIQ, IQ1_DELTA, IQ1S_GRID, rd16 } from './iq-grids.js';

export const IQ1_M = defineIQ({
  name: 'iq1_m', ggmlId: 29, bytesPerBlock: 56, layout: { qs: 32, qh: 16, scales: 8 },
  block(src, o, y) {
    const sc = [0, 1, 2, 3].map((i) => rd16(src, o + 48 + 2 * i));
    const d = f16ToF32((sc[0]! >> 12) | ((sc[1]! >> 8) & 0x00f0) | ((sc[2]! >> 4) & 0x0f00) | (sc[3]! & 0xf000));
    for (let ib = 0; ib < 8; ib++) {
      for (let l = 0; l < 4; l++) {
        const k = (sc[ib >> 1]! >> (6 * (ib & 1) + 3 * (l >> 1))) & 7;
        const dl = Math.fround(d * (2 * k + 1));
        const nib = (src[o + 32 + 2 * ib + (l >> 1)]! >> (4 * (l & 1))) & 15;
        const delta = nib & 8 ? -IQ1_DELTA : IQ1_DELTA;
        const g = 8 * (src[o + 4 * ib + l]! | ((nib & 7) << 8));
        for (let j = 0; j < 8; j++) y[32 * ib + 8 * l + j] = Math.fround(dl * (IQ1S_GRID[g + j]! + delta));
      }
    }
  },
});
