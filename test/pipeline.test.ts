/**
 * A model split into pipeline stages over gRPC on loopback (src/api/pipeline), each stage its own process
 * as users run them: `grok stage` for layers K:L, `grok serve` / `grok logits --layers 0:K --next` as the
 * leader. Compared with the fixtures' float64 goldens and with one process holding every layer: the same
 * logits to the byte (exact kernels), the same greedy tokens, the same seeded samples, streamed and n > 1.
 * Then a stage killed mid-stream, restarted, and peers refused at the handshake. First, in this process,
 * the model's layer ranges chained by hand against the whole model. As root each stage has a memory cgroup
 * of its own; the last tiny-b stage streams its experts from disk.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeCgroup, type Cgroup } from '../bench/cgroup-util.js';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import { loadModel } from '../src/model/loader.js';
import { StageLink } from '../src/api/pipeline/link.js';
import { bytesF32, f32Bytes, modelIdentity } from '../src/api/pipeline/protocol.js';
import { argmax, fixtureDir, golden, goldenLogits, maxAbsDiff } from './fixtures.js';

/** `grok args…` → exit code and stderr, without blocking this process (several run at once). */
function grok(...args: string[]): Promise<{ code: number; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000, encoding: 'utf8' }, (e, _out, err) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, err });
    });
  });
}

const CLI = path.resolve('dist/src/cli/main.js');
const A = path.join(fixtureDir('tiny-a'), 'model.gguf'); // 2 layers: split 1 + 1
const B = path.join(fixtureDir('tiny-b'), 'model.gguf'); // 3 layers: split 1 + 1 + 1
const TOKEN = 'pipeline-test-secret';
const EXACT = ['--kernels', 'exact', '--threads', '1'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-pipeline-'));
const children = new Set<ChildProcess>();
const cgroups: Cgroup[] = [];

/**
 * As root with a writable cgroup hierarchy, each stage runs in a memory cgroup of its own (1 GiB: the
 * fixtures are small), as on separate machines; elsewhere as plain processes.
 */
function cgroup(): string | undefined {
  const root = fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/memory';
  try {
    if (process.getuid?.() !== 0) return undefined;
    fs.accessSync(root, fs.constants.W_OK);
  } catch {
    return undefined;
  }
  const g = makeCgroup(2 ** 30);
  cgroups.push(g);
  return g.procs;
}

/** Start `grok args…` (in the cgroup whose cgroup.procs is `procs`) and resolve with the first match of `ready` on its stderr (the address it bound). */
function start(args: string[], ready: RegExp, procs?: string): Promise<{ child: ChildProcess; match: RegExpExecArray; err: () => string }> {
  const child = procs
    ? spawn('sh', ['-c', 'echo $$ > "$0" && exec "$@"', procs, process.execPath, CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`grok ${args.join(' ')}: no ${ready} within 30 s; stderr:\n${err}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = ready.exec(err);
      if (m) { clearTimeout(timer); resolve({ child, match: m, err: () => err }); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`grok ${args.join(' ')} exited (${code}):\n${err}`)); });
  });
}

const stage = (model: string, layers: string, listen: string, next?: string, procs = cgroup(), extra: string[] = []) =>
  start(['stage', '-m', model, '--layers', layers, '--listen', listen, ...(next ? ['--next', next] : []), '--stage-token', TOKEN, ...EXACT, '--quiet', ...extra], /listening on (\S+?)(,| \()/, procs);
const serve = (model: string, extra: string[]) =>
  start(['serve', '-m', model, '-p', '0', '--quiet', '--slots', '4', ...EXACT, ...extra], /serving .* on (http:\/\/[\d.:]+)/);

async function json(url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(url, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

async function until(f: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await f())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One process holding every layer, with the kernels `grok logits --kernels exact --threads 1` makes: this process. */
async function oneProcess(model: string, ids: number[]): Promise<Float32Array> {
  const kernels = createKernels({ kernels: 'auto', mode: 'exact', threads: 1 });
  try {
    const { model: m } = await loadModel(model, { kernels });
    try {
      return m.forward([{ tokens: ids, cache: m.newCache(ids.length) }]);
    } finally {
      m.close();
    }
  } finally {
    closeKernels(kernels);
  }
}

/** The logits `grok logits` writes for the ids, in one process or through the stages from `next`. */
async function logits(model: string, ids: number[], name: string, pipeline?: { layers: string; next: string; token?: string }): Promise<Float32Array> {
  const out = path.join(tmp, `${name}.f32`);
  const r = await grok('logits', '-m', model, '--tokens', ids.join(','), '--out', out, ...EXACT,
    ...(pipeline ? ['--layers', pipeline.layers, '--next', pipeline.next, '--stage-token', pipeline.token ?? TOKEN] : []));
  assert.equal(r.code, 0, r.err);
  const b = fs.readFileSync(out);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

let a1: Awaited<ReturnType<typeof stage>>; // tiny-a layers 1:2
let a1Group: string | undefined;
let aAddr = '';
let b1Addr = '', b2Addr = '';
let leader = '', single = '';

before(async () => {
  // Every process at once: loading overlaps.
  // The last tiny-b stage streams its experts from disk (a budget below its layer's 4.7 MB of experts): per stage, as in one process.
  const b2 = stage(B, '2:3', '127.0.0.1:0', undefined, cgroup(), ['--ram-budget', '2M']);
  a1Group = cgroup();
  a1 = await stage(A, '1:2', '127.0.0.1:0', undefined, a1Group);
  aAddr = a1.match[1]!;
  b2Addr = (await b2).match[1]!;
  const [b1, l, s] = await Promise.all([
    stage(B, '1:2', '127.0.0.1:0', b2Addr),
    serve(A, ['--layers', '0:1', '--next', aAddr, '--stage-token', TOKEN, '--metrics']),
    serve(A, []),
  ]);
  b1Addr = b1.match[1]!;
  leader = l.match[1]!;
  single = s.match[1]!;
  await until(async () => (await json(`${leader}/ready`)).status === 200, 10_000, 'the leader is ready');
});

after(async () => {
  const exits = [...children].map((c) => new Promise((r) => c.once('exit', r)));
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(exits);
  for (const g of cgroups) g.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('layer ranges in one process: 0:1 then 1:2 then 2:3 of tiny-b give the whole model\'s logits byte for byte, decode steps included', async (t) => {
  const g = golden('tiny-b');
  const kernels = createKernels({ kernels: 'auto', mode: 'exact', threads: 1 });
  t.after(() => closeKernels(kernels));
  const parts = await Promise.all([[0, 1], [1, 2], [2, 3]].map(async ([from, to]) => (await loadModel(B, { kernels, layers: { from: from!, to: to! } })).model));
  const { model: whole } = await loadModel(B, { kernels });
  assert.deepEqual(parts.map((p) => [p.embeds, p.projects, p.weights.layers.length, p.weights.token_embd !== undefined]),
    [[true, false, 1, true], [false, false, 1, false], [false, true, 1, true]], 'each range holds its layers, the embedding at the ends only');
  const caches = parts.map((p) => p.newCache(g.tokens.length));
  const wholeCache = whole.newCache(g.tokens.length);
  // A 10-token prefill, then one token at a time (lastOnly, as the scheduler asks).
  for (const [at, n] of [[0, 10], [10, 1], [11, 1]] as const) {
    const tokens = g.tokens.slice(at, at + n);
    let x = parts[0]!.forward([{ tokens, cache: caches[0]! }], { lastOnly: true });
    for (let i = 1; i < parts.length; i++) x = parts[i]!.forward([{ tokens, cache: caches[i]! }], { lastOnly: true, hidden: x });
    const ref = whole.forward([{ tokens, cache: wholeCache }], { lastOnly: true });
    assert.deepEqual(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength), `step at ${at}`);
  }
  assert.throws(() => parts[1]!.forward([{ tokens: [1], cache: caches[1]! }]), /needs hidden states \[1, 96\]/);
  await assert.rejects(loadModel(B, { kernels, layers: { from: 2, to: 4 } }), /layer range 2:4 is not within the model's 3 layers/);
});

test('2 stages (tiny-a 1 + 1) and 3 stages (tiny-b 1 + 1 + 1): byte-identical exact logits to one process, and the float64 goldens', async () => {
  // As root, the stage runs in its own memory cgroup.
  if (a1Group) assert.ok(fs.readFileSync(a1Group, 'utf8').split('\n').includes(String(a1.child.pid)), 'the stage is in its cgroup');
  for (const [name, model, layers, next] of [['tiny-a', A, '0:1', () => aAddr], ['tiny-b', B, '0:1', () => b1Addr]] as const) {
    const g = golden(name);
    const seq = [...g.greedy.prompt, ...g.greedy.continuation];
    const [one, split, greedy] = await Promise.all([
      oneProcess(model, g.tokens), logits(model, g.tokens, `${name}-split`, { layers, next: next() }), logits(model, seq, `${name}-greedy`, { layers, next: next() }),
    ]);
    assert.ok(maxAbsDiff(split, goldenLogits(name)) < 1e-4, `${name}: within 1e-4 of the golden`);
    assert.deepEqual(Buffer.from(split.buffer, split.byteOffset, split.byteLength), Buffer.from(one.buffer, one.byteOffset, one.byteLength), `${name}: the same bytes as one process`);
    // The golden greedy continuation: every position's argmax through the stages.
    const V = g.config.vocab_size!;
    const picked = g.greedy.continuation.map((_, i) => argmax(greedy.subarray((g.greedy.prompt.length - 1 + i) * V, (g.greedy.prompt.length + i) * V)));
    assert.deepEqual(picked, g.greedy.continuation, `${name}: golden greedy continuation`);
  }
});

test('3 stages: the welcome counts the stages behind, and three steps in flight at once each get the golden logits', async (t) => {
  const kernels = createKernels({ kernels: 'auto', mode: 'exact', threads: 1 });
  t.after(() => closeKernels(kernels));
  const { model: first } = await loadModel(B, { kernels, layers: { from: 0, to: 1 } });
  const link = new StageLink({ next: b1Addr, token: TOKEN, model: modelIdentity(B, first.config), from: 1, layers: first.config.nLayers, numerics: 'exact' });
  t.after(() => link.close());
  await link.ready(10_000);
  assert.equal(link.stages, 2, 'two stages behind the leader');
  // Three sequences, prefixes of the golden tokens of lengths 4, 5, 6, sent at once (as three micro-batches).
  const g = golden('tiny-b'), V = g.config.vocab_size!;
  const steps = [4, 5, 6].map((n, i) => {
    const tokens = g.tokens.slice(0, n);
    const hidden = first.forward([{ tokens, cache: first.newCache(n) }], { lastOnly: true });
    return { seqs: [900 + i], positions: [0], counts: [n], capacities: [n], tokens, hidden: f32Bytes(hidden), lastOnly: true };
  });
  const answers = await Promise.all(steps.map((s) => link.step(s)));
  assert.equal(link.status().mostInFlight, 3);
  const ref = goldenLogits('tiny-b');
  answers.forEach((a, i) => {
    const n = steps[i]!.counts[0]!;
    assert.ok(maxAbsDiff(bytesF32(a.logits, 'logits', V), ref.subarray((n - 1) * V, n * V)) < 1e-4, `sequence of ${n} tokens: the golden logits of its last token`);
  });
  link.free(steps.map((s) => s.seqs[0]!));
});

test('grok serve --layers 0:1 --next: the same tokens and logprobs as one process, greedy, seeded n = 3, streamed, 4 at once in micro-batches', async () => {
  const g = golden('tiny-a');
  const body = { model: 'tiny-a', prompt: g.greedy.prompt, max_tokens: 16, temperature: 0, logprobs: 2 };
  const [p, o] = await Promise.all([json(`${leader}/v1/completions`, body), json(`${single}/v1/completions`, body)]);
  assert.equal(p.status, 200, JSON.stringify(p.body));
  assert.equal(p.body.choices[0].logprobs.tokens.length, 16);
  assert.deepEqual(p.body.choices[0].logprobs, o.body.choices[0].logprobs);
  const sampled = { model: 'tiny-a', prompt: g.greedy.prompt, max_tokens: 12, temperature: 0.9, seed: 7, n: 3, logprobs: 1 };
  const [ps, os1] = await Promise.all([json(`${leader}/v1/completions`, sampled), json(`${single}/v1/completions`, sampled)]);
  assert.equal(ps.body.choices.length, 3);
  assert.deepEqual(ps.body.choices.map((c: any) => c.logprobs), os1.body.choices.map((c: any) => c.logprobs));
  assert.notDeepEqual(ps.body.choices[0].logprobs.tokens, ps.body.choices[1].logprobs.tokens, 'n = 3 samples differ');
  // Streamed with n = 2: each choice's text put together equals the non-streamed one.
  const r = await fetch(`${leader}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...sampled, n: 2, stream: true }) });
  const text = ['', ''];
  for (const line of (await r.text()).split('\n')) {
    if (!line.startsWith('data: {')) continue;
    for (const c of JSON.parse(line.slice(6)).choices) text[c.index] += c.text;
  }
  assert.deepEqual(text, ps.body.choices.slice(0, 2).map((c: any) => c.text));
  // Four requests at once go through as two micro-batches in flight (one per stage), each with its own tokens.
  const four = [0, 1, 2, 3].map((i) => ({ model: 'tiny-a', prompt: g.tokens.slice(i, i + 2 + 3 * i), max_tokens: 10, temperature: 0.8, seed: 40 + i, logprobs: 1 }));
  const [pf, of] = await Promise.all([Promise.all(four.map((b) => json(`${leader}/v1/completions`, b))), Promise.all(four.map((b) => json(`${single}/v1/completions`, b)))]);
  assert.deepEqual(pf.map((x) => x.body.choices[0].logprobs), of.map((x) => x.body.choices[0].logprobs));
  assert.equal((await json(`${leader}/health`)).body.pipeline.mostInFlight, 2, 'two steps in flight at once');
  const metrics = await (await fetch(`${leader}/metrics`)).text();
  for (const line of ['grok_pipeline_up 1', 'grok_pipeline_steps_in_flight 0', 'grok_pipeline_steps_in_flight_max 2', 'grok_pipeline_connections_total 1']) {
    assert.ok(metrics.split('\n').includes(line), `${line} in /metrics`);
  }
  // The stages behind do not report their routing: asked for, it is refused rather than half given.
  const routed = await json(`${leader}/v1/completions`, { model: 'tiny-a', prompt: [1, 2], max_tokens: 2, return_routed_experts: true });
  assert.equal(routed.status, 400);
  assert.match(routed.body.error.message, /not available when the model is split into pipeline stages/);
});

test('a stage killed mid-stream: the stream errors within 2 s, /health names the stage, a restarted stage serves again', async () => {
  const r = await fetch(`${leader}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-a', prompt: [135, 400], max_tokens: 8000, temperature: 0, ignore_eos: true, stream: true }) });
  assert.equal(r.status, 200);
  let chunks = 0, killedAt = 0, error: any = null;
  const dec = new TextDecoder();
  for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
    chunks++;
    if (chunks === 10) { a1.child.kill('SIGKILL'); killedAt = performance.now(); }
    const m = /data: (\{"error".*\})/.exec(dec.decode(part));
    if (m) error = JSON.parse(m[1]!).error;
  }
  const ms = performance.now() - killedAt;
  assert.ok(killedAt > 0, 'the stream ran long enough to kill the stage');
  assert.ok(ms < 2000, `ended ${ms.toFixed(0)} ms after the kill`);
  assert.equal(error?.code, 'stage_unavailable', JSON.stringify(error));
  assert.match(error.message, new RegExp(`${aAddr} \\(layers 1:2\\) is down`));
  const h = await json(`${leader}/health`);
  assert.equal(h.body.ready, false);
  assert.equal(h.body.pipeline.up, false);
  assert.match(h.body.pipeline.error, new RegExp(`stage ${aAddr} \\(layers 1:2\\) is down`));
  const down = await json(`${leader}/v1/completions`, { model: 'tiny-a', prompt: [135, 400], max_tokens: 2 });
  assert.equal(down.status, 503);
  assert.ok((await (await fetch(`${leader}/metrics`)).text()).split('\n').includes('grok_pipeline_up 0'), 'grok_pipeline_up 0 in /metrics');
  // Restarted on the same address: the leader reconnects by itself and serves the golden continuation again.
  a1 = await stage(A, '1:2', aAddr, undefined, a1Group);
  await until(async () => (await json(`${leader}/health`)).body.pipeline.up === true, 5000, 'the leader reconnects');
  const g = golden('tiny-a');
  const [again, one] = await Promise.all([
    json(`${leader}/v1/completions`, { model: 'tiny-a', prompt: g.greedy.prompt, max_tokens: 16, temperature: 0, logprobs: 1 }),
    json(`${single}/v1/completions`, { model: 'tiny-a', prompt: g.greedy.prompt, max_tokens: 16, temperature: 0, logprobs: 1 }),
  ]);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body.choices[0].logprobs, one.body.choices[0].logprobs);
});

test('the handshake refuses a wrong token, mismatched layers and another model, naming the mismatch', async () => {
  const out = path.join(tmp, 'refused.f32');
  const cases: [string[], RegExp][] = [
    [['-m', A, '--layers', '0:1', '--next', aAddr, '--stage-token', 'wrong'], /refused the connection: wrong --stage-token/],
    [['-m', B, '--layers', '0:1', '--next', b2Addr, '--stage-token', TOKEN], /layer mismatch: the previous stage ends at layer 1, this stage holds layers 2:3/],
    [['-m', B, '--layers', '0:1', '--next', aAddr, '--stage-token', TOKEN], /model mismatch: the previous stage has model\.gguf \(\d+ bytes, config \w+\), this stage model\.gguf/],
    [['-m', A, '--layers', '0:1', '--next', aAddr, '--stage-token', TOKEN, '--kernels', 'fast'], /numerics mismatch/],
  ];
  const rs = await Promise.all(cases.map(([args]) => grok('logits', '--tokens', '1,2', '--out', out, ...EXACT, ...args)));
  rs.forEach((r, i) => {
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, cases[i]![1]);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  });
  const bad = await grok('stage', '-m', A, '--layers', '0:1', '--listen', '127.0.0.1:0');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /the stage holding layer 0 is the leader/);
});
