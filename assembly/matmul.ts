// The matmul drivers for 'rows' matrices (every block type): row decoding dispatched on the type code,
// the exact and fast chunked entry points, and the embedding-row lookup. The per-type kernels live in
// the files named after the types (f16/bf16: float.ts; q8_0.ts, q4_0.ts, q4_k.ts, q6_k.ts).
import {
  MM_N_IN, MM_N_OUT, MM_ROW_BYTES, MM_T, MM_TYPE, MM_W, MM_X, MM_XQ8, MM_XS, MM_XSUM, MM_Y,
  TYPE_BF16, TYPE_F16, TYPE_F32, TYPE_Q4_0, TYPE_Q4_K, TYPE_Q6_K, TYPE_Q8_0,
} from '../src/kernels/abi';
import { deqRowBF16, deqRowF16, dotF32 } from './float';
import { deqRowI16Q4_0, dotQ40T1 } from './q4_0';
import { deqRowI16Q4_K, dotQ4KT1, q4kRowScales } from './q4_k';
import { deqRowI16Q6_K, dotQ6KT1 } from './q6_k';
import { deqRowI16Q8_0, dotQ8ExactT1, dotQ8Tiled } from './q8_0';

/** Dequantise one row of n values of `type` at `src` into f32 at `dst` (exact mode). */
export function deqRowF32(type: i32, src: usize, n: i32, dst: usize, tmp: usize): void {
  if (type == TYPE_F32) {
    memory.copy(dst, src, <usize>n << 2);
  } else if (type == TYPE_F16) {
    deqRowF16(src, n, dst);
  } else if (type == TYPE_BF16) {
    deqRowBF16(src, n, dst);
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
  if (type == TYPE_Q8_0) deqRowI16Q8_0(src, n, q, ws, wm);
  else if (type == TYPE_Q4_0) deqRowI16Q4_0(src, n, q, ws, wm);
  else if (type == TYPE_Q4_K) deqRowI16Q4_K(src, n, q, ws, wm);
  else if (type == TYPE_Q6_K) deqRowI16Q6_K(src, n, q, ws, wm);
  else unreachable();
}

// Chunked entry points; argument block MM_* (src/kernels/abi.ts).

/** 'rows' matrix, exact mode: rows [r0, r1) of y[t, r] = Σ_i W[r, i]·x[t, i]. */
export function mmExact(args: usize, r0: i32, r1: i32, scratch: usize): void {
  const type = load<i32>(args, MM_TYPE);
  const w = <usize>load<u32>(args, MM_W);
  const rowBytes = <usize>load<u32>(args, MM_ROW_BYTES);
  const nIn = load<i32>(args, MM_N_IN);
  const x = <usize>load<u32>(args, MM_X);
  const T = load<i32>(args, MM_T);
  const y = <usize>load<u32>(args, MM_Y);
  const nOut = load<i32>(args, MM_N_OUT);
  const ystride = <usize>nOut << 2;
  const rowF32 = scratch;
  const tmp = scratch + (<usize>nIn << 2);
  if (type == TYPE_Q8_0 && T <= 8) {
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
    if (type != TYPE_F32) {
      deqRowF32(type, row, nIn, rowF32, tmp);
      src = rowF32;
    }
    dotF32(src, nIn, x, T, y + (<usize>r << 2), ystride);
  }
}

/** 'rows' matrix, fast mode (quantised types only; activations already quantised by quantizeX). */
export function mmFast(args: usize, r0: i32, r1: i32, scratch: usize): void {
  const type = load<i32>(args, MM_TYPE);
  const w = <usize>load<u32>(args, MM_W);
  const rowBytes = <usize>load<u32>(args, MM_ROW_BYTES);
  const nIn = load<i32>(args, MM_N_IN);
  const xq = <usize>load<u32>(args, MM_X);
  const T = load<i32>(args, MM_T);
  const y = <usize>load<u32>(args, MM_Y);
  const nOut = load<i32>(args, MM_N_OUT);
  const xs = <usize>load<u32>(args, MM_XS);
  const xsum = <usize>load<u32>(args, MM_XSUM);
  const xq8 = <usize>load<u32>(args, MM_XQ8);
  const ystride = <usize>nOut << 2;
  const nb = nIn >> 5;
  // Every token's float arithmetic is that of the one-token kernels (one accumulation order whatever T:
  // batch invariance). q8_0: a row at a time, all tokens (four per weight load, dotQ8Tiled). Other
  // types: rows in groups of 8 with the tokens inside, so the group's weights stay in L1/L2 while the
  // tokens pass.
  if (type == TYPE_Q8_0) {
    for (let r = r0; r < r1; r++) dotQ8Tiled(<usize>w + <usize>r * rowBytes, nb, xq, xs, xq8, T, y + (<usize>r << 2), ystride);
    return;
  }
  const nsb = nIn >> 8;
  const tables = scratch + 64; // q4_k with T > 1: each row's scale table decoded once for all its tokens
  const useTables = type == TYPE_Q4_K && T > 1;
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
        if (type == TYPE_Q4_0) v = dotQ40T1(row, nb, x8, s8);
        else if (type == TYPE_Q4_K) v = dotQ4KT1(row, nsb, x8, s8, xsum + <usize>t * (<usize>nb << 2), scratch, useTables ? tables + <usize>((r - g0) * nsb) * 64 : 0);
        else v = dotQ6KT1(row, nsb, x8, s8);
        store<f32>(yt + (<usize>r << 2), v);
      }
    }
  }
}

/** Row r of a 'rows' matrix as f32 (the embedding lookup); `tmp` needs 2.25·n bytes. */
export function getRow(type: i32, w: usize, rowBytes: usize, n: i32, r: i32, dst: usize, tmp: usize): void {
  deqRowF32(type, w + <usize>r * rowBytes, n, dst, tmp);
}
