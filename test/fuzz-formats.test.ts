/**
 * Property tests over mutated fixture bytes: whatever the bytes, the GGUF and safetensors readers either
 * succeed or throw FormatError (the binders may also throw ConfigError for impossible hyper-parameters),
 * and every parse is quick. Mutations target the header, where all lengths and offsets live; the data
 * section is opaque to the readers. Runs are seeded so a failure replays.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { ConfigError, FormatError } from '../src/base/errors.js';
import { openGguf } from '../src/formats/gguf.js';
import { openSafetensors } from '../src/formats/safetensors.js';
import { bindGguf } from '../src/model/map-gguf.js';
import { bindHf } from '../src/model/map-hf.js';
import { fixtureDir } from './fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-fuzz-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs `f`; passes when it returns or throws one of `allowed`, and always within `ms`. */
function expectClean(f: () => void, allowed: (e: unknown) => boolean, ms = 2000): 'ok' | 'error' {
  const t0 = performance.now();
  let r: 'ok' | 'error' = 'ok';
  try {
    f();
  } catch (e) {
    if (!allowed(e)) throw new Error(`unexpected ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
    r = 'error';
  }
  const dt = performance.now() - t0;
  assert.ok(dt < ms, `parse took ${dt.toFixed(0)} ms`);
  return r;
}

const isFormatError = (e: unknown) => e instanceof FormatError;
const isFormatOrConfig = (e: unknown) => e instanceof FormatError || e instanceof ConfigError;

/** A byte edit: one byte, or a little-endian u64 (the type of every GGUF count, length and offset). */
const edit = (limit: number) => fc.oneof(
  fc.record({ pos: fc.nat(limit - 1), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    pos: fc.nat(limit - 8),
    u64: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 31n, 32n, 2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 60n, 2n ** 63n)),
  }),
);
type Edit = { pos: number; byte: number } | { pos: number; u64: bigint };

function apply(buf: Buffer, edits: Edit[]): void {
  for (const e of edits) {
    if ('byte' in e) buf[e.pos] = e.byte;
    else buf.writeBigUInt64LE(e.u64, e.pos);
  }
}

test('GGUF: mutated tiny-a headers parse or fail with FormatError, fast', () => {
  const orig = fs.readFileSync(path.join(fixtureDir('tiny-a'), 'model.gguf'));
  const headerLen = 13248 + 64; // tensor infos end at 13,246; include the start of the data section
  const file = path.join(tmp, 'fuzz.gguf');
  fs.writeFileSync(file, orig);
  const fd = fs.openSync(file, 'r+');
  let parsed = 0;
  try {
    fc.assert(fc.property(fc.array(edit(headerLen), { minLength: 1, maxLength: 6 }), (edits) => {
      const h = Buffer.from(orig.subarray(0, headerLen));
      apply(h, edits);
      fs.writeSync(fd, h, 0, h.length, 0);
      try {
        if (expectClean(() => openGguf(file), isFormatError) === 'ok') {
          parsed++;
          expectClean(() => bindGguf(openGguf(file)), isFormatOrConfig);
        }
      } finally {
        fs.writeSync(fd, orig, 0, headerLen, 0);
      }
    }), { numRuns: 400, seed: 1234 });
  } finally {
    fs.closeSync(fd);
  }
  // Some edits land on bytes no check can see (a float value, a letter of a key): those still parse.
  assert.ok(parsed > 0);
});

test('GGUF: truncated and mutated prefixes of tiny-b q8_0 fail with FormatError', () => {
  const orig = fs.readFileSync(path.join(fixtureDir('tiny-b'), 'model-q8_0.gguf'));
  const file = path.join(tmp, 'trunc.gguf');
  fc.assert(fc.property(fc.integer({ min: 0, max: orig.length - 1 }), fc.array(edit(256), { maxLength: 3 }), (len, edits) => {
    const b = Buffer.from(orig.subarray(0, Math.min(len, 30000)));
    if (b.length >= 256) apply(b, edits);
    fs.writeFileSync(file, b);
    // A prefix of the file can never hold every tensor (the last one ends at the end of the file).
    assert.equal(expectClean(() => openGguf(file), isFormatError), 'error');
  }), { numRuns: 150, seed: 99 });
});

test('GGUF: random bytes after a valid magic and version fail with FormatError', () => {
  const file = path.join(tmp, 'random.gguf');
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), (body) => {
    fs.writeFileSync(file, Buffer.concat([Buffer.from('GGUF'), Buffer.from([3, 0, 0, 0]), body]));
    expectClean(() => openGguf(file), isFormatError);
  }), { numRuns: 300, seed: 7 });
});

test('safetensors: mutated tiny-b headers parse or fail with FormatError, fast', () => {
  const orig = fs.readFileSync(path.join(fixtureDir('tiny-b'), 'model.safetensors'));
  const headerEnd = 8 + Number(orig.readBigUInt64LE(0));
  const file = path.join(tmp, 'fuzz.safetensors');
  fs.writeFileSync(file, orig);
  const fd = fs.openSync(file, 'r+');
  // Digits swapped for digits keep the JSON valid but move offsets and shapes; other bytes mostly break it.
  const jsonEdit = fc.oneof(
    fc.record({ pos: fc.integer({ min: 8, max: headerEnd - 1 }), digit: fc.integer({ min: 0, max: 9 }) }),
    fc.record({ pos: fc.integer({ min: 0, max: headerEnd - 1 }), byte: fc.integer({ min: 0, max: 255 }) }),
  );
  let parsed = 0;
  try {
    fc.assert(fc.property(fc.array(jsonEdit, { minLength: 1, maxLength: 4 }), (edits) => {
      const h = Buffer.from(orig.subarray(0, headerEnd));
      for (const e of edits) {
        if ('digit' in e) {
          if (h[e.pos]! >= 0x30 && h[e.pos]! <= 0x39) h[e.pos] = 0x30 + e.digit;
        } else h[e.pos] = e.byte;
      }
      fs.writeSync(fd, h, 0, h.length, 0);
      try {
        if (expectClean(() => openSafetensors(file), isFormatError) === 'ok') {
          parsed++;
          expectClean(() => bindHf(openSafetensors(file), path.join(fixtureDir('tiny-b'), 'golden.json')), isFormatOrConfig);
        }
      } finally {
        fs.writeSync(fd, orig, 0, headerEnd, 0);
      }
    }), { numRuns: 300, seed: 4321 });
  } finally {
    fs.closeSync(fd);
  }
  assert.ok(parsed > 0);
});
