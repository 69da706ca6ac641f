/**
 * safetensors reader and the HF binders: fixture facts, family A/B names and shapes from the config,
 * config.json beside the weights, sharded sets, the Mixtral-style expert names, and corrupt headers.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { FormatError } from '../src/base/errors.js';
import { openCkpt } from '../src/formats/ckpt.js';
import { openSafetensors } from '../src/formats/safetensors.js';
import { isQuantizedRef, type TensorRef } from '../src/formats/tensor-ref.js';
import type { Binding } from '../src/model/binding.js';
import { loadModel } from '../src/model/loader.js';
import { bindCkpt } from '../src/model/map-ckpt.js';
import { blockFormat, isBlockType } from '../src/quant/index.js';
import { bindHf } from '../src/model/map-hf.js';
import { fixtureDir, golden, goldenLogits, maxAbsDiff } from './fixtures.js';
import { readBytes } from './gguf-builder.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-st-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const fx = (name: string, file: string) => path.join(fixtureDir(name), file);

interface StTensor { name: string; dtype: string; shape: number[]; data: Uint8Array }

/** Writes a safetensors file by hand (huggingface/safetensors format): u64 header length, JSON, data in the given order. */
function buildSt(tensors: StTensor[], opts: { header?: (h: Record<string, unknown>) => void; pad?: boolean; trailing?: number } = {}): Buffer {
  const h: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const t of tensors) {
    h[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  opts.header?.(h);
  let json = JSON.stringify(h);
  if (opts.pad !== false) json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.data)), Buffer.alloc(opts.trailing ?? 0)]);
}

/** A fixture's tensors as builder records. */
function fixtureTensors(name: string): StTensor[] {
  const src = openSafetensors(fx(name, 'model.safetensors'));
  return [...src.tensors.values()].map((t) => ({ name: t.name, dtype: 'F32', shape: [...t.shape], data: readBytes(t) }));
}

/** The config of a fixture in the Hugging Face spelling (family B's Grok1Config field names, the Hugging Face ports' tensor names). */
function hfConfigJson(name: string): Record<string, unknown> {
  const c = golden(name).config;
  return {
    model_type: 'grok-1', vocab_size: c.vocab_size, hidden_size: c.emb_size, intermediate_size: c.ffn_size,
    num_hidden_layers: c.num_layers, num_attention_heads: c.num_q_heads, num_key_value_heads: c.num_kv_heads,
    head_dim: c.key_size, num_experts: c.num_experts, num_experts_per_tok: c.num_selected_experts,
    attn_output_multiplier: c.attn_output_multiplier, embedding_multiplier_scale: c.embedding_multiplier_scale,
    output_multiplier_scale: c.output_multiplier_scale, max_attn_value: 30, rms_norm_eps: c.rms_norm_eps,
    rope_theta: c.rope_base, max_position_embeddings: c.sequence_len, pad_token_id: 0, bos_token_id: 1, eos_token_id: 2,
  };
}

async function assertLogits(name: string, p: string, configPath?: string): Promise<void> {
  const g = golden(name);
  const { model } = await loadModel(p, configPath === undefined ? {} : { configPath });
  const logits = model.forward([{ tokens: g.tokens, cache: model.newCache(g.tokens.length) }]);
  const d = maxAbsDiff(logits, goldenLogits(name));
  assert.ok(d < 1e-4, `${p}: max |Δlogit| ${d}`);
}

/** Expected names → shapes of the HF families (the Hugging Face ports' tensor names) for a golden config. */
function expected(name: string): Map<string, number[]> {
  const c = golden(name).config;
  const V = c.vocab_size!, D = c.emb_size!, HK = c.num_q_heads! * c.key_size!, GK = c.num_kv_heads! * c.key_size!, E = c.num_experts!, F = c.ffn_size!;
  const m = new Map<string, number[]>();
  if (name === 'tiny-a') {
    m.set('transformer.in_out_embed.weight', [V, D]);
    m.set('transformer.rms_norm.weight', [D]);
    for (let l = 0; l < c.num_layers!; l++) {
      const p = `transformer.decoder_layer.${l}.`;
      m.set(`${p}multi_head_attention.query.weight`, [HK, D]);
      m.set(`${p}multi_head_attention.key.weight`, [GK, D]);
      m.set(`${p}multi_head_attention.value.weight`, [GK, D]);
      m.set(`${p}multi_head_attention.linear.weight`, [D, HK]);
      m.set(`${p}router.weight`, [E, D]);
      for (const s of ['', '_1', '_2', '_3']) m.set(`${p}rms_norm${s}.weight`, [D]);
      for (let e = 0; e < E; e++) {
        m.set(`${p}moe.${e}.linear.weight`, [F, D]);
        m.set(`${p}moe.${e}.linear_v.weight`, [F, D]);
        m.set(`${p}moe.${e}.linear_1.weight`, [D, F]);
      }
    }
  } else {
    m.set('model.embed_tokens.weight', [V, D]);
    m.set('model.norm.scale', [D]);
    for (let l = 0; l < c.num_layers!; l++) {
      const p = `model.layers.${l}.`;
      m.set(`${p}attn.q_proj.weight`, [HK, D]);
      m.set(`${p}attn.k_proj.weight`, [GK, D]);
      m.set(`${p}attn.v_proj.weight`, [GK, D]);
      m.set(`${p}attn.o_proj.weight`, [D, HK]);
      m.set(`${p}moe_block.gate.weight`, [E, D]);
      for (const s of ['pre_attn_norm', 'post_attn_norm', 'pre_moe_norm', 'post_moe_norm']) m.set(`${p}${s}.scale`, [D]);
      for (let e = 0; e < E; e++) {
        m.set(`${p}moe_block.experts.${e}.linear.weight`, [F, D]);
        m.set(`${p}moe_block.experts.${e}.linear_v.weight`, [F, D]);
        m.set(`${p}moe_block.experts.${e}.linear_1.weight`, [D, F]);
      }
    }
  }
  return m;
}

for (const name of ['tiny-a', 'tiny-b']) {
  test(`${name}: model.safetensors names (family ${name === 'tiny-a' ? 'A' : 'B'}), shapes, dtypes and offsets`, () => {
    const file = fx(name, 'model.safetensors');
    const src = openSafetensors(file);
    const want = expected(name);
    assert.deepEqual([...src.tensors.keys()].sort(), [...want.keys()].sort());
    const raw = fs.readFileSync(file);
    const dataStart = 8 + Number(raw.readBigUInt64LE(0));
    let total = 0;
    for (const [n, shape] of want) {
      const t = src.tensors.get(n)!;
      assert.deepEqual(t.shape, shape, n);
      assert.equal(t.type, 'f32', n);
      assert.equal(t.length, shape.reduce((a, b) => a * b, 4), n);
      assert.ok(t.offset >= dataStart && t.offset + t.length <= raw.length, n);
      total += t.length;
    }
    assert.equal(dataStart + total, raw.length); // the tensors tile the data buffer
    assert.deepEqual(src.metadata.get('safetensors.metadata'), JSON.parse(raw.subarray(8, dataStart).toString()).__metadata__);
  });

  test(`${name}: no config.json beside the weights is reported; config.json beside it is used`, async () => {
    assert.throws(() => bindHf(openSafetensors(fx(name, 'model.safetensors'))), /no config\.json beside the safetensors weights/);
    const d = fs.mkdtempSync(path.join(dir, `${name}-`));
    fs.copyFileSync(fx(name, 'model.safetensors'), path.join(d, 'model.safetensors'));
    fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify(hfConfigJson(name)));
    const src = openSafetensors(d); // the directory
    assert.deepEqual((src.metadata.get('hf.config') as Record<string, unknown>).hidden_size, golden(name).config.emb_size);
    const cfg = bindHf(src).config;
    assert.equal(cfg.headDim, golden(name).config.key_size);
    assert.equal(cfg.ffnSize, golden(name).config.ffn_size);
    await assertLogits(name, d);
  });
}

/** Floats of a plain-float tensor ref (optionally the `index`-th element of a stack). */
function floats(ref: TensorRef, index?: number): Float32Array {
  assert.ok(isBlockType(ref.type) && blockFormat(ref.type).blockSize === 1, `${ref.name}: ${ref.type} is not a plain float type`);
  const count = index === undefined ? 1 : ref.shape[0]!;
  const all = readBytes(ref);
  const per = all.length / count;
  const bytes = all.subarray((index ?? 0) * per, ((index ?? 0) + 1) * per);
  const f = blockFormat(ref.type);
  const out = new Float32Array(bytes.length / f.bytesPerBlock);
  f.dequantize(bytes, 0, out.length, out, 0);
  return out;
}

/** A ckpt-0 binding as an [out, in] float matrix (or a vector): int8 × bf16 scale per grok-1 model.py QuantizedWeight8bit, transposed. */
function ckptAsRows(b: Binding): Float32Array {
  if (b.kind === 'vector' || b.kind === 'rows') return floats(b.ref, b.kind === 'rows' ? b.index : undefined);
  const stacked = b.index !== undefined;
  const s = stacked ? b.ref.shape.slice(1) : b.ref.shape;
  const [nIn, nOut] = [s[0]!, s[1]!];
  let w: Float32Array;
  if (b.kind === 'transpose') {
    w = floats(b.ref, b.index);
  } else {
    assert.ok(isQuantizedRef(b.ref));
    const all = readBytes(b.ref);
    const q = new Int8Array(all.buffer, all.byteOffset + (b.index ?? 0) * nIn * nOut, nIn * nOut);
    const sc = floats(b.ref.scales, b.index);
    const G = sc.length / nOut;
    w = new Float32Array(nIn * nOut);
    for (let k = 0; k < nIn; k++) for (let n = 0; n < nOut; n++) w[k * nOut + n] = q[k * nOut + n]! * sc[Math.floor(k / (nIn / G)) * nOut + n]!;
  }
  const t = new Float32Array(nIn * nOut);
  for (let k = 0; k < nIn; k++) for (let n = 0; n < nOut; n++) t[n * nIn + k] = w[k * nOut + n]!;
  return t;
}

for (const name of ['tiny-a', 'tiny-b']) {
  test(`${name}: every safetensors weight equals ckpt-0's dequantised int8 × scales exactly (after transposition)`, () => {
    const h = bindHf(openSafetensors(fx(name, 'model.safetensors')), fx(name, 'golden.json'));
    const c = bindCkpt(openCkpt(fx(name, 'ckpt-0')));
    assert.deepEqual([...h.tensors.keys()].sort(), [...c.tensors.keys()].sort());
    let xai8 = 0;
    for (const [canonical, hb] of h.tensors) {
      const cb = c.tensors.get(canonical)!;
      if (cb.kind === 'xai8') xai8++;
      assert.deepEqual(floats(hb.ref), ckptAsRows(cb), canonical);
    }
    assert.ok(xai8 > 0);
  });
}

test('sharded tiny-a (3 shards + model.safetensors.index.json): same tensors and bytes, reproduces logits', async () => {
  const d = fs.mkdtempSync(path.join(dir, 'shards-'));
  const all = fixtureTensors('tiny-a');
  const weightMap: Record<string, string> = {};
  for (let k = 0; k < 3; k++) {
    const part = all.filter((_, i) => i % 3 === k);
    const fname = `model-0000${k + 1}-of-00003.safetensors`;
    fs.writeFileSync(path.join(d, fname), buildSt(part));
    for (const t of part) weightMap[t.name] = fname;
  }
  const index = path.join(d, 'model.safetensors.index.json');
  fs.writeFileSync(index, JSON.stringify({ metadata: { total_size: all.reduce((a, t) => a + t.data.length, 0) }, weight_map: weightMap }));
  for (const p of [d, index]) {
    const src = openSafetensors(p);
    assert.equal(src.files.length, 3);
    assert.equal(src.tensors.size, all.length);
    for (const t of all) assert.ok(readBytes(src.tensors.get(t.name)!).equals(Buffer.from(t.data)), t.name);
  }
  await assertLogits('tiny-a', d, fx('tiny-a', 'golden.json'));
  // The index names a tensor its shard does not hold; and a path outside the directory.
  fs.writeFileSync(index, JSON.stringify({ weight_map: { ...weightMap, ghost: 'model-00001-of-00003.safetensors' } }));
  assert.throws(() => openSafetensors(d), /weight_map says tensor 'ghost' is in model-00001-of-00003\.safetensors, but that file does not hold it/);
  fs.writeFileSync(index, JSON.stringify({ weight_map: { x: '../x.safetensors' } }));
  assert.throws(() => openSafetensors(d), /must be a file name inside the model directory/);
  fs.writeFileSync(index, '{"weight_map": 5}');
  assert.throws(() => openSafetensors(index), /'weight_map' object/);
});

test('tiny-b with Mixtral-style names (block_sparse_moe.gate, experts.E.w1/w2/w3, norms .weight) binds and reproduces logits', async () => {
  const d = fs.mkdtempSync(path.join(dir, 'mixtral-'));
  const rename = (n: string) => n
    .replace(/moe_block\.gate\./, 'block_sparse_moe.gate.')
    .replace(/moe_block\.experts\.(\d+)\.linear\.weight/, 'block_sparse_moe.experts.$1.w1.weight')
    .replace(/moe_block\.experts\.(\d+)\.linear_1\.weight/, 'block_sparse_moe.experts.$1.w2.weight')
    .replace(/moe_block\.experts\.(\d+)\.linear_v\.weight/, 'block_sparse_moe.experts.$1.w3.weight')
    .replace(/\.scale$/, '.weight');
  fs.writeFileSync(path.join(d, 'model.safetensors'), buildSt(fixtureTensors('tiny-b').map((t) => ({ ...t, name: rename(t.name) }))));
  const b = bindHf(openSafetensors(d), fx('tiny-b', 'golden.json'));
  assert.equal(b.tensors.get('blk.2.ffn_down_exps.7')!.ref.name, 'model.layers.2.block_sparse_moe.experts.7.w2.weight');
  assert.equal(b.tensors.get('output_norm')!.ref.name, 'model.norm.weight');
  await assertLogits('tiny-b', d, fx('tiny-b', 'golden.json'));
});

test('binder errors: unknown layout, missing tensor named with its alternatives', () => {
  const d = fs.mkdtempSync(path.join(dir, 'bind-'));
  const f = path.join(d, 'x.safetensors');
  fs.writeFileSync(f, buildSt([{ name: 'foo', dtype: 'F32', shape: [1], data: new Uint8Array(4) }]));
  assert.throws(() => bindHf(openSafetensors(f), fx('tiny-a', 'golden.json')), /not a known Hugging Face Grok-1 layout: found neither 'transformer\.in_out_embed\.weight' nor 'model\.embed_tokens\.weight'/);
  fs.writeFileSync(f, buildSt(fixtureTensors('tiny-a').filter((t) => t.name !== 'transformer.decoder_layer.1.moe.2.linear_v.weight')));
  assert.throws(() => bindHf(openSafetensors(f), fx('tiny-a', 'golden.json')),
    /missing tensor 'transformer\.decoder_layer\.1\.moe\.2\.linear_v\.weight' or .*w3\.weight' \(for blk\.1\.ffn_up_exps\.2/);
});

test('corrupt headers fail with a FormatError saying what is wrong', () => {
  const d = fs.mkdtempSync(path.join(dir, 'bad-'));
  let i = 0;
  const rejects = (bytes: Buffer, re: RegExp) => {
    const f = path.join(d, `b${i++}.safetensors`);
    fs.writeFileSync(f, bytes);
    assert.throws(() => openSafetensors(f), (e: unknown) => {
      assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
      assert.match(e.message, re);
      return true;
    });
  };
  const t = (name: string, n: number): StTensor => ({ name, dtype: 'F32', shape: [n], data: new Uint8Array(4 * n) });
  const ok = buildSt([t('a', 2), t('b', 3)]);
  const f0 = path.join(d, 'ok.safetensors');
  fs.writeFileSync(f0, ok);
  assert.equal(openSafetensors(f0).tensors.get('b')!.length, 12);
  // An unpadded header is accepted too (the safetensors format).
  const f1 = path.join(d, 'unpadded.safetensors');
  fs.writeFileSync(f1, buildSt([t('a', 1)], { pad: false }));
  assert.equal(openSafetensors(f1).tensors.size, 1);

  const huge = Buffer.from(ok);
  huge.writeBigUInt64LE(2n ** 60n, 0);
  rejects(huge, /header length 1152921504606846976 exceeds the 100000000-byte limit/);
  const long = Buffer.from(ok);
  long.writeBigUInt64LE(5000n, 0);
  rejects(long, /header length 5000 runs past the end of the file/);
  rejects(Buffer.alloc(5), /too short/);
  rejects(buildSt([t('a', 1)]).fill(0x7b, 9, 10), /not valid UTF-8 JSON/);
  rejects(buildSt([t('a', 1)]).fill(0xff, 10, 11), /not valid UTF-8 JSON/);
  const arr = Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('[]')]);
  rejects(arr, /header must be a JSON object/);
  rejects(buildSt([t('a', 1)], { header: (h) => { (h.a as Record<string, unknown>).dtype = 'Q4'; } }), /tensor 'a': unknown dtype 'Q4'/);
  rejects(buildSt([t('a', 1)], { header: (h) => { (h.a as Record<string, unknown>).dtype = 'F8_E4M3'; } }), /tensor 'a': dtype F8_E4M3 is not supported/);
  rejects(buildSt([t('a', 1)], { header: (h) => { (h.a as Record<string, unknown>).shape = [1.5]; } }), /tensor 'a': shape must be an array of non-negative integers/);
  rejects(buildSt([t('a', 1)], { header: (h) => { (h.a as Record<string, unknown>).shape = [-1]; } }), /shape must be an array of non-negative integers/);
  rejects(buildSt([t('a', 2)], { header: (h) => { (h.a as Record<string, unknown>).shape = [3]; } }), /tensor 'a': data_offsets \[0, 8\] span 8 bytes, but F32 \[3\] needs 12/);
  rejects(buildSt([t('a', 2)], { header: (h) => { (h.a as Record<string, unknown>).data_offsets = [8, 4]; } }), /end before they begin/);
  rejects(buildSt([t('a', 2)], { header: (h) => { (h.a as Record<string, unknown>).data_offsets = [0]; } }), /data_offsets must be \[begin, end\]/);
  rejects(buildSt([t('a', 2)], { header: (h) => { (h.a as Record<string, unknown>).data_offsets = [4, 12]; } }), /data_offsets \[4, 12\] run past the end of the data buffer \(8 bytes\)/);
  rejects(buildSt([t('a', 2), t('b', 2)], { header: (h) => { (h.b as Record<string, unknown>).data_offsets = [4, 12]; } }), /tensor 'b' \(bytes 4…12\) overlaps tensor 'a'/);
  rejects(buildSt([t('a', 2), t('b', 1)], { header: (h) => { (h.b as Record<string, unknown>).data_offsets = [8, 12]; (h.a as Record<string, unknown>).data_offsets = [0, 8]; (h.a as Record<string, unknown>).shape = [2]; } , trailing: 4 }),
    /the tensors end at byte 12 of the data buffer, but the buffer has 16 bytes/);
  rejects(buildSt([t('a', 1), t('b', 1)], { header: (h) => { (h.b as Record<string, unknown>).data_offsets = [4, 8]; (h.a as Record<string, unknown>).data_offsets = [0, 4]; delete h.a; } }),
    /hole in the data buffer: bytes 0…4 before tensor 'b'/);
  rejects(buildSt([t('a', 1)], { header: (h) => { h.__metadata__ = { n: 5 }; } }), /__metadata__ must be an object of string values/);
  rejects(buildSt([t('a', 1)], { header: (h) => { h.a = 7; } }), /tensor 'a': entry must be an object/);
});

test('path handling: a directory without weights, several files without an index, a missing file', () => {
  const empty = fs.mkdtempSync(path.join(dir, 'empty-'));
  assert.throws(() => openSafetensors(empty), /directory holds neither model\.safetensors\.index\.json nor any \.safetensors file/);
  const two = fs.mkdtempSync(path.join(dir, 'two-'));
  const one = buildSt([{ name: 'a', dtype: 'F32', shape: [1], data: new Uint8Array(4) }]);
  fs.writeFileSync(path.join(two, 'a.safetensors'), one);
  assert.equal(openSafetensors(two).tensors.size, 1); // exactly one file: used
  fs.writeFileSync(path.join(two, 'b.safetensors'), one);
  assert.throws(() => openSafetensors(two), /holds 2 \.safetensors files but no model\.safetensors\.index\.json/);
  assert.throws(() => openSafetensors(path.join(two, 'none.safetensors')), /cannot open/);
});
