/**
 * The kernel interface: the only code that loops over large arrays. The model (src/model/grok.ts) is
 * written against this interface; `reference.ts` is the plain scalar implementation every fast version
 * is tested against.
 *
 * Conventions: activations are row-major Float32Arrays, T rows (tokens) of a given width. Calls are
 * synchronous (worker-thread versions block on Atomics.wait). Buffers passed in may be reused by the
 * caller after the call returns.
 */
import type { Matrix } from '../quant/matrix.js';

export interface Kernels {
  readonly name: string;

  /**
   * Numerics, where the implementation has a choice: 'exact' (float activations, float64 attention
   * scores) or 'fast' (int8 activations, float32 attention). Absent: exact. Picks the default KV type.
   */
  readonly mode?: 'exact' | 'fast';

  /**
   * Optional: resolves when the implementation can run (worker threads started); rejects with the reason
   * when it cannot. The loader awaits it before reading weights, so a broken start is an error, not a hang.
   */
  ready?(): Promise<void>;

  /**
   * Allocate `bytes` bytes for weights where this implementation's kernels read them directly
   * (plain memory, a WebAssembly memory, shared memory for workers…). Zero-filled.
   */
  allocWeight(bytes: number): Uint8Array;

  /**
   * Optional: the bytes [offset, offset + length) of `file` where the kernels can read them in place
   * (a read-only file mapping: nothing copied, pages loaded on first touch). Null when this kernel set
   * does not map (or not this range); the loader then reads into allocWeight memory. Throws a
   * FormatError naming the file when the range lies past its end.
   */
  mapWeight?(file: string, offset: number, length: number): Uint8Array | null;

  /**
   * Optional, with mapWeight: a set of mappings held by one loaded model, so that they can be checked
   * before each use and released when the model is closed (see WeightMaps).
   */
  mapWeights?(): WeightMaps;

  /**
   * Optional, with mapWeight: where the weights of a model of `modelBytes` should live, asked once by the
   * loader before it reads: 'map' (mapWeight, in place) or 'copy' (read into allocWeight memory).
   */
  weightPlacement?(modelBytes: number): 'map' | 'copy';

  /**
   * Optional: reads of weight bytes that proceed while the calling thread computes (the expert cache's
   * way to disk: src/model/expert-cache.ts). Absent: the cache reads synchronously (src/kernels/io.ts).
   */
  readQueue?(threads?: number): ReadQueue;

  /** y[t, 0..nOut) = x[t, 0..nIn) · W for t in [0, T). */
  matmul(w: Matrix, x: Float32Array, T: number, y: Float32Array): void;

  /**
   * As matmul, with float32 activations in every mode: fast mode's int8 rounding is kept away from matmuls
   * whose result decides something discrete (the router's expert choice) or that are too small for it to
   * pay (llama.cpp keeps the router's weights and inputs F32).
   */
  matmulExact(w: Matrix, x: Float32Array, T: number, y: Float32Array): void;

  /**
   * ys[i] = x · ws[i] for matrices that read the same input (q, k, v; an expert's gate and up), all with
   * nIn = x's width: fast mode quantises the input once for all of them. Each ys[i] is bit-identical to
   * matmul(ws[i], x, T, ys[i]).
   */
  matmulMany(ws: readonly Matrix[], x: Float32Array, T: number, ys: readonly Float32Array[]): void;

  /** out[0..nIn) = row r of W as floats (W is a 'rows' matrix: the embedding lookup). */
  getRow(w: Matrix, r: number, out: Float32Array): void;

  /** out[t] = weight ⊙ x[t] / sqrt(mean(x[t]²) + eps), for T rows of width n. `out` may alias `x`. */
  rmsnorm(x: Float32Array, weight: Float32Array, eps: number, T: number, n: number, out: Float32Array): void;

  /**
   * Rotate-half RoPE in place on x = [T, nHeads, headDim] (row stride nHeads·headDim), token t at
   * position positions[t]: out[i] = x[i]cos − x[i+h]sin, out[i+h] = x[i+h]cos + x[i]sin, h = headDim/2,
   * angle = pos · base^(−2i/headDim).
   */
  rope(x: Float32Array, T: number, nHeads: number, headDim: number, positions: Int32Array, base: number): void;

  /**
   * Causal grouped-query attention of T new queries over a KV cache.
   * q: [T, nHeads, headDim]; kCache / vCache: [capacity, nKV, headDim] holding positions 0..pos0+T-1
   * (the T new keys already written at pos0..pos0+T-1) as `kvType` rows (f32 when absent: see KVType);
   * keyMask[p] = 0 masks key p out (pad tokens).
   * Query t (position pos0 + t) sees keys 0..pos0+t. Head j uses KV head floor(j / (nHeads / nKV)).
   * Scores: s = (q·k) · scale, then softcap·tanh(s / softcap) when softcap > 0, then (Grok-2's attention
   * temperature) × log2(p)/log2(temperatureLen) for a query at position p > temperatureLen when
   * temperatureLen > 0; masked → −1e30;
   * softmax; out = Σ w·v → out: [T, nHeads, headDim]. f16 / q8_0 rows are used as the float values they
   * hold (the reference dequantises them first); exact kernels keep float64 scores and softmax, fast
   * ones may compute in float32 (error bound: test/kernel-checks.ts).
   */
  attention(args: AttentionArgs): void;

  /**
   * GELU in place over n values; with `up`, x[i] = gelu(x[i]) · up[i] (the gated FFN's product, each factor
   * rounded to float32 first). `form`: 'tanh' (default; Grok-1) 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))),
   * or 'erf' (Grok-2) the exact x·½(1 + erf(x/√2)).
   */
  gelu(x: Float32Array, n: number, up?: Float32Array, form?: GeluForm): void;
}

/**
 * Element type of a KV cache, as llama.cpp's -ctk/-ctv: float32; IEEE binary16; or GGUF Q8_0 (blocks of 32
 * values with one f16 scale, along each head_dim row; headDim a multiple of 32).
 */
export type KVType = 'f32' | 'f16' | 'q8_0';

export type GeluForm = 'tanh' | 'erf';
export const KV_TYPES: readonly KVType[] = ['f32', 'f16', 'q8_0'];

/** A KV cache's storage for its KVType: Float32Array (f32), Uint16Array of binary16 bits (f16), Uint8Array of Q8_0 blocks. */
export type KVData = Float32Array | Uint16Array | Uint8Array;

export interface AttentionArgs {
  readonly q: Float32Array;
  readonly kCache: KVData;
  readonly vCache: KVData;
  /** How kCache / vCache hold their rows; default 'f32'. */
  readonly kvType?: KVType;
  readonly keyMask: Uint8Array;
  readonly T: number;
  readonly pos0: number;
  readonly nHeads: number;
  readonly nKV: number;
  readonly headDim: number;
  readonly scale: number;
  readonly softcap: number;
  /** Grok-2's attention temperature length L (see Kernels.attention); absent or 0: off. */
  readonly temperatureLen?: number;
  readonly out: Float32Array;
}

/**
 * The mapped files one loaded model reads. A mapping is keyed by the file's identity (device, inode, size,
 * modification time), never by its path alone: a file replaced at the same path (an atomic `mv`) gets a
 * mapping of its own, while models still holding the old one keep reading the old bytes. Mappings are
 * shared between the sets of one kernel set and reference-counted: the file is unmapped when the last set
 * holding it is released.
 */
export interface WeightMaps {
  /** As Kernels.mapWeight; the mapping is held until release(). */
  map(file: string, offset: number, length: number): Uint8Array | null;
  /**
   * Throws a ModelFileChangedError naming the file when a mapped file changed on disk since it was mapped
   * (truncated or rewritten in place: reading it could raise SIGBUS or give wrong numbers). One fstat per
   * file: cheap enough before every forward pass.
   */
  check(): void;
  /** Drop this set's hold (idempotent): mappings no other set holds are unmapped now, not at garbage collection. */
  release(): void;
}

/**
 * Reads of byte ranges of files into memory the kernels compute from, running while the caller computes.
 * A read is a ticket: submit it, compute, wait for it. Every ticket is waited for exactly once.
 */
export interface ReadQueue {
  /**
   * Reads whose offset, length and buffer address are multiples of this bypass the page cache (O_DIRECT)
   * where the file allows it, so the bytes live once, in the caller's buffer; 1 when no read does.
   */
  readonly alignment: number;
  /** `bytes` zero-filled bytes, aligned to `alignment`, where the kernels can read weights and reads can land. */
  alloc(bytes: number): Uint8Array;
  /** A handle for reading `file` (a regular file; opened once). Throws a FormatError naming it. */
  open(file: string): number;
  /** Starts reading dst.length bytes at `offset` of the file into dst; the file ending before `need` bytes is an error. */
  submit(file: number, offset: number, dst: Uint8Array, need: number): number;
  /** Blocks until the read is done; throws a FormatError naming the file and offset when it failed. */
  wait(ticket: number): void;
  /** Whether wait(ticket) would return at once. */
  done(ticket: number): boolean;
  /**
   * Give up a read that is no longer wanted: what is not read yet is skipped. It must still be waited for,
   * and its wait then returns without an error (the buffer holds part of the range, or none of it).
   */
  cancel(ticket: number): void;
  /** Bytes read so far, of them around the page cache, and the seconds the reading threads were busy. */
  totals(): { bytes: number; directBytes: number; busySeconds: number };
  /** Finish what is in flight and close the files (idempotent). */
  close(): void;
}
