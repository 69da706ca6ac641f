/**
 * The leader's side of a pipeline (`grok serve --layers 0:K --next HOST:PORT`): the model's worker thread
 * runs the scheduler, whose forward pass is synchronous, while the link to the next stage (./link.ts) lives
 * on the main thread's event loop. A hop crosses between them as a message on a MessagePort, and the
 * worker waits for the answer with Atomics.wait (receiveMessageOnPort then takes it without its own event
 * loop): the scheduler, sampling and cancellation stay exactly as in one process.
 *
 * PipelineModel is the BatchModel the scheduler drives: it runs layers [0, K) here and sends the hidden
 * states on; the last stage answers with logits. Its caches hold this stage's layers and a sequence id
 * the stages behind key theirs by; a copied cache (n > 1 sharing one prefill) is copied behind too (fork),
 * a released one is freed there.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { BatchModel, EngineCache, ForwardOpts } from '../../engine/scheduler.js';
import type { GrokModel, KVCache } from '../../model/grok.js';
import type { StageLink } from './link.js';
import { bytesF32, f32Bytes, StageDownError, type Step } from './protocol.js';

/** Worker → main thread: a step (numbered by the worker, to match its answer), a fork or a free. */
export type HopRequest = { id: number; step: Omit<Step, 'id'> } | { fork: { from: number; to: number } } | { free: number[] };
/** Main thread → worker: the answer to step `id`, and the stages the pipeline has (the leader included). */
export type HopAnswer = { id: number; stages: number } & ({ rows: number; logits: Uint8Array } | { error: { name: string; message: string } });

/** The worker's end: sends hops and waits for each step's answer (several may be in flight). */
export class SyncHop {
  private readonly flag: Int32Array;
  private ids = 0;
  /** Answers received and not yet waited for (a later step's, while the worker waited for an older one). */
  private readonly answers = new Map<number, HopAnswer>();
  /** The pipeline's stages, the leader included, as of the last answer (at least 2). */
  stages = 2;

  constructor(private readonly port: MessagePort, signal: SharedArrayBuffer) {
    this.flag = new Int32Array(signal);
  }

  send(m: HopRequest): void {
    this.port.postMessage(m);
  }

  /** Send a step on; the returned function waits for its answer. */
  begin(step: Omit<Step, 'id'>): () => { rows: number; logits: Uint8Array } {
    const id = ++this.ids;
    this.port.postMessage({ id, step } satisfies HopRequest);
    return () => this.wait(id);
  }

  call(step: Omit<Step, 'id'>): { rows: number; logits: Uint8Array } {
    return this.begin(step)();
  }

  private wait(id: number): { rows: number; logits: Uint8Array } {
    for (let seen = Atomics.load(this.flag, 0); ;) {
      for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
        const x = m.message as HopAnswer;
        this.answers.set(x.id, x);
      }
      const a = this.answers.get(id);
      if (a) {
        this.answers.delete(id);
        if (a.stages >= 2) this.stages = a.stages;
        if ('error' in a) throw a.error.name === 'StageDownError' ? new StageDownError(a.error.message) : new Error(a.error.message);
        return a;
      }
      Atomics.wait(this.flag, 0, seen, 1000);
      seen = Atomics.load(this.flag, 0);
    }
  }
}

/** The main thread's end: hops go to the link, answers come back with a wake-up. */
export function serveHops(port: MessagePort, signal: SharedArrayBuffer, link: StageLink): void {
  const flag = new Int32Array(signal);
  const answer = (a: HopAnswer): void => {
    port.postMessage(a);
    Atomics.add(flag, 0, 1);
    Atomics.notify(flag, 0);
  };
  port.on('message', (m: HopRequest) => {
    if ('step' in m) {
      const { id } = m;
      link.step(m.step).then(
        (r) => answer({ id, stages: 1 + link.stages, rows: r.rows, logits: r.logits }),
        (e: Error) => answer({ id, stages: 1 + link.stages, error: { name: e.name, message: e.message } }),
      );
    } else if ('fork' in m) link.fork(m.fork.from, m.fork.to);
    else link.free(m.free);
  });
}

/** A leader's cache: its own layers' keys and values, and the id the stages behind know the sequence by. */
export class PipelineCache implements EngineCache {
  private released = false;

  constructor(readonly local: KVCache, readonly id: number, private readonly owner: PipelineModel) {}

  get capacity(): number {
    return this.local.capacity;
  }

  get length(): number {
    return this.local.length;
  }

  set length(n: number) {
    this.local.length = n;
  }

  clone(): PipelineCache {
    const c = new PipelineCache(this.local.clone(), this.owner.newId(), this.owner);
    this.owner.hop.send({ fork: { from: this.id, to: c.id } });
    return c;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.owner.hop.send({ free: [this.id] });
  }
}

/** Layers [0, K) here, the rest through the hop (src/engine/scheduler.ts BatchModel). */
export class PipelineModel implements BatchModel {
  private ids = 0;

  constructor(readonly model: GrokModel, readonly hop: Pick<SyncHop, 'send' | 'begin' | 'stages'>, private readonly beforeForward: () => void = () => undefined) {
    if (!model.embeds || model.projects) throw new RangeError(`the leader of a pipeline holds layers 0:K with K below the model's ${model.config.nLayers}, got ${model.range.from}:${model.range.to}`);
  }

  /** Micro-batches kept in flight: one per stage (src/engine/scheduler.ts BatchModel.depth). */
  get depth(): number {
    return this.hop.stages;
  }

  get config(): GrokModel['config'] {
    return this.model.config;
  }

  newId(): number {
    return ++this.ids >>> 0;
  }

  newCache(capacity?: number): PipelineCache {
    return new PipelineCache(this.model.newCache(capacity), this.newId(), this);
  }

  forward(seqs: { tokens: ArrayLike<number>; cache: EngineCache }[], opts: ForwardOpts = {}): Float32Array {
    return this.begin(seqs, opts)();
  }

  /** Layers [0, K) now, then the step goes on to the stages; the returned function waits for their logits. */
  begin(seqs: { tokens: ArrayLike<number>; cache: EngineCache }[], opts: ForwardOpts = {}): () => Float32Array {
    this.beforeForward();
    const caches = seqs.map((s) => {
      if (!(s.cache instanceof PipelineCache)) throw new Error('forward: a cache that is not this pipeline\'s');
      return s.cache;
    });
    const positions = caches.map((c) => c.length);
    const hidden = this.model.forward(seqs.map((s, i) => ({ tokens: s.tokens, cache: caches[i]!.local })), opts);
    const tokens: number[] = [];
    for (const s of seqs) for (let t = 0; t < s.tokens.length; t++) tokens.push(s.tokens[t]!);
    const answer = this.hop.begin({
      seqs: caches.map((c) => c.id), positions, counts: seqs.map((s) => s.tokens.length), capacities: caches.map((c) => c.capacity),
      tokens, hidden: f32Bytes(hidden), lastOnly: opts.lastOnly === true,
    });
    const rows = opts.lastOnly === true ? seqs.length : tokens.length;
    return () => {
      const r = answer();
      if (r.rows !== rows) throw new StageDownError(`the last stage returned logits for ${r.rows} rows, expected ${rows}`);
      return bytesF32(r.logits, 'logits', rows * this.config.vocabSize);
    };
  }
}
