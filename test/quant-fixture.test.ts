/**
 * Q8_0 against a file written by other software: fixtures/tiny-b/model-q8_0.gguf was written by the `gguf`
 * Python package from the same weights as model.gguf (F32). Every Q8_0 tensor, dequantised by us, must
 * match the F32 tensor within Q8_0's rounding bound: half a step d/2 per value, plus the f16 rounding of d
 * (at most 127.5·|d − f16(d)|).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { readGgufFile } from '../src/formats/gguf.js';
import { blockFormat } from '../src/quant/index.js';
import { f16ToF32 } from '../src/quant/half.js';
import { fixtureDir } from './fixtures.js';

const DIR = fixtureDir('tiny-b');

function readBytes(file: string, offset: number, length: number): Uint8Array {
  const fd = fs.openSync(file, 'r');
  try {
    const b = new Uint8Array(length);
    fs.readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

test('tiny-b model-q8_0.gguf: Q8_0 tensors dequantise to model.gguf F32 values within d/2 (+ f16 rounding of d)', () => {
  const q8 = readGgufFile(path.join(DIR, 'model-q8_0.gguf'));
  const f32 = readGgufFile(path.join(DIR, 'model.gguf'));
  const f32ByName = new Map(f32.tensors.map((t) => [t.name, t]));
  const Q8 = blockFormat('q8_0');
  let checked = 0;
  let worst = 0; // max |err| / d over all values
  for (const t of q8.tensors) {
    if (t.ref.type !== 'q8_0') continue;
    const ref = f32ByName.get(t.name);
    if (!(ref && ref.ref.type === 'f32')) assert.fail(`${t.name}: no F32 counterpart in model.gguf`);
    assert.deepEqual(t.ref.shape, ref.ref.shape, t.name);
    const n = t.ref.shape.reduce((a, b) => a * b, 1);
    const blocks = readBytes(t.ref.file, t.ref.offset, t.ref.length);
    const y = new Float32Array(n);
    Q8.dequantize(blocks, 0, n, y, 0);
    const raw = readBytes(ref.ref.file, ref.ref.offset, ref.ref.length);
    const x = new Float32Array(raw.buffer, raw.byteOffset, n);
    for (let b = 0; b < n / 32; b++) {
      const d = f16ToF32(blocks[34 * b]! | (blocks[34 * b + 1]! << 8));
      // |x − d16·q| ≤ |x − d·q| + |q|·|d − d16| ≤ d16/2 + 127.5·|d − d16|; an f16 rounds with relative
      // error 2^-11, or absolute 2^-25 in its subnormal range (d < 2^-14)
      const bound = d / 2 + 127.5 * Math.max(d * 2 ** -11, 2 ** -25);
      for (let i = 32 * b; i < 32 * b + 32; i++) {
        const err = Math.abs(y[i]! - x[i]!);
        if (!(err <= bound)) assert.fail(`${t.name} value ${i}: ${x[i]} → ${y[i]}, |err| ${err} > ${bound}`);
        if (d > 0) worst = Math.max(worst, err / d);
      }
    }
    checked++;
  }
  if (!(checked >= 1 + 3 * 7)) assert.fail(`expected the embedding and 7 matrices per layer to be Q8_0, found ${checked}`);
  if (!(worst > 0.3)) assert.fail(`suspiciously small worst error ${worst}·d: were the F32 values themselves Q8_0-exact?`);
});

test('tiny-b: our Q8_0 quantiser reproduces the gguf package\'s scales exactly and nearly all its levels', () => {
  const q8 = readGgufFile(path.join(DIR, 'model-q8_0.gguf'));
  const f32 = readGgufFile(path.join(DIR, 'model.gguf'));
  const f32ByName = new Map(f32.tensors.map((t) => [t.name, t]));
  const Q8 = blockFormat('q8_0');
  let levels = 0;
  let differ = 0;
  for (const t of q8.tensors) {
    if (t.ref.type !== 'q8_0') continue;
    const ref = f32ByName.get(t.name)!;
    const n = t.ref.shape.reduce((a, b) => a * b, 1);
    const theirs = readBytes(t.ref.file, t.ref.offset, t.ref.length);
    const raw = readBytes(ref.ref.file, ref.ref.offset, ref.ref.length);
    const ours = new Uint8Array(theirs.length);
    Q8.quantize!(new Float32Array(raw.buffer, raw.byteOffset, n), 0, n, ours, 0);
    for (let b = 0; b < n / 32; b++) {
      // d = max|x|/127 rounded to f16: the same computation in both
      assert.equal(ours[34 * b]! | (ours[34 * b + 1]! << 8), theirs[34 * b]! | (theirs[34 * b + 1]! << 8), `${t.name} block ${b}: d`);
      for (let j = 2; j < 34; j++) {
        levels++;
        const a = (ours[34 * b + j]! << 24) >> 24;
        const c = (theirs[34 * b + j]! << 24) >> 24;
        // the gguf package divides by d where ggml multiplies by 1/d: a level may differ by one at a tie
        if (a !== c) {
          differ++;
          assert.equal(Math.abs(a - c), 1, `${t.name} block ${b} level ${j - 2}: ours ${a}, theirs ${c}`);
        }
      }
    }
  }
  if (!(differ <= levels * 1e-3)) assert.fail(`${differ} of ${levels} levels differ`);
});
