/**
 * The engine's batching promise with the library's default kernels — native where the addon loads —
 * exact and fast: a sequence generated alongside 7 others gives exactly the tokens it gives alone, and
 * GrokModel.forward of a sequence batched with others returns its solo logits bit for bit (mirrors
 * test/engine-wasm.test.ts). Fixtures: tiny-a as the checkpoint (xai8) and as float32 GGUF, tiny-b's Q8_0 GGUF.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { closeKernels, createKernels, type Kernels } from '../src/kernels/index.js';
import { loadNativeAddon } from '../src/kernels/native.js';
import { loadModel } from '../src/model/loader.js';
import { Scheduler, type GenerateOptions } from '../src/engine/scheduler.js';
import { fixtureDir, golden, collect } from './engine-helpers.js';

const native = loadNativeAddon();
const missing = 'error' in native ? native.error : undefined;
if (missing && process.env.CI === 'true') throw new Error(`CI: the native addon must load: ${missing}`);
const skip = missing ? `native addon unavailable: ${missing}` : false;

const kernelSets: { label: string; k: Kernels }[] = missing ? [] : [
  { label: 'createKernels() (exact)', k: createKernels({ threads: 2 }) },
  { label: "createKernels({ mode: 'fast' })", k: createKernels({ mode: 'fast', threads: 3 }) },
];
after(() => { for (const { k } of kernelSets) closeKernels(k); });

const sources = [
  { name: 'tiny-a', file: 'ckpt-0' },
  { name: 'tiny-a', file: 'model.gguf' },
  { name: 'tiny-b', file: 'model-q8_0.gguf' },
];

test('the default kernels are the native ones here', { skip }, () => {
  for (const { k } of kernelSets) assert.match(k.name, /^native-/);
});

for (const { label, k } of kernelSets) {
  for (const src of sources) {
    test(`${label}, ${src.name}/${src.file}: a sequence generated alongside 7 others gives exactly its solo tokens`, async () => {
      const { model } = await loadModel(path.join(fixtureDir(src.name), src.file), { kernels: k });
      const g = golden(src.name);
      const reqs = Array.from({ length: 8 }, (_, i) => ({
        prompt: g.tokens.slice(i, i + 2 + 3 * i), // lengths 2…23: prefill chunks and decode steps mix
        opts: { seed: 4242 + i, temperature: 0.8, maxTokens: 16 } as GenerateOptions,
      }));
      const solo: number[][] = [];
      for (const r of reqs) solo.push(await collect(new Scheduler(model, { slots: 1 }).submit(r.prompt, r.opts)));
      const s = new Scheduler(model, { slots: 8, prefillChunk: 5 });
      const together = await Promise.all(reqs.map((r) => collect(s.submit(r.prompt, r.opts))));
      assert.deepEqual(together, solo);
      const soloSteps = reqs.reduce((a, r) => a + Math.ceil(r.prompt.length / 5) + 15, 0);
      assert.ok(s.steps < soloSteps / 3, `${s.steps} batched steps vs ${soloSteps} solo: they did not run together`);
    });
  }
}
