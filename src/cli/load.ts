/**
 * Loading a model for `generate` and `serve`: the kernels the options ask for, one line saying whether
 * the model fits in memory (before anything is read), a progress bar while it loads, one line when done.
 * Options that will work badly get a one-line warning (not an error): a context longer than the model
 * was trained on, more threads than CPUs. `serve` loads the model in a worker thread (startForCli).
 */
import os from 'node:os';
import type { Grok, LoadModelOptions, TextModel } from '../api/index.js';
import type { ModelLoading, WorkerGrok, WorkerModelOptions } from '../api/worker/client.js';
import type { MemoryPlan } from '../model/memory.js';
import { kernelOptions, streamingOptions, type KernelOptionValues, type KVOptionValues, type ModelOptionValues } from './options.js';
import { loadingBar, type Bar } from './progress.js';

type CliModelOptions = ModelOptionValues & KernelOptionValues & KVOptionValues;

/** The load options of the command line, with the bar and the lines said while loading. */
function cliLoadOptions<B extends LoadModelOptions>(o: CliModelOptions, base: B, quiet: boolean): { load: B; bar: Bar; loaded: (grok: TextModel) => void } {
  const bar = loadingBar(quiet ? false : undefined);
  const say = (line: string) => { if (!quiet) process.stderr.write(`grok: ${line}\n`); };
  const warn = (line: string) => process.stderr.write(`grok: warning: ${line}\n`);
  const cpus = os.availableParallelism();
  if (o.threads !== undefined && o.threads > cpus) {
    warn(`--threads ${o.threads} is more than the ${cpus} CPUs this process can use: the threads will take turns on them, which is usually slower (the default is one per physical core)`);
  }
  const load: B = {
    ...base,
    kernelOptions: kernelOptions(o),
    ...streamingOptions(o),
    onProgress: (done, total) => bar.update(done, total),
    // A copy that cannot fit is refused with this message as the error: not said twice.
    onMemoryPlan: (p: MemoryPlan) => { if (p.verdict === 'pages' || (p.verdict === 'fits' && p.modelBytes > 2 ** 30)) say(p.message); },
    onConfig: (c) => {
      const ctx = base.contextLength;
      if (ctx !== undefined && ctx > c.contextLength) {
        warn(`--ctx-size ${ctx} is more than the ${c.contextLength} tokens this model was trained on: past ${c.contextLength} its positions are ones it has never seen, and its output degrades`);
      }
    },
    ...(o.tokenizer ? { tokenizer: o.tokenizer } : {}),
    ...(o.config ? { configPath: o.config } : {}),
    ...(o.kvType ? { kvType: o.kvType } : {}),
  };
  return {
    load, bar,
    loaded: (grok) => {
      for (const n of grok.notes) say(`note: ${n}`);
      say(`loaded ${grok.path} in ${(grok.loadMs / 1000).toFixed(2)} s (${grok.backend})`);
    },
  };
}

export async function loadForCli(o: CliModelOptions, base: LoadModelOptions, opts: { quiet?: boolean } = {}): Promise<Grok> {
  const { loadModel } = await import('../api/index.js');
  const { load, bar, loaded } = cliLoadOptions(o, base, opts.quiet ?? false);
  let grok: Grok;
  try {
    grok = await loadModel(o.model, load); // loadModel creates the kernels and its close() stops them
  } finally {
    bar.stop();
  }
  loaded(grok);
  return grok;
}

/** loadForCli with the model in a worker thread: returns at once (a bad path or tokenizer throws now). */
export async function startForCli(o: CliModelOptions, base: WorkerModelOptions): Promise<ModelLoading> {
  const { startModelWorker } = await import('../api/worker/client.js');
  const { load, bar, loaded } = cliLoadOptions(o, base, false);
  let loading: ModelLoading;
  try {
    loading = startModelWorker(o.model, load);
  } catch (e) {
    bar.stop();
    throw e;
  }
  const done = loading.loaded.then((grok: WorkerGrok) => { bar.stop(); loaded(grok); return grok; }, (e: unknown) => { bar.stop(); throw e; });
  return { path: loading.path, loaded: done, stop: loading.stop };
}
