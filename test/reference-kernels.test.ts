/** The scalar reference kernels against their definitions, on hand-computed values and awkward sizes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attentionTemperature, erf, referenceKernels as K } from '../src/kernels/reference.js';
import type { Matrix } from '../src/quant/matrix.js';
import { f32ToBf16 } from '../src/quant/half.js';
import { mulberry32 } from './random.js';

/** Uniforms in [-1, 1). */
function rng(seed: number): () => number {
  const r = mulberry32(seed);
  return () => r() * 2 - 1;
}
const close = (a: number, b: number, tol = 1e-5) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

test('f16 / bf16 / f32 rows matrices decode known bit patterns', () => {
  // f16: 1.0, −2.0, 2^−24 (smallest subnormal), 65504 (largest normal); bf16: 1.0, −0.5.
  const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff]).buffer);
  const m16: Matrix = { layout: 'rows', type: 'f16', nIn: 4, nOut: 1, data: f16 };
  const out = new Float32Array(4);
  K.getRow(m16, 0, out);
  assert.deepEqual(Array.from(out), [1, -2, 2 ** -24, 65504]);
  const mb: Matrix = { layout: 'rows', type: 'bf16', nIn: 2, nOut: 1, data: new Uint8Array(new Uint16Array([0x3f80, 0xbf00]).buffer) };
  const y = new Float32Array(1);
  K.matmul(mb, new Float32Array([3, 4]), 1, y);
  assert.equal(y[0], 3 - 2);
});

test('xai8 matmul equals x · (q × scales) with the block-of-rows rule, at awkward sizes', () => {
  const r = rng(7);
  for (const [nIn, nOut, groups, T] of [[1, 1, 1, 1], [3, 5, 1, 2], [8, 7, 8, 3], [24, 17, 8, 1], [33, 1, 3, 4], [64, 9, 4, 17]] as const) {
    const q = Int8Array.from({ length: nIn * nOut }, () => Math.round(r() * 127));
    const scales = Uint16Array.from({ length: groups * nOut }, () => f32ToBf16(r() * 0.05));
    const w: Matrix = { layout: 'xai8', nIn, nOut, groups, q, scales };
    const x = Float32Array.from({ length: T * nIn }, r);
    const y = new Float32Array(T * nOut);
    K.matmul(w, x, T, y);
    // Dequantise by grok-1 model.py QuantizedWeight8bit, then a plain dot product.
    const bf = (b: number) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!;
    for (let t = 0; t < T; t++) {
      for (let n = 0; n < nOut; n++) {
        let s = 0;
        for (let k = 0; k < nIn; k++) s += x[t * nIn + k]! * q[k * nOut + n]! * bf(scales[Math.floor(k / (nIn / groups)) * nOut + n]!);
        assert.ok(close(y[t * nOut + n]!, s), `${nIn}×${nOut} G${groups} T${T} at (${t}, ${n})`);
      }
    }
    // getRow of the [out, in] view is column n.
    const col = new Float32Array(nIn);
    K.getRow(w, nOut - 1, col);
    for (let k = 0; k < nIn; k++) assert.ok(close(col[k]!, q[k * nOut + nOut - 1]! * bf(scales[Math.floor(k / (nIn / groups)) * nOut + nOut - 1]!)));
  }
});

test('rmsnorm: weight ⊙ x / sqrt(mean(x²) + eps)', () => {
  const out = new Float32Array(4);
  K.rmsnorm(new Float32Array([3, 4, 0, 2]), new Float32Array([1, 2]), 0, 2, 2, out);
  const r1 = Math.sqrt(12.5), r2 = Math.sqrt(2 + 1e-12);
  assert.ok(close(out[0]!, 3 / r1) && close(out[1]!, 8 / r1) && out[2] === 0 && close(out[3]!, 4 / r2, 1e-4));
  const eps = new Float32Array(1);
  K.rmsnorm(new Float32Array([1e-3]), new Float32Array([1]), 1e-5, 1, 1, eps);
  assert.ok(close(eps[0]!, 1e-3 / Math.sqrt(1e-6 + 1e-5)));
});

test('rope: rotate-half pairs (i, i + K/2) with angle p·base^(−2i/K)', () => {
  const x = new Float32Array([1, 2, 3, 4, 1, 2, 3, 4]); // two heads of width 4 at position 1
  K.rope(x, 1, 2, 4, new Int32Array([1]), 10000);
  const f1 = 10000 ** -0.5;
  const want = [1 * Math.cos(1) - 3 * Math.sin(1), 2 * Math.cos(f1) - 4 * Math.sin(f1), 3 * Math.cos(1) + 1 * Math.sin(1), 4 * Math.cos(f1) + 2 * Math.sin(f1)];
  for (let h = 0; h < 2; h++) want.forEach((v, i) => assert.ok(close(x[h * 4 + i]!, v), `head ${h} index ${i}`));
  const zero = new Float32Array([5, 6]);
  K.rope(zero, 1, 1, 2, new Int32Array([0]), 10000);
  assert.deepEqual(Array.from(zero), [5, 6]);
});

test('gelu: tanh approximation values', () => {
  const x = new Float32Array([0, 1, -1, 3]);
  K.gelu(x, 4);
  // 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) evaluated by hand
  [0, 0.8411919906082768, -0.15880800939172324, 2.9963625071285946].forEach((v, i) => assert.ok(close(x[i]!, v, 1e-6), `gelu at ${i}`));
});

test('erf: published values (and Python math.erf\'s) within 1e-14, odd, its limits and NaN', () => {
  // The four the Grok-2 work was checked with, then Python's math.erf at the series / continued-fraction
  // switch (2.5) and in the tail. The series loses up to 6e-15 just below 2.5 (measured against math.erf
  // over 0…7 in steps of 0.001): far below the 6e-8 of the float32 GELU it feeds.
  const known = [[0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [3, 0.9999779095030014],
    [0.1, 0.1124629160182849], [2.5, 0.999593047982555], [4, 0.9999999845827421], [5.9, 0.9999999999999999]] as const;
  for (const [x, v] of known) {
    assert.ok(Math.abs(erf(x) - v) <= 1e-14, `erf(${x}) = ${erf(x)}, want ${v}`);
    assert.equal(erf(-x), -erf(x), `erf(−${x})`);
  }
  assert.equal(erf(0), 0);
  assert.equal(erf(-0), 0);
  assert.equal(erf(6), 1);
  assert.equal(erf(-Infinity), -1);
  assert.ok(Number.isNaN(erf(NaN)));
  // Both sides of the switch at 2.5 agree (no step from the change of method).
  assert.ok(Math.abs(erf(2.5 - 1e-12) - erf(2.5)) < 1e-14);
});

test('gelu: erf form values, x·½(1 + erf(x/√2)), from Python math.erf', () => {
  const x = Float32Array.from([0, 1, -1, 3, -3]);
  K.gelu(x, 5, undefined, 'erf');
  [0, 0.8413447460685429, -0.15865525393145707, 2.99595030590511, -0.00404969409489031].forEach((v, i) => assert.ok(close(x[i]!, v, 1e-6), `gelu erf at ${i}: ${x[i]}`));
});

test('attention temperature: log2(p)/log2(L) for positions past L, 1 at and before it and when off', () => {
  assert.equal(attentionTemperature(8, 8), 1);
  assert.equal(attentionTemperature(7, 8), 1);
  assert.equal(attentionTemperature(16, 4), 2);
  assert.equal(attentionTemperature(64, 8), 2);
  assert.equal(attentionTemperature(9, 8), Math.log2(9) / 3);
  assert.equal(attentionTemperature(5000, 0), 1);
  assert.equal(attentionTemperature(0, 8), 1);
});

test('attention: hand-computed softmax over causal keys with soft-cap, GQA and a masked key', () => {
  // 2 query heads share 1 KV head; head width 2; three cached positions; query at position 2.
  const k = new Float32Array([1, 0, 0, 1, 1, 1]);
  const v = new Float32Array([1, 2, 3, 4, 5, 6]);
  const q = new Float32Array([2, 0, 0, 90]);
  const out = new Float32Array(4);
  K.attention({ q, kCache: k, vCache: v, keyMask: new Uint8Array([1, 0, 1]), T: 1, pos0: 2, nHeads: 2, nKV: 1, headDim: 2, scale: 0.5, softcap: 30, out });
  const soft = (s: number) => 30 * Math.tanh(s / 30);
  for (const [h, scores] of [[0, [soft(1), soft(1)]], [1, [soft(0), soft(45)]]] as const) {
    // keys 0 and 2 (key 1 masked)
    const e0 = Math.exp(scores[0]), e2 = Math.exp(scores[1]);
    const w0 = e0 / (e0 + e2), w2 = e2 / (e0 + e2);
    assert.ok(close(out[h * 2]!, w0 * 1 + w2 * 5));
    assert.ok(close(out[h * 2 + 1]!, w0 * 2 + w2 * 6));
  }
  // Causality: a query at position 0 of a 2-token prefill sees only key 0.
  const o2 = new Float32Array(4);
  K.attention({ q: new Float32Array([1, 1, 1, 1]), kCache: k, vCache: v, keyMask: new Uint8Array([1, 1]), T: 2, pos0: 0, nHeads: 1, nKV: 1, headDim: 2, scale: 1, softcap: 0, out: o2 });
  assert.deepEqual(Array.from(o2.subarray(0, 2)), [1, 2]);
});
