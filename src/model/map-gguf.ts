/**
 * GGUF (llama.cpp's `grok` architecture, LLM_ARCH_GROK) → ModelBinding, and the tokenizer tables.
 *
 * GGUF tensor names are already the canonical names plus `.weight`; what this table adds is the config
 * from `grok.*` keys with llama.cpp's defaults, the merged-expert stacks (one [E, nOut, nIn] tensor per
 * kind, bound per expert with `index`), and the variants older converters wrote: per-expert 2-D tensors
 * and `post_ffw_norm` for the post-MoE norm.
 */
import { renderValue } from '../base/render.js';
import { ConfigError, FormatError } from '../base/errors.js';
import type { GgufValue } from '../formats/gguf.js';
import { type ModelSource, type TensorRef } from '../formats/tensor-ref.js';
import type { Binding, ModelBinding } from './binding.js';
import { GROK1, GROK1_FEATURES, readConfigFile, validateConfig, type GrokConfig } from './config.js';
import { layerTensors } from './tensors.js';
import type { GgufVocabulary } from '../tokenizer/vocabulary.js';

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
  const arch = meta(source, 'general.architecture');
  if (arch !== 'grok') {
    cfgError(source, `general.architecture is ${renderValue(arch)}, expected "grok" (this runtime runs Grok-1 only)`);
  }
  const int = (key: string, fallback?: number) => numberMeta(source, `grok.${key}`, fallback === undefined ? { integer: true } : { integer: true, fallback });
  const real = (key: string, fallback?: number) => numberMeta(source, `grok.${key}`, fallback === undefined ? { integer: false } : { integer: false, fallback });

  // Grok-2 features this runtime does not implement must not be silently ignored.
  const finalCap = real('final_logit_softcapping', 0);
  if (finalCap !== 0) cfgError(source, `grok.final_logit_softcapping = ${finalCap}: final logit soft-capping (Grok-2) is not supported`);
  for (const k of ['grok.attention.temperature_length', 'grok.rope.scaling.type', 'grok.rope.scaling.factor']) {
    const v = meta(source, k);
    if (v !== undefined && v !== 'none' && v !== 0 && v !== 1) cfgError(source, `${k} = ${renderValue(v)}: Grok-2 attention temperature / RoPE scaling is not supported`);
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
  const cfg: GrokConfig = {
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
    attnOutputMultiplier: real('attention.output_scale', GROK1.attnOutputMultiplier),
    attnSoftcap: real('attn_logit_softcapping', GROK1.attnSoftcap),
    rmsNormEps: real('attention.layer_norm_rms_epsilon'),
    ropeBase: real('rope.freq_base', GROK1.ropeBase),
    contextLength: int('context_length'),
    padToken: tok('padding_token_id', GROK1.padToken),
    eosToken: tok('eos_token_id', GROK1.eosToken),
    bosToken: tok('bos_token_id', GROK1.bosToken),
    ...GROK1_FEATURES,
  };
  validateConfig(cfg, source.path);
  return cfg;
}

/**
 * Binds a GGUF source. `configPath` (a config.json / golden.json) replaces the `grok.*` keys when given.
 * Missing tensors fail here, naming every GGUF name that was tried.
 */
export function bindGguf(source: ModelSource, configPath?: string): ModelBinding {
  if (source.format !== 'gguf') throw new FormatError(source.path, `bindGguf needs a GGUF source, got '${source.format}'`);
  const config = configPath === undefined ? configFromGguf(source) : readConfigFile(configPath);
  const t = source.tensors;
  const tensors = new Map<string, Binding>();
  const get = (canonical: string, names: readonly string[]): TensorRef => {
    for (const n of names) {
      const r = t.get(n);
      if (r) return r;
    }
    throw new FormatError(source.path, `missing tensor ${names.map((n) => `'${n}'`).join(' or ')} (for ${canonical})`);
  };
  const bind = (canonical: string, kind: 'vector' | 'rows', names: readonly string[]) => {
    tensors.set(canonical, { kind, ref: get(canonical, names) });
  };

  bind('token_embd', 'rows', ['token_embd.weight']);
  bind('output_norm', 'vector', ['output_norm.weight']);
  // output.weight is optional: absent means tied to token_embd, as in the xAI model.
  const out = t.get('output.weight');
  if (out) tensors.set('output', { kind: 'rows', ref: out });

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
  return { config, tensors };
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
  if (model !== 'llama') fail(`tokenizer.ggml.model is ${renderValue(model)}; only "llama" (SentencePiece) vocabularies are supported`);
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
