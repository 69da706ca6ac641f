/**
 * Block formats as data. Each format is one module exporting a `BlockFormat` (see index.ts for the
 * registry); the model never branches on a format, the kernels dispatch on `Matrix.type`.
 */

/** ggml type names (lower case) that the runtime knows, plus the plain float types. */
export type BlockType =
  | 'f32' | 'f16' | 'bf16'
  | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1'
  | 'q2_k' | 'q3_k' | 'q4_k' | 'q5_k' | 'q6_k'
  | 'iq4_nl' | 'iq4_xs'
  | 'iq1_s' | 'iq1_m' | 'iq2_xxs' | 'iq2_xs' | 'iq2_s' | 'iq3_xxs' | 'iq3_s';

export interface BlockFormat {
  readonly name: BlockType;
  /** ggml type id (GGUF tensor info `type`). */
  readonly ggmlId: number;
  /** Values per block (1 for plain floats). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly bytesPerBlock: number;
  /**
   * Dequantise `n` values (a multiple of blockSize) whose blocks start at byte `offset` of `src`
   * into `out[outOffset … outOffset + n)`. Reference implementation: plain scalar code.
   */
  dequantize(src: Uint8Array, offset: number, n: number, out: Float32Array, outOffset: number): void;
  /**
   * Reference dot product Σ w[i]·x[xOffset + i] over `n` values of a row whose blocks start at byte
   * `offset`, accumulated in float64 (JS numbers).
   */
  dot(src: Uint8Array, offset: number, x: Float32Array, xOffset: number, n: number): number;
  /** Quantise `n` floats (a multiple of blockSize) into blocks at `dst[offset …]` (absent for formats we only read). */
  quantize?(x: Float32Array, xOffset: number, n: number, dst: Uint8Array, offset: number): void;
}

/** Bytes needed for one row of `n` values. */
export function rowBytes(f: BlockFormat, n: number): number {
  if (n % f.blockSize !== 0) {
    throw new Error(`${f.name}: row length ${n} is not a multiple of the block size ${f.blockSize}`);
  }
  return (n / f.blockSize) * f.bytesPerBlock;
}
