/**
 * The grid search shared by llama.cpp's 8-value i-quant quantisers (IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M):
 * ggml-quants.c iq2xs_init_impl's tables and iq2_find_best_neighbour.
 *
 * A group of 8 values is written as levels 0…2 (grid value 2l + 1 in the search), packed 2 bits per value
 * into a 16-bit code. `map` sends a code on the grid to its index; a code off the grid to −(offset + 1) in
 * `neighbours`, which holds [count, grid indices …]: every grid point at the `nwant` smallest distinct
 * squared distances from the code, by distance, then index (ggml's qsort on (d², index)); nwant is 2 for
 * IQ2_XXS / IQ2_XS, 1 for IQ2_S, 3 for IQ1_S / IQ1_M. Only codes whose levels are all ≤ 2 can be looked up
 * (the quantisers clamp), so only those get a list (ggml builds one for all 43692 codes; the lists are the
 * same). Built once per grid, on first use.
 */
export interface Iq2Tables {
  /** 8 levels (0…2) per grid point. */
  readonly levels: Uint8Array;
  readonly map: Int32Array;
  readonly neighbours: Uint16Array;
}

const cache = new Map<Int8Array, Iq2Tables>();

/** The tables of `grid` (8 values per point, each one of `values`, in level order). */
export function iq2Tables(grid: Int8Array, values: readonly number[], nwant: number): Iq2Tables {
  const hit = cache.get(grid);
  if (hit) return hit;
  const n = grid.length / 8;
  const levels = Uint8Array.from(grid, (v) => {
    const l = values.indexOf(v);
    if (l < 0) throw new Error(`iq2 tables: grid value ${v} is not one of ${values.join(', ')}`);
    return l;
  });
  const map = new Int32Array(43692).fill(-1);
  for (let g = 0; g < n; g++) {
    let u = 0;
    for (let k = 0; k < 8; k++) u |= levels[8 * g + k]! << (2 * k);
    map[u] = g;
  }
  const out: number[] = [];
  const d2 = new Int32Array(n);
  const pos = new Uint8Array(8);
  const m = new Int32Array(nwant);
  for (let u = 0; u < 43692; u++) {
    if (map[u]! >= 0) continue;
    let valid = true;
    for (let k = 0; k < 8; k++) {
      pos[k] = (u >> (2 * k)) & 3;
      if (pos[k] === 3) valid = false;
    }
    if (!valid) continue;
    map[u] = gridNeighbours(levels, 8, pos, d2, m, out);
  }
  const t = { levels, map, neighbours: Uint16Array.from(out) };
  cache.set(grid, t);
  return t;
}

/**
 * The neighbour list of one point off the grid (levels `pos`, `dim` per point): every grid point at the
 * m.length smallest distinct squared distances from it, by distance, then index, appended to `out` as
 * [count, indices …]; returns the map entry −(offset + 1). d2 is scratch of one entry per grid point.
 * Shared by the IQ2 (8 values a point) and IQ3 (4) tables.
 */
export function gridNeighbours(levels: Uint8Array, dim: number, pos: ArrayLike<number>, d2: Int32Array, m: Int32Array, out: number[]): number {
  const n = d2.length, nwant = m.length;
  m.fill(0x7fffffff); // the nwant smallest distinct distances, ascending
  for (let g = 0; g < n; g++) {
    let s = 0;
    for (let k = 0; k < dim; k++) {
      const e = levels[dim * g + k]! - pos[k]!;
      s += e * e;
    }
    d2[g] = s;
    if (s >= m[nwant - 1]!) continue;
    let j = 0;
    while (j < nwant && m[j]! < s) j++;
    if (m[j] === s) continue;
    for (let i = nwant - 1; i > j; i--) m[i] = m[i - 1]!;
    m[j] = s;
  }
  const entry = -(out.length + 1);
  const start = out.push(0) - 1;
  for (const d of m) if (d !== 0x7fffffff) for (let g = 0; g < n; g++) if (d2[g] === d) out.push(g);
  out[start] = out.length - start - 1;
  return entry;
}

const FLT_MAX = 3.4028234663852886e38;

/**
 * iq2_find_best_neighbour: among the neighbours listed at `off`, the grid point closest to the 8 values at
 * xval[xo] at `scale` (Σ w·(scale·(2l + 1) − x)², float32 in ggml's order, first of equals); its levels into
 * L[lo…]; returns its index. Where no distance is below FLT_MAX (ggml aborts) the first neighbour.
 */
export function iq2BestNeighbour(t: Iq2Tables, off: number, xval: Float32Array, xo: number, w: Float32Array, scale: number, L: Uint8Array, lo: number): number {
  const nb = t.neighbours;
  const lv = t.levels;
  const count = nb[off]!;
  let best = FLT_MAX;
  let gi = nb[off + 1]!;
  for (let j = 1; j <= count; j++) {
    const g = nb[off + j]!;
    let d2 = 0;
    for (let i = 0; i < 8; i++) {
      const diff = Math.fround(Math.fround(scale * (2 * lv[8 * g + i]! + 1)) - xval[xo + i]!);
      d2 = Math.fround(d2 + Math.fround(Math.fround(w[xo + i]! * diff) * diff));
    }
    if (d2 < best) { best = d2; gi = g; }
  }
  for (let i = 0; i < 8; i++) L[lo + i] = lv[8 * gi + i]!;
  return gi;
}

/** The 16-bit code of the 8 levels at L[lo…]. */
export function iq2Code(L: Uint8Array, lo: number): number {
  let u = 0;
  for (let i = 0; i < 8; i++) u |= L[lo + i]! << (2 * i);
  return u;
}

/**
 * Levels clamp(nearest_int(0.5·(id·xval − 1)), 0, kMaxQ − 1) of the 8 values at xval[xo] into L[lo…];
 * returns their code.
 */
export function iq2Levels(xval: Float32Array, xo: number, id: number, kMaxQ: number, L: Uint8Array, lo: number): number {
  let u = 0;
  for (let i = 0; i < 8; i++) {
    const r = Math.fround(Math.fround(0.5 * Math.fround(Math.fround(id * xval[xo + i]!) - 1)) + 12582912) - 12582912; // nearest_int
    const l = r < 0 ? 0 : r > kMaxQ - 1 ? kMaxQ - 1 : r;
    L[lo + i] = l;
    u |= l << (2 * i);
  }
  return u;
}

/** xval = |x| for the 8 values at x[xo]; returns their sign bits (bit i set where x[xo + i] < 0). */
export function absSigns8(x: Float32Array, xo: number, xval: Float32Array, vo: number): number {
  let s = 0;
  for (let i = 0; i < 8; i++) {
    const v = x[xo + i]!;
    if (v >= 0) xval[vo + i] = v;
    else { xval[vo + i] = -v; s |= 1 << i; }
  }
  return s;
}

/**
 * Magnitudes and signs of the 8 values at x[xo] (ggml's iq2 sign handling): xval = |x|, sign bits s; where
 * the count of negatives is odd, the value with the least weight·x² keeps its sign in xval (it becomes
 * negative there) and its bit is flipped, so that the stored 7 bits (ksigns) imply an even count. Returns
 * s & 127.
 */
export function iq2Signs(x: Float32Array, xo: number, weight: Float32Array, wo: number, xval: Float32Array, vo: number): number {
  let s = absSigns8(x, xo, xval, vo);
  let nflip = 0;
  for (let b = s; b; b &= b - 1) nflip++;
  if (nflip % 2) {
    let imin = 0;
    let min = Math.fround(Math.fround(weight[wo]! * x[xo]!) * x[xo]!);
    for (let i = 1; i < 8; i++) {
      const ax = Math.fround(Math.fround(weight[wo + i]! * x[xo + i]!) * x[xo + i]!);
      if (ax < min) { min = ax; imin = i; }
    }
    xval[vo + imin] = -xval[vo + imin]!;
    s ^= 1 << imin;
  }
  return s & 127;
}

/** Σ w·xval·q and Σ w·q² with q = 2L + 1 over n values, float32 in order. */
export function iq2Fit(n: number, L: Uint8Array, weight: Float32Array, xval: Float32Array): [number, number] {
  let sumqx = 0;
  let sumq2 = 0;
  for (let i = 0; i < n; i++) {
    const w = weight[i]!;
    const q = 2 * L[i]! + 1;
    sumqx = Math.fround(sumqx + Math.fround(Math.fround(w * xval[i]!) * q));
    sumq2 = Math.fround(sumq2 + Math.fround(Math.fround(w * q) * q));
  }
  return [sumqx, sumq2];
}

/** The super-block's Σ x² / 256 (float32 in order). */
export function iq2Sigma2(x: Float32Array, xo: number): number {
  let s = 0;
  for (let i = 0; i < 256; i++) s = Math.fround(s + Math.fround(x[xo + i]! * x[xo + i]!));
  return Math.fround(s / 256);
}

/**
 * weight = qw·√(σ² + x²) with importance rows, else x² + plainSigma·σ² (IQ2_S: σ²/4; the IQ3s: x² alone), and
 * waux = √weight, for n values (float32).
 */
export function iq2Weights(n: number, x: Float32Array, xo: number, qw: Float32Array | null | undefined, qwo: number, sigma2: number, weight: Float32Array, waux: Float32Array, plainSigma = 0): void {
  for (let i = 0; i < n; i++) {
    const v = x[xo + i]!;
    weight[i] = qw
      ? Math.fround(qw[qwo + i]! * Math.fround(Math.sqrt(Math.fround(sigma2 + Math.fround(v * v)))))
      : plainSigma === 0 ? Math.fround(v * v) : Math.fround(Math.fround(plainSigma * sigma2) + Math.fround(v * v));
    waux[i] = Math.fround(Math.sqrt(weight[i]!));
  }
}

const onGrid = [true, true];
const onGridAux = [true, true];

/**
 * The scale search IQ2_XS and IQ2_S share, on 16 values (two groups of 8; xval = |x|, its largest `max`):
 * 19 candidate scales (5 + 0.1·is)/max, each group's levels snapped to the grid or its nearest neighbour;
 * the best weighted least-squares fit wins (levels into L), groups that were off the grid are re-picked at
 * the fitted scale and the scale refitted (llama.cpp quantize_row_iq2_xs_impl / _iq2_s_impl). Returns it.
 */
export function iq2Search16(t: Iq2Tables, xval: Float32Array, weight: Float32Array, waux: Float32Array, max: number, L: Uint8Array, Laux: Uint8Array): number {
  const kMaxQ = 3;
  let best = 0;
  let scale = Math.fround(max / (2 * kMaxQ - 1));
  onGrid[0] = onGrid[1] = true;
  for (let is = -9; is <= 9; is++) {
    const id = Math.fround(Math.fround(2 * kMaxQ - 1 + Math.fround(is * Math.fround(0.1))) / max);
    const thisScale = Math.fround(1 / id);
    for (let k = 0; k < 2; k++) {
      const gi = t.map[iq2Levels(xval, 8 * k, id, kMaxQ, Laux, 8 * k)]!;
      onGridAux[k] = gi >= 0;
      if (gi < 0) iq2BestNeighbour(t, -gi - 1, xval, 8 * k, waux, thisScale, Laux, 8 * k);
    }
    const [sumqx, sumq2] = iq2Fit(16, Laux, weight, xval);
    if (sumq2 > 0 && Math.fround(sumqx * sumqx) > Math.fround(best * sumq2)) {
      scale = Math.fround(sumqx / sumq2);
      best = Math.fround(scale * sumqx);
      L.set(Laux);
      onGrid[0] = onGridAux[0]!; onGrid[1] = onGridAux[1]!;
    }
  }
  if ((!onGrid[0] || !onGrid[1]) && scale > 0) {
    const id = Math.fround(1 / scale);
    for (let k = 0; k < 2; k++) {
      if (onGrid[k]) continue;
      const gi = t.map[iq2Levels(xval, 8 * k, id, kMaxQ, L, 8 * k)]!;
      if (gi < 0) iq2BestNeighbour(t, -gi - 1, xval, 8 * k, waux, scale, L, 8 * k);
    }
    const [sumqx, sumq2] = iq2Fit(16, L, weight, xval);
    if (sumq2 > 0) scale = Math.fround(sumqx / sumq2);
  }
  return scale;
}
