/**
 * The server with its model in a worker thread (src/api/worker, what `grok serve` runs): the event loop
 * answers while a forward pass runs. On the embedded default model with a long prompt (a context of
 * 8192, one kernel thread), whose prefill takes a second or more: /health and /metrics answer within
 * 50 ms throughout, a second client's stream keeps producing tokens, an abort frees the slot between
 * layers. Also: readiness while loading, the worker's text API equal to the in-thread one, a model that
 * fails to load, a worker that dies, and `grok serve` shutting down during a prefill.
 *
 * Behaviour, not speed: each timing is compared with the prefill it interrupts, measured in the same run.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { loadModel, type LoadModelOptions } from '../src/api/index.js';
import { createServer, type GrokServer, type HealthReport, type ServerOptions } from '../src/api/server.js';
import { loadModelInWorker, startModelWorker, type WorkerGrok } from '../src/api/worker/client.js';
import { fixtureDir } from './engine-helpers.js';
import { until } from './server-helpers.js';

const CLI = path.resolve('dist/src/cli/main.js');
const closers: (() => Promise<void>)[] = [];
after(async () => { for (const c of closers) await c(); });

/** A long prefill on the default model: one kernel thread, a context that holds the prompt. */
const LONG: LoadModelOptions = { contextLength: 8192, kernelOptions: { threads: 1 } };

async function startWorkerServer(load: LoadModelOptions, opts: ServerOptions = {}) {
  const loading = startModelWorker(undefined, { ...LONG, ...load });
  const server: GrokServer = createServer(loading, { modelId: 'default', ...opts });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const grok = await loading.loaded;
  closers.push(async () => { await server.close(0); await grok.close(); });
  return { url, server, grok };
}

/** Pseudo-random prompt token ids, away from the special tokens. */
function longPrompt(n: number, vocab: number, seed = 7): number[] {
  let s = seed;
  return Array.from({ length: n }, () => 4 + ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (vocab - 4)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** POST a streamed completion; `onChunk` gets every data object; resolves at the end of the stream. */
async function stream(url: string, body: object, onChunk: (j: { choices: { text: string; finish_reason: string | null }[]; error?: { message: string } }) => void, signal?: AbortSignal): Promise<number> {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'default', stream: true, ...body }), ...(signal ? { signal } : {}),
  });
  if (!r.body) return r.status;
  let buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    for (let k = buf.indexOf('\n\n'); k >= 0; k = buf.indexOf('\n\n')) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (ev.startsWith('data: ') && ev !== 'data: [DONE]') onChunk(JSON.parse(ev.slice(6)));
    }
  }
  return r.status;
}

/** GET `url` on a kept-alive connection: the time until the whole answer is in, and its status. */
function probe(agent: http.Agent, url: string): Promise<{ ms: number; status: number }> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (r) => {
      r.resume();
      r.on('end', () => resolve({ ms: performance.now() - t, status: r.statusCode ?? 0 }));
    }).on('error', reject);
  });
}

/** The 99th percentile (the value below which 99 % of the samples lie). */
function p99(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(0.99 * s.length) - 1)]!;
}

test('during a long prefill /health and /metrics answer in < 50 ms (p99) and a second client\'s stream keeps producing tokens', async (t) => {
  const { url, grok } = await startWorkerServer({ slots: 2, prefillChunk: 256 }, { metrics: true });
  await stream(url, { prompt: 'the people', max_tokens: 2 }, () => undefined); // warm-up
  /** One long prefill, probed throughout, with a second client streaming meanwhile. */
  const measure = async (seed: number) => {
    const t0 = performance.now();
    let prefillEnd = 0;
    const long = stream(url, { prompt: longPrompt(2000, grok.config.vocabSize, seed), max_tokens: 1, ignore_eos: true }, () => { prefillEnd ||= performance.now(); });
    assert.ok(await until(() => grok.engine.activeCount === 1, 5000), 'the long prompt is being prefilled');
    let during = 0;
    const second = stream(url, { prompt: 'And God said', max_tokens: 400, ignore_eos: true, temperature: 0 }, (j) => {
      if (!prefillEnd && j.choices[0]?.finish_reason === null) during++;
    });
    const probes: Record<'health' | 'metrics', number[]> = { health: [], metrics: [] };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (!prefillEnd) {
      for (const p of ['health', 'metrics'] as const) {
        const { ms, status } = await probe(agent, `${url}/${p}`);
        assert.equal(status, 200);
        probes[p].push(ms);
      }
      await sleep(10);
    }
    agent.destroy();
    await long;
    await second;
    const prefillMs = prefillEnd - t0;
    const health = p99(probes.health), metrics = p99(probes.metrics);
    const report = `prefill ${prefillMs.toFixed(0)} ms; /health p99 ${health.toFixed(1)} ms (max ${Math.max(...probes.health).toFixed(1)}) over ${probes.health.length}; ` +
      `/metrics p99 ${metrics.toFixed(1)} ms (max ${Math.max(...probes.metrics).toFixed(1)}); second client: ${during} tokens during the prefill`;
    t.diagnostic(report);
    assert.ok(prefillMs > 500 && probes.health.length >= 10, `the prefill is long enough to probe: ${report}`);
    // 2000 tokens in chunks of 256: 8 passes, each also decoding one token of the second client.
    assert.ok(during >= 3, report);
    return { ok: health < 50 && metrics < 50, report };
  };
  // A blocked event loop fails every try by a whole pass (hundreds of ms); a machine busy with other work
  // can push one try's tail past 50 ms, so three tries are allowed.
  const reports: string[] = [];
  for (let seed = 1; seed <= 3; seed++) {
    const r = await measure(seed);
    reports.push(r.report);
    if (r.ok) return;
  }
  assert.fail(`p99 ≥ 50 ms in every try:\n${reports.join('\n')}`);
});

test('an abort mid-prefill frees the slot at the next layer: a waiting request starts long before the prefill would have ended', async () => {
  // One slot, and the whole prompt in one forward pass: without the check between layers the slot would
  // stay taken until the pass ends.
  const { url, grok } = await startWorkerServer({ slots: 1, prefillChunk: 8192 });
  const ids = longPrompt(4000, grok.config.vocabSize);
  const short = { prompt: 'the people', max_tokens: 1 };
  await stream(url, short, () => undefined); // warm-up
  // The pass alone, to compare with.
  let t = performance.now();
  await stream(url, { prompt: ids, max_tokens: 1 }, () => undefined);
  const passMs = performance.now() - t;

  const ac = new AbortController();
  const long = stream(url, { prompt: ids.map((id) => (id % 2000) + 4), max_tokens: 1 }, () => undefined, ac.signal).catch(() => 0);
  assert.ok(await until(() => grok.engine.activeCount === 1, 5000));
  await sleep(Math.min(300, passMs / 4)); // inside the pass
  t = performance.now();
  ac.abort();
  let text: string | null = null;
  await stream(url, short, (j) => { text ??= j.choices[0]?.text ?? null; });
  const waitedMs = performance.now() - t;
  await long;
  assert.ok(text !== null, 'the waiting request was served');
  assert.equal(grok.engine.state.abandonedSteps, 1, 'the pass was abandoned');
  // Expected: at most one layer of four, plus the short request itself.
  assert.ok(waitedMs < passMs * 0.6, `the slot was freed ${waitedMs.toFixed(0)} ms after the abort; the whole pass takes ${passMs.toFixed(0)} ms`);
});

test('readiness: /health answers while the model loads, /ready and the API say 503 until it is loaded', async () => {
  const loading = startModelWorker(undefined, {});
  const server = createServer(loading, { modelId: 'default', metrics: true });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const [health, ready, probe, info, metrics] = await Promise.all(['/health', '/ready', '/health?ready', '/info', '/metrics'].map((p) => fetch(`${url}${p}`)));
  assert.equal(health!.status, 200);
  const h = await health!.json() as HealthReport;
  assert.deepEqual({ status: h.status, ready: h.ready }, { status: 'loading', ready: false });
  assert.equal(ready!.status, 503);
  assert.equal(probe!.status, 503);
  assert.equal(info!.status, 503);
  assert.equal(((await info!.json()) as { error: { code: string } }).error.code, 'model_loading');
  assert.match(await metrics!.text(), /^grok_model_ready 0$/m);
  const grok = await loading.loaded;
  closers.push(async () => { await server.close(0); await grok.close(); });
  const r = await fetch(`${url}/ready`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { status: 'ok', ready: true, model: 'default', slots: 4, active: 0, queued: 0 });
  assert.equal((await fetch(`${url}/health?ready`)).status, 200);
  assert.match(await (await fetch(`${url}/metrics`)).text(), /^grok_model_ready 1$/m);
});

test('the worker gives what the in-thread engine gives: same tokens, stop strings, n choices, logprobs; bad requests fail at once', async () => {
  const local = await loadModel();
  const remote = await loadModelInWorker(undefined, { prefixCacheBytes: 1 << 20 });
  closers.push(() => local.close(), () => remote.close());
  const cases = [
    { maxTokens: 24, temperature: 0 },
    { maxTokens: 24, temperature: 0.9, seed: 5, topLogprobs: 3 },
    { maxTokens: 40, temperature: 0.9, seed: 11, stop: [',', ' the'] },
  ];
  for (const o of cases) {
    const a = await local.complete('And God said', o);
    const b = await remote.complete('And God said', o);
    assert.deepEqual({ text: b.text, tokens: b.tokens, finish: b.finishReason, top: b.topLogprobs }, { text: a.text, tokens: a.tokens, finish: a.finishReason, top: a.topLogprobs }, JSON.stringify(o));
    assert.deepEqual(b.logprobs.map((x) => x.toFixed(5)), a.logprobs.map((x) => x.toFixed(5)));
  }
  const many = (g: typeof local | WorkerGrok) => Promise.all(g.generateMany('In the beginning', [1, 2, 3].map((seed) => ({ maxTokens: 12, seed }))).map((s) => s.result));
  assert.deepEqual((await many(remote)).map((c) => c.text), (await many(local)).map((c) => c.text));
  // Checked in this thread, synchronously, with the engine's errors.
  assert.throws(() => remote.generate([5000]), /outside the vocabulary/);
  assert.throws(() => remote.generate('x', { temperature: -1 }), /temperature/);
  // The prefix cache in the worker: a repeated prompt reuses its rows, and the statistics come back.
  const again = await remote.complete('And God said', { maxTokens: 2 });
  assert.ok(again.usage.cachedTokens > 0);
  assert.ok(remote.engine.prefixCache!.stats().hits >= 1);
  // Cancelling: the request ends here at once, the worker frees its slot.
  const s = remote.generate('the people', { maxTokens: 5000, ignoreEos: true });
  for await (const _ of s) break;
  assert.ok(await until(() => remote.engine.activeCount === 0 && remote.engine.queuedCount === 0, 5000));
});

test('a model that fails to load: a clear error, the worker gone, no hang (library and grok serve)', async () => {
  // A tokenizer of another vocabulary: refused when the worker reports the model's configuration.
  const tinyA = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  await assert.rejects(loadModelInWorker(tinyA, { tokenizer: 'models/default/tokenizer.model' }), /the tokenizer has 2048 tokens but the model .* has a vocabulary of 512/);
  // Weights that do not match the configuration: the worker's own loading error.
  const wrongConfig = path.join(fixtureDir('tiny-b'), 'golden.json');
  await assert.rejects(loadModelInWorker(tinyA, { configPath: wrongConfig }), /checkpoint has 2 layers of files, the config says 3/);
  // grok serve: listens, then exits 1 with the error once loading fails.
  const child = spawn(process.execPath, [CLI, 'serve', '-m', tinyA, '--config', wrongConfig, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  assert.equal(code, 1, err);
  assert.match(err, /listening on http:\/\/127\.0\.0\.1:\d+ while the model loads/);
  assert.match(err, /^grok: .*checkpoint has 2 layers of files, the config says 3$/m);
  assert.doesNotMatch(err, /serving /);
});

test('a worker that dies fails the requests in flight with 500; the server stays up and says why', async () => {
  const { url, grok } = await startWorkerServer({ slots: 2, prefillChunk: 256 });
  const ids = longPrompt(4000, grok.config.vocabSize);
  const whole = fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'default', prompt: ids, max_tokens: 4 }) });
  let streamError = '';
  const streamed = stream(url, { prompt: ids.slice(0, 3000), max_tokens: 4 }, (j) => { if (j.error) streamError = j.error.message; });
  assert.ok(await until(() => grok.engine.activeCount === 2, 5000));
  await (grok as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate(); // as a crash would end it
  const r = await whole;
  assert.equal(r.status, 500);
  assert.match(((await r.json()) as { error: { message: string } }).error.message, /the model's worker thread stopped/);
  assert.equal(await streamed, 200);
  assert.match(streamError, /the model's worker thread stopped/);
  const x = await grok.exited;
  assert.equal(x.expected, false);
  const ready = await fetch(`${url}/ready`);
  assert.equal(ready.status, 503);
  assert.equal(((await ready.json()) as HealthReport).status, 'failed');
  assert.equal((await fetch(`${url}/health`)).status, 200);
  const again = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'default', prompt: 'the', max_tokens: 2 }) });
  assert.equal(again.status, 503);
});

test('grok serve: SIGTERM during a long prefill with --grace 0 exits at once (exit 0), not after the pass', async () => {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '-c', '8192', '--threads', '1', '--prefill-chunk', '8192', '--grace', '0', '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  try {
    assert.ok(await until(() => /serving .* on http:\/\//.test(err), 30_000), err);
    const url = /serving .* on (http:\/\/127\.0\.0\.1:\d+)/.exec(err)![1]!;
    const ids = longPrompt(4000, 2048);
    await stream(url, { prompt: 'the', max_tokens: 1 }, () => undefined); // warm-up
    let t = performance.now();
    await stream(url, { prompt: ids, max_tokens: 1 }, () => undefined);
    const passMs = performance.now() - t;
    const long = stream(url, { prompt: ids.map((id) => (id % 2000) + 4), max_tokens: 1 }, () => undefined).catch(() => 0);
    await sleep(Math.min(300, passMs / 4));
    t = performance.now();
    child.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    const exitMs = performance.now() - t;
    await long;
    assert.match(err, /SIGTERM: shutting down/);
    assert.ok(exitMs < passMs * 0.6 + 500, `exited ${exitMs.toFixed(0)} ms after SIGTERM; the pass takes ${passMs.toFixed(0)} ms`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('grok serve: a model worker that crashes ends the command with exit 1 and the worker\'s error on stderr', async () => {
  const hook = new URL('./worker-crash-hook.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--import', hook, CLI, 'serve', '--port', '0', '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  try {
    assert.ok(await until(() => /serving .* on http:\/\//.test(err), 30_000), err);
    const url = /serving .* on (http:\/\/127\.0\.0\.1:\d+)/.exec(err)![1]!;
    assert.equal((await fetch(`${url}/ready`)).status, 200);
    child.kill('SIGUSR2'); // the worker throws an uncaught error
    assert.equal(await exited, 1, err);
    assert.match(err, /^grok: the model's worker thread stopped: .*no-such-message|^grok: the model's worker thread stopped: .*is not a function/m);
    assert.doesNotMatch(err, /^\s+at /m, 'no stack trace');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
