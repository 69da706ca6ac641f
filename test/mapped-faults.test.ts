/**
 * Faults on the mapped-weights path (issue 20, item 7), each against something not computed here (the
 * fixtures' golden logits, /proc/self/maps):
 * - a file replaced by an atomic `mv` at the same path is mapped afresh on reload (the golden logits of
 *   the new file), while the model loaded before keeps the old bytes (its own golden logits);
 * - Grok.close() unmaps the file at once (/proc/self/maps no longer lists it), reference-counted when
 *   several models share one kernel set;
 * - a file truncated or rewritten in place fails the next forward pass / request with an error naming the
 *   file and what changed, instead of SIGBUS; the background populate thread stops quietly on a shrunk file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadModel as loadGrok } from '../src/api/index.js';
import { loadNativeAddon, NativeKernels, type NativeKernelOptions } from '../src/kernels/native.js';
import type { GrokModel } from '../src/model/grok.js';
import { loadModel } from '../src/model/loader.js';
import { fixtureDir, golden, goldenLogits, maxAbsDiff } from './fixtures.js';

const loaded = loadNativeAddon();
const missing = 'error' in loaded ? loaded.error : undefined;
if (missing && process.env.CI === 'true') throw new Error(`CI: the native addon must load: ${missing}`);
const skip = missing ? `native addon unavailable: ${missing}` : process.platform !== 'linux' ? 'needs /proc/self/maps' : false;

const made: NativeKernels[] = [];
function native(opts: NativeKernelOptions = {}): NativeKernels {
  if ('error' in loaded) throw new Error(loaded.error);
  const k = new NativeKernels(loaded.addon, { threads: 2, mmap: true, mode: 'exact', ...opts });
  made.push(k);
  return k;
}
// realpath: /proc/self/maps names the file by its resolved path.
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'grok-faults-')));
after(() => {
  made.forEach((k) => k.close());
  fs.rmSync(tmp, { recursive: true, force: true });
});

const A = path.join(fixtureDir('tiny-a'), 'model.gguf');
const B = path.join(fixtureDir('tiny-b'), 'model.gguf');

/** A fresh copy of a fixture under tmp. */
function copy(src: string, name: string): string {
  const f = path.join(tmp, name);
  fs.copyFileSync(src, f);
  return f;
}

/** max |Δ| of the model's logits for the fixture's golden tokens against its golden logits. */
function delta(model: GrokModel, fixture: 'tiny-a' | 'tiny-b'): number {
  const g = golden(fixture);
  return maxAbsDiff(model.forward([{ tokens: g.tokens, cache: model.newCache() }]), goldenLogits(fixture));
}

/** Lines of /proc/self/maps that map `file`. */
function mapsOf(file: string): string[] {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(` ${file}`) || l.endsWith(` ${file} (deleted)`));
}

test('reload after an atomic mv over the path: the new file gets its own mapping; the old model keeps its bytes', { skip }, async () => {
  const k = native();
  const f = copy(A, 'mv.gguf');
  const { model: first } = await loadModel(f, { kernels: k });
  assert.ok(delta(first, 'tiny-a') < 1e-4, 'tiny-a before the mv');
  const next = copy(B, 'mv.gguf.tmp');
  fs.renameSync(next, f); // what `mv new.gguf model.gguf` does
  const { model: second } = await loadModel(f, { kernels: k });
  const d = delta(second, 'tiny-b');
  assert.ok(d < 1e-4, `the reloaded model reads tiny-b's bytes (max |Δlogit| = ${d})`);
  assert.ok(delta(first, 'tiny-a') < 1e-4, 'the model loaded before the mv still reads the old file');
  first.close();
  assert.equal(mapsOf(f).length, 1, 'only the new file stays mapped');
  second.close();
  assert.equal(mapsOf(f).length, 0);
});

test('Grok.close() unmaps the model file at once, not at garbage collection', { skip }, async () => {
  const f = copy(A, 'close.gguf');
  const live = native().liveMappings();
  const grok = await loadGrok(f, { kernelOptions: { kernels: 'native', mmap: true, threads: 2, mode: 'exact' } });
  assert.ok(mapsOf(f).length > 0, 'mapped while loaded');
  assert.ok(delta(grok.model, 'tiny-a') < 1e-4);
  await grok.close();
  assert.deepEqual(mapsOf(f), [], '/proc/self/maps no longer lists the file');
  assert.equal(native().liveMappings(), live, "the addon's count of open mappings is back where it was");
});

test('models sharing one kernel set share a mapping; it goes when the last of them is closed', { skip }, async () => {
  const f = copy(A, 'shared.gguf');
  const k = native();
  const g1 = await loadGrok(f, { kernels: k });
  const g2 = await loadGrok(f, { kernels: k });
  assert.equal(mapsOf(f).length, 1, 'one mapping for both');
  await g1.close();
  assert.equal(mapsOf(f).length, 1, 'still mapped for the second model');
  assert.ok(delta(g2.model, 'tiny-a') < 1e-4, 'the second model still reads its weights');
  await g2.close();
  assert.deepEqual(mapsOf(f), []);
  // The kernels were the caller's: still usable for another load.
  const g3 = await loadGrok(f, { kernels: k });
  assert.ok(delta(g3.model, 'tiny-a') < 1e-4);
  await g3.close();
});

test('a file truncated in place fails the next forward pass with an error naming it (no SIGBUS)', { skip }, async () => {
  const f = copy(A, 'truncated.gguf');
  const size = fs.statSync(f).size;
  const { model } = await loadModel(f, { kernels: native() });
  assert.ok(delta(model, 'tiny-a') < 1e-4);
  fs.truncateSync(f, Math.floor(size / 2));
  assert.throws(() => delta(model, 'tiny-a'), (e: Error) => e.name === 'ModelFileChangedError'
    && e.message === `the model file ${f} changed on disk since it was loaded (size ${size} → ${Math.floor(size / 2)} bytes); reload the model`);
  model.close();
});

test('a file rewritten in place (cp over it, same size) fails the request through the API, and the server process lives on', { skip }, async () => {
  const f = copy(A, 'rewritten.gguf');
  const grok = await loadGrok(f, { kernels: native() });
  const g = golden('tiny-a');
  const first = await grok.complete(g.tokens, { maxTokens: 2, temperature: 0 });
  assert.equal(first.tokens.length, 2);
  const bytes = fs.readFileSync(f);
  bytes[bytes.length - 1] ^= 0xff;
  await new Promise((r) => setTimeout(r, 20)); // a later modification time, even on coarse clocks
  fs.writeFileSync(f, bytes); // O_TRUNC, then write: the same inode, as `cp new.gguf model.gguf`
  await assert.rejects(grok.complete(g.tokens, { maxTokens: 2 }), (e: Error) => e.name === 'ModelFileChangedError'
    && e.message.startsWith(`the model file ${f} changed on disk since it was loaded (rewritten in place: same size`));
  await grok.close();
  // A fresh load of the rewritten file works (and sees the new bytes).
  const again = await loadGrok(f, { kernels: native() });
  assert.equal((await again.complete(g.tokens, { maxTokens: 1 })).tokens.length, 1);
  await again.close();
});

test('the background populate thread stops quietly when the mapped file shrinks', { skip }, async () => {
  const k = native({ populate: true });
  const f = path.join(tmp, 'populate.bin');
  const size = 96 << 20;
  fs.writeFileSync(f, Buffer.alloc(size, 1));
  const maps = k.mapWeights();
  assert.equal(maps.map(f, 0, size)!.length, size); // queues a populate of the whole file
  fs.truncateSync(f, 4096);
  await new Promise((r) => setTimeout(r, 400)); // the populate thread runs while this one sleeps
  assert.throws(() => maps.check(), /changed on disk since it was loaded \(size 100663296 → 4096 bytes\)/);
  maps.release();
  assert.deepEqual(mapsOf(f), []);
});

test('grok serve: a model file truncated under the server fails the request with a 500 naming the file; the server lives on', { skip }, async () => {
  const { createServer } = await import('../src/api/server.js');
  const { Grok } = await import('../src/api/index.js');
  const { testTokenizer } = await import('./engine-helpers.js');
  const f = copy(A, 'served.gguf');
  const { model } = await loadModel(f, { kernels: native({ mode: 'fast' }) });
  const grok = new Grok(f, model, testTokenizer(model.config.vocabSize), 0);
  const server = createServer(grok, { modelId: 'tiny-a' });
  try {
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    const complete = async () => {
      const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny-a', prompt: 'hello', max_tokens: 2 }) });
      return { status: r.status, json: await r.json() as { error?: { message: string } } };
    };
    assert.equal((await complete()).status, 200);
    const size = fs.statSync(f).size;
    fs.truncateSync(f, 1000);
    const failed = await complete();
    assert.equal(failed.status, 500);
    assert.equal(failed.json.error?.message, `generation failed: the model file ${f} changed on disk since it was loaded (size ${size} → 1000 bytes); reload the model`);
    assert.equal((await complete()).status, 500, 'and the next one too: the server answers');
  } finally {
    await server.close(0);
  }
});
