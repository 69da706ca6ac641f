/**
 * Writing files in the released checkpoint's form (ckpt-0/tensorNNNNN_000, docs formats.md §1): one pickle
 * (protocol 4) per parameter, a numpy float32 array or a `__main__.QuantizedWeight8bit` with int8 `weight`
 * and ml_dtypes bfloat16 `scales` — the opcodes, memo and framing of the real files, so that a file written
 * here reads like one of xAI's (by ckpt.ts, and by Python's pickle given numpy and ml_dtypes). For
 * benchmark and test sources at Grok-1 widths (`grok synth --form ckpt-0`); payloads are streamed, never held.
 *
 * Framing (formats.md §1.3): small opcodes are grouped in FRAMEs; a payload of 64 KiB or more is written
 * outside any frame (the frame is closed, BINBYTES + length + payload follow, a new frame starts).
 */
import fs from 'node:fs';

const PROTO = 0x80, FRAME = 0x95, SHORT_BINUNICODE = 0x8c, MEMOIZE = 0x94, STACK_GLOBAL = 0x93, EMPTY_TUPLE = 0x29;
const NEWOBJ = 0x81, EMPTY_DICT = 0x7d, MARK = 0x28, BININT1 = 0x4b, BININT2 = 0x4d, BININT = 0x4a, TUPLE1 = 0x85;
const TUPLE2 = 0x86, TUPLE3 = 0x87, TUPLE = 0x74, SHORT_BINBYTES = 0x43, BINBYTES = 0x42, REDUCE = 0x52, BINGET = 0x68;
const NEWFALSE = 0x89, NEWTRUE = 0x88, NONE = 0x4e, BUILD = 0x62, SETITEMS = 0x75, STOP = 0x2e;
/** Payloads at least this long go outside frames (pickle's _FRAME_SIZE_TARGET). */
const FRAME_TARGET = 64 * 1024;

/** Writes a payload of `length` bytes by calling `chunk` with consecutive pieces (their lengths must add up). */
export type PayloadWriter = (write: (chunk: Uint8Array) => void) => void;

/** A protocol-4 pickler of just what the checkpoint needs, writing to a file descriptor. */
class Pickler {
  private frame: number[] = [];
  private memo = 0;
  private readonly memoOf = new Map<string, number>();

  constructor(private readonly fd: number) {
    fs.writeSync(fd, Uint8Array.of(PROTO, 4));
  }

  private op(...b: number[]): void {
    for (const x of b) this.frame.push(x);
  }

  private flush(): void {
    if (!this.frame.length) return;
    const head = Buffer.alloc(9);
    head[0] = FRAME;
    head.writeBigUInt64LE(BigInt(this.frame.length), 1);
    fs.writeSync(this.fd, head);
    fs.writeSync(this.fd, Uint8Array.from(this.frame));
    this.frame = [];
  }

  /** Memoise the top of the stack, remembering it under `key` (for a later `get`). */
  memoize(key?: string): void {
    this.op(MEMOIZE);
    if (key !== undefined) this.memoOf.set(key, this.memo);
    this.memo++;
  }

  /** Push a memoised object again; false when `key` was never memoised. */
  get(key: string): boolean {
    const i = this.memoOf.get(key);
    if (i === undefined) return false;
    if (i > 255) throw new Error('ckpt writer: memo index beyond BINGET');
    this.op(BINGET, i);
    return true;
  }

  str(s: string, key?: string): void {
    const b = Buffer.from(s, 'utf8');
    if (b.length > 255) throw new Error(`ckpt writer: string too long: ${s}`);
    this.op(SHORT_BINUNICODE, b.length, ...b);
    this.memoize(key);
  }

  /** module.name as a global (memoised under `module.name`; reused when seen before). */
  global(module: string, name: string): void {
    if (this.get(`${module}.${name}`)) return;
    if (!this.get(`str:${module}`)) this.str(module, `str:${module}`);
    this.str(name);
    this.op(STACK_GLOBAL);
    this.memoize(`${module}.${name}`);
  }

  int(v: number): void {
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw new Error(`ckpt writer: ${v} does not fit BININT`);
    if (v >= 0 && v < 256) this.op(BININT1, v);
    else if (v >= 0 && v < 65536) this.op(BININT2, v & 0xff, v >> 8);
    else this.op(BININT, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }

  tuple(n: number, markedBefore: boolean): void {
    if (markedBefore) this.op(TUPLE);
    else if (n === 1) this.op(TUPLE1);
    else if (n === 2) this.op(TUPLE2);
    else if (n === 3) this.op(TUPLE3);
    else throw new Error('ckpt writer: tuple of more than 3 needs a mark');
  }

  ints(values: readonly number[]): void {
    const marked = values.length > 3 || values.length === 0;
    if (marked) this.op(MARK);
    for (const v of values) this.int(v);
    if (values.length === 0) this.op(TUPLE);
    else this.tuple(values.length, marked);
  }

  raw(...b: number[]): void {
    this.op(...b);
  }

  /** (SHORT_)BINBYTES of `length` bytes: inside the frame when small, else outside any frame (streamed). */
  bytes(length: number, payload: PayloadWriter): void {
    if (length >= 2 ** 32) throw new Error('ckpt writer: payload beyond BINBYTES (4 GiB)');
    const head = length < 256 ? [SHORT_BINBYTES, length] : [BINBYTES, length & 0xff, (length >>> 8) & 0xff, (length >>> 16) & 0xff, (length >>> 24) & 0xff];
    let written = 0;
    if (length < FRAME_TARGET) {
      this.op(...head);
      payload((c) => { this.op(...c); written += c.length; });
    } else {
      this.flush();
      fs.writeSync(this.fd, Uint8Array.from(head));
      payload((c) => {
        for (let o = 0; o < c.length;) o += fs.writeSync(this.fd, c, o, c.length - o);
        written += c.length;
      });
    }
    if (written !== length) throw new Error(`ckpt writer: payload of ${written} bytes, ${length} announced`);
  }

  end(): void {
    this.op(STOP);
    this.flush();
  }
}

type Dtype = 'f4' | 'i1' | 'bf16';

/** One numpy array: numpy.core.multiarray._reconstruct(ndarray, (0,), b'b') then __setstate__ (version 1, shape, dtype, False, bytes). */
function ndarray(p: Pickler, shape: readonly number[], dtype: Dtype, payload: PayloadWriter): void {
  p.global('numpy.core.multiarray', '_reconstruct');
  p.global('numpy', 'ndarray');
  p.int(0); // (0,): a fresh tuple each time, as pickle writes it (b'b' is one interned object, reused)
  p.tuple(1, false);
  p.memoize();
  if (!p.get("b'b'")) {
    p.raw(SHORT_BINBYTES, 1, 0x62);
    p.memoize("b'b'");
  }
  p.tuple(3, false);
  p.memoize();
  p.raw(REDUCE);
  p.memoize();
  p.raw(MARK);
  p.int(1);
  p.ints(shape);
  p.memoize();
  // the dtype: numpy.dtype(name or type, False, True) with its __setstate__
  p.global('numpy', 'dtype');
  if (dtype === 'bf16') p.global('ml_dtypes', 'bfloat16');
  else p.str(dtype);
  p.raw(NEWFALSE, NEWTRUE);
  p.tuple(3, false);
  p.memoize();
  p.raw(REDUCE);
  p.memoize();
  p.raw(MARK);
  p.int(3);
  const order = dtype === 'i1' ? '|' : '<';
  if (!p.get(`str:${order}`)) p.str(order, `str:${order}`);
  p.raw(NONE, NONE, NONE);
  if (dtype === 'bf16') { p.int(2); p.int(2); p.int(64); } else { p.int(-1); p.int(-1); p.int(0); }
  p.raw(TUPLE);
  p.memoize();
  p.raw(BUILD, NEWFALSE);
  const size = shape.reduce((a, b) => a * b, 1) * (dtype === 'f4' ? 4 : dtype === 'bf16' ? 2 : 1);
  p.bytes(size, payload);
  p.memoize();
  p.raw(TUPLE);
  p.memoize();
  p.raw(BUILD);
}

/** A checkpoint float32 array file (embeddings, norms, routers). */
export function writeCkptArray(file: string, shape: readonly number[], payload: PayloadWriter): void {
  const fd = fs.openSync(file, 'w');
  try {
    const p = new Pickler(fd);
    ndarray(p, shape, 'f4', payload);
    p.end();
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A checkpoint QuantizedWeight8bit file: int8 weight of `shape` (…, K, N) and bfloat16 scales of
 * `scalesShape` (…, G, N) (formats.md §1.6), payloads streamed in that order.
 */
export function writeCkptQuantized(file: string, shape: readonly number[], weight: PayloadWriter, scalesShape: readonly number[], scales: PayloadWriter): void {
  const fd = fs.openSync(file, 'w');
  try {
    const p = new Pickler(fd);
    p.global('__main__', 'QuantizedWeight8bit');
    p.raw(EMPTY_TUPLE, NEWOBJ);
    p.memoize();
    p.raw(EMPTY_DICT);
    p.memoize();
    p.raw(MARK);
    p.str('weight');
    ndarray(p, shape, 'i1', weight);
    p.str('scales');
    ndarray(p, scalesShape, 'bf16', scales);
    p.raw(SETITEMS, BUILD);
    p.end();
  } finally {
    fs.closeSync(fd);
  }
}
