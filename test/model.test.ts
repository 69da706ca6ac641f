/** The forward pass against the fixtures' float64 goldens (computed from the reference semantics). */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { loadModel } from '../src/model/loader.js';
import { argmax, FIXTURES, fixtureDir, golden, goldenLogits, maxAbsDiff, topK } from './fixtures.js';

for (const name of FIXTURES) {
  const g = golden(name);
  const ckpt = path.join(fixtureDir(name), 'ckpt-0');

  test(`${name}: ckpt-0 logits match logits.f32 within 1e-4 at every position`, async () => {
    const { model } = await loadModel(ckpt);
    const logits = model.forward([{ tokens: g.tokens, cache: model.newCache() }]);
    assert.ok(maxAbsDiff(logits, goldenLogits(name)) < 1e-4);
    const V = model.config.vocabSize;
    g.tokens.forEach((_, t) => assert.deepEqual(topK(logits.subarray(t * V, (t + 1) * V), 5), g.top5[t], `top5 at position ${t}`));
  });

  test(`${name}: experts chosen per layer and the residual RMS after each layer`, async () => {
    const { model } = await loadModel(ckpt);
    const A = model.config.nExpertsUsed, D = model.config.dModel;
    const experts: number[][][] = [];
    const rms: number[][] = [];
    model.forward([{ tokens: g.tokens, cache: model.newCache() }], {
      trace: (what, layer, data, rows) => {
        if (what === 'ffn_moe_topk') experts[layer] = Array.from({ length: rows }, (_, n) => Array.from(data.subarray(n * A, (n + 1) * A)));
        if (what === 'l_out') {
          rms[layer] = Array.from({ length: rows }, (_, n) => {
            let s = 0;
            for (let i = 0; i < D; i++) s += data[n * D + i]! ** 2;
            return Math.sqrt(s / D);
          });
        }
      },
    });
    for (const L of g.layers) {
      assert.deepEqual(experts[L.layer], L.experts, `experts of layer ${L.layer}`);
      L.hidden_rms.forEach((r, n) => assert.ok(Math.abs(rms[L.layer]![n]! - r) < 1e-4 * Math.max(1, r), `hidden_rms layer ${L.layer} position ${n}`));
    }
  });

  test(`${name}: greedy continuation (whole sequence re-run each step)`, async () => {
    const { model } = await loadModel(ckpt);
    const V = model.config.vocabSize;
    const seq = [...g.greedy.prompt];
    for (let i = 0; i < g.greedy.continuation.length; i++) {
      const logits = model.forward([{ tokens: seq, cache: model.newCache() }], { lastOnly: true });
      seq.push(argmax(logits.subarray(0, V)));
    }
    assert.deepEqual(seq.slice(g.greedy.prompt.length), g.greedy.continuation);
  });

  test(`${name}: prefill then one-token decode steps give the full pass's logits`, async () => {
    const { model } = await loadModel(ckpt);
    const V = model.config.vocabSize;
    const full = goldenLogits(name);
    const cache = model.newCache();
    const split = 5;
    const pre = model.forward([{ tokens: g.tokens.slice(0, split), cache }]);
    assert.ok(maxAbsDiff(pre, full.subarray(0, split * V)) < 1e-4);
    for (let t = split; t < g.tokens.length; t++) {
      const step = model.forward([{ tokens: [g.tokens[t]!], cache }]);
      assert.ok(maxAbsDiff(step, full.subarray(t * V, (t + 1) * V)) < 1e-4, `decode step at position ${t}`);
    }
    assert.equal(cache.length, g.tokens.length);
  });

  test(`${name}: sequences batched together give their solo logits`, async () => {
    const { model } = await loadModel(ckpt);
    const V = model.config.vocabSize;
    const full = goldenLogits(name);
    // Three sequences at different offsets in one call: a prefix chunk, a shifted copy, a one-token one.
    const a = model.newCache(), b = model.newCache(), c = model.newCache();
    model.forward([{ tokens: g.tokens.slice(0, 3), cache: b }]);
    const out = model.forward([
      { tokens: g.tokens.slice(0, 7), cache: a },
      { tokens: g.tokens.slice(3, 9), cache: b },
      { tokens: g.tokens.slice(0, 1), cache: c },
    ], { lastOnly: true });
    assert.ok(maxAbsDiff(out.subarray(0, V), full.subarray(6 * V, 7 * V)) < 1e-4);
    assert.ok(maxAbsDiff(out.subarray(V, 2 * V), full.subarray(8 * V, 9 * V)) < 1e-4);
    assert.ok(maxAbsDiff(out.subarray(2 * V, 3 * V), full.subarray(0, V)) < 1e-4);
  });
}

test('tiny-a: a pad token (id 0) is masked out as a key', async () => {
  const { model } = await loadModel(path.join(fixtureDir('tiny-a'), 'ckpt-0'));
  const V = model.config.vocabSize;
  const g = golden('tiny-a');
  const withPad = model.forward([{ tokens: [g.tokens[0]!, 0, ...g.tokens.slice(1, 6)], cache: model.newCache() }]);
  const cache = model.newCache();
  const first = model.forward([{ tokens: [g.tokens[0]!, 0], cache }]);
  assert.ok(maxAbsDiff(first, withPad.subarray(0, 2 * V)) < 1e-5);
  // A masked key gets −1e30 before the softmax, so whatever the pad position's cached key and value
  // hold cannot reach later positions: overwrite them with garbage and the logits must not move.
  const stride = model.config.nKVHeads * model.config.headDim;
  for (const k of [...cache.k, ...cache.v]) k.fill(1e3, stride, 2 * stride);
  const rest = model.forward([{ tokens: g.tokens.slice(1, 6), cache }]);
  assert.ok(maxAbsDiff(rest, withPad.subarray(2 * V)) < 1e-4);
});
