/**
 * Streaming GGUF v3 writer (ggml docs/gguf.md). Memory is bounded by what the caller hands over at once:
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
 * Shapes are given row-major (PyTorch/numpy order) and written reversed as ggml dims (ggml docs/gguf.md); the last
 * (innermost) dimension must be a multiple of the type's block size. Each tensor's byte length is checked
 * against its type and shape. `general.alignment` is written automatically when the alignment is not 32.
 * Value types: 'u8' 'i8' 'u16' 'i16' 'u32' 'i32' 'f32' 'bool' 'string' 'u64' 'i64' 'f64', arrays of them
 * as 'u8[]' … 'string[]', or a GgufValueType id (0 … 12 except 9) for a scalar.
 * The file is written atomically (src/base/atomic-file.ts): a temporary file beside the target, renamed
 * over it by close(); abort() (after an error), SIGINT and SIGTERM delete the temporary file, so the target
 * path never holds a partial file. Pass `inputs` to refuse a target that is one of them (links followed).
 */
import fs from 'node:fs';
import path from 'node:path';
import { AtomicFile, refuseInputs } from '../base/atomic-file.js';
import { blockFormat } from '../quant/index.js';
import type { BlockType } from '../quant/types.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC } from './gguf.js';

type Scalar = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';
export type GgufWriteType = Scalar | `${Scalar}[]` | number;
export type GgufWriteValue = number | bigint | boolean | string | ArrayLike<number> | ArrayLike<bigint> | readonly boolean[] | readonly string[];

/** GGUF value type ids (ggml docs/gguf.md). */
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
  private out: AtomicFile | undefined;
  private readonly inputs: readonly string[];
  private state: 'adding' | 'data' | 'closed' = 'adding';
  private next = 0;
  private pos = 0;

  /** `inputs`: files the data is read from; writeHeader refuses a target that is one of them. */
  constructor(filePath: string, opts: { alignment?: number; inputs?: readonly string[] } = {}) {
    this.path = path.resolve(filePath);
    this.inputs = opts.inputs ?? [];
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

  /** I/O errors (a full disk, …) name the output, not the temporary file. */
  private async io<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === undefined) throw e;
      throw new Error(`${this.path}: writing failed: ${err.code === 'ENOSPC' ? 'no space left on the device' : err.message}`);
    }
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
    refuseInputs(this.path, this.inputs);
    this.out = new AtomicFile(this.path);
    this.fh = await this.io(() => fs.promises.open(this.out!.temp, 'wx'));
    this.state = 'data';
    await this.write(h.result());
  }

  private async write(b: Uint8Array): Promise<void> {
    let done = 0;
    while (done < b.length) {
      const { bytesWritten } = await this.io(() => this.fh!.write(b, done, b.length - done));
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
    await this.io(() => this.fh!.close());
    this.fh = undefined;
    this.state = 'closed';
    await this.out!.commit();
  }

  /** Closes and deletes the partly written temporary file (after an error); the target is untouched. */
  async abort(): Promise<void> {
    if (this.fh) await this.fh.close().catch(() => undefined);
    this.fh = undefined;
    this.state = 'closed';
    this.out?.discard();
  }

  /** The temporary file being written (between writeHeader and close), renamed to `path` by close(). */
  get writingTo(): string | undefined {
    return this.state === 'data' ? this.out?.temp : undefined;
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
