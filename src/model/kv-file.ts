/**
 * A prefix's keys and values on disk (`grok serve --slot-save-path`): the token ids and their KV rows
 * (KVCache.exportRows), so that a long system prompt computed once can be restored after a restart
 * instead of prefilled again. Little-endian throughout:
 *
 *   "GROKKV01"                      magic, 8 bytes
 *   u32 n                           header bytes
 *   header                          JSON {model, kvType, layers, stride, tokens}
 *   u32 × tokens                    the token ids
 *   u8 × tokens                     the key mask (0: a pad position, masked out as a key)
 *   per layer: keys, then values    tokens × stride elements of kvType each (f32: 4 bytes, f16: 2, q8_0: 1)
 *
 * The file is untrusted: every length is checked against the header and the header against the model
 * that reads it (its identity, KV type, layers, row width, vocabulary and context), and the file's size
 * must be exactly what they add up to.
 */
import { allocKV, checkKVType } from '../kernels/kv.js';
import type { KVData, KVType } from '../kernels/types.js';
import { KVRows } from './grok.js';

const MAGIC = Buffer.from('GROKKV01', 'latin1');
/** A header is a few hundred bytes; more is not a header. */
const MAX_HEADER_BYTES = 1 << 16;

/** What a file must match to be read into a model's caches. */
export interface KVFileModel {
  /** The model's identity (its name and a hash of its configuration): rows of another model are meaningless. */
  model: string;
  kvType: KVType;
  layers: number;
  /** Array elements per position of one layer's keys (KVRows.stride). */
  stride: number;
  vocabSize: number;
  contextLength: number;
}

interface Header {
  model: string;
  kvType: KVType;
  layers: number;
  stride: number;
  tokens: number;
}

const elementBytes = (t: KVType) => (t === 'f32' ? 4 : t === 'f16' ? 2 : 1);

/** The file's bytes for these tokens and rows (as many positions as tokens). */
export function encodeKVFile(m: Pick<KVFileModel, 'model'>, tokens: readonly number[], rows: KVRows): Buffer {
  if (tokens.length !== rows.length) throw new RangeError(`kv file: ${tokens.length} tokens but ${rows.length} positions of rows`);
  const header: Header = { model: m.model, kvType: rows.kvType, layers: rows.k.length, stride: rows.stride, tokens: tokens.length };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  const ids = Buffer.alloc(tokens.length * 4);
  tokens.forEach((t, i) => ids.writeUInt32LE(t, i * 4));
  const view = (a: KVData) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const layers = rows.k.flatMap((k, l) => [view(k), view(rows.v[l]!)]);
  return Buffer.concat([MAGIC, len, json, ids, Buffer.from(rows.keyMask), ...layers]);
}

/** Read a file written by encodeKVFile for model `m`; `name` names it in errors. */
export function decodeKVFile(buf: Buffer, m: KVFileModel, name: string): { tokens: number[]; rows: KVRows } {
  const bad = (what: string) => new Error(`${name}: ${what}`);
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw bad('not a grok-ts KV file (the magic "GROKKV01" is missing)');
  const hLen = buf.readUInt32LE(MAGIC.length);
  let at = MAGIC.length + 4;
  if (hLen > MAX_HEADER_BYTES || at + hLen > buf.length) throw bad(`a header of ${hLen} bytes does not fit in a file of ${buf.length} (truncated, or not a header)`);
  let h: Partial<Header>;
  try {
    h = JSON.parse(buf.subarray(at, at + hLen).toString('utf8')) as Partial<Header>;
  } catch (e) {
    throw bad(`the header is not JSON: ${(e as Error).message}`);
  }
  at += hLen;
  if (typeof h !== 'object' || h === null) throw bad('the header is not a JSON object');
  if (h.model !== m.model) throw bad(`saved by model '${String(h.model)}', this is '${m.model}'`);
  let kvType: KVType;
  try { kvType = checkKVType(h.kvType); } catch { throw bad(`header field kvType: '${String(h.kvType)}' is not a KV type`); }
  if (kvType !== m.kvType) throw bad(`its KV cache type is ${kvType}, this server's is ${m.kvType} (--kv-type)`);
  if (h.layers !== m.layers) throw bad(`header field layers: ${String(h.layers)}, the model has ${m.layers}`);
  if (h.stride !== m.stride) throw bad(`header field stride: ${String(h.stride)}, the model's rows have ${m.stride} elements`);
  const n = h.tokens;
  if (!(Number.isInteger(n) && n! >= 1 && n! < m.contextLength)) throw bad(`header field tokens: ${String(n)}, expected 1…${m.contextLength - 1} (the context)`);
  const T = n!;
  const layerBytes = T * m.stride * elementBytes(kvType);
  const want = at + T * 4 + T + 2 * m.layers * layerBytes;
  if (buf.length !== want) throw bad(`${buf.length} bytes, but ${T} tokens of ${m.layers} layers make ${want} (truncated or padded)`);
  const tokens: number[] = [];
  for (let i = 0; i < T; i++, at += 4) {
    const t = buf.readUInt32LE(at);
    if (t >= m.vocabSize) throw bad(`token ${i} is ${t}, outside the vocabulary (0…${m.vocabSize - 1})`);
    tokens.push(t);
  }
  const keyMask = new Uint8Array(buf.subarray(at, at + T));
  at += T;
  for (let i = 0; i < T; i++) if (keyMask[i]! > 1) throw bad(`key mask ${i} is ${keyMask[i]}, expected 0 or 1`);
  const read = (): KVData => {
    const a = allocKV(kvType, T * m.stride);
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).set(buf.subarray(at, at + layerBytes));
    at += layerBytes;
    return a;
  };
  const k: KVData[] = [], v: KVData[] = [];
  for (let l = 0; l < m.layers; l++) { k.push(read()); v.push(read()); }
  return { tokens, rows: new KVRows(kvType, m.stride, k, v, keyMask) };
}
