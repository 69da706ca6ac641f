/**
 * The experts of a model larger than its RAM budget: a fixed pool of expert slots, each holding one expert
 * of one layer (its gate, up and down matrices, as stored in the file), filled by large reads on I/O
 * threads (Kernels.readQueue: pread, O_DIRECT where the filesystem allows it) instead of page faults on a
 * mapping. The forward pass asks for a layer's experts as soon as the router has chosen them (`request`),
 * names the experts it guesses the next layer will want (`prefetch`), and takes each expert's matrices
 * when it computes with it (`acquire` … `release`): reads overlap computation, and an expert being
 * computed with, or still needed by the current layer, is never evicted. Which expert leaves is the
 * policy's decision (expert-policy.ts).
 *
 * The matrices handed out are views of the slot's bytes, the same bytes as in the file: logits are the
 * in-RAM path's, byte for byte, whatever the budget.
 */
import { FormatError } from '../base/errors.js';
import type { ReadQueue } from '../kernels/types.js';
import type { ModelMatrix } from '../quant/matrix.js';
import { SlotTable, type EvictionPolicy } from './expert-policy.js';
import { matrixRanges, type ByteRange, type MatrixLocation } from './weights.js';

/** One expert of one layer, where its matrices are in the files. */
export interface ExpertLocation {
  readonly gate: MatrixLocation;
  readonly up: MatrixLocation;
  readonly down: MatrixLocation;
}

export interface ExpertMatrices {
  readonly gate: ModelMatrix;
  readonly up: ModelMatrix;
  readonly down: ModelMatrix;
}

/** Counters since loading (or the last reset): what a user sizes the budget with. */
export interface ExpertCacheStats {
  readonly slots: number;
  readonly experts: number;
  readonly slotBytes: number;
  /** Expert uses found in memory (or already being read for an earlier request / prefetch). */
  readonly hits: number;
  readonly misses: number;
  /** Of the hits, experts that were there because a prefetch guessed them. */
  readonly prefetchHits: number;
  /** Experts read on a guess, and of them those the layer then used. */
  readonly prefetched: number;
  readonly prefetchUsed: number;
  readonly bytesRead: number;
  /** Of bytesRead, read around the page cache (O_DIRECT). */
  readonly directBytes: number;
  /** Milliseconds the forward pass waited for reads. */
  readonly waitMs: number;
  /** The next layer's experts guessed from the current residual (the router of that layer applied early), and of them right. */
  readonly guessed: number;
  readonly guessedRight: number;
  /** Per layer: [hits, uses]. */
  readonly perLayer: readonly (readonly [number, number])[];
}

interface Region {
  readonly range: ByteRange;
  /** Where the read starts in the file, and where the range's bytes start in the slot. */
  readonly readOffset: number;
  readonly slotOffset: number;
  readonly dataOffset: number;
  readonly readLength: number;
}

interface Slot {
  readonly buffer: Uint8Array;
  key: number;
  matrices: ExpertMatrices | null;
  tickets: number[];
  /** Filled by a prefetch and not yet used. */
  guessed: boolean;
  /** The read failed: the error, thrown at the use. */
  error: Error | null;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

export class ExpertCache {
  readonly slotBytes: number;
  readonly slots: number;
  private readonly table: SlotTable;
  private readonly pool: Slot[];
  private readonly files = new Map<string, number>();
  private readonly layouts: Region[][][]; // [layer][expert] → regions (gate, up, down; xai8: q and scales each)
  /** Keys the current layer still needs: never evicted for another expert. */
  private readonly needed = new Set<number>();
  private readonly nExperts: number;
  private hits = 0;
  private misses = 0;
  private prefetchHits = 0;
  private prefetched = 0;
  private prefetchUsed = 0;
  private waitMs = 0;
  private guessed = 0;
  private guessedRight = 0;
  private readonly guesses = new Map<number, readonly number[]>();
  /** Keys of the current guess not yet in a slot or being read. */
  private readonly guessKeys = new Set<number>();
  /** Reads waiting for a slot, in the order they were asked for: needed experts, then guesses. */
  private readonly wanted: { l: number; e: number; guess: boolean }[] = [];
  private readonly perLayer: [number, number][];
  private closed = false;
  /** What the queue had read before this cache (a probe): not counted in the stats. */
  private readonly probed: { bytes: number; directBytes: number };

  constructor(private readonly experts: readonly (readonly ExpertLocation[])[], slots: number, private readonly queue: ReadQueue, policy: EvictionPolicy = 'lru') {
    this.nExperts = experts[0]?.length ?? 0;
    const total = experts.length * this.nExperts;
    if (!Number.isInteger(slots) || slots < 1) throw new Error(`expert cache: slots must be a positive integer, got ${slots}`);
    this.slots = Math.min(slots, total);
    const before = queue.totals();
    this.probed = { bytes: before.bytes, directBytes: before.directBytes };
    const { layouts, slotBytes } = ExpertCache.layout(experts, queue.alignment);
    this.layouts = layouts;
    this.slotBytes = slotBytes;
    // Every file experts come from is opened now: an unreadable shard fails the load, not a later request.
    for (const r of this.layouts.flat(2)) this.fileHandle(r.range.file);
    this.table = new SlotTable(this.slots, policy);
    this.perLayer = experts.map(() => [0, 0]);
    this.pool = [];
    try {
      for (let s = 0; s < this.slots; s++) this.pool.push({ buffer: queue.alloc(this.slotBytes), key: -1, matrices: null, tickets: [], guessed: false, error: null });
    } catch (e) {
      throw new Error(`expert cache: cannot allocate ${this.slots} slots of ${this.slotBytes} bytes: ${(e as Error).message}`);
    }
  }

  /** Bytes one slot takes for these experts when reads align to `alignment`. */
  static slotBytesFor(experts: readonly (readonly ExpertLocation[])[], alignment: number): number {
    return ExpertCache.layout(experts, alignment).slotBytes;
  }

  /**
   * Where each expert's ranges go in a slot: every read starts on an `alignment` boundary of the file and
   * of the slot (so it can bypass the page cache), the range's bytes at their offset inside the read.
   */
  private static layout(experts: readonly (readonly ExpertLocation[])[], A: number): { layouts: Region[][][]; slotBytes: number } {
    const layouts = experts.map((layer) => layer.map((x) => {
      let pos = 0;
      const regions: Region[] = [];
      for (const m of [x.gate, x.up, x.down]) {
        if (m.layout === 'transpose') throw new FormatError(m.bytes.file, `expert matrices stored transposed (${m.type}) cannot be streamed; convert the model first`);
        for (const range of matrixRanges(m)) {
          // Scales are read as 16-bit values: an odd offset in the file is read unaligned (buffered) to an even place.
          const odd = range.offset % 2 === 1;
          const readOffset = odd ? range.offset : Math.floor(range.offset / A) * A;
          const readLength = odd ? range.length : align(range.offset + range.length, A) - readOffset;
          regions.push({ range, readOffset, slotOffset: pos, dataOffset: pos + range.offset - readOffset, readLength });
          pos = align(pos + readLength, Math.max(A, 64));
        }
      }
      return regions;
    }));
    const slotBytes = Math.max(64, ...layouts.flat().map((rs) => { const r = rs[rs.length - 1]!; return align(r.slotOffset + r.readLength, 64); }));
    return { layouts, slotBytes };
  }

  /**
   * The disk's read rate (bytes/s): `bytes` of the first expert read into a buffer of their own (faulted in
   * first, so only the read is timed). Before the pool is made, so no slot's preparation is queued ahead.
   */
  static probe(queue: ReadQueue, experts: readonly (readonly ExpertLocation[])[], bytes = 64 * 2 ** 20): number {
    const r = ExpertCache.layout(experts.slice(0, 1).map((l) => l.slice(0, 1)), queue.alignment).layouts[0]![0]![0]!;
    const n = Math.min(bytes, r.readLength);
    const dst = queue.alloc(Math.floor(n / queue.alignment) * queue.alignment || n);
    dst.fill(0);
    const t0 = performance.now();
    queue.wait(queue.submit(queue.open(r.range.file), r.readOffset, dst, 0));
    return dst.length / ((performance.now() - t0) / 1000);
  }

  private key(l: number, e: number): number {
    return l * this.nExperts + e;
  }

  private fileHandle(file: string): number {
    let f = this.files.get(file);
    if (f === undefined) {
      f = this.queue.open(file);
      this.files.set(file, f);
    }
    return f;
  }

  /** Start reading expert (l, e) into slot s. */
  private fill(s: number, l: number, e: number): void {
    const slot = this.pool[s]!;
    this.settle(slot); // a read still in flight into this slot finishes first
    const key = this.key(l, e);
    this.table.assign(s, key);
    slot.key = key;
    slot.error = null;
    slot.guessed = false;
    const regions = this.layouts[l]![e]!;
    const views = regions.map((r) => slot.buffer.subarray(r.dataOffset, r.dataOffset + r.range.length));
    try {
      // Tickets kept as they are made: a read already started is always waited for before the slot is reused.
      for (const r of regions) slot.tickets.push(this.queue.submit(this.fileHandle(r.range.file), r.readOffset, slot.buffer.subarray(r.slotOffset, r.slotOffset + r.readLength), r.range.offset + r.range.length - r.readOffset));
    } catch (err) {
      slot.error = err as Error;
    }
    const x = this.experts[l]![e]!;
    let i = 0;
    const matrix = (m: MatrixLocation): ModelMatrix => {
      if (m.layout === 'rows') return { layout: 'rows', type: m.type, nIn: m.nIn, nOut: m.nOut, data: views[i++]! };
      if (m.layout === 'split') {
        return { layout: 'split', axis: m.axis, nIn: m.nIn, nOut: m.nOut, parts: m.parts.map((p) => ({ layout: 'rows', type: p.type, nIn: p.nIn, nOut: p.nOut, data: views[i++]! })) };
      }
      if (m.layout !== 'xai8') throw new Error('unreachable');
      const q = views[i++]!, sc = views[i++]!;
      return {
        layout: 'xai8', nIn: m.nIn, nOut: m.nOut, groups: m.groups,
        q: new Int8Array(q.buffer, q.byteOffset, q.length),
        scales: new Uint16Array(sc.buffer, sc.byteOffset, sc.length / 2),
      };
    };
    slot.matrices = { gate: matrix(x.gate), up: matrix(x.up), down: matrix(x.down) };
  }

  /** Wait for a slot's reads in flight (an error is kept for the slot's next use). */
  private settle(slot: Slot): void {
    if (slot.tickets.length === 0) return;
    const t0 = performance.now();
    for (const t of slot.tickets) {
      try {
        this.queue.wait(t);
      } catch (err) {
        slot.error ??= err as Error;
      }
    }
    slot.tickets = [];
    this.waitMs += performance.now() - t0;
  }

  /**
   * The experts layer l needs now (its router's choice over the batch): misses start reading at once, in
   * this order, into slots no needed expert holds; those that find none are read as soon as a slot is
   * released. Guesses for this layer that were wrong stop reading. Until `release`d, these experts are not
   * evicted for other experts.
   */
  request(l: number, experts: readonly number[]): void {
    this.check();
    this.needed.clear();
    for (const e of experts) this.needed.add(this.key(l, e));
    const guess = this.guesses.get(l);
    if (guess) {
      this.guesses.delete(l);
      this.guessed += guess.length;
      this.guessedRight += guess.filter((e) => experts.includes(e)).length;
    }
    this.guessKeys.clear();
    this.wanted.length = 0;
    // Wrong guesses for this layer: what is not read yet is not worth the disk's time.
    for (let s = 0; s < this.slots; s++) {
      const slot = this.pool[s]!;
      if (slot.guessed && slot.key >= 0 && !this.needed.has(slot.key) && Math.floor(slot.key / this.nExperts) === l) this.drop(s);
    }
    for (const e of experts) {
      const key = this.key(l, e);
      const s = this.table.find(key);
      this.perLayer[l]![1]++;
      if (s >= 0) {
        this.hits++;
        this.perLayer[l]![0]++;
        const slot = this.pool[s]!;
        if (slot.guessed) {
          this.prefetchHits++;
          this.prefetchUsed++;
          slot.guessed = false;
        }
        this.table.touch(s);
        continue;
      }
      this.misses++;
      const v = this.table.victim((k) => this.needed.has(k));
      if (v >= 0) {
        this.fill(v, l, e);
        this.table.touch(v);
      } else this.wanted.push({ l, e, guess: false }); // more experts needed at once than slots: read when one is released
    }
  }

  /**
   * A guess at the experts layer l will need next: read those not in memory into slots that no expert
   * still needed (or in use, or guessed) holds, now or as slots are released. Never evicts what the
   * current layer needs.
   */
  prefetch(l: number, experts: readonly number[]): void {
    this.check();
    this.guesses.set(l, [...experts]);
    for (const e of experts) {
      const key = this.key(l, e);
      if (this.table.find(key) >= 0) continue;
      this.guessKeys.add(key);
      this.wanted.push({ l, e, guess: true });
    }
    this.pump();
  }

  /** Start the wanted reads that have a slot to go to. */
  private pump(): void {
    while (this.wanted.length > 0) {
      const w = this.wanted[0]!;
      const key = this.key(w.l, w.e);
      if (this.table.find(key) >= 0) { this.wanted.shift(); continue; }
      // A guess never displaces a needed expert or another guess; a needed expert may displace a guess.
      const v = this.table.victim(w.guess ? (k) => this.needed.has(k) || this.guessKeys.has(k) : (k) => this.needed.has(k));
      if (v < 0) return;
      this.wanted.shift();
      this.fill(v, w.l, w.e);
      if (w.guess) {
        this.pool[v]!.guessed = true;
        this.prefetched++;
      }
    }
  }

  /** Stop a slot's reads and empty it. */
  private drop(s: number): void {
    const slot = this.pool[s]!;
    for (const t of slot.tickets) this.queue.cancel(t);
    this.settle(slot);
    this.table.clear(s);
    slot.key = -1;
    slot.guessed = false;
    slot.error = null;
    slot.matrices = null;
  }

  /** Whether expert (l, e) is in memory with no read in flight (compute with these first). */
  ready(l: number, e: number): boolean {
    const s = this.table.find(this.key(l, e));
    return s >= 0 && this.pool[s]!.tickets.every((t) => this.queue.done(t));
  }

  /** Expert (l, e)'s matrices, read if needed (blocking until its bytes are in), held until release. */
  acquire(l: number, e: number): ExpertMatrices {
    this.check();
    const key = this.key(l, e);
    let s = this.table.find(key);
    if (s < 0) {
      const w = this.wanted.findIndex((x) => this.key(x.l, x.e) === key);
      if (w >= 0) this.wanted.splice(w, 1);
      s = this.table.victim((k) => this.needed.has(k) && k !== key);
      if (s < 0) s = this.table.victim();
      if (s < 0) throw new Error('expert cache: every slot is in use (more experts held at once than slots)');
      this.fill(s, l, e);
      if (!this.needed.has(key)) { this.misses++; this.perLayer[l]![1]++; }
    }
    const slot = this.pool[s]!;
    this.settle(slot);
    if (slot.error) {
      const err = slot.error;
      // Forget the slot: the next use reads it again (a transient error fails one request, not the rest).
      this.table.clear(s);
      slot.key = -1;
      slot.error = null;
      throw err;
    }
    this.table.pin(s);
    this.table.touch(s);
    return slot.matrices!;
  }

  /** Done computing with expert (l, e): it may be evicted once the layer no longer needs it. */
  release(l: number, e: number): void {
    const key = this.key(l, e);
    const s = this.table.find(key);
    if (s < 0) throw new Error(`expert cache: release of expert ${e} of layer ${l}, which is not held`);
    this.table.unpin(s);
    this.needed.delete(key);
    this.pump(); // a slot may have come free for a read waiting for one
  }

  stats(): ExpertCacheStats {
    const io = this.queue.totals();
    return {
      slots: this.slots, experts: this.experts.length * this.nExperts, slotBytes: this.slotBytes,
      hits: this.hits, misses: this.misses, prefetchHits: this.prefetchHits, prefetched: this.prefetched, prefetchUsed: this.prefetchUsed,
      guessed: this.guessed, guessedRight: this.guessedRight,
      bytesRead: io.bytes - this.probed.bytes, directBytes: io.directBytes - this.probed.directBytes, waitMs: this.waitMs,
      perLayer: this.perLayer.map(([h, u]) => [h, u] as const),
    };
  }

  private check(): void {
    if (this.closed) throw new Error('expert cache: closed');
  }

  /** Stop the reads in flight, close the files. */
  close(): void {
    if (this.closed) return;
    for (const slot of this.pool) {
      for (const t of slot.tickets) this.queue.cancel(t);
      this.settle(slot);
    }
    this.closed = true;
    this.queue.close();
  }
}
