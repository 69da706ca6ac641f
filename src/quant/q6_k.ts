/**
 * Q6_K (ggml type 14): 256 values, 210 bytes: ql u8[128] @0, qh u8[64] @128, scales int8[16] @192,
 * d f16 @208. Value i: h = i/128, k = (i%128)/32, l = i%32; low 4 bits from ql[64h + 32(k%2) + l]
 * (low nibble for k < 2, else high), 2 high bits (qh[32h + l] >> 2k) & 3; y = d·scales[i/16]·(q − 32)
 * (ggml-quants.c). Quantiser = llama.cpp quantize_row_q6_K_ref: make_qx_quants per 16 values, then
 * int8 scales relative to the largest (d = max/−128).
 */
import { checkBlocks, GROUP_MAX_EPS, makeQxQuants, nearestInt, rdF16, wrF16 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 256;

export const Q6_K = defineFormat({
  name: 'q6_k', ggmlId: 14, blockSize: QK, bytesPerBlock: 210, layout: { ql: 128, qh: 64, scales: 16, d: 2 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('q6_k', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 210 * b;
      const d = rdF16(src, o + 208);
      for (let i = 0; i < QK; i++) {
        const h = i >> 7;
        const k = (i >> 5) & 3;
        const l = i & 31;
        const byte = src[o + 64 * h + 32 * (k & 1) + l]!;
        const lo = k < 2 ? byte & 15 : byte >> 4;
        const q = (lo | (((src[o + 128 + 32 * h + l]! >> (2 * k)) & 3) << 4)) - 32;
        const sc = (src[o + 192 + (i >> 4)]! << 24) >> 24;
        out[outOffset + QK * b + i] = Math.fround(d * sc) * q;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('q6_k', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 210 * b;
      const d = rdF16(src, o + 208);
      for (let g = 0; g < 16; g++) {
        const dsc = Math.fround(d * ((src[o + 192 + g]! << 24) >> 24));
        for (let i = 16 * g; i < 16 * g + 16; i++) {
          const h = i >> 7;
          const k = (i >> 5) & 3;
          const l = i & 31;
          const byte = src[o + 64 * h + 32 * (k & 1) + l]!;
          const lo = k < 2 ? byte & 15 : byte >> 4;
          const q = (lo | (((src[o + 128 + 32 * h + l]! >> (2 * k)) & 3) << 4)) - 32;
          // d·sc·q can need 25 bits: round it to float32 as the dequantiser does.
          s += Math.fround(dsc * q) * x[xOffset + QK * b + i]!;
        }
      }
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('q6_k', n, QK);
    const L = new Uint8Array(QK);
    const scales = new Float32Array(16);
    for (let b = 0; b < n / QK; b++) {
      const xo = xOffset + QK * b;
      const o = offset + 210 * b;
      let maxScale = 0;
      let maxAbsScale = 0;
      for (let g = 0; g < 16; g++) {
        const s = makeQxQuants(16, 32, x, xo + 16 * g, L, 16 * g);
        scales[g] = s;
        if (Math.abs(s) > maxAbsScale) { maxAbsScale = Math.abs(s); maxScale = s; }
      }
      dst.fill(0, o, o + 210);
      if (maxAbsScale < GROUP_MAX_EPS) continue;
      const iscale = Math.fround(-128 / maxScale);
      const d = wrF16(dst, o + 208, Math.fround(1 / iscale));
      for (let g = 0; g < 16; g++) dst[o + 192 + g] = Math.min(127, nearestInt(Math.fround(iscale * scales[g]!))) & 0xff;
      for (let g = 0; g < 16; g++) {
        const dd = Math.fround(d * ((dst[o + 192 + g]! << 24) >> 24));
        if (!dd) continue;
        for (let ii = 0; ii < 16; ii++) {
          const l = nearestInt(Math.fround(x[xo + 16 * g + ii]! / dd));
          L[16 * g + ii] = Math.max(-32, Math.min(31, l)) + 32;
        }
      }
      for (let h = 0; h < 2; h++) {
        for (let l = 0; l < 32; l++) {
          const j = 128 * h;
          const q1 = L[j + l]!;
          const q2 = L[j + l + 32]!;
          const q3 = L[j + l + 64]!;
          const q4 = L[j + l + 96]!;
          dst[o + 64 * h + l] = (q1 & 15) | ((q3 & 15) << 4);
          dst[o + 64 * h + 32 + l] = (q2 & 15) | ((q4 & 15) << 4);
          dst[o + 128 + 32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
      }
    }
  },
});
