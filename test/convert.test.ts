/**
 * `grok convert` and `grok synth`, checked against files other software wrote: the fixtures' model.gguf
 * (F32, written by the gguf Python package from the same weights) and model-q8_0.gguf, the golden logits,
 * and the GGUF reader.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { convertModel } from '../src/convert/convert.js';
import { synthCheckpoint, synthModel, TINY } from '../src/convert/synth.js';
import { writeCkptArray, writeCkptQuantized } from '../src/formats/ckpt-writer.js';
import { readCheckpointTensor } from '../src/formats/pickle.js';
import { grok } from './cli-helpers.js';
import { readGgufFile, type GgufFile } from '../src/formats/gguf.js';
import { loadModel } from '../src/model/loader.js';
import { f16ToF32 } from '../src/quant/half.js';
import { blockFormat, type BlockType } from '../src/quant/index.js';
import { writeModelProto } from '../src/tokenizer/protobuf.js';
import { fixtureDir, golden, goldenLogits, maxAbsDiff } from './fixtures.js';
import { readBytes } from './gguf-builder.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-convert-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function tensor(f: GgufFile, name: string) {
  const t = f.tensors.find((x) => x.name === name);
  if (!(t)) assert.fail(`${f.file}: no tensor ${name}`);
  return t;
}

function floatsOf(f: GgufFile, name: string): Float32Array {
  const t = tensor(f, name);
  const n = t.ref.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  blockFormat(t.ref.type as BlockType).dequantize(new Uint8Array(readBytes(t.ref)), 0, n, out, 0);
  return out;
}

for (const fx of ['tiny-a', 'tiny-b']) {
  test(`${fx}: ckpt-0 → F32 GGUF is tensor-for-tensor byte-identical to the fixture's model.gguf`, async () => {
    const out = path.join(tmp, `${fx}-f32.gguf`);
    const r = await convertModel({ source: path.join(fixtureDir(fx), 'ckpt-0'), out, type: 'f32' });
    assert.equal(r.vocabulary, 'synthetic');
    const ours = readGgufFile(out);
    const theirs = readGgufFile(path.join(fixtureDir(fx), 'model.gguf'));
    assert.deepEqual(ours.tensors.map((t) => [t.name, t.dims, t.ggmlType]), theirs.tensors.map((t) => [t.name, t.dims, t.ggmlType]));
    for (const t of theirs.tensors) {
      if (!(readBytes(tensor(ours, t.name).ref).equals(readBytes(t.ref)))) assert.fail(`${t.name}: bytes differ`);
    }
    // Every grok key the fixture's writer set has the same value here (f32 keys are written from the same doubles).
    for (const [k, v] of theirs.metadata) {
      if (k.startsWith('grok.')) assert.deepEqual(ours.metadata.get(k), v, k);
    }
    assert.equal(ours.metadata.get('general.architecture'), 'grok');
    assert.match(String(ours.metadata.get('general.description')), /synthetic stand-in/);
  });
}

test('tiny-b: safetensors → F32 GGUF equals model.gguf too (HF family B names, [out, in] rows, split experts merged)', async () => {
  const dir = fixtureDir('tiny-b');
  const out = path.join(tmp, 'b-st.gguf');
  await convertModel({ source: path.join(dir, 'model.safetensors'), config: path.join(dir, 'golden.json'), out, type: 'f32' });
  const ours = readGgufFile(out);
  const theirs = readGgufFile(path.join(dir, 'model.gguf'));
  for (const t of theirs.tensors) assert.ok(readBytes(tensor(ours, t.name).ref).equals(readBytes(t.ref)), `${t.name}: bytes differ`);
});

test('tiny-b: the converted F32 GGUF gives the golden logits (our forward pass, 1e-4)', async () => {
  const out = path.join(tmp, 'tiny-b-f32.gguf');
  if (!fs.existsSync(out)) await convertModel({ source: path.join(fixtureDir('tiny-b'), 'ckpt-0'), out, type: 'f32' });
  const g = golden('tiny-b');
  const { model } = await loadModel(out);
  const logits = model.forward([{ tokens: g.tokens, cache: model.newCache(g.tokens.length) }]);
  assert.ok(maxAbsDiff(logits, goldenLogits('tiny-b')) < 1e-4);
});

test('tiny-b: ckpt-0 int8 → Q8_0 keeps the checkpoint values exactly where a 32-block has one scale', async () => {
  const dir = fixtureDir('tiny-b');
  const out = path.join(tmp, 'b-q8.gguf');
  const r = await convertModel({ source: path.join(dir, 'ckpt-0'), out, type: 'q8_0', measure: true });
  const ours = readGgufFile(out);
  const f32 = readGgufFile(path.join(dir, 'model.gguf'));
  for (const t of ours.tensors) {
    const want = floatsOf(f32, t.name);
    const got = floatsOf(ours, t.name);
    if (t.ref.type === 'f32') {
      assert.deepEqual(got, want, t.name); // norms and router stay F32, unchanged
      continue;
    }
    assert.equal(t.ref.type, 'q8_0', t.name);
    // q, k, v and experts: groups of 96 or 512 rows per scale → one scale per 32-block → exact.
    // attn_output has 8 groups of 12 inputs (a block spans 3 scales) and token_embd was F32: Q8_0 rounding.
    if (/attn_(q|k|v)|_exps/.test(t.name)) {
      assert.deepEqual(got, want, `${t.name}: not exact`);
    } else {
      const raw = new Uint8Array(readBytes(t.ref));
      for (let i = 0; i < got.length; i++) {
        const d = f16ToF32(raw[34 * (i >> 5)]! | (raw[34 * (i >> 5) + 1]! << 8));
        if (!(Math.abs(got[i]! - want[i]!) <= d / 2 + 127.5 * Math.max(d * 2 ** -11, 2 ** -25))) assert.fail(`${t.name}[${i}]`);
      }
    }
  }
  // 3 layers × (q 288 + k 96 + v 96 + experts 36864) exact blocks; attn_output's 288 per layer are not
  assert.deepEqual(r.q8Exact, { kept: 3 * (288 + 96 + 96 + 36864), total: 3 * (288 + 96 + 96 + 36864 + 288) });
});

test('tiny-b: GGUF Q8_0 → Q8_0 copies the blocks and the source vocabulary unchanged', async () => {
  const src = path.join(fixtureDir('tiny-b'), 'model-q8_0.gguf');
  const out = path.join(tmp, 'b-q8-copy.gguf');
  const r = await convertModel({ source: src, out, type: 'q8_0' });
  assert.equal(r.vocabulary, 'source');
  const ours = readGgufFile(out);
  const theirs = readGgufFile(src);
  for (const t of theirs.tensors) assert.ok(readBytes(tensor(ours, t.name).ref).equals(readBytes(t.ref)), t.name);
  for (const k of ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type', 'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id']) {
    assert.deepEqual(ours.metadata.get(k), theirs.metadata.get(k), k);
  }
});

test('tiny-b: K-quant rows that are not a multiple of 256 take llama.cpp\'s fallback types', async () => {
  const out = path.join(tmp, 'b-q4k.gguf');
  await convertModel({ source: path.join(fixtureDir('tiny-b'), 'ckpt-0'), out, type: 'q4_k', embdType: 'q8_0' });
  const f = readGgufFile(out);
  const type = (n: string) => tensor(f, n).ref.type;
  assert.equal(type('token_embd.weight'), 'q8_0'); // --embd-type
  assert.equal(type('blk.0.attn_q.weight'), 'q5_0'); // rows of D = 96 inputs: Q4_K → Q5_0
  assert.equal(type('blk.0.ffn_gate_exps.weight'), 'q5_0');
  assert.equal(type('blk.0.ffn_down_exps.weight'), 'q4_k'); // rows of F = 512 inputs
  assert.equal(type('blk.0.ffn_gate_inp.weight'), 'f32');
  assert.equal(type('blk.0.attn_norm.weight'), 'f32');
  assert.equal(f.metadata.get('general.file_type'), 14);
  assert.equal(f.metadata.get('general.quantization_version'), 2);
});

test('--tokenizer embeds a SentencePiece model\'s pieces, scores, types and ids', async () => {
  const dir = fixtureDir('tiny-b');
  const src = readGgufFile(path.join(dir, 'model.gguf'));
  const tokens = src.metadata.get('tokenizer.ggml.tokens') as string[];
  const types = src.metadata.get('tokenizer.ggml.token_type') as Int32Array;
  // one USER_DEFINED piece: stored as NORMAL (llama.cpp would match it before space escaping)
  const pieces = tokens.map((piece, i) => ({ piece, score: -i / 4, type: i === 900 ? 4 : types[i]! }));
  const tok = path.join(tmp, 'tok.model');
  fs.writeFileSync(tok, writeModelProto({ pieces, trainerSpec: { modelType: 2, unkId: 0, bosId: 1, eosId: 2, padId: -1 }, normalizerSpec: { addDummyPrefix: true, removeExtraWhitespaces: false } }));
  const out = path.join(tmp, 'b-tok.gguf');
  const r = await convertModel({ source: path.join(dir, 'ckpt-0'), out, type: 'f16', tokenizer: tok });
  assert.equal(r.vocabulary, 'tokenizer');
  const f = readGgufFile(out);
  assert.deepEqual(f.metadata.get('tokenizer.ggml.tokens'), tokens);
  assert.deepEqual([...(f.metadata.get('tokenizer.ggml.scores') as Float32Array)], pieces.map((p) => p.score));
  assert.deepEqual(f.metadata.get('tokenizer.ggml.token_type'), types);
  assert.equal(types[900], 1);
  assert.equal(f.metadata.get('tokenizer.ggml.model'), 'llama');
  assert.equal(f.metadata.get('tokenizer.ggml.unknown_token_id'), 0);
  assert.equal(f.metadata.get('tokenizer.ggml.bos_token_id'), 1);
  assert.equal(f.metadata.get('tokenizer.ggml.eos_token_id'), 2);
  assert.equal(f.metadata.has('tokenizer.ggml.padding_token_id'), false);
  assert.equal(f.metadata.get('tokenizer.ggml.add_space_prefix'), true);
  assert.equal(f.metadata.get('tokenizer.ggml.remove_extra_whitespaces'), false);

  fs.writeFileSync(tok, writeModelProto({ pieces: pieces.slice(0, 999) }));
  await assert.rejects(convertModel({ source: path.join(dir, 'ckpt-0'), out, type: 'f16', tokenizer: tok }), /tokenizer has 999 pieces, but the model's vocabulary is 1000/);
});

test('synthetic vocabulary: specials at the config ids, 256 byte pieces, ▁, then <tok_N>', async () => {
  const f = readGgufFile(path.join(tmp, 'tiny-b-f32.gguf'));
  const tokens = f.metadata.get('tokenizer.ggml.tokens') as string[];
  const types = f.metadata.get('tokenizer.ggml.token_type') as Int32Array;
  assert.equal(tokens.length, 1000);
  // tiny-b: pad 0, bos 1, eos 2 → <pad> <s> </s>, <unk> at 3, <0x00> at 4 … <0xFF> at 259, ▁ at 260
  assert.deepEqual(tokens.slice(0, 5), ['<pad>', '<s>', '</s>', '<unk>', '<0x00>']);
  assert.deepEqual([...types.slice(0, 5)], [3, 3, 3, 2, 6]);
  assert.equal(tokens[259], '<0xFF>');
  assert.equal(tokens[260], '\u2581');
  assert.equal(tokens[261], '<tok_261>');
  assert.equal(types[999], 1);
  assert.equal(f.metadata.get('tokenizer.ggml.unknown_token_id'), 3);
});

test('grok convert: usage errors (exit 2, one line) and a successful run', async () => {
  const src = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  const out = path.join(tmp, 'cli.gguf');
  const usage = async (re: RegExp, ...args: string[]) => {
    const r = await grok('convert', ...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, re);
    assert.match(r.err, /^grok: /);
  };
  await usage(/--to must be one of gguf, got 'safetensors'/, src, '--to', 'safetensors', '--type', 'q8_0', '--out', out);
  await usage(/--type must be a block type \(f32, .*q8_0.*\) or a mixture \(.*Q4_K_M.*\), got 'q7'/, src, '--to', 'gguf', '--type', 'q7', '--out', out);
  await usage(/missing required argument 'model'/, '--to', 'gguf', '--type', 'q8_0', '--out', out);
  await usage(/required option '-o, --out <file>' not specified/, src, '--to', 'gguf', '--type', 'q8_0');
  const missing = await grok('convert', path.join(tmp, 'nope'), '--to', 'gguf', '--type', 'q8_0', '--out', out);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^grok: .*nope: no such file or directory\n$/);
  assert.equal((await grok('convert', src, '--to', 'gguf', '--type', 'Q8_0', '--out', out)).code, 0);
  assert.equal((await grok('convert', src, '--type', 'q8_0', '--out', out)).code, 0, '--to defaults to gguf, the only output format');
  const f = readGgufFile(out);
  assert.equal(tensor(f, 'blk.1.attn_q.weight').ref.type, 'q8_0');
  assert.equal(tensor(f, 'blk.1.ffn_down_exps.weight').ref.type, 'f16'); // tiny-a: F = 344 is not a multiple of 32
});

test('synth tiny: the reader sees every tensor as written; values are N(0, 0.02²), norms 1, and Q8_0 matches F32 of the same seed', async () => {
  const cfg = { ...TINY, nLayers: 2 };
  const f32Path = path.join(tmp, 'syn-f32.gguf');
  const q8Path = path.join(tmp, 'syn-q8.gguf');
  await synthModel({ config: cfg, type: 'f32', out: f32Path, seed: 7 });
  assert.equal((await grok('synth', '--preset', 'tiny', '--layers', '2', '--type', 'q8_0', '--out', q8Path, '--seed', '7')).code, 0);
  const a = readGgufFile(f32Path);
  const b = readGgufFile(q8Path);
  const D = 256, F = 512, E = 4, V = 512;
  assert.equal(a.tensors.length, 2 + 2 * 12);
  assert.deepEqual(tensor(b, 'blk.1.ffn_down_exps.weight').ref.shape, [E, D, F]);
  assert.deepEqual(tensor(b, 'blk.1.ffn_gate_exps.weight').ref.shape, [E, F, D]);
  assert.deepEqual(tensor(b, 'blk.0.attn_k.weight').ref.shape, [2 * 64, D]);
  assert.deepEqual(tensor(b, 'token_embd.weight').ref.shape, [V, D]);
  assert.equal(tensor(b, 'blk.0.ffn_gate_inp.weight').ref.type, 'f32');
  assert.equal(b.metadata.get('grok.block_count'), 2);
  assert.equal(b.metadata.get('grok.embedding_length'), D);
  assert.equal((b.metadata.get('tokenizer.ggml.tokens') as string[]).length, V);
  assert.ok(floatsOf(a, 'blk.1.ffn_norm.weight').every((v) => v === 1));
  for (const t of a.tensors) {
    if (t.ref.shape.length === 1) continue;
    const x = floatsOf(a, t.name);
    let s = 0, s2 = 0;
    for (const v of x) { s += v; s2 += v * v; }
    const mean = s / x.length, sd = Math.sqrt(s2 / x.length - mean * mean);
    if (!(Math.abs(sd - 0.02) < 0.02 * (0.01 + 5 / Math.sqrt(x.length)))) assert.fail(`${t.name}: sd ${sd}`);
    if (!(Math.abs(mean) < 0.02 * 5 / Math.sqrt(x.length))) assert.fail(`${t.name}: mean ${mean}`);
    const y = floatsOf(b, t.name);
    if (tensor(b, t.name).ref.type === 'f32') { assert.deepEqual(y, x, t.name); continue; }
    for (let i = 0; i < x.length; i += 32) {
      let amax = 0;
      for (let j = i; j < i + 32; j++) amax = Math.max(amax, Math.abs(x[j]!));
      for (let j = i; j < i + 32; j++) assert.ok(Math.abs(y[j]! - x[j]!) <= (amax / 127) * 0.57, `${t.name}[${j}]`);
    }
  }
  let r = await grok('synth', '--preset', 'huge', '--layers', '1', '--type', 'q8_0', '--out', q8Path);
  assert.deepEqual([r.code, r.err.split('\n')[0]], [2, "grok: --preset must be one of grok1, grok2, tiny, got 'huge'"]);
  r = await grok('synth', '--preset', 'tiny', '--layers', '0', '--type', 'q8_0', '--out', q8Path);
  assert.deepEqual([r.code, r.err.split('\n')[0]], [2, "grok: --layers must be an integer ≥ 1, got '0'"]);
});

test('worker threads change nothing: convert and synth write the same bytes with 1 and 2 threads', async () => {
  const src = path.join(fixtureDir('tiny-b'), 'ckpt-0');
  const a = path.join(tmp, 'thr1.gguf');
  const b = path.join(tmp, 'thr2.gguf');
  for (const type of ['q4_0', 'q8_0'] as const) {
    const ra = await convertModel({ source: src, out: a, type, threads: 1, measure: true });
    const rb = await convertModel({ source: src, out: b, type, threads: 2, measure: true });
    assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)), type);
    assert.deepEqual(ra.tensors, rb.tensors);
    assert.deepEqual(ra.q8Exact, rb.q8Exact);
  }
  await synthModel({ config: { ...TINY, nLayers: 1 }, type: 'q4_1', out: a, seed: 3, threads: 1 });
  await synthModel({ config: { ...TINY, nLayers: 1 }, type: 'q4_1', out: b, seed: 3, threads: 2 });
  assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)));
});

test('the ckpt-0 writer reproduces every fixture checkpoint file byte for byte (opcodes, memo, frames)', () => {
  for (const fx of ['tiny-a', 'tiny-b']) {
    const dir = path.join(fixtureDir(fx), 'ckpt-0');
    for (const name of fs.readdirSync(dir)) {
      const file = path.join(dir, name);
      const data = fs.readFileSync(file);
      const t = readCheckpointTensor(file);
      const payload = (a: { offset: number; length: number }) => (w: (b: Uint8Array) => void) => w(data.subarray(a.offset, a.offset + a.length));
      const out = path.join(tmp, 'ckw');
      if (t.kind === 'qw8') writeCkptQuantized(out, t.weight.shape, payload(t.weight), t.scales.shape, payload(t.scales));
      else writeCkptArray(out, t.shape, payload(t));
      assert.ok(fs.readFileSync(out).equals(data), `${fx}/${name}`);
    }
  }
});

test('synth --form ckpt-0 → convert: one pass to Q4_K equals ckpt-0 → F32 → Q4_K; Q8_0 keeps every block', async () => {
  const dir = path.join(tmp, 'synth-ckpt');
  const config = { ...TINY, nLayers: 2, nExperts: 8 };
  synthCheckpoint({ config, dir, seed: 5 });
  const direct = path.join(tmp, 'ck-q4k.gguf');
  const f32 = path.join(tmp, 'ck-f32.gguf');
  const twice = path.join(tmp, 'ck-f32-q4k.gguf');
  await convertModel({ source: dir, out: direct, type: 'q4_k', threads: 2 });
  await convertModel({ source: dir, out: f32, type: 'f32' });
  await convertModel({ source: f32, out: twice, type: 'q4_k', threads: 2 });
  const a = readGgufFile(direct);
  const b = readGgufFile(twice);
  assert.deepEqual(a.tensors.map((t) => [t.name, t.ggmlType]), b.tensors.map((t) => [t.name, t.ggmlType]));
  for (const t of a.tensors) assert.ok(Buffer.from(readBytes(t.ref)).equals(Buffer.from(readBytes(tensor(b, t.name).ref))), t.name);
  const q8 = await convertModel({ source: dir, out: path.join(tmp, 'ck-q8.gguf'), type: 'q8_0', threads: 2 });
  assert.equal(q8.q8Exact.kept, q8.q8Exact.total);
  assert.ok(q8.q8Exact.total > 0);
});
