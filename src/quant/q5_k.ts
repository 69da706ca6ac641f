/**
 * Q5_K (ggml type 13): 256 values, 176 bytes: d f16 @0, dmin f16 @2, scales u8[12] @4, qh u8[32] @16,
 * qs u8[128] @48. Indices as Q4_K; q = nibble | ((qh[i%32] >> t) & 1) << 4; y = d·sc_t·q − dmin·mn_t
 * (ggml-quants.c). Quantiser = llama.cpp quantize_row_q5_K_ref (levels 0…31, rmin −0.5, 16 steps).
 */
import { checkBlocks, quantizeKSuper, rdF16, scaleMinK4 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 256;

export const Q5_K = defineFormat({
  name: 'q5_k', ggmlId: 13, blockSize: QK, bytesPerBlock: 176, layout: { d: 2, dmin: 2, scales: 12, qh: 32, qs: 128 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q5_k', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 176 * b;
      const d = rdF16(src, o);
      const dmin = rdF16(src, o + 2);
      for (let t = 0; t < 8; t++) {
        const [sc, mn] = scaleMinK4(src, o + 4, t);
        const d1 = Math.fround(d * sc);
        const m1 = Math.fround(dmin * mn);
        const q = o + 48 + 32 * (t >> 1);
        const shift = 4 * (t & 1);
        const y = outOffset + QK * b + 32 * t;
        for (let l = 0; l < 32; l++) {
          const v = ((src[q + l]! >> shift) & 15) | (((src[o + 16 + l]! >> t) & 1) << 4);
          out[y + l] = Math.fround(d1 * v) - m1;
        }
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q5_k', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 176 * b;
      const d = rdF16(src, o);
      const dmin = rdF16(src, o + 2);
      for (let t = 0; t < 8; t++) {
        const [sc, mn] = scaleMinK4(src, o + 4, t);
        const q = o + 48 + 32 * (t >> 1);
        const shift = 4 * (t & 1);
        const xo = xOffset + QK * b + 32 * t;
        let sq = 0;
        let sx = 0;
        for (let l = 0; l < 32; l++) {
          const v = ((src[q + l]! >> shift) & 15) | (((src[o + 16 + l]! >> t) & 1) << 4);
          sq += v * x[xo + l]!;
          sx += x[xo + l]!;
        }
        // d·sc·q needs 11 + 6 + 5 bits: exact in float32, so factoring it out only changes the summation.
        s += Math.fround(d * sc) * sq - Math.fround(dmin * mn) * sx;
      }
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q5_k', n, QK);
    const L = new Uint8Array(QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 176 * b;
      quantizeKSuper(x, xOffset + QK * b, dst, o, 31, -0.5, 15, L);
      for (let l = 0; l < 32; l++) dst[o + 16 + l] = 0;
      for (let c = 0; c < 4; c++) {
        for (let l = 0; l < 32; l++) {
          const l1 = L[64 * c + l]!;
          const l2 = L[64 * c + 32 + l]!;
          dst[o + 16 + l] |= ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1));
          dst[o + 48 + 32 * c + l] = (l1 & 15) | ((l2 & 15) << 4);
        }
      }
    }
  },
});
