/** Matching on sequences of any kind: token ids (the engine's stop sequences) or text (stop strings). */

/**
 * Length of the longest suffix of `seq` that is a proper prefix of one of `patterns`: how much of the
 * output must be held back because a stop pattern may be starting there.
 */
export function longestPrefixSuffix<T>(seq: ArrayLike<T>, patterns: readonly ArrayLike<T>[]): number {
  let best = 0;
  for (const p of patterns) {
    for (let n = Math.min(p.length - 1, seq.length); n > best; n--) {
      let ok = true;
      for (let i = 0; i < n; i++) if (seq[seq.length - n + i] !== p[i]) { ok = false; break; }
      if (ok) { best = n; break; }
    }
  }
  return best;
}
