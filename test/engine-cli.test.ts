/**
 * `grok generate` end to end (the built CLI in a child process) on the tiny-b fixture GGUF, which carries
 * a tokenizer: greedy ids equal the fixture's golden continuation, streamed stdout equals the --json text,
 * and bad input gives one line on stderr with a non-zero exit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fixtureDir, golden } from './engine-helpers.js';

const cli = path.resolve('dist/src/cli/main.js');
const gguf = path.join(fixtureDir('tiny-b'), 'model.gguf');
const run = (args: string[]) => spawnSync(process.execPath, [cli, 'generate', '--model', gguf, ...args], { encoding: 'utf8', timeout: 60_000 });

test('grok generate: golden greedy ids, streamed text = JSON text, one-line errors', () => {
  const g = golden('tiny-b');
  const ids = g.greedy.prompt.join(',');
  const j = run(['--tokens', ids, '-t', '0', '-n', '16', '--json']);
  assert.equal(j.status, 0, j.stderr);
  const out = JSON.parse(j.stdout) as { text: string; tokens: number[]; finishReason: string; usage: { promptTokens: number } };
  assert.deepEqual(out.tokens, g.greedy.continuation);
  assert.equal(out.finishReason, 'length');
  assert.equal(out.usage.promptTokens, g.greedy.prompt.length);

  const s = run(['--tokens', ids, '-t', '0', '-n', '16']);
  assert.equal(s.status, 0, s.stderr);
  assert.equal(s.stdout, `${out.text}\n`);
  assert.match(s.stderr, /generated 16 tokens/);

  const seeded = (extra: string[]) => run(['-n', '12', '-t', '1', '--seed', '42', ...extra, 'the people']);
  const a = seeded(['--json']);
  const b = seeded([]);
  assert.equal(b.stdout, `${(JSON.parse(a.stdout) as { text: string }).text}\n`);

  for (const [args, code, pattern] of [
    [['--top-p', '2', 'x'], 2, /--top-p must be a number > 0 and ≤ 1, got '2'/],
    [['--tokens', '5000'], 1, /prompt token 5000 is outside the vocabulary \(0…999\)/],
    [['--seed', '-1', 'x'], 2, /--seed/],
    [[], 2, /a prompt is required/],
  ] as const) {
    const r = run([...args]);
    assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
  }
});
