/**
 * The one weight reader: where each canonical tensor's bytes are, checked against the shape the tensor
 * table (tensors.ts) requires for the config, and a reader of those bytes. Both the loader (into kernel
 * memory, or mapped in place) and the converter (in chunks of rows) go through it, so a shape mismatch
 * reads the same everywhere: "shape mismatch for blk.3.attn_q (…): got [...] q8_0, expected [...]".
 */
import fs from 'node:fs';
import { FormatError } from '../base/errors.js';
import { openRegularFile, readExactly } from '../base/files.js';
import { isQuantizedRef, type TensorRef } from '../formats/tensor-ref.js';
import { blockFormat, isBlockType, rowBytes, type BlockType } from '../quant/index.js';
import type { Binding, ModelBinding } from './binding.js';

export interface ByteRange {
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

/** A matrix of nIn inputs and nOut outputs, as stored. */
export type MatrixLocation =
  /** nOut rows of nIn values in blocks of `type`: usable in place. */
  | { readonly layout: 'rows'; readonly type: BlockType; readonly nIn: number; readonly nOut: number; readonly bytes: ByteRange }
  /** Plain floats stored [nIn, nOut] (input-major): transposed into rows when read. */
  | { readonly layout: 'transpose'; readonly type: BlockType; readonly nIn: number; readonly nOut: number; readonly bytes: ByteRange }
  /** The released checkpoint's int8 q [nIn, nOut] and bf16 scales [groups, nOut]: usable in place. */
  | { readonly layout: 'xai8'; readonly nIn: number; readonly nOut: number; readonly groups: number; readonly q: ByteRange; readonly scales: ByteRange }
  /** Tensor-parallel shards, each a 'rows' matrix usable in place (binding 'sharded'; SplitMatrix). */
  | { readonly layout: 'split'; readonly axis: 'out' | 'in'; readonly type: BlockType; readonly nIn: number; readonly nOut: number; readonly parts: readonly RowsLocation[] };

export type RowsLocation = Extract<MatrixLocation, { layout: 'rows' }>;

export interface VectorLocation {
  readonly type: BlockType;
  readonly n: number;
  readonly bytes: ByteRange;
}

function need(b: ModelBinding, name: string): Binding {
  const x = b.tensors.get(name);
  if (!x) throw new FormatError('model', `missing tensor '${name}'`);
  return x;
}

function shapeError(name: string, ref: TensorRef, expected: string): never {
  throw new FormatError(ref.file, `shape mismatch for ${name} (${ref.name}): got [${ref.shape.join(', ')}] ${ref.type}, expected ${expected}`);
}

/** The shape of one matrix of a binding: with `index`, the first axis of a stack selects it. */
function innerShape(name: string, b: Binding, count: number | undefined): readonly number[] {
  const s = b.ref.shape;
  if (b.index === undefined) return s;
  if (s.length < 2 || (count !== undefined && s[0] !== count) || b.index < 0 || b.index >= s[0]!) {
    shapeError(name, b.ref, `a stack of ${count ?? '?'} matrices with element ${b.index}`);
  }
  return s.slice(1);
}

/**
 * Where matrix `name` (nIn → nOut) is, shape-checked. `stack`: the number of matrices a stacked tensor
 * must hold (the experts of a layer).
 */
export function locateMatrix(binding: ModelBinding, name: string, nIn: number, nOut: number, stack?: number): MatrixLocation {
  const b = need(binding, name);
  const ref = b.ref;
  const s = innerShape(name, b, stack);
  const index = b.index ?? 0;
  if (b.kind === 'rows') {
    if (!isBlockType(ref.type)) shapeError(name, ref, 'a float or block-quantised type');
    if (s.length !== 2 || s[0] !== nOut || s[1] !== nIn) shapeError(name, ref, `[${nOut}, ${nIn}] ([out, in])`);
    const length = rowBytes(blockFormat(ref.type), nIn) * nOut;
    return { layout: 'rows', type: ref.type, nIn, nOut, bytes: { file: ref.file, offset: ref.offset + index * length, length } };
  }
  if (b.kind === 'transpose') {
    if (!isBlockType(ref.type) || blockFormat(ref.type).blockSize !== 1) shapeError(name, ref, 'a plain float matrix');
    if (s.length !== 2 || s[0] !== nIn || s[1] !== nOut) shapeError(name, ref, `[${nIn}, ${nOut}] ([in, out])`);
    const length = nIn * nOut * blockFormat(ref.type).bytesPerBlock;
    return { layout: 'transpose', type: ref.type, nIn, nOut, bytes: { file: ref.file, offset: ref.offset + index * length, length } };
  }
  if (b.kind === 'xai8') {
    if (!isQuantizedRef(ref)) throw new FormatError(ref.file, `${name}: int8 binding without scales`);
    if (ref.type !== 'i8') shapeError(name, ref, 'int8 weights');
    if (s.length !== 2 || s[0] !== nIn || s[1] !== nOut) shapeError(name, ref, `[${nIn}, ${nOut}] ([in, out])`);
    const sc = ref.scales;
    const ss = b.index === undefined ? sc.shape : sc.shape.slice(1);
    const groups = ss[0]!;
    if (ss.length !== 2 || ss[1] !== nOut || !(groups > 0) || nIn % groups !== 0 || (b.index !== undefined && sc.shape[0] !== ref.shape[0])) {
      throw new FormatError(sc.file, `shape mismatch for ${name} scales: got [${sc.shape.join(', ')}], expected [G, ${nOut}] with G dividing ${nIn}`);
    }
    if (sc.type !== 'bf16') throw new FormatError(sc.file, `${name}: scales must be bfloat16, got ${sc.type}`);
    return {
      layout: 'xai8', nIn, nOut, groups,
      q: { file: ref.file, offset: ref.offset + index * nIn * nOut, length: nIn * nOut },
      scales: { file: sc.file, offset: sc.offset + index * groups * nOut * 2, length: groups * nOut * 2 },
    };
  }
  if (b.kind === 'sharded') {
    // Every shard the same type and shape; together they make [nOut, nIn] along the axis.
    const R = b.shards.length;
    const parts = b.shards.map((sh, r): RowsLocation => {
      if (!isBlockType(sh.type) || sh.type !== ref.type) shapeError(name, sh, `a float or block-quantised type, the same in every shard (rank 0: ${ref.type})`);
      const [o, i] = b.axis === 'out' ? [nOut / R, nIn] : [nOut, nIn / R];
      if (!Number.isInteger(o) || !Number.isInteger(i) || sh.shape.length !== 2 || sh.shape[0] !== o || sh.shape[1] !== i) {
        shapeError(`${name} (rank ${r} of ${R})`, sh, `[${o}, ${i}] (1/${R} of [${nOut}, ${nIn}] along its ${b.axis === 'out' ? 'rows' : 'columns'})`);
      }
      const fmt = blockFormat(sh.type);
      if (i % fmt.blockSize !== 0) shapeError(`${name} (rank ${r})`, sh, `rows of whole ${sh.type} blocks`);
      return { layout: 'rows', type: sh.type, nIn: i, nOut: o, bytes: { file: sh.file, offset: sh.offset, length: rowBytes(fmt, i) * o } };
    });
    return { layout: 'split', axis: b.axis, type: parts[0]!.type, nIn, nOut, parts };
  }
  throw new FormatError(ref.file, `${name}: a ${b.kind} binding cannot be used as a matrix`);
}

/** Where vector `name` (n floats) is, shape-checked. */
export function locateVector(binding: ModelBinding, name: string, n: number): VectorLocation {
  const b = need(binding, name);
  const ref = b.ref;
  if (b.kind !== 'vector') throw new FormatError(ref.file, `${name}: expected a vector binding, got ${b.kind}`);
  if (ref.shape.reduce((a, d) => a * d, 1) !== n || !isBlockType(ref.type)) shapeError(name, ref, `[${n}] of floats`);
  return { type: ref.type, n, bytes: { file: ref.file, offset: ref.offset, length: ref.length } };
}

/** Bytes a location reads. */
export function locationBytes(l: MatrixLocation | VectorLocation): number {
  if ('layout' in l && l.layout === 'xai8') return l.q.length + l.scales.length;
  if ('layout' in l && l.layout === 'split') return l.parts.reduce((a, p) => a + p.bytes.length, 0);
  return l.bytes.length;
}

/** The byte ranges a matrix is read from, in order (one, or one per shard; xai8: values then scales). */
export function matrixRanges(m: MatrixLocation): ByteRange[] {
  return m.layout === 'xai8' ? [m.q, m.scales] : m.layout === 'split' ? m.parts.map((p) => p.bytes) : [m.bytes];
}

/** Reads byte ranges of the model's files through one descriptor per file (regular files only). */
export class WeightFiles {
  private readonly fds = new Map<string, number>();

  private fd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = openRegularFile(file).fd;
      this.fds.set(file, fd);
    }
    return fd;
  }

  readInto(r: ByteRange, dst: Uint8Array): void {
    if (dst.length !== r.length) throw new Error(`WeightFiles.readInto: ${dst.length}-byte buffer for a ${r.length}-byte range of ${r.file}`);
    readExactly(this.fd(r.file), r.file, r.offset, dst);
  }

  /**
   * readInto, asynchronously (on libuv's thread pool, so the calling thread keeps quantising and writing):
   * sequential reads of at most 16 MiB.
   */
  async readIntoAsync(r: ByteRange, dst: Uint8Array): Promise<void> {
    if (dst.length !== r.length) throw new Error(`WeightFiles.readIntoAsync: ${dst.length}-byte buffer for a ${r.length}-byte range of ${r.file}`);
    const fd = this.fd(r.file);
    const CHUNK = 16 << 20;
    for (let done = 0; done < dst.length;) {
      const n = await new Promise<number>((resolve, reject) => {
        fs.read(fd, dst, done, Math.min(CHUNK, dst.length - done), r.offset + done, (e, got) => {
          if (e) reject(new FormatError(r.file, `cannot read ${dst.length} bytes at offset ${r.offset}: ${e.message}`));
          else resolve(got);
        });
      });
      if (n === 0) throw new FormatError(r.file, `unexpected end of file: ${dst.length} bytes needed at offset ${r.offset}, the file ends at ${r.offset + done}`);
      done += n;
    }
  }

  read(r: ByteRange): Uint8Array {
    const out = new Uint8Array(r.length);
    this.readInto(r, out);
    return out;
  }

  /** Floats of a vector. */
  vector(v: VectorLocation): Float32Array {
    const out = new Float32Array(v.n);
    blockFormat(v.type).dequantize(this.read(v.bytes), 0, v.n, out, 0);
    return out;
  }

  /** A 'split' matrix joined into its rows [nOut, nIn] as stored (the converter's input; the loader keeps the shards apart). */
  joined(m: Extract<MatrixLocation, { layout: 'split' }>): Uint8Array {
    const parts = m.parts.map((p) => this.read(p.bytes));
    if (m.axis === 'out') {
      const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let at = 0;
      for (const p of parts) { out.set(p, at); at += p.length; }
      return out;
    }
    const fmt = blockFormat(m.type);
    const rb = rowBytes(fmt, m.nIn);
    const out = new Uint8Array(rb * m.nOut);
    let col = 0;
    m.parts.forEach((p, r) => {
      const prb = rowBytes(fmt, p.nIn);
      for (let n = 0; n < m.nOut; n++) out.set(parts[r]!.subarray(n * prb, (n + 1) * prb), n * rb + col);
      col += prb;
    });
    return out;
  }

  /** A 'transpose' matrix as f32 rows [nOut, nIn]. */
  transposed(m: Extract<MatrixLocation, { layout: 'transpose' }>, out: Float32Array = new Float32Array(m.nIn * m.nOut)): Float32Array {
    const vals = new Float32Array(m.nIn * m.nOut);
    blockFormat(m.type).dequantize(this.read(m.bytes), 0, m.nIn * m.nOut, vals, 0);
    for (let k = 0; k < m.nIn; k++) for (let n = 0; n < m.nOut; n++) out[n * m.nIn + k] = vals[k * m.nOut + n]!;
    return out;
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}
