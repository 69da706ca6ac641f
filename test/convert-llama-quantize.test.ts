/**
 * `grok convert` against llama.cpp's own model quantiser. test/data/quant-ref/llama-quantize.json holds,
 * for each fixture's model.gguf (F32) and each type, the type and SHA-256 of every tensor that
 * llama_model_quantize (pure: every matrix the requested type or llama.cpp's fallback) wrote — made by
 * test/data/quant-ref/model-quantize.c and digest.mjs against the libllama node-llama-cpp ships.
 * Converting the same file with our code must give the same types and the same bytes.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { convertModel } from '../src/convert/convert.js';
import { readGgufFile } from '../src/formats/gguf.js';
import type { BlockType } from '../src/quant/index.js';
import { fixtureDir } from './fixtures.js';
import { readBytes } from './gguf-builder.js';

const ref = JSON.parse(fs.readFileSync(path.resolve('test/data/quant-ref/llama-quantize.json'), 'utf8')) as Record<string, Record<string, [number, string]>>;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-llq-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const [key, tensors] of Object.entries(ref)) {
  const [fx, type] = key.split('/') as [string, BlockType];
  test(`${fx} → ${type}: same tensor types and bytes as llama.cpp's quantiser`, async () => {
    const out = path.join(tmp, `${fx}-${type}.gguf`);
    await convertModel({ source: path.join(fixtureDir(fx), 'model.gguf'), out, type });
    const f = readGgufFile(out);
    // same tensors (llama.cpp orders them its own way; order carries no meaning in GGUF)
    assert.deepEqual(f.tensors.map((t) => t.name).sort(), Object.keys(tensors).sort());
    for (const t of f.tensors) {
      const [ggmlType, sha] = tensors[t.name]!;
      assert.equal(t.ggmlType, ggmlType, `${t.name}: type`);
      assert.equal(crypto.createHash('sha256').update(readBytes(t.ref)).digest('hex'), sha, `${t.name}: bytes`);
    }
  });
}
