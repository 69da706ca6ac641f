/**
 * What a grok GGUF holds beyond the generic container (src/formats/gguf-writer.ts): the `general.*` /
 * `grok.*` keys llama.cpp's grok loader reads, the tensor list in llama.cpp's names and layouts, and the
 * `tokenizer.ggml.*` keys. Shared by `grok convert`, `grok synth` and the trainer's export.
 *
 *   const w = new GgufWriter(out);
 *   addGrokMetadata(w, config, { name: 'my-model', fileType: LLAMA_FTYPE.q8_0 });
 *   addVocabulary(w, vocabularyFromModelProto(readModelProto(bytes, file)));   // or syntheticVocabulary(config)
 *   for (const t of grokTensorPlan(config)) w.addTensorInfo(t.name, typeFor(t), t.shape);
 *   await w.writeHeader(); … writeTensorData for each, in plan order … ; await w.close();
 */
import type { GgufWriter } from '../formats/gguf-writer.js';
import { blockFormat } from '../quant/index.js';
import type { BlockType } from '../quant/types.js';
import type { GgufVocabulary } from '../tokenizer/vocabulary.js';
import type { ByteLevelVocabulary } from '../tokenizer/byte-level.js';
import type { GrokConfig } from './config.js';
import { layerTensors, MODEL_TENSORS, presence, type TensorDef } from './tensors.js';

/**
 * llama_ftype of a file that is mostly one type (general.file_type, informational). IQ2_S files are
 * LLAMA_FTYPE_MOSTLY_IQ2_M (29), the mixture whose base type is IQ2_S (28, MOSTLY_IQ2_S, is mostly IQ2_XS).
 */
export const LLAMA_FTYPE: Readonly<Record<BlockType, number>> = {
  f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, q2_k: 10, q3_k: 11, q4_k: 14, q5_k: 16, q6_k: 18,
  iq2_xxs: 19, iq2_xs: 20, iq3_xxs: 23, iq1_s: 24, iq4_nl: 25, iq3_s: 26, iq2_s: 29, iq4_xs: 30, iq1_m: 31, bf16: 32,
};

/**
 * The `general.*` and `grok.*` keys for a config (llama.cpp's grok loader, LLM_ARCH_GROK). Grok-2 adds the
 * keys llama.cpp's Grok-2 converter writes (convert_hf_to_gguf.py GrokModel): feed_forward_length is the
 * dense MLP's width and expert_feed_forward_length the experts', key/value length always, the router and
 * final soft-caps, attention.temperature_length. Its RoPE is written as what the reference runs, plain
 * (rope.scaling.type "none"), not the converter's YaRN keys.
 */
export function addGrokMetadata(w: GgufWriter, c: GrokConfig, opts: { name?: string; fileType?: number; description?: string } = {}): void {
  const grok2 = c.family === 'grok-2';
  w.addMetadata('general.architecture', 'string', 'grok');
  w.addMetadata('general.name', 'string', opts.name ?? (grok2 ? 'grok-2' : 'grok'));
  if (opts.description) w.addMetadata('general.description', 'string', opts.description);
  if (opts.fileType !== undefined) {
    w.addMetadata('general.file_type', 'u32', opts.fileType);
    if (![0, 1, 32].includes(opts.fileType)) w.addMetadata('general.quantization_version', 'u32', 2);
  }
  w.addMetadata('grok.context_length', 'u32', c.contextLength);
  w.addMetadata('grok.embedding_length', 'u32', c.dModel);
  w.addMetadata('grok.block_count', 'u32', c.nLayers);
  w.addMetadata('grok.feed_forward_length', 'u32', grok2 ? c.denseFfnSize : c.ffnSize);
  w.addMetadata('grok.expert_feed_forward_length', 'u32', c.ffnSize);
  w.addMetadata('grok.attention.head_count', 'u32', c.nHeads);
  w.addMetadata('grok.attention.head_count_kv', 'u32', c.nKVHeads);
  // llama.cpp assumes head width = embedding_length / head_count unless told otherwise.
  if (grok2 || c.headDim * c.nHeads !== c.dModel) {
    w.addMetadata('grok.attention.key_length', 'u32', c.headDim);
    w.addMetadata('grok.attention.value_length', 'u32', c.headDim);
  }
  w.addMetadata('grok.expert_count', 'u32', c.nExperts);
  w.addMetadata('grok.expert_used_count', 'u32', c.nExpertsUsed);
  w.addMetadata('grok.rope.dimension_count', 'u32', c.headDim);
  w.addMetadata('grok.attention.layer_norm_rms_epsilon', 'f32', c.rmsNormEps);
  w.addMetadata('grok.rope.freq_base', 'f32', c.ropeBase);
  w.addMetadata('grok.vocab_size', 'u32', c.vocabSize);
  w.addMetadata('grok.embedding_scale', 'f32', c.embeddingMultiplier);
  w.addMetadata('grok.logit_scale', 'f32', c.outputMultiplier);
  w.addMetadata('grok.attention.output_scale', 'f32', c.attnOutputMultiplier);
  w.addMetadata('grok.attn_logit_softcapping', 'f32', c.attnSoftcap);
  if (grok2) {
    w.addMetadata('grok.router_logit_softcapping', 'f32', c.routerSoftcap);
    if (c.finalLogitSoftcap > 0) w.addMetadata('grok.final_logit_softcapping', 'f32', c.finalLogitSoftcap);
    if (c.attnTemperatureLen > 0) w.addMetadata('grok.attention.temperature_length', 'u32', c.attnTemperatureLen);
    w.addMetadata('grok.rope.scaling.type', 'string', 'none');
  }
}

/**
 * A stand-in vocabulary for models that come without a tokenizer (fixtures, synthetic slices): llama.cpp
 * refuses a GGUF without tokenizer keys. Ids of the config's pad/bos/eos tokens become `<pad>` `<s>` `</s>`
 * (CONTROL), the first free id `<unk>` (UNKNOWN); when the vocabulary has room, 256 BYTE pieces `<0x00>` …
 * `<0xFF>` and the piece `▁` follow so that any text can be tokenized (as bytes); every other id is
 * `<tok_N>` (NORMAL, score 0).
 */
export function syntheticVocabulary(c: GrokConfig): GgufVocabulary {
  const V = c.vocabSize;
  const tokens: string[] = new Array<string>(V).fill('');
  const types = new Int32Array(V).fill(1);
  const special = new Map<number, string>();
  special.set(c.padToken, '<pad>');
  special.set(c.bosToken, '<s>');
  special.set(c.eosToken, '</s>');
  let unk = 0;
  while (special.has(unk) && unk < V) unk++;
  if (unk < V) special.set(unk, '<unk>');
  for (const [i, s] of special) {
    tokens[i] = s;
    types[i] = s === '<unk>' ? 2 : 3;
  }
  let next = 0;
  if (V >= special.size + 256 + 1) {
    for (let b = 0; b < 256; b++) {
      while (special.has(next)) next++;
      tokens[next] = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      types[next] = 6;
      next++;
    }
  }
  // `▁` (the escaped space) as a NORMAL piece lets llama.cpp detokenize spaces back to ' '.
  if (next > 0 && next < V) {
    while (next < V && special.has(next)) next++;
    if (next < V) tokens[next] = '\u2581';
  }
  for (let i = 0; i < V; i++) if (tokens[i] === '') tokens[i] = `<tok_${i}>`;
  return {
    tokens, scores: new Float32Array(V), types, bosId: c.bosToken, eosId: c.eosToken, unkId: unk < V ? unk : 0,
    padId: c.padToken, addSpacePrefix: true, removeExtraWhitespaces: false,
  };
}

/**
 * The `tokenizer.ggml.*` keys (ggml docs/gguf.md): a SentencePiece vocabulary (model "llama": pieces, scores,
 * types), or a byte-level BPE (model "gpt2": Grok-2's tiktoken vocabulary as llama.cpp's converter writes it,
 * byte-level tokens, types, merges, pre-tokenizer "grok-2"; no BOS is added).
 */
export function addVocabulary(w: GgufWriter, v: GgufVocabulary | ByteLevelVocabulary): void {
  const n = v.tokens.length;
  const checkIds = (ids: [string, number | null][]) => {
    for (const [k, id] of ids) {
      if (id !== null && !(Number.isInteger(id) && id >= 0 && id < n)) throw new Error(`${w.path}: ${k} token id ${id} is outside the vocabulary (0 … ${n - 1})`);
    }
  };
  if ('merges' in v) {
    if (v.types.length !== n) throw new Error(`${w.path}: vocabulary has ${n} tokens but ${v.types.length} types`);
    checkIds([['bos', v.bosId], ['eos', v.eosId], ['padding', v.padId]]);
    w.addMetadata('tokenizer.ggml.model', 'string', v.model);
    w.addMetadata('tokenizer.ggml.pre', 'string', v.pre);
    w.addMetadata('tokenizer.ggml.tokens', 'string[]', v.tokens);
    w.addMetadata('tokenizer.ggml.token_type', 'i32[]', v.types);
    w.addMetadata('tokenizer.ggml.merges', 'string[]', v.merges);
    if (v.bosId !== null) w.addMetadata('tokenizer.ggml.bos_token_id', 'u32', v.bosId);
    if (v.eosId !== null) w.addMetadata('tokenizer.ggml.eos_token_id', 'u32', v.eosId);
    if (v.padId !== null) w.addMetadata('tokenizer.ggml.padding_token_id', 'u32', v.padId);
    w.addMetadata('tokenizer.ggml.add_bos_token', 'bool', false);
    w.addMetadata('tokenizer.ggml.add_eos_token', 'bool', false);
    return;
  }
  if (v.scores.length !== n || v.types.length !== n) {
    throw new Error(`${w.path}: vocabulary has ${n} tokens but ${v.scores.length} scores and ${v.types.length} types`);
  }
  checkIds([['bos', v.bosId], ['eos', v.eosId], ['unknown', v.unkId], ['padding', v.padId]]);
  w.addMetadata('tokenizer.ggml.model', 'string', 'llama');
  w.addMetadata('tokenizer.ggml.tokens', 'string[]', v.tokens);
  w.addMetadata('tokenizer.ggml.scores', 'f32[]', v.scores);
  w.addMetadata('tokenizer.ggml.token_type', 'i32[]', v.types);
  w.addMetadata('tokenizer.ggml.bos_token_id', 'u32', v.bosId);
  w.addMetadata('tokenizer.ggml.eos_token_id', 'u32', v.eosId);
  w.addMetadata('tokenizer.ggml.unknown_token_id', 'u32', v.unkId);
  if (v.padId !== null) w.addMetadata('tokenizer.ggml.padding_token_id', 'u32', v.padId);
  w.addMetadata('tokenizer.ggml.add_space_prefix', 'bool', v.addSpacePrefix);
  w.addMetadata('tokenizer.ggml.remove_extra_whitespaces', 'bool', v.removeExtraWhitespaces);
}

/** One tensor of a grok GGUF. `canonical` is the ModelBinding name (experts: the stem; add `.E`). */
export interface GrokTensorSpec {
  readonly name: string;
  readonly canonical: string;
  /** vector: F32 norm; router: F32 [E, D]; embedding: token_embd / output; matrix; experts: [E, out, in] */
  readonly kind: 'vector' | 'router' | 'embedding' | 'matrix' | 'experts';
  /** Row-major shape as GgufWriter takes it. */
  readonly shape: readonly number[];
  /** Matrix input / output widths (rows are nOut runs of nIn values); vectors: nIn = nOut = length. */
  readonly nIn: number;
  readonly nOut: number;
}

/**
 * Every tensor of a grok GGUF in llama.cpp's order and layout ([out, in] rows, merged `_exps`), from the
 * tensor table: the tensors a model of config c has (Grok-2: the dense MLP and the untied output too);
 * `output` also: a Grok-1 file's optional untied output.
 */
export function grokTensorPlan(c: GrokConfig, opts: { output?: boolean } = {}): GrokTensorSpec[] {
  const spec = (t: TensorDef, l: number): GrokTensorSpec => {
    const { nIn, nOut } = t.dims(c);
    const name = `${l < 0 ? '' : `blk.${l}.`}${t.gguf[0]}.weight`;
    const canonical = l < 0 ? t.name : `blk.${l}.${t.name}`;
    if (t.kind === 'vector') return { name, canonical, kind: 'vector', shape: [nIn], nIn, nOut };
    if (t.scope === 'expert') return { name, canonical, kind: 'experts', shape: [c.nExperts, nOut, nIn], nIn, nOut };
    return { name, canonical, kind: t.embedding ? 'embedding' : t.keepF32 ? 'router' : 'matrix', shape: [nOut, nIn], nIn, nOut };
  };
  const plan = MODEL_TENSORS.filter((t) => presence(t, c) === 'required' || (presence(t, c) === 'optional' && opts.output)).map((t) => spec(t, -1));
  for (let l = 0; l < c.nLayers; l++) plan.push(...layerTensors(c).map((t) => spec(t, l)));
  return plan;
}

/**
 * The stored type of a matrix with rows of `nIn` values when `wanted` is asked for: `wanted` if the rows
 * fit its blocks, else llama.cpp's fallback for rows that are not a multiple of 256 (llama-quant.cpp
 * tensor_type_fallback in the release node-llama-cpp ships: Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1,
 * Q6_K → Q8_0, the 256-value i-quants IQ1_S … IQ4_XS → IQ4_NL), and F16 when even 32 does not divide the row. test/convert-llama-quantize.test.ts checks
 * the choice, and the bytes, against llama.cpp's own quantiser.
 */
export function blockTypeForRow(wanted: BlockType, nIn: number): BlockType {
  if (nIn % blockFormat(wanted).blockSize === 0) return wanted;
  const fallback: Partial<Record<BlockType, BlockType>> = {
    q2_k: 'q4_0', q3_k: 'q4_0', q4_k: 'q5_0', q5_k: 'q5_1', q6_k: 'q8_0',
    iq1_s: 'iq4_nl', iq1_m: 'iq4_nl', iq2_xxs: 'iq4_nl', iq2_xs: 'iq4_nl', iq2_s: 'iq4_nl', iq3_xxs: 'iq4_nl', iq3_s: 'iq4_nl', iq4_xs: 'iq4_nl',
  };
  const f = fallback[wanted];
  if (f && nIn % blockFormat(f).blockSize === 0) return f;
  return 'f16';
}
