/**
 * Q4_K (ggml type 12): super-blocks of 256 values, 144 bytes: d f16 @0, dmin f16 @2, scales u8[12] @4
 * (eight 6-bit scale/min pairs), qs u8[128] @16. Value i: c = i/64, hi = (i%64)/32, t = i/32,
 * q = (qs[32c + i%32] >> 4hi) & 15, y = d·sc_t·q − dmin·mn_t (ggml-quants.c).
 * Quantiser = llama.cpp quantize_row_q4_K_ref (see quantizeKSuper in ggml-ref.ts).
 */
import { checkBlocks, quantizeKSuper, rdF16, scaleMinK4 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 256;

export const Q4_K = defineFormat({
  name: 'q4_k', ggmlId: 12, blockSize: QK, bytesPerBlock: 144, layout: { d: 2, dmin: 2, scales: 12, qs: 128 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q4_k', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 144 * b;
      const d = rdF16(src, o);
      const dmin = rdF16(src, o + 2);
      for (let t = 0; t < 8; t++) {
        const [sc, mn] = scaleMinK4(src, o + 4, t);
        const d1 = Math.fround(d * sc);
        const m1 = Math.fround(dmin * mn);
        const q = o + 16 + 32 * (t >> 1);
        const shift = 4 * (t & 1);
        const y = outOffset + QK * b + 32 * t;
        for (let l = 0; l < 32; l++) out[y + l] = Math.fround(d1 * ((src[q + l]! >> shift) & 15)) - m1;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q4_k', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 144 * b;
      const d = rdF16(src, o);
      const dmin = rdF16(src, o + 2);
      for (let t = 0; t < 8; t++) {
        const [sc, mn] = scaleMinK4(src, o + 4, t);
        const q = o + 16 + 32 * (t >> 1);
        const shift = 4 * (t & 1);
        const xo = xOffset + QK * b + 32 * t;
        let sq = 0;
        let sx = 0;
        for (let l = 0; l < 32; l++) {
          sq += ((src[q + l]! >> shift) & 15) * x[xo + l]!;
          sx += x[xo + l]!;
        }
        // d·sc·q is exact in float32 (11 + 6 + 4 bits), so factoring it out changes nothing but the summation.
        s += Math.fround(d * sc) * sq - Math.fround(dmin * mn) * sx;
      }
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q4_k', n, QK);
    const L = new Uint8Array(QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 144 * b;
      quantizeKSuper(x, xOffset + QK * b, dst, o, 15, -1, 20, L);
      for (let c = 0; c < 4; c++) {
        for (let l = 0; l < 32; l++) dst[o + 16 + 32 * c + l] = L[64 * c + l]! | (L[64 * c + 32 + l]! << 4);
      }
    }
  },
});
