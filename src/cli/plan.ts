/**
 * `grok plan --model M --machines 4x64G`: a layer split of the model over machines of that memory (src/api/
 * pipeline/plan.ts), with the command each machine runs. Reads only the model's tensor index.
 */
import { Command } from 'commander';
import { UsageError } from './errors.js';
import { addModelOptions, parseSize, type ModelOptionValues } from './options.js';

interface PlanOptions extends ModelOptionValues { machines: string; port: number; json?: boolean }

export function planCommand(): Command {
  const c = new Command('plan')
    .summary('split a model\'s layers over several machines of given memory (pipeline stages), with each machine\'s command')
    .description('Print a layer split for N machines: contiguous layer ranges balanced by weight bytes, each within its machine\'s memory less a margin (max(1 GiB, 10 %)) for the KV cache and the runtime.');
  addModelOptions(c)
    .requiredOption('--machines <list>', 'machines and their memory, in order: 4x64G, or 1x128G,3x64G (the first runs grok serve)')
    .option('--port <n>', 'the stages\' port in the printed commands', (v) => Number(v), 7070)
    .option('--json', 'print JSON');
  return c.action(async (o: PlanOptions) => {
    const { layerSizes } = await import('../model/loader.js');
    const { parseMachines, planSplit } = await import('../api/pipeline/plan.js');
    const { defaultModelPath } = await import('../api/index.js');
    const { resolveModelPath } = await import('../hub/cache.js');
    let machines: number[];
    try {
      machines = parseMachines(o.machines, parseSize);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const path = o.model === undefined ? defaultModelPath() : resolveModelPath(o.model);
    const sizes = layerSizes(path, o.config ? { configPath: o.config } : {});
    const L = sizes.layers.length;
    if (machines.length > L) throw new UsageError(`--machines: ${machines.length} machines for ${L} layers: each stage holds at least one layer`);
    const plan = planSplit(sizes, machines);
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
    const total = sizes.layers.reduce((a, b) => a + b, 0) + sizes.embedding + sizes.head;
    if (!plan) throw new Error(`${path} (${gib(total)} of weights) does not fit on ${o.machines}: add machines or memory, or a smaller quantisation`);
    const host = (i: number) => `machine${i}`;
    const cmds = plan.map((p, i) => i === 0
      ? `grok serve -m ${path} --layers ${p.from}:${p.to} --next ${host(1)}:${o.port} --stage-token "$T" --host 0.0.0.0`
      : `grok stage -m ${path} --layers ${p.from}:${p.to} --listen 0.0.0.0:${o.port}${i < plan.length - 1 ? ` --next ${host(i + 1)}:${o.port}` : ''} --stage-token "$T"`);
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ model: path, layers: L, stages: plan.map((p, i) => ({ ...p, command: cmds[i] })) })}\n`);
      return;
    }
    process.stdout.write(`${path}: ${L} layers, ${gib(total)} of weights over ${plan.length} machines\n`);
    plan.forEach((p, i) => {
      process.stdout.write(`  ${host(i).padEnd(9)} layers ${`${p.from}:${p.to}`.padEnd(6)} ${gib(p.bytes).padStart(10)} of ${gib(p.memory)} (budget ${gib(p.budget)})\n      ${cmds[i]}\n`);
    });
  });
}
