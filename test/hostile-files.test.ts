/**
 * Regression tests for the reliability issue's file defects, each with a minimal hostile input written
 * here byte by byte: small files that used to grow the heap by gigabytes (pickle of empty dicts, GGUF
 * array of empty arrays, safetensors header of empty tensors), values that broke the error message itself
 * (bigints, cycles), bad split names, directories / FIFOs / links where a model file is expected, and
 * errors that quoted the bytes of whatever file they opened. Every one must end in a FormatError (or
 * ConfigError) naming the file, quickly, with bounded memory.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ConfigError, FormatError } from '../src/base/errors.js';
import { renderValue } from '../src/base/render.js';
import { openCkpt } from '../src/formats/ckpt.js';
import { GGUF_LIMITS, openGguf, readGgufFile } from '../src/formats/gguf.js';
import { openModel } from '../src/formats/open.js';
import { PICKLE_LIMITS, readPickle } from '../src/formats/pickle.js';
import { openSafetensors, readSafetensorsFile, SAFETENSORS_MAX_TENSORS } from '../src/formats/safetensors.js';
import { bindModel } from '../src/model/map.js';
import { buildGguf, grokKvsFromGolden, u32v } from './gguf-builder.js';
import { fixtureDir, golden } from './fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-hostile-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Write `head`, then `body` repeated to `total` bytes, then `tail`, in chunks (never the whole file in memory). */
function writeRepeated(file: string, head: Uint8Array, body: Uint8Array, total: number, tail: Uint8Array = new Uint8Array(0)): void {
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, head);
  const chunk = Buffer.alloc(Math.floor((1 << 20) / body.length) * body.length);
  for (let i = 0; i < chunk.length; i += body.length) chunk.set(body, i);
  let left = total;
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    fs.writeSync(fd, chunk, 0, n);
    left -= n;
  }
  fs.writeSync(fd, tail);
  fs.closeSync(fd);
}

/** Runs f, which must throw a FormatError matching `re`, within `ms` and with the RSS growing by less than `mb`. */
function refusedQuickly(f: () => unknown, re: RegExp, ms: number, mb: number): void {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
  const dt = performance.now() - t0;
  const grew = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.ok(dt < ms, `took ${dt.toFixed(0)} ms (limit ${ms})`);
  assert.ok(grew < mb, `RSS grew by ${grew.toFixed(0)} MiB (limit ${mb})`);
}

const MB80 = 80 * 2 ** 20;

test('an 80 MB pickle of empty-dict opcodes is refused at the stack limit, in well under a second', () => {
  const f = path.join(tmp, 'dicts.pkl');
  writeRepeated(f, Uint8Array.of(0x80, 4), Uint8Array.of(0x7d), MB80);
  refusedQuickly(() => readPickle(f), new RegExp(`stack deeper than ${PICKLE_LIMITS.stack}`), 1000, 200);
});

test('memo and value counts are bounded too (MEMOIZE floods, SETITEM floods)', () => {
  const memo = path.join(tmp, 'memo.pkl');
  writeRepeated(memo, Uint8Array.of(0x80, 4, 0x4e), Uint8Array.of(0x94), 8 << 20); // NONE, then MEMOIZE ×8M
  refusedQuickly(() => readPickle(memo), /memo larger than/, 1000, 200);
  const items = path.join(tmp, 'setitem.pkl');
  writeRepeated(items, Uint8Array.of(0x80, 4, 0x7d), Uint8Array.of(0x4e, 0x4e, 0x73), 8 << 20); // {} then (None, None, SETITEM)×
  refusedQuickly(() => readPickle(items), new RegExp(`more than ${PICKLE_LIMITS.values} values`), 1000, 200);
});

test('the same pickle inside a ckpt-0 directory: openModel and the CLI give one line naming the file', () => {
  const dir = path.join(tmp, 'ckpt-bad', 'ckpt-0');
  fs.mkdirSync(dir, { recursive: true });
  const src = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  writeRepeated(path.join(dir, 'tensor00005_000'), Uint8Array.of(0x80, 4), Uint8Array.of(0x7d), MB80);
  refusedQuickly(() => openModel(dir), /tensor00005_000: stack deeper than/, 2000, 300);
  for (const cmd of [['inspect', dir], ['convert', dir, '--type', 'q8_0', '--out', path.join(tmp, 'x.gguf')]]) {
    let err = '';
    try {
      execFileSync(process.execPath, [path.resolve('dist/src/cli/main.js'), ...cmd], { stdio: 'pipe', timeout: 30000 });
      assert.fail(`grok ${cmd[0]} succeeded`);
    } catch (e) {
      const x = e as { status: number; stderr: Buffer };
      assert.equal(x.status, 1, `grok ${cmd[0]} exit code`);
      err = x.stderr.toString();
    }
    assert.match(err, /^grok: .*tensor00005_000: stack deeper than 1024 items.*\n$/, `grok ${cmd[0]}: ${err}`);
    assert.ok(!fs.existsSync(path.join(tmp, 'x.gguf')));
  }
});

/** A GGUF whose only metadata key is an array of `n` empty arrays (12 bytes each). */
function ggufOfEmptyArrays(file: string, n: number): void {
  const head = Buffer.alloc(4 + 4 + 8 + 8 + 8 + 4 + 4 + 4 + 8);
  let o = 0;
  head.writeUInt32LE(0x46554747, o); o += 4; // magic
  head.writeUInt32LE(3, o); o += 4; //          version
  head.writeBigUInt64LE(0n, o); o += 8; //       tensors
  head.writeBigUInt64LE(1n, o); o += 8; //       keys
  head.writeBigUInt64LE(1n, o); o += 8; //       key length
  head.write('k', o); o += 1;
  head.writeUInt32LE(9, o); o += 4; //          ARRAY
  head.writeUInt32LE(9, o); o += 4; //          of ARRAY
  head.writeBigUInt64LE(BigInt(n), o); o += 8;
  const empty = Buffer.alloc(12);
  empty.writeUInt32LE(4, 0); //                  each: an array of u32 with 0 elements
  writeRepeated(file, head.subarray(0, o), empty, n * 12);
}

test('an 80 MB GGUF whose one key is an array of empty arrays is refused at the nesting limit', () => {
  const f = path.join(tmp, 'arrays.gguf');
  ggufOfEmptyArrays(f, Math.floor(MB80 / 12));
  refusedQuickly(() => readGgufFile(f), /limit GGUF_LIMITS\.elements/, 1000, 200);
  const g = path.join(tmp, 'arrays-small.gguf');
  ggufOfEmptyArrays(g, GGUF_LIMITS.nested + 1);
  refusedQuickly(() => readGgufFile(g), /more than 1024 arrays nested in arrays/, 1000, 100);
});

test('a safetensors header of zero-length tensors is refused before JSON.parse builds it', () => {
  const f = path.join(tmp, 'empty.safetensors');
  const entry = Buffer.from('"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},');
  const n = Math.floor((40 << 20) / entry.length);
  const len = 1 + n * entry.length + 14;
  const head = Buffer.alloc(9);
  head.writeBigUInt64LE(BigInt(len), 0);
  head.write('{', 8);
  writeRepeated(f, head, entry, n * entry.length, Buffer.from('"z":"padding"}'));
  refusedQuickly(() => readSafetensorsFile(f), new RegExp(`more than ${SAFETENSORS_MAX_TENSORS} tensors`), 1000, 150);
});

test('renderValue: bigints, typed arrays, nested arrays, cycles and long strings never throw and stay short', () => {
  const cyc: Record<string, unknown> = { a: 1 };
  cyc.self = cyc;
  assert.equal(renderValue(2n ** 64n), '18446744073709551616n');
  assert.equal(renderValue(cyc), '{"a": 1, "self": [circular]}');
  assert.equal(renderValue(new Uint8Array(1000)), 'Uint8Array(1000) [0, 0, 0, 0, 0, 0, 0, 0, …]');
  assert.equal(renderValue([[[[[1]]]]]), '[[[[…1]]]]');
  assert.ok(renderValue('x'.repeat(10000)).length <= 80);
  assert.equal(renderValue('a"\n'), '"a\\"\\u000a"');
  assert.equal(renderValue(new BigInt64Array([1n, -2n])), 'BigInt64Array(2) [1, -2]');
});

test('a u64 past 2^53 in GGUF metadata gives an error naming file and key, not "serialize a BigInt"', () => {
  const g = golden('tiny-a');
  const kvs = grokKvsFromGolden(g.config).map(([k, v]): [string, typeof v] => (k === 'grok.block_count' ? [k, { t: 10, v: 2n ** 60n }] : [k, v]));
  kvs.push(['grok.vocab_size', u32v(g.config.vocab_size!)]);
  const f = path.join(tmp, 'bigint.gguf');
  fs.writeFileSync(f, buildGguf({ kvs, tensors: [] }).bytes);
  assert.throws(() => bindModel(openGguf(f)), (e: unknown) => {
    assert.ok(e instanceof ConfigError || e instanceof FormatError, String(e));
    assert.match((e as Error).message, /bigint\.gguf.*grok\.block_count.*1152921504606846976n/);
    return true;
  });
});

test('split names: part 1 of 0 and part 3 of 2 are refused with the rule', () => {
  for (const name of ['m-00001-of-00000.gguf', 'm-00003-of-00002.gguf', 'm-00000-of-00002.gguf']) {
    const f = path.join(tmp, name);
    fs.copyFileSync(path.join(fixtureDir('tiny-a'), 'model.gguf'), f);
    assert.throws(() => openGguf(f), (e: unknown) => e instanceof FormatError && /split file name says part \d+ of \d+: expected .* 1 ≤ k ≤ N/.test(e.message), name);
  }
});

test('a directory or a FIFO where a model file is expected is a FormatError, never EISDIR or a hang', () => {
  const d = path.join(tmp, 'dir.gguf');
  fs.mkdirSync(d);
  assert.throws(() => readGgufFile(d), /dir\.gguf: expected a regular file, found a directory/);
  const st = path.join(tmp, 'dir.safetensors');
  fs.mkdirSync(st);
  assert.throws(() => readSafetensorsFile(st), /expected a regular file, found a directory/);
  // A FIFO with no writer: opening it for reading would block forever.
  const dir = path.join(tmp, 'fifo', 'ckpt-0');
  fs.mkdirSync(dir, { recursive: true });
  const src = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  fs.rmSync(path.join(dir, 'tensor00003_000'));
  execFileSync('mkfifo', [path.join(dir, 'tensor00003_000')]);
  const t0 = performance.now();
  assert.throws(() => openCkpt(dir), /tensor00003_000: expected a regular file, found a FIFO/);
  assert.ok(performance.now() - t0 < 2000);
  const fifo = path.join(tmp, 'pipe.gguf');
  execFileSync('mkfifo', [fifo]);
  assert.throws(() => openModel(fifo), /pipe\.gguf: expected a regular file, found a FIFO/);
});

test('a link inside a model directory that leads outside it is refused; Hugging Face cache layouts are accepted', () => {
  const secret = path.join(tmp, 'secret.txt');
  fs.writeFileSync(secret, 'root:x:0:0:SECRET-CONTENT');
  const dir = path.join(tmp, 'linked', 'ckpt-0');
  fs.mkdirSync(dir, { recursive: true });
  const src = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  fs.rmSync(path.join(dir, 'tensor00002_000'));
  fs.symlinkSync(secret, path.join(dir, 'tensor00002_000'));
  assert.throws(() => openCkpt(dir), (e: unknown) => e instanceof FormatError && /tensor00002_000: is a link to .*secret\.txt, outside the model directory/.test(e.message) && !e.message.includes('SECRET'));
  // hub cache: models--x/snapshots/<rev>/model.safetensors → ../../blobs/<sha>
  const repo = path.join(tmp, 'models--org--tiny');
  fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'snapshots', 'abc123'), { recursive: true });
  fs.copyFileSync(path.join(fixtureDir('tiny-a'), 'model.safetensors'), path.join(repo, 'blobs', 'f00d'));
  fs.symlinkSync('../../blobs/f00d', path.join(repo, 'snapshots', 'abc123', 'model.safetensors'));
  assert.equal(openSafetensors(path.join(repo, 'snapshots', 'abc123')).tensors.size > 0, true);
});

test('errors never quote the bytes of the file they opened', () => {
  const f = path.join(tmp, 'leak.safetensors');
  const header = Buffer.from('root:x:0:0:SECRET-CONTENT-HERE');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(f, Buffer.concat([len, header]));
  assert.throws(() => readSafetensorsFile(f), (e: unknown) => e instanceof FormatError && /not valid UTF-8 JSON/.test(e.message) && !e.message.includes('SECRET') && !e.message.includes('root'));
  const cfgDir = path.join(tmp, 'cfgleak');
  fs.mkdirSync(cfgDir);
  fs.copyFileSync(path.join(fixtureDir('tiny-a'), 'model.safetensors'), path.join(cfgDir, 'model.safetensors'));
  fs.writeFileSync(path.join(cfgDir, 'config.json'), 'root:x:0:0:SECRET-CONTENT-HERE');
  assert.throws(() => openSafetensors(cfgDir), (e: unknown) => e instanceof FormatError && /config\.json: not valid JSON/.test(e.message) && !e.message.includes('SECRET'));
});
