/**
 * Which expert leaves the cache: the one decision of the expert cache (expert-cache.ts), kept apart so it
 * can be tested on hand-made traces and replayed on recorded ones (`grok cache-sim`).
 *
 * A table of `slots` slots, each empty or holding one expert (key = layer · nExperts + expert). Pinned
 * slots (an expert being computed with) and protected keys (the experts the current layer still needs)
 * are never chosen. Among the rest an empty slot goes first, then:
 * - 'lru': the least recently used;
 * - 'lfu': the least often used, ties to the least recently used (counts halve every `slots` fills, so
 *   an expert that was popular long ago does not stay forever).
 */
export type EvictionPolicy = 'lru' | 'lfu';
export const EVICTION_POLICIES: readonly EvictionPolicy[] = ['lru', 'lfu'];

export class SlotTable {
  /** Key held by each slot, −1 when empty. */
  private readonly keys: Int32Array;
  private readonly pins: Int32Array;
  private readonly lastUse: Float64Array;
  private readonly uses: Float64Array;
  private readonly where = new Map<number, number>();
  private clock = 0;
  private fills = 0;

  constructor(readonly slots: number, readonly policy: EvictionPolicy = 'lru') {
    if (!Number.isInteger(slots) || slots < 1) throw new Error(`expert cache: slots must be a positive integer, got ${slots}`);
    if (!EVICTION_POLICIES.includes(policy)) throw new Error(`expert cache: policy must be one of ${EVICTION_POLICIES.join(', ')}, got '${String(policy)}'`);
    this.keys = new Int32Array(slots).fill(-1);
    this.pins = new Int32Array(slots);
    this.lastUse = new Float64Array(slots);
    this.uses = new Float64Array(slots);
  }

  /** The slot holding `key`, or −1. */
  find(key: number): number {
    return this.where.get(key) ?? -1;
  }

  keyOf(slot: number): number {
    return this.keys[slot]!;
  }

  /** A use of the expert in `slot` (what LRU and LFU count). */
  touch(slot: number): void {
    this.lastUse[slot] = ++this.clock;
    this.uses[slot]! += 1;
  }

  pin(slot: number): void {
    this.pins[slot]! += 1;
  }

  unpin(slot: number): void {
    if (this.pins[slot]! <= 0) throw new Error(`expert cache: slot ${slot} unpinned more often than pinned`);
    this.pins[slot]! -= 1;
  }

  pinned(slot: number): boolean {
    return this.pins[slot]! > 0;
  }

  /**
   * The slot a new expert should go to, or −1 when every slot is pinned or protected. `protect(key)`: keys
   * that must stay (the current layer's experts, or what a prefetch must not displace).
   */
  victim(protect?: (key: number) => boolean): number {
    let best = -1;
    for (let s = 0; s < this.slots; s++) {
      const k = this.keys[s]!;
      if (k < 0) return s;
      if (this.pins[s]! > 0 || protect?.(k)) continue;
      if (best < 0 || this.worse(s, best)) best = s;
    }
    return best;
  }

  /** Whether slot a is a better victim than slot b. */
  private worse(a: number, b: number): boolean {
    if (this.policy === 'lfu' && this.uses[a] !== this.uses[b]) return this.uses[a]! < this.uses[b]!;
    return this.lastUse[a]! < this.lastUse[b]!;
  }

  /** Put `key` in `slot` (not pinned); returns the key it held, or −1. */
  assign(slot: number, key: number): number {
    if (this.pins[slot]! > 0) throw new Error(`expert cache: slot ${slot} is in use`);
    if (this.where.has(key)) throw new Error(`expert cache: expert ${key} is already in slot ${this.where.get(key)}`);
    const old = this.keys[slot]!;
    if (old >= 0) this.where.delete(old);
    this.keys[slot] = key;
    this.where.set(key, slot);
    this.uses[slot] = 0;
    this.lastUse[slot] = ++this.clock;
    if (this.policy === 'lfu' && ++this.fills % this.slots === 0) for (let s = 0; s < this.slots; s++) this.uses[s]! /= 2;
    return old;
  }

  /** Empty `slot` (not pinned). */
  clear(slot: number): void {
    if (this.pins[slot]! > 0) throw new Error(`expert cache: slot ${slot} is in use`);
    const old = this.keys[slot]!;
    if (old >= 0) this.where.delete(old);
    this.keys[slot] = -1;
  }

  /** Keys held now. */
  held(): number[] {
    return [...this.where.keys()];
  }
}

/** One token's routing in one layer: the experts it was sent to. */
export interface TraceStep {
  readonly layer: number;
  readonly experts: readonly number[];
}

export interface SimResult {
  /** Expert uses (one per distinct expert per layer per step). */
  readonly uses: number;
  readonly hits: number;
  readonly misses: number;
  readonly hitRate: number;
}

/**
 * Replays a routing trace (in order: layer by layer, token by token) against a cache of `slots` experts:
 * each step's distinct experts are looked up, the step's own experts protected while the misses are
 * filled, as the expert cache does when it serves a layer. Prefetch is not simulated (it moves reads
 * earlier, it does not change what must be read when the guess is right).
 */
export function simulate(trace: Iterable<TraceStep>, slots: number, nExperts: number, policy: EvictionPolicy = 'lru'): SimResult {
  const t = new SlotTable(slots, policy);
  let uses = 0, hits = 0;
  for (const step of trace) {
    const keys = [...new Set(step.experts)].map((e) => step.layer * nExperts + e);
    const protect = (k: number) => keys.includes(k);
    for (const k of keys) {
      uses++;
      let s = t.find(k);
      if (s >= 0) hits++;
      else {
        s = t.victim(protect);
        if (s < 0) s = t.victim(); // more experts in one step than slots: the step's own go too
        t.assign(s, k);
      }
      t.touch(s);
    }
  }
  return { uses, hits, misses: uses - hits, hitRate: uses === 0 ? 0 : hits / uses };
}
