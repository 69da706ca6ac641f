/**
 * Corrupt GGUF files: each must fail fast with a FormatError whose message says what is wrong
 * (and never allocate what a corrupt length claims).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { FormatError } from '../src/base/errors.js';
import { openGguf, readGgufFile } from '../src/formats/gguf.js';
import { fixtureDir } from './fixtures.js';
import { buildGguf, f32bytes, strv, u32v, type Built, type GTensor, type GVal } from './gguf-builder.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-gguf-bad-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

function write(bytes: Uint8Array): string {
  const f = path.join(dir, `f${n++}.gguf`);
  fs.writeFileSync(f, bytes);
  return f;
}

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  const f = write(bytes);
  assert.throws(() => openGguf(f), (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(e.message.startsWith(f), 'the message names the file');
    return true;
  });
}

const small: GTensor[] = [
  { name: 'a', dims: [4, 3], type: 0, data: f32bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]) },
  { name: 'b', dims: [5], type: 0, data: f32bytes([1, 2, 3, 4, 5]) },
];
const kvs: [string, GVal][] = [['general.architecture', strv('grok')], ['x', u32v(1)]];
const base = (): Built => buildGguf({ kvs, tensors: small });

function patched(b: Built, field: string, write: (buf: Buffer, at: number) => void): Buffer {
  const buf = Buffer.from(b.bytes);
  write(buf, b.at.get(field)!);
  return buf;
}

test('the well-formed base file parses (so every failure below is due to its one corruption)', () => {
  const src = openGguf(write(base().bytes));
  assert.deepEqual(src.tensors.get('a')!.shape, [3, 4]);
});

test('bad magic, version 1, big-endian, unknown version, too short', () => {
  const b = Buffer.from(base().bytes);
  rejects(Buffer.concat([Buffer.from('GGML'), b.subarray(4)]), /not a GGUF file: magic bytes are 47 47 4d 4c, expected 47 47 55 46/);
  rejects(patched(base(), 'version', (x, at) => x.writeUInt32LE(1, at)), /GGUF version 1 .* not supported/);
  rejects(patched(base(), 'version', (x, at) => x.writeUInt32BE(3, at)), /big-endian GGUF/);
  rejects(patched(base(), 'version', (x, at) => x.writeUInt32LE(7, at)), /unsupported GGUF version 7/);
  rejects(Buffer.from('GG'), /too short/);
  rejects(Buffer.alloc(0), /too short/);
});

test('huge counts and lengths fail before allocating', () => {
  const b = base();
  rejects(patched(b, 'tensor_count', (x, at) => x.writeBigUInt64LE(2n ** 60n, at)), /larger than any file|claims \d+ tensors/);
  rejects(patched(b, 'tensor_count', (x, at) => x.writeBigUInt64LE(2n ** 40n, at)), /claims 1099511627776 tensors/);
  rejects(patched(b, 'kv_count', (x, at) => x.writeBigUInt64LE(2n ** 40n, at)), /claims 1099511627776 metadata entries/);
  // A metadata string claiming 2^60 bytes (the key, then the value).
  rejects(patched(b, 'kv:general.architecture:len', (x, at) => x.writeBigUInt64LE(2n ** 60n, at)), /larger than any file/);
  rejects(patched(b, 'kv:general.architecture:value', (x, at) => x.writeBigUInt64LE(2n ** 50n, at)), /claims 1125899906842624 bytes, but only \d+ bytes remain/);
  rejects(patched(b, 't:a:len', (x, at) => x.writeBigUInt64LE(2n ** 33n, at)), /name of tensor 0 .* claims 8589934592 bytes/);
  // An array claiming 2^40 u32 elements.
  const arr = buildGguf({ kvs: [['arr', { t: 9, et: 4, items: [u32v(1), u32v(2)] }]], tensors: [] });
  rejects(patched(arr, 'kv:arr:value', (x, at) => x.writeBigUInt64LE(2n ** 40n, at + 4)), /claims 1099511627776 elements/);
  // Arrays nested deeper than any real key needs.
  let v: GVal = u32v(1);
  for (let i = 0; i < 12; i++) v = { t: 9, et: i === 0 ? 4 : 9, items: [v] };
  rejects(buildGguf({ kvs: [['deep', v]], tensors: [] }).bytes, /nested more than 8 deep/);
});

test('tensor infos: unknown and unsupported types, dims, block multiples, offsets', () => {
  const b = base();
  rejects(patched(b, 't:a:type', (x, at) => x.writeUInt32LE(99, at)), /tensor 'a' at offset \d+: unknown ggml type id 99/);
  rejects(patched(b, 't:a:type', (x, at) => x.writeUInt32LE(35, at)), /tensor 'a': ggml type TQ2_0 \(id 35\) is not supported/);
  rejects(patched(b, 't:a:type', (x, at) => x.writeUInt32LE(8, at)), /tensor 'a': row length 4 is not a multiple of the Q8_0 block size 32/);
  rejects(patched(b, 't:a:ndims', (x, at) => x.writeUInt32LE(5, at)), /tensor 'a': 5 dimensions \(expected 1 to 4\)/);
  rejects(patched(b, 't:a:ndims', (x, at) => x.writeUInt32LE(0, at)), /tensor 'a': 0 dimensions/);
  rejects(patched(b, 't:b:offset', (x, at) => x.writeBigUInt64LE(2n ** 40n, at)), /tensor 'b' .* extends past the end of the file/);
  rejects(patched(b, 't:b:offset', (x, at) => x.writeBigUInt64LE(33n, at)), /tensor 'b': data offset 33 is not a multiple of the alignment 32/);
  rejects(patched(b, 't:b:offset', (x, at) => x.writeBigUInt64LE(32n, at)), /tensors 'a' .* and 'b' .* overlap/);
  // Inconsistent shape: a dimension that makes the tensor larger than the bytes that follow it.
  rejects(patched(b, 't:a:dims', (x, at) => x.writeBigUInt64LE(400n, at)), /tensor 'a' \(F32 \[400, 3\], 4800 bytes .*\) extends past the end/);
  rejects(patched(b, 't:a:dims', (x, at) => x.writeBigUInt64LE(2n ** 52n, at + 8)), /dims \[4, 4503599627370496…\] hold more elements than any file/);
});

test('metadata: bad value type, bad boolean, bad UTF-8, duplicate key, bad alignment', () => {
  const b = base();
  rejects(patched(b, 'kv:x:type', (x, at) => x.writeUInt32LE(13, at)), /metadata 'x' at offset \d+: unknown value type 13/);
  rejects(patched(buildGguf({ kvs: [['flag', { t: 7, v: true }]], tensors: [] }), 'kv:flag:value', (x, at) => x.writeUInt8(2, at)), /boolean byte must be 0 or 1, got 2/);
  const s = buildGguf({ kvs: [['s', strv('ab')]], tensors: [] });
  rejects(patched(s, 'kv:s:value', (x, at) => x.writeUInt8(0xff, at + 8)), /metadata 's' at offset \d+ is not valid UTF-8/);
  rejects(buildGguf({ kvs: [['k', u32v(1)], ['k', u32v(2)]], tensors: [] }).bytes, /metadata key 'k' occurs twice/);
  rejects(buildGguf({ kvs: [['general.alignment', u32v(24)]], tensors: [] }).bytes, /general\.alignment must be a power of two, got 24/);
  rejects(buildGguf({ kvs: [['general.alignment', strv('32')]], tensors: [] }).bytes, /general\.alignment' must be an integer/);
  rejects(buildGguf({ kvs: [], tensors: [small[0]!, { ...small[1]!, name: 'a' }] }).bytes, /tensor 'a' occurs twice/);
});

test('truncation at every offset of a small file and at 300 offsets of tiny-a fails with FormatError', () => {
  const b = base();
  const whole = b.bytes;
  // Tensor 'b' (20 bytes) is the last one, at relative offset 64; only the padding after it may be cut.
  const needed = b.at.get('data')! + 64 + 20;
  const f = path.join(dir, 'trunc.gguf');
  for (let len = 0; len < needed; len++) {
    fs.writeFileSync(f, whole.subarray(0, len));
    assert.throws(() => readGgufFile(f), (e: unknown) => e instanceof FormatError && /truncated|too short|past the end|end of file|claims/.test(e.message), `length ${len}`);
  }
  // tiny-a: its header (13,248 bytes) and data; copy a prefix and cut it at spread-out offsets.
  const a = fs.readFileSync(path.join(fixtureDir('tiny-a'), 'model.gguf'));
  for (let i = 0; i < 300; i++) {
    const len = i < 200 ? Math.floor((i * 13248) / 200) : Math.floor(13248 + ((i - 200) * (a.length - 13248)) / 100);
    fs.writeFileSync(f, a.subarray(0, len));
    assert.throws(() => readGgufFile(f), FormatError, `length ${len}`);
  }
});

test('a directory or a missing file gives a FormatError', () => {
  assert.throws(() => openGguf(path.join(dir, 'nope.gguf')), (e: unknown) => e instanceof FormatError && /cannot open/.test(e.message));
});
