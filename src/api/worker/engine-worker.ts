/**
 * The model's worker thread: loads the weights and runs the engine's scheduler, so that forward passes
 * never block the main thread (HTTP, health checks, other clients' streams). It speaks token ids only;
 * the main thread's proxy (./client.ts) tokenizes, detokenizes and matches stop strings.
 *
 * Started by startModelWorker with a WorkerInit as workerData; the messages are ./protocol.ts.
 */
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { closeKernels } from '../../kernels/index.js';
import type { ForwardSeq } from '../../model/grok.js';
import { Scheduler, type BatchModel, type GenerationRequest } from '../../engine/scheduler.js';
import { checkFormatWith, findTokenizer, grammarOf, loadWeights, schedulerOptions } from '../index.js';
import { PipelineModel, SyncHop } from '../pipeline/leader.js';
import { restoreSlot, saveSlot } from '../slots.js';
import { dispatch, toWire, type EngineState, type FromWorker, type Handlers, type ToWorker, type WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
// The main thread (HTTP, health checks, cancellations) before the model: on Linux a nice value belongs to
// one thread, and the kernels' threads started from this one inherit it. It orders this process's threads
// among themselves; against other processes CPU time is shared by group first (autogroup, cgroups).
if (process.platform === 'linux' && init.nice > 0) {
  try { os.setPriority(0, Math.min(19, os.getPriority(0) + init.nice)); } catch { /* keep the priority it has */ }
}
const port = parentPort!;
const post = (m: FromWorker): void => port.postMessage(m);
const flags = new Int32Array(init.flags);

const t0 = performance.now();
let loaded: Awaited<ReturnType<typeof loadWeights>> | null = null;
try {
  loaded = await loadWeights(init.path, {
    ...init.options,
    onProgress: (done, total) => post({ type: 'progress', done, total }),
    onMemoryPlan: (plan) => post({ type: 'memoryPlan', plan }),
    onConfig: (config) => post({ type: 'config', config }),
  });
} catch (e) {
  post({ type: 'loadFailed', error: toWire(e) });
  port.close(); // nothing else keeps this thread: it ends
}
if (loaded) serve(loaded);

function serve({ model, ownKernels, notes, source }: Awaited<ReturnType<typeof loadWeights>>): void {
  // Structured output compiles its grammars here, beside the scheduler, over the same tokenizer the main thread found.
  const tokenizer = findTokenizer(init.path, { source, ...(init.options.tokenizer ? { tokenizer: init.options.tokenizer } : {}) });
  const grammar = grammarOf(tokenizer, model.config.eosToken);
  /** Requests by the main thread's id, and each one's cancel flag. */
  const byId = new Map<number, GenerationRequest>();
  const flagOf = new Map<GenerationRequest, number>();

  // The engine's state is sent before every forward pass: what /health and /metrics show while it runs.
  // The leader of a pipeline: layers [0, K) here, the rest behind the hop (src/api/pipeline/leader.ts).
  const engineModel: BatchModel = init.pipeline ? new PipelineModel(model, new SyncHop(init.pipeline.port, init.pipeline.signal), () => publish()) : {
    config: model.config,
    newCache: (capacity) => model.newCache(capacity),
    forward: (seqs, opts) => { publish(); return model.forward(seqs as ForwardSeq[], opts); },
  };
  const scheduler = new Scheduler(engineModel, {
    ...schedulerOptions(model, init.options, grammar ?? undefined),
    // The stages behind keep no prefix cache: a pipeline's caches cannot be copied out (exportRows).
    ...(init.pipeline ? { prefixCacheBytes: 0 } : {}),
    isCancelled: (r) => { const f = flagOf.get(r) ?? -1; return f >= 0 && Atomics.load(flags, f) !== 0; },
  });
  const state = (): EngineState => ({
    active: scheduler.activeCount, queued: scheduler.queuedCount,
    steps: scheduler.steps, prefilledTokens: scheduler.prefilledTokens, abandonedSteps: scheduler.abandonedSteps,
    prefixCache: scheduler.prefixCache?.stats() ?? null, experts: model.expertCache?.stats() ?? null,
  });
  let sent = { key: '', at: 0 };
  /** Send the state when its slots, queue or abandoned passes changed, else at most every 100 ms (the counters). */
  const publish = (): void => {
    const key = `${scheduler.activeCount} ${scheduler.queuedCount} ${scheduler.abandonedSteps}`;
    const now = performance.now();
    if (key === sent.key && now - sent.at < 100) return;
    sent = { key, at: now };
    post({ type: 'state', state: state() });
  };
  let soon = false;
  /** After the current message or token: a microtask runs before the scheduler's next forward pass. */
  const publishSoon = (): void => {
    if (soon) return;
    soon = true;
    queueMicrotask(() => { soon = false; publish(); });
  };

  /** One request's tokens to the main thread, then its end. */
  async function pump(id: number, r: GenerationRequest): Promise<void> {
    const routing = r.options.routing === true;
    let first = true;
    let error: unknown;
    try {
      for await (const token of r) {
        if (!first) { post({ type: 'token', id, token }); continue; }
        first = false;
        const start = {
          cachedTokens: r.stats.cachedTokens, queuedMs: r.admittedAt - r.submittedAt, prefillMs: r.firstTokenAt - r.admittedAt,
          firstTokenEpochMs: performance.timeOrigin + r.firstTokenAt,
        };
        post({ type: 'token', id, token, start, ...(routing ? { promptRouting: [...r.promptRouting] } : {}) });
      }
    } catch (e) {
      error = e;
    }
    const stats = await r.done;
    byId.delete(id);
    flagOf.delete(r);
    post({ type: 'end', id, stats, ...(error === undefined ? {} : { error: toWire(error) }), ...(first && routing ? { promptRouting: [...r.promptRouting] } : {}) });
    publishSoon();
  }

  const handlers: Handlers<ToWorker> = {
    submit(m) {
      let reqs: GenerationRequest[];
      try {
        // The stages behind a pipeline's leader do not report their routers' choices.
        if (init.pipeline && m.options.some((o) => o.routing)) throw new RangeError('expert routing (return_routed_experts) is not available when the model is split into pipeline stages');
        reqs = scheduler.submitMany(m.prompt, m.options);
      } catch (e) {
        // The main thread checked the request as submitMany does: only a closed engine (or routing through a pipeline) gets here.
        const error = toWire(e);
        for (const id of m.ids) {
          post({ type: 'end', id, error, stats: {
            seed: 0, promptTokens: m.prompt.length, cachedTokens: 0, truncatedTokens: 0, generatedTokens: 0, finishReason: 'error', queuedMs: 0, prefillMs: 0, decodeMs: 0,
          } });
        }
        return;
      }
      reqs.forEach((r, i) => {
        byId.set(m.ids[i]!, r);
        flagOf.set(r, m.flags[i]!);
        void pump(m.ids[i]!, r);
      });
      publishSoon();
    },
    cancel(m) {
      byId.get(m.id)?.cancel();
      publishSoon();
    },
    checkFormat(m) {
      checkFormatWith(grammar, m.format, init.path).then(
        () => post({ type: 'formatChecked', id: m.id }),
        (e: unknown) => post({ type: 'formatChecked', id: m.id, error: toWire(e) }),
      );
    },
    saveSlot(m) {
      try {
        const r = saveSlot(scheduler, model, init.path, m.tokens, m.file);
        post({ type: 'slotDone', id: m.id, tokens: r.tokens, bytes: r.bytes });
      } catch (e) {
        post({ type: 'slotDone', id: m.id, error: toWire(e) });
      }
    },
    restoreSlot(m) {
      try {
        post({ type: 'slotDone', id: m.id, tokens: restoreSlot(scheduler, model, init.path, m.file).tokens });
      } catch (e) {
        post({ type: 'slotDone', id: m.id, error: toWire(e) });
      }
      publishSoon();
    },
    close() {
      scheduler.close();
      model.close();
      if (ownKernels) closeKernels(model.kernels);
      post({ type: 'closed' });
      port.close();
    },
  };
  port.on('message', (m: ToWorker) => dispatch(handlers, m));
  post({ type: 'loaded', config: model.config, backend: model.kernels.name, loadMs: performance.now() - t0, slots: scheduler.slots, state: state(), notes });
}
