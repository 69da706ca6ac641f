/**
 * What every file-format reader produces: named tensors described by where their bytes lie.
 * No maths and no model knowledge here: a reader says "this name, this storage type, this shape,
 * these bytes of that file"; the model loader (src/model/loader.ts) decides what they mean.
 */
import type { BlockType } from '../quant/types.js';

/** Storage type of a tensor's elements: a plain scalar type, or a block-quantised type. */
export type StorageType = BlockType | 'f64' | 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64' | 'bool';

export interface TensorRef {
  /** The name as the file spells it (the loader maps it through a per-format table). */
  readonly name: string;
  readonly type: StorageType;
  /** Row-major shape, outermost first (GGUF's innermost-first dims are reversed into this order). */
  readonly shape: readonly number[];
  /** Absolute path of the file holding the bytes. */
  readonly file: string;
  /** Absolute byte offset of the first byte in `file` (a plain number: exact up to 2^53). */
  readonly offset: number;
  /** Byte length. */
  readonly length: number;
}

/** A second array stored with a tensor, e.g. the bf16 `scales` of the released checkpoint's int8 weights. */
export interface QuantizedRef extends TensorRef {
  readonly scales: TensorRef;
}

/** One opened model file set, as its format describes it. */
export interface ModelSource {
  /** Which reader produced it: 'ckpt-0', 'gguf', 'safetensors'. */
  readonly format: string;
  /** The path the user gave (file or directory). */
  readonly path: string;
  /** Tensors by the format's own names. */
  readonly tensors: ReadonlyMap<string, TensorRef | QuantizedRef>;
  /** Format metadata (GGUF key/values, HF config.json, …), untyped: the config builder validates it. */
  readonly metadata: ReadonlyMap<string, unknown>;
  /** Release file descriptors. */
  close(): void;
}

export function isQuantizedRef(t: TensorRef): t is QuantizedRef {
  return (t as QuantizedRef).scales !== undefined;
}

