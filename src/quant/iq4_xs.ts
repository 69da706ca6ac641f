/**
 * IQ4_XS (ggml type 23), 4.25 bits per weight: 256 values in 136 bytes, d f16 @0, scales_h u16 @2,
 * scales_l u8[4] @4, qs u8[128] @8. Per 32 values a 6-bit scale ls (low 4 bits from scales_l, high 2 from
 * scales_h) and 16 bytes of nibbles as in IQ4_NL (low nibbles the first 16 values);
 * y = d·(ls − 32)·K[nibble] with IQ4_NL's table K (ggml-quants.c dequantize_row_iq4_xs).
 */
import { rdF16 } from './ggml-ref.js';
import { defineIQ, rd16 } from './iq-grids.js';
import { IQ4_NL_VALUES as K } from './iq4_nl.js';

export const IQ4_XS = defineIQ({
  name: 'iq4_xs', ggmlId: 23, bytesPerBlock: 136, layout: { d: 2, scalesH: 2, scalesL: 4, qs: 128 },
  block(src, o, y) {
    const d = rdF16(src, o);
    const sh = rd16(src, o + 2);
    for (let ib = 0; ib < 8; ib++) {
      const ls = ((src[o + 4 + (ib >> 1)]! >> (4 * (ib & 1))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
      const dl = Math.fround(d * (ls - 32));
      for (let j = 0; j < 16; j++) {
        const q = src[o + 8 + 16 * ib + j]!;
        y[32 * ib + j] = Math.fround(dl * K[q & 15]!);
        y[32 * ib + j + 16] = Math.fround(dl * K[q >> 4]!);
      }
    }
  },
});
