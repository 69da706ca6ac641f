/**
 * The work that src/convert/pool.ts hands to worker threads, as plain functions (run inline when there are no
 * workers, so both paths compute the same bytes): quantise rows of floats — given, generated from a seed, or
 * read in place from shared memory in the source's own form (rows of another block type, or the checkpoint's
 * int8 columns) — into a fresh array or a shared output slot, optionally with importance weights, optionally
 * measuring the error of what was written.
 *
 * Where the native addon loads, quantisation and generation run in C (native/quantize.c: the same bytes as
 * the TypeScript quantisers, ~100× faster); elsewhere (WebAssembly-only machines) in TypeScript.
 */
import { splitmix32 } from '../base/rng.js';
import { NATIVE_DEQUANT_TYPES, TS_ONLY_QUANT_TYPES, nativeDequantizer, nativeGaussFill, nativeQuantizer, nativeWeightedQuantizer, nativeXai8 } from '../kernels/native.js';
import { quantizeRowsWeighted } from '../quant/weighted.js';
import type { Xai8Matrix } from '../quant/matrix.js';
import { blockFormat, rowBytes, type BlockType } from '../quant/index.js';
import { hasRandomBlocks, randomBlocks } from '../quant/random-blocks.js';
import { xai8Rows, xai8RowsToQ8_0 } from '../quant/xai8.js';

// Looked up once per thread (each worker loads the addon for itself).
const quantize = nativeQuantizer();
const fill = nativeGaussFill();
const dequantize = nativeDequantizer();
const xai8 = nativeXai8();
const quantizeWeighted = nativeWeightedQuantizer();

/**
 * Where a job's source rows are: in shared memory that the converter read once (src/convert/slabs.ts) and
 * every worker reads in place, so no bytes are copied or transferred on their way to a worker.
 */
export type SharedSource =
  /** `rows` rows of nIn values as blocks of `type` (a GGUF / safetensors source), at byteOffset. */
  | { kind: 'rows'; type: BlockType; mem: SharedArrayBuffer; byteOffset: number }
  /**
   * The released checkpoint's int8 q [nIn, nOut] and bf16 scales [groups, nOut] (xai8.ts); this job covers
   * outputs (columns) r0 … r0 + rows − 1. Q8_0 then keeps the checkpoint's own levels where exact.
   */
  | { kind: 'xai8'; mem: SharedArrayBuffer; qOffset: number; scalesOffset: number; nOut: number; groups: number; r0: number };

export interface QuantJob {
  type: BlockType;
  nIn: number;
  rows: number;
  /** rows × nIn floats (transferred); absent when `src` or `gauss` gives the values */
  vals?: Float32Array;
  /** generate N(0, sigma²) values from a 32-bit seed (grok synth) */
  gauss?: { seed: number; sigma: number };
  /** the rows in shared memory, in the source's own form: the worker dequantises them */
  src?: SharedSource;
  /** importance weights (nIn floats at float offset `offset` of shared memory): llama-quantize --imatrix (WEIGHTED_TYPES) */
  weights?: { mem: SharedArrayBuffer; offset: number };
  /** write the blocks here (shared memory the caller recycles) instead of into a fresh transferred array */
  dst?: { mem: SharedArrayBuffer; byteOffset: number };
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

/**
 * Quantise rows × nIn floats into `type` blocks (with importance `weights` per column: WEIGHTED_TYPES as
 * llama-quantize --imatrix): natively where the addon loads, else in TypeScript.
 */
export function quantizeRows(type: BlockType, vals: Float32Array, nIn: number, rows: number, out: Uint8Array, weights?: Float32Array): void {
  const native = !TS_ONLY_QUANT_TYPES.has(type);
  if (weights) {
    if (quantizeWeighted && native) quantizeWeighted(type, vals, nIn, rows, out, weights);
    else quantizeRowsWeighted(type, vals, 0, nIn, rows, out, 0, weights);
    return;
  }
  if (quantize && native) {
    quantize(type, vals, nIn, rows, out);
    return;
  }
  const f = blockFormat(type);
  if (!f.quantize) throw new Error(`quantize: ${type} is only written with importance weights (--imatrix)`);
  const rb = rowBytes(f, nIn);
  for (let r = 0; r < rows; r++) f.quantize!(vals, r * nIn, nIn, out, r * rb);
}

/** Values per band of a shared source's rows: 256 KiB of floats, well inside a core's L2. */
const BAND_VALUES = 1 << 16;

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
  const out = job.dst ? new Uint8Array(job.dst.mem, job.dst.byteOffset, job.rows * rb) : uninitialised(job.rows * rb);
  let vals = job.vals;
  let kept = 0;
  const src = job.src;
  const qw = job.weights ? new Float32Array(job.weights.mem, 4 * job.weights.offset, job.nIn) : undefined;
  // A shared source is dequantised and quantised a band of rows at a time, so the floats stay in the
  // core's cache between the two (the whole job's floats would not: ~4 MiB); with `measure` in one piece.
  const band = job.measure ? job.rows : Math.max(1, Math.min(job.rows, Math.floor(BAND_VALUES / job.nIn)));
  if (src?.kind === 'xai8') {
    const m: Xai8Matrix = {
      layout: 'xai8', nIn: job.nIn, nOut: src.nOut, groups: src.groups,
      q: new Int8Array(src.mem, src.qOffset, job.nIn * src.nOut), scales: new Uint16Array(src.mem, src.scalesOffset, src.groups * src.nOut),
    };
    if (job.type === 'q8_0') { // Q8_0 takes no importance weights (llama.cpp ignores them too)
      if (xai8) {
        if (job.measure) vals = scratch(n);
        kept = xai8.q8_0(m, src.r0, job.rows, out, vals);
      } else {
        vals = scratch(n);
        kept = xai8RowsToQ8_0(m, src.r0, job.rows, out, 0, vals);
      }
    } else if (xai8 && !job.measure && !TS_ONLY_QUANT_TYPES.has(job.type)) {
      xai8.quantize(job.type, m, src.r0, job.rows, out, qw); // transposed once, quantised a band at a time
    } else {
      vals = scratch(n);
      if (xai8) xai8.rows(m, src.r0, job.rows, vals);
      else xai8Rows(m, src.r0, job.rows, vals);
      quantizeRows(job.type, vals, job.nIn, job.rows, out, qw);
    }
  } else if (src?.kind === 'rows') {
    const sf = blockFormat(src.type);
    const srb = rowBytes(sf, job.nIn);
    vals = job.measure ? new Float32Array(n) : scratch(band * job.nIn);
    for (let r = 0; r < job.rows; r += band) {
      const k = Math.min(band, job.rows - r);
      const bytes = new Uint8Array(src.mem, src.byteOffset + r * srb, k * srb);
      const v = job.measure ? vals.subarray(r * job.nIn, (r + k) * job.nIn) : vals.subarray(0, k * job.nIn);
      if (dequantize && NATIVE_DEQUANT_TYPES.has(src.type)) dequantize(src.type, bytes, k * job.nIn, v);
      else sf.dequantize(bytes, 0, k * job.nIn, v, 0);
      quantizeRows(job.type, v, job.nIn, k, out.subarray(r * rb, (r + k) * rb), qw);
    }
  } else {
    if (!vals) {
      if (!job.gauss) throw new Error('quant job without values, source rows or generator');
      if (hasRandomBlocks(job.type)) {
        // Types we read but do not write (the i-quants, and IQ3_S): random valid blocks of the same RMS (grok synth).
        out.set(randomBlocks(job.type, n / f.blockSize, splitmix32(job.gauss.seed), job.gauss.sigma));
        return { out, kept, sumSqErr: 0, sumSq: 0, maxErr: 0 };
      }
      vals = scratch(n);
      gaussianFill(vals, job.gauss.seed, job.gauss.sigma);
    }
    if (vals.length < n) throw new Error(`quant job: ${vals.length} values for ${job.rows} rows of ${job.nIn}`);
    quantizeRows(job.type, vals, job.nIn, job.rows, out, qw);
  }
  const res: QuantResult = { out, kept, sumSqErr: 0, sumSq: 0, maxErr: 0 };
  if (job.measure) {
    if (!vals) throw new Error('quant job: measuring needs the source values');
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
