/**
 * The trainer's blocks, each a forward that records what its backward needs (its tape) with the backward
 * right beside it. GrokTrainer (model.ts) composes them:
 *
 *   h  = embedding(tokens)                                  embedding.forward / .backward
 *   per layer:
 *     h1 = h  + N1(attention(N0(h)))                        rmsNorm, attention
 *     h2 = h1 + N3(experts(N2(h1), router(N2(h1))))          rmsNorm, router, experts
 *   logits = output(h) = N_final(h) · Eᵀ · outputMultiplier  output (the embedding, tied)
 *   loss   = crossEntropy(logits, targets)
 *
 * Conventions: a forward returns its result `y` and its `tape`; a backward takes the gradient of `y`,
 * adds the gradients of its weights into the caller's arrays (which the caller zeroes once per step),
 * and returns the gradient of its input as a fresh array — or, where the caller passes `dx`, adds it
 * there (residual joins, and the router and experts that share N2's output). The order of those
 * additions is part of the numerics: the tests require bit-identical losses and resumes.
 *
 * Dimensions (Dims): B sequences of T tokens, N = B·T rows; D model width, H query heads, G KV heads,
 * K head width, E experts, A experts per token, F expert width, V vocabulary.
 */
import { matmulDyTX, matmulDyW, matmulXWt } from './gemm.js';
import { attentionBackwardMM, attentionForwardMM } from './attention.js';
import {
  type Arr, type AttnShape, type DType, alloc, geluGradFromTanh, geluTanh, rmsnormBackward, rmsnormForward, ropeApply,
} from './ops.js';

export interface Dims {
  dt: DType;
  B: number; T: number; N: number;
  D: number; H: number; G: number; K: number;
  E: number; A: number; F: number; V: number;
}

// ---------------------------------------------------------------------------------------------------
// Embedding: h = E[tokens] · multiplier.

export const embedding = {
  /** h [N, D]; the backward needs only the tokens (the caller keeps them). */
  forward(d: Dims, emb: Arr, tokens: ArrayLike<number>, mult: number): Arr {
    const { N, D } = d;
    const h = alloc(d.dt, N * D);
    for (let t = 0; t < N; t++) {
      const src = tokens[t] * D;
      for (let i = 0; i < D; i++) h[t * D + i] = emb[src + i] * mult;
    }
    return h;
  },

  /** gEmb[tokens[t]] += mult · dh[t]. */
  backward(d: Dims, dh: Arr, tokens: ArrayLike<number>, mult: number, gEmb: Arr): void {
    const { N, D } = d;
    for (let t = 0; t < N; t++) {
      const dst = tokens[t] * D;
      for (let i = 0; i < D; i++) gEmb[dst + i] += mult * dh[t * D + i];
    }
  },
};

// ---------------------------------------------------------------------------------------------------
// RMSNorm over rows of D: y = w ⊙ x / sqrt(mean(x²) + eps) (ops.ts has the arithmetic).

export interface NormTape { x: Arr; rstd: Arr }

export const rmsNorm = {
  forward(d: Dims, x: Arr, w: Arr, eps: number): { y: Arr; tape: NormTape } {
    const rstd = alloc(d.dt, d.N), y = alloc(d.dt, d.N * d.D);
    rmsnormForward(y, rstd, x, w, d.N, d.D, eps);
    return { y, tape: { x, rstd } };
  },

  /** dx += ∂/∂x (dx is the caller's: a residual stream or a fresh array); gw += ∂/∂w. */
  backward(d: Dims, dy: Arr, t: NormTape, w: Arr, dx: Arr, gw: Arr): void {
    rmsnormBackward(dx, gw, dy, t.x, w, t.rstd, d.N, d.D);
  },
};

// ---------------------------------------------------------------------------------------------------
// Attention: q, k, v projections, rotate-half RoPE, causal GQA with soft-capped logits and pad keys
// masked (attention.ts), output projection.

export interface AttnWeights { q: Arr; k: Arr; v: Arr; o: Arr }

export interface AttnContext {
  shape: AttnShape;
  /** Position of each of the N rows (t mod T). */
  pos: Int32Array;
  /** 0 for keys holding the pad token. */
  keyMask: Uint8Array;
  rope: { cos: Float64Array; sin: Float64Array };
}

export interface AttnTape { x: Arr; q: Arr; k: Arr; v: Arr; p: Arr; th: Arr; ao: Arr }

export const attention = {
  forward(d: Dims, x: Arr, w: AttnWeights, c: AttnContext): { y: Arr; tape: AttnTape } {
    const { dt, B, T, N, D, H, G, K } = d;
    const HK = H * K, GK = G * K;
    const q = alloc(dt, N * HK), k = alloc(dt, N * GK), v = alloc(dt, N * GK);
    matmulXWt(q, x, w.q, N, D, HK);
    matmulXWt(k, x, w.k, N, D, GK);
    matmulXWt(v, x, w.v, N, D, GK);
    ropeApply(q, N, H, K, c.pos, c.rope.cos, c.rope.sin, 1);
    ropeApply(k, N, G, K, c.pos, c.rope.cos, c.rope.sin, 1);
    // Scores · multiplier, soft-capped, causal + pad-key mask, softmax, weighted sum of values.
    const p = alloc(dt, B * H * T * T), th = alloc(dt, B * H * T * T), ao = alloc(dt, N * HK);
    attentionForwardMM(ao, p, th, q, k, v, c.keyMask, c.shape);
    const y = alloc(dt, N * D);
    matmulXWt(y, ao, w.o, N, HK, D);
    return { y, tape: { x, q, k, v, p, th, ao } };
  },

  /** Returns dx (fresh); adds into g the gradients of w. */
  backward(d: Dims, dy: Arr, t: AttnTape, w: AttnWeights, c: AttnContext, g: AttnWeights): Arr {
    const { dt, N, D, H, G, K } = d;
    const HK = H * K, GK = G * K;
    const dao = alloc(dt, N * HK);
    matmulDyW(dao, dy, w.o, N, HK, D);
    matmulDyTX(g.o, dy, t.ao, N, HK, D);
    const dq = alloc(dt, N * HK), dk = alloc(dt, N * GK), dv = alloc(dt, N * GK);
    attentionBackwardMM(dq, dk, dv, dao, t.p, t.th, t.q, t.k, t.v, c.shape);
    ropeApply(dq, N, H, K, c.pos, c.rope.cos, c.rope.sin, -1);
    ropeApply(dk, N, G, K, c.pos, c.rope.cos, c.rope.sin, -1);
    const dx = alloc(dt, N * D);
    matmulDyW(dx, dq, w.q, N, D, HK);
    matmulDyW(dx, dk, w.k, N, D, GK);
    matmulDyW(dx, dv, w.v, N, D, GK);
    matmulDyTX(g.q, dq, t.x, N, D, HK);
    matmulDyTX(g.k, dk, t.x, N, D, GK);
    matmulDyTX(g.v, dv, t.x, N, D, GK);
    return dx;
  },
};

// ---------------------------------------------------------------------------------------------------
// Router: softmax over the experts, top-A by probability; the gates are the probabilities themselves
// (not renormalised). Optional Switch-Transformer load-balancing loss auxCoef·E·Σ_e f_e·P̄_e.

export interface RouterTape {
  x: Arr;
  /** Softmax probabilities [N, E]. */
  probs: Arr;
  /** Chosen experts [N, A], in order of probability. */
  sel: Int32Array;
  /** The rows routed to each expert, in row order. */
  rows: Int32Array[];
  /** auxCoef · E · Σ_e f_e·P̄_e (0 when auxCoef is 0). */
  aux: number;
  /** f_e, each expert's share of the N·A assignments (only with auxCoef > 0). */
  f: Float64Array | null;
}

export const router = {
  forward(d: Dims, x: Arr, w: Arr, auxCoef: number): RouterTape {
    const { N, D, E, A } = d;
    const probs = alloc(d.dt, N * E);
    matmulXWt(probs, x, w, N, D, E);
    const sel = new Int32Array(N * A);
    const rowsPer: number[][] = Array.from({ length: E }, () => []);
    for (let t = 0; t < N; t++) {
      const o = t * E;
      let mx = -Infinity;
      for (let e = 0; e < E; e++) if (probs[o + e] > mx) mx = probs[o + e];
      let sum = 0;
      for (let e = 0; e < E; e++) { probs[o + e] = Math.exp(probs[o + e] - mx); sum += probs[o + e]; }
      for (let e = 0; e < E; e++) probs[o + e] /= sum;
      // Top-A by probability; ties go to the lower expert index.
      for (let j = 0; j < A; j++) {
        let best = -1;
        for (let e = 0; e < E; e++) {
          let taken = false;
          for (let jj = 0; jj < j; jj++) if (sel[t * A + jj] === e) taken = true;
          if (taken) continue;
          if (best < 0 || probs[o + e] > probs[o + best]) best = e;
        }
        sel[t * A + j] = best;
        rowsPer[best].push(t);
      }
    }
    let aux = 0;
    let f: Float64Array | null = null;
    if (auxCoef > 0) {
      // f_e = share of the N·A assignments, P̄_e = mean probability.
      f = new Float64Array(E);
      let s = 0;
      for (let e = 0; e < E; e++) {
        f[e] = rowsPer[e].length / (N * A);
        let pm = 0;
        for (let t = 0; t < N; t++) pm += probs[t * E + e];
        s += f[e] * (pm / N);
      }
      aux = auxCoef * E * s;
    }
    return { x, probs, sel, rows: rowsPer.map((r) => Int32Array.from(r)), aux, f };
  },

  /**
   * dprobs: the gradient of the probabilities (from the experts' gates; the aux loss's share is added here,
   * in place). Adds the input's gradient into dx and the weights' into g.
   */
  backward(d: Dims, dprobs: Arr, t: RouterTape, w: Arr, auxCoef: number, dx: Arr, g: Arr): void {
    const { N, D, E } = d;
    if (auxCoef > 0) {
      const f = t.f!;
      for (let r = 0; r < N; r++) for (let e = 0; e < E; e++) dprobs[r * E + e] += (auxCoef * E * f[e]) / N;
    }
    // Softmax backward to router logits: dr = P ⊙ (dP − Σ P·dP).
    const dr = alloc(d.dt, N * E);
    for (let r = 0; r < N; r++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += t.probs[r * E + e] * dprobs[r * E + e];
      for (let e = 0; e < E; e++) dr[r * E + e] = t.probs[r * E + e] * (dprobs[r * E + e] - s);
    }
    matmulDyTX(g, dr, t.x, N, D, E);
    matmulDyW(dx, dr, w, N, D, E);
  },
};

// ---------------------------------------------------------------------------------------------------
// Experts: y[t] = Σ_{e chosen for t} probs[t, e] · (gelu_tanh(x·Wgᵀ) ⊙ x·Wuᵀ)·Wdᵀ, each expert on the
// rows routed to it.

/** Stacked expert matrices: gate and up [E, F, D], down [E, D, F]. */
export interface ExpertWeights { gate: Arr; up: Arr; down: Arr }

export interface ExpertTape { rows: Int32Array; x: Arr; g: Arr; gt: Arr; u: Arr; act: Arr; y: Arr }

export const experts = {
  forward(d: Dims, x: Arr, r: RouterTape, w: ExpertWeights): { y: Arr; tape: ExpertTape[] } {
    const { dt, N, D, E, F } = d;
    const m = alloc(dt, N * D);
    const tape: ExpertTape[] = [];
    for (let e = 0; e < E; e++) {
      const rows = r.rows[e];
      const ne = rows.length;
      const xe = alloc(dt, ne * D), g = alloc(dt, ne * F), gt = alloc(dt, ne * F), u = alloc(dt, ne * F), act = alloc(dt, ne * F), y = alloc(dt, ne * D);
      if (ne > 0) {
        for (let j = 0; j < ne; j++) xe.set(x.subarray(rows[j] * D, rows[j] * D + D), j * D);
        matmulXWt(g, xe, w.gate.subarray(e * F * D, (e + 1) * F * D), ne, D, F);
        matmulXWt(u, xe, w.up.subarray(e * F * D, (e + 1) * F * D), ne, D, F);
        for (let i = 0; i < ne * F; i++) {
          const tv = geluTanh(g[i]);
          gt[i] = tv;
          act[i] = 0.5 * g[i] * (1 + tv) * u[i];
        }
        matmulXWt(y, act, w.down.subarray(e * D * F, (e + 1) * D * F), ne, F, D);
        for (let j = 0; j < ne; j++) {
          const t = rows[j], gate = r.probs[t * E + e];
          for (let i = 0; i < D; i++) m[t * D + i] += gate * y[j * D + i];
        }
      }
      tape.push({ rows, x: xe, g, gt, u, act, y });
    }
    return { y: m, tape };
  },

  /**
   * Adds the input's gradient into dx and the weights' into gw; returns the gradient of the router's
   * probabilities through the gates (fresh, [N, E]).
   */
  backward(d: Dims, dy: Arr, tape: ExpertTape[], r: RouterTape, w: ExpertWeights, dx: Arr, gw: ExpertWeights): Arr {
    const { dt, N, D, E, F } = d;
    const dprobs = alloc(dt, N * E);
    for (let e = 0; e < E; e++) {
      const ex = tape[e];
      const ne = ex.rows.length;
      if (ne === 0) continue;
      const dye = alloc(dt, ne * D);
      for (let j = 0; j < ne; j++) {
        const t = ex.rows[j], gate = r.probs[t * E + e];
        let dg = 0;
        for (let i = 0; i < D; i++) {
          dye[j * D + i] = gate * dy[t * D + i];
          dg += dy[t * D + i] * ex.y[j * D + i];
        }
        dprobs[t * E + e] += dg;
      }
      const wd = w.down.subarray(e * D * F, (e + 1) * D * F);
      const dact = alloc(dt, ne * F);
      matmulDyW(dact, dye, wd, ne, F, D);
      matmulDyTX(gw.down.subarray(e * D * F, (e + 1) * D * F), dye, ex.act, ne, F, D);
      const dgt = alloc(dt, ne * F), dup = alloc(dt, ne * F);
      for (let i = 0; i < ne * F; i++) {
        dgt[i] = dact[i] * ex.u[i] * geluGradFromTanh(ex.g[i], ex.gt[i]);
        dup[i] = dact[i] * 0.5 * ex.g[i] * (1 + ex.gt[i]);
      }
      const wg = w.gate.subarray(e * F * D, (e + 1) * F * D), wu = w.up.subarray(e * F * D, (e + 1) * F * D);
      matmulDyTX(gw.gate.subarray(e * F * D, (e + 1) * F * D), dgt, ex.x, ne, D, F);
      matmulDyTX(gw.up.subarray(e * F * D, (e + 1) * F * D), dup, ex.x, ne, D, F);
      const dxe = alloc(dt, ne * D);
      matmulDyW(dxe, dgt, wg, ne, D, F);
      matmulDyW(dxe, dup, wu, ne, D, F);
      for (let j = 0; j < ne; j++) {
        const t = ex.rows[j];
        for (let i = 0; i < D; i++) dx[t * D + i] += dxe[j * D + i];
      }
    }
    return dprobs;
  },
};

// ---------------------------------------------------------------------------------------------------
// Output: final RMSNorm, tied projection onto the embedding, multiplier.

export interface OutputTape { norm: NormTape; nf: Arr }

export const output = {
  forward(d: Dims, h: Arr, wNorm: Arr, emb: Arr, eps: number, mult: number): { y: Arr; tape: OutputTape } {
    const { N, D, V } = d;
    const { y: nf, tape: norm } = rmsNorm.forward(d, h, wNorm, eps);
    const logits = alloc(d.dt, N * V);
    matmulXWt(logits, nf, emb, N, D, V);
    for (let i = 0; i < N * V; i++) logits[i] *= mult;
    return { y: logits, tape: { norm, nf } };
  },

  /** dlogits is scaled in place by the multiplier. Returns dh (fresh); adds into gNorm and gEmb. */
  backward(d: Dims, dlogits: Arr, t: OutputTape, wNorm: Arr, emb: Arr, mult: number, gNorm: Arr, gEmb: Arr): Arr {
    const { dt, N, D, V } = d;
    for (let i = 0; i < N * V; i++) dlogits[i] *= mult;
    const dnf = alloc(dt, N * D);
    matmulDyW(dnf, dlogits, emb, N, D, V);
    matmulDyTX(gEmb, dlogits, t.nf, N, D, V);
    const dh = alloc(dt, N * D);
    rmsNorm.backward(d, dnf, t.norm, wNorm, dh, gNorm);
    return dh;
  },
};

// ---------------------------------------------------------------------------------------------------
// Loss.

/**
 * Mean cross-entropy (nats per counted position) of logits [N, V] against targets, positions with
 * lossMask 0 excluded; forward and backward at once: `logits` is overwritten with ∂loss/∂logits
 * ((softmax − one-hot) / count; rows outside the mask 0).
 */
export function crossEntropy(d: Dims, logits: Arr, targets: ArrayLike<number>, lossMask?: ArrayLike<number>): number {
  const { N, V } = d;
  if (targets.length !== N) throw new Error(`expected ${N} targets, got ${targets.length}`);
  let count = 0;
  for (let t = 0; t < N; t++) if (!lossMask || lossMask[t]) count++;
  let loss = 0;
  const dlog = logits;
  for (let t = 0; t < N; t++) {
    const o = t * V;
    if (lossMask && !lossMask[t]) { dlog.fill(0, o, o + V); continue; }
    const y = targets[t];
    if (!Number.isInteger(y) || y < 0 || y >= V) throw new Error(`target ${y} at ${t} is outside the vocabulary [0, ${V})`);
    let mx = -Infinity;
    for (let i = 0; i < V; i++) if (logits[o + i] > mx) mx = logits[o + i];
    const ly = logits[o + y];
    let sum = 0;
    for (let i = 0; i < V; i++) {
      const e = Math.exp(logits[o + i] - mx);
      dlog[o + i] = e;
      sum += e;
    }
    loss += Math.log(sum) + mx - ly;
    const scale = 1 / (sum * count);
    for (let i = 0; i < V; i++) dlog[o + i] *= scale;
    dlog[o + y] -= 1 / count;
  }
  return loss / count;
}
