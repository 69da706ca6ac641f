/**
 * A layer split of a model over machines of given memory (`grok plan --machines 4x64G`): contiguous layer
 * ranges balanced by their weights' bytes, the first machine also holding the embedding, the last the
 * final norm and output head (and the tied embedding again). Each machine must keep a margin for its KV
 * cache and the runtime: max(1 GiB, 10 %) of its memory, as the loader's default RAM budget does.
 */
import type { LayerSizes } from '../../model/loader.js';

export interface PlannedStage {
  from: number;
  to: number;
  /** Weight bytes this machine holds. */
  bytes: number;
  /** Its memory, and what the weights may take of it. */
  memory: number;
  budget: number;
}

/** "4x64G,1x128G" → machine memory sizes in bytes, in order. */
export function parseMachines(v: string, parseSize: (s: string) => number): number[] {
  const out: number[] = [];
  for (const part of v.split(',')) {
    const m = /^\s*(?:(\d+)\s*[x×]\s*)?(\S+)\s*$/.exec(part);
    if (!m) throw new RangeError(`--machines: expected COUNTxSIZE[,COUNTxSIZE…] like 4x64G, got '${v}'`);
    const n = m[1] === undefined ? 1 : Number(m[1]);
    if (!(n >= 1 && n <= 1024)) throw new RangeError(`--machines: a count of 1…1024 machines, got ${m[1]}`);
    const size = parseSize(m[2]!);
    for (let i = 0; i < n; i++) out.push(size);
  }
  return out;
}

export const budgetOf = (memory: number): number => memory - Math.max(2 ** 30, 0.1 * memory);

/**
 * Contiguous ranges, one per machine (each at least one layer), minimising the largest share relative to
 * each machine's budget (binary search on that ratio, greedy fill). Null when they cannot fit.
 */
export function planSplit(s: LayerSizes, machines: readonly number[]): PlannedStage[] | null {
  const L = s.layers.length, N = machines.length;
  if (N < 1 || N > L) return null;
  // The embedding on the first machine; the head on the last, with the tied embedding again unless it is the first.
  const extra = (from: number, to: number) => (from === 0 ? s.embedding : 0) + (to === L ? s.head + (s.tied && from !== 0 ? s.embedding : 0) : 0);
  const fill = (ratio: number): PlannedStage[] | null => {
    const out: PlannedStage[] = [];
    let from = 0;
    for (let i = 0; i < N; i++) {
      const budget = budgetOf(machines[i]!) * ratio;
      let to = from, bytes = 0;
      // Leave at least one layer for each machine after this one.
      while (to < L - (N - 1 - i)) {
        const next = bytes + s.layers[to]!;
        if (next + extra(from, to + 1) > budget && to > from) break;
        bytes = next;
        to++;
        if (i === N - 1) continue; // the last machine takes the rest
      }
      if (i === N - 1) to = L;
      bytes = s.layers.slice(from, to).reduce((a, b) => a + b, 0) + extra(from, to);
      if (bytes > budget || to <= from) return null;
      out.push({ from, to, bytes, memory: machines[i]!, budget: budgetOf(machines[i]!) });
      from = to;
    }
    return from === L ? out : null;
  };
  if (!fill(1)) return null;
  let lo = 0, hi = 1;
  for (let k = 0; k < 40; k++) { const mid = (lo + hi) / 2; if (fill(mid)) hi = mid; else lo = mid; }
  return fill(hi);
}
