/**
 * The IQ1_S quantiser: llama.cpp quantize_row_iq1_s_impl, the same bytes (it requires importance weights:
 * qw·√(σ² + x²), σ² = 2·mean x² of the super-block).
 *
 * Per 32 values the levels −1, 0, 1 (shifted by δ = ±1/8: x_p = level + δ, x_m = level − δ) are chosen
 * exactly: the values sorted ascending (a stable sort: glibc's qsort, a merge sort, keeps equal values in
 * position order), every pair of split points (i1 ≤ i2) scored from prefix sums by the weighted least-squares
 * fit (Σwqx)²/Σwq² for each sign of δ; the best wins. Groups of 8 levels off the iq1s grid become the nearest
 * of their neighbours (iq2-search.ts tables, 3 rings) and the scale is refitted. d = max scale/15 stored
 * × 1.125, 3-bit scales per 32 values with the sign of δ in bit 15. Every float operation is float32 in
 * ggml's order.
 *
 * Not IQ1_M: the libggml node-llama-cpp ships searches IQ1_M's splits with prefix sums per 8-value half (its
 * machine code), not with ggml-quants.c's published per-split sums, so their float rounding, and the bytes,
 * differ; without that source we do not write IQ1_M.
 */
import { nearestInt, wrF16 } from './ggml-ref.js';
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
