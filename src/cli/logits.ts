/**
 * `grok logits --model <model> --tokens 5,17,300 [--out logits.f32] [--top N] [--json]`: one exact forward
 * pass over the ids. Writes float32 little-endian logits [tokens, vocab] (the fixtures' layout) and/or
 * prints the top tokens per position.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { closeKernels } from '../kernels/index.js';
import { loadModel } from '../model/loader.js';
import { UsageError, wrapParse } from './errors.js';
import { kernelsFromOption } from './kernels-option.js';
import { parseIds } from './token-ids.js';

const USAGE = 'usage: grok logits --model <model> --tokens 5,17,300 [--out logits.f32] [--top N] [--json] [--config config.json] [--kernels reference|exact|fast] [--threads N]';

export async function runLogits(argv: string[]): Promise<number> {
  const { values } = wrapParse(() => parseArgs({
    args: argv,
    options: {
      model: { type: 'string', short: 'm' }, tokens: { type: 'string', short: 't' }, out: { type: 'string', short: 'o' },
      top: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' },
      kernels: { type: 'string' }, threads: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  }));
  if (values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  if (!values.model) throw new UsageError(`--model is required\n${USAGE}`);
  if (!values.tokens) throw new UsageError(`--tokens is required\n${USAGE}`);
  const ids = parseIds(values.tokens, '--tokens');
  const top = values.top === undefined ? (values.out ? 0 : 5) : Number(values.top);
  if (!Number.isInteger(top) || top < 0) throw new UsageError(`--top must be a non-negative integer, got '${values.top}'`);
  const kernels = await kernelsFromOption(values.kernels ?? 'exact', values.threads);
  try {
    const { model } = await loadModel(values.model, { kernels, configPath: values.config });
    const V = model.config.vocabSize;
    for (const id of ids) if (id >= V) throw new UsageError(`--tokens: id ${id} is outside the vocabulary (0…${V - 1})`);
    const logits = model.forward([{ tokens: ids, cache: model.newCache(Math.max(ids.length, 1)) }]);
    if (values.out) fs.writeFileSync(values.out, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    if (top > 0 || values.json) {
      const k = Math.min(top || 5, V);
      const positions = ids.map((id, t) => {
        const row = logits.subarray(t * V, (t + 1) * V);
        const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
        return { position: t, token: id, top: order.map((i) => ({ id: i, logit: row[i]! })) };
      });
      if (values.json) process.stdout.write(`${JSON.stringify({ tokens: ids, vocab: V, positions, out: values.out ?? null })}\n`);
      else for (const p of positions) process.stdout.write(`${String(p.position).padStart(4)} ${String(p.token).padStart(7)} → ${p.top.map((e) => `${e.id}(${e.logit.toFixed(4)})`).join(' ')}\n`);
    }
    return 0;
  } finally {
    closeKernels(kernels);
  }
}
