/**
 * `grok generate [options] [prompt…]`: streams the continuation to stdout; load time and speeds go to
 * stderr. The prompt comes from the arguments, -p/--prompt, -f/--file, `-` (stdin) or --tokens; `--json`
 * prints one JSON object instead; `-i` runs a prompt-per-line session. llama.cpp's spellings work too.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { Command, Option } from 'commander';
import type { Completion, Grok, LoadModelOptions, TextGenerateOptions } from '../api/index.js';
import { routingRows, type RoutedToken } from '../api/routing.js';
import { headerLine, tokenLines } from '../api/routing-trace.js';
import { UsageError } from './errors.js';
import { loadForCli } from './load.js';
import {
  addKernelOptions, addKVOption, addModelOptions, collect, int, num, parseIds, unescapeText, type KernelOptionValues, type KVOptionValues, type ModelOptionValues,
} from './options.js';

interface GenerateOptions extends ModelOptionValues, KernelOptionValues, KVOptionValues {
  prompt?: string;
  file?: string;
  tokens?: string;
  maxTokens: number;
  temperature?: number;
  temp?: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  logitBias?: string[];
  seed?: number;
  stop?: string[];
  ignoreEos?: boolean;
  addBos?: boolean;
  truncate?: boolean;
  ctxSize?: number;
  topLogprobs: number;
  json?: boolean;
  interactive?: boolean;
  escape: boolean;
  routing?: boolean;
  routingSvg?: string;
  traceRouting?: string;
}

export function generateCommand(): Command {
  const c = new Command('generate')
    .summary('generate text from a prompt (streams to stdout; -i for an interactive session)')
    .description('Generate a continuation of a prompt. The prompt is the arguments, -p TEXT, -f FILE, - (standard input) or --tokens IDS.')
    .argument('[prompt...]', 'prompt text (words are joined with spaces); - reads standard input');
  addModelOptions(c)
    .option('-p, --prompt <text>', 'prompt text')
    .option('-f, --file <path>', 'read the prompt from a file (no escape processing)')
    .option('--tokens <ids>', 'prompt as token ids: 5,17,300')
    .option('-n, --max-tokens <n>', 'new tokens at most', int(1), 256)
    .addOption(new Option('--n-predict <n>', 'same as --max-tokens (llama.cpp)').argParser(int(1)).hideHelp())
    .option('-t, --temperature <t>', 'sampling temperature; 0 = greedy (default 0.8)', num({ min: 0 }))
    .addOption(new Option('--temp <t>', 'same as --temperature (llama.cpp)').argParser(num({ min: 0 })))
    .option('--top-k <k>', 'keep the k most probable tokens (0 = off)', int(0), 0)
    .option('--top-p <p>', 'nucleus sampling (1 = off)', num({ gt: 0, max: 1 }), 1)
    .option('--min-p <p>', 'drop tokens below p × the top probability', num({ min: 0, max: 1 }), 0)
    .option('--repeat-penalty <r>', 'penalise tokens already in prompt or output (1 = off)', num({ gt: 0 }), 1)
    .option('--presence-penalty <x>', 'OpenAI-style presence penalty', num({}), 0)
    .option('--frequency-penalty <x>', 'OpenAI-style frequency penalty', num({}), 0)
    .option('--logit-bias <id=bias>', 'add bias to a token\'s logit (repeatable), e.g. 2=-100', collect)
    .option('-s, --seed <n>', 'random seed 0…4294967295 (default: random, printed on stderr)', int(0, 0xffffffff))
    .option('--stop <text>', 'stop before this text (repeatable; escapes like \\n are interpreted)', collect)
    .option('--ignore-eos', 'keep generating past the end-of-sequence token')
    .option('--add-bos', 'prepend the BOS token (the reference adds none)')
    .option('--truncate', 'drop the start of a prompt that does not fit the context (default: an error)')
    .option('-c, --ctx-size <n>', 'context length in tokens (default: the model\'s)', int(1))
    .option('--top-logprobs <n>', 'with --json: the n most probable alternatives per token', int(0, 20), 0)
    .option('--json', 'print one JSON object: text, tokens, logprobs, timings')
    .option('--routing', 'after the text, print which experts every token went to, per layer (with --json: a "routing" field)')
    .option('--routing-svg <file>', 'write a token × layer heatmap of the chosen experts (SVG)')
    .option('--trace-routing <file>', 'write a routing trace (JSON lines: a header, then every token\'s experts per layer, in the order processed; with -i, each turn appended) for grok cache-sim')
    .option('-i, --interactive', 'read one prompt per line from standard input')
    .option('--no-escape', 'take \\n, \\t, \\xHH … in the prompt and --stop literally');
  addKernelOptions(c, 'fast');
  addKVOption(c);
  return c.addHelpText('after', `
Examples:
  grok generate "And God said"
  grok generate -m grok-1-q8_0.gguf -n 64 --temp 0.7 --top-p 0.95 -s 1 --stop "\\n" -p "The answer is"
  echo "In the beginning" | grok generate -
  grok generate --routing --routing-svg routing.svg "And God said"
  grok generate -m grok-1-q8_0.gguf --trace-routing trace.jsonl -f prompt.txt && grok cache-sim --trace trace.jsonl --budget 40G --budget 60G
  grok generate -m ckpt-0 --tokenizer tokenizer.model -i`)
    .action(async (words: string[], o: GenerateOptions) => runGenerate(words, o));
}

/** The prompt from exactly one source. */
function readPrompt(words: string[], o: GenerateOptions): string | number[] | null {
  const esc = (s: string) => (o.escape ? unescapeText(s) : s);
  const sources = [words.length > 0, o.prompt !== undefined, o.file !== undefined, o.tokens !== undefined].filter(Boolean).length;
  if (o.interactive) {
    if (sources > 0 || o.json) throw new UsageError('--interactive reads prompts from standard input: give no prompt, --tokens or --json with it');
    return null;
  }
  if (sources === 0) throw new UsageError('a prompt is required: text arguments, -p TEXT, -f FILE, - for standard input, or --tokens IDS');
  if (sources > 1) throw new UsageError('give the prompt one way: text arguments, -p, -f or --tokens');
  if (o.tokens !== undefined) return parseIds(o.tokens, '--tokens');
  if (o.file !== undefined) return readText(o.file);
  if (o.prompt !== undefined) return esc(o.prompt);
  if (words.length === 1 && words[0] === '-') return readText('-');
  return esc(words.join(' '));
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read the prompt from ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`);
  }
}

function samplingOptions(o: GenerateOptions): TextGenerateOptions {
  const logitBias: Record<number, number> = {};
  for (const b of o.logitBias ?? []) {
    const m = /^(\d+)=(-?[\d.]+(?:e-?\d+)?)$/i.exec(b);
    if (!m || !Number.isFinite(Number(m[2]))) throw new UsageError(`--logit-bias must look like ID=BIAS (e.g. 2=-100), got '${b}'`);
    logitBias[Number(m[1])] = Number(m[2]);
  }
  const stop = (o.stop ?? []).map((s) => (o.escape ? unescapeText(s) : s));
  if (stop.some((s) => s.length === 0)) throw new UsageError('--stop must not be empty');
  return {
    maxTokens: o.maxTokens,
    temperature: o.temperature ?? o.temp ?? 0.8,
    topK: o.topK, topP: o.topP, minP: o.minP,
    repetitionPenalty: o.repeatPenalty, presencePenalty: o.presencePenalty, frequencyPenalty: o.frequencyPenalty,
    topLogprobs: o.topLogprobs,
    ignoreEos: o.ignoreEos ?? false,
    addBos: o.addBos ?? false,
    truncate: o.truncate ? 'left' : 'error',
    ...(stop.length ? { stop } : {}),
    ...(Object.keys(logitBias).length ? { logitBias } : {}),
  };
}

async function runGenerate(words: string[], o: GenerateOptions & { nPredict?: number }): Promise<void> {
  if (o.nPredict !== undefined) o.maxTokens = o.nPredict;
  if (o.temperature !== undefined && o.temp !== undefined) throw new UsageError('give --temperature or --temp, not both');
  const prompt = readPrompt(words, o);
  if ((o.routing === true || o.routingSvg !== undefined) && prompt === null) throw new UsageError('--routing / --routing-svg work on one prompt, not with --interactive (--trace-routing does)');
  const routing = o.routing === true || o.routingSvg !== undefined || o.traceRouting !== undefined;
  const gen = { ...samplingOptions(o), ...(routing ? { routing: true } : {}) };
  // Opened before the (long) load: a path that cannot be written fails at once.
  const trace = o.traceRouting === undefined ? null : openTrace(o.traceRouting);
  const load: LoadModelOptions = { slots: 1, ...(o.ctxSize === undefined ? {} : { contextLength: o.ctxSize }) };
  let grok: Grok;
  try {
    grok = await loadForCli(o, load, { quiet: o.json === true });
  } catch (e) {
    trace?.close();
    throw e;
  }
  try {
    if (trace) await trace.start(grok, o.config);
    if (prompt === null) return await repl(grok, gen, o.seed, trace);
    const opts = o.seed === undefined ? gen : { ...gen, seed: o.seed };
    const { formatRouting, routingJson } = await import('../api/routing.js');
    const rows = (r: Completion) => routingRows(grok, grok.promptIds(prompt, gen.addBos).slice(r.truncatedTokens), r);
    if (o.json) {
      const r = await grok.complete(prompt, opts);
      const j = toJson(grok, r);
      if (o.routing) j.routing = routingJson(rows(r), grok.config.nExperts);
      if (o.routingSvg) await writeSvg(o.routingSvg, rows(r), grok);
      trace?.append(rows(r));
      process.stdout.write(`${JSON.stringify(j)}\n`);
      return;
    }
    const r = await streamOne(grok, prompt, opts);
    process.stdout.write('\n');
    reportStats(r);
    reportExperts(grok);
    if (o.routing) process.stdout.write(`\n${formatRouting(rows(r), grok.config.nExperts)}`);
    if (o.routingSvg) await writeSvg(o.routingSvg, rows(r), grok);
    trace?.append(rows(r));
  } finally {
    trace?.close();
    await grok.close();
  }
}

/** A routing trace being written (routing-trace.ts): the header once the model is loaded, then each sequence's tokens. */
interface TraceFile {
  start(grok: Grok, configPath: string | undefined): Promise<void>;
  append(rows: readonly RoutedToken[], turn?: number): void;
  close(): void;
}

function openTrace(file: string): TraceFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'w');
  } catch (e) {
    throw new UsageError(`cannot write the routing trace ${file}: ${(e as Error).message}`);
  }
  let tokens = 0;
  let started = false;
  let closed = false;
  const write = (s: string) => {
    try {
      fs.writeSync(fd, s);
    } catch (e) {
      throw new Error(`cannot write the routing trace ${file}: ${(e as Error).message}`);
    }
  };
  return {
    async start(grok, configPath) {
      const { readAlignment, weightSizes } = await import('../model/loader.js');
      const c = grok.config;
      // The sizes as the loader counts them; a slot as the pool in use lays it out, else as these kernels' reader would.
      const sizes = weightSizes(grok.path, { ...(configPath ? { configPath } : {}), alignment: readAlignment(grok.model.kernels) });
      write(headerLine({
        model: grok.path, nLayers: c.nLayers, nExperts: c.nExperts, nExpertsUsed: c.nExpertsUsed,
        expertBytes: sizes.expertBytes, slotBytes: grok.model.expertCache?.slotBytes ?? sizes.slotBytes, residentBytes: sizes.residentBytes,
        prefillChunk: grok.engine.prefillChunk,
      }));
      started = true;
    },
    append(rows, turn) {
      write(tokenLines(rows, turn));
      tokens += rows.length;
    },
    close() {
      if (closed) return;
      closed = true;
      fs.closeSync(fd);
      // The model never loaded: no trace, not an empty file that looks like one.
      if (!started) fs.rmSync(file, { force: true });
      else process.stderr.write(`grok: wrote the routing trace of ${tokens} tokens to ${file}\n`);
    },
  };
}

async function writeSvg(file: string, rows: RoutedToken[], grok: Grok): Promise<void> {
  const { routingSvg } = await import('../api/routing.js');
  const { defaultModelId } = await import('../api/server.js');
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
      if (ac.signal.aborted) process.stderr.write('\ngrok: interrupted\n');
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
    ...(grok.model.expertCache ? { experts: grok.model.expertCache.stats() } : {}),
  };
}

/** With streamed experts: what the pool did (the numbers a RAM budget is sized with). */
function reportExperts(grok: Grok): void {
  const c = grok.model.expertCache;
  if (!c) return;
  const s = c.stats();
  const uses = s.hits + s.misses;
  process.stderr.write(
    `grok: experts: ${s.slots} of ${s.experts} in memory; ${uses ? ((100 * s.hits) / uses).toFixed(1) : '0'} % of uses found there ` +
    `(${s.prefetchHits} thanks to the next layer's guess, right ${s.guessed ? ((100 * s.guessedRight) / s.guessed).toFixed(0) : '–'} % of the time); ` +
    `read ${(s.bytesRead / 1e9).toFixed(2)} GB${s.bytesRead ? ` (${((100 * s.directBytes) / s.bytesRead).toFixed(0)} % around the page cache)` : ''}, waited ${(s.waitMs / 1000).toFixed(2)} s for reads\n`,
  );
}

/** One prompt per line; an empty line is skipped; EOF or Ctrl-C at the prompt ends the session. */
async function repl(grok: Grok, gen: TextGenerateOptions, seed: number | undefined, trace: TraceFile | null): Promise<void> {
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
        if (trace) trace.append(routingRows(grok, grok.promptIds(prompt, gen.addBos).slice(r.truncatedTokens), r), n - 1);
      } catch (e) {
        if (!(e instanceof Error && e.name === 'AbortError')) process.stderr.write(`grok: error: ${e instanceof Error ? e.message : String(e)}\n`);
      }
      ask();
    }
  } finally {
    rl.close();
  }
}
