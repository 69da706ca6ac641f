/**
 * The backends from the command line: `grok info` says which one runs and why, and `--backend native|wasm|
 * reference` (with `--no-mmap` and `--mlock` for native) all reproduce the fixture's golden top tokens.
 * In CI the addon is built strictly, so there `auto` must be native.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { grok } from './cli-helpers.js';
import { IN_CI } from './cross-check.js';
import { fixtureDir, golden } from './fixtures.js';

interface Info { backend: string; native: string; isa?: string; levels?: string[]; features?: string; threads: number; node: string }

const info = JSON.parse((await grok('info', '--json')).out) as Info;

test('grok info: the backend auto picks, the native addon or why not, the level and CPU features', () => {
  assert.equal(info.node, process.version);
  assert.ok(info.threads >= 1);
  if (IN_CI) assert.equal(info.backend, 'native', `CI builds the addon: ${info.native}`);
  if (info.backend === 'native') {
    assert.match(info.native, /^yes \(.*grok-native\.node\)$/);
    assert.ok(info.levels!.includes(info.isa!), `${info.isa} in ${info.levels!.join(' ')}`);
  } else {
    assert.match(info.native, /^no: /);
  }
});

const g = golden('tiny-a');
const model = path.join(fixtureDir('tiny-a'), 'model.gguf');
const top1 = async (...flags: string[]): Promise<number[]> => {
  const r = await grok('logits', '-m', model, '--tokens', g.tokens.join(','), '--top', '1', '--json', ...flags);
  assert.equal(r.code, 0, `${flags.join(' ')}: ${r.err}`);
  return (JSON.parse(r.out) as { positions: { top: { id: number }[] }[] }).positions.map((p) => p.top[0]!.id);
};
const want = g.top5.map((t) => t[0]!);

const cases: string[][] = [['--backend', 'wasm'], ['--backend', 'reference'], ['--kernels', 'reference']];
if (info.native.startsWith('yes')) cases.push(['--backend', 'native'], ['--backend', 'native', '--no-mmap'], ['--backend', 'native', '--mlock']);
for (const flags of cases) {
  test(`grok logits ${flags.join(' ')}: the golden top token at every position`, async () => {
    assert.deepEqual(await top1(...flags), want);
  });
}

test('--backend with a bad name is a usage error listing the choices', async () => {
  const r = await grok('logits', '--tokens', '1', '--backend', 'cuda');
  assert.equal(r.code, 2);
  assert.match(r.err, /^grok: --backend must be one of auto, native, wasm, reference, got 'cuda'/);
});

test('grok generate --kv-type f32|f16|q8_0: each runs; f32 is exact mode\'s default cache; a bad type is a usage error', async () => {
  const run = async (...flags: string[]): Promise<number[]> => {
    const r = await grok('generate', '--temp', '0', '-n', '6', '--ignore-eos', '--json', ...flags, 'And God said');
    assert.equal(r.code, 0, `${flags.join(' ')}: ${r.err}`);
    const ids = (JSON.parse(r.out) as { tokens: number[] }).tokens;
    assert.ok(ids.length === 6 && ids.every(Number.isInteger), `${flags.join(' ')}: ${r.out}`);
    return ids;
  };
  assert.deepEqual(await run('--kernels', 'exact', '--kv-type', 'f32'), await run('--kernels', 'exact'));
  for (const kv of ['f16', 'q8_0']) await run('--kv-type', kv);
  const bad = await grok('generate', '--kv-type', 'q4_0', 'x');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^grok: --kv-type must be one of f32, f16, q8_0, got 'q4_0'/);
});
