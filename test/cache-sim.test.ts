/**
 * `grok generate --trace-routing FILE` and `grok cache-sim`, as a user runs them (built CLI, child process):
 * the trace holds what `--routing --json` reports for the same run and golden.json's experts for the prompt,
 * its sizes are the file's and the pool's; the replay of a trace asks the pool for what the engine asked
 * it; and a hand-written trace gives the hits and misses counted by hand below.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixtureDir, golden } from './fixtures.js';

const cli = path.resolve('dist/src/cli/main.js');
const grok = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
const gguf = path.join(fixtureDir('tiny-b'), 'model.gguf');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grok-cache-sim-'));

interface Header { format: string; model: string; nLayers: number; nExperts: number; nExpertsUsed: number; expertBytes: number; slotBytes: number; residentBytes: number; prefillChunk: number }
interface Line { token: number; position: number; prompt: boolean; layers: number[][]; turn?: number }

function readTrace(file: string): { header: Header; lines: Line[] } {
  const [head, ...rest] = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
  return { header: JSON.parse(head!) as Header, lines: rest.map((l) => JSON.parse(l) as Line) };
}

interface SimRow { budgetBytes: number; policy: string; slots: number; note: string | null; uses: number; hits: number; misses: number; decode: { tokens: number; uses: number; hits: number; misses: number; missesPerToken: number; bytesPerToken: number; tokensPerSecond: number | null } | null }
const simJson = (...args: string[]) => {
  const r = grok('cache-sim', ...args, '--json');
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { trace: { steps: number; promptTokens: number; generatedTokens: number }; rows: SimRow[] };
};

test('grok generate --trace-routing: the file\'s sizes, and every token\'s experts as --routing --json gives them (the prompt\'s as golden.json)', () => {
  const g = golden('tiny-b');
  const file = path.join(tmp(), 'trace.jsonl');
  const run = ['generate', '-m', gguf, '--kernels', 'reference', '--tokens', g.tokens.join(','), '-t', '0.8', '-s', '5', '-n', '4'];
  const traced = grok(...run, '--trace-routing', file); // the streamed text path
  assert.equal(traced.status, 0, traced.stderr);
  assert.match(traced.stderr, new RegExp(`wrote the routing trace of ${g.tokens.length + 4} tokens`));
  const routed = grok(...run, '--routing', '--json'); // complete() and the --routing report: another path
  assert.equal(routed.status, 0, routed.stderr);
  const j = JSON.parse(routed.stdout) as { tokens: number[]; routing: { tokens: { id: number; prompt: boolean; experts: number[][] }[] } };

  const { header, lines } = readTrace(file);
  // Sizes from the tensor table (grok inspect), not from the loader.
  const inspect = grok('inspect', '--json', gguf);
  const tensors = (JSON.parse(inspect.stdout) as { tensors: { name: string; bytes: number }[] }).tensors;
  const exps = tensors.filter((t) => /_exps\./.test(t.name)).reduce((a, t) => a + t.bytes, 0);
  const all = tensors.reduce((a, t) => a + t.bytes, 0);
  assert.deepEqual(
    { format: header.format, model: header.model, nLayers: header.nLayers, nExperts: header.nExperts, nExpertsUsed: header.nExpertsUsed, expertBytes: header.expertBytes, residentBytes: header.residentBytes, prefillChunk: header.prefillChunk },
    { format: 'grok-routing-trace-1', model: gguf, nLayers: 3, nExperts: 8, nExpertsUsed: 2, expertBytes: exps / 24, residentBytes: all - exps, prefillChunk: 256 },
  );
  assert.equal(header.slotBytes, exps / 24, 'the reference kernels read without alignment: a slot is one expert (its matrices are multiples of 64 bytes)');

  assert.deepEqual(lines.map((l) => l.token), [...g.tokens, ...j.tokens]);
  assert.deepEqual(lines.map((l) => l.position), lines.map((_, i) => i));
  assert.deepEqual(lines.map((l) => l.prompt), lines.map((_, i) => i < g.tokens.length));
  assert.equal(lines.length, j.routing.tokens.length);
  lines.forEach((l, i) => assert.deepEqual(l.layers, j.routing.tokens[i]!.experts, `token ${i}`));
  lines.slice(0, g.tokens.length).forEach((l, pos) => g.layers.forEach((layer, k) => assert.deepEqual(l.layers[k], layer.experts[pos], `golden: position ${pos} layer ${k}`)));
});

test('grok generate -i --trace-routing: one header, then each turn\'s tokens, numbered, positions from 0 per turn', () => {
  const file = path.join(tmp(), 'session.jsonl');
  const r = spawnSync(process.execPath, [cli, 'generate', '-m', gguf, '--kernels', 'reference', '-i', '-t', '0', '-n', '3', '--trace-routing', file], { input: 'the people\n\nand God said\n', encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const { header, lines } = readTrace(file);
  assert.equal(header.format, 'grok-routing-trace-1');
  const turn = (t: number) => lines.filter((l) => l.turn === t);
  assert.equal(turn(0).length + turn(1).length, lines.length, 'every line has turn 0 or 1');
  for (const t of [0, 1]) {
    const ls = turn(t);
    assert.deepEqual(ls.map((l) => l.position), ls.map((_, i) => i));
    assert.deepEqual(ls.filter((l) => !l.prompt).length, 3, `turn ${t}: 3 generated tokens`);
    assert.ok(ls.findIndex((l) => !l.prompt) > 0 && ls.slice(ls.findIndex((l) => !l.prompt)).every((l) => !l.prompt), `turn ${t}: prompt first`);
  }
  // The first turn is the same prompt alone: the same tokens and experts as a plain run.
  const alone = path.join(tmp(), 'alone.jsonl');
  assert.equal(grok('generate', '-m', gguf, '--kernels', 'reference', '-t', '0', '-n', '3', '--trace-routing', alone, 'the people').status, 0);
  assert.deepEqual(turn(0).map(({ turn: _, ...l }) => l), readTrace(alone).lines);
});

test('grok generate --trace-routing with streamed experts: slot size and pool as loaded; the replay asks for what the engine asked the pool', () => {
  const dir = tmp();
  const g = golden('tiny-b');
  const streamed = grok('generate', '-m', gguf, '--tokens', g.tokens.join(','), '-t', '0', '-n', '5', '--ram-budget', '5M', '--json', '--trace-routing', path.join(dir, 'streamed.jsonl'));
  assert.equal(streamed.status, 0, streamed.stderr);
  const pool = (JSON.parse(streamed.stdout) as { experts: { slots: number; slotBytes: number; hits: number; misses: number; perLayer: [number, number][] } }).experts;
  const { header } = readTrace(path.join(dir, 'streamed.jsonl'));
  assert.equal(header.slotBytes, pool.slotBytes);
  // Without a budget the same kernels lay a slot out the same way (4096-byte reads on the native backend).
  const inRam = grok('generate', '-m', gguf, '--tokens', '1,2', '-n', '1', '--trace-routing', path.join(dir, 'in-ram.jsonl'));
  assert.equal(inRam.status, 0, inRam.stderr);
  assert.equal(readTrace(path.join(dir, 'in-ram.jsonl')).header.slotBytes, pool.slotBytes);

  const sim = simJson('--trace', path.join(dir, 'streamed.jsonl'), '--budget', '5M', '--policy', 'lru');
  const row = sim.rows[0]!;
  assert.equal(row.slots, pool.slots);
  // One prompt chunk + 5 generated tokens, one step per layer each; the pool counted one use per expert asked for.
  assert.equal(sim.trace.steps, 1 + 5);
  assert.equal(row.uses, pool.perLayer.reduce((a, [, uses]) => a + uses, 0));
  assert.equal(row.uses, pool.hits + pool.misses);
  assert.equal(row.decode!.uses, 5 * 3 * 2);
});

/*
 * A hand-written trace: 2 layers × 4 experts, 2 per token; one expert = one slot = 100 bytes, 1000 resident
 * bytes, prompts fed 2 tokens per step. Keys: layer 0 expert e → e, layer 1 expert e → 4 + e. The steps the
 * pool sees (experts most used in the step first, ties to the lower index):
 *   prompt chunk P0+P1: L0 [1,0,2]  L1 [6,4,7]      prompt chunk P2: L0 [0,3]  L1 [5,6]
 *   G0: L0 [0,1] L1 [6,7]    G1: L0 [1,2] L1 [4,6]    G2: L0 [0,1] L1 [6,7]
 * Budget 1400 → 4 slots, LRU (recency list, oldest first; a step's own experts are never evicted):
 *   [1,0,2] 3 misses → 1 0 2 | [6,4,7] 3 misses, evicting 1, 0 → 2 6 4 7 | [0,3] 2 misses (2, 6) → 4 7 0 3
 *   [5,6] 2 misses (4, 7) → 0 3 5 6                         prompt: 10 uses, 10 misses
 *   G0 [0,1] 0 hit, 1 miss (3) → 5 6 0 1 | [6,7] 6 hit, 7 miss (5) → 0 1 6 7
 *   G1 [1,2] 1 hit, 2 miss (0) → 6 7 1 2 | [4,6] 4 miss (7), 6 hit → 1 2 4 6
 *   G2 [0,1] 0 miss (2), 1 hit → 4 6 0 1 | [6,7] 6 hit, 7 miss (4) → 0 1 6 7
 *   decode: 12 uses, 6 misses (2 per token, 200 bytes); whole trace 22 uses, 16 misses, 6 hits.
 * Budget 1600 → 6 slots, LRU:
 *   [1,0,2] 3 misses | [6,4,7] 3 misses → 1 0 2 6 4 7 | [0,3] 0 hit, 3 miss (1) → 2 6 4 7 0 3
 *   [5,6] 5 miss (2), 6 hit → 4 7 0 3 5 6                    prompt: 10 uses, 8 misses
 *   G0 [0,1] 0 hit, 1 miss (4) → 7 3 5 6 0 1 | [6,7] hits → 3 5 0 1 6 7
 *   G1 [1,2] 1 hit, 2 miss (3) → 5 0 6 7 1 2 | [4,6] 4 miss (5), 6 hit → 0 7 1 2 4 6
 *   G2 [0,1] hits | [6,7] hits
 *   decode: 12 uses, 3 misses (1 per token, 100 bytes); whole trace 22 uses, 11 misses, 11 hits.
 */
const HAND_TRACE = [
  { format: 'grok-routing-trace-1', model: 'hand.gguf', nLayers: 2, nExperts: 4, nExpertsUsed: 2, expertBytes: 100, slotBytes: 100, residentBytes: 1000, prefillChunk: 2 },
  { token: 10, position: 0, prompt: true, layers: [[0, 1], [2, 3]] },
  { token: 11, position: 1, prompt: true, layers: [[1, 2], [2, 0]] },
  { token: 12, position: 2, prompt: true, layers: [[3, 0], [1, 2]] },
  { token: 13, position: 3, prompt: false, layers: [[0, 1], [2, 3]] },
  { token: 14, position: 4, prompt: false, layers: [[1, 2], [2, 0]] },
  { token: 15, position: 5, prompt: false, layers: [[0, 1], [3, 2]] },
].map((l) => JSON.stringify(l)).join('\n') + '\n';

test('grok cache-sim on a hand-written trace: the hits and misses counted by hand, per budget', () => {
  const file = path.join(tmp(), 'hand.jsonl');
  fs.writeFileSync(file, HAND_TRACE);
  const sim = simJson('--trace', file, '--budget', '1400', '--budget', '1600', '--budget', '1399', '--budget', '1800', '--policy', 'lru', '--read-rate', '1KB/s');
  assert.deepEqual(sim.trace, { ...sim.trace, steps: 5, promptTokens: 3, generatedTokens: 3 });
  const [four, six, small, fits] = sim.rows;
  assert.deepEqual(
    { slots: four!.slots, uses: four!.uses, hits: four!.hits, misses: four!.misses, decode: four!.decode },
    { slots: 4, uses: 22, hits: 6, misses: 16, decode: { tokens: 3, uses: 12, hits: 6, misses: 6, hitRate: 0.5, missesPerToken: 2, bytesPerToken: 200, tokensPerSecond: 5 } },
  );
  assert.deepEqual(
    { slots: six!.slots, uses: six!.uses, hits: six!.hits, misses: six!.misses, decode: six!.decode },
    { slots: 6, uses: 22, hits: 11, misses: 11, decode: { tokens: 3, uses: 12, hits: 9, misses: 3, hitRate: 0.75, missesPerToken: 1, bytesPerToken: 100, tokensPerSecond: 10 } },
  );
  // 1399 bytes leave 3 slots, fewer than 2 experts × 2 layers: the loader refuses it. 1800 holds the whole model.
  assert.deepEqual([small!.note, small!.slots, small!.decode], ['too-small', 3, null]);
  assert.deepEqual([fits!.note, fits!.slots, fits!.decode], ['fits', 8, null]);

  // One step per prompt token: 3 prompt steps of 2 layers × 2 experts, so 24 uses.
  const perToken = simJson('--trace', file, '--budget', '1400', '--policy', 'lru', '--prefill-chunk', '1');
  assert.deepEqual([perToken.trace.steps, perToken.rows[0]!.uses], [6, 24]);

  const text = grok('cache-sim', '--trace', file, '--budget', '1400', '--budget', '1600', '--budget', '1399', '--policy', 'lru', '--read-rate', '1KB/s');
  assert.equal(text.status, 0, text.stderr);
  // budget, policy, slots, hit rate, decode hit rate, misses/token, read/token, tok/s
  assert.match(text.stdout, /^1\.4 KiB +lru +4 of 8 +27\.3 % +50\.0 % +2\.00 +0\.2 KiB +5\.00$/m);
  assert.match(text.stdout, /^1\.6 KiB +lru +6 of 8 +50\.0 % +75\.0 % +1\.00 +0\.1 KiB +10\.0$/m);
  assert.match(text.stdout, /^1\.4 KiB +lru +3 of 8 +too small: the loader needs ≥ 1400 bytes/m);
  assert.match(text.stdout, /disk's bound on decode speed/);
});

test('grok cache-sim: a missing or malformed trace is one error line naming the file, the line and what was expected', () => {
  const dir = tmp();
  const write = (name: string, text: string) => { const f = path.join(dir, name); fs.writeFileSync(f, text); return f; };
  const [header, ...tokens] = HAND_TRACE.trimEnd().split('\n');
  const cases: [string, string, RegExp][] = [
    ['absent.jsonl', '', /cannot read the routing trace .*absent\.jsonl: ENOENT/],
    ['no-header.jsonl', `${tokens.join('\n')}\n`, /no-header\.jsonl: line 1: expected the header \{"format": "grok-routing-trace-1", …\}/],
    ['bad-json.jsonl', `${header}\n${tokens[0]}\n{"token": 11,\n`, /bad-json\.jsonl: line 3: not JSON/],
    ['three-experts.jsonl', `${header}\n${tokens[0]}\n${tokens[1]!.replace('[2,0]', '[2,0,1]')}\n`, /three-experts\.jsonl: line 3: layer 1: expected 2 different experts in 0…3, got \[2,0,1\]/],
    ['one-layer.jsonl', `${header}\n{"token":1,"position":0,"prompt":true,"layers":[[0,1]]}\n`, /one-layer\.jsonl: line 2: "layers" must be an array of 2 layers \(the header's nLayers\), got 1/],
    ['no-size.jsonl', `${header.replace('"expertBytes":100,', '')}\n${tokens[0]}\n`, /no-size\.jsonl: line 1: header field "expertBytes" must be a number of bytes > 0, got undefined/],
  ];
  for (const [name, text, message] of cases) {
    const file = name === 'absent.jsonl' ? path.join(dir, name) : write(name, text);
    const r = grok('cache-sim', '--trace', file, '--budget', '1400');
    assert.equal(r.status, 1, `${name}: ${r.stderr}`);
    assert.equal(r.stdout, '', name);
    assert.match(r.stderr, /^grok: /, name);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${name}: one line`);
    assert.match(r.stderr, message, name);
  }
  // A wrong command line: exit 2.
  const file = write('ok.jsonl', HAND_TRACE);
  assert.equal(grok('cache-sim', '--trace', file, '--budget', 'lots').status, 2);
  assert.equal(grok('cache-sim', '--trace', file, '--budget', '1400', '--policy', 'fifo').status, 2);
  assert.equal(grok('cache-sim', '--trace', file).status, 2, '--budget is required');
});
