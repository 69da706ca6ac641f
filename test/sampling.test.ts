/**
 * Sampling on hand-computable distributions: every expected set / value below is worked out from the
 * definitions in src/engine/sampling.ts (and runners.py for top-p), not computed by the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/base/rng.js';
import { candidateTokens, makeSampler, NonFiniteLogitsError, SamplingError, TokenHistory, topN } from '../src/engine/sampling.js';

const logOf = (p: number[]) => p.map(Math.log);
const sorted = (a: number[]) => [...a].sort((x, y) => x - y);

test('xoshiro128** known answers from state {1,2,3,4} (worked by hand: 11520, 0, 5927040)', () => {
  const r = Rng.fromState(1, 2, 3, 4);
  assert.equal(r.nextU32(), 11520); // rotl(2·5, 7)·9
  assert.equal(r.nextU32(), 0); // s1 becomes 0 after the first update
  assert.equal(r.nextU32(), 5927040); // s1 = 1026 ^ 7 = 1029: rotl(5145, 7)·9
});

test('seed reproducibility: same seed → same stream, different seed → different stream', () => {
  const a = new Rng(42), b = new Rng(42), c = new Rng(43);
  const xa = Array.from({ length: 8 }, () => a.nextU32());
  const xb = Array.from({ length: 8 }, () => b.nextU32());
  const xc = Array.from({ length: 8 }, () => c.nextU32());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
  const f = new Rng(7);
  for (let i = 0; i < 1000; i++) { const u = f.nextFloat(); assert.ok(u >= 0 && u < 1); }
  assert.throws(() => new Rng(-1), RangeError);
  assert.throws(() => new Rng(2 ** 32), RangeError);
});

test('temperature 0 is argmax, lowest id on ties, and needs no division', () => {
  const s = makeSampler({ temperature: 0 });
  assert.equal(s([0.1, 3, 3, 2], null, new Rng(1)).id, 1);
  assert.equal(s([-5, -1, -7], null, new Rng(1)).id, 1);
});

test('top-k keeps the k most probable (ties by lower id)', () => {
  const x = [1, 3, 3, 2];
  assert.deepEqual(candidateTokens(x, { topK: 2 }), [1, 2]);
  assert.deepEqual(candidateTokens(x, { topK: 1 }), [1]);
  assert.deepEqual(candidateTokens(x, { topK: 3 }), [1, 2, 3]);
  assert.deepEqual(sorted(candidateTokens(x, { topK: 10 })), [0, 1, 2, 3]);
});

test('top-p keeps the smallest most-probable set whose probability reaches p', () => {
  const x = logOf([0.4, 0.3, 0.2, 0.1]);
  assert.deepEqual(candidateTokens(x, { topP: 0.7 }), [0, 1]); // 0.4 + 0.3 = 0.7 reaches 0.7
  assert.deepEqual(candidateTokens(x, { topP: 0.71 }), [0, 1, 2]);
  assert.deepEqual(candidateTokens(x, { topP: 0.4 }), [0]);
  assert.deepEqual(candidateTokens(x, { topP: 0.05 }), [0]);
  assert.deepEqual(candidateTokens(x, { topP: 0.95 }), [0, 1, 2, 3]);
  // Temperature comes first: at T = 0.5, p ∝ p² = [.16,.09,.04,.01]/.30 → .533 + .300 = .833 ≥ 0.8.
  assert.deepEqual(candidateTokens(x, { topP: 0.8, temperature: 0.5 }), [0, 1]);
  assert.deepEqual(candidateTokens(x, { topP: 0.8, temperature: 1 }), [0, 1, 2]); // 0.7 < 0.8
});

test('top-p on a large vocabulary: a peaked head over 100000 near-zero tokens', () => {
  // Tokens 5, 9, 3 carry 0.5, 0.3, 0.1; the rest share 0.1 evenly.
  const V = 100_000;
  const rest = 0.1 / (V - 3);
  const p = new Array<number>(V).fill(rest);
  p[5] = 0.5; p[9] = 0.3; p[3] = 0.1;
  const x = logOf(p);
  assert.deepEqual(candidateTokens(x, { topP: 0.8 }), [5, 9]);
  assert.deepEqual(candidateTokens(x, { topP: 0.85 }), [5, 9, 3]);
  assert.equal(candidateTokens(x, { topP: 0.95 }).length, 3 + Math.ceil((0.95 - 0.9) / rest)); // 3 + 49999
});

test('top-k then top-p renormalised over what top-k kept', () => {
  const x = logOf([0.4, 0.3, 0.2, 0.1]);
  // top-k 3 leaves [.4,.3,.2]/.9 = [.444,.333,.222]: .777 ≥ .75 → 2 tokens; without top-k .7 < .75 → 3.
  assert.deepEqual(candidateTokens(x, { topK: 3, topP: 0.75 }), [0, 1]);
  assert.deepEqual(candidateTokens(x, { topP: 0.75 }), [0, 1, 2]);
});

test('min-p drops tokens below minP × the top probability', () => {
  const x = logOf([0.5, 0.3, 0.15, 0.05]);
  assert.deepEqual(candidateTokens(x, { minP: 0.3 }), [0, 1, 2]); // floor 0.15 keeps 0.15
  assert.deepEqual(candidateTokens(x, { minP: 0.31 }), [0, 1]); // floor 0.155
  assert.deepEqual(candidateTokens(x, { minP: 1 }), [0]);
  assert.deepEqual(candidateTokens(x, { minP: 0.05 }), [0, 1, 2, 3]);
});

test('draw frequencies follow the (truncated, renormalised) distribution', () => {
  const x = logOf([0.5, 0.25, 0.125, 0.125]);
  const rng = new Rng(123);
  const count = (opts: Parameters<typeof makeSampler>[0], n: number) => {
    const s = makeSampler(opts);
    const c = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) c[s(x, null, rng).id]++;
    return c.map((v) => v / n);
  };
  const full = count({}, 20000);
  [0.5, 0.25, 0.125, 0.125].forEach((p, i) => assert.ok(Math.abs(full[i] - p) < 0.015, `token ${i}: ${full[i]} vs ${p}`));
  const k2 = count({ topK: 2 }, 20000); // [.5,.25]/.75
  [2 / 3, 1 / 3, 0, 0].forEach((p, i) => assert.ok(Math.abs(k2[i] - p) < 0.015, `top-k token ${i}: ${k2[i]} vs ${p}`));
});

test('reported log-probabilities and top alternatives are log-softmax of the processed logits', () => {
  // log-softmax of [0, ln 2, ln 3, ln 4] = ln([1,2,3,4]/10).
  const x = [0, Math.log(2), Math.log(3), Math.log(4)];
  const r = makeSampler({ temperature: 0, topLogprobs: 3 })(x, null, new Rng(0));
  assert.equal(r.id, 3);
  assert.ok(Math.abs(r.logprob - Math.log(0.4)) < 1e-12);
  assert.deepEqual(r.top!.map((t) => t.id), [3, 2, 1]);
  [0.4, 0.3, 0.2].forEach((p, i) => assert.ok(Math.abs(r.top![i].logprob - Math.log(p)) < 1e-12));
  assert.deepEqual(topN([5, 1, 5, 7, -Infinity], 3), [3, 0, 2]);
});

test('repetition, presence and frequency penalties on a hand-worked case', () => {
  const x = [2, -1, 0.5, 1];
  const h = new TokenHistory([0]);
  h.push(1); h.push(1); h.push(3); // seen {0,1,3}; counts {1:2, 3:1}
  const lp = (opts: Parameters<typeof makeSampler>[0]) => makeSampler({ ...opts, temperature: 0, topLogprobs: 4 })(x, h, new Rng(0));
  const expectLogits = (got: ReturnType<typeof lp>, want: number[]) => {
    const z = Math.log(want.reduce((a, v) => a + Math.exp(v), 0));
    for (const t of got.top!) assert.ok(Math.abs(t.logprob - (want[t.id] - z)) < 1e-12, `token ${t.id}`);
  };
  // repetition 2: positive logits divided, negative multiplied, over prompt and output: [1, -2, 0.5, 0.5].
  expectLogits(lp({ repetitionPenalty: 2 }), [1, -2, 0.5, 0.5]);
  // presence 0.5, frequency 0.25 over output only: x1 = -1 - 0.5 - 0.5, x3 = 1 - 0.5 - 0.25.
  expectLogits(lp({ presencePenalty: 0.5, frequencyPenalty: 0.25 }), [2, -2, 0.5, 0.25]);
  // logit bias moves the argmax.
  const b = lp({ logitBias: { 2: 3 } });
  assert.equal(b.id, 2);
  expectLogits(b, [2, -1, 3.5, 1]);
});

test('allowed-token mask: only allowed ids are drawn, and probabilities renormalise over them', () => {
  const x = [5, 1, 4, 2];
  assert.equal(makeSampler({ temperature: 0, allowedTokens: [1, 3] })(x, null, new Rng(0)).id, 3);
  const s = makeSampler({ allowedTokens: [1, 3] });
  const rng = new Rng(9);
  for (let i = 0; i < 200; i++) assert.ok([1, 3].includes(s(x, null, rng).id));
  const r = makeSampler({ temperature: 0, allowedTokens: [1, 3] })(x, null, new Rng(0));
  assert.ok(Math.abs(r.logprob - (2 - Math.log(Math.exp(1) + Math.exp(2)))) < 1e-12);
});

test('bad options are rejected with the parameter named', () => {
  for (const [opts, param] of [
    [{ temperature: -1 }, 'temperature'], [{ topP: 0 }, 'topP'], [{ topP: 1.5 }, 'topP'], [{ topK: 1.5 }, 'topK'],
    [{ minP: 2 }, 'minP'], [{ repetitionPenalty: 0 }, 'repetitionPenalty'], [{ topLogprobs: 21 }, 'topLogprobs'],
    [{ allowedTokens: [] }, 'allowedTokens'], [{ logitBias: { 1: NaN } }, 'logitBias'],
  ] as const) {
    assert.throws(() => makeSampler(opts), (e: unknown) => e instanceof SamplingError && e.param === param, param);
  }
  assert.throws(() => makeSampler({ allowedTokens: [9] })([1, 2], null, new Rng(0)), /outside the vocabulary/);
  assert.throws(() => makeSampler({})([-Infinity, -Infinity], null, new Rng(0)), /no token can be sampled/);
});

test('logits the model got wrong (one NaN, +Infinity, all −Infinity) are a NonFiniteLogitsError, not a bad option', () => {
  const isModelFault = (e: unknown) => e instanceof NonFiniteLogitsError && !(e instanceof SamplingError) && !(e instanceof RangeError);
  for (const temperature of [0, 1]) {
    // A single NaN among finite logits used to slip through: argmax skips it, and the logprob came out NaN.
    assert.throws(() => makeSampler({ temperature })([1, NaN, 0.5], null, new Rng(0)), (e: unknown) => isModelFault(e) && /1 of 3 logits are NaN/.test((e as Error).message));
    assert.throws(() => makeSampler({ temperature })([1, Infinity, 0.5], null, new Rng(0)), (e: unknown) => isModelFault(e) && /\+Infinity/.test((e as Error).message));
    assert.throws(() => makeSampler({ temperature })([-Infinity, -Infinity], null, new Rng(0)), isModelFault);
  }
  // −∞ on some tokens is legitimate (a mask): it samples.
  assert.equal(makeSampler({ temperature: 0 })([-Infinity, 2, -Infinity], null, new Rng(0)).id, 1);
});
