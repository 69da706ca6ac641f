/**
 * Worker pool for the wasm kernels. Calls stay synchronous: the main thread posts a job in the shared
 * control block, works on chunks itself, then waits (spin, then Atomics.wait) until every worker has
 * checked out. Rows are split dynamically: each thread claims the next chunk with Atomics.add, so a
 * thread slowed by the shared machine simply takes fewer chunks.
 *
 * A worker that cannot start or dies must become an error, never a hang. While the main thread is blocked
 * in Atomics.wait, worker 'error' / 'exit' events cannot be delivered, so the wait itself is bounded:
 * workers count themselves in (STARTED) and bump a heartbeat (BEAT) per chunk, and a wait that sees no
 * start within `startupMs`, or no chunk finished within `stallMs`, throws. `ready()` (awaited by the
 * loader before any work) reports a start-up failure with the worker's own error as soon as it happens.
 * Workers get a clean execArgv: the parent's flags (`--input-type=module` from `node -e`, loaders, …) are
 * not meant for them and can stop them from starting.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { CHUNK_FNS, CMD, CTL, type ChunkFn, type WorkerInit } from './pool-protocol.js';

type ChunkExport = (args: number, r0: number, r1: number, scratch: number) => void;

export interface WorkerPoolOptions {
  spin: number;
  scratchBase: number;
  scratchBytes: number;
  /** The worker script (tests substitute a failing one). */
  workerUrl?: URL;
  /** A worker not running after this long is an error (default 15 s). */
  startupMs?: number;
  /** A job with no chunk finished for this long is an error (default 60 s). */
  stallMs?: number;
}

export class WorkerPool {
  private readonly ctl: Int32Array;
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private readonly created = Date.now();
  private readonly startupMs: number;
  private readonly stallMs: number;
  private readonly started: Promise<void>;
  private known = 0;
  private synced = 0;
  private closed = false;
  /** Set by a worker's 'error' / 'exit' event (delivered whenever the main thread is not blocked). */
  private failure: Error | null = null;

  /** `helpers` worker threads (the main thread is the extra one). */
  constructor(module: WebAssembly.Module, readonly helpers: number, opts: WorkerPoolOptions) {
    const sab = new SharedArrayBuffer(CTL.SIZE * 4);
    this.ctl = new Int32Array(sab);
    this.startupMs = opts.startupMs ?? 15000;
    this.stallMs = opts.stallMs ?? 60000;
    const running: Promise<void>[] = [];
    for (let i = 0; i < helpers; i++) {
      const { port1, port2 } = new MessageChannel();
      const init: WorkerInit = { ctl: sab, module, port: port2, slot: i + 1, spin: opts.spin, scratchBase: opts.scratchBase, scratchBytes: opts.scratchBytes };
      const w = new Worker(opts.workerUrl ?? new URL('./worker.js', import.meta.url), { workerData: init, transferList: [port2], execArgv: [] });
      running.push(new Promise<void>((resolve, reject) => {
        // Referenced until it runs (someone may be awaiting ready()); then a sleeping pool must not keep the process alive.
        w.once('online', () => { w.unref(); resolve(); });
        w.once('error', (e) => reject(this.fail(new Error(`kernel worker ${i + 1} failed: ${e.message}`))));
        w.once('exit', (code) => { if (!this.closed) reject(this.fail(new Error(`kernel worker ${i + 1} exited (code ${code})`))); });
      }));
      this.workers.push(w);
      this.ports.push(port1);
    }
    this.started = Promise.all(running).then(() => this.waitStarted());
    this.started.catch(() => undefined); // surfaced by ready() or the next job
  }

  private fail(e: Error): Error {
    this.failure ??= e;
    return this.failure;
  }

  /** Resolves when every worker runs its loop; rejects with the worker's own error if one cannot start. */
  ready(): Promise<void> {
    return this.started;
  }

  private async waitStarted(): Promise<void> {
    while (Atomics.load(this.ctl, CTL.STARTED) < this.helpers) {
      if (this.failure) throw this.failure;
      if (Date.now() - this.created > this.startupMs) throw this.fail(this.notStarted());
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private notStarted(): Error {
    return new Error(`kernel workers did not start within ${this.startupMs / 1000} s (${Atomics.load(this.ctl, CTL.STARTED)} of ${this.helpers} running); run with --threads 1 to use none`);
  }

  /** Hand a new memory to every worker; they instantiate it on the next SYNC, before the next job. */
  addArena(index: number, memory: WebAssembly.Memory): void {
    if (index !== this.known) throw new Error(`kernel pool: arena ${index} added out of order (expected ${this.known})`);
    for (const p of this.ports) p.postMessage({ index, memory });
    this.known++;
  }

  /**
   * Run fn(args, r0, r1, slotScratch) over [0, total) in chunks of `chunk`, on all threads. `main` is the
   * main thread's instance export for the same arena and function.
   */
  run(arena: number, fn: ChunkFn, main: ChunkExport, args: number, total: number, chunk: number, mainScratch: number): void {
    if (this.synced < this.known) {
      Atomics.store(this.ctl, CTL.ARENAS, this.known);
      this.dispatch(CMD.SYNC);
      this.waitDone();
      this.synced = this.known;
    }
    const c = this.ctl;
    c[CTL.ARENA] = arena;
    c[CTL.FN] = CHUNK_FNS.indexOf(fn);
    c[CTL.ARGS] = args;
    c[CTL.TOTAL] = total;
    c[CTL.CHUNK] = chunk;
    this.dispatch(CMD.RUN);
    const nChunks = Math.ceil(total / chunk);
    let err: unknown;
    try {
      for (let k = Atomics.add(c, CTL.NEXT, 1); k < nChunks; k = Atomics.add(c, CTL.NEXT, 1)) {
        const r0 = k * chunk;
        main(args, r0, Math.min(r0 + chunk, total), mainScratch);
        Atomics.add(c, CTL.BEAT, 1);
      }
    } catch (e) {
      err = e;
      Atomics.store(c, CTL.NEXT, nChunks); // let the workers stop early
    }
    this.waitDone();
    if (err) throw err;
  }

  private dispatch(cmd: number): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('kernel pool: used after close()');
    const c = this.ctl;
    c[CTL.CMD] = cmd;
    c[CTL.ERR] = 0;
    Atomics.store(c, CTL.NEXT, 0);
    Atomics.store(c, CTL.DONE, 0);
    Atomics.add(c, CTL.GEN, 1);
    Atomics.notify(c, CTL.GEN);
  }

  private waitDone(): void {
    const c = this.ctl;
    const n = this.helpers;
    let spins = 0;
    let beat = Atomics.load(c, CTL.BEAT);
    let since = Date.now();
    for (let d = Atomics.load(c, CTL.DONE); d < n; d = Atomics.load(c, CTL.DONE)) {
      if (++spins <= 4096) continue;
      Atomics.wait(c, CTL.DONE, d, 50);
      const b = Atomics.load(c, CTL.BEAT);
      if (b !== beat) { beat = b; since = Date.now(); continue; }
      const running = Atomics.load(c, CTL.STARTED);
      if (running < n && Date.now() - this.created > this.startupMs) this.abandon(this.notStarted());
      if (running === n && Date.now() - since > this.stallMs) {
        this.abandon(new Error(`kernel workers stopped responding: ${n - d} of ${n} did not finish a job and no chunk completed for ${this.stallMs / 1000} s (a worker died?)`));
      }
    }
    const slot = Atomics.load(c, CTL.ERR);
    if (slot !== 0) {
      const m = receiveMessageOnPort(this.ports[slot - 1]!);
      const detail = (m?.message as { error?: string } | undefined)?.error ?? 'unknown error';
      throw new Error(`kernel worker ${slot} failed: ${detail}`);
    }
  }

  /** A pool whose workers cannot be trusted any more: stop them and throw (every later call throws too). */
  private abandon(e: Error): never {
    this.fail(e);
    this.closed = true;
    for (const w of this.workers) void w.terminate();
    throw e;
  }

  /** Stop the workers (they exit at their next wake-up). */
  close(): void {
    if (this.closed) return;
    if (this.failure) { this.closed = true; for (const w of this.workers) void w.terminate(); return; }
    this.dispatch(CMD.EXIT);
    this.closed = true;
    for (const p of this.ports) p.close();
  }
}
