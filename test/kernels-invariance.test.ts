/**
 * Batch invariance of the WebAssembly kernels: a token's output row must be bit-identical whatever the
 * batch around it — T, the row's position in the batch, the thread count — in exact and fast mode, for
 * every weight type, and a query's attention output must not depend on how many queries share the call.
 * (The engine promises that a sequence generated alongside others gives exactly its solo tokens, and the
 * library's default kernels are these.) The reference for each row is its own T = 1 call on one thread;
 * batched calls must reproduce those bytes exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import type { Kernels } from '../src/kernels/types.js';
import type { Matrix, Xai8Matrix } from '../src/quant/matrix.js';
import { blockFormat, rowBytes, type BlockType } from '../src/quant/index.js';
import { f32ToBf16 } from '../src/quant/half.js';
import { mulberry32 as rng, randn } from './random.js';
import { assertSameAsAlone, checkAttentionAsAlone } from './kernel-checks.js';

const ROW_TYPES: BlockType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k', 'q6_k'];
const TS = [1, 2, 3, 4, 5, 8, 17];
const POOL = 24; // distinct token rows; batches take T of them starting at several offsets

/** Matrices in kernel memory of `k`; the same values for every kernel set (built from one seed). */
function matrices(k: Kernels): { name: string; m: Matrix }[] {
  const out: { name: string; m: Matrix }[] = [];
  const nOut = 203; // odd: tails in every tiling, and ≥ 2^17 multiply-adds at T = 1 so threads split rows
  for (const type of ROW_TYPES) {
    // nIn 768 = 3 k-quant super-blocks; float types also at 771 (not a multiple of the SIMD width).
    for (const nIn of type === 'f32' || type === 'f16' || type === 'bf16' ? [768, 771] : [768]) {
      const r = rng(nIn * 31 + type.length);
      const f = blockFormat(type);
      const rb = rowBytes(f, nIn);
      const data = k.allocWeight(rb * nOut);
      const vals = randn(r, nIn * nOut);
      for (let o = 0; o < nOut; o++) f.quantize!(vals, o * nIn, nIn, data, o * rb);
      out.push({ name: `${type} ${nIn}`, m: { layout: 'rows', type, nIn, nOut, data } });
    }
  }
  // xai8: groups of 256 inputs (fast path: int8 activations) and of 96 + a column tail (nOut % 32 ≠ 0).
  for (const [nIn, groups] of [[768, 3], [768, 8]] as const) {
    const r = rng(groups);
    const qb = k.allocWeight(nIn * nOut);
    for (let i = 0; i < qb.length; i++) qb[i] = Math.floor(r() * 256);
    const sb = k.allocWeight(2 * groups * nOut);
    const scales = new Uint16Array(sb.buffer, sb.byteOffset, groups * nOut);
    for (let i = 0; i < scales.length; i++) scales[i] = f32ToBf16(0.002 + 0.01 * r());
    const m: Xai8Matrix = { layout: 'xai8', nIn, nOut, groups, q: new Int8Array(qb.buffer, qb.byteOffset, qb.length), scales };
    out.push({ name: `xai8 ${nIn}/${groups} groups`, m });
  }
  return out;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

for (const mode of ['exact', 'fast'] as const) {
  test(`matmul (${mode}): each token row is bit-identical alone, at any position of T = ${TS.join(', ')}, on 1, 2 and 3 threads`, () => {
    const one = createKernels({ kernels: 'wasm', mode, threads: 1 });
    const others = [one, createKernels({ kernels: 'wasm', mode, threads: 2 }), createKernels({ kernels: 'wasm', mode, threads: 3 })];
    try {
      const mats = others.map((k) => matrices(k));
      for (let mi = 0; mi < mats[0]!.length; mi++) {
        const { name, m } = mats[0]![mi]!;
        const { nIn, nOut } = m;
        const x = randn(rng(1000 + mi), POOL * nIn);
        // Alone: every pool row as its own T = 1 call on one thread.
        const solo: Buffer[] = [];
        for (let i = 0; i < POOL; i++) {
          const y = new Float32Array(nOut);
          one.matmul(m, x.subarray(i * nIn, (i + 1) * nIn), 1, y);
          solo.push(Buffer.from(bytesOf(y)));
        }
        assert.ok(solo.some((b) => b.some((v) => v !== 0)), `${name}: outputs are not all zero`);
        for (let ki = 0; ki < others.length; ki++) {
          const k = others[ki]!;
          const w = mats[ki]![mi]!.m; // the same values in this kernel set's memory
          for (const T of TS) {
            for (const off of [0, 1, 3, POOL - T]) {
              assertSameAsAlone(k, w, x, off, T, solo, `${mode} ${name}`);
            }
          }
        }
      }
    } finally {
      for (const k of others) closeKernels(k);
    }
  });
}

test('attention: a query row is bit-identical alone and in calls of T = 1…17 queries, on 1, 2 and 3 threads', () => {
  const kernels = [1, 2, 3].map((threads) => createKernels({ kernels: 'wasm', threads }));
  try {
    checkAttentionAsAlone(kernels, 64, TS);
    checkAttentionAsAlone(kernels, 64, TS, 'f32', 20); // Grok-2's temperature: L = 20 within the 64 positions
  } finally {
    for (const k of kernels) closeKernels(k);
  }
});
