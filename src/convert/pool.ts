/**
 * Quantisation on worker threads, for `grok convert` and `grok synth`: a converter spends nearly all its
 * time in the quantisers (K-quants run ~1 M values/s per thread), so chunks of rows are spread over the
 * cores. With `threads ≤ 1` the same jobs run inline. Results come back through promises; callers keep
 * a bounded number in flight and consume them in submission order, so output order and memory stay
 * deterministic and bounded.
 */
import { Worker } from 'node:worker_threads';
import { runQuantJob, type QuantJob, type QuantResult } from './pool-jobs.js';

interface Pending { resolve: (r: QuantResult) => void; reject: (e: Error) => void }

export class QuantPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { id: number; job: QuantJob }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failed: Error | undefined;

  /** `threads` workers (0 or 1: run inline on the calling thread). */
  constructor(readonly threads: number) {
    if (!Number.isInteger(threads) || threads < 0 || threads > 256) throw new Error(`threads must be an integer 0 … 256, got ${threads}`);
    if (threads <= 1) return;
    for (let i = 0; i < threads; i++) {
      const w = new Worker(new URL('./pool-worker.js', import.meta.url));
      w.on('message', (m: { id: number; result?: QuantResult; error?: string }) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error !== undefined || !m.result) p?.reject(new Error(m.error ?? 'worker returned no result'));
        else p?.resolve(m.result);
        this.idle.push(w);
        this.pump();
      });
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => { if (code !== 0 && !this.closing) this.fail(new Error(`quantisation worker exited with code ${code}`)); });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  private closing = false;

  private fail(e: Error): void {
    this.failed ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private pump(): void {
    while (this.idle.length && this.queue.length) {
      const w = this.idle.pop()!;
      const { id, job } = this.queue.shift()!;
      // floats are handed over (transferred); shared sources are shared, never copied
      const transfer: ArrayBuffer[] = job.vals?.buffer instanceof ArrayBuffer ? [job.vals.buffer] : [];
      w.postMessage({ id, job }, transfer);
    }
  }

  /** Quantises one chunk. Its `vals` are transferred to the worker (unusable afterwards; give each job its own). */
  run(job: QuantJob): Promise<QuantResult> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.workers.length === 0) {
      try {
        return Promise.resolve(runQuantJob(job));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const id = this.nextId++;
    return new Promise<QuantResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.queue.push({ id, job });
      this.pump();
    });
  }

  /** How many chunks a caller should keep in flight to keep every worker busy. */
  get depth(): number {
    return Math.max(1, this.workers.length * 2);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
    this.idle.length = 0;
  }
}
