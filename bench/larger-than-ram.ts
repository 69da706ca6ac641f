/**
 * Grok-1 larger than RAM: decode and prefill speed of a model file larger than the memory the engine may
 * use, against the disk's ceiling. Every engine runs in its own child process inside a memory cgroup
 * (default 6 GiB, no swap), with the model file evicted from the page cache just before, on the same
 * threads and the same token ids:
 *
 *  1. Prefill: a fixed pseudo-random prompt (--prompt, default 128 tokens) from a cold page cache.
 *  2. Teacher-forced decode: after an 8-token prompt, a fixed pseudo-random token per step, each step
 *     computing next-token logits; median and mean of --steps steps after 2 warm-up steps. Forced, not
 *     greedy: greedy decode of random weights repeats one token, which always picks the same 2 experts
 *     per layer and hides the cost of reading experts; random tokens route to different experts each step.
 *  3. The disk ceiling: the file's sequential O_DIRECT read rate over the expert bytes one token is
 *     expected to read from disk — experts used × layers × one expert's gate+up+down, times the fraction
 *     of experts that do not fit in the budget beside the non-expert weights (routing taken as uniform).
 *
 * Engines (run in the order given; repeat names to interleave, e.g. grok-stream,llama,grok-stream,llama):
 *   grok-stream  loadModel(path, { ramBudget: --budget-gib }): the expert cache (grok.model.expertCache).
 *   grok-mmap    loadModel(path, { ramBudget: Infinity }): never streamed, weights mapped and paged by the kernel.
 *   llama        llama.cpp through node-llama-cpp (npm run peer), its default mmap.
 * Per run: the cgroup's peak memory (anonymous + page cache), the process's peak RSS, and the bytes it
 * read from disk (/proc/self/io read_bytes) during prefill and per decoded token.
 *
 *   node dist/bench/larger-than-ram.js --model slice.gguf [--limit-gib 6] [--budget-gib 4.75] [--threads 2]
 *        [--steps 12] [--prompt 128] [--engines grok-stream,llama,grok-mmap] [--json]
 *
 * Needs root (cgroup) and GNU dd (eviction and the O_DIRECT read); see bench/cgroup-util.ts.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { LoadModelOptions } from '../src/api/index.js';
import { openGguf } from '../src/formats/gguf.js';
import { loadLlama } from '../test/llama-peer.js';
import { evict, makeCgroup, shellArgs } from './cgroup-util.js';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string' },
    'limit-gib': { type: 'string', default: '6' },
    'budget-gib': { type: 'string' },
    threads: { type: 'string', default: '2' },
    steps: { type: 'string', default: '12' },
    prompt: { type: 'string', default: '128' },
    engines: { type: 'string', default: 'grok-stream,llama,grok-mmap' },
    json: { type: 'boolean', default: false },
    child: { type: 'string' },
    budget: { type: 'string' }, // bytes, parent → child
  },
});

const ENGINES = ['grok-stream', 'grok-mmap', 'llama'] as const;
type Engine = (typeof ENGINES)[number];
const DECODE_PROMPT = 8;
const WARMUP = 2;
const CHILD_TIMEOUT_MS = 20 * 60_000;
const GiB = 2 ** 30;

/** What a child reports on its RESULT line. */
type ChildResult =
  | {
    kind: 'ok';
    engine: Engine;
    loadS: number;
    prefillMs: number;
    /** Disk bytes read while prefilling. */
    prefillReadBytes: number;
    /** Milliseconds of each timed decode step (warm-up excluded). */
    stepMs: number[];
    /** Disk bytes read over the timed decode steps. */
    decodeReadBytes: number;
    /** The most probable next token after each forced step (warm-up included). */
    top1: number[];
    maxRssBytes: number;
    note: string;
    /** grok.model.expertCache.stats() at the end, and its numeric fields' change over the timed steps. */
    cacheStats?: Record<string, unknown>;
    cacheStatsTimed?: Record<string, number>;
  }
  | { kind: 'unsupported'; engine: Engine; reason: string };

/** A child's result with what the parent measured around it. */
type Run = Extract<ChildResult, { kind: 'ok' }> & { cgroupPeakBytes: number; wallS: number; loadBefore: number; loadAfter: number };

/** Fixed pseudo-random ids (an LCG, seeded), away from the control and byte tokens at the start of the vocabulary. */
function tokenIds(n: number, vocab: number, seed: number): number[] {
  const lo = vocab > 4000 ? 1000 : 4;
  let s = seed >>> 0;
  return Array.from({ length: n }, () => lo + ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (vocab - 2 * lo)));
}

function workload(vocab: number, nPrompt: number, steps: number): { prefill: number[]; decodePrompt: number[]; forced: number[] } {
  const seq = tokenIds(DECODE_PROMPT + WARMUP + steps, vocab, 777);
  return { prefill: tokenIds(nPrompt, vocab, 12345), decodePrompt: seq.slice(0, DECODE_PROMPT), forced: seq.slice(DECODE_PROMPT) };
}

/** Bytes this process (all its threads) has caused to be read from the block device. */
function diskReadBytes(): number {
  return Number(/^read_bytes: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'))?.[1] ?? NaN);
}

function argmax(a: Float32Array): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[b]!) b = i;
  return b;
}

function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const mean = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0) / v.length;

// ---- The model's geometry and the disk ceiling ----

interface Geometry {
  layers: number;
  nExperts: number;
  nUsed: number;
  vocab: number;
  /** All experts of all layers (the *_exps tensors). */
  expertBytes: number;
  /** One expert's gate + up + down in one layer. */
  oneExpertBytes: number;
  /** Every other tensor: attention, norms, routers, embedding (and output). */
  otherBytes: number;
}

function geometry(file: string): Geometry {
  const src = openGguf(file);
  try {
    const int = (key: string): number => {
      const v = src.metadata.get(key);
      if (typeof v !== 'number') throw new Error(`${file}: metadata ${key} is missing or not a number`);
      return v;
    };
    const arch = src.metadata.get('general.architecture');
    const layers = int(`${arch}.block_count`), nExperts = int(`${arch}.expert_count`), nUsed = int(`${arch}.expert_used_count`);
    let expertBytes = 0, otherBytes = 0, layer0 = 0;
    for (const [name, t] of src.tensors) {
      if (/\.ffn_(gate|up|down)_exps\./.test(name)) {
        expertBytes += t.length;
        if (name.startsWith('blk.0.')) layer0 += t.length;
      } else otherBytes += t.length;
    }
    const embd = src.tensors.get('token_embd.weight');
    if (!embd || expertBytes === 0) throw new Error(`${file}: no token_embd.weight or no ffn_*_exps tensors: not a MoE GGUF this bench understands`);
    return { layers, nExperts, nUsed, vocab: embd.shape[0]!, expertBytes, oneExpertBytes: layer0 / nExperts, otherBytes };
  } finally {
    src.close();
  }
}

/** Sequential read rate of `file` with O_DIRECT (no page cache), 64 MiB blocks over up to 2 GiB, bytes/s. */
function directReadRate(file: string): { bytesPerS: number; bytes: number } {
  const block = 64 * 2 ** 20;
  const count = Math.max(1, Math.min(32, Math.floor(fs.statSync(file).size / block)));
  evict(file);
  const t = performance.now();
  const r = spawnSync('dd', [`if=${file}`, 'of=/dev/null', 'iflag=direct', `bs=${block}`, `count=${count}`, 'status=none']);
  const s = (performance.now() - t) / 1000;
  if (r.status !== 0) throw new Error(`dd iflag=direct on ${file} failed: ${r.stderr}`);
  return { bytesPerS: (count * block) / s, bytes: count * block };
}

interface Ceiling {
  neededBytes: number;
  residentFraction: number;
  fromDiskBytes: number;
  tokS: number;
}

/** Expert bytes a token needs, the share resident when `cacheBytes` holds the non-expert weights and as many experts as fit, and the tok/s the disk then allows. */
function ceiling(g: Geometry, cacheBytes: number, diskBytesPerS: number): Ceiling {
  const neededBytes = g.nUsed * g.layers * g.oneExpertBytes;
  const residentFraction = Math.min(1, Math.max(0, (cacheBytes - g.otherBytes) / g.expertBytes));
  const fromDiskBytes = neededBytes * (1 - residentFraction);
  return { neededBytes, residentFraction, fromDiskBytes, tokS: fromDiskBytes > 0 ? diskBytesPerS / fromDiskBytes : Infinity };
}

// ---- The engines (each in its own child process, inside the cgroup) ----

interface ExpertCacheLike { stats(): Record<string, unknown> }

/** The expert cache of a model loaded with ramBudget, where the library has one (grok.model.expertCache). */
function expertCacheOf(model: object): ExpertCacheLike | undefined {
  const c: unknown = Reflect.get(model, 'expertCache');
  return c && typeof c === 'object' && typeof Reflect.get(c, 'stats') === 'function' ? (c as ExpertCacheLike) : undefined;
}

function numericFields(r: Record<string, unknown>): Record<string, number> {
  return Object.fromEntries(Object.entries(r).filter((e): e is [string, number] => typeof e[1] === 'number'));
}

async function runGrok(engine: 'grok-stream' | 'grok-mmap', file: string, threads: number, budget: number | undefined, nPrompt: number, steps: number): Promise<ChildResult> {
  const { loadModel } = await import('../src/api/index.js');
  let plan = '', mapped = true;
  // ramBudget is the expert-streaming contract (LoadModelOptions.ramBudget, bytes); older builds ignore it.
  const options: LoadModelOptions & { ramBudget?: number } = {
    kernelOptions: { threads, mode: 'fast' },
    onMemoryPlan: (p) => { plan = p.verdict; mapped = p.mapped; },
    // grok-mmap: never stream (a model larger than memory would otherwise stream by default).
    ramBudget: budget ?? Infinity,
  };
  const t0 = performance.now();
  let grok: Awaited<ReturnType<typeof loadModel>>;
  try {
    grok = await loadModel(file, options);
  } catch (e) {
    if (budget === undefined) throw e;
    return { kind: 'unsupported', engine, reason: `loadModel(…, { ramBudget: ${(budget / GiB).toFixed(2)} GiB }) failed: ${(e as Error).message}` };
  }
  const loadS = (performance.now() - t0) / 1000;
  const model = grok.model;
  const cache = expertCacheOf(model);
  if (budget !== undefined && !cache) {
    await grok.close();
    return { kind: 'unsupported', engine, reason: "this build's loadModel ignores ramBudget (the loaded model has no expertCache), so the run would time the mmap path again: skipped" };
  }
  const w = workload(model.config.vocabSize, nPrompt, steps);
  // forward is synchronous today; await keeps this right if the streaming path makes it async.
  const forward = async (tokens: number[], kv: ReturnType<typeof model.newCache>): Promise<Float32Array> =>
    await model.forward([{ tokens, cache: kv }], { lastOnly: true });

  process.stderr.write(`  ${engine}: loaded in ${loadS.toFixed(1)} s (memory plan: ${plan}); prefill ${nPrompt} tokens…\n`);
  let io = diskReadBytes();
  let t = performance.now();
  await forward(w.prefill, model.newCache(nPrompt + 1));
  const prefillMs = performance.now() - t;
  const prefillReadBytes = diskReadBytes() - io;

  process.stderr.write(`  ${engine}: prefill ${(prefillMs / 1000).toFixed(1)} s; forced decode ${WARMUP}+${steps} steps…\n`);
  const kv = model.newCache(DECODE_PROMPT + w.forced.length + 1);
  await forward(w.decodePrompt, kv);
  const stepMs: number[] = [], top1: number[] = [];
  let before: Record<string, number> = {};
  for (let i = 0; i < w.forced.length; i++) {
    if (i === WARMUP) {
      io = diskReadBytes();
      before = numericFields(cache?.stats() ?? {});
    }
    t = performance.now();
    const logits = await forward([w.forced[i]!], kv);
    if (i >= WARMUP) stepMs.push(performance.now() - t);
    top1.push(argmax(logits));
  }
  const decodeReadBytes = diskReadBytes() - io;
  const cacheStats = cache?.stats();
  const cacheStatsTimed = cacheStats ? Object.fromEntries(Object.entries(numericFields(cacheStats)).map(([k, v]) => [k, v - (before[k] ?? 0)])) : undefined;
  const kernelsName = model.kernels.name;
  await grok.close();
  return {
    kind: 'ok', engine, loadS, prefillMs, prefillReadBytes, stepMs, decodeReadBytes, top1,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    note: `${kernelsName}, KV ${model.kvType}, ${budget !== undefined ? `ramBudget ${(budget / GiB).toFixed(2)} GiB` : mapped ? 'mapped' : 'copied into memory'} (memory plan: ${plan})`,
    ...(cacheStats ? { cacheStats, cacheStatsTimed } : {}),
  };
}

async function runLlama(file: string, threads: number, vocab: number, nPrompt: number, steps: number): Promise<ChildResult> {
  const llama = await loadLlama();
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const w = workload(vocab, nPrompt, steps);
  // Two sequences: one for the prompt, a fresh one for the forced decode; room for both in case they share the context.
  const ctx = await model.createContext({
    contextSize: nPrompt + DECODE_PROMPT + w.forced.length + 32, sequences: 2, batchSize: nPrompt,
    threads: { ideal: threads, min: threads }, flashAttention: false,
  });
  const loadS = (performance.now() - t0) / 1000;
  type Item = number | [number, { generateNext: { token: true } }];
  const next = (t: number): Item => [t, { generateNext: { token: true } }];

  process.stderr.write(`  llama: loaded in ${loadS.toFixed(1)} s; prefill ${nPrompt} tokens…\n`);
  let io = diskReadBytes();
  let t = performance.now();
  await ctx.getSequence().controlledEvaluate(w.prefill.map((id, i) => (i === nPrompt - 1 ? next(id) : id)));
  const prefillMs = performance.now() - t;
  const prefillReadBytes = diskReadBytes() - io;

  process.stderr.write(`  llama: prefill ${(prefillMs / 1000).toFixed(1)} s; forced decode ${WARMUP}+${steps} steps…\n`);
  const seq = ctx.getSequence();
  await seq.controlledEvaluate(w.decodePrompt);
  const stepMs: number[] = [], top1: number[] = [];
  for (let i = 0; i < w.forced.length; i++) {
    if (i === WARMUP) io = diskReadBytes();
    t = performance.now();
    const r = await seq.controlledEvaluate([next(w.forced[i]!)]);
    if (i >= WARMUP) stepMs.push(performance.now() - t);
    const tok = r[0]?.next.token;
    if (tok === undefined) throw new Error(`llama.cpp gave no next token at forced step ${i}`);
    top1.push(tok);
  }
  const decodeReadBytes = diskReadBytes() - io;
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return {
    kind: 'ok', engine: 'llama', loadS, prefillMs, prefillReadBytes, stepMs, decodeReadBytes, top1,
    maxRssBytes: process.resourceUsage().maxRSS * 1024, note: 'node-llama-cpp prebuilt CPU, mmap, KV f16',
  };
}

async function child(engine: Engine, file: string): Promise<void> {
  const threads = Number(opt.threads), nPrompt = Number(opt.prompt), steps = Number(opt.steps);
  const r = engine === 'llama'
    ? await runLlama(file, threads, geometry(file).vocab, nPrompt, steps)
    : await runGrok(engine, file, threads, engine === 'grok-stream' ? Number(opt.budget) : undefined, nPrompt, steps);
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
  process.exit(0); // kernel worker threads and llama.cpp's pool must not hold the process
}

// ---- The parent: header, ceiling, one cgroup per engine run, summary ----

function cpuSummary(): string {
  const info = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/));
  const shown = ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_int8'].filter((f) => flags.has(f));
  return `${os.cpus()[0]?.model ?? 'unknown CPU'} ×${os.cpus().length} [${shown.join(' ') || 'no avx2'}]`;
}

/** Dirty and under-writeback page-cache bytes machine-wide (/proc/meminfo): writes that will compete for the disk. */
function writebackBytes(): number {
  const m = fs.existsSync('/proc/meminfo') ? fs.readFileSync('/proc/meminfo', 'utf8') : '';
  return ['Dirty', 'Writeback'].reduce((s, k) => s + 1024 * Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(m)?.[1] ?? 0), 0);
}

const gb = (b: number): string => `${(b / 1e9).toFixed(2)} GB`;
const gib = (b: number): string => `${(b / GiB).toFixed(2)} GiB`;
const load1 = (): number => os.loadavg()[0]!;

interface Failure { engine: Engine; failed: string; unsupported?: boolean }

function runEngine(engine: Engine, file: string, limit: number, budget: number): Run | Failure {
  const self = fileURLToPath(import.meta.url);
  const cmd = [process.execPath, self, '--child', engine, '--model', file, '--threads', opt.threads!, '--steps', opt.steps!, '--prompt', opt.prompt!, '--budget', String(budget)];
  const cg = makeCgroup(limit);
  try {
    evict(file);
    const loadBefore = load1();
    const t = performance.now();
    // stderr passes through: the child's progress lines and any error as it happens.
    const p = spawnSync('sh', shellArgs(cmd, cg), { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'], timeout: CHILD_TIMEOUT_MS });
    const wallS = (performance.now() - t) / 1000;
    const line = p.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) {
      const kills = cg.oomKills();
      return { engine, failed: `exit ${p.status ?? p.signal}${kills ? `, killed by the cgroup's OOM killer (${kills})` : ''}${p.error ? `, ${p.error.message}` : ''} after ${wallS.toFixed(0)} s` };
    }
    const r = JSON.parse(line.slice(7)) as ChildResult;
    if (r.kind === 'unsupported') return { engine, failed: `unsupported: ${r.reason}`, unsupported: true };
    return { ...r, cgroupPeakBytes: cg.peak(), wallS, loadBefore, loadAfter: load1() };
  } finally {
    cg.close();
  }
}

function main(): void {
  const file = opt.model;
  if (!file) throw new Error('--model <file.gguf> is required (a slice: grok synth --preset grok1 --layers 2 --type q8_0 --out slice.gguf)');
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  const engines = opt.engines!.split(',').map((e) => e.trim());
  for (const e of engines) if (!(ENGINES as readonly string[]).includes(e)) throw new Error(`unknown engine ${e} (engines: ${ENGINES.join(', ')})`);
  const limit = Math.round(Number(opt['limit-gib']) * GiB);
  const budget = Math.round((opt['budget-gib'] !== undefined ? Number(opt['budget-gib']) : Number(opt['limit-gib']) - 1.25) * GiB);
  if (!(limit > 0) || !(budget > 0)) throw new Error(`--limit-gib ${opt['limit-gib']} and --budget-gib must be positive numbers`);
  const steps = Number(opt.steps), nPrompt = Number(opt.prompt);
  const fileBytes = fs.statSync(file).size;

  console.log(`# bench/larger-than-ram ${new Date().toISOString()}  ${file} (${gb(fileBytes)})  cgroup limit ${gib(limit)}, budget ${gib(budget)}  ` +
    `${opt.threads} threads  ${cpuSummary()}  load avg ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  const g = geometry(file);
  const pending = writebackBytes();
  if (pending > 256e6) console.log(`note: ${gb(pending)} of dirty/writeback pages are waiting for the disk (another process writing): read rates will be low`);
  // The disk is shared: measured before the runs and after them; the ceiling uses the mean.
  const diskBefore = directReadRate(file);
  const tokS = (c: Ceiling): string => (Number.isFinite(c.tokS) ? `${c.tokS.toFixed(2)} tok/s` : '∞ (every expert fits)');
  console.log(`disk, before the runs: ${(diskBefore.bytesPerS / 1e9).toFixed(2)} GB/s sequential O_DIRECT (64 MiB reads, ${gb(diskBefore.bytes)}, after eviction)`);
  console.log(`model: ${g.layers} layers, ${g.nUsed} of ${g.nExperts} experts per token, one expert (gate+up+down) ${gb(g.oneExpertBytes)}; experts ${gb(g.expertBytes)}, other weights ${gb(g.otherBytes)}`);
  const printCeiling = (rate: number): { atBudget: Ceiling; atLimit: Ceiling } => {
    const atBudget = ceiling(g, budget, rate), atLimit = ceiling(g, limit, rate);
    console.log(`ceiling at ${(rate / 1e9).toFixed(2)} GB/s: a token needs ${g.nUsed}×${g.layers}×${gb(g.oneExpertBytes)} = ${gb(atBudget.neededBytes)} of experts; the budget holds the other weights and ` +
      `${(100 * atBudget.residentFraction).toFixed(1)}% of the experts → ${gb(atBudget.fromDiskBytes)} from disk per token → ${tokS(atBudget)} ` +
      `(the whole ${gib(limit)} limit as cache: ${(100 * atLimit.residentFraction).toFixed(1)}% resident → ${tokS(atLimit)})`);
    return { atBudget, atLimit };
  };
  printCeiling(diskBefore.bytesPerS);
  console.log(`workload: prefill ${nPrompt} pseudo-random tokens cold; forced decode of ${steps} pseudo-random tokens (one per step, after an ${DECODE_PROMPT}-token prompt and ${WARMUP} warm-up steps)`);

  const runs: Run[] = [];
  const failures: Failure[] = [];
  for (const engine of engines as Engine[]) {
    const r = runEngine(engine, file, limit, budget);
    if ('failed' in r) {
      failures.push(r);
      if (!r.unsupported) process.exitCode = 1;
      console.log(`${engine.padEnd(11)} ${r.failed}`);
      continue;
    }
    runs.push(r);
    const med = median(r.stepMs), avg = mean(r.stepMs);
    console.log(`${engine.padEnd(11)} load ${r.loadS.toFixed(1)} s  prefill ${(r.prefillMs / 1000).toFixed(1)} s → ${(nPrompt / r.prefillMs * 1000).toFixed(2)} tok/s (read ${gb(r.prefillReadBytes)})  ` +
      `forced decode median ${med.toFixed(0)} ms, mean ${avg.toFixed(0)} ms → ${(1000 / med).toFixed(2)} tok/s (mean ${(1000 / avg).toFixed(2)}; read ${gb(r.decodeReadBytes / steps)}/token)  ` +
      `cgroup peak ${gib(r.cgroupPeakBytes)}, RSS ${gib(r.maxRssBytes)}  [${r.note}; ${r.wallS.toFixed(0)} s; load avg ${r.loadBefore.toFixed(1)}→${r.loadAfter.toFixed(1)}]`);
    if (r.cacheStats) {
      console.log(`            expert cache, whole run: ${JSON.stringify(r.cacheStats)}`);
      const perTok = Object.entries(r.cacheStatsTimed ?? {}).map(([k, v]) => `${k} ${+(v / steps).toPrecision(4)}`).join(', ');
      console.log(`            expert cache, per timed token: ${perTok}`);
    }
  }

  const diskAfter = directReadRate(file);
  const rate = (diskBefore.bytesPerS + diskAfter.bytesPerS) / 2;
  const spread = Math.abs(diskBefore.bytesPerS - diskAfter.bytesPerS) / rate;
  console.log(`disk, after the runs: ${(diskAfter.bytesPerS / 1e9).toFixed(2)} GB/s; mean ${(rate / 1e9).toFixed(2)} GB/s${spread > 0.25 ? ` (the two differ by ${(100 * spread).toFixed(0)}%: other I/O on the machine)` : ''}`);
  const { atBudget, atLimit } = printCeiling(rate);

  // Several runs of an engine: each figure is the median over its runs; ratios are of medians (interleaved runs share drift).
  const decodeTokS = (r: Run) => 1000 / median(r.stepMs);
  const prefillTokS = (r: Run) => nPrompt / r.prefillMs * 1000;
  const of = (e: Engine) => runs.filter((r) => r.engine === e);
  const summary: Record<string, { decodeTokS: number; prefillTokS: number; cgroupPeakBytes: number; shareOfCeiling: number; readBytesPerToken: number; runs: number }> = {};
  for (const e of ENGINES) {
    const rs = of(e);
    if (rs.length === 0) continue;
    const d = median(rs.map(decodeTokS));
    summary[e] = { decodeTokS: d, prefillTokS: median(rs.map(prefillTokS)), cgroupPeakBytes: Math.max(...rs.map((r) => r.cgroupPeakBytes)), shareOfCeiling: d / atBudget.tokS,
      readBytesPerToken: median(rs.map((r) => r.decodeReadBytes / r.stepMs.length)), runs: rs.length };
  }
  const shares = Object.entries(summary).map(([e, s]) => `${e} ${s.decodeTokS.toFixed(2)} tok/s = ${(100 * s.shareOfCeiling).toFixed(0)}% (${(100 * s.decodeTokS / atLimit.tokS).toFixed(0)}% of the whole-limit ceiling), reading ${(s.readBytesPerToken / atBudget.fromDiskBytes).toFixed(2)}× its bytes/token`);
  if (!Number.isFinite(atBudget.tokS)) console.log('every expert fits in the budget beside the other weights: no disk ceiling');
  else if (shares.length) console.log(`share of the ${tokS(atBudget)} ceiling: ${shares.join('; ')}`);
  const l = summary.llama;
  for (const e of ['grok-stream', 'grok-mmap'] as const) {
    const s = summary[e];
    if (!s || !l) continue;
    console.log(`ratio ${e}/llama.cpp (medians of ${s.runs} and ${l.runs} runs): forced decode ${(s.decodeTokS / l.decodeTokS).toFixed(2)}×  prefill ${(s.prefillTokS / l.prefillTokS).toFixed(2)}×  ` +
      `cgroup peak ${gib(s.cgroupPeakBytes)} vs ${gib(l.cgroupPeakBytes)}`);
  }
  // Same forced tokens, so the same next-token argmax is expected (exactly between the two grok paths; llama.cpp's
  // arithmetic differs slightly, so a near-tie may flip).
  const agree = (a: Run, b: Run) => `${a.top1.filter((t, i) => t === b.top1[i]).length}/${a.top1.length}`;
  const first = (e: Engine) => of(e)[0];
  const pairs: [Engine, Engine][] = [['grok-stream', 'grok-mmap'], ['grok-mmap', 'llama'], ['grok-stream', 'llama']];
  const agreements = pairs.flatMap(([a, b]) => { const ra = first(a), rb = first(b); return ra && rb ? [`${a} = ${b} ${agree(ra, rb)}`] : []; });
  if (agreements.length) console.log(`next-token argmax after every forced step: ${agreements.join(', ')}`);

  if (opt.json) {
    console.log(JSON.stringify({
      bench: 'larger-than-ram', date: new Date().toISOString(), model: file, fileBytes, limitBytes: limit, budgetBytes: budget,
      threads: Number(opt.threads), steps, prompt: nPrompt, cpu: cpuSummary(), loadavg: os.loadavg(),
      disk: { before: diskBefore, after: diskAfter, bytesPerS: rate }, geometry: g, ceiling: { atBudget, atLimit }, summary, runs, failures,
    }));
  }
}

if (opt.child) {
  if (!(ENGINES as readonly string[]).includes(opt.child)) throw new Error(`unknown engine ${opt.child}`);
  await child(opt.child as Engine, opt.model!);
} else {
  main();
}
