/**
 * The one line said before loading: whether the weights fit in the memory this process may use, page
 * from disk (mapped weights), or cannot load (copied weights). Sizes are set by hand here.
 * The memory available: MemAvailable lowered by the process's own cgroup, read from fake /proc + /sys trees
 * (v2, nested v2, 'max', v1, missing files); a copied model that cannot fit is refused before reading.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ModelTooLargeError } from '../src/base/errors.js';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import { loadNativeAddon } from '../src/kernels/native.js';
import { referenceKernels } from '../src/kernels/reference.js';
import { loadModel } from '../src/model/loader.js';
import { availableMemory, cgroupLimit, memoryAvailability, memoryPlan, type MemoryPlan } from '../src/model/memory.js';
import { fixtureDir } from './fixtures.js';

const GiB = 2 ** 30;

test('fits / pages from disk / will not fit without mmap', () => {
  assert.equal(memoryPlan(10 * GiB, false, 20 * GiB).verdict, 'fits');
  assert.equal(memoryPlan(10 * GiB, true, 20 * GiB).verdict, 'fits');
  const paged = memoryPlan(318 * GiB, true, 24 * GiB);
  assert.equal(paged.verdict, 'pages');
  assert.match(paged.message, /^the weights need 318\.0 GiB; 24\.0 GiB of memory is available: the file is mapped, so it runs, but .* read from disk again at every token/);
  const no = memoryPlan(318 * GiB, false, 24 * GiB);
  assert.equal(no.verdict, 'too-large');
  assert.match(no.message, /the weights would be copied into memory \(--no-mmap, or kernels that cannot map files\), so loading would fail; use --mmap with the native backend \(mapped weights, paged from disk\) or a smaller quantisation/);
  // room is kept beside the weights: exactly equal is not "fits"
  assert.equal(memoryPlan(20 * GiB, false, 20 * GiB).verdict, 'too-large');
});

test('available memory is a positive number no larger than the machine', async () => {
  const os = await import('node:os');
  const a = availableMemory();
  assert.ok(a > 0 && a <= os.totalmem(), `${a}`);
});

const MiB = 2 ** 20;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-memory-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let roots = 0;

/** A fake root: files by path relative to it (/proc/meminfo says 16 GiB available unless given). */
function fakeRoot(files: Record<string, string>): string {
  const root = path.join(tmp, `root${roots++}`);
  for (const [rel, text] of Object.entries({ 'proc/meminfo': `MemTotal: 33554432 kB\nMemAvailable: ${16 * 1024 * 1024} kB\n`, ...files })) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

test('cgroup v2: the limit of the process\'s own cgroup less its usage (inactive file pages count as free)', () => {
  const root = fakeRoot({
    'proc/self/cgroup': '0::/user.slice/job.scope\n',
    'sys/fs/cgroup/memory.max': 'max\n', // the root of the tree (in a container: its own cgroup) is unlimited
    'sys/fs/cgroup/user.slice/job.scope/memory.max': `${4 * GiB}\n`,
    'sys/fs/cgroup/user.slice/job.scope/memory.current': `${1 * GiB}\n`,
    'sys/fs/cgroup/user.slice/job.scope/memory.stat': `anon 100\nfile ${600 * MiB}\ninactive_file ${512 * MiB}\nactive_file 0\n`,
  });
  assert.deepEqual(cgroupLimit(root), { version: 2, cgroup: '/user.slice/job.scope', limitBytes: 4 * GiB, usageBytes: GiB, roomBytes: 3.5 * GiB });
  const a = memoryAvailability(root);
  assert.equal(a.bytes, 3.5 * GiB);
  assert.equal(a.memAvailableBytes, 16 * GiB);
  // the memory line says where the figure comes from
  assert.match(memoryPlan(8 * GiB, false, a).message, /^the weights need 8\.0 GiB; 3\.5 GiB of memory is available \(cgroup v2 \/user\.slice\/job\.scope: limit 4\.0 GiB, 1\.0 GiB in use\): the weights would be copied/);
  assert.equal(memoryPlan(8 * GiB, true, a).verdict, 'pages');
});

test('cgroup v2 nested: a parent\'s smaller room binds; levels with no memory.max are skipped', () => {
  const root = fakeRoot({
    'proc/self/cgroup': '0::/a/b/c\n',
    'sys/fs/cgroup/a/memory.max': `${6 * GiB}\n`,
    'sys/fs/cgroup/a/memory.current': `${5 * GiB}\n`, // siblings of b use most of a
    'sys/fs/cgroup/a/b/memory.max': 'max\n',
    'sys/fs/cgroup/a/b/c/memory.max': `${4 * GiB}\n`,
    'sys/fs/cgroup/a/b/c/memory.current': `${512 * MiB}\n`,
  });
  assert.deepEqual(cgroupLimit(root), { version: 2, cgroup: '/a', limitBytes: 6 * GiB, usageBytes: 5 * GiB, roomBytes: GiB });
  assert.equal(availableMemory(root), GiB);
});

test('cgroup v2 "max" everywhere, or no cgroup files at all: MemAvailable', () => {
  const unlimited = fakeRoot({ 'proc/self/cgroup': '0::/x\n', 'sys/fs/cgroup/x/memory.max': 'max\n', 'sys/fs/cgroup/x/memory.current': '12345\n' });
  assert.equal(cgroupLimit(unlimited), undefined);
  assert.equal(availableMemory(unlimited), 16 * GiB);
  const bare = fakeRoot({}); // no /proc/self/cgroup, no /sys
  assert.equal(cgroupLimit(bare), undefined);
  assert.equal(availableMemory(bare), 16 * GiB);
  const gone = fakeRoot({ 'proc/self/cgroup': '0::/not/here\n' }); // the cgroup's folder is not visible
  assert.equal(cgroupLimit(gone), undefined);
  const garbage = fakeRoot({ 'proc/self/cgroup': '0::/x\n', 'sys/fs/cgroup/x/memory.max': 'lots\n' });
  assert.equal(cgroupLimit(garbage), undefined);
  // a limit above the machine's free memory: MemAvailable is the smaller
  const loose = fakeRoot({ 'proc/self/cgroup': '0::/x\n', 'sys/fs/cgroup/x/memory.max': `${64 * GiB}\n`, 'sys/fs/cgroup/x/memory.current': '0\n' });
  assert.equal(availableMemory(loose), 16 * GiB);
});

test('cgroup v1: the memory controller\'s limit_in_bytes (the unlimited 2^63 page-rounded value is none)', () => {
  const root = fakeRoot({
    'proc/self/cgroup': '12:pids:/docker/abc\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n',
    'sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n',
    'sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes': `${4 * GiB}\n`,
    'sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes': `${3 * GiB}\n`,
    'sys/fs/cgroup/memory/docker/abc/memory.stat': `cache 0\ntotal_inactive_file ${256 * MiB}\n`,
  });
  assert.deepEqual(cgroupLimit(root), { version: 1, cgroup: '/docker/abc', limitBytes: 4 * GiB, usageBytes: 3 * GiB, roomBytes: 1.25 * GiB });
  const unlimited = fakeRoot({ 'proc/self/cgroup': '4:memory:/\n', 'sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n' });
  assert.equal(cgroupLimit(unlimited), undefined);
});

test('a copied model that cannot fit is refused before a byte is read, naming the sizes and --mmap; a mapped one loads', async () => {
  const file = path.join(fixtureDir('tiny-a'), 'model.gguf');
  const tight = memoryAvailability(fakeRoot({ 'proc/self/cgroup': '0::/x\n', 'sys/fs/cgroup/x/memory.max': `${256 * MiB}\n`, 'sys/fs/cgroup/x/memory.current': `${256 * MiB - 65536}\n` }));
  let plan: MemoryPlan | undefined;
  let progress = 0;
  await assert.rejects(loadModel(file, { kernels: referenceKernels, memory: tight, onMemoryPlan: (p) => { plan = p; }, onProgress: () => { progress++; } }), (e: Error) =>
    e instanceof ModelTooLargeError && e.message.startsWith(`${file}: the weights need `) && / MiB; 64\.0 KiB of memory is available \(cgroup v2 \/x: limit 256\.0 MiB, 255\.9 MiB in use\): the weights would be copied/.test(e.message) && /use --mmap/.test(e.message));
  assert.equal(plan?.verdict, 'too-large');
  assert.equal(progress, 0, 'nothing was read');
  if ('error' in loadNativeAddon()) return;
  // --no-mmap copies: refused; --mmap maps: the plan says it pages, and it loads.
  const copying = createKernels({ kernels: 'native', mmap: false, threads: 1 });
  await assert.rejects(loadModel(file, { kernels: copying, memory: tight }), ModelTooLargeError);
  const mapping = createKernels({ kernels: 'native', mmap: true, threads: 1 });
  const { model } = await loadModel(file, { kernels: mapping, memory: tight, onMemoryPlan: (p) => { plan = p; } });
  assert.equal(plan?.verdict, 'pages');
  assert.equal(plan?.mapped, true);
  model.close();
  closeKernels(copying);
  closeKernels(mapping);
});
