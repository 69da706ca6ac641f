/**
 * `grok logits [-m model] --tokens 5,17,300 [--out logits.f32] [--top N] [--json]`: one exact forward pass
 * over the ids. Writes float32 little-endian logits [tokens, vocab] (the fixtures' layout) and/or prints
 * the top tokens per position.
 */
import fs from 'node:fs';
import { Command } from 'commander';
import { UsageError } from './errors.js';
import { addKernelOptions, int, kernelsFromOptions, parseIds, streamingOptions, type KernelOptionValues } from './options.js';

interface LogitsOptions extends KernelOptionValues { model?: string; tokens: string; out?: string; top?: number; json?: boolean; config?: string }

export function logitsCommand(): Command {
  const c = new Command('logits')
    .summary('one exact forward pass over token ids; print top tokens / write float32 logits')
    .option('-m, --model <path>', 'model (default: the embedded model)')
    .requiredOption('--tokens <ids>', 'token ids: 5,17,300')
    .option('-o, --out <file>', 'write the logits, float32 little-endian [tokens, vocab]')
    .option('--top <n>', 'print the n best tokens per position (default 5; 0 with --out)', int(0))
    .option('--json', 'print JSON')
    .option('--config <path>', 'config.json to use instead of the one found beside the model');
  return addKernelOptions(c, 'exact').action(async (o: LogitsOptions) => {
    const ids = parseIds(o.tokens, '--tokens');
    const top = o.top ?? (o.out ? 0 : 5);
    const { loadModel } = await import('../model/loader.js');
    const { closeKernels } = await import('../kernels/index.js');
    const { defaultModelPath } = await import('../api/index.js');
    const { resolveModelPath } = await import('../hub/cache.js');
    const kernels = await kernelsFromOptions(o);
    try {
      const { model, binding } = await loadModel(o.model === undefined ? defaultModelPath() : resolveModelPath(o.model), { kernels, ...streamingOptions(o), ...(o.config ? { configPath: o.config } : {}) });
      for (const n of binding.notes ?? []) process.stderr.write(`grok: note: ${n}\n`);
      const V = model.config.vocabSize;
      for (const id of ids) if (id >= V) throw new UsageError(`--tokens: id ${id} is outside the vocabulary (0…${V - 1})`);
      const logits = model.forward([{ tokens: ids, cache: model.newCache(Math.max(ids.length, 1)) }]);
      if (o.out) {
        fs.writeFileSync(o.out, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
        if (!o.json) process.stderr.write(`grok: wrote ${ids.length} × ${V} float32 logits (${logits.byteLength} bytes) to ${o.out}\n`);
      }
      if (top > 0 || o.json) {
        const k = Math.min(top || 5, V);
        const positions = ids.map((id, t) => {
          const row = logits.subarray(t * V, (t + 1) * V);
          const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
          return { position: t, token: id, top: order.map((i) => ({ id: i, logit: row[i]! })) };
        });
        if (o.json) process.stdout.write(`${JSON.stringify({ tokens: ids, vocab: V, positions, out: o.out ?? null })}\n`);
        else for (const p of positions) process.stdout.write(`${String(p.position).padStart(4)} ${String(p.token).padStart(7)} → ${p.top.map((e) => `${e.id}(${e.logit.toFixed(4)})`).join(' ')}\n`);
      }
    } finally {
      closeKernels(kernels);
    }
  });
}
