/**
 * IQ4_XS (ggml type 23), 4.25 bits per weight: 256 values in 136 bytes, d f16 @0, scales_h u16 @2,
 * scales_l u8[4] @4, qs u8[128] @8. Per 32 values a 6-bit scale ls (low 4 bits from scales_l, high 2 from
 * scales_h) and 16 bytes of nibbles as in IQ4_NL (low nibbles the first 16 values);
 * y = d·(ls − 32)·K[nibble] with IQ4_NL's table K (ggml-quants.c dequantize_row_iq4_xs).
 * Quantiser = llama.cpp quantize_iq4_xs without an importance matrix: IQ4_NL's scale search per 32 values,
 * then d = −(the scale of largest magnitude)/32 (stored as f16, used unrounded), ls = nearest(scale/d)
 * clamped to −32…31, and every level re-picked with d·ls. With an importance matrix: weighted.ts.
 */
import { nearestInt, rdF16, wrF16 } from './ggml-ref.js';
import { defineIQ, rd16 } from './iq-grids.js';
import { bestIndex, iq4Scale, IQ4_NL_VALUES as K } from './iq4_nl.js';

const L = new Uint8Array(256);
const scales = new Float32Array(8);

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
  quantizeBlock(x, xo, dst, o) {
    for (let ib = 0; ib < 8; ib++) scales[ib] = iq4Scale(x, xo + 32 * ib);
    iq4XsPack(x, xo, scales, dst, o);
  },
});

/**
 * One IQ4_XS super-block at dst[o] from its 8 sub-block scales (iq4Scale each, with or without importance
 * weights): d = −(the scale of largest magnitude)/32, 6-bit ls per sub-block, every level re-picked with d·ls.
 */
export function iq4XsPack(x: Float32Array, xo: number, scales: Float32Array, dst: Uint8Array, o: number): void {
  let maxScale = 0;
  let amaxScale = 0;
  for (let ib = 0; ib < 8; ib++) {
    if (Math.abs(scales[ib]!) > amaxScale) { amaxScale = Math.abs(scales[ib]!); maxScale = scales[ib]!; }
  }
  const d = Math.fround(-maxScale / 32);
  wrF16(dst, o, d);
  const id = d ? Math.fround(1 / d) : 0;
  let sh = 0;
  for (let ib = 0; ib < 8; ib++) {
    const l = Math.max(-32, Math.min(31, nearestInt(Math.fround(id * scales[ib]!))));
    const dl = Math.fround(d * l);
    const idl = dl ? Math.fround(1 / dl) : 0;
    for (let j = 0; j < 32; j++) L[32 * ib + j] = bestIndex(Math.fround(idl * x[xo + 32 * ib + j]!));
    const ls = l + 32;
    if (ib % 2 === 0) dst[o + 4 + (ib >> 1)] = ls & 15;
    else dst[o + 4 + (ib >> 1)] |= (ls & 15) << 4;
    sh |= (ls >> 4) << (2 * ib);
  }
  dst[o + 2] = sh & 0xff;
  dst[o + 3] = sh >> 8;
  for (let ib = 0; ib < 8; ib++) {
    for (let j = 0; j < 16; j++) dst[o + 8 + 16 * ib + j] = L[32 * ib + j]! | (L[32 * ib + 16 + j]! << 4);
  }
}
