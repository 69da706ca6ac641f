#!/usr/bin/env node
/**
 * Builds the native kernel addon (native/ → dist/native/grok-native.node) with the system C compiler:
 * C11, one object per instruction-set level from native/isa.c (each with its own -m flags; the rest of
 * the addon with none, so it loads on any CPU of the architecture), Node-API headers from the
 * `node-api-headers` package or Node's own include directory. No node-gyp, no download.
 *
 * Never fails the install: without a compiler or headers, or when compiling fails, it prints one line
 * saying so and exits 0 — createKernels() then uses the WebAssembly kernels. `--strict` (CI) exits 1.
 *
 *   node scripts/build-native.mjs [--strict] [--out DIR]
 *
 * Also imported by test/native-arm.test.ts for the same source list and flags (cross builds).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ABI_TS, writeAbiHeader } from './abi-header.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const NATIVE = path.join(ROOT, 'native');

/** Levels compiled from isa.c per architecture: name, GN_LEVEL value, extra flags. */
export const LEVELS = {
  x64: [
    { name: 'scalar', level: 0, flags: [] },
    { name: 'avx2', level: 1, flags: ['-mavx2', '-mfma', '-mf16c'] },
    { name: 'avx512', level: 2, flags: ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512vnni'] },
  ],
  arm64: [
    { name: 'scalar', level: 0, flags: [] },
    { name: 'neon', level: 3, flags: [] },
    { name: 'neon_dot', level: 4, flags: ['-march=armv8.2-a+dotprod'] },
  ],
};

/** The core (no Node-API): what the test driver links too. */
export const CORE_SOURCES = ['core.c', 'cpu.c', 'pool.c', 'map.c', 'io.c', 'quantize.c'];
export const CFLAGS = ['-std=c11', '-O3', '-fPIC', '-ffp-contract=off', '-fno-strict-aliasing', '-Wall', '-Wextra', '-Werror=implicit-function-declaration'];

/** Node-API headers: the registry package `node-api-headers`, else the running Node's include dir. */
export function nodeApiInclude() {
  const candidates = [];
  try {
    const req = createRequire(path.join(ROOT, 'package.json'));
    candidates.push(path.join(path.dirname(req.resolve('node-api-headers/package.json')), 'include'));
  } catch { /* not installed */ }
  candidates.push(path.resolve(path.dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node');
  return candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
}

/** Every file the build reads (for the up-to-date check). */
function sourceFiles() {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) { if (e.name !== 'test') walk(p); } else if (/\.[ch]$/.test(e.name)) out.push(p);
    }
  };
  walk(NATIVE);
  return out.sort();
}

function run(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', (e) => resolve({ ok: false, err: e.message }));
    p.on('close', (code) => resolve({ ok: code === 0, err }));
  });
}

/** Run compile jobs two at a time (os.availableParallelism bounded); reject with the first error. */
async function runAll(jobs) {
  const width = Math.max(1, Math.min(4, os.availableParallelism()));
  let next = 0;
  let failure;
  const lane = async () => {
    while (next < jobs.length && !failure) {
      const [cmd, args] = jobs[next++];
      const r = await run(cmd, args);
      if (!r.ok) failure = `${cmd} ${args.join(' ')}\n${r.err.trim()}`;
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
  if (failure) throw new Error(failure);
}

export function compilerFor(arch = process.arch) {
  return process.env.CC || (arch === process.arch ? 'cc' : undefined);
}

/** Compile the addon; returns the .node path. Throws with the compiler's message on failure. */
export async function buildAddon({ outDir = path.join(ROOT, 'dist', 'native'), cc = compilerFor() } = {}) {
  const levels = LEVELS[process.arch];
  if (!levels) throw new Error(`no kernel levels for architecture ${process.arch}`);
  if (process.platform === 'win32') throw new Error('the native backend builds on Linux and macOS only');
  const include = nodeApiInclude();
  if (!include) throw new Error('no Node-API headers (install node-api-headers, or Node with its include directory)');
  if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error(`no C compiler (${cc})`);
  const out = path.join(outDir, 'grok-native.node');
  const stamp = path.join(outDir, 'build.json');
  const hash = createHash('sha256');
  hash.update(JSON.stringify([cc, CFLAGS, levels, include, process.arch, process.platform]));
  for (const f of [...sourceFiles(), ABI_TS]) hash.update(f).update(fs.readFileSync(f));
  const digest = hash.digest('hex');
  try {
    if (fs.existsSync(out) && JSON.parse(fs.readFileSync(stamp, 'utf8')).digest === digest) return out;
  } catch { /* rebuild */ }
  const obj = path.join(outDir, 'obj');
  fs.mkdirSync(obj, { recursive: true });
  const abi = `-I${writeAbiHeader(path.join(outDir, 'include'))}`; // the codes native/gn.h takes from abi.ts
  const jobs = [];
  const objects = [];
  for (const l of levels) {
    const o = path.join(obj, `isa-${l.name}.o`);
    jobs.push([cc, [...CFLAGS, abi, ...l.flags, `-DGN_LEVEL=${l.level}`, '-c', path.join(NATIVE, 'isa.c'), '-o', o]]);
    objects.push(o);
  }
  for (const s of [...CORE_SOURCES, 'addon.c']) {
    const o = path.join(obj, s.replace(/\.c$/, '.o'));
    jobs.push([cc, [...CFLAGS, abi, `-I${include}`, '-c', path.join(NATIVE, s), '-o', o]]);
    objects.push(o);
  }
  await runAll(jobs);
  const link = process.platform === 'darwin' ? ['-bundle', '-undefined', 'dynamic_lookup'] : ['-shared'];
  const tmp = `${out}.tmp`;
  await runAll([[cc, [...link, '-o', tmp, ...objects, '-lpthread', '-lm']]]);
  fs.renameSync(tmp, out); // atomic: a process loading the old file keeps its own copy
  fs.writeFileSync(stamp, JSON.stringify({ digest, cc, levels: levels.map((l) => l.name), include }, null, 1));
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const strict = process.argv.includes('--strict');
  const i = process.argv.indexOf('--out');
  try {
    await buildAddon(i > 0 ? { outDir: path.resolve(process.argv[i + 1]) } : {});
  } catch (e) {
    const first = String(e.message).split('\n')[0];
    console.warn(`grok: native kernels not built (${first}); the WebAssembly kernels will be used`);
    if (strict) {
      console.error(e.message);
      process.exit(1);
    }
  }
}
