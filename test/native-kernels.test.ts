/**
 * The native kernels (src/kernels/native.ts, native/) against the scalar reference at awkward sizes:
 * every block type at 1, 3, 7, 17, 33, 127, 129 blocks (float types: that many values), odd row counts,
 * T = 1, 2, 3, 17, 128, on 1 and 3 threads, exact and fast mode; xai8 in place; getRow, attention, GELU.
 *
 * Runs at the instruction-set level GROK_NATIVE_ISA names (default: the best this CPU runs);
 * test/native-levels.test.ts runs this file again at every lower level.
 *
 * Exact mode must equal the reference up to float32 summation error (1e-5 of Σ|w·x|). Fast mode
 * quantises activations to int8 per 32 values; it must equal the reference applied to those dequantised
 * activations, computed here from the definition. f16 and bf16 rows in fast mode: float32 sums against the
 * float32 activations (at avx512_bf16, bf16 rows against the activations rounded to bf16), the same bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNativeAddon, NativeKernels, nativeInfo } from '../src/kernels/native.js';
import {
  attentionReference, geluReference, getRowReference, matmulReference, rmsnormReference, ropeReference,
} from '../src/kernels/reference.js';
import { allBlockFormats, blockFormat, rowBytes } from '../src/quant/index.js';
import type { RowMatrix } from '../src/quant/matrix.js';
import {
  absBound, ALL_TYPES, assertClose, assertSameAsAlone, BLOCKS, bytesOf, FLOAT_TYPES, nativeActivations, quantDequantX, randn, rng, rowsMatrix, xai8Matrix,
  checkAttentionAtGrokSizes, checkAttentionKVTypes, checkAttentionTemperature, checkGeluErf, checkGeluErfConstants, checkTemperatureLenErrors,
} from './kernel-checks.js';

const loaded = loadNativeAddon();
const missing = 'error' in loaded ? loaded.error : undefined;
if (missing && process.env.CI === 'true') throw new Error(`CI: the native addon must load: ${missing}`);
const skip = missing ? `native addon unavailable: ${missing}` : false;
const level = missing ? '-' : nativeInfo().isa!;

const kernels = (mode: 'exact' | 'fast', threads: number): NativeKernels => {
  if ('error' in loaded) throw new Error(loaded.error);
  return new NativeKernels(loaded.addon, { mode, threads });
};

const made: NativeKernels[] = [];
process.on('exit', () => made.forEach((k) => k.close()));
function ks(mode: 'exact' | 'fast', threads: number): NativeKernels {
  const k = kernels(mode, threads);
  made.push(k);
  return k;
}

test(`native ${level}: the C block-type table equals src/quant (ggml ids, block sizes and bytes)`, { skip }, () => {
  if ('error' in loaded) return;
  const c = loaded.addon.info().types.map(([id, name, bs, bb]) => `${name}:${id}:${bs}:${bb}`).sort();
  const ts = allBlockFormats().map((f) => `${f.name}:${f.ggmlId}:${f.blockSize}:${f.bytesPerBlock}`).sort();
  assert.deepEqual(c, ts);
});

test(`native ${level}: kernels run at the requested level; bad options are rejected`, { skip }, () => {
  const k = ks('exact', 1);
  assert.equal(k.isa, level);
  assert.match(k.name, new RegExp(`^native-${level}-exact-1t$`));
  assert.throws(() => kernels('exact', 0), /threads/);
  assert.throws(() => kernels('fastest' as 'fast', 1), /mode/);
  if ('addon' in loaded) assert.throws(() => new NativeKernels(loaded.addon, { isa: 'avx9000' }), /not a level this CPU runs/);
});

for (const mode of ['exact', 'fast'] as const) {
  const expected = (w: RowMatrix, x: Float32Array, T: number): Float32Array => {
    const want = new Float32Array(T * w.nOut);
    matmulReference(w, nativeActivations(level, mode, w.type, x), T, want);
    return want;
  };

  test(`native ${level} ${mode}: every block type, block tails 1…129, odd rows, T = 1, 2, 3, 17, 128 (1 thread)`, { skip }, () => {
    const k = ks(mode, 1);
    const r = rng(mode === 'exact' ? 11 : 21);
    for (const type of ALL_TYPES) {
      const bs = blockFormat(type).blockSize;
      for (const nb of BLOCKS) {
        const nIn = nb * bs;
        const nOut = nb === 129 ? 3 : nb % 2 === 1 ? 1 + (nb % 5) * 2 : 4;
        const w = rowsMatrix(k, type, nIn, nOut, r);
        for (const T of nIn > 10000 ? [1, 3] : nIn > 2000 ? [1, 2, 3, 17] : [1, 2, 3, 17, 128]) {
          const x = randn(r, T * nIn);
          const y = new Float32Array(T * nOut);
          k.matmul(w, x, T, y);
          assertClose(y, expected(w, x, T), absBound(w, x, T), 1e-5, `${mode} ${type} nIn=${nIn} nOut=${nOut} T=${T}`);
        }
      }
    }
  });

  test(`native ${level} ${mode}: sizes that split rows across 1, 2 and 3 threads, T = 1, 2, 17, 128`, { skip }, () => {
    const r = rng(mode === 'exact' ? 13 : 23);
    const sets = [1, 2, 3].map((threads) => ks(mode, threads));
    for (const type of ALL_TYPES) {
      for (const [nIn, nOut, Ts] of [[1024, 301, [1, 2, 17]], [256, 131, [128]]] as const) {
        const w = rowsMatrix(sets[0]!, type, nIn, nOut, r); // allocWeight memory serves every kernel set
        for (const T of Ts) {
          const x = randn(r, T * nIn);
          const want = expected(w, x, T), bound = absBound(w, x, T);
          for (const k of sets) {
            const y = new Float32Array(T * nOut);
            k.matmul(w, x, T, y);
            assertClose(y, want, bound, 1e-5, `${mode} ${type} ${nOut}×${nIn} T=${T} ${k.threads} threads`);
          }
        }
      }
    }
  });

  test(`native ${level} ${mode}: xai8 in place (int8 [nIn, nOut] + bf16 group scales), column tails, 1 and 3 threads`, { skip }, () => {
    const r = rng(mode === 'exact' ? 14 : 24);
    const sets = [1, 3].map((threads) => ks(mode, threads));
    for (const [nIn, nOut, groups] of [[32, 1, 1], [64, 31, 2], [96, 33, 3], [256, 97, 8], [1024, 320, 8], [768, 130, 1], [344, 40, 8], [4096, 65, 4]] as const) {
      const w = xai8Matrix(sets[0]!, nIn, nOut, groups, r);
      // int8 activations need whole 32-input blocks in each scale group; others take the exact path
      const quantised = mode === 'fast' && (nIn / groups) % 32 === 0;
      for (const T of nIn > 2000 ? [1, 3] : nIn > 500 ? [1, 2, 3, 17] : [1, 2, 3, 17, 128]) {
        const x = randn(r, T * nIn);
        const want = new Float32Array(T * nOut);
        matmulReference(w, quantised ? quantDequantX(x) : x, T, want);
        const bound = absBound(w, x, T);
        for (const k of sets) {
          const y = new Float32Array(T * nOut);
          k.matmul(w, x, T, y);
          assertClose(y, want, bound, 1e-5, `${mode} xai8 ${nIn}×${nOut} G=${groups} T=${T} ${k.threads} threads`);
        }
      }
    }
  });

  test(`native ${level} ${mode}: xai8 at T = 2, 4 (decode row sweeps) and prefill sizes 5, 7, 129, 200 (token tiles and the 128-token partial sums), columns past one chunk; each token as alone`, { skip }, () => {
    const r = rng(mode === 'exact' ? 15 : 25);
    const sets = [1, 3].map((threads) => ks(mode, threads));
    // 2113 columns: more than the widest chunk (2048) at T = 1 and many narrow ones at T = 200, a 1-column tail
    for (const [nIn, nOut, groups] of [[256, 2113, 1], [192, 301, 3], [128, 67, 4]] as const) {
      const w = xai8Matrix(sets[0]!, nIn, nOut, groups, r);
      const quantised = mode === 'fast' && (nIn / groups) % 32 === 0;
      const x = randn(r, 200 * nIn);
      const solo = Array.from({ length: 200 }, (_, t) => {
        const y = new Float32Array(nOut);
        sets[0]!.matmul(w, x.subarray(t * nIn, (t + 1) * nIn), 1, y);
        return Buffer.from(bytesOf(y));
      });
      for (const T of [2, 4, 5, 7, 129, 200]) {
        const xt = x.subarray(0, T * nIn);
        const want = new Float32Array(T * nOut);
        matmulReference(w, quantised ? quantDequantX(xt) : xt, T, want);
        const bound = absBound(w, xt, T);
        for (const k of sets) {
          const y = new Float32Array(T * nOut);
          k.matmul(w, xt, T, y);
          assertClose(y, want, bound, 1e-5, `${mode} xai8 ${nIn}×${nOut} G=${groups} T=${T} ${k.threads} threads`);
          assertSameAsAlone(k, w, x, 200 - T, T, solo, `${mode} xai8 ${nIn}×${nOut} G=${groups}`);
        }
      }
    }
  });
}

test(`native ${level} fast: f16 and bf16 rows in place with float32 sums — nIn 1 … 6144, row counts off the tiles, T = 1, 2, 3, 8, 17, 128, 1 and 3 threads; each token as alone`, { skip }, () => {
  // native/kernels/float.c: two float32 accumulators of the vector width per output (scalar: eight lanes),
  // so each lane sums ≤ n/8 products. Measured (GROK_SHOW_ERRORS=1) well inside the 1e-5 of Σ|w·x| that
  // bounds every other fast path.
  const sets = [1, 3].map((threads) => ks('fast', threads));
  const r = rng(27);
  let worst = 0;
  for (const type of ['f16', 'bf16'] as const) {
    for (const nIn of [1, 3, 7, 17, 31, 33, 127, 129, 6144]) {
      for (const nOut of nIn === 6144 ? [5, 13] : [1, 6, 7]) {
        const w = rowsMatrix(sets[0]!, type, nIn, nOut, r);
        const x = randn(r, 128 * nIn);
        const solo = Array.from({ length: 128 }, (_, t) => {
          const y = new Float32Array(nOut);
          sets[0]!.matmul(w, x.subarray(t * nIn, (t + 1) * nIn), 1, y);
          return Buffer.from(bytesOf(y));
        });
        for (const T of [1, 2, 3, 8, 17, 128]) {
          const xt = x.subarray(0, T * nIn);
          const want = new Float32Array(T * nOut);
          matmulReference(w, nativeActivations(level, 'fast', type, xt), T, want);
          const bound = absBound(w, xt, T);
          for (const k of sets) {
            const y = new Float32Array(T * nOut);
            k.matmul(w, xt, T, y);
            for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(y[i]! - want[i]!) / bound[i]!);
            assertClose(y, want, bound, 1e-5, `fast ${type} nIn=${nIn} nOut=${nOut} T=${T} ${k.threads} threads`);
            assertSameAsAlone(k, w, x, 0, T, solo, `fast ${type} nIn=${nIn} nOut=${nOut}`);
          }
        }
      }
    }
  }
  if (process.env.GROK_SHOW_ERRORS) console.log(`native ${level} fast f16/bf16: max |Δ|/Σ|w·x| = ${worst.toExponential(2)}`);
});

test(`native ${level}: q8_0 exact equals f32 exact on its dequantised rows, bit for bit (d·q is exact in float32)`, { skip }, () => {
  const r = rng(32);
  for (const threads of [1, 3]) {
    const k = ks('exact', threads);
    const w = rowsMatrix(k, 'q8_0', 2048, 37, r);
    const vals = new Float32Array(w.nIn * w.nOut);
    blockFormat('q8_0').dequantize(w.data, 0, w.nIn * w.nOut, vals, 0);
    const f: RowMatrix = { layout: 'rows', type: 'f32', nIn: w.nIn, nOut: w.nOut, data: new Uint8Array(vals.buffer) };
    for (const T of [1, 2, 3, 17]) {
      const x = randn(r, T * w.nIn);
      const a = new Float32Array(T * w.nOut), b = new Float32Array(T * w.nOut);
      k.matmul(w, x, T, a);
      k.matmul(f, x, T, b);
      assert.deepEqual(a, b, `T=${T}, ${threads} threads`);
    }
  }
});

test(`native ${level}: matrices from any Uint8Array are read in place (no allocWeight), at any byte offset`, { skip }, () => {
  const k = ks('exact', 2);
  const r = rng(31);
  for (const type of ['f32', 'q8_0', 'q4_k'] as const) {
    const f = blockFormat(type);
    const nIn = f.blockSize === 1 ? 67 : 2 * f.blockSize, nOut = 5, rb = rowBytes(f, nIn);
    const backing = new Uint8Array(rb * nOut + 3);
    const data = backing.subarray(3); // odd offset
    const vals = randn(r, nIn * nOut);
    for (let o = 0; o < nOut; o++) f.quantize!(vals, o * nIn, nIn, data, o * rb);
    const w: RowMatrix = { layout: 'rows', type, nIn, nOut, data };
    const x = randn(r, 2 * nIn);
    const y = new Float32Array(2 * nOut), want = new Float32Array(2 * nOut);
    k.matmul(w, x, 2, y);
    matmulReference(w, x, 2, want);
    assertClose(y, want, absBound(w, x, 2), 1e-5, `foreign ${type} at offset 3`);
  }
});

test(`native ${level}: short buffers, bad shapes and closed kernels are specific errors, never a read past the end`, { skip }, () => {
  const k = kernels('exact', 1);
  const w: RowMatrix = { layout: 'rows', type: 'q8_0', nIn: 64, nOut: 4, data: k.allocWeight(34 * 2 * 4) };
  assert.throws(() => k.matmul(w, new Float32Array(63), 1, new Float32Array(4)), /x has 63 values, needs 1×64/);
  assert.throws(() => k.matmul(w, new Float32Array(64), 1, new Float32Array(3)), /y has 3 values/);
  assert.throws(() => k.matmul({ ...w, data: w.data.subarray(1) }, new Float32Array(64), 1, new Float32Array(4)), /needs 272 bytes, has 271/);
  assert.throws(() => k.matmul({ ...w, nIn: 48 }, new Float32Array(48), 1, new Float32Array(4)), /multiple of the block size/);
  assert.throws(() => k.getRow(w, 4, new Float32Array(64)), /row 4 outside/);
  assert.throws(() => k.getRow(w, 0, new Float32Array(63)), /out has 63 values/);
  const x8 = xai8Matrix(k, 64, 8, 2, rng(1));
  assert.throws(() => k.matmul({ ...x8, groups: 3 }, new Float32Array(64), 1, new Float32Array(8)), /groups 3 must divide/);
  assert.throws(() => k.matmul({ ...x8, scales: x8.scales.subarray(1) }, new Float32Array(64), 1, new Float32Array(8)), /scales need 2×8/);
  if ('addon' in loaded) {
    // the addon's own checks, bypassing native.ts
    const ctx = loaded.addon.create(1, level, 0);
    assert.throws(() => loaded.addon.matmulRows(ctx, 8, w.data.subarray(1), 64, 4, new Float32Array(64), 1, new Float32Array(4), false), /invalid sizes/);
    assert.throws(() => loaded.addon.matmulRows(ctx, 9, w.data, 64, 4, new Float32Array(64), 1, new Float32Array(4), false), /unsupported block type/);
    assert.throws(() => loaded.addon.matmulRows(ctx, 8, w.data, 64, 4, new Float32Array(64), 2, new Float32Array(8), false), /invalid sizes/);
    assert.throws(() => loaded.addon.matmulRows(ctx, 8, new Float32Array(4) as unknown as Uint8Array, 64, 4, new Float32Array(64), 1, new Float32Array(4), false), /wrong array type/);
    loaded.addon.destroy(ctx);
    assert.throws(() => loaded.addon.matmulRows(ctx, 8, w.data, 64, 4, new Float32Array(64), 1, new Float32Array(4), false), /closed/);
  }
  k.close();
  assert.throws(() => k.matmul(w, new Float32Array(64), 1, new Float32Array(4)), /closed/);
});

test(`native ${level}: getRow equals the reference dequantisation for every type`, { skip }, () => {
  const k = ks('exact', 1);
  const r = rng(41);
  for (const type of ALL_TYPES) {
    const bs = blockFormat(type).blockSize;
    const nIn = bs === 1 ? 131 : 3 * bs;
    const w = rowsMatrix(k, type, nIn, 7, r);
    for (const row of [0, 3, 6]) {
      const got = new Float32Array(nIn), want = new Float32Array(nIn);
      k.getRow(w, row, got);
      getRowReference(w, row, want);
      for (let i = 0; i < nIn; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6 * Math.abs(want[i]!) + 1e-30, `${type} row ${row} [${i}]: ${got[i]} vs ${want[i]}`);
    }
  }
  const x8 = xai8Matrix(k, 64, 9, 2, r);
  const got = new Float32Array(64), want = new Float32Array(64);
  k.getRow(x8, 5, got);
  getRowReference(x8, 5, want);
  assert.deepEqual(got, want);
});

test(`native ${level}: rmsnorm, rope, GELU (incl. far tails) and attention match the reference`, { skip }, () => {
  const k = ks('exact', 3);
  const r = rng(51);
  const T = 3, n = 96;
  const x = randn(r, T * n), wt = randn(r, n);
  const a = new Float32Array(T * n), b = new Float32Array(T * n);
  k.rmsnorm(x, wt, 1e-5, T, n, a);
  rmsnormReference(x, wt, 1e-5, T, n, b);
  assertClose(a, b, b.map((v) => Math.abs(v) + 1e-6), 1e-6, 'rmsnorm');
  const q1 = randn(r, T * 6 * 32), q2 = q1.slice();
  const pos = Int32Array.from([0, 7, 300]);
  k.rope(q1, T, 6, 32, pos, 10000);
  ropeReference(q2, T, 6, 32, pos, 10000);
  assertClose(q1, q2, q2.map(() => 10), 1e-6, 'rope');
  // GELU over [-12, 12] (its negative tail underflows towards −0) and 200k values (the threaded path)
  for (const len of [200, 200_000]) {
    const g1 = Float32Array.from({ length: len }, (_, i) => -12 + (24 * i) / len + r() * 1e-3), g2 = g1.slice();
    k.gelu(g1, len);
    geluReference(g2, len);
    assertClose(g1, g2, g2.map((v) => Math.abs(v) + 1e-6), 1e-6, `gelu ×${len}`); // as test/kernels.test.ts
    // gated: gelu(gate) ⊙ up, the expert FFN's product
    const up = randn(r, len), h1 = g1.map((_, i) => -12 + (24 * i) / len), h2 = h1.slice();
    k.gelu(h1, len, up);
    geluReference(h2, len, up);
    assertClose(h1, h2, h2.map((v) => Math.abs(v) + 1e-6), 1e-6, `gelu ⊙ up ×${len}`);
  }
  assert.throws(() => k.gelu(new Float32Array(8), 8, new Float32Array(4)), /up has 4 values, fewer than n = 8/);
  const nHeads = 6, nKV = 2, headDim = 32, pos0 = 5, Tq = 4, cap = 12;
  const q = randn(r, Tq * nHeads * headDim, 3);
  const kCache = randn(r, cap * nKV * headDim, 3), vCache = randn(r, cap * nKV * headDim);
  const keyMask = Uint8Array.from({ length: cap }, (_, i) => (i === 2 ? 0 : 1));
  for (const softcap of [0, 30]) {
    const o1 = new Float32Array(Tq * nHeads * headDim), o2 = new Float32Array(Tq * nHeads * headDim);
    const args = { q, kCache, vCache, keyMask, T: Tq, pos0, nHeads, nKV, headDim, scale: 1 / Math.sqrt(headDim), softcap };
    k.attention({ ...args, out: o1 });
    attentionReference({ ...args, out: o2 });
    assertClose(o1, o2, o2.map(() => 1), 1e-5, `attention softcap=${softcap}`);
  }
});

test(`native ${level}: attention at Grok-1 head sizes on 3 threads (48/8 heads of 128, 203 keys, one masked; odd head width)`, { skip }, () => {
  const k = ks('exact', 3);
  checkAttentionAtGrokSizes(k);
  assert.throws(() => k.attention({ q: new Float32Array(10), kCache: new Float32Array(10), vCache: new Float32Array(10), keyMask: new Uint8Array(1), T: 1, pos0: 0, nHeads: 2, nKV: 1, headDim: 8, scale: 1, softcap: 0, out: new Float32Array(16) }), /q\/out need 16/);
});

test(`native ${level}: attention with f32, f16 and q8_0 KV caches, exact and fast (flash-decoding) on 1 and 3 threads, against the reference`, { skip }, () => {
  // Exact: float64 scores as before. Fast: float32 dots (a score's error ≈ 2^-24·Σ|q·k|·scale, and a
  // softmax weight's relative error that much), soft-cap and exp polynomials (≈ 1e-7 relative), float32
  // sums over ≤ 1301 keys. Measured (GROK_SHOW_ERRORS=1) ≤ 2e-6 of max|v| at every x86 level: bound 1e-5.
  for (const threads of [1, 3]) {
    checkAttentionKVTypes(ks('exact', threads), 1e-5);
    checkAttentionKVTypes(ks('fast', threads), 1e-5);
  }
});

test(`native ${level}: Grok-2's attention temperature, exact and fast on 1 and 3 threads, f32, f16 and q8_0 caches, against the reference`, { skip }, () => {
  // τ ≤ log2(1032)/log2(1024) or log2(40)/log2(8) ≈ 1.8 scales the scores and so their float32 rounding in
  // fast mode: the bound of the test above holds (measured: GROK_SHOW_ERRORS=1).
  checkAttentionTemperature([ks('exact', 1), ks('exact', 3), ks('fast', 1), ks('fast', 3)], 1e-5);
  for (const mode of ['exact', 'fast'] as const) checkTemperatureLenErrors(ks(mode, 1));
});

test(`native ${level}: GELU, erf form (Grok-2), exact and fast on 1 and 3 threads, against the reference and published erf values`, { skip }, () => {
  // Exact: libm's erf in float64, as the reference, within float32 rounding. Fast: float32 lanes, within
  // 3e-7·|x| (native/kernels/gelu.c: measured 2.8e-7·|x| at worst, scalar level).
  for (const [k, tolX] of [[ks('exact', 1), 0], [ks('exact', 3), 0], [ks('fast', 1), 3e-7], [ks('fast', 3), 3e-7]] as const) {
    checkGeluErf(k, tolX);
    checkGeluErfConstants(k, tolX);
  }
  // The tanh form is the same in both modes.
  const x = Float32Array.from({ length: 1000 }, (_, i) => -12 + 0.024 * i), a = x.slice(), b = x.slice();
  ks('exact', 1).gelu(a, x.length);
  ks('fast', 1).gelu(b, x.length);
  assert.deepEqual(a, b);
});

test(`native ${level}: attention rejects a KV cache of the wrong array type or width for its kvType`, { skip }, () => {
  const k = ks('fast', 1);
  const base = { q: new Float32Array(64), keyMask: new Uint8Array(1).fill(1), T: 1, pos0: 0, nHeads: 2, nKV: 1, headDim: 32, scale: 1, softcap: 0, out: new Float32Array(64) };
  assert.throws(() => k.attention({ ...base, kvType: 'f16', kCache: new Float32Array(32), vCache: new Float32Array(32) }), /kCache must be a Uint16Array/);
  assert.throws(() => k.attention({ ...base, kvType: 'q8_0', kCache: new Uint8Array(33), vCache: new Uint8Array(34) }), /needs 34 elements/);
  assert.throws(() => k.attention({ ...base, headDim: 16, q: new Float32Array(32), out: new Float32Array(32), kvType: 'q8_0', kCache: new Uint8Array(34), vCache: new Uint8Array(34) }), /multiple of 32/);
  assert.throws(() => k.attention({ ...base, kvType: 'f8' as 'f16', kCache: new Uint16Array(32), vCache: new Uint16Array(32) }), /KV type must be one of/);
  k.attention({ ...base, kvType: 'q8_0', kCache: new Uint8Array(34), vCache: new Uint8Array(34) }); // the valid call runs
});
