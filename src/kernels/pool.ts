/**
 * Worker pool for the wasm kernels. Calls stay synchronous: the main thread posts a job in the shared
 * control block, works on chunks itself, then waits (spin, then Atomics.wait) until every worker has
 * checked out. Rows are split dynamically: each thread claims the next chunk with Atomics.add, so a
 * thread slowed by the shared machine simply takes fewer chunks.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { CHUNK_FNS, CMD, CTL, type ChunkFn, type WorkerInit } from './pool-protocol.js';

type ChunkExport = (args: number, r0: number, r1: number, scratch: number) => void;

export class WorkerPool {
  private readonly ctl: Int32Array;
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private known = 0;
  private closed = false;

  /** `helpers` worker threads (the main thread is the extra one). */
  constructor(
    module: WebAssembly.Module,
    readonly helpers: number,
    opts: { spin: number; scratchBase: number; scratchBytes: number },
  ) {
    const sab = new SharedArrayBuffer(CTL.SIZE * 4);
    this.ctl = new Int32Array(sab);
    for (let i = 0; i < helpers; i++) {
      const { port1, port2 } = new MessageChannel();
      const init: WorkerInit = { ctl: sab, module, port: port2, slot: i + 1, spin: opts.spin, scratchBase: opts.scratchBase, scratchBytes: opts.scratchBytes };
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: init, transferList: [port2] });
      w.unref(); // a sleeping pool must not keep the process alive
      this.workers.push(w);
      this.ports.push(port1);
    }
  }

  /** Hand a new memory to every worker (blocking until they have instantiated the module on it). */
  addArena(index: number, memory: WebAssembly.Memory): void {
    if (index !== this.known) throw new Error(`kernel pool: arena ${index} added out of order (expected ${this.known})`);
    for (const p of this.ports) p.postMessage({ index, memory });
    this.known++;
    Atomics.store(this.ctl, CTL.ARENAS, this.known);
    this.dispatch(CMD.SYNC);
    this.waitDone();
  }

  /**
   * Run fn(args, r0, r1, slotScratch) over [0, total) in chunks of `chunk`, on all threads. `main` is the
   * main thread's instance export for the same arena and function.
   */
  run(arena: number, fn: ChunkFn, main: ChunkExport, args: number, total: number, chunk: number, mainScratch: number): void {
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
      }
    } catch (e) {
      err = e;
      Atomics.store(c, CTL.NEXT, nChunks); // let the workers stop early
    }
    this.waitDone();
    if (err) throw err;
  }

  private dispatch(cmd: number): void {
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
    for (let d = Atomics.load(c, CTL.DONE); d < n; d = Atomics.load(c, CTL.DONE)) {
      if (++spins > 4096) Atomics.wait(c, CTL.DONE, d, 1000);
    }
    const slot = Atomics.load(c, CTL.ERR);
    if (slot !== 0) {
      const m = receiveMessageOnPort(this.ports[slot - 1]!);
      const detail = (m?.message as { error?: string } | undefined)?.error ?? 'unknown error';
      throw new Error(`kernel worker ${slot} failed: ${detail}`);
    }
  }

  /** Stop the workers (they exit at their next wake-up). */
  close(): void {
    if (this.closed) return;
    this.dispatch(CMD.EXIT);
    this.closed = true;
    for (const p of this.ports) p.close();
  }
}
