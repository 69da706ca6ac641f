/**
 * The kernel worker pool never hangs: a worker that cannot start or dies in the middle of a job becomes an
 * error within seconds (with the worker's own message when the event loop could see it), and the library
 * works from `node --input-type=module -e` (whose flag the workers must not inherit).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { kernelModule, WasmKernels } from '../src/kernels/wasm.js';
import type { RowMatrix } from '../src/quant/matrix.js';
import { fixtureDir, golden } from './fixtures.js';

const workerUrl = (name: string) => new URL(`./pool-workers/${name}.js`, import.meta.url);

/** A matmul big enough to go through the pool. */
function bigMatmul(k: WasmKernels): void {
  const nIn = 1024, nOut = 1024;
  const w: RowMatrix = { layout: 'rows', type: 'f32', nIn, nOut, data: k.allocWeight(nIn * nOut * 4) };
  k.matmul(w, new Float32Array(nIn), 1, new Float32Array(nOut));
}

test('a worker that cannot start: ready() rejects with its own error, and a job fails instead of waiting', async () => {
  const k = new WasmKernels(kernelModule()!, { threads: 2, pool: { workerUrl: workerUrl('fail-at-start'), startupMs: 3000 } });
  const t0 = performance.now();
  await assert.rejects(k.ready(), /kernel worker 1 failed: forced start-up failure/);
  assert.ok(performance.now() - t0 < 3000);
  assert.throws(() => bigMatmul(k), /kernel worker 1 failed: forced start-up failure/);
  k.close();
});

test('a worker that cannot start, used at once (no event loop turn): the job fails after the start-up time-out', () => {
  const k = new WasmKernels(kernelModule()!, { threads: 2, pool: { workerUrl: workerUrl('fail-at-start'), startupMs: 1000 } });
  const t0 = performance.now();
  assert.throws(() => bigMatmul(k), /kernel workers did not start within 1 s \(0 of 1 running\)/);
  const dt = performance.now() - t0;
  assert.ok(dt > 900 && dt < 5000, `${dt} ms`);
  assert.throws(() => bigMatmul(k), /did not start/, 'the pool stays failed');
  k.close();
});

test('a worker that dies during a job: the job fails once no chunk finishes for the stall time-out', async () => {
  const k = new WasmKernels(kernelModule()!, { threads: 2, pool: { workerUrl: workerUrl('die-on-job'), stallMs: 1000 } });
  const t0 = performance.now();
  // ready() warms the kernels up: the first job through the pool is where the worker dies.
  await assert.rejects(k.ready(), /kernel workers stopped responding: 1 of 1 did not finish/);
  assert.ok(performance.now() - t0 < 5000);
  assert.throws(() => bigMatmul(k), /stopped responding/, 'the pool stays failed');
  k.close();
});

test('the library works from `node --input-type=module -e` (golden greedy continuation of tiny-a)', () => {
  const g = golden('tiny-a');
  const lib = path.resolve('dist/src/index.js');
  const script = `import { loadModel } from ${JSON.stringify(lib)};
    const grok = await loadModel(${JSON.stringify(path.join(fixtureDir('tiny-a'), 'model.gguf'))});
    const r = await grok.complete(${JSON.stringify(g.greedy.prompt)}, { temperature: 0, maxTokens: ${g.greedy.continuation.length}, ignoreEos: true });
    console.log(JSON.stringify(r.tokens));
    await grok.close();`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60000 });
  assert.deepEqual(JSON.parse(out), g.greedy.continuation);
});
