/**
 * GgufWriter against two things it shares no code with: the hand-written layout builder of
 * test/gguf-builder.ts (ggml docs/gguf.md byte by byte) and the GGUF reader (src/formats/gguf.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { GgufWriter } from '../src/formats/gguf-writer.js';
import { readGgufFile } from '../src/formats/gguf.js';
import { buildGguf, f32bytes, type GVal } from './gguf-builder.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-gguf-writer-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const q8block = (d: number, q: number[]) => {
  const b = new Uint8Array(34);
  new DataView(b.buffer).setUint16(0, d, true);
  q.forEach((v, i) => { b[2 + i] = v & 0xff; });
  return b;
};

test('writer output is byte-identical to the hand-built layout of ggml docs/gguf.md', async () => {
  const a = f32bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]); // numpy (3, 4) → dims [4, 3], 48 bytes
  const q = new Uint8Array([...q8block(0x3c00, [1, -1, 127]), ...q8block(0x3800, [-127, 5])]); // Q8_0 2×32, 68 bytes
  const b = new Uint8Array([0x00, 0x3c, 0x00, 0x40, 0x00, 0xc0, 0x00, 0x00, 0xff, 0x7b]); // F16 (5)
  const kvs: [string, GVal][] = [
    ['general.architecture', { t: 8, v: 'grok' }],
    ['k.u8', { t: 0, v: 200 }], ['k.i8', { t: 1, v: -5 }], ['k.u16', { t: 2, v: 60000 }], ['k.i16', { t: 3, v: -300 }],
    ['k.u32', { t: 4, v: 4000000000 }], ['k.i32', { t: 5, v: -2000000000 }], ['k.f32', { t: 6, v: 0.1 }],
    ['k.bool', { t: 7, v: true }], ['k.u64', { t: 10, v: 2n ** 40n }], ['k.i64', { t: 11, v: -(2n ** 40n) }], ['k.f64', { t: 12, v: 0.1 }],
    ['k.strs', { t: 9, et: 8, items: [{ t: 8, v: 'a' }, { t: 8, v: '▁é' }, { t: 8, v: '' }] }],
    ['k.f32s', { t: 9, et: 6, items: [{ t: 6, v: 1.5 }, { t: 6, v: -2 }] }],
    ['k.i32s', { t: 9, et: 5, items: [{ t: 5, v: 1 }, { t: 5, v: -6 }] }],
  ];
  const expected = buildGguf({
    kvs,
    tensors: [{ name: 'a', dims: [4, 3], type: 0, data: a }, { name: 'q', dims: [32, 2], type: 8, data: q }, { name: 'b', dims: [5], type: 1, data: b }],
  }).bytes;

  const file = path.join(tmp, 'layout.gguf');
  const w = new GgufWriter(file);
  w.addMetadata('general.architecture', 'string', 'grok');
  w.addMetadata('k.u8', 'u8', 200); w.addMetadata('k.i8', 'i8', -5); w.addMetadata('k.u16', 'u16', 60000); w.addMetadata('k.i16', 'i16', -300);
  w.addMetadata('k.u32', 'u32', 4000000000); w.addMetadata('k.i32', 'i32', -2000000000); w.addMetadata('k.f32', 'f32', 0.1);
  w.addMetadata('k.bool', 'bool', true); w.addMetadata('k.u64', 'u64', 2n ** 40n); w.addMetadata('k.i64', 'i64', -(2n ** 40n)); w.addMetadata('k.f64', 12, 0.1);
  w.addMetadata('k.strs', 'string[]', ['a', '▁é', '']);
  w.addMetadata('k.f32s', 'f32[]', new Float32Array([1.5, -2]));
  w.addMetadata('k.i32s', 'i32[]', [1, -6]);
  assert.equal(w.addTensorInfo('a', 'f32', [3, 4]), 48);
  assert.equal(w.addTensorInfo('q', 'q8_0', [2, 32]), 68);
  assert.equal(w.addTensorInfo('b', 'f16', [5]), 10);
  await w.writeHeader();
  await w.writeTensorData('a', a);
  await w.writeTensorData('q', [q.subarray(0, 10), q.subarray(10)]); // chunks
  await w.writeTensorData('b', (async function* () { yield b; })());
  await w.close();
  const got = fs.readFileSync(file);
  assert.equal(got.length, expected.length);
  assert.ok(got.equals(expected), `first differing byte ${got.findIndex((v, i) => v !== expected[i])}`);

  // The reader sees the GGUF spec's example offsets: a @0 (48 → 64), q @64 (68 → 96), b @160.
  const r = readGgufFile(file);
  assert.deepEqual(r.tensors.map((t) => [t.name, t.dims, t.ggmlType, t.relOffset]), [['a', [4, 3], 0, 0], ['q', [32, 2], 8, 64], ['b', [5], 1, 160]]);
  assert.deepEqual(r.tensors.map((t) => t.ref.shape), [[3, 4], [2, 32], [5]]);
  assert.equal(r.metadata.get('k.i64'), -(2 ** 40));
  assert.deepEqual(r.metadata.get('k.strs'), ['a', '▁é', '']);
  assert.equal(r.metadata.get('k.bool'), true);
});

test('alignment option: general.alignment is written and every tensor starts on a multiple of it', async () => {
  const file = path.join(tmp, 'align.gguf');
  const w = new GgufWriter(file, { alignment: 64 });
  w.addMetadata('general.architecture', 'string', 'grok');
  w.addTensorInfo('x', 'f32', [3]);
  w.addTensorInfo('y', 'f32', [2, 2]);
  await w.writeHeader();
  await w.writeTensorData('x', f32bytes([1, 2, 3]));
  await w.writeTensorData('y', f32bytes([4, 5, 6, 7]));
  await w.close();
  const r = readGgufFile(file);
  assert.equal(r.alignment, 64);
  assert.equal(r.metadata.get('general.alignment'), 64);
  assert.equal(r.dataOffset % 64, 0);
  assert.deepEqual(r.tensors.map((t) => t.relOffset), [0, 64]);
  const buf = fs.readFileSync(file);
  assert.deepEqual([...new Float32Array(new Uint8Array(buf.subarray(r.dataOffset + 64, r.dataOffset + 80)).buffer)], [4, 5, 6, 7]);
});

test('writer rejects misuse with messages that name the key or tensor', async () => {
  const file = path.join(tmp, 'bad.gguf');
  const w = new GgufWriter(file);
  w.addMetadata('a', 'u32', 1);
  assert.throws(() => w.addMetadata('a', 'u32', 2), /'a' added twice/);
  assert.throws(() => w.addMetadata('b', 'u8', 256), /expected an integer for u8/);
  assert.throws(() => w.addMetadata('c', 'i32', 1.5), /expected an integer/);
  assert.throws(() => w.addMetadata('d', 'string', 5), /expected a string/);
  assert.throws(() => w.addMetadata('e', 'f32[]', 5), /expected an array/);
  assert.throws(() => w.addMetadata('f', 9, 5), /not a scalar GGUF type/);
  assert.throws(() => w.addTensorInfo('t', 'q8_0', [2, 33]), /innermost dimension 33 is not a multiple of q8_0's block size 32/);
  assert.throws(() => w.addTensorInfo('t', 'f32', [0]), /positive integer dimensions/);
  assert.throws(() => w.addTensorInfo('x'.repeat(64), 'f32', [1]), /must be 1 … 63 bytes/);
  w.addTensorInfo('t1', 'f32', [2]);
  w.addTensorInfo('t2', 'f32', [1]);
  assert.throws(() => w.addTensorInfo('t1', 'f32', [2]), /'t1' added twice/);
  await assert.rejects(w.writeTensorData('t1', new Uint8Array(8)), /before writeHeader/);
  await w.writeHeader();
  assert.throws(() => w.addMetadata('late', 'u32', 1), /after writeHeader/);
  await assert.rejects(w.writeHeader(), /called twice/);
  await assert.rejects(w.writeTensorData('t2', new Uint8Array(4)), /expected tensor 't1' next/);
  await assert.rejects(w.writeTensorData('t1', new Uint8Array(12)), /more than the 8 bytes/);
  await w.abort();
  assert.equal(fs.existsSync(file), false);

  const w2 = new GgufWriter(path.join(tmp, 'short.gguf'));
  w2.addTensorInfo('t', 'f32', [2]);
  w2.addTensorInfo('u', 'f32', [2]);
  await w2.writeHeader();
  await assert.rejects(w2.writeTensorData('t', new Uint8Array(4)), /got 4 bytes, its type f32 and shape \[2\] need 8/);
  await w2.abort();
  const w3 = new GgufWriter(path.join(tmp, 'missing.gguf'));
  w3.addTensorInfo('t', 'f32', [2]);
  await w3.writeHeader();
  await assert.rejects(w3.close(), /1 tensor\(s\) declared but not written, starting with 't'/);
  await w3.abort();
  assert.throws(() => new GgufWriter(path.join(tmp, 'x.gguf'), { alignment: 24 }), /power of two/);
});

test('offsets past 4 GiB are written as full u64 values (header of a 5 GiB tensor followed by another)', async () => {
  const file = path.join(tmp, 'big.gguf');
  const w = new GgufWriter(file);
  const big = 5 * 2 ** 30 / 4; // 5 GiB of f32
  assert.equal(w.addTensorInfo('a', 'f32', [big]), 5 * 2 ** 30);
  w.addTensorInfo('b', 'q8_0', [64]);
  assert.equal(w.dataSize, 5 * 2 ** 30 + 96);
  await w.writeHeader(); // no data: only the header (in the temporary file until close) is inspected
  const h = fs.readFileSync(w.writingTo!);
  await w.abort();
  // layout: magic, version, 2 × u64 counts, then 'a': u64 len 1, 'a', u32 ndims, u64 dim, u32 type, u64 offset
  let o = 24;
  assert.equal(h.readBigUInt64LE(o), 1n); o += 9;
  assert.equal(h.readUInt32LE(o), 1); o += 4;
  assert.equal(h.readBigUInt64LE(o), BigInt(big)); o += 8;
  assert.equal(h.readUInt32LE(o), 0); o += 4;
  assert.equal(h.readBigUInt64LE(o), 0n); o += 8;
  assert.equal(h.readBigUInt64LE(o), 1n); o += 9; // 'b'
  assert.equal(h.readUInt32LE(o), 1); o += 4;
  assert.equal(h.readBigUInt64LE(o), 64n); o += 8;
  assert.equal(h.readUInt32LE(o), 8); o += 4;
  assert.equal(h.readBigUInt64LE(o), 5n * 2n ** 30n);
});
