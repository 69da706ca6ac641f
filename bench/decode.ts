/**
 * End-to-end decode and prefill speed of our native kernels, our WebAssembly kernels and llama.cpp
 * (node-llama-cpp's prebuilt CPU binary) on the same GGUF, in one run: load time (until ready), prefill
 * tokens/s for one prompt, decode tokens/s at batch 1 (greedy, one token per step), and peak RSS. Each
 * (engine, threads) runs in its own child process so peak RSS and page-table state are its own.
 * Engine `serve` is `grok serve` with its default settings measured from outside, over HTTP: ready = the
 * first 200 from /ready after spawning it, prefill = one /v1/completions of the prompt for one token,
 * decode = the median gap between streamed tokens of a second request.
 *
 *   grok synth --preset grok1 --layers 2 --type q8_0 --out .bench-out/slice.gguf
 *   node dist/bench/decode.js --model .bench-out/slice.gguf [--threads 1,2] [--prompt 128] [--gen 8]
 *                             [--mode fast|exact] [--engines native,wasm,llama,serve] [--vocab 131072]
 *                             [--kv-type f32|f16|q8_0] [--llama-fa on|off] [--mmap auto|on|off]
 *
 * Long context: --prompt N decodes at positions N, N+1, … (each engine prefills the N-token prompt first).
 * --kv-type sets our KV cache type (default: the numerics' default, f16 in fast mode); llama.cpp's KV cache is
 * f16 (its default); --llama-fa on gives llama.cpp its flash-attention path.
 *
 * Weight bytes read per decoded token (for the bandwidth figure) are computed from the model's own
 * matrices: attention, the router, nExpertsUsed of the experts, the output matrix.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { loadLlama } from '../test/llama-peer.js';

type Engine = 'native' | 'wasm' | 'llama' | 'serve';

interface Result {
  engine: Engine;
  threads: number;
  loadS: number;
  prefillTokS: number;
  decodeTokS: number;
  decodeMsPerTok: number;
  peakRssGB: number;
  bytesPerToken?: number;
  note?: string;
}

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: '1,2' },
    prompt: { type: 'string', default: '128' },
    gen: { type: 'string', default: '8' },
    mode: { type: 'string', default: 'fast' },
    engines: { type: 'string', default: 'native,wasm,llama' },
    vocab: { type: 'string', default: '131072' },
    'kv-type': { type: 'string' },
    'llama-fa': { type: 'string', default: 'off' },
    mmap: { type: 'string', default: 'auto' },
    child: { type: 'string' },
  },
});

function promptTokens(n: number, vocab: number): number[] {
  // Fixed pseudo-random ids, away from the special tokens at the start of a large vocabulary.
  const lo = vocab > 4000 ? 1000 : 4;
  let s = 12345;
  return Array.from({ length: n }, () => lo + ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (vocab - 2 * lo)));
}

function peakRssGB(): number {
  return process.resourceUsage().maxRSS / 1024 / 1024; // maxRSS is in KiB
}

async function runOurs(engine: 'native' | 'wasm', file: string, threads: number, nPrompt: number, nGen: number): Promise<Result> {
  const { createKernels, closeKernels } = await import('../src/kernels/index.js');
  const { loadModel } = await import('../src/model/loader.js');
  const mode = opt.mode === 'exact' ? 'exact' : 'fast';
  // --mmap off: weights read into anonymous (huge-page advised) memory, as llama.cpp's repacked types are;
  // on: mapped; auto (default): the kernels' own choice (read when the model fits, else mapped).
  const kernels = createKernels({ kernels: engine, mode, threads, ...(engine === 'native' && opt.mmap !== 'auto' ? { mmap: opt.mmap === 'on' } : {}) });
  const t0 = performance.now();
  const kvType = opt['kv-type'] as 'f32' | 'f16' | 'q8_0' | undefined;
  const { model } = await loadModel(file, { kernels, ...(kvType ? { kvType } : {}) });
  const loadS = (performance.now() - t0) / 1000;
  const c = model.config;
  if (c.vocabSize !== Number(opt.vocab)) throw new Error(`--vocab ${opt.vocab} but the model's vocabulary is ${c.vocabSize}`);
  const cache = model.newCache(nPrompt + nGen + 1);
  const prompt = promptTokens(nPrompt, c.vocabSize);
  const t1 = performance.now();
  let logits = model.forward([{ tokens: prompt, cache }], { lastOnly: true });
  const prefillS = (performance.now() - t1) / 1000;
  let next = argmax(logits);
  const steps: number[] = [];
  for (let i = 0; i < nGen; i++) {
    const t = performance.now();
    logits = model.forward([{ tokens: [next], cache }], { lastOnly: true });
    steps.push(performance.now() - t);
    next = argmax(logits);
  }
  closeKernels(kernels);
  const ms = median(steps);
  return {
    engine, threads, loadS, prefillTokS: nPrompt / prefillS, decodeTokS: 1000 / ms, decodeMsPerTok: ms, peakRssGB: peakRssGB(),
    bytesPerToken: decodeBytes(model.weights as unknown as Record<string, unknown>, c.nExpertsUsed, c.nExperts),
    note: `${kernels.name}, KV ${model.kvType}${opt.mmap === "off" ? ", no mmap" : opt.mmap === "on" ? ", mmap" : ""}`,
  };
}

/** Bytes of weights one decoded token reads: every matrix except the unused experts (and the embedding table when an output matrix exists). */
function decodeBytes(w: Record<string, unknown>, used: number, nExperts: number): number {
  const size = (m: unknown): number => {
    if (!m || typeof m !== 'object') return 0;
    const o = m as { layout?: string; data?: Uint8Array; q?: Int8Array; scales?: Uint16Array };
    if (o.layout === 'rows') return o.data!.length;
    if (o.layout === 'xai8') return o.q!.length + 2 * o.scales!.length;
    return 0;
  };
  let total = 0;
  const visit = (v: unknown, key: string): void => {
    if (Array.isArray(v)) {
      const isExperts = key.endsWith('_exps') && v.length === nExperts;
      const each = v.reduce((s: number, m: unknown) => s + size(m), 0) / (v.length || 1);
      if (isExperts) total += each * used;
      else v.forEach((x) => visit(x, key));
    } else if (v && typeof v === 'object' && !('layout' in v) && !(v instanceof Float32Array)) {
      for (const [k, x] of Object.entries(v)) visit(x, k);
    } else total += size(v);
  };
  for (const [k, v] of Object.entries(w)) {
    if (k === 'token_embd' && w.output) continue; // embedding: one row per token
    visit(v, k);
  }
  return total;
}

async function runLlama(file: string, threads: number, nPrompt: number, nGen: number): Promise<Result> {
  const llama = await loadLlama();
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: nPrompt + nGen + 16, batchSize: nPrompt, threads: { ideal: threads, min: threads }, flashAttention: opt['llama-fa'] === 'on' });
  const loadS = (performance.now() - t0) / 1000;
  const seq = ctx.getSequence();
  type Item = [number, { generateNext: { token: true } }];
  const gen = (t: number): Item => [t, { generateNext: { token: true } }];
  const prompt = promptTokens(nPrompt, Number(opt.vocab));
  const t1 = performance.now();
  const res = await seq.controlledEvaluate(prompt.map((t, i) => (i === nPrompt - 1 ? gen(t) : t)));
  const prefillS = (performance.now() - t1) / 1000;
  let next = res[nPrompt - 1]?.next.token as number | undefined;
  if (next === undefined) throw new Error('llama.cpp returned no next token after the prompt');
  const steps: number[] = [];
  for (let i = 0; i < nGen; i++) {
    const t = performance.now();
    const r = await seq.controlledEvaluate([gen(next)]);
    steps.push(performance.now() - t);
    next = r[0]?.next.token as number;
  }
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  const ms = median(steps);
  return { engine: 'llama', threads, loadS, prefillTokS: nPrompt / prefillS, decodeTokS: 1000 / ms, decodeMsPerTok: ms, peakRssGB: peakRssGB(), note: `node-llama-cpp prebuilt CPU, mmap, KV f16, flash attention ${opt['llama-fa']}` };
}

/** `grok serve` (default settings, --threads) from outside: readiness, one prompt's prefill, streamed decode. */
async function runServe(file: string, threads: number, nPrompt: number, nGen: number): Promise<Result> {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const port = 18000 + (process.pid % 1000);
  const base = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const server = spawn(process.execPath, [cli, 'serve', '-m', file, '--threads', String(threads), '--port', String(port), '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  server.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  try {
    for (;;) {
      if (server.exitCode !== null) throw new Error(`grok serve exited: ${err.slice(-1000)}`);
      try { if ((await fetch(`${base}/ready`)).ok) break; } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 20));
    }
    const loadS = (performance.now() - t0) / 1000;
    const body = (extra: Record<string, unknown>) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'slice', temperature: 0, ...extra }) });
    const prompt = promptTokens(nPrompt, Number(opt.vocab));
    const t1 = performance.now();
    const pre = await fetch(`${base}/v1/completions`, body({ prompt, max_tokens: 1 }));
    if (!pre.ok) throw new Error(`prefill request: ${pre.status} ${await pre.text()}`);
    await pre.json();
    const prefillS = (performance.now() - t1) / 1000;
    // Decode: stream nGen + 1 tokens after a one-token prompt (logprobs: one event per token, even when its text
    // is held back); the gaps between token events are the steps.
    const res = await fetch(`${base}/v1/completions`, body({ prompt: prompt.slice(0, 1), max_tokens: nGen + 1, ignore_eos: true, stream: true, logprobs: 0 }));
    const reader = res.body!.getReader();
    const arrivals: number[] = [];
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (ev.startsWith('data: {') && ev.includes('"finish_reason":null')) arrivals.push(performance.now());
      }
    }
    const steps = arrivals.slice(1).map((t, k) => t - arrivals[k]!);
    if (steps.length < 1) throw new Error(`no streamed tokens (${arrivals.length} events)`);
    const status = fs.readFileSync(`/proc/${server.pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024 / 1024;
    const ms = median(steps);
    return { engine: 'serve', threads, loadS, prefillTokS: nPrompt / prefillS, decodeTokS: 1000 / ms, decodeMsPerTok: ms, peakRssGB: hwm, note: 'grok serve defaults over HTTP' };
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
}

function argmax(a: Float32Array): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[b]!) b = i;
  return b;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const file = opt.model;
  if (!file) throw new Error('--model <file.gguf> is required (make one with `grok synth --preset grok1 --layers 2 --type q8_0 --out .bench-out/slice.gguf`)');
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  const nPrompt = Number(opt.prompt), nGen = Number(opt.gen);
  if (opt.child) {
    const threads = Number(opt.threads);
    const engine = opt.child as Engine;
    if (engine !== 'native' && engine !== 'wasm' && engine !== 'llama' && engine !== 'serve') throw new Error(`unknown engine ${engine}`);
    const r = engine === 'llama' ? await runLlama(file, threads, nPrompt, nGen)
      : engine === 'serve' ? await runServe(file, threads, nPrompt, nGen) : await runOurs(engine, file, threads, nPrompt, nGen);
    process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
    process.exit(0); // worker threads and llama.cpp's pool must not hold the process
  }
  const fileGB = fs.statSync(file).size / 1e9;
  console.log(`# bench/decode ${new Date().toISOString()}  ${file} (${fileGB.toFixed(2)} GB)  prompt ${nPrompt}, decode ${nGen} (median step)  load ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  const results: Result[] = [];
  const self = fileURLToPath(import.meta.url);
  for (const threads of opt.threads!.split(',').map(Number)) {
    for (const engine of opt.engines!.split(',')) {
      const args = [self, '--child', engine, '--model', file, '--threads', String(threads), '--prompt', String(nPrompt), '--gen', String(nGen), '--mode', opt.mode!, '--vocab', opt.vocab!,
        '--llama-fa', opt['llama-fa']!, '--mmap', opt.mmap!, ...(opt['kv-type'] ? ['--kv-type', opt['kv-type']] : [])];
      const before = loadavg()[0]!;
      const p = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
      const line = p.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) {
        console.log(`${engine} ${threads}t: failed (exit ${p.status})\n${p.stderr.slice(-2000)}`);
        continue;
      }
      const r = JSON.parse(line.slice(7)) as Result;
      results.push(r);
      console.log(
        `${engine.padEnd(6)} ${threads}t  load ${r.loadS.toFixed(1)} s  prefill ${r.prefillTokS.toFixed(2)} tok/s  decode ${r.decodeTokS.toFixed(2)} tok/s (${r.decodeMsPerTok.toFixed(0)} ms)  peak RSS ${r.peakRssGB.toFixed(2)} GB` +
          (r.bytesPerToken ? `  ${(r.bytesPerToken / 1e9).toFixed(2)} GB/token → ${(r.bytesPerToken / r.decodeMsPerTok / 1e6).toFixed(1)} GB/s` : '') +
          `  [${r.note}; load avg ${before.toFixed(1)}→${loadavg()[0]!.toFixed(1)}]`,
      );
    }
  }
  // With an engine listed several times (e.g. --engines native,llama,native,llama), each figure is the median
  // over its runs and the ratio is of medians: runs of the two engines alternate, so drift hits both.
  const med = (rs: Result[], f: (r: Result) => number): number => median(rs.map(f));
  for (const threads of new Set(results.map((r) => r.threads))) {
    const l = results.filter((r) => r.engine === 'llama' && r.threads === threads);
    for (const ours of ['native', 'wasm', 'serve'] as const) {
      const o = results.filter((r) => r.engine === ours && r.threads === threads);
      if (o.length === 0 || l.length === 0) continue;
      const ratio = (f: (r: Result) => number) => (med(o, f) / med(l, f)).toFixed(2);
      console.log(
        `ratio ${ours}/llama.cpp ${threads}t (medians of ${o.length} and ${l.length} runs): decode ${ratio((r) => r.decodeTokS)}×  prefill ${ratio((r) => r.prefillTokS)}×  ` +
          `load ${ratio((r) => r.loadS)}× (${med(o, (r) => r.loadS).toFixed(1)} s vs ${med(l, (r) => r.loadS).toFixed(1)} s)  peak RSS ${ratio((r) => r.peakRssGB)}× (file ${fileGB.toFixed(2)} GB)`,
      );
    }
  }
}

await main();
