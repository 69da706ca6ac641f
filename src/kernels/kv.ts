/**
 * KV cache element types (KVType in types.ts): the storage each needs, conversion of float32 rows into it
 * (as the model writes new keys and values) and back (the reference and the WebAssembly kernels read
 * float32). f16 rounds to nearest even; q8_0 is llama.cpp's quantize_row_q8_0_ref per 32 values.
 */
import { f16Table, f32ToF16 } from '../quant/half.js';
import { Q8_0 } from '../quant/q8_0.js';
import { KV_TYPES, type AttentionArgs, type KVData, type KVType } from './types.js';

/** Array elements of one cache row (one position's one KV head of headDim values); throws for a width the type cannot hold. */
export function kvRowElements(kvType: KVType, headDim: number): number {
  if (kvType === 'q8_0') {
    if (headDim % 32 !== 0) throw new Error(`KV type q8_0 needs a head width that is a multiple of 32, got ${headDim}`);
    return (headDim / 32) * 34;
  }
  return headDim;
}

/** Bytes of one cache row. */
export function kvRowBytes(kvType: KVType, headDim: number): number {
  return kvRowElements(kvType, headDim) * (kvType === 'f32' ? 4 : kvType === 'f16' ? 2 : 1);
}

export function checkKVType(kvType: unknown): KVType {
  if (!KV_TYPES.includes(kvType as KVType)) throw new Error(`KV type must be one of ${KV_TYPES.join(', ')}, got '${String(kvType)}'`);
  return kvType as KVType;
}

/** A zeroed cache array of `elements` elements of kvType. */
export function allocKV(kvType: KVType, elements: number): KVData {
  return kvType === 'f32' ? new Float32Array(elements) : kvType === 'f16' ? new Uint16Array(elements) : new Uint8Array(elements);
}

/** Whether `data` is the array class kvType is stored in. */
export function isKVArray(kvType: KVType, data: unknown): data is KVData {
  return kvType === 'f32' ? data instanceof Float32Array : kvType === 'f16' ? data instanceof Uint16Array : data instanceof Uint8Array;
}

/**
 * The kvType of an attention call after checking that its caches are arrays of that type; with the
 * elements per row. Throws an error naming the argument otherwise.
 */
export function attentionKV(a: AttentionArgs): { kvType: KVType; rowElements: number } {
  const kvType = checkKVType(a.kvType ?? 'f32');
  const rowElements = kvRowElements(kvType, a.headDim);
  for (const [name, d] of [['kCache', a.kCache], ['vCache', a.vCache]] as const) {
    if (!isKVArray(kvType, d)) throw new Error(`attention: ${name} must be a ${kvType === 'f32' ? 'Float32Array' : kvType === 'f16' ? 'Uint16Array' : 'Uint8Array'} for KV type ${kvType}`);
  }
  return { kvType, rowElements };
}

/** rows float32 rows of headDim values → the same rows of kvType at row `dstRow` of dst. */
export function writeKVRows(kvType: KVType, src: Float32Array, rows: number, headDim: number, dst: KVData, dstRow: number): void {
  const n = rows * headDim;
  if (src.length < n) throw new Error(`KV write: ${src.length} values for ${rows} rows of ${headDim}`);
  const e = kvRowElements(kvType, headDim);
  if (dst.length < (dstRow + rows) * e) throw new Error(`KV write: rows ${dstRow}…${dstRow + rows} lie past the cache's ${dst.length / e} rows`);
  if (kvType === 'f32') (dst as Float32Array).set(src.subarray(0, n), dstRow * e);
  else if (kvType === 'f16') {
    const d = dst as Uint16Array, o = dstRow * e;
    for (let i = 0; i < n; i++) d[o + i] = f32ToF16(src[i]!);
  } else Q8_0.quantize!(src, 0, n, dst as Uint8Array, dstRow * e);
}

/** rows cache rows of kvType from row `srcRow` as float32 values (the values they hold) into out. */
export function readKVRows(kvType: KVType, src: KVData, srcRow: number, rows: number, headDim: number, out: Float32Array): void {
  const e = kvRowElements(kvType, headDim), n = rows * headDim;
  if (kvType === 'f32') out.set((src as Float32Array).subarray(srcRow * e, srcRow * e + n));
  else if (kvType === 'f16') {
    const t = f16Table(), o = srcRow * e, s = src as Uint16Array;
    for (let i = 0; i < n; i++) out[i] = t[s[o + i]!]!;
  } else Q8_0.dequantize(src as Uint8Array, srcRow * e, n, out, 0);
}

/** The first `positions` positions of an attention call's caches as float32 (a view when already f32). */
export function kvAsF32(a: AttentionArgs, positions: number): { k: Float32Array; v: Float32Array } {
  const kvType = a.kvType ?? 'f32';
  const rows = positions * a.nKV;
  if (kvType === 'f32') return { k: a.kCache as Float32Array, v: a.vCache as Float32Array };
  const k = new Float32Array(rows * a.headDim), v = new Float32Array(rows * a.headDim);
  readKVRows(kvType, a.kCache, 0, rows, a.headDim, k);
  readKVRows(kvType, a.vCache, 0, rows, a.headDim, v);
  return { k, v };
}
