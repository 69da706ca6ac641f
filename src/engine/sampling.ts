/**
 * Sampling: a sampler is built once from options (mlx-lm make_sampler style) and is then a pure function
 * of (logits, token history, seeded RNG). It knows token ids only.
 *
 * Order of operations on one row of logits x (vocab V):
 *   1. allowed-token mask (others → −∞), logit bias (x[i] += b[i]),
 *      repetition penalty r over every token in prompt + output (x > 0 ? x / r : x · r, as CTRL / HF),
 *      presence / frequency penalties over output tokens (x −= presence·[c > 0] + frequency·c, as OpenAI).
 *   2. The reported log-probabilities are log-softmax of this processed x at temperature 1, before any
 *      truncation (so they are defined at temperature 0 too and score the model's own distribution).
 *   3. temperature 0 → argmax (lowest id on ties); no division (the reference divides by zero there).
 *   4. otherwise p ∝ exp(x / T), then top-k (the k most probable), then top-p over what is left, renormalised
 *      (runners.py: the smallest set of most probable tokens whose cumulative probability reaches p),
 *      then min-p (drop tokens with p < minP · p_max), then one categorical draw with the request's RNG.
 * Ties in probability are ordered by lower token id, so every set is well defined.
 */
import type { Rng } from '../base/rng.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most probable tokens; 0 = off. */
  topK?: number;
  /** Nucleus: keep the smallest most-probable set whose probability reaches p; 1 = off. */
  topP?: number;
  /** Drop tokens whose probability is below minP × the top probability; 0 = off. */
  minP?: number;
  /** > 1 discourages tokens already in prompt or output; 1 = off. */
  repetitionPenalty?: number;
  /** Subtracted once from the logit of every token already generated. */
  presencePenalty?: number;
  /** Subtracted from a token's logit once per time it was generated. */
  frequencyPenalty?: number;
  /** Added to the logits of the given token ids. */
  logitBias?: ReadonlyMap<number, number> | Readonly<Record<number, number>>;
  /** If given, only these token ids may be produced. */
  allowedTokens?: Iterable<number>;
  /** How many most-probable alternatives to report with every token (0…20). */
  topLogprobs?: number;
}

export interface TokenLogprob {
  id: number;
  logprob: number;
}

export interface SampleResult extends TokenLogprob {
  /** The topLogprobs most probable tokens (by the reported distribution), most probable first. */
  top?: TokenLogprob[];
}

/**
 * The tokens a request has seen so far, kept incrementally for the penalties:
 * `seen` = prompt ∪ output (repetition penalty), `counts` = output occurrences (presence / frequency).
 */
export class TokenHistory {
  readonly seen = new Set<number>();
  readonly counts = new Map<number, number>();
  constructor(prompt: ArrayLike<number> = []) {
    for (let i = 0; i < prompt.length; i++) this.seen.add(prompt[i]);
  }
  push(id: number): void {
    this.seen.add(id);
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }
}

export type Sampler = (logits: ArrayLike<number>, history: TokenHistory | null, rng: Rng) => SampleResult;

/**
 * The token ids a sampler with these options may draw from, most probable first (after the processors,
 * temperature, top-k, top-p and min-p). At temperature 0 it is the argmax alone.
 */
export function candidateTokens(logits: ArrayLike<number>, options: SamplingOptions, history: TokenHistory | null = null): number[] {
  const s = samplerInternal(options);
  const r = s.sample(logits, history, null);
  return (options.temperature ?? 1) === 0 ? [r.id] : s.lastKept();
}

export class SamplingError extends RangeError {
  constructor(readonly param: string, message: string) {
    super(message);
    this.name = 'SamplingError';
  }
}

/**
 * The model's logits cannot be sampled from (a NaN, +∞, or −∞ everywhere): a fault of the model or its
 * weights, not of the request. Not a SamplingError, which names an option the caller got wrong.
 */
export class NonFiniteLogitsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteLogitsError';
  }
}

/** What is wrong with a row of logits that cannot be sampled from. */
function nonFinite(x: ArrayLike<number>): string {
  let nan = 0;
  let inf = 0;
  for (let i = 0; i < x.length; i++) { if (Number.isNaN(x[i])) nan++; else if (x[i] === Infinity) inf++; }
  if (nan > 0) return `${nan} of ${x.length} logits are NaN`;
  if (inf > 0) return `${inf} of ${x.length} logits are +Infinity`;
  return 'every logit is −Infinity';
}

function check(ok: boolean, param: string, message: string): void {
  if (!ok) throw new SamplingError(param, `${param}: ${message}`);
}

/** Validate options once; names the offending parameter. */
export function validateSamplingOptions(o: SamplingOptions): void {
  const t = o.temperature ?? 1;
  check(Number.isFinite(t) && t >= 0, 'temperature', `must be a finite number ≥ 0, got ${t}`);
  const k = o.topK ?? 0;
  check(Number.isInteger(k) && k >= 0, 'topK', `must be an integer ≥ 0, got ${k}`);
  const p = o.topP ?? 1;
  check(Number.isFinite(p) && p > 0 && p <= 1, 'topP', `must be in (0, 1], got ${p}`);
  const m = o.minP ?? 0;
  check(Number.isFinite(m) && m >= 0 && m <= 1, 'minP', `must be in [0, 1], got ${m}`);
  const r = o.repetitionPenalty ?? 1;
  check(Number.isFinite(r) && r > 0, 'repetitionPenalty', `must be a finite number > 0, got ${r}`);
  check(Number.isFinite(o.presencePenalty ?? 0), 'presencePenalty', `must be finite, got ${o.presencePenalty}`);
  check(Number.isFinite(o.frequencyPenalty ?? 0), 'frequencyPenalty', `must be finite, got ${o.frequencyPenalty}`);
  const n = o.topLogprobs ?? 0;
  check(Number.isInteger(n) && n >= 0 && n <= 20, 'topLogprobs', `must be an integer in 0…20, got ${n}`);
}

function biasEntries(b: SamplingOptions['logitBias']): [number, number][] {
  if (!b) return [];
  const entries: [number, number][] = b instanceof Map
    ? [...b.entries()]
    : Object.entries(b).map(([k, v]) => [Number(k), v as number]);
  for (const [id, v] of entries) {
    check(Number.isInteger(id) && id >= 0, 'logitBias', `token id must be an integer ≥ 0, got ${id}`);
    check(Number.isFinite(v), 'logitBias', `bias for token ${id} must be finite, got ${v}`);
  }
  return entries;
}

/** Build a sampler from options (validated here, once). */
export function makeSampler(options: SamplingOptions = {}): Sampler {
  const s = samplerInternal(options).sample;
  return (logits, history, rng) => s(logits, history, rng);
}

function samplerInternal(options: SamplingOptions): {
  sample: (logits: ArrayLike<number>, history: TokenHistory | null, rng: Rng | null) => SampleResult;
  lastKept: () => number[];
} {
  validateSamplingOptions(options);
  const temperature = options.temperature ?? 1;
  const topK = options.topK ?? 0;
  const topP = options.topP ?? 1;
  const minP = options.minP ?? 0;
  const repetition = options.repetitionPenalty ?? 1;
  const presence = options.presencePenalty ?? 0;
  const frequency = options.frequencyPenalty ?? 0;
  const nTop = options.topLogprobs ?? 0;
  const bias = biasEntries(options.logitBias);
  const allowed = options.allowedTokens ? [...options.allowedTokens] : null;
  if (allowed) {
    check(allowed.length > 0, 'allowedTokens', 'must not be empty');
    for (const id of allowed) check(Number.isInteger(id) && id >= 0, 'allowedTokens', `token id must be an integer ≥ 0, got ${id}`);
  }

  // Working buffers sized on first use (the sampler does not know the vocabulary size before).
  let x = new Float64Array(0);
  let w = new Float64Array(0);
  let mask: Uint8Array | null = null;
  let lastKept: number[] = [];

  const sample = (logits: ArrayLike<number>, history: TokenHistory | null, rng: Rng | null): SampleResult => {
    const V = logits.length;
    if (x.length !== V) {
      x = new Float64Array(V);
      w = new Float64Array(V);
      if (allowed) {
        mask = new Uint8Array(V);
        for (const id of allowed) {
          check(id < V, 'allowedTokens', `token id ${id} is outside the vocabulary (0…${V - 1})`);
          mask[id] = 1;
        }
      }
      for (const [id] of bias) check(id < V, 'logitBias', `token id ${id} is outside the vocabulary (0…${V - 1})`);
    }
    // 1. Logit processors.
    for (let i = 0; i < V; i++) x[i] = logits[i];
    if (mask) for (let i = 0; i < V; i++) if (!mask[i]) x[i] = -Infinity;
    for (const [id, b] of bias) x[id] += b;
    if (history) {
      if (repetition !== 1) {
        for (const id of history.seen) if (id < V) x[id] = x[id] > 0 ? x[id] / repetition : x[id] * repetition;
      }
      if (presence !== 0 || frequency !== 0) {
        for (const [id, c] of history.counts) if (id < V) x[id] -= presence + frequency * c;
      }
    }
    // 2. log-softmax normaliser; argmax (lowest id wins ties).
    let best = -1;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (x[i] > max) { max = x[i]; best = i; }
    let z = 0;
    for (let i = 0; i < V; i++) z += Math.exp(x[i] - max);
    // A NaN anywhere makes z NaN (argmax skips NaNs); +∞ is the max; no finite logit leaves best at −1.
    if (best < 0 || max === Infinity || Number.isNaN(z)) throw new NonFiniteLogitsError(`no token can be sampled: ${nonFinite(x)}`);
    const logZ = max + Math.log(z);

    let id: number;
    if (temperature === 0) {
      id = best;
    } else {
      // 4. Probabilities (unnormalised weights) at temperature T.
      let total = 0;
      for (let i = 0; i < V; i++) { const e = Math.exp((x[i] - max) / temperature); w[i] = e; total += e; }
      if (rng === null) {
        lastKept = topK === 0 && topP >= 1 && minP === 0 ? truncate(w, total, 0, 1, 1e-300) : truncate(w, total, topK, topP, minP);
        id = lastKept[0];
      } else if (topK === 0 && topP >= 1 && minP === 0) {
        id = drawInIdOrder(w, total, rng);
      } else {
        const kept = truncate(w, total, topK, topP, minP);
        let keptSum = 0;
        for (const i of kept) keptSum += w[i];
        const u = rng.nextFloat() * keptSum;
        id = kept[kept.length - 1];
        let c = 0;
        for (const i of kept) { c += w[i]; if (u < c) { id = i; break; } }
      }
    }
    const result: SampleResult = { id, logprob: x[id] - logZ };
    if (nTop > 0) result.top = topN(x, nTop).map((i) => ({ id: i, logprob: x[i] - logZ }));
    return result;
  };
  return { sample, lastKept: () => lastKept };
}

function drawInIdOrder(w: Float64Array, total: number, rng: Rng): number {
  const u = rng.nextFloat() * total;
  let c = 0;
  let last = 0;
  for (let i = 0; i < w.length; i++) {
    if (w[i] === 0) continue;
    c += w[i];
    last = i;
    if (u < c) return i;
  }
  return last; // u landed in the rounding gap at the very top
}

/** Descending by weight, ties by lower id. */
function byWeight(w: Float64Array) {
  return (a: number, b: number) => (w[b] - w[a]) || (a - b);
}

/**
 * The token ids that survive top-k, top-p, min-p, most probable first. Instead of sorting the whole
 * vocabulary it sorts the tokens with weight ≥ τ, lowering τ until that set provably contains the answer:
 * {w ≥ τ} is a prefix of the full descending order, so once it has ≥ k tokens (top-k) or reaches p of
 * the total (top-p) the truncated set lies inside it.
 */
function truncate(w: Float64Array, total: number, topK: number, topP: number, minP: number): number[] {
  let wmax = 0;
  for (let i = 0; i < w.length; i++) if (w[i] > wmax) wmax = w[i];
  let sorted: number[] = [];
  for (let scale = 1e-2; ; scale *= 1e-3) {
    const tau = scale < 1e-300 ? Number.MIN_VALUE : wmax * scale;
    sorted = [];
    let sum = 0;
    for (let i = 0; i < w.length; i++) if (w[i] >= tau) { sorted.push(i); sum += w[i]; }
    if (tau === Number.MIN_VALUE) break;
    if (topK > 0) {
      if (sorted.length >= topK) break; // holds the whole top-k set, so top-p's renormalisation is exact
    } else if ((topP < 1 && sum >= topP * total) || (minP > 0 && tau <= minP * wmax)) {
      break; // holds the top-p prefix, or everything min-p could keep
    }
  }
  sorted.sort(byWeight(w));
  if (topK > 0 && sorted.length > topK) sorted.length = topK;
  if (topP < 1) {
    let keptTotal = total;
    if (topK > 0) { keptTotal = 0; for (const i of sorted) keptTotal += w[i]; }
    // Relative slack absorbs float rounding when the cumulative sum lands exactly on p.
    const target = topP * keptTotal * (1 - 1e-9);
    let c = 0;
    let n = 0;
    while (n < sorted.length) { c += w[sorted[n]]; n++; if (c >= target) break; }
    sorted.length = n;
  }
  if (minP > 0) {
    const floor = minP * w[sorted[0]];
    let n = sorted.length;
    while (n > 1 && w[sorted[n - 1]] < floor) n--;
    sorted.length = n;
  }
  return sorted;
}

/** Indices of the n largest finite values of x, largest first, ties by lower id. */
export function topN(x: ArrayLike<number>, n: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v === -Infinity || Number.isNaN(v)) continue;
    if (ids.length === n && v <= x[ids[n - 1]]) continue;
    let j = ids.length < n ? ids.length : n - 1;
    if (ids.length < n) ids.push(i);
    while (j > 0 && x[ids[j - 1]] < v) { ids[j] = ids[j - 1]; j--; }
    ids[j] = i;
  }
  return ids;
}
