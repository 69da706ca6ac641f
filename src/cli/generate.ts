/**
 * `grok generate [--model <model>] [options] "prompt"`: streams the generated text to stdout; load time and
 * speeds go to stderr. `--json` prints one JSON object instead; `-i` runs a prompt-per-line session.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { loadModel, type Completion, type Grok, type LoadModelOptions, type TextGenerateOptions } from '../api/index.js';
import { defaultModelId } from '../api/server.js';
import { formatRouting, routingJson, routingRows, routingSvg, type RoutedToken } from '../api/routing.js';
import { UsageError, wrapParse } from './errors.js';
import { kernelsFromOption } from './kernels-option.js';
import { parseIds } from './token-ids.js';

const USAGE = `usage: grok generate [--model <model>] [--tokenizer tokenizer.model] [options] "prompt"
  -m, --model PATH           model (ckpt-0 dir, .gguf, .safetensors); default: the embedded model
      --tokenizer PATH       SentencePiece tokenizer.model (default: the GGUF's own, or one beside the checkpoint)
      --tokens IDS           prompt as comma-separated token ids instead of text
  -n, --max-tokens N         new tokens at most (default 256)
  -t, --temperature T        0 = greedy (default 0.8)
      --top-k K              keep the K most probable tokens (0 = off)
      --top-p P              nucleus sampling (default 1 = off)
      --min-p P              drop tokens below P × the top probability (default 0)
      --repeat-penalty R     penalise tokens already in prompt/output (default 1 = off)
      --presence-penalty X   OpenAI-style presence penalty (default 0)
      --frequency-penalty X  OpenAI-style frequency penalty (default 0)
      --logit-bias ID=B      add B to token ID's logit (repeatable)
      --seed S               RNG seed (0…4294967295; default random, printed to stderr)
      --stop TEXT            stop before this text (repeatable)
      --ignore-eos           keep generating past the end-of-sequence token
      --add-bos              prepend the BOS token (the reference does not)
      --truncate             drop the start of a prompt that does not fit the context (default: error)
      --top-logprobs N       with --json: the N most probable alternatives per token
      --json                 print one JSON object: text, tokens, logprobs, timings
      --routing              after the text, print which experts every token went to, per layer
                             (expert usage per layer, then each token's experts); with --json: a "routing" field
      --routing-svg FILE     write a token × layer heatmap of the chosen experts (SVG)
  -i, --interactive          read one prompt per line from stdin
      --kernels NAME         kernel implementation; --threads N
      --config PATH          config.json to use instead of the one found beside the model`;

function parseNum(name: string, v: string | undefined, o: { int?: boolean; min?: number; max?: number; minExclusive?: boolean } = {}): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  const bad = v.trim() === '' || !Number.isFinite(x) || (o.int && !Number.isInteger(x)) ||
    (o.min !== undefined && (o.minExclusive ? x <= o.min : x < o.min)) || (o.max !== undefined && x > o.max);
  if (bad) {
    const range = [o.min !== undefined ? `${o.minExclusive ? '>' : '≥'} ${o.min}` : '', o.max !== undefined ? `≤ ${o.max}` : ''].filter(Boolean).join(' and ');
    throw new UsageError(`--${name} must be ${o.int ? 'an integer' : 'a number'}${range ? ` ${range}` : ''}, got '${v}'`);
  }
  return x;
}

export async function runGenerate(argv: string[]): Promise<number> {
  const { values, positionals } = wrapParse(() => parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string', short: 'm' }, tokenizer: { type: 'string' }, tokens: { type: 'string' },
      'max-tokens': { type: 'string', short: 'n' }, temperature: { type: 'string', short: 't' },
      'top-k': { type: 'string' }, 'top-p': { type: 'string' }, 'min-p': { type: 'string' },
      'repeat-penalty': { type: 'string' }, 'presence-penalty': { type: 'string' }, 'frequency-penalty': { type: 'string' },
      'logit-bias': { type: 'string', multiple: true }, seed: { type: 'string' }, stop: { type: 'string', multiple: true },
      'ignore-eos': { type: 'boolean' }, 'add-bos': { type: 'boolean' }, truncate: { type: 'boolean' },
      'top-logprobs': { type: 'string' }, json: { type: 'boolean' }, interactive: { type: 'boolean', short: 'i' },
      routing: { type: 'boolean' }, 'routing-svg': { type: 'string' },
      kernels: { type: 'string' }, threads: { type: 'string' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  }));
  if (values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  const interactive = values.interactive ?? false;
  if (interactive && (values.json || positionals.length > 0 || values.tokens)) {
    throw new UsageError('--interactive reads prompts from stdin: give no prompt, --tokens or --json with it');
  }
  if (!interactive && positionals.length === 0 && !values.tokens) throw new UsageError(`a prompt is required\n${USAGE}`);
  const routing = values.routing === true || values['routing-svg'] !== undefined;
  if (routing && interactive) throw new UsageError('--routing / --routing-svg work on one prompt, not with --interactive');
  if (positionals.length > 0 && values.tokens) throw new UsageError('give either a text prompt or --tokens, not both');

  const logitBias: Record<number, number> = {};
  for (const b of values['logit-bias'] ?? []) {
    const m = /^(\d+)=(-?[\d.]+(?:e-?\d+)?)$/i.exec(b);
    if (!m || !Number.isFinite(Number(m[2]))) throw new UsageError(`--logit-bias must look like ID=BIAS (e.g. 2=-100), got '${b}'`);
    logitBias[Number(m[1])] = Number(m[2]);
  }
  const gen: TextGenerateOptions = {
    maxTokens: parseNum('max-tokens', values['max-tokens'], { int: true, min: 1 }) ?? 256,
    temperature: parseNum('temperature', values.temperature, { min: 0 }) ?? 0.8,
    topK: parseNum('top-k', values['top-k'], { int: true, min: 0 }) ?? 0,
    topP: parseNum('top-p', values['top-p'], { min: 0, minExclusive: true, max: 1 }) ?? 1,
    minP: parseNum('min-p', values['min-p'], { min: 0, max: 1 }) ?? 0,
    repetitionPenalty: parseNum('repeat-penalty', values['repeat-penalty'], { min: 0, minExclusive: true }) ?? 1,
    presencePenalty: parseNum('presence-penalty', values['presence-penalty']) ?? 0,
    frequencyPenalty: parseNum('frequency-penalty', values['frequency-penalty']) ?? 0,
    topLogprobs: parseNum('top-logprobs', values['top-logprobs'], { int: true, min: 0, max: 20 }) ?? 0,
    ignoreEos: values['ignore-eos'] ?? false,
    addBos: values['add-bos'] ?? false,
    truncate: values.truncate ? 'left' : 'error',
    ...(routing ? { routing: true } : {}),
    ...(values.stop ? { stop: values.stop } : {}),
    ...(Object.keys(logitBias).length ? { logitBias } : {}),
  };
  const seed = parseNum('seed', values.seed, { int: true, min: 0, max: 0xffffffff });

  const loadOpts: LoadModelOptions = { slots: 1 };
  if (values.tokenizer) loadOpts.tokenizer = values.tokenizer;
  if (values.config) loadOpts.configPath = values.config;
  if (values.kernels || values.threads) loadOpts.kernels = await kernelsFromOption(values.kernels ?? 'exact', values.threads);
  // A progress bar only where someone watches, and only for models that take a while.
  let bar: cliProgress.SingleBar | null = null;
  if (process.stderr.isTTY) {
    loadOpts.onProgress = (done, total) => {
      if (!bar && total > 256 * 2 ** 20 && done < total) {
        bar = new cliProgress.SingleBar({
          stream: process.stderr, format: 'loading [{bar}] {percentage}% | {value}/{total} MiB', hideCursor: true, clearOnComplete: true,
        }, cliProgress.Presets.shades_classic);
        bar.start(Math.round(total / 2 ** 20), 0);
      }
      bar?.update(Math.round(done / 2 ** 20));
    };
  }
  let grok: Grok;
  try {
    grok = await loadModel(values.model, loadOpts);
  } finally {
    (bar as cliProgress.SingleBar | null)?.stop();
  }
  try {
    if (!values.json) process.stderr.write(`grok: loaded ${grok.path} in ${(grok.loadMs / 1000).toFixed(2)} s\n`);
    if (interactive) return await repl(grok, gen, seed);
    const prompt = values.tokens ? parseIds(values.tokens, '--tokens') : positionals.join(' ');
    const opts = seed === undefined ? gen : { ...gen, seed };
    const rows = (r: Completion) => routingRows(grok, grok.promptIds(prompt, gen.addBos).slice(r.truncatedTokens), r);
    if (values.json) {
      const r = await grok.complete(prompt, opts);
      const j = toJson(grok, r);
      if (values.routing) j.routing = routingJson(rows(r), grok.config.nExperts);
      if (values['routing-svg']) writeSvg(values['routing-svg'], rows(r), grok);
      process.stdout.write(`${JSON.stringify(j)}\n`);
      return 0;
    }
    const r = await streamOne(grok, prompt, opts);
    process.stdout.write('\n');
    reportStats(r);
    if (values.routing) process.stdout.write(`\n${formatRouting(rows(r), grok.config.nExperts)}`);
    if (values['routing-svg']) writeSvg(values['routing-svg'], rows(r), grok);
    return 0;
  } finally {
    await grok.close();
  }
}

function writeSvg(file: string, rows: RoutedToken[], grok: Grok): void {
  try {
    fs.writeFileSync(file, routingSvg(rows, grok.config.nExperts, { title: `${defaultModelId(grok.path)}: experts per token and layer` }));
  } catch (e) {
    throw new UsageError(`cannot write ${file}: ${(e as Error).message}`);
  }
  process.stderr.write(`grok: wrote the routing heatmap to ${file}\n`);
}

/** Stream one generation to stdout; Ctrl-C stops it (the text so far stays). */
async function streamOne(grok: Grok, prompt: string | number[], opts: TextGenerateOptions): Promise<Completion> {
  const ac = new AbortController();
  const onSigint = (): void => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    const s = grok.generate(prompt, { ...opts, signal: ac.signal });
    try {
      // A model without a tokenizer (e.g. a bare checkpoint) streams its token ids instead.
      for await (const c of s) process.stdout.write(grok.tokenizer ? c.text : c.token === null ? '' : `${c.token} `);
    } catch (e) {
      if (ac.signal.aborted) { process.stderr.write('\ngrok: interrupted\n'); }
      throw e;
    }
    return await s.result;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

function reportStats(r: Completion): void {
  const t = r.timings;
  process.stderr.write(
    `grok: prompt ${r.usage.promptTokens} tokens in ${(t.prefillMs / 1000).toFixed(2)} s (${t.promptTokensPerSecond.toFixed(1)} tok/s); ` +
    `generated ${r.usage.completionTokens} tokens (${t.generatedTokensPerSecond.toFixed(2)} tok/s); ` +
    `finish: ${r.finishReason}; seed ${r.seed}${r.truncatedTokens ? `; ${r.truncatedTokens} prompt tokens truncated` : ''}\n`,
  );
}

function toJson(grok: Grok, r: Completion): Record<string, unknown> {
  return {
    text: r.text,
    tokens: r.tokens,
    logprobs: r.logprobs,
    ...(r.topLogprobs ? { topLogprobs: r.topLogprobs.map((alts) => alts.map((a) => ({ id: a.id, text: a.text, logprob: a.logprob }))) } : {}),
    finishReason: r.finishReason,
    usage: r.usage,
    seed: r.seed,
    truncatedTokens: r.truncatedTokens,
    timings: { loadMs: grok.loadMs, ...r.timings },
  };
}

/** One prompt per line; an empty line is skipped; EOF or Ctrl-C at the prompt ends the session. */
async function repl(grok: Grok, gen: TextGenerateOptions, seed: number | undefined): Promise<number> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: process.stdin.isTTY ?? false });
  let n = 0;
  const ask = (): void => { if (process.stdin.isTTY) rl.prompt(); };
  rl.setPrompt('> ');
  ask();
  try {
    for await (const line of rl) {
      const prompt = line.trim();
      if (prompt.length === 0) { ask(); continue; }
      // Each turn its own seed (seed + turn) so a session replays exactly.
      const opts = seed === undefined ? gen : { ...gen, seed: (seed + n) >>> 0 };
      n++;
      try {
        const r = await streamOne(grok, prompt, opts);
        process.stdout.write('\n');
        reportStats(r);
      } catch (e) {
        if (!(e instanceof Error && e.name === 'AbortError')) process.stderr.write(`grok: error: ${e instanceof Error ? e.message : String(e)}\n`);
      }
      ask();
    }
  } finally {
    rl.close();
  }
  return 0;
}
