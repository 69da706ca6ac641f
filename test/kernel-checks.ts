/**
 * Shared by the kernel tests (WebAssembly and native): seeded inputs, matrices built through a kernel set's allocator,
 * the tolerance scale Σ|w·x|, and fast mode's activation rounding from its definition (per 32 values
 * d = max|x|/127, q = round-half-even(x/d), as f32x4.nearest and the C kernels round).
 */
import assert from 'node:assert/strict';
import { matmulReference } from '../src/kernels/reference.js';
import type { Kernels } from '../src/kernels/types.js';
import { f32ToBf16 } from '../src/quant/half.js';
import { blockFormat, rowBytes, type BlockType } from '../src/quant/index.js';
import type { Matrix, RowMatrix, Xai8Matrix } from '../src/quant/matrix.js';

export const ALL_TYPES: BlockType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl'];
export const FLOAT_TYPES = new Set<BlockType>(['f32', 'f16', 'bf16']);
export const BLOCKS = [1, 3, 7, 17, 33, 127, 129];

import { randn } from './random.js';

export { mulberry32 as rng, randn } from './random.js';

export function rowsMatrix(k: Kernels, type: BlockType, nIn: number, nOut: number, r: () => number): RowMatrix {
  const f = blockFormat(type);
  const rb = rowBytes(f, nIn);
  const data = k.allocWeight(rb * nOut);
  const vals = randn(r, nIn * nOut);
  const quantize = f.quantize;
  assert.ok(quantize, `${type} has a quantiser`);
  for (let o = 0; o < nOut; o++) quantize(vals, o * nIn, nIn, data, o * rb);
  return { layout: 'rows', type, nIn, nOut, data };
}

export function xai8Matrix(k: Kernels, nIn: number, nOut: number, groups: number, r: () => number): Xai8Matrix {
  const qb = k.allocWeight(nIn * nOut);
  const sb = k.allocWeight(2 * groups * nOut);
  const q = new Int8Array(qb.buffer, qb.byteOffset, nIn * nOut);
  const scales = new Uint16Array(sb.buffer, sb.byteOffset, groups * nOut);
  for (let i = 0; i < q.length; i++) q[i] = Math.floor(r() * 256) - 128;
  for (let i = 0; i < scales.length; i++) scales[i] = f32ToBf16((0.5 + r()) / 64);
  return { layout: 'xai8', nIn, nOut, groups, q, scales };
}

/** Σ|w·x| per output: the scale of float32 summation error. */
export function absBound(w: Matrix, x: Float32Array, T: number): Float32Array {
  const ax = x.map(Math.abs);
  const out = new Float32Array(T * w.nOut);
  if (w.layout === 'rows') {
    const f = blockFormat(w.type);
    const vals = new Float32Array(w.nIn * w.nOut);
    const rb = rowBytes(f, w.nIn);
    for (let o = 0; o < w.nOut; o++) f.dequantize(w.data, o * rb, w.nIn, vals, o * w.nIn);
    const data = new Uint8Array(vals.map(Math.abs).buffer);
    matmulReference({ layout: 'rows', type: 'f32', nIn: w.nIn, nOut: w.nOut, data }, ax, T, out);
  } else {
    matmulReference({ ...w, q: w.q.map(Math.abs), scales: w.scales.map((s) => s & 0x7fff) }, ax, T, out);
  }
  return out;
}

export function assertClose(got: Float32Array, want: Float32Array, bound: Float32Array, rel: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = rel * bound[i]! + 1e-30;
    if (!(Math.abs(got[i]! - want[i]!) <= tol)) {
      assert.fail(`${what}: element ${i}: got ${got[i]}, want ${want[i]} (tolerance ${tol.toExponential(2)})`);
    }
  }
}

/** Fast mode's activation quantisation, from its definition (round half to even). */
export function quantDequantX(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]!));
    const d = Math.fround(amax / 127);
    const id = d > 0 ? Math.fround(1 / d) : 0;
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b + j]! * id);
      let q = Math.round(v);
      if (q - v === 0.5 && q % 2 !== 0) q -= 1;
      out[b + j] = Math.fround(q * d);
    }
  }
  return out;
}

export function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Batch invariance: each of the T output rows of k.matmul(w, tokens off … off+T−1) equals, bit for bit,
 * `solo[token]` (that token computed alone).
 */
export function assertSameAsAlone(k: Kernels, w: Matrix, x: Float32Array, off: number, T: number, solo: readonly Buffer[], what: string): void {
  const { nIn, nOut } = w;
  const y = new Float32Array(T * nOut);
  k.matmul(w, x.subarray(off * nIn, (off + T) * nIn), T, y);
  for (let t = 0; t < T; t++) {
    const got = bytesOf(y.subarray(t * nOut, (t + 1) * nOut));
    if (!got.equals(solo[off + t]!)) {
      const a = new Float32Array(solo[off + t]!.buffer, solo[off + t]!.byteOffset, nOut);
      const b = y.subarray(t * nOut, (t + 1) * nOut);
      const j = b.findIndex((v, i) => !Object.is(v, a[i]));
      assert.fail(`${what}, ${k.name}: token ${off + t} at position ${t} of T = ${T}: output ${j} is ${b[j]}, alone ${a[j]}`);
    }
  }
}
