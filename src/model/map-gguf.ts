/**
 * GGUF (llama.cpp's `grok` architecture, LLM_ARCH_GROK) → ModelBinding, and the tokenizer tables.
 *
 * GGUF tensor names are already the canonical names plus `.weight`; what this table adds is the config
 * from `grok.*` keys with llama.cpp's defaults, the merged-expert stacks (one [E, nOut, nIn] tensor per
 * kind, bound per expert with `index`), and the variants older converters wrote: per-expert 2-D tensors
 * and `post_ffw_norm` for the post-MoE norm (what llama.cpp's Grok-2 converter writes).
 *
 * Grok-1 and Grok-2 share the architecture; a file is Grok-2 when it has Grok-2's parts (grok2Signs): its
 * dense MLP (ffn_gate/ffn_up/ffn_down, width grok.feed_forward_length, the experts' width
 * grok.expert_feed_forward_length), final-logit soft-cap, attention temperature length, pre-tokenizer; its
 * untied output.weight is required. It is run with the reference's semantics whatever llama.cpp makes of it,
 * and says so in one note.
 */
import { renderValue } from '../base/render.js';
import { ConfigError, FormatError } from '../base/errors.js';
import type { GgufValue } from '../formats/gguf.js';
import { type ModelSource, type TensorRef } from '../formats/tensor-ref.js';
import type { Binding, ModelBinding } from './binding.js';
import { GROK1, GROK1_FEATURES, readConfigFile, validateConfig, type GrokConfig } from './config.js';
import { layerTensors, presence, tensorDef } from './tensors.js';
import type { GgufVocabulary } from '../tokenizer/vocabulary.js';
import type { ByteLevelVocabulary } from '../tokenizer/byte-level.js';

function meta(source: ModelSource, key: string): GgufValue | undefined {
  return source.metadata.get(key) as GgufValue | undefined;
}

function cfgError(source: ModelSource, msg: string): never {
  throw new ConfigError(source.path, msg);
}

function numberMeta(source: ModelSource, key: string, opts: { integer: boolean; fallback?: number }): number {
  const v = meta(source, key);
  if (v === undefined) {
    if (opts.fallback === undefined) cfgError(source, `GGUF metadata key '${key}' is missing`);
    return opts.fallback;
  }
  if (typeof v !== 'number' || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v))) {
    cfgError(source, `GGUF metadata '${key}' must be ${opts.integer ? 'an integer' : 'a number'}, got ${renderValue(v)}`);
  }
  return v;
}

/** head_count may be one integer or an array per layer (llama.cpp LLM_ARCH_GROK); Grok-1 needs one value for all layers. */
function uniformInt(source: ModelSource, key: string, fallback?: number): number {
  const v = meta(source, key);
  if (v !== undefined && typeof v === 'object' && !Array.isArray(v) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)) {
    const arr = Array.from(v as ArrayLike<number>);
    if (arr.length === 0 || arr.some((x) => x !== arr[0])) {
      cfgError(source, `GGUF metadata '${key}' differs between layers (${arr.join(', ')}); Grok-1 has one value for all layers`);
    }
    return arr[0]!;
  }
  return numberMeta(source, key, fallback === undefined ? { integer: true } : { integer: true, fallback });
}

/** GrokConfig from the `grok.*` keys, with llama.cpp's defaults for the optional ones (llama.cpp LLM_ARCH_GROK). */
export function configFromGguf(source: ModelSource): GrokConfig {
  return readGgufConfig(source).config;
}

/**
 * Why a grok GGUF is Grok-2 (empty: Grok-1). llama.cpp keeps both in one architecture and tells them apart by
 * what the file has: the dense MLP tensors (ffn_gate/ffn_up/ffn_down beside the experts), the final-logit
 * soft-cap, the attention temperature length, Grok-2's pre-tokenizer. (router_logit_softcapping is no sign:
 * llama.cpp's converter writes 30 for Grok-1 too.)
 */
export function grok2Signs(source: ModelSource): string[] {
  const signs: string[] = [];
  const cap = meta(source, 'grok.final_logit_softcapping');
  if (typeof cap === 'number' && cap > 0) signs.push(`grok.final_logit_softcapping = ${cap}`);
  const temp = meta(source, 'grok.attention.temperature_length');
  if (typeof temp === 'number' && temp > 0) signs.push(`grok.attention.temperature_length = ${temp}`);
  if (meta(source, 'tokenizer.ggml.pre') === 'grok-2') signs.push('tokenizer.ggml.pre = "grok-2"');
  const dense = [...source.tensors.keys()].find((n) => /^blk\.\d+\.ffn_(gate|up|down)\.weight$/.test(n));
  if (dense) signs.push(`the dense MLP tensor ${dense}`);
  return signs;
}

/**
 * The config of a grok GGUF, and for Grok-2 one note on how it is read. A Grok-2 file is read with the
 * reference's semantics (SGLang, the server the release names) whatever llama.cpp makes of it: plain RoPE —
 * llama.cpp's converter turns Grok-2's rope_type "original" into YaRN keys, which are ignored here —, top-k
 * gate weights not renormalised, the exact erf GELU, the attention temperature and the router soft-cap
 * (llama.cpp's grok graph renormalises, uses the tanh GELU, and reads but does not apply the last two).
 */
export function readGgufConfig(source: ModelSource): { config: GrokConfig; notes: string[] } {
  const arch = meta(source, 'general.architecture');
  if (arch !== 'grok') {
    cfgError(source, `general.architecture is ${renderValue(arch)}, expected "grok" (this runtime runs Grok-1 and Grok-2)`);
  }
  const int = (key: string, fallback?: number) => numberMeta(source, `grok.${key}`, fallback === undefined ? { integer: true } : { integer: true, fallback });
  const real = (key: string, fallback?: number) => numberMeta(source, `grok.${key}`, fallback === undefined ? { integer: false } : { integer: false, fallback });
  const grok2 = grok2Signs(source).length > 0;

  if (!grok2) {
    for (const k of ['grok.rope.scaling.type', 'grok.rope.scaling.factor']) {
      const v = meta(source, k);
      if (v !== undefined && v !== 'none' && v !== 0 && v !== 1) cfgError(source, `${k} = ${renderValue(v)}: RoPE scaling is not supported (Grok-1 uses plain RoPE)`);
    }
  }

  const dModel = int('embedding_length');
  const nHeads = uniformInt(source, 'grok.attention.head_count');
  const nKVHeads = uniformInt(source, 'grok.attention.head_count_kv', nHeads);
  const ffn = int('feed_forward_length');
  const tokens = meta(source, 'tokenizer.ggml.tokens');
  const vocabFallback = Array.isArray(tokens) ? tokens.length : source.tensors.get('token_embd.weight')?.shape[0];
  const headDim = numberMeta(source, 'grok.attention.key_length', {
    integer: true,
    fallback: numberMeta(source, 'grok.rope.dimension_count', { integer: true, fallback: Math.floor(dModel / nHeads) }),
  });
  const tok = (key: string, fallback: number) => numberMeta(source, `tokenizer.ggml.${key}`, { integer: true, fallback });
  const common = {
    vocabSize: int('vocab_size', vocabFallback),
    dModel,
    nLayers: int('block_count'),
    nHeads,
    nKVHeads,
    headDim,
    ffnSize: int('expert_feed_forward_length', ffn),
    nExperts: int('expert_count'),
    nExpertsUsed: int('expert_used_count'),
    embeddingMultiplier: real('embedding_scale', GROK1.embeddingMultiplier),
    outputMultiplier: real('logit_scale', GROK1.outputMultiplier),
    attnSoftcap: real('attn_logit_softcapping', GROK1.attnSoftcap),
    rmsNormEps: real('attention.layer_norm_rms_epsilon'),
    ropeBase: real('rope.freq_base', GROK1.ropeBase),
    contextLength: int('context_length'),
  };
  if (!grok2) {
    const cfg: GrokConfig = {
      ...common,
      attnOutputMultiplier: real('attention.output_scale', GROK1.attnOutputMultiplier),
      padToken: tok('padding_token_id', GROK1.padToken),
      eosToken: tok('eos_token_id', GROK1.eosToken),
      bosToken: tok('bos_token_id', GROK1.bosToken),
      ...GROK1_FEATURES,
    };
    validateConfig(cfg, source.path);
    return { config: cfg, notes: [] };
  }

  // Grok-2: the reference scores q·k × head_dim^-0.5 (the converter writes that as attention.output_scale).
  for (const k of ['grok.attention.value_length', 'grok.rope.dimension_count']) {
    const v = meta(source, k);
    if (v !== undefined && v !== headDim) cfgError(source, `${k} = ${renderValue(v)}, but the heads are ${headDim} wide (grok.attention.key_length): Grok-2 ropes and attends over whole heads of one width`);
  }
  const specialId = (text: string): number | undefined => {
    const i = Array.isArray(tokens) ? tokens.indexOf(text) : -1;
    return i >= 0 ? i : undefined;
  };
  const cfg: GrokConfig = {
    ...common,
    attnOutputMultiplier: real('attention.output_scale', 1 / Math.sqrt(headDim)),
    padToken: tok('padding_token_id', specialId('<|pad|>') ?? 0),
    eosToken: tok('eos_token_id', specialId('<|eos|>') ?? 2),
    bosToken: tok('bos_token_id', 0),
    family: 'grok-2',
    denseFfnSize: ffn,
    routerSoftcap: real('router_logit_softcapping', 30),
    finalLogitSoftcap: real('final_logit_softcapping', 0),
    attnTemperatureLen: int('attention.temperature_length', 0),
    gelu: 'erf',
    maskPadKeys: false,
  };
  validateConfig(cfg, source.path);
  return { config: cfg, notes: [grok2Note(source, cfg)] };
}

/** The one note on how a Grok-2 GGUF is read (see readGgufConfig). */
function grok2Note(source: ModelSource, c: GrokConfig): string {
  const scaling = meta(source, 'grok.rope.scaling.type');
  let rope = 'plain RoPE';
  if (scaling !== undefined && scaling !== 'none') {
    const extra = [['factor', 'grok.rope.scaling.factor'], ['original context', 'grok.rope.scaling.original_context_length']]
      .map(([what, k]) => [what, meta(source, k!)] as const).filter(([, v]) => v !== undefined).map(([what, v]) => `${what} ${renderValue(v)}`);
    rope += ` (the file's grok.rope.scaling.type ${renderValue(scaling)}${extra.length ? `, ${extra.join(', ')}` : ''} is ignored: llama.cpp's converter writes YaRN for Grok-2's rope_type "original", which SGLang runs as plain RoPE)`;
  }
  const parts = [rope, `the top-${c.nExpertsUsed} gate weights not renormalised`, 'the exact (erf) GELU'];
  if (c.attnTemperatureLen > 0) parts.push(`the attention temperature past position ${c.attnTemperatureLen}`);
  if (c.routerSoftcap > 0) parts.push(`the router soft-cap ${c.routerSoftcap}`);
  return `${source.path}: Grok-2, run with the reference's semantics (SGLang), not llama.cpp's: ${parts.join(', ')}`;
}

/**
 * Binds a GGUF source. `configPath` (a config.json / golden.json) replaces the `grok.*` keys when given.
 * Missing tensors fail here, naming every GGUF name that was tried; so do Grok-2 tensors whose widths
 * disagree with the keys that give them.
 */
export function bindGguf(source: ModelSource, configPath?: string): ModelBinding {
  if (source.format !== 'gguf') throw new FormatError(source.path, `bindGguf needs a GGUF source, got '${source.format}'`);
  const { config, notes } = configPath === undefined ? readGgufConfig(source) : { config: readConfigFile(configPath), notes: [] };
  const t = source.tensors;
  const tensors = new Map<string, Binding>();
  const get = (canonical: string, names: readonly string[]): TensorRef => {
    for (const n of names) {
      const r = t.get(n);
      if (r) return r;
    }
    if (DENSE.has(canonical.replace(/^blk\.\d+\./, ''))) {
      throw new FormatError(source.path, `missing tensor '${names[0]}' (for ${canonical}): a Grok-2 layer has a dense MLP beside its experts ` +
        `(ffn_gate and ffn_up [${config.denseFfnSize}, ${config.dModel}], ffn_down [${config.dModel}, ${config.denseFfnSize}], grok.feed_forward_length = ${config.denseFfnSize})`);
    }
    throw new FormatError(source.path, `missing tensor ${names.map((n) => `'${n}'`).join(' or ')} (for ${canonical})`);
  };
  const bind = (canonical: string, kind: 'vector' | 'rows', names: readonly string[]) => {
    tensors.set(canonical, { kind, ref: get(canonical, names) });
  };

  bind('token_embd', 'rows', ['token_embd.weight']);
  bind('output_norm', 'vector', ['output_norm.weight']);
  // output.weight: absent means tied to token_embd (Grok-1); Grok-2's is its own and required.
  const out = t.get('output.weight');
  if (out) tensors.set('output', { kind: 'rows', ref: out });
  else if (presence(tensorDef('output'), config) === 'required') {
    throw new FormatError(source.path, `missing tensor 'output.weight' (for output): Grok-2's output projection [${config.vocabSize}, ${config.dModel}] is not tied to token_embd`);
  }

  for (let l = 0; l < config.nLayers; l++) {
    const p = `blk.${l}.`;
    for (const d of layerTensors(config).filter((x) => x.scope === 'layer')) bind(p + d.name, d.kind === 'vector' ? 'vector' : 'rows', d.gguf.map((n) => `${p}${n}.weight`));
    for (const d of layerTensors(config).filter((x) => x.scope === 'expert')) {
      const stack = d.name;
      const merged = t.get(`${p}${d.gguf[0]}.weight`);
      if (merged) {
        if (merged.shape.length !== 3 || merged.shape[0] !== config.nExperts) {
          throw new FormatError(merged.file, `${merged.name}: shape [${merged.shape.join(', ')}] is not a stack of ${config.nExperts} experts [E, out, in]`);
        }
        for (let e = 0; e < config.nExperts; e++) tensors.set(`${p}${stack}.${e}`, { kind: 'rows', ref: merged, index: e });
        continue;
      }
      const stem = d.ggufSplit!;
      if (!t.has(`${p}${stem}.0.weight`)) {
        throw new FormatError(source.path, `missing tensor '${p}${stack}.weight' (merged experts) or '${p}${stem}.0.weight' … (one per expert)`);
      }
      for (let e = 0; e < config.nExperts; e++) {
        tensors.set(`${p}${stack}.${e}`, { kind: 'rows', ref: get(`${p}${stack}.${e}`, [`${p}${stem}.${e}.weight`]) });
      }
    }
  }
  if (config.family === 'grok-2' && configPath === undefined) checkGrok2Widths(source, config, tensors);
  return notes.length ? { config, tensors, notes } : { config, tensors };
}

const DENSE = new Set(['ffn_gate', 'ffn_up', 'ffn_down']);

/**
 * Grok-2's two FFN widths come from two keys (llama.cpp: feed_forward_length for the dense MLP,
 * expert_feed_forward_length for the experts, which fall back to the first when the second is missing): a
 * tensor that disagrees is named with the key that set its width.
 */
function checkGrok2Widths(source: ModelSource, c: GrokConfig, tensors: ReadonlyMap<string, Binding>): void {
  const D = c.dModel;
  const expertKey = meta(source, 'grok.expert_feed_forward_length') === undefined
    ? `grok.feed_forward_length = ${c.ffnSize} (there is no grok.expert_feed_forward_length, so the experts take the dense width, as in llama.cpp)`
    : `grok.expert_feed_forward_length = ${c.ffnSize}`;
  const denseKey = `grok.feed_forward_length = ${c.denseFfnSize}`;
  const want: [string, readonly number[], string][] = [];
  for (let l = 0; l < c.nLayers; l++) {
    want.push([`blk.${l}.ffn_gate`, [c.denseFfnSize, D], denseKey], [`blk.${l}.ffn_up`, [c.denseFfnSize, D], denseKey], [`blk.${l}.ffn_down`, [D, c.denseFfnSize], denseKey]);
    want.push([`blk.${l}.ffn_gate_exps.0`, [c.nExperts, c.ffnSize, D], expertKey], [`blk.${l}.ffn_up_exps.0`, [c.nExperts, c.ffnSize, D], expertKey], [`blk.${l}.ffn_down_exps.0`, [c.nExperts, D, c.ffnSize], expertKey]);
  }
  for (const [name, shape, key] of want) {
    const b = tensors.get(name)!;
    // an older file's one tensor per expert is one matrix of the stack
    const expected = name.includes('_exps') && b.index === undefined ? shape.slice(1) : shape;
    const got = b.ref.shape;
    if (got.length !== expected.length || got.some((v, i) => v !== expected[i])) {
      throw new FormatError(b.ref.file, `${b.ref.name} is [${got.join(', ')}], but ${key} and grok.embedding_length = ${D} make it [${expected.join(', ')}]`);
    }
  }
}

/** A GGUF's vocabulary, plus its advice on BOS/EOS (tokenizer.ggml.add_bos_token / add_eos_token: BOS is a setting). */
export interface GgufTokenizerData extends GgufVocabulary {
  addBos?: boolean;
  addEos?: boolean;
}

/** The SentencePiece-style vocabulary stored in a GGUF's tokenizer.ggml.* keys (ggml docs/gguf.md). */
export function tokenizerPiecesFromGguf(source: ModelSource): GgufTokenizerData {
  const fail = (m: string): never => { throw new FormatError(source.path, m); };
  const model = meta(source, 'tokenizer.ggml.model');
  if (model === undefined) fail('no tokenizer in this GGUF (tokenizer.ggml.model is missing)');
  if (model !== 'llama') fail(`tokenizer.ggml.model is ${renderValue(model)}, not "llama" (SentencePiece); of the byte-level ("gpt2") vocabularies only Grok-2's is read (byteLevelVocabularyFromGguf)`);
  const tokens = meta(source, 'tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || !tokens.every((s) => typeof s === 'string')) fail('tokenizer.ggml.tokens must be an array of strings');
  const n = (tokens as string[]).length;
  const numArray = (key: string): ArrayLike<number> | undefined => {
    const v = meta(source, key);
    if (v === undefined) return undefined;
    const ok = v instanceof Float32Array || v instanceof Float64Array || v instanceof Int32Array || v instanceof Uint32Array ||
      v instanceof Int8Array || v instanceof Uint8Array || v instanceof Int16Array || v instanceof Uint16Array;
    if (!ok) return fail(`${key} must be an array of numbers`);
    if ((v as ArrayLike<number>).length !== n) fail(`${key} has ${(v as ArrayLike<number>).length} entries, but tokenizer.ggml.tokens has ${n}`);
    return v as ArrayLike<number>;
  };
  const scores = numArray('tokenizer.ggml.scores');
  const types = numArray('tokenizer.ggml.token_type');
  const typeArr = Int32Array.from({ length: n }, (_, i) => {
    const type = types ? types[i]! : 1;
    if (!(type >= 1 && type <= 6)) fail(`tokenizer.ggml.token_type[${i}] is ${type}, expected 1 … 6`);
    return type;
  });
  const id = (key: string, fallback: number | null): number | null => {
    const v = meta(source, `tokenizer.ggml.${key}`);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n) fail(`tokenizer.ggml.${key} = ${String(v)} is not a token id (0 … ${n - 1})`);
    return v as number;
  };
  const flag = (key: string): boolean | undefined => {
    const v = meta(source, `tokenizer.ggml.${key}`);
    if (v !== undefined && typeof v !== 'boolean') fail(`tokenizer.ggml.${key} must be a boolean`);
    return v as boolean | undefined;
  };
  const firstUnknown = typeArr.indexOf(2);
  const data: GgufTokenizerData = {
    tokens: tokens as string[],
    scores: scores ? Float32Array.from(scores) : new Float32Array(n),
    types: typeArr,
    bosId: id('bos_token_id', GROK1.bosToken)!,
    eosId: id('eos_token_id', GROK1.eosToken)!,
    unkId: id('unknown_token_id', firstUnknown >= 0 ? firstUnknown : 0)!,
    padId: id('padding_token_id', null),
    addSpacePrefix: flag('add_space_prefix') ?? true,
    removeExtraWhitespaces: flag('remove_extra_whitespaces') ?? false,
  };
  const addBos = flag('add_bos_token');
  const addEos = flag('add_eos_token');
  if (addBos !== undefined) data.addBos = addBos;
  if (addEos !== undefined) data.addEos = addEos;
  return data;
}

/** Whether a GGUF's vocabulary is a byte-level BPE (model "gpt2"; of those, byteLevelVocabularyFromGguf reads Grok-2's). */
export function hasByteLevelVocabulary(source: ModelSource): boolean {
  return meta(source, 'tokenizer.ggml.model') === 'gpt2';
}

/**
 * The byte-level BPE vocabulary stored in a GGUF (tokenizer.ggml.model "gpt2": tokens in GPT-2's byte
 * spelling, token types, merges, special ids), as llama.cpp's converter writes Grok-2's. Only pre-tokenizer
 * "grok-2" is accepted: its word pattern is the one tokenizer.tok.json's "V1" names.
 */
export function byteLevelVocabularyFromGguf(source: ModelSource): ByteLevelVocabulary {
  const fail = (m: string): never => { throw new FormatError(source.path, m); };
  const model = meta(source, 'tokenizer.ggml.model');
  if (model === undefined) fail('no tokenizer in this GGUF (tokenizer.ggml.model is missing)');
  if (model !== 'gpt2') fail(`tokenizer.ggml.model is ${renderValue(model)}, expected "gpt2" (a byte-level BPE)`);
  const pre = meta(source, 'tokenizer.ggml.pre');
  if (pre !== 'grok-2') fail(`tokenizer.ggml.pre is ${renderValue(pre)}; of the byte-level vocabularies only Grok-2's ("grok-2") is supported`);
  const strings = (key: string): string[] | undefined => {
    const v = meta(source, key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return fail(`${key} must be an array of strings`);
    return v as string[];
  };
  const tokens = strings('tokenizer.ggml.tokens') ?? fail('tokenizer.ggml.tokens is missing');
  const n = tokens.length;
  const types = meta(source, 'tokenizer.ggml.token_type');
  if (types === undefined) fail('tokenizer.ggml.token_type is missing: a byte-level vocabulary needs it to tell special tokens from byte sequences');
  if (!(types instanceof Int32Array || types instanceof Uint32Array || types instanceof Int8Array || types instanceof Uint8Array || types instanceof Int16Array || types instanceof Uint16Array)) {
    fail('tokenizer.ggml.token_type must be an array of integers');
  }
  if ((types as ArrayLike<number>).length !== n) fail(`tokenizer.ggml.token_type has ${(types as ArrayLike<number>).length} entries, but tokenizer.ggml.tokens has ${n}`);
  const id = (key: string): number | null => {
    const v = meta(source, `tokenizer.ggml.${key}`);
    if (v === undefined) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n) fail(`tokenizer.ggml.${key} = ${String(v)} is not a token id (0 … ${n - 1})`);
    return v as number;
  };
  return {
    model: 'gpt2', pre: 'grok-2', tokens, types: Int32Array.from(types as ArrayLike<number>), merges: strings('tokenizer.ggml.merges') ?? [],
    bosId: id('bos_token_id'), eosId: id('eos_token_id'), padId: id('padding_token_id'),
  };
}
