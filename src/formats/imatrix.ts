/**
 * llama.cpp importance matrices (`llama-imatrix` output) for `grok convert --imatrix`: per tensor, the mean
 * square of each input column's activations over a calibration text, as llama-quantize hands them to
 * llama_model_quantize (tools/quantize/quantize.cpp load_imatrix, common/imatrix-loader.cpp):
 *
 * - legacy binary: int32 n_entries, then per entry int32 name length, name bytes, int32 ncall, int32 nval,
 *   nval float32 sums; optionally a trailer: int32 chunk count, int32 dataset-name length, the name.
 *   Values = sums / ncall (as float32; ncall ≤ 0 leaves the sums).
 * - GGUF: per tensor `<name>.in_sum2` (F32, ne0 × n_experts) and `<name>.counts` (F32, n_experts), keys
 *   imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size. Values = in_sum2 / round(count) per expert;
 *   an expert never counted gets 1.
 *
 * Files come from elsewhere: every length and count is checked against what the file holds, and errors
 * name the file and the entry.
 */
import fs from 'node:fs';
import { FormatError } from '../base/errors.js';
import { openRegularFile, readExactly } from '../base/files.js';
import { readGgufFile } from './gguf.js';

export interface Imatrix {
  readonly file: string;
  readonly format: 'legacy' | 'gguf';
  /** Tensor name (GGUF naming, e.g. blk.3.ffn_down_exps.weight) → importance per input column (× experts). */
  readonly entries: ReadonlyMap<string, Float32Array>;
  readonly datasets: readonly string[];
  readonly chunks: number;
}

/** A name no longer than this (bytes): llama.cpp's tensor names are ≤ 63. */
const MAX_NAME = 4096;
/** Legacy files above this are refused (the largest real ones are tens of MB). */
const MAX_FILE = 4 * 2 ** 30;

export function readImatrix(file: string): Imatrix {
  const { fd, size } = openRegularFile(file);
  let head: Buffer;
  try {
    head = Buffer.alloc(Math.min(4, size));
    readExactly(fd, file, 0, head);
  } finally {
    fs.closeSync(fd);
  }
  if (head.length === 4 && head.toString('latin1') === 'GGUF') return readGgufImatrix(file);
  return readLegacyImatrix(file, size);
}

function readLegacyImatrix(file: string, size: number): Imatrix {
  if (size > MAX_FILE) throw new FormatError(file, `imatrix: ${size} bytes is more than a legacy importance matrix can sensibly be`);
  const b = fs.readFileSync(file);
  let at = 0;
  const need = (n: number, what: string) => {
    if (at + n > b.length) throw new FormatError(file, `imatrix: truncated: ${what} needs ${n} bytes at offset ${at}, the file has ${b.length}`);
  };
  const i32 = (what: string) => {
    need(4, what);
    const v = b.readInt32LE(at);
    at += 4;
    return v;
  };
  const n = i32('the entry count');
  if (n < 1) throw new FormatError(file, `imatrix: ${n} entries (not a legacy imatrix, nor a GGUF one)`);
  const entries = new Map<string, Float32Array>();
  for (let e = 0; e < n; e++) {
    const len = i32(`entry ${e + 1} of ${n}: the name length`);
    if (len < 1 || len > MAX_NAME) throw new FormatError(file, `imatrix: entry ${e + 1} of ${n}: name length ${len} (expected 1 … ${MAX_NAME})`);
    need(len, `entry ${e + 1} of ${n}: the name`);
    const name = b.toString('utf8', at, at + len);
    at += len;
    const ncall = i32(`entry '${name}': ncall`);
    const nval = i32(`entry '${name}': the value count`);
    if (nval < 1) throw new FormatError(file, `imatrix: entry '${name}': ${nval} values`);
    need(4 * nval, `entry '${name}': ${nval} values`);
    if (entries.has(name)) throw new FormatError(file, `imatrix: entry '${name}' appears twice`);
    const v = new Float32Array(nval);
    for (let i = 0; i < nval; i++) v[i] = b.readFloatLE(at + 4 * i);
    at += 4 * nval;
    // llama-quantize load_imatrix: e[i] = sums[i] / ncall, in float
    if (ncall > 0) for (let i = 0; i < nval; i++) v[i] = Math.fround(v[i]! / Math.fround(ncall)); // float / (float)ncall
    entries.set(name, v);
  }
  let chunks = 0;
  const datasets: string[] = [];
  if (at < b.length) {
    chunks = i32('the trailer: chunk count');
    const len = i32('the trailer: dataset name length');
    if (len < 0 || len > MAX_NAME) throw new FormatError(file, `imatrix: trailer: dataset name length ${len}`);
    need(len, 'the trailer: dataset name');
    if (len > 0) datasets.push(b.toString('utf8', at, at + len));
    at += len;
    if (at !== b.length) throw new FormatError(file, `imatrix: ${b.length - at} unexpected bytes after the trailer (offset ${at})`);
  }
  return { file, format: 'legacy', entries, datasets, chunks };
}

function readGgufImatrix(file: string): Imatrix {
  const g = readGgufFile(file);
  const keys = ['imatrix.datasets', 'imatrix.chunk_count', 'imatrix.chunk_size'];
  const missing = keys.filter((k) => !g.metadata.has(k));
  if (missing.length) throw new FormatError(file, `imatrix: a GGUF importance matrix needs ${missing.join(', ')} (llama-quantize refuses it too)`);
  const pairs = new Map<string, { sums?: (typeof g.tensors)[number]; counts?: (typeof g.tensors)[number] }>();
  for (const t of g.tensors) {
    const m = /^(.+)\.(in_sum2|counts)$/.exec(t.name);
    if (!m) continue;
    const p = pairs.get(m[1]!) ?? {};
    if (m[2] === 'in_sum2') p.sums = t;
    else p.counts = t;
    pairs.set(m[1]!, p);
  }
  if (pairs.size === 0) throw new FormatError(file, 'imatrix: no <name>.in_sum2 / <name>.counts tensors');
  const fd = fs.openSync(file, 'r');
  try {
    const read = (t: (typeof g.tensors)[number], what: string): Float32Array => {
      if (t.ref.type !== 'f32') throw new FormatError(file, `imatrix: ${what} must be F32, it is ${t.ref.type}`);
      const b = Buffer.alloc(t.ref.length);
      readExactly(fd, file, t.ref.offset, b);
      return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    };
    const entries = new Map<string, Float32Array>();
    for (const [name, p] of pairs) {
      if (!p.sums || !p.counts) throw new FormatError(file, `imatrix: '${name}' has ${p.sums ? 'in_sum2 but no counts' : 'counts but no in_sum2'}`);
      const sums = read(p.sums, `${name}.in_sum2`);
      const counts = read(p.counts, `${name}.counts`);
      if (counts.length < 1 || sums.length % counts.length !== 0) {
        throw new FormatError(file, `imatrix: '${name}': ${sums.length} sums do not split into ${counts.length} expert(s)`);
      }
      const ne0 = sums.length / counts.length;
      const v = new Float32Array(sums.length);
      for (let j = 0; j < counts.length; j++) {
        const c = counts[j]!;
        const count = Math.fround(Math.sign(c) * Math.round(Math.abs(c))); // std::lround, then (float)
        for (let i = 0; i < ne0; i++) v[j * ne0 + i] = count > 0 ? Math.fround(sums[j * ne0 + i]! / count) : 1;
      }
      entries.set(name, v);
    }
    const ds = g.metadata.get('imatrix.datasets');
    return {
      file, format: 'gguf', entries,
      datasets: Array.isArray(ds) ? ds.map(String) : [],
      chunks: Number(g.metadata.get('imatrix.chunk_count')),
    };
  } finally {
    fs.closeSync(fd);
  }
}
