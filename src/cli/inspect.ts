/**
 * `grok inspect [model]`: the configuration and a table of the file's tensors.
 * `grok info`: the runtime — kernel backend, CPU features, threads, Node version.
 */
import os from 'node:os';
import { Command } from 'commander';

export function inspectCommand(): Command {
  return new Command('inspect')
    .summary('print a model\'s config and tensor table')
    .argument('[model]', 'a ckpt-0 directory, .gguf or .safetensors, or a repo id pulled by grok pull (default: the embedded model)')
    .option('--config <path>', 'config.json to use instead of the one found beside the model')
    .option('--json', 'print JSON')
    .action(async (model: string | undefined, o: { config?: string; json?: boolean }) => {
      const { openModel } = await import('../formats/open.js');
      const { isQuantizedRef } = await import('../formats/tensor-ref.js');
      const { bindModel } = await import('../model/map.js');
      const { defaultModelPath } = await import('../api/index.js');
      const { resolveModelPath } = await import('../hub/cache.js');
      const source = openModel(model === undefined ? defaultModelPath() : resolveModelPath(model));
      try {
        const { config } = bindModel(source, o.config);
        const rows = [...source.tensors.values()].map((t) => ({
          name: t.name, shape: t.shape, type: t.type, bytes: t.length + (isQuantizedRef(t) ? t.scales.length : 0),
          ...(isQuantizedRef(t) ? { scales: { shape: t.scales.shape, type: t.scales.type } } : {}),
        }));
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ format: source.format, path: source.path, config, tensors: rows }, null, 1)}\n`);
          return;
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
      } finally {
        source.close();
      }
    });
}

export function infoCommand(): Command {
  return new Command('info')
    .summary('print the runtime: kernel backend, CPU features, threads, Node version')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const { nativeInfo } = await import('../kernels/index.js');
      const { packageVersion } = await import('./version.js');
      const n = nativeInfo();
      const info = {
        version: packageVersion(), node: n.node, napi: n.napi, platform: `${process.platform}-${process.arch}`, cores: os.availableParallelism(),
        backend: n.backend, native: n.available ? `yes (${n.addon})` : `no: ${n.error}`,
        ...(n.isa ? { isa: n.isa } : {}), ...(n.levels ? { levels: n.levels } : {}), ...(n.features ? { features: n.features } : {}),
        ...(n.available && n.error ? { note: n.error } : {}), threads: n.threads,
      };
      if (o.json) { process.stdout.write(`${JSON.stringify(info)}\n`); return; }
      for (const [k, v] of Object.entries(info)) process.stdout.write(`${k.padEnd(10)} ${Array.isArray(v) ? v.join(' ') : String(v)}\n`);
    });
}
