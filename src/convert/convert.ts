/**
 * Converting any model this runtime reads (ckpt-0, safetensors, GGUF) into a grok GGUF. Writes llama.cpp's `grok` GGUF (LLM_ARCH_GROK): matrices as [out, in] rows, experts merged into
 * `_exps` stacks, norms and routers F32, tied output (no output.weight unless the source has one; Grok-2's
 * own output and its dense MLP, ffn_gate/ffn_up/ffn_down, are planned like any matrix: grokTensorPlan).
 * One streaming pass (stream.ts): source slabs (64 MiB of rows, or one checkpoint matrix) are read ahead
 * asynchronously into shared memory, the workers (--threads) dequantise and quantise chunks of rows in
 * place into shared output slots, and the writer writes the chunks in file order — reading, quantising and
 * writing overlap. Memory: about three slabs and a few chunks.
 * Matrices whose rows do not fit the K-quant super-block take llama.cpp's fallback type (blockTypeForRow).
 * From the checkpoint's int8 + bf16 scales, Q8_0 keeps the checkpoint's own levels and scale wherever that
 * is exact (xai8RowsToQ8_0). A source already stored in the target type is copied, not re-quantised.
 *
 * Tokenizer keys (llama.cpp refuses a GGUF without them): from --tokenizer (a SentencePiece tokenizer.model,
 * or Grok-2's tokenizer.tok.json, stored as llama.cpp's converter stores it: byte-level BPE, pre "grok-2"),
 * else the source GGUF's own, else a synthetic stand-in vocabulary (syntheticVocabulary; said so in
 * general.description).
 */
import fs from 'node:fs';
import { findTokenizerNear } from '../tokenizer/load.js';
import path from 'node:path';
import { readSmallFile } from '../base/files.js';
import { type GgufVocabulary, vocabularyFromModelProto } from '../tokenizer/vocabulary.js';
import { LLAMA_FTYPE, addGrokMetadata, addVocabulary, blockTypeForRow, grokTensorPlan, syntheticVocabulary, type GrokTensorSpec } from '../model/gguf-grok.js';
import { FormatError } from '../base/errors.js';
import { GgufWriter } from '../formats/gguf-writer.js';
import { openModel } from '../formats/open.js';
import { isQuantizedRef, type ModelSource } from '../formats/tensor-ref.js';
import type { ModelBinding } from '../model/binding.js';
import { locateMatrix, locateVector, WeightFiles } from '../model/weights.js';
import type { GrokConfig } from '../model/config.js';
import { bindModel } from '../model/map.js';
import { byteLevelVocabularyFromGguf, hasByteLevelVocabulary, tokenizerPiecesFromGguf } from '../model/map-gguf.js';
import { byteLevelFromTiktoken, type ByteLevelVocabulary } from '../tokenizer/byte-level.js';
import { looksLikeTokJson, TiktokenTokenizer } from '../tokenizer/tiktoken.js';
import { blockFormat, rowBytes, type BlockType } from '../quant/index.js';
import { QuantPool } from './pool.js';
import { RECIPES, recipeNamed, recipeTypes } from './recipes.js';
import { OutputSlots, Pipeline, SharedReader, type Piece, type Unit } from './stream.js';
import type { QuantResult } from './pool-jobs.js';
import { readModelProto } from '../tokenizer/protobuf.js';
import { readImatrix, type Imatrix } from '../formats/imatrix.js';
import { WEIGHTED_TYPES } from '../quant/weighted.js';

export const CONVERT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'iq4_xs', 'iq3_s',
  'iq3_xxs', 'iq2_s', 'iq2_xs', 'iq2_xxs', 'iq1_m', 'iq1_s'] as const;

export interface ConvertOptions {
  source: string;
  out: string;
  /** One block type for every matrix (llama-quantize --pure) … */
  type?: BlockType;
  /**
   * … or llama.cpp's mixture for a llama-quantize type name (Q4_K_M, Q3_K_S, Q6_K …: recipes.ts), whose
   * ftype goes into general.file_type.
   */
  recipe?: string;
  /** Type of token_embd / output; default: `type` (with a recipe: the recipe's choice). */
  embdType?: BlockType;
  /**
   * A llama.cpp importance matrix (legacy .dat or GGUF; formats/imatrix.ts): the tensors it has an
   * entry for are quantised as llama-quantize --imatrix quantises them (the same bytes).
   */
  imatrix?: string;
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
  /** With an importance matrix: the tensors quantised with it, and the quantised ones it has no entry for. */
  imatrix?: { used: number; missing: string[] };
  /** The importance matrix's own description. */
  imatrixInfo?: { format: 'legacy' | 'gguf'; chunks: number; datasets: readonly string[] };
}

/** The stored type of each planned tensor. */
function typeOf(t: GrokTensorSpec, type: BlockType, embdType: BlockType): BlockType {
  if (t.kind === 'vector' || t.kind === 'router') return 'f32';
  return blockTypeForRow(t.kind === 'embedding' ? embdType : type, t.nIn);
}


function chooseVocabulary(opts: ConvertOptions, source: ModelSource, c: GrokConfig): { vocab: GgufVocabulary | ByteLevelVocabulary; kind: ConvertResult['vocabulary'] } {
  const file = opts.tokenizer ?? (source.format === 'gguf' ? null : findTokenizerNear(source.path));
  if (file) {
    const bytes = readSmallFile(file, 512 << 20);
    // Grok-2's tokenizer.tok.json goes in as llama.cpp's converter stores it: a byte-level BPE, pre-tokenizer grok-2
    const vocab = looksLikeTokJson(bytes)
      ? byteLevelFromTiktoken(TiktokenTokenizer.fromBytes(bytes, file))
      : vocabularyFromModelProto(readModelProto(bytes, file));
    if (vocab.tokens.length === c.vocabSize) return { vocab, kind: 'tokenizer' };
    // One found beside the model but of another size (a slice with its own vocabulary) is not this model's.
    if (opts.tokenizer) throw new FormatError(file, `tokenizer has ${vocab.tokens.length} ${'merges' in vocab ? 'tokens' : 'pieces'}, but the model's vocabulary is ${c.vocabSize}`);
  } else if (source.format === 'gguf' && source.metadata.has('tokenizer.ggml.model')) {
    // a SentencePiece GGUF's add_bos/add_eos advice is not copied
    const vocab: GgufVocabulary | ByteLevelVocabulary = hasByteLevelVocabulary(source)
      ? byteLevelVocabularyFromGguf(source)
      : (({ addBos: _b, addEos: _e, ...v }) => v)(tokenizerPiecesFromGguf(source));
    if (vocab.tokens.length !== c.vocabSize) {
      throw new FormatError(source.path, `the GGUF's tokenizer has ${vocab.tokens.length} pieces, but its vocabulary size is ${c.vocabSize}`);
    }
    return { kind: 'source', vocab };
  }
  return { vocab: syntheticVocabulary(c), kind: 'synthetic' };
}

/** Values per quantisation job: ≈ 4 MiB of floats, a few ms of the slowest quantiser. */
const JOB_VALUES = 1 << 20;
/** Bytes per slab of a rows source: one asynchronous read, shared by the jobs of its rows. */
const SLAB_BYTES = 64 << 20;

/**
 * Output rows per quantisation job of a matrix. From the checkpoint's int8 form at least 256: a job reads its
 * columns from every one of the nIn input rows, so narrow jobs would touch a page per few bytes.
 */
function rowsPerJob(t: GrokTensorSpec, binding: ModelBinding): number {
  const rows = Math.max(1, Math.min(t.nOut, Math.floor(JOB_VALUES / t.nIn)));
  const b = binding.tensors.get(t.kind === 'experts' ? `${t.canonical}.0` : t.canonical);
  return b?.kind === 'xai8' ? Math.max(rows, Math.min(t.nOut, XAI8_JOB_COLUMNS)) : rows;
}
const XAI8_JOB_COLUMNS = 256;

interface UnitContext {
  plan: GrokTensorSpec[];
  types: BlockType[];
  binding: ModelBinding;
  files: WeightFiles;
  reader: SharedReader;
  slots: OutputSlots;
  pool: QuantPool;
  measure: boolean;
  stats: TensorStat[];
  q8Exact: { kept: number; total: number };
  /** Importance weights per tensor (nIn floats per expert, in shared memory), where the imatrix has them. */
  weights: (SharedArrayBuffer | undefined)[];
}

/**
 * The output in file order as units of work: per tensor, per expert, per slab of source rows (a whole
 * matrix for the checkpoint's int8 form, whose output rows are its columns). A source already stored in the
 * target type is copied from the slab; anything else is dequantised and quantised by the workers.
 */
function* convertUnits(x: UnitContext): Generator<Unit> {
  const c = x.binding.config;
  for (let i = 0; i < x.plan.length; i++) {
    const t = x.plan[i]!;
    const st = x.types[i]!;
    if (t.kind === 'vector') {
      const loc = locateVector(x.binding, t.canonical, t.nIn);
      yield {
        tensor: i,
        pieces: [{ start: async () => { const v = x.files.vector(loc); return new Uint8Array(v.buffer, v.byteOffset, v.byteLength); } }],
      };
      continue;
    }
    const experts = t.kind === 'experts' ? c.nExperts : 1;
    const perJob = rowsPerJob(t, x.binding);
    const orb = rowBytes(blockFormat(st), t.nIn);
    // a quantised piece: its blocks go to an output slot, free again once written
    const quantised = (rows: number, job: (dst: { mem: SharedArrayBuffer; byteOffset: number }) => Promise<Uint8Array | QuantResult>): Piece => {
      let slot: { mem: SharedArrayBuffer; byteOffset: number } | undefined;
      return {
        start: () => job((slot = x.slots.acquire(rows * orb))),
        written: () => x.slots.release(slot!),
      };
    };
    const wmem = x.weights[i];
    for (let e = 0; e < experts; e++) {
      // this expert's importance weights (llama.cpp: imatrix + expert · n_per_row)
      const weights = wmem ? { weights: { mem: wmem, offset: e * t.nIn } } : {};
      const job = (rows: number, dst: { mem: SharedArrayBuffer; byteOffset: number }) => ({ type: st, nIn: t.nIn, rows, measure: x.measure, dst, ...weights });
      const canonical = t.kind === 'experts' ? `${t.canonical}.${e}` : t.canonical;
      const m = locateMatrix(x.binding, canonical, t.nIn, t.nOut, t.kind === 'experts' ? c.nExperts : undefined);
      if (m.layout === 'rows') {
        const rb = rowBytes(blockFormat(m.type), t.nIn);
        const slabRows = Math.max(perJob, Math.floor(SLAB_BYTES / rb / perJob) * perJob);
        for (let s0 = 0; s0 < t.nOut; s0 += slabRows) {
          const n = Math.min(slabRows, t.nOut - s0);
          let slab: ReturnType<SharedReader['read']> | undefined;
          const pieces: Piece[] = [];
          for (let r0 = s0; r0 < s0 + n; r0 += perJob) {
            const rows = Math.min(perJob, s0 + n - r0);
            const at = (r0 - s0) * rb;
            if (m.type === st) {
              x.stats[i]!.copied = true;
              pieces.push({ start: async () => { await slab!.ready; return new Uint8Array(slab!.mem, at, rows * rb); } });
            } else {
              pieces.push(quantised(rows, async (dst) => { await slab!.ready; return x.pool.run({ ...job(rows, dst), src: { kind: 'rows', type: m.type, mem: slab!.mem, byteOffset: at } }); }));
            }
          }
          yield {
            tensor: i, pieces,
            begin: () => { slab = x.reader.read([{ file: m.bytes.file, offset: m.bytes.offset + s0 * rb, length: n * rb }]); },
            release: () => x.reader.release(slab!.mem),
          };
        }
      } else if (m.layout === 'xai8') {
        let slab: ReturnType<SharedReader['read']> | undefined;
        const pieces: Piece[] = [];
        for (let r0 = 0; r0 < t.nOut; r0 += perJob) {
          const rows = Math.min(perJob, t.nOut - r0);
          if (st === 'q8_0') x.q8Exact.total += (rows * t.nIn) / 32;
          pieces.push(quantised(rows, async (dst) => {
            await slab!.ready;
            return x.pool.run({ ...job(rows, dst), src: { kind: 'xai8', mem: slab!.mem, qOffset: slab!.offsets[0]!, scalesOffset: slab!.offsets[1]!, nOut: t.nOut, groups: m.groups, r0 } });
          }));
        }
        yield { tensor: i, pieces, begin: () => { slab = x.reader.read([m.q, m.scales]); }, release: () => x.reader.release(slab!.mem) };
      } else {
        // plain floats stored [in, out] (small: routers, tiny models): transposed here; tensor-parallel shards
        // (Grok-2's experts): joined here; either handed over by chunk as floats
        let vals: Float32Array | undefined;
        const pieces: Piece[] = [];
        for (let r0 = 0; r0 < t.nOut; r0 += perJob) {
          const rows = Math.min(perJob, t.nOut - r0);
          pieces.push(quantised(rows, (dst) => x.pool.run({ ...job(rows, dst), vals: vals!.slice(r0 * t.nIn, (r0 + rows) * t.nIn) })));
        }
        const floats = (): Float32Array => {
          if (m.layout === 'transpose') return x.files.transposed(m);
          const out = new Float32Array(t.nIn * t.nOut);
          blockFormat(m.type).dequantize(x.files.joined(m), 0, t.nIn * t.nOut, out, 0);
          return out;
        };
        yield { tensor: i, pieces, begin: () => { vals = floats(); }, release: () => { vals = undefined; } };
      }
    }
  }
}

/** llama.cpp's tensor_requires_imatrix: the very-low-bit types, and Q2_K in a Q2_K_S file, but never token_embd / output. */
const IMATRIX_TYPES: ReadonlySet<BlockType> = new Set(['iq1_s', 'iq1_m', 'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs']);
function requiresImatrix(name: string, type: BlockType, recipe: string | undefined): boolean {
  if (name === 'token_embd.weight' || name === 'output.weight') return false;
  return IMATRIX_TYPES.has(type) || (type === 'q2_k' && recipe === 'Q2_K_S');
}

/**
 * Per tensor, its importance weights in shared memory (nIn per expert), as llama_model_quantize picks them: by
 * the tensor's GGUF name, of size nIn × experts (else an error, but for token_embd, which llama.cpp skips with
 * a warning); none for types that ignore them (Q8_0, floats) or a tensor the matrix has no entry for.
 * Refused as llama.cpp refuses them: a tensor of a very-low-bit type (IQ1_S … IQ3_XXS, Q2_K of Q2_K_S) without
 * weights; and, where llama.cpp would abort, a tensor of a type that has no quantiser without weights
 * (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS: token_embd / output without an imatrix entry).
 */
function imatrixWeights(im: Imatrix | undefined, plan: readonly GrokTensorSpec[], types: readonly BlockType[], binding: ModelBinding, recipe: string | undefined):
  { weights: (SharedArrayBuffer | undefined)[]; report?: { used: number; missing: string[] } } {
  const quantised = (t: GrokTensorSpec) => t.kind !== 'vector' && t.kind !== 'router';
  if (!im) {
    plan.forEach((t, i) => {
      if (quantised(t) && requiresImatrix(t.name, types[i]!, recipe)) {
        const what = recipe === 'Q2_K_S' ? 'Q2_K_S' : recipe ? `${recipe} (${t.name}: ${types[i]!.toUpperCase()})` : types[i]!.toUpperCase();
        throw new Error(`${what} needs an importance matrix: give --imatrix FILE (llama-imatrix output), as llama-quantize refuses this quantisation without one`);
      }
    });
    const noWeights = plan.findIndex((t, i) => quantised(t) && !blockFormat(types[i]!).quantize);
    if (noWeights >= 0) throw new Error(noWeightsMessage(plan[noWeights]!.name, types[noWeights]!));
    return { weights: plan.map(() => undefined) };
  }
  const report = { used: 0, missing: [] as string[] };
  const weights = plan.map((t, i) => {
    const st = types[i]!;
    if (!quantised(t) || !WEIGHTED_TYPES.has(st)) return undefined;
    const v = im.entries.get(t.name);
    if (!v) {
      if (requiresImatrix(t.name, st, recipe)) {
        throw new FormatError(im.file, `imatrix: no entry for ${t.name}, which ${recipe ?? 'this conversion'} quantises to ${st.toUpperCase()} (llama.cpp refuses this without importance weights too)`);
      }
      if (!blockFormat(st).quantize) throw new FormatError(im.file, noWeightsMessage(t.name, st));
      report.missing.push(t.name);
      return undefined;
    }
    const experts = t.kind === 'experts' ? binding.config.nExperts : 1;
    if (v.length !== t.nIn * experts) {
      if (t.name === 'token_embd.weight' && blockFormat(st).quantize) { report.missing.push(t.name); return undefined; } // llama.cpp: a warning, then no weights
      throw new FormatError(im.file, `imatrix: entry '${t.name}' has ${v.length} values, the tensor needs ${t.nIn}${experts > 1 ? ` × ${experts} experts` : ''}`);
    }
    const mem = new SharedArrayBuffer(4 * v.length);
    new Float32Array(mem).set(v);
    report.used++;
    return mem;
  });
  return { weights, report };
}

function noWeightsMessage(name: string, type: BlockType): string {
  return `${name}: ${type.toUpperCase()} is only written with importance weights, and there are none for this tensor ` +
    `(llama.cpp's quantiser asserts them); give its type with --embd-type (e.g. q2_k, as llama.cpp's ${type.toUpperCase()} mixture does)`;
}

/** Converts a model to a grok GGUF. Returns per-tensor statistics (errors only with `measure`). */
export async function convertModel(opts: ConvertOptions): Promise<ConvertResult> {
  if ((opts.type === undefined) === (opts.recipe === undefined)) throw new Error('convert: give either a block type or a recipe');
  const recipe = opts.recipe === undefined ? undefined : recipeNamed(opts.recipe);
  if (opts.recipe !== undefined && !recipe) throw new Error(`convert: unknown recipe '${opts.recipe}' (one of ${Object.keys(RECIPES).join(', ')})`);
  const type = recipe ? recipe.base : opts.type!;
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
      fileType: recipe ? recipe.ftype : LLAMA_FTYPE[type],
      description: kind === 'synthetic'
        ? `converted by grok-ts from ${source.format}; NO TOKENIZER WAS GIVEN: the vocabulary is a synthetic stand-in (<s> </s> <unk>, byte pieces, <tok_N>) so that llama.cpp can load the file`
        : `converted by grok-ts from ${source.format}`,
    });
    addVocabulary(writer, vocab);
    const im = opts.imatrix === undefined ? undefined : readImatrix(opts.imatrix);
    const types = recipe
      ? recipeTypes(recipe, plan, c, { imatrix: im !== undefined, ...(opts.embdType ? { embdType: blockTypeForRow(opts.embdType, c.dModel) } : {}) })
      : plan.map((t) => typeOf(t, type, embdType));
    const { weights, report } = imatrixWeights(im, plan, types, binding, recipe?.name);
    plan.forEach((t, i) => writer!.addTensorInfo(t.name, types[i]!, t.shape));
    await writer.writeHeader();

    const total = writer.dataSize;
    let done = 0;
    const stats: TensorStat[] = plan.map((t, i) => ({ name: t.name, type: types[i]!, values: t.shape.reduce((a, b) => a * b, 1), bytes: 0, sumSqErr: 0, sumSq: 0, maxErr: 0, copied: false }));
    const q8Exact = { kept: 0, total: 0 };
    const reader = new SharedReader(files);
    const depth = pool.depth + 2;
    let slotBytes = 0;
    plan.forEach((t, i) => {
      if (t.kind !== 'vector') slotBytes = Math.max(slotBytes, rowsPerJob(t, binding) * rowBytes(blockFormat(types[i]!), t.nIn));
    });
    const slots = new OutputSlots(depth + 1, slotBytes);
    const units = convertUnits({ plan, types, binding, files, reader, slots, pool, measure: opts.measure === true, stats, q8Exact, weights });
    const pipeline = new Pipeline(units, depth);
    for (let i = 0; i < plan.length; i++) {
      const stat = stats[i]!;
      const chunks = async function* (): AsyncGenerator<Uint8Array> {
        while (pipeline.peek() === i) {
          const item = (await pipeline.next())!;
          const r = item.value;
          let bytes: Uint8Array;
          if (r instanceof Uint8Array) {
            bytes = r;
          } else {
            q8Exact.kept += r.kept;
            stat.sumSqErr += r.sumSqErr;
            stat.sumSq += r.sumSq;
            stat.maxErr = Math.max(stat.maxErr, r.maxErr);
            bytes = r.out;
          }
          stat.bytes += bytes.length;
          done += bytes.length;
          opts.onProgress?.(done, total, plan[i]!.name);
          yield bytes;
          item.done?.(); // written: a shared slab it came from may be reused
        }
      };
      await writer.writeTensorData(plan[i]!.name, chunks());
    }
    await writer.close();
    return { config: c, tensors: stats, fileBytes: fs.statSync(opts.out).size, vocabulary: kind, q8Exact, ...(report ? { imatrix: report } : {}),
      ...(im ? { imatrixInfo: { format: im.format, chunks: im.chunks, datasets: im.datasets } } : {}) };
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
