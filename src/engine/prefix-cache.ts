/**
 * The prefix cache: key/value rows of token sequences already computed, shared by every request of one
 * engine, so that a prompt starting like an earlier one (a system prompt, a chat's history, the same
 * prompt again) prefills only the rest. Token ids only, like the rest of the engine.
 *
 * Shape (SGLang's RadixCache): a tree whose edges are runs of tokens; each node owns the KV rows of its run,
 * so a shared prefix is stored once. The longest match is COPIED into a new request's own cache: a running
 * request holds nothing of the store, any node can go at any time, and no reference counts are needed.
 * Eviction is LRU over the leaves within a byte budget; a leaf loses its tail first (what remains is still
 * a valid prefix), then goes.
 *
 * Exactness rests on the model computing each position's keys and values from the tokens up to it alone,
 * the same bytes whether they were computed in one chunk, several, or alongside other sequences
 * (test/prefix-cache.test.ts checks it on the fixture models).
 */
import type { CacheRows, EngineCache } from './cache.js';

export interface PrefixCacheStats {
  /** Requests that looked for a cached prefix. */
  lookups: number;
  /** Of them, those that found at least one token. */
  hits: number;
  /** Prompt tokens whose rows came from the cache instead of the model. */
  hitTokens: number;
  /** Positions added to the cache. */
  insertedTokens: number;
  /** Positions dropped to stay within the budget. */
  evictedTokens: number;
  /** Positions held now (a shared prefix counts once). */
  tokens: number;
  /** Bytes of rows held now. */
  bytes: number;
  /** The budget. */
  budgetBytes: number;
}

class Node {
  readonly children = new Map<number, Node>();
  /** Last lookup or insertion that passed through this node (a clock, not a time). */
  used = 0;
  constructor(
    /** The run of tokens on the edge into this node (empty for the root). */
    public tokens: number[],
    /** Their rows, as many positions as tokens (null for the root). */
    public rows: CacheRows | null,
    public parent: Node | null,
  ) {}
}

export class PrefixCache {
  private readonly root = new Node([], null, null);
  private clock = 0;
  private held = { tokens: 0, bytes: 0 };
  private counts = { lookups: 0, hits: 0, hitTokens: 0, insertedTokens: 0, evictedTokens: 0 };

  constructor(readonly budgetBytes: number) {
    if (!(budgetBytes > 0)) throw new RangeError(`prefix cache budget must be > 0 bytes, got ${budgetBytes}`);
  }

  stats(): PrefixCacheStats {
    return { ...this.counts, ...this.held, budgetBytes: this.budgetBytes };
  }

  /**
   * Copy the rows of the longest cached prefix of `tokens`, at most `max` positions, into `cache` (which
   * must be empty); returns how many positions it now holds.
   */
  restore(tokens: readonly number[], max: number, cache: EngineCache, o: { count?: boolean } = {}): number {
    if (!cache.importRows) return 0;
    if (cache.length !== 0) throw new Error('prefix cache: restoring into a cache that is not empty');
    const count = o.count ?? true; // a lookup for saving to disk is not a request's hit
    if (count) this.counts.lookups++;
    const now = ++this.clock;
    const limit = Math.min(max, tokens.length);
    let node = this.root;
    let n = 0;
    while (n < limit) {
      const child = node.children.get(tokens[n]!);
      if (!child) break;
      const m = commonLength(child.tokens, tokens, n, limit);
      cache.importRows(child.rows!, m);
      child.used = now;
      n += m;
      if (m < child.tokens.length) break;
      node = child;
    }
    if (n > 0 && count) { this.counts.hits++; this.counts.hitTokens += n; }
    return n;
  }

  /**
   * Remember the rows of `tokens` (positions 0…tokens.length−1 of `cache`, which must hold at least that
   * many): only the part not already cached is copied out. Then evicts down to the budget.
   */
  insert(tokens: readonly number[], cache: EngineCache): void {
    if (!cache.exportRows || tokens.length === 0) return;
    if (cache.length < tokens.length) throw new Error(`prefix cache: ${tokens.length} tokens but the cache holds ${cache.length} positions`);
    const now = ++this.clock;
    let node = this.root;
    let n = 0;
    while (n < tokens.length) {
      const child = node.children.get(tokens[n]!);
      if (!child) break;
      const m = commonLength(child.tokens, tokens, n, tokens.length);
      if (m < child.tokens.length && n + m < tokens.length) this.split(child, m); // they part inside the run (the tail keeps its age)
      child.used = now;
      n += m;
      node = child;
    }
    if (n < tokens.length) {
      const rows = cache.exportRows(n, tokens.length);
      const leaf = new Node(tokens.slice(n), rows, node);
      leaf.used = now;
      node.children.set(tokens[n]!, leaf);
      this.held.tokens += rows.length;
      this.held.bytes += rows.bytes;
      this.counts.insertedTokens += rows.length;
    }
    this.evict();
  }

  /** Cut node's run after its first `at` tokens: the rest becomes its only child (owning the rest of the rows). */
  private split(node: Node, at: number): void {
    const rows = node.rows!;
    const tail = new Node(node.tokens.slice(at), rows.slice(at, rows.length), node);
    tail.used = node.used;
    for (const [t, c] of node.children) { tail.children.set(t, c); c.parent = tail; }
    node.children.clear();
    node.children.set(tail.tokens[0]!, tail);
    node.tokens = node.tokens.slice(0, at);
    node.rows = rows.slice(0, at);
    this.held.bytes += node.rows.bytes + tail.rows!.bytes - rows.bytes;
  }

  /** Drop least recently used leaves (their tails first) until the rows fit the budget. */
  private evict(): void {
    while (this.held.bytes > this.budgetBytes) {
      const leaf = this.oldestLeaf();
      if (!leaf) break;
      const rows = leaf.rows!;
      const excess = this.held.bytes - this.budgetBytes;
      // Every position of a cache takes the same bytes, so the tail to cut is known exactly.
      const keep = rows.bytes > excess ? Math.floor((rows.bytes - excess) / (rows.bytes / rows.length)) : 0;
      if (keep > 0) {
        leaf.rows = rows.slice(0, keep);
        leaf.tokens = leaf.tokens.slice(0, keep);
        this.held.bytes += leaf.rows.bytes - rows.bytes;
      } else {
        leaf.parent!.children.delete(leaf.tokens[0]!);
        this.held.bytes -= rows.bytes;
      }
      this.held.tokens -= rows.length - keep;
      this.counts.evictedTokens += rows.length - keep;
    }
  }

  private oldestLeaf(): Node | null {
    let best: Node | null = null;
    const stack = [...this.root.children.values()];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n.children.size === 0) { if (!best || n.used < best.used) best = n; }
      else stack.push(...n.children.values());
    }
    return best;
  }
}

/** How many of run's tokens equal tokens[from…], stopping at `limit`. */
function commonLength(run: readonly number[], tokens: readonly number[], from: number, limit: number): number {
  const n = Math.min(run.length, limit - from);
  let i = 0;
  while (i < n && run[i] === tokens[from + i]) i++;
  return i;
}
