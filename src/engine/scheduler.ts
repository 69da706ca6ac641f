/**
 * The generation engine: continuous batching over a fixed number of slots. It knows token ids only
 * (text, tokenizers and HTTP live in src/api).
 *
 * Every iteration makes ONE batched forward call for all active sequences: a decoding sequence feeds its
 * last token, a sequence still in prefill feeds its next prompt chunk (chunked prefill, so a long prompt
 * does not stall the others). New requests are admitted into free slots between iterations; between
 * iterations the event loop runs, so HTTP traffic and cancellations are handled while others decode.
 *
 * Determinism: each request has its own sampler state and RNG, and its prompt is cut into chunks of a fixed
 * size whatever else is running, so its tokens depend only on its prompt, options and seed — provided the
 * model computes each sequence's rows independently of the others in the batch (GrokModel does).
 *
 * Unlike the reference runner (runners.py), outputs are kept per request (it shares one list across slots),
 * generation stops at EOS, and temperature 0 is argmax.
 */
import { Rng, randomSeed } from './rng.js';
import { makeSampler, SamplingError, TokenHistory, type Sampler, type SamplingOptions, type TokenLogprob } from './sampling.js';

/** What the engine needs of a KV cache (src/model/grok.ts KVCache satisfies it). */
export interface EngineCache {
  readonly capacity: number;
  length: number;
}

/** What the engine needs of a model (src/model/grok.ts GrokModel satisfies it). */
export interface BatchModel {
  readonly config: { readonly vocabSize: number; readonly contextLength: number; readonly eosToken: number };
  newCache(capacity?: number): EngineCache;
  forward(seqs: { tokens: ArrayLike<number>; cache: EngineCache }[], opts?: { lastOnly?: boolean }): Float32Array;
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
}

export interface GeneratedToken extends TokenLogprob {
  top?: TokenLogprob[];
}

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface RequestStats {
  seed: number;
  promptTokens: number;
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
  /** Prompt tokens a sequence feeds per iteration while in prefill. Default 256. */
  prefillChunk?: number;
  /** Requests allowed to wait for a slot; more → QueueFullError. 0: no waiting, free slots still serve. Default unbounded. */
  maxQueue?: number;
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

type Item = { token: GeneratedToken } | { end: true } | { error: unknown };

/** One request: an async iterator of its tokens, plus its statistics once finished. */
export class GenerationRequest implements AsyncIterable<GeneratedToken> {
  readonly prompt: number[];
  readonly stats: RequestStats;
  /** Resolves with the stats when the request ends (whatever the reason); never rejects. */
  readonly done: Promise<RequestStats>;

  /** @internal scheduler state */
  prefilled = 0;
  /** @internal */ cache: EngineCache | null = null;
  /** @internal */ lastToken = -1;
  /** @internal */ readonly history: TokenHistory;
  /** @internal */ readonly rng: Rng;
  /** @internal */ readonly submittedAt = performance.now();
  /** @internal */ admittedAt = 0;
  /** @internal */ firstTokenAt = 0;
  /** @internal */ pending: GeneratedToken[] = [];

  private readonly items: Item[] = [];
  private wake: (() => void) | null = null;
  private resolveDone!: (s: RequestStats) => void;
  private finished = false;
  private iterated = false;

  constructor(
    prompt: number[],
    truncatedTokens: number,
    readonly options: GenerateOptions,
    readonly sampler: Sampler,
    seed: number,
    readonly maxTokens: number,
    private readonly onCancel: (r: GenerationRequest) => void,
  ) {
    this.prompt = prompt;
    this.history = new TokenHistory(prompt);
    this.rng = new Rng(seed);
    this.stats = {
      seed, promptTokens: prompt.length, truncatedTokens, generatedTokens: 0, finishReason: 'length',
      queuedMs: 0, prefillMs: 0, decodeMs: 0,
    };
    this.done = new Promise((r) => { this.resolveDone = r; });
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** @internal */
  emit(token: GeneratedToken): void {
    this.stats.generatedTokens++;
    this.push({ token });
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
    this.cache = null; // the KV cache is released with the slot
    this.push(error === undefined ? { end: true } : { error });
    this.resolveDone(this.stats);
  }

  /** Cancel: frees the slot (or the queue place) immediately; iteration ends with an AbortError. */
  cancel(reason?: unknown): void {
    if (this.finished) return;
    this.onCancel(this);
    this.finish('cancelled', reason ?? new DOMException('The operation was aborted', 'AbortError'));
  }

  private push(item: Item): void {
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
      // The consumer stopped early (break / return): nobody wants the rest, so free the slot.
      return: async (): Promise<IteratorResult<GeneratedToken>> => {
        if (!this.finished) this.cancel();
        return { value: undefined, done: true };
      },
    };
  }
}

export class Scheduler {
  readonly slots: number;
  readonly prefillChunk: number;
  readonly maxQueue: number;
  private readonly queue: GenerationRequest[] = [];
  private readonly active: GenerationRequest[] = [];
  private running = false;
  private closed = false;
  /** Forward calls made (for tests and benchmarks). */
  steps = 0;

  constructor(readonly model: BatchModel, opts: SchedulerOptions = {}) {
    this.slots = opts.slots ?? 4;
    this.prefillChunk = opts.prefillChunk ?? 256;
    this.maxQueue = opts.maxQueue ?? Infinity;
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
    if (this.closed) throw new Error('the scheduler is closed');
    const { vocabSize, contextLength } = this.model.config;
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
    let truncated = 0;
    if (prompt.length >= contextLength) {
      if (options.truncate !== 'left') throw new ContextLengthError(prompt.length, contextLength);
      // Keep the last tokens, leaving room for the requested generation (at least one token).
      const keep = contextLength - Math.min(Math.max(1, maxTokens === Infinity ? 1 : maxTokens), contextLength - 1);
      truncated = prompt.length - keep;
      prompt = prompt.slice(truncated);
    }
    const sampler = makeSampler(options);
    checkTokenIds(options, vocabSize); // before any work: the sampler alone would notice only at the first token
    const seed = options.seed ?? randomSeed();
    // Only a request that would wait counts against maxQueue: with a free slot, maxQueue 0 still serves.
    const waits = this.active.length + this.queue.length >= this.slots;
    if (waits && this.queue.length >= this.maxQueue) throw new QueueFullError(this.maxQueue);
    const signal = options.signal;
    if (signal?.aborted) throw abortError(signal);
    const req = new GenerationRequest(prompt, truncated, options, sampler, seed, maxTokens, (r) => this.remove(r));
    if (signal) {
      const onAbort = (): void => req.cancel(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      void req.done.then(() => signal.removeEventListener('abort', onAbort));
    }
    this.queue.push(req);
    this.admit(); // straight into a free slot, so only requests that really wait count against maxQueue
    this.kick();
    return req;
  }

  /** Cancel everything and refuse new requests. */
  close(): void {
    this.closed = true;
    for (const r of [...this.queue, ...this.active]) r.cancel(new Error('the engine was closed'));
  }

  private remove(r: GenerationRequest): void {
    let i = this.active.indexOf(r);
    if (i >= 0) this.active.splice(i, 1);
    i = this.queue.indexOf(r);
    if (i >= 0) this.queue.splice(i, 1);
    this.kick(); // a freed slot admits the next waiting request
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
        if (this.active.length === 0) break;
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
    const { contextLength } = this.model.config;
    while (this.active.length < this.slots && this.queue.length > 0) {
      const r = this.queue.shift()!;
      // Room for the prompt and every token that will be fed back (the last sampled one never is).
      const capacity = Math.min(contextLength, r.prompt.length + (r.maxTokens === Infinity ? contextLength : r.maxTokens));
      try {
        r.cache = this.model.newCache(capacity);
      } catch (e) {
        r.finish('error', e);
        continue;
      }
      r.admittedAt = performance.now();
      this.active.push(r);
    }
  }

  /** One batched forward pass over every active sequence, then one sampled token for each that is past prefill. */
  private step(): void {
    const batch: GenerationRequest[] = [...this.active];
    const seqs = batch.map((r) => {
      if (r.prefilled < r.prompt.length) {
        const end = Math.min(r.prompt.length, r.prefilled + this.prefillChunk);
        const tokens = r.prompt.slice(r.prefilled, end);
        r.prefilled = end;
        return { tokens, cache: r.cache! };
      }
      return { tokens: [r.lastToken], cache: r.cache! };
    });
    let logits: Float32Array;
    try {
      logits = this.model.forward(seqs, { lastOnly: true });
    } catch (e) {
      for (const r of batch) { this.remove(r); r.finish('error', e); }
      return;
    }
    this.steps++;
    const V = this.model.config.vocabSize;
    if (logits.length !== batch.length * V) {
      const e = new Error(`model returned ${logits.length} logits for ${batch.length} sequences of vocabulary ${V}`);
      for (const r of batch) { this.remove(r); r.finish('error', e); }
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i];
      if (r.isFinished || r.prefilled < r.prompt.length) continue; // still in prefill: this row is not needed
      try {
        this.advance(r, logits.subarray(i * V, (i + 1) * V));
      } catch (e) {
        this.remove(r);
        r.finish('error', e);
      }
    }
  }

  /** Sample one token for r and apply every stop rule. */
  private advance(r: GenerationRequest, row: Float32Array): void {
    const o = r.options;
    const s = r.sampler(row, r.history, r.rng);
    if (!r.firstTokenAt) r.firstTokenAt = performance.now();
    r.history.push(s.id);
    r.lastToken = s.id;
    const end = (reason: FinishReason): void => { this.remove(r); r.finish(reason); };

    if ((!o.ignoreEos && s.id === this.model.config.eosToken) || o.stopTokens?.includes(s.id)) {
      end('stop');
      return;
    }
    const token: GeneratedToken = s.top ? { id: s.id, logprob: s.logprob, top: s.top } : { id: s.id, logprob: s.logprob };
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

/** Length of the longest suffix of ids that is a proper prefix of one of the sequences. */
function longestPrefixSuffix(ids: number[], seqs: readonly (readonly number[])[]): number {
  let best = 0;
  for (const seq of seqs) {
    for (let n = Math.min(seq.length - 1, ids.length); n > best; n--) {
      let ok = true;
      for (let i = 0; i < n; i++) if (ids[ids.length - n + i] !== seq[i]) { ok = false; break; }
      if (ok) { best = n; break; }
    }
  }
  return best;
}
