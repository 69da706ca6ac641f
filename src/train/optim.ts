/**
 * AdamW (Loshchilov & Hutter: decoupled weight decay), global-norm gradient clipping, and a cosine
 * learning-rate schedule with linear warmup.
 */
import type { ParamSet } from './model.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export class AdamW {
  /** First and second moments, one Float32Array per parameter (same order as ParamSet.list). */
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  /** Number of updates applied (bias correction uses it). */
  t = 0;

  constructor(readonly params: ParamSet, readonly opts: AdamWOptions) {
    this.m = params.list.map((p) => new Float32Array(p.data.length));
    this.v = params.list.map((p) => new Float32Array(p.data.length));
  }

  /**
   * One update with learning rate lr. Weight decay applies to matrices only (not norm scales, which
   * are 1-D), the usual choice for transformers.
   */
  step(grads: ParamSet, lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.opts;
    this.t++;
    const bc1 = 1 - Math.pow(beta1, this.t), bc2 = 1 - Math.pow(beta2, this.t);
    const list = this.params.list;
    for (let j = 0; j < list.length; j++) {
      const p = list[j].data, g = grads.list[j].data, m = this.m[j], v = this.v[j];
      const wd = list[j].shape.length > 1 ? weightDecay : 0;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i];
        m[i] = beta1 * m[i] + (1 - beta1) * gi;
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
        const update = m[i] / bc1 / (Math.sqrt(v[i] / bc2) + eps);
        p[i] -= lr * (update + wd * p[i]);
      }
    }
  }
}

/** Scales all gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(grads: ParamSet, maxNorm: number): number {
  let ss = 0;
  for (const p of grads.list) {
    const d = p.data;
    for (let i = 0; i < d.length; i++) ss += d[i] * d[i];
  }
  const norm = Math.sqrt(ss);
  if (maxNorm > 0 && norm > maxNorm) {
    const s = maxNorm / norm;
    for (const p of grads.list) {
      const d = p.data;
      for (let i = 0; i < d.length; i++) d[i] *= s;
    }
  }
  return norm;
}

/**
 * Learning rate at step `step` (0-based): linear warmup from lr/warmup to lr over `warmup` steps, then
 * cosine decay to minLr at `total`.
 */
export function cosineLr(step: number, o: { lr: number; minLr: number; warmup: number; total: number }): number {
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  if (step >= o.total) return o.minLr;
  const frac = (step - o.warmup) / Math.max(1, o.total - o.warmup);
  return o.minLr + 0.5 * (o.lr - o.minLr) * (1 + Math.cos(Math.PI * frac));
}
