/**
 * The engine's batching promise with the WebAssembly kernels (createKernels({ kernels: 'wasm' }), exact
 * and mode 'fast'): a sequence generated alongside 7 others gives exactly the tokens it gives
 * alone, and GrokModel.forward of a sequence batched with others returns its solo logits bit for bit.
 * (test/engine.test.ts checks the same with the reference kernels.) Fixtures: tiny-a as the released
 * int8 checkpoint ('xai8' matrices) and as float32 GGUF ('rows' matrices), tiny-b as the checkpoint.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { closeKernels, createKernels, type Kernels } from '../src/kernels/index.js';
import { loadModel } from '../src/model/loader.js';
import type { GrokModel } from '../src/model/grok.js';
import { Scheduler, type GenerateOptions } from '../src/engine/scheduler.js';
import { fixtureDir, golden, collect } from './engine-helpers.js';

const kernelSets: { label: string; k: Kernels }[] = [
  { label: "createKernels({ kernels: 'wasm' }) (exact)", k: createKernels({ kernels: 'wasm' }) },
  { label: "createKernels({ kernels: 'wasm', mode: 'fast' })", k: createKernels({ kernels: 'wasm', mode: 'fast' }) },
];
after(() => { for (const { k } of kernelSets) closeKernels(k); });

const sources = [
  { name: 'tiny-a', file: 'ckpt-0' },
  { name: 'tiny-a', file: 'model.gguf' },
  { name: 'tiny-b', file: 'ckpt-0' },
];

for (const { label, k } of kernelSets) {
  test(`${label}: the kernels really are the wasm ones`, () => {
    assert.match(k.name, /^wasm-simd-/);
  });

  for (const src of sources) {
    const what = `${label}, ${src.name}/${src.file}`;

    test(`${what}: a sequence generated alongside 7 others gives exactly its solo tokens`, async () => {
      const { model } = await loadModel(path.join(fixtureDir(src.name), src.file), { kernels: k });
      const g = golden(src.name);
      const reqs = Array.from({ length: 8 }, (_, i) => ({
        prompt: g.tokens.slice(i, i + 2 + 3 * i), // lengths 2…23: prefill chunks and decode steps mix
        opts: { seed: 4242 + i, temperature: 0.8, maxTokens: 16 } as GenerateOptions,
      }));
      const solo: number[][] = [];
      for (const r of reqs) solo.push(await collect(new Scheduler(model, { slots: 1 }).submit(r.prompt, r.opts)));
      for (const ids of solo) assert.equal(ids.length, 16);
      const s = new Scheduler(model, { slots: 8, prefillChunk: 5 });
      const together = await Promise.all(reqs.map((r) => collect(s.submit(r.prompt, r.opts))));
      assert.deepEqual(together, solo);
      const soloSteps = reqs.reduce((a, r) => a + Math.ceil(r.prompt.length / 5) + 15, 0);
      assert.ok(s.steps < soloSteps / 3, `${s.steps} batched steps vs ${soloSteps} solo: they did not run together`);
    });

    test(`${what}: forward of a sequence batched with others equals its solo forward bit for bit`, async () => {
      const { model } = await loadModel(path.join(fixtureDir(src.name), src.file), { kernels: k });
      const g = golden(src.name);
      const V = model.config.vocabSize;
      const target = g.tokens.slice(0, 9);
      const soloLogits = forwardSteps(model, [target], [[5, 1, 3]])[0]!;
      // Batched: the target's steps alongside other sequences with other lengths and chunkings, the
      // target placed first, in the middle and last.
      const others = [g.tokens.slice(3, 20), g.tokens.slice(1, 4), g.tokens.slice(10, 17)];
      const chunks = [[5, 1, 3], [6, 1, 10], [1, 1, 1], [4, 2, 1]];
      for (const at of [0, 2, 3]) {
        const seqs = [...others];
        seqs.splice(at, 0, target);
        const ch = [...chunks.slice(1)];
        ch.splice(at, 0, chunks[0]!);
        const got = forwardSteps(model, seqs, ch)[at]!;
        assert.equal(got.length, soloLogits.length);
        assert.ok(Buffer.from(got.buffer).equals(Buffer.from(soloLogits.buffer)), `target at batch position ${at}: logits differ (vocab ${V})`);
      }
    });
  }
}

/**
 * Feed each sequence to the model in chunks of the given sizes, all sequences in one forward call per
 * step (a sequence whose tokens are used up sits out); returns each sequence's logits, all positions.
 */
function forwardSteps(model: GrokModel, seqs: number[][], chunks: number[][]): Float32Array[] {
  const V = model.config.vocabSize;
  const caches = seqs.map(() => model.newCache(64));
  const done = seqs.map(() => 0);
  const outs = seqs.map((s) => new Float32Array(s.length * V));
  for (let step = 0; ; step++) {
    const batch: { i: number; tokens: number[] }[] = [];
    seqs.forEach((s, i) => {
      const n = step < chunks[i]!.length ? chunks[i]![step]! : s.length - done[i]!;
      const take = Math.min(n, s.length - done[i]!);
      if (take > 0) batch.push({ i, tokens: s.slice(done[i], done[i]! + take) });
    });
    if (batch.length === 0) return outs;
    const logits = model.forward(batch.map((b) => ({ tokens: b.tokens, cache: caches[b.i]! })));
    let row = 0;
    for (const b of batch) {
      outs[b.i]!.set(logits.subarray(row * V, (row + b.tokens.length) * V), done[b.i]! * V);
      row += b.tokens.length;
      done[b.i]! += b.tokens.length;
    }
  }
}
