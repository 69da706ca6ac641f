// Fast paths of src/train against their references: the WebAssembly SIMD matmuls against float64 sums,
// attention as per-head matmuls against the direct loops of ops.ts, the embedded wasm against its source;
// and the exported GGUF against the project's own loader and forward pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { matmulXWt, matmulDyW, matmulDyTX, wasmAvailable } from '../src/train/gemm.js';
import { attentionForward, attentionBackward, type AttnShape } from '../src/train/ops.js';
import { attentionForwardMM, attentionBackwardMM } from '../src/train/attention.js';
import { ParamSet, GrokTrainer } from '../src/train/model.js';
import { exportGguf } from '../src/train/export.js';
import { trainBpe } from '../src/train/bpe.js';
import { Rng } from '../src/base/rng.js';
import { GROK1, type GrokConfig } from '../src/model/config.js';
import { loadModel } from '../src/model/loader.js';
import { GEMM_WASM_BASE64 } from '../src/train/gemm-wasm.js';

function rand(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal());
}

test('WASM matmuls equal float64 sums (awkward row counts, inner sizes multiple of 4)', () => {
  assert.ok(wasmAvailable(), 'WebAssembly SIMD128 must be available on Node 20');
  const rng = new Rng(11);
  for (const [n, nIn, nOut] of [[1, 4, 1], [3, 8, 5], [7, 12, 3], [17, 36, 9], [33, 64, 31]]) {
    const x = rand(rng, n * nIn), w = rand(rng, nOut * nIn), dy = rand(rng, n * nOut);
    const y = new Float32Array(n * nOut);
    matmulXWt(y, x, w, n, nIn, nOut);
    const dx = rand(rng, n * nIn), dx0 = Float32Array.from(dx);
    matmulDyW(dx, dy, w, n, nIn, nOut);
    const dw = rand(rng, nOut * nIn), dw0 = Float32Array.from(dw);
    matmulDyTX(dw, dy, x, n, nIn, nOut);
    const tol = (k: number) => 1e-5 * k;
    for (let t = 0; t < n; t++) for (let o = 0; o < nOut; o++) {
      let s = 0;
      for (let i = 0; i < nIn; i++) s += x[t * nIn + i] * w[o * nIn + i];
      assert.ok(Math.abs(y[t * nOut + o] - s) < tol(nIn), `xwt ${n}×${nIn}×${nOut} [${t},${o}]`);
    }
    for (let t = 0; t < n; t++) for (let i = 0; i < nIn; i++) {
      let s = dx0[t * nIn + i];
      for (let o = 0; o < nOut; o++) s += dy[t * nOut + o] * w[o * nIn + i];
      assert.ok(Math.abs(dx[t * nIn + i] - s) < tol(nOut), `dyw ${n}×${nIn}×${nOut} [${t},${i}]`);
    }
    for (let o = 0; o < nOut; o++) for (let i = 0; i < nIn; i++) {
      let s = dw0[o * nIn + i];
      for (let t = 0; t < n; t++) s += dy[t * nOut + o] * x[t * nIn + i];
      assert.ok(Math.abs(dw[o * nIn + i] - s) < tol(n), `dytx ${n}×${nIn}×${nOut} [${o},${i}]`);
    }
  }
});

test('attention as per-head matmuls equals the direct loops, forward and backward (float64)', () => {
  const rng = new Rng(5);
  const s: AttnShape = { B: 2, T: 7, H: 6, G: 2, K: 4, mult: 0.9, cap: 2 };
  const N = s.B * s.T, HK = s.H * s.K, GK = s.G * s.K;
  const f64 = (n: number) => Float64Array.from({ length: n }, () => rng.normal());
  const q = f64(N * HK), k = f64(N * GK), v = f64(N * GK), dao = f64(N * HK);
  const mask = new Uint8Array(N).fill(1);
  mask[2] = 0; mask[7] = 0; // a masked key in each sequence, the second at a sequence start
  const run = (fwd: typeof attentionForward, bwd: typeof attentionBackward) => {
    const ao = new Float64Array(N * HK), p = new Float64Array(s.B * s.H * s.T * s.T), th = new Float64Array(p.length);
    fwd(ao, p, th, q, k, v, mask, s);
    const dq = new Float64Array(N * HK), dk = new Float64Array(N * GK), dv = new Float64Array(N * GK);
    bwd(dq, dk, dv, dao, p, th, q, k, v, s);
    return [ao, p, dq, dk, dv];
  };
  const a = run(attentionForward, attentionBackward), b = run(attentionForwardMM, attentionBackwardMM);
  a.forEach((arr, j) => arr.forEach((x, i) => assert.ok(Math.abs(x - b[j][i]) < 1e-12, `output ${j} [${i}]: ${x} vs ${b[j][i]}`)));
});

test('the embedded wasm is what scripts/build-train-gemm.sh builds from scripts/train-gemm/gemm.ts', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-gemm-'));
  try {
    const out = path.join(dir, 'gemm.wasm');
    const r = spawnSync('node', ['node_modules/assemblyscript/bin/asc.js', 'scripts/train-gemm/gemm.ts', '--outFile', out,
      '-O3', '--enable', 'simd', '--runtime', 'stub', '--importMemory', '--noExportMemory'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(out).toString('base64'), GEMM_WASM_BASE64, 'run scripts/build-train-gemm.sh');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('exported GGUF loads through loadModel and its forward pass gives the trainer\'s logits', async () => {
  const text = fs.readFileSync(path.resolve('models/default/val-excerpt.txt'), 'utf8');
  const tok = trainBpe(text, { vocabSize: 400 }).model;
  const config: GrokConfig = {
    ...GROK1, vocabSize: 400, dModel: 32, nLayers: 2, nHeads: 4, nKVHeads: 2, headDim: 12, ffnSize: 24,
    nExperts: 4, nExpertsUsed: 2, contextLength: 16,
    embeddingMultiplier: Math.fround(GROK1.embeddingMultiplier), outputMultiplier: Math.fround(GROK1.outputMultiplier),
    attnOutputMultiplier: Math.fround(0.3), rmsNormEps: Math.fround(1e-5),
  };
  const params = new ParamSet(config, 'f32');
  const rng = new Rng(9);
  params.init(rng);
  for (const p of params.list) if (p.shape.length === 1) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.5 + rng.next();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-export-'));
  try {
    const file = path.join(dir, 'model.gguf');
    await exportGguf(file, params, tok, { name: 'test' });
    const { model, source } = await loadModel(file);
    assert.equal(source.metadata.get('general.architecture'), 'grok');
    assert.deepEqual(source.metadata.get('tokenizer.ggml.tokens'), tok.pieces.map((p) => p.piece));
    for (const k of ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKVHeads', 'headDim', 'ffnSize', 'nExperts', 'nExpertsUsed', 'contextLength'] as const) {
      assert.equal(model.config[k], config[k], k);
    }
    const tokens = [5, 300, 17, 42, 399, 1, 260, 77, 8, 150];
    const ours = new GrokTrainer(params, 16).forward(tokens, 1, tokens.length);
    const theirs = model.forward([{ tokens, cache: model.newCache() }]);
    assert.equal(theirs.length, ours.length);
    let maxErr = 0;
    for (let i = 0; i < ours.length; i++) maxErr = Math.max(maxErr, Math.abs(ours[i] - theirs[i]));
    assert.ok(maxErr < 1e-4, `max |trainer − loader| logit difference ${maxErr}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
