// Plain float rows (src/quant/float.ts): f16 and bf16 rows decoded to f32, and the exact-mode dot of an
// f32 row with T f32 activation rows, whose summation order every exact path follows.
import { bf2f, h2f, h2fHi, h2fLo } from './half';
import { hsum } from './math';

/** One f16 row of n values at `src` → f32 at `dst`. */
@inline export function deqRowF16(src: usize, n: i32, dst: usize): void {
  const n8 = n & ~7;
  for (let i = 0; i < n8; i += 8) {
    const v = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), h2fLo(v));
    v128.store(dst + (<usize>i << 2), h2fHi(v), 16);
  }
  for (let i = n8; i < n; i++) store<f32>(dst + (<usize>i << 2), h2f(load<u16>(src + (<usize>i << 1))));
}

/** One bf16 row of n values at `src` → f32 at `dst`. */
@inline export function deqRowBF16(src: usize, n: i32, dst: usize): void {
  const n8 = n & ~7;
  for (let i = 0; i < n8; i += 8) {
    const v = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_low_i16x8_u(v), 16));
    v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_high_i16x8_u(v), 16), 16);
  }
  for (let i = n8; i < n; i++) store<f32>(dst + (<usize>i << 2), bf2f(load<u16>(src + (<usize>i << 1))));
}

// Exact-mode dot products. Every path (one token, four-token tiles, direct q8_0) accumulates an output
// in the same order so that a token's result never depends on the batch around it (batch invariance):
// two f32x4 accumulators take alternate 4-value chunks of each 8 (a leftover chunk goes to the first),
// then hsum(acc0 + acc1), then the scalar tail in index order.

/** One f32 row w (n values) · one f32 row x: the canonical exact order. */
@inline export function dotF32T1(w: usize, n: i32, x: usize): f32 {
  const n4 = n & ~3;
  const n8 = n & ~7;
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let i = 0;
  for (; i < n8; i += 8) {
    const o = <usize>i << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(w + o), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(w + o, 16), v128.load(x + o, 16)));
  }
  if (i < n4) {
    const o = <usize>i << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(w + o), v128.load(x + o)));
    i += 4;
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; i < n; i++) s += load<f32>(w + (<usize>i << 2)) * load<f32>(x + (<usize>i << 2));
  return s;
}

/**
 * y[t·ystride] = Σ_i w[i]·x[t, i] for f32 row w (n values) and T f32 rows x (stride n); order as dotF32T1.
 * Tokens go in pairs (four accumulators, each weight vector loaded once for both: as many loads per
 * multiply-add as a four-token tile with one accumulator each, without running out of registers).
 */
export function dotF32(w: usize, n: i32, x: usize, T: i32, y: usize, ystride: usize): void {
  const xs = <usize>n << 2;
  const n4 = n & ~3;
  const n8 = n & ~7;
  let t = 0;
  for (; t + 2 <= T; t += 2) {
    const x0 = x + <usize>t * xs;
    const x1 = x0 + xs;
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
    let a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    let i = 0;
    for (; i < n8; i += 8) {
      const o = <usize>i << 2;
      const wv = v128.load(w + o);
      const wu = v128.load(w + o, 16);
      a0 = f32x4.add(a0, f32x4.mul(wv, v128.load(x0 + o)));
      b0 = f32x4.add(b0, f32x4.mul(wu, v128.load(x0 + o, 16)));
      a1 = f32x4.add(a1, f32x4.mul(wv, v128.load(x1 + o)));
      b1 = f32x4.add(b1, f32x4.mul(wu, v128.load(x1 + o, 16)));
    }
    if (i < n4) {
      const o = <usize>i << 2;
      const wv = v128.load(w + o);
      a0 = f32x4.add(a0, f32x4.mul(wv, v128.load(x0 + o)));
      a1 = f32x4.add(a1, f32x4.mul(wv, v128.load(x1 + o)));
      i += 4;
    }
    let s0 = hsum(f32x4.add(a0, b0));
    let s1 = hsum(f32x4.add(a1, b1));
    for (; i < n; i++) {
      const o = <usize>i << 2;
      const wv = load<f32>(w + o);
      s0 += wv * load<f32>(x0 + o);
      s1 += wv * load<f32>(x1 + o);
    }
    const yo = y + <usize>t * ystride;
    store<f32>(yo, s0);
    store<f32>(yo + ystride, s1);
  }
  if (t < T) store<f32>(y + <usize>t * ystride, dotF32T1(w, n, x + <usize>t * xs));
}
