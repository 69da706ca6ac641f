/**
 * Side by side with llama.cpp (node-llama-cpp's prebuilt CPU binary): it loads the fixtures' `grok` GGUFs
 * itself and returns raw logits per position for token ids fed directly (the fixtures' vocabulary is not a
 * real tokenizer). We compare its top token at every position, and its logits, with ours.
 *
 * Two of llama.cpp's CPU numerics differ from the exact forward pass on purpose, and explain every
 * difference seen here, so the test also runs our model with both emulated:
 * - GELU through a float16 table: y = f16(gelu(f16(x))) for |x| < 10 (ggml-cpu vec.h ggml_vec_gelu_f32
 *   with GGML_GELU_FP16);
 * - Q8_0 matrices multiply 8-bit activations: each row of x is first quantised to Q8_0 blocks
 *   (ggml-cpu type_traits: vec_dot_type of Q8_0 is Q8_0).
 * With both emulated, every top token agrees on all three files; without, the F32 files agree anyway,
 * while on model-q8_0.gguf the activation rounding alone changes the chosen experts at 7 (layer, token)
 * pairs of our own pass (tiny-b's router margin is 0.0004), which moves logits by up to 4 and flips the
 * top token at 9 of 40 positions.
 * Also checked: GGUFs that `grok convert` writes from tiny-b's ckpt-0 (Q8_0, Q4_0) load in llama.cpp
 * and agree the same way.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { convertModel } from '../src/convert/convert.js';
import { referenceKernels } from '../src/kernels/reference.js';
import type { Kernels } from '../src/kernels/types.js';
import { loadModel } from '../src/model/loader.js';
import type { Matrix } from '../src/quant/matrix.js';
import { f16Table, f32ToF16 } from '../src/quant/half.js';
import { blockFormat } from '../src/quant/index.js';
import { probeTool, toolTest } from './cross-check.js';
import { argmax, fixtureDir, golden } from './fixtures.js';
import { loadLlama, type Llama } from './llama-peer.js';

const peer = await probeTool('llama.cpp (node-llama-cpp in peer/, `npm run peer`)', loadLlama);
const llama: Llama | undefined = peer.value;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-llamacpp-'));
after(async () => {
  await llama?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** llama.cpp's logits [tokens, vocab] for one causal pass over `tokens` (raw ids, F32 KV cache, 1 thread). */
async function llamaLogits(file: string, tokens: number[], vocab: number): Promise<Float32Array> {
  const model = await llama!.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({
      contextSize: 64, batchSize: 64, threads: 1, flashAttention: false,
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
    try {
      const seq = ctx.getSequence();
      // node-llama-cpp's Token is a branded number; the ids are fed as they are.
      const input = tokens.map((t) => [t, { generateNext: { logits: true } }] as [never, { generateNext: { logits: true } }]);
      const res = await seq.controlledEvaluate(input);
      const out = new Float32Array(tokens.length * vocab);
      res.forEach((r, i) => {
        const m = r?.next.logits;
        assert.ok(m && m.size === vocab, `llama.cpp returned no full logits at position ${i}`);
        for (const [tok, v] of m) out[i * vocab + (tok as number)] = v;
      });
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Reference kernels with llama.cpp's two CPU numerics (see the file comment). */
function llamaNumerics(): Kernels {
  const q8 = blockFormat('q8_0');
  const h = (v: number) => f16Table()[f32ToF16(v)]!;
  const c = Math.sqrt(2 / Math.PI);
  const gelu = (x: number) => Math.fround(0.5 * x * (1 + Math.tanh(c * x * (1 + 0.044715 * x * x))));
  const matmul = (w: Matrix, x: Float32Array, T: number, y: Float32Array) => {
    // Weight types whose ggml vec_dot_type is Q8_0 (Q4_1/Q5_1 use Q8_1, whose values are the same but
    // which adds a rounded block sum: not emulated, so those types are not compared here).
    if (w.layout !== 'rows' || !(w.type === 'q8_0' || w.type === 'q4_0' || w.type === 'iq4_nl')) return referenceKernels.matmul(w, x, T, y);
    const xq = new Float32Array(T * w.nIn);
    const blocks = new Uint8Array((w.nIn / 32) * 34);
    for (let t = 0; t < T; t++) {
      q8.quantize!(x, t * w.nIn, w.nIn, blocks, 0);
      q8.dequantize(blocks, 0, w.nIn, xq, t * w.nIn);
    }
    return referenceKernels.matmul(w, xq, T, y);
  };
  return {
    ...referenceKernels,
    name: 'reference+llama.cpp-numerics',
    // llama.cpp quantises the activations of every Q8_0-dot matrix, tiny ones too (its router is F32).
    matmul,
    matmulExact: matmul,
    matmulMany: (ws, x, T, ys) => ws.forEach((w, i) => matmul(w, x, T, ys[i]!)),
    gelu(x: Float32Array, n: number, up?: Float32Array) {
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        x[i] = v <= -10 ? 0 : v >= 10 ? v : h(gelu(h(v)));
        if (up) x[i] = x[i]! * up[i]!; // ggml_mul in float32
      }
    },
  };
}

async function ours(file: string, tokens: number[], kernels?: Kernels): Promise<Float32Array> {
  const { model } = await loadModel(file, kernels ? { kernels } : {});
  return model.forward([{ tokens, cache: model.newCache(tokens.length) }]);
}

function compare(a: Float32Array, b: Float32Array, V: number): { agree: number; disagree: number[]; maxDiff: number } {
  const disagree: number[] = [];
  let maxDiff = 0;
  const T = a.length / V;
  for (let t = 0; t < T; t++) {
    if (argmax(a.subarray(t * V, (t + 1) * V)) !== argmax(b.subarray(t * V, (t + 1) * V))) disagree.push(t);
  }
  for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
  return { agree: T - disagree.length, disagree, maxDiff };
}

const cases = [
  // [fixture, file, bound on max |Δlogit| vs our exact pass (F32 only), bound with llama.cpp numerics emulated]
  { name: 'tiny-a', file: 'model.gguf', exactBound: 0.02, emulatedBound: 0.005 },
  { name: 'tiny-b', file: 'model.gguf', exactBound: 0.05, emulatedBound: 0.01 },
  { name: 'tiny-b', file: 'model-q8_0.gguf', exactBound: undefined, emulatedBound: 0.3 },
];

for (const c of cases) {
  toolTest(peer, `llama.cpp vs ours on ${c.name}/${c.file}: top token at every position`, async (_llama, t) => {
    const g = golden(c.name);
    const V = g.config.vocab_size!;
    const file = path.join(fixtureDir(c.name), c.file);
    const theirs = await llamaLogits(file, g.tokens, V);
    const exact = compare(theirs, await ours(file, g.tokens), V);
    const emulated = compare(theirs, await ours(file, g.tokens, llamaNumerics()), V);
    t.diagnostic(`exact pass: ${exact.agree}/${g.tokens.length} top tokens agree (differ at ${JSON.stringify(exact.disagree)}), max |Δlogit| ${exact.maxDiff.toExponential(2)}`);
    t.diagnostic(`with llama.cpp numerics: ${emulated.agree}/${g.tokens.length} agree, max |Δlogit| ${emulated.maxDiff.toExponential(2)}`);
    assert.deepEqual(emulated.disagree, [], 'top tokens with llama.cpp numerics emulated');
    assert.ok(emulated.maxDiff < c.emulatedBound, `max |Δlogit| ${emulated.maxDiff} with llama.cpp numerics`);
    if (c.exactBound !== undefined) {
      assert.deepEqual(exact.disagree, [], 'top tokens of the exact pass');
      assert.ok(exact.maxDiff < c.exactBound, `max |Δlogit| ${exact.maxDiff} (exact pass)`);
    } else {
      // Q8_0: the 8-bit activations move logits by up to a few units here; most positions still agree.
      assert.ok(exact.agree >= g.tokens.length * 0.6, `exact pass agrees at only ${exact.agree} positions`);
    }
  });
}

// GGUFs written by `grok convert` (another module's writer and quantisers) must load in llama.cpp and
// agree with our reading of them. Q4_0 and IQ4_NL multiply Q8_0 activations like Q8_0, so the same
// emulation applies; max |Δlogit| measured: 0.27 (q8_0), 0.044 (q4_0).
for (const type of ['q8_0', 'q4_0'] as const) {
  toolTest(peer, `llama.cpp vs ours on tiny-b ckpt-0 converted to ${type} by grok convert: top token at every position`, async (_llama) => {
    const g = golden('tiny-b');
    const V = g.config.vocab_size!;
    const file = path.join(tmp, `tiny-b-${type}.gguf`);
    await convertModel({ source: path.join(fixtureDir('tiny-b'), 'ckpt-0'), out: file, type });
    const theirs = await llamaLogits(file, g.tokens, V);
    const emulated = compare(theirs, await ours(file, g.tokens, llamaNumerics()), V);
    assert.deepEqual(emulated.disagree, [], 'top tokens with llama.cpp numerics emulated');
    assert.ok(emulated.maxDiff < 0.5, `max |Δlogit| ${emulated.maxDiff}`);
  });
}
