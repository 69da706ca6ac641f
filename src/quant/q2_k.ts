/**
 * Q2_K (ggml type 10): 256 values, 84 bytes: scales u8[16] @0 (low nibble scale, high nibble min, per 16
 * values), qs u8[64] @16, d f16 @80, dmin f16 @82. Value i: h = i/128, j = (i%128)/32, l = i%32,
 * q = (qs[32h + l] >> 2j) & 3, sc = scales[i/16]; y = d·(sc & 15)·q − dmin·(sc >> 4) (ggml-quants.c).
 * Quantiser = llama.cpp quantize_row_q2_K_ref: make_qkx2_quants (levels 0…3, weights |x|, absolute-error
 * criterion) per 16 values, 4-bit scales/mins relative to the largest.
 */
import { checkBlocks, makeQkx2Quants, nearestInt, qkx2Min, rdF16, wrF16 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 256;

export const Q2_K = defineFormat({
  name: 'q2_k', ggmlId: 10, blockSize: QK, bytesPerBlock: 84, layout: { scales: 16, qs: 64, d: 2, dmin: 2 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q2_k', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 84 * b;
      const d = rdF16(src, o + 80);
      const dmin = rdF16(src, o + 82);
      for (let g = 0; g < 16; g++) {
        const sc = src[o + g]!;
        const dl = Math.fround(d * (sc & 15));
        const ml = Math.fround(dmin * (sc >> 4));
        for (let i = 16 * g; i < 16 * g + 16; i++) {
          const q = (src[o + 16 + 32 * (i >> 7) + (i & 31)]! >> (2 * ((i >> 5) & 3))) & 3;
          out[outOffset + QK * b + i] = Math.fround(dl * q) - ml;
        }
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q2_k', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 84 * b;
      const d = rdF16(src, o + 80);
      const dmin = rdF16(src, o + 82);
      for (let g = 0; g < 16; g++) {
        const sc = src[o + g]!;
        let sq = 0;
        let sx = 0;
        for (let i = 16 * g; i < 16 * g + 16; i++) {
          const q = (src[o + 16 + 32 * (i >> 7) + (i & 31)]! >> (2 * ((i >> 5) & 3))) & 3;
          const xv = x[xOffset + QK * b + i]!;
          sq += q * xv;
          sx += xv;
        }
        // d·sc·q needs at most 11 + 4 + 2 bits: exact in float32, so it may be factored out.
        s += Math.fround(d * (sc & 15)) * sq - Math.fround(dmin * (sc >> 4)) * sx;
      }
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q2_k', n, QK);
    const L = new Uint8Array(QK);
    const Laux = new Uint8Array(16);
    const w = new Float32Array(16);
    const scales = new Float32Array(16);
    const mins = new Float32Array(16);
    for (let b = 0; b < n / QK; b++) {
      const xo = xOffset + QK * b;
      const o = offset + 84 * b;
      let maxScale = 0;
      let maxMin = 0;
      for (let g = 0; g < 16; g++) {
        for (let l = 0; l < 16; l++) w[l] = Math.abs(x[xo + 16 * g + l]!);
        scales[g] = makeQkx2Quants(16, 3, x, xo + 16 * g, w, L, 16 * g, Laux, -0.5, 0.1, 15, true);
        mins[g] = qkx2Min;
        if (scales[g]! > maxScale) maxScale = scales[g]!;
        if (mins[g]! > maxMin) maxMin = mins[g]!;
      }
      let d = 0;
      if (maxScale > 0) {
        const iscale = Math.fround(15 / maxScale);
        for (let g = 0; g < 16; g++) dst[o + g] = nearestInt(Math.fround(iscale * scales[g]!)) & 0xff;
        d = wrF16(dst, o + 80, Math.fround(maxScale / 15));
      } else {
        for (let g = 0; g < 16; g++) dst[o + g] = 0;
        wrF16(dst, o + 80, 0);
      }
      let dmin = 0;
      if (maxMin > 0) {
        const iscale = Math.fround(15 / maxMin);
        for (let g = 0; g < 16; g++) dst[o + g] |= (nearestInt(Math.fround(iscale * mins[g]!)) << 4) & 0xff;
        dmin = wrF16(dst, o + 82, Math.fround(maxMin / 15));
      } else {
        wrF16(dst, o + 82, 0);
      }
      for (let g = 0; g < 16; g++) {
        const dd = Math.fround(d * (dst[o + g]! & 15));
        if (!dd) continue;
        const dm = Math.fround(dmin * (dst[o + g]! >> 4));
        for (let ii = 0; ii < 16; ii++) {
          const l = nearestInt(Math.fround(Math.fround(x[xo + 16 * g + ii]! + dm) / dd));
          L[16 * g + ii] = Math.max(0, Math.min(3, l));
        }
      }
      for (let h = 0; h < 2; h++) {
        for (let l = 0; l < 32; l++) {
          const j = 128 * h;
          dst[o + 16 + 32 * h + l] = L[j + l]! | (L[j + l + 32]! << 2) | (L[j + l + 64]! << 4) | (L[j + l + 96]! << 6);
        }
      }
    }
  },
});
