/**
 * The kernel interface's matmulMany (matrices sharing one input: q, k, v; gate, up — fast mode quantises
 * the input once) and matmulExact (float32 activations in every mode: the router and tiny matrices), on
 * the native kernels (at the level GROK_NATIVE_ISA names; test/native-levels.test.ts repeats this file at
 * each lower level), the WebAssembly kernels and the reference:
 * - against the scalar reference at awkward sizes (block tails, odd row counts, T = 1, 2, 3, 17, 128),
 *   fast mode against the reference on the activations quantised by hand from the definition;
 * - each output bit-identical to the single-matrix matmul, and each token row to that token alone, on 1
 *   and 3 threads (batch invariance);
 * - matmulExact in fast mode bit-identical to an exact kernel set's matmul.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import { loadNativeAddon, NativeKernels, nativeInfo } from '../src/kernels/native.js';
import { matmulReference, referenceKernels } from '../src/kernels/reference.js';
import type { Kernels } from '../src/kernels/types.js';
import type { BlockType } from '../src/quant/index.js';
import type { Matrix } from '../src/quant/matrix.js';
import { absBound, assertClose, bf16RoundX, bytesOf, FLOAT_TYPES, quantDequantX, randn, rng, rowsMatrix, xai8Matrix } from './kernel-checks.js';

const loaded = loadNativeAddon();
const missing = 'error' in loaded ? loaded.error : undefined;
if (missing && process.env.CI === 'true') throw new Error(`CI: the native addon must load: ${missing}`);
const level = missing ? '-' : nativeInfo().isa!;

type Mode = 'exact' | 'fast';
interface Set { label: string; mode: Mode; make: (threads: number) => Kernels }
const sets: Set[] = [
  ...(['exact', 'fast'] as const).flatMap((mode): Set[] => [
    ...('addon' in loaded ? [{ label: `native ${level} ${mode}`, mode, make: (threads: number) => new NativeKernels(loaded.addon, { mode, threads }) }] : []),
    { label: `wasm ${mode}`, mode, make: (threads: number) => createKernels({ kernels: 'wasm', mode, threads }) },
  ]),
  { label: 'reference', mode: 'exact', make: () => referenceKernels },
];
const made: Kernels[] = [];
process.on('exit', () => made.forEach(closeKernels));
function make(s: Set, threads: number): Kernels {
  const k = s.make(threads);
  made.push(k);
  return k;
}

/** Whether kernels in `mode` feed this matrix int8 activations (the definition in native/ and wasm.ts). */
function quantised(mode: Mode, w: Matrix, label: string): boolean {
  if (mode !== 'fast') return false;
  if (w.layout === 'xai8') return (w.nIn / w.groups) % 32 === 0;
  // The WebAssembly kernels have int8 kernels for these four types; the others run the reference.
  return label.startsWith('wasm') ? ['q8_0', 'q4_0', 'q4_k', 'q6_k'].includes(w.type) : !FLOAT_TYPES.has(w.type);
}

/** The activations the kernels multiply this matrix with: int8-rounded, bf16-rounded (bf16 rows, native avx512_bf16, fast) or x. */
function activations(mode: Mode, w: Matrix, label: string, x: Float32Array, xq: Float32Array): Float32Array {
  if (quantised(mode, w, label)) return xq;
  return mode === 'fast' && w.layout === 'rows' && w.type === 'bf16' && label === `native avx512_bf16 ${mode}` ? bf16RoundX(x) : x;
}

/** Groups of matrices with one nIn: every kind of kernel side by side, odd row counts, empty ones. */
function groups(k: Kernels): Matrix[][] {
  const r = rng(77);
  const rows = (type: BlockType, nIn: number, nOut: number) => rowsMatrix(k, type, nIn, nOut, r);
  return [
    // 7 blocks of 32: q8_0, block-32 types, floats, xai8 with 32-input groups (fast) and one group of 224
    [rows('q8_0', 224, 33), rows('q4_0', 224, 5), rows('f32', 224, 1), rows('bf16', 224, 3), xai8Matrix(k, 224, 31, 7, r), rows('iq4_nl', 224, 0), xai8Matrix(k, 224, 2, 1, r)],
    // 3 super-blocks of 256: the K-quants beside q8_0 and xai8 groups of 96 (exact path in both modes)
    [rows('q4_k', 768, 203), rows('q6_k', 768, 17), rows('q8_0', 768, 129), rows('f16', 768, 7), rows('q2_k', 768, 3), xai8Matrix(k, 768, 65, 8, r), xai8Matrix(k, 768, 130, 3, r)],
    // one matrix alone, and the Grok-1 pairs' shape at a small width (gate, up)
    [rows('q5_k', 256, 41)],
    [rows('q8_0', 1024, 301), rows('q8_0', 1024, 301)],
  ];
}

for (const s of sets) {
  test(`${s.label}: matmulMany equals the reference and, bit for bit, one matmul per matrix; each token row as alone (1 and 3 threads)`, () => {
    const ks = s.label === 'reference' ? [make(s, 1)] : [make(s, 1), make(s, 3)];
    const r = rng(5);
    for (const ws of groups(ks[0]!)) {
      const nIn = ws[0]!.nIn;
      for (const T of nIn >= 1024 ? [1, 2, 17] : [1, 2, 3, 17, 128]) {
        const x = randn(r, T * nIn);
        const xq = quantDequantX(x);
        for (const k of ks) {
          const ys = ws.map((w) => new Float32Array(T * w.nOut).fill(NaN));
          k.matmulMany(ws, x, T, ys);
          ws.forEach((w, i) => {
            const what = `${k.name} ${w.layout === 'rows' ? w.type : `xai8/${w.groups}`} ${w.nOut}×${nIn} T=${T}`;
            const want = new Float32Array(T * w.nOut);
            matmulReference(w, activations(s.mode, w, s.label, x, xq), T, want);
            assertClose(ys[i]!, want, absBound(w, x, T), 1e-5, what);
            const one = new Float32Array(T * w.nOut);
            k.matmul(w, x, T, one);
            assert.ok(bytesOf(ys[i]!).equals(bytesOf(one)), `${what}: matmulMany differs from matmul`);
            for (const t of T > 1 ? [0, T - 1] : []) {
              const alone = ws.map((v) => new Float32Array(v.nOut));
              k.matmulMany(ws, x.subarray(t * nIn, (t + 1) * nIn), 1, alone);
              assert.ok(bytesOf(alone[i]!).equals(bytesOf(ys[i]!.subarray(t * w.nOut, (t + 1) * w.nOut))), `${what}: token ${t} differs from the same token alone`);
            }
          });
        }
      }
    }
  });

  test(`${s.label}: matmulExact is the exact numerics in any mode (bit-identical to an exact kernel set's matmul)`, () => {
    const k = make(s, 3);
    const exactSet = sets.find((e) => e.mode === 'exact' && e.label.split(' ')[0] === s.label.split(' ')[0])!;
    const ek = make(exactSet, 3);
    const r = rng(9);
    for (const w of [rowsMatrix(k, 'q8_0', 6 * 32, 8, r), rowsMatrix(k, 'q4_k', 512, 131, r), rowsMatrix(k, 'f32', 96, 8, r), xai8Matrix(k, 256, 97, 2, r)]) {
      for (const T of [1, 3, 17]) {
        const x = randn(r, T * w.nIn);
        const a = new Float32Array(T * w.nOut), b = new Float32Array(T * w.nOut), want = new Float32Array(T * w.nOut);
        k.matmulExact(w, x, T, a);
        ek.matmul(w, x, T, b);
        matmulReference(w, x, T, want);
        assert.ok(bytesOf(a).equals(bytesOf(b)), `${k.name} ${w.layout} ${w.nOut}×${w.nIn} T=${T}`);
        assertClose(a, want, absBound(w, x, T), 1e-5, `${k.name} matmulExact vs reference`);
      }
    }
  });

  test(`${s.label}: matmulMany rejects matrices of different widths and a missing output`, () => {
    const k = make(s, 1);
    const r = rng(3);
    const a = rowsMatrix(k, 'q8_0', 64, 4, r), b = rowsMatrix(k, 'q8_0', 96, 4, r);
    const x = randn(r, 96);
    assert.throws(() => k.matmulMany([a, b], x, 1, [new Float32Array(4), new Float32Array(4)]), /cannot share one input/);
    assert.throws(() => k.matmulMany([a, a], x, 1, [new Float32Array(4)]), /2 matrices but 1 outputs/);
    assert.throws(() => k.matmulMany([a], x, 1, [new Float32Array(3)]), /y has 3 values/);
    assert.throws(() => k.matmulMany([a], x, 2, [new Float32Array(8)]), /x has 96 values/);
  });
}
