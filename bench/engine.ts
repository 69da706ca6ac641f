/**
 * Aggregate decode speed of the continuous-batching engine at 1, 4 and 8 concurrent sequences, beside
 * llama.cpp (node-llama-cpp's prebuilt CPU binary) decoding the same number of sequences of the same GGUF.
 *
 *   grok synth --preset grok1 --layers 2 --type q8_0 --out .bench-out/slice.gguf
 *   node dist/bench/engine.js [--model .bench-out/slice.gguf] [--concurrency 1,4,8] [--prompt 16] [--gen 6]
 *                             [--threads 2] [--mode fast|exact] [--engines ours,llama] [--vocab 131072]
 *                             [--repeat R]   (R runs per point, the fastest kept: the VM is shared)
 *
 * Each sequence gets its own pseudo-random prompt; all are submitted at once, greedy, EOS ignored. The
 * figure is tokens per second over the window in which every sequence is decoding (from the last first
 * token to the first last token), so prefill is excluded. Each engine runs in its own child process.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadLlama } from '../test/llama-peer.js';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string', default: '.bench-out/slice.gguf' },
    concurrency: { type: 'string', default: '1,4,8' },
    prompt: { type: 'string', default: '16' },
    gen: { type: 'string', default: '6' },
    threads: { type: 'string', default: '2' },
    mode: { type: 'string', default: 'fast' },
    engines: { type: 'string', default: 'ours,llama' },
    vocab: { type: 'string', default: '131072' },
    repeat: { type: 'string', default: '1' },
    child: { type: 'string' },
  },
});

interface Point { n: number; aggTokS: number; msPerStep: number; windowTokens: number }
interface Result { engine: string; loadS: number; points: Point[]; note: string }

function prompts(n: number, len: number, vocab: number): number[][] {
  const lo = vocab > 4000 ? 1000 : 4;
  let s = 987654321;
  return Array.from({ length: n }, () => Array.from({ length: len }, () => lo + ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (vocab - 2 * lo))));
}

/** Tokens per second while all sequences decode: arrivals[i] = timestamps of sequence i's tokens. */
function window(arrivals: number[][]): Point {
  const start = Math.max(...arrivals.map((a) => a[0]!));
  const end = Math.min(...arrivals.map((a) => a[a.length - 1]!));
  let tokens = 0;
  for (const a of arrivals) for (const t of a) if (t > start && t <= end) tokens++;
  const s = (end - start) / 1000;
  return { n: arrivals.length, aggTokS: tokens / s, msPerStep: (end - start) / (tokens / arrivals.length), windowTokens: tokens };
}

async function runOurs(file: string, ns: number[], nPrompt: number, nGen: number, threads: number): Promise<Result> {
  const { createKernels, closeKernels } = await import('../src/kernels/index.js');
  const { loadModel } = await import('../src/model/loader.js');
  const { Scheduler } = await import('../src/engine/scheduler.js');
  const kernels = createKernels({ kernels: 'wasm', mode: opt.mode === 'exact' ? 'exact' : 'fast', threads });
  const t0 = performance.now();
  const { model } = await loadModel(file, { kernels });
  const loadS = (performance.now() - t0) / 1000;
  if (model.config.vocabSize !== Number(opt.vocab)) throw new Error(`--vocab ${opt.vocab} but the model's vocabulary is ${model.config.vocabSize}`);
  const points: Point[] = [];
  for (const n of ns) {
    let best: Point | null = null;
    for (let rep = 0; rep < Number(opt.repeat); rep++) {
      const sched = new Scheduler(model, { slots: n, prefillChunk: 256 });
      const ps = prompts(n, nPrompt, model.config.vocabSize);
      const arrivals = await Promise.all(ps.map(async (p) => {
        const ts: number[] = [];
        for await (const _ of sched.submit(p, { temperature: 0, maxTokens: nGen, ignoreEos: true })) ts.push(performance.now());
        return ts;
      }));
      const pt = window(arrivals);
      if (!best || pt.aggTokS > best.aggTokS) best = pt;
    }
    points.push(best!);
  }
  const note = kernels.name;
  closeKernels(kernels);
  return { engine: 'ours', loadS, points, note };
}

async function runLlama(file: string, ns: number[], nPrompt: number, nGen: number, threads: number): Promise<Result> {
  const llama = await loadLlama();
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const loadS = (performance.now() - t0) / 1000;
  type Item = [number, { generateNext: { token: true } }];
  const gen = (t: number): Item => [t, { generateNext: { token: true } }];
  const points: Point[] = [];
  for (const n of ns) for (let rep = 0; rep < Number(opt.repeat); rep++) {
    const ctx = await model.createContext({
      contextSize: n * (nPrompt + nGen + 16), sequences: n, batchSize: Math.max(n * nPrompt, 32),
      threads: { ideal: threads, min: threads }, flashAttention: false,
    });
    const ps = prompts(n, nPrompt, Number(opt.vocab));
    // Concurrent evaluations on different sequences are batched into one llama_decode by node-llama-cpp.
    const arrivals = await Promise.all(ps.map(async (p) => {
      const seq = ctx.getSequence();
      const ts: number[] = [];
      const r = await seq.controlledEvaluate(p.map((t, i) => (i === p.length - 1 ? gen(t) : t)));
      ts.push(performance.now());
      let next = r[p.length - 1]?.next.token as number | undefined;
      if (next === undefined) throw new Error('llama.cpp returned no next token after the prompt');
      for (let i = 1; i < nGen; i++) {
        const s = await seq.controlledEvaluate([gen(next)]);
        ts.push(performance.now());
        next = s[0]?.next.token as number;
      }
      return ts;
    }));
    const pt = window(arrivals);
    const i = points.findIndex((q) => q.n === n);
    if (i < 0) points.push(pt);
    else if (pt.aggTokS > points[i]!.aggTokS) points[i] = pt;
    await ctx.dispose();
  }
  await model.dispose();
  await llama.dispose();
  return { engine: 'llama', loadS, points, note: 'node-llama-cpp prebuilt CPU, mmap' };
}

async function main(): Promise<void> {
  const file = opt.model!;
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file (make it with \`grok synth --preset grok1 --layers 2 --type q8_0 --out ${file}\`)`);
  const ns = opt.concurrency!.split(',').map(Number);
  const nPrompt = Number(opt.prompt), nGen = Number(opt.gen), threads = Number(opt.threads);
  if (nGen < 3) throw new Error('--gen must be ≥ 3 (the decode window needs tokens after the first)');
  if (opt.child) {
    const r = opt.child === 'ours' ? await runOurs(file, ns, nPrompt, nGen, threads) : await runLlama(file, ns, nPrompt, nGen, threads);
    process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
    process.exit(0); // worker threads / llama.cpp's pool must not hold the process
  }
  console.log(`# bench/engine ${new Date().toISOString()}  ${file} (${(fs.statSync(file).size / 1e9).toFixed(2)} GB)  prompt ${nPrompt}, ${nGen} tokens per sequence, ${threads} threads, mode ${opt.mode}, best of ${opt.repeat}  load avg ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  const self = fileURLToPath(import.meta.url);
  const results: Result[] = [];
  for (const engine of opt.engines!.split(',')) {
    const args = [self, '--child', engine, '--model', file, '--concurrency', opt.concurrency!, '--prompt', String(nPrompt), '--gen', String(nGen), '--threads', String(threads), '--mode', opt.mode!, '--vocab', opt.vocab!, '--repeat', opt.repeat!];
    const p = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
    const line = p.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) { console.log(`${engine}: failed (exit ${p.status})\n${p.stderr.slice(-2000)}`); continue; }
    const r = JSON.parse(line.slice(7)) as Result;
    results.push(r);
    for (const pt of r.points) {
      console.log(`${engine.padEnd(5)} ${String(pt.n).padStart(2)} seqs  ${pt.aggTokS.toFixed(2)} tok/s aggregate  (${pt.msPerStep.toFixed(0)} ms per step, ${pt.windowTokens} tokens in window)  [load ${r.loadS.toFixed(1)} s; ${r.note}]`);
    }
  }
  const o = results.find((r) => r.engine === 'ours');
  const l = results.find((r) => r.engine === 'llama');
  if (o && l) for (const pt of o.points) {
    const q = l.points.find((x) => x.n === pt.n);
    if (q) console.log(`ratio ours/llama.cpp at ${pt.n}: ${(pt.aggTokS / q.aggTokS).toFixed(2)}×`);
  }
}

await main();
