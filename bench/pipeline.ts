/**
 * One process against the same model split into two pipeline stages on loopback (src/api/pipeline):
 * `grok serve` holding every layer, beside `grok serve --layers 0:K --next` + `grok stage --layers K:L`,
 * each process on `--threads` kernel threads. Reported, alternating the two setups round by round
 * (medians): batch-1 decode tokens/s and ms per token (the hop's latency cost), and aggregate decode
 * tokens/s with 4 concurrent streams, and the time to the first token of one long prompt (its prompt chunks
 * overlap on the stages), with the ratios split / one.
 *
 *   node dist/bench/pipeline.js [--model slice.gguf] [--split 1] [--threads 1] [--single-threads 2]
 *                               [--rounds 3] [--max-tokens 32] [--mmap] [--prompt-tokens 256] [--prefill-chunk 32]
 *
 * Default model: the tiny-b fixture. Both setups are up at once (each idles while the other runs); with
 * --mmap the processes share the file's page cache instead of each reading its layers into memory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fixtureDir } from '../test/fixtures.js';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string' },
    split: { type: 'string', default: '1' },
    threads: { type: 'string', default: '1' },
    'single-threads': { type: 'string' },
    rounds: { type: 'string', default: '3' },
    'max-tokens': { type: 'string', default: '32' },
    mmap: { type: 'boolean' },
    'prompt-tokens': { type: 'string', default: '256' },
    'prefill-chunk': { type: 'string', default: '32' },
  },
});
const CLI = path.resolve('dist/src/cli/main.js');
const model = opt.model ?? path.join(fixtureDir('tiny-b'), 'model.gguf');
const threads = opt.threads!, single = opt['single-threads'] ?? threads;
const maxTokens = Number(opt['max-tokens']);
const children: ChildProcess[] = [];
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

function start(args: string[], ready: RegExp): Promise<string> {
  const c = spawn(process.execPath, [CLI, ...args, ...(opt.mmap ? ['--mmap'] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(c);
  let err = '';
  return new Promise((resolve, reject) => {
    c.stderr!.on('data', (d: Buffer) => { err += d.toString(); const m = ready.exec(err); if (m) resolve(m[1]!); });
    c.on('exit', (code) => reject(new Error(`grok ${args.join(' ')} exited (${code}):\n${err}`)));
  });
}

async function until(url: string): Promise<void> {
  for (;;) {
    try { if ((await fetch(url)).status === 200) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One streamed greedy completion: its decode time (first token → last) and tokens. */
async function stream(base: string, seed: number): Promise<{ tokens: number; ms: number }> {
  const r = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', prompt: [1, 5 + seed, 9, 13], max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true }) });
  let first = 0, last = 0, tokens = 0, buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    const lines = buf.split('\n');
    buf = lines.pop()!;
    const n = lines.filter((l) => l.startsWith('data: {') && /"text":"[^"]/.test(l)).length;
    if (n === 0) continue;
    const now = performance.now();
    if (!first) first = now;
    last = now;
    tokens += n;
  }
  if (tokens < maxTokens / 2) throw new Error(`${base}: ${tokens} of ${maxTokens} tokens`);
  return { tokens: tokens - 1, ms: last - first };
}

/** Time to the first token of one prompt of --prompt-tokens token ids (its prefill), ms. */
async function prefill(base: string, seed: number): Promise<number> {
  const prompt = Array.from({ length: Number(opt['prompt-tokens']) }, (_, i) => 5 + ((i * 7 + seed) % 200));
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', prompt, max_tokens: 1, temperature: 0, ignore_eos: true }) });
  if (r.status !== 200) throw new Error(`${base}: ${r.status} ${await r.text()}`);
  await r.json();
  return performance.now() - t0;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

const ser = /serving .* on (http:\/\/[\d.:]+)/;
const stageAddr = await start(['stage', '-m', model, '--layers', `${opt.split}:${await layerCount()}`, '--listen', '127.0.0.1:0', '--threads', threads, '--quiet'], /listening on (\S+?)(,| \()/);
const [one, split] = await Promise.all([
  start(['serve', '-m', model, '-p', '0', '--quiet', '--threads', single, '--slots', '4', '--prefill-chunk', opt['prefill-chunk']!], ser),
  start(['serve', '-m', model, '-p', '0', '--quiet', '--threads', threads, '--slots', '4', '--prefill-chunk', opt['prefill-chunk']!, '--layers', `0:${opt.split}`, '--next', stageAddr], ser),
]);
await Promise.all([until(`${one}/ready`), until(`${split}/ready`)]);

async function layerCount(): Promise<number> {
  const { layerSizes } = await import('../src/model/loader.js');
  return layerSizes(model).layers.length;
}

const res = { one: { b1: [] as number[], b4: [] as number[], pf: [] as number[] }, split: { b1: [] as number[], b4: [] as number[], pf: [] as number[] } };
for (const [name, base] of [['one', one], ['split', split]] as const) await stream(base, 0); // warm
for (let round = 0; round < Number(opt.rounds); round++) {
  for (const [name, base] of (round % 2 ? [['split', split], ['one', one]] : [['one', one], ['split', split]]) as [keyof typeof res, string][]) {
    const b1 = await stream(base, round);
    res[name].b1.push((1000 * b1.tokens) / b1.ms);
    const t0 = performance.now();
    const four = await Promise.all([0, 1, 2, 3].map((i) => stream(base, round * 4 + i + 1)));
    res[name].b4.push((1000 * four.reduce((a, x) => a + x.tokens + 1, 0)) / (performance.now() - t0));
    res[name].pf.push(await prefill(base, round));
  }
}
const f = (x: number) => x.toFixed(2);
const o1 = median(res.one.b1), s1 = median(res.split.b1), o4 = median(res.one.b4), s4 = median(res.split.b4);
console.log(`model ${model}; split 0:${opt.split} + ${opt.split}:L on loopback; ${threads} thread(s) per stage, ${single} for the one process; ${cpus().length} CPUs (${cpus()[0]?.model}); load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log(`batch-1 decode tok/s  one ${f(o1)}  split ${f(s1)}  split/one ${f(s1 / o1)}  (ms/token ${f(1000 / o1)} vs ${f(1000 / s1)}: hop cost ${f(1000 / s1 - 1000 / o1)} ms)`);
console.log(`4 streams, aggregate tok/s (prefill included)  one ${f(o4)}  split ${f(s4)}  split/one ${f(s4 / o4)}`);
const op = median(res.one.pf), sp = median(res.split.pf);
console.log(`prefill of ${opt['prompt-tokens']} tokens in chunks of ${opt['prefill-chunk']}, time to first token ms  one ${op.toFixed(0)}  split ${sp.toFixed(0)}  speed split/one ${f(op / sp)}`);
console.log(`rounds: one b1 ${res.one.b1.map(f).join(' ')} | split b1 ${res.split.b1.map(f).join(' ')} | one b4 ${res.one.b4.map(f).join(' ')} | split b4 ${res.split.b4.map(f).join(' ')} | one ttft ${res.one.pf.map((x) => x.toFixed(0)).join(' ')} | split ttft ${res.split.pf.map((x) => x.toFixed(0)).join(' ')}`);
process.exit(0);
