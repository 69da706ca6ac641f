/**
 * Q5_0 (ggml type 6): 32 values, 22 bytes: d f16 @0, qh u32 @2 (fifth bits, bit j for value j),
 * qs u8[16] @6 (low nibbles: values 0…15, high nibbles: 16…31); y = (q − 16)·d (ggml-quants.c).
 * Quantiser = llama.cpp quantize_row_q5_0_ref: d = (signed value of largest magnitude)/−16,
 * level = min(31, trunc(x/d + 16.5)).
 */
import { checkBlocks, rdF16, wrF16 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 32;

function qh32(src: Uint8Array, o: number): number {
  return (src[o]! | (src[o + 1]! << 8) | (src[o + 2]! << 16) | (src[o + 3]! << 24)) >>> 0;
}

export const Q5_0 = defineFormat({
  name: 'q5_0', ggmlId: 6, blockSize: QK, bytesPerBlock: 22, layout: { d: 2, qh: 4, qs: 16 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q5_0', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 22 * b;
      const d = rdF16(src, o);
      const qh = qh32(src, o + 2);
      const y = outOffset + QK * b;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 6 + j]!;
        out[y + j] = (((q & 15) | (((qh >>> j) & 1) << 4)) - 16) * d;
        out[y + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q5_0', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 22 * b;
      const qh = qh32(src, o + 2);
      const xo = xOffset + QK * b;
      let bs = 0;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 6 + j]!;
        bs += (((q & 15) | (((qh >>> j) & 1) << 4)) - 16) * x[xo + j]!
          + (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * x[xo + j + 16]!;
      }
      s += rdF16(src, o) * bs;
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q5_0', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const xo = xOffset + QK * b;
      const o = offset + 22 * b;
      let amax = 0;
      let max = 0;
      for (let j = 0; j < QK; j++) {
        const v = x[xo + j]!;
        if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
      }
      const d = Math.fround(max / -16);
      const id = d ? Math.fround(1 / d) : 0;
      wrF16(dst, o, d);
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(31, Math.trunc(Math.fround(Math.fround(x[xo + j]! * id) + 16.5)));
        const q1 = Math.min(31, Math.trunc(Math.fround(Math.fround(x[xo + j + 16]! * id) + 16.5)));
        dst[o + 6 + j] = (q0 & 15) | ((q1 & 15) << 4);
        qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
      }
      dst[o + 2] = qh & 0xff;
      dst[o + 3] = (qh >>> 8) & 0xff;
      dst[o + 4] = (qh >>> 16) & 0xff;
      dst[o + 5] = (qh >>> 24) & 0xff;
    }
  },
});
