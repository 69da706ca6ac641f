/**
 * The IQ1_S and IQ1_M quantisers: llama.cpp quantize_row_iq1_s_impl / iq1_m_impl, the same bytes. IQ1_S requires
 * importance weights (qw·√(σ² + x²), σ² = 2·mean x² of the super-block); IQ1_M takes them or, without, x².
 *
 * IQ1_S: per 32 values the levels −1, 0, 1 (shifted by δ = ±1/8: x_p = level + δ, x_m = level − δ) are chosen
 * exactly: the values sorted ascending (a stable sort: glibc's qsort, a merge sort, keeps equal values in
 * position order), every pair of split points (i1 ≤ i2) scored from prefix sums by the weighted least-squares
 * fit (Σwqx)²/Σwq² for each sign of δ; the best wins. Groups of 8 levels off the iq1s grid become the nearest
 * of their neighbours (iq2-search.ts tables, 3 rings) and the scale is refitted. d = max scale/15 stored
 * × 1.125, 3-bit scales per 32 values with the sign of δ in bit 15. Every float operation is float32 in
 * ggml's order.
 */
import { nearestInt, wrF16 } from './ggml-ref.js';
import { f32ToF16 } from './half.js';
import { iq2Code, iq2Tables, type Iq2Tables } from './iq2-search.js';
import { IQ1_GRID_VALUES, IQ1S_GRID } from './iq-grids.js';

const f = Math.fround;
const FLT_MAX = 3.4028234663852886e38;
const X_P = [f(-1 + 0.125), f(0.125), f(1 + 0.125)];
const X_M = [f(-1 - 0.125), f(-0.125), f(1 - 0.125)];

const tables = () => iq2Tables(IQ1S_GRID, IQ1_GRID_VALUES, 3);

/**
 * iq1_find_best_neighbour2: the neighbour (list at `off`) closest to the 8 values x[xo…] at `scale` with level
 * values xx (Σ w·(scale·xx[l] − x)²); its levels into L[lo…]; returns its grid index (the first neighbour where
 * no distance is below FLT_MAX, where ggml aborts).
 */
function bestNeighbour(t: Iq2Tables, off: number, x: Float32Array, xo: number, w: Float32Array, wo: number, scale: number, xx: readonly number[], L: Uint8Array, lo: number): number {
  const nb = t.neighbours;
  const lv = t.levels;
  let best = FLT_MAX;
  let gi = nb[off + 1]!;
  for (let j = 1; j <= nb[off]!; j++) {
    const g = nb[off + j]!;
    let d2 = 0;
    for (let i = 0; i < 8; i++) {
      const diff = f(f(scale * xx[lv[8 * g + i]!]!) - x[xo + i]!);
      d2 = f(d2 + f(f(w[wo + i]! * diff) * diff));
    }
    if (d2 < best) { best = d2; gi = g; }
  }
  for (let i = 0; i < 8; i++) L[lo + i] = lv[8 * gi + i]!;
  return gi;
}

/** Positions 0…n−1 ordered by x[xo + i] ascending, equal values by position (stable). */
function sortedOrder(x: Float32Array, xo: number, n: number, idx: number[]): void {
  idx.length = n;
  for (let i = 0; i < n; i++) idx[i] = i;
  idx.sort((a, b) => (x[xo + a]! < x[xo + b]! ? -1 : x[xo + a]! > x[xo + b]! ? 1 : 0));
}

function sigma2Of(x: Float32Array, xo: number): number {
  let s = 0;
  for (let i = 0; i < 256; i++) s = f(s + f(x[xo + i]! * x[xo + i]!));
  return f(f(2 * s) / 256);
}

function weights(n: number, x: Float32Array, xo: number, qw: Float32Array | undefined, qwo: number, sigma2: number, w: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const v = x[xo + i]!;
    w[i] = qw ? f(qw[qwo + i]! * f(Math.sqrt(f(sigma2 + f(v * v))))) : f(v * v);
  }
}

function maxAbs(x: Float32Array, xo: number, n: number): number {
  let max = Math.abs(x[xo]!);
  for (let i = 1; i < n; i++) { const a = Math.abs(x[xo + i]!); max = max > a ? max : a; }
  return max;
}

const s1 = {
  w: new Float32Array(32), sumx: new Float32Array(33), sumw: new Float32Array(33), L: new Uint8Array(32), idx: [] as number[],
  index: new Uint16Array(4), scales: new Float32Array(16), shifts: new Int8Array(16),
};

/** One IQ1_S super-block (256 values at x[xo]) into dst[o] (50 bytes), weighted by qw[qwo … qwo + 256). */
export function iq1sQuantizeBlock(x: Float32Array, xo: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number): void {
  const t = tables();
  const { w, sumx, sumw, L, idx, index, scales, shifts } = s1;
  dst.fill(0, o, o + 50);
  const sigma2 = sigma2Of(x, xo);
  const EPS = f(1e-12);
  let maxScale = 0;
  for (let ib = 0; ib < 8; ib++) {
    const xb = xo + 32 * ib;
    weights(32, x, xb, qw, qwo + 32 * ib, sigma2, w);
    const max = maxAbs(x, xb, 32);
    if (max < EPS) { scales[ib] = 0; shifts[ib] = 1; continue; }
    sortedOrder(x, xb, 32, idx);
    sumx[0] = sumw[0] = 0;
    for (let j = 0; j < 32; j++) {
      const i = idx[j]!;
      sumx[j + 1] = f(sumx[j]! + f(w[i]! * x[xb + i]!));
      sumw[j + 1] = f(sumw[j]! + w[i]!);
    }
    let best = -FLT_MAX;
    let scale = max;
    let bi1 = -1, bi2 = -1, shift = 0;
    for (let i1 = 0; i1 <= 32; i1++) {
      for (let i2 = i1; i2 <= 32; i2++) {
        const a = f(sumx[i1]! - sumx[0]!), b = f(sumx[i2]! - sumx[i1]!), c = f(sumx[32]! - sumx[i2]!);
        const wa = f(sumw[i1]! - sumw[0]!), wb = f(sumw[i2]! - sumw[i1]!), wc = f(sumw[32]! - sumw[i2]!);
        for (let s = 0; s < 2; s++) {
          const xx = s === 0 ? X_P : X_M;
          const sumqx = f(f(f(a * xx[0]!) + f(b * xx[1]!)) + f(c * xx[2]!));
          const sumq2 = f(f(f(f(wa * xx[0]!) * xx[0]!) + f(f(wb * xx[1]!) * xx[1]!)) + f(f(wc * xx[2]!) * xx[2]!));
          if (sumq2 > 0 && f(sumqx * sumqx) > f(best * sumq2)) {
            scale = f(sumqx / sumq2); best = f(scale * sumqx);
            bi1 = i1; bi2 = i2; shift = s === 0 ? 1 : -1;
          }
        }
      }
    }
    if (bi1 < 0 || bi2 < 0 || shift === 0) { scales[ib] = 0; shifts[ib] = 1; continue; }
    for (let j = 0; j < 32; j++) L[idx[j]!] = j < bi1 ? 0 : j < bi2 ? 1 : 2;
    if (scale < 0) {
      for (let j = 0; j < 32; j++) L[j] = 2 - L[j]!;
      scale = -scale; shift = -shift;
    }
    const xx = shift === 1 ? X_P : X_M;
    let allOnGrid = true;
    for (let k = 0; k < 4; k++) {
      let gi = t.map[iq2Code(L, 8 * k)]!;
      if (gi < 0) {
        allOnGrid = false;
        gi = bestNeighbour(t, -gi - 1, x, xb + 8 * k, w, 8 * k, scale, xx, L, 8 * k);
      }
      index[k] = gi;
    }
    if (!allOnGrid) {
      let sumqx = 0, sumq2 = 0;
      for (let k = 0; k < 4; k++) {
        for (let j = 0; j < 8; j++) {
          const wj = w[8 * k + j]!;
          const q = xx[t.levels[8 * index[k]! + j]!]!;
          sumqx = f(sumqx + f(f(wj * q) * x[xb + 8 * k + j]!));
          sumq2 = f(sumq2 + f(f(wj * q) * q));
        }
      }
      if (sumqx > 0 && sumq2 > 0) scale = f(sumqx / sumq2);
    }
    let h = 0;
    for (let k = 0; k < 4; k++) {
      dst[o + 2 + 4 * ib + k] = index[k]! & 255;
      h |= (index[k]! >> 8) << (3 * k);
    }
    dst[o + 34 + 2 * ib] = h & 255;
    dst[o + 35 + 2 * ib] = h >> 8;
    scales[ib] = scale;
    shifts[ib] = shift;
    maxScale = maxScale > scale ? maxScale : scale;
  }
  if (maxScale === 0) return;
  const d = f(maxScale / 15);
  wrF16(dst, o, f(d * f(1.125)));
  const id = f(1 / d);
  for (let ib = 0; ib < 8; ib++) {
    let l = Math.max(0, Math.min(7, nearestInt(f(0.5 * f(f(id * scales[ib]!) - 1)))));
    if (shifts[ib] === -1) l |= 8;
    dst[o + 35 + 2 * ib] |= l << 4;
  }
}

const s2 = {
  w: new Float32Array(16), L: new Uint8Array(16), idx: [] as number[], index: new Uint16Array(2), scales: new Float32Array(16),
  shifts: new Int8Array(16), px: [new Float32Array(17), new Float32Array(17)], pw: [new Float32Array(17), new Float32Array(17)],
  sumqx: new Float32Array(4), sumq2: new Float32Array(4),
};
const MASKS = [0x00, 0x80, 0x08, 0x88];
/** The level values of IQ1_M's 8-value half k (0, 1) under shift combination s (0: +,+ 1: +,− 2: −,+ 3: −,−). */
const halfXX = (s: number, k: number) => (k === 0 ? (s < 2 ? X_P : X_M) : s % 2 === 0 ? X_P : X_M);
const CP1 = f(f(X_P[0]! * X_P[0]!) - f(X_P[1]! * X_P[1]!));
const CP2 = f(f(X_P[1]! * X_P[1]!) - f(X_P[2]! * X_P[2]!));
const CM1 = f(f(X_M[0]! * X_M[0]!) - f(X_M[1]! * X_M[1]!));
const CM2 = f(f(X_M[1]! * X_M[1]!) - f(X_M[2]! * X_M[2]!));

/**
 * One IQ1_M super-block (256 values at x[xo]) into dst[o] (56 bytes), weighted by qw[qwo …] (or, without, by
 * x²): llama.cpp quantize_row_iq1_m_impl as node-llama-cpp's llama.cpp has it. Per 16 values the split search
 * runs on prefix sums kept per 8-value half (each half has its own sign of δ): for a split (i1, i2) a half's
 * Σwqx = T·v₂ − (P[i1] + P[i2]) and Σwq² = W·v₂² + Pw[i1]·(v₀² − v₁²) + Pw[i2]·(v₁² − v₂²). 3-bit scales per 16
 * values; d refitted over the super-block with the stored levels and scales (× 1.1125), its f16 bits spread
 * over the top nibbles of the four u16 scale words.
 */
export function iq1mQuantizeBlock(x: Float32Array, xo: number, dst: Uint8Array, o: number, qw?: Float32Array, qwo = 0): void {
  const t = tables();
  const { w, L, idx, index, scales, shifts, px, pw, sumqx, sumq2 } = s2;
  dst.fill(0, o, o + 56);
  const sigma2 = sigma2Of(x, xo);
  const EPS = f(1e-7);
  const p2 = X_P[2]!, m2 = X_M[2]!;
  let maxScale = 0;
  for (let ib = 0; ib < 16; ib++) {
    const xb = xo + 16 * ib;
    weights(16, x, xb, qw, qwo + 16 * ib, sigma2, w);
    const max = maxAbs(x, xb, 16);
    if (max < EPS) { scales[ib] = 0; shifts[ib] = 0; continue; }
    sortedOrder(x, xb, 16, idx);
    px[0]![0] = px[1]![0] = pw[0]![0] = pw[1]![0] = 0;
    for (let j = 0; j < 16; j++) {
      const i = idx[j]!;
      const h = i < 8 ? 0 : 1;
      px[h]![j + 1] = f(px[h]![j]! + f(w[i]! * x[xb + i]!));
      px[1 - h]![j + 1] = px[1 - h]![j]!;
      pw[h]![j + 1] = f(pw[h]![j]! + w[i]!);
      pw[1 - h]![j + 1] = pw[1 - h]![j]!;
    }
    const P0 = px[0]!, P1 = px[1]!, W0 = pw[0]!, W1 = pw[1]!;
    const tx0 = P0[16]!, tx1 = P1[16]!, tw0 = W0[16]!, tw1 = W1[16]!;
    const txp0 = f(tx0 * p2), txm0 = f(tx0 * m2), txp1 = f(tx1 * p2), txm1 = f(tx1 * m2);
    const twp0 = f(f(tw0 * p2) * p2), twm0 = f(f(tw0 * m2) * m2), twp1 = f(f(tw1 * p2) * p2), twm1 = f(f(tw1 * m2) * m2);
    let best = -FLT_MAX;
    let scale = max;
    let bi1 = -1, bi2 = -1, bk = -1;
    for (let i1 = 0; i1 <= 16; i1++) {
      for (let i2 = i1; i2 <= 16; i2++) {
        const sx0 = f(P0[i1]! + P0[i2]!), sx1 = f(P1[i1]! + P1[i2]!);
        const qxp0 = f(txp0 - sx0), qxm0 = f(txm0 - sx0), qxp1 = f(txp1 - sx1), qxm1 = f(txm1 - sx1);
        const q2p0 = f(f(twp0 + f(W0[i1]! * CP1)) + f(W0[i2]! * CP2)), q2m0 = f(f(twm0 + f(W0[i1]! * CM1)) + f(W0[i2]! * CM2));
        const q2p1 = f(f(twp1 + f(W1[i1]! * CP1)) + f(W1[i2]! * CP2)), q2m1 = f(f(twm1 + f(W1[i1]! * CM1)) + f(W1[i2]! * CM2));
        sumqx[0] = qxp0 + qxp1; sumqx[1] = qxp0 + qxm1; sumqx[2] = qxm0 + qxp1; sumqx[3] = qxm0 + qxm1; // rounded on store
        sumq2[0] = q2p0 + q2p1; sumq2[1] = q2p0 + q2m1; sumq2[2] = q2m0 + q2p1; sumq2[3] = q2m0 + q2m1;
        for (let k = 0; k < 4; k++) {
          const sq = sumqx[k]!, s2q = sumq2[k]!;
          if (s2q > 0 && f(sq * sq) > f(best * s2q)) {
            scale = f(sq / s2q); best = f(scale * sq);
            bi1 = i1; bi2 = i2; bk = k;
          }
        }
      }
    }
    if (bi1 < 0 || bi2 < 0 || bk < 0) { scales[ib] = 0; shifts[ib] = 0; continue; }
    for (let j = 0; j < 16; j++) L[idx[j]!] = j < bi1 ? 0 : j < bi2 ? 1 : 2;
    if (scale < 0) {
      for (let j = 0; j < 16; j++) L[j] = 2 - L[j]!;
      scale = -scale;
      bk = 3 - bk;
    }
    let allOnGrid = true;
    for (let k = 0; k < 2; k++) {
      let gi = t.map[iq2Code(L, 8 * k)]!;
      if (gi < 0) {
        allOnGrid = false;
        gi = bestNeighbour(t, -gi - 1, x, xb + 8 * k, w, 8 * k, scale, halfXX(bk, k), L, 8 * k);
      }
      index[k] = gi;
    }
    if (!allOnGrid) {
      let sx = 0, s2q = 0;
      for (let k = 0; k < 2; k++) {
        const xx = halfXX(bk, k);
        for (let j = 0; j < 8; j++) {
          const wj = w[8 * k + j]!;
          const q = xx[t.levels[8 * index[k]! + j]!]!;
          sx = f(sx + f(f(wj * q) * x[xb + 8 * k + j]!));
          s2q = f(s2q + f(f(wj * q) * q));
        }
      }
      if (sx > 0 && s2q > 0) scale = f(sx / s2q);
    }
    dst[o + 2 * ib] = index[0]! & 255;
    dst[o + 2 * ib + 1] = index[1]! & 255;
    dst[o + 32 + ib] = (index[0]! >> 8) | ((index[1]! >> 8) << 4);
    scales[ib] = scale;
    shifts[ib] = bk;
    maxScale = maxScale > scale ? maxScale : scale;
  }
  if (maxScale === 0) return;
  const sc = [0, 0, 0, 0];
  let d = f(maxScale / 15);
  const id = f(1 / d);
  let sx = 0, s2q = 0;
  for (let ib = 0; ib < 16; ib++) {
    const l = Math.max(0, Math.min(7, nearestInt(f(0.5 * f(f(id * scales[ib]!) - 1)))));
    sc[ib >> 2] = sc[ib >> 2]! | (l << (3 * (ib & 3)));
    dst[o + 32 + ib] |= MASKS[shifts[ib]!]!;
    const xb = xo + 16 * ib;
    weights(16, x, xb, qw, qwo + 16 * ib, sigma2, w);
    const qh = dst[o + 32 + ib]!;
    for (let k = 0; k < 2; k++) {
      const xx = halfXX(shifts[ib]!, k);
      const gi = dst[o + 2 * ib + k]! + ((qh << (8 - 4 * k)) & 0x700);
      for (let j = 0; j < 8; j++) {
        const wj = w[8 * k + j]!;
        const q = f(xx[t.levels[8 * gi + j]!]! * (2 * l + 1));
        sx = f(sx + f(f(wj * q) * x[xb + 8 * k + j]!));
        s2q = f(s2q + f(f(wj * q) * q));
      }
    }
  }
  if (s2q > 0) d = f(sx / s2q);
  const u = f32ToF16(f(d * f(1.1125)));
  sc[0] = sc[0]! | ((u & 0x000f) << 12);
  sc[1] = sc[1]! | ((u & 0x00f0) << 8);
  sc[2] = sc[2]! | ((u & 0x0f00) << 4);
  sc[3] = sc[3]! | (u & 0xf000);
  for (let i = 0; i < 4; i++) { dst[o + 48 + 2 * i] = sc[i]! & 255; dst[o + 49 + 2 * i] = sc[i]! >> 8; }
}
