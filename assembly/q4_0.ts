// Q4_0 (src/quant/q4_0.ts): blocks of 32 4-bit values and an f16 scale d (18 bytes); w = (q − 8)·d.
import { h2f, h2f4 } from './half';
import { hsum, smallBlock, transposeSum } from './math';

/** A q4_0 row as integers and per-block scales (see deqRowI16 in matmul.ts). */
@inline export function deqRowI16Q4_0(src: usize, n: i32, q: usize, ws: usize, wm: usize): void {
  const nb = n >> 5;
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
}

/** Fast-mode q4_0 row · one token, straight from the 4-bit blocks (as dotQ8T1). */
export function dotQ40T1(row: usize, nb: i32, xq8: usize, xs: usize): f32 {
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

