// The released checkpoint's int8 matrices (src/quant/xai8.ts): q[nIn, nOut] int8, input-major, and bf16
// scales[G, nOut]; W[k, n] = q[k, n] · scales[floor(k / (nIn / G)), n] (xai-org/grok-1
// model.py:38 QuantizedWeight8bit, model.py:572-575 w.weight · w.scales). Chunks are ranges of output columns.
import { XAI8_GROUPS, XAI8_N_IN, XAI8_N_OUT, XAI8_Q, XAI8_SCALES, XAI8_T, XAI8_X, XAI8_XS, XAI8_Y } from '../src/kernels/abi';
import { bf2f } from './half';

@inline function yAdd(first: bool, yo: usize, off: usize, v: v128): v128 {
  return first ? v : f32x4.add(v128.load(yo + off), v);
}

// Argument block XAI8_* (src/kernels/abi.ts).

/**
 * 'xai8' matrix (int8 q[nIn, nOut], bf16 scales[G, nOut]), exact mode, output columns [c0, c1):
 * y[t, n] = Σ_g s[g, n] · Σ_{k in group g} q[k, n]·x[t, k]  (grok-1 model.py:572-575). Columns go 32 at a time
 * (half a cache line of each weight row), the per-group sums in 8 f32x4 registers.
 */
export function mmXai8(args: usize, c0: i32, c1: i32, scratch: usize): void {
  const q = <usize>load<u32>(args, XAI8_Q);
  const scales = <usize>load<u32>(args, XAI8_SCALES);
  const nIn = load<i32>(args, XAI8_N_IN);
  const nOut = load<i32>(args, XAI8_N_OUT);
  const G = load<i32>(args, XAI8_GROUPS);
  const x = <usize>load<u32>(args, XAI8_X);
  const T = load<i32>(args, XAI8_T);
  const y = <usize>load<u32>(args, XAI8_Y);
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

/**
 * 'xai8' matrix, fast mode: int8 activations (per 32 inputs, quantizeX) × int8 weights. Two input rows k,
 * k+1 are interleaved byte-wise so one i32x4.dot_i16x8_s multiplies both by their activations (read as
 * one i32: two adjacent i16); a 32-input block's integer sums are then scaled by x's block scale times the
 * column's bf16 group scale. Needs nIn/groups % 32 == 0 (true for every Grok-1 matrix).
 */
export function mmXai8Fast(args: usize, c0: i32, c1: i32, scratch: usize): void {
  const q = <usize>load<u32>(args, XAI8_Q);
  const scales = <usize>load<u32>(args, XAI8_SCALES);
  const nIn = load<i32>(args, XAI8_N_IN);
  const nOut = load<i32>(args, XAI8_N_OUT);
  const G = load<i32>(args, XAI8_GROUPS);
  const xq = <usize>load<u32>(args, XAI8_X);
  const T = load<i32>(args, XAI8_T);
  const y = <usize>load<u32>(args, XAI8_Y);
  const xs = <usize>load<u32>(args, XAI8_XS);
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
