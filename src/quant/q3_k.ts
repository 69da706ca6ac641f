/**
 * Q3_K (ggml type 11): 256 values, 110 bytes: hmask u8[32] @0, qs u8[64] @32, scales u8[12] @96 (sixteen
 * signed 6-bit scales), d f16 @108. Value i: h = i/128, j = (i%128)/32, l = i%32, q = (qs[32h + l] >> 2j) & 3,
 * hb = (hmask[l] >> (4h + j)) & 1; y = d·S[i/16]·(q − (hb ? 0 : 4)) (ggml-quants.c).
 * Quantiser = llama.cpp quantize_row_q3_K_ref: make_q3_quants (levels −4…3, weights x²) per 16 values,
 * 6-bit scales relative to the largest (d = max/−32).
 */
import { checkBlocks, makeQ3Quants, nearestInt, rdF16, wrF16 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 256;

/** Signed 6-bit scale t (−32…31) from the 12 packed bytes at `o`. */
function scale3(b: Uint8Array, o: number, t: number): number {
  const low4 = t < 8 ? b[o + t]! & 15 : b[o + t - 8]! >> 4;
  const high2 = (b[o + 8 + (t & 3)]! >> (2 * (t >> 2))) & 3;
  return (low4 | (high2 << 4)) - 32;
}

export const Q3_K = defineFormat({
  name: 'q3_k', ggmlId: 11, blockSize: QK, bytesPerBlock: 110, layout: { hmask: 32, qs: 64, scales: 12, d: 2 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q3_k', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 110 * b;
      const d = rdF16(src, o + 108);
      for (let g = 0; g < 16; g++) {
        const dl = Math.fround(d * scale3(src, o + 96, g));
        for (let i = 16 * g; i < 16 * g + 16; i++) {
          const h = i >> 7;
          const j = (i >> 5) & 3;
          const l = i & 31;
          const q = (src[o + 32 + 32 * h + l]! >> (2 * j)) & 3;
          const hb = (src[o + l]! >> (4 * h + j)) & 1;
          out[outOffset + QK * b + i] = dl * (q - (hb ? 0 : 4));
        }
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q3_k', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 110 * b;
      const d = rdF16(src, o + 108);
      for (let g = 0; g < 16; g++) {
        let sq = 0;
        for (let i = 16 * g; i < 16 * g + 16; i++) {
          const h = i >> 7;
          const j = (i >> 5) & 3;
          const l = i & 31;
          const q = (src[o + 32 + 32 * h + l]! >> (2 * j)) & 3;
          const hb = (src[o + l]! >> (4 * h + j)) & 1;
          sq += (q - (hb ? 0 : 4)) * x[xOffset + QK * b + i]!;
        }
        // d·S·q needs at most 11 + 6 + 3 bits: exact in float32, so it may be factored out.
        s += Math.fround(d * scale3(src, o + 96, g)) * sq;
      }
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q3_k', n, QK);
    const L = new Int8Array(QK);
    const scales = new Float32Array(16);
    for (let b = 0; b < n / QK; b++) {
      const xo = xOffset + QK * b;
      const o = offset + 110 * b;
      let maxScale = 0;
      let amax = 0;
      for (let g = 0; g < 16; g++) {
        scales[g] = makeQ3Quants(16, 4, x, xo + 16 * g, L, 16 * g);
        if (Math.abs(scales[g]!) > amax) { amax = Math.abs(scales[g]!); maxScale = scales[g]!; }
      }
      for (let k = 0; k < 12; k++) dst[o + 96 + k] = 0;
      let d = 0;
      if (maxScale) {
        const iscale = Math.fround(-32 / maxScale);
        for (let g = 0; g < 16; g++) {
          // C: int8_t l = nearest_int(…); l = MAX(-32, MIN(31, l)) + 32
          const l = Math.max(-32, Math.min(31, (nearestInt(Math.fround(iscale * scales[g]!)) << 24) >> 24)) + 32;
          if (g < 8) dst[o + 96 + g] = l & 15;
          else dst[o + 96 + g - 8] |= (l & 15) << 4;
          dst[o + 96 + 8 + (g & 3)] |= (l >> 4) << (2 * (g >> 2));
        }
        d = wrF16(dst, o + 108, Math.fround(1 / iscale));
      } else {
        wrF16(dst, o + 108, 0);
      }
      for (let g = 0; g < 16; g++) {
        const dd = Math.fround(d * scale3(dst, o + 96, g));
        if (!dd) continue;
        for (let ii = 0; ii < 16; ii++) {
          const l = nearestInt(Math.fround(x[xo + 16 * g + ii]! / dd));
          L[16 * g + ii] = Math.max(-4, Math.min(3, l)) + 4;
        }
      }
      for (let k = 0; k < 32; k++) dst[o + k] = 0;
      for (let i = 0; i < QK; i++) {
        // high bit of value i goes to hmask[i % 32], bit i / 32; a set bit means "no −4 offset"
        if (L[i]! > 3) {
          dst[o + (i & 31)] |= 1 << (i >> 5);
          L[i] = L[i]! - 4;
        }
      }
      for (let h = 0; h < 2; h++) {
        for (let l = 0; l < 32; l++) {
          const j = 128 * h;
          dst[o + 32 + 32 * h + l] = L[j + l]! | (L[j + l + 32]! << 2) | (L[j + l + 64]! << 4) | (L[j + l + 96]! << 6);
        }
      }
    }
  },
});
