/**
 * `grok convert <ckpt-0 dir | .safetensors | .gguf> --to gguf --type <type> --out model.gguf
 *   [--tokenizer tokenizer.model] [--embd-type <type>] [--config config.json] [--name NAME] [--stats] [--progress]`
 *
 * Writes llama.cpp's `grok` GGUF (formats.md §3.6): matrices as [out, in] rows, experts merged into
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
import { type GgufVocabulary, vocabularyFromModelProto } from '../tokenizer/vocabulary.js';
import { LLAMA_FTYPE, addGrokMetadata, addVocabulary, blockTypeForRow, grokTensorPlan, syntheticVocabulary, type GrokTensorSpec } from '../model/gguf-grok.js';
import { FormatError } from '../base/errors.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { GgufWriter } from '../formats/gguf-writer.js';
import { openModel } from '../formats/open.js';
import { isQuantizedRef, type ModelSource } from '../formats/tensor-ref.js';
import type { Binding, ModelBinding } from '../model/binding.js';
import type { GrokConfig } from '../model/config.js';
import { bindModel } from '../model/map.js';
import { tokenizerPiecesFromGguf } from '../model/map-gguf.js';
import type { Xai8Matrix } from '../quant/matrix.js';
import { blockFormat, isBlockType, rowBytes, type BlockType } from '../quant/index.js';
import type { QuantResult } from '../quant/pool-jobs.js';
import { QuantPool } from '../quant/pool.js';
import { xai8Rows } from '../quant/xai8.js';
import { readModelProto } from '../tokenizer/protobuf.js';
import { UsageError, wrapParse } from './errors.js';

export const CONVERT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl'] as const;

const USAGE = `usage: grok convert <ckpt-0 dir | model.safetensors | model.gguf> --type <type> --out model.gguf
         [--to gguf] [--tokenizer tokenizer.model] [--embd-type <type>] [--config config.json] [--name NAME] [--stats] [--progress] [--threads N]
  types: ${CONVERT_TYPES.join(', ')}
  --embd-type  type of token_embd (and output) when it should differ from --type (e.g. q6_k for a q4_k model)
  --stats      measure each tensor's quantisation error and print a summary per stored type
  --threads    quantisation worker threads (default: all cores)`;

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

/** Reads byte ranges of source files through cached descriptors. */
class Files {
  private fds = new Map<string, number>();
  read(file: string, offset: number, length: number): Uint8Array {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = fs.openSync(file, 'r');
      this.fds.set(file, fd);
    }
    const out = new Uint8Array(length);
    for (let done = 0; done < length;) {
      const n = fs.readSync(fd, out, done, Math.min(1 << 30, length - done), offset + done);
      if (n === 0) throw new FormatError(file, `unexpected end of file reading ${length} bytes at offset ${offset}`);
      done += n;
    }
    return out;
  }
  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

/** One source matrix (nOut rows of nIn values, GGUF orientation), however the source stores it. */
interface MatrixSource {
  rows(r0: number, count: number, out: Float32Array): void;
  /** Set when the source stores these rows as blocks of `rawType`: the bytes can be copied. */
  rawType?: BlockType;
  rawRows?(r0: number, count: number): Uint8Array;
  xai8?: Xai8Matrix;
}

function shapeError(name: string, b: Binding, expected: string): never {
  throw new FormatError(b.ref.file, `shape mismatch for ${name} (${b.ref.name}): got [${b.ref.shape.join(', ')}] ${b.ref.type}, expected ${expected}`);
}

function openMatrix(files: Files, name: string, b: Binding, nIn: number, nOut: number, count?: number): MatrixSource {
  const ref = b.ref;
  let s = ref.shape;
  if (b.index !== undefined) {
    if (s.length < 2 || (count !== undefined && s[0] !== count) || b.index < 0 || b.index >= s[0]!) {
      shapeError(name, b, `a stack of ${count ?? '?'} matrices with element ${b.index}`);
    }
    s = s.slice(1);
  }
  const index = b.index ?? 0;
  if (b.kind === 'rows') {
    if (!isBlockType(ref.type)) shapeError(name, b, 'a float or block-quantised type');
    if (s.length !== 2 || s[0] !== nOut || s[1] !== nIn) shapeError(name, b, `[${nOut}, ${nIn}] ([out, in])`);
    const f = blockFormat(ref.type);
    const rb = rowBytes(f, nIn);
    const base = ref.offset + index * rb * nOut;
    const rawRows = (r0: number, n: number) => files.read(ref.file, base + r0 * rb, n * rb);
    return {
      rawType: ref.type,
      rawRows,
      rows(r0, n, out) {
        const raw = rawRows(r0, n);
        for (let j = 0; j < n; j++) f.dequantize(raw, j * rb, nIn, out, j * nIn);
      },
    };
  }
  if (b.kind === 'transpose') {
    if (!isBlockType(ref.type) || blockFormat(ref.type).blockSize !== 1) shapeError(name, b, 'a plain float matrix');
    if (s.length !== 2 || s[0] !== nIn || s[1] !== nOut) shapeError(name, b, `[${nIn}, ${nOut}] ([in, out])`);
    const f = blockFormat(ref.type);
    const raw = files.read(ref.file, ref.offset + index * nIn * nOut * f.bytesPerBlock, nIn * nOut * f.bytesPerBlock);
    const vals = new Float32Array(nIn * nOut);
    f.dequantize(raw, 0, nIn * nOut, vals, 0);
    return {
      rows(r0, n, out) {
        for (let j = 0; j < n; j++) for (let k = 0; k < nIn; k++) out[j * nIn + k] = vals[k * nOut + r0 + j]!;
      },
    };
  }
  if (b.kind === 'xai8') {
    if (!isQuantizedRef(ref) || ref.type !== 'i8') shapeError(name, b, 'int8 weights with scales');
    if (s.length !== 2 || s[0] !== nIn || s[1] !== nOut) shapeError(name, b, `[${nIn}, ${nOut}] ([in, out])`);
    const sc = ref.scales;
    const ss = b.index === undefined ? sc.shape : sc.shape.slice(1);
    const groups = ss[0]!;
    if (ss.length !== 2 || ss[1] !== nOut || !(groups > 0) || nIn % groups !== 0 || sc.type !== 'bf16') {
      throw new FormatError(sc.file, `${name}: scales [${sc.shape.join(', ')}] ${sc.type}, expected bf16 [G, ${nOut}] with G dividing ${nIn}`);
    }
    const q = files.read(ref.file, ref.offset + index * nIn * nOut, nIn * nOut);
    const sb = files.read(sc.file, sc.offset + index * groups * nOut * 2, groups * nOut * 2);
    const m: Xai8Matrix = {
      layout: 'xai8', nIn, nOut, groups,
      q: new Int8Array(q.buffer, q.byteOffset, q.length),
      scales: new Uint16Array(sb.buffer, sb.byteOffset, groups * nOut),
    };
    return { xai8: m, rows: (r0, n, out) => xai8Rows(m, r0, n, out) };
  }
  throw new FormatError(ref.file, `${name}: a ${b.kind} binding cannot be used as a matrix`);
}

function readVector(files: Files, name: string, b: Binding, n: number): Float32Array {
  const ref = b.ref;
  if (b.kind !== 'vector') throw new FormatError(ref.file, `${name}: expected a vector, got a ${b.kind} binding`);
  if (ref.shape.reduce((a, d) => a * d, 1) !== n || !isBlockType(ref.type)) shapeError(name, b, `[${n}] of floats`);
  const out = new Float32Array(n);
  blockFormat(ref.type).dequantize(files.read(ref.file, ref.offset, ref.length), 0, n, out, 0);
  return out;
}

/** The stored type of each planned tensor. */
function typeOf(t: GrokTensorSpec, type: BlockType, embdType: BlockType): BlockType {
  if (t.kind === 'vector' || t.kind === 'router') return 'f32';
  return blockTypeForRow(t.kind === 'embedding' ? embdType : type, t.nIn);
}

function chooseVocabulary(opts: ConvertOptions, source: ModelSource, c: GrokConfig): { vocab: GgufVocabulary; kind: ConvertResult['vocabulary'] } {
  if (opts.tokenizer) {
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(opts.tokenizer);
    } catch (e) {
      throw new FormatError(opts.tokenizer, `cannot read tokenizer: ${(e as Error).message}`);
    }
    const vocab = vocabularyFromModelProto(readModelProto(bytes, opts.tokenizer));
    if (vocab.tokens.length !== c.vocabSize) {
      throw new FormatError(opts.tokenizer, `tokenizer has ${vocab.tokens.length} pieces, but the model's vocabulary is ${c.vocabSize}`);
    }
    return { vocab, kind: 'tokenizer' };
  }
  if (source.format === 'gguf' && source.metadata.has('tokenizer.ggml.model')) {
    const d = tokenizerPiecesFromGguf(source);
    if (d.pieces.length !== c.vocabSize) {
      throw new FormatError(source.path, `the GGUF's tokenizer has ${d.pieces.length} pieces, but its vocabulary size is ${c.vocabSize}`);
    }
    return {
      kind: 'source',
      vocab: {
        tokens: d.pieces.map((p) => p.piece), scores: Float32Array.from(d.pieces, (p) => p.score), types: Int32Array.from(d.pieces, (p) => p.type),
        bosId: d.bosId, eosId: d.eosId, unkId: d.unkId, padId: d.padId, addSpacePrefix: d.addSpacePrefix, removeExtraWhitespaces: d.removeExtraWhitespaces,
      },
    };
  }
  return { vocab: syntheticVocabulary(c), kind: 'synthetic' };
}

/** Converts a model to a grok GGUF. Returns per-tensor statistics (errors only with `measure`). */
export async function convertModel(opts: ConvertOptions): Promise<ConvertResult> {
  const type = opts.type;
  const embdType = opts.embdType ?? type;
  for (const t of [type, embdType]) blockFormat(t);
  const source = openModel(opts.source);
  const files = new Files();
  const pool = new QuantPool(opts.threads ?? 1);
  let writer: GgufWriter | undefined;
  try {
    const binding: ModelBinding = bindModel(source, opts.config);
    const c = binding.config;
    const plan = grokTensorPlan(c, { output: binding.tensors.has('output') });
    const { vocab, kind } = chooseVocabulary(opts, source, c);
    if (path.resolve(opts.out) === path.resolve(opts.source)) throw new UsageError(`--out ${opts.out} would overwrite the source`);
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
      const need = (canonical: string): Binding => {
        const b = binding.tensors.get(canonical);
        if (!b) throw new FormatError(source.path, `missing tensor '${canonical}'`);
        return b;
      };
      async function* chunks(): AsyncGenerator<Uint8Array> {
        if (t.kind === 'vector') {
          const v = readVector(files, t.canonical, need(t.canonical), t.nIn);
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
          const src = openMatrix(files, canonical, need(canonical), t.nIn, t.nOut, t.kind === 'experts' ? c.nExperts : undefined);
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

/** --threads N (default: every core the process may use). */
export function parseThreads(v: string | undefined): number {
  if (v === undefined) return os.availableParallelism();
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 256) throw new UsageError(`--threads: expected an integer 1 … 256, got '${v}'`);
  return Number(v);
}

function parseType(v: string | undefined, flag: string): BlockType {
  if (v === undefined) throw new UsageError(`${flag} is required\n${USAGE}`);
  const t = v.toLowerCase();
  if (!(CONVERT_TYPES as readonly string[]).includes(t)) throw new UsageError(`${flag}: unknown type '${v}' (one of ${CONVERT_TYPES.join(', ')})`);
  return t as BlockType;
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

export async function runConvert(argv: string[]): Promise<number> {
  const { values, positionals } = wrapParse(() => parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      to: { type: 'string' }, type: { type: 'string', short: 't' }, out: { type: 'string', short: 'o' },
      tokenizer: { type: 'string' }, 'embd-type': { type: 'string' }, config: { type: 'string' }, name: { type: 'string' },
      stats: { type: 'boolean' }, progress: { type: 'boolean' }, threads: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  }));
  if (values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  const threads = parseThreads(values.threads);
  if (positionals.length !== 1) throw new UsageError(`expected exactly one source model, got ${positionals.length}\n${USAGE}`);
  if (values.to !== undefined && values.to.toLowerCase() !== 'gguf') throw new UsageError(`--to ${values.to}: only 'gguf' is supported`);
  const type = parseType(values.type, '--type');
  if (!values.out) throw new UsageError(`--out is required\n${USAGE}`);
  const embdType = values['embd-type'] === undefined ? undefined : parseType(values['embd-type'], '--embd-type');
  const showBar = values.progress ?? process.stderr.isTTY === true;
  const bar = showBar
    ? new cliProgress.SingleBar({ stream: process.stderr, format: 'convert |{bar}| {percentage}% {value}/{total} MiB | {tensor}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 2000 }, cliProgress.Presets.shades_classic)
    : undefined;
  let started = false;
  try {
    const r = await convertModel({
      source: positionals[0]!, out: values.out, type, embdType, tokenizer: values.tokenizer, config: values.config, name: values.name,
      measure: values.stats === true, threads,
      onProgress: bar && ((d, t, name) => {
        const mib = (x: number) => Math.round(x / 2 ** 20);
        if (!started) { bar.start(mib(t), 0, { tensor: name }); started = true; }
        bar.update(mib(d), { tensor: name });
      }),
    });
    bar?.stop();
    process.stderr.write(`wrote ${values.out}: ${r.tensors.length} tensors, ${(r.fileBytes / 2 ** 20).toFixed(1)} MiB, vocabulary: ${r.vocabulary}\n`);
    if (r.vocabulary === 'synthetic') process.stderr.write('note: no --tokenizer given: the file carries a synthetic stand-in vocabulary (llama.cpp requires tokenizer keys)\n');
    if (values.stats) process.stdout.write(`${summarise(r)}\n`);
    return 0;
  } finally {
    if (started) bar?.stop();
  }
}
