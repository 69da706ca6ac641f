/**
 * The model in a worker thread, seen from the main thread: startModelWorker / loadModelInWorker give a
 * WorkerGrok, the same text API as Grok (generate, complete, encode …) whose forward passes run in the
 * worker (./engine-worker.ts), so the main thread's event loop is never blocked by one.
 *
 * The main thread keeps the tokenizer and everything made of text (stop strings, streaming decode); the
 * worker keeps the model and the scheduler. EngineProxy is the Engine the text layer talks to: it checks
 * each request as the scheduler would (so bad requests fail synchronously, as in-thread), sends it, and
 * turns the worker's token and end messages back into requests to iterate.
 *
 * A worker that dies (an uncaught error, or terminated) fails every request in flight with its error and
 * every later one; `exited` says so, and `grok serve` then exits non-zero (no restart: reloading a large
 * model takes as long as starting afresh, which is the supervisor's job).
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import type { GrokConfig } from '../../model/config.js';
import type { ExpertCacheStats } from '../../model/expert-cache.js';
import type { TextTokenizer } from '../../tokenizer/load.js';
import { randomSeed } from '../../base/rng.js';
import {
  abortError, checkQueue, checkRequest, TokenQueue, type Engine, type EngineRequest, type GenerateOptions, type GeneratedToken,
  type RequestStats, type TokenRouting,
} from '../../engine/scheduler.js';
import { checkTokenizer, findTokenizer, NoTokenizerError, resolveModel, TextModel, type LoadModelOptions, type SlotSaved } from '../index.js';
import type { ResponseFormat } from '../../engine/grammar.js';
import {
  CancelFlags, dispatch, fromWire, type EngineState, type FromWorker, type Handlers, type RequestStart, type ToWorker,
  type WireGenerateOptions, type WorkerInit, type WorkerLoadOptions,
} from './protocol.js';
import { StageLink, type LinkStatus } from '../pipeline/link.js';
import { serveHops } from '../pipeline/leader.js';
import { modelIdentity } from '../pipeline/protocol.js';
import type { StageTls } from '../pipeline/tls.js';

/** How the worker ended. */
export interface WorkerExit {
  /** Asked for (close()); otherwise it crashed or was terminated. */
  expected: boolean;
  code: number;
  /** Why, when it did not end on request. */
  error?: Error;
}

export interface WorkerModelOptions extends LoadModelOptions {
  /**
   * Lower the worker's scheduling priority by this much (Linux nice, 0…19; default 10), so that this
   * thread's event loop is served before the model's threads when they compete for a core: health checks
   * and streamed tokens keep their latency on a machine whose cores the model keeps busy. Under autogroup or
   * cgroups (the common case) CPU time is shared between processes first, so the model loses nothing to
   * other programs by it; it does wait for this process's own main thread.
   */
  nice?: number;
  /**
   * Lead a pipeline: this process holds `layers` (0:K) and sends the hidden states to the stage at `next`
   * (src/api/pipeline), which must hold K on. `token`: the shared secret of `grok stage --stage-token`;
   * `tls`: mutual TLS (`--stage-tls-*`, src/api/pipeline/tls.ts).
   */
  pipeline?: { next: string; token?: string; tls?: StageTls; stepTimeoutMs?: number };
}

/** A model being loaded in a worker thread. */
export interface ModelLoading {
  /** The model's file or folder, resolved. */
  readonly path: string;
  /** The model, once loaded; rejects with the loading error (the worker has then ended). */
  readonly loaded: Promise<WorkerGrok>;
  /** Stop: a loading worker is terminated (`loaded` rejects), a loaded model closed. */
  stop(): Promise<void>;
}

/** One request as the main thread holds it: fed by the worker's messages. */
class RemoteRequest extends TokenQueue implements EngineRequest {
  readonly done: Promise<RequestStats>;
  promptRouting: readonly TokenRouting[] = [];
  private resolveDone!: (s: RequestStats) => void;
  private finished = false;
  private start: RequestStart | null = null;
  private generated = 0;
  private readonly submittedAt = performance.now();

  constructor(
    readonly id: number,
    /** Its cancel flag (CancelFlags), -1 for none. */
    readonly flag: number,
    readonly prompt: readonly number[],
    private readonly seed: number,
    private readonly truncatedTokens: number,
    private readonly onToken: ((id: number) => boolean) | undefined,
    private readonly cancelRemote: (r: RemoteRequest) => void,
  ) {
    super();
    this.done = new Promise((r) => { this.resolveDone = r; });
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** A token from the worker. onToken (stop strings) is asked here, as the scheduler asks it in-thread. */
  token(token: GeneratedToken, start?: RequestStart, promptRouting?: TokenRouting[]): void {
    if (this.finished) return; // sampled before the worker heard of the cancellation
    if (start) this.start = start;
    if (promptRouting) this.promptRouting = promptRouting;
    this.generated++;
    this.push({ token });
    let stop: boolean;
    try {
      stop = this.onToken?.(token.id) ?? false;
    } catch (e) {
      this.cancelRemote(this);
      this.finish(this.statsNow('error'), e);
      return;
    }
    if (stop) {
      this.cancelRemote(this);
      this.finish(this.statsNow('stop'));
    }
  }

  /** The worker ended the request. */
  ended(stats: RequestStats, error?: Error, promptRouting?: TokenRouting[]): void {
    if (promptRouting) this.promptRouting = promptRouting;
    this.finish(stats, error);
  }

  cancel(reason?: unknown): void {
    if (this.finished) return;
    this.cancelRemote(this);
    this.finish(this.statsNow('cancelled'), reason ?? new DOMException('The operation was aborted', 'AbortError'));
  }

  /** The stats of a request ended here (stop string, cancellation) before the worker knows it. */
  private statsNow(finishReason: RequestStats['finishReason']): RequestStats {
    const now = performance.now();
    const s = this.start;
    return {
      seed: this.seed, promptTokens: this.prompt.length, cachedTokens: s?.cachedTokens ?? 0, truncatedTokens: this.truncatedTokens,
      generatedTokens: this.generated, finishReason,
      queuedMs: s ? s.queuedMs : now - this.submittedAt,
      prefillMs: s ? s.prefillMs : 0,
      decodeMs: s ? Math.max(0, now - (s.firstTokenEpochMs - performance.timeOrigin)) : 0,
    };
  }

  private finish(stats: RequestStats, error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.push(error === undefined ? { end: true } : { error });
    this.resolveDone(stats);
  }
}

/** The Engine of a worker's scheduler, in the main thread. */
export class EngineProxy implements Engine {
  /** The worker's engine as last reported (before each forward pass and after each change). */
  state: EngineState;
  /** Requests the worker has not yet ended (those cancelled here included: they hold a slot until it does). */
  private readonly requests = new Map<number, RemoteRequest>();
  private nextId = 1;
  private closed = false;
  private failure: Error | null = null;

  constructor(
    readonly slots: number,
    private readonly maxQueue: number,
    private readonly config: Pick<GrokConfig, 'vocabSize' | 'contextLength' | 'eosToken'>,
    state: EngineState,
    private readonly flags: CancelFlags,
    private readonly post: (m: ToWorker) => void,
  ) {
    this.state = state;
  }

  get activeCount(): number {
    return Math.min(this.state.active, this.requests.size);
  }

  get queuedCount(): number {
    return this.requests.size - this.activeCount;
  }

  get prefixCache(): { stats(): NonNullable<EngineState['prefixCache']> } | null {
    const s = this.state.prefixCache;
    return s ? { stats: () => s } : null;
  }

  /** Why the worker is gone, once it is. */
  get failed(): Error | null {
    return this.failure;
  }

  submitMany(prompt: ArrayLike<number>, optionsList: readonly GenerateOptions[]): EngineRequest[] {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('the scheduler is closed');
    const checked = optionsList.map((o) => checkRequest(prompt, o, this.config));
    checkQueue(optionsList.length, this.activeCount, this.queuedCount, this.slots, this.maxQueue);
    for (const o of optionsList) if (o.signal?.aborted) throw abortError(o.signal);
    const wire: WireGenerateOptions[] = [];
    const reqs = optionsList.map((o, i) => {
      const { signal: _signal, onToken, allowedTokens, ...rest } = o;
      const seed = o.seed ?? randomSeed();
      wire.push({ ...rest, seed, ...(allowedTokens === undefined ? {} : { allowedTokens: [...allowedTokens] }) });
      return new RemoteRequest(this.nextId++, this.flags.take(), checked[i]!.prompt, seed, checked[i]!.truncatedTokens, onToken, (x) => this.cancelRemote(x));
    });
    try {
      this.post({ type: 'submit', ids: reqs.map((r) => r.id), flags: reqs.map((r) => r.flag), prompt: Array.from(prompt), options: wire });
    } catch (e) { // an option structured clone cannot copy (a function, a class instance): nothing was sent
      for (const r of reqs) this.flags.give(r.flag);
      throw e;
    }
    reqs.forEach((r, i) => {
      this.requests.set(r.id, r);
      const signal = optionsList[i]!.signal;
      if (signal) {
        const onAbort = (): void => r.cancel(abortError(signal));
        signal.addEventListener('abort', onAbort, { once: true });
        void r.done.then(() => signal.removeEventListener('abort', onAbort));
      }
    });
    return reqs;
  }

  /** Cancel everything and refuse new requests. */
  close(): void {
    this.closed = true;
    for (const r of [...this.requests.values()]) r.cancel(new Error('the engine was closed'));
  }

  token(m: Extract<FromWorker, { type: 'token' }>): void {
    this.requests.get(m.id)?.token(m.token, m.start, m.promptRouting);
  }

  end(m: Extract<FromWorker, { type: 'end' }>): void {
    const r = this.requests.get(m.id);
    if (!r) return;
    this.requests.delete(m.id);
    this.flags.give(r.flag);
    r.ended(m.stats, m.error ? fromWire(m.error) : undefined, m.promptRouting);
  }

  /** The worker is gone: every request in flight ends with `error`, and so does every later submit. */
  fail(error: Error): void {
    this.failure ??= error;
    for (const r of this.requests.values()) {
      r.ended({
        seed: 0, promptTokens: r.prompt.length, cachedTokens: 0, truncatedTokens: 0, generatedTokens: 0, finishReason: 'error', queuedMs: 0, prefillMs: 0, decodeMs: 0,
      }, this.failure);
    }
    this.requests.clear();
    this.state = { ...this.state, active: 0, queued: 0 };
  }

  private cancelRemote(r: RemoteRequest): void {
    if (!this.requests.has(r.id)) return;
    this.flags.set(r.flag); // seen between layers of the pass running now
    this.post({ type: 'cancel', id: r.id }); // handled once the pass is over (or abandoned)
  }
}

/** A model loaded in a worker thread, with its tokenizer here: the API of Grok. */
export class WorkerGrok extends TextModel {
  /** Resolves when the worker has ended: on close(), or on its own (a crash). */
  readonly exited: Promise<WorkerExit>;
  private setExit!: (x: WorkerExit) => void;

  constructor(
    readonly path: string,
    readonly config: Readonly<GrokConfig>,
    readonly tokenizer: TextTokenizer | null,
    readonly loadMs: number,
    readonly backend: string,
    readonly engine: EngineProxy,
    private readonly worker: Worker,
    readonly notes: readonly string[] = [],
  ) {
    super();
    this.exited = new Promise((r) => { this.setExit = r; });
  }

  /** The leader of a pipeline: the link to the next stage (set once loaded); null otherwise. */
  pipeline: StageLink | null = null;

  /** The next stage as /health shows it; null when this model is not split. */
  pipelineStatus(): LinkStatus | null {
    return this.pipeline?.status() ?? null;
  }

  private readonly formatChecks = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private nextCheck = 0;

  /** Compiled in the worker, where the scheduler and its grammars are. */
  checkResponseFormat(format: ResponseFormat): Promise<void> {
    if (!this.tokenizer) return Promise.reject(new NoTokenizerError(this.path));
    const failed = this.engine.failed;
    if (failed) return Promise.reject(failed);
    const id = this.nextCheck++;
    return new Promise((resolve, reject) => {
      this.formatChecks.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'checkFormat', id, format } satisfies ToWorker);
    });
  }

  private readonly slotCalls = new Map<number, { resolve: (r: { tokens: number; bytes: number }) => void; reject: (e: Error) => void }>();

  /** Done in the worker, where the prefix cache is. */
  saveSlot(tokens: readonly number[], file: string): Promise<SlotSaved> {
    return this.slotCall({ type: 'saveSlot', id: 0, tokens: [...tokens], file });
  }

  async restoreSlot(file: string): Promise<{ tokens: number }> {
    const r = await this.slotCall({ type: 'restoreSlot', id: 0, file });
    return { tokens: r.tokens };
  }

  private slotCall(m: Extract<ToWorker, { type: 'saveSlot' | 'restoreSlot' }>): Promise<SlotSaved> {
    const failed = this.engine.failed;
    if (failed) return Promise.reject(failed);
    const id = this.nextCheck++;
    return new Promise((resolve, reject) => {
      this.slotCalls.set(id, { resolve, reject });
      this.worker.postMessage({ ...m, id } satisfies ToWorker);
    });
  }

  /** @internal the worker's answer to saveSlot / restoreSlot */
  slotDone(m: Extract<FromWorker, { type: 'slotDone' }>): void {
    const p = this.slotCalls.get(m.id);
    this.slotCalls.delete(m.id);
    if (m.error) p?.reject(fromWire(m.error));
    else p?.resolve({ tokens: m.tokens ?? 0, bytes: m.bytes ?? 0 });
  }

  /** @internal the worker's answer to checkResponseFormat */
  formatChecked(id: number, error: Error | undefined): void {
    const p = this.formatChecks.get(id);
    this.formatChecks.delete(id);
    if (error) p?.reject(error);
    else p?.resolve();
  }

  /** The worker crashed (or was terminated): why; null while it runs. */
  override get failure(): Error | null {
    return this.engine.failed;
  }

  expertCacheStats(): ExpertCacheStats | null {
    return this.engine.state.experts;
  }

  /** Cancel everything, then let the worker release the model and end (terminated if it has not within 5 s). */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.engine.close();
      this.pipeline?.close();
      this.worker.postMessage({ type: 'close' } satisfies ToWorker);
      const timer = setTimeout(() => void this.worker.terminate(), 5000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  /** @internal the worker ended */
  workerExited(code: number, error: Error | undefined): void {
    const expected = this.closed && error === undefined;
    if (!expected) this.engine.fail(new Error(`the model's worker thread stopped${error ? `: ${error.message}` : ` (exit code ${code})`}`));
    for (const p of [...this.formatChecks.values(), ...this.slotCalls.values()]) p.reject(this.engine.failed ?? new Error('the model was closed'));
    this.formatChecks.clear();
    this.slotCalls.clear();
    this.setExit({ expected, code, ...(expected ? {} : { error: this.engine.failed! }) });
  }
}

/**
 * Start loading a model in a worker thread. The path and the tokenizer are resolved here, now (errors
 * thrown); the weights are read in the worker, whose progress reaches options.onProgress / onMemoryPlan /
 * onConfig in this thread. Passing `kernels` is refused: they are made in the worker (kernelOptions).
 */
export function startModelWorker(modelPath?: string, options: WorkerModelOptions = {}): ModelLoading {
  if (options.kernels) throw new Error('a model loaded in a worker thread makes its kernels there: pass kernelOptions, not kernels');
  const resolved = resolveModel(modelPath);
  const tokenizer = findTokenizer(resolved, options.tokenizer ? { tokenizer: options.tokenizer } : {});
  const keep: (keyof WorkerLoadOptions)[] = ['configPath', 'contextLength', 'kvType', 'kernelOptions', 'ramBudget', 'expertPolicy', 'ioThreads', 'slots', 'prefillChunk', 'maxStepMs', 'maxQueue', 'prefixCacheBytes', 'tokenizer', 'layers'];
  const workerOptions = Object.fromEntries(keep.filter((k) => options[k] !== undefined).map((k) => [k, options[k]])) as WorkerLoadOptions;
  const flags = new CancelFlags();
  const nice = options.nice ?? 10;
  if (!(Number.isInteger(nice) && nice >= 0 && nice <= 19)) throw new RangeError(`nice must be an integer 0…19, got ${nice}`);
  const init: WorkerInit = { path: resolved, options: workerOptions, nice, flags: flags.buffer };
  // A pipeline's leader: the worker's hops arrive on `hops` here, where the link to the next stage lives.
  const pipe = options.pipeline;
  if (pipe && !options.layers) throw new RangeError('the leader of a pipeline needs its layers (--layers 0:K)');
  const hops = pipe ? { channel: new MessageChannel(), signal: new SharedArrayBuffer(4) } : null;
  if (hops) init.pipeline = { port: hops.channel.port2, signal: hops.signal };
  const t0 = performance.now();
  const worker = new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: init, ...(hops ? { transferList: [hops.channel.port2] } : {}) });

  let grok: WorkerGrok | null = null;
  let loadError: Error | null = null;
  let crash: Error | undefined;
  let settle!: { resolve: (g: WorkerGrok) => void; reject: (e: Error) => void };
  const loaded = new Promise<WorkerGrok>((resolve, reject) => { settle = { resolve, reject }; });
  const failLoad = (e: Error): void => {
    loadError ??= e;
    void worker.terminate();
  };
  const handlers: Handlers<FromWorker> = {
    config: (m) => {
      checkTokenizer(tokenizer, m.config.vocabSize, resolved); // before any weight is read
      options.onConfig?.(m.config);
    },
    memoryPlan: (m) => options.onMemoryPlan?.(m.plan),
    progress: (m) => options.onProgress?.(m.done, m.total),
    loaded: (m) => {
      if (loadError) return; // refused meanwhile: the worker is being terminated
      const engine = new EngineProxy(m.slots, options.maxQueue ?? Infinity, m.config, m.state, flags, (x) => worker.postMessage(x));
      grok = new WorkerGrok(resolved, m.config, tokenizer, performance.now() - t0, m.backend, engine, worker, m.notes);
      if (pipe && hops) {
        grok.pipeline = new StageLink({
          next: pipe.next, token: pipe.token ?? '', tls: pipe.tls ?? null, model: modelIdentity(resolved, m.config), from: options.layers!.to, layers: m.config.nLayers,
          numerics: options.kernelOptions?.mode ?? 'fast', ...(pipe.stepTimeoutMs ? { stepTimeoutMs: pipe.stepTimeoutMs } : {}),
        });
        serveHops(hops.channel.port1, hops.signal, grok.pipeline);
        void grok.exited.then(() => hops.channel.port1.close());
      }
      settle.resolve(grok);
    },
    loadFailed: (m) => failLoad(fromWire(m.error)),
    token: (m) => grok?.engine.token(m),
    end: (m) => grok?.engine.end(m),
    state: (m) => { if (grok) grok.engine.state = m.state; },
    formatChecked: (m) => grok?.formatChecked(m.id, m.error ? fromWire(m.error) : undefined),
    slotDone: (m) => grok?.slotDone(m),
    closed: () => undefined,
  };
  worker.on('message', (m: FromWorker) => {
    try {
      dispatch(handlers, m);
    } catch (e) {
      // Loading: a check or a callback failed (a tokenizer of another vocabulary, a throwing onProgress), and
      // loading stops. Serving: a fault in this proxy, which cannot go on: as if the worker had died.
      if (!grok) { failLoad(e as Error); return; }
      crash ??= e as Error;
      void worker.terminate();
    }
  });
  worker.on('error', (e) => { crash ??= e; });
  worker.on('exit', (code) => {
    if (grok) { grok.workerExited(code, crash); return; }
    settle.reject(loadError ?? crash ?? new Error(`the model's worker thread ended (exit code ${code}) before the model was loaded`));
  });
  const stop = async (): Promise<void> => {
    if (grok) return grok.close();
    failLoad(new Error('loading the model was stopped'));
    await loaded.catch(() => undefined);
  };
  return { path: resolved, loaded, stop };
}

/** loadModel, with the model in a worker thread: see startModelWorker. */
export async function loadModelInWorker(modelPath?: string, options: WorkerModelOptions = {}): Promise<WorkerGrok> {
  return startModelWorker(modelPath, options).loaded;
}
