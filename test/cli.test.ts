/** The `grok` command as a user runs it: a separate process, exit codes, files written, errors without stacks. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fixtureDir, golden, goldenLogits, maxAbsDiff } from './fixtures.js';

const GROK = path.resolve('dist/src/cli/main.js');
function grok(...args: string[]) {
  const r = spawnSync(process.execPath, [GROK, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

for (const name of ['tiny-a', 'tiny-b']) {
  test(`grok logits --out on ${name}'s ckpt-0 (default exact kernels) writes the golden logits`, () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'grok-cli-')), 'logits.f32');
    const g = golden(name);
    const r = grok('logits', '--model', path.join(fixtureDir(name), 'ckpt-0'), '--tokens', g.tokens.join(','), '--out', out);
    assert.equal(r.code, 0, r.err);
    const b = fs.readFileSync(out);
    assert.ok(maxAbsDiff(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4), goldenLogits(name)) < 1e-4);
  });
}

test('grok logits --json and --top print the golden top tokens', () => {
  const g = golden('tiny-a');
  const r = grok('logits', '--model', fixtureDir('tiny-a'), '--tokens', g.tokens.slice(0, 4).join(','), '--json', '--top', '5');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { positions: { top: { id: number }[] }[] };
  j.positions.forEach((p, t) => assert.deepEqual(p.top.map((e) => e.id), g.top5[t]));
});

test('grok inspect prints the config and the tensor table', () => {
  const r = grok('inspect', fixtureDir('tiny-b'), '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { config: { dModel: number; nExperts: number }; tensors: { name: string; shape: number[]; type: string }[] };
  assert.equal(j.config.dModel, 96);
  assert.equal(j.config.nExperts, 8);
  assert.equal(j.tensors.length, 2 + 12 * 3);
  const q = j.tensors.find((t) => t.name === 'transformer/decoder_layer_1/multi_head_attention/query/w')!;
  assert.deepEqual([q.shape, q.type], [[96, 96], 'i8']);
});

test('bad input: one clear line on stderr, a non-zero exit, no stack trace', () => {
  const cases: [string[], RegExp, number][] = [
    [['logits', '--model', '/nonexistent/model', '--tokens', '1'], /\/nonexistent\/model: no such file or directory/, 1],
    [['logits', '--model', fixtureDir('tiny-a'), '--tokens', '1,x'], /'x' is not a token id/, 2],
    [['logits', '--model', fixtureDir('tiny-a'), '--tokens', '5,512'], /id 512 is outside the vocabulary \(0…511\)/, 2],
    [['logits', '--model', fixtureDir('tiny-a'), '--tokens', '1', '--bogus'], /unknown option '--bogus'/, 2],
    [['logits', '--model', fixtureDir('tiny-a')], /required option '--tokens <ids>' not specified/, 2],
    [['frobnicate'], /unknown command 'frobnicate'/, 2],
    [['inspect', path.join(fixtureDir('tiny-a'), 'golden.json')], /not a model this tool can read/, 1],
  ];
  for (const [args, re, code] of cases) {
    const r = grok(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.doesNotMatch(r.err, /\n\s+at /, `stack trace for ${args.join(' ')}`);
  }
});
