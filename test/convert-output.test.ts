/**
 * `grok convert` never destroys its source and never leaves a partial file at --out: the output is written
 * to a temporary file beside it and renamed over it at the end; an --out that is the source through a
 * symlink, a hard link or a symlinked directory is refused before anything is opened for writing; SIGKILL
 * leaves --out as it was; SIGINT / SIGTERM also remove the temporary file.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fixtureDir } from './fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-convert-out-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const CLI = path.resolve('dist/src/cli/main.js');
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function grok(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stderr: r.stderr };
}

test('an --out that is the source through a symlink, a hard link or a symlinked directory is refused; the source is intact', () => {
  const src = path.join(tmp, 'src.gguf');
  fs.copyFileSync(path.join(fixtureDir('tiny-a'), 'model.gguf'), src);
  const before = sha(src);
  fs.symlinkSync(src, path.join(tmp, 'sym.gguf'));
  fs.linkSync(src, path.join(tmp, 'hard.gguf'));
  fs.symlinkSync(tmp, path.join(tmp, 'dirlink'));
  for (const out of [path.join(tmp, 'sym.gguf'), path.join(tmp, 'hard.gguf'), path.join(tmp, 'dirlink', 'src.gguf'), src]) {
    const r = grok('convert', src, '--type', 'q8_0', '--out', out);
    assert.notEqual(r.status, 0, out);
    assert.match(r.stderr, /^grok: .*(this is the input|would overwrite the source).*\n$/, out);
    assert.equal(sha(src), before, `source changed by --out ${out}`);
  }
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), []);
});

/** Start a convert slow enough to interrupt (tiny-b to Q2_K with error statistics, one thread). */
function slowConvert(out: string) {
  return spawn(process.execPath, [CLI, 'convert', path.join(fixtureDir('tiny-b'), 'model.gguf'), '--type', 'q2_k', '--stats', '--threads', '1', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function waitForTemp(dir: string, base: string): Promise<string> {
  for (let i = 0; i < 3000; i++) {
    const t = fs.readdirSync(dir).find((f) => f.startsWith(`.${base}.tmp-`));
    if (t && fs.statSync(path.join(dir, t)).size > 0) return t;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('the temporary output never appeared');
}

test('SIGKILL in the middle of a convert leaves no file at --out, and a file that was there intact', async () => {
  for (const preexisting of [false, true]) {
    const dir = fs.mkdtempSync(path.join(tmp, 'kill-'));
    const out = path.join(dir, 'out.gguf');
    if (preexisting) fs.writeFileSync(out, 'previous contents');
    const child = slowConvert(out);
    const done = new Promise((r) => child.on('exit', r));
    await waitForTemp(dir, 'out.gguf');
    child.kill('SIGKILL');
    await done;
    if (preexisting) assert.equal(fs.readFileSync(out, 'utf8'), 'previous contents');
    else assert.equal(fs.existsSync(out), false);
  }
});

test('SIGINT and SIGTERM remove the temporary file and exit with the signal', async () => {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const dir = fs.mkdtempSync(path.join(tmp, 'sig-'));
    const out = path.join(dir, 'out.gguf');
    const child = slowConvert(out);
    const done = new Promise<[number | null, string | null]>((r) => child.on('exit', (code, s) => r([code, s])));
    await waitForTemp(dir, 'out.gguf');
    child.kill(sig);
    const [code, s] = await done;
    assert.ok(s === sig || code === (sig === 'SIGINT' ? 130 : 143), `exit ${code} ${s}`);
    assert.deepEqual(fs.readdirSync(dir), [], `${sig} left ${fs.readdirSync(dir).join(', ')}`);
  }
});

test('a finished convert replaces a previous file at --out in one rename', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'ok-'));
  const out = path.join(dir, 'out.gguf');
  fs.writeFileSync(out, 'previous contents');
  const r = grok('convert', path.join(fixtureDir('tiny-a'), 'model.gguf'), '--type', 'q8_0', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.readFileSync(out).subarray(0, 4).toString(), 'GGUF');
  assert.deepEqual(fs.readdirSync(dir), ['out.gguf']);
});
