/**
 * WebAssembly SIMD kernels against the scalar reference (src/kernels/reference.ts) at awkward sizes:
 * block-count tails (1, 3, 7, 17, 33, 127, 129 blocks), one row and odd row counts, T = 1, 2, 3, 17,
 * one thread and several (sizes big enough to go through the worker pool).
 *
 * Exact mode must equal the reference up to float32 summation error. Fast mode quantises activations to
 * int8 per 32 values (d = max|x|/127, q = round(x/d)); it must equal the reference applied to those
 * dequantised activations, which this file computes by hand from that definition.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeKernels, createKernels, WasmKernels } from '../src/kernels/index.js';
import {
  attentionReference, getRowReference, matmulReference, referenceKernels,
} from '../src/kernels/reference.js';
import * as smallOps from '../src/kernels/small-ops.js';
import type { Matrix, RowMatrix, Xai8Matrix } from '../src/quant/matrix.js';
import { blockFormat, rowBytes, type BlockType } from '../src/quant/index.js';
import { f32ToBf16 } from '../src/quant/half.js';
import { mulberry32 as rng, randn } from './random.js';
import {
  absBound, assertClose, BLOCKS, quantDequantX, rowsMatrix, checkAttentionAtGrokSizes, checkAttentionKVTypes, checkAttentionTemperature, checkGeluErf,
  checkGeluErfConstants, checkTemperatureLenErrors,
} from './kernel-checks.js';

const QUANT: BlockType[] = ['q8_0', 'q4_0', 'q4_k', 'q6_k'];
const FLOAT: BlockType[] = ['f32', 'f16', 'bf16'];

const exact1 = createKernels({ kernels: 'wasm', mode: 'exact', threads: 1 });
const exact3 = createKernels({ kernels: 'wasm', mode: 'exact', threads: 3 });
const fast1 = createKernels({ kernels: 'wasm', mode: 'fast', threads: 1 });
const fast3 = createKernels({ kernels: 'wasm', mode: 'fast', threads: 3 });
process.on('exit', () => [exact1, exact3, fast1, fast3].forEach(closeKernels));

test('createKernels: wasm on request, reference on request, bad options rejected', () => {
  assert.ok(createKernels({ kernels: 'wasm', threads: 1 }) instanceof WasmKernels);
  assert.equal(createKernels({ kernels: 'reference' }), referenceKernels);
  assert.throws(() => createKernels({ kernels: 'wasm', threads: 0 }), /threads/);
  assert.throws(() => createKernels({ kernels: 'wasm', mode: 'fastest' as 'fast' }), /mode/);
});

test('allocWeight returns zeroed views into a WebAssembly memory, 64-byte aligned', () => {
  const a = exact1.allocWeight(100);
  const b = exact1.allocWeight(7);
  assert.ok(a.buffer instanceof SharedArrayBuffer);
  assert.equal(a.byteOffset % 64, 0);
  assert.equal(b.byteOffset % 64, 0);
  assert.ok(b.byteOffset >= a.byteOffset + 100);
  assert.ok(a.every((v) => v === 0) && b.every((v) => v === 0));
});

// Calls under 2^17 multiply-adds run on the calling thread alone, so the tail tests run once (1 thread);
// the pooled path gets the larger sizes below, with 1 and 3 threads.
for (const [kname, k] of [['exact 1 thread', exact1]] as const) {
  test(`matmul exact (${kname}): quantised types, block tails 1…129, T = 1, 2, 3, 17`, () => {
    const r = rng(11);
    for (const type of QUANT) {
      const bs = blockFormat(type).blockSize;
      for (const nb of BLOCKS) {
        const nIn = nb * bs;
        const nOut = nb === 129 ? 3 : nb % 2 === 1 ? 1 + (nb % 5) * 2 : 4;
        const w = rowsMatrix(k, type, nIn, nOut, r);
        for (const T of nIn > 10000 ? [1, 3] : [1, 2, 3, 17]) {
          const x = randn(r, T * nIn);
          const y = new Float32Array(T * nOut);
          const want = new Float32Array(T * nOut);
          k.matmul(w, x, T, y);
          matmulReference(w, x, T, want);
          assertClose(y, want, absBound(w, x, T), 1e-5, `${type} nIn=${nIn} nOut=${nOut} T=${T}`);
        }
      }
    }
  });

  test(`matmul exact (${kname}): float types with nIn not a multiple of the SIMD width`, () => {
    const r = rng(12);
    for (const type of FLOAT) {
      for (const nIn of [1, 3, 7, 17, 33, 127, 129]) {
        for (const [nOut, T] of [[1, 1], [5, 2], [67, 3], [9, 17]] as const) {
          const w = rowsMatrix(k, type, nIn, nOut, r);
          const x = randn(r, T * nIn);
          const y = new Float32Array(T * nOut);
          const want = new Float32Array(T * nOut);
          k.matmul(w, x, T, y);
          matmulReference(w, x, T, want);
          assertClose(y, want, absBound(w, x, T), 1e-5, `${type} nIn=${nIn} nOut=${nOut} T=${T}`);
        }
      }
    }
  });
}

for (const [kname, k] of [['exact 1 thread', exact1], ['exact 3 threads', exact3]] as const) {
  test(`matmul exact (${kname}): sizes large enough to split rows across threads`, () => {
    const r = rng(13);
    for (const type of [...QUANT, ...FLOAT]) {
      const nIn = 1024;
      const nOut = 301;
      const w = rowsMatrix(k, type, nIn, nOut, r);
      for (const T of [1, 2, 17]) {
        const x = randn(r, T * nIn);
        const y = new Float32Array(T * nOut);
        const want = new Float32Array(T * nOut);
        k.matmul(w, x, T, y);
        matmulReference(w, x, T, want);
        assertClose(y, want, absBound(w, x, T), 1e-5, `${type} ${nOut}×${nIn} T=${T}`);
      }
    }
  });

  test(`matmul exact (${kname}): xai8 (int8 [nIn, nOut] + bf16 group scales), column tails`, () => {
    const r = rng(14);
    for (const [nIn, nOut, groups] of [[32, 1, 1], [64, 31, 2], [96, 33, 3], [256, 97, 8], [1024, 320, 8], [768, 130, 1]] as const) {
      const qb = k.allocWeight(nIn * nOut);
      const sb = k.allocWeight(2 * groups * nOut);
      const q = new Int8Array(qb.buffer, qb.byteOffset, nIn * nOut);
      const scales = new Uint16Array(sb.buffer, sb.byteOffset, groups * nOut);
      for (let i = 0; i < q.length; i++) q[i] = Math.floor(r() * 256) - 128;
      for (let i = 0; i < scales.length; i++) scales[i] = f32ToBf16((0.5 + r()) / 64);
      const w: Xai8Matrix = { layout: 'xai8', nIn, nOut, groups, q, scales };
      for (const T of [1, 2, 3, 17]) {
        const x = randn(r, T * nIn);
        const y = new Float32Array(T * nOut);
        const want = new Float32Array(T * nOut);
        k.matmul(w, x, T, y);
        matmulReference(w, x, T, want);
        assertClose(y, want, absBound(w, x, T), 1e-5, `xai8 ${nIn}×${nOut} G=${groups} T=${T}`);
      }
    }
  });
}

for (const [kname, k] of [['fast 1 thread', fast1], ['fast 3 threads', fast3]] as const) {
  test(`matmul fast (${kname}): equals the reference on int8-quantised activations`, () => {
    const r = rng(21);
    for (const type of QUANT) {
      const bs = blockFormat(type).blockSize;
      // Tails on one thread; a pooled size (≥ 2^17 multiply-adds) on both.
      for (const nb of k === fast1 ? [...BLOCKS, 4] : [4]) {
        const nIn = nb === 4 ? 1024 : nb * bs;
        const nOut = nb === 4 ? 301 : nb === 129 ? 3 : 1 + (nb % 5) * 2;
        const w = rowsMatrix(k, type, nIn, nOut, r);
        for (const T of nIn > 10000 ? [1, 3] : [1, 2, 3, 17]) {
          const x = randn(r, T * nIn);
          const y = new Float32Array(T * nOut);
          const want = new Float32Array(T * nOut);
          k.matmul(w, x, T, y);
          matmulReference(w, quantDequantX(x), T, want);
          assertClose(y, want, absBound(w, x, T), 1e-5, `fast ${type} nIn=${nIn} nOut=${nOut} T=${T}`);
        }
      }
    }
  });

  test(`matmul fast (${kname}): xai8 with int8 activations; groups not a multiple of 32 inputs use the exact path`, () => {
    const r = rng(23);
    for (const [nIn, nOut, groups] of [[32, 1, 1], [64, 31, 2], [256, 97, 8], [1024, 320, 4], [768, 130, 1], [96, 33, 3], [344, 40, 8]] as const) {
      const qb = k.allocWeight(nIn * nOut);
      const sb = k.allocWeight(2 * groups * nOut);
      const q = new Int8Array(qb.buffer, qb.byteOffset, nIn * nOut);
      const scales = new Uint16Array(sb.buffer, sb.byteOffset, groups * nOut);
      for (let i = 0; i < q.length; i++) q[i] = Math.floor(r() * 256) - 128;
      for (let i = 0; i < scales.length; i++) scales[i] = f32ToBf16((0.5 + r()) / 64);
      const w: Xai8Matrix = { layout: 'xai8', nIn, nOut, groups, q, scales };
      const quantised = (nIn / groups) % 32 === 0;
      for (const T of [1, 2, 3, 17]) {
        const x = randn(r, T * nIn);
        const y = new Float32Array(T * nOut);
        const want = new Float32Array(T * nOut);
        k.matmul(w, x, T, y);
        matmulReference(w, quantised ? quantDequantX(x) : x, T, want);
        assertClose(y, want, absBound(w, x, T), 1e-5, `fast xai8 ${nIn}×${nOut} G=${groups} T=${T}`);
      }
    }
  });

  test(`matmul fast (${kname}): float weights stay on the exact path`, () => {
    const r = rng(22);
    for (const type of FLOAT) {
      const w = rowsMatrix(k, type, 129, 67, r);
      const x = randn(r, 3 * 129);
      const y = new Float32Array(3 * 67);
      const want = new Float32Array(3 * 67);
      k.matmul(w, x, 3, y);
      matmulReference(w, x, 3, want);
      assertClose(y, want, absBound(w, x, 3), 1e-5, `fast ${type}`);
    }
  });
}

test('matmul reads matrices not allocated by allocWeight (copied in once)', () => {
  const r = rng(31);
  const f = blockFormat('q8_0');
  const nIn = 64, nOut = 5;
  const data = new Uint8Array(rowBytes(f, nIn) * nOut);
  const vals = randn(r, nIn * nOut);
  for (let o = 0; o < nOut; o++) f.quantize!(vals, o * nIn, nIn, data, o * rowBytes(f, nIn));
  const w: RowMatrix = { layout: 'rows', type: 'q8_0', nIn, nOut, data };
  const x = randn(r, nIn);
  const y = new Float32Array(nOut), want = new Float32Array(nOut);
  exact1.matmul(w, x, 1, y);
  matmulReference(w, x, 1, want);
  assertClose(y, want, absBound(w, x, 1), 1e-5, 'foreign q8_0');
});

test('matmul rejects short buffers with specific errors', () => {
  const w: RowMatrix = { layout: 'rows', type: 'q8_0', nIn: 64, nOut: 4, data: exact1.allocWeight(34 * 2 * 4) };
  assert.throws(() => exact1.matmul(w, new Float32Array(63), 1, new Float32Array(4)), /x has 63 values, needs 1×64/);
  assert.throws(() => exact1.matmul(w, new Float32Array(64), 1, new Float32Array(3)), /y has 3 values/);
});

test('getRow equals the reference dequantisation for every type', () => {
  const r = rng(41);
  for (const type of [...QUANT, ...FLOAT]) {
    const bs = blockFormat(type).blockSize;
    const nIn = bs === 1 ? 131 : 3 * bs;
    const w = rowsMatrix(exact1, type, nIn, 7, r);
    for (const row of [0, 3, 6]) {
      const got = new Float32Array(nIn), want = new Float32Array(nIn);
      exact1.getRow(w, row, got);
      getRowReference(w, row, want);
      for (let i = 0; i < nIn; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6 * Math.abs(want[i]!) + 1e-30, `${type} row ${row} [${i}]: ${got[i]} vs ${want[i]}`);
    }
  }
});

// The wasm kernel set runs RMSNorm, RoPE and GELU in plain JS (small-ops.ts, the reference's own
// functions), so they are checked against values derived here: by hand, and from float64 formulas
// written in this file (RoPE's angles via exp/log rather than the kernels' pow).
test('rmsnorm, rope and gelu equal hand-derived values and float64 formulas', () => {
  for (const k of [exact1, referenceKernels]) {
    // RMSNorm by hand: x = (3, 4), mean(x²) = 12.5; x = (1, 1, 1, 1) leaves the weights.
    const a = new Float32Array(6);
    k.rmsnorm(Float32Array.from([3, 4]), Float32Array.from([1, -2]), 0, 1, 2, a);
    assertClose(a.subarray(0, 2), Float32Array.from([0.848528137423857, -2 * 1.131370849898476]), Float32Array.from([1, 2]), 1e-7, `${k.name} rmsnorm (3, 4)`);
    k.rmsnorm(Float32Array.from([1, 1, 1, 1]), Float32Array.from([1, 2, 3, 4]), 0, 1, 4, a);
    assertClose(a.subarray(0, 4), Float32Array.from([1, 2, 3, 4]), Float32Array.from([1, 2, 3, 4]), 1e-7, `${k.name} rmsnorm ones`);
    // …and the formula on random rows, eps included.
    const r = rng(51);
    const T = 3, n = 96, eps = 1e-5;
    const x = randn(r, T * n), wt = randn(r, n);
    const got = new Float32Array(T * n), want = new Float32Array(T * n);
    k.rmsnorm(x, wt, eps, T, n, got);
    for (let t = 0; t < T; t++) {
      const row = Array.from(x.subarray(t * n, (t + 1) * n));
      const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / n + eps);
      for (let i = 0; i < n; i++) want[t * n + i] = (wt[i]! * row[i]!) / rms;
    }
    assertClose(got, want, want.map((v) => Math.abs(v) + 1e-6), 1e-6, `${k.name} rmsnorm`);

    // RoPE by hand: headDim 4, base 10000 → frequencies 1 and 0.01; position 0 is the identity,
    // position 1 rotates the pairs (x0, x2) by 1 rad and (x1, x3) by 0.01 rad.
    const q = Float32Array.from([1, 2, 3, 4, 1, 2, 3, 4]);
    k.rope(q, 2, 1, 4, Int32Array.from([0, 1]), 10000);
    const [c1, s1, c2, s2] = [0.5403023058681398, 0.8414709848078965, 0.9999500004166653, 0.009999833334166664];
    const wantRope = [1, 2, 3, 4, 1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2];
    assertClose(q, Float32Array.from(wantRope), Float32Array.from(wantRope, () => 4), 1e-7, `${k.name} rope by hand`);
    // …and the formula at larger positions and several heads.
    const heads = 6, hd = 32, pos = Int32Array.from([0, 7, 300]);
    const q1 = randn(r, T * heads * hd), q0 = q1.slice();
    k.rope(q1, T, heads, hd, pos, 10000);
    const q2 = new Float32Array(q0.length);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < hd / 2; i++) {
          const angle = pos[t]! * Math.exp((-2 * i / hd) * Math.log(10000));
          const o = (t * heads + h) * hd;
          const u = q0[o + i]!, v = q0[o + i + hd / 2]!;
          q2[o + i] = u * Math.cos(angle) - v * Math.sin(angle);
          q2[o + i + hd / 2] = v * Math.cos(angle) + u * Math.sin(angle);
        }
      }
    }
    assertClose(q1, q2, q2.map(() => 10), 1e-6, `${k.name} rope`);

    // GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), values from Python's math module.
    const gx = Float32Array.from([-3, -1, -0.5, 0, 0.5, 1, 2, 3]);
    const gWant = Float32Array.from([
      -0.0036373920817729943, -0.15880800939172324, -0.15428599017485606, 0, 0.34571400982514394, 0.8411919906082768,
      1.954597694087775, 2.996362607918227,
    ]);
    k.gelu(gx, gx.length);
    assertClose(gx, gWant, gWant.map((v) => Math.abs(v) + 1e-6), 1e-7, `${k.name} gelu`);
  }
});

test('attention (wasm) matches the reference, masked key and softcap included', () => {
  const r = rng(51);
  const nHeads = 6, nKV = 2, headDim = 32, pos0 = 5, Tq = 4, cap = 12;
  const q = randn(r, Tq * nHeads * headDim, 3);
  const kCache = randn(r, cap * nKV * headDim, 3), vCache = randn(r, cap * nKV * headDim);
  const keyMask = Uint8Array.from({ length: cap }, (_, i) => (i === 2 ? 0 : 1));
  for (const softcap of [0, 30]) {
    const o1 = new Float32Array(Tq * nHeads * headDim), o2 = new Float32Array(Tq * nHeads * headDim);
    const args = { q, kCache, vCache, keyMask, T: Tq, pos0, nHeads, nKV, headDim, scale: 1 / Math.sqrt(headDim), softcap };
    exact1.attention({ ...args, out: o1 });
    attentionReference({ ...args, out: o2 });
    // wasm attention sums in float32 (the reference in float64): |Δ| ≲ 1e-6 of the values' scale (≈ 1).
    assertClose(o1, o2, o2.map(() => 1), 1e-5, `attention softcap=${softcap}`);
  }
});

test('attention rejects arguments outside its contract with specific errors, on the wasm and the plain-JS path', () => {
  const nHeads = 4, nKV = 2, headDim = 8, pos0 = 3, T = 2;
  const ok = {
    q: new Float32Array(T * nHeads * headDim), kCache: new Float32Array((pos0 + T) * nKV * headDim),
    vCache: new Float32Array((pos0 + T) * nKV * headDim), keyMask: new Uint8Array(pos0 + T).fill(1),
    T, pos0, nHeads, nKV, headDim, scale: 0.3, softcap: 30, out: new Float32Array(T * nHeads * headDim),
  };
  const cases: [Partial<typeof ok>, RegExp][] = [
    [{ nKV: 3 }, /nHeads \(4\) must be a positive multiple of nKV \(3\)/],
    [{ nKV: 0 }, /nHeads \(4\) must be a positive multiple of nKV \(0\)/],
    [{ T: 1.5 }, /T must be a non-negative integer, got 1.5/],
    [{ pos0: -1 }, /pos0 must be a non-negative integer/],
    [{ q: new Float32Array(T * nHeads * headDim - 1) }, /q has 63 values, needs 2×4×8/],
    [{ out: new Float32Array(10) }, /out has 10 values/],
    [{ kCache: new Float32Array((pos0 + T - 1) * nKV * headDim) }, /kCache has 64 values, needs 5 positions × 2×8/],
    [{ vCache: new Float32Array(0) }, /vCache has 0 values/],
    [{ keyMask: new Uint8Array(pos0 + T - 1) }, /keyMask has 4 entries, needs 5/],
  ];
  for (const k of [exact1, exact3]) {
    k.attention(ok); // the valid call runs
    for (const [bad, re] of cases) assert.throws(() => k.attention({ ...ok, ...bad }), re, `${k.name} ${JSON.stringify(Object.keys(bad))}`);
  }
  for (const [bad, re] of cases) assert.throws(() => smallOps.attention({ ...ok, ...bad }), re, `small-ops ${JSON.stringify(Object.keys(bad))}`);
});

test('attention at Grok-1 head sizes on 3 threads (48/8 heads of 128, 203 keys, one masked, odd head dim)', () => {
  checkAttentionAtGrokSizes(exact3);
});

test('attention with f32, f16 and q8_0 KV caches (wasm exact and fast, and the plain-JS path) matches the reference on the same cache', () => {
  // The wasm kernel reads float32: f16 / q8_0 rows are widened as they are copied in, so only its float32
  // sums differ from the reference (as for an f32 cache).
  for (const k of [exact3, fast3, { name: 'small-ops', attention: smallOps.attention }]) checkAttentionKVTypes(k, 1e-5);
});

test("Grok-2's attention temperature (wasm exact and fast, and the plain-JS path) matches the reference; bad lengths are rejected", () => {
  // The wasm kernel takes L as float32: 100.3 is not one, so that call goes to the plain-JS path (checked too).
  checkAttentionTemperature([exact3, fast3, { name: 'small-ops', attention: smallOps.attention }], 1e-5);
  for (const k of [exact1, fast1, { name: 'small-ops', attention: smallOps.attention }]) checkTemperatureLenErrors(k);
});

test('GELU, erf form (Grok-2): wasm and the reference against published erf values; non-finite inputs as the tanh form', () => {
  for (const k of [exact1, fast3, referenceKernels]) {
    checkGeluErf(k);
    checkGeluErfConstants(k);
  }
});

test('weights spread over several WebAssembly memories (small arenas, 2 threads), xai8 scales in another memory', async () => {
  const k = createKernels({ kernels: 'wasm', mode: 'exact', threads: 2, arenaWeightBytes: 3 << 20 });
  await k.ready?.(); // as the loader does: the warm-up's copies take the first memory
  try {
    const r = rng(61);
    const a = rowsMatrix(k, 'q8_0', 2048, 700, r); // 1.5 MB
    const b = rowsMatrix(k, 'q4_k', 2048, 1000, r); // 1.2 MB: starts a new memory after the warm-up's
    const nIn = 2048, nOut = 1530; // q (3.13 MB) fills a memory; its scales (24 KB) go to the next one
    const qb = k.allocWeight(nIn * nOut);
    const sb = k.allocWeight(2 * 8 * nOut);
    // a, b, q and the scales cannot share memories of 3 MB: at least four are open.
    assert.ok((k as WasmKernels).memoryStats().arenas >= 4);
    const q = new Int8Array(qb.buffer, qb.byteOffset, nIn * nOut);
    const scales = new Uint16Array(sb.buffer, sb.byteOffset, 8 * nOut);
    for (let i = 0; i < q.length; i++) q[i] = Math.floor(r() * 256) - 128;
    for (let i = 0; i < scales.length; i++) scales[i] = f32ToBf16((0.5 + r()) / 64);
    const c: Xai8Matrix = { layout: 'xai8', nIn, nOut, groups: 8, q, scales };
    for (const w of [a, b, c] as Matrix[]) {
      for (const T of [1, 3]) {
        const x = randn(r, T * w.nIn);
        const y = new Float32Array(T * w.nOut), want = new Float32Array(T * w.nOut);
        k.matmul(w, x, T, y);
        matmulReference(w, x, T, want);
        assertClose(y, want, absBound(w, x, T), 1e-5, `${w.layout} ${w.nOut}×${w.nIn} T=${T} across memories`);
      }
    }
    assert.throws(() => k.allocWeight(4 << 20), /do not fit one WebAssembly memory/);
  } finally {
    closeKernels(k);
  }
});

test('xai8 with scales outside the weight memory: a very large batch neither corrupts other weights nor errs', () => {
  // Scales not allocated by the kernels are copied next to the activations on every call; the copy must
  // stay inside the activation area however many tokens one call carries (here ≈ 47,000 tokens of 512).
  const k = createKernels({ kernels: 'wasm', mode: 'exact', threads: 2 });
  try {
    const r = rng(77);
    const other = rowsMatrix(k, 'q8_0', 512, 64, r);
    const probe = randn(r, 512);
    const before = new Float32Array(64);
    k.matmul(other, probe, 1, before);
    const nIn = 512, nOut = 16, groups = 8;
    const q = Int8Array.from({ length: nIn * nOut }, () => Math.floor(r() * 256) - 128);
    const scales = Uint16Array.from({ length: groups * nOut }, () => f32ToBf16((0.5 + r()) / 64));
    const w: Xai8Matrix = { layout: 'xai8', nIn, nOut, groups, q, scales };
    const T = 47_000;
    const x = randn(r, T * nIn);
    const y = new Float32Array(T * nOut);
    k.matmul(w, x, T, y);
    for (const t of [0, 1, 12_345, T - 1]) {
      const want = new Float32Array(nOut);
      matmulReference(w, x.subarray(t * nIn, (t + 1) * nIn), 1, want);
      assertClose(y.subarray(t * nOut, (t + 1) * nOut), want, absBound(w, x.subarray(t * nIn, (t + 1) * nIn), 1), 1e-5, `xai8 token ${t} of ${T}`);
    }
    const after = new Float32Array(64);
    k.matmul(other, probe, 1, after);
    assert.deepEqual(after, before, 'another matrix\'s weights changed');
  } finally {
    closeKernels(k);
  }
});

test('block types without a wasm kernel run through the reference, bit for bit', () => {
  const k = createKernels({ kernels: 'wasm', mode: 'fast', threads: 2 });
  try {
    const r = rng(5);
    for (const type of ['q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q5_k', 'iq4_nl', 'iq4_xs', 'iq1_s', 'iq1_m', 'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs', 'iq3_s'] as const) {
      const w = rowsMatrix(k, type, 512, 9, r);
      const x = randn(r, 3 * 512);
      const y = new Float32Array(3 * 9), want = new Float32Array(3 * 9);
      k.matmul(w, x, 3, y);
      matmulReference(w, x, 3, want);
      assert.deepEqual(y, want, type);
    }
  } finally {
    closeKernels(k);
  }
});
