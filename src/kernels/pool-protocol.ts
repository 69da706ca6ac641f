/**
 * The shared control block between the main thread and the kernel workers (one Int32Array over a
 * SharedArrayBuffer). The main thread fills a job's fields, then bumps GEN; workers (spinning, then
 * sleeping in Atomics.wait on GEN) claim chunks with Atomics.add on NEXT and count themselves out on DONE.
 */
import type { MessagePort } from 'node:worker_threads';

export const CTL = {
  GEN: 0,
  CMD: 1,
  NEXT: 2,
  DONE: 3,
  ARENA: 4,
  FN: 5,
  ARGS: 6,
  TOTAL: 7,
  CHUNK: 8,
  ERR: 9,
  /** Arena count the workers must know about after a SYNC. */
  ARENAS: 10,
  /** Workers that reached their loop (the main thread waits for all before the first job). */
  STARTED: 11,
  /** Bumped by a worker for every chunk it finishes: the main thread's sign that a long job is alive. */
  BEAT: 12,
  SIZE: 16,
} as const;

export const CMD = { RUN: 0, SYNC: 1, EXIT: 2 } as const;

/** Chunked wasm exports, in the order FN indexes them; each is fn(args, r0, r1, scratch). */
export const CHUNK_FNS = ['mmExact', 'mmFast', 'mmXai8', 'mmXai8Fast', 'attnChunk'] as const;
export type ChunkFn = (typeof CHUNK_FNS)[number];

/** Message posted (on the worker's private port) when a new weight memory is created. */
export interface ArenaMessage {
  readonly index: number;
  readonly memory: WebAssembly.Memory;
}

export interface WorkerInit {
  readonly ctl: SharedArrayBuffer;
  readonly module: WebAssembly.Module;
  readonly port: MessagePort;
  /** This worker's scratch slot (the main thread is slot 0). */
  readonly slot: number;
  /** Spin iterations on GEN before sleeping in Atomics.wait. */
  readonly spin: number;
  /** Byte offset of scratch slot 0 and the size of a slot, identical in every arena. */
  readonly scratchBase: number;
  readonly scratchBytes: number;
}
