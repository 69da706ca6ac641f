/**
 * Training throughput of src/train (forward + backward of one batch of B×T tokens), tokens per second,
 * with the WebAssembly SIMD matmuls and with the plain-JS reference loops.
 * Usage: node dist/bench/train-step.js [D] [layers] [experts] [F] [T] [B] [V] [heads] [kvHeads]
 * (defaults: the shipped model's shape, models/default/train.json). Prints best of 3 steps per mode.
 */
import { ParamSet, GrokTrainer } from '../src/train/model.js';
import { setWasmEnabled } from '../src/train/gemm.js';
import { Rng } from '../src/base/rng.js';
import { GROK1 } from '../src/model/config.js';

const a = process.argv.slice(2).map(Number);
const [D = 128, L = 4, E = 8, F = 256, T = 256, B = 4, V = 2048, H = 4, G = 2] = a;
const config = { ...GROK1, vocabSize: V, dModel: D, nLayers: L, nHeads: H, nKVHeads: G, headDim: D / H, ffnSize: F, nExperts: E, nExpertsUsed: 2, contextLength: T };
const rng = new Rng(1);
const params = new ParamSet(config, 'f32');
params.init(rng);
const grads = new ParamSet(config, 'f32');
const trainer = new GrokTrainer(params, T);
const tokens = new Int32Array(B * T).map(() => 4 + rng.int(V - 4));
const targets = new Int32Array(B * T).map(() => 4 + rng.int(V - 4));
for (const wasm of [true, false]) {
  setWasmEnabled(wasm);
  trainer.step(tokens, targets, B, T, grads, { auxCoef: 0.01 }); // warm-up (JIT, wasm tier-up)
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    trainer.step(tokens, targets, B, T, grads, { auxCoef: 0.01 });
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  console.log(JSON.stringify({ matmuls: wasm ? 'wasm-simd128' : 'js', D, L, E, F, T, B, V, H, G, params: params.count(), active: params.activeCount(), tokensPerSecond: Math.round((B * T) / best), secondsPerStep: +best.toFixed(3) }));
}
