/**
 * Streamed experts (issue 20): a model whose experts are read from disk into a pool of slots gives the
 * in-RAM path's logits byte for byte — for GGUF (f32 and Q8_0), safetensors and ckpt-0, native exact and
 * fast, the reference kernels — with the smallest budget (nExpertsUsed experts per layer), half the experts
 * and all of them, over a prompt and teacher-forced decode steps that evict and re-read experts. Both
 * paths are also checked against the fixtures' golden logits (an independent reference), and the faults:
 * a budget below the minimum names it; a file truncated under a running model fails that forward pass
 * with an error naming the file, and the model serves again once the file is whole.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import OpenAI from 'openai';
import { loadModel as loadGrok } from '../src/api/index.js';
import { createServer } from '../src/api/server.js';
import { ModelTooLargeError } from '../src/base/errors.js';
import { loadNativeAddon, NativeKernels } from '../src/kernels/native.js';
import { referenceKernels } from '../src/kernels/reference.js';
import type { Kernels } from '../src/kernels/types.js';
import type { GrokModel } from '../src/model/grok.js';
import { loadModel, type LoadOptions } from '../src/model/loader.js';
import type { MemoryPlan } from '../src/model/memory.js';
import { fixtureDir, golden, goldenLogits, maxAbsDiff } from './fixtures.js';

const loaded = loadNativeAddon();
if ('error' in loaded && process.env.CI === 'true') throw new Error(`CI: the native addon must load: ${loaded.error}`);
const made: NativeKernels[] = [];
function native(mode: 'exact' | 'fast', mmap = true): NativeKernels {
  if ('error' in loaded) throw new Error(loaded.error);
  const k = new NativeKernels(loaded.addon, { threads: 2, mode, mmap });
  made.push(k);
  return k;
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-stream-'));
after(() => {
  made.forEach((k) => k.close());
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The prompt's logits, then one step per forced token (each step's logits), concatenated. */
function run(model: GrokModel, tokens: readonly number[], forced: readonly number[]): Float32Array {
  const cache = model.newCache();
  const parts = [model.forward([{ tokens, cache }])];
  for (const t of forced) parts.push(model.forward([{ tokens: [t], cache }]));
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** The streaming plan of a model (resident bytes, slot size) without loading it twice for real. */
async function planOf(file: string, kernels: Kernels, extra: LoadOptions = {}): Promise<NonNullable<MemoryPlan['streaming']>> {
  let plan: MemoryPlan | undefined;
  const { model } = await loadModel(file, { kernels, ...extra, streamExperts: true, probeDisk: false, onMemoryPlan: (p) => { plan = p; } });
  model.close();
  assert.ok(plan?.streaming, 'a streaming plan');
  return plan.streaming;
}

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

const CASES: [fixture: 'tiny-a' | 'tiny-b', file: string, tol: number][] = [
  ['tiny-a', 'model.gguf', 1e-4],
  ['tiny-b', 'model.gguf', 1e-4],
  ['tiny-b', 'model-q8_0.gguf', 1e-4],
  ['tiny-a', 'model.safetensors', 1e-4],
  ['tiny-b', 'ckpt-0', 1e-4],
];

for (const [fixture, file, tol] of CASES) {
  test(`${fixture}/${file}: streamed experts give the in-RAM logits byte for byte (budgets: minimum, half, all; native exact/fast, reference)`, async () => {
    const g = golden(fixture);
    const src = path.join(fixtureDir(fixture), file);
    const gold = file === 'model-q8_0.gguf' ? goldenLogits(fixture, 'logits-q8_0.f32') : goldenLogits(fixture);
    // Forced decode: ids spread over the vocabulary, so every step routes differently.
    const forced = Array.from({ length: 6 }, (_, i) => (g.tokens[i % g.tokens.length]! * 7 + 13 * i + 5) % g.config.vocab_size);
    const kernelSets: [string, Kernels][] = [['reference', referenceKernels]];
    if (!('error' in loaded)) kernelSets.push(['native exact', native('exact')], ['native fast', native('fast')]);
    for (const [kname, kernels] of kernelSets) {
      const config = file.endsWith('.safetensors') ? { configPath: path.join(fixtureDir(fixture), 'golden.json') } : {};
      const { model: ram } = await loadModel(src, { kernels, ...config });
      const want = run(ram, g.tokens, forced);
      if (kname !== 'native fast') {
        const n = g.tokens.length * g.config.vocab_size;
        assert.ok(maxAbsDiff(want.subarray(0, n), gold) < tol, `${kname}: in-RAM prompt logits against the golden ones`);
      }
      ram.close();
      const p = await planOf(src, kernels, config);
      const E = g.config.num_experts, L = g.config.num_layers, A = g.config.num_selected_experts;
      assert.equal(p.experts, E * L);
      for (const slots of [A * L, Math.ceil((E * L) / 2), E * L]) {
        const ramBudget = p.residentBytes + slots * p.slotBytes;
        let plan: MemoryPlan | undefined;
        const { model } = await loadModel(src, { kernels, ...config, ramBudget, streamExperts: true, onMemoryPlan: (x) => { plan = x; } });
        assert.equal(model.expertCache?.slots, slots, `${kname}: ${slots} slots for a budget of ${ramBudget}`);
        assert.ok(model.weights.layers.every((l) => l.ffn_gate_exps.length === 0), 'no expert read at load');
        assert.match(plan!.message, new RegExp(`${slots} of ${E * L} experts`));
        const got = run(model, g.tokens, forced);
        assert.ok(bytesOf(got).equals(bytesOf(want)), `${kname}, ${slots} slots: logits differ from the in-RAM path (max |Δ| ${maxAbsDiff(got, want)})`);
        const st = model.expertCache!.stats();
        assert.equal(st.hits + st.misses, st.perLayer.reduce((a, [, u]) => a + u, 0));
        if (slots === E * L) assert.ok(st.misses <= E * L, `all resident: each expert read at most once (${st.misses} misses)`);
        else assert.ok(st.misses > 0);
        model.close();
      }
    }
  });
}

test('a RAM budget below the resident weights plus nExpertsUsed experts per layer is refused, naming the smallest budget', async () => {
  const src = path.join(fixtureDir('tiny-b'), 'model.gguf');
  const p = await planOf(src, referenceKernels);
  const g = golden('tiny-b');
  const least = p.residentBytes + g.config.num_selected_experts * g.config.num_layers * p.slotBytes;
  await assert.rejects(loadModel(src, { kernels: referenceKernels, ramBudget: least - 1 }), (e: Error) => {
    assert.ok(e instanceof ModelTooLargeError);
    assert.match(e.message, /model\.gguf: a RAM budget of .* is too small: .* the smallest budget for this model is/);
    return true;
  });
  const { model } = await loadModel(src, { kernels: referenceKernels, ramBudget: least, probeDisk: false });
  assert.equal(model.expertCache?.slots, g.config.num_selected_experts * g.config.num_layers);
  model.close();
  // A budget the whole model fits in: the ordinary path, nothing streamed.
  const { model: whole } = await loadModel(src, { kernels: referenceKernels, ramBudget: 1e12 });
  assert.equal(whole.expertCache, null);
  whole.close();
});

test('a model file truncated under streamed experts fails that forward pass with an error naming it; restored, the model serves again', { skip: 'error' in loaded ? loaded.error : false }, async () => {
  const g = golden('tiny-b');
  const file = path.join(tmp, 'model.gguf');
  fs.copyFileSync(path.join(fixtureDir('tiny-b'), 'model.gguf'), file);
  const whole = fs.readFileSync(file);
  const opts: LoadOptions = { kernels: native('exact', false), streamExperts: true };
  const p = await planOf(file, opts.kernels!);
  const { model } = await loadModel(file, { ...opts, ramBudget: p.residentBytes + 2 * g.config.num_layers * p.slotBytes });
  const want = model.forward([{ tokens: g.tokens, cache: model.newCache() }]);
  // Cut the file in the middle of the expert tensors: the reads of evicted experts now come up short.
  fs.truncateSync(file, Math.floor(whole.length * 0.6));
  let failed = 0;
  for (let i = 0; i < 4; i++) {
    try {
      model.forward([{ tokens: g.tokens.map((t, j) => (t * (i + 3) + j) % g.config.vocab_size), cache: model.newCache() }]);
    } catch (e) {
      failed++;
      assert.match((e as Error).message, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read \\d+ bytes at offset \\d+ .*truncated`));
    }
  }
  assert.ok(failed > 0, 'a read past the new end failed');
  fs.writeFileSync(file, whole);
  const again = model.forward([{ tokens: g.tokens, cache: model.newCache() }]);
  assert.ok(bytesOf(again).equals(bytesOf(want)), 'the same logits once the file is whole again');
  model.close();
});

test('/metrics of a server on streamed experts: uses per layer are the distinct experts golden.json routes the prompt to; the numbers are the cache\'s', async () => {
  const g = golden('tiny-b');
  const src = path.join(fixtureDir('tiny-b'), 'model-q8_0.gguf');
  const kernels = 'error' in loaded ? referenceKernels : native('exact');
  const p = await planOf(src, kernels);
  const ramBudget = p.residentBytes + 2 * g.config.num_layers * p.slotBytes;
  const grok = await loadGrok(src, { kernels, ramBudget, prefillChunk: 256, slots: 1 });
  const server = createServer(grok, { modelId: 'm', metrics: true });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  try {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    // One token: one forward pass over the prompt, nothing decoded after it.
    const r = await client.completions.create({ model: 'm', prompt: g.tokens as never, max_tokens: 1, temperature: 0 });
    assert.equal(r.usage?.prompt_tokens, g.tokens.length);
    const text = await (await fetch(`${url}/metrics`)).text();
    const value = (name: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      assert.ok(line, `${name} in /metrics`);
      return Number(line.slice(name.length + 1));
    };
    const s = grok.model.expertCache!.stats();
    assert.equal(value('grok_expert_slots'), s.slots);
    assert.equal(value('grok_expert_slots'), 2 * g.config.num_layers);
    assert.equal(value('grok_experts'), g.config.num_layers * g.config.num_experts);
    assert.equal(value('grok_expert_read_bytes_total'), s.bytesRead);
    assert.ok(s.bytesRead > 0);
    for (const L of g.layers) {
      // The last layer runs its MoE on the last token only (only its logits are read).
      const last = L.layer === g.config.num_layers - 1;
      const distinct = new Set((last ? L.experts.slice(-1) : L.experts).flat()).size;
      assert.equal(value(`grok_expert_uses_total{layer="${L.layer}"}`), distinct, `layer ${L.layer}: one use per distinct expert of the prompt${last ? '\'s last token' : ''}`);
      assert.equal(value(`grok_expert_hits_total{layer="${L.layer}"}`), s.perLayer[L.layer]![0]);
    }
  } finally {
    await server.close(0);
    await grok.close();
  }
});

test('by default a model larger than the memory available (less the margin) streams its experts; ramBudget Infinity never does', async () => {
  const src = path.join(fixtureDir('tiny-b'), 'model.gguf');
  const p = await planOf(src, referenceKernels);
  const g = golden('tiny-b');
  // Room for the resident weights and 10 slots once the 1 GiB margin is taken.
  const memory = 2 ** 30 + p.residentBytes + 10 * p.slotBytes;
  const { model } = await loadModel(src, { kernels: referenceKernels, memory, probeDisk: false });
  assert.equal(model.expertCache?.slots, 10);
  const want = goldenLogits('tiny-b');
  assert.ok(maxAbsDiff(model.forward([{ tokens: g.tokens, cache: model.newCache() }]), want) < 1e-4);
  model.close();
  const { model: never } = await loadModel(src, { kernels: referenceKernels, memory, ramBudget: Infinity });
  assert.equal(never.expertCache, null);
  never.close();
  // Memory too small for even the smallest pool: not streamed (the mapped/copied path decides, as before).
  const small = 2 ** 30 + p.residentBytes + 3 * p.slotBytes; // the smallest pool is 2 experts × 3 layers
  const { model: plain } = await loadModel(src, { kernels: referenceKernels, memory: small });
  assert.equal(plain.expertCache, null);
  plain.close();
});
