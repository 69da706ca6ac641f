/**
 * n choices on one prompt share its prefill (Scheduler.submitMany / Grok.generateMany): the prompt is fed
 * once, each choice continues from a copy of the KV cache, and every choice gets exactly the tokens it
 * gets alone. On the real fixtures (reference kernels) and on a recording fake model for the mechanics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler, type BatchModel, type EngineCache, type GenerationRequest } from '../src/engine/scheduler.js';
import { fixtureModel, golden } from './engine-helpers.js';

async function ids(r: GenerationRequest): Promise<number[]> {
  const out: number[] = [];
  for await (const t of r) out.push(t.id);
  return out;
}

for (const name of ['tiny-a', 'tiny-b']) {
  test(`${name}: n seeded choices from one shared prefill equal the same requests run alone`, async () => {
    const model = await fixtureModel(name);
    const prompt = golden(name).tokens.slice(0, 20);
    const opts = [1, 2, 3, 4].map((seed) => ({ seed, temperature: 1, maxTokens: 10, ignoreEos: true, topLogprobs: 2 }));
    const alone: { ids: number[]; lp: number[] }[] = [];
    let aloneFed = 0;
    for (const o of opts) {
      const s = new Scheduler(model, { slots: 1, prefillChunk: 7 });
      const r = s.submit(prompt, o);
      const lp: number[] = [];
      const got: number[] = [];
      for await (const t of r) { got.push(t.id); lp.push(t.logprob); }
      alone.push({ ids: got, lp });
      aloneFed += s.prefilledTokens;
    }
    assert.equal(aloneFed, 4 * prompt.length);
    const s = new Scheduler(model, { slots: 4, prefillChunk: 7 });
    const reqs = s.submitMany(prompt, opts);
    const shared = await Promise.all(reqs.map(async (r) => {
      const lp: number[] = [];
      const got: number[] = [];
      for await (const t of r) { got.push(t.id); lp.push(t.logprob); }
      return { ids: got, lp };
    }));
    assert.deepEqual(shared, alone);
    assert.equal(s.prefilledTokens, prompt.length, 'the prompt was fed once');
    assert.equal(s.steps, Math.ceil(prompt.length / 7) + 9, 'prefill chunks, then one step per further token');
  });
}

/** Logits favour token 5 (or 6 after a 6); caches can be copied unless `cloneable` is false. */
function recorder(cloneable = true) {
  const fed: number[][] = [];
  const cache = (capacity: number, length = 0): EngineCache => {
    const c: EngineCache = { capacity, length };
    if (cloneable) c.clone = () => cache(capacity, c.length);
    return c;
  };
  const model: BatchModel = {
    config: { vocabSize: 8, contextLength: 4096, eosToken: 2 },
    newCache: (capacity = 4096) => cache(capacity),
    forward(seqs) {
      fed.push(seqs.map((s) => s.tokens.length));
      for (const s of seqs) s.cache.length += s.tokens.length;
      const out = new Float32Array(seqs.length * 8);
      for (let i = 0; i < seqs.length; i++) out[i * 8 + 5] = 10;
      return out;
    },
  };
  const total = () => fed.flat().reduce((a, b) => a + b, 0);
  return { model, fed, total };
}

test('more choices than slots: the others wait in the queue and start from the kept prefill', async () => {
  const { model, total } = recorder();
  const s = new Scheduler(model, { slots: 2, prefillChunk: 4 });
  const reqs = s.submitMany(new Array(10).fill(1), Array.from({ length: 5 }, () => ({ temperature: 0, maxTokens: 3, ignoreEos: true })));
  assert.equal(s.activeCount, 2);
  assert.equal(s.queuedCount, 3);
  const out = await Promise.all(reqs.map(ids));
  assert.deepEqual(out, new Array(5).fill([5, 5, 5]));
  assert.equal(s.prefilledTokens, 10);
  assert.equal(total(), 10 + 5 * 2, 'the prompt once, then two fed-back tokens per choice');
  assert.equal(s.activeCount + s.queuedCount, 0);
});

test('the leader cancelled during its prefill: another member prefills and every other choice completes', async () => {
  const { model } = recorder();
  const s = new Scheduler(model, { slots: 3, prefillChunk: 2 });
  const reqs = s.submitMany(new Array(8).fill(1), Array.from({ length: 3 }, () => ({ temperature: 0, maxTokens: 2, ignoreEos: true })));
  await new Promise((r) => setImmediate(r)); // one prefill step
  await new Promise((r) => setImmediate(r));
  reqs[0]!.cancel();
  await assert.rejects(ids(reqs[0]!), { name: 'AbortError' });
  assert.deepEqual(await Promise.all(reqs.slice(1).map(ids)), [[5, 5], [5, 5]]);
  assert.ok(s.prefilledTokens > 8 && s.prefilledTokens <= 16, `${s.prefilledTokens} prompt tokens fed (the prompt again, once)`);
});

test('a member cancelled while waiting, and caches that cannot be copied (each prefills alone)', async () => {
  {
    const { model } = recorder();
    const s = new Scheduler(model, { slots: 3, prefillChunk: 2 });
    const reqs = s.submitMany([1, 1, 1, 1], Array.from({ length: 3 }, () => ({ temperature: 0, maxTokens: 2, ignoreEos: true })));
    reqs[2]!.cancel();
    assert.deepEqual(await Promise.all(reqs.slice(0, 2).map(ids)), [[5, 5], [5, 5]]);
    assert.equal(s.prefilledTokens, 4);
  }
  {
    const { model } = recorder(false);
    const s = new Scheduler(model, { slots: 2 });
    const reqs = s.submitMany([1, 1, 1], Array.from({ length: 3 }, () => ({ temperature: 0, maxTokens: 2, ignoreEos: true })));
    assert.deepEqual(await Promise.all(reqs.map(ids)), [[5, 5], [5, 5], [5, 5]]);
    assert.equal(s.prefilledTokens, 9);
  }
});

test('choices that truncate differently or allow different lengths are not grouped', async () => {
  const { model } = recorder();
  const s = new Scheduler(model, { slots: 4 });
  const reqs = s.submitMany([1, 1, 1], [{ maxTokens: 2, temperature: 0 }, { maxTokens: 3, temperature: 0 }, { maxTokens: 2, temperature: 0 }]);
  assert.deepEqual((await Promise.all(reqs.map(ids))).map((x) => x.length), [2, 3, 2]);
  assert.equal(s.prefilledTokens, 6, 'two groups: maxTokens 2 (twice) and 3');
});
