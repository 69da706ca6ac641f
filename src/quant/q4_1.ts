/**
 * Q4_1 (ggml type 3): 32 values, 20 bytes: d f16 @0, m f16 @2, qs u8[16] @4; y = q·d + m with q the low
 * nibble (first half) or high nibble (second half) (ggml-quants.c). Quantiser = llama.cpp
 * quantize_row_q4_1_ref: m = min, d = (max − min)/15, level = min(15, trunc((x − m)/d + 0.5)).
 */
import { checkBlocks, rdF16, wrF16 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 32;

export const Q4_1 = defineFormat({
  name: 'q4_1', ggmlId: 3, blockSize: QK, bytesPerBlock: 20, layout: { d: 2, m: 2, qs: 16 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q4_1', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 20 * b;
      const d = rdF16(src, o);
      const m = rdF16(src, o + 2);
      const y = outOffset + QK * b;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 4 + j]!;
        out[y + j] = Math.fround((q & 15) * d) + m;
        out[y + j + 16] = Math.fround((q >> 4) * d) + m;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q4_1', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 20 * b;
      const xo = xOffset + QK * b;
      const d = rdF16(src, o);
      const m = rdF16(src, o + 2);
      for (let j = 0; j < 16; j++) {
        const q = src[o + 4 + j]!;
        s += Math.fround(Math.fround((q & 15) * d) + m) * x[xo + j]! + Math.fround(Math.fround((q >> 4) * d) + m) * x[xo + j + 16]!;
      }
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q4_1', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const xo = xOffset + QK * b;
      const o = offset + 20 * b;
      let min = Infinity;
      let max = -Infinity;
      for (let j = 0; j < QK; j++) {
        const v = x[xo + j]!;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const d = Math.fround(Math.fround(max - min) / 15);
      const id = d ? Math.fround(1 / d) : 0;
      wrF16(dst, o, d);
      wrF16(dst, o + 2, min);
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, Math.trunc(Math.fround(Math.fround(Math.fround(x[xo + j]! - min) * id) + 0.5)));
        const q1 = Math.min(15, Math.trunc(Math.fround(Math.fround(Math.fround(x[xo + j + 16]! - min) * id) + 0.5)));
        dst[o + 4 + j] = q0 | (q1 << 4);
      }
    }
  },
});
