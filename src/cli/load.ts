/**
 * Loading a model for `generate` and `serve`: the kernels the options ask for, one line saying whether
 * the model fits in memory (before anything is read), a progress bar while it loads, one line when done.
 * Options that will work badly get a one-line warning (not an error): a context longer than the model
 * was trained on, more threads than CPUs.
 */
import os from 'node:os';
import type { Grok, LoadModelOptions } from '../api/index.js';
import type { MemoryPlan } from '../model/memory.js';
import { kernelOptions, streamingOptions, type KernelOptionValues, type KVOptionValues, type ModelOptionValues } from './options.js';
import { loadingBar } from './progress.js';

export async function loadForCli(o: ModelOptionValues & KernelOptionValues & KVOptionValues, base: LoadModelOptions, opts: { quiet?: boolean } = {}): Promise<Grok> {
  const { loadModel } = await import('../api/index.js');
  const bar = loadingBar(opts.quiet ? false : undefined);
  const say = (line: string) => { if (!opts.quiet) process.stderr.write(`grok: ${line}\n`); };
  const warn = (line: string) => process.stderr.write(`grok: warning: ${line}\n`);
  const cpus = os.availableParallelism();
  if (o.threads !== undefined && o.threads > cpus) {
    warn(`--threads ${o.threads} is more than the ${cpus} CPUs this process can use: the threads will take turns on them, which is usually slower (the default is one per physical core)`);
  }
  const load: LoadModelOptions = {
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
  let grok: Grok;
  try {
    grok = await loadModel(o.model, load); // loadModel creates the kernels and its close() stops them
  } finally {
    bar.stop();
  }
  for (const n of grok.notes) say(`note: ${n}`);
  say(`loaded ${grok.path} in ${(grok.loadMs / 1000).toFixed(2)} s (${grok.model.kernels.name})`);
  return grok;
}
