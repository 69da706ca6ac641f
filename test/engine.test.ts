/**
 * Engine invariants on the real fixture models (test/data/fixtures/tiny-a, tiny-b): greedy equals the
 * fixtures' golden greedy continuation, logprobs equal the golden logits, seed reproducibility, batched
 * equals single, and every stop rule. Fixtures have no real tokenizer, so this works on token ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../src/model/loader.js';
import type { GrokModel } from '../src/model/grok.js';
import {
  ContextLengthError, QueueFullError, Scheduler, type BatchModel, type GenerateOptions,
} from '../src/engine/scheduler.js';
import { fixtureDir } from './fixtures.js';
import { collect } from './engine-helpers.js';

interface Golden {
  tokens: number[];
  top5: number[][];
  config: { vocab_size: number };
  greedy: { prompt: number[]; continuation: number[] };
}

const fixtures = ['tiny-a', 'tiny-b'] as const;
const loaded = new Map<string, { model: GrokModel; golden: Golden }>();
async function fixture(name: string) {
  let f = loaded.get(name);
  if (!f) {
    const dir = fixtureDir(name);
    const golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8')) as Golden;
    const { model } = await loadModel(path.join(dir, 'ckpt-0'));
    f = { model, golden };
    loaded.set(name, f);
  }
  return f;
}

async function run(model: BatchModel, prompt: number[], opts: GenerateOptions, slots = 1) {
  const s = new Scheduler(model, { slots });
  const r = s.submit(prompt, opts);
  const ids = await collect(r);
  return { ids, stats: await r.done };
}

/** The same model with some config fields changed (EOS id, context length). */
function withConfig(m: GrokModel, patch: Partial<BatchModel['config']>): BatchModel {
  return {
    config: { ...m.config, ...patch },
    newCache: (c?: number) => m.newCache(c),
    forward: (seqs, o) => m.forward(seqs as Parameters<GrokModel['forward']>[0], o),
  };
}

for (const name of fixtures) {
  test(`${name}: temperature 0 equals the golden greedy continuation (whole prompt, and chunked prefill)`, async () => {
    const { model, golden } = await fixture(name);
    const n = golden.greedy.continuation.length;
    const a = await run(model, golden.greedy.prompt, { temperature: 0, maxTokens: n });
    assert.deepEqual(a.ids, golden.greedy.continuation);
    assert.equal(a.stats.finishReason, 'length');
    const s = new Scheduler(model, { slots: 2, prefillChunk: 3 });
    assert.deepEqual(await collect(s.submit(golden.greedy.prompt, { temperature: 0, maxTokens: n })), golden.greedy.continuation);
  });

  test(`${name}: greedy logprob and top-5 alternatives match the golden logits`, async () => {
    const { model, golden } = await fixture(name);
    const V = golden.config.vocab_size;
    const logits = new Float32Array(fs.readFileSync(path.join(fixtureDir(name), 'logits.f32')).buffer.slice(0));
    for (const k of [1, 5, golden.tokens.length - 1]) {
      const s = new Scheduler(model);
      const r = s.submit(golden.tokens.slice(0, k), { temperature: 0, maxTokens: 1, topLogprobs: 5 });
      const toks = [];
      for await (const t of r) toks.push(t);
      const row = logits.subarray((k - 1) * V, k * V);
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let z = 0;
      for (const v of row) z += Math.exp(v - max);
      const lse = max + Math.log(z);
      assert.equal(toks[0].id, golden.top5[k - 1][0]);
      assert.deepEqual(toks[0].top!.map((t) => t.id), golden.top5[k - 1]);
      assert.ok(Math.abs(toks[0].logprob - (row[toks[0].id] - lse)) < 1e-3, `logprob at ${k}`);
    }
  });
}

test('same seed → same tokens; another seed → other tokens', async () => {
  const { model, golden } = await fixture('tiny-a');
  const opts = { temperature: 1.2, topP: 0.95, maxTokens: 12 };
  const a = await run(model, golden.greedy.prompt, { ...opts, seed: 1234 });
  const b = await run(model, golden.greedy.prompt, { ...opts, seed: 1234 });
  const c = await run(model, golden.greedy.prompt, { ...opts, seed: 99 });
  assert.deepEqual(a.ids, b.ids);
  assert.equal(a.stats.seed, 1234);
  assert.notDeepEqual(a.ids, c.ids);
  assert.equal(a.ids.length, 12);
});

test('a sequence generated alongside 7 others gives exactly its solo tokens', async () => {
  for (const name of fixtures) {
    const { model, golden } = await fixture(name);
    const reqs = Array.from({ length: 8 }, (_, i) => ({
      prompt: golden.tokens.slice(i, i + 3 + 2 * i), // different lengths: prefill and decode mix in one step
      opts: { seed: 100 + i, temperature: i === 0 ? 0 : 0.8 + 0.1 * i, topK: i % 3 === 0 ? 0 : 40, maxTokens: 6 + i } as GenerateOptions,
    }));
    const solo: number[][] = [];
    for (const r of reqs) solo.push((await run(model, r.prompt, r.opts)).ids);
    const s = new Scheduler(model, { slots: 8, prefillChunk: 4 });
    const together = await Promise.all(reqs.map((r) => collect(s.submit(r.prompt, r.opts))));
    assert.deepEqual(together, solo, name);
    // They really ran together: far fewer forward steps than the solo runs needed.
    const soloSteps = reqs.reduce((a, r) => a + Math.ceil(r.prompt.length / 4) + r.opts.maxTokens! - 1, 0);
    assert.ok(s.steps < soloSteps / 3, `${s.steps} batched steps vs ${soloSteps} solo`);
  }
});

/**
 * The model as a pipeline's leader sees it (src/api/pipeline/leader.ts): begin computes a pass and hands back a
 * function that the scheduler calls for the logits later; up to `depth` passes are in flight at once.
 */
function pipelined(m: GrokModel, depth: number) {
  /** Passes in flight per sequence (its cache): a prompt's chunks may overlap; a sequence fed a token it has not got yet would give other tokens. */
  const flying = new Map<unknown, number>();
  const seen = { most: 0, inFlight: 0, mostPerSequence: 0 };
  const model: BatchModel = {
    config: m.config,
    depth,
    newCache: (c?: number) => m.newCache(c),
    forward: () => { throw new Error('a pipelined model is driven through begin'); },
    begin(seqs, o) {
      for (const s of seqs) {
        const n = (flying.get(s.cache) ?? 0) + 1;
        flying.set(s.cache, n);
        seen.mostPerSequence = Math.max(seen.mostPerSequence, n);
      }
      const logits = m.forward(seqs as Parameters<GrokModel['forward']>[0], o);
      seen.most = Math.max(seen.most, ++seen.inFlight);
      return () => {
        seen.inFlight--;
        for (const s of seqs) { const n = flying.get(s.cache)! - 1; if (n === 0) flying.delete(s.cache); else flying.set(s.cache, n); }
        return logits;
      };
    },
  };
  return { model, seen, flying };
}

test('micro-batches: a pipelined model keeps up to depth passes in flight, and each sequence gets its solo tokens', async () => {
  const { model, golden } = await fixture('tiny-b');
  const reqs = Array.from({ length: 6 }, (_, i) => ({
    prompt: golden.tokens.slice(i, i + 3 + 2 * i),
    opts: { seed: 300 + i, temperature: i === 0 ? 0 : 0.9, topK: 40, maxTokens: 5 + i } as GenerateOptions,
  }));
  const solo: number[][] = [];
  for (const r of reqs) solo.push((await run(model, r.prompt, r.opts)).ids);
  for (const depth of [2, 3]) {
    const p = pipelined(model, depth);
    const s = new Scheduler(p.model, { slots: 6, prefillChunk: 4 });
    const together = await Promise.all(reqs.map((r) => collect(s.submit(r.prompt, r.opts))));
    assert.deepEqual(together, solo, `depth ${depth}`);
    assert.equal(p.seen.most, depth, `passes in flight at once with depth ${depth}`);
    assert.equal(p.seen.inFlight, 0);
    // n = 3 on one prompt shares its prefill across passes in flight; greedy equals the golden continuation.
    const n = golden.greedy.continuation.length;
    const members = s.submitMany(golden.greedy.prompt, [{ temperature: 0, maxTokens: n }, { seed: 7, temperature: 0.9, maxTokens: 4 }, { seed: 8, temperature: 0.9, maxTokens: 4 }]);
    const outs = await Promise.all(members.map((r) => collect(r)));
    assert.deepEqual(outs[0], golden.greedy.continuation);
    assert.deepEqual(outs[1], (await run(model, golden.greedy.prompt, { seed: 7, temperature: 0.9, maxTokens: 4 })).ids);
  }
  // One long prompt alone: its chunks follow each other through the stages (two in flight), then it decodes.
  const p = pipelined(model, 2);
  const s = new Scheduler(p.model, { slots: 1, prefillChunk: 3 });
  const long = { seed: 5, temperature: 0.9, topK: 40, maxTokens: 6 } as GenerateOptions;
  assert.deepEqual(await collect(s.submit(golden.tokens.slice(0, 14), long)), (await run(model, golden.tokens.slice(0, 14), long)).ids);
  assert.equal(p.seen.mostPerSequence, 2, 'two chunks of the prompt in flight at once');
});

test('micro-batches: a request cancelled while its pass is in flight ends; the pass lands for the others', async () => {
  const { model, golden } = await fixture('tiny-a');
  const p = pipelined(model, 2);
  const s = new Scheduler(p.model, { slots: 4 });
  const opts = { temperature: 0, maxTokens: golden.greedy.continuation.length };
  const reqs = [0, 1, 2, 3].map(() => s.submit(golden.greedy.prompt, opts));
  const begin = p.model.begin!.bind(p.model);
  let cancelled = false;
  p.model.begin = (seqs, o) => {
    const wait = begin(seqs, o);
    // The first pass that carries request 1's sequence: cancel it before the pass lands.
    if (!cancelled && seqs.some((q) => q.cache === (reqs[1] as unknown as { cache: unknown }).cache)) {
      cancelled = true;
      return () => { reqs[1]!.cancel(); return wait(); };
    }
    return wait;
  };
  const outs = await Promise.allSettled(reqs.map((r) => collect(r)));
  assert.ok(cancelled);
  assert.equal(outs[1]!.status, 'rejected');
  for (const i of [0, 2, 3]) assert.deepEqual((outs[i] as PromiseFulfilledResult<number[]>).value, golden.greedy.continuation);
  assert.equal(p.flying.size, 0);
});

test('EOS stops generation (not emitted); ignoreEos goes on', async () => {
  const { model, golden } = await fixture('tiny-a');
  const cont = golden.greedy.continuation; // [57, 57, 277, 199, 411, …]
  const m = withConfig(model, { eosToken: cont[2] });
  const a = await run(m, golden.greedy.prompt, { temperature: 0, maxTokens: 16 });
  assert.deepEqual(a.ids, cont.slice(0, 2));
  assert.equal(a.stats.finishReason, 'stop');
  const b = await run(m, golden.greedy.prompt, { temperature: 0, maxTokens: 16, ignoreEos: true });
  assert.deepEqual(b.ids, cont);
  const c = await run(model, golden.greedy.prompt, { temperature: 0, maxTokens: 16, stopTokens: [cont[3]] });
  assert.deepEqual(c.ids, cont.slice(0, 3));
  assert.equal(c.stats.finishReason, 'stop');
});

test('stop sequences stop at the match and do not emit it; partial matches are released', async () => {
  const { model, golden } = await fixture('tiny-a');
  const cont = golden.greedy.continuation; // … 199, 411, 411, …
  const a = await run(model, golden.greedy.prompt, { temperature: 0, maxTokens: 16, stopSequences: [[411, 411]] });
  assert.deepEqual(a.ids, cont.slice(0, 4));
  assert.equal(a.stats.finishReason, 'stop');
  assert.equal(a.stats.generatedTokens, 4);
  const b = await run(model, golden.greedy.prompt, { temperature: 0, maxTokens: 16, stopSequences: [[277, 5], [370, 166, 999]] });
  assert.deepEqual(b.ids, cont); // 277 and 370 166 were held back, then released
  assert.equal(b.stats.finishReason, 'length');
  // The text-layer hook ends after the token it accepts.
  const c = await run(model, golden.greedy.prompt, { temperature: 0, maxTokens: 16, onToken: (id) => id === 199 });
  assert.deepEqual(c.ids, cont.slice(0, 4));
  assert.equal(c.stats.finishReason, 'stop');
});

test('max tokens and the context limit', async () => {
  const { model, golden } = await fixture('tiny-a');
  const cont = golden.greedy.continuation;
  const a = await run(model, golden.greedy.prompt, { temperature: 0, maxTokens: 5 });
  assert.deepEqual(a.ids, cont.slice(0, 5));
  assert.equal(a.stats.finishReason, 'length');
  const small = withConfig(model, { contextLength: 12 }); // prompt 8 + 4 new = 12
  const b = await run(small, golden.greedy.prompt, { temperature: 0 });
  assert.deepEqual(b.ids, cont.slice(0, 4));
  assert.equal(b.stats.finishReason, 'length');
  const long = golden.tokens.slice(0, 12);
  assert.throws(() => new Scheduler(small).submit(long, {}), ContextLengthError);
  // Left truncation keeps the last 12 − 2 tokens when 2 new ones are asked for.
  const c = await run(small, long, { temperature: 0, maxTokens: 2, truncate: 'left' });
  assert.equal(c.stats.truncatedTokens, 2);
  assert.equal(c.stats.promptTokens, 10);
  const d = await run(model, long.slice(2), { temperature: 0, maxTokens: 2 });
  assert.deepEqual(c.ids, d.ids);
  assert.throws(() => new Scheduler(model).submit([], {}), /prompt is empty/);
  assert.throws(() => new Scheduler(model).submit([512], {}), /outside the vocabulary/);
});

test('cancellation frees the slot at once and the next request is served', async () => {
  const { model, golden } = await fixture('tiny-a');
  const s = new Scheduler(model, { slots: 1 });
  const ac = new AbortController();
  const first = s.submit(golden.greedy.prompt, { temperature: 0, maxTokens: 1000, signal: ac.signal });
  const second = s.submit(golden.greedy.prompt, { temperature: 0, maxTokens: 16 });
  assert.equal(s.queuedCount, 1);
  let got = 0;
  await assert.rejects(async () => {
    for await (const _ of first) {
      if (++got === 3) {
        ac.abort();
        assert.equal(s.activeCount, 0); // freed synchronously by the abort
      }
    }
  }, { name: 'AbortError' });
  assert.equal((await first.done).finishReason, 'cancelled');
  assert.deepEqual(await collect(second), golden.greedy.continuation);
  // Breaking out of the loop cancels too.
  const third = s.submit(golden.greedy.prompt, { temperature: 0, maxTokens: 1000 });
  for await (const _ of third) break;
  assert.equal((await third.done).finishReason, 'cancelled');
  assert.equal(s.activeCount + s.queuedCount, 0);
});

test('a full queue refuses new requests', async () => {
  const { model, golden } = await fixture('tiny-a');
  const s = new Scheduler(model, { slots: 1, maxQueue: 1 });
  const a = s.submit(golden.greedy.prompt, { temperature: 0, maxTokens: 2 });
  const b = s.submit(golden.greedy.prompt, { temperature: 0, maxTokens: 2 });
  assert.throws(() => s.submit(golden.greedy.prompt, { maxTokens: 2 }), QueueFullError);
  assert.deepEqual(await collect(a), golden.greedy.continuation.slice(0, 2));
  assert.deepEqual(await collect(b), golden.greedy.continuation.slice(0, 2));
});

test('a forward pass abandoned between layers (checkpoint) leaves every cache as it was: the pass redone gives the same logits', async () => {
  for (const name of fixtures) {
    const { model, golden } = await fixture(name);
    const T = golden.tokens;
    const half = Math.floor(T.length / 2);
    const run = (abandonAt: number | null) => {
      const a = model.newCache(T.length), b = model.newCache(T.length);
      model.forward([{ tokens: T.slice(0, half), cache: a }, { tokens: T.slice(0, 3), cache: b }]);
      if (abandonAt !== null) {
        const stop = new Error('cancelled');
        assert.throws(() => model.forward([{ tokens: T.slice(half), cache: a }, { tokens: T.slice(3, 5), cache: b }], {
          checkpoint: (l) => { if (l === abandonAt) throw stop; },
        }), (e) => e === stop);
        assert.deepEqual([a.length, b.length], [half, 3]);
      }
      return model.forward([{ tokens: T.slice(half), cache: a }, { tokens: T.slice(3, 5), cache: b }]);
    };
    const want = run(null);
    for (let l = 0; l < model.config.nLayers; l++) assert.deepEqual(run(l), want, `${name}: abandoned at layer ${l}`);
  }
});
