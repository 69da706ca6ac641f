/**
 * The ARM NEON kernels (native/ at levels neon and neon_dot, plus scalar) cross-compiled for aarch64 and
 * run under qemu-user by the stand-alone driver native/test/check.c, against reference outputs this file
 * computes with src/kernels/reference.ts: every block type at awkward block counts, T = 1, 3, 17, both
 * modes, xai8, attention (with Grok-2's temperature too), GELU (tanh and erf); 1 and 3 threads; batched
 * rows bit-identical to each token alone.
 * The same driver also runs natively here (the x86 levels), which checks the driver itself.
 *
 * Needs aarch64-linux-gnu-gcc and qemu-aarch64 (Debian: gcc-aarch64-linux-gnu, qemu-user). Under CI
 * (CI=true) their absence fails; elsewhere the test is skipped with a line naming what was not checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { attentionReference, geluReference, matmulReference } from '../src/kernels/reference.js';
import { referenceKernels } from '../src/kernels/reference.js';
import { blockFormat, type BlockType } from '../src/quant/index.js';
import type { Matrix } from '../src/quant/matrix.js';
import { absBound, ALL_TYPES, FLOAT_TYPES, kvCache, quantDequantX, randn, rng, rowsMatrix, xai8Matrix } from './kernel-checks.js';

// The build's own script (not compiled into dist/): imported from the source tree.
const { writeAbiHeader } = (await import(new URL('../../scripts/abi-header.mjs', import.meta.url).href)) as typeof import('../scripts/abi-header.mjs');

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-arm-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

interface BuildScript {
  NATIVE: string;
  LEVELS: Record<string, { name: string; level: number; flags: string[] }[]>;
  CORE_SOURCES: string[];
  CFLAGS: string[];
}
const build = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'build-native.mjs')).href)) as BuildScript;

function has(cmd: string): boolean {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Reference cases, written once in the driver's format (native/test/check.c). */
function writeCases(dir: string): number {
  fs.mkdirSync(dir, { recursive: true });
  let n = 0;
  const put = (parts: (Buffer | ArrayBufferView)[]) => {
    const bufs = parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
    fs.writeFileSync(path.join(dir, `case-${String(n++).padStart(4, '0')}.bin`), Buffer.concat(bufs));
  };
  const i32 = (...v: number[]) => Buffer.from(Int32Array.from(v).buffer);
  const f32 = (...v: number[]) => Buffer.from(Float32Array.from(v).buffer);
  const blob = (b: ArrayBufferView) => Buffer.concat([Buffer.from(BigUint64Array.from([BigInt(b.byteLength)]).buffer), Buffer.from(b.buffer, b.byteOffset, b.byteLength)]);
  const matmulCase = (w: Matrix, T: number, fast: boolean, r: () => number) => {
    const x = randn(r, T * w.nIn);
    const want = new Float32Array(T * w.nOut);
    const quantised = fast && (w.layout === 'xai8' ? (w.nIn / w.groups) % 32 === 0 : !FLOAT_TYPES.has(w.type));
    matmulReference(w, quantised ? quantDequantX(x) : x, T, want);
    const head = Buffer.concat([Buffer.from('GNC1'), i32(w.layout === 'rows' ? 0 : 1)]);
    if (w.layout === 'rows') {
      put([head, i32(blockFormat(w.type).ggmlId, w.nIn, w.nOut, T, 1, fast ? 1 : 0), f32(1e-5), blob(w.data), blob(new Uint8Array(0)), x, want, absBound(w, x, T)]);
    } else {
      put([head, i32(0, w.nIn, w.nOut, T, w.groups, fast ? 1 : 0), f32(1e-5), blob(w.q), blob(w.scales), x, want, absBound(w, x, T)]);
    }
  };
  const r = rng(99);
  for (const type of ALL_TYPES) {
    const bs = blockFormat(type).blockSize;
    for (const nb of bs === 256 ? [1, 3, 7] : [1, 3, 17, 33]) {
      const w = rowsMatrix(referenceKernels, type as BlockType, nb * bs, 1 + 2 * (nb % 4), r);
      for (const T of [1, 3, 17]) for (const fast of [false, true]) matmulCase(w, T, fast, r);
    }
  }
  // f16 / bf16 rows in fast mode (float.c's in-place kernels) at lengths that reach every tail: n mod 8 = 7 and
  // n mod 16 = 15 (NEON's 4-value step, AVX2's 8-value one), 4 rows × 3 tokens tiles and their remainders
  for (const type of ['f16', 'bf16'] as const) {
    for (const nIn of [31, 127]) {
      const w = rowsMatrix(referenceKernels, type, nIn, 6, r);
      for (const T of [1, 3, 17]) matmulCase(w, T, true, r);
    }
  }
  for (const [nIn, nOut, groups] of [[64, 31, 2], [256, 70, 8], [96, 33, 3]] as const) {
    const w = xai8Matrix(referenceKernels, nIn, nOut, groups, r);
    // T = 130: past the 128 tokens an xai8 kernel keeps partial sums for at once
    for (const T of nIn === 96 ? [1, 3, 17, 130] : [1, 3, 17]) for (const fast of [false, true]) matmulCase(w, T, fast, r);
  }
  for (const [nHeads, nKV, headDim, pos0, T] of [[6, 2, 32, 9, 4], [8, 2, 33, 0, 5]] as const) {
    const cap = pos0 + T;
    const q = randn(r, T * nHeads * headDim, 2), k = randn(r, cap * nKV * headDim, 2), v = randn(r, cap * nKV * headDim);
    const keyMask = Uint8Array.from({ length: cap }, (_, i) => (i === 1 ? 0 : 1));
    const out = new Float32Array(T * nHeads * headDim);
    attentionReference({ q, kCache: k, vCache: v, keyMask, T, pos0, nHeads, nKV, headDim, scale: 0.125, softcap: 30, out });
    put([Buffer.from('GNC1'), i32(2, T, pos0, nHeads, nKV, headDim), f32(0.125, 30, 1e-5), q, k, v, keyMask, out]);
  }
  // KV caches of every type, exact and fast (flash-decoding over 256-key chunks: 300 and 600 keys cross
  // chunk bounds); |Δ| ≤ 1e-5 of max|v| ≈ 4. Grok-2's attention temperature (length L) on the last three:
  // their queries' positions straddle L (295 within 290…302; 8 within 0…40; 256 within 250…258).
  const KV_IDS = { f32: 0, f16: 1, q8_0: 8 } as const;
  for (const [nHeads, nKV, headDim, pos0, T, L] of [[6, 2, 32, 290, 13, 0], [3, 1, 64, 599, 1, 0], [9, 3, 16, 250, 9, 0],
    [6, 2, 32, 290, 13, 295], [4, 2, 12, 0, 41, 8], [8, 1, 32, 250, 9, 256]] as const) {
    const cap = pos0 + T;
    const q = randn(r, T * nHeads * headDim, 2), kf = randn(r, cap * nKV * headDim, 2), vf = randn(r, cap * nKV * headDim);
    const keyMask = Uint8Array.from({ length: cap }, (_, i) => (i % 256 === 1 ? 0 : 1));
    for (const kvType of ['f32', 'f16', 'q8_0'] as const) {
      if (kvType === 'q8_0' && headDim % 32 !== 0) continue;
      const kCache = kvCache(kvType, kf, headDim), vCache = kvCache(kvType, vf, headDim);
      const out = new Float32Array(T * nHeads * headDim);
      attentionReference({ q, kCache, vCache, kvType, keyMask, T, pos0, nHeads, nKV, headDim, scale: 0.125, softcap: 30, temperatureLen: L, out });
      for (const fast of [0, 1]) {
        put([Buffer.from('GNC1'), i32(4, T, pos0, nHeads, nKV, headDim, KV_IDS[kvType], fast), f32(0.125, 30, 4e-5, L), blob(kCache), blob(vCache), q, keyMask, out]);
      }
    }
  }
  // GELU, both forms (native/gn.h GN_GELU_TANH = 0, GN_GELU_ERF = 1), over [−12, 12]; fast mode's erf form
  // in float32 lanes within its bound, 3e-7·|x| (native/kernels/gelu.c).
  const g = Float32Array.from({ length: 100_000 }, (_, i) => -12 + (24 * i) / 100_000);
  for (const [form, code, fast, tolX] of [['tanh', 0, 0, 0], ['erf', 1, 0, 0], ['erf', 1, 1, 3e-7]] as const) {
    const gw = g.slice();
    geluReference(gw, gw.length, undefined, form);
    put([Buffer.from('GNC1'), i32(3, g.length, code, fast), f32(1e-6, tolX), g, gw]);
  }
  return n;
}

/** Compile the core, every level of isa.c and the driver into one static binary. */
function compile(cc: string, arch: string, out: string): void {
  const objs: string[] = [];
  const obj = path.join(tmp, `obj-${arch}`);
  fs.mkdirSync(obj, { recursive: true });
  const abi = `-I${writeAbiHeader(path.join(obj, 'include'))}`; // the codes from src/kernels/abi.ts, as the build
  const run = (args: string[]) => {
    const r = spawnSync(cc, args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `${cc} ${args.join(' ')}\n${r.stderr}`);
  };
  for (const l of build.LEVELS[arch]!) {
    const o = path.join(obj, `isa-${l.name}.o`);
    run([...build.CFLAGS, abi, ...l.flags, `-DGN_LEVEL=${l.level}`, '-c', path.join(build.NATIVE, 'isa.c'), '-o', o]);
    objs.push(o);
  }
  for (const s of [...build.CORE_SOURCES, 'test/check.c']) {
    const o = path.join(obj, path.basename(s).replace(/\.c$/, '.o'));
    run([...build.CFLAGS, abi, '-c', path.join(build.NATIVE, s), '-o', o]);
    objs.push(o);
  }
  run(['-static', '-o', out, ...objs, '-lpthread', '-lm']);
}

const cases = path.join(tmp, 'cases');
const count = writeCases(cases);

test(`the check driver natively (${process.arch}): the same ${count} reference cases at every level this CPU runs`, { skip: process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch) ? 'Linux x64/arm64 only' : false }, (t) => {
  const bin = path.join(tmp, 'check-native');
  compile(process.env.CC || 'cc', process.arch, bin);
  const r = spawnSync(bin, [cases], { encoding: 'utf8' });
  for (const line of r.stdout.trim().split('\n').slice(-6)) t.diagnostic(line);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /checked levels: scalar/);
  // …and it does compare: one reference output nudged by 1e-3 must fail.
  const bad = path.join(tmp, 'bad');
  fs.mkdirSync(bad);
  const first = fs.readdirSync(cases).sort()[0]!;
  const bytes = fs.readFileSync(path.join(cases, first));
  const nOut = bytes.readInt32LE(16), T = bytes.readInt32LE(20); // after magic, kind, type, n_in
  const lastWant = bytes.length - 4 * T * nOut - 4; // the bounds follow the wanted outputs
  bytes.writeFloatLE(bytes.readFloatLE(lastWant) + 1e-3, lastWant);
  fs.writeFileSync(path.join(bad, first), bytes);
  const f = spawnSync(bin, [bad], { encoding: 'utf8' });
  assert.equal(f.status, 1, f.stdout);
  assert.match(f.stdout, /FAILED/);
});

const cross = 'aarch64-linux-gnu-gcc', qemu = 'qemu-aarch64';
const absent = [cross, qemu].filter((c) => !has(c));
if (absent.length > 0 && process.env.CI === 'true') throw new Error(`CI: ${absent.join(' and ')} missing: the aarch64 NEON kernels cannot be cross-checked (apt-get install gcc-aarch64-linux-gnu qemu-user)`);
const armSkip = absent.length > 0 ? `NOT cross-checked: aarch64 NEON/dotprod kernels (${absent.join(' and ')} not installed)` : false;

test(`aarch64 under qemu (-cpu max): scalar, NEON and NEON dotprod kernels on ${count} reference cases`, { skip: armSkip }, (t) => {
  const bin = path.join(tmp, 'check-aarch64');
  compile(cross, 'arm64', bin);
  const r = spawnSync(qemu, ['-cpu', 'max', bin, cases], { encoding: 'utf8', timeout: 600_000 });
  for (const line of r.stdout.trim().split('\n').slice(-6)) t.diagnostic(line);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /cpu features: neon dotprod/);
  assert.match(r.stdout, /checked levels: scalar neon neon_dot$/m);
});
