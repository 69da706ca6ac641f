/** `grok inspect <model>`: the configuration and a table of the file's tensors. */
import { parseArgs } from 'node:util';
import { openModel } from '../formats/open.js';
import { isQuantizedRef } from '../formats/tensor-ref.js';
import { bindModel } from '../model/map.js';
import { UsageError, wrapParse } from './errors.js';

const USAGE = 'usage: grok inspect <model> [--config config.json] [--json]';

export async function runInspect(argv: string[]): Promise<number> {
  const { values, positionals } = wrapParse(() => parseArgs({
    args: argv, allowPositionals: true,
    options: { config: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  }));
  if (values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  if (positionals.length !== 1) throw new UsageError(`expected one model path\n${USAGE}`);
  const source = openModel(positionals[0]!);
  try {
    const { config } = bindModel(source, values.config);
    const rows = [...source.tensors.values()].map((t) => ({
      name: t.name, shape: t.shape, type: t.type, bytes: t.length + (isQuantizedRef(t) ? t.scales.length : 0),
      ...(isQuantizedRef(t) ? { scales: { shape: t.scales.shape, type: t.scales.type } } : {}),
    }));
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ format: source.format, path: source.path, config, tensors: rows }, null, 1)}\n`);
      return 0;
    }
    const out: string[] = [`format: ${source.format}`, `path:   ${source.path}`, 'config:'];
    for (const [k, v] of Object.entries(config)) out.push(`  ${k.padEnd(22)} ${v}`);
    const total = rows.reduce((a, r) => a + r.bytes, 0);
    out.push(`tensors: ${rows.length}, ${total.toLocaleString('en-US')} bytes`);
    const nameW = Math.max(4, ...rows.map((r) => r.name.length));
    out.push(`  ${'name'.padEnd(nameW)}  ${'shape'.padEnd(22)} ${'dtype'.padEnd(12)} ${'bytes'.padStart(16)}`);
    for (const r of rows) {
      const type = r.scales ? `${r.type}+${r.scales.type}[${r.scales.shape.join('×')}]` : r.type;
      out.push(`  ${r.name.padEnd(nameW)}  ${`[${r.shape.join(', ')}]`.padEnd(22)} ${type.padEnd(12)} ${r.bytes.toLocaleString('en-US').padStart(16)}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  } finally {
    source.close();
  }
}
