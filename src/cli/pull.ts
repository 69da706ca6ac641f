/**
 * `grok pull REPO [FILES…] [--quant Q] [--revision R] [--dir D] [--token T] [--connections N]`: download
 * a Hugging Face repository into the hub cache (src/hub/pull.ts). stdout gets the snapshot folder; stderr
 * what is cached and what will be fetched, a progress bar (MB/s, ETA) on a terminal, a line every 30 s
 * elsewhere, and how to use the result. Ctrl-C keeps the partial files, and the same command resumes.
 */
import { Command } from 'commander';
import type { PullProgress } from '../hub/index.js';
import { UsageError } from './errors.js';
import { int } from './options.js';
import { progressBar } from './progress.js';

interface PullCliOptions {
  quant?: string;
  revision: string;
  dir?: string;
  token?: string;
  connections: number;
  offline?: boolean;
  progress?: boolean;
}

export function pullCommand(): Command {
  return new Command('pull')
    .summary('download a model from the Hugging Face Hub into its cache (resumable, verified)')
    .description('Download a Hugging Face repository, or some of its files, into the Hugging Face cache (~/.cache/huggingface/hub; the layout huggingface-cli uses, so files are shared with it). Resumes interrupted downloads, checks every file\'s hash, fetches big files over several connections. Afterwards --model REPO finds it.')
    .argument('<repo>', 'the repository: org/name, e.g. xai-org/grok-1')
    .argument('[files...]', 'only these files: paths, folders or globs in the repository (e.g. ckpt-0 tokenizer.model, \'*.json\')')
    .option('-q, --quant <quant>', 'only the GGUF files of this quant, e.g. Q4_K_M, Q8_0, IQ2_XS (case-insensitive; Q4_K picks the one Q4_K_* there is)')
    .option('-r, --revision <rev>', 'branch, tag or commit', 'main')
    .option('--dir <dir>', 'the cache folder to use (default: $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)')
    .option('--token <token>', 'Hugging Face access token for gated or private repositories (default: $HF_TOKEN)')
    .option('--connections <n>', 'downloads at once: a big file is split into up to n ranges', int(1, 64), 4)
    .option('--offline', 'use the cache only, no network (as HF_HUB_OFFLINE=1)')
    .option('--progress', 'show a progress bar even when stderr is not a terminal')
    .addHelpText('after', `
Examples:
  grok pull xai-org/grok-1                       # ckpt-0 and tokenizer.model, ≈ 318 GB
  grok pull Arki05/Grok-1-GGUF --quant Q4_K      # that quant's split files
  grok pull xai-org/grok-1 tokenizer.model       # one file
  grok generate --model xai-org/grok-1 "The answer to life"

Environment: HF_TOKEN (token), HF_ENDPOINT (a mirror instead of https://huggingface.co), HF_HUB_CACHE or
HF_HOME (cache location), HF_HUB_OFFLINE=1 (cache only).`)
    .action(async (repo: string, files: string[], o: PullCliOptions) => runPull(repo, files, o));
}

async function runPull(repoArg: string, files: string[], o: PullCliOptions): Promise<void> {
  const { pull, fmtBytes, parseRepoId, quantOf } = await import('../hub/index.js');
  let repo: string;
  try {
    repo = parseRepoId(repoArg);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const say = (line: string) => process.stderr.write(`grok: ${line}\n`);
  const show = o.progress || process.stderr.isTTY === true;
  const bar = progressBar('pull |{bar}| {percentage}% | {done}/{all} | {rate} MB/s | ETA {left} | {files} files', { show });
  const t0 = performance.now();
  const samples: { t: number; received: number }[] = [];
  let rate = '-';
  let lastLine = t0;
  const onProgress = (p: PullProgress) => {
    const t = performance.now();
    if (!samples.length || t - samples[samples.length - 1]!.t >= 1000) {
      samples.push({ t, received: p.receivedBytes });
      if (samples.length > 10) samples.shift();
      const first = samples[0]!;
      if (t > first.t) rate = ((p.receivedBytes - first.received) / ((t - first.t) * 1e3)).toFixed(1);
    }
    // the ETA from the recent rate (cli-progress's own is from the bar's start, resumed bytes included)
    const left = Number(rate) > 0 ? (p.totalBytes - p.doneBytes) / (Number(rate) * 1e6) : NaN;
    const eta = Number.isFinite(left) ? clock(left) : '-';
    if (show) {
      bar.update(p.doneBytes, p.totalBytes, { done: fmtBytes(p.doneBytes), all: fmtBytes(p.totalBytes), rate, left: eta, files: `${p.filesDone}/${p.filesTotal}` });
    } else if (t - lastLine >= 30_000) {
      lastLine = t;
      say(`${fmtBytes(p.doneBytes)} of ${fmtBytes(p.totalBytes)} (${(100 * p.doneBytes / Math.max(1, p.totalBytes)).toFixed(1)} %), ${rate} MB/s, ETA ${eta}, ${p.filesDone}/${p.filesTotal} files${p.phase === 'verify' ? ', checking a file\'s hash' : ''}`);
    }
  };

  const ctl = new AbortController();
  const onSignal = () => ctl.abort(new Error('interrupted: the partial download is kept in the cache; run the same command again to resume'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result;
  try {
    result = await pull({
      repo,
      ...(files.length ? { files } : {}),
      ...(o.quant ? { quant: o.quant } : {}),
      revision: o.revision,
      ...(o.dir ? { cacheDir: o.dir } : {}),
      ...(o.token ? { token: o.token } : {}),
      ...(o.offline ? { offline: true } : {}),
      connections: o.connections,
      signal: ctl.signal,
      onProgress,
      onPlan: (p) => {
        const cached = p.cachedFiles ? `; ${p.cachedFiles} already in the cache` : '';
        const resumed = p.resumedBytes ? ` (resuming: ${fmtBytes(p.resumedBytes)} already there)` : '';
        say(`${p.repo} at ${o.revision} (commit ${p.commit.slice(0, 10)}): ${p.files} file${p.files === 1 ? '' : 's'}, ${fmtBytes(p.totalBytes)}${cached}; ${p.fetchBytes ? `${fmtBytes(p.fetchBytes)} to fetch${resumed}` : 'nothing to fetch'}`);
      },
      onRetry: (what, reason, ms) => { bar.stop(); say(`${what}: ${reason}; retrying in ${(ms / 1000).toFixed(1)} s`); },
    });
  } finally {
    bar.stop();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  const s = (performance.now() - t0) / 1000;
  const fetched = result.receivedBytes ? `; fetched ${fmtBytes(result.receivedBytes)} in ${clock(s)} (${(result.receivedBytes / s / 1e6).toFixed(1)} MB/s)` : '';
  say(`${result.files.length} file${result.files.length === 1 ? '' : 's'}, ${fmtBytes(result.totalBytes)}, in ${result.snapshot}${fetched}`);
  // how to use it: the repo id when the default cache holds it, else the path
  const gguf = result.repoFiles.find((f) => f.toLowerCase().endsWith('.gguf'));
  const model = o.dir ? (gguf ? result.files[result.repoFiles.indexOf(gguf)]! : result.snapshot) : `${repo}${gguf && o.quant ? `:${quantOf(gguf)}` : ''}`;
  if (gguf || result.repoFiles.some((f) => /(^|\/)ckpt-0\/|\.safetensors$/.test(f))) say(`run it with: grok generate --model ${model.includes(' ') ? JSON.stringify(model) : model} "your prompt"`);
  process.stdout.write(`${result.snapshot}\n`);
}

function clock(seconds: number): string {
  const t = Math.round(seconds);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}
