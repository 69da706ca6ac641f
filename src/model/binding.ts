/**
 * The bridge between file formats and the model: a per-format mapping table (map-ckpt.ts, map-gguf.ts,
 * map-hf.ts) turns a ModelSource into a ModelBinding, which says for every canonical tensor of the model
 * where its bytes are and how they are laid out. loader.ts then reads them once, shape-checked.
 *
 * Canonical names follow GGUF (tinygrad-style): `token_embd`, `output_norm`, `output` (optional, untied
 * output matrix), and per layer N: `blk.N.attn_norm`, `blk.N.attn_q`, `blk.N.attn_k`, `blk.N.attn_v`,
 * `blk.N.attn_output`, `blk.N.attn_output_norm`, `blk.N.ffn_norm`, `blk.N.ffn_gate_inp` (router),
 * `blk.N.ffn_gate_exps.E`, `blk.N.ffn_up_exps.E`, `blk.N.ffn_down_exps.E` (expert E), `blk.N.layer_output_norm`.
 */
import type { QuantizedRef, TensorRef } from '../formats/tensor-ref.js';
import type { GrokConfig } from './config.js';

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
  | { readonly kind: 'xai8'; readonly ref: QuantizedRef; readonly index?: number };

export interface ModelBinding {
  readonly config: GrokConfig;
  readonly tensors: ReadonlyMap<string, Binding>;
}

export const layerTensorNames = [
  'attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'attn_output_norm',
  'ffn_norm', 'ffn_gate_inp', 'layer_output_norm',
] as const;
export const expertTensorNames = ['ffn_gate_exps', 'ffn_up_exps', 'ffn_down_exps'] as const;
