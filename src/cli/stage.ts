/**
 * `grok stage --model M --layers K:L --listen HOST:PORT [--next HOST:PORT] [--stage-token T] [--stage-tls-cert C
 * --stage-tls-key K --stage-tls-ca CA]`: one stage of
 * a model split by layers over several machines (src/api/pipeline). It loads only layers K:L (and the final
 * norm and output head when L is the last), waits for the stage before it (the leader, `grok serve --layers
 * 0:K --next …`, or another stage) and passes its results on to --next. SIGINT / SIGTERM stop it.
 */
import { Command } from 'commander';
import { UsageError } from './errors.js';
import {
  addKernelOptions, addKVOption, addModelOptions, addStageTlsOptions, int, kernelOptions, stageTlsFromOptions, streamingOptions,
  type KernelOptionValues, type KVOptionValues, type ModelOptionValues, type StageTlsOptionValues,
} from './options.js';

interface StageCliOptions extends ModelOptionValues, KernelOptionValues, KVOptionValues, StageTlsOptionValues {
  layers: string;
  listen: string;
  next?: string;
  stageToken?: string;
  stageTimeout?: number;
  ctxSize?: number;
  quiet?: boolean;
}

export function stageCommand(): Command {
  const c = new Command('stage')
    .summary('serve layers K:L of a model to the pipeline stage before it (several machines; see `grok serve --next`)')
    .description('One stage of a model split by layers over several machines: loads only layers K:L, takes the hidden states of the stage before it over gRPC, and passes its own on to --next (or, holding the last layer, answers with logits).');
  addModelOptions(c)
    .requiredOption('--layers <K:L>', 'the layers this stage holds (K to L−1)')
    .requiredOption('--listen <host:port>', 'address the stage before it connects to (port 0: any free port, printed)')
    .option('--next <host:port>', 'the stage holding layers L on (not for the last stage)')
    .option('--stage-token <secret>', 'the shared secret the stage before must present (or set GROK_STAGE_TOKEN)')
    .option('--stage-timeout <s>', 'a step --next has not answered within s seconds fails (default 300)', int(1))
    .option('-c, --ctx-size <n>', 'context length in tokens (default: the model\'s)', int(1))
    .option('--quiet', 'no connection log');
  addStageTlsOptions(c, '');
  addKernelOptions(c, 'fast');
  addKVOption(c);
  return c.addHelpText('after', `
Examples (the 2-layer slice split 1 + 1 on one machine):
  grok stage -m slice.gguf --layers 1:2 --listen 127.0.0.1:7070 --stage-token "$T"
  grok serve -m slice.gguf --layers 0:1 --next 127.0.0.1:7070 --stage-token "$T"
With mutual TLS (README: Encrypting the hops), on 10.0.0.2 with a certificate for IP:10.0.0.2:
  grok stage -m slice.gguf --layers 1:2 --listen 0.0.0.0:7070 --stage-tls-cert m2.crt --stage-tls-key m2.key --stage-tls-ca ca.crt`)
    .action(async (o: StageCliOptions) => runStage(o));
}

async function runStage(o: StageCliOptions): Promise<void> {
  const { parseAddress, parseLayers } = await import('../api/pipeline/protocol.js');
  let layers: { from: number; to: number }, listen: string, next: string | undefined;
  try {
    layers = parseLayers(o.layers);
    listen = parseAddress(o.listen, '--listen');
    next = o.next === undefined ? undefined : parseAddress(o.next, '--next');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (layers.from === 0) throw new UsageError(`--layers ${o.layers}: the stage holding layer 0 is the leader: run \`grok serve --layers ${o.layers} --next …\``);
  const tls = await stageTlsFromOptions(o);
  const { defaultModelPath } = await import('../api/index.js');
  const { resolveModelPath } = await import('../hub/cache.js');
  const { startStage } = await import('../api/pipeline/stage.js');
  const path = o.model === undefined ? defaultModelPath() : resolveModelPath(o.model);
  const say = (line: string): void => { if (!o.quiet) process.stderr.write(`grok: ${line}\n`); };
  let stage;
  try {
    const t0 = performance.now();
    stage = await startStage({
      modelPath: path,
      load: {
        layers, kernelOptions: kernelOptions(o), ...streamingOptions(o), ...(o.config ? { configPath: o.config } : {}), ...(o.kvType ? { kvType: o.kvType } : {}),
        ...(o.ctxSize ? { contextLength: o.ctxSize } : {}),
      },
      // What this stage's share needs against the memory it has (streamed experts when it does not fit).
      onMemoryPlan: (p) => { if (p.verdict !== 'fits' || p.modelBytes > 2 ** 30) say(p.message); },
      listen, ...(next ? { next } : {}), token: o.stageToken ?? process.env.GROK_STAGE_TOKEN ?? '', tls,
      ...(o.stageTimeout ? { stepTimeoutMs: o.stageTimeout * 1000 } : {}), log: say,
    });
    say(`loaded layers ${layers.from}:${layers.to} of ${path} in ${((performance.now() - t0) / 1000).toFixed(2)} s (${stage.backend})`);
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  const token = o.stageToken ?? process.env.GROK_STAGE_TOKEN ?? '';
  // Beyond loopback without TLS: anyone on the network can drive the stage (no token) or read the token and the hidden states.
  if (!tls && !/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):/.test(listen)) {
    process.stderr.write(token
      ? `grok: warning: no --stage-tls-*: the hops to ${stage.address} are not encrypted (the token and the hidden states can be read on the network; see README: Encrypting the hops)\n`
      : `grok: warning: no --stage-token and no --stage-tls-*: anyone who can reach ${stage.address} can drive this stage (set --stage-tls-cert/-key/-ca, or --stage-token / GROK_STAGE_TOKEN, on every stage)\n`);
  }
  // The line a supervisor (or a test) waits for: the address really bound.
  process.stderr.write(`grok: stage layers ${layers.from}:${layers.to} listening on ${stage.address}${next ? `, next ${next}` : ' (last stage)'}\n`);
  const crash = await new Promise<Error | null>((resolve) => {
    const stop = (): void => resolve(null);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    stage.crashed.catch((e: Error) => resolve(e));
  });
  if (crash) {
    process.stderr.write(`grok: ${crash.message}\n`);
    process.exit(1);
  }
  await stage.close();
}
