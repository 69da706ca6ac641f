/**
 * safetensors reader (huggingface/safetensors format): one file, a directory holding `model.safetensors` or a sharded
 * set with `model.safetensors.index.json`, or the index file itself. Only the JSON header is read; tensors
 * are described by file, absolute offset and length. The header is validated like the reference reader
 * does: size bound, known dtypes, integer shapes, byte ranges that match shape × itemsize, lie inside the
 * data buffer, and tile it exactly (no overlap, no hole, no trailing bytes).
 * A `config.json` beside the weights is parsed into metadata key 'hf.config'.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../base/errors.js';
import { checkContained, modelRoot, openRegularFile, parseJsonFile, readExactly } from '../base/files.js';
import { renderValue } from '../base/render.js';
import { type ModelSource, type StorageType, type TensorRef } from './tensor-ref.js';

/** The reference reader's bound on the JSON header (the safetensors format). */
export const SAFETENSORS_MAX_HEADER = 100_000_000;
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';
/**
 * Tensors per file. Checked on the raw header bytes BEFORE JSON.parse: a header of a million empty
 * entries would otherwise become objects worth 16× its size. Real files hold at most a few thousand.
 */
export const SAFETENSORS_MAX_TENSORS = 1 << 18;

/** dtype string → storage type and item size; the known-but-unsupported dtypes are listed to name them in errors. */
const DTYPES: Readonly<Record<string, { storage?: StorageType; itemBits: number }>> = {
  BOOL: { storage: 'bool', itemBits: 8 },
  U8: { storage: 'u8', itemBits: 8 },
  I8: { storage: 'i8', itemBits: 8 },
  I16: { storage: 'i16', itemBits: 16 },
  U16: { storage: 'u16', itemBits: 16 },
  F16: { storage: 'f16', itemBits: 16 },
  BF16: { storage: 'bf16', itemBits: 16 },
  I32: { storage: 'i32', itemBits: 32 },
  U32: { storage: 'u32', itemBits: 32 },
  F32: { storage: 'f32', itemBits: 32 },
  F64: { storage: 'f64', itemBits: 64 },
  I64: { storage: 'i64', itemBits: 64 },
  U64: { storage: 'u64', itemBits: 64 },
  F8_E4M3: { itemBits: 8 },
  F8_E5M2: { itemBits: 8 },
  F8_E8M0: { itemBits: 8 },
  F6_E2M3: { itemBits: 6 },
  F6_E3M2: { itemBits: 6 },
  F4: { itemBits: 4 },
  C64: { itemBits: 64 },
};

export interface SafetensorsFile {
  readonly file: string;
  /** Absolute offset of the data buffer (8 + header length). */
  readonly dataOffset: number;
  readonly tensors: Map<string, TensorRef>;
  /** The header's `__metadata__` (string → string), if any. */
  readonly headerMetadata: Record<string, string> | undefined;
}

export interface SafetensorsSource extends ModelSource {
  readonly format: 'safetensors';
  readonly tensors: ReadonlyMap<string, TensorRef>;
  readonly files: readonly SafetensorsFile[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses and validates one .safetensors file's header. */
export function readSafetensorsFile(filePath: string): SafetensorsFile {
  const file = path.resolve(filePath);
  const fail = (m: string): never => { throw new FormatError(file, m); };
  const { fd, size } = openRegularFile(file);
  let headerBytes: Buffer;
  try {
    if (size < 8) fail(`not a safetensors file: ${size} bytes, too short for the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readExactly(fd, file, 0, lenBuf);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(SAFETENSORS_MAX_HEADER)) fail(`header length ${n} exceeds the ${SAFETENSORS_MAX_HEADER}-byte limit (not a safetensors file, or corrupt)`);
    const headerLen = Number(n);
    if (8 + headerLen > size) fail(`header length ${headerLen} runs past the end of the file (${size} bytes): truncated or not safetensors`);
    if (headerLen < 2) fail(`header length ${headerLen} is too short for a JSON object`);
    headerBytes = Buffer.alloc(headerLen);
    readExactly(fd, file, 8, headerBytes);
  } finally {
    fs.closeSync(fd);
  }
  const dataOffset = 8 + headerBytes.length;
  const bufferSize = size - dataOffset;
  // Every entry is a JSON object: count '{' (an upper bound, names may hold braces) before parsing.
  let braces = 0;
  for (let i = 0; i < headerBytes.length; i++) if (headerBytes[i] === 0x7b) braces++;
  if (braces > SAFETENSORS_MAX_TENSORS + 2) fail(`header describes more than ${SAFETENSORS_MAX_TENSORS} tensors (limit SAFETENSORS_MAX_TENSORS)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    // Not JavaScript's message: it quotes the text it choked on (the first bytes of whatever file this is).
    const at = /position (\d+)/.exec((e as Error).message)?.[1];
    return fail(`header is not valid UTF-8 JSON${at === undefined ? '' : ` (at byte ${at} of the header)`}`);
  }
  if (!isObject(header)) return fail('header must be a JSON object');

  let headerMetadata: Record<string, string> | undefined;
  const tensors = new Map<string, TensorRef>();
  const ranges: { name: string; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
        fail('__metadata__ must be an object of string values');
      }
      headerMetadata = entry as Record<string, string>;
      continue;
    }
    const what = `tensor '${name}'`;
    if (!isObject(entry)) return fail(`${what}: entry must be an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: offs } = entry;
    if (typeof dtype !== 'string') return fail(`${what}: dtype must be a string, got ${renderValue(dtype)}`);
    const dt = DTYPES[dtype];
    if (dt === undefined) return fail(`${what}: unknown dtype '${dtype}'`);
    if (dt.storage === undefined) return fail(`${what}: dtype ${dtype} is not supported (F32, F16, BF16 and integer types are)`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      return fail(`${what}: shape must be an array of non-negative integers, got ${renderValue(shape)}`);
    }
    const dims = shape as number[];
    let elements = 1;
    for (const d of dims) {
      elements *= d;
      if (elements > Number.MAX_SAFE_INTEGER) return fail(`${what}: shape ${renderValue(dims)} is too large`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      return fail(`${what}: data_offsets must be [begin, end] non-negative integers, got ${renderValue(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) return fail(`${what}: data_offsets [${begin}, ${end}] end before they begin`);
    const expected = (elements * dt.itemBits) / 8;
    if (end - begin !== expected) {
      return fail(`${what}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} ${renderValue(dims)} needs ${expected}`);
    }
    if (end > bufferSize) {
      return fail(`${what}: data_offsets [${begin}, ${end}] run past the end of the data buffer (${bufferSize} bytes)`);
    }
    tensors.set(name, { name, type: dt.storage, shape: dims, file, offset: dataOffset + begin, length: end - begin });
    ranges.push({ name, begin, end });
  }
  // The byte ranges must tile the buffer exactly (safetensors reference reader rules).
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev = '';
  for (const r of ranges) {
    if (r.begin < at) fail(`tensor '${r.name}' (bytes ${r.begin}…${r.end}) overlaps tensor '${prev}' (ends at ${at})`);
    if (r.begin > at) fail(`hole in the data buffer: bytes ${at}…${r.begin} before tensor '${r.name}' belong to no tensor`);
    at = r.end;
    prev = r.name;
  }
  if (at !== bufferSize) fail(`the tensors end at byte ${at} of the data buffer, but the buffer has ${bufferSize} bytes (trailing bytes)`);
  return { file, dataOffset, tensors, headerMetadata };
}

/** Reads config.json if it exists; a present but unreadable one is an error, not a silent skip. */
function readConfigJson(dir: string): unknown {
  const p = path.join(dir, 'config.json');
  if (!fs.existsSync(p)) return undefined;
  checkContained(modelRoot(dir), p);
  return parseJsonFile(p);
}

/**
 * A tensor-parallel release (xai-org/grok-2): files `<stem>-TP-common.safetensors` hold whole tensors,
 * `<stem>-TP-00r.safetensors` hold rank r's shard of the tensors they name, and there is no index. Shards
 * appear in the source as `<name>@tp<r>` (TP_SHARD), one per rank, each its own byte range: which axis a
 * tensor was split along is the model's knowledge (src/model/map-hf.ts), not the file format's.
 */
export const TP_FILE = /-TP-(common|\d{3})\.safetensors$/;
export const TP_SHARD = '@tp';

/** Resolves a user path into one .safetensors file, an index file, or the files of a tensor-parallel release. */
function resolveTarget(p: string): { kind: 'file' | 'index'; path: string } | { kind: 'tp'; path: string; files: string[] } {
  const abs = path.resolve(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    throw new FormatError(abs, `cannot open: ${(e as Error).message}`);
  }
  if (st.isDirectory()) {
    const root = modelRoot(abs);
    const inside = (kind: 'file' | 'index', p: string) => { checkContained(root, p); return { kind, path: p }; };
    const index = path.join(abs, SAFETENSORS_INDEX);
    if (fs.existsSync(index)) return inside('index', index);
    const single = path.join(abs, 'model.safetensors');
    if (fs.existsSync(single)) return inside('file', single);
    const found = fs.readdirSync(abs).filter((f) => f.endsWith('.safetensors')).sort();
    if (found.length === 1) return inside('file', path.join(abs, found[0]!));
    if (found.length > 1 && found.every((f) => TP_FILE.test(f))) {
      for (const f of found) checkContained(root, path.join(abs, f));
      return { kind: 'tp', path: abs, files: found };
    }
    throw new FormatError(abs, found.length === 0
      ? `directory holds neither ${SAFETENSORS_INDEX} nor any .safetensors file`
      : `directory holds ${found.length} .safetensors files but no ${SAFETENSORS_INDEX} saying which tensor is where`);
  }
  if (abs.endsWith('.json')) return { kind: 'index', path: abs };
  return { kind: 'file', path: abs };
}

function readIndex(indexPath: string): { files: SafetensorsFile[]; tensors: Map<string, TensorRef> } {
  const idx = parseJsonFile(indexPath);
  if (!isObject(idx) || !isObject(idx.weight_map)) throw new FormatError(indexPath, "index must be a JSON object with a 'weight_map' object");
  const dir = path.dirname(indexPath);
  const shardNames = new Set<string>();
  for (const [name, shard] of Object.entries(idx.weight_map)) {
    if (typeof shard !== 'string' || shard === '' || path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
      throw new FormatError(indexPath, `weight_map['${name}'] must be a file name inside the model directory, got ${renderValue(shard)}`);
    }
    shardNames.add(shard);
  }
  const files = new Map<string, SafetensorsFile>();
  const root = modelRoot(dir);
  for (const s of shardNames) {
    checkContained(root, path.join(dir, s));
    files.set(s, readSafetensorsFile(path.join(dir, s)));
  }
  const tensors = new Map<string, TensorRef>();
  for (const [name, shard] of Object.entries(idx.weight_map as Record<string, string>)) {
    const ref = files.get(shard)!.tensors.get(name);
    if (ref === undefined) throw new FormatError(indexPath, `weight_map says tensor '${name}' is in ${shard}, but that file does not hold it`);
    tensors.set(name, ref);
  }
  return { files: [...files.values()], tensors };
}

/**
 * The files of a tensor-parallel release: whole tensors by name, rank r's shards as `<name>@tp<r>`. Every
 * rank must shard the same tensors with the same dtypes and shapes, ranks numbered 0…R−1 without a gap, and
 * no name may be both whole and sharded or whole in two files.
 */
function readTensorParallel(dir: string, names: readonly string[]): { files: SafetensorsFile[]; tensors: Map<string, TensorRef>; ranks: number } {
  const files: SafetensorsFile[] = [];
  const tensors = new Map<string, TensorRef>();
  const byRank = new Map<number, SafetensorsFile[]>();
  const where = new Map<string, string>();
  for (const n of names) {
    const f = readSafetensorsFile(path.join(dir, n));
    files.push(f);
    const tag = TP_FILE.exec(n)![1]!;
    if (tag === 'common') {
      for (const [name, ref] of f.tensors) {
        if (where.has(name)) throw new FormatError(f.file, `tensor '${name}' is also in ${where.get(name)}: a tensor-parallel release holds each whole tensor once`);
        where.set(name, f.file);
        tensors.set(name, ref);
      }
    } else {
      const r = Number(tag);
      byRank.set(r, [...(byRank.get(r) ?? []), f]);
    }
  }
  const ranks = byRank.size;
  for (let r = 0; r < ranks; r++) {
    if (!byRank.has(r)) throw new FormatError(dir, `tensor-parallel files for ranks ${[...byRank.keys()].sort((a, b) => a - b).join(', ')}: rank ${r} is missing`);
  }
  // Rank 0's shards set the pattern every other rank must follow.
  const shardsOf = (r: number) => {
    const m = new Map<string, TensorRef>();
    for (const f of byRank.get(r)!) {
      for (const [n, ref] of f.tensors) {
        if (m.has(n)) throw new FormatError(ref.file, `rank ${r}'s shard of '${n}' is also in ${m.get(n)!.file}`);
        m.set(n, ref);
      }
    }
    return m;
  };
  const first = shardsOf(0);
  for (let r = 0; r < ranks; r++) {
    const mine = r === 0 ? first : shardsOf(r);
    for (const [name, ref] of mine) {
      const base = first.get(name);
      if (!base) throw new FormatError(ref.file, `tensor '${name}' is sharded for rank ${r} but not for rank 0`);
      if (base.type !== ref.type || base.shape.join(',') !== ref.shape.join(',')) {
        throw new FormatError(ref.file, `rank ${r}'s shard of '${name}' is ${ref.type} [${ref.shape.join(', ')}], rank 0's is ${base.type} [${base.shape.join(', ')}]`);
      }
      if (tensors.has(name)) throw new FormatError(ref.file, `tensor '${name}' is both whole (${where.get(name)}) and sharded`);
      tensors.set(`${name}${TP_SHARD}${r}`, ref);
    }
    if (mine.size !== first.size) {
      const missing = [...first.keys()].find((n) => !mine.has(n));
      throw new FormatError(dir, `rank ${r} lacks its shard of '${missing}'`);
    }
  }
  return { files, tensors, ranks };
}

/** Opens a safetensors model: a .safetensors file, a model directory, model.safetensors.index.json, or a tensor-parallel release directory. */
export function openSafetensors(p: string): SafetensorsSource {
  const target = resolveTarget(p);
  let files: SafetensorsFile[];
  let tensors: Map<string, TensorRef>;
  let ranks = 0;
  if (target.kind === 'index') {
    ({ files, tensors } = readIndex(target.path));
  } else if (target.kind === 'tp') {
    ({ files, tensors, ranks } = readTensorParallel(target.path, target.files));
  } else {
    const f = readSafetensorsFile(target.path);
    files = [f];
    tensors = f.tensors;
  }
  const metadata = new Map<string, unknown>();
  const hm = files[0]?.headerMetadata;
  if (hm !== undefined) metadata.set('safetensors.metadata', hm);
  if (ranks > 0) metadata.set('safetensors.tpRanks', ranks);
  const config = readConfigJson(target.kind === 'tp' ? target.path : path.dirname(target.path));
  if (config !== undefined) metadata.set('hf.config', config);
  return {
    format: 'safetensors',
    path: path.resolve(p),
    tensors,
    metadata,
    files,
    close() { /* headers are read with short-lived descriptors; loaders open the files by path */ },
  };
}
