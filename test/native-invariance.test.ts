/**
 * Batch invariance of the native kernels: a token's output row is bit-identical whatever the batch
 * around it — T, the row's position in the batch, the thread count — in exact and fast mode, for every
 * block type and xai8, and a query's attention output does not depend on how many queries share the
 * call. The reference for each row is its own T = 1 call on one thread. (The engine's promise that a
 * sequence generated alongside others gives exactly its solo tokens rests on this.)
 *
 * Runs at the level GROK_NATIVE_ISA names (default: the best); test/native-levels.test.ts repeats it at
 * every lower level this CPU runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNativeAddon, NativeKernels, nativeInfo } from '../src/kernels/native.js';
import type { Matrix } from '../src/quant/matrix.js';
import { ALL_TYPES, bytesOf, FLOAT_TYPES, randn, rng, rowsMatrix, xai8Matrix, assertSameAsAlone, checkAttentionAsAlone } from './kernel-checks.js';

const loaded = loadNativeAddon();
const missing = 'error' in loaded ? loaded.error : undefined;
if (missing && process.env.CI === 'true') throw new Error(`CI: the native addon must load: ${missing}`);
const skip = missing ? `native addon unavailable: ${missing}` : false;
const level = missing ? '-' : nativeInfo().isa!;

const TS = [1, 2, 3, 4, 5, 8, 17, 128];
const POOL = 140; // distinct token rows; batches take T of them starting at several offsets

function kernelSet(mode: 'exact' | 'fast', threads: number): NativeKernels {
  if ('error' in loaded) throw new Error(loaded.error);
  return new NativeKernels(loaded.addon, { mode, threads });
}

/** One matrix per type (odd row count: tails in every tiling, and enough work that threads split rows). */
function matrices(k: NativeKernels): { name: string; m: Matrix }[] {
  const out: { name: string; m: Matrix }[] = [];
  const nOut = 203;
  for (const type of ALL_TYPES) {
    for (const nIn of FLOAT_TYPES.has(type) ? [768, 771] : [768]) {
      out.push({ name: `${type} ${nIn}`, m: rowsMatrix(k, type, nIn, nOut, rng(nIn * 31 + type.length)) });
    }
  }
  // xai8: 256-input groups (fast path: int8 activations) and 96-input ones (exact path in both modes)
  for (const groups of [3, 8]) out.push({ name: `xai8 768/${groups} groups`, m: xai8Matrix(k, 768, nOut, groups, rng(groups)) });
  return out;
}

for (const mode of ['exact', 'fast'] as const) {
  test(`native ${level} ${mode}: each token row is bit-identical alone, at any position of T = ${TS.join(', ')}, on 1, 2 and 3 threads`, { skip }, () => {
    const sets = [1, 2, 3].map((t) => kernelSet(mode, t));
    try {
      const one = sets[0]!;
      for (const { name, m } of matrices(one)) {
        const { nIn, nOut } = m;
        const x = randn(rng(1000 + nIn + name.length), POOL * nIn);
        const solo: Buffer[] = [];
        for (let i = 0; i < POOL; i++) {
          const y = new Float32Array(nOut);
          one.matmul(m, x.subarray(i * nIn, (i + 1) * nIn), 1, y);
          solo.push(Buffer.from(bytesOf(y)));
        }
        assert.ok(solo.some((b) => b.some((v) => v !== 0)), `${name}: outputs are not all zero`);
        for (const k of sets) {
          for (const T of TS) {
            for (const off of [...new Set([0, 1, 3, POOL - T])]) {
              assertSameAsAlone(k, m, x, off, T, solo, `${mode} ${name}`);
            }
          }
        }
      }
    } finally {
      for (const k of sets) k.close();
    }
  });
}

test(`native ${level}: attention — a query row is bit-identical alone and in calls of T = 1…128 queries, on 1, 2 and 3 threads`, { skip }, () => {
  const sets = [1, 2, 3].map((t) => kernelSet('exact', t));
  try {
    checkAttentionAsAlone(sets, 160, TS);
  } finally {
    for (const k of sets) k.close();
  }
});

test(`native ${level}: attention with Grok-2's temperature — a query row is bit-identical alone and batched, exact and fast, on 1 and 3 threads`, { skip }, () => {
  for (const mode of ['exact', 'fast'] as const) {
    const sets = [1, 3].map((t) => kernelSet(mode, t));
    try {
      // L = 100 within 160 keys; fast: L = 300 within 600 (τ per query across the chunk bounds).
      if (mode === 'exact') checkAttentionAsAlone(sets, 160, [1, 5, 17, 128], 'f32', 100);
      else for (const kvType of ['f32', 'q8_0'] as const) checkAttentionAsAlone(sets, 600, [1, 5, 17, 128], kvType, 300);
    } finally {
      for (const k of sets) k.close();
    }
  }
});

test(`native ${level}: fast attention (key chunks of 256, merged) — a query row is bit-identical alone and in calls of T = 1…128, on 1, 2 and 3 threads, f32, f16 and q8_0 caches`, { skip }, () => {
  const sets = [1, 2, 3].map((t) => kernelSet('fast', t));
  try {
    // 600 keys: queries on both sides of the chunk boundaries at 256 and 512.
    for (const kvType of ['f32', 'f16', 'q8_0'] as const) checkAttentionAsAlone(sets, 600, [1, 2, 5, 17, 128], kvType);
  } finally {
    for (const k of sets) k.close();
  }
});
