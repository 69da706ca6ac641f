/**
 * How much of a token's time is spent outside the parallel kernels, and what a second thread buys.
 * Native kernels, fast mode, on a Grok-1-width slice (D 6144, 48/8 heads of 128, F 32768): for 1 and 2
 * threads, interleaved, the median over `--reps` of
 * - a decode step (T = 1, after an 8-token prompt) and a 256-token prefill chunk (every row: lastOnly would
 *   skip the last layer's MoE for all but one token, all of it on a 1-layer slice);
 * - the time inside the parallel kernel calls (matmul, matmulMany, matmulExact, attention, gelu: each one
 *   call into the thread pool), measured by wrapping them;
 * and prints serial fraction = (total − inside) ÷ total at 1 thread (the rest: RMSNorm, RoPE, the expert
 * combine, residual adds, copies — JavaScript on one thread) and the prefill speed-up from 1 to 2 threads.
 * Targets (issue 18): ≤ 3 % decode, ≤ 5 % prefill, ≥ 1.85× speed-up.
 *
 *   node dist/bench/serial.js [--model slice.gguf] [--layers 1] [--experts 2] [--vocab 8192] [--reps 3]
 *
 * Without --model it writes .bench-out/serial-<layers>L-<experts>E.gguf once (q8_0, random weights; with
 * 2 experts both run for every token, so a token reads what a Grok-1 layer's token reads).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { synthModel } from '../src/convert/synth.js';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import type { Kernels } from '../src/kernels/types.js';
import { GROK1 } from '../src/model/config.js';
import { loadModel } from '../src/model/loader.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' }, layers: { type: 'string', default: '1' }, experts: { type: 'string', default: '2' },
    vocab: { type: 'string', default: '8192' }, reps: { type: 'string', default: '3' }, prefill: { type: 'string', default: '256' },
  },
});
const layers = Number(a.layers), experts = Number(a.experts), reps = Number(a.reps), P = Number(a.prefill);

let model = a.model;
if (!model) {
  model = path.join('.bench-out', `serial-${layers}L-${experts}E.gguf`);
  if (!fs.existsSync(model)) {
    fs.mkdirSync('.bench-out', { recursive: true });
    process.stderr.write(`writing ${model}…\n`);
    await synthModel({
      config: { ...GROK1, nLayers: layers, nExperts: experts, nExpertsUsed: Math.min(2, experts), vocabSize: Number(a.vocab) },
      type: 'q8_0', out: model, threads: os.availableParallelism(),
    });
  }
}

/** The kernels with the parallel calls timed (ms accumulated in `inside`). */
function timed(k: Kernels): { k: Kernels; inside: { ms: number } } {
  const inside = { ms: 0 };
  const t: Kernels = Object.create(k);
  for (const name of ['matmul', 'matmulMany', 'matmulExact', 'attention', 'gelu'] as const) {
    const f = (k[name] as (...args: unknown[]) => void).bind(k);
    (t as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const t0 = performance.now();
      f(...args);
      inside.ms += performance.now() - t0;
    };
  }
  return { k: t, inside };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
type Sample = { decode: number; decodeIn: number; prefill: number; prefillIn: number };
const samples = new Map<number, Sample[]>([[1, []], [2, []]]);
const load0 = os.loadavg()[0]!;

for (let r = 0; r < reps; r++) {
  for (const threads of r % 2 === 0 ? [1, 2] : [2, 1]) {
    const base = createKernels({ kernels: 'native', mode: 'fast', threads });
    try {
      const { k, inside } = timed(base);
      const { model: m } = await loadModel(model, { kernels: k, contextLength: P + 64 });
      const V = m.config.vocabSize;
      const ids = (n: number, s: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 7919 + s * 104729) % (V - 3)));
      // warm-up: every page of the weights touched once
      m.forward([{ tokens: ids(8, r), cache: m.newCache(64) }], { lastOnly: true });
      const cache = m.newCache(64);
      m.forward([{ tokens: ids(8, r + 1), cache }], { lastOnly: true });
      const dec: number[] = [], decIn: number[] = [];
      for (let s = 0; s < 4; s++) {
        inside.ms = 0;
        const t0 = performance.now();
        m.forward([{ tokens: ids(1, 100 + s + r), cache }], { lastOnly: true });
        dec.push(performance.now() - t0);
        decIn.push(inside.ms);
      }
      inside.ms = 0;
      const t0 = performance.now();
      m.forward([{ tokens: ids(P, r + 7), cache: m.newCache(P) }]); // every row: a 1-layer lastOnly pass would skip the MoE
      const pre = performance.now() - t0;
      const i = dec.indexOf(median(dec));
      samples.get(threads)!.push({ decode: dec[i]!, decodeIn: decIn[i]!, prefill: pre, prefillIn: inside.ms });
    } finally {
      closeKernels(base);
    }
  }
}

const summary = (threads: number) => {
  const s = samples.get(threads)!;
  const pick = (key: 'decode' | 'prefill') => s[s.map((x) => x[key]).indexOf(median(s.map((x) => x[key])))]!;
  const d = pick('decode'), p = pick('prefill');
  return { decode: d.decode, decodeSerial: (d.decode - d.decodeIn) / d.decode, prefill: p.prefill, prefillSerial: (p.prefill - p.prefillIn) / p.prefill };
};
const one = summary(1), two = summary(2);
const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
console.log(`model ${model} (${(fs.statSync(model).size / 1e9).toFixed(2)} GB), native fast, ${reps} reps interleaved, medians; load average ${load0.toFixed(2)} → ${os.loadavg()[0]!.toFixed(2)} on ${os.availableParallelism()} CPUs`);
for (const [t, s] of [[1, one], [2, two]] as const) {
  console.log(`${t} thread${t > 1 ? 's' : ' '}: decode ${s.decode.toFixed(1)} ms/token (outside kernels ${pct(s.decodeSerial)}), prefill ${P} tokens ${s.prefill.toFixed(0)} ms = ${(P / s.prefill * 1000).toFixed(1)} tok/s (outside kernels ${pct(s.prefillSerial)})`);
}
console.log(`serial fraction at 1 thread: decode ${pct(one.decodeSerial)} (target ≤ 3 %), prefill ${pct(one.prefillSerial)} (target ≤ 5 %)`);
console.log(`speed-up 1 → 2 threads: prefill ${(one.prefill / two.prefill).toFixed(2)}× (target ≥ 1.85×), decode ${(one.decode / two.decode).toFixed(2)}×`);
