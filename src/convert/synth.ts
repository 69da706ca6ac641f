/**
 * A random-weight grok GGUF with a preset's true widths (grok1: D 6144, 48/8 heads of 128, F 32768,
 * 8 experts, vocab 131072) and N layers, for benchmarks and loader tests at real sizes without the 300 GB
 * checkpoint. Written streaming (a few chunks of rows in memory). Weights: matrices, router and
 * embedding ≈ N(0, 0.02²) (Irwin–Hall, see gaussianFill), norms 1 — the residual stream stays O(1)
 * through the ×78 embedding scale, and attention logits stay far below the soft-cap. A synthetic vocabulary is embedded (or --tokenizer's) so llama.cpp
 * loads the file. Values depend only on (seed, tensor name, chunk of rows), not on the type, the thread
 * count or the order of writing; generation and quantisation run on --threads workers.
 *
 * Size: a 2-layer grok1 Q8_0 slice is 2·(3·8·6144·32768 + 2·6144² + 2·6144·1024)·34/32 + 131072·6144·34/32
 * ≈ 11.3 GB (10.5 GiB); check free disk space first.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../base/errors.js';
import { readSmallFile } from '../base/files.js';
import { vocabularyFromModelProto } from '../tokenizer/vocabulary.js';
import { LLAMA_FTYPE, addGrokMetadata, addVocabulary, blockTypeForRow, grokTensorPlan, syntheticVocabulary, type GrokTensorSpec } from '../model/gguf-grok.js';
import { GgufWriter } from '../formats/gguf-writer.js';
import { GROK1, GROK2, validateConfig, type GrokConfig } from '../model/config.js';
import { QuantPool } from './pool.js';
import type { BlockType } from '../quant/index.js';
import { readModelProto } from '../tokenizer/protobuf.js';
import { CKPT_EMBEDDING, CKPT_FINAL_NORM, ckptParameterPaths } from '../formats/ckpt.js';
import { writeCkptArray, writeCkptQuantized } from '../formats/ckpt-writer.js';
import { gaussianFill } from './pool-jobs.js';
import { f32ToBf16 } from '../quant/half.js';

/** Fixture-like widths whose rows fit every block format (D and F multiples of 256). */
export const TINY: Readonly<GrokConfig> = Object.freeze({
  ...GROK1,
  vocabSize: 512, dModel: 256, nLayers: 1, nHeads: 4, nKVHeads: 2, headDim: 64, ffnSize: 512, nExperts: 4, nExpertsUsed: 2,
  contextLength: 512,
});

export const PRESETS: Readonly<Record<string, Readonly<GrokConfig>>> = { grok1: GROK1, grok2: GROK2, tiny: TINY };

export interface SynthOptions {
  config: GrokConfig;
  type: BlockType;
  embdType?: BlockType;
  out: string;
  seed?: number;
  tokenizer?: string;
  onProgress?: (doneBytes: number, totalBytes: number, tensor: string) => void;
  /** Worker threads generating and quantising (0 or 1: on the calling thread). Default 1. */
  threads?: number;
}

/** 32-bit FNV-1a of a string, mixed with the seed: one independent stream per tensor name. */
function streamSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h || 1;
}

function storedType(t: GrokTensorSpec, type: BlockType, embdType: BlockType): BlockType {
  if (t.kind === 'vector' || t.kind === 'router') return 'f32';
  return blockTypeForRow(t.kind === 'embedding' ? embdType : type, t.nIn);
}

/** Writes the random model; returns the file size. */
export async function synthModel(opts: SynthOptions): Promise<number> {
  const c = opts.config;
  validateConfig(c, 'synth config');
  const embdType = opts.embdType ?? opts.type;
  const seed = opts.seed ?? 0;
  const plan = grokTensorPlan(c);
  const w = new GgufWriter(opts.out);
  const pool = new QuantPool(opts.threads ?? 1);
  try {
    addGrokMetadata(w, c, {
      name: `grok-synth-${c.nLayers}L`, fileType: LLAMA_FTYPE[opts.type],
      description: `random weights (seed ${seed}) from grok-ts synth: N(0, 0.02²) matrices, unit norms; ${opts.tokenizer ? 'tokenizer from ' + path.basename(opts.tokenizer) : 'synthetic stand-in vocabulary'}`,
    });
    if (opts.tokenizer) {
      const v = vocabularyFromModelProto(readModelProto(readSmallFile(opts.tokenizer, 256 << 20), opts.tokenizer));
      if (v.tokens.length !== c.vocabSize) throw new FormatError(opts.tokenizer, `the tokenizer has ${v.tokens.length} pieces, the model's vocabulary is ${c.vocabSize} (set the vocabulary size to match)`);
      addVocabulary(w, v);
    } else {
      addVocabulary(w, syntheticVocabulary(c));
    }
    const types = plan.map((t) => storedType(t, opts.type, embdType));
    plan.forEach((t, i) => w.addTensorInfo(t.name, types[i]!, t.shape));
    await w.writeHeader();
    const total = w.dataSize;
    let done = 0;
    for (let i = 0; i < plan.length; i++) {
      const t = plan[i]!;
      const tensorSeed = streamSeed(seed, t.name);
      async function* chunks(): AsyncGenerator<Uint8Array> {
        if (t.kind === 'vector') {
          const v = new Float32Array(t.nIn).fill(1);
          yield new Uint8Array(v.buffer);
          return;
        }
        const rows = t.shape.length === 3 ? t.shape[0]! * t.nOut : t.nOut;
        const per = Math.max(1, Math.min(rows, Math.floor((1 << 20) / t.nIn)));
        const inflight: Promise<Uint8Array>[] = [];
        for (let r0 = 0, k = 0; r0 < rows; r0 += per, k++) {
          // one generator stream per chunk: values depend on (seed, tensor, chunk), never on threads
          const chunkSeed = Math.imul(tensorSeed ^ k, 0x9e3779b1) >>> 0;
          inflight.push(pool.run({ type: types[i]!, nIn: t.nIn, rows: Math.min(per, rows - r0), gauss: { seed: chunkSeed, sigma: 0.02 } }).then((r) => r.out));
          while (inflight.length >= pool.depth) yield await inflight.shift()!;
        }
        while (inflight.length) yield await inflight.shift()!;
      }
      const progress = async function* (): AsyncGenerator<Uint8Array> {
        for await (const ch of chunks()) {
          done += ch.length;
          opts.onProgress?.(done, total, t.name);
          yield ch;
        }
      };
      await w.writeTensorData(t.name, progress());
    }
    await w.close();
  } catch (e) {
    await w.abort();
    throw e;
  } finally {
    await pool.close();
  }
  return fs.statSync(opts.out).size;
}

/**
 * The same kind of stand-in model in the released checkpoint's form (`grok synth --form ckpt-0`):
 * `<dir>/ckpt-0/tensorNNNNN_000` (formats.md §1: int8 weights with bf16 scales per output column — G = 8
 * groups for the attention output and the expert down projection — f32 embedding, norms and routers) and
 * `<dir>/config.json`, which `grok convert <dir>` reads. int8 levels ≈ N(0, 30²) (inside ±104), scales ≈
 * 0.02/30: the values have the float model's scale. A source for converter benchmarks at Grok-1 widths.
 * Returns the bytes written.
 */
export function synthCheckpoint(opts: { config: GrokConfig; dir: string; seed?: number; onProgress?: (done: number, total: number, tensor: string) => void }): number {
  const c = opts.config;
  validateConfig(c, 'synth config');
  const seed = opts.seed ?? 0;
  const D = c.dModel, F = c.ffnSize, E = c.nExperts, Q = c.nHeads * c.headDim, KV = c.nKVHeads * c.headDim;
  const ckpt = path.join(opts.dir, 'ckpt-0');
  fs.mkdirSync(ckpt, { recursive: true });
  if (fs.readdirSync(ckpt).length) throw new Error(`${ckpt}: not empty (refusing to mix checkpoints)`);
  const CHUNK = 1 << 22;
  const buf = new Float32Array(CHUNK);
  const i8 = new Int8Array(CHUNK);
  /** `n` values from stream `name`, N(0, sigma²), handed out in pieces of `bytesPer` bytes each. */
  const payload = (name: string, n: number, kind: 'f32' | 'i8' | 'bf16', sigma: number) => (write: (b: Uint8Array) => void) => {
    const s0 = streamSeed(seed, name);
    for (let i = 0, k = 0; i < n; i += CHUNK, k++) {
      const m = Math.min(CHUNK, n - i);
      const v = buf.subarray(0, m);
      if (kind === 'f32' && sigma === 0) v.fill(1);
      else gaussianFill(v, Math.imul(s0 ^ k, 0x9e3779b1) >>> 0, sigma);
      if (kind === 'f32') {
        write(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)); // written before the buffer is reused
      } else if (kind === 'i8') {
        const q = i8.subarray(0, m);
        q.set(v); // |v| < 3.47σ = 104: the truncating conversion stays in range
        write(new Uint8Array(q.buffer, q.byteOffset, m));
      } else {
        write(new Uint8Array(Uint16Array.from(v, (x) => f32ToBf16((0.02 / 30) * (1 + Math.abs(x)))).buffer)); // scales near 0.02/30
      }
    }
  };
  const quantized = (shape: number[], groups: number) => ({ shape, scalesShape: [...shape.slice(0, -2), groups, shape[shape.length - 1]!] });
  const slot: Record<string, { shape: number[]; scalesShape?: number[] }> = {
    'moe/linear/w': quantized([E, D, F], 1),
    'moe/linear_1/w': quantized([E, F, D], 8),
    'moe/linear_v/w': quantized([E, D, F], 1),
    'multi_head_attention/key/w': quantized([D, KV], 1),
    'multi_head_attention/linear/w': quantized([Q, D], 8),
    'multi_head_attention/query/w': quantized([D, Q], 1),
    'multi_head_attention/value/w': quantized([D, KV], 1),
    'rms_norm/scale': { shape: [D] }, 'rms_norm_1/scale': { shape: [D] }, 'rms_norm_2/scale': { shape: [D] }, 'rms_norm_3/scale': { shape: [D] },
    'router/w': { shape: [D, E] },
  };
  const files = ckptParameterPaths(c.nLayers).map((p) => {
    if (p === CKPT_EMBEDDING) return { p, shape: [c.vocabSize, D] };
    if (p === CKPT_FINAL_NORM) return { p, shape: [D] };
    const s = slot[p.replace(/^transformer\/decoder_layer_\d+\//, '')];
    if (!s) throw new Error(`synth: no shape for ${p}`);
    return { p, ...s };
  });
  const size = (f: { shape: number[]; scalesShape?: number[] }) => {
    const n = f.shape.reduce((a, b) => a * b, 1);
    return f.scalesShape ? n + 2 * f.scalesShape.reduce((a, b) => a * b, 1) : 4 * n;
  };
  const total = files.reduce((a, f) => a + size(f), 0);
  let done = 0;
  files.forEach((f, i) => {
    const file = path.join(ckpt, `tensor${String(i).padStart(5, '0')}_000`);
    const n = f.shape.reduce((a, b) => a * b, 1);
    if (f.scalesShape) {
      writeCkptQuantized(file, f.shape, payload(f.p, n, 'i8', 30), f.scalesShape, payload(`${f.p}/scales`, f.scalesShape.reduce((a, b) => a * b, 1), 'bf16', 0.3));
    } else {
      const norm = f.p.endsWith('/scale');
      writeCkptArray(file, f.shape, payload(f.p, n, 'f32', norm ? 0 : 0.02));
    }
    done += size(f);
    opts.onProgress?.(done, total, f.p);
  });
  const json = {
    vocab_size: c.vocabSize, emb_size: D, num_layers: c.nLayers, num_q_heads: c.nHeads, num_kv_heads: c.nKVHeads, key_size: c.headDim,
    ffn_size: F, num_experts: E, num_selected_experts: c.nExpertsUsed, sequence_len: c.contextLength,
    embedding_multiplier_scale: c.embeddingMultiplier, output_multiplier_scale: c.outputMultiplier, attn_output_multiplier: c.attnOutputMultiplier,
    max_attn_value: c.attnSoftcap, rms_norm_eps: c.rmsNormEps, rope_base: c.ropeBase, pad_token: c.padToken, eos_token: c.eosToken, bos_token: c.bosToken,
  };
  fs.writeFileSync(path.join(opts.dir, 'config.json'), `${JSON.stringify(json, null, 1)}\n`);
  return total;
}
