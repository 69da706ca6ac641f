// Q4_K (src/quant/q4_k.ts): super-blocks of 256 4-bit values (144 bytes): f16 d and dmin, twelve bytes
// of packed 6-bit sub-block scales and mins, 128 bytes of nibbles; w = d·sc_j·q − dmin·m_j.
import { h2f } from './half';
import { hsum, smallBlock, transposeSum } from './math';

/** A q4_k row as integers and per-32 scales and offsets (see deqRowI16 in matmul.ts). */
@inline export function deqRowI16Q4_K(src: usize, n: i32, q: usize, ws: usize, wm: usize): void {
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
      // sub-block 2c: low nibbles; 2c+1: high nibbles (ggml-quants.c dequantize_row_q4_K)
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
}

/** A q4_k super-block's eight 6-bit sub-block scales and mins as f32 (dst: 8 scales, then 8 mins). */
@inline export function q4kScales(sc: usize, dst: usize): void {
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
export function q4kRowScales(row: usize, nsb: i32, table: usize): void {
  for (let sb = 0; sb < nsb; sb++) q4kScales(row + <usize>sb * 144 + 4, table + (<usize>sb << 6));
}

/**
 * Fast-mode q4_k row · one token: per super-block, eight sub-block integer dots (nibbles 0…15 × int8)
 * transposed into two vectors, scaled by d·sc_j·dx_j, minus dmin·mn_j·dx_j·Σx_j. `tmp` holds 16 f32.
 */
export function dotQ4KT1(row: usize, nsb: i32, xq8: usize, xs: usize, xsum: usize, tmp: usize, table: usize): f32 {
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

