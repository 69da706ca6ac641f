/**
 * Causal GQA attention as matrix products per (sequence, head), so that the work runs in the SIMD
 * matmuls of gemm.ts. Same results as attentionForward/attentionBackward in ops.ts (the direct loops,
 * kept as the reference). Per head: S = Q·Kᵀ·mult, C = cap·tanh(S/cap), P = softmax over keys u ≤ t
 * that are not masked, O = P·V.
 */
import type { Arr, AttnShape } from './ops.js';
import { matmulXWt, matmulDyW, matmulDyTX } from './gemm.js';

function like(a: Arr, n: number): Arr {
  return a instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
}

/** Copies head h's [T, K] block of rows [b·T, b·T+T) out of a [B·T, heads·K] matrix. */
function gather(dst: Arr, src: Arr, b: number, h: number, T: number, heads: number, K: number): void {
  for (let t = 0; t < T; t++) {
    const s = ((b * T + t) * heads + h) * K;
    for (let i = 0; i < K; i++) dst[t * K + i] = src[s + i];
  }
}

/** Adds a [T, K] block back into head h's columns. */
function scatterAdd(dst: Arr, src: Arr, b: number, h: number, T: number, heads: number, K: number): void {
  for (let t = 0; t < T; t++) {
    const d = ((b * T + t) * heads + h) * K;
    for (let i = 0; i < K; i++) dst[d + i] += src[t * K + i];
  }
}

/** As ops.attentionForward: writes p, th [B, H, T, T] and ao [B·T, H·K]. */
export function attentionForwardMM(ao: Arr, p: Arr, th: Arr, q: Arr, k: Arr, v: Arr, keyMask: Uint8Array, s: AttnShape): void {
  const { B, T, H, G, K, mult, cap } = s;
  const rep = H / G;
  const qh = like(q, T * K), kh = like(q, T * K), vh = like(q, T * K), oh = like(q, T * K), sc = like(q, T * T);
  ao.fill(0);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < G; g++) {
      gather(kh, k, b, g, T, G, K);
      gather(vh, v, b, g, T, G, K);
      for (let h = g * rep; h < (g + 1) * rep; h++) {
        gather(qh, q, b, h, T, H, K);
        matmulXWt(sc, qh, kh, T, K, T);
        const base = (b * H + h) * T * T;
        for (let t = 0; t < T; t++) {
          const r = t * T;
          let mx = -Infinity;
          for (let u = 0; u <= t; u++) {
            if (keyMask[b * T + u] === 0) continue;
            let x = sc[r + u] * mult;
            if (cap > 0) {
              const tv = Math.tanh(x / cap);
              th[base + r + u] = tv;
              x = cap * tv;
            }
            sc[r + u] = x;
            if (x > mx) mx = x;
          }
          let sum = 0;
          for (let u = 0; u < T; u++) {
            const e = u <= t && keyMask[b * T + u] !== 0 ? Math.exp(sc[r + u] - mx) : 0;
            sc[r + u] = e;
            sum += e;
          }
          // A query whose keys are all masked has nothing to attend to: its output stays 0.
          const inv = sum > 0 ? 1 / sum : 0;
          for (let u = 0; u < T; u++) {
            const w = sc[r + u] * inv;
            sc[r + u] = w;
            p[base + r + u] = w;
          }
        }
        oh.fill(0);
        matmulDyW(oh, sc, vh, T, K, T);
        scatterAdd(ao, oh, b, h, T, H, K);
      }
    }
  }
}

/** As ops.attentionBackward: accumulates dq, dk, dv from dao. */
export function attentionBackwardMM(dq: Arr, dk: Arr, dv: Arr, dao: Arr, p: Arr, th: Arr, q: Arr, k: Arr, v: Arr, s: AttnShape): void {
  const { B, T, H, G, K, mult, cap } = s;
  const rep = H / G;
  const qh = like(q, T * K), kh = like(q, T * K), vh = like(q, T * K), doh = like(q, T * K);
  const dqh = like(q, T * K), dkh = like(q, T * K), dvh = like(q, T * K);
  const ph = like(q, T * T), dp = like(q, T * T);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < G; g++) {
      gather(kh, k, b, g, T, G, K);
      gather(vh, v, b, g, T, G, K);
      dkh.fill(0);
      dvh.fill(0);
      for (let h = g * rep; h < (g + 1) * rep; h++) {
        gather(qh, q, b, h, T, H, K);
        gather(doh, dao, b, h, T, H, K);
        const base = (b * H + h) * T * T;
        for (let i = 0; i < T * T; i++) ph[i] = p[base + i];
        // dP = dO·Vᵀ; dV += Pᵀ·dO.
        matmulXWt(dp, doh, vh, T, K, T);
        matmulDyTX(dvh, ph, doh, T, K, T);
        // Softmax, cap and multiplier backward: dS = mult·(1 − tanh²)·P·(dP − Σ P·dP).
        for (let t = 0; t < T; t++) {
          const r = t * T;
          let sum = 0;
          for (let u = 0; u <= t; u++) sum += ph[r + u] * dp[r + u];
          for (let u = 0; u < T; u++) {
            const w = ph[r + u];
            if (w === 0) { dp[r + u] = 0; continue; }
            let ds = w * (dp[r + u] - sum);
            if (cap > 0) { const tv = th[base + r + u]; ds *= 1 - tv * tv; }
            dp[r + u] = ds * mult;
          }
        }
        // dQ = dS·K; dK += dSᵀ·Q.
        dqh.fill(0);
        matmulDyW(dqh, dp, kh, T, K, T);
        matmulDyTX(dkh, dp, qh, T, K, T);
        scatterAdd(dq, dqh, b, h, T, H, K);
      }
      scatterAdd(dk, dkh, b, g, T, G, K);
      scatterAdd(dv, dvh, b, g, T, G, K);
    }
  }
}
