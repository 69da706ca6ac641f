/**
 * `pull` against a local stand-in for the Hub (test/pull-helpers.ts): the cache layout huggingface_hub
 * writes and reads, no re-download of what is there, offline use, tokens kept from the CDN, refusals as
 * sentences, retries, resume after a drop (proved by the Range the server saw), ranges on several
 * connections, checksums, quant selection, the free-disk check, and a repo id resolved to a cached model.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ChecksumError, DiskSpaceError, HubError, pull, resolveModelPath, type PullOptions } from '../src/hub/index.js';
import { filesOfQuant, pathMatcher, quantOf, selectFiles } from '../src/hub/select.js';
import { modelRoot } from '../src/base/files.js';
import { bytes, commitOf, etagOf, FakeHub, handMadeCache, sha256, tempDir, type FakeRepo } from './pull-helpers.js';

// nothing from the environment: no real token, cache or endpoint
for (const k of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_TOKEN_PATH']) delete process.env[k];
process.env.HF_HOME = tempDir('grok-pull-home-');

const SMALL: FakeRepo = {
  id: 'xai-org/grok-tiny',
  commit: commitOf('grok-tiny'),
  files: [
    { path: 'README.md', data: Buffer.from('# tiny\n') },
    { path: 'tokenizer.model', data: bytes(3000, 7), lfs: true },
    { path: 'ckpt-0/tensor00000_000', data: bytes(200_000, 1), lfs: true },
    { path: 'ckpt-0/tensor00001_000', data: bytes(150_000, 2), lfs: true },
    { path: 'empty.txt', data: Buffer.alloc(0) },
  ],
};

const GGUF: FakeRepo = {
  id: 'Arki05/Tiny-GGUF',
  commit: commitOf('tiny-gguf'),
  files: [
    { path: 'README.md', data: Buffer.from('quants\n') },
    ...[1, 2, 3].map((i) => ({ path: `Q4_K_M/tiny-Q4_K_M-0000${i}-of-00003.gguf`, data: bytes(10_000, 10 + i), lfs: true })),
    { path: 'Q8_0/tiny-Q8_0-00001-of-00002.gguf', data: bytes(9_000, 20), lfs: true },
    { path: 'Q8_0/tiny-Q8_0-00002-of-00002.gguf', data: bytes(9_000, 21), lfs: true },
    { path: 'tiny.IQ2_XS.gguf', data: bytes(5_000, 30), lfs: true },
  ],
};

/** A hub with the repos, a cache folder, and pull() bound to both; cleaned up after the test. */
async function setup(t: { after: (f: () => Promise<void> | void) => void }, ...repos: FakeRepo[]) {
  const hub = await new FakeHub().start();
  for (const r of repos.length ? repos : [SMALL]) hub.add(structuredClone(r));
  const cacheDir = tempDir();
  t.after(async () => { await hub.close(); fs.rmSync(cacheDir, { recursive: true, force: true }); });
  const run = (o: Partial<PullOptions> & { repo?: string } = {}) => pull({ repo: SMALL.id, endpoint: hub.endpoint, cacheDir, retryBaseMs: 10, ...o });
  return { hub, cacheDir, run, folder: (repo = SMALL.id) => path.join(cacheDir, `models--${repo.replace('/', '--')}`) };
}

test('pull lays files out as huggingface_hub does: blobs named by hash, relative snapshot links, refs/main; the tree listing is paged', async (t) => {
  const { hub, run, folder } = await setup(t);
  hub.pageSize = 2; // 5 files + 1 folder: three pages
  const r = await run();
  assert.equal(r.commit, SMALL.commit);
  assert.equal(hub.log.filter((l) => l.path.includes('/tree/')).length, 3, 'every page of the listing read');
  assert.deepEqual(r.repoFiles, SMALL.files.map((f) => f.path));
  assert.equal(fs.readFileSync(path.join(folder(), 'refs', 'main'), 'utf8'), SMALL.commit);
  for (const f of SMALL.files) {
    const link = path.join(folder(), 'snapshots', SMALL.commit, f.path);
    assert.ok(r.files.includes(link));
    const depth = f.path.split('/').length + 1;
    assert.equal(fs.readlinkSync(link), path.join(...Array(depth).fill('..'), 'blobs', etagOf(f)), f.path);
    assert.deepEqual(fs.readFileSync(link), f.data, f.path);
  }
  assert.deepEqual(fs.readdirSync(path.join(folder(), 'blobs')).sort(), SMALL.files.map(etagOf).sort(), 'no .incomplete or .parts left');
  assert.equal(r.receivedBytes, SMALL.files.reduce((a, f) => a + f.data.length, 0));
});

test('a second pull of a complete snapshot fetches no file bytes (only the listing and a HEAD)', async (t) => {
  const { hub, run } = await setup(t);
  await run();
  hub.log.length = 0;
  const r = await run();
  assert.equal(r.receivedBytes, 0);
  assert.deepEqual(hub.bodyGets(), []);
  assert.deepEqual(hub.log.map((l) => l.method).sort(), ['GET', 'HEAD'], JSON.stringify(hub.log));
});

test('offline (HF_HUB_OFFLINE=1): from the cache alone, no request; a repo not cached is an error saying so', async (t) => {
  const { hub, run, cacheDir } = await setup(t);
  const online = await run();
  hub.log.length = 0;
  process.env.HF_HUB_OFFLINE = '1';
  try {
    const r = await run({ endpoint: 'http://127.0.0.1:1' }); // nothing listens there
    assert.deepEqual(r.files, [...online.files].sort());
    assert.equal(r.commit, SMALL.commit);
    assert.deepEqual((await run({ files: ['ckpt-0'] })).repoFiles, ['ckpt-0/tensor00000_000', 'ckpt-0/tensor00001_000']);
    await assert.rejects(run({ repo: 'nobody/absent' }), (e: Error) => e instanceof HubError && e.message.includes('nobody/absent@main is not in the cache') && e.message.includes(cacheDir));
  } finally {
    delete process.env.HF_HUB_OFFLINE;
  }
  assert.deepEqual(hub.log, []);
});

test('the token goes to the hub, never to the CDN a download is redirected to; without it, 401 says to set HF_TOKEN and accept the licence', async (t) => {
  const { hub, run } = await setup(t, { ...SMALL, token: 'hf_secret' });
  await assert.rejects(run(), (e: Error) => e instanceof HubError && /gated/.test(e.message) && /HF_TOKEN/.test(e.message) && /licence/.test(e.message) && e.message.includes(hub.endpoint));
  hub.log.length = 0;
  await run({ token: 'hf_secret' });
  const hubReqs = hub.log.filter((l) => l.host === 'hub');
  const cdnReqs = hub.log.filter((l) => l.host === 'cdn');
  assert.ok(hubReqs.length >= 4 && hubReqs.every((l) => l.auth), 'every hub request carries the token');
  assert.equal(cdnReqs.length, 3, 'the three LFS files came from the CDN');
  assert.ok(cdnReqs.every((l) => !l.auth), 'no CDN request carries it');
  await assert.rejects(run({ token: 'hf_wrong', cacheDir: tempDir() }), /token given was refused/);
});

test('404s name what is missing: the repository, the revision, a FILES pattern', async (t) => {
  const { run } = await setup(t);
  await assert.rejects(run({ repo: 'xai-org/no-such' }), (e: Error) => e instanceof HubError && e.status === 404 && /repository xai-org\/no-such not found/.test(e.message));
  await assert.rejects(run({ revision: 'v9' }), /revision 'v9' not found \(404\)/);
  await assert.rejects(run({ files: ['ckpt-1'] }), /xai-org\/grok-tiny: no file matches 'ckpt-1' \(it has README\.md, ckpt-0\/, empty\.txt, tokenizer\.model\)/);
  await assert.rejects(run({ repo: 'not a repo' }), /'not a repo' is not a Hugging Face repository id: expected org\/name/);
});

test('429 with Retry-After is waited for, 503 is retried with backoff, the CDN\'s 403 (an expired link) resolved again, then the pull completes', async (t) => {
  const { hub, run } = await setup(t);
  hub.failures.set('tree', [[429, 1]]);
  hub.failures.set('cdn', [[503], [403]]);
  const retries: string[] = [];
  const t0 = performance.now();
  const r = await run({ connections: 1, onRetry: (_w, reason, ms) => retries.push(`${reason}:${ms}`) });
  assert.ok(performance.now() - t0 >= 950, 'waited the second Retry-After asked for');
  assert.deepEqual(retries, ['429:1000', '503:10', '403:20']);
  assert.equal(r.files.length, SMALL.files.length);
  hub.failures.set('tree', [[503], [503], [503]]);
  await assert.rejects(run({ retries: 3 }), /listing xai-org\/grok-tiny: gave up after 3 attempts \(last: 503\); run the same command again/);
});

test('a connection dropped mid-file is resumed with Range from the byte where it stopped', async (t) => {
  const { hub, run } = await setup(t);
  hub.dropAfter.set('ckpt-0/tensor00000_000', 70_000);
  const r = await run({ files: ['ckpt-0/tensor00000_000'], connections: 1 });
  const gets = hub.bodyGets();
  assert.deepEqual(gets.map((g) => g.range), [undefined, 'bytes=70000-'], JSON.stringify(gets));
  assert.deepEqual(fs.readFileSync(r.files[0]!), SMALL.files[2]!.data);
  assert.equal(r.receivedBytes, 200_000);
});

test('an .incomplete left by an earlier run (ours or huggingface_hub\'s) is resumed from its size, not fetched again', async (t) => {
  const { hub, run, folder } = await setup(t);
  const f = SMALL.files[2]!;
  fs.mkdirSync(path.join(folder(), 'blobs'), { recursive: true });
  fs.writeFileSync(path.join(folder(), 'blobs', `${sha256(f.data)}.incomplete`), f.data.subarray(0, 123_456));
  const plans: number[] = [];
  const r = await run({ files: [f.path], onPlan: (p) => plans.push(p.resumedBytes, p.fetchBytes) });
  assert.deepEqual(plans, [123_456, 200_000 - 123_456]);
  assert.deepEqual(hub.bodyGets().map((g) => g.range), ['bytes=123456-']);
  assert.equal(r.receivedBytes, 200_000 - 123_456);
  assert.deepEqual(fs.readFileSync(r.files[0]!), f.data);
});

test('a big file is fetched as ranges on several connections; stopped half-way, the next pull resumes every range', async (t) => {
  const big = { id: 'org/big', commit: commitOf('big'), files: [{ path: 'model.bin', data: bytes(1_000_000, 5), lfs: true }] };
  const { hub, run, folder } = await setup(t, big);
  hub.chunkDelayMs = 150; // progress reports come every 100 ms
  const ctl = new AbortController();
  await assert.rejects(run({ repo: big.id, connections: 4, minPartBytes: 100_000, signal: ctl.signal, onProgress: (p) => { if (p.receivedBytes >= 300_000) ctl.abort(new Error('stop')); } }), /stop/);
  const first = hub.bodyGets().map((g) => g.range).sort((a, b) => Number(/\d+/.exec(a!)![0]) - Number(/\d+/.exec(b!)![0]));
  assert.deepEqual(first, ['bytes=0-249999', 'bytes=250000-499999', 'bytes=500000-749999', 'bytes=750000-'], 'four ranges tiling the file');
  const blob = path.join(folder(big.id), 'blobs', sha256(big.files[0]!.data));
  const parts = JSON.parse(fs.readFileSync(`${blob}.incomplete.parts`, 'utf8')) as { size: number; done: [number, number][] };
  assert.equal(parts.size, 1_000_000);
  const kept = parts.done.reduce((a, [s, e]) => a + e - s, 0);
  assert.ok(parts.done.length >= 2 && kept > 0 && kept < 1_000_000, JSON.stringify(parts));
  const gaps: [number, number][] = [];
  let at = 0;
  for (const [s, e] of parts.done) { if (s > at) gaps.push([at, s]); at = e; }
  if (at < 1_000_000) gaps.push([at, 1_000_000]);

  hub.log.length = 0;
  hub.chunkDelayMs = 0;
  const r = await run({ repo: big.id, connections: 4, minPartBytes: 100_000 });
  // the second run asks for exactly the missing bytes: its ranges, merged, are the gaps .parts left
  const asked = hub.bodyGets().map((g) => /^bytes=(\d+)-(\d*)$/.exec(g.range ?? '')!).map((m): [number, number] => [Number(m[1]), m[2] ? Number(m[2]) + 1 : 1_000_000]).sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [s, e] of asked) { const last = merged[merged.length - 1]; if (last && last[1] === s) last[1] = e; else merged.push([s, e]); }
  assert.deepEqual(merged, gaps, 'each range resumed where it stopped');
  assert.equal(r.receivedBytes, 1_000_000 - kept);
  assert.deepEqual(fs.readFileSync(r.files[0]!), big.files[0]!.data);
  assert.ok(!fs.existsSync(`${blob}.incomplete.parts`) && !fs.existsSync(`${blob}.incomplete`));
});

test('a file whose bytes do not match the hub\'s sha256 is refused, deleted, and not linked', async (t) => {
  const { hub, run, folder } = await setup(t);
  hub.corrupt.add('ckpt-0/tensor00001_000');
  await assert.rejects(run(), (e: Error) => e instanceof ChecksumError && e.message.startsWith('ckpt-0/tensor00001_000: the downloaded file\'s sha256 is') && /the corrupt download was deleted/.test(e.message));
  const bad = sha256(SMALL.files[3]!.data);
  const blobs = fs.readdirSync(path.join(folder(), 'blobs'));
  assert.ok(!blobs.some((b) => b.startsWith(bad)), blobs.join(' '));
  assert.ok(!fs.existsSync(path.join(folder(), 'snapshots', SMALL.commit, 'ckpt-0', 'tensor00001_000')));
  // a non-LFS file is checked against its git blob sha1
  hub.corrupt.clear();
  hub.corrupt.add('README.md');
  await assert.rejects(run({ files: ['README.md'], cacheDir: tempDir() }), /README\.md: the downloaded file's git blob sha1 is [0-9a-f]{40}, but the hub says/);
});

test('--quant picks one quant\'s GGUF files (split sets too, case-insensitively, Q4_K → Q4_K_M); several quants without it are refused', async (t) => {
  const { run, folder } = await setup(t, GGUF);
  await assert.rejects(run({ repo: GGUF.id }), /Arki05\/Tiny-GGUF holds GGUFs of 3 quants \(IQ2_XS, Q4_K_M, Q8_0\): choose one with --quant, e\.g\. --quant Q4_K_M/);
  await assert.rejects(run({ repo: GGUF.id, quant: 'Q6_K' }), /Arki05\/Tiny-GGUF has no Q6_K GGUF; quants available: IQ2_XS, Q4_K_M, Q8_0/);
  const r = await run({ repo: GGUF.id, quant: 'q4_k' });
  assert.deepEqual(r.repoFiles, [1, 2, 3].map((i) => `Q4_K_M/tiny-Q4_K_M-0000${i}-of-00003.gguf`));
  assert.deepEqual((await run({ repo: GGUF.id, quant: 'iq2_xs' })).repoFiles, ['tiny.IQ2_XS.gguf']);
  assert.ok(!fs.existsSync(path.join(folder(GGUF.id), 'snapshots', GGUF.commit, 'Q8_0')));
  // and the repo id resolves to the first part once one quant is chosen
  const cache = path.dirname(folder(GGUF.id));
  assert.throws(() => resolveModelPath(GGUF.id, { cacheDir: cache }), /the cache holds 2 quants \(IQ2_XS, Q4_K_M\): choose one, e\.g\. --model Arki05\/Tiny-GGUF:IQ2_XS/);
  assert.equal(resolveModelPath(`${GGUF.id}:Q4_K_M`, { cacheDir: cache }), r.files[0]);
});

test('a cache laid out by huggingface_hub (by hand, from its documented layout) is reused: nothing fetched', async (t) => {
  const { hub, run, cacheDir } = await setup(t);
  const snap = handMadeCache(cacheDir, SMALL.id, SMALL.commit, SMALL.files.map((f) => ({ path: f.path, data: f.data, lfs: !!f.lfs })));
  const r = await run();
  assert.deepEqual(hub.bodyGets(), []);
  assert.equal(r.snapshot, snap);
  assert.deepEqual(r.files.map((f) => fs.readFileSync(f)), SMALL.files.map((f) => f.data));
  // a blob present under another snapshot (another commit) is linked, not fetched
  const newer = { ...SMALL, commit: commitOf('newer') };
  hub.repos.set(SMALL.id, newer);
  const r2 = await run();
  assert.deepEqual(hub.bodyGets(), []);
  assert.equal(r2.commit, newer.commit);
  assert.equal(fs.readFileSync(path.join(path.dirname(snap), '..', 'refs', 'main'), 'utf8'), newer.commit);
});

test('not enough free disk: refused before anything is fetched, saying the bytes needed and free', async (t) => {
  const { hub, run } = await setup(t);
  await assert.rejects(run({ statfs: async () => ({ bavail: 10, bsize: 4096 }) }), (e: Error) => e instanceof DiskSpaceError && e.needed === 353_007 && e.free === 40_960 && /needs 353\.0 kB \(353007 bytes\), 41\.0 kB \(40960 bytes\) are free/.test(e.message));
  assert.deepEqual(hub.bodyGets(), []);
});

test('resolveModelPath: a path is kept; org/name finds the cached snapshot or GGUF, or says to pull it', async (t) => {
  const cacheDir = tempDir();
  t.after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));
  assert.equal(resolveModelPath('models/nothing/here.gguf', { cacheDir }), 'models/nothing/here.gguf');
  assert.equal(resolveModelPath('missing.gguf', { cacheDir }), 'missing.gguf');
  assert.throws(() => resolveModelPath('xai-org/grok-1', { cacheDir }), (e: Error) => e.message === `xai-org/grok-1: no such file or directory, and xai-org/grok-1 is not in the Hugging Face cache (${cacheDir}); download it with: grok pull xai-org/grok-1`);
  const snap = handMadeCache(cacheDir, 'xai-org/grok-1', commitOf('g'), [{ path: 'ckpt-0/tensor00000_000', data: bytes(10) }, { path: 'tokenizer.model', data: bytes(20, 3) }]);
  assert.equal(resolveModelPath('xai-org/grok-1', { cacheDir }), snap);
  const gsnap = handMadeCache(cacheDir, 'o/g', commitOf('o'), [2, 1].map((i) => ({ path: `Q2_K/m-Q2_K-0000${i}-of-00002.gguf`, data: bytes(10, i) })));
  assert.equal(resolveModelPath('o/g', { cacheDir }), path.join(gsnap, 'Q2_K', 'm-Q2_K-00001-of-00002.gguf'));
  // the loader's containment check accepts the links of a folder inside a snapshot
  assert.equal(modelRoot(path.join(gsnap, 'Q2_K')), path.join(cacheDir, 'models--o--g'));
});

test('select: quant names in paths, FILES as paths, folders and globs', () => {
  assert.equal(quantOf('Q4_K_M/grok-1-Q4_K_M-00001-of-00009.gguf'), 'Q4_K_M');
  assert.equal(quantOf('grok-1.iq3_xs.gguf'), 'IQ3_XS');
  assert.equal(quantOf('IQ2_XS/part-00002-of-00009.gguf'), 'IQ2_XS');
  assert.equal(quantOf('model-bf16.gguf'), 'BF16');
  assert.equal(quantOf('model.gguf'), '');
  const files = ['a/x.gguf', 'a/y.json', 'b.json', 'ckpt-0/t0', 'ckpt-0/t1', 'ckpt-00/z'];
  assert.deepEqual(files.filter(pathMatcher('ckpt-0')), ['ckpt-0/t0', 'ckpt-0/t1']);
  assert.deepEqual(files.filter(pathMatcher('*.json')), ['b.json']);
  assert.deepEqual(files.filter(pathMatcher('**.json')), ['a/y.json', 'b.json']);
  assert.deepEqual(selectFiles(files, { patterns: ['b.json', 'ckpt-0/'], where: 'r' }), ['b.json', 'ckpt-0/t0', 'ckpt-0/t1']);
  assert.throws(() => filesOfQuant(['Q4_K_S/a.gguf', 'Q4_K_M/b.gguf'], 'Q4_K', 'r'), /--quant Q4_K matches several quants \(Q4_K_M, Q4_K_S\): name one/);
});

test('two paths with the same bytes are fetched once and both linked; a listed path leading out of the snapshot is refused', async (t) => {
  const same = bytes(50_000, 9);
  const twins: FakeRepo = { id: 'org/twins', commit: commitOf('twins'), files: [{ path: 'a/w.bin', data: same, lfs: true }, { path: 'b/w.bin', data: same, lfs: true }, { path: 'a/__init__.py', data: Buffer.alloc(0) }, { path: 'b/__init__.py', data: Buffer.alloc(0) }] };
  const evil: FakeRepo = { id: 'org/evil', commit: commitOf('evil'), files: [{ path: '../../escape.txt', data: Buffer.from('x') }] };
  const { hub, run, cacheDir } = await setup(t, twins, evil);
  const plans: number[] = [];
  const r = await run({ repo: twins.id, onPlan: (p) => plans.push(p.fetchBytes) });
  assert.deepEqual(plans, [50_000]);
  assert.equal(hub.bodyGets().length, 1, 'one download for the shared blob; an empty file needs none');
  assert.deepEqual(r.files.map((f) => fs.readFileSync(f).length), [50_000, 50_000, 0, 0]);
  await assert.rejects(run({ repo: evil.id }), /org\/evil: the tree listing has a path that is not a plain relative path: "\.\.\/\.\.\/escape\.txt"/);
  assert.ok(!fs.existsSync(path.join(cacheDir, 'escape.txt')));
  await assert.rejects(run({ repo: twins.id, revision: '../../x' }), /'\.\.\/\.\.\/x' is not a revision name/);
});
