/**
 * Expert routing through the engine (GenerateOptions.routing): every prompt token's experts equal the
 * fixtures' golden experts (computed by the independent reference), in router-probability order, however
 * the prompt is chunked; generated tokens carry the routing a single full forward pass gives them; tokens
 * and logprobs are unchanged by asking; the model's routing output leaves the logits bit-identical.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler, type BatchModel, type EngineCache, type GenerateOptions, type GeneratedToken, type TokenRouting } from '../src/engine/scheduler.js';
import { fixtureModel, golden } from './engine-helpers.js';

async function all(r: AsyncIterable<GeneratedToken>): Promise<GeneratedToken[]> {
  const out: GeneratedToken[] = [];
  for await (const t of r) out.push(t);
  return out;
}

/** Routing of every token of `tokens` by one plain forward pass (no engine). */
async function direct(name: string, tokens: number[]): Promise<TokenRouting[]> {
  const model = await fixtureModel(name);
  const recs: TokenRouting[] = tokens.map(() => ({ experts: [], gates: [] }));
  const plain = model.forward([{ tokens, cache: model.newCache(tokens.length) }]);
  const routed = model.forward([{ tokens, cache: model.newCache(tokens.length) }], {
    onRoute: (_l, chosen, gates, rows) => {
      const A = chosen.length / rows;
      recs.forEach((r, n) => { r.experts.push(Array.from(chosen.subarray(n * A, n * A + A))); r.gates.push(Array.from(gates.subarray(n * A, n * A + A))); });
    },
  });
  assert.deepEqual(routed, plain, 'asking for the routing leaves the logits bit-identical');
  return recs;
}

for (const name of ['tiny-a', 'tiny-b']) {
  test(`${name}: prompt routing equals the golden experts, ordered by router probability, for any prefill chunk`, async () => {
    const model = await fixtureModel(name);
    const g = golden(name);
    for (const chunk of [256, 5, 1]) {
      const s = new Scheduler(model, { slots: 2, prefillChunk: chunk });
      const r = s.submit(g.tokens, { routing: true, temperature: 0, maxTokens: 2 });
      await all(r);
      const pr = r.promptRouting;
      assert.equal(pr.length, g.tokens.length);
      g.layers.forEach((layer, l) => {
        layer.experts.forEach((want, pos) => {
          assert.deepEqual(pr[pos]!.experts[l], want, `chunk ${chunk}, layer ${l}, position ${pos}`);
          const gates = pr[pos]!.gates[l]!;
          assert.ok(gates[0]! >= gates[1]! && gates[1]! > 0 && gates[0]! + gates[1]! <= 1 + 1e-6, `gates ${gates}`);
        });
      });
    }
  });

  test(`${name}: generated tokens carry the routing of a full forward pass; tokens and logprobs unchanged`, async () => {
    const model = await fixtureModel(name);
    const prompt = golden(name).tokens.slice(0, 9);
    const opts = { temperature: 1, seed: 5, maxTokens: 7, ignoreEos: true };
    const plain = await all(new Scheduler(model, { slots: 1 }).submit(prompt, opts));
    const s = new Scheduler(model, { slots: 1, prefillChunk: 4 });
    const r = s.submit(prompt, { ...opts, routing: true });
    const routed = await all(r);
    assert.deepEqual(routed.map((t) => [t.id, t.logprob]), plain.map((t) => [t.id, t.logprob]));
    assert.ok(plain.every((t) => t.routing === undefined));
    const full = await direct(name, [...prompt, ...routed.map((t) => t.id)]);
    assert.deepEqual(r.promptRouting.map((x) => x.experts), full.slice(0, 9).map((x) => x.experts));
    routed.forEach((t, i) => {
      assert.deepEqual(t.routing!.experts, full[9 + i]!.experts, `token ${i}`);
      t.routing!.gates.forEach((gs, l) => gs.forEach((gv, a) => assert.ok(Math.abs(gv - full[9 + i]!.gates[l]![a]!) < 1e-6)));
    });
  });
}

test('routing with a stop token, stop sequences and shared prefill: every emitted token routed once', async () => {
  const model = await fixtureModel('tiny-b');
  const prompt = golden('tiny-b').tokens.slice(0, 12);
  const base = { temperature: 1, seed: 3, maxTokens: 12, ignoreEos: true };
  const free = await all(new Scheduler(model).submit(prompt, base));
  const stopAt = free[6]!.id;
  const s = new Scheduler(model, { slots: 4, prefillChunk: 5 });
  const [a, b, c] = s.submitMany(prompt, [
    { ...base, routing: true, stopTokens: [stopAt] },
    { ...base, routing: true, stopSequences: [[free[3]!.id, free[4]!.id]] },
    { ...base, routing: true },
  ]);
  const [ta, tb, tc] = await Promise.all([all(a!), all(b!), all(c!)]);
  const cut = free.findIndex((t) => t.id === stopAt);
  assert.deepEqual(ta.map((t) => t.id), free.slice(0, cut).map((t) => t.id));
  assert.deepEqual(tc.map((t) => t.id), free.map((t) => t.id));
  const full = await direct('tiny-b', [...prompt, ...free.map((t) => t.id)]);
  for (const toks of [ta, tb, tc]) toks.forEach((t, i) => assert.deepEqual(t.routing!.experts, full[12 + i]!.experts));
  const seqAt = free.findIndex((t, i) => t.id === free[3]!.id && free[i + 1]?.id === free[4]!.id);
  assert.deepEqual(tb.map((t) => t.id), free.slice(0, seqAt).map((t) => t.id));
  for (const r of [a!, b!, c!]) assert.deepEqual(r.promptRouting.map((x) => x.experts), full.slice(0, 12).map((x) => x.experts));
  assert.equal(s.prefilledTokens, 12, 'one shared prefill');
});

test('the extra step that routes the last token runs only when that token is emitted', async () => {
  let calls = 0;
  const model: BatchModel = {
    config: { vocabSize: 8, contextLength: 64, eosToken: 2 },
    newCache: (capacity = 64): EngineCache => ({ capacity, length: 0 }),
    forward(seqs, o) {
      calls++;
      const rows = seqs.reduce((a, s) => a + s.tokens.length, 0);
      o?.onRoute?.(0, new Int32Array(rows * 2).fill(1), new Float32Array(rows * 2).fill(0.4), rows);
      const out = new Float32Array(seqs.length * 8);
      seqs.forEach((s, i) => {
        const last = s.tokens[s.tokens.length - 1]!;
        out[i * 8 + (last === 5 ? 6 : last === 6 ? 7 : 5)] = 10; // 5, 6, 7, 5, 6, 7, …
        s.cache.length += s.tokens.length;
      });
      return out;
    },
  };
  const run = async (o: GenerateOptions) => {
    calls = 0;
    const r = new Scheduler(model).submit([1, 1], { temperature: 0, routing: true, ...o });
    const toks = await all(r);
    assert.ok(toks.every((t) => t.routing?.experts[0]?.[0] === 1), 'every emitted token routed');
    return { ids: toks.map((t) => t.id), calls };
  };
  assert.deepEqual(await run({ maxTokens: 3 }), { ids: [5, 6, 7], calls: 3 + 1 }); // the last token fed once more
  assert.deepEqual(await run({ maxTokens: 9, stopTokens: [7] }), { ids: [5, 6], calls: 3 }); // 7 ends it unseen
  assert.deepEqual(await run({ maxTokens: 9, stopSequences: [[6, 7]] }), { ids: [5], calls: 3 });
});
