/**
 * The default thread count and --cpu-affinity's CPU choice (src/kernels/cpus.ts) on a made-up sysfs:
 * one thread per physical core among the CPUs the process may use, SMT siblings not counted; the
 * kernel's cpu-list format; the fallback where the topology is unknown. Then the real machine: pinning
 * the native threads keeps results bit-identical.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os, { availableParallelism } from 'node:os';
import path from 'node:path';
import { allowedCpus, defaultThreads, parseCpuList, physicalCoreCpus } from '../src/kernels/cpus.js';
import { loadNativeAddon, NativeKernels } from '../src/kernels/native.js';
import { bytesOf, randn, rng, rowsMatrix } from './kernel-checks.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-cpus-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** A fake root: /proc/self/status with `allowed`, and per CPU its thread_siblings_list. */
function fakeRoot(name: string, allowed: string, siblings: Record<number, string>): string {
  const root = path.join(tmp, name);
  fs.mkdirSync(path.join(root, 'proc/self'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc/self/status'), `Name:\tnode\nCpus_allowed:\tff\nCpus_allowed_list:\t${allowed}\nMems_allowed_list:\t0\n`);
  for (const [cpu, list] of Object.entries(siblings)) {
    const d = path.join(root, `sys/devices/system/cpu/cpu${cpu}/topology`);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'thread_siblings_list'), `${list}\n`);
  }
  return root;
}

test('parseCpuList reads the kernel\'s cpu-list format and rejects anything else', () => {
  assert.deepEqual(parseCpuList('0-3,8,10-11\n'), [0, 1, 2, 3, 8, 10, 11]);
  assert.deepEqual(parseCpuList('5'), [5]);
  assert.deepEqual(parseCpuList('3,1,1-2'), [1, 2, 3]);
  for (const bad of ['', '3-1', 'a', '1,,2', '0x3', '-1']) assert.equal(parseCpuList(bad), null, bad);
});

test('physical cores: one CPU per SMT sibling set among the allowed CPUs; fallbacks', () => {
  // 4 cores × 2 threads, siblings numbered n and n+4 (the usual Linux x86 numbering)
  const sib = (c: number) => `${c % 4},${(c % 4) + 4}`;
  const all = fakeRoot('smt', '0-7', Object.fromEntries([0, 1, 2, 3, 4, 5, 6, 7].map((c) => [c, sib(c)])));
  assert.deepEqual(allowedCpus(all), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(physicalCoreCpus(all), [0, 1, 2, 3]);
  assert.equal(defaultThreads(all), Math.min(4, availableParallelism()));
  // affinity to CPUs 2, 5, 6, 7: cores 2 (via 2), 1 (via 5), 2 again (6 is 2's sibling), 3 (via 7)
  const some = fakeRoot('subset', '2,5-7', Object.fromEntries([0, 1, 2, 3, 4, 5, 6, 7].map((c) => [c, sib(c)])));
  assert.deepEqual(physicalCoreCpus(some), [2, 5, 7]);
  // no SMT: every CPU is a core
  const plain = fakeRoot('nosmt', '0-2', { 0: '0', 1: '1', 2: '2' });
  assert.deepEqual(physicalCoreCpus(plain), [0, 1, 2]);
  // topology missing: unknown, and the default falls back to availableParallelism()
  const bare = fakeRoot('bare', '0-3', {});
  assert.equal(physicalCoreCpus(bare), null);
  assert.equal(defaultThreads(bare), availableParallelism());
  assert.equal(allowedCpus(path.join(tmp, 'nothing')), null);
});

const native = loadNativeAddon();
test('cpuAffinity pins the native threads (Linux) and leaves results bit-identical; bad CPU lists are rejected', { skip: 'error' in native ? `native addon unavailable: ${native.error}` : process.platform !== 'linux' ? 'Linux only' : false }, () => {
  if ('error' in native) return;
  const free = new NativeKernels(native.addon, { threads: 3, mode: 'fast' });
  const cpus = allowedCpus() ?? [0];
  const pinned = new NativeKernels(native.addon, { threads: 3, mode: 'fast', cpuAffinity: cpus });
  const cores = new NativeKernels(native.addon, { threads: 2, mode: 'fast', cpuAffinity: true });
  try {
    const r = rng(1);
    const w = rowsMatrix(free, 'q8_0', 1024, 301, r);
    const x = randn(r, 17 * 1024);
    const ys = [free, pinned, cores].map((k) => {
      const y = new Float32Array(17 * 301);
      k.matmul(w, x, 17, y);
      return bytesOf(y);
    });
    assert.ok(ys[1]!.equals(ys[0]!) && ys[2]!.equals(ys[0]!));
    assert.throws(() => new NativeKernels(native.addon, { threads: 1, cpuAffinity: [-1] }), /cpuAffinity/);
  } finally {
    for (const k of [free, pinned, cores]) k.close();
  }
});
