/**
 * The generation engine: continuous batching over a fixed number of slots. It knows token ids only
 * (text, tokenizers and HTTP live in src/api).
 *
 * Every iteration makes ONE batched forward call for all active sequences: a decoding sequence feeds its
 * last token, a sequence still in prefill feeds its next prompt chunk (chunked prefill, so a long prompt
 * does not stall the others). New requests are admitted into free slots between iterations; between
 * iterations the event loop runs, so HTTP traffic and cancellations are handled while others decode.
 * A forward pass itself blocks its thread: the server runs the scheduler in a worker thread
 * (src/api/worker), whose cancellations arrive through shared memory (SchedulerOptions.isCancelled) and
 * are seen between layers.
 *
 * Determinism: each request has its own sampler state and RNG, and its prompt is cut into chunks of a fixed
 * size whatever else is running, so its tokens depend only on its prompt, options and seed — provided the
 * model computes each sequence's rows independently of the others in the batch (GrokModel does). With
 * maxStepMs the chunk sizes follow the measured speed instead (a latency target, as vLLM's chunked-prefill
 * budget); the tokens stay the same as far as a position's rows do not depend on how the prompt was cut
 * (on the fixture models they do not: test/prefix-cache.test.ts).
 *
 * Prompts reuse what earlier requests computed (prefixCacheBytes, src/engine/prefix-cache.ts): the longest
 * cached prefix's keys and values are copied into a new request's cache and only the rest is prefilled.
 *
 * Unlike the reference runner (runners.py), outputs are kept per request (it shares one list across slots),
 * generation stops at EOS, and temperature 0 is argmax.
 */
import { Rng, randomSeed } from '../base/rng.js';
import { makeSampler, SamplingError, TokenHistory, type Sampler, type SamplingOptions, type TokenLogprob } from './sampling.js';
import { longestPrefixSuffix } from '../base/sequence.js';
import { PrefixCache, type PrefixCacheStats } from './prefix-cache.js';
import type { CacheRows, EngineCache } from './cache.js';
import type { GrammarEngine, ResponseFormat, TokenConstraint } from './grammar.js';

export type { CacheRows, EngineCache } from './cache.js';

/** What the engine needs of a model (src/model/grok.ts GrokModel satisfies it). */
export interface BatchModel {
  readonly config: { readonly vocabSize: number; readonly contextLength: number; readonly eosToken: number };
  newCache(capacity?: number): EngineCache;
  forward(seqs: { tokens: ArrayLike<number>; cache: EngineCache }[], opts?: ForwardOpts): Float32Array;
  /**
   * A model whose pass ends elsewhere (the leader of a pipeline, src/api/pipeline/leader.ts): begin runs the
   * local part of a pass, sends it on and returns a function that waits for the logits; `depth` passes may be
   * in flight at once (one per stage), and the scheduler keeps that many micro-batches in the pipe.
   */
  begin?(seqs: { tokens: ArrayLike<number>; cache: EngineCache }[], opts?: ForwardOpts): () => Float32Array;
  readonly depth?: number;
}

export interface ForwardOpts {
  lastOnly?: boolean;
  onRoute?: RouteFn;
  checkpoint?: Checkpoint;
}

/**
 * Called by the model before each layer of a forward pass; what it throws abandons the pass, leaving every
 * cache at its length before the pass (src/model/grok.ts ForwardOptions.checkpoint).
 */
export type Checkpoint = (layer: number, layers: number) => void;

/** The router's choice per layer for every row of a forward call: chosen / gates [rows, A], highest first. */
export type RouteFn = (layer: number, chosen: Int32Array, gates: Float32Array, rows: number) => void;

/** Where one token went in the mixture of experts. */
export interface TokenRouting {
  /** Per layer, the experts the token was sent to, highest router probability first. */
  experts: number[][];
  /** Per layer, their gates: the router's softmax probabilities (not renormalised), as the model weighs the experts. */
  gates: number[][];
}

export interface GenerateOptions extends SamplingOptions {
  /** RNG seed (0…2^32−1); a random one is drawn (and reported in the stats) when absent. */
  seed?: number;
  /** Maximum number of new tokens; default: until EOS, a stop condition or the context limit. */
  maxTokens?: number;
  /** Do not stop at the model's EOS token. */
  ignoreEos?: boolean;
  /** Further token ids that end generation like EOS (not emitted). */
  stopTokens?: readonly number[];
  /** Token-id sequences that end generation; the matched tokens are not emitted. */
  stopSequences?: readonly (readonly number[])[];
  /**
   * Called synchronously with every emitted token id, in order; returning true ends generation after that
   * token (finish reason 'stop'). The text layer uses it for stop strings matched on decoded text.
   */
  onToken?: (id: number) => boolean;
  /** A prompt longer than the context is an error ('error', default) or keeps its last tokens ('left'). */
  truncate?: 'error' | 'left';
  /** Cancels the request: its slot is freed at once and iteration throws the signal's reason. */
  signal?: AbortSignal;
  /**
   * Record the experts every token was routed to: the prompt's (GenerationRequest.promptRouting) and each
   * generated token's (GeneratedToken.routing). A token's routing is known once it has been fed back, so
   * each token is emitted one step later, and the last one costs one extra forward step.
   */
  routing?: boolean;
  /**
   * Structured output: sample only tokens that keep the output valid for this grammar (JSON, or JSON of a
   * schema), by XGrammar (src/engine/grammar.ts); needs SchedulerOptions.grammar. Ends at EOS once complete.
   */
  responseFormat?: ResponseFormat;
}

export interface GeneratedToken extends TokenLogprob {
  top?: TokenLogprob[];
  /** With the routing option: where this token went in every layer. */
  routing?: TokenRouting;
}

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface RequestStats {
  seed: number;
  promptTokens: number;
  /** Of the prompt tokens, those whose keys and values came from the prefix cache (not fed to the model). */
  cachedTokens: number;
  /** Prompt tokens dropped by left truncation. */
  truncatedTokens: number;
  /** Tokens emitted (EOS and matched stop sequences are not counted). */
  generatedTokens: number;
  finishReason: FinishReason;
  /** Submission → admission into a slot. */
  queuedMs: number;
  /** Admission → first token sampled (the prompt's prefill). */
  prefillMs: number;
  /** First token → last token. */
  decodeMs: number;
}

export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`the request queue is full (${limit} waiting); retry later`);
    this.name = 'QueueFullError';
  }
}

export class ContextLengthError extends RangeError {
  constructor(readonly promptTokens: number, readonly contextLength: number) {
    super(`prompt has ${promptTokens} tokens but the context holds ${contextLength} (at least one must remain for generation); shorten it or ask for left truncation`);
    this.name = 'ContextLengthError';
  }
}

export interface SchedulerOptions {
  /** Sequences decoded together (batch slots). Default 4. */
  slots?: number;
  /** Prompt tokens a sequence feeds per iteration while in prefill (with maxStepMs: at most). Default 256. */
  prefillChunk?: number;
  /**
   * Latency target of one step, ms (vLLM's chunked-prefill budget, in time rather than tokens): the time per
   * token of the last steps sizes the next prefill chunks so that a step (the others' decode tokens and the
   * prompt chunks together) takes about this long, at most prefillChunk tokens a sequence, at least one.
   * Chunk boundaries then depend on the machine's speed; a prompt's tokens are the same only as far as the
   * model's rows do not depend on how the prompt is cut. Default none: chunks of prefillChunk.
   */
  maxStepMs?: number;
  /** The clock steps are timed with, ms (default performance.now; tests give a model-driven one). */
  clock?: () => number;
  /** Requests allowed to wait for a slot; more → QueueFullError. 0: no waiting, free slots still serve. Default unbounded. */
  maxQueue?: number;
  /**
   * Bytes of keys and values kept of earlier requests' prompts (and outputs) for later prompts that start
   * the same way (src/engine/prefix-cache.ts); needs caches with exportRows / importRows. Default 0: none.
   */
  prefixCacheBytes?: number;
  /**
   * A cancellation made where this thread's event loop cannot hear it while a forward pass runs (the main
   * thread, when the scheduler runs in a worker): polled for the sequences of a pass between its layers.
   * A pass is abandoned (and redone without them) when that is cheaper than finishing it (Scheduler.step).
   */
  isCancelled?: (r: GenerationRequest) => boolean;
  /** The grammar engine for responseFormat requests, made on first use (it compiles against the vocabulary). */
  grammar?: () => Promise<GrammarEngine>;
}

/** What the text layer (src/api) needs of an engine: the Scheduler itself, or a proxy to one in a worker thread. */
export interface Engine {
  readonly slots: number;
  /** Requests holding a slot now. */
  readonly activeCount: number;
  /** Requests waiting for a slot now. */
  readonly queuedCount: number;
  /** The prefix cache, if there is one (its statistics). */
  readonly prefixCache: { stats(): PrefixCacheStats } | null;
  /** Queue requests on one prompt that share its prefill; all or none (throws as Scheduler.submitMany). */
  submitMany(prompt: ArrayLike<number>, optionsList: readonly GenerateOptions[]): EngineRequest[];
  /** Cancel everything and refuse new requests. */
  close(): void;
}

/** One request as the text layer sees it (GenerationRequest, or its proxy in the main thread). */
export interface EngineRequest extends AsyncIterable<GeneratedToken> {
  /** The prompt as fed (after left truncation). */
  readonly prompt: readonly number[];
  /** Resolves with the stats when the request ends (whatever the reason); never rejects. */
  readonly done: Promise<RequestStats>;
  readonly isFinished: boolean;
  /** With the routing option: where each prompt token went (complete once the first token is out or the request ended). */
  readonly promptRouting: readonly TokenRouting[];
  /** Free the slot (or the queue place) now; iteration ends with `reason` (default an AbortError). */
  cancel(reason?: unknown): void;
}

/** What submit checks of a request before queueing it, and what follows from it. */
export interface CheckedRequest {
  /** The prompt to feed (left-truncated if asked and needed). */
  prompt: number[];
  truncatedTokens: number;
  /** Infinity: until EOS, a stop condition or the context limit. */
  maxTokens: number;
  sampler: Sampler;
}

/**
 * Check a request against the model's vocabulary and context, as Scheduler.submit does, throwing the same
 * errors (RangeError, ContextLengthError, SamplingError); a proxy in another thread checks with it too, so
 * that a bad request fails synchronously there as well.
 */
export function checkRequest(promptIn: ArrayLike<number>, options: GenerateOptions, config: BatchModel['config']): CheckedRequest {
  const { vocabSize, contextLength } = config;
  let prompt = Array.from(promptIn);
  if (prompt.length === 0) throw new RangeError('prompt is empty: at least one token is needed');
  for (const id of prompt) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`prompt token ${id} is outside the vocabulary (0…${vocabSize - 1})`);
    }
  }
  const maxTokens = options.maxTokens ?? Infinity;
  if (!(maxTokens === Infinity || (Number.isInteger(maxTokens) && maxTokens >= 1))) {
    throw new RangeError(`maxTokens must be an integer ≥ 1, got ${options.maxTokens}`);
  }
  for (const s of options.stopSequences ?? []) {
    if (s.length === 0) throw new RangeError('a stop sequence must not be empty');
  }
  let truncatedTokens = 0;
  if (prompt.length >= contextLength) {
    if (options.truncate !== 'left') throw new ContextLengthError(prompt.length, contextLength);
    // Keep the last tokens, leaving room for the requested generation (at least one token).
    const keep = contextLength - Math.min(Math.max(1, maxTokens === Infinity ? 1 : maxTokens), contextLength - 1);
    truncatedTokens = prompt.length - keep;
    prompt = prompt.slice(truncatedTokens);
  }
  const sampler = makeSampler(options);
  checkTokenIds(options, vocabSize); // before any work: the sampler alone would notice only at the first token
  return { prompt, truncatedTokens, maxTokens, sampler };
}

/**
 * Whether `n` more requests may be queued beside `active` ones in slots and `queued` waiting: only those
 * that would wait count against maxQueue (with a free slot, maxQueue 0 still serves). Throws QueueFullError.
 */
export function checkQueue(n: number, active: number, queued: number, slots: number, maxQueue: number): void {
  const free = Math.max(0, slots - active - queued);
  const wait = Math.max(0, n - free);
  if (wait > 0 && queued + wait > maxQueue) throw new QueueFullError(maxQueue);
}

/** Why an aborted signal aborted: its reason, else an AbortError. */
export function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

type Item = { token: GeneratedToken } | { end: true } | { error: unknown };

/**
 * The queue behind a request's async iterator: tokens as they come, then its end or its error. Leaving
 * the iteration early cancels the request (nobody wants the rest: its slot is freed).
 */
export abstract class TokenQueue implements AsyncIterable<GeneratedToken> {
  private readonly items: Item[] = [];
  private wake: (() => void) | null = null;
  private iterated = false;

  abstract get isFinished(): boolean;
  abstract cancel(reason?: unknown): void;

  protected push(item: Item): void {
    this.items.push(item);
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<GeneratedToken> {
    if (this.iterated) throw new Error('a generation request can be iterated only once');
    this.iterated = true;
    return {
      next: async (): Promise<IteratorResult<GeneratedToken>> => {
        while (this.items.length === 0) await new Promise<void>((r) => { this.wake = r; });
        const item = this.items.shift()!;
        if ('token' in item) return { value: item.token, done: false };
        this.items.unshift(item); // stay ended
        if ('error' in item) throw item.error;
        return { value: undefined, done: true };
      },
      return: async (): Promise<IteratorResult<GeneratedToken>> => {
        if (!this.isFinished) this.cancel();
        return { value: undefined, done: true };
      },
    };
  }
}

/**
 * Requests submitted together with one prompt (n choices): the leader prefills it; when its prefill ends,
 * the KV cache and the logits of the last prompt token are kept, and every other member starts from a
 * copy of that cache and samples its first token from those logits — the prompt is prefilled once.
 * Members hold their slots while they wait (they are simply left out of the batch). If the leader ends
 * before its prefill does, another member takes over.
 */
class PrefillGroup {
  /** Members that have not yet started from the shared prefill (the leader is never among them). */
  readonly waiting = new Set<GenerationRequest>();
  /** The prefilled prompt and its last logits row; kept while members are waiting. */
  cache: EngineCache | null = null;
  row: Float32Array | null = null;

  constructor(public leader: GenerationRequest) {}

  get ready(): boolean {
    return this.row !== null;
  }

  /** A member's own cache: a copy of the shared one, or the shared one itself for the last member. */
  take(r: GenerationRequest): EngineCache {
    this.waiting.delete(r);
    if (this.waiting.size > 0) return this.cache!.clone!();
    const c = this.cache!;
    this.cache = null;
    this.row = null;
    return c;
  }
}

/** One request: an async iterator of its tokens, plus its statistics once finished. */
export class GenerationRequest extends TokenQueue implements EngineRequest {
  readonly prompt: number[];
  readonly stats: RequestStats;
  /** Resolves with the stats when the request ends (whatever the reason); never rejects. */
  readonly done: Promise<RequestStats>;

  /** @internal scheduler state: prompt tokens whose pass has landed */
  prefilled = 0;
  /** @internal prompt tokens sent into a pass (ahead of `prefilled` while a pipeline's chunks are in flight) */
  fed = 0;
  /** @internal */ cache: EngineCache | null = null;
  /** @internal */ lastToken = -1;
  /** @internal */ readonly history: TokenHistory;
  /** @internal */ readonly rng: Rng;
  /** @internal */ readonly submittedAt = performance.now();
  /** @internal */ admittedAt = 0;
  /** @internal */ firstTokenAt = 0;
  /** @internal */ pending: GeneratedToken[] = [];
  /** @internal requests sharing this one's prompt and prefill (submitMany) */ group: PrefillGroup | null = null;
  /** @internal tokens sampled so far (EOS included): the next one is generated token number `sampled` */ sampled = 0;
  /** @internal the ids sampled so far, in order (what the cache holds after the prompt) */ readonly sampledIds: number[] = [];
  /** @internal with responseFormat: the grammar's matcher once compiled, and whether its next mask is computed */
  constraint: TokenConstraint | null = null;
  /** @internal */ constraintPrepared = false;
  /** @internal passes over this request in flight (a pipeline's micro-batches): only prompt chunks may overlap */
  flying = 0;
  /** @internal with routing: emitted tokens waiting for their routing, and their generated-token numbers */
  readonly held: { token: GeneratedToken; index: number }[] = [];
  /** @internal with routing: generated token number → its routing, until the token is emitted */
  readonly routes = new Map<number, TokenRouting>();
  /** @internal generated token number of each sampled token not yet emitted (stop sequences hold tokens back) */
  readonly indexOf = new WeakMap<GeneratedToken, number>();
  private promptRoutes: TokenRouting[] = [];

  private resolveDone!: (s: RequestStats) => void;
  private finished = false;

  constructor(
    prompt: number[],
    truncatedTokens: number,
    readonly options: GenerateOptions,
    readonly sampler: Sampler,
    seed: number,
    readonly maxTokens: number,
    private readonly onCancel: (r: GenerationRequest) => void,
  ) {
    super();
    this.prompt = prompt;
    this.history = new TokenHistory(prompt);
    this.rng = new Rng(seed);
    this.stats = {
      seed, promptTokens: prompt.length, cachedTokens: 0, truncatedTokens, generatedTokens: 0, finishReason: 'length',
      queuedMs: 0, prefillMs: 0, decodeMs: 0,
    };
    this.done = new Promise((r) => { this.resolveDone = r; });
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** With the routing option: where each prompt token went (complete once the prompt is prefilled). */
  get promptRouting(): readonly TokenRouting[] {
    return this.promptRoutes;
  }

  /** @internal */
  emit(token: GeneratedToken): void {
    this.stats.generatedTokens++;
    if (!this.options.routing) { this.push({ token }); return; }
    this.held.push({ token, index: this.indexOf.get(token)! });
    this.release();
  }

  /** @internal the routing of the token at `position` (prompt or generated) is known */
  routed(position: number, routing: TokenRouting): void {
    if (position < this.prompt.length) { this.promptRoutes[position] = routing; return; }
    this.routes.set(position - this.prompt.length, routing);
    this.release();
  }

  /** @internal share another request's prompt routing (same prompt, prefilled once) */
  adoptPromptRouting(from: GenerationRequest): void {
    this.promptRoutes = from.promptRoutes;
  }

  /** @internal emit held tokens whose routing is known (all of them with `force`) */
  release(force = false): void {
    while (this.held.length > 0) {
      const { token, index } = this.held[0]!;
      const routing = this.routes.get(index);
      if (!routing && !force) break;
      this.held.shift();
      this.routes.delete(index);
      if (routing) token.routing = routing;
      this.push({ token });
    }
  }

  /** @internal */
  finish(reason: FinishReason, error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    const now = performance.now();
    this.stats.finishReason = reason;
    if (this.admittedAt) {
      this.stats.queuedMs = this.admittedAt - this.submittedAt;
      if (this.firstTokenAt) {
        this.stats.prefillMs = this.firstTokenAt - this.admittedAt;
        this.stats.decodeMs = now - this.firstTokenAt;
      } else {
        this.stats.prefillMs = now - this.admittedAt;
      }
    } else {
      this.stats.queuedMs = now - this.submittedAt;
    }
    this.cache?.release?.();
    this.cache = null; // the KV cache is released with the slot
    this.constraint?.release();
    this.constraint = null;
    this.push(error === undefined ? { end: true } : { error });
    this.resolveDone(this.stats);
  }

  /** Cancel: frees the slot (or the queue place) immediately; iteration ends with an AbortError. */
  cancel(reason?: unknown): void {
    if (this.finished) return;
    this.onCancel(this);
    this.finish('cancelled', reason ?? new DOMException('The operation was aborted', 'AbortError'));
  }
}

/** A pass begun over `batch` and not yet landed (Scheduler.launch / land). */
interface Flight {
  batch: GenerationRequest[];
  seqs: { tokens: number[]; cache: EngineCache }[];
  t0: number;
  /** Waits for the pass's logits (at once for a model that is not pipelined). */
  logits: () => Float32Array;
}

/** Steps whose time per token sizes the next prefill chunk (maxStepMs): a few, so that it follows the load. */
const TIMED_STEPS = 4;

/** Thrown through the model by the checkpoint: the pass is abandoned, and redone without the cancelled sequences. */
class PassAbandoned extends Error {}

export class Scheduler implements Engine {
  readonly slots: number;
  readonly prefillChunk: number;
  readonly maxStepMs: number | null;
  readonly maxQueue: number;
  private readonly clock: () => number;
  /** The last timed steps: rows fed and ms taken (maxStepMs). */
  private readonly timed: { rows: number; ms: number }[] = [];
  private readonly queue: GenerationRequest[] = [];
  private readonly active: GenerationRequest[] = [];
  /** Passes sent on and not yet answered (a pipeline's micro-batches), oldest first. */
  private readonly flights: Flight[] = [];
  private running = false;
  private closed = false;
  /** Forward calls made (for tests and benchmarks). */
  steps = 0;
  /** Prompt tokens fed to the model (a prompt shared by submitMany counts once; the prefix cache's are not fed). */
  prefilledTokens = 0;
  /** Keys and values of earlier sequences, shared by all requests (null with prefixCacheBytes 0). */
  readonly prefixCache: PrefixCache | null;
  /** Forward passes abandoned between layers for cancelled sequences (isCancelled). */
  abandonedSteps = 0;
  private readonly isCancelled: ((r: GenerationRequest) => boolean) | null;

  private readonly grammar: (() => Promise<GrammarEngine>) | undefined;

  constructor(readonly model: BatchModel, opts: SchedulerOptions = {}) {
    this.grammar = opts.grammar;
    this.isCancelled = opts.isCancelled ?? null;
    this.slots = opts.slots ?? 4;
    this.prefillChunk = opts.prefillChunk ?? 256;
    this.maxStepMs = opts.maxStepMs ?? null;
    if (this.maxStepMs !== null && !(this.maxStepMs > 0 && Number.isFinite(this.maxStepMs))) throw new RangeError(`maxStepMs must be a number > 0, got ${this.maxStepMs}`);
    this.clock = opts.clock ?? (() => performance.now());
    this.maxQueue = opts.maxQueue ?? Infinity;
    const pcb = opts.prefixCacheBytes ?? 0;
    if (!(pcb >= 0)) throw new RangeError(`prefixCacheBytes must be ≥ 0, got ${pcb}`);
    this.prefixCache = pcb > 0 ? new PrefixCache(pcb) : null;
    if (!Number.isInteger(this.slots) || this.slots < 1) throw new RangeError(`slots must be an integer ≥ 1, got ${this.slots}`);
    if (!Number.isInteger(this.prefillChunk) || this.prefillChunk < 1) throw new RangeError(`prefillChunk must be an integer ≥ 1, got ${this.prefillChunk}`);
    if (!(this.maxQueue >= 0)) throw new RangeError(`maxQueue must be ≥ 0, got ${this.maxQueue}`);
  }

  get activeCount(): number {
    return this.active.length;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /**
   * Queue a request. Throws synchronously on bad options (SamplingError, RangeError), a prompt that does
   * not fit (ContextLengthError) or a full queue (QueueFullError).
   */
  submit(promptIn: ArrayLike<number>, options: GenerateOptions = {}): GenerationRequest {
    return this.submitMany(promptIn, [options])[0]!;
  }

  /**
   * Queue several requests on one prompt (n choices) that share its prefill: it is computed once and each
   * request continues from a copy of the KV cache, with the tokens it would have produced alone. Members
   * whose options truncate the prompt differently or allow a different number of tokens run on their own.
   * All or none are queued; throws as submit does.
   */
  submitMany(promptIn: ArrayLike<number>, optionsList: readonly GenerateOptions[]): GenerationRequest[] {
    if (this.closed) throw new Error('the scheduler is closed');
    const reqs = optionsList.map((o) => this.prepare(promptIn, o));
    checkQueue(reqs.length, this.active.length, this.queue.length, this.slots, this.maxQueue);
    for (const o of optionsList) if (o.signal?.aborted) throw abortError(o.signal);
    const leaders: GenerationRequest[] = [];
    for (const r of reqs) {
      const leader = leaders.find((l) => l.maxTokens === r.maxTokens && !l.options.routing === !r.options.routing && sameIds(l.prompt, r.prompt));
      if (!leader) { leaders.push(r); continue; }
      leader.group ??= new PrefillGroup(leader);
      leader.group.waiting.add(r);
      r.group = leader.group;
    }
    for (const r of reqs) if (r.options.responseFormat) this.compile(r, r.options.responseFormat);
    for (const r of reqs) {
      const signal = r.options.signal;
      if (signal) {
        const onAbort = (): void => r.cancel(abortError(signal));
        signal.addEventListener('abort', onAbort, { once: true });
        void r.done.then(() => signal.removeEventListener('abort', onAbort));
      }
      this.queue.push(r);
    }
    this.admit(); // straight into free slots, so only requests that really wait count against maxQueue
    this.kick();
    return reqs;
  }

  /** Validate a request and build it (not yet queued). */
  private prepare(promptIn: ArrayLike<number>, options: GenerateOptions): GenerationRequest {
    const { prompt, truncatedTokens, maxTokens, sampler } = checkRequest(promptIn, options, this.model.config);
    if (options.responseFormat && !this.grammar) throw new SamplingError('responseFormat', 'responseFormat: structured output needs the model\'s vocabulary (a tokenizer); this engine has none');
    const seed = options.seed ?? randomSeed();
    return new GenerationRequest(prompt, truncatedTokens, options, sampler, seed, maxTokens, (r) => this.remove(r));
  }

  /**
   * The longest cached prefix of `tokens` with its rows (for saving to disk: `grok serve --slot-save-path`);
   * null when nothing of it is cached.
   */
  exportPrefix(tokens: readonly number[]): { tokens: number[]; rows: CacheRows } | null {
    const pc = this.prefixCache;
    if (!pc) throw new Error('there is no prefix cache to save from (prefixCacheBytes 0)');
    const cache = this.model.newCache(Math.max(1, Math.min(tokens.length, this.model.config.contextLength)));
    if (!cache.exportRows) throw new Error('this model\'s caches cannot be copied out');
    const n = pc.restore(tokens, tokens.length, cache, { count: false });
    return n === 0 ? null : { tokens: tokens.slice(0, n), rows: cache.exportRows(0, n) };
  }

  /** Put rows read back (exportPrefix's, from disk) into the prefix cache, as if `tokens` had just been computed. */
  importPrefix(tokens: readonly number[], rows: CacheRows): void {
    const pc = this.prefixCache;
    if (!pc) throw new Error('there is no prefix cache to restore into (prefixCacheBytes 0)');
    if (rows.length !== tokens.length || tokens.length === 0) throw new RangeError(`importPrefix: ${tokens.length} tokens, ${rows.length} positions of rows`);
    const cache = this.model.newCache(tokens.length);
    if (!cache.importRows) throw new Error('this model\'s caches cannot take rows');
    cache.importRows(rows, tokens.length);
    pc.insert(tokens, cache);
  }

  /** Cancel everything and refuse new requests. */
  close(): void {
    this.closed = true;
    for (const r of [...this.queue, ...this.active]) r.cancel(new Error('the engine was closed'));
  }

  private remove(r: GenerationRequest): void {
    if (r.group) this.leave(r);
    let i = this.active.indexOf(r);
    if (i >= 0) this.active.splice(i, 1);
    i = this.queue.indexOf(r);
    if (i >= 0) this.queue.splice(i, 1);
    this.kick(); // a freed slot admits the next waiting request
  }

  /** r ends: it no longer waits for the shared prefill; a leader that had not finished it hands over. */
  private leave(r: GenerationRequest): void {
    const g = r.group!;
    r.group = null;
    g.waiting.delete(r);
    if (g.leader === r && !g.ready) {
      // Prefer a member already holding a slot: it starts prefilling at the next step.
      const next = [...g.waiting].sort((a, b) => Number(this.active.includes(b)) - Number(this.active.includes(a)))[0];
      if (!next) return;
      g.waiting.delete(next);
      g.leader = next;
      if (this.active.includes(next)) this.startCache(next);
    }
    if (g.waiting.size === 0) { g.cache?.release?.(); g.cache = null; g.row = null; }
  }

  /**
   * A fresh KV cache with room for the prompt and every token that will be fed back (the last sampled one
   * never is), holding the longest cached prefix of the prompt. The last prompt token is always fed: its
   * logits give the first token. A routing request feeds all (the cache keeps no routing).
   */
  private startCache(r: GenerationRequest): boolean {
    const { contextLength } = this.model.config;
    const capacity = Math.min(contextLength, r.prompt.length + (r.maxTokens === Infinity ? contextLength : r.maxTokens));
    try {
      const cache = this.model.newCache(capacity);
      r.prefilled = this.prefixCache && !r.options.routing ? this.prefixCache.restore(r.prompt, r.prompt.length - 1, cache) : 0;
      r.fed = r.prefilled;
      r.stats.cachedTokens = r.prefilled;
      r.cache = cache;
      return true;
    } catch (e) {
      this.remove(r);
      r.finish('error', e);
      return false;
    }
  }

  /** A waiting member starts from the shared prefill: its copy of the cache, its first token from the shared logits. */
  private fork(r: GenerationRequest, g: PrefillGroup): void {
    const row = g.row!;
    r.adoptPromptRouting(g.leader);
    r.stats.cachedTokens = g.leader.stats.cachedTokens;
    r.cache = g.take(r);
    r.group = null;
    r.prefilled = r.fed = r.prompt.length;
    try {
      this.advance(r, r.constraint ? row.slice() : row); // a grammar masks the row it samples from: not the shared one
    } catch (e) {
      this.remove(r);
      r.finish('error', e);
    }
  }

  /**
   * Compile r's grammar (XGrammar caches compiled grammars) and its first mask; r waits in the queue until
   * then. A grammar that cannot be compiled ends r with the error.
   */
  private compile(r: GenerationRequest, format: ResponseFormat): void {
    void (async () => {
      const c = await (await this.grammar!()).constraint(format);
      await c.prepare();
      return c;
    })().then((c) => {
      if (r.isFinished) { c.release(); return; }
      r.constraint = c;
      r.constraintPrepared = true;
      this.kick();
    }, (e: unknown) => {
      this.remove(r);
      r.finish('error', e);
    });
  }

  /**
   * A request may take a slot: it has no grammar or its grammar is compiled, and it does not wait for the
   * shared prefill of a leader still queued (members holding every slot would leave the leader none).
   */
  private ready(r: GenerationRequest): boolean {
    if (r.options.responseFormat && r.constraint === null) return false;
    const g = r.group;
    return !g || g.leader === r || g.ready || this.active.includes(g.leader);
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        this.admit();
        // Passes still in flight land even when every request in them has ended (their answers are collected).
        if (this.active.length === 0 && this.flights.length === 0) break;
        // Grammars compute the tokens they allow next (asynchronously, in XGrammar) before the step samples.
        const unprepared = this.active.filter((r) => r.constraint && !r.constraintPrepared);
        if (unprepared.length > 0) {
          await Promise.all(unprepared.map(async (r) => {
            try {
              await r.constraint!.prepare();
              r.constraintPrepared = true;
            } catch (e) {
              this.remove(r);
              r.finish('error', e);
            }
          }));
          continue; // a request may have ended meanwhile: admit again
        }
        this.step();
        // Let I/O, new submissions and cancellations in between forward passes.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
    }
    if (this.queue.length > 0) this.kick();
  }

  private admit(): void {
    while (this.active.length < this.slots) {
      // The first waiting request that can start (a grammar still compiling lets later ones pass).
      const i = this.queue.findIndex((q) => this.ready(q));
      if (i < 0) break;
      const r = this.queue.splice(i, 1)[0]!;
      r.admittedAt = performance.now();
      this.active.push(r);
      const g = r.group;
      if (g && g.leader !== r) {
        if (g.ready) this.fork(r, g);
        continue; // otherwise it holds its slot until the leader's prefill ends
      }
      this.startCache(r);
    }
  }

  /**
   * One batched forward pass over every active sequence, then one sampled token for each that is past prefill.
   * A pipelined model (BatchModel.begin) instead keeps up to `depth` passes in flight over groups of the
   * sequences (a sequence in one pass at a time, but for its prompt's successive chunks): while one group's
   * hidden states are on the later stages, the next group's run here. Each call starts a group while there is
   * room and a sequence to start, else lands the oldest pass.
   */
  private step(): void {
    // Members waiting for a shared prefill hold a slot but have nothing to feed yet. A sequence in flight waits
    // for its logits, unless it still has prompt to send: its next chunk follows the one ahead through the stages.
    const ready = this.active.filter((r) => r.cache !== null && (r.flying === 0 || r.fed < r.prompt.length));
    const depth = this.model.begin ? Math.max(1, this.model.depth ?? 1) : 1;
    if (depth === 1) {
      if (ready.length === 0) return;
      const f = this.launch(ready);
      if (f) this.land(f);
      return;
    }
    if (this.flights.length < depth && ready.length > 0) {
      // Groups of even size: the sequences running now over the passes the pipe holds.
      let flying = 0;
      for (const f of this.flights) flying += f.batch.length;
      const f = this.launch(ready.slice(0, Math.ceil((ready.length + flying) / depth)));
      if (f) this.flights.push(f);
      return;
    }
    const f = this.flights.shift();
    if (f) this.land(f);
  }

  /** Start a pass over `batch`: its prompt chunks or last tokens. Null when it failed or was abandoned (handled here). */
  private launch(batch: GenerationRequest[]): Flight | null {
    const chunk = this.chunkSize(batch);
    const seqs = batch.map((r) => {
      if (r.fed < r.prompt.length) {
        return { tokens: r.prompt.slice(r.fed, Math.min(r.prompt.length, r.fed + chunk)), cache: r.cache! };
      }
      return { tokens: [r.lastToken], cache: r.cache! };
    });
    const t0 = this.clock();
    try {
      const logits = this.begin(batch, seqs, this.checkpoint(batch, seqs));
      batch.forEach((r, i) => {
        r.flying++;
        if (r.fed < r.prompt.length) r.fed += seqs[i]!.tokens.length;
      });
      return { batch, seqs, t0, logits };
    } catch (e) {
      if (e instanceof PassAbandoned) {
        // Nothing of the pass was kept: the others feed the same tokens again at the next step.
        this.abandonedSteps++;
        for (const r of batch) if (this.isCancelled!(r)) r.cancel();
        return null;
      }
      for (const r of batch) { this.remove(r); r.finish('error', e); }
      return null;
    }
  }

  /** A pass's logits: the prefill progress of its sequences, and one sampled token for each past prefill. */
  private land({ batch, seqs, t0, logits: wait }: Flight): void {
    for (const r of batch) r.flying--;
    // Requests that ended while their pass was in flight (cancelled) take no part in it any more.
    let logits: Float32Array;
    try {
      logits = wait();
      if (this.maxStepMs !== null) this.timeStep(seqs.reduce((a, sq) => a + sq.tokens.length, 0), this.clock() - t0);
    } catch (e) {
      for (const r of batch) { if (r.isFinished) continue; this.remove(r); r.finish('error', e); }
      return;
    }
    this.steps++;
    const prefillEnds: GenerationRequest[] = [];
    batch.forEach((r, i) => {
      if (r.isFinished || r.prefilled >= r.prompt.length) return;
      r.prefilled += seqs[i]!.tokens.length;
      this.prefilledTokens += seqs[i]!.tokens.length;
      if (r.prefilled === r.prompt.length) prefillEnds.push(r);
    });
    // Requests arriving meanwhile with the same start need not wait for this one to end.
    for (const r of prefillEnds) this.cacheInsert(r.prompt, r.cache!);
    const V = this.model.config.vocabSize;
    if (logits.length !== batch.length * V) {
      const e = new Error(`model returned ${logits.length} logits for ${batch.length} sequences of vocabulary ${V}`);
      for (const r of batch) { if (r.isFinished) continue; this.remove(r); r.finish('error', e); }
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i];
      if (r.isFinished || r.prefilled < r.prompt.length) continue; // still in prefill: this row is not needed
      const row = logits.subarray(i * V, (i + 1) * V);
      let g = r.group && r.group.leader === r && !r.group.ready ? r.group : null;
      if (g && g.waiting.size === 0) { r.group = null; g = null; } // every other member has ended: nothing to share
      if (g) this.share(r, g, row);
      try {
        this.advance(r, row);
      } catch (e) {
        this.remove(r);
        r.finish('error', e);
      }
      // Members holding slots start now, after the leader (the order their tokens would have come alone).
      if (g) for (const m of [...g.waiting]) if (this.active.includes(m)) this.fork(m, g);
    }
  }

  /**
   * The prompt tokens each prefilling sequence feeds this step: prefillChunk, or with maxStepMs what fits the
   * target at the fixed cost and time per token of the last steps, after the decoding sequences' one token
   * each, shared by the sequences in prefill. Before any step was timed: a probe of at most 16 tokens.
   */
  private chunkSize(batch: readonly GenerationRequest[]): number {
    if (this.maxStepMs === null) return this.prefillChunk;
    const prefilling = batch.filter((r) => r.fed < r.prompt.length).length;
    if (prefilling === 0) return this.prefillChunk;
    let rows = 0, ms = 0;
    for (const t of this.timed) { rows += t.rows; ms += t.ms; }
    if (rows === 0) return Math.min(this.prefillChunk, 16);
    // A step costs a fixed part (reading the weights: most of a decode step on a large model) plus a part per
    // row; with steps of different sizes, a least-squares line through them separates the two. Otherwise (one
    // size, or a line that makes no sense under a changing load) the mean time per row, which over-counts.
    const n = this.timed.length, mr = rows / n, mt = ms / n;
    let vr = 0, cov = 0;
    for (const t of this.timed) { vr += (t.rows - mr) ** 2; cov += (t.rows - mr) * (t.ms - mt); }
    let fixed = 0, perRow = ms / rows;
    if (vr > 0 && cov > 0 && mt - (cov / vr) * mr >= 0) { perRow = cov / vr; fixed = mt - perRow * mr; }
    const fit = perRow > 0 ? Math.floor((this.maxStepMs - fixed) / perRow) : Infinity;
    return Math.max(1, Math.min(this.prefillChunk, Math.floor((fit - (batch.length - prefilling)) / prefilling)));
  }

  /** A step of `rows` tokens took `ms`: the last few such measures make the time per token. */
  private timeStep(rows: number, ms: number): void {
    this.timed.push({ rows, ms });
    if (this.timed.length > TIMED_STEPS) this.timed.shift();
  }

  /**
   * With isCancelled: the check between layers. A pass whose sequences include cancelled ones is abandoned
   * when redoing the others' rows from the start costs less than the layers left for all of them (rows as
   * the measure of work): at once for a cancelled prompt chunk beside a few decoding tokens, not for one
   * decoding token among many near the end of the pass.
   */
  private checkpoint(batch: readonly GenerationRequest[], seqs: readonly { tokens: number[] }[]): Checkpoint | undefined {
    const isCancelled = this.isCancelled;
    if (!isCancelled) return undefined;
    return (layer, layers) => {
      let gone = 0, kept = 0;
      batch.forEach((r, i) => { if (isCancelled(r)) gone += seqs[i]!.tokens.length; else kept += seqs[i]!.tokens.length; });
      if (gone > 0 && kept * layers < (gone + kept) * (layers - layer)) throw new PassAbandoned();
    };
  }

  /**
   * One forward call; with routing requests in the batch, their tokens' routing is collected layer by layer
   * and handed to each request by position.
   */
  private forward(batch: readonly GenerationRequest[], seqs: { tokens: number[]; cache: EngineCache }[], checkpoint?: Checkpoint): Float32Array {
    return this.begin(batch, seqs, checkpoint)();
  }

  /** forward, begun: a pipelined model's pass is still in flight until the returned function is called. */
  private begin(batch: readonly GenerationRequest[], seqs: { tokens: number[]; cache: EngineCache }[], checkpoint?: Checkpoint): () => Float32Array {
    const spans: { r: GenerationRequest; row0: number; pos0: number; recs: TokenRouting[] }[] = [];
    let row = 0;
    seqs.forEach((sq, i) => {
      const r = batch[i]!;
      if (r.options.routing) {
        spans.push({ r, row0: row, pos0: sq.cache.length, recs: Array.from({ length: sq.tokens.length }, () => ({ experts: [], gates: [] })) });
      }
      row += sq.tokens.length;
    });
    const check = checkpoint ? { checkpoint } : {};
    if (spans.length === 0) {
      if (this.model.begin) return this.model.begin(seqs, { lastOnly: true, ...check });
      const logits = this.model.forward(seqs, { lastOnly: true, ...check });
      return () => logits;
    }
    const onRoute: RouteFn = (_layer, chosen, gates, rows) => {
      const A = chosen.length / rows;
      for (const sp of spans) {
        sp.recs.forEach((rec, t) => {
          const n = sp.row0 + t;
          rec.experts.push(Array.from(chosen.subarray(n * A, (n + 1) * A)));
          rec.gates.push(Array.from(gates.subarray(n * A, (n + 1) * A)));
        });
      }
    };
    const logits = this.model.forward(seqs, { lastOnly: true, onRoute, ...check });
    for (const sp of spans) sp.recs.forEach((rec, t) => sp.r.routed(sp.pos0 + t, rec));
    return () => logits;
  }

  /** A routing request ends: its last token was never fed back, so feed it alone once to learn its routing. */
  private routeLast(r: GenerationRequest): void {
    if (!r.options.routing || r.held.length === 0) return;
    const cache = r.cache;
    const lastHeld = r.held.some((h) => h.index === r.sampled - 1); // else every held token was fed already
    if (lastHeld && cache && cache.length < cache.capacity) {
      try {
        this.forward([r], [{ tokens: [r.lastToken], cache }]);
        this.steps++;
      } catch { /* the tokens go out without their routing */ }
    }
    r.release(true);
  }

  /** r ends: its prompt and the tokens fed after it go to the prefix cache (a chat's next turn starts with them). */
  private remember(r: GenerationRequest): void {
    const cache = r.cache;
    if (!this.prefixCache || !cache) return;
    this.cacheInsert([...r.prompt, ...r.sampledIds].slice(0, cache.length), cache);
  }

  /** The prefix cache only saves work: rows it could not copy (no memory) are simply not cached. */
  private cacheInsert(tokens: number[], cache: EngineCache): void {
    try {
      this.prefixCache?.insert(tokens, cache);
    } catch { /* not cached */ }
  }

  /** The leader's prefill is done: keep its cache and last logits for the members. */
  private share(leader: GenerationRequest, g: PrefillGroup, row: Float32Array): void {
    leader.group = null;
    const clone = leader.cache?.clone?.bind(leader.cache);
    if (!clone) {
      // The cache cannot be copied: every member prefills on its own after all.
      for (const m of g.waiting) { m.group = null; if (this.active.includes(m)) this.startCache(m); }
      g.waiting.clear();
      return;
    }
    g.cache = clone();
    g.row = row.slice();
  }

  /** Sample one token for r and apply every stop rule. */
  private advance(r: GenerationRequest, row: Float32Array): void {
    const o = r.options;
    const c = r.constraint;
    if (c) {
      if (!r.constraintPrepared) throw new Error('internal: a grammar-constrained request sampled before its mask was computed');
      c.mask(row);
    }
    const s = r.sampler(row, r.history, r.rng);
    if (c) {
      r.constraintPrepared = false;
      if (!c.accept(s.id)) throw new Error(`internal: the grammar rejected token ${s.id}, which its mask allowed`);
    }
    r.sampled++;
    r.sampledIds.push(s.id);
    if (!r.firstTokenAt) r.firstTokenAt = performance.now();
    r.history.push(s.id);
    r.lastToken = s.id;
    const end = (reason: FinishReason): void => { this.routeLast(r); this.remember(r); this.remove(r); r.finish(reason); };

    if ((!o.ignoreEos && s.id === this.model.config.eosToken) || o.stopTokens?.includes(s.id)) {
      end('stop');
      return;
    }
    const token: GeneratedToken = s.top ? { id: s.id, logprob: s.logprob, top: s.top } : { id: s.id, logprob: s.logprob };
    if (o.routing) r.indexOf.set(token, r.sampled - 1);
    let stopped = false;
    const stops = o.stopSequences;
    if (stops && stops.length > 0) {
      // Hold back tokens while they could still be the start of a stop sequence.
      r.pending.push(token);
      const ids = r.pending.map((t) => t.id);
      for (const seq of stops) {
        if (endsWith(ids, seq)) {
          r.pending.length -= seq.length;
          stopped = true;
          break;
        }
      }
      const hold = stopped ? 0 : longestPrefixSuffix(ids, stops);
      const release = r.pending.splice(0, r.pending.length - hold);
      for (const t of release) {
        r.emit(t);
        if (o.onToken?.(t.id)) { stopped = true; break; }
      }
      if (stopped) r.pending.length = 0;
    } else {
      r.emit(token);
      if (o.onToken?.(token.id)) stopped = true;
    }
    if (stopped) {
      end('stop');
      return;
    }
    const sampled = sumCounts(r);
    if (sampled >= r.maxTokens || r.prompt.length + sampled >= this.model.config.contextLength) {
      // Held-back tokens that never completed a stop sequence are output after all.
      for (const t of r.pending.splice(0)) {
        r.emit(t);
        if (o.onToken?.(t.id)) { end('stop'); return; }
      }
      end('length');
    }
  }
}

/** Token ids named by sampling options (logit bias, allowed tokens) must lie inside the vocabulary. */
function checkTokenIds(o: SamplingOptions, vocabSize: number): void {
  const bias = o.logitBias ? (o.logitBias instanceof Map ? [...o.logitBias.keys()] : Object.keys(o.logitBias).map(Number)) : [];
  for (const id of bias) {
    if (id >= vocabSize) throw new SamplingError('logitBias', `logitBias: token id ${id} is outside the vocabulary (0…${vocabSize - 1})`);
  }
  for (const id of o.allowedTokens ?? []) {
    if (id >= vocabSize) throw new SamplingError('allowedTokens', `allowedTokens: token id ${id} is outside the vocabulary (0…${vocabSize - 1})`);
  }
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Tokens sampled so far (EOS excluded, since it ends the request before being counted). */
function sumCounts(r: GenerationRequest): number {
  return r.stats.generatedTokens + r.pending.length;
}

function endsWith(ids: number[], seq: readonly number[]): boolean {
  if (seq.length > ids.length) return false;
  const off = ids.length - seq.length;
  for (let i = 0; i < seq.length; i++) if (ids[off + i] !== seq[i]) return false;
  return true;
}
