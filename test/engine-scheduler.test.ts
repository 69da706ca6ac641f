/**
 * Scheduler mechanics on a recording fake model (what each forward call was given): one call per
 * iteration for every active sequence, chunked prefill interleaved with decoding, slot admission. The
 * numerical invariants are tested on the real fixtures in engine.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueueFullError, Scheduler, type BatchModel, type EngineCache } from '../src/engine/scheduler.js';
import { SamplingError } from '../src/engine/sampling.js';
import { fixtureModel } from './engine-helpers.js';

/** Logits always favour token 5; records the token count of every sequence in every call. */
function recorder() {
  const calls: number[][] = [];
  const model: BatchModel = {
    config: { vocabSize: 8, contextLength: 4096, eosToken: 2 },
    newCache: (capacity = 4096): EngineCache => ({ capacity, length: 0 }),
    forward(seqs, opts) {
      assert.equal(opts?.lastOnly, true);
      calls.push(seqs.map((s) => s.tokens.length));
      for (const s of seqs) {
        assert.ok(s.cache.length + s.tokens.length <= s.cache.capacity, 'cache overflow');
        s.cache.length += s.tokens.length;
      }
      const out = new Float32Array(seqs.length * 8);
      for (let i = 0; i < seqs.length; i++) out[i * 8 + 5] = 10;
      return out;
    },
  };
  return { model, calls };
}

test('a long prompt is prefilled in chunks while another sequence keeps decoding, one call per step', async () => {
  const { model, calls } = recorder();
  const s = new Scheduler(model, { slots: 2, prefillChunk: 100 });
  const short = s.submit([1, 3], { temperature: 0, maxTokens: 10, ignoreEos: true });
  const shortTokens: number[] = [];
  const reading = (async () => { for await (const t of short) shortTokens.push(t.id); })();
  await new Promise((r) => setImmediate(r)); // the short one is decoding now
  const long = s.submit(new Array(450).fill(4), { temperature: 0, maxTokens: 3 });
  const longTokens: number[] = [];
  for await (const t of long) longTokens.push(t.id);
  await reading;
  assert.deepEqual(longTokens, [5, 5, 5]);
  assert.deepEqual(shortTokens, new Array(10).fill(5));
  // Step 1: the short prompt alone. Then the long prompt's chunks (100,100,100,100,50) ride along with the
  // short sequence's single decode tokens, one forward call per step.
  assert.deepEqual(calls[0], [2]);
  const chunks = calls.filter((c) => c.length === 2).map((c) => c[1]);
  assert.deepEqual(chunks.slice(0, 5), [100, 100, 100, 100, 50]);
  for (const c of calls.filter((c) => c.length === 2)) assert.equal(c[0], 1);
  assert.equal(calls.reduce((a, c) => a + c.reduce((x, y) => x + y, 0), 0), 2 + 9 + 450 + 2); // every token fed once
});

test('slots bound the batch; a waiting request is admitted as soon as one finishes', async () => {
  const { model, calls } = recorder();
  const s = new Scheduler(model, { slots: 2 });
  const reqs = [3, 5, 2].map((n) => s.submit([1], { temperature: 0, maxTokens: n, ignoreEos: true }));
  assert.equal(s.activeCount, 2);
  assert.equal(s.queuedCount, 1);
  const out = await Promise.all(reqs.map(async (r) => { let n = 0; for await (const _ of r) n++; return n; }));
  assert.deepEqual(out, [3, 5, 2]);
  assert.ok(calls.every((c) => c.length <= 2));
  // The third joins right after the first finishes (step 3), not after the second: 5 steps in all.
  assert.equal(calls.length, 5);
  assert.equal(s.steps, 5);
});

test('logit bias / allowed tokens outside the vocabulary are refused at submit, before any forward call', () => {
  const { model, calls } = recorder();
  const s = new Scheduler(model, { slots: 1 });
  assert.throws(() => s.submit([1, 3], { logitBias: { 8: 1 } }), (e: unknown) => e instanceof SamplingError && e.param === 'logitBias');
  assert.throws(() => s.submit([1, 3], { logitBias: new Map([[3, 1], [99, -1]]) }), (e: unknown) => e instanceof SamplingError && e.param === 'logitBias');
  assert.throws(() => s.submit([1, 3], { allowedTokens: [1, 8] }), (e: unknown) => e instanceof SamplingError && e.param === 'allowedTokens');
  assert.equal(calls.length, 0);
  assert.equal(s.activeCount + s.queuedCount, 0);
});

test('maxQueue 0: no waiting, but a free slot still serves', async () => {
  const { model } = recorder();
  const s = new Scheduler(model, { slots: 1, maxQueue: 0 });
  const a = s.submit([1], { temperature: 0, maxTokens: 3, ignoreEos: true });
  assert.throws(() => s.submit([1], { maxTokens: 1 }), QueueFullError);
  let n = 0;
  for await (const _ of a) n++;
  assert.equal(n, 3);
  const b = s.submit([1], { temperature: 0, maxTokens: 1 });
  for await (const _ of b) n++;
  assert.equal(n, 4);
});

/**
 * A fake model of `layers` layers that calls the checkpoint before each (as GrokModel does) and moves the
 * cache lengths only at the end; `atLayer(call, layer)` runs first, as another thread would meanwhile.
 */
function layered(layers: number, atLayer: (call: number, layer: number) => void) {
  const calls: number[][] = [];
  const model: BatchModel = {
    config: { vocabSize: 8, contextLength: 4096, eosToken: 2 },
    newCache: (capacity = 4096): EngineCache => ({ capacity, length: 0 }),
    forward(seqs, opts) {
      calls.push(seqs.map((s) => s.tokens.length));
      for (let l = 0; l < layers; l++) {
        atLayer(calls.length - 1, l);
        opts?.checkpoint?.(l, layers);
      }
      for (const s of seqs) s.cache.length += s.tokens.length;
      const out = new Float32Array(seqs.length * 8);
      for (let i = 0; i < seqs.length; i++) out[i * 8 + 5] = 10;
      return out;
    },
  };
  return { model, calls };
}

test('isCancelled: a pass carrying a cancelled prompt chunk is abandoned between layers and redone without it', async () => {
  const cancelled = new Set<unknown>();
  let long: ReturnType<Scheduler['submit']> | null = null;
  // The long prompt's client goes away in the middle of its second pass (layer 2 of 4).
  const { model, calls } = layered(4, (call, layer) => { if (call === 2 && layer === 2) cancelled.add(long); });
  const s = new Scheduler(model, { slots: 2, prefillChunk: 100, isCancelled: (r) => cancelled.has(r) });
  const short = s.submit([1, 3], { temperature: 0, maxTokens: 6, ignoreEos: true });
  const shortTokens: number[] = [];
  const reading = (async () => { for await (const t of short) shortTokens.push(t.id); })();
  await new Promise((r) => setImmediate(r));
  long = s.submit(new Array(450).fill(4), { temperature: 0, maxTokens: 3 });
  await assert.rejects((async () => { for await (const _ of long) { /* none */ } })(), { name: 'AbortError' });
  await reading;
  assert.equal(s.abandonedSteps, 1);
  assert.deepEqual(shortTokens, new Array(6).fill(5), 'the other sequence\'s tokens are those it gives alone');
  // Pass 1: the short prompt; pass 2: chunk 1 + a decode token; pass 3 abandoned (chunk 2 + the next decode
  // token); pass 4 redoes that decode token alone.
  assert.deepEqual(calls.slice(0, 4), [[2], [1, 100], [1, 100], [1]]);
  assert.equal(s.prefilledTokens, 2 + 100, 'the abandoned chunk was not counted as fed');
  assert.equal(s.activeCount + s.queuedCount, 0);
});

test('isCancelled: a cancelled decoding token among a large prefill late in the pass does not throw the pass away', async () => {
  const cancelled = new Set<unknown>();
  let short: ReturnType<Scheduler['submit']> | null = null;
  // The decoding sequence is cancelled at the last layer of a pass that carries 100 prompt tokens of another.
  const { model, calls } = layered(4, (call, layer) => { if (call === 1 && layer === 3) cancelled.add(short); });
  const s = new Scheduler(model, { slots: 2, prefillChunk: 100, isCancelled: (r) => cancelled.has(r) });
  short = s.submit([1, 3], { temperature: 0, maxTokens: 50, ignoreEos: true });
  await new Promise((r) => setImmediate(r));
  const long = s.submit(new Array(100).fill(4), { temperature: 0, maxTokens: 2 });
  const stopShort = (async () => { for await (const _ of short) { if (cancelled.has(short)) break; } })(); // its canceller, told later
  const longTokens: number[] = [];
  for await (const t of long) longTokens.push(t.id);
  await stopShort;
  assert.equal(s.abandonedSteps, 0);
  assert.deepEqual(longTokens, [5, 5]);
  assert.deepEqual(calls[1], [1, 100]);
});

/** A model whose steps take `msPerRow()` ms a fed token on a virtual clock: what maxStepMs measures, exactly. */
function timedRecorder(msPerRow: () => number) {
  const { model, calls } = recorder();
  let now = 0;
  const forward = model.forward.bind(model);
  const timed: BatchModel = {
    ...model,
    forward(seqs, opts) {
      now += msPerRow() * seqs.reduce((a, s) => a + s.tokens.length, 0);
      return forward(seqs, opts);
    },
  };
  return { model: timed, calls, clock: () => now };
}

test('maxStepMs: prefill chunks are sized from the time per token of the last steps, and follow a change of speed', async () => {
  let cost = 2;
  const { model, calls, clock } = timedRecorder(() => cost);
  const s = new Scheduler(model, { slots: 2, prefillChunk: 256, maxStepMs: 100, clock });
  const short = s.submit([1, 3], { temperature: 0, maxTokens: 200, ignoreEos: true });
  const reading = (async () => { for await (const _ of short) { /* decode alongside */ } })();
  await new Promise((r) => setImmediate(r));
  // 2 ms a token, 100 ms a step: 50 tokens, one of them the decoding sequence's.
  const first = s.submit(new Array(300).fill(4), { temperature: 0, maxTokens: 1 });
  for await (const _ of first) { /* one token */ }
  let chunks = calls.filter((c) => c.length === 2).map((c) => c[1]);
  assert.deepEqual(chunks, [49, 49, 49, 49, 49, 49, 6]);
  // The machine gets twice as slow: within the 4 measured steps the chunks halve (25 tokens a step).
  cost = 4;
  const before = calls.length;
  const second = s.submit(new Array(300).fill(6), { temperature: 0, maxTokens: 1 });
  for await (const _ of second) { /* one token */ }
  chunks = calls.slice(before).filter((c) => c.length === 2).map((c) => c[1]!);
  assert.ok(chunks.slice(4, -1).every((c) => c === 24), JSON.stringify(chunks));
  assert.equal(chunks.reduce((a, b) => a + b, 0), 300);
  short.cancel();
  await reading.catch(() => undefined);
  // A target beyond what prefillChunk allows: prefillChunk; before anything was timed, a 16-token probe.
  const fast = timedRecorder(() => 0.01);
  const t = new Scheduler(fast.model, { prefillChunk: 64, maxStepMs: 1000, clock: fast.clock });
  for await (const _ of t.submit(new Array(200).fill(4), { temperature: 0, maxTokens: 1 })) { /* one token */ }
  assert.deepEqual(fast.calls.map((c) => c[0]), [16, 64, 64, 56]);
  assert.throws(() => new Scheduler(fast.model, { maxStepMs: 0 }), /maxStepMs must be a number > 0/);
});

test('maxStepMs: a fixed cost per step (the weights, read once a step) is told apart from the cost per token', async () => {
  // 50 ms a step plus 1 ms a token, a 100 ms target: 50 tokens a step, not the 100 / (mean ms per token) ≈ 28
  // a per-token average gives once the fixed part is spread over the tokens.
  const { model, calls } = recorder();
  let now = 0;
  const timed: BatchModel = {
    ...model,
    forward(seqs, opts) {
      now += 50 + seqs.reduce((a, q) => a + q.tokens.length, 0);
      return model.forward(seqs, opts);
    },
  };
  const s = new Scheduler(timed, { slots: 1, prefillChunk: 256, maxStepMs: 100, clock: () => now });
  for await (const _ of s.submit(new Array(300).fill(4), { temperature: 0, maxTokens: 1 })) { /* one token */ }
  // the 16-token probe (66 ms: 4.1 ms a token on average → 24), then two sizes give the line: 50 + 1·rows
  assert.deepEqual(calls.map((c) => c[0]), [16, 24, 50, 50, 50, 50, 50, 10]);
});

test('maxStepMs on a real model: a smaller target makes smaller prefill chunks (counted, not timed)', async () => {
  const grok = await fixtureModel('tiny-a');
  const chunksFor = async (maxStepMs: number) => {
    const chunks: number[] = [];
    const model: BatchModel = {
      config: grok.config,
      newCache: (c) => grok.newCache(c),
      forward(seqs, opts) { chunks.push(seqs[0]!.tokens.length); return grok.forward(seqs as Parameters<typeof grok.forward>[0], opts); },
    };
    const s = new Scheduler(model, { prefillChunk: 256, maxStepMs });
    const warm = s.submit([5, 6, 7], { temperature: 0, maxTokens: 4 }); // times a few steps
    for await (const _ of warm) { /* drain */ }
    chunks.length = 0;
    for await (const _ of s.submit(Array.from({ length: 240 }, (_, i) => 3 + (i % 90)), { temperature: 0, maxTokens: 1 })) { /* one token */ }
    assert.equal(chunks.reduce((a, b) => a + b, 0), 240);
    return chunks;
  };
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  const small = await chunksFor(15);
  const large = await chunksFor(240);
  // At ~1 ms a token on this machine (loaded: whatever it is, the same for both) the targets differ 16×.
  assert.ok(median(small) * 4 <= median(large), `chunks ${JSON.stringify(small)} at 15 ms, ${JSON.stringify(large)} at 240 ms`);
  assert.ok(small.length > large.length);
});
