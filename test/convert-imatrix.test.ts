/**
 * `grok convert --imatrix`: llama.cpp importance matrices in both file formats, checked the way llama-quantize
 * checks them and more (test/convert-recipes.test.ts compares the quantised bytes with llama.cpp's).
 * The GGUF format gives the same values, hence the same bytes, as the legacy one; a damaged or mismatched file
 * is refused with the file, the entry and the numbers named.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { convertModel } from '../src/convert/convert.js';
import { synthModel, TINY } from '../src/convert/synth.js';
import { GgufWriter } from '../src/formats/gguf-writer.js';
import { readGgufFile } from '../src/formats/gguf.js';
import { readImatrix } from '../src/formats/imatrix.js';
import { grokTensorPlan } from '../src/model/gguf-grok.js';
import { blockFormat, rowBytes } from '../src/quant/index.js';
import { quantizeRowsWeighted } from '../src/quant/weighted.js';
import { grok } from './cli-helpers.js';
import { readBytes } from './gguf-builder.js';
import { writeImatrixDat } from './recipe-models.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-imatrix-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const config = { ...TINY, nLayers: 2, nExperts: 4, ffnSize: 256 };
const model = path.join(tmp, 'model.gguf');
const dat = path.join(tmp, 'im.dat');
before(async () => {
  await synthModel({ config, type: 'f32', out: model, seed: 3 });
  writeImatrixDat(dat, config, 3);
});

/** The legacy file's entries as a GGUF imatrix: in_sum2 = the sums, counts = ncall per expert (same values after / count). */
async function writeGgufImatrix(file: string, opts: { metadata?: boolean; drop?: 'counts'; countsType?: 'f16' } = {}): Promise<void> {
  const b = fs.readFileSync(dat);
  let at = 4;
  const w = new GgufWriter(file);
  w.addMetadata('general.type', 'string', 'imatrix');
  if (opts.metadata !== false) {
    w.addMetadata('imatrix.datasets', 'string[]', ['synthetic-calibration.txt']);
    w.addMetadata('imatrix.chunk_count', 'u32', 10);
    w.addMetadata('imatrix.chunk_size', 'u32', 512);
  }
  const data: [string, Uint8Array][] = [];
  for (let e = 0; e < b.readInt32LE(0); e++) {
    const len = b.readInt32LE(at);
    const name = b.toString('utf8', at + 4, at + 4 + len);
    at += 4 + len;
    const ncall = b.readInt32LE(at);
    const nval = b.readInt32LE(at + 4);
    const sums = new Uint8Array(b.subarray(at + 8, at + 8 + 4 * nval));
    at += 8 + 4 * nval;
    const t = grokTensorPlan(config).find((p) => p.name === name)!;
    const experts = t.kind === 'experts' ? config.nExperts : 1;
    w.addTensorInfo(`${name}.in_sum2`, 'f32', [experts, t.nIn]);
    data.push([`${name}.in_sum2`, sums]);
    if (opts.drop !== 'counts') {
      w.addTensorInfo(`${name}.counts`, opts.countsType ?? 'f32', [1, experts]);
      const counts = opts.countsType ? new Uint8Array(2 * experts) : new Uint8Array(new Float32Array(experts).fill(ncall).buffer);
      data.push([`${name}.counts`, counts]);
    }
  }
  await w.writeHeader();
  for (const [name, bytes] of data) await w.writeTensorData(name, bytes);
  await w.close();
}

test('a GGUF importance matrix gives the legacy one\'s values, and the same quantised file', async () => {
  const gg = path.join(tmp, 'im.gguf');
  await writeGgufImatrix(gg);
  const a = readImatrix(dat);
  const b = readImatrix(gg);
  assert.equal(a.format, 'legacy');
  assert.equal(b.format, 'gguf');
  assert.deepEqual([...a.entries.keys()].sort(), [...b.entries.keys()].sort());
  for (const [k, v] of a.entries) assert.deepEqual(b.entries.get(k), v, k);
  assert.deepEqual([a.chunks, a.datasets], [10, ['synthetic-calibration.txt']]);
  const outA = path.join(tmp, 'a.gguf');
  const outB = path.join(tmp, 'b.gguf');
  const ra = await convertModel({ source: model, out: outA, recipe: 'Q4_K_M', imatrix: dat, threads: 2 });
  await convertModel({ source: model, out: outB, recipe: 'Q4_K_M', imatrix: gg });
  assert.ok(fs.readFileSync(outA).equals(fs.readFileSync(outB)));
  // every K-quant matrix weighted; token_embd has no entry (llama-imatrix records matmul inputs, not row lookups)
  assert.deepEqual(ra.imatrix, { used: 14, missing: ['token_embd.weight'] });
  const plain = path.join(tmp, 'plain.gguf');
  await convertModel({ source: model, out: plain, recipe: 'Q4_K_M' });
  assert.ok(!fs.readFileSync(plain).equals(fs.readFileSync(outA)), 'the weights change the bytes');
});

test('damaged or mismatched importance matrices are refused, naming the file, the entry and the numbers', async () => {
  const good = fs.readFileSync(dat);
  const write = (name: string, b: Buffer) => { const f = path.join(tmp, name); fs.writeFileSync(f, b); return f; };
  const refuses = (file: string, re: RegExp) => {
    assert.throws(() => readImatrix(file), (e: Error) => e.message.includes(file) && re.test(e.message), file);
  };
  refuses(write('empty.dat', Buffer.alloc(0)), /truncated: the entry count needs 4 bytes/);
  refuses(write('zero.dat', Buffer.from([0, 0, 0, 0])), /0 entries/);
  refuses(write('cut-name.dat', good.subarray(0, 10)), /entry 1 of \d+: the name needs \d+ bytes/);
  refuses(write('cut-values.dat', good.subarray(0, 100)), /entry 'token_embd.weight'|entry '[^']+': \d+ values needs/);
  const badLen = Buffer.from(good); badLen.writeInt32LE(-5, 4);
  refuses(write('bad-len.dat', badLen), /entry 1 of \d+: name length -5/);
  const badN = Buffer.from(good); badN.writeInt32LE(0, 4 + 4 + badN.readInt32LE(4) + 4);
  refuses(write('bad-nval.dat', badN), /entry '[^']+': 0 values/);
  refuses(write('trailing.dat', Buffer.concat([good, Buffer.from([1, 2, 3])])), /3 unexpected bytes after the trailer/);
  const dup = Buffer.from(good);
  dup.writeInt32LE(good.readInt32LE(0) + 1, 0);
  const first = good.subarray(4, 4 + 12 + good.readInt32LE(4) + 4 * good.readInt32LE(4 + 4 + good.readInt32LE(4) + 4));
  refuses(write('dup.dat', Buffer.concat([dup.subarray(0, 4), first, dup.subarray(4)])), /appears twice/);
  const noMeta = path.join(tmp, 'nometa.gguf');
  await writeGgufImatrix(noMeta, { metadata: false });
  refuses(noMeta, /needs imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size/);
  const noCounts = path.join(tmp, 'nocounts.gguf');
  await writeGgufImatrix(noCounts, { drop: 'counts' });
  refuses(noCounts, /has in_sum2 but no counts/);
  const f16 = path.join(tmp, 'f16counts.gguf');
  await writeGgufImatrix(f16, { countsType: 'f16' });
  refuses(f16, /counts must be F32, it is f16/);

  // an entry of the wrong size for its tensor (another model's imatrix)
  const other = path.join(tmp, 'other.dat');
  writeImatrixDat(other, { ...config, nExperts: 8 }, 3);
  await assert.rejects(convertModel({ source: model, out: path.join(tmp, 'x.gguf'), recipe: 'Q4_K_M', imatrix: other }),
    /entry 'blk\.0\.ffn_gate_exps\.weight' has 2048 values, the tensor needs 256 × 4 experts/);
  await assert.rejects(convertModel({ source: model, out: path.join(tmp, 'x.gguf'), recipe: 'Q2_K_S' }), /Q2_K_S needs an importance matrix/);
  assert.ok(!fs.existsSync(path.join(tmp, 'x.gguf')));
});

// Q4_0 and IQ4_XS (as the published Grok-1 GGUFs were made): every matrix's bytes are its rows quantised with
// llama.cpp's quantize_<type>(…, quant_weights) — quantizeRowsWeighted, which test/quant-llama.test.ts checks
// against llama.cpp itself — each expert with its own slice of the entry; token_embd (no entry) without weights.
// test/convert-recipes.test.ts compares whole converted models with llama_model_quantize's.
for (const type of ['q4_0', 'iq4_xs'] as const) {
  test(`--imatrix with ${type}: each matrix (each expert) quantised with its importance weights through the worker pool`, async () => {
    const out = path.join(tmp, `${type}.gguf`);
    const r = await convertModel({ source: model, out, type, imatrix: dat, threads: 2 });
    assert.deepEqual(r.imatrix, { used: 14, missing: ['token_embd.weight'] });
    const im = readImatrix(dat);
    const src = new Map(readGgufFile(model).tensors.map((t) => [t.name, t]));
    const f = blockFormat(type);
    let weighted = 0;
    for (const t of readGgufFile(out).tensors) {
      const spec = grokTensorPlan(config).find((p) => p.name === t.name)!;
      if (spec.kind === 'vector' || spec.kind === 'router') continue;
      assert.equal(t.ggmlType, f.ggmlId, t.name);
      const b = readBytes(src.get(t.name)!.ref);
      const x = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
      const experts = spec.kind === 'experts' ? config.nExperts : 1;
      const rb = rowBytes(f, spec.nIn);
      const want = new Uint8Array(experts * spec.nOut * rb);
      const w = im.entries.get(t.name);
      for (let e = 0; e < experts; e++) {
        const at = e * spec.nOut;
        if (w) quantizeRowsWeighted(type, x, at * spec.nIn, spec.nIn, spec.nOut, want, at * rb, w.subarray(e * spec.nIn, (e + 1) * spec.nIn));
        else for (let j = at; j < at + spec.nOut; j++) f.quantize!(x, j * spec.nIn, spec.nIn, want, j * rb);
      }
      assert.ok(Buffer.from(want).equals(readBytes(t.ref)), `${t.name}: bytes`);
      if (w) weighted++;
    }
    assert.equal(weighted, 14);
  });
}

// IQ1_S (a grid-search i-quant written only with weights; its TypeScript quantiser runs in the workers): every
// matrix weighted per expert; token_embd, which the imatrix has no entry for, given Q2_K as llama.cpp's IQ1_S
// mixture gives it.
test('--imatrix with iq1_s (--embd-type q2_k): each matrix (each expert) quantised with its importance weights', async () => {
  const small = { ...config, nLayers: 1, nExperts: 2 }; // the TypeScript grid search is slow: a smaller model
  const src1 = path.join(tmp, 'small.gguf');
  const dat1 = path.join(tmp, 'small.dat');
  await synthModel({ config: small, type: 'f32', out: src1, seed: 5 });
  writeImatrixDat(dat1, small, 5);
  const out = path.join(tmp, 'iq1_s.gguf');
  const r = await convertModel({ source: src1, out, type: 'iq1_s', embdType: 'q2_k', imatrix: dat1, threads: 2 });
  assert.deepEqual(r.imatrix, { used: 7, missing: ['token_embd.weight'] });
  const im = readImatrix(dat1);
  const src = new Map(readGgufFile(src1).tensors.map((t) => [t.name, t]));
  const f = blockFormat('iq1_s');
  let weighted = 0;
  for (const t of readGgufFile(out).tensors) {
    const spec = grokTensorPlan(small).find((p) => p.name === t.name)!;
    if (spec.kind === 'vector' || spec.kind === 'router') continue;
    if (spec.kind === 'embedding') { assert.equal(t.ggmlType, blockFormat('q2_k').ggmlId); continue; }
    assert.equal(t.ggmlType, f.ggmlId, t.name);
    const b = readBytes(src.get(t.name)!.ref);
    const x = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    const experts = spec.kind === 'experts' ? small.nExperts : 1;
    const rb = rowBytes(f, spec.nIn);
    const want = new Uint8Array(experts * spec.nOut * rb);
    const w = im.entries.get(t.name)!;
    for (let e = 0; e < experts; e++) {
      quantizeRowsWeighted('iq1_s', x, e * spec.nOut * spec.nIn, spec.nIn, spec.nOut, want, e * spec.nOut * rb, w.subarray(e * spec.nIn, (e + 1) * spec.nIn));
    }
    assert.ok(Buffer.from(want).equals(readBytes(t.ref)), `${t.name}: bytes`);
    weighted++;
  }
  assert.equal(weighted, 7);
});

test('the very-low-bit i-quants are refused without an importance matrix, as llama-quantize refuses them', async () => {
  const x = path.join(tmp, 'x.gguf');
  for (const type of ['iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs', 'iq1_s', 'iq1_m'] as const) {
    await assert.rejects(convertModel({ source: model, out: x, type }),
      new RegExp(`^Error: ${type.toUpperCase()} needs an importance matrix: give --imatrix FILE`));
  }
  await assert.rejects(convertModel({ source: model, out: x, recipe: 'IQ2_XS' }), /IQ2_XS \(blk\.0\.attn_q\.weight: IQ2_XS\) needs an importance matrix/);
  // IQ2_XS has no quantiser without weights: token_embd (no entry in the imatrix) needs another type
  await assert.rejects(convertModel({ source: model, out: x, type: 'iq2_xs', imatrix: dat }),
    /token_embd\.weight: IQ2_XS is only written with importance weights, and there are none for this tensor .*--embd-type/);
  assert.ok(!fs.existsSync(x));
  const r = await grok('convert', model, '--type', 'iq2_xxs', '--out', x);
  assert.equal(r.code, 1);
  assert.match(r.err, /IQ2_XXS needs an importance matrix: give --imatrix FILE/);
  assert.doesNotMatch(r.err, /\n\s+at /); // no stack
});

test('grok convert --imatrix: says how many tensors the matrix weighted', async () => {
  const out = path.join(tmp, 'cli.gguf');
  const r = await grok('convert', model, '--type', 'Q4_K_M', '--imatrix', dat, '--out', out);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /imatrix: .*im\.dat \(legacy, 10 chunks of synthetic-calibration\.txt\): 14 tensors weighted, 1 without an entry \(token_embd\.weight\)/);
  const bad = await grok('convert', model, '--type', 'q4_k', '--imatrix', path.join(tmp, 'nope.dat'), '--out', out);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /nope\.dat/);
});
