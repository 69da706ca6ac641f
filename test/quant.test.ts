/**
 * Block formats, checked against values derived by hand from ggml-quants.c for small crafted blocks,
 * dot products against dequantise-then-dot at awkward lengths (llama.cpp test-quantize-fns sizes), and
 * quantise → dequantise error bounds derived from each format's step size.
 * (Byte-exactness against llama.cpp itself is in quant-llama.test.ts.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockFormat, type BlockType } from '../src/quant/index.js';

/** A block of `size` zero bytes with the given bytes set. */
function block(size: number, bytes: Record<number, number>): Uint8Array {
  const b = new Uint8Array(size);
  for (const [k, v] of Object.entries(bytes)) b[Number(k)] = v;
  return b;
}

function deq(type: BlockType, b: Uint8Array): Float32Array {
  const f = blockFormat(type);
  const out = new Float32Array((b.length / f.bytesPerBlock) * f.blockSize);
  f.dequantize(b, 0, out.length, out, 0);
  return out;
}

function expectValues(type: BlockType, b: Uint8Array, expected: Record<number, number>): void {
  const y = deq(type, b);
  for (const [i, v] of Object.entries(expected)) assert.equal(y[Number(i)], v, `${type} y[${i}]`);
}

// f16 bit patterns used below: 0x3800 = 0.5, 0x3c00 = 1.0, 0x4000 = 2.0, 0xbc00 = −1.0 (little-endian bytes).

test('Q8_0 hand-derived: d = 0.5, y = d·int8', () => {
  const b = block(34, { 0: 0x00, 1: 0x38, 2: 0x80, 3: 0xff, 4: 0x00, 5: 0x01, 6: 0x7f });
  // qs = −128, −1, 0, 1, 127 → −64, −0.5, 0, 0.5, 63.5
  expectValues('q8_0', b, { 0: -64, 1: -0.5, 2: 0, 3: 0.5, 4: 63.5, 31: 0 });
});

test('Q4_0 hand-derived: low nibbles first half, high nibbles second half, offset 8', () => {
  const b = block(18, { 1: 0x40, 2: 0x1f, 3: 0x80 }); // d = 2
  // qs[0] = 0x1F: y[0] = (15−8)·2 = 14, y[16] = (1−8)·2 = −14; qs[1] = 0x80: y[1] = −16, y[17] = 0; qs[2] = 0: −16
  expectValues('q4_0', b, { 0: 14, 16: -14, 1: -16, 17: 0, 2: -16, 31: -16 });
});

test('Q4_1 hand-derived: y = q·d + m', () => {
  const b = block(20, { 1: 0x3c, 3: 0xbc, 4: 0x5a }); // d = 1, m = −1
  // qs[0] = 0x5A: y[0] = 10 − 1 = 9, y[16] = 5 − 1 = 4; qs[1] = 0: −1
  expectValues('q4_1', b, { 0: 9, 16: 4, 1: -1, 17: -1 });
});

test('Q5_0 hand-derived: fifth bit from qh, offset 16', () => {
  // d = 1; qh = 0x00020001 (bits 0 and 17); qs[0] = 0x03, qs[1] = 0xF0
  const b = block(22, { 1: 0x3c, 2: 0x01, 4: 0x02, 6: 0x03, 7: 0xf0 });
  // y[0] = (3|16) − 16 = 3; y[16] = 0 − 16 = −16; y[1] = 0 − 16 = −16; y[17] = (15|16) − 16 = 15
  expectValues('q5_0', b, { 0: 3, 16: -16, 1: -16, 17: 15 });
});

test('Q5_1 hand-derived: y = q·d + m, fifth bit 31', () => {
  // d = 0.5, m = 2, qh = 0x80000000, qs[15] = 0xF7
  const b = block(24, { 1: 0x38, 3: 0x40, 7: 0x80, 23: 0xf7 });
  // y[15] = 7·0.5 + 2 = 5.5; y[31] = (15|16)·0.5 + 2 = 17.5; y[0] = 2
  expectValues('q5_1', b, { 15: 5.5, 31: 17.5, 0: 2 });
});

test('IQ4_NL hand-derived: table lookup', () => {
  const b = block(18, { 1: 0x38, 2: 0xf0, 3: 0x98 }); // d = 0.5
  // qs[0] = 0xF0: y[0] = 0.5·K[0] = −63.5, y[16] = 0.5·K[15] = 56.5; qs[1] = 0x98: y[1] = 0.5·K[8] = 0.5, y[17] = 0.5·K[9] = 6.5
  expectValues('iq4_nl', b, { 0: -63.5, 16: 56.5, 1: 0.5, 17: 6.5 });
});

test('Q2_K hand-derived: 2-bit levels, 4-bit scale and min per 16 values', () => {
  // d = 1 @80, dmin = 0.5 @82; scales[0] = 0x23 (sc 3, min 2), [2] = 0x11, [4] = 0x0F, [6] = 0xF0, [8] = 0x01
  // qs[0] = 0xE4 = 0b11_10_01_00, qs[32] = 0x03
  const b = block(84, { 0: 0x23, 2: 0x11, 4: 0x0f, 6: 0xf0, 8: 0x01, 16: 0xe4, 48: 0x03, 81: 0x3c, 83: 0x38 });
  // i=0: q=0 → 3·0 − 0.5·2 = −1; i=32 (j=1, group 2): q=1 → 1·1 − 0.5·1 = 0.5; i=64 (group 4): q=2 → 15·2 = 30;
  // i=96 (group 6): q=3 → 0·3 − 0.5·15 = −7.5; i=128 (h=1, group 8): q = qs[32] & 3 = 3 → 1·3 = 3
  expectValues('q2_k', b, { 0: -1, 32: 0.5, 64: 30, 96: -7.5, 128: 3 });
});

test('Q3_K hand-derived: signed 6-bit scales, inverted high bit', () => {
  // d = 1 @108; scales bytes @96: b[0] = 0x21, b[8] = 0x02 → S[0] = (1 | 2<<4) − 32 = 1, S[8] = 2 − 32 = −30,
  // S[1] = −32. qs @32: qs[0] = 0x03, qs[32] = 0x02; hmask @0: hmask[0] = 0x01.
  const b = block(110, { 96: 0x21, 104: 0x02, 32: 0x03, 64: 0x02, 0: 0x01, 109: 0x3c });
  // i=0: q=3, hb=1 → 1·3 = 3; i=1: q=0, hb=0 → 1·(0−4) = −4; i=128 (h=1, group 8): q=2, hb=(hmask[0]>>4)&1=0 → −30·(2−4) = 60;
  // i=16 (group 1): q=0, hb=0 → −32·(−4) = 128
  expectValues('q3_k', b, { 0: 3, 1: -4, 128: 60, 16: 128 });
});

test('Q4_K hand-derived: 6-bit scale/min packing', () => {
  // d = 1, dmin = 0.5; scales @4: b[0] = 0x43 (sc0 = 3, top bits 1 → sc4 high), b[1] = 1, b[4] = 2, b[5] = 4, b[8] = 0x21
  // → sc0 = 3, mn0 = 2, sc1 = 1, mn1 = 4, sc4 = 1 | (1<<4) = 17, mn4 = 2 | (b[4]>>6)<<4 = 2
  // qs @16: qs[0] = 0x5A, qs[64] = 0x0F
  const b = block(144, { 1: 0x3c, 3: 0x38, 4: 0x43, 5: 0x01, 8: 0x02, 9: 0x04, 12: 0x21, 16: 0x5a, 80: 0x0f });
  // i=0: 1·3·10 − 0.5·2 = 29; i=32 (t=1): 1·1·5 − 0.5·4 = 3; i=128 (t=4): 17·15 − 0.5·2 = 254; i=160 (t=5): 0
  expectValues('q4_k', b, { 0: 29, 32: 3, 128: 254, 160: 0 });
});

test('Q5_K hand-derived: fifth bit from qh bit t', () => {
  // same scales as the Q4_K case; qh @16: qh[0] = 0x03; qs @48: qs[0] = 0x5A, qs[64] = 0x0F
  const b = block(176, { 1: 0x3c, 3: 0x38, 4: 0x43, 5: 0x01, 8: 0x02, 9: 0x04, 12: 0x21, 16: 0x03, 48: 0x5a, 112: 0x0f });
  // i=0: q = 10|16 = 26 → 3·26 − 1 = 77; i=32 (t=1): q = 5|16 = 21 → 21 − 2 = 19; i=128 (t=4, qh bit 4 = 0): 17·15 − 1 = 254
  expectValues('q5_k', b, { 0: 77, 32: 19, 128: 254 });
});

test('Q6_K hand-derived: 4 low bits + 2 high bits, int8 scales, offset 32', () => {
  // d = 0.5 @208; scales @192: [0] = −3, [2] = 1, [4] = 2, [15] = 127; ql[0] = 0x3F, ql[127] = 0xF0; qh[0] = 0x02, qh[63] = 0xC0
  const b = block(210, { 0: 0x3f, 127: 0xf0, 128: 0x02, 191: 0xc0, 192: 0xfd, 194: 1, 196: 2, 207: 127, 209: 0x38 });
  // i=0: q = (15 | 2<<4) − 32 = 15 → 0.5·(−3)·15 = −22.5; i=32 (k=1): ql[32] = 0, hi2 = (qh[0]>>2)&3 = 0 → q = −32 → 0.5·1·(−32) = −16;
  // i=64 (k=2): high nibble of ql[0] = 3, hi2 = (qh[0]>>4)&3 = 0 → q = −29 → 0.5·2·(−29) = −29;
  // i=255 (h=1, k=3, l=31): ql[127] >> 4 = 15, qh[63] >> 6 = 3 → q = 31 → 0.5·127·31 = 1968.5
  expectValues('q6_k', b, { 0: -22.5, 32: -16, 64: -29, 255: 1968.5 });
});

test('every format rejects a value count that is not a multiple of its block size', () => {
  for (const t of ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'iq4_xs', 'iq1_s', 'iq1_m',
    'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs', 'iq3_s'] as BlockType[]) {
    const f = blockFormat(t);
    const src = new Uint8Array(f.bytesPerBlock * 2);
    assert.throws(() => f.dequantize(src, 0, f.blockSize + 1, new Float32Array(2 * f.blockSize), 0), /not a multiple of the block size/, t);
    assert.throws(() => f.dot(src, 0, new Float32Array(2 * f.blockSize), 0, f.blockSize - 1), /not a multiple of the block size/, t);
  }
});

/** Deterministic xorshift32 + Box–Muller, so failures reproduce. */
function gaussian(n: number, seed: number, sigma = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sigma * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

const QUANT_TYPES: BlockType[] = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'iq4_xs'];

test('dot equals dequantise-then-dot (float64) at awkward lengths and offsets', () => {
  for (const t of QUANT_TYPES) {
    const f = blockFormat(t);
    for (const nb of [1, 3, 7, 17, 31, 33, 127, 129]) {
      const n = nb * f.blockSize;
      const w = gaussian(n, 7 * nb + 1);
      const x = gaussian(n + 5, 11 * nb + 3);
      const pre = 3 * f.bytesPerBlock; // blocks start at a non-zero offset of the buffer
      const q = new Uint8Array(pre + nb * f.bytesPerBlock);
      f.quantize!(w, 0, n, q, pre);
      const y = new Float32Array(n);
      f.dequantize(q, pre, n, y, 0);
      let ref = 0;
      let mag = 0;
      for (let i = 0; i < n; i++) {
        ref += y[i]! * x[i + 5]!;
        mag += Math.abs(y[i]! * x[i + 5]!);
      }
      const got = f.dot(q, pre, x, 5, n);
      if (!(Math.abs(got - ref) <= 1e-12 * mag)) assert.fail(`${t} ${nb} blocks: dot ${got} vs ${ref}`);
    }
  }
});

test('quantise → dequantise: simple formats within their step-size bound per block', () => {
  const x = gaussian(32 * 512, 99);
  // Also blocks of constants, of zeros, of one spike, of all-positive values.
  x.fill(0.3, 0, 32);
  x.fill(0, 32, 64);
  x[70] = 5;
  for (let i = 96; i < 128; i++) x[i] = 1 + i / 100;
  const f16rel = 2 ** -11; // relative rounding of a stored f16 scale
  const bound: Record<string, (lo: number, hi: number, amax: number) => number> = {
    // Q8_0: d = amax/127, |err| ≤ d/2 plus 127·d·f16rel from the rounded d
    q8_0: (_l, _h, a) => (a / 127) * (0.5 + 127 * f16rel) + 1e-30,
    // Q4_0 / Q5_0: the extreme value maps to −8 / −16 exactly; the opposite side clamps at +7 / +15: |err| ≤ d
    q4_0: (_l, _h, a) => (a / 8) * (1 + 8 * f16rel) + 1e-30,
    q5_0: (_l, _h, a) => (a / 16) * (1 + 16 * f16rel) + 1e-30,
    // Q4_1 / Q5_1: step (max−min)/15 or /31, half a step plus the f16 rounding of d and m
    q4_1: (lo, hi) => ((hi - lo) / 15) * (0.5 + 15 * f16rel) + Math.abs(lo) * f16rel + 1e-30,
    q5_1: (lo, hi) => ((hi - lo) / 31) * (0.5 + 31 * f16rel) + Math.abs(lo) * f16rel + 1e-30,
    // IQ4_NL: the table's widest gap is 24 (89 → 113), and its ends (−127, 113) cover the extreme
    // value at the chosen scale d ≈ amax/127 (≤ amax/113 after the refit): |err| ≤ 12·amax/113 + slack
    iq4_nl: (_l, _h, a) => (a * 12.5) / 113 + 1e-30,
  };
  for (const [t, b] of Object.entries(bound)) {
    const f = blockFormat(t as BlockType);
    const q = new Uint8Array((x.length / 32) * f.bytesPerBlock);
    f.quantize!(x, 0, x.length, q, 0);
    const y = new Float32Array(x.length);
    f.dequantize(q, 0, x.length, y, 0);
    for (let blk = 0; blk < x.length / 32; blk++) {
      let lo = Infinity, hi = -Infinity, amax = 0;
      for (let i = 32 * blk; i < 32 * blk + 32; i++) {
        lo = Math.min(lo, x[i]!); hi = Math.max(hi, x[i]!); amax = Math.max(amax, Math.abs(x[i]!));
      }
      const lim = b(lo, hi, amax);
      for (let i = 32 * blk; i < 32 * blk + 32; i++) {
        if (!(Math.abs(y[i]! - x[i]!) <= lim)) assert.fail(`${t} block ${blk} value ${i}: ${x[i]} → ${y[i]} (bound ${lim})`);
      }
    }
  }
});

test('quantise → dequantise: K-quants of N(0,1) within a uniform b-bit quantiser of ±3σ, and ordered by bits', () => {
  const x = gaussian(256 * 64, 5);
  const rmse = (t: BlockType) => {
    const f = blockFormat(t);
    const q = new Uint8Array((x.length / f.blockSize) * f.bytesPerBlock);
    f.quantize!(x, 0, x.length, q, 0);
    const y = new Float32Array(x.length);
    f.dequantize(q, 0, x.length, y, 0);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += (y[i]! - x[i]!) ** 2;
    return Math.sqrt(s / x.length);
  };
  // A uniform quantiser with 2^b levels over ±3σ has RMS error (6σ/2^b)/√12 ≈ 1.73σ/2^b; K-quants adapt
  // their scale per 16 or 32 values, so they must not do worse than that.
  const bits: [BlockType, number][] = [['q2_k', 2], ['q3_k', 3], ['q4_k', 4], ['q5_k', 5], ['q6_k', 6]];
  let prev = Infinity;
  for (const [t, b] of bits) {
    const e = rmse(t);
    if (!(e <= 6 / 2 ** b / Math.sqrt(12))) assert.fail(`${t}: RMS error ${e} exceeds ${6 / 2 ** b / Math.sqrt(12)}`);
    if (!(e < prev)) assert.fail(`${t}: RMS error ${e} not below the format with one bit less (${prev})`);
    prev = e;
  }
  assert.ok(rmse('q8_0') < prev, 'q8_0 below q6_k');
});

test('quantise all-zero input gives blocks that dequantise to exact zeros', () => {
  for (const t of QUANT_TYPES) {
    const f = blockFormat(t);
    const x = new Float32Array(f.blockSize * 2);
    const q = new Uint8Array(f.bytesPerBlock * 2);
    f.quantize!(x, 0, x.length, q, 0);
    const y = deq(t, q);
    if (!(y.every((v) => v === 0))) assert.fail(`${t}: ${y.find((v) => v !== 0)}`);
  }
});

// ---- the checkpoint's int8 + bf16 scales form (grok-1 model.py QuantizedWeight8bit) ----
import { xai8Dequantize, xai8Dot, xai8Rows, xai8RowsToQ8_0, xai8Value } from '../src/quant/xai8.js';
import type { Xai8Matrix } from '../src/quant/matrix.js';

test('xai8 hand-derived: W[k, n] = q[k, n]·s[floor(k / (K/G)), n], rows of Wᵀ, dot', () => {
  // q [4 in, 2 out], G = 2 groups of 2 inputs; scales bf16 [[0.5, 2], [0.25, −1]] = 0x3F00 0x4000 0x3E80 0xBF80
  const m: Xai8Matrix = {
    layout: 'xai8', nIn: 4, nOut: 2, groups: 2,
    q: new Int8Array([1, -2, 3, 4, -5, 6, 7, -128]),
    scales: new Uint16Array([0x3f00, 0x4000, 0x3e80, 0xbf80]),
  };
  // W = [[0.5, −4], [1.5, 8], [−1.25, −6], [1.75, 128]]
  const w = new Float32Array(8);
  xai8Dequantize(m, w);
  assert.deepEqual([...w], [0.5, -4, 1.5, 8, -1.25, -6, 1.75, 128]);
  assert.equal(xai8Value(m, 3, 1), 128);
  const rows = new Float32Array(8);
  xai8Rows(m, 0, 2, rows);
  assert.deepEqual([...rows], [0.5, 1.5, -1.25, 1.75, -4, 8, -6, 128]);
  const one = new Float32Array(4);
  xai8Rows(m, 1, 1, one);
  assert.deepEqual([...one], [-4, 8, -6, 128]);
  // x = [1, 2, 3, 4]: 0.5 + 3 − 3.75 + 7 = 6.75; −4 + 16 − 18 + 512 = 506
  const x = new Float32Array([9, 1, 2, 3, 4]);
  assert.equal(xai8Dot(m, 0, x, 1), 6.75);
  assert.equal(xai8Dot(m, 1, x, 1), 506);
});

test('xai8 → Q8_0: exact where the block has one f16-representable scale and no −128, else within d/2', () => {
  const nIn = 64, nOut = 3, groups = 2;
  const q = new Int8Array(nIn * nOut);
  for (let k = 0; k < nIn; k++) {
    q[k * nOut + 0] = ((k * 37) % 255) - 127; // −127 … 127
    q[k * nOut + 1] = k === 5 ? -128 : ((k * 11) % 200) - 100; // block 0 of column 1 holds a −128
    q[k * nOut + 2] = ((k * 7) % 100) - 50;
  }
  // scales: column 0: 0.5, 3.0 (f16-exact); column 1: 0.25, 1.0; column 2: 2^-20·(1 + 1/128) = bf16 0x35C1,
  // below f16's normal range, not a multiple of 2^-24 → f16 rounds it; then 1.0
  const scales = new Uint16Array([0x3f00, 0x3e80, 0x35c1, 0x4040, 0x3f80, 0x3f80]);
  const m: Xai8Matrix = { layout: 'xai8', nIn, nOut, groups, q, scales };
  const dst = new Uint8Array(nOut * 2 * 34);
  const kept = xai8RowsToQ8_0(m, 0, nOut, dst, 0);
  const y = new Float32Array(nOut * nIn);
  blockFormat('q8_0').dequantize(dst, 0, nOut * nIn, y, 0);
  const exact = new Float32Array(nOut * nIn);
  xai8Rows(m, 0, nOut, exact);
  const err = (n: number, b: number) => Math.max(...Array.from({ length: 32 }, (_, i) => Math.abs(y[n * nIn + 32 * b + i]! - exact[n * nIn + 32 * b + i]!)));
  assert.equal(err(0, 0), 0);
  assert.equal(err(0, 1), 0);
  assert.equal(err(1, 1), 0);
  assert.equal(err(2, 1), 0);
  // column 1 block 0: max |W| = 128·0.25 = 32 → d = 32/127; column 2 block 0: 2^-20-ish scale
  if (!(err(1, 0) > 0 && err(1, 0) <= (32 / 127) * (0.5 + 127 * 2 ** -11))) assert.fail(`${err(1, 0)}`);
  let amax = 0;
  for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(exact[2 * nIn + i]!));
  if (!(err(2, 0) <= amax / 127 / 2 + 127.5 * 2 ** -25)) assert.fail(`${err(2, 0)}`);
  // kept = blocks that kept the checkpoint's levels: the 4 exact ones, and column 2 block 0, where the
  // f16-rounded scale with the original levels still beats llama.cpp's rule (a 50-level range vs 127)
  assert.equal(kept, 5);
});
