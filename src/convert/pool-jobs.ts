/**
 * The work that src/convert/pool.ts hands to worker threads, as plain functions (run inline when there are no
 * workers, so both paths compute the same bytes): quantise rows of floats, optionally generated from a seed
 * or dequantised from another block type, optionally measuring the error of what was written.
 *
 * Where the native addon loads, quantisation and generation run in C (native/quantize.c: the same bytes as
 * the TypeScript quantisers, ~100× faster); elsewhere (WebAssembly-only machines) in TypeScript.
 */
import { splitmix32 } from '../base/rng.js';
import { NATIVE_DEQUANT_TYPES, nativeDequantizer, nativeGaussFill, nativeQuantizer } from '../kernels/native.js';
import type { Xai8Matrix } from '../quant/matrix.js';
import { blockFormat, rowBytes, type BlockType } from '../quant/index.js';
import { hasRandomBlocks, randomBlocks } from '../quant/random-blocks.js';
import { xai8Rows, xai8RowsToQ8_0 } from '../quant/xai8.js';

// Looked up once per thread (each worker loads the addon for itself).
const quantize = nativeQuantizer();
const fill = nativeGaussFill();
const dequantize = nativeDequantizer();

export interface QuantJob {
  type: BlockType;
  nIn: number;
  rows: number;
  /** rows × nIn floats; absent when `gauss` asks the worker to generate them */
  vals?: Float32Array;
  /** generate N(0, sigma²) values from a 32-bit seed (grok synth) */
  gauss?: { seed: number; sigma: number };
  /** the rows as blocks of another type (a GGUF source), dequantised by the worker */
  raw?: { type: BlockType; bytes: Uint8Array };
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
  const { s, scale } = gaussianSetup(seed, sigma);
  if (fill) fill(out, s, scale);
  else gaussianFillReference(out, s, scale);
}

/** The generator's xorshift128 state and the scale of its sums. */
export function gaussianSetup(seed: number, sigma: number): { s: Uint32Array; scale: number } {
  const mix = splitmix32(seed);
  const s = Uint32Array.of(mix(), mix(), mix(), mix() || 1);
  // sum of four uniforms on 0 … 65535: mean 131070, variance 4·(65536² − 1)/12
  return { s, scale: sigma / Math.sqrt((4 * (65536 * 65536 - 1)) / 12) };
}

/** gaussianFill in TypeScript (the definition; native/quantize.c gn_gauss_fill computes the same floats). */
export function gaussianFillReference(out: Float32Array, s: Uint32Array, scale: number): void {
  let a = s[0]!, b = s[1]!, c = s[2]!, d = s[3]!;
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

/** Quantise rows × nIn floats into `type` blocks: natively where the addon loads, else in TypeScript. */
export function quantizeRows(type: BlockType, vals: Float32Array, nIn: number, rows: number, out: Uint8Array): void {
  if (quantize) {
    quantize(type, vals, nIn, rows, out);
    return;
  }
  const f = blockFormat(type);
  const rb = rowBytes(f, nIn);
  for (let r = 0; r < rows; r++) f.quantize!(vals, r * nIn, nIn, out, r * rb);
}

// The floats of the current job, reused from job to job (never transferred): a fresh 4 MiB array per chunk
// costs a zero fill and its page faults, a tenth of the time of a fast quantiser.
let scratchVals = new Float32Array(0);
function scratch(n: number): Float32Array {
  if (scratchVals.length < n) scratchVals = new Float32Array(n);
  return scratchVals.subarray(0, n);
}

/** A fresh (transferable, not pooled) byte array whose contents are not cleared. */
function uninitialised(bytes: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(bytes);
  return new Uint8Array(b.buffer, b.byteOffset, bytes);
}

export function runQuantJob(job: QuantJob): QuantResult {
  const f = blockFormat(job.type);
  const n = job.rows * job.nIn;
  const rb = rowBytes(f, job.nIn);
  // Every byte of `out` is written (the quantisers fill whole blocks): no need to zero it first.
  const out = job.xai8 ? new Uint8Array(job.rows * rb) : uninitialised(job.rows * rb);
  let vals = job.vals;
  let kept = 0;
  if (job.xai8) {
    const m: Xai8Matrix = { layout: 'xai8', nIn: job.nIn, nOut: job.rows, groups: job.xai8.groups, q: job.xai8.q, scales: job.xai8.scales };
    vals = scratch(n);
    if (job.type === 'q8_0') kept = xai8RowsToQ8_0(m, 0, job.rows, out, 0, vals);
    else xai8Rows(m, 0, job.rows, vals);
  } else if (job.raw) {
    const src = blockFormat(job.raw.type);
    if (job.raw.bytes.length !== job.rows * rowBytes(src, job.nIn)) throw new Error(`quant job: ${job.raw.bytes.length} bytes for ${job.rows} ${job.raw.type} rows of ${job.nIn}`);
    vals = scratch(n);
    if (dequantize && NATIVE_DEQUANT_TYPES.has(job.raw.type)) dequantize(job.raw.type, job.raw.bytes, n, vals);
    else src.dequantize(job.raw.bytes, 0, n, vals, 0);
  } else if (!vals) {
    if (!job.gauss) throw new Error('quant job without values, checkpoint matrix or generator');
    if (hasRandomBlocks(job.type)) {
      // Types we read but do not write (the i-quants): random valid blocks of the same RMS (grok synth).
      out.set(randomBlocks(job.type, n / f.blockSize, splitmix32(job.gauss.seed), job.gauss.sigma));
      return { out, kept, sumSqErr: 0, sumSq: 0, maxErr: 0 };
    }
    vals = scratch(n);
    gaussianFill(vals, job.gauss.seed, job.gauss.sigma);
  }
  if (vals.length < n) throw new Error(`quant job: ${vals.length} values for ${job.rows} rows of ${job.nIn}`);
  if (!(job.xai8 && job.type === 'q8_0')) quantizeRows(job.type, vals, job.nIn, job.rows, out);
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
