/**
 * Q8_0 (ggml type 8): blocks of 32 values, 34 bytes: d f16 @0, qs int8[32] @2; y[i] = d·qs[i]
 * (ggml-quants.c). Quantiser = llama.cpp quantize_row_q8_0_ref: d = max|x|/127, q = roundf(x/d).
 */
import { checkBlocks, rdF16, wrF16 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 32;

export const Q8_0 = defineFormat({
  name: 'q8_0', ggmlId: 8, blockSize: QK, bytesPerBlock: 34, layout: { d: 2, qs: 32 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q8_0', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 34 * b;
      const d = rdF16(src, o);
      for (let j = 0; j < QK; j++) out[outOffset + QK * b + j] = d * ((src[o + 2 + j]! << 24) >> 24);
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q8_0', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 34 * b;
      const xo = xOffset + QK * b;
      let bs = 0;
      for (let j = 0; j < QK; j++) bs += ((src[o + 2 + j]! << 24) >> 24) * x[xo + j]!;
      s += rdF16(src, o) * bs;
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q8_0', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const xo = xOffset + QK * b;
      const o = offset + 34 * b;
      let amax = 0;
      for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[xo + j]!));
      const d = Math.fround(amax / 127);
      const id = d ? Math.fround(1 / d) : 0;
      wrF16(dst, o, d);
      for (let j = 0; j < QK; j++) {
        // roundf: for a float32 v, floor(|v| + 0.5) is exact in double arithmetic
        const v = Math.fround(x[xo + j]! * id);
        dst[o + 2 + j] = (v < 0 ? -Math.floor(0.5 - v) : Math.floor(v + 0.5)) & 0xff;
      }
    }
  },
});
