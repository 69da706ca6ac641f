/**
 * The bridge between file formats and the model: a per-format mapping (map-ckpt.ts, map-gguf.ts,
 * map-hf.ts, each driven by the tensor table in tensors.ts) turns a ModelSource into a ModelBinding, which
 * says for every canonical tensor of the model where its bytes are and how they are laid out. weights.ts
 * then locates them, shape-checked against the table, and the loader or the converter reads them once.
 */
import type { QuantizedRef, TensorRef } from '../formats/tensor-ref.js';
import type { GrokConfig } from './config.js';
import { LAYER_TENSORS } from './tensors.js';

export type Binding =
  /** A vector of floats (norm scales): any plain float type, `n` values. */
  | { readonly kind: 'vector'; readonly ref: TensorRef; readonly index?: undefined }
  /**
   * A 'rows' matrix (nOut rows of nIn values, ref's block type). `index` selects one matrix of a stack
   * stored as [count, nOut, nIn] (GGUF merged experts); absent = the whole tensor is one matrix.
   */
  | { readonly kind: 'rows'; readonly ref: TensorRef; readonly index?: number }
  /** A plain float matrix stored [nIn, nOut] (input-major): transposed into 'rows' at load (small tensors: routers). */
  | { readonly kind: 'transpose'; readonly ref: TensorRef; readonly index?: number }
  /** The released checkpoint's int8 weight + bf16 scales, [nIn, nOut] / [G, nOut], or a stack [E, …] with `index`. */
  | { readonly kind: 'xai8'; readonly ref: QuantizedRef; readonly index?: number }
  /**
   * A 'rows' matrix saved for tensor parallelism as R shards, rank order (Grok-2's experts): axis 'out' =
   * each shard holds a run of output rows [nOut/R, nIn]; 'in' = a run of input columns [nOut, nIn/R], the
   * matrix being the sum of the shards' products. `ref` is rank 0's shard (for messages).
   */
  | { readonly kind: 'sharded'; readonly axis: 'out' | 'in'; readonly ref: TensorRef; readonly shards: readonly TensorRef[]; readonly index?: undefined };

export interface ModelBinding {
  readonly config: GrokConfig;
  readonly tensors: ReadonlyMap<string, Binding>;
  /**
   * What a user should know about how the file is read, one sentence each (printed once by the CLI): e.g. a
   * Grok-2 GGUF whose llama.cpp keys (YaRN RoPE) are overridden by the reference's semantics.
   */
  readonly notes?: readonly string[];
}

/** Per-layer and per-expert canonical names (from the tensor table, src/model/tensors.ts). */
export const layerTensorNames: readonly string[] = LAYER_TENSORS.filter((t) => t.scope === 'layer').map((t) => t.name);
export const expertTensorNames: readonly string[] = LAYER_TENSORS.filter((t) => t.scope === 'expert').map((t) => t.name);
