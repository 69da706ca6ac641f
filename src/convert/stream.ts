/**
 * The converter's data path: source bytes are read ahead, asynchronously, into shared memory (one read per
 * slab of rows or per checkpoint matrix, never copied again: the workers dequantise in place), chunks of
 * rows are quantised on the worker pool, and the results come back in file order for the writer, which
 * writes them sequentially. Reading, quantising and writing overlap: while the workers quantise slab k,
 * slab k + 1 is being read and finished chunks are being written.
 *
 *   units (slabs, in file order) ──read ahead──▶ pieces (chunks of rows) ──pool──▶ window ──in order──▶ writer
 *
 * Memory: the slabs of the units in flight (the current one, the next two being read, and one still
 * draining through the window) plus `depth` chunks: ≈ 0.8 GB for Grok-1's 201 MB expert matrices.
 */
import { adviseHugePages } from '../kernels/native.js';
import type { ByteRange, WeightFiles } from '../model/weights.js';
import type { QuantResult } from './pool-jobs.js';

/** One chunk of output: started when it enters the window. */
export interface Piece {
  start(): Promise<Uint8Array | QuantResult>;
  /** After its bytes were written. */
  written?(): void;
}

/** A run of pieces that share one source read (a slab of rows, a checkpoint matrix, a vector). */
export interface Unit {
  tensor: number;
  pieces: Piece[];
  /** Starts the unit's read (called one unit ahead of its first piece). */
  begin?(): void;
  /** After the last of its pieces was written: its memory may be reused. */
  release?(): void;
}

/** Shared buffers for slabs, reused by size (a fresh SharedArrayBuffer costs page faults and zeroing). */
export class SharedReader {
  private readonly free: SharedArrayBuffer[] = [];

  constructor(private readonly files: WeightFiles, private readonly keep = 4) {}

  /**
   * Reads `ranges` back to back into one shared buffer, each at an 8-byte aligned offset (so typed views of
   * any element size fit). Returns the buffer, the offsets and a promise of the read.
   */
  read(ranges: readonly ByteRange[]): { mem: SharedArrayBuffer; offsets: number[]; ready: Promise<void> } {
    const offsets: number[] = [];
    let size = 0;
    for (const r of ranges) {
      offsets.push(size);
      size += Math.ceil(r.length / 8) * 8;
    }
    // reuse the smallest free buffer that fits: a fresh one costs zeroing every page (2 MiB classes, so the
    // matrices of one shape with slightly different scales share buffers)
    let i = -1;
    this.free.forEach((b, k) => { if (b.byteLength >= size && (i < 0 || b.byteLength < this.free[i]!.byteLength)) i = k; });
    let mem: SharedArrayBuffer;
    if (i >= 0) {
      mem = this.free.splice(i, 1)[0]!;
    } else {
      mem = new SharedArrayBuffer(Math.ceil(size / (2 << 20)) * (2 << 20));
      adviseHugePages(new Uint8Array(mem)); // the workers' strided reads (checkpoint columns) miss the TLB far less
    }
    const ready = (async () => {
      for (let k = 0; k < ranges.length; k++) await this.files.readIntoAsync(ranges[k]!, new Uint8Array(mem, offsets[k], ranges[k]!.length));
    })();
    ready.catch(() => undefined); // reported through the pieces that wait on it
    return { mem, offsets, ready };
  }

  /** The buffer is no longer read by anyone. */
  release(mem: SharedArrayBuffer): void {
    this.free.push(mem);
    while (this.free.length > this.keep) this.free.shift();
  }
}

/**
 * Output slots in one shared buffer: a worker writes a chunk's blocks straight into a slot, the writer
 * writes the slot to the file, and the slot is reused — no allocation, transfer or garbage per chunk.
 */
export class OutputSlots {
  private readonly mem: SharedArrayBuffer;
  private readonly free: number[] = [];

  constructor(count: number, readonly slotBytes: number) {
    this.mem = new SharedArrayBuffer(count * slotBytes);
    for (let i = count - 1; i >= 0; i--) this.free.push(i * slotBytes);
  }

  /** A free slot (there is always one when at most `count` chunks are in flight or being written). */
  acquire(bytes: number): { mem: SharedArrayBuffer; byteOffset: number } {
    if (bytes > this.slotBytes) throw new Error(`OutputSlots: a ${bytes}-byte chunk does not fit a ${this.slotBytes}-byte slot`);
    const byteOffset = this.free.pop();
    if (byteOffset === undefined) throw new Error('OutputSlots: no free slot (more chunks in flight than slots)');
    return { mem: this.mem, byteOffset };
  }

  release(slot: { byteOffset: number }): void {
    this.free.push(slot.byteOffset);
  }
}

interface Started {
  tensor: number;
  result: Promise<Uint8Array | QuantResult>;
  done?: () => void;
}

/**
 * Pieces of a sequence of units, started `depth` ahead of the consumer, with the reads of the next two units
 * begun (one unit ahead left the workers waiting at checkpoint-matrix boundaries: 15 % idle).
 */
export class Pipeline {
  private readonly ahead: Unit[] = [];
  private index = 0;
  private readonly window: Started[] = [];
  private exhausted = false;

  constructor(private readonly units: Iterator<Unit>, private readonly depth: number) {}

  private fillAhead(): void {
    while (!this.exhausted && this.ahead.length < 3) {
      const u = this.units.next();
      if (u.done) {
        this.exhausted = true;
        break;
      }
      u.value.begin?.();
      this.ahead.push(u.value);
    }
  }

  private startNext(): boolean {
    this.fillAhead();
    while (this.ahead.length && this.index >= this.ahead[0]!.pieces.length) {
      const u = this.ahead.shift()!;
      if (u.pieces.length === 0) u.release?.();
      this.index = 0;
      this.fillAhead();
    }
    const u = this.ahead[0];
    if (!u) return false;
    const p = u.pieces[this.index++]!;
    const result = p.start();
    result.catch(() => undefined); // the consumer sees the error when it gets there
    const last = this.index === u.pieces.length ? u.release : undefined;
    const done = p.written && last ? () => { p.written!(); last(); } : p.written ?? last;
    this.window.push({ tensor: u.tensor, result, ...(done ? { done } : {}) });
    return true;
  }

  private fill(): void {
    while (this.window.length < this.depth && this.startNext());
  }

  /** The tensor of the next piece (undefined at the end). */
  peek(): number | undefined {
    this.fill();
    return this.window[0]?.tensor;
  }

  /** The next piece in order: its bytes (or quantisation result), and what to call once they are written. */
  async next(): Promise<{ value: Uint8Array | QuantResult; done?: () => void } | undefined> {
    this.fill();
    const s = this.window.shift();
    if (!s) return undefined;
    const value = await s.result;
    this.fill();
    return s.done ? { value, done: s.done } : { value };
  }
}
