/**
 * Converting any model this runtime reads (ckpt-0, safetensors, GGUF) into a grok GGUF. Writes llama.cpp's `grok` GGUF (LLM_ARCH_GROK): matrices as [out, in] rows, experts merged into
 * `_exps` stacks, norms and routers F32, tied output (no output.weight unless the source has one).
 * Streams tensor by tensor: memory holds one source matrix (one expert) and a few chunks of rows in flight
 * on the quantisation workers (--threads).
 * Matrices whose rows do not fit the K-quant super-block take llama.cpp's fallback type (blockTypeForRow).
 * From the checkpoint's int8 + bf16 scales, Q8_0 keeps the checkpoint's own levels and scale wherever that
 * is exact (xai8RowsToQ8_0). A source already stored in the target type is copied, not re-quantised.
 *
 * Tokenizer keys (llama.cpp refuses a GGUF without them): from --tokenizer, else the source GGUF's own,
 * else a synthetic stand-in vocabulary (syntheticVocabulary; said so in general.description).
 */
import fs from 'node:fs';
import path from 'node:path';
import { readSmallFile } from '../base/files.js';
import { type GgufVocabulary, vocabularyFromModelProto } from '../tokenizer/vocabulary.js';
import { LLAMA_FTYPE, addGrokMetadata, addVocabulary, blockTypeForRow, grokTensorPlan, syntheticVocabulary, type GrokTensorSpec } from '../model/gguf-grok.js';
import { FormatError } from '../base/errors.js';
import { GgufWriter } from '../formats/gguf-writer.js';
import { openModel } from '../formats/open.js';
import { isQuantizedRef, type ModelSource } from '../formats/tensor-ref.js';
import type { ModelBinding } from '../model/binding.js';
import { locateMatrix, locateVector, WeightFiles, type MatrixLocation } from '../model/weights.js';
import type { GrokConfig } from '../model/config.js';
import { bindModel } from '../model/map.js';
import { tokenizerPiecesFromGguf } from '../model/map-gguf.js';
import type { Xai8Matrix } from '../quant/matrix.js';
import { blockFormat, rowBytes, type BlockType } from '../quant/index.js';
import type { QuantResult } from './pool-jobs.js';
import { QuantPool } from './pool.js';
import { xai8Rows } from '../quant/xai8.js';
import { readModelProto } from '../tokenizer/protobuf.js';

export const CONVERT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'iq4_xs'] as const;

export interface ConvertOptions {
  source: string;
  out: string;
  type: BlockType;
  /** Type of token_embd / output; default: `type`. */
  embdType?: BlockType;
  tokenizer?: string;
  config?: string;
  name?: string;
  /** Measure quantisation error per tensor (dequantise what was written, compare with the source values). */
  measure?: boolean;
  onProgress?: (doneBytes: number, totalBytes: number, tensor: string) => void;
  /** Quantisation worker threads (0 or 1: on the calling thread). Default 1. */
  threads?: number;
}

export interface TensorStat {
  name: string;
  type: BlockType;
  values: number;
  bytes: number;
  /** Σ (stored − source)², Σ source², max |stored − source| (only with `measure`). */
  sumSqErr: number;
  sumSq: number;
  maxErr: number;
  /** true when the source bytes were copied unchanged. */
  copied: boolean;
}

export interface ConvertResult {
  config: GrokConfig;
  tensors: TensorStat[];
  fileBytes: number;
  vocabulary: 'tokenizer' | 'source' | 'synthetic';
  /** xai8 → q8_0: blocks that kept the checkpoint's own scale and levels, of all such blocks. */
  q8Exact: { kept: number; total: number };
}

/** One source matrix (nOut rows of nIn values, GGUF orientation), however the source stores it. */
interface MatrixSource {
  rows(r0: number, count: number, out: Float32Array): void;
  /** Set when the source stores these rows as blocks of `rawType`: the bytes can be copied. */
  rawType?: BlockType;
  rawRows?(r0: number, count: number): Uint8Array;
  xai8?: Xai8Matrix;
}

/** Rows of a located matrix, read in chunks (the weight reader of src/model/weights.ts). */
function openMatrix(files: WeightFiles, m: MatrixLocation): MatrixSource {
  const { nIn, nOut } = m;
  if (m.layout === 'rows') {
    const f = blockFormat(m.type);
    const rb = rowBytes(f, nIn);
    const rawRows = (r0: number, n: number) => files.read({ file: m.bytes.file, offset: m.bytes.offset + r0 * rb, length: n * rb });
    return {
      rawType: m.type,
      rawRows,
      rows(r0, n, out) {
        const raw = rawRows(r0, n);
        for (let j = 0; j < n; j++) f.dequantize(raw, j * rb, nIn, out, j * nIn);
      },
    };
  }
  if (m.layout === 'transpose') {
    const vals = files.transposed(m);
    return { rows: (r0, n, out) => out.set(vals.subarray(r0 * nIn, (r0 + n) * nIn)) };
  }
  const q = files.read(m.q);
  const sb = files.read(m.scales);
  const x: Xai8Matrix = {
    layout: 'xai8', nIn, nOut, groups: m.groups,
    q: new Int8Array(q.buffer, q.byteOffset, q.length),
    scales: new Uint16Array(sb.buffer, sb.byteOffset, m.groups * nOut),
  };
  return { xai8: x, rows: (r0, n, out) => xai8Rows(x, r0, n, out) };
}

/** The stored type of each planned tensor. */
function typeOf(t: GrokTensorSpec, type: BlockType, embdType: BlockType): BlockType {
  if (t.kind === 'vector' || t.kind === 'router') return 'f32';
  return blockTypeForRow(t.kind === 'embedding' ? embdType : type, t.nIn);
}

function chooseVocabulary(opts: ConvertOptions, source: ModelSource, c: GrokConfig): { vocab: GgufVocabulary; kind: ConvertResult['vocabulary'] } {
  if (opts.tokenizer) {
    const vocab = vocabularyFromModelProto(readModelProto(readSmallFile(opts.tokenizer, 256 << 20), opts.tokenizer));
    if (vocab.tokens.length !== c.vocabSize) {
      throw new FormatError(opts.tokenizer, `tokenizer has ${vocab.tokens.length} pieces, but the model's vocabulary is ${c.vocabSize}`);
    }
    return { vocab, kind: 'tokenizer' };
  }
  if (source.format === 'gguf' && source.metadata.has('tokenizer.ggml.model')) {
    const { addBos: _b, addEos: _e, ...vocab } = tokenizerPiecesFromGguf(source);
    if (vocab.tokens.length !== c.vocabSize) {
      throw new FormatError(source.path, `the GGUF's tokenizer has ${vocab.tokens.length} pieces, but its vocabulary size is ${c.vocabSize}`);
    }
    return { kind: 'source', vocab };
  }
  return { vocab: syntheticVocabulary(c), kind: 'synthetic' };
}

/** Converts a model to a grok GGUF. Returns per-tensor statistics (errors only with `measure`). */
export async function convertModel(opts: ConvertOptions): Promise<ConvertResult> {
  const type = opts.type;
  const embdType = opts.embdType ?? type;
  for (const t of [type, embdType]) blockFormat(t);
  const source = openModel(opts.source);
  const files = new WeightFiles();
  const pool = new QuantPool(opts.threads ?? 1);
  let writer: GgufWriter | undefined;
  try {
    const binding: ModelBinding = bindModel(source, opts.config);
    const c = binding.config;
    const plan = grokTensorPlan(c, { output: binding.tensors.has('output') });
    const { vocab, kind } = chooseVocabulary(opts, source, c);
    if (path.resolve(opts.out) === path.resolve(opts.source)) throw new Error(`${opts.out}: would overwrite the source`);
    const inputs = new Set<string>();
    for (const t of source.tensors.values()) { inputs.add(t.file); if (isQuantizedRef(t)) inputs.add(t.scales.file); }
    for (const f of [opts.tokenizer, opts.config]) if (f) inputs.add(f);
    writer = new GgufWriter(opts.out, { inputs: [...inputs] });
    addGrokMetadata(writer, c, {
      name: opts.name ?? path.basename(path.resolve(opts.source)).replace(/\.(gguf|safetensors)$/, ''),
      fileType: LLAMA_FTYPE[type],
      description: kind === 'synthetic'
        ? `converted by grok-ts from ${source.format}; NO TOKENIZER WAS GIVEN: the vocabulary is a synthetic stand-in (<s> </s> <unk>, byte pieces, <tok_N>) so that llama.cpp can load the file`
        : `converted by grok-ts from ${source.format}`,
    });
    addVocabulary(writer, vocab);
    const types = plan.map((t) => typeOf(t, type, embdType));
    plan.forEach((t, i) => writer!.addTensorInfo(t.name, types[i]!, t.shape));
    await writer.writeHeader();

    const total = writer.dataSize;
    let done = 0;
    const stats: TensorStat[] = [];
    const q8Exact = { kept: 0, total: 0 };
    for (let i = 0; i < plan.length; i++) {
      const t = plan[i]!;
      const st = types[i]!;
      const stat: TensorStat = { name: t.name, type: st, values: t.shape.reduce((a, b) => a * b, 1), bytes: 0, sumSqErr: 0, sumSq: 0, maxErr: 0, copied: false };
      async function* chunks(): AsyncGenerator<Uint8Array> {
        if (t.kind === 'vector') {
          const v = files.vector(locateVector(binding, t.canonical, t.nIn));
          yield new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
          return;
        }
        const count = t.kind === 'experts' ? c.nExperts : 1;
        const rowsPerChunk = Math.max(1, Math.min(t.nOut, Math.floor((1 << 20) / t.nIn)));
        // Chunks in flight on the pool, consumed in order: output order and error sums are fixed, memory bounded.
        const inflight: Promise<Uint8Array | QuantResult>[] = [];
        const take = (r: Uint8Array | QuantResult): Uint8Array => {
          if (r instanceof Uint8Array) return r;
          q8Exact.kept += r.kept;
          stat.sumSqErr += r.sumSqErr;
          stat.sumSq += r.sumSq;
          stat.maxErr = Math.max(stat.maxErr, r.maxErr);
          return r.out;
        };
        for (let e = 0; e < count; e++) {
          const canonical = t.kind === 'experts' ? `${t.canonical}.${e}` : t.canonical;
          const src = openMatrix(files, locateMatrix(binding, canonical, t.nIn, t.nOut, t.kind === 'experts' ? c.nExperts : undefined));
          for (let r0 = 0; r0 < t.nOut; r0 += rowsPerChunk) {
            const n = Math.min(rowsPerChunk, t.nOut - r0);
            if (src.rawType === st && src.rawRows) {
              inflight.push(Promise.resolve(src.rawRows(r0, n)));
              stat.copied = true;
            } else if (src.xai8) {
              // The chunk's output columns of the checkpoint matrix, copied out contiguously for a worker.
              const m = src.xai8;
              const q = new Int8Array(t.nIn * n);
              for (let k = 0; k < t.nIn; k++) q.set(m.q.subarray(k * t.nOut + r0, k * t.nOut + r0 + n), k * n);
              const scales = new Uint16Array(m.groups * n);
              for (let g = 0; g < m.groups; g++) scales.set(m.scales.subarray(g * t.nOut + r0, g * t.nOut + r0 + n), g * n);
              if (st === 'q8_0') q8Exact.total += (n * t.nIn) / 32;
              inflight.push(pool.run({ type: st, nIn: t.nIn, rows: n, xai8: { q, scales, groups: m.groups }, measure: opts.measure }));
            } else if (src.rawType && src.rawRows) {
              // another block type: the worker dequantises (off the thread that reads and writes)
              inflight.push(pool.run({ type: st, nIn: t.nIn, rows: n, raw: { type: src.rawType, bytes: src.rawRows(r0, n) }, measure: opts.measure }));
            } else {
              const vals = new Float32Array(n * t.nIn); // transferred to a worker
              src.rows(r0, n, vals);
              inflight.push(pool.run({ type: st, nIn: t.nIn, rows: n, vals, measure: opts.measure }));
            }
            while (inflight.length >= pool.depth) yield take(await inflight.shift()!);
          }
        }
        while (inflight.length) yield take(await inflight.shift()!);
      }
      const report = async function* (): AsyncGenerator<Uint8Array> {
        for await (const chunk of chunks()) {
          stat.bytes += chunk.length;
          done += chunk.length;
          opts.onProgress?.(done, total, t.name);
          yield chunk;
        }
      };
      await writer.writeTensorData(t.name, report());
      stats.push(stat);
    }
    await writer.close();
    return { config: c, tensors: stats, fileBytes: fs.statSync(opts.out).size, vocabulary: kind, q8Exact };
  } catch (e) {
    await writer?.abort();
    throw e;
  } finally {
    files.close();
    source.close();
    await pool.close();
  }
}

/** Per stored type: tensors, values, bytes, bits per weight, relative RMS error, max |error|. */
export function summarise(r: ConvertResult): string {
  const by = new Map<string, { n: number; values: number; bytes: number; se: number; ss: number; max: number; copied: number }>();
  for (const t of r.tensors) {
    const s = by.get(t.type) ?? { n: 0, values: 0, bytes: 0, se: 0, ss: 0, max: 0, copied: 0 };
    s.n++; s.values += t.values; s.bytes += t.bytes; s.se += t.sumSqErr; s.ss += t.sumSq; s.max = Math.max(s.max, t.maxErr);
    if (t.copied) s.copied++;
    by.set(t.type, s);
  }
  const lines = ['type     tensors        values   bits/weight   rel. RMS err   max |err|'];
  for (const [type, s] of by) {
    const rel = s.ss > 0 ? Math.sqrt(s.se / s.ss) : 0;
    lines.push(`${type.padEnd(8)} ${String(s.n).padStart(7)} ${String(s.values).padStart(13)} ${((8 * s.bytes) / s.values).toFixed(3).padStart(13)} ${rel.toExponential(3).padStart(14)} ${s.max.toExponential(3).padStart(11)}${s.copied ? `  (${s.copied} copied)` : ''}`);
  }
  if (r.q8Exact.total) lines.push(`int8 → q8_0 blocks that kept the checkpoint's own scale and levels: ${r.q8Exact.kept} of ${r.q8Exact.total}`);
  return lines.join('\n');
}
