// Q8_0 (src/quant/q8_0.ts): blocks of 32 int8 values and an f16 scale d (34 bytes); w = q·d.
import { h2f } from './half';
import { hsum } from './math';

/** A q8_0 row as integers and per-block scales (see deqRowI16 in matmul.ts). */
@inline export function deqRowI16Q8_0(src: usize, n: i32, q: usize, ws: usize, wm: usize): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const blk = src + <usize>b * 34;
    const o = q + (<usize>b << 6);
    const v0 = v128.load(blk, 2);
    const v1 = v128.load(blk, 18);
    v128.store(o, i16x8.extend_low_i8x16_s(v0));
    v128.store(o, i16x8.extend_high_i8x16_s(v0), 16);
    v128.store(o, i16x8.extend_low_i8x16_s(v1), 32);
    v128.store(o, i16x8.extend_high_i8x16_s(v1), 48);
    store<f32>(ws + (<usize>b << 2), h2f(load<u16>(blk)));
    store<f32>(wm + (<usize>b << 2), 0);
  }
}

// One q8_0 block · one int8 activation block → i32x4 partial sums. Pairs of products fit i16:
// |w| ≤ 128, |x| ≤ 127 → |w·x + w'·x'| ≤ 32512.
@inline export function q8Block(blk: usize, xb: usize): v128 {
  const v0 = v128.load(blk, 2);
  const v1 = v128.load(blk, 18);
  const x0 = v128.load(xb);
  const x1 = v128.load(xb, 16);
  const p0 = i16x8.add(i16x8.extmul_low_i8x16_s(v0, x0), i16x8.extmul_high_i8x16_s(v0, x0));
  const p1 = i16x8.add(i16x8.extmul_low_i8x16_s(v1, x1), i16x8.extmul_high_i8x16_s(v1, x1));
  return i32x4.add(i32x4.extadd_pairwise_i16x8_s(p0), i32x4.extadd_pairwise_i16x8_s(p1));
}

/**
 * Fast-mode q8_0 row · one token (decode): per block, the i32x4 lane partials of the int8 products,
 * converted and scaled by d·dx into two accumulators (even / odd blocks: the convert-scale-add chain is
 * latency-bound with one), then hsum(a0 + a1) — dotQ8Tiled's order, so a token's result does not
 * depend on the batch around it.
 */
export function dotQ8T1(row: usize, nb: i32, xq8: usize, xs: usize): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let b = 0;
  for (; b + 2 <= nb; b += 2) {
    const blk = row + <usize>b * 34;
    const xb = xq8 + (<usize>b << 5);
    const sb = xs + (<usize>b << 2);
    a0 = f32x4.add(a0, f32x4.mul(f32x4.convert_i32x4_s(q8Block(blk, xb)), f32x4.splat(h2f(load<u16>(blk)) * load<f32>(sb))));
    a1 = f32x4.add(a1, f32x4.mul(f32x4.convert_i32x4_s(q8Block(blk + 34, xb + 32)), f32x4.splat(h2f(load<u16>(blk, 34)) * load<f32>(sb, 4))));
  }
  if (b < nb) {
    const blk = row + <usize>b * 34;
    a0 = f32x4.add(a0, f32x4.mul(f32x4.convert_i32x4_s(q8Block(blk, xq8 + (<usize>b << 5))), f32x4.splat(h2f(load<u16>(blk)) * load<f32>(xs + (<usize>b << 2)))));
  }
  return hsum(f32x4.add(a0, a1));
}

// Integer dot of one 32-block (four i16x8 weight vectors) with one i16 activation block → i32x4 lane
// partials; lane j sums the products of inputs {2j, 2j+1} + 8k, k = 0…3 — the same grouping as q8Block's.
@inline export function blockDot(w0: v128, w1: v128, w2: v128, w3: v128, xb: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(xb)), i32x4.dot_i16x8_s(w1, v128.load(xb, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(xb, 32)), i32x4.dot_i16x8_s(w3, v128.load(xb, 48))),
  );
}

/**
 * Fast-mode q8_0 row · T tokens (prefill, expert batches), four tokens per weight load: weights widened
 * to i16 once, i32x4.dot_i16x8_s with the i16 activations. Float order per token exactly as dotQ8T1
 * (per block: f32(lane partials) · (d · dx) into one accumulator, then hsum; the lane partials are the
 * same integers either way), and the tokens past the last full four go through dotQ8T1 itself: each
 * token's result is its T = 1 result bit for bit.
 */
export function dotQ8Tiled(row: usize, nb: i32, xq: usize, xs: usize, xq8: usize, T: i32, y: usize, ystride: usize): void {
  const xqS = <usize>nb << 6;
  const xsS = <usize>nb << 2;
  let t = 0;
  for (; t + 2 <= T; t += 2) {
    const xq0 = xq + <usize>t * xqS;
    const xs0 = xs + <usize>t * xsS;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), e0 = f32x4.splat(0), e1 = f32x4.splat(0);
    let b = 0;
    for (; b + 2 <= nb; b += 2) {
      let blk = row + <usize>b * 34;
      let v0 = v128.load(blk, 2);
      let v1 = v128.load(blk, 18);
      let w0 = i16x8.extend_low_i8x16_s(v0);
      let w1 = i16x8.extend_high_i8x16_s(v0);
      let w2 = i16x8.extend_low_i8x16_s(v1);
      let w3 = i16x8.extend_high_i8x16_s(v1);
      let s = h2f(load<u16>(blk));
      let xb = xq0 + (<usize>b << 6);
      let sb = xs0 + (<usize>b << 2);
      a0 = f32x4.add(a0, f32x4.mul(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, xb)), f32x4.splat(s * load<f32>(sb))));
      a1 = f32x4.add(a1, f32x4.mul(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, xb + xqS)), f32x4.splat(s * load<f32>(sb + xsS))));
      blk += 34;
      v0 = v128.load(blk, 2);
      v1 = v128.load(blk, 18);
      w0 = i16x8.extend_low_i8x16_s(v0);
      w1 = i16x8.extend_high_i8x16_s(v0);
      w2 = i16x8.extend_low_i8x16_s(v1);
      w3 = i16x8.extend_high_i8x16_s(v1);
      s = h2f(load<u16>(blk));
      xb += 64;
      sb += 4;
      e0 = f32x4.add(e0, f32x4.mul(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, xb)), f32x4.splat(s * load<f32>(sb))));
      e1 = f32x4.add(e1, f32x4.mul(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, xb + xqS)), f32x4.splat(s * load<f32>(sb + xsS))));
    }
    if (b < nb) {
      const blk = row + <usize>b * 34;
      const v0 = v128.load(blk, 2);
      const v1 = v128.load(blk, 18);
      const w0 = i16x8.extend_low_i8x16_s(v0);
      const w1 = i16x8.extend_high_i8x16_s(v0);
      const w2 = i16x8.extend_low_i8x16_s(v1);
      const w3 = i16x8.extend_high_i8x16_s(v1);
      const s = h2f(load<u16>(blk));
      const xb = xq0 + (<usize>b << 6);
      const sb = xs0 + (<usize>b << 2);
      a0 = f32x4.add(a0, f32x4.mul(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, xb)), f32x4.splat(s * load<f32>(sb))));
      a1 = f32x4.add(a1, f32x4.mul(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, xb + xqS)), f32x4.splat(s * load<f32>(sb + xsS))));
    }
    const yo = y + <usize>t * ystride;
    store<f32>(yo, hsum(f32x4.add(a0, e0)));
    store<f32>(yo + ystride, hsum(f32x4.add(a1, e1)));
  }
  for (; t < T; t++) store<f32>(y + <usize>t * ystride, dotQ8T1(row, nb, xq8 + <usize>t * (<usize>nb << 5), xs + <usize>t * xsS));
}

@inline export function i8ToF32(v: v128, lane: i32): v128 {
  // lane 0..3: the four groups of 4 bytes of v, sign-extended to i32 and converted.
  const h = lane < 2 ? i16x8.extend_low_i8x16_s(v) : i16x8.extend_high_i8x16_s(v);
  return f32x4.convert_i32x4_s((lane & 1) == 0 ? i32x4.extend_low_i16x8_s(h) : i32x4.extend_high_i16x8_s(h));
}

/**
 * Exact-mode q8_0 row · one f32 token without a decode pass. The weights are formed as deqRowF32 forms
 * them (w = f32(q)·d) and summed in dotF32T1's order, so the result equals decode-then-dotF32 bit for bit.
 */
export function dotQ8ExactT1(row: usize, nb: i32, x: usize): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const blk = row + <usize>b * 34;
    const xb = x + (<usize>b << 7);
    const d = f32x4.splat(h2f(load<u16>(blk)));
    const v0 = v128.load(blk, 2);
    const v1 = v128.load(blk, 18);
    a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(i8ToF32(v0, 0), d), v128.load(xb)));
    a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(i8ToF32(v0, 1), d), v128.load(xb, 16)));
    a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(i8ToF32(v0, 2), d), v128.load(xb, 32)));
    a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(i8ToF32(v0, 3), d), v128.load(xb, 48)));
    a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(i8ToF32(v1, 0), d), v128.load(xb, 64)));
    a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(i8ToF32(v1, 1), d), v128.load(xb, 80)));
    a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(i8ToF32(v1, 2), d), v128.load(xb, 96)));
    a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(i8ToF32(v1, 3), d), v128.load(xb, 112)));
  }
  return hsum(f32x4.add(a0, a1));
}
