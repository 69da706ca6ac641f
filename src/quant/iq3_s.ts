/**
 * IQ3_S (ggml type 21), 3.44 bits per weight: 256 values in 110 bytes, d f16 @0, qs u8[64] @2 (index low
 * bits, one per 4 values), qh u8[8] @66 (the 9th index bit), signs u8[32] @74 (one bit per value), scales
 * u8[4] @106 (4 bits per 32 values). Index into the iq3s grid (512 points × 4 values in {1, 3, …, 15});
 * y = d·(1 + 2·ls)·grid·sign (ggml-quants.c dequantize_row_iq3_s).
 *
 * Quantiser = llama.cpp quantize_iq3_s (quantize_row_iq3_s_impl, 32-value sub-blocks), with or without an
 * importance matrix (weights qw·√(σ² + x²), σ² = 2·mean x² of the super-block; else x²): per sub-block the
 * magnitudes |x| (signs stored apart), 19 candidate scales (15 + 0.2·is)/max, each group of 4 levels
 * round((id·|x| − 1)/2) clamped to 0…7 and, off the grid, replaced by the best of its neighbouring grid
 * points (error weighted by √weight); the best weighted least-squares fit wins, then groups off the grid
 * are re-picked at the fitted scale and the scale refitted. d = max scale/31 (stored × 1.033), 4-bit
 * sub-scales round((scale/d − 1)/2). As in llama.cpp, a sub-block of zeros does not advance the qs and
 * signs positions (the next sub-block's bytes take its place; its qh bits and scale stay at its own index).
 */
import { nearestInt, rdF16, wrF16 } from './ggml-ref.js';
import { defineIQ, IQ3S_GRID } from './iq-grids.js';
import { absSigns8, gridNeighbours, iq2Weights } from './iq2-search.js';

const FLT_MAX = 3.4028234663852886e38;

/**
 * llama.cpp iq3xs_init_impl(grid size), the tables quantize_iq3_s (512 points) and quantize_iq3_xxs (256)
 * search: each grid point as levels 0…7 (value 2l + 1 in the search), the map from a 12-bit level code (3 bits
 * per value) to its grid index, and, for a code off the grid, map = −(offset + 1) into `neighbours`: [count,
 * grid indices …], the grid points at the `nwant` smallest squared distances (3 for IQ3_S, 2 for IQ3_XXS), by
 * distance then index (ggml's qsort on (d², index)). Built once per grid, on first use.
 */
export interface Iq3Tables { levels: Uint8Array; map: Int32Array; neighbours: Uint16Array }
const tables = new Map<Int8Array, Iq3Tables>();

export function iq3Tables(grid: Int8Array, values: readonly number[], nwant: number): Iq3Tables {
  const hit = tables.get(grid);
  if (hit) return hit;
  const n = grid.length / 4;
  const levels = Uint8Array.from(grid, (v) => values.indexOf(v));
  if (levels.some((l) => l > 7)) throw new Error('iq3 tables: a grid value is not one of the levels');
  const map = new Int32Array(4096).fill(-1);
  for (let g = 0; g < n; g++) map[levels[4 * g]! | (levels[4 * g + 1]! << 3) | (levels[4 * g + 2]! << 6) | (levels[4 * g + 3]! << 9)] = g;
  const out: number[] = [];
  const d2 = new Int32Array(n);
  const m = new Int32Array(nwant);
  const pos = new Uint8Array(4);
  for (let u = 0; u < 4096; u++) {
    if (map[u]! >= 0) continue;
    for (let k = 0; k < 4; k++) pos[k] = (u >> (3 * k)) & 7;
    map[u] = gridNeighbours(levels, 4, pos, d2, m, out);
  }
  const t = { levels, map, neighbours: Uint16Array.from(out) };
  tables.set(grid, t);
  return t;
}

const IQ3S_VALUES = [1, 3, 5, 7, 9, 11, 13, 15];

/**
 * iq3_find_best_neighbour: the neighbour of the 4 values at xval[xo] closest at `scale` (Σ waux·diff² with the
 * search values 2l + 1, float32 in order, first of equals); its levels into L[lo…]; returns its grid index.
 * Where every distance is NaN or infinite (llama.cpp aborts) the first neighbour.
 */
export function iq3BestNeighbour(t: Iq3Tables, off: number, xval: Float32Array, xo: number, waux: Float32Array, scale: number, L: Uint8Array, lo: number): number {
  const n = t.neighbours[off]!;
  const lv = t.levels;
  let best = FLT_MAX;
  let gi = t.neighbours[off + 1]!;
  for (let j = 1; j <= n; j++) {
    const g = t.neighbours[off + j]!;
    let d2 = 0;
    for (let i = 0; i < 4; i++) {
      const diff = Math.fround(Math.fround(scale * (2 * lv[4 * g + i]! + 1)) - xval[xo + i]!);
      d2 = Math.fround(d2 + Math.fround(Math.fround(waux[xo + i]! * diff) * diff));
    }
    if (d2 < best) { best = d2; gi = g; }
  }
  for (let i = 0; i < 4; i++) L[lo + i] = lv[4 * gi + i]!;
  return gi;
}

const s32 = {
  weight: new Float32Array(32), waux: new Float32Array(32), xval: new Float32Array(32), L: new Uint8Array(32), Laux: new Uint8Array(32),
  signs: new Uint8Array(4), scales: new Float32Array(8),
};

/** The 12-bit level code of L[lo … lo + 4). */
export const iq3Code = (L: Uint8Array, lo: number) => L[lo]! | (L[lo + 1]! << 3) | (L[lo + 2]! << 6) | (L[lo + 3]! << 9);

/** Levels clamp(round((id·xval − 1)/2), 0, 7) of group k into L; returns their code. */
export function iq3GroupLevels(xval: Float32Array, k: number, id: number, L: Uint8Array): number {
  for (let i = 0; i < 4; i++) L[4 * k + i] = Math.max(0, Math.min(7, nearestInt(Math.fround(0.5 * Math.fround(Math.fround(id * xval[4 * k + i]!) - 1)))));
  return iq3Code(L, 4 * k);
}

/** Σ w·xval·q and Σ w·q² with q = 2L + 1 over the sub-block, float32 in order. */
export function iq3Fit(L: Uint8Array, weight: Float32Array, xval: Float32Array): [number, number] {
  let sumqx = 0;
  let sumq2 = 0;
  for (let i = 0; i < 32; i++) {
    const w = weight[i]!;
    const q = 2 * L[i]! + 1;
    sumqx = Math.fround(sumqx + Math.fround(Math.fround(w * xval[i]!) * q));
    sumq2 = Math.fround(sumq2 + Math.fround(Math.fround(w * q) * q));
  }
  return [sumqx, sumq2];
}

const onGrid = new Uint8Array(8);
const onGridAux = new Uint8Array(8);

/**
 * The scale search IQ3_S and IQ3_XXS share on 32 values (eight groups of 4; xval = |x|, its largest `max`):
 * 2·steps + 1 candidate scales (15 + 0.2·is)/max, each group snapped to the grid or its nearest neighbours;
 * the best weighted least-squares fit wins (levels into L), then groups are re-picked at the fitted scale and
 * the scale refitted. llama.cpp's two quantisers differ there, and `iq3s` keeps IQ3_S's ways: no group counts
 * as on the grid before a fit wins, and the re-pick redoes every group, on the grid or not. Returns the scale.
 */
export function iq3Search32(t: Iq3Tables, xval: Float32Array, weight: Float32Array, waux: Float32Array, max: number, L: Uint8Array, Laux: Uint8Array, steps: number, iq3s: boolean): number {
  let best = 0;
  let scale = Math.fround(max / 15);
  onGrid.fill(iq3s ? 0 : 1);
  for (let is = -steps; is <= steps; is++) {
    const id = Math.fround(Math.fround(15 + Math.fround(is * Math.fround(0.2))) / max);
    const thisScale = Math.fround(1 / id);
    for (let k = 0; k < 8; k++) {
      const gi = t.map[iq3GroupLevels(xval, k, id, Laux)]!;
      onGridAux[k] = gi >= 0 ? 1 : 0;
      if (gi < 0) iq3BestNeighbour(t, -gi - 1, xval, 4 * k, waux, thisScale, Laux, 4 * k);
    }
    const [sumqx, sumq2] = iq3Fit(Laux, weight, xval);
    if (sumq2 > 0 && Math.fround(sumqx * sumqx) > Math.fround(best * sumq2)) {
      scale = Math.fround(sumqx / sumq2);
      best = Math.fround(scale * sumqx);
      L.set(Laux);
      onGrid.set(onGridAux);
    }
  }
  if (onGrid.includes(0) && scale > 0) {
    const id = Math.fround(1 / scale);
    for (let k = 0; k < 8; k++) {
      if (onGrid[k] && !iq3s) continue;
      const gi = t.map[iq3GroupLevels(xval, k, id, L)]!;
      if (gi < 0) iq3BestNeighbour(t, -gi - 1, xval, 4 * k, waux, scale, L, 4 * k);
    }
    const [sumqx, sumq2] = iq3Fit(L, weight, xval);
    if (sumq2 > 0) scale = Math.fround(sumqx / sumq2);
  }
  return scale;
}

/** One IQ3_S super-block (256 values at x[xo]) into dst[o], weighted by qw[qwo …] when given. */
export function iq3sQuantizeBlock(x: Float32Array, xo: number, dst: Uint8Array, o: number, qw?: Float32Array, qwo = 0): void {
  const t = iq3Tables(IQ3S_GRID, IQ3S_VALUES, 3);
  const { weight, waux, xval, L, Laux, signs, scales } = s32;
  dst.fill(0, o, o + 110);
  let sumx2 = 0;
  for (let i = 0; i < 256; i++) sumx2 = Math.fround(sumx2 + Math.fround(x[xo + i]! * x[xo + i]!));
  const sigma2 = Math.fround(Math.fround(2 * sumx2) / 256);
  let qs = o + 2;
  let sg = o + 74;
  let maxScale = 0;
  for (let ib = 0; ib < 8; ib++) {
    const xb = xo + 32 * ib;
    iq2Weights(32, x, xb, qw, qwo + 32 * ib, sigma2, weight, waux);
    for (let k = 0; k < 4; k++) signs[k] = absSigns8(x, xb + 8 * k, xval, 8 * k);
    let max = xval[0]!;
    for (let i = 1; i < 32; i++) max = max > xval[i]! ? max : xval[i]!;
    L.fill(0);
    if (max === 0) { scales[ib] = 0; continue; } // C `!max`; qs and signs stay where they are
    let scale = iq3Search32(t, xval, weight, waux, max, L, Laux, 9, true);
    if (scale < 0) {
      scale = -scale;
      for (let k = 0; k < 4; k++) signs[k] = ~signs[k]! & 0xff;
    }
    for (let k = 0; k < 8; k++) {
      const gi = t.map[iq3Code(L, 4 * k)]!;
      if (gi < 0) throw new Error(`iq3_s: levels ${L.subarray(4 * k, 4 * k + 4).join(',')} not on the grid`);
      dst[qs + k] = gi & 255;
      dst[o + 66 + ib] |= (gi >> 8) << k;
    }
    qs += 8;
    for (let k = 0; k < 4; k++) dst[sg + k] = signs[k]!;
    sg += 4;
    scales[ib] = scale;
    maxScale = maxScale > scale ? maxScale : scale;
  }
  if (maxScale === 0) return;
  const d = Math.fround(maxScale / 31);
  wrF16(dst, o, Math.fround(d * Math.fround(1.033)));
  const id = Math.fround(1 / d);
  for (let ib = 0; ib < 8; ib += 2) {
    const l1 = Math.max(0, Math.min(15, nearestInt(Math.fround(0.5 * Math.fround(Math.fround(id * scales[ib]!) - 1)))));
    const l2 = Math.max(0, Math.min(15, nearestInt(Math.fround(0.5 * Math.fround(Math.fround(id * scales[ib + 1]!) - 1)))));
    dst[o + 106 + ib / 2] = l1 | (l2 << 4);
  }
}

export const IQ3_S = defineIQ({
  name: 'iq3_s', ggmlId: 21, bytesPerBlock: 110, layout: { d: 2, qs: 64, qh: 8, signs: 32, scales: 4 },
  block(src, o, y) {
    const d = rdF16(src, o);
    for (let ib = 0; ib < 8; ib++) {
      const sc = src[o + 106 + (ib >> 1)]!;
      const db = Math.fround(d * (1 + 2 * (ib & 1 ? sc >> 4 : sc & 15)));
      const qh = src[o + 66 + ib]!;
      for (let l = 0; l < 4; l++) {
        const signs = src[o + 74 + 4 * ib + l]!;
        for (let h = 0; h < 2; h++) {
          const idx = src[o + 2 + 8 * ib + 2 * l + h]! | ((qh << (8 - 2 * l - h)) & 256);
          for (let j = 0; j < 4; j++) {
            const v = Math.fround(db * IQ3S_GRID[4 * idx + j]!);
            y[32 * ib + 8 * l + 4 * h + j] = (signs >> (4 * h + j)) & 1 ? -v : v;
          }
        }
      }
    }
  },
  quantizeBlock: (x, xo, dst, o) => iq3sQuantizeBlock(x, xo, dst, o),
});
