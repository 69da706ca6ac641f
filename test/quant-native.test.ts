/**
 * The addon's quantisers (native/quantize.c) write the same bytes as the TypeScript quantisers of
 * src/quant/ (which test/quant-llama.test.ts checks against llama.cpp's own), for every type, at every
 * instruction-set level this CPU runs, at awkward sizes (1, 3, 7, 33 blocks per row; 1, 2 and 5 rows, so
 * the lane groups of the K-quant searches end mid-row and mid-group) and on awkward values: zeros, rows
 * of one repeated value, huge and tiny magnitudes (x² overflowing, subnormals), negative-only rows, values
 * on a grid (rounding ties) and N(0, 1) with outliers. Likewise grok synth's generator (gaussFill) and the
 * dequantisation of convert's common sources; and end to end, `grok synth` / `grok convert` files are
 * byte-identical with GROK_BACKEND=native and GROK_BACKEND=wasm (the TypeScript quantisers).
 */
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { loadNativeAddon, NATIVE_DEQUANT_TYPES, nativeDequantizer, nativeGaussFill, nativeQuantizer, nativeWeightedQuantizer, nativeXai8, TS_ONLY_QUANT_TYPES } from '../src/kernels/native.js';
import { quantizeRowsWeighted, WEIGHTED_TYPES } from '../src/quant/weighted.js';
import { xai8Rows, xai8RowsToQ8_0 } from '../src/quant/xai8.js';
import { f32ToBf16 } from '../src/quant/half.js';
import type { Xai8Matrix } from '../src/quant/matrix.js';
import { gaussianFillReference, gaussianSetup } from '../src/convert/pool-jobs.js';
import { blockFormat, rowBytes, type BlockType } from '../src/quant/index.js';
import { mulberry32, randn } from './random.js';

const loaded = loadNativeAddon();
const missing = 'error' in loaded ? loaded.error : undefined;
if (missing && process.env.CI === 'true') throw new Error(`CI: the native addon must load: ${missing}`);
const skip = missing ? `native addon unavailable: ${missing}` : false;
const levels = 'addon' in loaded ? loaded.addon.info().levels : [];

const TYPES: BlockType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'iq4_xs', 'iq3_s'];
/** IQ3_S's TypeScript quantiser takes ~4 ms a super-block (llama.cpp's search, neighbour lists and all): fewer shapes. */
const SLOW: ReadonlySet<BlockType> = new Set(['iq3_s']);

/** Named value patterns: n values each. */
function patterns(n: number, seed: number): [string, Float32Array][] {
  const r = mulberry32(seed);
  const normal = randn(r, n);
  const outliers = randn(r, n, 0.02);
  for (let i = 0; i < n; i += 1 + Math.floor(r() * 97)) outliers[i] = (r() < 0.5 ? -1 : 1) * (0.5 + 3 * r());
  const grid = new Float32Array(n).map(() => Math.round((r() - 0.5) * 64) / 8); // many exact ties
  const negative = randn(r, n).map((v) => -Math.abs(v) - 1e-3);
  const mixed = randn(r, n);
  // per 16 values: zeros, one constant, a single spike, tiny, huge, normal (every block type sees each)
  for (let g = 0; g * 16 < n; g++) {
    const kind = g % 7;
    for (let i = 16 * g; i < 16 * g + 16; i++) {
      if (kind === 0) mixed[i] = 0;
      else if (kind === 1) mixed[i] = 0.75;
      else if (kind === 2) mixed[i] = i === 16 * g + 5 ? -3 : 0;
      else if (kind === 3) mixed[i] = mixed[i]! * 1e-38;
      else if (kind === 4) mixed[i] = mixed[i]! * 1e20;
      else if (kind === 5) mixed[i] = -2.5;
    }
  }
  return [
    ['normal', normal],
    ['normal with outliers', outliers],
    ['zeros', new Float32Array(n)],
    ['all equal', new Float32Array(n).fill(0.3125)],
    ['all equal negative', new Float32Array(n).fill(-1.5)],
    ['huge', randn(r, n, 1e15)],
    ['x² overflows', randn(r, n, 3e19)],
    ['near FLT_MAX', randn(r, n, 1e38)],
    ['tiny', randn(r, n, 1e-20)],
    ['subnormal', randn(r, n, 1e-41)],
    ['negative only', negative],
    ['grid (ties)', grid],
    ['mixed blocks', mixed],
  ];
}

/** First differing byte, as "byte B (block K)". */
function firstDiff(a: Uint8Array, b: Uint8Array, blockBytes: number): string {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `byte ${i} (block ${Math.floor(i / blockBytes)}, offset ${i % blockBytes}): ${a[i]} vs ${b[i]}`;
  return 'none';
}

for (const isa of levels.length ? levels : ['-']) {
  test(`native quantisers write the TypeScript quantisers' bytes (${isa})`, { skip }, () => {
    const q = nativeQuantizer(isa)!;
    for (const type of TYPES) {
      const f = blockFormat(type);
      const bs = f.blockSize === 1 ? 32 : f.blockSize;
      for (const blocks of SLOW.has(type) ? [1, 3] : [1, 3, 7, 33]) {
        const nIn = blocks * bs;
        for (const rows of SLOW.has(type) ? [1, 2] : [1, 2, 5]) {
          const n = rows * nIn;
          for (const [name, x] of patterns(n, 1000 * blocks + rows)) {
            const rb = rowBytes(f, nIn);
            const want = new Uint8Array(rows * rb);
            for (let r = 0; r < rows; r++) f.quantize!(x, r * nIn, nIn, want, r * rb);
            const got = new Uint8Array(rows * rb).fill(0xa5); // every byte must be written
            q(type, x, nIn, rows, got);
            if (Buffer.compare(got, want) !== 0) {
              assert.fail(`${type} ${rows}×${nIn} '${name}' at ${isa}: first difference at ${firstDiff(got, want, f.bytesPerBlock)}`);
            }
          }
        }
      }
    }
  });
}

for (const isa of levels.length ? levels : ['-']) {
  test(`native quantisers with an importance matrix write the TypeScript bytes (${isa})`, { skip }, () => {
    const q = nativeWeightedQuantizer(isa)!;
    const r = mulberry32(77);
    for (const type of [...WEIGHTED_TYPES].filter((t) => !TS_ONLY_QUANT_TYPES.has(t))) {
      const f = blockFormat(type);
      // 32-value types: rows of 1 and 3 blocks too (σ² is the row's; a lane group spans rows)
      for (const blocks of f.blockSize === 32 ? [1, 3, 8, 24] : SLOW.has(type) ? [1, 3] : [1, 3, 7]) {
        const nIn = blocks * f.blockSize;
        // importance values: spread over decades, some zero, one all-zero 16-run, one all-equal row
        const spread = new Float32Array(nIn).map(() => (r() < 0.05 ? 0 : 10 ** (4 * r() - 2)));
        spread.fill(0, Math.min(32, nIn - 16), Math.min(48, nIn));
        for (const [wname, weights] of [['spread', spread], ['ones', new Float32Array(nIn).fill(1)], ['tiny', spread.map((v) => v * 1e-30)]] as const) {
          for (const rows of SLOW.has(type) ? [1, 2] : [1, 2, 5]) {
            const n = rows * nIn;
            for (const [name, x] of patterns(n, 1000 * blocks + rows)) {
              const rb = rowBytes(f, nIn);
              const want = new Uint8Array(rows * rb);
              quantizeRowsWeighted(type, x, 0, nIn, rows, want, 0, weights);
              const got = new Uint8Array(rows * rb).fill(0xa5);
              q(type, x, nIn, rows, got, weights);
              if (Buffer.compare(got, want) !== 0) {
                assert.fail(`${type} ${rows}×${nIn} '${name}', weights '${wname}' at ${isa}: first difference at ${firstDiff(got, want, f.bytesPerBlock)}`);
              }
            }
          }
        }
      }
    }
    assert.throws(() => q('q8_0', new Float32Array(256), 256, 1, new Uint8Array(272), new Float32Array(256)), /not implemented natively for q8_0/);
    assert.throws(() => q('iq2_xs', new Float32Array(256), 256, 1, new Uint8Array(74), new Float32Array(256)), /not implemented natively for iq2_xs/);
    assert.throws(() => q('q4_k', new Float32Array(256), 256, 1, new Uint8Array(144), new Float32Array(255)), /256 importance weights needed/);
  });
}

test('native quantize refuses what TypeScript must refuse first', { skip }, () => {
  const q = nativeQuantizer()!;
  const x = new Float32Array(512);
  assert.throws(() => q('q4_k', x, 100, 1, new Uint8Array(1000)), /multiple of the block size/);
  assert.throws(() => q('q4_k', x, 256, 3, new Uint8Array(1000)), /values needed/);
  assert.throws(() => q('q4_k', x, 256, 2, new Uint8Array(287)), /needs 288 bytes/);
  assert.throws(() => q('q8_0', x, 0, 1, new Uint8Array(34)), /positive integer/);
  assert.throws(() => q('q8_0', x, 32, -1, new Uint8Array(34)), /non-negative integer/);
  assert.throws(() => q('q8_0', x, 32.5, 1, new Uint8Array(34)), /positive integer/);
  // and the addon checks again on its own
  if ('addon' in loaded) {
    assert.throws(() => loaded.addon.quantize(8, x, 32, 17, new Uint8Array(34 * 17), levels[0]!), /invalid/i);
    assert.throws(() => loaded.addon.quantize(8, x, 32, 1, new Uint8Array(33), levels[0]!), /invalid/i);
    assert.throws(() => loaded.addon.quantize(12, x, 100, 1, new Uint8Array(1000), levels[0]!), /invalid/i);
    assert.throws(() => loaded.addon.quantize(8, x, 32, 1, new Uint8Array(34), 'no-such-level'), /level/);
  }
});

test("native gaussFill generates grok synth's TypeScript values", { skip }, () => {
  const fill = nativeGaussFill()!;
  for (const [seed, sigma, n] of [[1, 0.02, 0], [2, 0.02, 1], [0xffffffff, 1, 7], [12345, 0.02, 100_003], [7, 0.02, 8192], [8, 0.02, 8193], [9, 1, 1 << 20], [0, 3e30, 1000]] as const) {
    const { s, scale } = gaussianSetup(seed, sigma);
    const want = new Float32Array(n);
    gaussianFillReference(want, s, scale);
    const got = new Float32Array(n).fill(NaN);
    fill(got, s, scale);
    assert.deepEqual(Buffer.from(got.buffer), Buffer.from(want.buffer), `seed ${seed}, sigma ${sigma}, ${n} values`);
  }
  assert.throws(() => fill(new Float32Array(4), new Uint32Array(3), 1), /4 words/);
});

test('native dequantize gives the TypeScript values of q8_0, f16, bf16 and f32 sources', { skip }, () => {
  const dq = nativeDequantizer()!;
  const r = mulberry32(5);
  for (const type of NATIVE_DEQUANT_TYPES) {
    const f = blockFormat(type);
    for (const blocks of [0, 1, 3, 33, 1000]) {
      const n = blocks * (f.blockSize === 1 ? 32 : f.blockSize);
      const src = new Uint8Array(rowBytes(f, n)).map(() => Math.floor(r() * 256)); // every bit pattern, NaNs included
      const want = new Float32Array(n);
      f.dequantize(src, 0, n, want, 0);
      const got = new Float32Array(n).fill(-1);
      dq(type, src, n, got);
      for (let i = 0; i < n; i++) {
        if (Number.isNaN(want[i]!) && Number.isNaN(got[i]!)) continue; // a NaN's payload is not a value
        if (!Object.is(got[i], want[i])) assert.fail(`${type} value ${i} of ${n}: ${got[i]} vs ${want[i]}`);
      }
    }
  }
  assert.throws(() => dq('q4_k', new Uint8Array(144), 256, new Float32Array(256)), /not one of/);
  assert.throws(() => dq('q8_0', new Uint8Array(33), 32, new Float32Array(32)), /need 34 bytes/);
  assert.throws(() => dq('q8_0', new Uint8Array(34), 32, new Float32Array(31)), /out has 31/);
});

test("native xai8 rows and xai8 → q8_0 give the TypeScript floats and bytes (checkpoint int8 + bf16 scales)", { skip }, () => {
  const nx = nativeXai8()!;
  const r = mulberry32(11);
  // scales: typical bf16 values (f16-exact or not), zero, huge (beyond f16), tiny (subnormal in f16), ±inf, NaN
  const scaleKinds = [() => 0.0123 * (0.5 + r()), () => 0, () => 1e6 * r(), () => 1e-7 * r(), () => Infinity, () => -3e-3, () => NaN, () => 2 ** -14];
  for (const [nIn, nOut, groups, finite] of [[32, 1, 1, 0], [64, 7, 2, 0], [96, 33, 3, 0], [256, 40, 8, 1], [160, 5, 5, 1], [48, 3, 1, 0], [192, 65, 6, 1], [128, 9, 2, 1], [512, 300, 2, 1], [256, 70, 1, 1]] as const) {
    const q = new Int8Array(nIn * nOut).map(() => Math.floor(r() * 256) - 128);
    for (let i = 0; i < q.length; i += 1 + Math.floor(r() * 13)) q[i] = r() < 0.5 ? -128 : 127; // the levels candidate A cannot keep
    const kinds = finite ? scaleKinds.filter((k) => Number.isFinite(k())) : scaleKinds;
    const scales = new Uint16Array(groups * nOut).map(() => f32ToBf16(r() < 0.7 ? kinds[0]!() : kinds[Math.floor(r() * kinds.length)]!()));
    const m: Xai8Matrix = { layout: 'xai8', nIn, nOut, groups, q, scales };
    for (const [r0, count] of [[0, nOut], [Math.floor(nOut / 3), Math.ceil(nOut / 2) - Math.floor(nOut / 3)], [nOut - 1, 1], [0, 0]] as const) {
      const want = new Float32Array(count * nIn);
      xai8Rows(m, r0, count, want);
      const got = new Float32Array(count * nIn).fill(-1);
      nx.rows(m, r0, count, got);
      for (let i = 0; i < want.length; i++) {
        if (!(Object.is(got[i], want[i]) || (Number.isNaN(got[i]!) && Number.isNaN(want[i]!)))) assert.fail(`rows ${nIn}×${nOut}/${groups} [${r0}, +${count}) value ${i}: ${got[i]} vs ${want[i]}`);
      }
      // a NaN's sign is V8's choice, not a value: non-finite scales only for the floats above
      if (nIn % 32 || [...scales].some((h) => (h & 0x7f80) === 0x7f80)) continue;
      const wantQ = new Uint8Array(count * (nIn / 32) * 34);
      const keptT = xai8RowsToQ8_0(m, r0, count, wantQ, 0);
      const gotQ = new Uint8Array(wantQ.length).fill(0xa5);
      const keptN = nx.q8_0(m, r0, count, gotQ, new Float32Array(count * nIn));
      assert.equal(keptN, keptT, `q8_0 ${nIn}×${nOut}/${groups} [${r0}, +${count}): blocks kept`);
      if (Buffer.compare(gotQ, wantQ) !== 0) assert.fail(`q8_0 ${nIn}×${nOut}/${groups} [${r0}, +${count}): first difference at ${firstDiff(gotQ, wantQ, 34)}`);
      const noVals = new Uint8Array(wantQ.length).fill(0x5a);
      assert.equal(nx.q8_0(m, r0, count, noVals), keptT);
      assert.ok(Buffer.compare(noVals, wantQ) === 0, 'q8_0 without the values scratch');
      // the checkpoint straight to other types (one transposition, quantised a band at a time), with and without weights
      for (const [type, weighted] of [['q4_0', false], ['q4_0', true], ['q5_k', true], ['q6_k', true], ['iq4_xs', true]] as [BlockType, boolean][]) {
        const f = blockFormat(type);
        if (nIn % f.blockSize) continue;
        const rb = rowBytes(f, nIn);
        const weights = weighted ? new Float32Array(nIn).map(() => 10 ** (3 * r() - 1)) : undefined;
        const want2 = new Uint8Array(count * rb);
        if (weights) quantizeRowsWeighted(type, want, 0, nIn, count, want2, 0, weights);
        else for (let j = 0; j < count; j++) f.quantize!(want, j * nIn, nIn, want2, j * rb);
        const got2 = new Uint8Array(count * rb).fill(0xa5);
        nx.quantize(type, m, r0, count, got2, weights);
        if (Buffer.compare(got2, want2) !== 0) assert.fail(`${type} ${nIn}×${nOut}/${groups} [${r0}, +${count}): first difference at ${firstDiff(got2, want2, f.bytesPerBlock)}`);
      }
    }
  }
  const m: Xai8Matrix = { layout: 'xai8', nIn: 64, nOut: 4, groups: 2, q: new Int8Array(256), scales: new Uint16Array(8) };
  assert.throws(() => nx.rows(m, 3, 2, new Float32Array(128)), /outside/);
  assert.throws(() => nx.rows(m, 0, 2, new Float32Array(127)), /room for 127/);
  assert.throws(() => nx.q8_0({ ...m, nIn: 48, q: new Int8Array(192), groups: 1, scales: new Uint16Array(4) }, 0, 1, new Uint8Array(100), new Float32Array(48)), /multiple of 32/);
});

test('grok synth and grok convert write the same files with the native and the TypeScript quantisers', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-qn-'));
  try {
    const cli = path.resolve('dist/src/cli/main.js');
    const run = (backend: string, ...args: string[]) => {
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120000, env: { ...process.env, GROK_BACKEND: backend } });
      assert.equal(r.status, 0, `${backend}: grok ${args.join(' ')}\n${r.stderr}`);
    };
    for (const backend of ['native', 'wasm']) {
      const d = path.join(dir, backend);
      fs.mkdirSync(d);
      run(backend, 'synth', '--preset', 'tiny', '--layers', '2', '--type', 'q8_0', '--threads', '2', '--out', path.join(d, 'synth.gguf'));
      for (const type of ['q4_k', 'q6_k', 'q2_k', 'f16']) {
        run(backend, 'convert', path.join(d, 'synth.gguf'), '--type', type, '--threads', '2', '--name', 'x', '--out', path.join(d, `${type}.gguf`));
      }
      run(backend, 'convert', path.join(d, 'f16.gguf'), '--type', 'q5_k', '--embd-type', 'q3_k', '--threads', '1', '--name', 'x', '--out', path.join(d, 'f16-q5_k.gguf'));
    }
    for (const f of ['synth', 'q4_k', 'q6_k', 'q2_k', 'f16', 'f16-q5_k']) {
      const a = fs.readFileSync(path.join(dir, 'native', `${f}.gguf`));
      const b = fs.readFileSync(path.join(dir, 'wasm', `${f}.gguf`));
      assert.ok(a.equals(b), `${f}.gguf differs between the native and the TypeScript quantisers`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
