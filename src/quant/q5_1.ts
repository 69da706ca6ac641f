/**
 * Q5_1 (ggml type 7): 32 values, 24 bytes: d f16 @0, m f16 @2, qh u32 @4, qs u8[16] @8; as Q5_0 without
 * the −16 and y = q·d + m (ggml-quants.c). Quantiser = llama.cpp quantize_row_q5_1_ref:
 * m = min, d = (max − min)/31, level = trunc((x − m)/d + 0.5).
 */
import { checkBlocks, rdF16, wrF16 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 32;

function qh32(src: Uint8Array, o: number): number {
  return (src[o]! | (src[o + 1]! << 8) | (src[o + 2]! << 16) | (src[o + 3]! << 24)) >>> 0;
}

export const Q5_1 = defineFormat({
  name: 'q5_1', ggmlId: 7, blockSize: QK, bytesPerBlock: 24, layout: { d: 2, m: 2, qh: 4, qs: 16 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q5_1', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 24 * b;
      const d = rdF16(src, o);
      const m = rdF16(src, o + 2);
      const qh = qh32(src, o + 4);
      const y = outOffset + QK * b;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 8 + j]!;
        out[y + j] = Math.fround(((q & 15) | (((qh >>> j) & 1) << 4)) * d) + m;
        out[y + j + 16] = Math.fround(((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d) + m;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q5_1', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 24 * b;
      const d = rdF16(src, o);
      const m = rdF16(src, o + 2);
      const qh = qh32(src, o + 4);
      const xo = xOffset + QK * b;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 8 + j]!;
        s += Math.fround(Math.fround(((q & 15) | (((qh >>> j) & 1) << 4)) * d) + m) * x[xo + j]!
          + Math.fround(Math.fround(((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d) + m) * x[xo + j + 16]!;
      }
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q5_1', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const xo = xOffset + QK * b;
      const o = offset + 24 * b;
      let min = Infinity;
      let max = -Infinity;
      for (let j = 0; j < QK; j++) {
        const v = x[xo + j]!;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const d = Math.fround(Math.fround(max - min) / 31);
      const id = d ? Math.fround(1 / d) : 0;
      wrF16(dst, o, d);
      wrF16(dst, o + 2, min);
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(31, Math.trunc(Math.fround(Math.fround(Math.fround(x[xo + j]! - min) * id) + 0.5)));
        const q1 = Math.min(31, Math.trunc(Math.fround(Math.fround(Math.fround(x[xo + j + 16]! - min) * id) + 0.5)));
        dst[o + 8 + j] = (q0 & 15) | ((q1 & 15) << 4);
        qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
      }
      dst[o + 4] = qh & 0xff;
      dst[o + 5] = (qh >>> 8) & 0xff;
      dst[o + 6] = (qh >>> 16) & 0xff;
      dst[o + 7] = (qh >>> 24) & 0xff;
    }
  },
});
