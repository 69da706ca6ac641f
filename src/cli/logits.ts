/**
 * `grok logits [-m model] --tokens 5,17,300 [--out logits.f32] [--top N] [--json]`: one exact forward pass
 * over the ids. Writes float32 little-endian logits [tokens, vocab] (the fixtures' layout) and/or prints
 * the top tokens per position.
 */
import fs from 'node:fs';
import { Command } from 'commander';
import { UsageError } from './errors.js';
import {
  addKernelOptions, addStageTlsOptions, hasStageTls, int, kernelOptions, kernelsFromOptions, parseIds, stageTlsFromOptions, streamingOptions,
  type KernelOptionValues, type StageTlsOptionValues,
} from './options.js';

interface LogitsOptions extends KernelOptionValues, StageTlsOptionValues { model?: string; tokens: string; out?: string; top?: number; json?: boolean; config?: string; layers?: string; next?: string; stageToken?: string }

export function logitsCommand(): Command {
  const c = new Command('logits')
    .summary('one exact forward pass over token ids; print top tokens / write float32 logits')
    .option('-m, --model <path>', 'model (default: the embedded model)')
    .requiredOption('--tokens <ids>', 'token ids: 5,17,300')
    .option('-o, --out <file>', 'write the logits, float32 little-endian [tokens, vocab]')
    .option('--top <n>', 'print the n best tokens per position (default 5; 0 with --out)', int(0))
    .option('--json', 'print JSON')
    .option('--config <path>', 'config.json to use instead of the one found beside the model')
    .option('--layers <K:L>', 'pipeline: compute only layers 0:K here and the rest on the stages from --next')
    .option('--next <host:port>', 'pipeline: the stage holding layers K on (`grok stage`)')
    .option('--stage-token <secret>', 'pipeline: the stages\' shared secret (or set GROK_STAGE_TOKEN)');
  addStageTlsOptions(c, 'pipeline: ');
  return addKernelOptions(c, 'exact').action(async (o: LogitsOptions) => {
    const ids = parseIds(o.tokens, '--tokens');
    if ((o.layers === undefined) !== (o.next === undefined)) throw new UsageError('a pipeline needs both --layers 0:K and --next HOST:PORT');
    const { parseAddress, parseLayers } = await import('../api/pipeline/protocol.js');
    let layers: { from: number; to: number } | undefined, next: string | undefined;
    try {
      if (o.layers !== undefined) layers = parseLayers(o.layers);
      if (o.next !== undefined) next = parseAddress(o.next, '--next');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (layers && layers.from !== 0) throw new UsageError(`--layers: this side embeds the tokens, so its layers start at 0 (0:K), got ${o.layers}`);
    if (!next && (hasStageTls(o) || o.stageToken !== undefined)) throw new UsageError('--stage-token and --stage-tls-* belong to a pipeline: add --layers 0:K --next HOST:PORT');
    const tls = await stageTlsFromOptions(o);
    const top = o.top ?? (o.out ? 0 : 5);
    const { loadModel } = await import('../model/loader.js');
    const { closeKernels } = await import('../kernels/index.js');
    const { defaultModelPath } = await import('../api/index.js');
    const { resolveModelPath } = await import('../hub/cache.js');
    const kernels = await kernelsFromOptions(o);
    try {
      const modelPath = o.model === undefined ? defaultModelPath() : resolveModelPath(o.model);
      const { model, binding } = await loadModel(modelPath, { kernels, ...streamingOptions(o), ...(o.config ? { configPath: o.config } : {}), ...(layers ? { layers } : {}) });
      for (const n of binding.notes ?? []) process.stderr.write(`grok: note: ${n}\n`);
      const V = model.config.vocabSize;
      for (const id of ids) if (id >= V) throw new UsageError(`--tokens: id ${id} is outside the vocabulary (0…${V - 1})`);
      let logits = model.forward([{ tokens: ids, cache: model.newCache(Math.max(ids.length, 1)) }]);
      if (next) {
        // The rest of the layers on the stages behind --next, one step over the same ids.
        const { StageLink } = await import('../api/pipeline/link.js');
        const { bytesF32, f32Bytes, modelIdentity } = await import('../api/pipeline/protocol.js');
        const link = new StageLink({
          next, token: o.stageToken ?? process.env.GROK_STAGE_TOKEN ?? '', tls, model: modelIdentity(modelPath, model.config), from: model.range.to,
          layers: model.config.nLayers, numerics: kernelOptions(o).mode ?? 'exact',
        });
        try {
          await link.ready(10_000, { refusal: true });
          const r = await link.step({ seqs: [1], positions: [0], counts: [ids.length], capacities: [Math.max(ids.length, 1)], tokens: ids, hidden: f32Bytes(logits), lastOnly: false });
          logits = bytesF32(r.logits, 'logits', ids.length * V);
        } finally {
          link.close();
        }
      }
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
