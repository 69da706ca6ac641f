/**
 * The library API: load a model (and its tokenizer), then generate text or token ids.
 *
 *   const grok = await loadModel();                       // the embedded default model
 *   for await (const c of grok.generate('The answer is', { maxTokens: 32, temperature: 0.8, seed: 1 })) {
 *     process.stdout.write(c.text);
 *   }
 *   const r = await grok.complete('2 + 2 =', { temperature: 0, maxTokens: 4, stop: ['\n'] });
 *   await grok.close();
 *
 * Text lives here; the engine (src/engine) sees token ids only. Every call feeds the shared continuous-
 * batching scheduler, so concurrent generate() calls are decoded together.
 *
 * Grok runs the model in the calling thread: a forward pass blocks its event loop. loadModelInWorker
 * (src/api/worker) loads it in a worker thread instead and gives a WorkerGrok with the same text API, whose
 * forward passes never block the caller (what `grok serve` uses).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel as loadGrokModel } from '../model/loader.js';
import { KVCache, type GrokModel, type LayerRange } from '../model/grok.js';
import type { GrokConfig } from '../model/config.js';
import type { Kernels, KVType } from '../kernels/types.js';
import { closeKernels, createKernels, type CreateKernelsOptions } from '../kernels/index.js';
import type { MemoryPlan } from '../model/memory.js';
import type { EvictionPolicy } from '../model/expert-policy.js';
import type { ModelSource } from '../formats/tensor-ref.js';
import { openModel } from '../formats/open.js';
import { resolveModelPath } from '../hub/cache.js';
import { byteLevelVocabularyFromGguf, hasByteLevelVocabulary, tokenizerPiecesFromGguf } from '../model/map-gguf.js';
import { Tokenizer } from '../tokenizer/sentencepiece.js';
import { tiktokenFromByteLevel } from '../tokenizer/byte-level.js';
import { findTokenizerNear, loadTokenizerFile, type TextTokenizer } from '../tokenizer/load.js';
import {
  Scheduler, type Engine, type EngineRequest, type FinishReason, type GenerateOptions, type RequestStats, type SchedulerOptions, type TokenRouting,
} from '../engine/scheduler.js';
import type { ExpertCacheStats } from '../model/expert-cache.js';
import type { TokenLogprob } from '../engine/sampling.js';
import { StopStringMatcher } from './text.js';
import { restoreSlot, saveSlot, type SlotSaved } from './slots.js';
import { grammarVocabularyOf } from './structured.js';
import { GrammarEngine, type ResponseFormat } from '../engine/grammar.js';

export interface LoadModelOptions {
  /** A tokenizer file (SentencePiece tokenizer.model, or Grok-2's tokenizer.tok.json) to use instead of the model's own (GGUF) or the one found beside it. */
  tokenizer?: string;
  /**
   * Kernel implementation; default createKernels({ mode: 'fast', ...kernelOptions }): the native C kernels
   * where the addon loads, else WebAssembly SIMD on worker threads, else the scalar reference; fast
   * numerics, as `grok generate` and `grok serve`. close() stops only kernels it created.
   */
  kernels?: Kernels;
  /** config.json / golden.json to use instead of the one found beside the model. */
  configPath?: string;
  /** Sequences decoded together. Default 4. */
  slots?: number;
  /** Prompt tokens fed per step while a prompt is prefilled (with maxStepMs: at most). Default 256. */
  prefillChunk?: number;
  /** Latency target of one step, ms: prefill chunks sized to it from the measured time per token (SchedulerOptions.maxStepMs). */
  maxStepMs?: number;
  /** Requests allowed to wait for a slot (more → QueueFullError). Default unbounded. */
  maxQueue?: number;
  /**
   * Bytes of keys and values kept of earlier prompts (and outputs) so that a prompt starting the same way
   * prefills only the rest (`grok serve --cache-ram`); 'auto': defaultPrefixCacheBytes. Default 0: none.
   */
  prefixCacheBytes?: number | 'auto';
  /**
   * Options for the kernels loadModel creates (and close() stops) when `kernels` is not given. `mode`
   * defaults to 'fast' (8-bit activations for quantised weights, as the CLI and llama.cpp; routers and
   * other tiny matrices keep float inputs); `{ mode: 'exact' }` gives float activations throughout,
   * matching float64 references to about 1e-4 (what `grok logits` uses).
   */
  kernelOptions?: CreateKernelsOptions;
  /** Context length in tokens, instead of the model's (llama.cpp's -c). */
  contextLength?: number;
  /**
   * KV cache element type (llama.cpp's -ctk/-ctv): 'f32', 'f16' (half the memory) or 'q8_0'. Default: f16
   * when the kernels are in fast mode, f32 in exact mode.
   */
  kvType?: KVType;
  /** Loading progress in bytes read. */
  onProgress?: (done: number, total: number) => void;
  /** Called once before any weight is read: the weights' size against the memory available. */
  onMemoryPlan?: (plan: MemoryPlan) => void;
  /** Called once before any weight is read with the model's own configuration (its trained context length, whatever contextLength says). */
  onConfig?: (config: Readonly<GrokConfig>) => void;
  /**
   * Bytes of memory the weights may take (`--ram-budget`). A larger model keeps its non-expert weights in
   * memory and streams its experts from disk into a pool of slots filling the rest; `grok.model.expertCache`
   * then reports hits, bytes read and waits. Absent: the memory available less a margin (max(1 GiB, 10 %)),
   * streaming only a model larger than that whose smallest pool fits; Infinity: never stream (a model
   * larger than memory is then mapped and paged by the OS).
   */
  ramBudget?: number;
  /** With ramBudget: which expert leaves the pool, 'lru' (default) or 'lfu'. */
  expertPolicy?: EvictionPolicy;
  /** With ramBudget: threads reading experts (default 4). */
  ioThreads?: number;
  /** Only these layers (the leader of a pipeline: `grok serve --layers 0:K --next HOST:PORT`; src/api/pipeline). */
  layers?: LayerRange;
}

export interface TextGenerateOptions extends Omit<GenerateOptions, 'onToken'> {
  /** Stop strings, matched on the decoded text across token boundaries; not included in the output. */
  stop?: string | readonly string[];
  /** Prepend the BOS token to a text prompt. The reference (runners.py) adds none; default false. */
  addBos?: boolean;
}

export interface TopAlternative extends TokenLogprob {
  /** The token's piece as text (SentencePiece `▁` shown as a space); '' without a tokenizer. */
  text: string;
}

export interface TextChunk {
  /**
   * Text released with this token (may be empty while a possible stop string is held back). All chunks
   * together are the continuation as decode(prompt + output) spells it after decode(prompt).
   */
  text: string;
  /** The token id; null only on a final chunk carrying text released when generation ended. */
  token: number | null;
  /** Log-probability of the token under the (processed) model distribution; null with token null. */
  logprob: number | null;
  /** The most probable alternatives when topLogprobs > 0. */
  top?: TopAlternative[];
  /** With the routing option: the experts this token went to in every layer. */
  routing?: TokenRouting;
}

export interface Usage {
  promptTokens: number;
  /** Of the prompt tokens, those whose keys and values came from the prefix cache (not computed again). */
  cachedTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface Timings {
  queuedMs: number;
  /** Prompt processing (admission → first token). */
  prefillMs: number;
  /** First token → last token. */
  decodeMs: number;
  promptTokensPerSecond: number;
  /** Generation speed after the first token. */
  generatedTokensPerSecond: number;
}

export type TextFinishReason = Exclude<FinishReason, 'cancelled' | 'error'>;

export interface Completion {
  text: string;
  tokens: number[];
  logprobs: number[];
  /** Per token, the top alternatives (only when topLogprobs > 0). */
  topLogprobs?: TopAlternative[][];
  finishReason: TextFinishReason;
  usage: Usage;
  timings: Timings;
  /** The seed used (drawn at random when none was given). */
  seed: number;
  /** Prompt tokens dropped by left truncation. */
  truncatedTokens: number;
  /** With the routing option: where every prompt token and every generated token went, in order. */
  routing?: { prompt: TokenRouting[]; tokens: TokenRouting[] };
}

/** A running generation: iterate it for chunks; `result` resolves when it ends. */
export interface TextStream extends AsyncIterable<TextChunk> {
  readonly result: Promise<Completion>;
  /** Stop generating now and free the slot. */
  cancel(): void;
  /**
   * With the routing option: where each prompt token went (complete once the first chunk arrives or the
   * stream ends); null without it.
   */
  readonly promptRouting: readonly TokenRouting[] | null;
}

export class NoTokenizerError extends Error {
  constructor(model: string) {
    super(`${model}: no tokenizer is known for this model, so text cannot be encoded or decoded; pass a tokenizer.model (--tokenizer / { tokenizer }) or give token ids`);
    this.name = 'NoTokenizerError';
  }
}

/** The package root (where package.json is), found from this file, not from the working directory. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        if ((JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string }).name === 'grok-ts') return dir;
      } catch { /* not ours: keep walking up */ }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the grok-ts package root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The embedded default model. */
export function defaultModelPath(): string {
  return path.join(packageRoot(), 'models', 'default', 'model.gguf');
}

/**
 * The tokenizer stored in a GGUF's metadata (tokenizer.ggml.*), or null when it has none: a SentencePiece
 * vocabulary (model "llama", Grok-1), or Grok-2's tiktoken BPE as llama.cpp stores it (model "gpt2", pre
 * "grok-2"), which encodes as tokenizer.tok.json does.
 */
export function fromGgufSource(source: ModelSource): TextTokenizer | null {
  if (source.metadata.get('tokenizer.ggml.model') === undefined) return null;
  if (hasByteLevelVocabulary(source)) return tiktokenFromByteLevel(byteLevelVocabularyFromGguf(source), source.path);
  const t = tokenizerPiecesFromGguf(source);
  return Tokenizer.fromPieces(t.tokens.map((piece, i) => ({ piece, score: t.scores[i]!, type: t.types[i]! })), {
    addDummyPrefix: t.addSpacePrefix,
    removeExtraWhitespaces: t.removeExtraWhitespaces,
    bosId: t.bosId,
    eosId: t.eosId,
    unkId: t.unkId,
    ...(t.padId === null ? {} : { padId: t.padId }),
  }, source.path);
}

function releaseKernels(k: Kernels): void {
  closeKernels(k);
}


/**
 * The tokenizer a model carries, without loading its weights: a GGUF's own (tokenizer.ggml.*), else a
 * tokenizer.model beside the checkpoint (or up to two folders above). Throws NoTokenizerError if none.
 */
export function tokenizerOf(modelPath: string): TextTokenizer {
  const resolved = path.resolve(resolveModelPath(modelPath));
  const t = findTokenizer(resolved);
  if (!t) throw new NoTokenizerError(resolved);
  return t;
}

/**
 * A model's tokenizer: the file given, else a GGUF's own (from `source`, or opened here for its header),
 * else a tokenizer.model beside the checkpoint (or up to two folders above); null when there is none.
 */
export function findTokenizer(resolved: string, o: { tokenizer?: string; source?: ModelSource } = {}): TextTokenizer | null {
  if (o.tokenizer) return loadTokenizerFile(path.resolve(o.tokenizer));
  const source = o.source ?? openModel(resolved);
  try {
    const own = source.format === 'gguf' ? fromGgufSource(source) : null;
    if (own) return own;
  } finally {
    if (!o.source) source.close();
  }
  const near = findTokenizerNear(resolved);
  return near ? loadTokenizerFile(near) : null;
}

/** A tokenizer must have the model's vocabulary. */
export function checkTokenizer(tokenizer: TextTokenizer | null, vocabSize: number, modelPath: string): void {
  if (tokenizer && tokenizer.vocabSize !== vocabSize) {
    throw new Error(`${tokenizer.source}: the tokenizer has ${tokenizer.vocabSize} tokens but the model ${modelPath} has a vocabulary of ${vocabSize}`);
  }
}

/** The model's file or folder, absolute: a path, or a Hugging Face repository id found in the hub cache. */
export function resolveModel(modelPath?: string): string {
  const resolved = path.resolve(modelPath === undefined ? defaultModelPath() : resolveModelPath(modelPath));
  if (!fs.existsSync(resolved)) {
    throw new Error(modelPath === undefined
      ? `the default model is missing (${resolved}); pass a model path`
      : `${resolved}: no such file or directory`);
  }
  return resolved;
}

/**
 * The kernels (options.kernels, or created from kernelOptions: then `ownKernels`, released on failure here
 * and by the caller's close()) and the weights of a resolved model: the part of loading that a worker
 * thread does.
 */
export async function loadWeights(resolved: string, options: LoadModelOptions): Promise<{ model: GrokModel; source: ModelSource; ownKernels: boolean; notes: readonly string[] }> {
  const kernels = options.kernels ?? createKernels({ ...options.kernelOptions, mode: options.kernelOptions?.mode ?? 'fast' });
  try {
    const { model, source, binding } = await loadGrokModel(resolved, {
      kernels,
      ...(options.configPath ? { configPath: options.configPath } : {}),
      ...(options.contextLength ? { contextLength: options.contextLength } : {}),
      ...(options.kvType ? { kvType: options.kvType } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.onMemoryPlan ? { onMemoryPlan: options.onMemoryPlan } : {}),
      ...(options.onConfig ? { onConfig: options.onConfig } : {}),
      ...(options.ramBudget !== undefined ? { ramBudget: options.ramBudget } : {}),
      ...(options.expertPolicy ? { expertPolicy: options.expertPolicy } : {}),
      ...(options.ioThreads !== undefined ? { ioThreads: options.ioThreads } : {}),
      ...(options.layers ? { layers: options.layers } : {}),
    });
    return { model, source, ownKernels: !options.kernels, notes: binding.notes ?? [] };
  } catch (e) {
    if (!options.kernels) releaseKernels(kernels);
    throw e;
  }
}

/**
 * The scheduler a loaded model gets from the load options (slots, prefill chunk, queue, prefix cache) and,
 * with a tokenizer, structured output (`grammar`: XGrammar over its vocabulary, made on first use).
 */
export function schedulerOptions(model: GrokModel, options: LoadModelOptions, grammar?: () => Promise<GrammarEngine>): SchedulerOptions {
  return {
    ...(options.slots !== undefined ? { slots: options.slots } : {}),
    ...(options.prefillChunk !== undefined ? { prefillChunk: options.prefillChunk } : {}),
    ...(options.maxStepMs !== undefined ? { maxStepMs: options.maxStepMs } : {}),
    ...(options.maxQueue !== undefined ? { maxQueue: options.maxQueue } : {}),
    prefixCacheBytes: options.prefixCacheBytes === 'auto' ? defaultPrefixCacheBytes(model, options.slots ?? 4) : options.prefixCacheBytes ?? 0,
    ...(grammar ? { grammar } : {}),
  };
}

/** The grammar engine of a tokenizer's vocabulary, made once, on first use (null without a tokenizer). */
export function grammarOf(tokenizer: TextTokenizer | null, eosToken: number): (() => Promise<GrammarEngine>) | null {
  if (!tokenizer) return null;
  let engine: Promise<GrammarEngine> | undefined;
  return () => (engine ??= GrammarEngine.create(grammarVocabularyOf(tokenizer, [eosToken])));
}

/**
 * Compile a response format without generating (the compiled grammar is kept for the request that follows):
 * throws GrammarError for a schema that cannot be used, so a server answers 400 before it streams.
 */
export async function checkFormatWith(grammar: (() => Promise<GrammarEngine>) | null, format: ResponseFormat, model: string): Promise<void> {
  if (!grammar) throw new NoTokenizerError(model);
  (await (await grammar()).constraint(format)).release();
}

/**
 * Load a model (default: the embedded one) and its tokenizer, ready to generate. `modelPath` is a path, or
 * a Hugging Face repository id (`xai-org/grok-1`, `org/name:Q4_K_M`) fetched by `pull` into the hub cache.
 */
export async function loadModel(modelPath?: string, options: LoadModelOptions = {}): Promise<Grok> {
  const resolved = resolveModel(modelPath);
  const t0 = performance.now();
  const { model, source, ownKernels, notes } = await loadWeights(resolved, options);
  try {
    const tokenizer = findTokenizer(resolved, { source, ...(options.tokenizer ? { tokenizer: options.tokenizer } : {}) });
    checkTokenizer(tokenizer, model.config.vocabSize, resolved);
    return new Grok(resolved, model, tokenizer, performance.now() - t0, options, notes);
  } catch (e) {
    model.close();
    if (ownKernels) releaseKernels(model.kernels);
    throw e;
  }
}

/**
 * The prefix cache `'auto'` gives: 2 GiB, but no more than the keys and values of every slot at full
 * context, and at most 256 MiB when the experts are streamed (RAM is what that model lacks; 256 MiB is
 * about 1000 Grok-1 positions at f16).
 */
export function defaultPrefixCacheBytes(model: GrokModel, slots: number): number {
  const allSlots = slots * model.config.contextLength * KVCache.bytesPerPosition(model.config, model.kvType);
  return Math.min(allSlots, model.expertCache ? 256 * 2 ** 20 : 2 * 2 ** 30);
}

/**
 * A loaded model with its tokenizer and engine, generating text: the text layer (encoding, streaming
 * decode, stop strings, completions) over an Engine of token ids. Grok runs the engine in this thread,
 * WorkerGrok (src/api/worker) in a worker thread.
 */
export abstract class TextModel {
  /** The model's file or folder. */
  abstract readonly path: string;
  abstract readonly config: Readonly<GrokConfig>;
  abstract readonly tokenizer: TextTokenizer | null;
  /** Milliseconds spent loading. */
  abstract readonly loadMs: number;
  abstract readonly engine: Engine;
  /** The kernels' name (native, wasm, reference …). */
  abstract readonly backend: string;
  /** How the model file was read, where a user should know (ModelBinding.notes): `grok` prints them once. */
  abstract readonly notes: readonly string[];
  protected closed = false;

  /**
   * Structured output: compile `format` for this model's vocabulary without generating; throws GrammarError
   * (a 400 for a server) for a schema that cannot be used, NoTokenizerError without a tokenizer.
   */
  abstract checkResponseFormat(format: ResponseFormat): Promise<void>;

  /** Why the model can no longer serve (its worker thread died); null while it can. */
  get failure(): Error | null {
    return null;
  }

  /** Streamed experts (ramBudget): the pool's statistics; null when every expert is in memory. */
  abstract expertCacheStats(): ExpertCacheStats | null;
  /**
   * Write the prefix cache's rows of the longest cached prefix of `tokens` to `file` (src/api/slots.ts);
   * SlotError when nothing of it is cached.
   */
  abstract saveSlot(tokens: readonly number[], file: string): Promise<SlotSaved>;
  /** Read a file saveSlot wrote (checked against this model) into the prefix cache; SlotError for a file that does not fit. */
  abstract restoreSlot(file: string): Promise<{ tokens: number }>;
  /** Cancel everything running and release the model. */
  abstract close(): Promise<void>;

  /** Text → token ids (no BOS unless asked). */
  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    if (!this.tokenizer) throw new NoTokenizerError(this.path);
    return this.tokenizer.encode(text, { bos: opts.addBos ?? false });
  }

  decode(ids: ArrayLike<number>): string {
    if (!this.tokenizer) throw new NoTokenizerError(this.path);
    return this.tokenizer.decode(ids);
  }

  /** A token's piece as text, for logprob reports. */
  tokenText(id: number): string {
    if (!this.tokenizer) return '';
    return this.tokenizer.idToPiece(id).replaceAll('\u2581', ' ');
  }

  /** Prompt as ids (text is encoded; ids are used as given). */
  promptIds(prompt: string | readonly number[], addBos = false): number[] {
    return typeof prompt === 'string' ? this.encode(prompt, { addBos }) : [...prompt];
  }

  /**
   * Start generating. Throws synchronously on bad options, a prompt that does not fit (ContextLengthError)
   * or a full queue (QueueFullError).
   */
  generate(prompt: string | readonly number[], options: TextGenerateOptions = {}): TextStream {
    return this.generateMany(prompt, [options])[0]!;
  }

  /**
   * Several generations from one prompt (n choices): the prompt is prefilled once and each continues from
   * a copy of its KV cache, giving the tokens it would give alone. All start, or none (throws as generate).
   * A text prompt is encoded with the first options' addBos.
   */
  generateMany(prompt: string | readonly number[], optionsList: readonly TextGenerateOptions[]): TextStream[] {
    if (this.closed) throw new Error('this model was closed');
    const ids = this.promptIds(prompt, optionsList[0]?.addBos);
    const prepared = optionsList.map((options) => {
      const stops = options.stop === undefined ? [] : typeof options.stop === 'string' ? [options.stop] : [...options.stop];
      const tok = this.tokenizer;
      if (stops.length > 0 && !tok) throw new NoTokenizerError(this.path);
      const decoder = tok ? tok.createStreamDecoder() : null;
      const matcher = decoder ? new StopStringMatcher(decoder, stops) : null;
      const { stop: _stop, addBos: _addBos, ...engineOpts } = options;
      return { options, decoder, matcher, engineOpts: { ...engineOpts, ...(matcher ? { onToken: (id: number) => matcher.push(id) } : {}) } };
    });
    const reqs = this.engine.submitMany(ids, prepared.map((p) => p.engineOpts));
    return reqs.map((req, i) => {
      const { options, decoder, matcher } = prepared[i]!;
      // The decoder first sees the (now validated) prompt, its text discarded, so the continuation decodes as
      // inside decode(prompt + output): a leading `▁` of the first new token is a space, not a dummy prefix.
      // Tokens arrive on later event-loop turns, so this runs before the first onToken call.
      if (decoder) for (const id of req.prompt) decoder.push(id);
      return this.textStream(req, options, matcher);
    });
  }

  /** A request's tokens as text chunks, and its Completion at the end. */
  private textStream(req: EngineRequest, options: TextGenerateOptions, matcher: StopStringMatcher | null): TextStream {
    const tokens: number[] = [];
    const logprobs: number[] = [];
    const tops: TopAlternative[][] = [];
    const routes: TokenRouting[] = [];
    let text = '';
    let settle!: { resolve: (c: Completion) => void; reject: (e: unknown) => void };
    const result = new Promise<Completion>((resolve, reject) => { settle = { resolve, reject }; });
    result.catch(() => undefined); // a rejection is also thrown to the iterating caller; do not crash if nobody awaits
    const self = this;
    const finish = (stats: RequestStats): Completion => {
      const decodeS = stats.decodeMs / 1000;
      const c: Completion = {
        text, tokens, logprobs,
        finishReason: stats.finishReason === 'stop' ? 'stop' : 'length',
        usage: { promptTokens: stats.promptTokens, cachedTokens: stats.cachedTokens, completionTokens: tokens.length, totalTokens: stats.promptTokens + tokens.length },
        timings: {
          queuedMs: stats.queuedMs,
          prefillMs: stats.prefillMs,
          decodeMs: stats.decodeMs,
          promptTokensPerSecond: stats.prefillMs > 0 ? stats.promptTokens / (stats.prefillMs / 1000) : 0,
          generatedTokensPerSecond: decodeS > 0 && tokens.length > 1 ? (tokens.length - 1) / decodeS : 0,
        },
        seed: stats.seed,
        truncatedTokens: stats.truncatedTokens,
      };
      if (options.topLogprobs) c.topLogprobs = tops;
      if (options.routing) c.routing = { prompt: [...req.promptRouting], tokens: routes };
      return c;
    };
    async function* chunks(): AsyncGenerator<TextChunk> {
      try {
        for await (const t of req) {
          tokens.push(t.id);
          logprobs.push(t.logprob);
          const piece = matcher ? matcher.take() : '';
          text += piece;
          const chunk: TextChunk = { text: piece, token: t.id, logprob: t.logprob };
          if (t.top) {
            chunk.top = t.top.map((a) => ({ ...a, text: self.tokenText(a.id) }));
            tops.push(chunk.top);
          }
          if (t.routing) { chunk.routing = t.routing; routes.push(t.routing); }
          yield chunk;
        }
        const rest = matcher ? matcher.finish() : '';
        if (rest) {
          text += rest;
          yield { text: rest, token: null, logprob: null };
        }
        settle.resolve(finish(await req.done));
      } catch (e) {
        settle.reject(e);
        throw e;
      } finally {
        // Leaving the loop early (break) cancels the request and frees its slot.
        if (!req.isFinished) req.cancel();
      }
    }
    let iterating = false;
    let draining = false;
    return {
      // Asking for the result without iterating drains the stream (after this tick, so a caller may still
      // start iterating right after reading it).
      get result(): Promise<Completion> {
        if (!draining) {
          draining = true;
          setImmediate(() => {
            if (iterating) return;
            iterating = true;
            void (async () => { for await (const _ of chunks()) { /* collected into result */ } })().catch(() => undefined);
          });
        }
        return result;
      },
      cancel: () => req.cancel(),
      get promptRouting() { return options.routing ? req.promptRouting : null; },
      [Symbol.asyncIterator]: () => {
        if (iterating) throw new Error('a text stream can be iterated only once');
        iterating = true;
        return chunks();
      },
    };
  }

  /** Generate to the end and return the whole completion. */
  async complete(prompt: string | readonly number[], options: TextGenerateOptions = {}): Promise<Completion> {
    const s = this.generate(prompt, options);
    for await (const _ of s) { /* collected into result */ }
    return s.result;
  }

}

/** A loaded model with its tokenizer and engine, in this thread. */
export class Grok extends TextModel {
  readonly config: Readonly<GrokConfig>;
  readonly engine: Scheduler;
  private readonly grammar: (() => Promise<GrammarEngine>) | null;

  constructor(
    readonly path: string,
    readonly model: GrokModel,
    readonly tokenizer: TextTokenizer | null,
    /** Milliseconds spent loading. */
    readonly loadMs: number,
    private readonly options: LoadModelOptions = {},
    readonly notes: readonly string[] = [],
  ) {
    super();
    this.config = model.config;
    this.grammar = grammarOf(tokenizer, model.config.eosToken);
    this.engine = new Scheduler(model, schedulerOptions(model, options, this.grammar ?? undefined));
  }

  get backend(): string {
    return this.model.kernels.name;
  }

  expertCacheStats(): ExpertCacheStats | null {
    return this.model.expertCache?.stats() ?? null;
  }

  checkResponseFormat(format: ResponseFormat): Promise<void> {
    return checkFormatWith(this.grammar, format, this.path);
  }

  async saveSlot(tokens: readonly number[], file: string): Promise<SlotSaved> {
    return saveSlot(this.engine, this.model, this.path, tokens, file);
  }

  async restoreSlot(file: string): Promise<{ tokens: number }> {
    return restoreSlot(this.engine, this.model, this.path, file);
  }

  /** Cancel everything running and release the kernels' threads / memories and the mapped model files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.engine.close();
    this.model.close(); // its mapped files are unmapped now (unless another model holds them), not at GC
    if (!this.options.kernels) releaseKernels(this.model.kernels);
  }
}

export { Scheduler, QueueFullError, ContextLengthError } from '../engine/scheduler.js';
export type {
  GenerateOptions, FinishReason, RequestStats, GeneratedToken, BatchModel, SchedulerOptions, TokenRouting, EngineCache, CacheRows, Engine, EngineRequest,
} from '../engine/scheduler.js';
export type { PrefixCacheStats } from '../engine/prefix-cache.js';
export { SlotError, type SlotSaved } from './slots.js';
export { makeSampler, candidateTokens, SamplingError, NonFiniteLogitsError, TokenHistory } from '../engine/sampling.js';
export type { SamplingOptions, SampleResult, TokenLogprob, Sampler } from '../engine/sampling.js';
export { Rng } from '../base/rng.js';
