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
