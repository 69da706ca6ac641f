/**
 * Shared pieces of the block formats: byte access, float32 emulation, and the scale searches of llama.cpp's
 * reference quantisers (ggml-quants.c: nearest_int, make_qx_quants, make_q3_quants, make_qkx2_quants).
 *
 * Every quantiser here aims to give the same bytes as llama.cpp's `quantize_row_*_ref` (no importance
 * matrix). ggml does its arithmetic in float32, so each float operation below is followed by
 * Math.fround: a double operation on float32 inputs rounded once to float32 equals the float32 operation
 * (53 ≥ 2·24 + 2), so the emulation is exact as long as the operation order is the same. Always write
 * `Math.fround(…)`: V8 inlines it only when called by that name (an alias is a 3–4× slower call).
 * test/quant-llama.test.ts compares the bytes with llama.cpp's own output.
 */
import { f16ToF32, f32ToF16 } from './half.js';

/** ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is treated as all zeros. */
export const GROUP_MAX_EPS = 1e-15;

/** llama.cpp nearest_int: round half to even via the float32 addition of 1.5·2^23. */
export function nearestInt(v: number): number {
  return Math.fround(v + 12582912) - 12582912;
}

/** C roundf: half away from zero. */
export function roundAway(v: number): number {
  const a = Math.abs(v);
  let r = Math.floor(a);
  if (a - r >= 0.5) r += 1;
  return v < 0 ? -r : r;
}

/** Read the f16 at byte `o` as a number. */
export function rdF16(b: Uint8Array, o: number): number {
  return f16ToF32(b[o]! | (b[o + 1]! << 8));
}

/** Write `v` as f16 at byte `o`; returns the value the f16 holds (what dequantisation will see). */
export function wrF16(b: Uint8Array, o: number, v: number): number {
  const h = f32ToF16(v);
  b[o] = h & 0xff;
  b[o + 1] = h >> 8;
  return f16ToF32(h);
}

export function checkBlocks(name: string, n: number, blockSize: number): void {
  if (!Number.isInteger(n) || n < 0 || n % blockSize !== 0) {
    throw new Error(`${name}: value count ${n} is not a multiple of the block size ${blockSize}`);
  }
}

/**
 * make_qx_quants with rmse_type 1 and no importance weights (Q6_K): symmetric levels -nmax … nmax-1,
 * weights x², 19 candidate scales -(nmax + 0.1·is)/max. Writes L[i] + nmax into `L`; returns the scale.
 */
export function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array, lo: number): number {
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
  let iscale = Math.fround(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    let l = nearestInt(Math.fround(iscale * xi));
    l = Math.max(-nmax, Math.min(nmax - 1, l));
    L[lo + i] = l + nmax;
    const w = Math.fround(xi * xi);
    sumlx = Math.fround(sumlx + Math.fround(Math.fround(w * xi) * l));
    suml2 = Math.fround(suml2 + Math.fround(Math.fround(w * l) * l));
  }
  let scale = suml2 ? Math.fround(sumlx / suml2) : 0;
  let best = Math.fround(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = Math.fround(-Math.fround(nmax + Math.fround(Math.fround(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      let l = nearestInt(Math.fround(iscale * xi));
      l = Math.max(-nmax, Math.min(nmax - 1, l));
      const w = Math.fround(xi * xi);
      sumlx = Math.fround(sumlx + Math.fround(Math.fround(w * xi) * l));
      suml2 = Math.fround(suml2 + Math.fround(Math.fround(w * l) * l));
    }
    if (suml2 > 0 && Math.fround(sumlx * sumlx) > Math.fround(best * suml2)) {
      for (let i = 0; i < n; i++) {
        const l = nearestInt(Math.fround(iscale * x[xo + i]!));
        L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
      }
      scale = Math.fround(sumlx / suml2);
      best = Math.fround(scale * sumlx);
    }
  }
  return scale;
}

/**
 * make_q3_quants with do_rmse (Q3_K): start from levels round(-nmax/max · x), then up to 5 passes of
 * coordinate descent on the weighted (x²) least-squares fit. Writes L[i] + nmax; returns the scale.
 */
export function makeQ3Quants(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, lo: number): number {
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
  const iscale = Math.fround(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    let l = nearestInt(Math.fround(iscale * xi));
    l = Math.max(-nmax, Math.min(nmax - 1, l));
    L[lo + i] = l;
    const w = Math.fround(xi * xi);
    sumlx = Math.fround(sumlx + Math.fround(Math.fround(w * xi) * l));
    suml2 = Math.fround(suml2 + Math.fround(Math.fround(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const li = L[lo + i]!;
      const w = Math.fround(xi * xi);
      let slx = Math.fround(sumlx - Math.fround(Math.fround(w * xi) * li));
      if (slx > 0) {
        let sl2 = Math.fround(suml2 - Math.fround(Math.fround(w * li) * li));
        let nl = nearestInt(Math.fround(Math.fround(xi * sl2) / slx));
        nl = Math.max(-nmax, Math.min(nmax - 1, nl));
        if (nl !== li) {
          slx = Math.fround(slx + Math.fround(Math.fround(w * xi) * nl));
          sl2 = Math.fround(sl2 + Math.fround(Math.fround(w * nl) * nl));
          if (sl2 > 0 && Math.fround(Math.fround(slx * slx) * suml2) > Math.fround(Math.fround(sumlx * sumlx) * sl2)) {
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
  for (let i = 0; i < n; i++) L[lo + i] = L[lo + i]! + nmax;
  return Math.fround(sumlx / suml2);
}

/** The −min that the last makeQkx2Quants call found (a second return value without allocating). */
export let qkx2Min = 0;

/**
 * make_qkx2_quants (Q2_K, Q4_K, Q5_K): asymmetric levels 0 … nmax with a minimum, weighted fit, trying
 * nstep+1 scales (rmin + rdelta·is + nmax)/(max − min). Writes levels into `L`; returns the scale and
 * leaves −min in `qkx2Min`.
 */
export function makeQkx2Quants(
  n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array, L: Uint8Array, lo: number,
  Laux: Uint8Array, rmin: number, rdelta: number, nstep: number, useMad: boolean,
): number {
  let min = x[xo]!;
  let max = x[xo]!;
  let sumW = w[0]!;
  let sumX = Math.fround(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const wi = w[i]!;
    sumW = Math.fround(sumW + wi);
    sumX = Math.fround(sumX + Math.fround(wi * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    qkx2Min = -min;
    return 0;
  }
  let iscale = Math.fround(nmax / Math.fround(max - min));
  let scale = Math.fround(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(Math.fround(iscale * Math.fround(x[xo + i]! - min)))));
    L[lo + i] = l;
    let diff = Math.fround(Math.fround(Math.fround(scale * l) + min) - x[xo + i]!);
    diff = useMad ? Math.abs(diff) : Math.fround(diff * diff);
    bestError = Math.fround(bestError + Math.fround(w[i]! * diff));
  }
  if (nstep < 1) {
    qkx2Min = -min;
    return scale;
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = Math.fround(Math.fround(Math.fround(rmin + Math.fround(Math.fround(rdelta) * is)) + nmax) / Math.fround(max - min));
    // Levels identical to the previous step's give identical sums, fit and error, which can no longer
    // beat the best: skip them (exact; most neighbouring steps round to the same levels).
    let changed = is === 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(Math.fround(iscale * Math.fround(x[xo + i]! - min)))));
      if (Laux[i] !== l) changed = true;
      Laux[i] = l;
    }
    if (!changed) continue;
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Laux[i]!;
      const wl = Math.fround(w[i]! * l);
      sumL = Math.fround(sumL + wl);
      sumL2 = Math.fround(sumL2 + Math.fround(wl * l));
      sumXL = Math.fround(sumXL + Math.fround(wl * x[xo + i]!));
    }
    const D = Math.fround(Math.fround(sumW * sumL2) - Math.fround(sumL * sumL));
    if (D > 0) {
      let thisScale = Math.fround(Math.fround(Math.fround(sumW * sumXL) - Math.fround(sumX * sumL)) / D);
      let thisMin = Math.fround(Math.fround(Math.fround(sumL2 * sumX) - Math.fround(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = Math.fround(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = Math.fround(Math.fround(Math.fround(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        diff = useMad ? Math.abs(diff) : Math.fround(diff * diff);
        curError = Math.fround(curError + Math.fround(w[i]! * diff));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  qkx2Min = -min;
  return scale;
}

/** Unpack sub-block t's (scale, min) from the 12-byte packing of Q4_K / Q5_K (ggml-quants.c). */
export function scaleMinK4(b: Uint8Array, o: number, t: number): [number, number] {
  if (t < 4) return [b[o + t]! & 63, b[o + t + 4]! & 63];
  return [
    (b[o + t + 4]! & 0x0f) | ((b[o + t - 4]! >> 6) << 4),
    (b[o + t + 4]! >> 4) | ((b[o + t]! >> 6) << 4),
  ];
}

/** Pack eight 6-bit (scale, min) pairs into 12 bytes at `o` (inverse of scaleMinK4). */
export function packScaleMinK4(b: Uint8Array, o: number, ls: ArrayLike<number>, lm: ArrayLike<number>): void {
  for (let j = 0; j < 12; j++) b[o + j] = 0;
  for (let j = 0; j < 8; j++) {
    const s = ls[j]!;
    const m = lm[j]!;
    if (j < 4) {
      b[o + j] = s;
      b[o + j + 4] = m;
    } else {
      b[o + j + 4] = (s & 0xf) | ((m & 0xf) << 4);
      b[o + j - 4] |= (s >> 4) << 6;
      b[o + j] |= (m >> 4) << 6;
    }
  }
}

const kScratch = {
  w: new Float32Array(32), Laux: new Uint8Array(32), scales: new Float32Array(8), mins: new Float32Array(8),
  ls: new Uint8Array(8), lm: new Uint8Array(8),
};

/**
 * The Q4_K / Q5_K super-block scale step shared by both quantisers: per 32-value sub-block weights
 * av_x + |x| (av_x = rms of the sub-block), make_qkx2_quants, then 6-bit scales/mins relative to the
 * largest, d = max_scale/63, dmin = max_min/63, and the final levels recomputed from the stored scales.
 */
export function quantizeKSuper(
  x: Float32Array, xo: number, dst: Uint8Array, o: number, nmax: number, rmin: number, nstep: number, L: Uint8Array,
): void {
  const { w, Laux, scales, mins, ls, lm } = kScratch;
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) {
      const v = x[xo + 32 * j + l]!;
      sumX2 = Math.fround(sumX2 + Math.fround(v * v));
    }
    const avX = Math.fround(Math.sqrt(Math.fround(sumX2 / 32)));
    for (let l = 0; l < 32; l++) w[l] = Math.fround(avX + Math.abs(x[xo + 32 * j + l]!));
    scales[j] = makeQkx2Quants(32, nmax, x, xo + 32 * j, w, L, 32 * j, Laux, rmin, 0.1, nstep, false);
    mins[j] = qkx2Min;
    if (scales[j]! > maxScale) maxScale = scales[j]!;
    if (mins[j]! > maxMin) maxMin = mins[j]!;
  }
  const invScale = maxScale > 0 ? Math.fround(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? Math.fround(63 / maxMin) : 0;
  for (let j = 0; j < 8; j++) {
    ls[j] = Math.min(63, nearestInt(Math.fround(invScale * scales[j]!)) & 0xff);
    lm[j] = Math.min(63, nearestInt(Math.fround(invMin * mins[j]!)) & 0xff);
  }
  packScaleMinK4(dst, o + 4, ls, lm);
  const d = wrF16(dst, o, Math.fround(maxScale / 63));
  const dmin = wrF16(dst, o + 2, Math.fround(maxMin / 63));
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(dst, o + 4, j);
    const dd = Math.fround(d * sc);
    if (!dd) continue;
    const dm = Math.fround(dmin * m);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(Math.fround(Math.fround(x[xo + 32 * j + ii]! + dm) / dd));
      L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
    }
  }
}
