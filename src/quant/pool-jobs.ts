/**
 * The work that src/quant/pool.ts hands to worker threads, as plain functions (run inline when there are no
 * workers, so both paths compute the same bytes): quantise rows of floats, optionally generated from a seed,
 * optionally measuring the error of what was written.
 */
import { splitmix32 } from '../base/rng.js';
import type { Xai8Matrix } from './matrix.js';
import { blockFormat, rowBytes, type BlockType } from './index.js';
import { xai8Rows, xai8RowsToQ8_0 } from './xai8.js';

export interface QuantJob {
  type: BlockType;
  nIn: number;
  rows: number;
  /** rows × nIn floats; absent when `gauss` asks the worker to generate them */
  vals?: Float32Array;
  /** generate N(0, sigma²) values from a 32-bit seed (grok synth) */
  gauss?: { seed: number; sigma: number };
  /**
   * the values as the checkpoint stores them: int8 q [nIn, rows] and bf16 scales [groups, rows] of the
   * `rows` outputs (columns) this chunk covers (xai8.ts); Q8_0 then keeps the checkpoint's own levels
   */
  xai8?: { q: Int8Array; scales: Uint16Array; groups: number };
  /** also return Σ err², Σ x², max |err| of the stored values */
  measure?: boolean;
}

export interface QuantResult {
  out: Uint8Array;
  /** xai8 → q8_0: blocks that kept the checkpoint's scale and levels */
  kept: number;
  sumSqErr: number;
  sumSq: number;
  maxErr: number;
}

/**
 * Approximately N(0, σ²) test weights: each value is the centred sum of four 16-bit uniforms (Irwin–Hall,
 * exact mean and variance, tails cut at ±3.46σ) from xorshift128 seeded by splitmix32 — several times
 * faster than Box–Muller, and these are only stand-in weights (grok synth).
 */
export function gaussianFill(out: Float32Array, seed: number, sigma: number): void {
  const mix = splitmix32(seed);
  let a = mix(), b = mix(), c = mix(), d = mix() || 1;
  // sum of four uniforms on 0 … 65535: mean 131070, variance 4·(65536² − 1)/12
  const scale = sigma / Math.sqrt((4 * (65536 * 65536 - 1)) / 12);
  for (let i = 0; i < out.length; i++) {
    let t = a ^ (a << 11);
    a = b; b = c; c = d;
    d = (d ^ (d >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    const u = d;
    t = a ^ (a << 11);
    a = b; b = c; c = d;
    d = (d ^ (d >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    out[i] = ((u & 0xffff) + (u >>> 16) + (d & 0xffff) + (d >>> 16) - 131070) * scale;
  }
}

export function runQuantJob(job: QuantJob): QuantResult {
  const f = blockFormat(job.type);
  const n = job.rows * job.nIn;
  const rb = rowBytes(f, job.nIn);
  const out = new Uint8Array(job.rows * rb);
  let vals = job.vals;
  let kept = 0;
  if (job.xai8) {
    const m: Xai8Matrix = { layout: 'xai8', nIn: job.nIn, nOut: job.rows, groups: job.xai8.groups, q: job.xai8.q, scales: job.xai8.scales };
    vals = new Float32Array(n);
    if (job.type === 'q8_0') kept = xai8RowsToQ8_0(m, 0, job.rows, out, 0, vals);
    else xai8Rows(m, 0, job.rows, vals);
  } else if (!vals) {
    if (!job.gauss) throw new Error('quant job without values, checkpoint matrix or generator');
    vals = new Float32Array(n);
    gaussianFill(vals, job.gauss.seed, job.gauss.sigma);
  }
  if (vals.length < n) throw new Error(`quant job: ${vals.length} values for ${job.rows} rows of ${job.nIn}`);
  if (!(job.xai8 && job.type === 'q8_0')) {
    for (let r = 0; r < job.rows; r++) f.quantize!(vals, r * job.nIn, job.nIn, out, r * rb);
  }
  const res: QuantResult = { out, kept, sumSqErr: 0, sumSq: 0, maxErr: 0 };
  if (job.measure) {
    const back = new Float32Array(n);
    f.dequantize(out, 0, n, back, 0);
    for (let i = 0; i < n; i++) {
      const e = back[i]! - vals[i]!;
      res.sumSqErr += e * e;
      res.sumSq += vals[i]! * vals[i]!;
      res.maxErr = Math.max(res.maxErr, Math.abs(e));
    }
  }
  return res;
}
