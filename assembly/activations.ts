// Activation quantisation for the fast mode: f32 activations → int8 per 32 values with one f32 scale and
// the integer sum per block (what llama.cpp's Q8_0/Q8_K activations hold).

/**
 * Quantise T rows of n f32 activations (n % 32 == 0) to int8 values per 32-block, stored widened as
 * i16 (xq) and as i8 (xq8), with scale d = max|x|/127 (xs) and the integer sum (xsum) per block
 * (llama.cpp's Q8_0/Q8_K activation quantisation; round half to even here instead of away from zero).
 */
export function quantizeX(x: usize, T: i32, n: i32, xq: usize, xs: usize, xsum: usize, xq8: usize): void {
  const nbT = (n >> 5) * T;
  for (let b = 0; b < nbT; b++) {
    const src = x + (<usize>b << 7);
    let amax = f32x4.splat(0);
    for (let j: usize = 0; j < 128; j += 16) amax = f32x4.max(amax, f32x4.abs(v128.load(src + j)));
    const m = max(max(f32x4.extract_lane(amax, 0), f32x4.extract_lane(amax, 1)), max(f32x4.extract_lane(amax, 2), f32x4.extract_lane(amax, 3)));
    const d: f32 = m / 127;
    const id = f32x4.splat(d > 0 ? <f32>1 / d : 0);
    const h0 = quant8(src, id);
    const h1 = quant8(src + 32, id);
    const h2 = quant8(src + 64, id);
    const h3 = quant8(src + 96, id);
    const dst = xq + (<usize>b << 6);
    v128.store(dst, h0);
    v128.store(dst, h1, 16);
    v128.store(dst, h2, 32);
    v128.store(dst, h3, 48);
    v128.store(xq8 + (<usize>b << 5), i8x16.narrow_i16x8_s(h0, h1));
    v128.store(xq8 + (<usize>b << 5), i8x16.narrow_i16x8_s(h2, h3), 16);
    const sum = i32x4.add(
      i32x4.add(i32x4.extadd_pairwise_i16x8_s(h0), i32x4.extadd_pairwise_i16x8_s(h1)),
      i32x4.add(i32x4.extadd_pairwise_i16x8_s(h2), i32x4.extadd_pairwise_i16x8_s(h3)),
    );
    store<f32>(xs + (<usize>b << 2), d);
    store<i32>(xsum + (<usize>b << 2), i32x4.extract_lane(sum, 0) + i32x4.extract_lane(sum, 1) + i32x4.extract_lane(sum, 2) + i32x4.extract_lane(sum, 3));
  }
}

// 8 floats → 8 rounded int16 (|q| ≤ 127).
@inline function quant8(src: usize, id: v128): v128 {
  const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src), id)));
  const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src, 16), id)));
  return i16x8.narrow_i32x4_s(q0, q1);
}
