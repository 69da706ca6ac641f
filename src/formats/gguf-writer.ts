/**
 * Streaming GGUF v3 writer (formats.md §3.1–3.3). Memory is bounded by what the caller hands over at once:
 * the header is built in memory (metadata + tensor infos: a 131072-piece vocabulary is a few MB), tensor
 * data goes straight to the file, each tensor as one Uint8Array or as a sequence of chunks.
 *
 * Usage (every step in this order; each tensor's data in the order of its addTensorInfo):
 *
 *   const w = new GgufWriter('model.gguf');                 // { alignment } optional, default 32
 *   w.addMetadata('general.architecture', 'string', 'grok');
 *   w.addMetadata('grok.block_count', 'u32', 64);
 *   w.addMetadata('tokenizer.ggml.tokens', 'string[]', pieces);
 *   w.addMetadata('tokenizer.ggml.scores', 'f32[]', scores);   // number[] or Float32Array
 *   w.addTensorInfo('token_embd.weight', 'q8_0', [131072, 6144]); // row-major shape, outermost first
 *   await w.writeHeader();
 *   await w.writeTensorData('token_embd.weight', bytes);    // Uint8Array, or (async) iterable of chunks
 *   await w.close();
 *
 * Shapes are given row-major (PyTorch/numpy order) and written reversed as ggml dims (§3.2); the last
 * (innermost) dimension must be a multiple of the type's block size. Each tensor's byte length is checked
 * against its type and shape. `general.alignment` is written automatically when the alignment is not 32.
 * Value types: 'u8' 'i8' 'u16' 'i16' 'u32' 'i32' 'f32' 'bool' 'string' 'u64' 'i64' 'f64', arrays of them
 * as 'u8[]' … 'string[]', or a GgufValueType id (0 … 12 except 9) for a scalar.
 * On any error the partial file is left in place; call abort() to close and delete it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { GrokConfig } from '../model/config.js';
import { blockFormat } from '../quant/index.js';
import type { BlockType } from '../quant/types.js';
import { normalizerDefaults, trainerDefaults, type ModelProto } from '../tokenizer/protobuf.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC } from './gguf.js';

type Scalar = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';
export type GgufWriteType = Scalar | `${Scalar}[]` | number;
export type GgufWriteValue = number | bigint | boolean | string | ArrayLike<number> | ArrayLike<bigint> | readonly boolean[] | readonly string[];

/** GGUF value type ids (§3.1). */
const TYPE_ID: Readonly<Record<Scalar, number>> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, u64: 10, i64: 11, f64: 12,
};
const ID_TYPE = new Map<number, Scalar>(Object.entries(TYPE_ID).map(([k, v]) => [v, k as Scalar]));
const ARRAY_ID = 9;
/** ggml limits names to 64 bytes including the terminating NUL (GGML_MAX_NAME). */
const MAX_NAME_BYTES = 63;

/** Growable little-endian byte buffer for the header. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const b = Buffer.alloc(size);
    this.buf.copy(b, 0, 0, this.length);
    this.buf = b;
  }
  u8(v: number): void { this.reserve(1); this.buf.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number): void { this.reserve(1); this.buf.writeInt8(v, this.length); this.length += 1; }
  u16(v: number): void { this.reserve(2); this.buf.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number): void { this.reserve(2); this.buf.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number): void { this.reserve(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number): void { this.reserve(8); this.buf.writeDoubleLE(v, this.length); this.length += 8; }
  u64(v: number | bigint): void { this.reserve(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: number | bigint): void { this.reserve(8); this.buf.writeBigInt64LE(BigInt(v), this.length); this.length += 8; }
  bytes(b: Uint8Array): void { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }
  result(): Buffer { return this.buf.subarray(0, this.length); }
}

interface TensorInfo {
  readonly name: string;
  readonly type: BlockType;
  readonly shape: readonly number[];
  readonly bytes: number;
  readonly offset: number;
}

export class GgufWriter {
  readonly path: string;
  readonly alignment: number;
  private readonly meta = new ByteSink();
  private readonly keys = new Set<string>();
  private readonly tensors: TensorInfo[] = [];
  private dataBytes = 0;
  private fh: fs.promises.FileHandle | undefined;
  private state: 'adding' | 'data' | 'closed' = 'adding';
  private next = 0;
  private pos = 0;

  constructor(filePath: string, opts: { alignment?: number } = {}) {
    this.path = path.resolve(filePath);
    const a = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
    if (!Number.isInteger(a) || a < 8 || a % 8 !== 0 || (a & (a - 1)) !== 0 || a > 1 << 20) {
      throw new Error(`${this.path}: alignment ${a} must be a power of two, a multiple of 8 and at most 2^20`);
    }
    this.alignment = a;
    if (a !== GGUF_DEFAULT_ALIGNMENT) this.addMetadata('general.alignment', 'u32', a);
  }

  private fail(message: string): never {
    throw new Error(`${this.path}: ${message}`);
  }

  /** Adds one key/value pair (before writeHeader). Integers are range-checked for their type. */
  addMetadata(key: string, type: GgufWriteType, value: GgufWriteValue): void {
    if (this.state !== 'adding') this.fail(`metadata '${key}' added after writeHeader()`);
    if (!key || !/^[\x21-\x7e]+$/.test(key)) this.fail(`metadata key ${JSON.stringify(key)} must be non-empty printable ASCII`);
    if (this.keys.has(key)) this.fail(`metadata key '${key}' added twice`);
    let scalar: Scalar;
    let isArray = false;
    if (typeof type === 'number') {
      const s = ID_TYPE.get(type);
      if (s === undefined) this.fail(`metadata '${key}': value type id ${type} is not a scalar GGUF type (0 … 12, not 9)`);
      scalar = s;
    } else if (type.endsWith('[]')) {
      scalar = type.slice(0, -2) as Scalar;
      isArray = true;
    } else {
      scalar = type as Scalar;
    }
    if (TYPE_ID[scalar] === undefined) this.fail(`metadata '${key}': unknown value type '${String(type)}'`);
    // Encode into a scratch sink first so a bad value leaves the header untouched.
    const s = new ByteSink();
    s.str(key);
    if (isArray) {
      if (typeof value !== 'object' || value === null || typeof (value as ArrayLike<unknown>).length !== 'number') {
        this.fail(`metadata '${key}': expected an array for type '${String(type)}'`);
      }
      const arr = value as ArrayLike<unknown>;
      s.u32(ARRAY_ID);
      s.u32(TYPE_ID[scalar]);
      s.u64(arr.length);
      for (let i = 0; i < arr.length; i++) this.encode(s, scalar, arr[i], `${key}[${i}]`);
    } else {
      s.u32(TYPE_ID[scalar]);
      this.encode(s, scalar, value, key);
    }
    this.meta.bytes(s.result());
    this.keys.add(key);
  }

  private encode(s: ByteSink, t: Scalar, v: unknown, what: string): void {
    const int = (lo: number | bigint, hi: number | bigint): number | bigint => {
      if (typeof v === 'bigint' && (t === 'u64' || t === 'i64')) {
        if (v < BigInt(lo) || v > BigInt(hi)) this.fail(`metadata '${what}': ${v} is outside ${t}`);
        return v;
      }
      if (typeof v !== 'number' || !Number.isInteger(v) || v < Number(lo) || v > Number(hi)) {
        this.fail(`metadata '${what}': expected an integer for ${t}, got ${String(v)}`);
      }
      return v;
    };
    switch (t) {
      case 'u8': s.u8(int(0, 255) as number); break;
      case 'i8': s.i8(int(-128, 127) as number); break;
      case 'u16': s.u16(int(0, 65535) as number); break;
      case 'i16': s.i16(int(-32768, 32767) as number); break;
      case 'u32': s.u32(int(0, 0xffffffff) as number); break;
      case 'i32': s.i32(int(-0x80000000, 0x7fffffff) as number); break;
      case 'u64': s.u64(int(0, 2n ** 64n - 1n)); break;
      case 'i64': s.i64(int(-(2n ** 63n), 2n ** 63n - 1n)); break;
      case 'f32':
      case 'f64':
        if (typeof v !== 'number') this.fail(`metadata '${what}': expected a number for ${t}, got ${typeof v}`);
        if (t === 'f32') s.f32(v); else s.f64(v);
        break;
      case 'bool':
        if (typeof v !== 'boolean') this.fail(`metadata '${what}': expected a boolean, got ${typeof v}`);
        s.u8(v ? 1 : 0);
        break;
      case 'string':
        if (typeof v !== 'string') this.fail(`metadata '${what}': expected a string, got ${typeof v}`);
        s.str(v);
        break;
    }
  }

  /** Declares a tensor (before writeHeader). `shape` is row-major, outermost first. Returns its data byte size. */
  addTensorInfo(name: string, type: BlockType, shape: readonly number[]): number {
    if (this.state !== 'adding') this.fail(`tensor '${name}' added after writeHeader()`);
    if (!name || Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) this.fail(`tensor name ${JSON.stringify(name)} must be 1 … ${MAX_NAME_BYTES} bytes`);
    if (this.tensors.some((t) => t.name === name)) this.fail(`tensor '${name}' added twice`);
    if (shape.length < 1 || shape.length > 4 || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
      this.fail(`tensor '${name}': shape [${shape.join(', ')}] must have 1 … 4 positive integer dimensions`);
    }
    const f = blockFormat(type);
    const inner = shape[shape.length - 1]!;
    if (inner % f.blockSize !== 0) {
      this.fail(`tensor '${name}': innermost dimension ${inner} is not a multiple of ${type}'s block size ${f.blockSize}`);
    }
    const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const bytes = (inner / f.blockSize) * f.bytesPerBlock * rows;
    if (!Number.isSafeInteger(bytes)) this.fail(`tensor '${name}': ${bytes} bytes is too large`);
    this.tensors.push({ name, type, shape: [...shape], bytes, offset: this.dataBytes });
    this.dataBytes += this.pad(bytes);
    return bytes;
  }

  private pad(n: number): number {
    return Math.ceil(n / this.alignment) * this.alignment;
  }

  /** Writes magic, version, counts, metadata and tensor infos, padded to the alignment. */
  async writeHeader(): Promise<void> {
    if (this.state !== 'adding') this.fail('writeHeader() called twice');
    const h = new ByteSink();
    h.u32(GGUF_MAGIC);
    h.u32(3);
    h.u64(this.tensors.length);
    h.u64(this.keys.size);
    h.bytes(this.meta.result());
    for (const t of this.tensors) {
      h.str(t.name);
      h.u32(t.shape.length);
      for (let i = t.shape.length - 1; i >= 0; i--) h.u64(t.shape[i]!);
      h.u32(blockFormat(t.type).ggmlId);
      h.u64(t.offset);
    }
    const padded = this.pad(h.length);
    while (h.length < padded) h.u8(0);
    this.fh = await fs.promises.open(this.path, 'w');
    this.state = 'data';
    await this.write(h.result());
  }

  private async write(b: Uint8Array): Promise<void> {
    let done = 0;
    while (done < b.length) {
      const { bytesWritten } = await this.fh!.write(b, done, b.length - done);
      done += bytesWritten;
    }
    this.pos += b.length;
  }

  /**
   * Writes the data of the next tensor (in addTensorInfo order): one Uint8Array, or an iterable / async
   * iterable of chunks whose lengths add up to the tensor's byte size. Pads to the alignment.
   */
  async writeTensorData(name: string, data: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<void> {
    if (this.state !== 'data') this.fail(this.state === 'adding' ? `writeTensorData('${name}') before writeHeader()` : `writeTensorData('${name}') after close()`);
    const t = this.tensors[this.next];
    if (!t) this.fail(`writeTensorData('${name}'): all ${this.tensors.length} tensors are already written`);
    if (t.name !== name) this.fail(`writeTensorData('${name}'): expected tensor '${t.name}' next (data must follow the order of addTensorInfo)`);
    let got = 0;
    const take = async (chunk: Uint8Array) => {
      if (!(chunk instanceof Uint8Array)) this.fail(`tensor '${name}': data chunks must be Uint8Array`);
      got += chunk.length;
      if (got > t.bytes) this.fail(`tensor '${name}': more than the ${t.bytes} bytes its type ${t.type} and shape [${t.shape.join(', ')}] need`);
      await this.write(chunk);
    };
    if (data instanceof Uint8Array) await take(data);
    else if (Symbol.asyncIterator in data) for await (const c of data) await take(c);
    else for (const c of data) await take(c);
    if (got !== t.bytes) this.fail(`tensor '${name}': got ${got} bytes, its type ${t.type} and shape [${t.shape.join(', ')}] need ${t.bytes}`);
    const padding = this.pad(t.bytes) - t.bytes;
    if (padding) await this.write(new Uint8Array(padding));
    this.next++;
  }

  /** Finishes the file; fails if a declared tensor's data was not written. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    if (this.state === 'adding') this.fail('close() before writeHeader()');
    if (this.next !== this.tensors.length) {
      this.fail(`close(): ${this.tensors.length - this.next} tensor(s) declared but not written, starting with '${this.tensors[this.next]!.name}'`);
    }
    await this.fh!.close();
    this.fh = undefined;
    this.state = 'closed';
  }

  /** Closes and deletes a partly written file (after an error). */
  async abort(): Promise<void> {
    if (this.fh) await this.fh.close();
    this.fh = undefined;
    this.state = 'closed';
    await fs.promises.rm(this.path, { force: true });
  }

  /** Total file size once everything is written (known after the last addTensorInfo; for progress bars). */
  get dataSize(): number {
    return this.dataBytes;
  }

  /** Bytes written so far (header included). */
  get written(): number {
    return this.pos;
  }
}

// ---------------------------------------------------------------------------------------------------
// Grok-architecture helpers (formats.md §3.6, §3.7), shared by `grok convert`, `grok synth` and anyone
// saving a model: the keys llama.cpp reads, the tensor list in llama.cpp's names and layouts, and the
// tokenizer keys.
//
//   const w = new GgufWriter(out);
//   addGrokMetadata(w, config, { name: 'my-model', fileType: LLAMA_FTYPE.q8_0 });
//   addVocabulary(w, vocabularyFromModelProto(readModelProto(bytes, file)));   // or syntheticVocabulary(config)
//   for (const t of grokTensorPlan(config)) w.addTensorInfo(t.name, typeFor(t), t.shape);
//   await w.writeHeader(); … writeTensorData for each, in plan order … ; await w.close();

/** llama_ftype of a file that is mostly one type (general.file_type, informational). */
export const LLAMA_FTYPE: Readonly<Record<BlockType, number>> = {
  f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, q2_k: 10, q3_k: 11, q4_k: 14, q5_k: 16, q6_k: 18,
  iq4_nl: 25, bf16: 32,
};

/** The `general.*` and `grok.*` keys for a config (llama.cpp's grok loader, formats.md §3.6). */
export function addGrokMetadata(w: GgufWriter, c: GrokConfig, opts: { name?: string; fileType?: number; description?: string } = {}): void {
  w.addMetadata('general.architecture', 'string', 'grok');
  w.addMetadata('general.name', 'string', opts.name ?? 'grok');
  if (opts.description) w.addMetadata('general.description', 'string', opts.description);
  if (opts.fileType !== undefined) {
    w.addMetadata('general.file_type', 'u32', opts.fileType);
    if (![0, 1, 32].includes(opts.fileType)) w.addMetadata('general.quantization_version', 'u32', 2);
  }
  w.addMetadata('grok.context_length', 'u32', c.contextLength);
  w.addMetadata('grok.embedding_length', 'u32', c.dModel);
  w.addMetadata('grok.block_count', 'u32', c.nLayers);
  w.addMetadata('grok.feed_forward_length', 'u32', c.ffnSize);
  w.addMetadata('grok.expert_feed_forward_length', 'u32', c.ffnSize);
  w.addMetadata('grok.attention.head_count', 'u32', c.nHeads);
  w.addMetadata('grok.attention.head_count_kv', 'u32', c.nKVHeads);
  // llama.cpp assumes head width = embedding_length / head_count unless told otherwise.
  if (c.headDim * c.nHeads !== c.dModel) {
    w.addMetadata('grok.attention.key_length', 'u32', c.headDim);
    w.addMetadata('grok.attention.value_length', 'u32', c.headDim);
  }
  w.addMetadata('grok.expert_count', 'u32', c.nExperts);
  w.addMetadata('grok.expert_used_count', 'u32', c.nExpertsUsed);
  w.addMetadata('grok.rope.dimension_count', 'u32', c.headDim);
  w.addMetadata('grok.attention.layer_norm_rms_epsilon', 'f32', c.rmsNormEps);
  w.addMetadata('grok.rope.freq_base', 'f32', c.ropeBase);
  w.addMetadata('grok.vocab_size', 'u32', c.vocabSize);
  w.addMetadata('grok.embedding_scale', 'f32', c.embeddingMultiplier);
  w.addMetadata('grok.logit_scale', 'f32', c.outputMultiplier);
  w.addMetadata('grok.attention.output_scale', 'f32', c.attnOutputMultiplier);
  w.addMetadata('grok.attn_logit_softcapping', 'f32', c.attnSoftcap);
}

const NORMAL = 1;
const USER_DEFINED = 4;

/** A SentencePiece-style vocabulary as GGUF stores it (§3.7); `type` uses the SentencePiece numbers 1 … 6. */
export interface GgufVocabulary {
  tokens: readonly string[];
  scores: ArrayLike<number>;
  types: ArrayLike<number>;
  bosId: number;
  eosId: number;
  unkId: number;
  /** omitted from the file when null */
  padId: number | null;
  addSpacePrefix: boolean;
  removeExtraWhitespaces: boolean;
}

/**
 * The vocabulary of a parsed tokenizer.model (src/tokenizer/protobuf.ts readModelProto).
 * USER_DEFINED pieces (Grok-1: runs of "\n", "\t", spaces, and the digits) are stored as NORMAL:
 * llama.cpp matches USER_DEFINED pieces in the raw text before escaping spaces, which SentencePiece does
 * not, so with the original types llama.cpp tokenised only 77 of the 198 Grok-1 golden samples like
 * SentencePiece; as NORMAL, all 198 (test/convert-llama.test.ts). Our own tokenizer gives the SentencePiece
 * ids from either form.
 */
export function vocabularyFromModelProto(m: ModelProto): GgufVocabulary {
  const t = m.trainerSpec ?? {};
  const n = m.pieces.length;
  const id = (v: number | undefined, d: number) => (v === undefined ? d : v);
  const pad = id(t.padId, trainerDefaults.padId);
  return {
    tokens: m.pieces.map((p) => p.piece),
    scores: Float32Array.from(m.pieces, (p) => p.score),
    types: Int32Array.from(m.pieces, (p) => (p.type === USER_DEFINED ? NORMAL : p.type)),
    bosId: id(t.bosId, trainerDefaults.bosId),
    eosId: id(t.eosId, trainerDefaults.eosId),
    unkId: id(t.unkId, trainerDefaults.unkId),
    padId: pad >= 0 && pad < n ? pad : null,
    addSpacePrefix: m.normalizerSpec?.addDummyPrefix ?? normalizerDefaults.addDummyPrefix,
    removeExtraWhitespaces: m.normalizerSpec?.removeExtraWhitespaces ?? normalizerDefaults.removeExtraWhitespaces,
  };
}

/**
 * A stand-in vocabulary for models that come without a tokenizer (fixtures, synthetic slices): llama.cpp
 * refuses a GGUF without tokenizer keys. Ids of the config's pad/bos/eos tokens become `<pad>` `<s>` `</s>`
 * (CONTROL), the first free id `<unk>` (UNKNOWN); when the vocabulary has room, 256 BYTE pieces `<0x00>` …
 * `<0xFF>` and the piece `▁` follow so that any text can be tokenized (as bytes); every other id is
 * `<tok_N>` (NORMAL, score 0).
 */
export function syntheticVocabulary(c: GrokConfig): GgufVocabulary {
  const V = c.vocabSize;
  const tokens: string[] = new Array<string>(V).fill('');
  const types = new Int32Array(V).fill(1);
  const special = new Map<number, string>();
  special.set(c.padToken, '<pad>');
  special.set(c.bosToken, '<s>');
  special.set(c.eosToken, '</s>');
  let unk = 0;
  while (special.has(unk) && unk < V) unk++;
  if (unk < V) special.set(unk, '<unk>');
  for (const [i, s] of special) {
    tokens[i] = s;
    types[i] = s === '<unk>' ? 2 : 3;
  }
  let next = 0;
  if (V >= special.size + 256 + 1) {
    for (let b = 0; b < 256; b++) {
      while (special.has(next)) next++;
      tokens[next] = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      types[next] = 6;
      next++;
    }
  }
  // `▁` (the escaped space) as a NORMAL piece lets llama.cpp detokenize spaces back to ' '.
  if (next > 0 && next < V) {
    while (next < V && special.has(next)) next++;
    if (next < V) tokens[next] = '\u2581';
  }
  for (let i = 0; i < V; i++) if (tokens[i] === '') tokens[i] = `<tok_${i}>`;
  return {
    tokens, scores: new Float32Array(V), types, bosId: c.bosToken, eosId: c.eosToken, unkId: unk < V ? unk : 0,
    padId: c.padToken, addSpacePrefix: true, removeExtraWhitespaces: false,
  };
}

/** The `tokenizer.ggml.*` keys (§3.7). */
export function addVocabulary(w: GgufWriter, v: GgufVocabulary): void {
  const n = v.tokens.length;
  if (v.scores.length !== n || v.types.length !== n) {
    throw new Error(`${w.path}: vocabulary has ${n} tokens but ${v.scores.length} scores and ${v.types.length} types`);
  }
  for (const [k, id] of [['bos', v.bosId], ['eos', v.eosId], ['unknown', v.unkId], ['padding', v.padId]] as const) {
    if (id !== null && !(Number.isInteger(id) && id >= 0 && id < n)) throw new Error(`${w.path}: ${k} token id ${id} is outside the vocabulary (0 … ${n - 1})`);
  }
  w.addMetadata('tokenizer.ggml.model', 'string', 'llama');
  w.addMetadata('tokenizer.ggml.tokens', 'string[]', v.tokens);
  w.addMetadata('tokenizer.ggml.scores', 'f32[]', v.scores);
  w.addMetadata('tokenizer.ggml.token_type', 'i32[]', v.types);
  w.addMetadata('tokenizer.ggml.bos_token_id', 'u32', v.bosId);
  w.addMetadata('tokenizer.ggml.eos_token_id', 'u32', v.eosId);
  w.addMetadata('tokenizer.ggml.unknown_token_id', 'u32', v.unkId);
  if (v.padId !== null) w.addMetadata('tokenizer.ggml.padding_token_id', 'u32', v.padId);
  w.addMetadata('tokenizer.ggml.add_space_prefix', 'bool', v.addSpacePrefix);
  w.addMetadata('tokenizer.ggml.remove_extra_whitespaces', 'bool', v.removeExtraWhitespaces);
}

/** One tensor of a grok GGUF. `canonical` is the ModelBinding name (experts: the stem; add `.E`). */
export interface GrokTensorSpec {
  readonly name: string;
  readonly canonical: string;
  /** vector: F32 norm; router: F32 [E, D]; embedding: token_embd / output; matrix; experts: [E, out, in] */
  readonly kind: 'vector' | 'router' | 'embedding' | 'matrix' | 'experts';
  /** Row-major shape as GgufWriter takes it. */
  readonly shape: readonly number[];
  /** Matrix input / output widths (rows are nOut runs of nIn values); vectors: nIn = nOut = length. */
  readonly nIn: number;
  readonly nOut: number;
}

/** Every tensor of a grok GGUF in llama.cpp's order and layout ([out, in] rows, merged `_exps`, §3.6). */
export function grokTensorPlan(c: GrokConfig, opts: { output?: boolean } = {}): GrokTensorSpec[] {
  const D = c.dModel, HK = c.nHeads * c.headDim, GK = c.nKVHeads * c.headDim, F = c.ffnSize, E = c.nExperts, V = c.vocabSize;
  const vec = (name: string, canonical: string): GrokTensorSpec => ({ name, canonical, kind: 'vector', shape: [D], nIn: D, nOut: D });
  const mat = (name: string, canonical: string, nIn: number, nOut: number, kind: GrokTensorSpec['kind'] = 'matrix'): GrokTensorSpec =>
    ({ name, canonical, kind, shape: [nOut, nIn], nIn, nOut });
  const plan: GrokTensorSpec[] = [mat('token_embd.weight', 'token_embd', D, V, 'embedding'), vec('output_norm.weight', 'output_norm')];
  if (opts.output) plan.push(mat('output.weight', 'output', D, V, 'embedding'));
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    const exps = (stem: string, nIn: number, nOut: number): GrokTensorSpec =>
      ({ name: `${p}${stem}.weight`, canonical: `${p}${stem}`, kind: 'experts', shape: [E, nOut, nIn], nIn, nOut });
    plan.push(
      vec(`${p}attn_norm.weight`, `${p}attn_norm`),
      mat(`${p}attn_q.weight`, `${p}attn_q`, D, HK),
      mat(`${p}attn_k.weight`, `${p}attn_k`, D, GK),
      mat(`${p}attn_v.weight`, `${p}attn_v`, D, GK),
      mat(`${p}attn_output.weight`, `${p}attn_output`, HK, D),
      vec(`${p}attn_output_norm.weight`, `${p}attn_output_norm`),
      vec(`${p}ffn_norm.weight`, `${p}ffn_norm`),
      mat(`${p}ffn_gate_inp.weight`, `${p}ffn_gate_inp`, D, E, 'router'),
      exps('ffn_gate_exps', D, F),
      exps('ffn_up_exps', D, F),
      exps('ffn_down_exps', F, D),
      vec(`${p}layer_output_norm.weight`, `${p}layer_output_norm`),
    );
  }
  return plan;
}

/**
 * The stored type of a matrix with rows of `nIn` values when `wanted` is asked for: `wanted` if the rows
 * fit its blocks, else llama.cpp's fallback for rows that are not a multiple of 256 (llama-quant.cpp
 * tensor_type_fallback in the release node-llama-cpp ships: Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1,
 * Q6_K → Q8_0), and F16 when even 32 does not divide the row. test/convert-llama-quantize.test.ts checks
 * the choice, and the bytes, against llama.cpp's own quantiser.
 */
export function blockTypeForRow(wanted: BlockType, nIn: number): BlockType {
  if (nIn % blockFormat(wanted).blockSize === 0) return wanted;
  const fallback: Partial<Record<BlockType, BlockType>> = { q2_k: 'q4_0', q3_k: 'q4_0', q4_k: 'q5_0', q5_k: 'q5_1', q6_k: 'q8_0' };
  const f = fallback[wanted];
  if (f && nIn % blockFormat(f).blockSize === 0) return f;
  return 'f16';
}
