/**
 * A weight matrix as the kernels see it. The model only ever asks for y = x·W (x: nIn floats → y: nOut
 * floats); the matrix's layout and type pick the kernel. Two layouts exist:
 *
 * - 'rows': nOut rows of nIn values each, every row a run of blocks of `type` (GGUF, PyTorch [out, in]).
 *   An embedding table [V, D] is a 'rows' matrix with nOut = V, nIn = D (row t = token t).
 * - 'xai8': the released checkpoint's form: int8 q[nIn, nOut] (input-major) and bf16 scales[groups, nOut];
 *   W[k, n] = q[k, n] · scales[floor(k / (nIn / groups)), n]   (xai-org/grok-1 model.py:38 QuantizedWeight8bit,
 *   dequantised by model.py:575 `w.weight * w.scales`).
 *
 * Bytes live wherever the kernels' allocator put them (`Kernels.allocWeight`), never copied twice.
 */
import type { BlockType } from '../quant/types.js';

export interface RowMatrix {
  readonly layout: 'rows';
  readonly type: BlockType;
  readonly nIn: number;
  readonly nOut: number;
  /** nOut × rowBytes(type, nIn) bytes. */
  readonly data: Uint8Array;
}

export interface Xai8Matrix {
  readonly layout: 'xai8';
  readonly nIn: number;
  readonly nOut: number;
  /** Number of scale groups G; nIn % G === 0. */
  readonly groups: number;
  /** nIn × nOut int8, row k holds the nOut weights of input k. */
  readonly q: Int8Array;
  /** groups × nOut bfloat16 bit patterns. */
  readonly scales: Uint16Array;
}

export type Matrix = RowMatrix | Xai8Matrix;

/**
 * A 'rows' matrix kept as the shards a tensor-parallel release saved it in (Grok-2's experts), each used
 * in place: axis 'out' = parts hold consecutive runs of output rows (y is their outputs side by side);
 * 'in' = parts hold consecutive runs of input columns (y = Σ parts[r] applied to its slice of x, in rank order).
 */
export interface SplitMatrix {
  readonly layout: 'split';
  readonly axis: 'out' | 'in';
  readonly nIn: number;
  readonly nOut: number;
  readonly parts: readonly RowMatrix[];
}

/**
 * What the model holds: a matrix the kernels take as is, or one in tensor-parallel shards, which
 * src/kernels/split.ts applies as products of its parts (the kernels' interface stays per matrix).
 */
export type ModelMatrix = Matrix | SplitMatrix;
