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
import type { BatchModel, Checkpoint, EngineCache, RouteFn } from '../../engine/scheduler.js';
import type { GrokModel, KVCache } from '../../model/grok.js';
import type { StageLink } from './link.js';
import { bytesF32, f32Bytes, StageDownError, type Step } from './protocol.js';

/** Worker → main thread. */
export type HopRequest = { step: Omit<Step, 'id'> } | { fork: { from: number; to: number } } | { free: number[] };
/** Main thread → worker: the answer to a step. */
export type HopAnswer = { rows: number; logits: Uint8Array } | { error: { name: string; message: string } };

/** The worker's end: sends hops and waits for each step's answer. */
export class SyncHop {
  private readonly flag: Int32Array;

  constructor(private readonly port: MessagePort, signal: SharedArrayBuffer) {
    this.flag = new Int32Array(signal);
  }

  send(m: HopRequest): void {
    this.port.postMessage(m);
  }

  call(step: Omit<Step, 'id'>): { rows: number; logits: Uint8Array } {
    const seen0 = Atomics.load(this.flag, 0);
    this.port.postMessage({ step } satisfies HopRequest);
    for (let seen = seen0; ;) {
      const m = receiveMessageOnPort(this.port);
      if (m) {
        const a = m.message as HopAnswer;
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
      link.step(m.step).then(
        (r) => answer({ rows: r.rows, logits: r.logits }),
        (e: Error) => answer({ error: { name: e.name, message: e.message } }),
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

  constructor(readonly model: GrokModel, readonly hop: Pick<SyncHop, 'send' | 'call'>, private readonly beforeForward: () => void = () => undefined) {
    if (!model.embeds || model.projects) throw new RangeError(`the leader of a pipeline holds layers 0:K with K below the model's ${model.config.nLayers}, got ${model.range.from}:${model.range.to}`);
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

  forward(seqs: { tokens: ArrayLike<number>; cache: EngineCache }[], opts: { lastOnly?: boolean; onRoute?: RouteFn; checkpoint?: Checkpoint } = {}): Float32Array {
    this.beforeForward();
    const caches = seqs.map((s) => {
      if (!(s.cache instanceof PipelineCache)) throw new Error('forward: a cache that is not this pipeline\'s');
      return s.cache;
    });
    const positions = caches.map((c) => c.length);
    const hidden = this.model.forward(seqs.map((s, i) => ({ tokens: s.tokens, cache: caches[i]!.local })), opts);
    const tokens: number[] = [];
    for (const s of seqs) for (let t = 0; t < s.tokens.length; t++) tokens.push(s.tokens[t]!);
    const r = this.hop.call({
      seqs: caches.map((c) => c.id), positions, counts: seqs.map((s) => s.tokens.length), capacities: caches.map((c) => c.capacity),
      tokens, hidden: f32Bytes(hidden), lastOnly: opts.lastOnly === true,
    });
    const rows = opts.lastOnly === true ? seqs.length : tokens.length;
    if (r.rows !== rows) throw new StageDownError(`the last stage returned logits for ${r.rows} rows, expected ${rows}`);
    return bytesF32(r.logits, 'logits', rows * this.config.vocabSize);
  }
}
