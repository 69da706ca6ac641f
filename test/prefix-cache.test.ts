/**
 * The prefix cache (src/engine/prefix-cache.ts, Scheduler prefixCacheBytes): a prompt that starts like an
 * earlier sequence copies that prefix's keys and values and prefills only the rest, and gets exactly the
 * logits and tokens it gets computed from scratch.
 *
 * The foundation first: a position's keys and values are the same bytes whether its prompt was fed in one
 * chunk or several (on the fixture models, exact and fast kernels), so rows copied from one request's cache
 * are the rows another would have computed. Then the engine (exactness, forward tokens saved on a chat's
 * second turn, eviction under a tiny budget, the radix tree's mechanics on a fake model), then the server
 * (usage.prompt_tokens_details.cached_tokens and /metrics, with the official openai client).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type OpenAI from 'openai';
import { KVCache, type GrokModel } from '../src/model/grok.js';
import { loadModel } from '../src/model/loader.js';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import type { KVType } from '../src/kernels/types.js';
import { Scheduler, type BatchModel, type CacheRows, type EngineCache, type GenerateOptions, type GenerationRequest } from '../src/engine/scheduler.js';
import { PrefixCache } from '../src/engine/prefix-cache.js';
import { fixtureDir, fixtureModel, golden } from './engine-helpers.js';
import { mulberry32 } from './random.js';
import type { GrokServer } from '../src/api/server.js';
import { MODEL, startServer } from './server-helpers.js';

const FIXTURES = ['tiny-a', 'tiny-b'] as const;
const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

const fastKernels = createKernels({ kernels: 'wasm', mode: 'fast' });
const servers: GrokServer[] = [];
after(async () => {
  closeKernels(fastKernels);
  for (const s of servers) await s.close(0);
});

/** The model under both numerics: exact (reference kernels, as fixtureModel loads it) and fast (wasm, int8 activations). */
async function models(name: string): Promise<{ label: string; model: GrokModel }[]> {
  const fast = (await loadModel(path.join(fixtureDir(name), 'ckpt-0'), { kernels: fastKernels })).model;
  fast.floatActivationsMaxWeights = 0; // int8 activations in every matrix but the router, as at Grok-1 width
  return [{ label: 'exact', model: await fixtureModel(name) }, { label: 'fast', model: fast }];
}

/** Feed tokens into cache in chunks of `chunk`, as the engine does (lastOnly); returns the last chunk's logits row. */
function prefill(model: GrokModel, cache: KVCache, tokens: number[], chunk: number): Float32Array {
  let last: Float32Array = new Float32Array(0);
  for (let i = 0; i < tokens.length; i += chunk) last = model.forward([{ tokens: tokens.slice(i, i + chunk), cache }], { lastOnly: true });
  return last;
}

for (const name of FIXTURES) {
  test(`${name}: a prefix's KV rows are the same bytes in one chunk or several, and a prompt continued from copied rows gives the same logits bit for bit (exact and fast kernels; f32 and f16 caches)`, async () => {
    const P = golden(name).tokens;
    for (const { label, model } of await models(name)) {
      const V = model.config.vocabSize;
      for (const kvType of ['f32', 'f16'] as KVType[]) {
        const what = `${label}, ${kvType}`;
        const whole = new KVCache(model.config, P.length, 0, kvType);
        const logits = model.forward([{ tokens: P, cache: whole }]); // every position's row
        for (const m of [1, 5, P.length - 1]) {
          for (const chunk of [1, 3, 7]) {
            const part = new KVCache(model.config, P.length, 0, kvType);
            prefill(model, part, P.slice(0, m), chunk);
            const a = whole.exportRows(0, m), b = part.exportRows(0, m);
            for (let l = 0; l < a.k.length; l++) {
              assert.ok(bytes(a.k[l]!).equals(bytes(b.k[l]!)) && bytes(a.v[l]!).equals(bytes(b.v[l]!)), `${what}: layer ${l} rows 0…${m} differ when fed in chunks of ${chunk}`);
            }
            // A new cache starts from the copied rows and computes the rest.
            const next = new KVCache(model.config, P.length, 0, kvType);
            next.importRows(b, m);
            const rest = model.forward([{ tokens: P.slice(m), cache: next }]);
            assert.ok(bytes(rest).equals(bytes(logits.subarray(m * V))), `${what}: logits after ${m} copied positions (chunks of ${chunk}) differ`);
          }
        }
      }
    }
  });
}

/** A request's tokens with their logprobs and alternatives, and its stats. */
async function run(r: GenerationRequest) {
  const out: { id: number; logprob: number; top: unknown }[] = [];
  for await (const t of r) out.push({ id: t.id, logprob: t.logprob, top: t.top });
  return { out, stats: await r.done };
}

for (const name of FIXTURES) {
  test(`${name}: requests reusing cached prefixes give exactly the tokens and logprobs computed from scratch (exact and fast)`, async () => {
    const g = golden(name).tokens;
    const opts: GenerateOptions = { seed: 7, temperature: 0.9, maxTokens: 6, ignoreEos: true, topLogprobs: 3 };
    const prompts = [
      g.slice(0, 16),
      g.slice(0, 16), //                         the same prompt again: all but its last token
      [...g.slice(0, 12), g[12] === 100 ? 101 : 100, 7, 8], // shares 12 tokens, then parts
      g.slice(0, 5), //                          inside a cached run
      g.slice(2, 20), //                         no common start
    ];
    for (const { label, model } of await models(name)) {
      const s = new Scheduler(model, { slots: 2, prefillChunk: 5, prefixCacheBytes: 1 << 20 });
      for (const [i, p] of prompts.entries()) {
        const fresh = await run(new Scheduler(model, { slots: 1, prefillChunk: 5 }).submit(p, opts));
        const got = await run(s.submit(p, opts));
        assert.deepEqual(got.out, fresh.out, `${label}: prompt ${i}`);
        assert.equal(fresh.stats.cachedTokens, 0);
        if (i < 4) assert.equal(got.stats.cachedTokens, [0, 15, 12, 4][i], `${label}: prompt ${i} cached tokens`);
      }
      // Concurrent requests on one common start: each later one finds the first's prompt once its prefill is done.
      const base = g.slice(8, 23);
      const alone = await Promise.all([1, 2, 3].map((k) => run(new Scheduler(model, { slots: 1, prefillChunk: 5 }).submit([...base, g[k]!], opts))));
      const together = await Promise.all([1, 2, 3].map((k) => run(s.submit([...base, g[k]!], opts))));
      assert.deepEqual(together.map((r) => r.out), alone.map((r) => r.out), label);
    }
  });
}

/** The fixture model with a count of the tokens each forward call is given. */
function counting(model: GrokModel): { model: BatchModel; fed: () => number } {
  let fed = 0;
  return {
    model: {
      config: model.config,
      newCache: (capacity) => model.newCache(capacity),
      forward(seqs, o) {
        for (const s of seqs) fed += s.tokens.length;
        return model.forward(seqs as Parameters<GrokModel['forward']>[0], o);
      },
    },
    fed: () => fed,
  };
}

test('a chat\'s second turn prefills only its new tokens: the first turn\'s prompt and answer come from the cache', async () => {
  for (const name of FIXTURES) {
    const base = await fixtureModel(name);
    const { model, fed } = counting(base);
    const g = golden(name).tokens;
    const s = new Scheduler(model, { slots: 2, prefillChunk: 8, prefixCacheBytes: 1 << 20 });
    const turn1 = g.slice(0, 20);
    const o: GenerateOptions = { temperature: 0, maxTokens: 6, ignoreEos: true };
    const first = await run(s.submit(turn1, o));
    assert.equal(fed(), 20 + 5, 'the prompt, then each answer token but the last fed back');
    const user2 = g.slice(3, 10);
    const turn2 = [...turn1, ...first.out.map((t) => t.id), ...user2];
    const before = fed(), prefilled = s.prefilledTokens;
    const second = await run(s.submit(turn2, o));
    // Cached: turn 1's prompt and the 5 answer tokens fed back; the 6th answer token never was.
    assert.equal(second.stats.cachedTokens, 20 + 5);
    assert.equal(s.prefilledTokens - prefilled, 1 + user2.length);
    assert.equal(fed() - before, 1 + user2.length + 5, `${name}: the new tokens, then 5 fed-back answer tokens`);
    const fresh = await run(new Scheduler(base, { slots: 1, prefillChunk: 8 }).submit(turn2, o));
    assert.deepEqual(second.out, fresh.out, name);
    console.log(`# ${name}: turn 2 of ${turn2.length} prompt tokens fed ${s.prefilledTokens - prefilled} (saved ${second.stats.cachedTokens})`);
  }
});

test('a budget of a few positions: least recently used prefixes are cut and dropped, the bytes stay within it, outputs stay exact', async () => {
  const model = await fixtureModel('tiny-a');
  const g = golden('tiny-a').tokens;
  const perPosition = KVCache.bytesPerPosition(model.config, model.kvType) + 1; // + the key mask byte
  const budget = 10 * perPosition + 7;
  const s = new Scheduler(model, { slots: 3, prefillChunk: 4, prefixCacheBytes: budget });
  const r = mulberry32(11);
  const opts: GenerateOptions = { temperature: 0, maxTokens: 3, ignoreEos: true };
  let hits = 0;
  for (let round = 0; round < 4; round++) {
    // Three at a time, from a few common starts, so runs are shared, split, cut and dropped.
    const prompts = [0, 1, 2].map(() => {
      const start = Math.floor(r() * 3) * 4;
      return g.slice(start, start + 3 + Math.floor(r() * 12));
    });
    const fresh = await Promise.all(prompts.map((p) => run(new Scheduler(model, { slots: 1, prefillChunk: 4 }).submit(p, opts))));
    const got = await Promise.all(prompts.map((p) => run(s.submit(p, opts))));
    assert.deepEqual(got.map((x) => x.out), fresh.map((x) => x.out), `round ${round}`);
    hits += got.reduce((a, x) => a + x.stats.cachedTokens, 0);
    const st = s.prefixCache!.stats();
    assert.ok(st.bytes <= budget, `round ${round}: ${st.bytes} bytes held, budget ${budget}`);
    assert.equal(st.bytes, st.tokens * perPosition, 'every position held counts its bytes once');
  }
  const st = s.prefixCache!.stats();
  assert.ok(st.evictedTokens > 0, 'the budget was exceeded and positions dropped');
  assert.ok(hits > 0 && st.hitTokens === hits, `${hits} tokens reused`);
  assert.equal(st.lookups, 12);
});

/**
 * A fake model whose cache holds the token ids themselves and whose logits depend on every cached id and
 * its position: a restored prefix that is not exactly the prompt's would change the tokens.
 */
function idModel() {
  type IdCache = EngineCache & { ids: number[] };
  const V = 16;
  class IdRows implements CacheRows {
    constructor(readonly ids: number[]) {}
    get length() { return this.ids.length; }
    get bytes() { return 10 * this.ids.length; }
    slice(from: number, to: number) { return new IdRows(this.ids.slice(from, to)); }
  }
  const newCache = (capacity = 4096): IdCache => {
    const c: IdCache = {
      capacity, length: 0, ids: [],
      exportRows: (from, to) => new IdRows(c.ids.slice(from, to)),
      importRows: (rows, count) => { c.ids.push(...(rows as IdRows).ids.slice(0, count)); c.length += count; },
    };
    return c;
  };
  let fed = 0;
  const model: BatchModel = {
    config: { vocabSize: V, contextLength: 4096, eosToken: 2 },
    newCache,
    forward(seqs) {
      const out = new Float32Array(seqs.length * V);
      seqs.forEach((s, i) => {
        const c = s.cache as IdCache;
        assert.equal(c.ids.length, c.length);
        c.ids.push(...Array.from(s.tokens));
        c.length += s.tokens.length;
        fed += s.tokens.length;
        const h = c.ids.reduce((a, id, p) => (a * 31 + id * (p + 7)) % 1000003, 1);
        out[i * V + (h % V)] = 10;
      });
      return out;
    },
  };
  return { model, fed: () => fed };
}

test('radix tree: runs are shared, split where prompts part, restored exactly; an LRU leaf loses its tail before it goes', () => {
  const { model } = idModel();
  const cache = (ids: number[]) => { const c = model.newCache(); model.forward([{ tokens: ids, cache: c }]); return c; };
  const pc = new PrefixCache(1000);
  pc.insert([1, 2, 3, 4], cache([1, 2, 3, 4]));
  pc.insert([1, 2, 5, 6, 7], cache([1, 2, 5, 6, 7]));
  assert.deepEqual({ tokens: pc.stats().tokens, bytes: pc.stats().bytes }, { tokens: 7, bytes: 70 }, '1 2 once, then 3 4 and 5 6 7');
  const restored = (p: number[], max = p.length) => { const c = model.newCache() as EngineCache & { ids: number[] }; const n = pc.restore(p, max, c); assert.equal(c.length, n); return c.ids; };
  assert.deepEqual(restored([1, 2, 5, 9]), [1, 2, 5]);
  assert.deepEqual(restored([1, 2, 3, 4, 8]), [1, 2, 3, 4]);
  assert.deepEqual(restored([1, 2, 3, 4], 3), [1, 2, 3]);
  assert.deepEqual(restored([7, 1]), []);
  assert.deepEqual(restored([1, 2]), [1, 2], 'inside a run');
  // Inserting what is already there adds nothing.
  pc.insert([1, 2, 5], cache([1, 2, 5]));
  assert.equal(pc.stats().tokens, 7);
  const small = new PrefixCache(50);
  small.insert([1, 2, 3, 4], cache([1, 2, 3, 4]));
  small.insert([1, 2, 5, 6, 7], cache([1, 2, 5, 6, 7])); // 70 bytes > 50: the oldest leaf (3 4, split off unused) goes
  assert.deepEqual({ tokens: small.stats().tokens, evicted: small.stats().evictedTokens }, { tokens: 5, evicted: 2 });
  small.insert([9, 9, 9, 9, 9, 9], cache([9, 9, 9, 9, 9, 9])); // 110 bytes: 5 6 7 goes, then 1 2, then 9…9 loses one
  const st = small.stats();
  assert.deepEqual({ tokens: st.tokens, bytes: st.bytes, evicted: st.evictedTokens }, { tokens: 5, bytes: 50, evicted: 2 + 3 + 2 + 1 });
  const c = model.newCache() as EngineCache & { ids: number[] };
  small.restore([9, 9, 9, 9, 9, 9], 6, c);
  assert.deepEqual(c.ids, [9, 9, 9, 9, 9], 'the newest run keeps its start');
});

test('radix tree fuzz (fake model): many prompts over a few starts, a tight budget; every output equals the uncached one', async () => {
  const r = mulberry32(5);
  const { model, fed } = idModel();
  const plain = idModel();
  const s = new Scheduler(model, { slots: 4, prefillChunk: 3, prefixCacheBytes: 400 }); // 40 positions
  const ref = new Scheduler(plain.model, { slots: 4, prefillChunk: 3 });
  const starts = [[3, 4, 5, 6, 7, 8], [3, 4, 5, 9], [10, 11, 12, 13, 14]];
  for (let round = 0; round < 30; round++) {
    const batch = Array.from({ length: 1 + Math.floor(r() * 4) }, () => {
      const st = starts[Math.floor(r() * starts.length)]!.slice(0, 1 + Math.floor(r() * 6));
      return [...st, ...Array.from({ length: Math.floor(r() * 5) }, () => 3 + Math.floor(r() * 12))];
    });
    const o: GenerateOptions = { temperature: 0, maxTokens: 1 + Math.floor(r() * 4), ignoreEos: true };
    const got = await Promise.all(batch.map((p) => run(s.submit(p, o))));
    const want = await Promise.all(batch.map((p) => run(ref.submit(p, o))));
    assert.deepEqual(got.map((x) => x.out), want.map((x) => x.out), `round ${round}`);
    assert.ok(s.prefixCache!.stats().bytes <= 400);
  }
  const st = s.prefixCache!.stats();
  assert.ok(st.hitTokens > 0 && st.evictedTokens > 0, JSON.stringify(st));
  assert.equal(fed() + st.hitTokens, plain.fed(), 'every cached token is one the model was not fed');
});

test('server: the same prompt again reports cached_tokens = prompt_tokens − 1 (completions, streamed usage, chat turns); /metrics counts them', async () => {
  const s = await startServer({ metrics: true, slots: 2, prefixCacheBytes: 1 << 20 }, servers);
  const req = { model: MODEL, prompt: 'the people of the water', max_tokens: 4, temperature: 0, ignore_eos: true } as OpenAI.Completions.CompletionCreateParamsNonStreaming;
  const a = await s.client.completions.create(req);
  const b = await s.client.completions.create(req);
  assert.equal(a.usage!.prompt_tokens_details?.cached_tokens, 0);
  assert.equal(b.usage!.prompt_tokens_details?.cached_tokens, b.usage!.prompt_tokens - 1, 'all but the last prompt token, which gives the first token');
  assert.equal(b.choices[0]!.text, a.choices[0]!.text);
  let streamedUsage: OpenAI.Completions.CompletionUsage | null | undefined = null;
  const streamed = { ...req, stream: true, stream_options: { include_usage: true } } as OpenAI.Completions.CompletionCreateParamsStreaming;
  for await (const c of await s.client.completions.create(streamed)) if (c.usage) streamedUsage = c.usage;
  assert.equal(streamedUsage?.prompt_tokens_details?.cached_tokens, b.usage!.prompt_tokens - 1);

  const user = { role: 'user' as const, content: 'the people' };
  const t1 = await s.client.chat.completions.create({ model: MODEL, messages: [user], max_tokens: 5, temperature: 0 });
  const t2 = await s.client.chat.completions.create({
    model: MODEL, max_tokens: 5, temperature: 0,
    messages: [user, { role: 'assistant', content: t1.choices[0]!.message.content ?? '' }, { role: 'user', content: 'water' }],
  });
  const c2 = t2.usage!.prompt_tokens_details!.cached_tokens!;
  console.log(`# chat: turn 1 ${t1.usage!.prompt_tokens} prompt tokens; turn 2 ${t2.usage!.prompt_tokens}, of them ${c2} cached`);
  assert.ok(c2 >= t1.usage!.prompt_tokens - 1, `turn 2 reuses turn 1's prompt: ${c2} cached`);

  const m = await (await fetch(`${s.url}/metrics`)).text();
  const value = (k: string) => Number(new RegExp(`^${k} (\\S+)$`, 'm').exec(m)?.[1]);
  const cached = [a, b].reduce((x, r) => x + r.usage!.prompt_tokens_details!.cached_tokens!, 0) + streamedUsage!.prompt_tokens_details!.cached_tokens!
    + t1.usage!.prompt_tokens_details!.cached_tokens! + c2;
  assert.equal(value('grok_prefix_cache_lookups_total'), 5);
  assert.equal(value('grok_prefix_cache_hit_tokens_total'), cached);
  assert.ok(value('grok_prefix_cache_bytes') > 0 && value('grok_prefix_cache_bytes') <= value('grok_prefix_cache_budget_bytes'));
});

test('server without a prefix cache: usage as before (no prompt_tokens_details), no prefix-cache metrics', async () => {
  const s = await startServer({ metrics: true }, servers);
  const a = await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 2 });
  assert.deepEqual(Object.keys(a.usage!).sort(), ['completion_tokens', 'prompt_tokens', 'total_tokens']);
  assert.doesNotMatch(await (await fetch(`${s.url}/metrics`)).text(), /grok_prefix_cache/);
});
