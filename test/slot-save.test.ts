/**
 * Saving the prefix cache's rows of a prompt to disk and restoring them (src/api/slots.ts,
 * src/model/kv-file.ts, `grok serve --slot-save-path`): a restored prefix continues with exactly the
 * logits of a fresh prefill (exact kernels, f32 and f16 caches), across separately loaded models and from
 * the worker thread to this one; a file of another model, another KV type, a truncated or edited file is
 * refused with a message naming what is wrong; the HTTP routes, with the official client for the rest.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Grok, loadModel as loadText, SlotError } from '../src/api/index.js';
import { loadModelInWorker } from '../src/api/worker/client.js';
import { loadModel } from '../src/model/loader.js';
import { KVCache, type GrokModel } from '../src/model/grok.js';
import { decodeKVFile } from '../src/model/kv-file.js';
import { kvFileModel } from '../src/api/slots.js';
import type { KVType } from '../src/kernels/types.js';
import type { GrokServer } from '../src/api/server.js';
import { fixtureDir, golden, testTokenizer } from './engine-helpers.js';
import { MODEL, startServer } from './server-helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-slots-'));
const servers: GrokServer[] = [];
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const s of servers) await s.close(0);
  for (const c of closers) await c();
  fs.rmSync(dir, { recursive: true, force: true });
});

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const fixture = (name: string, kvType: KVType = 'f32') => loadModel(path.join(fixtureDir(name), 'ckpt-0'), { kvType }).then((r) => r.model);
const textModel = (model: GrokModel, name = 'tiny-a') => new Grok(path.join(fixtureDir(name), 'ckpt-0'), model, testTokenizer(model.config.vocabSize), 0, { prefixCacheBytes: 1 << 22, prefillChunk: 16 });

test('a saved prefix restored into a separately loaded model continues with the logits of a fresh prefill, bit for bit (f32 and f16 caches)', async () => {
  const P = golden('tiny-a').tokens;
  const Q = [7, 11, 13, 17, 19];
  for (const kvType of ['f32', 'f16'] as KVType[]) {
    const a = textModel(await fixture('tiny-a', kvType));
    for await (const _ of a.generate(P, { maxTokens: 1, temperature: 0 })) { /* prefill P: now cached */ }
    const file = path.join(dir, `p-${kvType}.kv`);
    const saved = await a.saveSlot([...P, ...Q], file); // the longest cached prefix: P
    assert.equal(saved.tokens, P.length);
    assert.equal(saved.bytes, fs.statSync(file).size);
    // A second model instance, loaded on its own: the file's rows, then Q, against P then Q computed afresh.
    const model = await fixture('tiny-a', kvType);
    const { tokens, rows } = decodeKVFile(fs.readFileSync(file), kvFileModel(model, a.path), 'p.kv');
    assert.deepEqual(tokens, P);
    const restored = new KVCache(model.config, P.length + Q.length, 0, kvType);
    restored.importRows(rows, rows.length);
    const fresh = new KVCache(model.config, P.length + Q.length, 0, kvType);
    for (let i = 0; i < P.length; i += 16) model.forward([{ tokens: P.slice(i, i + 16), cache: fresh }], { lastOnly: true });
    const want = model.forward([{ tokens: Q, cache: fresh }]);
    const got = model.forward([{ tokens: Q, cache: restored }]);
    assert.ok(bytes(got).equals(bytes(want)), `${kvType}: logits after the restored prefix differ from a fresh prefill`);
    // Through the engine: the restored prefix is a cache hit and the tokens are those computed without it.
    const b = textModel(model);
    assert.deepEqual(await b.restoreSlot(file), { tokens: P.length });
    const c = textModel(await fixture('tiny-a', kvType));
    const run = async (g: Grok) => { const r = await g.complete([...P, ...Q], { maxTokens: 6, temperature: 0, ignoreEos: true }); return r; };
    const [withFile, without] = [await run(b), await run(c)];
    assert.equal(withFile.usage.cachedTokens, P.length);
    assert.equal(without.usage.cachedTokens, 0);
    assert.deepEqual(withFile.tokens, without.tokens);
    for (const g of [a, b, c]) await g.close();
  }
});

test('a KV file is untrusted: another model, another KV type, a cut, padded or edited file is refused, naming what is wrong', async () => {
  const P = golden('tiny-a').tokens;
  const a = textModel(await fixture('tiny-a'));
  for await (const _ of a.generate(P, { maxTokens: 1, temperature: 0 })) { /* cache P */ }
  const file = path.join(dir, 'good.kv');
  await a.saveSlot(P, file);
  const good = fs.readFileSync(file);
  await assert.rejects(a.saveSlot([1, 2, 3], path.join(dir, 'none.kv')), (e: unknown) => e instanceof SlotError && /nothing of this prompt is in the prefix cache/.test(e.message));
  const model = await fixture('tiny-a');
  const expect = kvFileModel(model, a.path);
  const read = (buf: Buffer) => decodeKVFile(buf, expect, 'x.kv');
  assert.doesNotThrow(() => read(good));
  const other = await fixture('tiny-b');
  assert.throws(() => decodeKVFile(good, kvFileModel(other, path.join(fixtureDir('tiny-b'), 'ckpt-0')), 'x.kv'), /x\.kv: saved by model 'tiny-a\/ckpt-0#[0-9a-f]{16}', this is 'tiny-b\/ckpt-0#[0-9a-f]{16}'/);
  const f16 = kvFileModel(await fixture('tiny-a', 'f16'), a.path);
  assert.throws(() => decodeKVFile(good, f16, 'x.kv'), /its KV cache type is f32, this server's is f16/);
  assert.throws(() => read(good.subarray(0, good.length - 1)), /x\.kv: \d+ bytes, but \d+ tokens of 2 layers make \d+ \(truncated or padded\)/);
  assert.throws(() => read(Buffer.concat([good, Buffer.alloc(1)])), /truncated or padded/);
  assert.throws(() => read(Buffer.from('not a kv file at all')), /not a grok-ts KV file/);
  const hLen = good.readUInt32LE(8);
  const withHeader = (edit: (h: Record<string, unknown>) => void) => {
    const h = JSON.parse(good.subarray(12, 12 + hLen).toString()) as Record<string, unknown>;
    edit(h);
    const json = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length);
    return Buffer.concat([good.subarray(0, 8), len, json, good.subarray(12 + hLen)]);
  };
  assert.throws(() => read(withHeader((h) => { h.tokens = 2 ** 40; })), /header field tokens: 1099511627776, expected 1…\d+/);
  assert.throws(() => read(withHeader((h) => { h.tokens = (h.tokens as number) - 1; })), /truncated or padded/);
  assert.throws(() => read(withHeader((h) => { h.stride = 3; })), /header field stride: 3/);
  assert.throws(() => read(withHeader((h) => { h.kvType = 'q3'; })), /header field kvType: 'q3' is not a KV type/);
  const bigHeader = Buffer.from(good);
  bigHeader.writeUInt32LE(0xffffffff, 8);
  assert.throws(() => read(bigHeader), /a header of 4294967295 bytes does not fit in a file of \d+/);
  const badToken = Buffer.from(good);
  badToken.writeUInt32LE(model.config.vocabSize, 12 + hLen);
  assert.throws(() => read(badToken), new RegExp(`token 0 is ${model.config.vocabSize}, outside the vocabulary`));
  // restoreSlot says the same as a SlotError (a 400 for the server).
  fs.writeFileSync(path.join(dir, 'cut.kv'), good.subarray(0, good.length - 10));
  await assert.rejects(a.restoreSlot(path.join(dir, 'cut.kv')), (e: unknown) => e instanceof SlotError && /cut\.kv: .*truncated or padded/.test(e.message));
  await assert.rejects(a.restoreSlot(path.join(dir, 'missing.kv')), (e: unknown) => e instanceof SlotError && /missing\.kv: cannot read it: ENOENT/.test(e.message));
  await a.close();
});

test('the model in a worker thread saves; an in-thread model of the same file restores it (the default model)', async () => {
  const w = await loadModelInWorker(undefined, { prefixCacheBytes: 1 << 22, prefillChunk: 32 });
  closers.push(() => w.close());
  const prompt = w.encode('And God said, Let there be light: and there was light. And God saw the light, that it was good');
  await w.complete(prompt, { maxTokens: 1, temperature: 0 });
  const file = path.join(dir, 'worker.kv');
  assert.equal((await w.saveSlot(prompt, file)).tokens, prompt.length);
  const t = await loadText(undefined, { prefixCacheBytes: 1 << 22 });
  closers.push(() => t.close());
  assert.deepEqual(await t.restoreSlot(file), { tokens: prompt.length });
  const [x, y] = [await t.complete([...prompt, 5], { maxTokens: 8, temperature: 0, ignoreEos: true }), await w.complete([...prompt, 5], { maxTokens: 8, temperature: 0, ignoreEos: true })];
  assert.equal(x.usage.cachedTokens, prompt.length);
  assert.deepEqual(x.tokens, y.tokens);
  await assert.rejects(w.restoreSlot(path.join(dir, 'nope.kv')), (e: unknown) => e instanceof SlotError && /nope\.kv: cannot read it/.test(e.message));
});

test('server: POST /slots/save and /slots/restore with slotSavePath; 501 without it; a path as file name is a 400', async () => {
  const post = async (url: string, p: string, body: object) => {
    const r = await fetch(`${url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, json: await r.json() as Record<string, unknown> & { error?: { message: string; param: string | null } } };
  };
  const system = 'the people of the water and the fire of the earth';
  const s1 = await startServer({ prefixCacheBytes: 1 << 22, slotSavePath: dir }, servers);
  await s1.client.completions.create({ model: MODEL, prompt: system, max_tokens: 1 });
  const saved = await post(s1.url, '/slots/save', { filename: 'system.kv', prompt: system });
  assert.equal(saved.status, 200, JSON.stringify(saved.json));
  assert.equal(saved.json.n_saved, s1.grok.encode(system).length);
  assert.equal(saved.json.n_written, fs.statSync(path.join(dir, 'system.kv')).size);
  const s2 = await startServer({ prefixCacheBytes: 1 << 22, slotSavePath: dir }, servers);
  const restored = await post(s2.url, '/slots/restore', { filename: 'system.kv' });
  assert.equal(restored.status, 200, JSON.stringify(restored.json));
  assert.equal(restored.json.n_restored, saved.json.n_saved);
  const r = await s2.client.completions.create({ model: MODEL, prompt: `${system} said`, max_tokens: 2 });
  assert.equal((r.usage as unknown as { prompt_tokens_details: { cached_tokens: number } }).prompt_tokens_details.cached_tokens, saved.json.n_saved);
  for (const filename of ['../x.kv', '.hidden', 'a/b']) {
    const bad = await post(s2.url, '/slots/restore', { filename });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error!.param, 'filename');
  }
  fs.writeFileSync(path.join(dir, 'junk.kv'), 'junk');
  const junk = await post(s2.url, '/slots/restore', { filename: 'junk.kv' });
  assert.equal(junk.status, 400);
  assert.match(junk.json.error!.message, /junk\.kv: not a grok-ts KV file/);
  const off = await startServer({ prefixCacheBytes: 1 << 22 }, servers);
  const no = await post(off.url, '/slots/save', { filename: 'x.kv', prompt: 'the' });
  assert.equal(no.status, 501);
  assert.match(no.json.error!.message, /--slot-save-path/);
});
