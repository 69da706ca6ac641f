/**
 * Q4_0 (ggml type 2): 32 values, 18 bytes: d f16 @0, qs u8[16] @2; y[j] = (lo(qs[j]) − 8)·d,
 * y[j+16] = (hi(qs[j]) − 8)·d (ggml-quants.c). Quantiser = llama.cpp quantize_row_q4_0_ref:
 * d = (signed value of largest magnitude)/−8, level = min(15, trunc(x/d + 8.5)).
 */
import { checkBlocks, rdF16, wrF16 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 32;

export const Q4_0 = defineFormat({
  name: 'q4_0', ggmlId: 2, blockSize: QK, bytesPerBlock: 18, layout: { d: 2, qs: 16 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q4_0', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 18 * b;
      const d = rdF16(src, o);
      const y = outOffset + QK * b;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 2 + j]!;
        out[y + j] = ((q & 15) - 8) * d;
        out[y + j + 16] = ((q >> 4) - 8) * d;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q4_0', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 18 * b;
      const xo = xOffset + QK * b;
      let bs = 0;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 2 + j]!;
        bs += ((q & 15) - 8) * x[xo + j]! + ((q >> 4) - 8) * x[xo + j + 16]!;
      }
      s += rdF16(src, o) * bs;
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q4_0', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const xo = xOffset + QK * b;
      const o = offset + 18 * b;
      let amax = 0;
      let max = 0;
      for (let j = 0; j < QK; j++) {
        const v = x[xo + j]!;
        if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
      }
      const d = Math.fround(max / -8);
      const id = d ? Math.fround(1 / d) : 0;
      wrF16(dst, o, d);
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[xo + j]! * id) + 8.5)));
        const q1 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[xo + j + 16]! * id) + 8.5)));
        dst[o + 2 + j] = q0 | (q1 << 4);
      }
    }
  },
});
