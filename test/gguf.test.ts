/**
 * GGUF reader and `grok` binder on the fixtures: container facts, tensor names/shapes/types from the
 * config, metadata against golden.json, bytes against the safetensors port, Q8_0 against F32, split files
 * and the older tensor-name variants (built by hand in test/gguf-builder.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FormatError } from '../src/base/errors.js';
import { openGguf, readGgufFile } from '../src/formats/gguf.js';
import { openSafetensors } from '../src/formats/safetensors.js';
import { type TensorRef } from '../src/formats/tensor-ref.js';
import type { Binding } from '../src/model/binding.js';
import { loadModel } from '../src/model/loader.js';
import { bindGguf, tokenizerPiecesFromGguf } from '../src/model/map-gguf.js';
import { bindHf } from '../src/model/map-hf.js';
import { blockFormat } from '../src/quant/index.js';
import { FIXTURES, fixtureDir, golden, goldenLogits, maxAbsDiff } from './fixtures.js';
import { buildGguf, grokKvsFromGolden, readBytes, u32v, type GTensor, type GVal } from './gguf-builder.js';

const fx = (name: string, file: string) => path.join(fixtureDir(name), file);

/** Expected tensor list (name → row-major shape) of a fixture, from its golden config and llama.cpp LLM_ARCH_GROK. */
function expectedTensors(c: Record<string, number>): Map<string, number[]> {
  const V = c.vocab_size!, D = c.emb_size!, H = c.num_q_heads!, G = c.num_kv_heads!, K = c.key_size!, E = c.num_experts!, F = c.ffn_size!;
  const m = new Map<string, number[]>([['token_embd.weight', [V, D]], ['output_norm.weight', [D]]]);
  for (let l = 0; l < c.num_layers!; l++) {
    const p = `blk.${l}.`;
    m.set(`${p}attn_norm.weight`, [D]);
    m.set(`${p}attn_q.weight`, [H * K, D]);
    m.set(`${p}attn_k.weight`, [G * K, D]);
    m.set(`${p}attn_v.weight`, [G * K, D]);
    m.set(`${p}attn_output.weight`, [D, H * K]);
    m.set(`${p}attn_output_norm.weight`, [D]);
    m.set(`${p}ffn_norm.weight`, [D]);
    m.set(`${p}ffn_gate_inp.weight`, [E, D]);
    m.set(`${p}ffn_gate_exps.weight`, [E, F, D]);
    m.set(`${p}ffn_up_exps.weight`, [E, F, D]);
    m.set(`${p}ffn_down_exps.weight`, [E, D, F]);
    m.set(`${p}layer_output_norm.weight`, [D]);
  }
  return m;
}

const ggufFiles: [string, string][] = [['tiny-a', 'model.gguf'], ['tiny-b', 'model.gguf'], ['tiny-b', 'model-q8_0.gguf']];

// Header facts cross-checked with an independent Python struct parse of the fixtures:
// tensor infos end at byte 13246 (tiny-a) / 23562 (tiny-b q8_0), so the data sections start at the next multiple of 32.
test('fixture container facts: version, counts, alignment, data section start', () => {
  const a = readGgufFile(fx('tiny-a', 'model.gguf'));
  assert.equal(a.version, 3);
  assert.equal(a.alignment, 32);
  assert.equal(a.tensors.length, 26);
  assert.equal(a.metadata.size, 25);
  assert.equal(a.dataOffset, 13248);
  const q = readGgufFile(fx('tiny-b', 'model-q8_0.gguf'));
  assert.equal(q.tensors.length, 38);
  assert.equal(q.metadata.size, 26);
  assert.equal(q.dataOffset, 23584);
  // The first tensor sits at relative offset 0 and the last one ends where the file ends.
  for (const f of [a, q]) {
    assert.equal(f.tensors[0]!.ref.offset, f.dataOffset);
    const end = Math.max(...f.tensors.map((t) => t.ref.offset + t.ref.length));
    assert.equal(end, fs.statSync(f.file).size);
  }
});

for (const [name, file] of ggufFiles) {
  const c = golden(name).config;
  const quant = file.includes('q8_0');

  test(`${name}/${file}: tensor names, shapes, types and byte lengths follow the config`, () => {
    const src = openGguf(fx(name, file));
    const want = expectedTensors(c);
    assert.deepEqual([...src.tensors.keys()].sort(), [...want.keys()].sort());
    for (const [n, shape] of want) {
      const t = src.tensors.get(n)!;
      assert.deepEqual(t.shape, shape, n);
      // Q8_0 file: matrices and the embedding quantised, norms and router f32 (fixture README).
      const isMatrix = /attn_[qkv]\.|attn_output\.|_exps\.|token_embd/.test(n);
      const type = quant && isMatrix ? 'q8_0' : 'f32';
      assert.equal(t.type, type, n);
      const elements = shape.reduce((a, b) => a * b, 1);
      assert.equal(t.length, type === 'f32' ? elements * 4 : (elements / 32) * 34, n);
    }
  });

  test(`${name}/${file}: metadata and bound config agree with golden.json`, () => {
    const src = openGguf(fx(name, file));
    const m = src.metadata;
    assert.equal(m.get('general.architecture'), 'grok');
    assert.equal(m.get('grok.embedding_length'), c.emb_size);
    assert.equal(m.get('grok.block_count'), c.num_layers);
    assert.equal(m.get('grok.attention.head_count'), c.num_q_heads);
    assert.equal(m.get('grok.expert_count'), c.num_experts);
    assert.equal(m.get('grok.embedding_scale'), Math.fround(c.embedding_multiplier_scale!));
    assert.ok(m.get('tokenizer.ggml.scores') instanceof Float32Array);
    assert.ok(m.get('tokenizer.ggml.token_type') instanceof Int32Array);
    const cfg = bindGguf(src).config;
    const same = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-7 * Math.abs(b), `${what}: ${a} vs ${b}`);
    assert.equal(cfg.vocabSize, c.vocab_size);
    assert.equal(cfg.dModel, c.emb_size);
    assert.equal(cfg.nLayers, c.num_layers);
    assert.equal(cfg.nHeads, c.num_q_heads);
    assert.equal(cfg.nKVHeads, c.num_kv_heads);
    assert.equal(cfg.headDim, c.key_size);
    assert.equal(cfg.ffnSize, c.ffn_size);
    assert.equal(cfg.nExperts, c.num_experts);
    assert.equal(cfg.nExpertsUsed, c.num_selected_experts);
    assert.equal(cfg.contextLength, c.sequence_len);
    same(cfg.embeddingMultiplier, c.embedding_multiplier_scale!, 'embedding multiplier');
    same(cfg.outputMultiplier, c.output_multiplier_scale!, 'output multiplier');
    same(cfg.attnOutputMultiplier, c.attn_output_multiplier!, 'attention output multiplier');
    same(cfg.rmsNormEps, c.rms_norm_eps!, 'rms eps');
    assert.equal(cfg.ropeBase, c.rope_base);
    assert.equal(cfg.attnSoftcap, 30);
  });

  test(`${name}/${file}: tokenizer tables from tokenizer.ggml.*`, () => {
    const tk = tokenizerPiecesFromGguf(openGguf(fx(name, file)));
    assert.equal(tk.tokens.length, c.vocab_size);
    assert.deepEqual([0, 1, 2].map((i) => [tk.tokens[i], tk.types[i]]), [['<unk>', 2], ['<s>', 3], ['</s>', 3]]);
    // Ids 3 … 258 are the byte pieces <0x00> … <0xFF>, type 6 (BYTE).
    for (let b = 0; b < 256; b++) {
      assert.deepEqual([tk.tokens[3 + b], tk.types[3 + b]], [`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 6]);
    }
    assert.equal(tk.bosId, 1);
    assert.equal(tk.eosId, 2);
    assert.equal(tk.unkId, 0); // no unknown_token_id key: the first UNKNOWN-type piece
    assert.equal(tk.padId, null);
    assert.equal(tk.addSpacePrefix, true);
    assert.equal(tk.removeExtraWhitespaces, false);
  });
}

/** Bytes of one binding (the `index`-th matrix of a stack, or the whole tensor). */
function bindingBytes(b: Binding): Buffer {
  const all = readBytes(b.ref);
  if (b.kind === 'vector' || b.index === undefined) return all;
  const per = b.ref.length / b.ref.shape[0]!;
  return all.subarray(b.index * per, (b.index + 1) * per);
}

for (const name of FIXTURES) {
  test(`${name}: every F32 GGUF tensor is byte-identical to the safetensors port's (same [out, in] layout)`, () => {
    const g = bindGguf(openGguf(fx(name, 'model.gguf')));
    const h = bindHf(openSafetensors(fx(name, 'model.safetensors')), fx(name, 'golden.json'));
    assert.deepEqual([...g.tensors.keys()].sort(), [...h.tensors.keys()].sort());
    for (const [canonical, gb] of g.tensors) {
      const hb = h.tensors.get(canonical)!;
      assert.equal(gb.kind, hb.kind, canonical);
      assert.ok(bindingBytes(gb).equals(bindingBytes(hb)), `${canonical}: ${gb.ref.name} ≠ ${hb.ref.name}`);
    }
  });
}

test('tiny-b: the Q8_0 GGUF holds the F32 weights to within one Q8_0 step (max|block|/127) per value', () => {
  const f = openGguf(fx('tiny-b', 'model.gguf'));
  const q = openGguf(fx('tiny-b', 'model-q8_0.gguf'));
  const q8 = blockFormat('q8_0');
  let checked = 0;
  for (const [n, qt] of q.tensors) {
    const ft = f.tensors.get(n)!;
    const fb = readBytes(ft);
    const qb = readBytes(qt);
    const count = ft.length / 4;
    const ref = new Float32Array(fb.buffer, fb.byteOffset, count);
    if (qt.type === 'f32') {
      assert.ok(fb.equals(qb), `${n}: f32 tensor differs`);
      continue;
    }
    const deq = new Float32Array(count);
    q8.dequantize(qb, 0, count, deq, 0);
    for (let b = 0; b < count / 32; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(ref[32 * b + i]!));
      // The fixture rounded the real-valued weights itself (README: "their own rounding"), so the f32 copy
      // and the Q8_0 copy each carry up to half a step of rounding: allow one step (d ≈ max|block|/127).
      const step = amax / 127;
      for (let i = 0; i < 32; i++) {
        assert.ok(Math.abs(deq[32 * b + i]! - ref[32 * b + i]!) <= step, `${n} block ${b} value ${i}`);
      }
      checked++;
    }
  }
  assert.ok(checked > 1000);
});

// ---- hand-built variants of tiny-a: split files, split-expert names, post_ffw_norm ---------------------

/** tiny-a's tensors as builder records (bytes from the fixture GGUF), with the grok keys from golden.json. */
function tinyASpec(): { kvs: [string, GVal][]; tensors: GTensor[] } {
  const src = openGguf(fx('tiny-a', 'model.gguf'));
  const tensors = src.parts[0]!.tensors.map((t) => ({ name: t.name, dims: [...t.dims], type: t.ggmlType, data: readBytes(t.ref) }));
  return { kvs: grokKvsFromGolden(golden('tiny-a').config), tensors };
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'grok-gguf-'));
}

async function assertReproducesTinyA(p: string): Promise<void> {
  const g = golden('tiny-a');
  const { model } = await loadModel(p);
  const logits = model.forward([{ tokens: g.tokens, cache: model.newCache(g.tokens.length) }]);
  const d = maxAbsDiff(logits, goldenLogits('tiny-a'));
  assert.ok(d < 1e-4, `max |Δlogit| ${d}`);
}

test('split GGUF (3 parts): opened from any part, tensors merged, reproduces tiny-a logits', async () => {
  const dir = tmpDir();
  try {
    const spec = tinyASpec();
    const n = spec.tensors.length;
    const cuts = [0, 9, 18, n];
    const split = (k: number): [string, GVal][] => [
      ['split.no', { t: 2, v: k }], ['split.count', { t: 2, v: 3 }], ['split.tensors.count', { t: 5, v: n }],
    ];
    const files: string[] = [];
    const built = [0, 1, 2].map((k) => {
      const b = buildGguf({ kvs: [...(k === 0 ? spec.kvs : []), ...split(k)], tensors: spec.tensors.slice(cuts[k], cuts[k + 1]) });
      const f = path.join(dir, `tiny-0000${k + 1}-of-00003.gguf`);
      fs.writeFileSync(f, b.bytes);
      files.push(f);
      return b;
    });
    for (const f of files) {
      const src = openGguf(f);
      assert.equal(src.parts.length, 3);
      assert.equal(src.tensors.size, n);
      assert.equal(src.metadata.get('grok.embedding_length'), 64);
      // Each tensor's absolute offset = its part's data start + its position there (as the builder laid it out).
      spec.tensors.forEach((t, i) => {
        const k = cuts.findIndex((c, j) => i >= c && i < cuts[j + 1]!);
        const ref = src.tensors.get(t.name)!;
        assert.equal(ref.file, files[k]);
        assert.equal(ref.offset, built[k]!.at.get('data')! + readU64(built[k]!.bytes, built[k]!.at.get(`t:${t.name}:offset`)!));
        assert.deepEqual(ref.shape, [...t.dims].reverse());
      });
    }
    await assertReproducesTinyA(files[1]!);

    // A missing part, an inconsistent count and a wrong total are reported.
    fs.renameSync(files[2]!, `${files[2]}.x`);
    assert.throws(() => openGguf(files[0]!), (e: Error) => e instanceof FormatError && /part tiny-00003-of-00003\.gguf is missing/.test(e.message));
    fs.renameSync(`${files[2]}.x`, files[2]!);
    const bad = buildGguf({ kvs: [...split(2).slice(0, 2), ['split.tensors.count', { t: 5, v: n + 1 }]], tensors: spec.tensors.slice(cuts[2]) });
    fs.writeFileSync(files[2]!, bad.bytes);
    assert.throws(() => openGguf(files[0]!), /split\.tensors\.count is 27, but .* says 26/);
    const wrongNo = buildGguf({ kvs: [['split.no', { t: 2, v: 0 }], ['split.count', { t: 2, v: 3 }]], tensors: spec.tensors.slice(cuts[2]) });
    fs.writeFileSync(files[2]!, wrongNo.bytes);
    assert.throws(() => openGguf(files[0]!), /split\.no is 0, but the file name says this is part 3/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function readU64(b: Buffer, at: number): number {
  return Number(b.readBigUInt64LE(at));
}

test('a file that says it is split but is not named like a part is refused', () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'model.gguf');
    fs.writeFileSync(f, buildGguf({ kvs: [['split.count', { t: 2, v: 2 }]], tensors: [] }).bytes);
    assert.throws(() => openGguf(f), /part of a 2-part split model/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('older names: per-expert blk.N.ffn_*.E.weight and post_ffw_norm bind and reproduce tiny-a logits', async () => {
  const dir = tmpDir();
  try {
    const spec = tinyASpec();
    const E = golden('tiny-a').config.num_experts!;
    const tensors: GTensor[] = [];
    for (const t of spec.tensors) {
      const m = /^(blk\.\d+\.)(ffn_(?:gate|up|down))_exps\.weight$/.exec(t.name);
      if (m) {
        const per = t.data.length / E;
        for (let e = 0; e < E; e++) {
          tensors.push({ name: `${m[1]}${m[2]}.${e}.weight`, dims: t.dims.slice(0, 2), type: t.type, data: t.data.subarray(e * per, (e + 1) * per) });
        }
      } else {
        tensors.push({ ...t, name: t.name.replace('layer_output_norm', 'post_ffw_norm') });
      }
    }
    const f = path.join(dir, 'old.gguf');
    fs.writeFileSync(f, buildGguf({ kvs: spec.kvs, tensors }).bytes);
    const b = bindGguf(openGguf(f));
    const e1 = b.tensors.get('blk.1.ffn_down_exps.3')!;
    assert.equal(e1.ref.name, 'blk.1.ffn_down.3.weight');
    assert.equal(b.tensors.get('blk.0.layer_output_norm')!.ref.name, 'blk.0.post_ffw_norm.weight');
    await assertReproducesTinyA(f);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an untied output.weight is bound as `output` and used (2 × token_embd: every logit doubles)', async () => {
  const dir = tmpDir();
  try {
    const spec = tinyASpec();
    const embd = spec.tensors.find((t) => t.name === 'token_embd.weight')!;
    const e = new Float32Array(embd.data.buffer.slice(embd.data.byteOffset, embd.data.byteOffset + embd.data.byteLength));
    const doubled = new Uint8Array(e.map((v) => 2 * v).buffer); // exact in binary floating point
    const f = path.join(dir, 'untied.gguf');
    fs.writeFileSync(f, buildGguf({ kvs: spec.kvs, tensors: [...spec.tensors, { ...embd, name: 'output.weight', data: doubled }] }).bytes);
    const b = bindGguf(openGguf(f));
    assert.equal(b.tensors.get('output')!.ref.name, 'output.weight');
    assert.equal(bindGguf(openGguf(fx('tiny-a', 'model.gguf'))).tensors.has('output'), false);
    const g = golden('tiny-a');
    const { model } = await loadModel(f);
    const logits = model.forward([{ tokens: g.tokens, cache: model.newCache(g.tokens.length) }]);
    const want = goldenLogits('tiny-a').map((v) => 2 * v);
    assert.ok(maxAbsDiff(logits, want) < 2e-4, `max |Δlogit| ${maxAbsDiff(logits, want)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('binder errors name the missing tensor and the wrong expert stack', () => {
  const dir = tmpDir();
  try {
    const spec = tinyASpec();
    const f = path.join(dir, 'm.gguf');
    fs.writeFileSync(f, buildGguf({ kvs: spec.kvs, tensors: spec.tensors.filter((t) => t.name !== 'blk.1.attn_k.weight') }).bytes);
    assert.throws(() => bindGguf(openGguf(f)), /missing tensor 'blk\.1\.attn_k\.weight'/);
    fs.writeFileSync(f, buildGguf({ kvs: spec.kvs, tensors: spec.tensors.filter((t) => t.name !== 'blk.0.ffn_up_exps.weight') }).bytes);
    assert.throws(() => bindGguf(openGguf(f)), /missing tensor 'blk\.0\.ffn_up_exps\.weight' \(merged experts\) or 'blk\.0\.ffn_up\.0\.weight'/);
    const kvs3 = spec.kvs.map(([k, v]): [string, GVal] => (k === 'grok.expert_count' ? [k, u32v(3)] : [k, v]));
    fs.writeFileSync(f, buildGguf({ kvs: kvs3, tensors: spec.tensors }).bytes);
    assert.throws(() => bindGguf(openGguf(f)), /blk\.0\.ffn_gate_exps\.weight: shape \[4, 344, 64\] is not a stack of 3 experts/);
    const kvsNoHeads = spec.kvs.filter(([k]) => k !== 'grok.attention.head_count');
    fs.writeFileSync(f, buildGguf({ kvs: kvsNoHeads, tensors: [] }).bytes);
    assert.throws(() => bindGguf(openGguf(f)), /'grok\.attention\.head_count' is missing/);
    fs.writeFileSync(f, buildGguf({ kvs: [['general.architecture', { t: 8, v: 'llama' }]], tensors: [] }).bytes);
    assert.throws(() => bindGguf(openGguf(f)), /general\.architecture is "llama", expected "grok"/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('metadata value types: every scalar type, 64-bit integers, nested arrays', () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'kv.gguf');
    const kvs: [string, GVal][] = [
      ['u8', { t: 0, v: 200 }], ['i8', { t: 1, v: -100 }], ['u16', { t: 2, v: 60000 }], ['i16', { t: 3, v: -30000 }],
      ['u32', { t: 4, v: 4000000000 }], ['i32', { t: 5, v: -2000000000 }], ['f32', { t: 6, v: 0.1 }], ['bool', { t: 7, v: true }],
      ['str', { t: 8, v: 'héllo ▁' }], ['u64', { t: 10, v: 2n ** 60n }], ['u64small', { t: 10, v: 12345 }], ['i64', { t: 11, v: -(2n ** 62n) }],
      ['f64', { t: 12, v: 0.1 }],
      ['arr_u16', { t: 9, et: 2, items: [{ t: 2, v: 1 }, { t: 2, v: 65535 }] }],
      ['arr_str', { t: 9, et: 8, items: [{ t: 8, v: 'a' }, { t: 8, v: '' }] }],
      ['arr_bool', { t: 9, et: 7, items: [{ t: 7, v: false }, { t: 7, v: true }] }],
      ['arr_i64', { t: 9, et: 11, items: [{ t: 11, v: -1 }] }],
      ['nested', { t: 9, et: 9, items: [{ t: 9, et: 5, items: [{ t: 5, v: -7 }] }, { t: 9, et: 8, items: [{ t: 8, v: 'x' }] }] }],
    ];
    fs.writeFileSync(f, buildGguf({ kvs, tensors: [] }).bytes);
    const m = openGguf(f).metadata;
    assert.equal(m.get('u8'), 200);
    assert.equal(m.get('i8'), -100);
    assert.equal(m.get('u16'), 60000);
    assert.equal(m.get('i16'), -30000);
    assert.equal(m.get('u32'), 4000000000);
    assert.equal(m.get('i32'), -2000000000);
    assert.equal(m.get('f32'), Math.fround(0.1));
    assert.equal(m.get('bool'), true);
    assert.equal(m.get('str'), 'héllo ▁');
    assert.equal(m.get('u64'), 2n ** 60n); // beyond 2^53: kept exact as a bigint
    assert.equal(m.get('u64small'), 12345);
    assert.equal(m.get('i64'), -(2n ** 62n));
    assert.equal(m.get('f64'), 0.1);
    assert.deepEqual(m.get('arr_u16'), new Uint16Array([1, 65535]));
    assert.deepEqual(m.get('arr_str'), ['a', '']);
    assert.deepEqual(m.get('arr_bool'), [false, true]);
    assert.deepEqual(m.get('arr_i64'), new BigInt64Array([-1n]));
    assert.deepEqual(m.get('nested'), [new Int32Array([-7]), ['x']]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('general.alignment moves the data section; version 2 reads like version 3', () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'a.gguf');
    const data = new Uint8Array(8).fill(7);
    const b = buildGguf({ version: 2, alignment: 256, kvs: [['general.alignment', u32v(256)]], tensors: [{ name: 'x', dims: [2], type: 0, data }, { name: 'y', dims: [2], type: 0, data }] });
    fs.writeFileSync(f, b.bytes);
    const g = readGgufFile(f);
    assert.equal(g.version, 2);
    assert.equal(g.alignment, 256);
    assert.equal(g.dataOffset, 256);
    const refs: TensorRef[] = g.tensors.map((t) => t.ref);
    assert.deepEqual(refs.map((r) => [r.offset, r.length]), [[256, 8], [512, 8]]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
