/**
 * Training a small model with Grok-1's architecture from a recipe (models/default/train.json): data, a
 * BPE tokenizer, the model, evaluation, export — OUT/tokenizer.model, OUT/model.gguf, OUT/metrics.json.
 * Deterministic for a given recipe; an interrupted run resumes from WORK/checkpoint.bin. Paths in the
 * recipe are relative to the recipe file. Nothing is installed: a missing data file is made by the
 * recipe's prepare script, which says which system package it needs when that is missing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { z } from 'zod';
import { parseJsonFile } from '../base/files.js';
import { configFromJson, type GrokConfig } from '../model/config.js';
import { Tokenizer } from '../tokenizer/sentencepiece.js';
import { readModelProto, writeModelProto, type ModelProto } from '../tokenizer/protobuf.js';
import { trainBpe } from './bpe.js';
import { train, evaluate, unigramLoss, type TrainProgress, type TrainSettings } from './loop.js';
import { ParamSet, GrokTrainer } from './model.js';
import { AdamW } from './optim.js';
import { loadCheckpoint } from './checkpoint.js';
import { exportGguf } from './export.js';

/** A recipe that cannot be used as written: names the recipe (or file) and what is wrong. */
export class RecipeError extends Error {
  constructor(readonly source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'RecipeError';
  }
}

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

export interface RecipeRunOptions {
  /** Output folder (default: the recipe's folder). */
  out?: string;
  /** Checkpoint folder (default: data/train/<name of OUT>, relative to the working directory). */
  work?: string;
  /** Stop after this step (the schedule still follows the recipe's step count). */
  steps?: number;
  /** Skip training: export from the latest checkpoint. */
  exportOnly?: boolean;
  /** A text file to train on instead of the recipe's data: its last 5 % of lines are the validation split. */
  data?: string;
  onProgress?: (p: TrainProgress) => void;
  log?: (line: string) => void;
}

export function readRecipe(configPath: string): Recipe {
  const r = Recipe.safeParse(parseJsonFile(configPath, 1 << 20));
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new RecipeError(configPath, `not a valid training recipe: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  return r.data;
}

function readData(recipe: Recipe, configPath: string, data: string | undefined, log: (l: string) => void): { trainText: string; valText: string } {
  if (data !== undefined) {
    const lines = fs.readFileSync(data, 'utf8').split('\n');
    const cut = Math.floor(lines.length * 0.95);
    log(`data: ${data}: ${cut} lines for training, ${lines.length - cut} for validation`);
    return { trainText: lines.slice(0, cut).join('\n'), valText: lines.slice(cut).join('\n') };
  }
  const base = path.dirname(path.resolve(configPath));
  const trainFile = path.resolve(base, recipe.data.train);
  const valFile = path.resolve(base, recipe.data.val);
  if (!fs.existsSync(trainFile) || !fs.existsSync(valFile)) {
    if (!recipe.data.prepare) throw new RecipeError(configPath, `${trainFile} or ${valFile} is missing and the recipe names no prepare script (or pass a text file with --data)`);
    const script = path.resolve(base, recipe.data.prepare);
    log(`preparing data: bash ${script} ${path.dirname(trainFile)}`);
    const r = spawnSync('bash', [script, path.dirname(trainFile)], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new RecipeError(configPath, `the prepare script ${script} failed (exit ${r.status}); see its message above, or pass a text file with --data`);
  }
  return { trainText: fs.readFileSync(trainFile, 'utf8'), valText: fs.readFileSync(valFile, 'utf8') };
}

/** Run a recipe; returns the metrics written to OUT/metrics.json. */
export async function runRecipe(configPath: string, o: RecipeRunOptions = {}): Promise<Record<string, unknown>> {
  const log = o.log ?? (() => {});
  const recipe = readRecipe(configPath);
  const out = o.out ?? path.dirname(configPath);
  const work = o.work ?? path.join('data', 'train', path.basename(path.resolve(out)));
  const stopAt = o.steps;
  fs.mkdirSync(out, { recursive: true });
  fs.mkdirSync(work, { recursive: true });

  // 1. Data: the recipe's files (paths relative to the recipe), prepared by its script if missing, or --data.
  const { trainText, valText } = readData(recipe, configPath, o.data, log);

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
  if (settings.seqLen > config.contextLength) throw new RecipeError(configPath, `train.seq_len ${settings.seqLen} exceeds the model's sequence_len ${config.contextLength}`);
  const checkpoint = path.join(work, 'checkpoint.bin');

  let params: ParamSet;
  let trainer: GrokTrainer;
  let step: number;
  let history;
  let trainSeconds: number | undefined;
  let tokensPerSecond: number | undefined;
  if (o.exportOnly) {
    if (!fs.existsSync(checkpoint)) throw new RecipeError(checkpoint, 'export only: there is no checkpoint to export');
    params = new ParamSet(config, 'f32');
    const st = loadCheckpoint(checkpoint, params, new AdamW(params, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 }));
    step = st.step;
    history = st.history;
    trainer = new GrokTrainer(params, settings.seqLen);
  } else {
    const ps = new ParamSet(config, 'f32');
    log(`model: ${ps.count()} parameters (${ps.activeCount()} active per token); ${settings.steps} steps of ${settings.batchSize}×${settings.seqLen} tokens`);
    const r = train({ config, settings, train: trainIds, val: valIds, checkpoint, ...(stopAt === undefined ? {} : { stopAt }), ...(o.onProgress ? { onProgress: o.onProgress } : {}), log });
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
  return metrics;
}
