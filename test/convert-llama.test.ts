/**
 * Files written by `grok convert` / `grok synth`, loaded by llama.cpp itself (node-llama-cpp's prebuilt CPU
 * binary): it must accept our metadata, tensor layouts and vocabulary, and compute what the fixture's own
 * GGUF computes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { convertModel } from '../src/convert/convert.js';
import { synthModel, TINY } from '../src/convert/synth.js';
import { createKernels } from '../src/kernels/index.js';
import { referenceKernels } from '../src/kernels/reference.js';
import { loadModel } from '../src/model/loader.js';
import { probeTool, toolTest } from './cross-check.js';
import { fixtureDir, golden, TOKENIZER_GOLDEN, TOKENIZER_MODEL } from './fixtures.js';
import { loadLlama, type Llama } from './llama-peer.js';

const peer = await probeTool('llama.cpp (node-llama-cpp in peer/, `npm run peer`)', loadLlama);
const llama: Llama | undefined = peer.value;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-convert-llama-'));
after(async () => {
  await llama?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** llama.cpp's logits [tokens, vocab] for one pass over raw token ids (F32 KV cache, 1 thread). */
async function llamaLogits(file: string, tokens: number[], vocab: number, text?: string): Promise<{ logits: Float32Array; roundTrip?: string }> {
  const model = await llama!.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    const roundTrip = text === undefined ? undefined : model.detokenize(model.tokenize(text));
    const ctx = await model.createContext({
      contextSize: 64, batchSize: 64, threads: 1, flashAttention: false,
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
    try {
      const input = tokens.map((t) => [t, { generateNext: { logits: true } }] as [never, { generateNext: { logits: true } }]);
      const res = await ctx.getSequence().controlledEvaluate(input);
      const out = new Float32Array(tokens.length * vocab);
      res.forEach((r, i) => {
        const m = r?.next.logits;
        assert.ok(m && m.size === vocab, `llama.cpp returned no full logits at position ${i}`);
        for (const [tok, v] of m) out[i * vocab + (tok as number)] = v;
      });
      return { logits: out, roundTrip };
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

function argmaxRow(a: Float32Array, row: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (a[row * V + v]! > a[row * V + best]!) best = v;
  return best;
}

toolTest(peer, 'llama.cpp runs our ckpt-0 → F32 conversion of tiny-b exactly as the fixture\'s own model.gguf', async () => {
  const g = golden('tiny-b');
  const V = g.config.vocab_size!;
  const out = path.join(tmp, 'b-f32.gguf');
  await convertModel({ source: path.join(fixtureDir('tiny-b'), 'ckpt-0'), out, type: 'f32' });
  const ours = await llamaLogits(out, g.tokens, V);
  const theirs = await llamaLogits(path.join(fixtureDir('tiny-b'), 'model.gguf'), g.tokens, V);
  assert.deepEqual(ours.logits, theirs.logits);
  for (let p = 0; p < g.tokens.length; p++) assert.equal(argmaxRow(ours.logits, p, V), g.top5[p]![0], `position ${p}`);
});

toolTest(peer, 'llama.cpp loads a synthesized tiny Q4_K model, round-trips text through its vocabulary, and agrees with our forward pass', async () => {
  const out = path.join(tmp, 'syn-q4k.gguf');
  await synthModel({ config: { ...TINY, nLayers: 1 }, type: 'q4_k', out, seed: 11 });
  const tokens = [1, 300, 17, 45, 260, 99, 411, 7];
  const V = TINY.vocabSize;
  const ll = await llamaLogits(out, tokens, V, 'Hello world');
  assert.equal(ll.roundTrip, 'Hello world');
  const { model } = await loadModel(out);
  const ours = model.forward([{ tokens, cache: model.newCache(tokens.length) }]);
  let se = 0, ss = 0;
  for (let i = 0; i < ours.length; i++) { se += (ours[i]! - ll.logits[i]!) ** 2; ss += ours[i]! ** 2; }
  // llama.cpp quantises activations to 8 bits for K-quant dots and uses an f16 GELU table: ~1.5 % RMS apart
  assert.ok(Math.sqrt(se / ss) < 0.05, `relative RMS difference ${Math.sqrt(se / ss)}`);
  for (let p = 0; p < tokens.length; p++) assert.equal(argmaxRow(ll.logits, p, V), argmaxRow(ours, p, V), `position ${p}`);
});

toolTest(peer, 'llama.cpp tokenizes the Grok-1 SentencePiece goldens exactly with the vocabulary we embed from tokenizer.model', async () => {
  const tok = TOKENIZER_MODEL;
  const samples = (JSON.parse(fs.readFileSync(TOKENIZER_GOLDEN, 'utf8')) as { encode: { text: string; ids: number[] }[] }).encode;
  const out = path.join(tmp, 'syn-grok-vocab.gguf');
  // narrow layers keep the 131072-row embedding small: this test is about the vocabulary
  const config = { ...TINY, nLayers: 1, vocabSize: 131072, dModel: 32, nHeads: 2, nKVHeads: 1, headDim: 16, ffnSize: 32, nExperts: 2, nExpertsUsed: 1 };
  await synthModel({ config, type: 'q8_0', out, seed: 1, tokenizer: tok });
  const model = await llama!.loadModel({ modelPath: out, gpuLayers: 0 });
  try {
    assert.ok(samples.length > 150);
    for (const s of samples) {
      assert.deepEqual([...model.tokenize(s.text, false)], s.ids, JSON.stringify(s.text));
    }
  } finally {
    await model.dispose();
  }
});

// The i-quants we read (src/quant/iq*.ts): `grok synth` writes random valid blocks (every code, sign and
// sub-scale random); llama.cpp must compute what we compute from the same bytes. llama.cpp multiplies these
// types against 8-bit activations with one scale per 256 values (Q8_K) and an f16 GELU table.
for (const type of ['iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs', 'iq3_s', 'iq1_s', 'iq1_m', 'iq4_xs'] as const) {
  toolTest(peer, `llama.cpp vs ours on a synthesized tiny ${type.toUpperCase()} model (random blocks): logits and top tokens`, async (_llama, t) => {
    const out = path.join(tmp, `syn-${type}.gguf`);
    await synthModel({ config: { ...TINY, nLayers: 1 }, type, out, seed: 5 });
    const tokens = [1, 300, 17, 45, 260, 99, 411, 7];
    const V = TINY.vocabSize;
    const ll = await llamaLogits(out, tokens, V);
    for (const [name, kernels] of [['reference', referenceKernels], ['native fast', createKernels({ kernels: 'native', mode: 'fast', threads: 2 })]] as const) {
      const { model } = await loadModel(out, { kernels });
      const ours = model.forward([{ tokens, cache: model.newCache(tokens.length) }]);
      let se = 0, ss = 0;
      for (let i = 0; i < ours.length; i++) { se += (ours[i]! - ll.logits[i]!) ** 2; ss += ours[i]! ** 2; }
      const rel = Math.sqrt(se / ss);
      t.diagnostic(`${name}: relative RMS difference ${rel.toExponential(2)}`);
      assert.ok(rel < 0.05, `${name}: relative RMS difference ${rel}`);
      for (let p = 0; p < tokens.length; p++) assert.equal(argmaxRow(ll.logits, p, V), argmaxRow(ours, p, V), `${name}: position ${p}`);
    }
  });
}
