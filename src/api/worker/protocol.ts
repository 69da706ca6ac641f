/**
 * The messages between the main thread and the model's worker thread: one discriminated union each way,
 * each handled by a map from type to handler (onnxruntime's web/lib/wasm/proxy-messages.ts).
 *
 * The worker owns everything that knows token ids (the model, the scheduler, sampling, the prefix cache);
 * the main thread owns text and HTTP. A message can reach the worker only between forward passes, so a
 * cancellation also sets its request's flag in shared memory (CancelFlags), which the worker's scheduler
 * reads between layers.
 */
import type { MessagePort } from 'node:worker_threads';
import type { GrokConfig } from '../../model/config.js';
import type { ExpertCacheStats } from '../../model/expert-cache.js';
import type { MemoryPlan } from '../../model/memory.js';
import type { PrefixCacheStats } from '../../engine/prefix-cache.js';
import { ContextLengthError, QueueFullError, type GenerateOptions, type GeneratedToken, type RequestStats, type TokenRouting } from '../../engine/scheduler.js';
import { NonFiniteLogitsError, SamplingError } from '../../engine/sampling.js';
import { GrammarError, type ResponseFormat } from '../../engine/grammar.js';
import type { LoadModelOptions } from '../index.js';
import { SlotError } from '../slots.js';

/** The load options that reach the worker (functions and kernel objects stay in the main thread). */
export type WorkerLoadOptions = Pick<LoadModelOptions,
  'configPath' | 'contextLength' | 'kvType' | 'kernelOptions' | 'ramBudget' | 'expertPolicy' | 'ioThreads' | 'slots' | 'prefillChunk' | 'maxStepMs' | 'maxQueue' | 'prefixCacheBytes' | 'tokenizer' | 'layers'>;

/** The worker's workerData. */
export interface WorkerInit {
  /** The model, resolved to an absolute path. */
  path: string;
  options: WorkerLoadOptions;
  /** Added to the worker thread's nice value (Linux; its kernels' threads inherit it). */
  nice: number;
  /** CancelFlags' memory. */
  flags: SharedArrayBuffer;
  /** The leader of a pipeline: where its hops go (the main thread's link) and the word that an answer came (src/api/pipeline/leader.ts). */
  pipeline?: { port: MessagePort; signal: SharedArrayBuffer };
}

/** Generation options as sent: without the signal and the onToken callback (both handled in the main thread). */
export type WireGenerateOptions = Omit<GenerateOptions, 'signal' | 'onToken' | 'allowedTokens'> & { allowedTokens?: number[] };

/** The engine as the worker last saw it (sent before every forward pass and after every change). */
export interface EngineState {
  active: number;
  queued: number;
  /** Forward passes made, prompt tokens fed, passes abandoned for cancellations (Scheduler counters). */
  steps: number;
  prefilledTokens: number;
  abandonedSteps: number;
  prefixCache: PrefixCacheStats | null;
  experts: ExpertCacheStats | null;
}

/** What the main thread learns of a request with its first token (the rest of its stats come at its end). */
export interface RequestStart {
  cachedTokens: number;
  queuedMs: number;
  prefillMs: number;
  /** When the first token was sampled, ms since the epoch (the threads' performance clocks differ). */
  firstTokenEpochMs: number;
}

/** An error as structured clone carries it, with what it takes to rebuild the engine's own error classes. */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  param?: string;
  limit?: number;
  promptTokens?: number;
  contextLength?: number;
}

export type ToWorker =
  /** Requests on one prompt (Engine.submitMany), already checked by the main thread. */
  | { type: 'submit'; ids: number[]; flags: number[]; prompt: number[]; options: WireGenerateOptions[] }
  | { type: 'cancel'; id: number }
  /** Compile a response format (structured output) for the vocabulary: answered by formatChecked. */
  | { type: 'checkFormat'; id: number; format: ResponseFormat }
  /** Save the prefix cache's rows of a prompt to a file / read a file into it (src/api/slots.ts): answered by slotDone. */
  | { type: 'saveSlot'; id: number; tokens: number[]; file: string }
  | { type: 'restoreSlot'; id: number; file: string }
  /** Cancel everything, release the model and exit. */
  | { type: 'close' };

export type FromWorker =
  /** The model's own configuration, before any weight is read (LoadModelOptions.onConfig). */
  | { type: 'config'; config: GrokConfig }
  | { type: 'memoryPlan'; plan: MemoryPlan }
  | { type: 'progress'; done: number; total: number }
  | { type: 'loaded'; config: GrokConfig; backend: string; loadMs: number; slots: number; state: EngineState; notes: readonly string[] }
  | { type: 'formatChecked'; id: number; error?: WireError }
  | { type: 'slotDone'; id: number; tokens?: number; bytes?: number; error?: WireError }
  | { type: 'loadFailed'; error: WireError }
  | { type: 'token'; id: number; token: GeneratedToken; start?: RequestStart; promptRouting?: TokenRouting[] }
  | { type: 'end'; id: number; stats: RequestStats; error?: WireError; promptRouting?: TokenRouting[] }
  | { type: 'state'; state: EngineState }
  | { type: 'closed' };

/** The handlers of a union, one per message type. */
export type Handlers<M extends { type: string }> = { [T in M['type']]: (m: Extract<M, { type: T }>) => void };

/** Dispatch one message to its handler. */
export function dispatch<M extends { type: string }>(handlers: Handlers<M>, m: M): void {
  (handlers[m.type as M['type']] as (m: M) => void)(m);
}

/**
 * One Int32 flag per request in flight, in shared memory: the main thread sets a request's flag when it
 * cancels it; the worker's scheduler reads it between layers. Slots are reused once the worker has ended
 * the request; a request beyond the table gets none (its cancellation then waits for the next message).
 */
export class CancelFlags {
  static readonly SIZE = 4096;
  readonly view: Int32Array;
  private readonly free: number[] = [];

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(CancelFlags.SIZE * 4)) {
    this.view = new Int32Array(buffer);
    for (let i = this.view.length - 1; i >= 0; i--) this.free.push(i);
  }

  /** A cleared flag for a new request, or -1 when all are taken. */
  take(): number {
    const i = this.free.pop();
    if (i === undefined) return -1;
    Atomics.store(this.view, i, 0);
    return i;
  }

  give(i: number): void {
    if (i >= 0) this.free.push(i);
  }

  set(i: number): void {
    if (i >= 0) Atomics.store(this.view, i, 1);
  }

  isSet(i: number): boolean {
    return i >= 0 && Atomics.load(this.view, i) !== 0;
  }
}

export function toWire(e: unknown): WireError {
  if (!(e instanceof Error) && !(e instanceof DOMException)) return { name: 'Error', message: String(e) };
  const w: WireError = { name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) };
  if (e instanceof SamplingError) w.param = e.param;
  if (e instanceof QueueFullError) w.limit = e.limit;
  if (e instanceof ContextLengthError) { w.promptTokens = e.promptTokens; w.contextLength = e.contextLength; }
  return w;
}

/** The error again, of its class where the HTTP layer tells classes apart (src/api/http/errors.ts). */
export function fromWire(w: WireError): Error {
  let e: Error;
  switch (w.name) {
    case 'SamplingError': e = new SamplingError(w.param ?? '', w.message); break;
    case 'NonFiniteLogitsError': e = new NonFiniteLogitsError(w.message); break;
    case 'QueueFullError': e = new QueueFullError(w.limit ?? 0); break;
    case 'ContextLengthError': e = new ContextLengthError(w.promptTokens ?? 0, w.contextLength ?? 0); break;
    case 'AbortError': return new DOMException(w.message, 'AbortError') as unknown as Error;
    case 'RangeError': e = new RangeError(w.message); break;
    case 'GrammarError': e = new GrammarError(w.message); break;
    case 'SlotError': e = new SlotError(w.message); break;
    default: e = new Error(w.message); e.name = w.name;
  }
  if (w.stack) e.stack = w.stack;
  return e;
}
