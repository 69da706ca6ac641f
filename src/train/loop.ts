/**
 * The training loop: batches from a token stream, forward/backward, load-balancing loss, clipping,
 * AdamW with a cosine schedule, periodic evaluation and checkpoints that resume exactly.
 */
import fs from 'node:fs';
import type { GrokConfig } from '../model/config.js';
import { ParamSet, GrokTrainer } from './model.js';
import { AdamW, clipGradNorm, cosineLr } from './optim.js';
import { Rng } from '../base/rng.js';
import { saveCheckpoint, loadCheckpoint, type CheckpointState } from './checkpoint.js';

export interface TrainSettings {
  seed: number;
  /** Sequences per step (B). */
  batchSize: number;
  /** Tokens per sequence (T). */
  seqLen: number;
  steps: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Global gradient-norm limit (0 = none). */
  gradClip: number;
  /** Weight of the Switch load-balancing loss, per layer. */
  auxCoef: number;
  /** Evaluate on (a prefix of) the validation tokens every this many steps (0 = only at the end). */
  evalEvery: number;
  /** Validation tokens used by the periodic evaluations (the final one uses all). */
  evalTokens: number;
  checkpointEvery: number;
}

/**
 * Sequences of T+1 tokens cut from a token stream. Each epoch starts at a random offset in [0, T) and
 * visits the chunks in a random order; both come from an RNG seeded by (seed, epoch), so the position
 * {epoch, index} alone determines every later batch.
 */
export class DataLoader {
  private order: Uint32Array = new Uint32Array(0);
  private offset = 0;
  private orderEpoch = -1;
  epoch = 0;
  index = 0;

  constructor(readonly tokens: Int32Array, readonly T: number, readonly seed: number) {
    if (tokens.length < 2 * T + 2) throw new Error(`DataLoader: ${tokens.length} tokens are too few for sequences of ${T}`);
  }

  private prepare(): void {
    if (this.orderEpoch === this.epoch) return;
    const rng = new Rng((this.seed * 1000003 + this.epoch * 7919 + 17) >>> 0);
    this.offset = rng.int(this.T);
    const n = Math.floor((this.tokens.length - 1 - this.offset) / this.T);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i]; order[i] = order[j]; order[j] = t;
    }
    this.order = order;
    this.orderEpoch = this.epoch;
  }

  /** The next B sequences: inputs and next-token targets, each [B·T]. */
  next(B: number): { inputs: Int32Array; targets: Int32Array } {
    const T = this.T;
    const inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      this.prepare();
      const start = this.offset + this.order[this.index] * T;
      inputs.set(this.tokens.subarray(start, start + T), b * T);
      targets.set(this.tokens.subarray(start + 1, start + T + 1), b * T);
      if (++this.index >= this.order.length) { this.epoch++; this.index = 0; }
    }
    return { inputs, targets };
  }
}

export interface EvalResult {
  /** Mean cross-entropy in nats per token. */
  loss: number;
  tokens: number;
  /** Tokens routed to each expert, [layer][expert]. */
  expertCounts: number[][];
}

/** Loss on consecutive windows of T+1 tokens from the start of `tokens` (at most maxTokens predictions). */
export function evaluate(trainer: GrokTrainer, tokens: Int32Array, T: number, B: number, maxTokens = Infinity): EvalResult {
  const c = trainer.params.config;
  const windows = Math.min(Math.floor((tokens.length - 1) / T), Math.max(1, Math.floor(maxTokens / T)));
  let sum = 0, count = 0;
  const counts = Array.from({ length: c.nLayers }, () => new Array<number>(c.nExperts).fill(0));
  for (let w0 = 0; w0 < windows; w0 += B) {
    const nb = Math.min(B, windows - w0);
    const inputs = new Int32Array(nb * T), targets = new Int32Array(nb * T);
    for (let b = 0; b < nb; b++) {
      const s = (w0 + b) * T;
      inputs.set(tokens.subarray(s, s + T), b * T);
      targets.set(tokens.subarray(s + 1, s + T + 1), b * T);
    }
    const { logits, expertCounts } = trainer.forwardWithRouting(inputs, nb, T);
    const V = c.vocabSize;
    for (let t = 0; t < nb * T; t++) {
      const o = t * V;
      let mx = -Infinity;
      for (let i = 0; i < V; i++) if (logits[o + i] > mx) mx = logits[o + i];
      let s = 0;
      for (let i = 0; i < V; i++) s += Math.exp(logits[o + i] - mx);
      sum += Math.log(s) + mx - logits[o + targets[t]];
      count++;
    }
    expertCounts.forEach((row, l) => row.forEach((n, e) => { counts[l][e] += n; }));
  }
  return { loss: sum / count, tokens: count, expertCounts: counts };
}

/** Cross-entropy of an add-one-smoothed unigram model fitted on `train`, measured on `val` (nats/token). */
export function unigramLoss(train: Int32Array, val: Int32Array, vocabSize: number): number {
  const counts = new Float64Array(vocabSize).fill(1);
  for (const t of train) counts[t]++;
  const total = train.length + vocabSize;
  let s = 0;
  for (const t of val) s -= Math.log(counts[t] / total);
  return s / val.length;
}

export interface TrainJob {
  config: GrokConfig;
  settings: TrainSettings;
  train: Int32Array;
  val: Int32Array;
  /** Checkpoint file: resumed from when it exists, written every settings.checkpointEvery steps. */
  checkpoint?: string;
  /** Stop after this step even if settings.steps is larger (tests; an interrupted run). */
  stopAt?: number;
  /** Called once before the first step and after every step (the CLI drives its progress bar with it). */
  onProgress?: (p: TrainProgress) => void;
  /** A line of text per log event (evaluations, checkpoints). */
  log?: (line: string) => void;
}

export interface TrainProgress {
  /** Steps done, those of a resumed checkpoint included. */
  step: number;
  /** Steps planned (settings.steps). */
  steps: number;
  /** The step just done; absent in the call before the first step. */
  last?: { loss: number; auxLoss: number; lr: number; tokensPerSecond: number };
}

export interface TrainOutcome {
  params: ParamSet;
  trainer: GrokTrainer;
  step: number;
  /** Loss of each step run in this call, in order. */
  losses: number[];
  history: CheckpointState['history'];
  tokensPerSecond: number;
  seconds: number;
}

export function train(job: TrainJob): TrainOutcome {
  const { config, settings: s } = job;
  const log = job.log ?? (() => {});
  const rng = new Rng(s.seed);
  const params = new ParamSet(config, 'f32');
  params.init(rng);
  const grads = new ParamSet(config, 'f32');
  const opt = new AdamW(params, { beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay });
  const data = new DataLoader(job.train, s.seqLen, s.seed);
  let step = 0;
  let history: CheckpointState['history'] = [];
  const settingsKey = JSON.stringify({ config, settings: { ...s, evalEvery: undefined, checkpointEvery: undefined } });
  if (job.checkpoint && fs.existsSync(job.checkpoint)) {
    const st = loadCheckpoint(job.checkpoint, params, opt);
    if (JSON.stringify(st.settings) !== settingsKey) {
      throw new Error(`${job.checkpoint}: this checkpoint was made with other settings; delete it (or use another work directory) to start over`);
    }
    step = st.step;
    rng.setState(st.rng);
    data.epoch = st.data.epoch;
    data.index = st.data.index;
    history = st.history;
    log(`resumed from ${job.checkpoint} at step ${step}`);
  }
  const trainer = new GrokTrainer(params, s.seqLen);
  const save = () => {
    if (!job.checkpoint) return;
    saveCheckpoint(job.checkpoint, params, opt, { step, rng: rng.getState(), data: { epoch: data.epoch, index: data.index }, settings: JSON.parse(settingsKey), history });
  };

  const end = Math.min(s.steps, job.stopAt ?? Infinity);
  job.onProgress?.({ step, steps: s.steps });
  const losses: number[] = [];
  const t0 = performance.now();
  let tokens = 0;
  const B = s.batchSize, T = s.seqLen;
  while (step < end) {
    grads.zero();
    const { inputs, targets } = data.next(B);
    const r = trainer.step(inputs, targets, B, T, grads, { auxCoef: s.auxCoef });
    if (!Number.isFinite(r.loss)) throw new Error(`training diverged at step ${step}: loss ${r.loss}`);
    clipGradNorm(grads, s.gradClip);
    const lr = cosineLr(step, { lr: s.lr, minLr: s.minLr, warmup: s.warmup, total: s.steps });
    opt.step(grads, lr);
    step++;
    tokens += B * T;
    losses.push(r.loss);
    const entry: CheckpointState['history'][number] = { step, loss: r.loss };
    const tps = tokens / ((performance.now() - t0) / 1000);
    if (s.evalEvery > 0 && step % s.evalEvery === 0 && step < s.steps) {
      entry.valLoss = evaluate(trainer, job.val, T, B, s.evalTokens).loss;
      log(`step ${step}: train loss ${r.loss.toFixed(4)}, val loss ${entry.valLoss.toFixed(4)} (first ${s.evalTokens} tokens), ${tps.toFixed(0)} tok/s`);
    }
    history.push(entry);
    job.onProgress?.({ step, steps: s.steps, last: { loss: r.loss, auxLoss: r.auxLoss, lr, tokensPerSecond: tps } });
    if (job.checkpoint && (step % s.checkpointEvery === 0 || step === end)) {
      save();
      log(`step ${step}: checkpoint saved (train loss ${r.loss.toFixed(4)}, ${tps.toFixed(0)} tok/s)`);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return { params, trainer, step, losses, history, tokensPerSecond: seconds > 0 ? tokens / seconds : 0, seconds };
}
