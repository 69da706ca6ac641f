/**
 * How long opening a Grok-1-sized GGUF takes before any weight is read: the header of a file with the
 * released model's metadata (131,072-piece vocabulary: tokens, scores, types) and its 64 × 12 + 2 tensor
 * infos, parsed by openGguf, then bindGguf and tokenizerPiecesFromGguf. The tensor dims are the real ones;
 * the data section is a sparse file of the full size (no bytes written).
 *
 *   npx tsc -p . && node dist/bench/gguf-header.js [runs=5]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openGguf } from '../src/formats/gguf.js';
import { bindGguf, tokenizerPiecesFromGguf } from '../src/model/map-gguf.js';
import { buildGguf, strv, u32v, f32v, type GTensor, type GVal } from '../test/gguf-builder.js';

const runs = Number(process.argv[2] ?? 5);
const V = 131072, D = 6144, F = 32768, E = 8, L = 64, KV = 1024;

const tokens: GVal[] = [];
for (let i = 0; i < V; i++) tokens.push(strv(i < 259 ? (i < 3 ? ['[PAD]', '[BOS]', '[EOS]'][i]! : `<0x${(i - 3).toString(16).toUpperCase().padStart(2, '0')}>`) : `▁piece${i}`));
const kvs: [string, GVal][] = [
  ['general.architecture', strv('grok')], ['grok.context_length', u32v(8192)], ['grok.embedding_length', u32v(D)],
  ['grok.block_count', u32v(L)], ['grok.feed_forward_length', u32v(F)], ['grok.attention.head_count', u32v(48)],
  ['grok.attention.head_count_kv', u32v(8)], ['grok.attention.layer_norm_rms_epsilon', f32v(1e-5)],
  ['grok.expert_count', u32v(E)], ['grok.expert_used_count', u32v(2)], ['grok.rope.dimension_count', u32v(128)],
  ['tokenizer.ggml.model', strv('llama')],
  ['tokenizer.ggml.tokens', { t: 9, et: 8, items: tokens }],
  ['tokenizer.ggml.scores', { t: 9, et: 6, items: Array.from({ length: V }, (_, i) => f32v(-i)) }],
  ['tokenizer.ggml.token_type', { t: 9, et: 5, items: Array.from({ length: V }, (_, i) => ({ t: 5, v: i < 3 ? 3 : i < 259 ? 6 : 1 })) }],
];
// Q8_0 sizes (34 bytes per 32 values); the builder gets empty data and forced offsets, the file is extended sparsely.
const q8 = (n: number) => (n / 32) * 34;
const specs: [string, number[], number][] = [['token_embd.weight', [D, V], 8], ['output_norm.weight', [D], 0]];
for (let l = 0; l < L; l++) {
  const p = `blk.${l}.`;
  specs.push([`${p}attn_norm.weight`, [D], 0], [`${p}attn_q.weight`, [D, D], 8], [`${p}attn_k.weight`, [D, KV], 8],
    [`${p}attn_v.weight`, [D, KV], 8], [`${p}attn_output.weight`, [D, D], 8], [`${p}attn_output_norm.weight`, [D], 0],
    [`${p}ffn_norm.weight`, [D], 0], [`${p}ffn_gate_inp.weight`, [D, E], 0], [`${p}ffn_gate_exps.weight`, [D, F, E], 8],
    [`${p}ffn_up_exps.weight`, [D, F, E], 8], [`${p}ffn_down_exps.weight`, [F, D, E], 8], [`${p}layer_output_norm.weight`, [D], 0]);
}
let off = 0;
const tensors: GTensor[] = specs.map(([name, dims, type]) => {
  const n = dims.reduce((a, b) => a * b, 1);
  const t: GTensor = { name, dims, type, data: new Uint8Array(0), offset: off };
  off += Math.ceil((type === 8 ? q8(n) : 4 * n) / 32) * 32;
  return t;
});
const built = buildGguf({ kvs, tensors, headerOnly: true });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-bench-'));
const file = path.join(dir, 'grok-1-q8_0.gguf');
fs.writeFileSync(file, built.bytes);
fs.truncateSync(file, built.at.get('data')! + off); // sparse: ~334 GB apparent size, no data written
try {
  console.log(`header ${built.at.get('data')} bytes, ${tensors.length} tensors, file ${(fs.statSync(file).size / 1e9).toFixed(1)} GB (sparse)`);
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const src = openGguf(file);
    const t1 = performance.now();
    const b = bindGguf(src);
    const t2 = performance.now();
    const tk = tokenizerPiecesFromGguf(src);
    const t3 = performance.now();
    console.log(`run ${r}: openGguf ${(t1 - t0).toFixed(1)} ms, bindGguf ${(t2 - t1).toFixed(1)} ms (${b.tensors.size} bindings), tokenizer tables ${(t3 - t2).toFixed(1)} ms (${tk.tokens.length} pieces)`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
