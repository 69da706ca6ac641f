/**
 * IQ4_NL (ggml type 20): 32 values, 18 bytes: d f16 @0, qs u8[16] @2; y[j] = d·K[lo(qs[j])],
 * y[j+16] = d·K[hi(qs[j])] with the non-linear table K (ggml-quants.c).
 * Quantiser = llama.cpp quantize_iq4_nl without an importance matrix (weights x²): start from
 * d = −max/K[0], refit d by weighted least squares, try 15 more starting scales (itry −7…7), then
 * re-pick every level with the final f16-free scale. With an importance matrix: weighted.ts.
 */
import { checkBlocks, GROUP_MAX_EPS, rdF16, wrF16 } from './ggml-ref.js';
import { defineFormat } from './layout.js';

const QK = 32;
export const IQ4_NL_VALUES: readonly number[] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
const K = IQ4_NL_VALUES;

/** Index of the table value nearest to v (ties to the lower one; llama.cpp best_index_int8). */
export function bestIndex(v: number): number {
  if (v <= K[0]!) return 0;
  if (v >= K[15]!) return 15;
  let lo = 0;
  let hi = 15;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (v < K[mid]!) hi = mid;
    else lo = mid;
  }
  return Math.fround(v - K[hi - 1]!) < Math.fround(K[hi]! - v) ? hi - 1 : hi;
}

/**
 * The scale of 32 values (llama.cpp quantize_row_iq4_nl_impl, per 32): d = −max/K[0] refit by weighted least
 * squares, then 15 more starting scales (itry −7…7); 0 for a group of zeros. The weights are x² without an
 * importance matrix, else `w[0 … 32)` (qw·√(σ² + x²), weighted.ts). IQ4_XS (iq4_xs.ts) quantises these scales
 * once more per 256 values.
 */
export function iq4Scale(x: Float32Array, xo: number, w?: Float32Array): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QK; j++) {
    const ax = Math.abs(x[xo + j]!);
    if (ax > amax) { amax = ax; max = x[xo + j]!; }
  }
  if (amax < GROUP_MAX_EPS) return 0;
  // Σ w·q·x and Σ w·q² (q the nearest level of id·x), accumulated in float32 in value order.
  const sums = (id: number): [number, number] => {
    let sumqx = 0;
    let sumq2 = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[xo + j]!;
      const q = K[bestIndex(Math.fround(id * v))]!;
      const wj = w ? w[j]! : Math.fround(v * v);
      sumqx = Math.fround(sumqx + Math.fround(Math.fround(wj * q) * v));
      sumq2 = Math.fround(sumq2 + Math.fround(Math.fround(wj * q) * q));
    }
    return [sumqx, sumq2];
  };
  let d = Math.fround(-max / K[0]!);
  let [sumqx, sumq2] = sums(Math.fround(1 / d));
  d = sumq2 > 0 ? Math.fround(sumqx / sumq2) : 0;
  let best = Math.fround(d * sumqx);
  for (let itry = -7; itry <= 7; itry++) {
    [sumqx, sumq2] = sums(Math.fround((itry + K[0]!) / max));
    if (sumq2 > 0 && Math.fround(sumqx * sumqx) > Math.fround(best * sumq2)) {
      d = Math.fround(sumqx / sumq2);
      best = Math.fround(d * sumqx);
    }
  }
  return d;
}

const L = new Uint8Array(QK);

/** One IQ4_NL block at dst[o] from its scale: d as f16, every level re-picked with the unrounded scale. */
export function iq4NlPack(x: Float32Array, xo: number, scale: number, dst: Uint8Array, o: number): void {
  wrF16(dst, o, scale);
  const id = scale ? Math.fround(1 / scale) : 0;
  for (let j = 0; j < QK; j++) L[j] = bestIndex(Math.fround(id * x[xo + j]!));
  for (let j = 0; j < 16; j++) dst[o + 2 + j] = L[j]! | (L[j + 16]! << 4);
}

export const IQ4_NL = defineFormat({
  name: 'iq4_nl', ggmlId: 20, blockSize: QK, bytesPerBlock: 18, layout: { d: 2, qs: 16 },
  dequantize(src, offset, n, out, outOffset) {
    checkBlocks('iq4_nl', n, QK);
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 18 * b;
      const d = rdF16(src, o);
      const y = outOffset + QK * b;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 2 + j]!;
        out[y + j] = d * K[q & 15]!;
        out[y + j + 16] = d * K[q >> 4]!;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    checkBlocks('iq4_nl', n, QK);
    let s = 0;
    for (let b = 0; b < n / QK; b++) {
      const o = offset + 18 * b;
      const xo = xOffset + QK * b;
      let bs = 0;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 2 + j]!;
        bs += K[q & 15]! * x[xo + j]! + K[q >> 4]! * x[xo + j + 16]!;
      }
      s += rdF16(src, o) * bs;
    }
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    checkBlocks('iq4_nl', n, QK);
    for (let b = 0; b < n / QK; b++) iq4NlPack(x, xOffset + QK * b, iq4Scale(x, xOffset + QK * b), dst, offset + 18 * b);
  },
});
