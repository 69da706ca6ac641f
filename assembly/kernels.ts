// WebAssembly SIMD128 kernels for grok-ts (AssemblyScript; built into dist/kernels.wasm by `npm run build`).
//
// Every function works on byte offsets into the one (shared) memory it was instantiated with; the
// TypeScript side (src/kernels/wasm.ts) owns the layout: an argument block, one scratch area per thread,
// an activation area, then weights. Chunked entry points take (args, r0, r1, scratch) so that the main
// thread and the workers can each claim a range of output rows (or columns for 'xai8') and run it.
//
// Block layouts: formats.md §3.5 (ggml). Two numeric modes:
//   exact — weights dequantised to f32 (row by row, into L1-resident scratch), f32 activations, f32 sums;
//   fast  — activations quantised to int8 per 32 values (kept widened as i16, with one f32 scale and the
//           integer sum per block, as llama.cpp's Q8 activations); integer dot products per 32-block.
//
// Batch invariance: for each weight type and mode, one-token and many-token kernels perform the same
// float operations in the same order for every output (same lane assignment, block order, horizontal
// reduction and scale order); only integer work, which is exact, is arranged differently. A token's
// output row is therefore bit-identical whatever T and its position in the batch.

// Type codes shared with src/kernels/wasm.ts (TYPE_CODES).
const F32: i32 = 0;
const F16: i32 = 1;
const BF16: i32 = 2;
const Q8_0: i32 = 3;
const Q4_0: i32 = 4;
const Q4_K: i32 = 5;
const Q6_K: i32 = 6;

// ---------------------------------------------------------------------------------------------------
// Scalar helpers

// binary16 → binary32: shift the exponent/mantissa into place and rescale by 2^112 (handles subnormals
// exactly because wasm never flushes denormals); Inf/NaN patterns are rebuilt separately.
@inline function h2f(h: u32): f32 {
  const em = h & 0x7fff;
  let bits = reinterpret<u32>(reinterpret<f32>(em << 13) * 5.192296858534828e33);
  if (em >= 0x7c00) bits = (em << 13) | 0x7f800000;
  return reinterpret<f32>(bits | ((h & 0x8000) << 16));
}

@inline function bf2f(h: u32): f32 {
  return reinterpret<f32>(h << 16);
}

@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// 8 halves (one v128 of u16) → two f32x4, same trick as h2f, lane-wise.
@inline function h2fLo(v: v128): v128 {
  return h2f4(i32x4.extend_low_i16x8_u(v));
}
@inline function h2fHi(v: v128): v128 {
  return h2f4(i32x4.extend_high_i16x8_u(v));
}
@inline function h2f4(h: v128): v128 {
  const em = v128.and(h, i32x4.splat(0x7fff));
  const shifted = i32x4.shl(em, 13);
  const scaled = f32x4.mul(shifted, f32x4.splat(5.192296858534828e33));
  const special = v128.or(shifted, i32x4.splat(0x7f800000));
  const isSpecial = i32x4.ge_s(em, i32x4.splat(0x7c00));
  const mag = v128.bitselect(special, scaled, isSpecial);
  return v128.or(mag, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

// ---------------------------------------------------------------------------------------------------
// Row decoders

/** Dequantise one row of n values of `type` at `src` into f32 at `dst` (exact mode). */
export function deqRowF32(type: i32, src: usize, n: i32, dst: usize, tmp: usize): void {
  if (type == F32) {
    memory.copy(dst, src, <usize>n << 2);
  } else if (type == F16) {
    const n8 = n & ~7;
    for (let i = 0; i < n8; i += 8) {
      const v = v128.load(src + (<usize>i << 1));
      v128.store(dst + (<usize>i << 2), h2fLo(v));
      v128.store(dst + (<usize>i << 2), h2fHi(v), 16);
    }
    for (let i = n8; i < n; i++) store<f32>(dst + (<usize>i << 2), h2f(load<u16>(src + (<usize>i << 1))));
  } else if (type == BF16) {
    const n8 = n & ~7;
    for (let i = 0; i < n8; i += 8) {
      const v = v128.load(src + (<usize>i << 1));
      v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_low_i16x8_u(v), 16));
      v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_high_i16x8_u(v), 16), 16);
    }
    for (let i = n8; i < n; i++) store<f32>(dst + (<usize>i << 2), bf2f(load<u16>(src + (<usize>i << 1))));
  } else {
    // Quantised: integer values + per-32 scale/offset, then y = q·ws − wm.
    const nb = n >> 5;
    const ws = tmp + (<usize>n << 1);
    const wm = ws + (<usize>nb << 2);
    deqRowI16(type, src, n, tmp, ws, wm);
    for (let b = 0; b < nb; b++) {
      const s = f32x4.splat(load<f32>(ws + (<usize>b << 2)));
      const m = f32x4.splat(load<f32>(wm + (<usize>b << 2)));
      const q = tmp + (<usize>b << 6);
      const o = dst + (<usize>b << 7);
      for (let j: usize = 0; j < 64; j += 16) {
        const v = v128.load(q + j);
        const lo = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(v));
        const hi = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(v));
        v128.store(o + (j << 1), f32x4.sub(f32x4.mul(lo, s), m));
        v128.store(o + (j << 1), f32x4.sub(f32x4.mul(hi, s), m), 16);
      }
    }
  }
}

/**
 * Decode one quantised row into integers: q[i] (i16, nIn values), and per 32-block a scale ws[b] and an
 * offset wm[b] such that w[i] = q[i]·ws[b] − wm[b]. (q6_k's per-16 scales are folded into q: |q·sc| ≤ 4064.)
 */
export function deqRowI16(type: i32, src: usize, n: i32, q: usize, ws: usize, wm: usize): void {
  const nb = n >> 5;
  if (type == Q8_0) {
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
  } else if (type == Q4_0) {
    const m4 = i8x16.splat(0x0f);
    const eight = i8x16.splat(8);
    for (let b = 0; b < nb; b++) {
      const blk = src + <usize>b * 18;
      const o = q + (<usize>b << 6);
      const v = v128.load(blk, 2);
      const lo = i8x16.sub(v128.and(v, m4), eight);
      const hi = i8x16.sub(i8x16.shr_u(v, 4), eight);
      v128.store(o, i16x8.extend_low_i8x16_s(lo));
      v128.store(o, i16x8.extend_high_i8x16_s(lo), 16);
      v128.store(o, i16x8.extend_low_i8x16_s(hi), 32);
      v128.store(o, i16x8.extend_high_i8x16_s(hi), 48);
      store<f32>(ws + (<usize>b << 2), h2f(load<u16>(blk)));
      store<f32>(wm + (<usize>b << 2), 0);
    }
  } else if (type == Q4_K) {
    const m4 = i8x16.splat(0x0f);
    const nsb = n >> 8;
    for (let s = 0; s < nsb; s++) {
      const blk = src + <usize>s * 144;
      const d = h2f(load<u16>(blk));
      const dmin = h2f(load<u16>(blk, 2));
      const sc = blk + 4;
      for (let c = 0; c < 4; c++) {
        const qs = blk + 16 + (<usize>c << 5);
        const v0 = v128.load(qs);
        const v1 = v128.load(qs, 16);
        // sub-block 2c: low nibbles; 2c+1: high nibbles (formats.md §3.5 Q4_K)
        for (let hi = 0; hi < 2; hi++) {
          const t = 2 * c + hi;
          const a = hi == 0 ? v128.and(v0, m4) : i8x16.shr_u(v0, 4);
          const e = hi == 0 ? v128.and(v1, m4) : i8x16.shr_u(v1, 4);
          const bIdx = (s << 3) + t;
          const o = q + (<usize>bIdx << 6);
          v128.store(o, i16x8.extend_low_i8x16_u(a));
          v128.store(o, i16x8.extend_high_i8x16_u(a), 16);
          v128.store(o, i16x8.extend_low_i8x16_u(e), 32);
          v128.store(o, i16x8.extend_high_i8x16_u(e), 48);
          let scv: u32, mnv: u32;
          if (t < 4) {
            scv = load<u8>(sc + t) & 63;
            mnv = load<u8>(sc + t + 4) & 63;
          } else {
            scv = (load<u8>(sc + t + 4) & 0x0f) | ((load<u8>(sc + t - 4) >> 6) << 4);
            mnv = (load<u8>(sc + t + 4) >> 4) | ((load<u8>(sc + t) >> 6) << 4);
          }
          store<f32>(ws + (<usize>bIdx << 2), d * <f32>scv);
          store<f32>(wm + (<usize>bIdx << 2), dmin * <f32>mnv);
        }
      }
    }
  } else if (type == Q6_K) {
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
  } else {
    unreachable();
  }
}

// ---------------------------------------------------------------------------------------------------
// Dot products of one decoded row against T activation rows

// Exact-mode dot products. Every path (one token, four-token tiles, direct q8_0) accumulates an output
// in the same order so that a token's result never depends on the batch around it (batch invariance):
// two f32x4 accumulators take alternate 4-value chunks of each 8 (a leftover chunk goes to the first),
// then hsum(acc0 + acc1), then the scalar tail in index order.

/** One f32 row w (n values) · one f32 row x: the canonical exact order. */
@inline function dotF32T1(w: usize, n: i32, x: usize): f32 {
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
function dotF32(w: usize, n: i32, x: usize, T: i32, y: usize, ystride: usize): void {
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

// One q8_0 block · one int8 activation block → i32x4 partial sums. Pairs of products fit i16:
// |w| ≤ 128, |x| ≤ 127 → |w·x + w'·x'| ≤ 32512.
@inline function q8Block(blk: usize, xb: usize): v128 {
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
function dotQ8T1(row: usize, nb: i32, xq8: usize, xs: usize): f32 {
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
@inline function blockDot(w0: v128, w1: v128, w2: v128, w3: v128, xb: usize): v128 {
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
function dotQ8Tiled(row: usize, nb: i32, xq: usize, xs: usize, xq8: usize, T: i32, y: usize, ystride: usize): void {
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

@inline function i8ToF32(v: v128, lane: i32): v128 {
  // lane 0..3: the four groups of 4 bytes of v, sign-extended to i32 and converted.
  const h = lane < 2 ? i16x8.extend_low_i8x16_s(v) : i16x8.extend_high_i8x16_s(v);
  return f32x4.convert_i32x4_s((lane & 1) == 0 ? i32x4.extend_low_i16x8_s(h) : i32x4.extend_high_i16x8_s(h));
}

/**
 * Exact-mode q8_0 row · one f32 token without a decode pass. The weights are formed as deqRowF32 forms
 * them (w = f32(q)·d) and summed in dotF32T1's order, so the result equals decode-then-dotF32 bit for bit.
 */
function dotQ8ExactT1(row: usize, nb: i32, x: usize): f32 {
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

// Integer sums of four blocks (i32x4 partials each) → one i32x4 [Σs0, Σs1, Σs2, Σs3].
@inline function transposeSum(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const t0 = i32x4.add(v128.shuffle<i32>(s0, s1, 0, 4, 1, 5), v128.shuffle<i32>(s0, s1, 2, 6, 3, 7));
  const t1 = i32x4.add(v128.shuffle<i32>(s2, s3, 0, 4, 1, 5), v128.shuffle<i32>(s2, s3, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(t0, t1, 0, 1, 4, 5), v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
}

// 32 small signed weights (two i8x16, |q| ≤ 16) · one int8 activation block → i32x4 partials.
// Four products of |q·x| ≤ 16·127 fit an i16 lane, so the halves are added before widening.
@inline function smallBlock(q0: v128, q1: v128, xb: usize): v128 {
  const x0 = v128.load(xb);
  const x1 = v128.load(xb, 16);
  const p = i16x8.add(
    i16x8.add(i16x8.extmul_low_i8x16_s(q0, x0), i16x8.extmul_high_i8x16_s(q0, x0)),
    i16x8.add(i16x8.extmul_low_i8x16_s(q1, x1), i16x8.extmul_high_i8x16_s(q1, x1)),
  );
  return i32x4.extadd_pairwise_i16x8_s(p);
}

/** Fast-mode q4_0 row · one token, straight from the 4-bit blocks (as dotQ8T1). */
function dotQ40T1(row: usize, nb: i32, xq8: usize, xs: usize): f32 {
  const m4 = i8x16.splat(0x0f);
  const eight = i8x16.splat(8);
  let acc = f32x4.splat(0);
  let b = 0;
  for (; b + 4 <= nb; b += 4) {
    const blk = row + <usize>b * 18;
    const xb = xq8 + (<usize>b << 5);
    const v0 = v128.load(blk, 2);
    const v1 = v128.load(blk, 20);
    const v2 = v128.load(blk, 38);
    const v3 = v128.load(blk, 56);
    const s0 = smallBlock(i8x16.sub(v128.and(v0, m4), eight), i8x16.sub(i8x16.shr_u(v0, 4), eight), xb);
    const s1 = smallBlock(i8x16.sub(v128.and(v1, m4), eight), i8x16.sub(i8x16.shr_u(v1, 4), eight), xb + 32);
    const s2 = smallBlock(i8x16.sub(v128.and(v2, m4), eight), i8x16.sub(i8x16.shr_u(v2, 4), eight), xb + 64);
    const s3 = smallBlock(i8x16.sub(v128.and(v3, m4), eight), i8x16.sub(i8x16.shr_u(v3, 4), eight), xb + 96);
    let d = i32x4.splat(load<u16>(blk));
    d = i32x4.replace_lane(d, 1, load<u16>(blk, 18));
    d = i32x4.replace_lane(d, 2, load<u16>(blk, 36));
    d = i32x4.replace_lane(d, 3, load<u16>(blk, 54));
    const scale = f32x4.mul(h2f4(d), v128.load(xs + (<usize>b << 2)));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(transposeSum(s0, s1, s2, s3)), scale));
  }
  let s = hsum(acc);
  for (; b < nb; b++) {
    const blk = row + <usize>b * 18;
    const v = v128.load(blk, 2);
    const p = smallBlock(i8x16.sub(v128.and(v, m4), eight), i8x16.sub(i8x16.shr_u(v, 4), eight), xq8 + (<usize>b << 5));
    const isum = i32x4.extract_lane(p, 0) + i32x4.extract_lane(p, 1) + i32x4.extract_lane(p, 2) + i32x4.extract_lane(p, 3);
    s += <f32>isum * (h2f(load<u16>(blk)) * load<f32>(xs + (<usize>b << 2)));
  }
  return s;
}

/** A q4_k super-block's eight 6-bit sub-block scales and mins as f32 (dst: 8 scales, then 8 mins). */
@inline function q4kScales(sc: usize, dst: usize): void {
  for (let t = 0; t < 8; t++) {
    let scv: u32, mnv: u32;
    if (t < 4) {
      scv = load<u8>(sc + t) & 63;
      mnv = load<u8>(sc + t + 4) & 63;
    } else {
      scv = (load<u8>(sc + t + 4) & 0x0f) | ((load<u8>(sc + t - 4) >> 6) << 4);
      mnv = (load<u8>(sc + t + 4) >> 4) | ((load<u8>(sc + t) >> 6) << 4);
    }
    store<f32>(dst + (<usize>t << 2), <f32>scv);
    store<f32>(dst + (<usize>t << 2), <f32>mnv, 32);
  }
}

/** The scale tables of a whole q4_k row (64 bytes per super-block), for several tokens to share. */
function q4kRowScales(row: usize, nsb: i32, table: usize): void {
  for (let sb = 0; sb < nsb; sb++) q4kScales(row + <usize>sb * 144 + 4, table + (<usize>sb << 6));
}

/**
 * Fast-mode q4_k row · one token: per super-block, eight sub-block integer dots (nibbles 0…15 × int8)
 * transposed into two vectors, scaled by d·sc_j·dx_j, minus dmin·mn_j·dx_j·Σx_j. `tmp` holds 16 f32.
 */
function dotQ4KT1(row: usize, nsb: i32, xq8: usize, xs: usize, xsum: usize, tmp: usize, table: usize): f32 {
  const m4 = i8x16.splat(0x0f);
  let acc = f32x4.splat(0);
  let accm = f32x4.splat(0);
  for (let sb = 0; sb < nsb; sb++) {
    const blk = row + <usize>sb * 144;
    const sc = blk + 4;
    let sct = tmp;
    if (table != 0) sct = table + (<usize>sb << 6);
    else q4kScales(sc, tmp);
    const xb = xq8 + (<usize>sb << 8);
    const qs = blk + 16;
    const a0 = v128.load(qs);
    const a1 = v128.load(qs, 16);
    const b0 = v128.load(qs, 32);
    const b1 = v128.load(qs, 48);
    const c0 = v128.load(qs, 64);
    const c1 = v128.load(qs, 80);
    const e0 = v128.load(qs, 96);
    const e1 = v128.load(qs, 112);
    const lo = transposeSum(
      smallBlock(v128.and(a0, m4), v128.and(a1, m4), xb),
      smallBlock(i8x16.shr_u(a0, 4), i8x16.shr_u(a1, 4), xb + 32),
      smallBlock(v128.and(b0, m4), v128.and(b1, m4), xb + 64),
      smallBlock(i8x16.shr_u(b0, 4), i8x16.shr_u(b1, 4), xb + 96),
    );
    const hi = transposeSum(
      smallBlock(v128.and(c0, m4), v128.and(c1, m4), xb + 128),
      smallBlock(i8x16.shr_u(c0, 4), i8x16.shr_u(c1, 4), xb + 160),
      smallBlock(v128.and(e0, m4), v128.and(e1, m4), xb + 192),
      smallBlock(i8x16.shr_u(e0, 4), i8x16.shr_u(e1, 4), xb + 224),
    );
    const dx0 = v128.load(xs + (<usize>sb << 5));
    const dx1 = v128.load(xs + (<usize>sb << 5), 16);
    const d = f32x4.splat(h2f(load<u16>(blk)));
    const dmin = f32x4.splat(h2f(load<u16>(blk, 2)));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(lo), f32x4.mul(d, f32x4.mul(v128.load(sct), dx0))));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(hi), f32x4.mul(d, f32x4.mul(v128.load(sct, 16), dx1))));
    const xs0 = f32x4.convert_i32x4_s(v128.load(xsum + (<usize>sb << 5)));
    const xs1 = f32x4.convert_i32x4_s(v128.load(xsum + (<usize>sb << 5), 16));
    accm = f32x4.add(accm, f32x4.mul(xs0, f32x4.mul(dmin, f32x4.mul(v128.load(sct, 32), dx0))));
    accm = f32x4.add(accm, f32x4.mul(xs1, f32x4.mul(dmin, f32x4.mul(v128.load(sct, 48), dx1))));
  }
  return hsum(acc) - hsum(accm);
}

// One q6_k 32-value sub-block (h, k) · its int8 activations → i32x4 partials, the two 16-value halves
// weighted by their int8 scales (|Σ16 q·x| ≤ 65024, × |sc| ≤ 128: fits i32).
@inline function q6Block(ql: usize, qh: usize, scales: usize, h: i32, k: i32, xb: usize): v128 {
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

/** Fast-mode q6_k row · one token, straight from the blocks (formats.md §3.5 Q6_K bit layout). */
function dotQ6KT1(row: usize, nsb: i32, xq8: usize, xs: usize): f32 {
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

// ---------------------------------------------------------------------------------------------------
// Chunked entry points. Argument block (i32/u32 at byte offsets):
//   0 type, 4 w, 8 rowBytes, 12 nIn, 16 x (f32 or xq), 20 T, 24 y, 28 nOut, 32 xs, 36 xsum, 40 xq8

/** 'rows' matrix, exact mode: rows [r0, r1) of y[t, r] = Σ_i W[r, i]·x[t, i]. */
export function mmExact(args: usize, r0: i32, r1: i32, scratch: usize): void {
  const type = load<i32>(args);
  const w = <usize>load<u32>(args, 4);
  const rowBytes = <usize>load<u32>(args, 8);
  const nIn = load<i32>(args, 12);
  const x = <usize>load<u32>(args, 16);
  const T = load<i32>(args, 20);
  const y = <usize>load<u32>(args, 24);
  const nOut = load<i32>(args, 28);
  const ystride = <usize>nOut << 2;
  const rowF32 = scratch;
  const tmp = scratch + (<usize>nIn << 2);
  if (type == Q8_0 && T <= 8) {
    // Few tokens: the row stays in L1 between tokens, so the direct dot (same weights, same order as
    // decode-then-dotF32 below) beats decoding first.
    for (let r = r0; r < r1; r++) {
      const row = <usize>w + <usize>r * rowBytes;
      for (let t = 0; t < T; t++) {
        store<f32>(y + (<usize>r << 2) + <usize>t * ystride, dotQ8ExactT1(row, nIn >> 5, x + <usize>t * (<usize>nIn << 2)));
      }
    }
    return;
  }
  for (let r = r0; r < r1; r++) {
    const row = <usize>w + <usize>r * rowBytes;
    let src = row;
    if (type != F32) {
      deqRowF32(type, row, nIn, rowF32, tmp);
      src = rowF32;
    }
    dotF32(src, nIn, x, T, y + (<usize>r << 2), ystride);
  }
}

/** 'rows' matrix, fast mode (quantised types only; activations already quantised by quantizeX). */
export function mmFast(args: usize, r0: i32, r1: i32, scratch: usize): void {
  const type = load<i32>(args);
  const w = <usize>load<u32>(args, 4);
  const rowBytes = <usize>load<u32>(args, 8);
  const nIn = load<i32>(args, 12);
  const xq = <usize>load<u32>(args, 16);
  const T = load<i32>(args, 20);
  const y = <usize>load<u32>(args, 24);
  const nOut = load<i32>(args, 28);
  const xs = <usize>load<u32>(args, 32);
  const xsum = <usize>load<u32>(args, 36);
  const xq8 = <usize>load<u32>(args, 40);
  const ystride = <usize>nOut << 2;
  const nb = nIn >> 5;
  // Every token's float arithmetic is that of the one-token kernels (one accumulation order whatever T:
  // batch invariance). q8_0: a row at a time, all tokens (four per weight load, dotQ8Tiled). Other
  // types: rows in groups of 8 with the tokens inside, so the group's weights stay in L1/L2 while the
  // tokens pass.
  if (type == Q8_0) {
    for (let r = r0; r < r1; r++) dotQ8Tiled(<usize>w + <usize>r * rowBytes, nb, xq, xs, xq8, T, y + (<usize>r << 2), ystride);
    return;
  }
  const nsb = nIn >> 8;
  const tables = scratch + 64; // q4_k with T > 1: each row's scale table decoded once for all its tokens
  const useTables = type == Q4_K && T > 1;
  for (let g0 = r0; g0 < r1; g0 += 8) {
    const g1 = min(g0 + 8, r1);
    if (useTables) for (let r = g0; r < g1; r++) q4kRowScales(<usize>w + <usize>r * rowBytes, nsb, tables + <usize>((r - g0) * nsb) * 64);
    for (let t = 0; t < T; t++) {
      const x8 = xq8 + <usize>t * <usize>nIn;
      const s8 = xs + <usize>t * (<usize>nb << 2);
      const yt = y + <usize>t * ystride;
      for (let r = g0; r < g1; r++) {
        const row = <usize>w + <usize>r * rowBytes;
        let v: f32;
        if (type == Q4_0) v = dotQ40T1(row, nb, x8, s8);
        else if (type == Q4_K) v = dotQ4KT1(row, nsb, x8, s8, xsum + <usize>t * (<usize>nb << 2), scratch, useTables ? tables + <usize>((r - g0) * nsb) * 64 : 0);
        else v = dotQ6KT1(row, nsb, x8, s8);
        store<f32>(yt + (<usize>r << 2), v);
      }
    }
  }
}

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

@inline function yAdd(first: bool, yo: usize, off: usize, v: v128): v128 {
  return first ? v : f32x4.add(v128.load(yo + off), v);
}

// 'xai8' argument block: 0 q, 4 scales, 8 nIn, 12 nOut, 16 groups, 20 x, 24 T, 28 y

/**
 * 'xai8' matrix (int8 q[nIn, nOut], bf16 scales[G, nOut]), exact mode, output columns [c0, c1):
 * y[t, n] = Σ_g s[g, n] · Σ_{k in group g} q[k, n]·x[t, k]  (formats.md §1.6). Columns go 32 at a time
 * (half a cache line of each weight row), the per-group sums in 8 f32x4 registers.
 */
export function mmXai8(args: usize, c0: i32, c1: i32, scratch: usize): void {
  const q = <usize>load<u32>(args);
  const scales = <usize>load<u32>(args, 4);
  const nIn = load<i32>(args, 8);
  const nOut = load<i32>(args, 12);
  const G = load<i32>(args, 16);
  const x = <usize>load<u32>(args, 20);
  const T = load<i32>(args, 24);
  const y = <usize>load<u32>(args, 28);
  const gs = nIn / G;
  const rs = <usize>nOut;
  // Strips of 32 columns outermost: a strip's weights (nIn × 32 bytes) stay in L2 across the T tokens.
  for (let s0 = c0; s0 < c1; s0 += 32) {
    const s1 = min(s0 + 32, c1);
    for (let t = 0; t < T; t++) {
      const xt = <usize>x + <usize>t * (<usize>nIn << 2);
      const yt = <usize>y + <usize>t * (<usize>nOut << 2);
      let c = s0;
      for (; c + 32 <= s1; c += 32) {
        const yo = yt + (<usize>c << 2);
        for (let g = 0; g < G; g++) {
          // Two-level sums (32 inputs, then the group) keep float32 rounding near the reference's float64.
          let g0 = f32x4.splat(0), g1 = f32x4.splat(0), g2 = f32x4.splat(0), g3 = f32x4.splat(0);
          let g4 = f32x4.splat(0), g5 = f32x4.splat(0), g6 = f32x4.splat(0), g7 = f32x4.splat(0);
          const gEnd = (g + 1) * gs;
          for (let kb = g * gs; kb < gEnd; kb += 32) {
            let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
            let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
            let p = <usize>q + <usize>kb * rs + <usize>c;
            for (let k = kb, kEnd = min(kb + 32, gEnd); k < kEnd; k++) {
              const xv = f32x4.splat(load<f32>(xt + (<usize>k << 2)));
              const v0 = v128.load(p);
              const v1 = v128.load(p, 16);
              const l0 = i16x8.extend_low_i8x16_s(v0);
              const h0 = i16x8.extend_high_i8x16_s(v0);
              const l1 = i16x8.extend_low_i8x16_s(v1);
              const h1 = i16x8.extend_high_i8x16_s(v1);
              a0 = f32x4.add(a0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l0)), xv));
              a1 = f32x4.add(a1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l0)), xv));
              a2 = f32x4.add(a2, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h0)), xv));
              a3 = f32x4.add(a3, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h0)), xv));
              a4 = f32x4.add(a4, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l1)), xv));
              a5 = f32x4.add(a5, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l1)), xv));
              a6 = f32x4.add(a6, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h1)), xv));
              a7 = f32x4.add(a7, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h1)), xv));
              p += rs;
            }
            g0 = f32x4.add(g0, a0);
            g1 = f32x4.add(g1, a1);
            g2 = f32x4.add(g2, a2);
            g3 = f32x4.add(g3, a3);
            g4 = f32x4.add(g4, a4);
            g5 = f32x4.add(g5, a5);
            g6 = f32x4.add(g6, a6);
            g7 = f32x4.add(g7, a7);
          }
          const sp = <usize>scales + ((<usize>g * rs + <usize>c) << 1);
          const s0 = v128.load(sp);
          const s1 = v128.load(sp, 16);
          const s2 = v128.load(sp, 32);
          const s3 = v128.load(sp, 48);
          const first = g == 0;
          v128.store(yo, yAdd(first, yo, 0, f32x4.mul(g0, i32x4.shl(i32x4.extend_low_i16x8_u(s0), 16))));
          v128.store(yo, yAdd(first, yo, 16, f32x4.mul(g1, i32x4.shl(i32x4.extend_high_i16x8_u(s0), 16))), 16);
          v128.store(yo, yAdd(first, yo, 32, f32x4.mul(g2, i32x4.shl(i32x4.extend_low_i16x8_u(s1), 16))), 32);
          v128.store(yo, yAdd(first, yo, 48, f32x4.mul(g3, i32x4.shl(i32x4.extend_high_i16x8_u(s1), 16))), 48);
          v128.store(yo, yAdd(first, yo, 64, f32x4.mul(g4, i32x4.shl(i32x4.extend_low_i16x8_u(s2), 16))), 64);
          v128.store(yo, yAdd(first, yo, 80, f32x4.mul(g5, i32x4.shl(i32x4.extend_high_i16x8_u(s2), 16))), 80);
          v128.store(yo, yAdd(first, yo, 96, f32x4.mul(g6, i32x4.shl(i32x4.extend_low_i16x8_u(s3), 16))), 96);
          v128.store(yo, yAdd(first, yo, 112, f32x4.mul(g7, i32x4.shl(i32x4.extend_high_i16x8_u(s3), 16))), 112);
        }
      }
      // Column tail (nOut not a multiple of 32): scalar.
      for (; c < s1; c++) {
        let acc: f32 = 0;
        for (let g = 0; g < G; g++) {
          let a: f32 = 0;
          for (let k = g * gs, kEnd = k + gs; k < kEnd; k++) {
            a += <f32>load<i8>(<usize>q + <usize>k * rs + <usize>c) * load<f32>(xt + (<usize>k << 2));
          }
          acc += a * bf2f(load<u16>(<usize>scales + ((<usize>g * rs + <usize>c) << 1)));
        }
        store<f32>(yt + (<usize>c << 2), acc);
      }
    }
  }
}

/** Row r of a 'rows' matrix as f32 (the embedding lookup); `tmp` needs 2.25·n bytes. */
export function getRow(type: i32, w: usize, rowBytes: usize, n: i32, r: i32, dst: usize, tmp: usize): void {
  deqRowF32(type, w + <usize>r * rowBytes, n, dst, tmp);
}

// 'xai8' fast argument block: 0 q, 4 scales, 8 nIn, 12 nOut, 16 groups, 20 xq, 24 T, 28 y, 32 xs

/**
 * 'xai8' matrix, fast mode: int8 activations (per 32 inputs, quantizeX) × int8 weights. Two input rows k,
 * k+1 are interleaved byte-wise so one i32x4.dot_i16x8_s multiplies both by their activations (read as
 * one i32: two adjacent i16); a 32-input block's integer sums are then scaled by x's block scale times the
 * column's bf16 group scale. Needs nIn/groups % 32 == 0 (true for every Grok-1 matrix).
 */
export function mmXai8Fast(args: usize, c0: i32, c1: i32, scratch: usize): void {
  const q = <usize>load<u32>(args);
  const scales = <usize>load<u32>(args, 4);
  const nIn = load<i32>(args, 8);
  const nOut = load<i32>(args, 12);
  const G = load<i32>(args, 16);
  const xq = <usize>load<u32>(args, 20);
  const T = load<i32>(args, 24);
  const y = <usize>load<u32>(args, 28);
  const xs = <usize>load<u32>(args, 32);
  const nb = nIn >> 5;
  const bpg = nb / G; // 32-input blocks per scale group
  const rs = <usize>nOut;
  // Strips of 32 columns outermost: a strip's weights (nIn × 32 bytes) stay in L2 across the T tokens.
  for (let s0 = c0; s0 < c1; s0 += 32) {
    const s1 = min(s0 + 32, c1);
    for (let t = 0; t < T; t++) {
      const xqt = xq + <usize>t * (<usize>nIn << 1);
      const xst = xs + <usize>t * (<usize>nb << 2);
      const yt = y + <usize>t * (<usize>nOut << 2);
      let c = s0;
      for (; c + 32 <= s1; c += 32) {
        let y0 = f32x4.splat(0), y1 = f32x4.splat(0), y2 = f32x4.splat(0), y3 = f32x4.splat(0);
        let y4 = f32x4.splat(0), y5 = f32x4.splat(0), y6 = f32x4.splat(0), y7 = f32x4.splat(0);
        for (let b = 0; b < nb; b++) {
          let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
          let i4 = i32x4.splat(0), i5 = i32x4.splat(0), i6 = i32x4.splat(0), i7 = i32x4.splat(0);
          let p = q + <usize>(b << 5) * rs + <usize>c;
          const xb = xqt + (<usize>b << 6);
          for (let j: usize = 0; j < 64; j += 4) {
            const xp = i32x4.splat(load<i32>(xb + j)); // (x[k], x[k+1]) as two i16
            const a0 = v128.load(p);
            const a1 = v128.load(p, 16);
            const b0 = v128.load(p + rs);
            const b1 = v128.load(p + rs, 16);
            const l0 = i8x16.shuffle(a0, b0, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            const h0 = i8x16.shuffle(a0, b0, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            const l1 = i8x16.shuffle(a1, b1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            const h1 = i8x16.shuffle(a1, b1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            i0 = i32x4.add(i0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(l0), xp));
            i1 = i32x4.add(i1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(l0), xp));
            i2 = i32x4.add(i2, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(h0), xp));
            i3 = i32x4.add(i3, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(h0), xp));
            i4 = i32x4.add(i4, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(l1), xp));
            i5 = i32x4.add(i5, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(l1), xp));
            i6 = i32x4.add(i6, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(h1), xp));
            i7 = i32x4.add(i7, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(h1), xp));
            p += rs << 1;
          }
          const sp = scales + ((<usize>(b / bpg) * rs + <usize>c) << 1);
          const dx = f32x4.splat(load<f32>(xst + (<usize>b << 2)));
          const s0 = v128.load(sp);
          const s1 = v128.load(sp, 16);
          const s2 = v128.load(sp, 32);
          const s3 = v128.load(sp, 48);
          y0 = f32x4.add(y0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.mul(dx, i32x4.shl(i32x4.extend_low_i16x8_u(s0), 16))));
          y1 = f32x4.add(y1, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.mul(dx, i32x4.shl(i32x4.extend_high_i16x8_u(s0), 16))));
          y2 = f32x4.add(y2, f32x4.mul(f32x4.convert_i32x4_s(i2), f32x4.mul(dx, i32x4.shl(i32x4.extend_low_i16x8_u(s1), 16))));
          y3 = f32x4.add(y3, f32x4.mul(f32x4.convert_i32x4_s(i3), f32x4.mul(dx, i32x4.shl(i32x4.extend_high_i16x8_u(s1), 16))));
          y4 = f32x4.add(y4, f32x4.mul(f32x4.convert_i32x4_s(i4), f32x4.mul(dx, i32x4.shl(i32x4.extend_low_i16x8_u(s2), 16))));
          y5 = f32x4.add(y5, f32x4.mul(f32x4.convert_i32x4_s(i5), f32x4.mul(dx, i32x4.shl(i32x4.extend_high_i16x8_u(s2), 16))));
          y6 = f32x4.add(y6, f32x4.mul(f32x4.convert_i32x4_s(i6), f32x4.mul(dx, i32x4.shl(i32x4.extend_low_i16x8_u(s3), 16))));
          y7 = f32x4.add(y7, f32x4.mul(f32x4.convert_i32x4_s(i7), f32x4.mul(dx, i32x4.shl(i32x4.extend_high_i16x8_u(s3), 16))));
        }
        const yo = yt + (<usize>c << 2);
        v128.store(yo, y0);
        v128.store(yo, y1, 16);
        v128.store(yo, y2, 32);
        v128.store(yo, y3, 48);
        v128.store(yo, y4, 64);
        v128.store(yo, y5, 80);
        v128.store(yo, y6, 96);
        v128.store(yo, y7, 112);
      }
      // Column tail: scalar, same arithmetic per 32-input block.
      for (; c < s1; c++) {
        let acc: f32 = 0;
        for (let b = 0; b < nb; b++) {
          let isum: i32 = 0;
          for (let j = 0; j < 32; j++) {
            const k = (b << 5) + j;
            isum += <i32>load<i8>(q + <usize>k * rs + <usize>c) * <i32>load<i16>(xqt + (<usize>k << 1));
          }
          acc += <f32>isum * (load<f32>(xst + (<usize>b << 2)) * bf2f(load<u16>(scales + ((<usize>(b / bpg) * rs + <usize>c) << 1))));
        }
        store<f32>(yt + (<usize>c << 2), acc);
      }
    }
  }
}

// Attention argument block: 0 q, 4 k, 8 v, 12 mask, 16 out, 20 T, 24 pos0, 28 nHeads, 32 nKV, 36 headDim,
// 40 scale (f32), 44 softcap (f32). Items i = t·nHeads + h in [i0, i1).

@inline function dotN(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  let d = 0;
  for (; d + 8 <= n; d += 8) {
    const o = <usize>d << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; d < n; d++) s += load<f32>(a + (<usize>d << 2)) * load<f32>(b + (<usize>d << 2));
  return s;
}

/**
 * Causal GQA attention (contract: src/kernels/types.ts) for items i = t·nKV + g: token t with the query
 * heads of KV head g together, so each key and value vector is read once for all of them. Scores
 * q·k·scale, softcap·tanh(s/softcap), masked keys −1e30, softmax, Σ w·v; f32 throughout. `scratch`
 * holds the heads' scores (perKV × nKeys f32).
 */
export function attnChunk(args: usize, i0: i32, i1: i32, scratch: usize): void {
  const q = <usize>load<u32>(args);
  const k = <usize>load<u32>(args, 4);
  const v = <usize>load<u32>(args, 8);
  const mask = <usize>load<u32>(args, 12);
  const out = <usize>load<u32>(args, 16);
  const pos0 = load<i32>(args, 24);
  const nHeads = load<i32>(args, 28);
  const nKV = load<i32>(args, 32);
  const K = load<i32>(args, 36);
  const scale = load<f32>(args, 40);
  const softcap = load<f32>(args, 44);
  const perKV = nHeads / nKV;
  const kvStride = <usize>(nKV * K) << 2;
  const Kb = <usize>K << 2;
  const K4 = K & ~3;
  for (let i = i0; i < i1; i++) {
    const t = i / nKV;
    const g = i - t * nKV;
    const nKeys = pos0 + t + 1;
    const sRow = <usize>nKeys << 2; // one head's scores
    const q0 = q + (<usize>(t * nHeads + g * perKV) * Kb);
    const o0 = out + (<usize>(t * nHeads + g * perKV) * Kb);
    for (let p = 0; p < nKeys; p++) {
      const kp = k + <usize>p * kvStride + <usize>g * Kb;
      const masked = load<u8>(mask + p) == 0;
      for (let j = 0; j < perKV; j++) {
        let s: f32 = -1e30;
        if (!masked) {
          s = dotN(q0 + <usize>j * Kb, kp, K) * scale;
          if (softcap > 0) s = softcap * Mathf.tanh(s / softcap);
        }
        store<f32>(scratch + <usize>j * sRow + (<usize>p << 2), s);
      }
    }
    for (let j = 0; j < perKV; j++) {
      const sc = scratch + <usize>j * sRow;
      let mx: f32 = -Infinity;
      for (let p = 0; p < nKeys; p++) mx = max(mx, load<f32>(sc + (<usize>p << 2)));
      let sum: f32 = 0;
      for (let p = 0; p < nKeys; p++) {
        const e = Mathf.exp(load<f32>(sc + (<usize>p << 2)) - mx);
        store<f32>(sc + (<usize>p << 2), e);
        sum += e;
      }
      // Normalise the weights now, so the V pass is a plain weighted sum.
      const inv: f32 = <f32>1 / sum;
      for (let p = 0; p < nKeys; p++) store<f32>(sc + (<usize>p << 2), load<f32>(sc + (<usize>p << 2)) * inv);
      memory.fill(o0 + <usize>j * Kb, 0, Kb);
    }
    for (let p = 0; p < nKeys; p++) {
      const vo = v + <usize>p * kvStride + <usize>g * Kb;
      for (let j = 0; j < perKV; j++) {
        const wgt = load<f32>(scratch + <usize>j * sRow + (<usize>p << 2));
        if (wgt == 0) continue;
        const wv = f32x4.splat(wgt);
        const oo = o0 + <usize>j * Kb;
        let d = 0;
        for (; d < K4; d += 4) {
          const o = <usize>d << 2;
          v128.store(oo + o, f32x4.add(v128.load(oo + o), f32x4.mul(wv, v128.load(vo + o))));
        }
        for (; d < K; d++) store<f32>(oo + (<usize>d << 2), load<f32>(oo + (<usize>d << 2)) + wgt * load<f32>(vo + (<usize>d << 2)));
      }
    }
  }
}
