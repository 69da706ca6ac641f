/**
 * GGUF reader (ggml docs/gguf.md): header, metadata, tensor infos, alignment, split files (llama.cpp gguf-split).
 *
 * The file is read through a file descriptor in small buffered pieces; tensor data is never read here,
 * only described (TensorRef: file, absolute offset, byte length). Every count, length and offset read
 * from the file is checked against the bytes that remain BEFORE anything is allocated, so a corrupt
 * header fails with a FormatError instead of allocating or looping on a claimed 2^60 bytes.
 * Offsets stay plain numbers (exact to 2^53): files exceed 4 GiB, so no 32-bit operators touch them.
 */
import { isUtf8 } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../base/errors.js';
import { checkContained, modelRoot, openRegularFile, readExactly } from '../base/files.js';
import { renderValue } from '../base/render.js';
import { type ModelSource, type StorageType, type TensorRef } from './tensor-ref.js';

/** "GGUF" as bytes 47 47 55 46 (a little-endian u32 0x46554747). */
export const GGUF_MAGIC = 0x46554747;
/** Alignment when `general.alignment` is absent (ggml docs/gguf.md). */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** ggml tensor type ids → name, values per block, bytes per block (ggml docs/gguf.md); `storage` when we can load it. */
interface GgmlTypeInfo {
  readonly name: string;
  readonly blockSize: number;
  readonly bytesPerBlock: number;
  readonly storage?: StorageType;
}

/** Kept here (not taken from src/quant) so the container can be parsed whatever block formats are registered. */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map<number, GgmlTypeInfo>([
  [0, { name: 'F32', blockSize: 1, bytesPerBlock: 4, storage: 'f32' }],
  [1, { name: 'F16', blockSize: 1, bytesPerBlock: 2, storage: 'f16' }],
  [2, { name: 'Q4_0', blockSize: 32, bytesPerBlock: 18, storage: 'q4_0' }],
  [3, { name: 'Q4_1', blockSize: 32, bytesPerBlock: 20, storage: 'q4_1' }],
  [6, { name: 'Q5_0', blockSize: 32, bytesPerBlock: 22, storage: 'q5_0' }],
  [7, { name: 'Q5_1', blockSize: 32, bytesPerBlock: 24, storage: 'q5_1' }],
  [8, { name: 'Q8_0', blockSize: 32, bytesPerBlock: 34, storage: 'q8_0' }],
  [9, { name: 'Q8_1', blockSize: 32, bytesPerBlock: 36 }],
  [10, { name: 'Q2_K', blockSize: 256, bytesPerBlock: 84, storage: 'q2_k' }],
  [11, { name: 'Q3_K', blockSize: 256, bytesPerBlock: 110, storage: 'q3_k' }],
  [12, { name: 'Q4_K', blockSize: 256, bytesPerBlock: 144, storage: 'q4_k' }],
  [13, { name: 'Q5_K', blockSize: 256, bytesPerBlock: 176, storage: 'q5_k' }],
  [14, { name: 'Q6_K', blockSize: 256, bytesPerBlock: 210, storage: 'q6_k' }],
  [15, { name: 'Q8_K', blockSize: 256, bytesPerBlock: 292 }],
  [16, { name: 'IQ2_XXS', blockSize: 256, bytesPerBlock: 66, storage: 'iq2_xxs' }],
  [17, { name: 'IQ2_XS', blockSize: 256, bytesPerBlock: 74, storage: 'iq2_xs' }],
  [18, { name: 'IQ3_XXS', blockSize: 256, bytesPerBlock: 98, storage: 'iq3_xxs' }],
  [19, { name: 'IQ1_S', blockSize: 256, bytesPerBlock: 50, storage: 'iq1_s' }],
  [20, { name: 'IQ4_NL', blockSize: 32, bytesPerBlock: 18, storage: 'iq4_nl' }],
  [21, { name: 'IQ3_S', blockSize: 256, bytesPerBlock: 110, storage: 'iq3_s' }],
  [22, { name: 'IQ2_S', blockSize: 256, bytesPerBlock: 82, storage: 'iq2_s' }],
  [23, { name: 'IQ4_XS', blockSize: 256, bytesPerBlock: 136, storage: 'iq4_xs' }],
  [24, { name: 'I8', blockSize: 1, bytesPerBlock: 1, storage: 'i8' }],
  [25, { name: 'I16', blockSize: 1, bytesPerBlock: 2, storage: 'i16' }],
  [26, { name: 'I32', blockSize: 1, bytesPerBlock: 4, storage: 'i32' }],
  [27, { name: 'I64', blockSize: 1, bytesPerBlock: 8, storage: 'i64' }],
  [28, { name: 'F64', blockSize: 1, bytesPerBlock: 8, storage: 'f64' }],
  [29, { name: 'IQ1_M', blockSize: 256, bytesPerBlock: 56, storage: 'iq1_m' }],
  [30, { name: 'BF16', blockSize: 1, bytesPerBlock: 2, storage: 'bf16' }],
  [34, { name: 'TQ1_0', blockSize: 256, bytesPerBlock: 54 }],
  [35, { name: 'TQ2_0', blockSize: 256, bytesPerBlock: 66 }],
  [39, { name: 'MXFP4', blockSize: 32, bytesPerBlock: 17 }],
]);

/** Metadata value type ids (ggml docs/gguf.md). */
export const enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

/**
 * A metadata value as returned: numbers (u64/i64 beyond 2^53 as bigint), booleans, strings; arrays of
 * numbers as typed arrays (Uint8Array … Float64Array, BigUint64Array/BigInt64Array for 64-bit integers),
 * arrays of strings, booleans or arrays as plain arrays.
 */
export type GgufValue =
  | number | bigint | boolean | string
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array
  | BigUint64Array | BigInt64Array
  | GgufValue[];

/** Fixed byte size of scalar value types; strings and arrays are variable. */
const SCALAR_SIZE: Readonly<Record<number, number>> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
/** Smallest encoding of one element of each type, used to bound counts before allocating. */
function minSize(type: number): number {
  if (type === GgufValueType.STRING) return 8;
  if (type === GgufValueType.ARRAY) return 12;
  return SCALAR_SIZE[type] ?? 1;
}
/**
 * Bounds proportional to what real files need, so a small hostile header cannot make the parser build
 * gigabytes of JavaScript objects (an 80 MB file of empty nested arrays would otherwise become 2.5 GB):
 * - `keys`: metadata entries (real files: tens);
 * - `elements`: array elements that become JavaScript values — strings, booleans, arrays; numeric arrays
 *   are kept as typed arrays and cost their bytes only (real files: a 256K-piece vocabulary plus merges);
 * - `nested`: arrays inside arrays (no key llama.cpp defines has them);
 * - `depth`: nesting depth; `tensors`: tensor infos (Grok-1: 771).
 */
export const GGUF_LIMITS = { keys: 65536, elements: 1 << 21, nested: 1024, depth: 8, tensors: 1 << 18 } as const;

/** A field description for error messages; array elements pass a function so no string is built unless needed. */
type What = string | (() => string);
const describe = (w: What): string => (typeof w === 'string' ? w : w());

/** Sequential little-endian reads from a file descriptor through a window buffer; every read is bounds-checked. */
class Cursor {
  private buf = Buffer.alloc(1 << 20);
  private bufStart = 0;
  private bufEnd = 0;
  /** Absolute file position of the next byte. */
  pos = 0;

  constructor(private readonly fd: number, readonly file: string, readonly size: number) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  fail(message: string): never {
    throw new FormatError(this.file, message);
  }

  /** Makes `n` bytes at `pos` available in `buf`; returns their index in `buf`. */
  private need(n: number, what: What): number {
    if (n > this.remaining) {
      this.fail(`truncated: ${describe(what)} needs ${n} bytes at offset ${this.pos}, but the file has ${this.size} bytes`);
    }
    if (this.pos >= this.bufStart && this.pos + n <= this.bufEnd) return this.pos - this.bufStart;
    if (n > this.buf.length) this.buf = Buffer.alloc(n);
    const want = Math.min(this.buf.length, this.size - this.pos);
    readExactly(this.fd, this.file, this.pos, this.buf.subarray(0, want));
    this.bufStart = this.pos;
    this.bufEnd = this.pos + want;
    return 0;
  }

  bytes(n: number, what: What): Buffer {
    const i = this.need(n, what);
    this.pos += n;
    return this.buf.subarray(i, i + n);
  }

  u8(what: What): number { const i = this.need(1, what); this.pos += 1; return this.buf[i]!; }
  i8(what: What): number { const i = this.need(1, what); this.pos += 1; return this.buf.readInt8(i); }
  u16(what: What): number { const i = this.need(2, what); this.pos += 2; return this.buf.readUInt16LE(i); }
  i16(what: What): number { const i = this.need(2, what); this.pos += 2; return this.buf.readInt16LE(i); }
  u32(what: What): number { const i = this.need(4, what); this.pos += 4; return this.buf.readUInt32LE(i); }
  i32(what: What): number { const i = this.need(4, what); this.pos += 4; return this.buf.readInt32LE(i); }
  f32(what: What): number { const i = this.need(4, what); this.pos += 4; return this.buf.readFloatLE(i); }
  f64(what: What): number { const i = this.need(8, what); this.pos += 8; return this.buf.readDoubleLE(i); }
  u64big(what: What): bigint { const i = this.need(8, what); this.pos += 8; return this.buf.readBigUInt64LE(i); }
  i64big(what: What): bigint { const i = this.need(8, what); this.pos += 8; return this.buf.readBigInt64LE(i); }

  /** A u64 used as a count, length or offset: must be an exact number (≤ 2^53). Two u32 halves, no BigInt. */
  u64(what: What): number {
    const at = this.pos;
    const i = this.need(8, what);
    this.pos += 8;
    const lo = this.buf.readUInt32LE(i);
    const hi = this.buf.readUInt32LE(i + 4);
    if (hi > 0x1fffff) this.fail(`${describe(what)} at offset ${at} is ${this.buf.readBigUInt64LE(i)}, larger than any file`);
    return hi * 2 ** 32 + lo;
  }

  /** GGUF string: u64 length then UTF-8 bytes. The length is checked against the file before reading. */
  string(what: What): string {
    const at = this.pos;
    const n = this.u64(() => `length of ${describe(what)}`);
    if (n > this.remaining) {
      this.fail(`${describe(what)} at offset ${at} claims ${n} bytes, but only ${this.remaining} bytes remain in the file`);
    }
    const b = this.bytes(n, what);
    if (!isUtf8(b)) this.fail(`${describe(what)} at offset ${at} is not valid UTF-8`);
    return b.toString('utf8');
  }
}

function readScalar(c: Cursor, type: number, what: What): GgufValue {
  switch (type) {
    case GgufValueType.UINT8: return c.u8(what);
    case GgufValueType.INT8: return c.i8(what);
    case GgufValueType.UINT16: return c.u16(what);
    case GgufValueType.INT16: return c.i16(what);
    case GgufValueType.UINT32: return c.u32(what);
    case GgufValueType.INT32: return c.i32(what);
    case GgufValueType.FLOAT32: return c.f32(what);
    case GgufValueType.FLOAT64: return c.f64(what);
    case GgufValueType.BOOL: {
      const at = c.pos;
      const b = c.u8(what);
      if (b > 1) c.fail(`${describe(what)} at offset ${at}: boolean byte must be 0 or 1, got ${b}`);
      return b === 1;
    }
    case GgufValueType.UINT64: {
      const v = c.u64big(what);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.INT64: {
      const v = c.i64big(what);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.STRING: return c.string(what);
    default: return c.fail(`${describe(what)}: unknown metadata value type ${type}`);
  }
}

/** Copies `n` little-endian elements into a fresh typed array (copy: the cursor's buffer is reused). */
function typedArray(c: Cursor, type: number, n: number, what: What): GgufValue | undefined {
  const size = SCALAR_SIZE[type];
  if (size === undefined || type === GgufValueType.BOOL) return undefined;
  const bytes = c.bytes(n * size, what);
  const copy = new Uint8Array(bytes); // fresh, aligned buffer
  const b = copy.buffer;
  switch (type) {
    case GgufValueType.UINT8: return copy;
    case GgufValueType.INT8: return new Int8Array(b);
    case GgufValueType.UINT16: return new Uint16Array(b);
    case GgufValueType.INT16: return new Int16Array(b);
    case GgufValueType.UINT32: return new Uint32Array(b);
    case GgufValueType.INT32: return new Int32Array(b);
    case GgufValueType.FLOAT32: return new Float32Array(b);
    case GgufValueType.FLOAT64: return new Float64Array(b);
    case GgufValueType.UINT64: return new BigUint64Array(b);
    case GgufValueType.INT64: return new BigInt64Array(b);
    default: return undefined;
  }
}

/** JavaScript values made from array elements so far (GGUF_LIMITS.elements / nested). */
interface Budget { elements: number; nested: number }

function readValue(c: Cursor, type: number, what: What, depth: number, budget: Budget): GgufValue {
  if (type !== GgufValueType.ARRAY) return readScalar(c, type, what);
  if (depth >= GGUF_LIMITS.depth) c.fail(`${describe(what)}: arrays nested more than ${GGUF_LIMITS.depth} deep (limit GGUF_LIMITS.depth)`);
  const at = c.pos;
  const elemType = c.u32(() => `element type of ${describe(what)}`);
  if (elemType > GgufValueType.FLOAT64) c.fail(`${describe(what)} at offset ${at}: unknown array element type ${elemType}`);
  const n = c.u64(() => `element count of ${describe(what)}`);
  // Bound the count by the bytes left before allocating anything for it.
  if (n * minSize(elemType) > c.remaining) {
    c.fail(`${describe(what)} at offset ${at} claims ${n} elements (at least ${minSize(elemType)} bytes each), but only ${c.remaining} bytes remain`);
  }
  const typed = typedArray(c, elemType, n, what);
  if (typed !== undefined) return typed;
  budget.elements += n;
  if (budget.elements > GGUF_LIMITS.elements) {
    c.fail(`${describe(what)} at offset ${at}: more than ${GGUF_LIMITS.elements} string/bool/array elements in the metadata (limit GGUF_LIMITS.elements)`);
  }
  if (elemType === GgufValueType.ARRAY) {
    budget.nested += n;
    if (budget.nested > GGUF_LIMITS.nested) c.fail(`${describe(what)} at offset ${at}: more than ${GGUF_LIMITS.nested} arrays nested in arrays (limit GGUF_LIMITS.nested)`);
  }
  const out: GgufValue[] = new Array<GgufValue>(n);
  for (let i = 0; i < n; i++) out[i] = readValue(c, elemType, () => `${describe(what)}[${i}]`, depth + 1, budget);
  return out;
}

/** One tensor-info record as stored, plus the derived row-major TensorRef. */
export interface GgufTensorInfo {
  readonly name: string;
  /** ggml dims, innermost first, as stored. */
  readonly dims: readonly number[];
  readonly ggmlType: number;
  /** Offset relative to the data section. */
  readonly relOffset: number;
  readonly ref: TensorRef;
}

/** One parsed GGUF file (one part of a split set). */
export interface GgufFile {
  readonly file: string;
  readonly version: number;
  readonly alignment: number;
  /** Absolute file offset of the data section. */
  readonly dataOffset: number;
  readonly fileSize: number;
  readonly metadata: Map<string, GgufValue>;
  /** Value type id of each metadata key, as stored (so a writer can round-trip it). */
  readonly metadataTypes: Map<string, number>;
  /** Tensor infos in file order. */
  readonly tensors: readonly GgufTensorInfo[];
}

export interface GgufSource extends ModelSource {
  readonly format: 'gguf';
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: ReadonlyMap<string, TensorRef>;
  /** The parsed file(s); one element unless the model is split (llama.cpp gguf-split), in part order. */
  readonly parts: readonly GgufFile[];
}

/** Integer-valued metadata of any integer type (llama.cpp accepts any integer type), or undefined when absent. */
function intMeta(meta: Map<string, GgufValue>, key: string, file: string): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw new FormatError(file, `metadata '${key}' must be an integer, got ${renderValue(v)}`);
}

/** Parses one GGUF file's header, metadata and tensor infos (no tensor data is read). */
export function readGgufFile(filePath: string): GgufFile {
  const file = path.resolve(filePath);
  const { fd, size } = openRegularFile(file);
  try {
    const c: Cursor = new Cursor(fd, file, size);
    if (size < 4) c.fail(`not a GGUF file: ${size} bytes, too short for the magic "GGUF"`);
    const magic = c.u32('magic');
    if (magic !== GGUF_MAGIC) {
      const hex = [0, 8, 16, 24].map((s) => ((magic >>> s) & 0xff).toString(16).padStart(2, '0')).join(' ');
      c.fail(`not a GGUF file: magic bytes are ${hex}, expected 47 47 55 46 ("GGUF")`);
    }
    const version = c.u32('version');
    if (version !== 0 && (version & 0xffff) === 0) {
      c.fail(`big-endian GGUF (version field reads 0x${version.toString(16)} little-endian) is not supported; convert it to little-endian`);
    }
    if (version === 1) c.fail('GGUF version 1 (32-bit counts) is not supported; re-convert the model to version 3');
    if (version !== 2 && version !== 3) c.fail(`unsupported GGUF version ${version} (expected 2 or 3)`);
    const tensorCount = c.u64('tensor count');
    const kvCount = c.u64('metadata key/value count');
    // A key/value pair takes at least 13 bytes, a tensor info at least 32: bound both counts by the file.
    if (kvCount * 13 > c.remaining) c.fail(`header claims ${kvCount} metadata entries, more than the ${size} bytes of the file can hold`);
    if (tensorCount * 32 > c.remaining) c.fail(`header claims ${tensorCount} tensors, more than the ${size} bytes of the file can hold`);
    if (kvCount > GGUF_LIMITS.keys) c.fail(`header claims ${kvCount} metadata entries (limit GGUF_LIMITS.keys = ${GGUF_LIMITS.keys})`);
    if (tensorCount > GGUF_LIMITS.tensors) c.fail(`header claims ${tensorCount} tensors (limit GGUF_LIMITS.tensors = ${GGUF_LIMITS.tensors})`);
    const budget: Budget = { elements: 0, nested: 0 };

    const metadata = new Map<string, GgufValue>();
    const metadataTypes = new Map<string, number>();
    for (let i = 0; i < kvCount; i++) {
      const key = c.string(`key of metadata entry ${i}`);
      if (metadata.has(key)) c.fail(`metadata key '${key}' occurs twice`);
      const at = c.pos;
      const type = c.u32(`value type of '${key}'`);
      if (type > GgufValueType.FLOAT64) c.fail(`metadata '${key}' at offset ${at}: unknown value type ${type}`);
      metadata.set(key, readValue(c, type, `metadata '${key}'`, 0, budget));
      metadataTypes.set(key, type);
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const a = intMeta(metadata, 'general.alignment', file);
    if (a !== undefined) {
      if (a <= 0 || a > 2 ** 30 || (a & (a - 1)) !== 0) c.fail(`general.alignment must be a power of two, got ${a}`);
      alignment = a;
    }

    interface RawInfo { name: string; dims: number[]; ggmlType: number; relOffset: number; length: number; info: GgmlTypeInfo }
    const raw: RawInfo[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const name = c.string(`name of tensor ${i}`);
      if (seen.has(name)) c.fail(`tensor '${name}' occurs twice`);
      seen.add(name);
      const nDims = c.u32(`dimension count of tensor '${name}'`);
      if (nDims < 1 || nDims > 4) c.fail(`tensor '${name}': ${nDims} dimensions (expected 1 to 4)`);
      const dims: number[] = [];
      let elements = 1;
      for (let d = 0; d < nDims; d++) {
        const n = c.u64(`dimension ${d} of tensor '${name}'`);
        dims.push(n);
        elements *= n;
        if (elements > Number.MAX_SAFE_INTEGER) c.fail(`tensor '${name}': dims [${dims.join(', ')}…] hold more elements than any file`);
      }
      const at = c.pos;
      const ggmlType = c.u32(`type of tensor '${name}'`);
      const info = GGML_TYPES.get(ggmlType);
      if (info === undefined) c.fail(`tensor '${name}' at offset ${at}: unknown ggml type id ${ggmlType}`);
      if (info.storage === undefined) c.fail(`tensor '${name}': ggml type ${info.name} (id ${ggmlType}) is not supported`);
      if (dims[0]! % info.blockSize !== 0) {
        c.fail(`tensor '${name}': row length ${dims[0]} is not a multiple of the ${info.name} block size ${info.blockSize}`);
      }
      const length = (elements / info.blockSize) * info.bytesPerBlock;
      const relOffset = c.u64(`data offset of tensor '${name}'`);
      if (relOffset % alignment !== 0) c.fail(`tensor '${name}': data offset ${relOffset} is not a multiple of the alignment ${alignment}`);
      raw.push({ name, dims, ggmlType, relOffset, length, info });
    }

    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    if (tensorCount > 0 && dataOffset > size) c.fail(`data section would start at ${dataOffset}, past the end of the file (${size} bytes)`);
    const tensors: GgufTensorInfo[] = raw.map((r) => {
      const offset = dataOffset + r.relOffset;
      if (offset + r.length > size) {
        c.fail(`tensor '${r.name}' (${r.info.name} [${r.dims.join(', ')}], ${r.length} bytes at file offset ${offset}) extends past the end of the file (${size} bytes)`);
      }
      const ref: TensorRef = {
        name: r.name,
        type: r.info.storage!,
        shape: [...r.dims].reverse(),
        file,
        offset,
        length: r.length,
      };
      return { name: r.name, dims: r.dims, ggmlType: r.ggmlType, relOffset: r.relOffset, ref };
    });
    // Offsets need not follow record order, but two tensors must never share bytes.
    const byOffset = [...tensors].filter((t) => t.ref.length > 0).sort((x, y) => x.relOffset - y.relOffset);
    for (let i = 1; i < byOffset.length; i++) {
      const p = byOffset[i - 1]!;
      const t = byOffset[i]!;
      if (p.relOffset + p.ref.length > t.relOffset) {
        c.fail(`tensors '${p.name}' (bytes ${p.relOffset}…${p.relOffset + p.ref.length} of the data section) and '${t.name}' (from ${t.relOffset}) overlap`);
      }
    }
    return { file, version, alignment, dataOffset, fileSize: size, metadata, metadataTypes, tensors };
  } finally {
    fs.closeSync(fd);
  }
}

/** `name-00001-of-00004.gguf` → prefix, part number (1-based), part count, digit widths. */
const SPLIT_RE = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/;

export function splitPartPaths(filePath: string): string[] | undefined {
  const abs = path.resolve(filePath);
  const m = SPLIT_RE.exec(path.basename(abs));
  if (!m) return undefined;
  const part = Number(m[2]);
  const count = Number(m[3]);
  if (count < 1 || part < 1 || part > count) {
    throw new FormatError(abs, `split file name says part ${part} of ${count}: expected name-0000k-of-0000N.gguf with 1 ≤ k ≤ N`);
  }
  const dir = path.dirname(abs);
  const parts: string[] = [];
  for (let k = 1; k <= count; k++) parts.push(path.join(dir, `${m[1]}-${String(k).padStart(5, '0')}-of-${m[3]}.gguf`));
  return parts;
}

/**
 * Opens a GGUF model: one file, or a split set `name-0000k-of-0000N.gguf` given any of its parts (llama.cpp gguf-split).
 * The parts' tensors are merged; the first part's metadata is the model's.
 */
export function openGguf(filePath: string): GgufSource {
  const abs = path.resolve(filePath);
  const partPaths = splitPartPaths(abs);
  let parts: GgufFile[];
  if (partPaths === undefined) {
    const f = readGgufFile(abs);
    const count = intMeta(f.metadata, 'split.count', abs);
    if (count !== undefined && count > 1) {
      throw new FormatError(abs, `this file is part of a ${count}-part split model (split.count), but its name does not follow 'name-0000k-of-0000N.gguf', so the other parts cannot be found`);
    }
    parts = [f];
  } else {
    const root = modelRoot(path.dirname(abs));
    for (const p of partPaths) {
      if (p !== abs) checkContained(root, p);
      if (!fs.existsSync(p)) {
        throw new FormatError(abs, `split model part ${path.basename(p)} is missing (expected ${partPaths.length} parts beside ${path.basename(abs)})`);
      }
    }
    parts = partPaths.map((p) => readGgufFile(p));
    validateSplit(parts);
  }

  const tensors = new Map<string, TensorRef>();
  for (const part of parts) {
    for (const t of part.tensors) {
      if (tensors.has(t.name)) throw new FormatError(part.file, `tensor '${t.name}' also occurs in ${path.basename(tensors.get(t.name)!.file)}`);
      tensors.set(t.name, t.ref);
    }
  }
  const first = parts[0]!;
  return {
    format: 'gguf',
    path: abs,
    tensors,
    metadata: first.metadata,
    parts,
    close() { /* readGgufFile closes its descriptor; loaders open the files by path */ },
  };
}

function validateSplit(parts: GgufFile[]): void {
  const n = parts.length;
  let total = 0;
  let declaredTotal: number | undefined;
  parts.forEach((p, i) => {
    const no = intMeta(p.metadata, 'split.no', p.file);
    const count = intMeta(p.metadata, 'split.count', p.file);
    if (count !== undefined && count !== n) {
      throw new FormatError(p.file, `split.count is ${count}, but the file name says the model has ${n} parts`);
    }
    if (no !== undefined && no !== i) {
      throw new FormatError(p.file, `split.no is ${no}, but the file name says this is part ${i + 1} (split.no ${i})`);
    }
    const t = intMeta(p.metadata, 'split.tensors.count', p.file);
    if (t !== undefined) {
      if (declaredTotal !== undefined && t !== declaredTotal) {
        throw new FormatError(p.file, `split.tensors.count is ${t}, but ${path.basename(parts[0]!.file)} says ${declaredTotal}`);
      }
      declaredTotal = t;
    }
    total += p.tensors.length;
  });
  if (declaredTotal !== undefined && declaredTotal !== total) {
    throw new FormatError(parts[0]!.file, `split.tensors.count is ${declaredTotal}, but the ${n} parts hold ${total} tensors`);
  }
}
