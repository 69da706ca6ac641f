// SIMD helpers shared by the block types' kernels.

@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// Integer sums of four blocks (i32x4 partials each) → one i32x4 [Σs0, Σs1, Σs2, Σs3].
@inline export function transposeSum(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const t0 = i32x4.add(v128.shuffle<i32>(s0, s1, 0, 4, 1, 5), v128.shuffle<i32>(s0, s1, 2, 6, 3, 7));
  const t1 = i32x4.add(v128.shuffle<i32>(s2, s3, 0, 4, 1, 5), v128.shuffle<i32>(s2, s3, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(t0, t1, 0, 1, 4, 5), v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
}

// 32 small signed weights (two i8x16, |q| ≤ 16) · one int8 activation block → i32x4 partials.
// Four products of |q·x| ≤ 16·127 fit an i16 lane, so the halves are added before widening.
@inline export function smallBlock(q0: v128, q1: v128, xb: usize): v128 {
  const x0 = v128.load(xb);
  const x1 = v128.load(xb, 16);
  const p = i16x8.add(
    i16x8.add(i16x8.extmul_low_i8x16_s(q0, x0), i16x8.extmul_high_i8x16_s(q0, x0)),
    i16x8.add(i16x8.extmul_low_i8x16_s(q1, x1), i16x8.extmul_high_i8x16_s(q1, x1)),
  );
  return i32x4.extadd_pairwise_i16x8_s(p);
}

