/**
 * `grok pull` as users run it — the built CLI in a child process, HF_ENDPOINT pointing at the local fake
 * hub, HF_HUB_CACHE in a temporary folder — and `grok generate --model org/name` finding a cached model.
 * The child runs asynchronously: the fake hub lives in this process and must keep answering.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { CliResult } from './cli-helpers.js';
import { fixtureDir, golden } from './fixtures.js';
import { bytes, commitOf, FakeHub, handMadeCache, sha256, tempDir, type FakeRepo } from './pull-helpers.js';

const CLI = path.resolve('dist/src/cli/main.js');
const DEFAULT_MODEL = path.resolve('models/default/model.gguf');

function grokAsync(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HF_') && !k.startsWith('HUGGING')));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), out, err }); });
  });
}

const REPO: FakeRepo = {
  id: 'xai-org/grok-tiny',
  commit: commitOf('cli'),
  files: [
    { path: 'README.md', data: Buffer.from('# tiny\n') },
    { path: 'ckpt-0/tensor00000_000', data: bytes(300_000, 3), lfs: true },
    { path: 'Q4_K_M/t-Q4_K_M-00001-of-00002.gguf', data: bytes(40_000, 4), lfs: true },
    { path: 'Q4_K_M/t-Q4_K_M-00002-of-00002.gguf', data: bytes(40_000, 5), lfs: true },
    { path: 'Q8_0/t-Q8_0.gguf', data: bytes(60_000, 6), lfs: true },
  ],
};

async function setup(t: { after: (f: () => Promise<void> | void) => void }, repo: FakeRepo = REPO) {
  const hub = await new FakeHub().start();
  hub.add(repo);
  const home = tempDir('grok-pull-cli-');
  t.after(async () => { await hub.close(); fs.rmSync(home, { recursive: true, force: true }); });
  const cache = path.join(home, 'hub');
  const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache, HF_HOME: home };
  return { hub, cache, env, run: (...args: string[]) => grokAsync(env, 'pull', ...args) };
}

test('grok pull REPO --quant: the files into HF_HUB_CACHE, the snapshot on stdout, how to run it; again: nothing fetched', async (t) => {
  const { hub, cache, run } = await setup(t);
  const r = await run(REPO.id, '--quant', 'Q4_K_M');
  assert.equal(r.code, 0, r.err);
  const snap = path.join(cache, 'models--xai-org--grok-tiny', 'snapshots', REPO.commit);
  assert.equal(r.out, `${snap}\n`);
  assert.match(r.err, /^grok: xai-org\/grok-tiny at main \(commit [0-9a-f]{10}\): 2 files, 80\.0 kB; 80\.0 kB to fetch\n/);
  assert.match(r.err, /run it with: grok generate --model xai-org\/grok-tiny:Q4_K_M "your prompt"/);
  assert.deepEqual(fs.readFileSync(path.join(snap, 'Q4_K_M', 't-Q4_K_M-00002-of-00002.gguf')), REPO.files[3]!.data);
  hub.log.length = 0;
  const again = await run(REPO.id, '--quant', 'q4_k_m', '--connections', '2');
  assert.equal(again.code, 0, again.err);
  assert.match(again.err, /2 files, 80\.0 kB; 2 already in the cache; nothing to fetch/);
  assert.deepEqual(hub.bodyGets(), []);
  // offline: the same from the cache, with no hub at all
  await hub.close();
  const off = await grokAsync({ HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:1' }, 'pull', REPO.id, 'Q4_K_M');
  assert.equal(off.code, 0, off.err);
  assert.equal(off.out, `${snap}\n`);
});

test('grok pull FILES with --dir; failures are one line with exit 1: unknown repo, no such quant, a dropped-and-corrupted file', async (t) => {
  const { hub, run } = await setup(t);
  const dir = tempDir('grok-pull-dir-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const r = await run(REPO.id, 'ckpt-0', 'README.md', '--dir', dir);
  assert.equal(r.code, 0, r.err);
  assert.ok(fs.existsSync(path.join(dir, 'models--xai-org--grok-tiny', 'blobs', sha256(REPO.files[1]!.data))));
  assert.match(r.err, /run it with: grok generate --model \/.*\/snapshots\/[0-9a-f]{40} "your prompt"/);

  const missing = await run('xai-org/nothing');
  assert.equal(missing.code, 1);
  assert.equal(missing.err, `grok: repository xai-org/nothing not found at ${hub.endpoint} (404); if it is private, set HF_TOKEN\n`);
  const quant = await run(REPO.id, '--quant', 'IQ2_XS');
  assert.equal(quant.code, 1);
  assert.equal(quant.err, 'grok: xai-org/grok-tiny has no IQ2_XS GGUF; quants available: Q4_K_M, Q8_0\n');
  const several = await run(REPO.id);
  assert.match(several.err, /^grok: xai-org\/grok-tiny holds GGUFs of 2 quants \(Q4_K_M, Q8_0\): choose one with --quant/);
  const bad = await run('not/a/repo');
  assert.equal(bad.code, 2);

  hub.dropAfter.set('Q8_0/t-Q8_0.gguf', 20_000);
  hub.corrupt.add('Q8_0/t-Q8_0.gguf');
  const corrupt = await run(REPO.id, '--quant', 'Q8_0');
  assert.equal(corrupt.code, 1);
  assert.match(corrupt.err, /^grok: xai-org\/grok-tiny: Q8_0\/t-Q8_0\.gguf: the connection dropped at byte 20000 of 60000 \(.*\); retrying in 1\.0 s$/m);
  assert.match(corrupt.err, /\ngrok: Q8_0\/t-Q8_0\.gguf: the downloaded file's sha256 is [0-9a-f]{64}, but the hub says [0-9a-f]{64}; the corrupt download was deleted, run the same command again\n$/);
  assert.doesNotMatch(corrupt.err, /\n\s+at /, 'no stack');
});

test('grok pull refuses a download larger than the free disk, before fetching anything', async (t) => {
  const huge: FakeRepo = { id: 'org/huge', commit: commitOf('huge'), files: [{ path: 'w.bin', data: bytes(10), lfs: true }], fakeSize: { 'w.bin': 2 ** 52 } };
  const { hub, run } = await setup(t, huge);
  const r = await run(huge.id);
  assert.equal(r.code, 1);
  assert.match(r.err, /grok: not enough free disk space in \/.*models--org--huge\/blobs: the download needs 4\.50 PB \(4503599627370496 bytes\), [\d.]+ [kMGTP]?B \(\d+ bytes\) are free/);
  assert.deepEqual(hub.bodyGets(), []);
});

test('grok generate --model org/name runs the GGUF pulled into the cache; a repo not in the cache says to pull it', async (t) => {
  const home = tempDir('grok-pull-gen-');
  t.after(() => fs.rmSync(home, { recursive: true, force: true }));
  const cache = path.join(home, 'hub');
  handMadeCache(cache, 'grok-ts/default-GGUF', commitOf('default'), [{ path: 'Q8_0/default-Q8_0.gguf', source: DEFAULT_MODEL }, { path: 'README.md', data: Buffer.from('x') }]);
  const env = { HF_HUB_CACHE: cache, HF_HOME: home };
  const r = await grokAsync(env, 'generate', '--model', 'grok-ts/default-GGUF', '-n', '4', '--temp', '0', '--json', 'And God said');
  assert.equal(r.code, 0, r.err);
  assert.equal((JSON.parse(r.out) as { tokens: number[] }).tokens.length, 4);
  const info = await grokAsync(env, 'inspect', 'grok-ts/default-GGUF:q8_0', '--json');
  assert.equal(info.code, 0, info.err);
  assert.match((JSON.parse(info.out) as { path: string }).path, /\/models--grok-ts--default-GGUF\/snapshots\/[0-9a-f]{40}\/Q8_0\/default-Q8_0\.gguf$/);
  const absent = await grokAsync(env, 'generate', '--model', 'xai-org/grok-1', 'hello');
  assert.equal(absent.code, 1);
  assert.equal(absent.err, `grok: xai-org/grok-1: no such file or directory, and xai-org/grok-1 is not in the Hugging Face cache (${cache}); download it with: grok pull xai-org/grok-1\n`);
});

test('grok logits --model org/name and grok convert org/name run a ckpt-0 repository from the cache (snapshot links into blobs/ from inside ckpt-0/): the golden top tokens', async (t) => {
  const home = tempDir('grok-pull-ckpt-');
  t.after(() => fs.rmSync(home, { recursive: true, force: true }));
  const cache = path.join(home, 'hub');
  const ckpt = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  handMadeCache(cache, 'xai-org/tiny-a', commitOf('tiny-a'), [
    ...fs.readdirSync(ckpt).map((f) => ({ path: `ckpt-0/${f}`, source: path.join(ckpt, f) })),
    { path: 'golden.json', source: path.join(fixtureDir('tiny-a'), 'golden.json'), lfs: false }, // the fixture's config
  ]);
  const g = golden('tiny-a');
  const r = await grokAsync({ HF_HUB_CACHE: cache, HF_HOME: home }, 'logits', '--model', 'xai-org/tiny-a', '--tokens', g.tokens.join(','), '--top', '1', '--json');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual((JSON.parse(r.out) as { positions: { top: { id: number }[] }[] }).positions.map((p) => p.top[0]!.id), g.top5.map((x) => x[0]!));
  // grok convert takes the same repository id: the converted (F32) GGUF gives the golden top tokens too
  const out = path.join(home, 'tiny-a-f32.gguf');
  const c = await grokAsync({ HF_HUB_CACHE: cache, HF_HOME: home }, 'convert', 'xai-org/tiny-a', '--type', 'f32', '--out', out);
  assert.equal(c.code, 0, c.err);
  const q = await grokAsync({}, 'logits', '--model', out, '--tokens', g.tokens.join(','), '--top', '1', '--json');
  assert.equal(q.code, 0, q.err);
  assert.deepEqual((JSON.parse(q.out) as { positions: { top: { id: number }[] }[] }).positions.map((p) => p.top[0]!.id), g.top5.map((x) => x[0]!));
  const absent = await grokAsync({ HF_HUB_CACHE: cache, HF_HOME: home }, 'convert', 'xai-org/grok-1', '--type', 'q8_0', '--out', path.join(home, 'x.gguf'));
  assert.equal(absent.code, 1);
  assert.match(absent.err, /xai-org\/grok-1 is not in the Hugging Face cache .*grok pull xai-org\/grok-1/);
});
