/**
 * `grok serve` under load: a bounded client loop against 127.0.0.1 — C workers each send streaming
 * /v1/completions requests back to back until R requests are done — reporting requests/s, time to first
 * token (p50 / p99) and aggregate generated tokens/s, at concurrency 1, 8 and 32.
 *
 *   node dist/bench/server.js [--model models/default/model.gguf] [--concurrency 1,8,32] [--requests 64]
 *                             [--max-tokens 16] [--slots 8] [--routing]
 *
 * --routing asks for return_routed_experts (every token's experts; each token is then sent one step later).
 *
 * --health: probes while one long prompt is prefilled instead of the load levels. One client sends a
 * --long-prompt-token prompt (max_tokens 1) while a second streams a short completion and a third asks
 * GET /health (then GET /metrics) back to back, every --probe-ms; reported: each probe's latency (p50 / p99 /
 * max, over the probes sent before the long request's first token arrived), the second client's tokens received
 * during that prefill, and the prefill's time. Extra server flags go after `--` (e.g. -- --threads 1).
 *
 *   node dist/bench/server.js --health [--long-prompt 3000] [--ctx 4096] [--probe-ms 20] [-- --threads 1]
 *
 * --second-turn: time to first token of a chat's second turn, on a server with the prefix cache (default
 * --cache-ram) and one without (--cache-ram 0), runs interleaved: each run is a fresh first turn of
 * --history tokens (answered with 8 tokens), then the second turn (a short question, streamed, max_tokens 1).
 * Reported: median TTFT of each, their ratio, and new tokens / total tokens of the second turn's prompt
 * (what the ratio approaches when prefill dominates).
 *
 *   node dist/bench/server.js --second-turn [--history 1500] [--ctx 4096] [--runs 5] [-- --threads 1]
 *
 * --schema: the throughput cost of a JSON-schema constraint (response_format json_schema, XGrammar): the
 * same chat request with and without the schema, interleaved, --runs of each; decode tokens/s of each
 * (tokens after the first / time after the first token), medians and their ratio.
 *
 *   node dist/bench/server.js --schema [--runs 8] [--max-tokens 96]
 *
 * The server runs in a child process (its own event loop and kernels), the clients in this one.
 * Default model: the embedded default model if present, else the tiny-b fixture GGUF (it carries a tokenizer).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fixtureDir } from '../test/fixtures.js';

const { values: opt, positionals } = parseArgs({
  options: {
    model: { type: 'string' },
    concurrency: { type: 'string', default: '1,8,32' },
    requests: { type: 'string', default: '64' },
    'max-tokens': { type: 'string', default: '16' },
    slots: { type: 'string', default: '8' },
    'child-server': { type: 'boolean' },
    routing: { type: 'boolean' },
    health: { type: 'boolean' },
    'long-prompt': { type: 'string', default: '3000' },
    ctx: { type: 'string', default: '4096' },
    'probe-ms': { type: 'string', default: '20' },
    'second-turn': { type: 'boolean' },
    history: { type: 'string', default: '1500' },
    runs: { type: 'string' },
    schema: { type: 'boolean' },
  },
  allowPositionals: true,
  strict: false,
});

const WORDS = 'the people water time way day man work number sound place year back thing good'.split(' ');

function prompt(i: number): string {
  const n = 8 + (i % 5) * 4;
  return Array.from({ length: n }, (_, k) => WORDS[(i * 7 + k * 3) % WORDS.length]).join(' ');
}

function pct(v: number[], p: number): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

interface One { ttftMs: number; tokens: number }

/** A streamed completion's data event (the fields read here). */
interface Event { choices: { logprobs?: unknown; finish_reason?: string | null }[]; usage?: { completion_tokens: number } | null; error?: unknown }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Read an SSE response, calling `onEvent` with every data object, until the stream ends. */
async function readEvents(r: Response, onEvent: (j: Event) => void): Promise<void> {
  if (r.status !== 200 || !r.body) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  let buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    let k: number;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6)) as Event;
      if (j.error) throw new Error(JSON.stringify(j.error));
      onEvent(j);
    }
  }
}

/** One streaming request; time to the first token chunk, and the usage count of generated tokens. */
async function request(base: string, model: string, i: number, maxTokens: number): Promise<One> {
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model, prompt: prompt(i), max_tokens: maxTokens, temperature: 0.8, seed: i, ignore_eos: true,
      logprobs: 0, stream: true, stream_options: { include_usage: true }, ...(opt.routing ? { return_routed_experts: true } : {}),
    }),
  });
  let ttft = -1;
  let tokens = -1;
  await readEvents(r, (j) => {
    if (ttft < 0 && j.choices.some((c) => c.logprobs)) ttft = performance.now() - t0;
    if (j.usage) tokens = j.usage.completion_tokens;
  });
  if (ttft < 0 || tokens < 0) throw new Error('stream ended without tokens or usage');
  return { ttftMs: ttft, tokens };
}

async function load(base: string, model: string, c: number, total: number, maxTokens: number) {
  let next = 0;
  const done: One[] = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, async () => {
    for (let i = next++; i < total; i = next++) done.push(await request(base, model, i, maxTokens));
  }));
  const s = (performance.now() - t0) / 1000;
  const ttft = done.map((d) => d.ttftMs);
  const tokens = done.reduce((a, d) => a + d.tokens, 0);
  return { c, reqS: done.length / s, p50: pct(ttft, 50), p99: pct(ttft, 99), tokS: tokens / s, wallS: s, n: done.length };
}

/**
 * --health: GET /health and GET /metrics latencies, and a second client's streamed tokens, while one long
 * prompt (token ids) is prefilled.
 */
async function healthDuringPrefill(base: string, model: string): Promise<void> {
  const info = await (await fetch(`${base}/info`)).json() as { vocabSize: number; contextLength: number };
  const n = Number(opt['long-prompt']);
  let s = 12345;
  const ids = Array.from({ length: n }, () => 4 + ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (info.vocabSize - 4)));
  const post = (body: object) => fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, ...body }) });
  // Warm-up: the kernels' first calls and the connection pool.
  await readEvents(await post({ prompt: 'the people', max_tokens: 2, stream: true }), () => undefined);
  const t0 = performance.now();
  let prefillEnd = 0;
  const long = post({ prompt: ids, max_tokens: 1, stream: true, ignore_eos: true })
    .then((r) => readEvents(r, () => { prefillEnd ||= performance.now(); }));
  await sleep(100); // the long prompt is under way
  const probes = { health: [] as number[], metrics: [] as number[] };
  const probe = async (path: 'health' | 'metrics') => {
    while (!prefillEnd) {
      const a = performance.now();
      const r = await fetch(`${base}/${path}`);
      await r.text();
      if (!prefillEnd || a < prefillEnd) probes[path].push(performance.now() - a); // sent during the prefill
      await sleep(Number(opt['probe-ms']));
    }
  };
  const secondStart = performance.now();
  let during = 0;
  let firstAt = 0;
  const second = post({ prompt: 'and God said', max_tokens: 200, stream: true, ignore_eos: true, temperature: 0 })
    .then((r) => readEvents(r, (j) => { if (j.choices[0]?.finish_reason === null && !prefillEnd) { during++; firstAt ||= performance.now(); } }));
  await Promise.all([probe('health'), probe('metrics'), long]);
  await second;
  const stats = (v: number[]) => v.length === 0 ? 'no probes'
    : `${v.length} probes: p50 ${pct(v, 50).toFixed(1)} ms  p99 ${pct(v, 99).toFixed(1)} ms  max ${Math.max(...v).toFixed(1)} ms`;
  console.log(`prefill of ${n} tokens: ${((prefillEnd - t0) / 1000).toFixed(2)} s (request sent → first token)`);
  console.log(`/health  during the prefill: ${stats(probes.health)}`);
  console.log(`/metrics during the prefill: ${stats(probes.metrics)}`);
  console.log(`second client: ${during} tokens streamed during the prefill${firstAt ? ` (first after ${(firstAt - secondStart).toFixed(0)} ms)` : ''}`);
}

const median = (v: number[]) => pct(v, 50);

/** A streamed chat request: time to the first content chunk, to the last, tokens generated and cached. */
async function chat(base: string, body: object): Promise<{ ttftMs: number; lastMs: number; tokens: number; cached: number; prompt: number; text: string }> {
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bench', stream: true, stream_options: { include_usage: true }, temperature: 0, logprobs: true, ...body }),
  });
  let ttft = -1, last = 0, tokens = 0, cached = 0, prompt = 0, text = '';
  await readEvents(r, (j) => {
    // A token's chunk carries its logprobs (the opening chunk, sent at once, names only the role).
    const c = j.choices[0] as { delta?: { content?: string }; logprobs?: unknown } | undefined;
    if (c?.logprobs) { if (ttft < 0) ttft = performance.now() - t0; last = performance.now() - t0; }
    text += c?.delta?.content ?? '';
    const u = j.usage as { completion_tokens: number; prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } } | null | undefined;
    if (u) { tokens = u.completion_tokens; prompt = u.prompt_tokens; cached = u.prompt_tokens_details?.cached_tokens ?? 0; }
  });
  if (ttft < 0) throw new Error('the stream ended without a token');
  return { ttftMs: ttft, lastMs: last, tokens, cached, prompt, text };
}

/** --second-turn: a chat's second turn with the prefix cache (a) and without (b), interleaved. */
async function secondTurn(a: string, b: string, runs: number): Promise<void> {
  const words = (n: number, seed: number) => Array.from({ length: n }, (_, k) => WORDS[(seed * 5 + k * 7 + (k >> 3)) % WORDS.length]).join(' ');
  const res = { cached: [] as number[], uncached: [] as number[] };
  let share = '';
  for (let i = 0; i < runs; i++) {
    for (const [label, base] of (i % 2 ? [['uncached', b], ['cached', a]] : [['cached', a], ['uncached', b]]) as ['cached' | 'uncached', string][]) {
      // A history of about --history tokens (about 1.1 tokens a word on the default model's tokenizer), new each run.
      const first = [{ role: 'user', content: `${i} ${label} ${words(Math.round(Number(opt.history) / 1.1), i)}` }];
      const t1 = await chat(base, { messages: first, max_tokens: 8, ignore_eos: true });
      const turn2 = [...first, { role: 'assistant', content: t1.text }, { role: 'user', content: 'and what did the people say then?' }];
      const t2 = await chat(base, { messages: turn2, max_tokens: 1 });
      res[label].push(t2.ttftMs);
      if (label === 'cached') share = `second turn: ${t2.prompt} prompt tokens, ${t2.cached} cached, ${t2.prompt - t2.cached} new (new / total = ${((t2.prompt - t2.cached) / t2.prompt).toFixed(3)})`;
    }
  }
  console.log(share);
  console.log(`TTFT of the second turn, median of ${runs}: with the prefix cache ${median(res.cached).toFixed(0)} ms, without ${median(res.uncached).toFixed(0)} ms; ratio ${(median(res.cached) / median(res.uncached)).toFixed(3)}`);
  console.log(`  with:    ${res.cached.map((v) => v.toFixed(0)).join(' ')} ms\n  without: ${res.uncached.map((v) => v.toFixed(0)).join(' ')} ms`);
}

/** --schema: decode tokens/s with and without a JSON-schema constraint, interleaved. */
async function schemaCost(base: string, runs: number, maxTokens: number): Promise<void> {
  const schema = {
    type: 'object', additionalProperties: false, required: ['words'],
    properties: { words: { type: 'array', minItems: 200, items: { type: 'string', enum: WORDS } } },
  };
  const messages = [{ role: 'user', content: 'list words' }];
  const res = { plain: [] as number[], schema: [] as number[] };
  const tokens = { plain: [] as number[], schema: [] as number[] };
  const once = async (label: 'plain' | 'schema') => {
    const r = await chat(base, {
      messages, max_tokens: maxTokens, ...(label === 'schema' ? { response_format: { type: 'json_schema', json_schema: { name: 'w', schema } } } : { ignore_eos: true }),
    });
    // The schema's answers are checked by the tests (test/structured-output.test.ts); here: that it was constrained at all.
    if (label === 'schema' && !/^\s*\{\s*"words"/.test(r.text)) throw new Error(`the constrained answer does not start as the schema says: ${r.text.slice(0, 80)}`);
    res[label].push((r.tokens - 1) / ((r.lastMs - r.ttftMs) / 1000));
    tokens[label].push(r.tokens);
  };
  await once('plain'); await once('schema'); // warm-up: kernels, the grammar's compilation
  res.plain.length = res.schema.length = tokens.plain.length = tokens.schema.length = 0;
  for (let i = 0; i < runs; i++) for (const l of (i % 2 ? ['schema', 'plain'] : ['plain', 'schema']) as ('plain' | 'schema')[]) await once(l);
  console.log(`decode tokens/s, median of ${runs} (max_tokens ${maxTokens}; tokens per answer: plain ${median(tokens.plain)}, schema ${median(tokens.schema)}):`);
  console.log(`  unconstrained ${median(res.plain).toFixed(1)}  json_schema ${median(res.schema).toFixed(1)}  ratio ${(median(res.schema) / median(res.plain)).toFixed(3)} (cost ${((1 - median(res.schema) / median(res.plain)) * 100).toFixed(1)} %)`);
  console.log(`  unconstrained: ${res.plain.map((v) => v.toFixed(0)).join(' ')}\n  json_schema:   ${res.schema.map((v) => v.toFixed(0)).join(' ')}`);
}

/** Start `grok serve` in a child process; its base URL and how to stop it. */
async function startChild(model: string, args: string[]): Promise<{ base: string; stop: () => void }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child-server', '--model', model, '--port', '0', '--model-id', 'bench', '--quiet', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const base = await new Promise<string>((resolve, reject) => {
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /serving .* on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${err}`)));
  });
  return { base, stop: () => child.kill('SIGTERM') };
}

async function main(): Promise<void> {
  if (opt['child-server']) {
    const { main } = await import('../src/cli/main.js');
    process.exitCode = await main(['serve', ...process.argv.slice(2).filter((a) => a !== '--child-server')]);
    return;
  }
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const embedded = path.join(root, 'models/default/model.gguf');
  const model = (opt.model as string | undefined) ?? (fs.existsSync(embedded) ? embedded : path.join(fixtureDir('tiny-b'), 'model.gguf'));
  const maxTokens = Number(opt['max-tokens']);
  const requests = Number(opt.requests);
  const levels = String(opt.concurrency).split(',').map(Number);
  const slots = String(opt.slots);
  const la = () => `load avg ${loadavg().map((v) => v.toFixed(2)).join(' ')}`;
  if (opt['second-turn']) {
    const args = ['-c', String(opt.ctx), ...positionals];
    const [a, b] = [await startChild(model, args), await startChild(model, [...args, '--cache-ram', '0'])];
    try {
      console.log(`# bench/server --second-turn ${new Date().toISOString()}  ${model}  history ~${String(opt.history)} tokens  server flags: ${args.join(' ')}  ${la()}`);
      await secondTurn(a.base, b.base, Number(opt.runs ?? 5));
    } finally { a.stop(); b.stop(); }
    return;
  }
  if (opt.schema) {
    const s = await startChild(model, ['--slots', '1', ...positionals]);
    try {
      console.log(`# bench/server --schema ${new Date().toISOString()}  ${model}  server flags: --slots 1 ${positionals.join(' ')}  ${la()}`);
      await schemaCost(s.base, Number(opt.runs ?? 8), maxTokens === 16 && !process.argv.includes('--max-tokens') ? 96 : maxTokens);
    } finally { s.stop(); }
    return;
  }
  const extra = opt.health ? ['--metrics', '-c', String(opt.ctx), ...positionals] : [];
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child-server', '--model', model, '--port', '0', '--slots', slots, '--max-queue', '256', '--model-id', 'bench', '--quiet', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const base = await new Promise<string>((resolve, reject) => {
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /serving .* on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`server exited (${code}): ${err}`)));
    });
    if (opt.health) {
      console.log(`# bench/server --health ${new Date().toISOString()}  ${model}  server flags: ${extra.join(' ')}  load avg ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
      await healthDuringPrefill(base, 'bench');
      return;
    }
    console.log(`# bench/server ${new Date().toISOString()}  ${model}  ${slots} slots, ${requests} requests per level, max_tokens ${maxTokens}, streaming${opt.routing ? ', return_routed_experts' : ''}  load avg ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
    await load(base, 'bench', Math.min(4, requests), Math.min(8, requests), maxTokens); // warm-up
    for (const c of levels) {
      const r = await load(base, 'bench', c, Math.max(requests, c), maxTokens);
      console.log(`concurrency ${String(c).padStart(2)}: ${r.reqS.toFixed(2)} req/s  TTFT p50 ${r.p50.toFixed(0)} ms  p99 ${r.p99.toFixed(0)} ms  ${r.tokS.toFixed(1)} tok/s aggregate  (${r.n} requests in ${r.wallS.toFixed(1)} s)`);
    }
  } finally {
    child.kill('SIGTERM');
  }
}

await main();
