/**
 * The one table of Grok-1's tensors: canonical name, what it is, its shape as a function of the config,
 * and its name in every format this runtime reads. The mapping tables (map-ckpt.ts, map-gguf.ts,
 * map-hf.ts), the loader's shape checks, the GGUF writer's plan (gguf-grok.ts) and the trainer's
 * parameters (src/train/model.ts) are all derived from it.
 *
 * Canonical names follow llama.cpp's GGUF names (tinygrad-style): `token_embd`, `output_norm`, `output`
 * (optional untied output), per layer L `blk.L.<name>`, per expert E `blk.L.<name>.E`.
 * Names in the tables: `{L}` = layer number, `{E}` = expert number.
 */
import type { GrokConfig } from './config.js';

export interface TensorDef {
  /** Canonical name (per layer: without `blk.L.`; per expert: the stack's name, without `.E`). */
  readonly name: string;
  /** model: one tensor; layer: one per layer; expert: one matrix per expert of each layer. */
  readonly scope: 'model' | 'layer' | 'expert';
  /** vector: norm scales; matrix: y = x·W with nIn inputs and nOut outputs (the embedding: nOut = V rows). */
  readonly kind: 'vector' | 'matrix';
  /** Only `output`: absent means tied to token_embd. */
  readonly optional?: boolean;
  /**
   * Whether a model of this config has the tensor (default: every model): Grok-2's dense MLP exists only
   * with denseFfnSize > 0; its untied output is required (Grok-1's may be absent: tied).
   */
  presence?(c: GrokConfig): 'required' | 'optional' | 'absent';
  /** token_embd and output: a GGUF stores them with the embedding type (--embd-type). */
  readonly embedding?: boolean;
  /** The router: llama.cpp keeps it F32 whatever type the other matrices take. */
  readonly keepF32?: boolean;
  /** Input and output widths (a vector: n = nIn = nOut). */
  dims(c: GrokConfig): { readonly nIn: number; readonly nOut: number };
  /**
   * llama.cpp's name without `.weight` (experts: the merged stack [E, out, in]), then other spellings
   * seen in GGUF files; `ggufSplit`: the older one-tensor-per-expert stem (`blk.L.ffn_gate.E.weight`).
   */
  readonly gguf: readonly string[];
  readonly ggufSplit?: string;
  /** The released checkpoint's parameter path (a layer's: under `transformer/decoder_layer_L/`). */
  readonly ckpt?: string;
  /**
   * How a tensor-parallel release splits this matrix (Megatron's column/row-parallel linears): 'out' runs
   * of output rows (gate and up), 'in' runs of input columns (down). Grok-2 pre-splits only its experts.
   */
  readonly tpAxis?: 'out' | 'in';
  /** Hugging Face ports, family A (xAI-like names) and B (hpcai-tech names): every spelling, tried in order. */
  readonly hfA: readonly string[];
  readonly hfB: readonly string[];
}

const vec = (c: GrokConfig) => ({ nIn: c.dModel, nOut: c.dModel });
const A = 'transformer.decoder_layer.{L}.';
const B = 'model.layers.{L}.';
/** Derivative HF files name the MoE `block_sparse_moe`, and Mixtral-style w1/w3/w2 (= linear, linear_v, linear_1). */
const experts = (fam: string, own: string, slot: string, mixtral: string) =>
  [`${fam}${own}.{E}.${slot}.weight`, `${fam}block_sparse_moe.experts.{E}.${slot}.weight`, `${fam}block_sparse_moe.experts.{E}.${mixtral}.weight`];
/** hpcai-tech names norms `.scale`; vLLM renames them `.weight`. */
const normB = (n: string) => [`${B}${n}.scale`, `${B}${n}.weight`];

const dense = (c: GrokConfig) => (c.denseFfnSize > 0 ? 'required' as const : 'absent' as const);

export const GROK_TENSORS: readonly TensorDef[] = [
  {
    name: 'token_embd', scope: 'model', kind: 'matrix', embedding: true, dims: (c) => ({ nIn: c.dModel, nOut: c.vocabSize }),
    gguf: ['token_embd'], ckpt: 'language_model/in_out_embed/embeddings',
    hfA: ['transformer.in_out_embed.weight'], hfB: ['model.embed_tokens.weight'],
  },
  {
    name: 'output_norm', scope: 'model', kind: 'vector', dims: vec,
    gguf: ['output_norm'], ckpt: 'language_model/rms_norm/scale',
    hfA: ['transformer.rms_norm.weight'], hfB: ['model.norm.scale', 'model.norm.weight'],
  },
  {
    // Untied output projection: xAI ties Grok-1's to the embedding (keyfan's files store lm_head as a copy); Grok-2 has its own.
    name: 'output', scope: 'model', kind: 'matrix', optional: true, embedding: true, dims: (c) => ({ nIn: c.dModel, nOut: c.vocabSize }),
    presence: (c) => (c.family === 'grok-2' ? 'required' : 'optional'),
    gguf: ['output'], hfA: ['lm_head.weight'], hfB: ['lm_head.weight'],
  },
  {
    name: 'attn_norm', scope: 'layer', kind: 'vector', dims: vec,
    gguf: ['attn_norm'], ckpt: 'rms_norm/scale', hfA: [`${A}rms_norm.weight`], hfB: normB('pre_attn_norm'),
  },
  {
    name: 'attn_q', scope: 'layer', kind: 'matrix', dims: (c) => ({ nIn: c.dModel, nOut: c.nHeads * c.headDim }),
    gguf: ['attn_q'], ckpt: 'multi_head_attention/query/w', hfA: [`${A}multi_head_attention.query.weight`], hfB: [`${B}attn.q_proj.weight`, `${B}self_attn.q_proj.weight`],
  },
  {
    name: 'attn_k', scope: 'layer', kind: 'matrix', dims: (c) => ({ nIn: c.dModel, nOut: c.nKVHeads * c.headDim }),
    gguf: ['attn_k'], ckpt: 'multi_head_attention/key/w', hfA: [`${A}multi_head_attention.key.weight`], hfB: [`${B}attn.k_proj.weight`, `${B}self_attn.k_proj.weight`],
  },
  {
    name: 'attn_v', scope: 'layer', kind: 'matrix', dims: (c) => ({ nIn: c.dModel, nOut: c.nKVHeads * c.headDim }),
    gguf: ['attn_v'], ckpt: 'multi_head_attention/value/w', hfA: [`${A}multi_head_attention.value.weight`], hfB: [`${B}attn.v_proj.weight`, `${B}self_attn.v_proj.weight`],
  },
  {
    name: 'attn_output', scope: 'layer', kind: 'matrix', dims: (c) => ({ nIn: c.nHeads * c.headDim, nOut: c.dModel }),
    gguf: ['attn_output'], ckpt: 'multi_head_attention/linear/w', hfA: [`${A}multi_head_attention.linear.weight`], hfB: [`${B}attn.o_proj.weight`, `${B}self_attn.o_proj.weight`],
  },
  {
    name: 'attn_output_norm', scope: 'layer', kind: 'vector', dims: vec,
    gguf: ['attn_output_norm'], ckpt: 'rms_norm_1/scale', hfA: [`${A}rms_norm_1.weight`], hfB: normB('post_attn_norm'),
  },
  {
    name: 'ffn_norm', scope: 'layer', kind: 'vector', dims: vec,
    gguf: ['ffn_norm'], ckpt: 'rms_norm_2/scale', hfA: [`${A}rms_norm_2.weight`], hfB: normB('pre_moe_norm'),
  },
  {
    // The router: D → E logits.
    name: 'ffn_gate_inp', scope: 'layer', kind: 'matrix', keepF32: true, dims: (c) => ({ nIn: c.dModel, nOut: c.nExperts }),
    gguf: ['ffn_gate_inp'], ckpt: 'router/w',
    hfA: [`${A}router.weight`, `${A}block_sparse_moe.gate.weight`], hfB: [`${B}moe_block.gate.weight`, `${B}block_sparse_moe.gate.weight`],
  },
  {
    // GELU side of each expert (model.py moe/linear).
    name: 'ffn_gate_exps', scope: 'expert', kind: 'matrix', dims: (c) => ({ nIn: c.dModel, nOut: c.ffnSize }),
    gguf: ['ffn_gate_exps'], ggufSplit: 'ffn_gate', ckpt: 'moe/linear/w', tpAxis: 'out',
    hfA: experts(A, 'moe', 'linear', 'w1'), hfB: experts(B, 'moe_block.experts', 'linear', 'w1'),
  },
  {
    // Linear side of each expert (moe/linear_v).
    name: 'ffn_up_exps', scope: 'expert', kind: 'matrix', dims: (c) => ({ nIn: c.dModel, nOut: c.ffnSize }),
    gguf: ['ffn_up_exps'], ggufSplit: 'ffn_up', ckpt: 'moe/linear_v/w', tpAxis: 'out',
    hfA: experts(A, 'moe', 'linear_v', 'w3'), hfB: experts(B, 'moe_block.experts', 'linear_v', 'w3'),
  },
  {
    // Output of each expert (moe/linear_1).
    name: 'ffn_down_exps', scope: 'expert', kind: 'matrix', dims: (c) => ({ nIn: c.ffnSize, nOut: c.dModel }),
    gguf: ['ffn_down_exps'], ggufSplit: 'ffn_down', ckpt: 'moe/linear_1/w', tpAxis: 'in',
    hfA: experts(A, 'moe', 'linear_1', 'w2'), hfB: experts(B, 'moe_block.experts', 'linear_1', 'w2'),
  },
  {
    // Grok-2's dense MLP beside the experts (its release: mlp.gate_proj / up_proj / down_proj; llama.cpp ffn_gate / ffn_up / ffn_down).
    name: 'ffn_gate', scope: 'layer', kind: 'matrix', dims: (c) => ({ nIn: c.dModel, nOut: c.denseFfnSize }), presence: dense,
    gguf: ['ffn_gate'], hfA: [], hfB: [`${B}mlp.gate_proj.weight`],
  },
  {
    name: 'ffn_up', scope: 'layer', kind: 'matrix', dims: (c) => ({ nIn: c.dModel, nOut: c.denseFfnSize }), presence: dense,
    gguf: ['ffn_up'], hfA: [], hfB: [`${B}mlp.up_proj.weight`],
  },
  {
    name: 'ffn_down', scope: 'layer', kind: 'matrix', dims: (c) => ({ nIn: c.denseFfnSize, nOut: c.dModel }), presence: dense,
    gguf: ['ffn_down'], hfA: [], hfB: [`${B}mlp.down_proj.weight`],
  },
  {
    // Newer converters call the post-MoE norm post_ffw_norm; llama.cpp tries layer_output_norm first.
    name: 'layer_output_norm', scope: 'layer', kind: 'vector', dims: vec,
    gguf: ['layer_output_norm', 'post_ffw_norm'], ckpt: 'rms_norm_3/scale', hfA: [`${A}rms_norm_3.weight`], hfB: normB('post_moe_norm'),
  },
];

export const MODEL_TENSORS = GROK_TENSORS.filter((t) => t.scope === 'model');
export const LAYER_TENSORS = GROK_TENSORS.filter((t) => t.scope !== 'model');

/** Whether a model of config c has tensor t (tensorDef.presence; default required). */
export function presence(t: TensorDef, c: GrokConfig): 'required' | 'optional' | 'absent' {
  return t.presence?.(c) ?? (t.optional ? 'optional' : 'required');
}

/** The per-layer and per-expert tensors a model of config c has. */
export function layerTensors(c: GrokConfig): readonly TensorDef[] {
  return LAYER_TENSORS.filter((t) => presence(t, c) !== 'absent');
}

/** The canonical name of a table entry for layer l (and expert e). */
export function canonicalName(t: TensorDef, l = 0, e = 0): string {
  if (t.scope === 'model') return t.name;
  return t.scope === 'layer' ? `blk.${l}.${t.name}` : `blk.${l}.${t.name}.${e}`;
}

/** `{L}` / `{E}` in a table name filled in. */
export function fill(pattern: string, l: number, e = 0): string {
  return pattern.replaceAll('{L}', String(l)).replaceAll('{E}', String(e));
}

/** Every canonical tensor a model of this config has (optional ones excluded). */
export function canonicalTensors(c: GrokConfig): { name: string; def: TensorDef; layer: number; expert: number }[] {
  const out: { name: string; def: TensorDef; layer: number; expert: number }[] = [];
  for (const t of MODEL_TENSORS) if (presence(t, c) === 'required') out.push({ name: t.name, def: t, layer: -1, expert: -1 });
  for (let l = 0; l < c.nLayers; l++) {
    for (const t of layerTensors(c)) {
      for (let e = 0; e < (t.scope === 'expert' ? c.nExperts : 1); e++) out.push({ name: canonicalName(t, l, e), def: t, layer: l, expert: t.scope === 'expert' ? e : -1 });
    }
  }
  return out;
}

export function tensorDef(name: string): TensorDef {
  const t = GROK_TENSORS.find((d) => d.name === name);
  if (!t) throw new Error(`no Grok tensor named '${name}'`);
  return t;
}
