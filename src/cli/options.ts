/**
 * The options every `grok` command shares, defined once: number parsing with ranges (negative values are
 * values, not flags), repeatable options, llama.cpp-style escapes, token-id lists, the model and kernel
 * options. Commands are built with commander (src/cli/main.ts), which gives every command the same help,
 * "did you mean" suggestions and error format.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseCpuList } from '../kernels/cpus.js';
import { UsageError } from './errors.js';

export interface NumberRange {
  readonly int?: boolean;
  readonly min?: number;
  /** Exclusive lower bound. */
  readonly gt?: number;
  readonly max?: number;
}

function rangeText(r: NumberRange): string {
  const parts = [r.min !== undefined ? `≥ ${r.min}` : r.gt !== undefined ? `> ${r.gt}` : '', r.max !== undefined ? `≤ ${r.max}` : ''].filter(Boolean);
  return `${r.int ? 'an integer' : 'a number'}${parts.length ? ` ${parts.join(' and ')}` : ''}`;
}

/** Parse a number within a range; the message says what was expected. */
export function parseNumber(v: string, r: NumberRange = {}): number {
  const x = Number(v);
  const ok = v.trim() !== '' && Number.isFinite(x) && (!r.int || Number.isInteger(x)) &&
    (r.min === undefined || x >= r.min) && (r.gt === undefined || x > r.gt) && (r.max === undefined || x <= r.max);
  if (!ok) throw new InvalidArgumentError(`expected ${rangeText(r)}.`);
  return x;
}

/** A commander argument parser for numbers in a range. */
export const num = (r: NumberRange) => (v: string): number => parseNumber(v, r);
export const int = (min: number, max?: number) => num({ int: true, min, ...(max === undefined ? {} : { max }) });

/** Repeatable option: `--stop a --stop b` → ['a', 'b']. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/**
 * Escape sequences in text given on the command line, as llama.cpp interprets them: \n \r \t \v \f \a \b
 * \0 \\ \' \" \? and \xHH (one byte as a code point). An unknown escape is kept as written.
 */
export function unescapeText(s: string): string {
  const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', v: '\v', f: '\f', a: '\x07', b: '\b', '0': '\0', '\\': '\\', "'": "'", '"': '"', '?': '?' };
  return s.replace(/\\(x[0-9a-fA-F]{2}|.)/gs, (all, e: string) => {
    if (e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
    return simple[e] ?? all;
  });
}

/** `5,17,300` (or `[5, 17, 300]`, or space-separated): token ids, the one parser for every command. */
export function parseIds(s: string, what: string): number[] {
  const body = s.trim().replace(/^\[/, '').replace(/\]$/, '').trim();
  const parts = body === '' ? [] : body.split(/[\s,]+/).filter((p) => p.length > 0);
  if (parts.length === 0) throw new UsageError(`${what}: expected token ids like 1,2,3, got '${s}'`);
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new UsageError(`${what}: '${p}' is not a token id (expected non-negative integers like 1,2,3)`);
    return Number(p);
  });
}

export interface ModelOptionValues {
  model?: string;
  tokenizer?: string;
  config?: string;
}

/** -m/--model, --tokenizer, --config. */
export function addModelOptions(cmd: Command, what = 'model'): Command {
  return cmd
    .option('-m, --model <path>', `${what}: a ckpt-0 directory, a .gguf file (or a folder holding one), a .safetensors file or folder, or a Hugging Face repo id fetched by grok pull (org/name, org/name:QUANT) (default: the embedded model)`)
    .option('--tokenizer <path>', 'SentencePiece tokenizer.model or Grok-2 tokenizer.tok.json (default: the GGUF\'s own, or one beside the checkpoint)')
    .option('--config <path>', 'config.json to use instead of the one found beside the model');
}

/**
 * A size in bytes: 6442450944, 6G / 6GiB (powers of 1024: K, M, G, T, with or without "iB"), 6.5GB (powers
 * of 1000: KB, MB, GB, TB).
 */
export function parseSize(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(i?B)?|(B))?\s*$/i.exec(v);
  if (!m) throw new InvalidArgumentError(`expected a size like 48G, 48GiB, 51.5GB or a number of bytes, got '${v}'.`);
  const n = Number(m[1]);
  const unit = m[2]?.toUpperCase();
  const exp = unit ? 'KMGT'.indexOf(unit) + 1 : 0;
  const base = m[3] !== undefined && m[3].toLowerCase() === 'b' ? 1000 : 1024;
  const bytes = Math.round(n * base ** exp);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new InvalidArgumentError(`expected a positive size, got '${v}'.`);
  return bytes;
}

export type KernelChoice = 'exact' | 'fast' | 'reference';
export interface KernelOptionValues {
  kernels?: KernelChoice;
  backend?: 'auto' | 'native' | 'wasm' | 'reference';
  threads?: number;
  cpuAffinity?: boolean | string;
  mlock?: boolean;
  mmap?: boolean;
  ramBudget?: number;
  expertPolicy?: 'lru' | 'lfu';
  ioThreads?: number;
}

/**
 * --backend, --kernels (numerics), --threads, --mlock, --no-mmap, with the command's default numerics:
 * fast (8-bit activations, what llama.cpp and serving engines do) for generation, exact where results are
 * compared with goldens.
 */
export function addKernelOptions(cmd: Command, defaultNumerics: 'exact' | 'fast'): Command {
  return cmd
    .addOption(new Option('--backend <name>', 'kernels: native (C, SIMD per CPU; mapped weights), wasm (WebAssembly SIMD), reference (plain loops); auto = native where it built, else wasm (or GROK_BACKEND)')
      .choices(['auto', 'native', 'wasm', 'reference']).default('auto'))
    .addOption(new Option('--kernels <name>', 'numerics: exact (float activations; matches the goldens), fast (8-bit activations, as llama.cpp), reference (the reference backend)')
      .choices(['exact', 'fast', 'reference']).default(defaultNumerics))
    .option('--threads <n>', 'threads for the kernels (default: one per physical core, SMT siblings not counted)', int(1, 256))
    .option('--cpu-affinity [cpus]', 'native, Linux: pin kernel thread i to one CPU: one physical core each, or the CPUs listed (e.g. 0-7,16-23)')
    .option('--mlock', 'native: lock the mapped weights in memory (needs RLIMIT_MEMLOCK; as llama.cpp)')
    .option('--mmap', 'native: map the model files even when the model fits in memory (default: read a model that fits into memory, map a larger one)')
    .option('--no-mmap', 'native: read the weights into memory instead of mapping the files')
    .option('--ram-budget <size>', 'memory the weights may take (e.g. 48G): a larger model keeps its other weights in memory and streams its experts from disk into a pool filling the rest (default: the memory available less a margin; none: never stream, map and page instead; see README: less RAM than the model)', (v: string) => (v === 'none' ? Infinity : parseSize(v)))
    .addOption(new Option('--expert-policy <name>', 'with --ram-budget: which expert leaves the pool').choices(['lru', 'lfu']).default('lru'))
    .option('--io-threads <n>', 'with --ram-budget: threads reading experts from disk (default 4)', int(1, 64));
}

/** The loader's options for streamed experts (--ram-budget, --expert-policy, --io-threads). */
export function streamingOptions(o: KernelOptionValues): { ramBudget?: number; expertPolicy?: 'lru' | 'lfu'; ioThreads?: number } {
  return {
    ...(o.ramBudget === undefined ? {} : { ramBudget: o.ramBudget }),
    ...(o.expertPolicy === undefined ? {} : { expertPolicy: o.expertPolicy }),
    ...(o.ioThreads === undefined ? {} : { ioThreads: o.ioThreads }),
  };
}

/** --cpu-affinity alone: one physical core per thread; with a value: a CPU list like 0-7,16. */
function cpuAffinityOption(v: boolean | string): boolean | number[] {
  if (typeof v === 'boolean') return v;
  const cpus = parseCpuList(v);
  if (!cpus) throw new UsageError(`--cpu-affinity: expected a CPU list like 0-7,16, got '${v}'`);
  return cpus;
}

export interface KVOptionValues {
  kvType?: 'f32' | 'f16' | 'q8_0';
}

/** --kv-type (llama.cpp's -ctk/-ctv for both): the KV cache's element type; default by the numerics. */
export function addKVOption(cmd: Command): Command {
  return cmd.addOption(new Option('--kv-type <type>', 'KV cache type: f32, f16 (half the memory; default with --kernels fast), q8_0 (about a quarter); default f32 with exact numerics')
    .choices(['f32', 'f16', 'q8_0']));
}

/** Options for createKernels from the command line. */
export function kernelOptions(o: KernelOptionValues): import('../kernels/index.js').CreateKernelsOptions {
  const backend = o.kernels === 'reference' ? 'reference' : o.backend ?? 'auto';
  return {
    kernels: backend,
    mode: o.kernels === 'fast' ? 'fast' : 'exact',
    ...(o.threads === undefined ? {} : { threads: o.threads }),
    ...(o.cpuAffinity === undefined ? {} : { cpuAffinity: cpuAffinityOption(o.cpuAffinity) }),
    ...(o.mlock ? { mlock: true } : {}),
    ...(o.mmap === undefined ? {} : { mmap: o.mmap }),
  };
}

/** The kernels the options ask for (the caller closes them with closeKernels). */
export async function kernelsFromOptions(o: KernelOptionValues): Promise<import('../kernels/types.js').Kernels> {
  const { createKernels } = await import('../kernels/index.js');
  return createKernels(kernelOptions(o));
}

export interface StageTlsOptionValues {
  stageTlsCert?: string;
  stageTlsKey?: string;
  stageTlsCa?: string;
}

/** --stage-tls-cert / --stage-tls-key / --stage-tls-ca: mutual TLS between pipeline stages (src/api/pipeline/tls.ts). */
export function addStageTlsOptions(cmd: Command, prefix: string): Command {
  return cmd
    .option('--stage-tls-cert <file>', `${prefix}mutual TLS between stages: this machine's certificate (PEM; with --stage-tls-key and --stage-tls-ca)`)
    .option('--stage-tls-key <file>', `${prefix}the private key of --stage-tls-cert (PEM)`)
    .option('--stage-tls-ca <file>', `${prefix}the CA (PEM) every stage's certificate must be signed by; peers without one are refused`);
}

/** Whether any of the three was given. */
export function hasStageTls(o: StageTlsOptionValues): boolean {
  return o.stageTlsCert !== undefined || o.stageTlsKey !== undefined || o.stageTlsCa !== undefined;
}

/** The three files read and checked now, at start-up (null when none is given); a UsageError names the flag and the file. */
export async function stageTlsFromOptions(o: StageTlsOptionValues): Promise<import('../api/pipeline/tls.js').StageTls | null> {
  const { readStageTls } = await import('../api/pipeline/tls.js');
  try {
    return readStageTls({ cert: o.stageTlsCert, key: o.stageTlsKey, ca: o.stageTlsCa });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
