/**
 * Training throughput of src/train (forward + backward of one batch), tokens per second.
 * Usage: node dist/bench/train-step.js [D] [layers] [experts] [F] [T] [B] [V] [heads] [kvHeads]
 */
import { ParamSet, GrokTrainer } from '../src/train/model.js';
import { Rng } from '../src/train/rng.js';
import { GROK1 } from '../src/model/config.js';

const a = process.argv.slice(2).map(Number);
const [D = 128, L = 4, E = 8, F = 256, T = 128, B = 8, V = 2048, H = 4, G = 2] = a;
const config = { ...GROK1, vocabSize: V, dModel: D, nLayers: L, nHeads: H, nKVHeads: G, headDim: D / H, ffnSize: F, nExperts: E, nExpertsUsed: 2, contextLength: T };
const rng = new Rng(1);
const params = new ParamSet(config, (process.env.DT ?? 'f32') as 'f32' | 'f64');
params.init(rng);
const grads = new ParamSet(config, (process.env.DT ?? 'f32') as 'f32' | 'f64');
const trainer = new GrokTrainer(params, T);
const tokens = new Int32Array(B * T).map(() => 4 + rng.int(V - 4));
const targets = new Int32Array(B * T).map(() => 4 + rng.int(V - 4));
trainer.step(tokens, targets, B, T, grads, { auxCoef: 0.01 });
const reps = 3;
const t0 = performance.now();
for (let r = 0; r < reps; r++) trainer.step(tokens, targets, B, T, grads, { auxCoef: 0.01 });
const dt = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ D, L, E, F, T, B, V, H, G, params: params.count(), active: params.activeCount(), tokensPerSecond: Math.round((reps * B * T) / dt), secondsPerStep: +(dt / reps).toFixed(3) }));
