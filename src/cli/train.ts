/**
 * `grok train --config models/default/train.json --out models/default`: trains a small model with
 * Grok-1's architecture from scratch — data (prepared by the config's script if missing), a BPE
 * tokenizer, the model, evaluation — and writes OUT/tokenizer.model, OUT/model.gguf, OUT/metrics.json.
 * Deterministic for a given config; an interrupted run resumes from WORK/checkpoint.bin.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { z } from 'zod';
import { configFromJson, type GrokConfig } from '../model/config.js';
import { Tokenizer } from '../tokenizer/sentencepiece.js';
import { readModelProto, writeModelProto, type ModelProto } from '../tokenizer/protobuf.js';
import { trainBpe } from '../train/bpe.js';
import { train, evaluate, unigramLoss, type TrainProgress, type TrainSettings } from '../train/loop.js';
import { ParamSet, GrokTrainer } from '../train/model.js';
import { AdamW } from '../train/optim.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { exportGguf } from '../train/export.js';
import { UsageError, wrapParse } from './errors.js';

const USAGE = `usage: grok train --config FILE [--out DIR] [--work DIR] [--steps N] [--export-only] [--no-progress]

  --config FILE    training recipe (JSON): data, tokenizer, model, train sections (see models/default/train.json)
  --out DIR        where tokenizer.model, model.gguf and metrics.json are written (default: the config's folder)
  --work DIR       checkpoint folder (default: data/train/<name of OUT>); a run resumes from WORK/checkpoint.bin
  --steps N        stop after step N (the schedule still follows the config's step count)
  --export-only    skip training: export OUT/model.gguf and metrics from the latest checkpoint
  --no-progress    no progress bar (log lines only)`;

const Recipe = z.object({
  name: z.string(),
  description: z.string().optional(),
  data: z.object({ train: z.string(), val: z.string(), prepare: z.string().optional(), source: z.string().optional() }),
  tokenizer: z.object({ vocab_size: z.number().int().min(300) }),
  model: z.record(z.string(), z.unknown()),
  train: z.object({
    seed: z.number().int(),
    batch_size: z.number().int().positive(),
    seq_len: z.number().int().positive(),
    steps: z.number().int().positive(),
    lr: z.number().positive(),
    min_lr: z.number().nonnegative(),
    warmup: z.number().int().nonnegative(),
    weight_decay: z.number().nonnegative(),
    beta1: z.number(),
    beta2: z.number(),
    eps: z.number().positive(),
    grad_clip: z.number().nonnegative(),
    aux_coef: z.number().nonnegative(),
    eval_every: z.number().int().nonnegative(),
    eval_tokens: z.number().int().positive(),
    checkpoint_every: z.number().int().positive(),
  }),
});
type Recipe = z.infer<typeof Recipe>;

function log(line: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

export async function runTrain(argv: string[]): Promise<number> {
  const { values } = wrapParse(() => parseArgs({
    args: argv,
    options: {
      config: { type: 'string' }, out: { type: 'string' }, work: { type: 'string' }, steps: { type: 'string' },
      'export-only': { type: 'boolean' }, 'no-progress': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  }));
  if (values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  if (!values.config) throw new UsageError(`--config is required\n${USAGE}`);
  const configPath = values.config;
  let recipe: Recipe;
  try {
    recipe = Recipe.parse(JSON.parse(fs.readFileSync(configPath, 'utf8')));
  } catch (e) {
    throw new UsageError(`${configPath}: not a valid training recipe: ${(e as Error).message}`);
  }
  const out = values.out ?? path.dirname(configPath);
  const work = values.work ?? path.join('data', 'train', path.basename(path.resolve(out)));
  const stopAt = values.steps === undefined ? undefined : Number(values.steps);
  if (stopAt !== undefined && !(Number.isInteger(stopAt) && stopAt > 0)) throw new UsageError(`--steps must be a positive integer, got '${values.steps}'`);
  fs.mkdirSync(out, { recursive: true });
  fs.mkdirSync(work, { recursive: true });

  // 1. Data.
  if (!fs.existsSync(recipe.data.train) || !fs.existsSync(recipe.data.val)) {
    if (!recipe.data.prepare) throw new UsageError(`${recipe.data.train} or ${recipe.data.val} is missing and the recipe names no prepare script`);
    log(`preparing data: bash ${recipe.data.prepare}`);
    const r = spawnSync('bash', [recipe.data.prepare], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`${recipe.data.prepare} failed (exit ${r.status})`);
  }
  const trainText = fs.readFileSync(recipe.data.train, 'utf8');
  const valText = fs.readFileSync(recipe.data.val, 'utf8');

  // 2. Tokenizer (deterministic; retrained unless OUT has one of the requested size).
  const tokFile = path.join(out, 'tokenizer.model');
  let tokModel: ModelProto;
  if (fs.existsSync(tokFile) && readModelProto(fs.readFileSync(tokFile), tokFile).pieces.length === recipe.tokenizer.vocab_size) {
    tokModel = readModelProto(fs.readFileSync(tokFile), tokFile);
    log(`tokenizer: ${tokFile} (${tokModel.pieces.length} pieces)`);
  } else {
    const t0 = Date.now();
    tokModel = trainBpe(trainText, { vocabSize: recipe.tokenizer.vocab_size }).model;
    fs.writeFileSync(tokFile, writeModelProto(tokModel));
    log(`tokenizer: trained ${tokModel.pieces.length} pieces in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${tokFile}`);
  }
  const tokenizer = Tokenizer.fromModel(tokModel, tokFile);
  const trainIds = Int32Array.from(tokenizer.encode(trainText));
  const valIds = Int32Array.from(tokenizer.encode(valText));
  log(`data: ${trainIds.length} training tokens, ${valIds.length} validation tokens`);

  // 3. Model config: the recipe's model section, vocabulary from the tokenizer.
  const parsed = configFromJson({ ...recipe.model, vocab_size: tokModel.pieces.length }, `${configPath} (model)`);
  // GGUF stores these as f32: train with the f32 values so the shipped file computes exactly what was trained.
  const config: GrokConfig = {
    ...parsed,
    embeddingMultiplier: Math.fround(parsed.embeddingMultiplier),
    outputMultiplier: Math.fround(parsed.outputMultiplier),
    attnOutputMultiplier: Math.fround(parsed.attnOutputMultiplier),
    attnSoftcap: Math.fround(parsed.attnSoftcap),
    rmsNormEps: Math.fround(parsed.rmsNormEps),
    ropeBase: Math.fround(parsed.ropeBase),
  };
  const t = recipe.train;
  const settings: TrainSettings = {
    seed: t.seed, batchSize: t.batch_size, seqLen: t.seq_len, steps: t.steps, lr: t.lr, minLr: t.min_lr, warmup: t.warmup,
    weightDecay: t.weight_decay, beta1: t.beta1, beta2: t.beta2, eps: t.eps, gradClip: t.grad_clip, auxCoef: t.aux_coef,
    evalEvery: t.eval_every, evalTokens: t.eval_tokens, checkpointEvery: t.checkpoint_every,
  };
  if (settings.seqLen > config.contextLength) throw new UsageError(`train.seq_len ${settings.seqLen} exceeds the model's sequence_len ${config.contextLength}`);
  const checkpoint = path.join(work, 'checkpoint.bin');

  let params: ParamSet;
  let trainer: GrokTrainer;
  let step: number;
  let history;
  let trainSeconds: number | undefined;
  let tokensPerSecond: number | undefined;
  if (values['export-only']) {
    if (!fs.existsSync(checkpoint)) throw new UsageError(`--export-only: no checkpoint at ${checkpoint}`);
    params = new ParamSet(config, 'f32');
    const st = loadCheckpoint(checkpoint, params, new AdamW(params, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 }));
    step = st.step;
    history = st.history;
    trainer = new GrokTrainer(params, settings.seqLen);
  } else {
    const ps = new ParamSet(config, 'f32');
    log(`model: ${ps.count()} parameters (${ps.activeCount()} active per token); ${settings.steps} steps of ${settings.batchSize}×${settings.seqLen} tokens`);
    const bar = !values['no-progress'] && process.stderr.isTTY === true
      ? new cliProgress.SingleBar({
        stream: process.stderr,
        format: 'train |{bar}| {value}/{total} steps | loss {loss} | aux {aux} | lr {lr} | {tps} tok/s | ETA {eta_formatted}',
        etaBuffer: 20,
      }, cliProgress.Presets.shades_classic)
      : null;
    const onProgress = bar
      ? ({ step: at, steps, last }: TrainProgress) => {
        if (!last) bar.start(steps, at, { loss: '-', aux: '-', lr: '-', tps: '-' });
        else bar.update(at, { loss: last.loss.toFixed(3), aux: last.auxLoss.toFixed(4), lr: last.lr.toExponential(2), tps: last.tokensPerSecond.toFixed(0) });
      }
      : undefined;
    const r = train({ config, settings, train: trainIds, val: valIds, checkpoint, stopAt, onProgress, log });
    bar?.stop();
    ({ params, trainer, step, history } = r);
    trainSeconds = r.seconds;
    tokensPerSecond = r.tokensPerSecond;
    log(`trained to step ${step} in ${r.seconds.toFixed(0)} s (${r.tokensPerSecond.toFixed(0)} tokens/s this session)`);
  }

  // 4. Evaluation on the whole validation split, and the unigram baseline on the same split.
  log('evaluating on the validation split');
  const ev = evaluate(trainer, valIds, settings.seqLen, settings.batchSize);
  const uni = unigramLoss(trainIds, valIds, config.vocabSize);
  const balance = ev.expertCounts.map((row) => {
    const s = row.reduce((a, b) => a + b, 0);
    return row.map((n) => +(n / s).toFixed(4));
  });
  log(`validation: loss ${ev.loss.toFixed(4)} (perplexity ${Math.exp(ev.loss).toFixed(2)}) over ${ev.tokens} tokens; unigram ${uni.toFixed(4)} (perplexity ${Math.exp(uni).toFixed(2)})`);

  // 5. Export.
  const ggufFile = path.join(out, 'model.gguf');
  await exportGguf(ggufFile, params, tokModel, { name: recipe.name, description: recipe.description });
  const metrics = {
    name: recipe.name,
    step,
    stepsPlanned: settings.steps,
    parameters: params.count(),
    activeParameters: params.activeCount(),
    tokensTrained: step * settings.batchSize * settings.seqLen,
    trainTokens: trainIds.length,
    valTokens: ev.tokens,
    valLoss: ev.loss,
    valPerplexity: Math.exp(ev.loss),
    unigramValLoss: uni,
    unigramValPerplexity: Math.exp(uni),
    expertShare: balance,
    trainSeconds,
    tokensPerSecond,
    history,
  };
  fs.writeFileSync(path.join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 1)}\n`);
  log(`wrote ${ggufFile} (${fs.statSync(ggufFile).size} bytes) and ${path.join(out, 'metrics.json')}`);
  return 0;
}
