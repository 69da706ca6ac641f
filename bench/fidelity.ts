/**
 * How far the fast paths move the next-token distribution from the exact one: our `fast` kernels (int8
 * activations) and llama.cpp (node-llama-cpp's prebuilt CPU binary, its own numerics) against our exact
 * kernels, on the same GGUF and the same token ids. Reports the KL divergence KL(exact ‖ other) of the
 * softmax at every position and the top-1 agreement.
 *
 *   node dist/bench/fidelity.js [--models a.gguf,b.gguf] [--tokens 32] [--threads 2]
 *
 * Default models: the fixtures' GGUFs and, if present, .bench-out/slice.gguf (`grok synth --preset grok1
 * --layers 2 --type q8_0`). Fixtures are fed their golden tokens; other models the default model's
 * validation excerpt through their own tokenizer. Each engine runs in its own child process (a Grok-1-width slice is 11 GB:
 * two in one process would not fit), which writes float32 logits [tokens, vocab] to a temporary file.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fromGgufSource } from '../src/api/index.js';
import { openModel } from '../src/formats/open.js';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import { loadModel } from '../src/model/loader.js';
import { DATA } from '../test/fixtures.js';
import { loadLlama } from '../test/llama-peer.js';

const { values } = parseArgs({
  options: {
    models: { type: 'string' }, tokens: { type: 'string', default: '32' }, threads: { type: 'string', default: '2' },
    child: { type: 'string' }, mode: { type: 'string' }, model: { type: 'string' }, out: { type: 'string' }, ids: { type: 'string' },
  },
});
const threads = Number(values.threads);

async function childOurs(model: string, mode: 'exact' | 'fast', ids: number[], out: string): Promise<void> {
  const kernels = createKernels({ mode, threads });
  try {
    const { model: m } = await loadModel(model, { kernels });
    const logits = m.forward([{ tokens: ids, cache: m.newCache(ids.length) }]);
    fs.writeFileSync(out, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
  } finally {
    closeKernels(kernels);
  }
}

async function childLlama(model: string, ids: number[], out: string): Promise<void> {
  const llama = await loadLlama();
  const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
  const ctx = await m.createContext({ contextSize: Math.max(64, ids.length), batchSize: Math.max(64, ids.length), threads });
  const res = await ctx.getSequence().controlledEvaluate(ids.map((t) => [t, { generateNext: { logits: true } }] as [number, { generateNext: { logits: true } }]));
  const rows = res.map((r, i) => {
    const l = r?.next.logits;
    if (!l) throw new Error(`llama.cpp returned no logits at position ${i}`);
    return l;
  });
  const vocab = Math.max(...rows.map((l) => l.size));
  const buf = new Float32Array(ids.length * vocab);
  rows.forEach((l, i) => { for (const [tok, v] of l) buf[i * vocab + (tok as number)] = v; });
  fs.writeFileSync(out, new Uint8Array(buf.buffer));
  await ctx.dispose();
  await m.dispose();
  await llama.dispose();
}

if (values.child) {
  const ids = values.ids!.split(',').map(Number);
  if (values.child === 'ours') await childOurs(values.model!, values.mode as 'exact' | 'fast', ids, values.out!);
  else await childLlama(values.model!, ids, values.out!);
  process.exit(0);
}

/** log-softmax of one row, in float64. */
function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let s = 0;
  for (const v of row) s += Math.exp(v - max);
  const lse = max + Math.log(s);
  return Float64Array.from(row, (v) => v - lse);
}

function compare(exact: Float32Array, other: Float32Array, n: number, V: number) {
  let klSum = 0, klMax = 0, agree = 0;
  for (let t = 0; t < n; t++) {
    const p = logSoftmax(exact.subarray(t * V, (t + 1) * V));
    const q = logSoftmax(other.subarray(t * V, (t + 1) * V));
    let kl = 0, ap = 0, aq = 0;
    for (let i = 0; i < V; i++) {
      kl += Math.exp(p[i]!) * (p[i]! - q[i]!);
      if (p[i]! > p[ap]!) ap = i;
      if (q[i]! > q[aq]!) aq = i;
    }
    klSum += kl;
    klMax = Math.max(klMax, kl);
    if (ap === aq) agree++;
  }
  return { klMean: klSum / n, klMax, agree };
}

const fixtures = path.join(DATA, 'fixtures');
const defaults = [
  path.join(fixtures, 'tiny-a/model.gguf'), path.join(fixtures, 'tiny-b/model.gguf'), path.join(fixtures, 'tiny-b/model-q8_0.gguf'),
  ...(fs.existsSync('.bench-out/slice.gguf') ? ['.bench-out/slice.gguf'] : []),
];
const models = values.models ? values.models.split(',') : defaults;
const self = fileURLToPath(import.meta.url);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-fidelity-'));
process.stdout.write(`# bench/fidelity ${new Date().toISOString()}  threads ${threads}  load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
process.stdout.write('| model | tokens | ours fast vs exact: top-1, KL mean / max | llama.cpp vs ours exact: top-1, KL mean / max |\n|---|---|---|---|\n');
for (const model of models) {
  const golden = path.join(path.dirname(model), 'golden.json');
  const n = Number(values.tokens);
  let ids: number[];
  if (fs.existsSync(golden)) ids = (JSON.parse(fs.readFileSync(golden, 'utf8')) as { tokens: number[] }).tokens.slice(0, n);
  else {
    // Real text through the model's own tokenizer (the default model's validation excerpt).
    const src = openModel(model);
    const tok = fromGgufSource(src);
    src.close();
    if (!tok) throw new Error(`${model}: no tokenizer in the GGUF`);
    ids = tok.encode(fs.readFileSync('models/default/val-excerpt.txt', 'utf8')).slice(0, n);
  }
  const run = (child: string, mode: string) => {
    const out = path.join(tmp, `${child}-${mode}.f32`);
    const r = spawnSync(process.execPath, [self, '--child', child, '--mode', mode, '--model', model, '--out', out, '--ids', ids.join(','), '--threads', String(threads)], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`${child} ${mode} on ${model} failed (exit ${r.status})`);
    const b = fs.readFileSync(out);
    fs.rmSync(out);
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  };
  const exact = run('ours', 'exact');
  const fast = run('ours', 'fast');
  const llama = run('llama', '-');
  const V = exact.length / ids.length;
  if (llama.length !== exact.length) throw new Error(`${model}: llama.cpp vocab ${llama.length / ids.length} ≠ ours ${V}`);
  const f = compare(exact, fast, ids.length, V);
  const l = compare(exact, llama, ids.length, V);
  const fmt = (c: ReturnType<typeof compare>) => `${c.agree}/${ids.length}, ${c.klMean.toExponential(2)} / ${c.klMax.toExponential(2)}`;
  process.stdout.write(`| ${path.relative(process.cwd(), model)} | ${ids.length} | ${fmt(f)} | ${fmt(l)} |\n`);
}
fs.rmSync(tmp, { recursive: true });
