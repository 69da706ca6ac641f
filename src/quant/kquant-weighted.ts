/**
 * The K-quant quantisers with an importance matrix: llama.cpp's quantize_q2_K … quantize_q6_K with
 * quant_weights != NULL (ggml-quants.c quantize_row_q{2,3,4,5,6}_K_impl), giving the same bytes, for
 * `grok convert --imatrix`. `qw` holds the row's importance (one value per input column, llama-quantize's
 * sums / calls); each super-block reads the 256 at its own columns.
 *
 * Differences from the reference quantisers (ggml-ref.ts), all llama.cpp's:
 *   - weights: qw · √(σ² + x²) (σ² = 2·mean x² over the super-block; Q2_K: mean x², Q6_K: qw itself);
 *   - Q2_K / Q4_K / Q5_K search with make_qkx3_quants (= make_qkx2_quants with rmin −0.9, rdelta 0.05,
 *     37 steps, squared error), and quantise the sub-block scales and mins with make_qp_quants weighted by
 *     the sub-blocks' weight sums, instead of relative to the largest;
 *   - Q3_K searches with make_qx_quants (weighted) and quantises its scales with make_qx_quants too.
 * Every float operation is float32 (Math.fround), in llama.cpp's order; test/quant-llama.test.ts compares the
 * bytes with llama.cpp's own on reference inputs and weights. weighted.ts dispatches to these rows.
 */
import { GROUP_MAX_EPS, makeQkx2Quants, nearestInt, packScaleMinK4, qkx2Min, scaleMinK4, wrF16 } from './ggml-ref.js';
import type { BlockType } from './types.js';

const QK = 256;
const f = Math.fround;
/** make_qkx3_quants' rmin, the float −0.9f (as a double −0.9 it would round differently: Q2_K step 24). */
export const RMIN3 = f(-0.9);

/** One row of n values at x[xo] into blocks at dst[o], weighted by qw[qwo …] (one importance value per column). */
export type WeightedRow = (x: Float32Array, xo: number, n: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number) => void;

/** make_qx_quants with rmse_type 1 and importance weights qw (Q3_K, Q6_K): L[i] + nmax into L; returns the scale. */
export function makeQxQuantsWeighted(
  n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array | Int8Array, lo: number, qw: Float32Array, qwo: number,
): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) { amax = ax; max = x[xo + i]!; }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return 0;
  }
  let iscale = f(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
    L[lo + i] = l + nmax;
    const w = qw[qwo + i]!;
    sumlx = f(sumlx + f(f(w * xi) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  let scale = suml2 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
      const w = qw[qwo + i]!;
      sumlx = f(sumlx + f(f(w * xi) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[xo + i]!))));
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/**
 * make_qp_quants: levels 0 … nmax for non-negative values (the sub-block scales and mins) weighted by qw:
 * 9 candidate scales, then up to 5 passes of coordinate descent. Levels into L (uint8); returns the scale.
 */
export function makeQpQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array, lo: number, qw: Float32Array, qwo: number): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = max > x[xo + i]! ? max : x[xo + i]!; // C MAX(a, b): a > b ? a : b
  if (max < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return 0;
  }
  let iscale = f(nmax / max);
  for (let i = 0; i < n; i++) L[lo + i] = nearestInt(f(iscale * x[xo + i]!)); // stored as uint8_t
  const scale = f(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = f(x[xo + i]! - f(scale * L[lo + i]!));
    bestMse = f(bestMse + f(f(qw[qwo + i]! * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = f(f(f(f(0.1) * is) + nmax) / max);
    const scaleIs = f(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(f(iscaleIs * x[xo + i]!)));
      const diff = f(x[xo + i]! - f(scaleIs * l));
      mse = f(mse + f(f(qw[qwo + i]! * diff) * diff));
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(f(iscale * x[xo + i]!)));
    L[lo + i] = l;
    const w = qw[qwo + i]!;
    sumlx = f(sumlx + f(f(w * x[xo + i]!) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const w = qw[qwo + i]!;
      const xi = x[xo + i]!;
      const li = L[lo + i]!;
      let slx = f(sumlx - f(f(w * xi) * li));
      let sl2 = f(suml2 - f(f(w * li) * li));
      if (slx > 0 && sl2 > 0) {
        const nl = Math.min(nmax, nearestInt(f(f(xi * sl2) / slx)));
        if (nl !== li) {
          slx = f(slx + f(f(w * xi) * nl));
          sl2 = f(sl2 + f(f(w * nl) * nl));
          if (f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
            L[lo + i] = nl;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0 ? f(sumlx / suml2) : 0;
}

const scratch = {
  w: new Float32Array(32), Laux: new Uint8Array(32), sw: new Float32Array(16), scales: new Float32Array(16), mins: new Float32Array(16),
  ls: new Uint8Array(16), lm: new Uint8Array(16), L: new Uint8Array(QK), L8: new Int8Array(QK),
};

/** Σ x² over the super-block at xo, float32 in order. */
function sumSquares(x: Float32Array, xo: number): number {
  let s = 0;
  for (let l = 0; l < QK; l++) s = f(s + f(x[xo + l]! * x[xo + l]!));
  return s;
}

/** weights[l] = qw · √(σ² + x²) for `n` values at xo (llama.cpp's importance-weighted error); returns their sum. */
export function importance(n: number, x: Float32Array, xo: number, qw: Float32Array, qwo: number, sigma2: number, w: Float32Array): number {
  let sumw = 0;
  for (let l = 0; l < n; l++) {
    const v = x[xo + l]!;
    w[l] = f(qw[qwo + l]! * f(Math.sqrt(f(sigma2 + f(v * v)))));
  }
  for (let l = 0; l < n; l++) sumw = f(sumw + w[l]!);
  return sumw;
}

/** Q4_K / Q5_K super-block with weights (quantize_row_q4_K_impl / q5_K_impl): levels into L, scales packed at dst[o]. */
function kSuperWeighted(x: Float32Array, xo: number, qw: Float32Array, qwo: number, dst: Uint8Array, o: number, nmax: number, clamp63: boolean, L: Uint8Array): void {
  const { w, Laux, sw, scales, mins, ls, lm } = scratch;
  const sigma2 = f(f(2 * sumSquares(x, xo)) / QK);
  for (let j = 0; j < 8; j++) {
    sw[j] = importance(32, x, xo + 32 * j, qw, qwo + 32 * j, sigma2, w);
    scales[j] = makeQkx2Quants(32, nmax, x, xo + 32 * j, w, L, 32 * j, Laux, RMIN3, 0.05, 36, false); // make_qkx3_quants
    mins[j] = qkx2Min;
  }
  const dBlock = makeQpQuants(8, 63, scales, 0, ls, 0, sw, 0);
  const mBlock = makeQpQuants(8, 63, mins, 0, lm, 0, sw, 0);
  if (clamp63) for (let j = 0; j < 8; j++) { ls[j] = Math.min(63, ls[j]!); lm[j] = Math.min(63, lm[j]!); }
  packScaleMinK4(dst, o + 4, ls.subarray(0, 8), lm.subarray(0, 8));
  const d = wrF16(dst, o, dBlock);
  const dmin = wrF16(dst, o + 2, mBlock);
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(dst, o + 4, j);
    const dd = f(d * sc);
    if (!dd) continue;
    const dm = f(dmin * m);
    for (let ii = 0; ii < 32; ii++) L[32 * j + ii] = Math.max(0, Math.min(nmax, nearestInt(f(f(x[xo + 32 * j + ii]! + dm) / dd))));
  }
}

function q4kRow(x: Float32Array, xo: number, n: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number): void {
  const L = scratch.L;
  for (let b = 0; b < n / QK; b++) {
    const ob = o + 144 * b;
    kSuperWeighted(x, xo + QK * b, qw, qwo + QK * b, dst, ob, 15, false, L);
    for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) dst[ob + 16 + 32 * c + l] = L[64 * c + l]! | (L[64 * c + 32 + l]! << 4);
  }
}

function q5kRow(x: Float32Array, xo: number, n: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number): void {
  const L = scratch.L;
  for (let b = 0; b < n / QK; b++) {
    const ob = o + 176 * b;
    kSuperWeighted(x, xo + QK * b, qw, qwo + QK * b, dst, ob, 31, true, L);
    for (let l = 0; l < 32; l++) dst[ob + 16 + l] = 0;
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) {
        const l1 = L[64 * c + l]!;
        const l2 = L[64 * c + 32 + l]!;
        dst[ob + 16 + l] |= ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1));
        dst[ob + 48 + 32 * c + l] = (l1 & 15) | ((l2 & 15) << 4);
      }
    }
  }
}

function q6kRow(x: Float32Array, xo: number, n: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number): void {
  const { L, scales } = scratch;
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + QK * b;
    const ob = o + 210 * b;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let g = 0; g < 16; g++) {
      const s = makeQxQuantsWeighted(16, 32, x, xb + 16 * g, L, 16 * g, qw, qwo + QK * b + 16 * g);
      scales[g] = s;
      if (Math.abs(s) > maxAbsScale) { maxAbsScale = Math.abs(s); maxScale = s; }
    }
    dst.fill(0, ob, ob + 210);
    if (maxAbsScale < GROUP_MAX_EPS) continue;
    const iscale = f(-128 / maxScale);
    const d = wrF16(dst, ob + 208, f(1 / iscale));
    for (let g = 0; g < 16; g++) dst[ob + 192 + g] = Math.min(127, nearestInt(f(iscale * scales[g]!))) & 0xff;
    for (let g = 0; g < 16; g++) {
      const dd = f(d * ((dst[ob + 192 + g]! << 24) >> 24));
      if (!dd) continue;
      for (let ii = 0; ii < 16; ii++) L[16 * g + ii] = Math.max(-32, Math.min(31, nearestInt(f(x[xb + 16 * g + ii]! / dd)))) + 32;
    }
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const j = 128 * h;
        const q1 = L[j + l]!, q2 = L[j + l + 32]!, q3 = L[j + l + 64]!, q4 = L[j + l + 96]!;
        dst[ob + 64 * h + l] = (q1 & 15) | ((q3 & 15) << 4);
        dst[ob + 64 * h + 32 + l] = (q2 & 15) | ((q4 & 15) << 4);
        dst[ob + 128 + 32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
}

function q3kRow(x: Float32Array, xo: number, n: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number): void {
  const { w, sw, scales, L8 } = scratch;
  const Ls = new Int8Array(16);
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + QK * b;
    const ob = o + 110 * b;
    const sigma2 = f(f(2 * sumSquares(x, xb)) / QK);
    for (let j = 0; j < 16; j++) {
      sw[j] = importance(16, x, xb + 16 * j, qw, qwo + QK * b + 16 * j, sigma2, w);
      scales[j] = makeQxQuantsWeighted(16, 4, x, xb + 16 * j, L8, 16 * j, w, 0);
    }
    for (let k = 0; k < 12; k++) dst[ob + 96 + k] = 0;
    const dBlock = makeQxQuantsWeighted(16, 32, scales, 0, Ls, 0, sw, 0);
    for (let j = 0; j < 16; j++) {
      let l = Ls[j]!;
      if (j < 8) dst[ob + 96 + j] = l & 0xf;
      else dst[ob + 96 + j - 8] |= (l & 0xf) << 4;
      l >>= 4;
      dst[ob + 96 + 8 + (j % 4)] |= l << (2 * (j >> 2));
    }
    const d = wrF16(dst, ob + 108, dBlock);
    for (let j = 0; j < 16; j++) {
      const lo4 = j < 8 ? dst[ob + 96 + j]! & 0xf : dst[ob + 96 + j - 8]! >> 4;
      const sc = (lo4 | (((dst[ob + 96 + 8 + (j % 4)]! >> (2 * (j >> 2))) & 3) << 4)) - 32;
      const dd = f(d * sc);
      if (!dd) continue;
      for (let ii = 0; ii < 16; ii++) L8[16 * j + ii] = Math.max(-4, Math.min(3, nearestInt(f(x[xb + 16 * j + ii]! / dd)))) + 4;
    }
    for (let k = 0; k < 32; k++) dst[ob + k] = 0;
    for (let i = 0; i < QK; i++) {
      if (L8[i]! > 3) {
        dst[ob + (i & 31)] |= 1 << (i >> 5);
        L8[i] = L8[i]! - 4;
      }
    }
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const j = 128 * h;
        dst[ob + 32 + 32 * h + l] = L8[j + l]! | (L8[j + l + 32]! << 2) | (L8[j + l + 64]! << 4) | (L8[j + l + 96]! << 6);
      }
    }
  }
}

function q2kRow(x: Float32Array, xo: number, n: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number): void {
  const { w, Laux, sw, scales, mins, ls, lm, L } = scratch;
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + QK * b;
    const ob = o + 84 * b;
    const sigma2 = f(sumSquares(x, xb) / QK);
    for (let j = 0; j < 16; j++) {
      sw[j] = importance(16, x, xb + 16 * j, qw, qwo + QK * b + 16 * j, sigma2, w);
      scales[j] = makeQkx2Quants(16, 3, x, xb + 16 * j, w, L, 16 * j, Laux, RMIN3, 0.05, 36, false); // make_qkx3_quants
      mins[j] = qkx2Min;
    }
    const dm = makeQpQuants(16, 15, scales, 0, ls, 0, sw, 0);
    const mm = makeQpQuants(16, 15, mins, 0, lm, 0, sw, 0);
    const d = wrF16(dst, ob + 80, dm);
    const dmin = wrF16(dst, ob + 82, mm);
    for (let j = 0; j < 16; j++) dst[ob + j] = ls[j]! | (lm[j]! << 4);
    for (let j = 0; j < 16; j++) {
      const dd = f(d * (dst[ob + j]! & 0xf));
      if (!dd) continue;
      const m = f(dmin * (dst[ob + j]! >> 4));
      for (let ii = 0; ii < 16; ii++) L[16 * j + ii] = Math.max(0, Math.min(3, nearestInt(f(f(x[xb + 16 * j + ii]! + m) / dd))));
    }
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const j = 128 * h;
        dst[ob + 16 + 32 * h + l] = L[j + l]! | (L[j + l + 32]! << 2) | (L[j + l + 64]! << 4) | (L[j + l + 96]! << 6);
      }
    }
  }
}

/** The K-quant rows with importance weights, by type. */
export const KQUANT_WEIGHTED_ROWS: Partial<Record<BlockType, WeightedRow>> = { q2_k: q2kRow, q3_k: q3kRow, q4_k: q4kRow, q5_k: q5kRow, q6_k: q6kRow };
