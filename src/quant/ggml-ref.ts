/**
 * Shared pieces of the block formats: byte access, float32 emulation, and the scale searches of llama.cpp's
 * reference quantisers (ggml-quants.c: nearest_int, make_qx_quants, make_q3_quants, make_qkx2_quants).
 *
 * Every quantiser here aims to give the same bytes as llama.cpp's `quantize_row_*_ref` (no importance
 * matrix). ggml does its arithmetic in float32, so each float operation below is followed by
 * `fr` (Math.fround): a double operation on float32 inputs rounded once to float32 equals the float32
 * operation (53 ≥ 2·24 + 2), so the emulation is exact as long as the operation order is the same.
 * test/quant-llama.test.ts compares the bytes with llama.cpp's own output.
 */
import { f16ToF32, f32ToF16 } from './half.js';

export const fr = Math.fround;

/** ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is treated as all zeros. */
export const GROUP_MAX_EPS = 1e-15;

/** llama.cpp nearest_int: round half to even via the float32 addition of 1.5·2^23. */
export function nearestInt(v: number): number {
  return fr(v + 12582912) - 12582912;
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
  let iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    let l = nearestInt(fr(iscale * xi));
    l = Math.max(-nmax, Math.min(nmax - 1, l));
    L[lo + i] = l + nmax;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      let l = nearestInt(fr(iscale * xi));
      l = Math.max(-nmax, Math.min(nmax - 1, l));
      const w = fr(xi * xi);
      sumlx = fr(sumlx + fr(fr(w * xi) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) {
        const l = nearestInt(fr(iscale * x[xo + i]!));
        L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
      }
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
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
  const iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    let l = nearestInt(fr(iscale * xi));
    l = Math.max(-nmax, Math.min(nmax - 1, l));
    L[lo + i] = l;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const li = L[lo + i]!;
      const w = fr(xi * xi);
      let slx = fr(sumlx - fr(fr(w * xi) * li));
      if (slx > 0) {
        let sl2 = fr(suml2 - fr(fr(w * li) * li));
        let nl = nearestInt(fr(fr(xi * sl2) / slx));
        nl = Math.max(-nmax, Math.min(nmax - 1, nl));
        if (nl !== li) {
          slx = fr(slx + fr(fr(w * xi) * nl));
          sl2 = fr(sl2 + fr(fr(w * nl) * nl));
          if (sl2 > 0 && fr(fr(slx * slx) * suml2) > fr(fr(sumlx * sumlx) * sl2)) {
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
  return fr(sumlx / suml2);
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
  let sumX = fr(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const wi = w[i]!;
    sumW = fr(sumW + wi);
    sumX = fr(sumX + fr(wi * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    qkx2Min = -min;
    return 0;
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[xo + i]! - min)))));
    L[lo + i] = l;
    let diff = fr(fr(fr(scale * l) + min) - x[xo + i]!);
    diff = useMad ? Math.abs(diff) : fr(diff * diff);
    bestError = fr(bestError + fr(w[i]! * diff));
  }
  if (nstep < 1) {
    qkx2Min = -min;
    return scale;
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(fr(rdelta) * is)) + nmax) / fr(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(xi - min)))));
      Laux[i] = l;
      const wi = w[i]!;
      sumL = fr(sumL + fr(wi * l));
      sumL2 = fr(sumL2 + fr(fr(wi * l) * l));
      sumXL = fr(sumXL + fr(fr(wi * l) * xi));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = fr(fr(fr(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        diff = useMad ? Math.abs(diff) : fr(diff * diff);
        curError = fr(curError + fr(w[i]! * diff));
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

/** Unpack sub-block t's (scale, min) from the 12-byte packing of Q4_K / Q5_K (formats.md §3.5). */
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
      sumX2 = fr(sumX2 + fr(v * v));
    }
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) w[l] = fr(avX + Math.abs(x[xo + 32 * j + l]!));
    scales[j] = makeQkx2Quants(32, nmax, x, xo + 32 * j, w, L, 32 * j, Laux, rmin, 0.1, nstep, false);
    mins[j] = qkx2Min;
    if (scales[j]! > maxScale) maxScale = scales[j]!;
    if (mins[j]! > maxMin) maxMin = mins[j]!;
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  for (let j = 0; j < 8; j++) {
    ls[j] = Math.min(63, nearestInt(fr(invScale * scales[j]!)) & 0xff);
    lm[j] = Math.min(63, nearestInt(fr(invMin * mins[j]!)) & 0xff);
  }
  packScaleMinK4(dst, o + 4, ls, lm);
  const d = wrF16(dst, o, fr(maxScale / 63));
  const dmin = wrF16(dst, o + 2, fr(maxMin / 63));
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(dst, o + 4, j);
    const dd = fr(d * sc);
    if (!dd) continue;
    const dm = fr(dmin * m);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(fr(fr(x[xo + 32 * j + ii]! + dm) / dd));
      L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
    }
  }
}
