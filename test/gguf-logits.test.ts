/**
 * Every GGUF and safetensors file of every fixture reproduces the fixture's float64 logits within 1e-4
 * (model-q8_0.gguf: logits-q8_0.f32, computed from its dequantised weights), through loadModel and
 * through the `grok logits` command.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadModel } from '../src/model/loader.js';
import { fixtureDir, golden, goldenLogits, maxAbsDiff, topK } from './fixtures.js';

const cases: { name: string; file: string; logits: string; config?: string }[] = [
  { name: 'tiny-a', file: 'model.gguf', logits: 'logits.f32' },
  { name: 'tiny-a', file: 'model.safetensors', logits: 'logits.f32', config: 'golden.json' },
  { name: 'tiny-b', file: 'model.gguf', logits: 'logits.f32' },
  { name: 'tiny-b', file: 'model-q8_0.gguf', logits: 'logits-q8_0.f32' },
  { name: 'tiny-b', file: 'model.safetensors', logits: 'logits.f32', config: 'golden.json' },
];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-logits-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const c of cases) {
  const dir = fixtureDir(c.name);
  const g = golden(c.name);
  const model = path.join(dir, c.file);
  const configPath = c.config && path.join(dir, c.config);

  test(`${c.name}/${c.file}: loadModel + forward reproduces ${c.logits} within 1e-4`, async () => {
    const { model: m, source } = await loadModel(model, configPath ? { configPath } : {});
    assert.equal(source.format, c.file.endsWith('.gguf') ? 'gguf' : 'safetensors');
    const logits = m.forward([{ tokens: g.tokens, cache: m.newCache(g.tokens.length) }]);
    const want = goldenLogits(c.name, c.logits);
    const d = maxAbsDiff(logits, want);
    assert.ok(d < 1e-4, `max |Δlogit| ${d}`);
    if (c.logits === 'logits.f32') {
      const V = m.config.vocabSize;
      g.tokens.forEach((_, t) => assert.deepEqual(topK(logits.subarray(t * V, (t + 1) * V), 5), g.top5[t], `top5 at ${t}`));
    }
  });

  test(`${c.name}/${c.file}: grok logits --model … --out reproduces ${c.logits} within 1e-4`, () => {
    const out = path.join(tmp, `${c.name}-${c.file}.f32`);
    const args = ['dist/src/cli/main.js', 'logits', '--model', model, '--tokens', g.tokens.join(','), '--out', out];
    if (configPath) args.push('--config', configPath);
    execFileSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const b = fs.readFileSync(out);
    const logits = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    const d = maxAbsDiff(logits, goldenLogits(c.name, c.logits));
    assert.ok(d < 1e-4, `max |Δlogit| ${d}`);
  });
}

test('grok logits on a safetensors file without config.json says so and exits non-zero', () => {
  const model = path.join(fixtureDir('tiny-a'), 'model.safetensors');
  let stderr = '';
  let status = 0;
  try {
    execFileSync(process.execPath, ['dist/src/cli/main.js', 'logits', '--model', model, '--tokens', '1,2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as { status: number; stderr: Buffer };
    status = err.status;
    stderr = err.stderr.toString();
  }
  assert.notEqual(status, 0);
  assert.match(stderr, /no config\.json beside the safetensors weights/);
});
