/**
 * Grok-2 as GGUF: `grok convert` from the release layout (test/data/grok2: 39 bf16 safetensors, experts in 8
 * tensor-parallel shards) to F32 / BF16 / F16 / Q8_0 / Q4_K, checked against things we did not compute:
 * - the fixtures' float64 golden logits (float types: within tolerance.logits_abs, every top-5);
 * - the release's own bf16 weights, read here by a few lines of safetensors parsing (not src/): every stored
 *   value within its block type's rounding bound of the released value, shards joined in rank order;
 * - the keys llama.cpp's Grok-2 converter writes for the same config.json (convert_hf_to_gguf.py GrokModel);
 * - tiktoken's goldens (test/data/tokenizer/grok2) through a GGUF vocabulary written from tokenizer.tok.json;
 * - llama.cpp itself (node-llama-cpp in peer/): it loads our Grok-2 GGUFs with the right hyper-parameters,
 *   runs them, and tokenises like tiktoken. (It computes another function for Grok-2 — renormalised top-2
 *   gates, tanh GELU, no attention temperature or router cap — so its logits are not compared.)
 * Also: a GGUF spelled as llama.cpp's converter spells it (YaRN keys, post_ffw_norm) reads with one note and
 * the same logits, and broken Grok-2 GGUFs fail naming the tensor or key.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { convertModel } from '../src/convert/convert.js';
import { fromGgufSource, tokenizerOf } from '../src/api/index.js';
import { openGguf, readGgufFile, type GgufValue } from '../src/formats/gguf.js';
import { GgufWriter, type GgufWriteType, type GgufWriteValue } from '../src/formats/gguf-writer.js';
import { addGrokMetadata, addVocabulary, blockTypeForRow } from '../src/model/gguf-grok.js';
import { configFromJson } from '../src/model/config.js';
import { loadModel } from '../src/model/loader.js';
import { bindGguf, readGgufConfig } from '../src/model/map-gguf.js';
import { bf16ToF32 } from '../src/quant/half.js';
import { blockFormat, type BlockType } from '../src/quant/index.js';
import { byteLevelFromTiktoken } from '../src/tokenizer/byte-level.js';
import { TiktokenTokenizer } from '../src/tokenizer/tiktoken.js';
import { grok } from './cli-helpers.js';
import { probeTool, toolTest } from './cross-check.js';
import { argmax, DATA, maxAbsDiff, topK } from './fixtures.js';
import { loadLlama, type Llama } from './llama-peer.js';

const FIXTURES = ['g2-tiny-a', 'g2-tiny-b'] as const;
const dir = (name: string) => path.join(DATA, 'grok2', name);
const TOK_DIR = path.join(DATA, 'tokenizer', 'grok2');

interface Golden2 {
  tokens: number[];
  prompt_text: string;
  top5: number[][];
  min_top1_margin: number;
  tolerance: { logits_abs: number };
}
const golden = (name: string) => JSON.parse(fs.readFileSync(path.join(dir(name), 'golden.json'), 'utf8')) as Golden2;
const configJson = (name: string) => JSON.parse(fs.readFileSync(path.join(dir(name), 'config.json'), 'utf8')) as Record<string, number | string | boolean>;
function goldenLogits(name: string): Float32Array {
  const b = fs.readFileSync(path.join(dir(name), 'logits.f32'));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-gguf2-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Converts a fixture once per type (with its tokenizer.tok.json). */
const converted = new Map<string, Promise<string>>();
function convertedFile(name: string, type: BlockType): Promise<string> {
  const key = `${name}-${type}`;
  if (!converted.has(key)) {
    const out = path.join(tmp, `${key}.gguf`);
    converted.set(key, convertModel({ source: dir(name), out, type, tokenizer: path.join(dir(name), 'tokenizer.tok.json'), threads: 2 }).then(() => out));
  }
  return converted.get(key)!;
}

async function logitsOf(file: string, tokens: number[]): Promise<{ logits: Float32Array; notes: readonly string[] }> {
  const { model, binding } = await loadModel(file);
  try {
    return { logits: model.forward([{ tokens, cache: model.newCache(tokens.length) }]), notes: binding.notes ?? [] };
  } finally {
    model.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// The release's weights, read without src/: safetensors = 8-byte header length, JSON header, raw bytes.

function readSafetensors(file: string): Map<string, { shape: number[]; data: Float32Array }> {
  const b = fs.readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    assert.equal(h.dtype, 'BF16', `${file}: ${name}`);
    const raw = b.subarray(8 + n + h.data_offsets[0], 8 + n + h.data_offsets[1]);
    const data = new Float32Array(raw.length / 2);
    for (let i = 0; i < data.length; i++) data[i] = bf16ToF32(raw.readUInt16LE(2 * i));
    out.set(name, { shape: h.shape, data });
  }
  return out;
}

/** Every released tensor by name, experts joined from their 8 rank shards (README: w1/w3 by rows, w2 by columns, ranks 0..7). */
function releaseWeights(name: string): Map<string, Float32Array> {
  const all = new Map<string, Float32Array>();
  const shards = new Map<string, { shape: number[]; data: Float32Array }[]>();
  for (const f of fs.readdirSync(dir(name)).filter((x) => x.endsWith('.safetensors')).sort()) {
    for (const [k, v] of readSafetensors(path.join(dir(name), f))) {
      if (f.includes('-TP-common')) all.set(k, v.data);
      else (shards.get(k) ?? shards.set(k, []).get(k)!).push(v);
    }
  }
  for (const [k, parts] of shards) {
    assert.equal(parts.length, 8, k);
    if (!k.endsWith('.w2.weight')) { all.set(k, Float32Array.from(parts.flatMap((p) => Array.from(p.data)))); continue; }
    const [rows, cols] = parts[0]!.shape as [number, number];
    const joined = new Float32Array(rows * cols * 8);
    parts.forEach((p, r) => { for (let i = 0; i < rows; i++) joined.set(p.data.subarray(i * cols, (i + 1) * cols), i * cols * 8 + r * cols); });
    all.set(k, joined);
  }
  return all;
}

/** The release's name of a GGUF tensor (the values in GGUF row order; experts: the E matrices one after another). */
function releaseValues(w: Map<string, Float32Array>, gguf: string, nExperts: number): Float32Array {
  const direct: Record<string, string> = {
    'token_embd.weight': 'model.embed_tokens.weight', 'output.weight': 'lm_head.weight', 'output_norm.weight': 'model.norm.weight',
  };
  if (direct[gguf]) return w.get(direct[gguf])!;
  const m = /^blk\.(\d+)\.(.+)\.weight$/.exec(gguf)!;
  const p = `model.layers.${m[1]}.`;
  const layer: Record<string, string> = {
    attn_norm: 'pre_attn_norm.weight', attn_output_norm: 'post_attn_norm.weight', ffn_norm: 'pre_moe_norm.weight', layer_output_norm: 'post_moe_norm.weight',
    attn_q: 'self_attn.q_proj.weight', attn_k: 'self_attn.k_proj.weight', attn_v: 'self_attn.v_proj.weight', attn_output: 'self_attn.o_proj.weight',
    ffn_gate: 'mlp.gate_proj.weight', ffn_up: 'mlp.up_proj.weight', ffn_down: 'mlp.down_proj.weight', ffn_gate_inp: 'block_sparse_moe.gate.weight',
  };
  if (layer[m[2]!]) return w.get(p + layer[m[2]!])!;
  const slot = { ffn_gate_exps: 'w1', ffn_up_exps: 'w3', ffn_down_exps: 'w2' }[m[2]!]!;
  const parts = Array.from({ length: nExperts }, (_, e) => w.get(`${p}block_sparse_moe.experts.${e}.${slot}.weight`)!);
  const out = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
  parts.reduce((at, x) => { out.set(x, at); return at + x.length; }, 0);
  return out;
}

// ---------------------------------------------------------------------------------------------------------

for (const name of FIXTURES) {
  const g = golden(name);
  const want = goldenLogits(name);
  const V = 512;

  for (const type of ['f32', 'bf16', 'f16'] as const) {
    test(`${name} → ${type} GGUF: logits within tolerance.logits_abs of the golden, every top-5, one note on the semantics`, async () => {
      const { logits, notes } = await logitsOf(await convertedFile(name, type), g.tokens);
      const d = maxAbsDiff(logits, want);
      assert.ok(d <= g.tolerance.logits_abs, `max |Δlogit| ${d} > ${g.tolerance.logits_abs}`);
      g.tokens.forEach((_, t) => assert.deepEqual(topK(logits.subarray(t * V, (t + 1) * V), 5), g.top5[t], `top5 at position ${t}`));
      assert.equal(notes.length, 1);
      assert.match(notes[0]!, /Grok-2, run with the reference's semantics \(SGLang\), not llama\.cpp's: plain RoPE, the top-2 gate weights not renormalised, the exact \(erf\) GELU, the attention temperature past position \d+, the router soft-cap 30/);
    });
  }

  test(`${name}: grok convert --type bf16 then grok logits --out (the CLI path): golden logits, the note once on stderr`, async () => {
    const out = path.join(tmp, `${name}-cli.gguf`);
    const c = await grok('convert', dir(name), '--type', 'bf16', '--tokenizer', path.join(dir(name), 'tokenizer.tok.json'), '--out', out, '--threads', '1');
    assert.equal(c.code, 0, c.err);
    assert.match(c.err, /vocabulary: tokenizer/);
    const lf = path.join(tmp, `${name}-cli.f32`);
    const r = await grok('logits', '--model', out, '--tokens', g.tokens.join(','), '--out', lf);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err.match(/grok: note: .*Grok-2, run with the reference's semantics/g)?.length, 1, r.err);
    const b = fs.readFileSync(lf);
    const d = maxAbsDiff(new Float32Array(b.buffer, b.byteOffset, b.length / 4), want);
    assert.ok(d <= g.tolerance.logits_abs, `max |Δlogit| ${d}`);
  });

  test(`${name} → GGUF: the keys llama.cpp's Grok-2 converter writes for this config.json, read back as the config.json reads`, async () => {
    const f = readGgufFile(await convertedFile(name, 'f32'));
    const cj = configJson(name);
    const m = f.metadata;
    const close = (k: string, v: number) => assert.ok(Math.abs((m.get(k) as number) - v) <= 1e-6 * Math.abs(v), `${k} = ${String(m.get(k))}, expected ${v}`);
    // convert_hf_to_gguf.py: TextModel.set_gguf_parameters + GrokModel.set_gguf_parameters
    assert.equal(m.get('general.architecture'), 'grok');
    assert.equal(m.get('grok.block_count'), cj.num_hidden_layers);
    assert.equal(m.get('grok.context_length'), cj.max_position_embeddings);
    assert.equal(m.get('grok.embedding_length'), cj.hidden_size);
    assert.equal(m.get('grok.feed_forward_length'), cj.intermediate_size);
    assert.equal(m.get('grok.expert_feed_forward_length'), cj.moe_intermediate_size);
    assert.equal(m.get('grok.attention.head_count'), cj.num_attention_heads);
    assert.equal(m.get('grok.attention.head_count_kv'), cj.num_key_value_heads);
    assert.equal(m.get('grok.attention.key_length'), cj.head_dim);
    assert.equal(m.get('grok.attention.value_length'), cj.head_dim);
    assert.equal(m.get('grok.expert_count'), cj.num_local_experts);
    assert.equal(m.get('grok.expert_used_count'), cj.num_experts_per_tok);
    assert.equal(m.get('grok.attention.temperature_length'), cj.attn_temperature_len);
    assert.equal(f.metadataTypes.get('grok.attention.temperature_length'), 4, 'temperature_length is a u32');
    close('grok.rope.freq_base', cj.rope_theta as number);
    close('grok.attention.layer_norm_rms_epsilon', cj.rms_norm_eps as number);
    close('grok.attn_logit_softcapping', cj.attn_logit_softcapping as number);
    close('grok.router_logit_softcapping', cj.router_logit_softcapping as number);
    close('grok.final_logit_softcapping', cj.final_logit_softcapping as number);
    close('grok.attention.output_scale', (cj.head_dim as number) ** -0.5);
    close('grok.embedding_scale', cj.embedding_multiplier_scale as number);
    close('grok.logit_scale', cj.output_multiplier_scale as number);
    // our one departure: plain RoPE as the reference runs it, where the converter writes YaRN for rope_type "original"
    assert.equal(m.get('grok.rope.scaling.type'), 'none');
    assert.equal(m.get('tokenizer.ggml.model'), 'gpt2');
    assert.equal(m.get('tokenizer.ggml.pre'), 'grok-2');
    // llama.cpp's tensor names: dense MLP ffn_gate/ffn_up/ffn_down, merged expert stacks, untied output, F32 router
    const types = new Map(f.tensors.map((t) => [t.name, t.ref.type]));
    for (const n of ['output.weight', 'blk.0.ffn_gate.weight', 'blk.0.ffn_up.weight', 'blk.0.ffn_down.weight', 'blk.0.ffn_gate_exps.weight', 'blk.0.ffn_down_exps.weight', 'blk.0.ffn_up_exps.weight']) {
      assert.ok(types.has(n), n);
    }
    // the same config as config.json gives, but for the floats GGUF stores as f32 (rope_theta 208533496 → 208533504)
    const { config } = readGgufConfig(openGguf(f.file));
    const fromJson = configFromJson(cj, 'config.json');
    for (const [k, v] of Object.entries(fromJson)) {
      const got = config[k as keyof typeof config];
      if ((typeof v === 'number' && !Number.isInteger(v)) || k === 'ropeBase') assert.equal(got, Math.fround(v as number), k);
      else assert.equal(got, v, k);
    }
  });

  for (const type of ['q8_0', 'q4_k'] as const) {
    test(`${name} → ${type} GGUF: every stored value within its block type's rounding of the released bf16 value; logits those of its dequantised F32 copy`, async () => {
      const file = await convertedFile(name, type);
      const cj = configJson(name);
      const E = cj.num_local_experts as number;
      const release = releaseWeights(name);
      const f = readGgufFile(file);
      for (const t of f.tensors) {
        const ref = t.ref;
        const src = releaseValues(release, t.name, E);
        const n = ref.shape.reduce((a, b) => a * b, 1);
        assert.equal(src.length, n, t.name);
        const nIn = ref.shape[ref.shape.length - 1]!;
        const expected: BlockType = ref.shape.length === 1 || t.name.endsWith('ffn_gate_inp.weight') ? 'f32' : blockTypeForRow(type, nIn);
        assert.equal(ref.type, expected, `${t.name}: stored as ${ref.type}`);
        const fmt = blockFormat(ref.type as BlockType);
        const bytes = new Uint8Array(fs.readFileSync(file).buffer, ref.offset, ref.length);
        const back = new Float32Array(n);
        fmt.dequantize(bytes, 0, n, back, 0);
        // Rounding bound per block of B values with largest |w| = a, step d = a/127 (Q8_0) or a/16 (Q5_0): half a
        // step (Q5_0: one, its far end is clamped) plus the f16 rounding of d times the largest level; F32 exact.
        const B = fmt.blockSize;
        const step = ref.type === 'q8_0' ? (0.5 + 127 * 2 ** -11) / 127 : ref.type === 'q5_0' ? (1 + 16 * 2 ** -11) / 16 : 0;
        for (let b0 = 0; b0 < n; b0 += B) {
          let a = 0;
          for (let i = b0; i < b0 + B; i++) a = Math.max(a, Math.abs(src[i]!));
          for (let i = b0; i < b0 + B; i++) {
            if (Math.abs(back[i]! - src[i]!) > step * a + 1e-30) assert.fail(`${t.name}[${i}]: stored ${back[i]}, released ${src[i]} (block max ${a}, ${ref.type})`);
          }
        }
      }
      // The quantised file computes the model of its own values: as an F32 copy of them (which the float tests tie to the golden).
      const deq = path.join(tmp, `${name}-${type}-deq.gguf`);
      await convertModel({ source: file, out: deq, type: 'f32' });
      const a = await logitsOf(file, g.tokens);
      const b = await logitsOf(deq, g.tokens);
      assert.ok(maxAbsDiff(a.logits, b.logits) <= 1e-4, `quantised vs dequantised: ${maxAbsDiff(a.logits, b.logits)}`);
      // These fixtures amplify weight rounding on purpose (every soft-cap non-linear, router margins ≈ 0.12): report, not bound, the golden distance.
      const agree = g.tokens.filter((_, t) => argmax(a.logits.subarray(t * V, (t + 1) * V)) === argmax(want.subarray(t * V, (t + 1) * V))).length;
      process.stdout.write(`# ${name} ${type}: max |Δlogit| vs golden ${maxAbsDiff(a.logits, want).toFixed(3)}, argmax ${agree}/${g.tokens.length}\n`);
    });
  }

  test(`${name} → GGUF: its vocabulary gives the fixture's prompt ids, as tokenizer.tok.json does`, async () => {
    const t = tokenizerOf(await convertedFile(name, 'q8_0'));
    assert.ok(t instanceof TiktokenTokenizer);
    assert.deepEqual(t.encode(g.prompt_text), g.tokens);
    assert.equal(t.decode(g.tokens), g.prompt_text);
  });
}

// ---------------------------------------------------------------------------------------------------------
// The tokenizer at full scale: tiktoken's goldens through a GGUF vocabulary.

const bigTokGguf = (() => {
  let p: string | undefined;
  return async (): Promise<string> => {
    if (p) return p;
    const out = path.join(tmp, 'tok.gguf');
    const w = new GgufWriter(out);
    const tok = TiktokenTokenizer.fromFile(path.join(TOK_DIR, 'tokenizer.tok.json'));
    const c = { ...configFromJson(configJson('g2-tiny-a'), 'config.json'), vocabSize: tok.vocabSize, eosToken: tok.eosId, padToken: tok.padId };
    addGrokMetadata(w, c);
    addVocabulary(w, byteLevelFromTiktoken(tok));
    await w.writeHeader();
    await w.close();
    return (p = out);
  };
})();
const tokGolden = JSON.parse(fs.readFileSync(path.join(TOK_DIR, 'golden.json'), 'utf8')) as {
  encode: { category: string; text: string; ids: number[] }[];
  decode: { category: string; ids: number[]; text: string }[];
};

test('a GGUF written from tokenizer.tok.json (101088 tokens) encodes and decodes every tiktoken golden', async () => {
  const src = openGguf(await bigTokGguf());
  try {
    assert.equal(src.metadata.get('tokenizer.ggml.model'), 'gpt2');
    assert.equal((src.metadata.get('tokenizer.ggml.merges') as string[]).length > 100000, true);
    const t = fromGgufSource(src)!;
    assert.deepEqual([t.vocabSize, t.eosId, t.padId, t.bosId], [101088, 100258, 100256, -1]);
    for (const e of tokGolden.encode) assert.deepEqual(t.encode(e.text), e.ids, `${e.category}: ${JSON.stringify(e.text.slice(0, 60))}`);
    for (const e of tokGolden.decode) assert.equal(t.decode(e.ids), e.text, `${e.category}: ${e.ids.slice(0, 8).join(',')}`);
  } finally {
    src.close();
  }
});

test('byte-level vocabularies that are not Grok-2\'s tiktoken BPE are refused by name', async () => {
  const f = readGgufFile(await bigTokGguf());
  const variant = async (file: string, edit: (k: string, v: GgufValue) => GgufValue | undefined) => {
    const out = path.join(tmp, file);
    await rewrite(f.file, out, { meta: edit });
    return openGguf(out);
  };
  let s = await variant('pre.gguf', (k, v) => (k === 'tokenizer.ggml.pre' ? 'llama-bpe' : v));
  assert.throws(() => fromGgufSource(s), /tokenizer\.ggml\.pre is "llama-bpe"; of the byte-level vocabularies only Grok-2's \("grok-2"\) is supported/);
  s.close();
  s = await variant('merges.gguf', (k, v) => (k === 'tokenizer.ggml.merges' ? [...(v as string[])].reverse() : v));
  assert.throws(() => fromGgufSource(s), /tokenizer\.ggml\.merges\[1\] makes token \d+ after an earlier merge made token \d+: this vocabulary's ids are not its BPE ranks/);
  s.close();
  s = await variant('types.gguf', (k, v) => (k === 'tokenizer.ggml.token_type' ? undefined : v));
  assert.throws(() => fromGgufSource(s), /tokenizer\.ggml\.token_type is missing/);
  s.close();
});

// ---------------------------------------------------------------------------------------------------------
// Files as llama.cpp's converter spells them, and broken ones.

/** Copies a GGUF, editing metadata (undefined drops a key; `add` appends) and tensors (drop / rename). */
async function rewrite(from: string, to: string, edit: { meta?: (k: string, v: GgufValue) => GgufValue | undefined; add?: [string, GgufWriteType, GgufWriteValue][]; tensor?: (name: string) => string | null }): Promise<void> {
  const f = readGgufFile(from);
  const bytes = fs.readFileSync(from);
  const w = new GgufWriter(to);
  const scalar: Record<number, GgufWriteType> = { 0: 'u8', 1: 'i8', 2: 'u16', 3: 'i16', 4: 'u32', 5: 'i32', 6: 'f32', 7: 'bool', 8: 'string', 10: 'u64', 11: 'i64', 12: 'f64' };
  for (const [k, v0] of f.metadata) {
    if (k === 'general.alignment') continue;
    const v = edit.meta ? edit.meta(k, v0) : v0;
    if (v === undefined) continue;
    const type: GgufWriteType = Array.isArray(v) ? 'string[]' : v instanceof Int32Array ? 'i32[]' : v instanceof Float32Array ? 'f32[]' : v instanceof Uint32Array ? 'u32[]' : scalar[f.metadataTypes.get(k)!]!;
    w.addMetadata(k, type, v as GgufWriteValue);
  }
  for (const [k, type, v] of edit.add ?? []) w.addMetadata(k, type, v);
  const kept = f.tensors.map((t) => ({ t, name: edit.tensor ? edit.tensor(t.name) : t.name })).filter((x) => x.name !== null);
  for (const { t, name } of kept) w.addTensorInfo(name!, t.ref.type as BlockType, t.ref.shape);
  await w.writeHeader();
  for (const { t, name } of kept) await w.writeTensorData(name!, new Uint8Array(bytes.buffer, bytes.byteOffset + t.ref.offset, t.ref.length));
  await w.close();
}

test('g2-tiny-b as llama.cpp\'s converter spells it (YaRN keys, post_ffw_norm, no rope.dimension_count): the golden logits, the note names the ignored YaRN', async () => {
  const name = 'g2-tiny-b';
  const g = golden(name);
  const cj = configJson(name);
  const out = path.join(tmp, 'llamacpp-style.gguf');
  await rewrite(await convertedFile(name, 'f32'), out, {
    meta: (k, v) => (k === 'grok.rope.scaling.type' || k === 'grok.rope.dimension_count' ? undefined : v),
    // GrokModel.set_gguf_parameters: rope_type "original" → add_rope_scaling_type(YARN) and the yarn_* values of config.json
    add: [
      ['grok.rope.scaling.type', 'string', 'yarn'], ['grok.rope.scaling.factor', 'f32', cj.scaling_factor as number],
      ['grok.rope.scaling.original_context_length', 'u32', cj.original_max_position_embeddings as number],
      ['grok.rope.scaling.yarn_ext_factor', 'f32', cj.extrapolation_factor as number], ['grok.rope.scaling.yarn_attn_factor', 'f32', cj.attn_factor as number],
      ['grok.rope.scaling.yarn_beta_fast', 'f32', cj.beta_fast as number], ['grok.rope.scaling.yarn_beta_slow', 'f32', cj.beta_slow as number],
    ],
    // gguf-py tensor_mapping.py: model.layers.{bid}.post_moe_norm → FFN_POST_NORM, blk.{bid}.post_ffw_norm
    tensor: (n) => n.replace('layer_output_norm', 'post_ffw_norm'),
  });
  const { logits, notes } = await logitsOf(out, g.tokens);
  const d = maxAbsDiff(logits, goldenLogits(name));
  assert.ok(d <= g.tolerance.logits_abs, `max |Δlogit| ${d}`);
  assert.equal(notes.length, 1);
  assert.match(notes[0]!, /plain RoPE \(the file's grok\.rope\.scaling\.type "yarn", factor 16, original context 8192 is ignored: llama\.cpp's converter writes YaRN for Grok-2's rope_type "original", which SGLang runs as plain RoPE\)/);
});

test('broken Grok-2 GGUFs fail naming the tensor or key and what was expected', async () => {
  const good = await convertedFile('g2-tiny-a', 'f32');
  const f = path.join(tmp, 'broken.gguf');
  await rewrite(good, f, { tensor: (n) => (n === 'blk.1.ffn_up.weight' ? null : n) });
  assert.throws(() => bindGguf(openGguf(f)), /missing tensor 'blk\.1\.ffn_up\.weight' \(for blk\.1\.ffn_up\): a Grok-2 layer has a dense MLP beside its experts \(ffn_gate and ffn_up \[128, 64\], ffn_down \[64, 128\], grok\.feed_forward_length = 128\)/);
  await rewrite(good, f, { tensor: (n) => (/^blk\.\d+\.ffn_(gate|up|down)\.weight$/.test(n) ? null : n) });
  assert.throws(() => bindGguf(openGguf(f)), /missing tensor 'blk\.0\.ffn_gate\.weight'.*a Grok-2 layer has a dense MLP/);
  await rewrite(good, f, { meta: (k, v) => (k === 'grok.feed_forward_length' ? 96 : v) });
  assert.throws(() => bindGguf(openGguf(f)), /blk\.0\.ffn_gate\.weight is \[128, 64\], but grok\.feed_forward_length = 96 and grok\.embedding_length = 64 make it \[96, 64\]/);
  await rewrite(good, f, { meta: (k, v) => (k === 'grok.expert_feed_forward_length' ? undefined : v) });
  assert.throws(() => bindGguf(openGguf(f)), /blk\.0\.ffn_gate_exps\.weight is \[4, 64, 64\], but grok\.feed_forward_length = 128 \(there is no grok\.expert_feed_forward_length, so the experts take the dense width, as in llama\.cpp\) and grok\.embedding_length = 64 make it \[4, 128, 64\]/);
  await rewrite(good, f, { tensor: (n) => (n === 'output.weight' ? null : n) });
  assert.throws(() => bindGguf(openGguf(f)), /missing tensor 'output\.weight' \(for output\): Grok-2's output projection \[512, 64\] is not tied to token_embd/);
  await rewrite(good, f, { meta: (k, v) => (k === 'grok.attention.value_length' ? 8 : v) });
  assert.throws(() => bindGguf(openGguf(f)), /grok\.attention\.value_length = 8, but the heads are 16 wide \(grok\.attention\.key_length\)/);
});

// ---------------------------------------------------------------------------------------------------------
// llama.cpp (node-llama-cpp's prebuilt CPU binary) on our files.

/** llama.cpp's load log (print_info lines) is collected here while it loads a model. */
const llamaLog: string[] = [];
const peer = await probeTool('llama.cpp (node-llama-cpp in peer/, `npm run peer`)', () => loadLlama((m) => llamaLog.push(m)));
after(async () => { await peer.value?.dispose(); });

/** llama.cpp's hyper-parameters as its loader prints them, the token it picks after each of `tokens`, and its tokenizer, for a GGUF. */
async function llamaRun(llama: Llama, file: string, tokens: number[], text: string): Promise<{ info: Map<string, string>; next: number[]; ids: number[] }> {
  llamaLog.length = 0;
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    // the log comes from llama.cpp's loading thread and may arrive after the load resolves: wait for its last print_info line
    for (let waited = 0; !llamaLog.some((l) => l.includes('print_info: max token length')); waited += 10) {
      if (waited > 10000) assert.fail(`llama.cpp printed no hyper-parameters while loading ${file}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const info = new Map<string, string>();
    for (const l of llamaLog.join('\n').split('\n')) {
      const m = /print_info: (\S[^=]*?)\s*= (.*)$/.exec(l);
      if (m) info.set(m[1]!, m[2]!.trim());
    }
    const ctx = await model.createContext({ contextSize: 64, batchSize: 64, threads: 1, flashAttention: false });
    try {
      // node-llama-cpp's Token is a branded number; the ids are fed as they are.
      const res = await ctx.getSequence().controlledEvaluate(tokens.map((t) => [t, { generateNext: { token: true } }] as [never, { generateNext: { token: true } }]));
      return { info, next: res.map((r) => r?.next.token ?? -1), ids: model.tokenize(text, true) };
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

for (const name of FIXTURES) {
  toolTest(peer, `llama.cpp loads our ${name} Q8_0 GGUF as Grok-2 (dense n_ff, experts, heads, plain RoPE, BPE vocabulary), runs it, and tokenises its prompt as tiktoken`, async (llama) => {
    const g = golden(name);
    const cj = configJson(name);
    const { info, next, ids } = await llamaRun(llama, await convertedFile(name, 'q8_0'), g.tokens, g.prompt_text);
    assert.equal(info.get('arch'), 'grok');
    assert.equal(info.get('n_embd'), String(cj.hidden_size));
    assert.equal(info.get('n_layer'), String(cj.num_hidden_layers));
    assert.equal(info.get('n_head'), String(cj.num_attention_heads));
    assert.equal(info.get('n_head_kv'), String(cj.num_key_value_heads));
    assert.equal(info.get('n_embd_head_k'), String(cj.head_dim));
    assert.equal(info.get('n_rot'), String(cj.head_dim));
    assert.equal(info.get('n_ff'), String(cj.intermediate_size), 'the dense MLP width');
    assert.equal(info.get('n_expert'), String(cj.num_local_experts));
    assert.equal(info.get('n_expert_used'), String(cj.num_experts_per_tok));
    assert.equal(info.get('rope scaling'), 'none');
    assert.equal(Number(info.get('f_logit_scale')), cj.output_multiplier_scale);
    assert.equal(Number(info.get('f_norm_rms_eps')), cj.rms_norm_eps);
    assert.equal(info.get('vocab type'), 'BPE');
    assert.equal(info.get('n_vocab'), String(cj.vocab_size));
    assert.match(info.get('EOS token') ?? '', /^2 '<\|eos\|>'$/);
    assert.equal(next.length, g.tokens.length);
    assert.ok(next.every((t) => Number.isInteger(t) && t >= 0 && t < (cj.vocab_size as number)), `llama.cpp's tokens: ${next.join(',')}`);
    assert.deepEqual(ids, g.tokens);
  });
}

toolTest(peer, 'llama.cpp tokenises every tiktoken golden like tiktoken through our GGUF vocabulary of tokenizer.tok.json', async (llama) => {
  const model = await llama.loadModel({ modelPath: await bigTokGguf(), gpuLayers: 0, vocabOnly: true });
  try {
    const wrong = tokGolden.encode.filter((e) => JSON.stringify(model.tokenize(e.text, true)) !== JSON.stringify(e.ids));
    assert.deepEqual(wrong.map((e) => e.category), []);
    const badDecode = tokGolden.decode.filter((e) => model.detokenize(e.ids, true) !== e.text);
    assert.deepEqual(badDecode.map((e) => e.category), []);
  } finally {
    await model.dispose();
  }
});
