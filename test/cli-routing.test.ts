/**
 * `grok generate --routing [--json] [--routing-svg FILE]` and `grok tokenize/detokenize --model`, as a
 * user runs them (built CLI, child process), on the fixtures: the prompt's experts equal golden.json's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixtureDir, golden, TOKENIZER_MODEL } from './fixtures.js';

const cli = path.resolve('dist/src/cli/main.js');
const grok = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
const gguf = path.join(fixtureDir('tiny-b'), 'model.gguf');

test('grok generate --routing --json --routing-svg: golden experts for the prompt, usage counts, a heatmap', () => {
  const g = golden('tiny-b');
  const svg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'grok-routing-')), 'routing.svg');
  const r = grok('generate', '-m', gguf, '--kernels', 'reference', '--tokens', g.tokens.join(','), '-t', '0', '-n', '3', '--routing', '--json', '--routing-svg', svg);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { tokens: number[]; routing: { experts: number; layers: { layer: number; counts: number[] }[]; tokens: { id: number; prompt: boolean; experts: number[][]; gates: number[][] }[] } };
  const P = g.tokens.length;
  assert.equal(j.routing.experts, 8);
  assert.equal(j.routing.tokens.length, P + j.tokens.length);
  j.routing.tokens.slice(0, P).forEach((t, pos) => {
    assert.equal(t.prompt, true);
    assert.equal(t.id, g.tokens[pos]);
    g.layers.forEach((layer, l) => assert.deepEqual(t.experts[l], layer.experts[pos], `position ${pos} layer ${l}`));
  });
  assert.deepEqual(j.routing.tokens.slice(P).map((t) => t.id), j.tokens);
  for (const u of j.routing.layers) assert.equal(u.counts.reduce((a, b) => a + b, 0), 2 * j.routing.tokens.length);
  const picture = fs.readFileSync(svg, 'utf8');
  assert.match(picture, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.equal((picture.match(/<rect [^>]*fill-opacity/g) ?? []).length, j.routing.tokens.length * g.layers.length * 2, 'one band per token, layer and chosen expert');
  assert.match(r.stderr, /wrote the routing heatmap/);
});

test('grok generate --routing (text): the text, then expert usage per layer and every token\'s experts', () => {
  const r = grok('generate', '-m', gguf, '--kernels', 'reference', '-t', '0', '-n', '4', '--routing', 'the people');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /expert usage per layer \(share of the \d+ tokens/);
  assert.match(r.stdout, /^layer +e0 +e1 +e2 +e3 +e4 +e5 +e6 +e7$/m);
  assert.equal((r.stdout.match(/^ +[0-2] +(\d+% +){7}\d+%$/gm) ?? []).length, 3, 'one usage line per layer');
  assert.match(r.stdout, /^\* "[^"]*" +\d,\d +\d,\d +\d,\d$/m);
  const bad = grok('generate', '-m', gguf, '--routing', '-i');
  assert.equal(bad.status, 2);
});

test('grok tokenize / detokenize --model: a GGUF\'s own tokenizer, or tokenizer.model beside a checkpoint', () => {
  const viaGguf = grok('tokenize', '--model', gguf, 'the people');
  assert.equal(viaGguf.status, 0, viaGguf.stderr);
  const ids = JSON.parse(viaGguf.stdout) as number[];
  const back = grok('detokenize', '-m', gguf, ids.join(','));
  assert.equal(back.stdout, 'the people\n');
  // A checkpoint folder with the release's tokenizer.model beside it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-tok-'));
  fs.symlinkSync(path.join(fixtureDir('tiny-a'), 'ckpt-0'), path.join(dir, 'ckpt-0'));
  fs.copyFileSync(TOKENIZER_MODEL, path.join(dir, 'tokenizer.model'));
  const viaCkpt = grok('tokenize', '--model', path.join(dir, 'ckpt-0'), 'And God said');
  const viaFile = grok('tokenize', '--tokenizer', TOKENIZER_MODEL, 'And God said');
  assert.equal(viaCkpt.status, 0, viaCkpt.stderr);
  assert.equal(viaCkpt.stdout, viaFile.stdout);
  const none = grok('tokenize', '--model', path.join(fixtureDir('tiny-a'), 'ckpt-0'), 'x');
  assert.notEqual(none.status, 0);
  assert.match(none.stderr, /no tokenizer/);
  assert.equal(grok('tokenize', '--model', gguf, '--tokenizer', TOKENIZER_MODEL, 'x').status, 2);
});
