/**
 * Fast numerics must not move the router's decisions: in fast mode (8-bit activations for large
 * quantised matrices; float32 for the router and tiny matrices, src/model/grok.ts), the experts chosen at
 * every (token, layer) equal the fixtures' golden choices (computed in float64 by the independent
 * reference) for at least 99.5 % of the pairs, counted over every fixture and every format holding the
 * golden's weights (ckpt-0, safetensors, F32 GGUF), with the native and the WebAssembly kernels. tiny-b's
 * Q8_0 GGUF has other weights than the golden (its golden is logits-q8_0.f32): its choices are counted
 * against the reference kernels run on the same file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import { loadNativeAddon } from '../src/kernels/native.js';
import { referenceKernels } from '../src/kernels/reference.js';
import type { Kernels } from '../src/kernels/types.js';
import { loadModel } from '../src/model/loader.js';
import { FIXTURES, fixtureDir, golden } from './fixtures.js';

const native = loadNativeAddon();
const backends: ('native' | 'wasm')[] = 'addon' in native ? ['native', 'wasm'] : ['wasm'];

/** Expert ids per (layer, token) of one forward pass over `tokens`, in router-probability order. */
async function routes(file: string, kernels: Kernels, tokens: number[], configPath?: string): Promise<number[][][]> {
  const { model } = await loadModel(file, { kernels, ...(configPath ? { configPath } : {}) });
  const out: number[][][] = [];
  model.forward([{ tokens, cache: model.newCache(tokens.length) }], {
    onRoute: (l, chosen, _gates, rows) => {
      const A = chosen.length / rows;
      out[l] = Array.from({ length: rows }, (_, n) => Array.from(chosen.subarray(n * A, (n + 1) * A)));
    },
  });
  return out;
}

function agree(got: number[][][], want: number[][][]): { same: number; total: number } {
  let same = 0, total = 0;
  want.forEach((layer, l) => layer.forEach((w, n) => {
    total++;
    if (w.join(',') === got[l]?.[n]?.join(',')) same++;
  }));
  return { same, total };
}

for (const backend of backends) {
  test(`${backend} fast: expert choices equal the golden ones for ≥ 99.5 % of (token, layer) pairs over every fixture and format`, async (t) => {
    const k = createKernels({ kernels: backend, mode: 'fast', threads: 2 });
    try {
      let same = 0, total = 0;
      for (const name of FIXTURES) {
        const g = golden(name), dir = fixtureDir(name);
        const want = g.layers.map((l) => l.experts);
        for (const f of ['ckpt-0', 'model.safetensors', 'model.gguf'].filter((f) => fs.existsSync(path.join(dir, f)))) {
          const got = await routes(path.join(dir, f), k, g.tokens, f.endsWith('.safetensors') ? path.join(dir, 'golden.json') : undefined);
          const c = agree(got, want);
          t.diagnostic(`${name}/${f}: ${c.same}/${c.total}`);
          same += c.same;
          total += c.total;
        }
        const q8 = path.join(dir, 'model-q8_0.gguf');
        if (fs.existsSync(q8)) {
          const c = agree(await routes(q8, k, g.tokens), await routes(q8, referenceKernels, g.tokens));
          t.diagnostic(`${name}/model-q8_0.gguf against the reference kernels on its own weights: ${c.same}/${c.total}`);
          same += c.same;
          total += c.total;
        }
      }
      t.diagnostic(`all: ${same}/${total} = ${(100 * same / total).toFixed(2)} %`);
      assert.ok(total >= 600, `${total} pairs counted`);
      assert.ok(same >= 0.995 * total, `${same}/${total} expert choices equal`);
    } finally {
      closeKernels(k);
    }
  });
}
