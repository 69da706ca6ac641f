/**
 * What the engine needs of a KV cache (src/model/grok.ts KVCache satisfies it): shared by the scheduler and
 * the prefix cache.
 */

export interface EngineCache {
  readonly capacity: number;
  length: number;
  /** An independent copy (lets requests with one prompt share its prefill); without it each prefills alone. */
  clone?(): EngineCache;
  /** Positions [from, to) copied out, for the prefix cache (which needs both of these). */
  exportRows?(from: number, to: number): CacheRows;
  /** Append the first `count` positions of rows exported by a cache of the same model and KV type. */
  importRows?(rows: CacheRows, count: number): void;
  /** Called once when the engine drops the cache (a pipeline frees the sequence's keys and values on the other stages). */
  release?(): void;
}

/** Rows copied out of a cache (EngineCache.exportRows): opaque to the engine but for their size. */
export interface CacheRows {
  /** Positions held. */
  readonly length: number;
  /** Memory they take (every position the same). */
  readonly bytes: number;
  /** Positions [from, to) as rows of their own (a copy: these can then be dropped). */
  slice(from: number, to: number): CacheRows;
}

