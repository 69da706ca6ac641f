/**
 * Attention of one decoded token (T = 1) at Grok-1's shapes — 48 query heads, 8 KV heads of 128, soft-cap
 * 30 — over a KV cache of P positions: milliseconds per layer for the native kernels in exact mode
 * (float64 scores, one item per KV head) and fast mode (float32, key chunks over the threads) with each
 * KV type; with --temp, also with Grok-2's attention temperature length L (scores of a query past L scaled by
 * log2(p)/log2(L): its cost). Configurations run interleaved, round after round; medians. Each is first
 * checked against the reference (a stated bound) before it is timed.
 *
 *   node dist/bench/attention.js [--pos 4096,8192] [--threads 2] [--kv f32,f16,q8_0] [--temp 0,1024] [--rounds 15]
 */
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { NativeKernels, loadNativeAddon } from '../src/kernels/native.js';
import { allocKV, kvRowElements, writeKVRows } from '../src/kernels/kv.js';
import { attentionReference } from '../src/kernels/reference.js';
import type { AttentionArgs, KVType } from '../src/kernels/types.js';
import { mulberry32 } from '../test/random.js';

const { values: opt } = parseArgs({
  options: {
    pos: { type: 'string', default: '4096,8192' },
    threads: { type: 'string', default: '2' },
    kv: { type: 'string', default: 'f32,f16,q8_0' },
    temp: { type: 'string', default: '0' },
    rounds: { type: 'string', default: '15' },
  },
});
const H = 48, G = 8, K = 128;
const loaded = loadNativeAddon();
if ('error' in loaded) throw new Error(`native addon: ${loaded.error}`);
const threads = Number(opt.threads);
const kinds: { name: string; kernels: NativeKernels; kv: KVType; L: number }[] = [];
const exact = new NativeKernels(loaded.addon, { mode: 'exact', threads });
const fast = new NativeKernels(loaded.addon, { mode: 'fast', threads });
for (const L of opt.temp!.split(',').map(Number)) {
  const tag = L ? ` L=${L}` : '';
  kinds.push({ name: `exact f32${tag}`, kernels: exact, kv: 'f32', L });
  for (const kv of opt.kv!.split(',') as KVType[]) kinds.push({ name: `fast ${kv}${tag}`, kernels: fast, kv, L });
}

const r = mulberry32(7);
const randn = () => (r() + r() + r() - 1.5) * 2;
console.log(`attention, one decoded token, ${H}/${G} heads of ${K}, softcap 30, ${threads} threads, ${fast.isa}; ${cpus()[0]?.model}; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const P of opt.pos!.split(',').map(Number)) {
  const n = P + 1; // the decoded token's own key is the last
  const kf = Float32Array.from({ length: n * G * K }, randn), vf = Float32Array.from({ length: n * G * K }, randn);
  const q = Float32Array.from({ length: H * K }, randn);
  const keyMask = new Uint8Array(n).fill(1);
  const args = (kv: KVType, temperatureLen: number): AttentionArgs => {
    const e = kvRowElements(kv, K), kc = allocKV(kv, n * G * e), vc = allocKV(kv, n * G * e);
    writeKVRows(kv, kf, n * G, K, kc, 0);
    writeKVRows(kv, vf, n * G, K, vc, 0);
    return { q, kCache: kc, vCache: vc, keyMask, kvType: kv, T: 1, pos0: P, nHeads: H, nKV: G, headDim: K, scale: 0.08838834764831845, softcap: 30, temperatureLen, out: new Float32Array(H * K) };
  };
  const cases = kinds.map((c) => ({ ...c, args: args(c.kv, c.L), ms: [] as number[] }));
  for (const c of cases) {
    const ref = new Float32Array(H * K);
    attentionReference({ ...c.args, out: ref });
    c.kernels.attention(c.args);
    let err = 0;
    for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(c.args.out[i]! - ref[i]!));
    if (!(err <= 1e-4)) throw new Error(`${c.name} at ${P}: max |Δ| ${err} against the reference`);
  }
  for (let round = 0; round < Number(opt.rounds); round++) {
    for (const c of cases) {
      const reps = 5, t0 = performance.now();
      for (let i = 0; i < reps; i++) c.kernels.attention(c.args);
      c.ms.push((performance.now() - t0) / reps);
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  const base = median(cases[0]!.ms);
  for (const c of cases) {
    const m = median(c.ms), bytes = 2 * n * G * kvRowElements(c.kv, K) * (c.kv === 'f32' ? 4 : c.kv === 'f16' ? 2 : 1);
    console.log(`  pos ${String(P).padStart(5)}  ${c.name.padEnd(17)} ${m.toFixed(2).padStart(7)} ms/layer  (${(base / m).toFixed(2)}× exact; KV ${(bytes / 2 ** 20).toFixed(1)} MiB, ${(bytes / m / 1e6).toFixed(1)} GB/s)`);
  }
}
console.log(`load after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
exact.close();
fast.close();
