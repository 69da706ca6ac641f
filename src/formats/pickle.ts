/**
 * A reader for the pickle subset of the released Grok-1 checkpoint (Python's pickle protocol, pickletools.py).
 *
 * It is a stack machine over a small, inert object model: nothing is imported, called or executed.
 * Globals are checked against an allow-list the moment they are created, so a pickle naming
 * `os.system` fails at that opcode. Large byte strings are not read: the reader records their file
 * offset and length and seeks past them, so a 1.6 GB tensor file costs a few hundred bytes of I/O.
 */
import fs from 'node:fs';
import { FormatError } from '../base/errors.js';
import { openRegularFile, readExactly } from '../base/files.js';
import { renderValue } from '../base/render.js';

export interface PickleGlobal { readonly kind: 'global'; readonly module: string; readonly name: string }
export interface PickleBytes { readonly kind: 'bytes'; readonly offset: number; readonly length: number; readonly inline?: Uint8Array }
export interface PickleTuple { readonly kind: 'tuple'; readonly items: readonly PickleValue[] }
export interface PickleDict { readonly kind: 'dict'; readonly entries: [PickleValue, PickleValue][] }
/** An object made by REDUCE (callable(*args)) or NEWOBJ (cls.__new__(cls, *args)); BUILD sets `state`. */
export interface PickleObject {
  readonly kind: 'object';
  readonly how: 'reduce' | 'newobj';
  readonly callable: PickleGlobal;
  readonly args: readonly PickleValue[];
  state: PickleValue | undefined;
}
export type PickleValue = null | boolean | number | bigint | string | PickleGlobal | PickleBytes | PickleTuple | PickleDict | PickleObject;

/** A numpy array found in a pickle: its element type and where its bytes are. */
export interface PickledArray {
  readonly kind: 'array';
  readonly dtype: 'f32' | 'f16' | 'f64' | 'bf16' | 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64' | 'bool';
  readonly shape: readonly number[];
  readonly offset: number;
  readonly length: number;
}
/** The checkpoint's `QuantizedWeight8bit`: int8 `weight` and bfloat16 `scales`. */
export interface PickledQuantized { readonly kind: 'qw8'; readonly weight: PickledArray; readonly scales: PickledArray }

/** Globals a checkpoint may name. The bfloat16 type is matched by name in any module (ml_dtypes' bfloat16). */
function allowedGlobal(module: string, name: string): boolean {
  if ((module === 'numpy.core.multiarray' || module === 'numpy._core.multiarray') && name === '_reconstruct') return true;
  if (module === 'numpy' && (name === 'ndarray' || name === 'dtype')) return true;
  if (name === 'bfloat16') return true;
  if (name === 'QuantizedWeight8bit') return true;
  return false;
}

const MARK = Symbol('mark');
type StackItem = PickleValue | typeof MARK;

/** Longest string we accept (tensor pickles hold a handful of short names). */
const MAX_STRING = 1 << 20;
/**
 * Bounds proportional to what a tensor pickle needs (a QuantizedWeight8bit pickle peaks at ~10 stack items
 * and ~30 values), so a hostile file of repeated opcodes fails at once instead of growing the heap by
 * gigabytes: the stack, the memo, and the values created (objects, tuples, dict entries) are each capped.
 */
export const PICKLE_LIMITS = { stack: 1024, memo: 65536, values: 65536 } as const;
/** Byte strings up to this size are read into memory (dtype codes, small arrays); larger ones are recorded only. */
const INLINE_LIMIT = 256;

/** Sequential reader over a file descriptor with a small window; absolute positions are plain numbers. */
class Cursor {
  private buf = Buffer.alloc(1 << 16);
  private bufStart = 0;
  private bufEnd = 0;
  pos = 0;
  constructor(private readonly fd: number, readonly size: number, private readonly file: string) {}

  private fill(n: number): void {
    if (this.pos + n > this.size) {
      throw new FormatError(this.file, `truncated pickle: needs ${n} byte(s) at offset ${this.pos}, file has ${this.size}`);
    }
    if (this.pos >= this.bufStart && this.pos + n <= this.bufEnd) return;
    if (n > this.buf.length) this.buf = Buffer.alloc(n);
    const len = Math.min(this.buf.length, this.size - this.pos);
    readExactly(this.fd, this.file, this.pos, this.buf.subarray(0, len));
    this.bufStart = this.pos;
    this.bufEnd = this.pos + len;
  }
  u8(): number {
    this.fill(1);
    return this.buf[this.pos++ - this.bufStart]!;
  }
  bytes(n: number): Uint8Array {
    this.fill(n);
    const s = this.pos - this.bufStart;
    this.pos += n;
    return Uint8Array.prototype.slice.call(this.buf, s, s + n);
  }
  u16(): number { const b = this.bytes(2); return b[0]! | (b[1]! << 8); }
  u32(): number { const b = this.bytes(4); return (b[0]! | (b[1]! << 8) | (b[2]! << 16)) + b[3]! * 0x1000000; }
  i32(): number { const b = this.bytes(4); return b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24); }
  u64(): number {
    const lo = this.u32();
    const hi = this.u32();
    const v = hi * 0x100000000 + lo;
    if (hi >= 0x200000) throw new FormatError(this.file, `64-bit length ${hi}·2^32+${lo} at offset ${this.pos - 8} is absurd`);
    return v;
  }
  skip(n: number): void {
    if (this.pos + n > this.size) {
      throw new FormatError(this.file, `truncated pickle: a ${n}-byte payload at offset ${this.pos} runs past the end of the file (${this.size} bytes)`);
    }
    this.pos += n;
  }
  line(): string {
    const start = this.pos;
    const chars: number[] = [];
    for (;;) {
      const c = this.u8();
      if (c === 0x0a) break;
      chars.push(c);
      if (chars.length > 4096) throw new FormatError(this.file, `unterminated text line at offset ${start}`);
    }
    return String.fromCharCode(...chars);
  }
}

/** Parse one pickle file into its inert value. */
export function readPickle(file: string): PickleValue {
  const { fd, size } = openRegularFile(file);
  try {
    return parse(new Cursor(fd, size, file), file);
  } finally {
    fs.closeSync(fd);
  }
}

function parse(c: Cursor, file: string): PickleValue {
  const memo: PickleValue[] = [];
  const fail = (msg: string, at: number): never => {
    throw new FormatError(file, `${msg} (pickle opcode at offset ${at})`);
  };
  let values = 0;
  /** Count one created value (object, tuple, dict entry…) against the limit. */
  const made = (at: number, n = 1): void => {
    values += n;
    if (values > PICKLE_LIMITS.values) fail(`more than ${PICKLE_LIMITS.values} values: far beyond any tensor pickle (limit PICKLE_LIMITS.values)`, at);
  };
  const stack: StackItem[] = [];
  let at = 0; // offset of the opcode being executed
  const push = (v: StackItem): void => {
    if (stack.length >= PICKLE_LIMITS.stack) fail(`stack deeper than ${PICKLE_LIMITS.stack} items: far beyond any tensor pickle (limit PICKLE_LIMITS.stack)`, at);
    stack.push(v);
  };
  const pop = (at: number): PickleValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) fail('stack underflow', at);
    return v as PickleValue;
  };
  const top = (at: number): PickleValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail('stack underflow', at);
    return v as PickleValue;
  };
  const popMark = (at: number): PickleValue[] => {
    const items: PickleValue[] = [];
    for (;;) {
      const v = stack.pop();
      if (v === undefined) fail('MARK expected but the stack is empty', at);
      if (v === MARK) break;
      items.push(v as PickleValue);
    }
    return items.reverse();
  };
  const str = (n: number, at: number): string => {
    if (n > MAX_STRING) fail(`string of ${n} bytes is longer than any checkpoint name`, at);
    return new TextDecoder('utf-8', { fatal: false }).decode(c.bytes(n));
  };
  const bytes = (n: number): PickleBytes => {
    const offset = c.pos;
    if (n <= INLINE_LIMIT) return { kind: 'bytes', offset, length: n, inline: c.bytes(n) };
    c.skip(n);
    return { kind: 'bytes', offset, length: n };
  };
  const global = (module: string, name: string, at: number): PickleGlobal => {
    if (!allowedGlobal(module, name)) {
      fail(`foreign pickle global '${module}.${name}': only numpy arrays, numpy dtypes, bfloat16 and QuantizedWeight8bit are accepted; refusing to load`, at);
    }
    return { kind: 'global', module, name };
  };
  const tuple = (items: PickleValue[]): PickleTuple => { made(at); return { kind: 'tuple', items }; };
  const memoIndex = (i: number, at: number): PickleValue => {
    if (i >= memo.length) fail(`memo index ${i} was never stored (memo has ${memo.length})`, at);
    return memo[i]!;
  };
  const memoPut = (i: number, v: PickleValue, at: number): void => {
    if (i > memo.length) fail(`memo index ${i} skips entries (memo has ${memo.length})`, at);
    if (i >= PICKLE_LIMITS.memo) fail(`memo larger than ${PICKLE_LIMITS.memo} entries (limit PICKLE_LIMITS.memo)`, at);
    memo[i] = v;
  };

  let sawProto = false;
  for (;;) {
    at = c.pos;
    const op = c.u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = c.u8();
        if (v < 2 || v > 5) fail(`pickle protocol ${v} is not supported (expected 2…5)`, at);
        sawProto = true;
        break;
      }
      case 0x95: c.u64(); break; // FRAME: a sequential reader ignores frame boundaries
      case 0x8c: push(str(c.u8(), at)); break; // SHORT_BINUNICODE
      case 0x58: push(str(c.u32(), at)); break; // BINUNICODE
      case 0x8d: push(str(c.u64(), at)); break; // BINUNICODE8
      case 0x94: memoPut(memo.length, top(at), at); break; // MEMOIZE
      case 0x68: push(memoIndex(c.u8(), at)); break; // BINGET
      case 0x6a: push(memoIndex(c.u32(), at)); break; // LONG_BINGET
      case 0x71: memoPut(c.u8(), top(at), at); break; // BINPUT
      case 0x72: memoPut(c.u32(), top(at), at); break; // LONG_BINPUT
      case 0x93: { // STACK_GLOBAL
        const name = pop(at);
        const module = pop(at);
        if (typeof name !== 'string' || typeof module !== 'string') fail('STACK_GLOBAL needs two strings', at);
        push(global(module as string, name as string, at));
        break;
      }
      case 0x63: push(global(c.line(), c.line(), at)); break; // GLOBAL
      case 0x4b: push(c.u8()); break; // BININT1
      case 0x4d: push(c.u16()); break; // BININT2
      case 0x4a: push(c.i32()); break; // BININT
      case 0x8a: { // LONG1
        const n = c.u8();
        const b = c.bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x29: push(tuple([])); break; // EMPTY_TUPLE
      case 0x85: push(tuple([pop(at)])); break; // TUPLE1
      case 0x86: { const b = pop(at); const a = pop(at); push(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const z = pop(at); const b = pop(at); const a = pop(at); push(tuple([a, b, z])); break; } // TUPLE3
      case 0x28: push(MARK); break; // MARK
      case 0x74: push(tuple(popMark(at))); break; // TUPLE
      case 0x43: push(bytes(c.u8())); break; // SHORT_BINBYTES
      case 0x42: push(bytes(c.u32())); break; // BINBYTES
      case 0x8e: push(bytes(c.u64())); break; // BINBYTES8
      case 0x52: case 0x81: { // REDUCE, NEWOBJ
        const args = pop(at);
        const callable = pop(at);
        if (typeof callable !== 'object' || callable === null || callable.kind !== 'global') fail('REDUCE/NEWOBJ of something that is not an allowed global', at);
        if (typeof args !== 'object' || args === null || args.kind !== 'tuple') fail('REDUCE/NEWOBJ arguments are not a tuple', at);
        made(at);
        push({ kind: 'object', how: op === 0x52 ? 'reduce' : 'newobj', callable: callable as PickleGlobal, args: (args as PickleTuple).items, state: undefined });
        break;
      }
      case 0x62: { // BUILD
        const state = pop(at);
        const obj = top(at);
        if (typeof obj !== 'object' || obj === null || obj.kind !== 'object') fail('BUILD on something that is not an object', at);
        if ((obj as PickleObject).state !== undefined) fail('BUILD applied twice to one object', at);
        (obj as PickleObject).state = state;
        break;
      }
      case 0x7d: made(at); push({ kind: 'dict', entries: [] }); break; // EMPTY_DICT
      case 0x75: { // SETITEMS
        const items = popMark(at);
        const d = top(at);
        if (typeof d !== 'object' || d === null || d.kind !== 'dict') fail('SETITEMS on something that is not a dict', at);
        if (items.length % 2) fail('SETITEMS with an odd number of items', at);
        made(at, items.length / 2);
        for (let i = 0; i < items.length; i += 2) (d as PickleDict).entries.push([items[i]!, items[i + 1]!]);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(at);
        const k = pop(at);
        const d = top(at);
        if (typeof d !== 'object' || d === null || d.kind !== 'dict') fail('SETITEM on something that is not a dict', at);
        made(at);
        (d as PickleDict).entries.push([k, v]);
        break;
      }
      case 0x89: push(false); break; // NEWFALSE
      case 0x88: push(true); break; // NEWTRUE
      case 0x4e: push(null); break; // NONE
      case 0x2e: { // STOP
        if (!sawProto) fail('no PROTO opcode: not a protocol 2+ pickle', at);
        if (stack.length !== 1) fail(`STOP with ${stack.length} items on the stack (expected 1)`, at);
        return pop(at);
      }
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}`, at);
    }
  }
}

const dtypeCodes: Record<string, PickledArray['dtype']> = {
  f4: 'f32', f2: 'f16', f8: 'f64', i1: 'i8', u1: 'u8', i2: 'i16', u2: 'u16', i4: 'i32', u4: 'u32', i8: 'i64', u8: 'u64', b1: 'bool',
};
const dtypeSize: Record<PickledArray['dtype'], number> = {
  f32: 4, f16: 2, f64: 8, bf16: 2, i8: 1, u8: 1, i16: 2, u16: 2, i32: 4, u32: 4, i64: 8, u64: 8, bool: 1,
};

function isGlobal(v: PickleValue | undefined, module: string | null, name: string): boolean {
  return typeof v === 'object' && v !== null && v.kind === 'global' && v.name === name && (module === null || v.module === module);
}

function tupleItems(v: PickleValue | undefined): readonly PickleValue[] | undefined {
  return typeof v === 'object' && v !== null && v.kind === 'tuple' ? v.items : undefined;
}

/** Interpret a `numpy.dtype(...)` object. */
function interpretDtype(v: PickleValue | undefined, file: string, what: string): PickledArray['dtype'] {
  if (typeof v !== 'object' || v === null || v.kind !== 'object' || !isGlobal(v.callable, 'numpy', 'dtype')) {
    throw new FormatError(file, `${what}: expected a numpy dtype`);
  }
  const descr = v.args[0];
  let dtype: PickledArray['dtype'] | undefined;
  if (typeof descr === 'string') dtype = dtypeCodes[descr];
  else if (isGlobal(descr, null, 'bfloat16')) dtype = 'bf16';
  if (!dtype) throw new FormatError(file, `${what}: unsupported dtype ${renderValue(descr)}`);
  const state = tupleItems(v.state);
  const order = state?.[1];
  if (order === '>') throw new FormatError(file, `${what}: big-endian arrays are not supported`);
  return dtype;
}

/** Interpret a `numpy.core.multiarray._reconstruct` object with its 5-tuple state as an array. */
function interpretArray(v: PickleValue | undefined, file: string, what: string): PickledArray {
  if (typeof v !== 'object' || v === null || v.kind !== 'object' || v.how !== 'reduce' || !isGlobal(v.callable, null, '_reconstruct')) {
    throw new FormatError(file, `${what}: expected a numpy array`);
  }
  if (!isGlobal(v.args[0], 'numpy', 'ndarray')) throw new FormatError(file, `${what}: _reconstruct of something other than numpy.ndarray`);
  const state = tupleItems(v.state);
  if (!state || state.length !== 5) throw new FormatError(file, `${what}: array state must be a 5-tuple`);
  const shapeItems = tupleItems(state[1]);
  if (!shapeItems) throw new FormatError(file, `${what}: array shape is not a tuple`);
  const shape = shapeItems.map((d) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) throw new FormatError(file, `${what}: bad dimension ${String(d)}`);
    return d;
  });
  const dtype = interpretDtype(state[2], file, what);
  if (state[3] !== false) throw new FormatError(file, `${what}: Fortran-ordered arrays are not supported`);
  const data = state[4];
  if (typeof data !== 'object' || data === null || data.kind !== 'bytes') throw new FormatError(file, `${what}: array data is not a byte string`);
  const expected = shape.reduce((a, b) => a * b, 1) * dtypeSize[dtype];
  if (data.length !== expected) {
    throw new FormatError(file, `${what}: shape [${shape}] of ${dtype} needs ${expected} bytes, the pickle holds ${data.length}`);
  }
  return { kind: 'array', dtype, shape, offset: data.offset, length: data.length };
}

/** Read a checkpoint tensor file: a plain array or a QuantizedWeight8bit. */
export function readCheckpointTensor(file: string): PickledArray | PickledQuantized {
  const v = readPickle(file);
  if (typeof v === 'object' && v !== null && v.kind === 'object' && v.how === 'newobj' && isGlobal(v.callable, null, 'QuantizedWeight8bit')) {
    const st = v.state;
    if (typeof st !== 'object' || st === null || st.kind !== 'dict') throw new FormatError(file, 'QuantizedWeight8bit without a field dict');
    const field = (name: string) => st.entries.find(([k]) => k === name)?.[1];
    const weight = interpretArray(field('weight'), file, 'QuantizedWeight8bit.weight');
    const scales = interpretArray(field('scales'), file, 'QuantizedWeight8bit.scales');
    return { kind: 'qw8', weight, scales };
  }
  return interpretArray(v, file, 'tensor');
}
