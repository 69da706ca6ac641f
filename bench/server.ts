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

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string' },
    concurrency: { type: 'string', default: '1,8,32' },
    requests: { type: 'string', default: '64' },
    'max-tokens': { type: 'string', default: '16' },
    slots: { type: 'string', default: '8' },
    'child-server': { type: 'boolean' },
    routing: { type: 'boolean' },
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
  if (r.status !== 200 || !r.body) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  let ttft = -1;
  let tokens = -1;
  let buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    let k: number;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6)) as { choices: { logprobs: unknown }[]; usage?: { completion_tokens: number } | null; error?: unknown };
      if (j.error) throw new Error(JSON.stringify(j.error));
      if (ttft < 0 && j.choices.some((c) => c.logprobs)) ttft = performance.now() - t0;
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
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
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child-server', '--model', model, '--port', '0', '--slots', slots, '--max-queue', '256', '--model-id', 'bench', '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const base = await new Promise<string>((resolve, reject) => {
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`server exited (${code}): ${err}`)));
    });
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
