/**
 * Grok-2 from its release layout (39 bf16 safetensors, experts in 8 tensor-parallel shards) against the
 * fixtures' float64 goldens (test/data/grok2/README.md: an independent reference of the math SGLang runs):
 * logits within tolerance.logits_abs with every argmax, the experts chosen at every layer, the greedy
 * continuation through the KV cache (positions past attn_temperature_len), through `grok logits` exactly
 * as the hidden fixtures will be run, on every backend; the tokenizer's encoding of the chat prompt; and
 * broken release layouts rejected by name.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { closeKernels, createKernels, type Kernels } from '../src/kernels/index.js';
import OpenAI from 'openai';
import { loadModel as loadGrok } from '../src/api/index.js';
import { createServer } from '../src/api/server.js';
import { loadModel } from '../src/model/loader.js';
import { continuation } from './engine-helpers.js';
import type { MemoryPlan } from '../src/model/memory.js';
import { loadTokenizerFile } from '../src/tokenizer/load.js';
import { grok } from './cli-helpers.js';
import { argmax, DATA, maxAbsDiff } from './fixtures.js';

const FIXTURES = ['g2-tiny-a', 'g2-tiny-b'] as const;
const dir = (name: string) => path.join(DATA, 'grok2', name);

interface Golden2 {
  config: Record<string, unknown>;
  tokens: number[];
  prompt_text: string;
  top5: number[][];
  min_top1_margin: number;
  tolerance: { logits_abs: number };
  layers: { layer: number; experts: number[][]; weights: number[][]; route_margin: number }[];
  greedy: { prompt: number[]; continuation: number[] };
}

const golden = (name: string) => JSON.parse(fs.readFileSync(path.join(dir(name), 'golden.json'), 'utf8')) as Golden2;
function goldenLogits(name: string): Float32Array {
  const b = fs.readFileSync(path.join(dir(name), 'logits.f32'));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function argmaxes(logits: Float32Array, V: number): number[] {
  return Array.from({ length: logits.length / V }, (_, t) => argmax(logits.subarray(t * V, (t + 1) * V)));
}

const backends: [string, () => Kernels][] = [
  ['reference', () => createKernels({ kernels: 'reference' })],
  ['native exact', () => createKernels({ kernels: 'native', threads: 2 })],
  ['wasm exact', () => createKernels({ kernels: 'wasm', threads: 2 })],
];

for (const name of FIXTURES) {
  const g = golden(name);
  const want = goldenLogits(name);

  test(`${name}: the release layout is read as Grok-2 (config fields, sharded experts kept as shards)`, async () => {
    const { model } = await loadModel(dir(name));
    const c = model.config;
    assert.equal(c.family, 'grok-2');
    assert.equal(c.denseFfnSize, g.config.intermediate_size);
    assert.equal(c.ffnSize, g.config.moe_intermediate_size);
    assert.equal(c.routerSoftcap, g.config.router_logit_softcapping);
    assert.equal(c.finalLogitSoftcap, g.config.final_logit_softcapping);
    assert.equal(c.attnTemperatureLen, g.config.attn_temperature_len);
    assert.equal(c.gelu, 'erf');
    assert.equal(c.attnOutputMultiplier, 1 / Math.sqrt(g.config.head_dim as number));
    const L = model.weights.layers[0]!;
    for (const [m, axis] of [[L.ffn_gate_exps[0]!, 'out'], [L.ffn_up_exps[0]!, 'out'], [L.ffn_down_exps[0]!, 'in']] as const) {
      assert.equal(m.layout, 'split');
      if (m.layout === 'split') {
        assert.equal(m.axis, axis);
        assert.equal(m.parts.length, 8);
      }
    }
    assert.ok(L.ffn_gate && L.ffn_up && L.ffn_down, 'the dense MLP is loaded');
    assert.ok(model.weights.output, 'lm_head is kept untied');
  });

  for (const [backend, make] of backends) {
    test(`${name} (${backend}): logits within tolerance.logits_abs, every argmax, and the experts of every layer`, async () => {
      const kernels = make();
      const { model } = await loadModel(dir(name), { kernels });
      const A = model.config.nExpertsUsed, V = model.config.vocabSize;
      const experts: number[][][] = [];
      const weights: number[][][] = [];
      const logits = model.forward([{ tokens: g.tokens, cache: model.newCache() }], {
        onRoute: (layer, chosen, gates, rows) => {
          experts[layer] = Array.from({ length: rows }, (_, n) => Array.from(chosen.subarray(n * A, (n + 1) * A)));
          weights[layer] = Array.from({ length: rows }, (_, n) => Array.from(gates.subarray(n * A, (n + 1) * A)));
        },
      });
      const d = maxAbsDiff(logits, want);
      assert.ok(d <= g.tolerance.logits_abs, `max |Δ logits| ${d} > ${g.tolerance.logits_abs}`);
      assert.deepEqual(argmaxes(logits, V), g.top5.map((t) => t[0]));
      for (const L of g.layers) {
        assert.deepEqual(experts[L.layer], L.experts, `experts of layer ${L.layer}`);
        // Gates are the un-renormalised softmax probabilities of the capped logits.
        L.weights.forEach((ws, n) => ws.forEach((w, a) => assert.ok(Math.abs(weights[L.layer]![n]![a]! - w) < 1e-4, `gate ${a} of position ${n}, layer ${L.layer}`)));
      }
      model.close();
      closeKernels(kernels);
    });
  }

  test(`${name}: greedy continuation through the KV cache, decoding past attn_temperature_len`, async () => {
    const { model } = await loadModel(dir(name));
    const V = model.config.vocabSize;
    const cache = model.newCache();
    let logits = model.forward([{ tokens: g.greedy.prompt, cache }], { lastOnly: true });
    const out: number[] = [];
    for (let i = 0; i < g.greedy.continuation.length; i++) {
      const next = argmax(logits.subarray(0, V));
      out.push(next);
      logits = model.forward([{ tokens: [next], cache }]);
    }
    assert.deepEqual(out, g.greedy.continuation);
  });

  test(`${name}: prefill then one-token steps give the full pass's logits (the temperature uses each query's own position)`, async () => {
    const { model } = await loadModel(dir(name));
    const V = model.config.vocabSize;
    const cache = model.newCache();
    const split = 5; // well before attn_temperature_len: the decode steps cross it
    const rows = [model.forward([{ tokens: g.tokens.slice(0, split), cache }])];
    for (let t = split; t < g.tokens.length; t++) rows.push(model.forward([{ tokens: [g.tokens[t]!], cache }]));
    const all = new Float32Array(g.tokens.length * V);
    let at = 0;
    for (const r of rows) { all.set(r, at); at += r.length; }
    assert.ok(maxAbsDiff(all, want) <= g.tolerance.logits_abs);
  });

  test(`${name}: \`grok logits --model DIR --tokens … --out FILE\` (how the held-back fixtures are run)`, async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok2-'));
    try {
      const out = path.join(tmp, 'logits.f32');
      for (const kernels of ['exact', 'fast']) {
        const r = await grok('logits', '--model', dir(name), '--tokens', g.tokens.join(','), '--out', out, '--kernels', kernels);
        assert.equal(r.code, 0, r.err);
        const b = fs.readFileSync(out);
        const got = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
        assert.equal(got.length, want.length);
        if (kernels === 'exact') assert.ok(maxAbsDiff(got, want) <= g.tolerance.logits_abs, `exact: ${maxAbsDiff(got, want)}`);
        // Fast numerics (f16 KV cache, float32 attention) move these deliberately sensitive models further: argmax still holds.
        assert.deepEqual(argmaxes(got, g.config.vocab_size as number), g.top5.map((t) => t[0]), `${kernels}: argmax`);
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test(`${name}: experts streamed from the shards (8 reads per matrix into a slot) give the in-RAM logits byte for byte`, async () => {
    const kernels = createKernels({ kernels: 'native', threads: 2 });
    try {
      const { model: ram } = await loadModel(dir(name), { kernels });
      const want = ram.forward([{ tokens: g.tokens, cache: ram.newCache() }]);
      ram.close();
      let plan: MemoryPlan | undefined;
      const probe = await loadModel(dir(name), { kernels, streamExperts: true, probeDisk: false, onMemoryPlan: (p) => { plan = p; } });
      probe.model.close();
      const st = plan!.streaming!;
      const c = probe.model.config;
      for (const slots of [c.nExpertsUsed * c.nLayers, c.nExperts * c.nLayers]) {
        const { model } = await loadModel(dir(name), { kernels, streamExperts: true, ramBudget: st.residentBytes + slots * st.slotBytes });
        assert.equal(model.expertCache?.slots, slots);
        const got = model.forward([{ tokens: g.tokens, cache: model.newCache() }]);
        assert.ok(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), `${slots} slots: max |Δ| ${maxAbsDiff(got, want)}`);
        model.close();
      }
    } finally {
      closeKernels(kernels);
    }
  });

  test(`${name}: tokenizer.tok.json encodes the chat prompt to the fixture's tokens (no BOS)`, () => {
    const tok = loadTokenizerFile(path.join(dir(name), 'tokenizer.tok.json'));
    assert.deepEqual(tok.encode(g.prompt_text), g.tokens);
  });
}

for (const name of FIXTURES) {
  test(`${name}: the official openai client chats through the server in Grok-2's template and gets the golden greedy answer`, async () => {
    const g = golden(name);
    const kernels = createKernels({ kernels: 'native', threads: 2 });
    const grok = await loadGrok(dir(name), { kernels });
    const server = createServer(grok, { modelId: name });
    try {
      const url = await server.listen({ host: '127.0.0.1', port: 0 });
      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
      // The fixture's prompt_text is a conversation in the release's chat format: its turns as messages.
      const messages = [...g.prompt_text.matchAll(/(System|Human): (.*?)<\|separator\|>\n\n/gs)].map((m) => ({ role: m[1] === 'System' ? 'system' as const : 'user' as const, content: m[2]! }));
      assert.ok(messages.length >= 1);
      const r = await client.chat.completions.create({ model: name, messages, max_tokens: g.greedy.continuation.length, temperature: 0 });
      assert.equal(r.usage?.prompt_tokens, g.tokens.length, 'the template renders the fixture\'s prompt tokens');
      const tok = loadTokenizerFile(path.join(dir(name), 'tokenizer.tok.json'));
      let want = continuation(tok, g.tokens, g.greedy.continuation);
      let finish = 'length';
      for (const stop of ['<|separator|>', '\nHuman:']) {
        const i = want.indexOf(stop);
        if (i >= 0) { want = want.slice(0, i); finish = 'stop'; }
      }
      assert.equal(r.choices[0]!.message.content, want.trimStart());
      assert.equal(r.choices[0]!.finish_reason, finish);
    } finally {
      await server.close();
      grok.close();
      closeKernels(kernels);
    }
  });
}

test('g2-tiny-b: the server\'s routing introspection returns the golden experts and gates of every prompt position and layer', async () => {
  const name = 'g2-tiny-b';
  const g = golden(name);
  const kernels = createKernels({ kernels: 'native', threads: 2 });
  const grok = await loadGrok(dir(name), { kernels, prefillChunk: 7 });
  const server = createServer(grok, { modelId: name });
  try {
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    const req = { model: name, prompt: g.tokens, max_tokens: 3, temperature: 0, return_routed_experts: true };
    const r = await client.completions.create(req as OpenAI.Completions.CompletionCreateParamsNonStreaming);
    const choice = r.choices[0] as unknown as { prompt_routed_experts: number[][][]; prompt_routed_expert_weights: number[][][] };
    assert.equal(choice.prompt_routed_experts.length, g.tokens.length);
    for (const L of g.layers) {
      g.tokens.forEach((_, pos) => {
        assert.deepEqual(choice.prompt_routed_experts[pos]![L.layer], L.experts[pos], `position ${pos}, layer ${L.layer}`);
        L.weights[pos]!.forEach((w, a) => assert.ok(Math.abs(choice.prompt_routed_expert_weights[pos]![L.layer]![a]! - w) < 1e-4));
      });
    }
  } finally {
    await server.close();
    grok.close();
    closeKernels(kernels);
  }
});

/** A copy of g2-tiny-a's release files in a temporary folder, changed by `edit`. */
function brokenCopy(edit: (d: string) => void): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'grok2-bad-'));
  for (const f of fs.readdirSync(dir('g2-tiny-a'))) fs.copyFileSync(path.join(dir('g2-tiny-a'), f), path.join(d, f));
  edit(d);
  return d;
}

test('a release layout with a rank missing, a shard of another shape, or a tensor both whole and sharded is refused by name', async () => {
  const cases: [string, (d: string) => void, RegExp][] = [
    ['rank 3 missing', (d) => { for (const k of ['06', '07', '08']) fs.rmSync(path.join(d, `pytorch_model-000${k}-TP-003.safetensors`)); }, /rank 3 is missing/],
    ['one rank lacks the down shards', (d) => fs.rmSync(path.join(d, 'pytorch_model-00007-TP-005.safetensors')), /rank 5 lacks its shard of 'model\.layers\.\d+\.block_sparse_moe\.experts\.\d+\.w2\.weight'/],
    ['a rank file from another model', (d) => fs.copyFileSync(path.join(d, 'pytorch_model-00007-TP-002.safetensors'), path.join(d, 'pytorch_model-00006-TP-002.safetensors')), /rank 2's shard of|lacks its shard/],
    ['a whole tensor twice', (d) => fs.copyFileSync(path.join(d, 'pytorch_model-00013-TP-common.safetensors'), path.join(d, 'pytorch_model-00099-TP-common.safetensors')), /is also in/],
  ];
  for (const [what, edit, msg] of cases) {
    const d = brokenCopy(edit);
    try {
      await assert.rejects(loadModel(d), (e: Error) => msg.test(e.message), what);
      const r = await grok('logits', '--model', d, '--tokens', '1,2,3');
      assert.notEqual(r.code, 0, what);
      assert.match(r.err, msg, what);
      assert.doesNotMatch(r.err, /\n\s+at /, `${what}: no stack trace`);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  }
});

test('a shard whose shape does not divide the expert names the tensor, the rank and the expected shape', async () => {
  const { openSafetensors } = await import('../src/formats/safetensors.js');
  const { bindModel } = await import('../src/model/map.js');
  const { locateMatrix } = await import('../src/model/weights.js');
  const src = openSafetensors(dir('g2-tiny-a'));
  const b = bindModel(src);
  // Claim the experts are twice as wide as the shards hold.
  const c = b.config;
  assert.throws(() => locateMatrix(b, 'blk.0.ffn_down_exps.1', c.ffnSize * 2, c.dModel), /shape mismatch for blk\.0\.ffn_down_exps\.1 \(rank 0 of 8\).*expected \[64, 16\]/);
});

test('Grok-2 config.json: SGLang\'s defaults where the file is silent; YaRN RoPE and sliding windows refused by field', async () => {
  const { configFromJson } = await import('../src/model/config.js');
  const base = JSON.parse(fs.readFileSync(path.join(dir('g2-tiny-a'), 'config.json'), 'utf8')) as Record<string, unknown>;
  const { head_dim: _h, attn_logit_softcapping: _a, router_logit_softcapping: _r, attn_temperature_len: _t, final_logit_softcapping: _f, ...silent } = base;
  const c = configFromJson(silent, 'config.json');
  assert.equal(c.family, 'grok-2'); // residual_moe still says so
  assert.equal(c.headDim, 128);
  assert.equal(c.attnSoftcap, 30);
  assert.equal(c.routerSoftcap, 30);
  assert.equal(c.attnTemperatureLen, 0);
  assert.equal(c.finalLogitSoftcap, 0);
  assert.throws(() => configFromJson({ ...base, rope_type: 'yarn' }, 'config.json'), /config\.json.*rope_type "yarn" is not supported/);
  assert.throws(() => configFromJson({ ...base, sliding_window_size: 4096 }, 'config.json'), /sliding_window_size.*not supported/);
  assert.throws(() => configFromJson({ ...base, attn_temperature_len: 1 }, 'config.json'), /attn_temperature_len 1/);
});

test('grok synth --form release writes a Grok-2 release layout that reads back as written (config, shards, tokenizer)', async () => {
  const { synthGrok2Release, syntheticTokJson } = await import('../src/convert/synth-grok2.js');
  const { configFromJson } = await import('../src/model/config.js');
  const config = configFromJson(JSON.parse(fs.readFileSync(path.join(dir('g2-tiny-b'), 'config.json'), 'utf8')), 'g2-tiny-b');
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'grok2-synth-'));
  try {
    synthGrok2Release({ config, dir: d, seed: 7 });
    assert.equal(fs.readdirSync(d).filter((f) => f.endsWith('.safetensors')).length, 39);
    const { model } = await loadModel(d);
    assert.deepEqual(model.config, config);
    const down = model.weights.layers[1]!.ffn_down_exps[2]!;
    assert.ok(down.layout === 'split' && down.axis === 'in' && down.parts.length === 8);
    // Each rank's shard has values of its own.
    assert.ok(down.layout === 'split' && !Buffer.from(down.parts[0]!.data).equals(Buffer.from(down.parts[1]!.data)));
    const logits = model.forward([{ tokens: [3, 300, 17], cache: model.newCache() }]);
    assert.ok(logits.every((x) => Number.isFinite(x) && Math.abs(x) <= config.finalLogitSoftcap));
    const tok = loadTokenizerFile(path.join(d, 'tokenizer.tok.json'));
    assert.equal(tok.vocabSize, config.vocabSize);
    const text = 'Human: the heat is on<|separator|>\n\nAssistant:';
    assert.equal(tok.decode(tok.encode(text)), text);
    assert.ok(tok.encode(text).length < Buffer.byteLength(text), 'merges shorten text');
    assert.equal(syntheticTokJson(4096, 7), syntheticTokJson(4096, 7));
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});
