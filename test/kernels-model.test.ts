/**
 * The wasm kernels inside the whole model: exact mode must reproduce the fixtures' float64 logits
 * (logits.f32) within 1e-4 from every format (ckpt-0 → xai8 matrices, GGUF and safetensors → f32), with
 * several threads; fast mode (int8 activations) is compared with exact on the ckpt-0 weights (the
 * int8 checkpoint path), reporting the KL divergence of each position's next-token distribution and
 * the top-1 agreement.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import { loadModel } from '../src/model/loader.js';
import { argmax, FIXTURES, fixtureDir, golden, goldenLogits, maxAbsDiff } from './fixtures.js';
import { klDivergence } from './kernel-checks.js';

const exact = createKernels({ kernels: 'wasm', mode: 'exact', threads: 2 });
const fast = createKernels({ kernels: 'wasm', mode: 'fast', threads: 2 });
process.on('exit', () => [exact, fast].forEach(closeKernels));

for (const name of FIXTURES) {
  const g = golden(name);
  const dir = fixtureDir(name);
  for (const file of ['ckpt-0', 'model.gguf', 'model.safetensors']) {
    const p = path.join(dir, file);
    test(`${name}/${file}: wasm exact kernels (2 threads) reproduce logits.f32 within 1e-4`, { skip: !fs.existsSync(p) && `${file} absent` }, async (t) => {
      const opts = file.endsWith('.safetensors') ? { kernels: exact, configPath: path.join(dir, 'golden.json') } : { kernels: exact };
      const { model } = await loadModel(p, opts);
      const logits = model.forward([{ tokens: g.tokens, cache: model.newCache() }]);
      const d = maxAbsDiff(logits, goldenLogits(name));
      t.diagnostic(`${name}/${file}: max |Δlogit| vs logits.f32 = ${d.toExponential(2)}`);
      assert.ok(d < 1e-4, `max |Δlogit| = ${d}`);
    });
  }

  test(`${name}/ckpt-0: fast kernels (int8 activations) vs exact: KL and top-1 agreement`, async (t) => {
    const ckpt = path.join(dir, 'ckpt-0');
    const ex = (await loadModel(ckpt, { kernels: exact })).model;
    const fm = (await loadModel(ckpt, { kernels: fast })).model;
    fm.floatActivationsMaxWeights = 0; // int8 activations in every matrix but the router, as at Grok-1 width
    const A = ex.config.nExpertsUsed;
    const routes = (into: string[]) => (what: string, layer: number, data: Float32Array, rows: number) => {
      if (what !== 'ffn_moe_topk') return;
      for (let n = 0; n < rows; n++) into.push(`${layer}:${n}:${Array.from(data.subarray(n * A, (n + 1) * A)).sort().join(',')}`);
    };
    const re: string[] = [], rf: string[] = [];
    const le = ex.forward([{ tokens: g.tokens, cache: ex.newCache() }], { trace: routes(re) });
    const lf = fm.forward([{ tokens: g.tokens, cache: fm.newCache() }], { trace: routes(rf) });
    const flips = re.filter((r, i) => r !== rf[i]).length;
    const V = ex.config.vocabSize;
    let agree = 0, klMax = 0, klSum = 0;
    for (let i = 0; i < g.tokens.length; i++) {
      const a = le.subarray(i * V, (i + 1) * V), b = lf.subarray(i * V, (i + 1) * V);
      if (argmax(a) === argmax(b)) agree++;
      const kl = klDivergence(a, b);
      klMax = Math.max(klMax, kl);
      klSum += kl;
    }
    const n = g.tokens.length;
    t.diagnostic(`${name}: fast vs exact over ${n} positions: top-1 agreement ${agree}/${n}, expert choices changed ${flips}/${re.length}, KL mean ${(klSum / n).toExponential(2)} max ${klMax.toExponential(2)} nats, max |Δlogit| ${maxAbsDiff(le, lf).toExponential(2)}`);
    // Activation rounding (8 bits) is a small perturbation, except where it flips an expert choice (the
    // fixtures' smallest router margins are 2e-3 and 4e-4): then that token's later layers differ.
    assert.ok(klSum / n < 0.1, `KL mean ${klSum / n}`);
    assert.ok(agree >= 0.8 * n, `top-1 agreement ${agree}/${n}`);
    if (flips === 0) assert.ok(klMax < 0.01, `KL max ${klMax} without any expert flip`);
  });
}
