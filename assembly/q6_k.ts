// Q6_K (src/quant/q6_k.ts): super-blocks of 256 6-bit values (210 bytes): 128 bytes of low nibbles,
// 64 of high 2-bit pairs, 16 int8 scales (one per 16 values), f16 d; w = d·sc·(q − 32).
import { h2f } from './half';
import { hsum, transposeSum } from './math';

/** A q6_k row as integers with the per-16 scales folded in, and per-32 scales d (see deqRowI16 in matmul.ts). */
@inline export function deqRowI16Q6_K(src: usize, n: i32, q: usize, ws: usize, wm: usize): void {
  const m4 = i8x16.splat(0x0f);
  const m2 = i8x16.splat(3);
  const c32 = i8x16.splat(32);
  const nsb = n >> 8;
  for (let s = 0; s < nsb; s++) {
    const blk = src + <usize>s * 210;
    const ql = blk;
    const qh = blk + 128;
    const scales = blk + 192;
    const d = h2f(load<u16>(blk, 208));
    for (let b = 0; b < 8; b++) {
      store<f32>(ws + (<usize>((s << 3) + b) << 2), d);
      store<f32>(wm + (<usize>((s << 3) + b) << 2), 0);
    }
    for (let h = 0; h < 2; h++) {
      for (let k = 0; k < 4; k++) {
        for (let u = 0; u < 2; u++) {
          const qlv = v128.load(ql + (<usize>(64 * h + 32 * (k & 1) + 16 * u)));
          const lo = k < 2 ? v128.and(qlv, m4) : i8x16.shr_u(qlv, 4);
          const qhv = v128.load(qh + (<usize>(32 * h + 16 * u)));
          const hb = v128.and(i8x16.shr_u(qhv, <i32>(2 * k)), m2);
          const v = i8x16.sub(v128.or(lo, i8x16.shl(hb, 4)), c32);
          const scl = i16x8.splat(<i16>load<i8>(scales + (<usize>(8 * h + 2 * k + u))));
          const o = q + (<usize>((s << 8) + 128 * h + 32 * k + 16 * u) << 1);
          v128.store(o, i16x8.mul(i16x8.extend_low_i8x16_s(v), scl));
          v128.store(o, i16x8.mul(i16x8.extend_high_i8x16_s(v), scl), 16);
        }
      }
    }
  }
}

// One q6_k 32-value sub-block (h, k) · its int8 activations → i32x4 partials, the two 16-value halves
// weighted by their int8 scales (|Σ16 q·x| ≤ 65024, × |sc| ≤ 128: fits i32).
@inline export function q6Block(ql: usize, qh: usize, scales: usize, h: i32, k: i32, xb: usize): v128 {
  const m4 = i8x16.splat(0x0f);
  const m2 = i8x16.splat(3);
  const c32 = i8x16.splat(32);
  let acc = i32x4.splat(0);
  for (let u = 0; u < 2; u++) {
    const qlv = v128.load(ql + <usize>(64 * h + 32 * (k & 1) + 16 * u));
    const lo = k < 2 ? v128.and(qlv, m4) : i8x16.shr_u(qlv, 4);
    const hb = v128.and(i8x16.shr_u(v128.load(qh + <usize>(32 * h + 16 * u)), <i32>(2 * k)), m2);
    const qv = i8x16.sub(v128.or(lo, i8x16.shl(hb, 4)), c32);
    const xv = v128.load(xb + <usize>(16 * u));
    const g = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extmul_low_i8x16_s(qv, xv), i16x8.extmul_high_i8x16_s(qv, xv)));
    acc = i32x4.add(acc, i32x4.mul(g, i32x4.splat(<i32>load<i8>(scales + <usize>(8 * h + 2 * k + u)))));
  }
  return acc;
}

/** Fast-mode q6_k row · one token, straight from the blocks (bit layout: ggml-quants.c dequantize_row_q6_K). */
export function dotQ6KT1(row: usize, nsb: i32, xq8: usize, xs: usize): f32 {
  let acc = f32x4.splat(0);
  for (let sb = 0; sb < nsb; sb++) {
    const blk = row + <usize>sb * 210;
    const ql = blk;
    const qh = blk + 128;
    const scales = blk + 192;
    const xb = xq8 + (<usize>sb << 8);
    const d = f32x4.splat(h2f(load<u16>(blk, 208)));
    const lo = transposeSum(q6Block(ql, qh, scales, 0, 0, xb), q6Block(ql, qh, scales, 0, 1, xb + 32), q6Block(ql, qh, scales, 0, 2, xb + 64), q6Block(ql, qh, scales, 0, 3, xb + 96));
    const hi = transposeSum(q6Block(ql, qh, scales, 1, 0, xb + 128), q6Block(ql, qh, scales, 1, 1, xb + 160), q6Block(ql, qh, scales, 1, 2, xb + 192), q6Block(ql, qh, scales, 1, 3, xb + 224));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(lo), f32x4.mul(d, v128.load(xs + (<usize>sb << 5)))));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(hi), f32x4.mul(d, v128.load(xs + (<usize>sb << 5), 16))));
  }
  return hsum(acc);
}
