/**
 * `grok serve [options]`: the OpenAI-compatible HTTP server and web page (src/api/server.ts). Listens on
 * 127.0.0.1 unless told otherwise; SIGINT / SIGTERM stop accepting, let running requests finish (up to
 * --grace seconds), then exit.
 *
 * The model is loaded and run in a worker thread (src/api/worker), so the server answers during loading
 * (/health 200, /ready 503) and during every forward pass. A model that fails to load ends the command with
 * its error (exit 1); a worker that dies later fails the requests in flight (500) and ends it too (exit 1),
 * for the supervisor to restart.
 *
 * With --layers 0:K --next HOST:PORT it leads a pipeline (src/api/pipeline): it holds layers 0:K and the
 * stages behind --next (`grok stage`) the rest; a stage that is down makes requests fail with 503 and
 * /ready 503 (naming it in /health) until the leader has reconnected.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import type { ServerOptions } from '../api/server.js';
import type { WorkerGrok, WorkerModelOptions } from '../api/worker/client.js';
import { UsageError } from './errors.js';
import { startForCli } from './load.js';
import {
  addKernelOptions, addKVOption, addModelOptions, addStageTlsOptions, hasStageTls, int, parseSize, stageTlsFromOptions,
  type KernelOptionValues, type KVOptionValues, type ModelOptionValues, type StageTlsOptionValues,
} from './options.js';

interface ServeOptions extends ModelOptionValues, KernelOptionValues, KVOptionValues, StageTlsOptionValues {
  host: string;
  port: number;
  slots: number;
  parallel?: number;
  maxQueue: number;
  apiKey?: string;
  modelId?: string;
  chatTemplate?: string;
  maxBody: number;
  prefillChunk: number;
  maxStepMs?: number;
  cacheRam?: number;
  ctxSize?: number;
  grace: number;
  requestTimeout?: number;
  headersTimeout?: number;
  idleTimeout?: number;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  maxPromptRouting?: number;
  contextShift?: boolean;
  slotSavePath?: string;
  strictModel?: boolean;
  metrics?: boolean;
  cors?: string;
  logFormat: 'text' | 'json';
  quiet?: boolean;
  layers?: string;
  next?: string;
  stageToken?: string;
  stageTimeout?: number;
}

export function serveCommand(): Command {
  const c = new Command('serve')
    .summary('OpenAI-compatible HTTP server and web page (completions, chat, streaming, routing, /metrics)')
    .description('Serve one model over HTTP: the OpenAI API under /v1, a web page at /, /health (alive), /ready (model loaded), and optionally /metrics. The model runs in a worker thread.');
  addModelOptions(c)
    .option('--host <host>', 'address to listen on (127.0.0.1: this machine only)', '127.0.0.1')
    .option('-p, --port <n>', 'port (0 = any free port)', int(0, 65535), 8080)
    .option('--slots <n>', 'sequences decoded together', int(1, 1024), 4)
    .addOption(new Option('--parallel <n>', 'same as --slots (llama-server)').argParser(int(1, 1024)).hideHelp())
    .option('--max-queue <n>', 'requests allowed to wait for a slot; beyond that 429 (0: no waiting, free slots still serve)', int(0), 64)
    .option('--api-key <key>', 'require "Authorization: Bearer KEY" on every route but /health, /ready and the page (or set GROK_API_KEY)')
    .option('--model-id <name>', 'the model name reported to clients (default: the model file or folder name)')
    .option('--strict-model', 'answer 404 to a "model" other than the served id (default: any name is served)')
    .option('--chat-template <file>', 'JSON {system, user, assistant, generation, stop} for /v1/chat/completions')
    .option('-c, --ctx-size <n>', 'context length in tokens (default: the model\'s)', int(1))
    .option('--max-body <bytes>', 'largest request body', int(1024), 1 << 20)
    .option('--prefill-chunk <n>', 'prompt tokens fed per step while prefilling', int(1), 256)
    .option('--max-step-ms <ms>', 'latency target of one step: prefill chunks are sized from the measured time per token so that a step (others\' next tokens and prompt chunks together) takes about this long, at most --prefill-chunk tokens (default: always --prefill-chunk)', int(1))
    .option('--cache-ram <size>', 'prefix cache: memory for the keys and values of earlier prompts and answers, reused by prompts that start the same way (e.g. 4G; 0: off; default 2 GiB, at most every slot\'s full context, 256 MiB with streamed experts)', (v: string) => (/^\s*0+\s*$/.test(v) ? 0 : parseSize(v)))
    .option('--request-timeout <s>', 'a client must send its whole request within s seconds (default 30)', int(1))
    .option('--headers-timeout <s>', '… and its headers within s seconds of connecting (default 10)', int(1))
    .option('--idle-timeout <s>', 'close a connection idle between requests after s seconds (default 5)', int(1))
    .option('--max-connections <n>', 'open connections at most; more are closed on arrival (default 256)', int(1))
    .option('--max-connections-per-ip <n>', 'open connections one client address (IPv6: one /64) may hold; more are closed on arrival (default a quarter of --max-connections: 64; behind a reverse proxy, raise it to --max-connections)', int(1))
    .option('--max-prompt-routing <n>', 'return_routed_experts sends the routing of prompts up to n tokens (default 4096); longer ones only with return_prompt_routed_experts: true', int(0))
    .option('--context-shift', 'a chat longer than the context loses its oldest turns (never the system prompt or the last user message) instead of a 400; the response says how many (truncated_messages); a request\'s truncation: "disabled" / "auto" overrides it')
    .option('--slot-save-path <dir>', 'allow POST /slots/save and /slots/restore: the prefix cache\'s keys and values of a prompt saved to files in DIR and read back (a long system prompt survives a restart)')
    .option('--metrics', 'serve GET /metrics (Prometheus text; behind --api-key when set)')
    .option('--cors <origin>', 'let web pages from ORIGIN (\'*\' = any) call the API')
    .addOption(new Option('--log-format <format>', 'request log on stderr').choices(['text', 'json']).default('text'))
    .option('--quiet', 'no request log')
    .option('--grace <s>', 'on SIGINT/SIGTERM, time running requests get to finish', int(0), 10)
    .option('--layers <K:L>', 'pipeline leader: hold only layers 0:K (with --next; see README: Running Grok-1 on several machines)')
    .option('--next <host:port>', 'pipeline leader: the stage holding layers K on (`grok stage --listen`)')
    .option('--stage-token <secret>', 'pipeline: the shared secret the stages check (or set GROK_STAGE_TOKEN)')
    .option('--stage-timeout <s>', 'pipeline: a step the stages have not answered within s seconds fails (a stalled stage; default 300)', int(1));
  addStageTlsOptions(c, 'pipeline: ');
  addKernelOptions(c, 'fast');
  addKVOption(c);
  return c.addHelpText('after', `
Examples:
  grok serve                                   # the embedded model on http://127.0.0.1:8080 (open it in a browser)
  grok serve -m grok-1-q8_0.gguf --slots 4 --api-key "$KEY" --metrics
  curl localhost:8080/v1/completions -H 'content-type: application/json' -d '{"model":"grok","prompt":"Hi","max_tokens":16}'`)
    .action(async (o: ServeOptions) => runServe(o));
}

async function runServe(o: ServeOptions): Promise<void> {
  const { createServer, isLoopbackHost, reachableUrls, SERVER_DEFAULTS } = await import('../api/server.js');
  const { loadChatTemplate } = await import('../api/chat.js');
  const slots = o.parallel ?? o.slots;
  const apiKey = o.apiKey ?? process.env.GROK_API_KEY;
  if (apiKey !== undefined && apiKey.length === 0) throw new UsageError('--api-key must not be empty');
  if (o.cors !== undefined && o.cors !== '*' && !/^https?:\/\/[^/\s]+$/.test(o.cors)) {
    throw new UsageError(`--cors must be an origin like http://localhost:3000 (scheme, host, port; no path) or '*', got '${o.cors}'`);
  }
  const chatTemplate = o.chatTemplate ? loadChatTemplate(o.chatTemplate) : undefined;
  const slotSavePath = o.slotSavePath === undefined ? undefined : checkSlotFolder(o.slotSavePath);
  const pipeline = await pipelineOptions(o);
  const loading = await startForCli(o, { slots, maxQueue: o.maxQueue, prefillChunk: o.prefillChunk, ...(o.maxStepMs === undefined ? {} : { maxStepMs: o.maxStepMs }), prefixCacheBytes: o.cacheRam ?? 'auto', ...(o.ctxSize === undefined ? {} : { contextLength: o.ctxSize }), ...pipeline });

  const s = (v: number | undefined, d: number) => (v === undefined ? d : v * 1000);
  const serverOpts: ServerOptions = {
    bodyLimit: o.maxBody,
    requestTimeoutMs: s(o.requestTimeout, SERVER_DEFAULTS.requestTimeoutMs),
    headersTimeoutMs: s(o.headersTimeout, SERVER_DEFAULTS.headersTimeoutMs),
    idleTimeoutMs: s(o.idleTimeout, SERVER_DEFAULTS.idleTimeoutMs),
    maxConnections: o.maxConnections ?? SERVER_DEFAULTS.maxConnections,
    ...(o.maxConnectionsPerIp !== undefined ? { maxConnectionsPerIp: o.maxConnectionsPerIp } : {}),
    ...(o.maxPromptRouting !== undefined ? { maxPromptRoutingTokens: o.maxPromptRouting } : {}),
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(o.modelId ? { modelId: o.modelId } : {}),
    ...(o.strictModel ? { strictModel: true } : {}),
    ...(o.metrics ? { metrics: true } : {}),
    ...(o.contextShift ? { contextShift: true } : {}),
    ...(slotSavePath !== undefined ? { slotSavePath } : {}),
    ...(o.cors !== undefined ? { cors: o.cors } : {}),
    ...(o.quiet ? {} : { log: { format: o.logFormat } }),
    ...(chatTemplate ? { chatTemplate } : {}),
  };
  const server = createServer(loading, serverOpts);
  if (!isLoopbackHost(o.host) && apiKey === undefined) {
    process.stderr.write(`grok: warning: listening on ${o.host} without --api-key: anyone who can reach this machine can use the model\n`);
  }
  let url: string;
  try {
    url = await server.listen({ host: o.host, port: o.port });
  } catch (e) {
    await loading.stop();
    throw e;
  }
  const reach = reachableUrls(url).filter((u) => u !== url);
  const at = `${url}${reach.length ? ` (${reach.join(', ')})` : ''}`;
  process.stderr.write(`grok: listening on ${at} while the model loads (/health answers; /ready is 503 until it is loaded)\n`);
  let grok: WorkerGrok;
  try {
    grok = await loading.loaded;
  } catch (e) {
    await server.close(0);
    throw e;
  }
  if (!grok.tokenizer) process.stderr.write('grok: warning: this model has no tokenizer; only token-id prompts to /v1/completions will work (pass --tokenizer)\n');
  process.stderr.write(`grok: serving ${grok.path} as '${server.modelId}' on ${at} (${slots} slots, queue ${o.maxQueue}, prefix cache ${cacheText(grok)}${apiKey ? ', API key required' : ''}; loaded in ${(grok.loadMs / 1000).toFixed(2)} s)\n`);

  const graceMs = o.grace * 1000;
  const crashed = await new Promise<Error | null>((resolve) => {
    const onInt = (): void => stop('SIGINT');
    const onTerm = (): void => stop('SIGTERM');
    const stop = (sig: string): void => {
      process.stderr.write(`grok: ${sig}: shutting down (running requests get ${o.grace} s)\n`);
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
      // A second signal ends at once.
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      void server.close(graceMs).then(() => resolve(null), () => resolve(null));
    };
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
    // The requests in flight have failed with the worker's error; the server goes with it.
    void grok.exited.then((x) => {
      if (x.expected) return;
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
      void server.close(1000).then(() => resolve(x.error ?? null), () => resolve(x.error ?? null));
    });
  });
  if (crashed) throw crashed;
  await grok.close();
}

/** --layers / --next / --stage-token / --stage-timeout / --stage-tls-*: the leader of a pipeline, or nothing. */
async function pipelineOptions(o: ServeOptions): Promise<{ layers?: { from: number; to: number }; pipeline?: NonNullable<WorkerModelOptions['pipeline']> }> {
  if (o.layers === undefined && o.next === undefined) {
    if (o.stageToken !== undefined || o.stageTimeout !== undefined || hasStageTls(o)) throw new UsageError('--stage-token, --stage-timeout and --stage-tls-* belong to a pipeline leader: add --layers 0:K --next HOST:PORT');
    return {};
  }
  if (o.layers === undefined || o.next === undefined) throw new UsageError('a pipeline leader needs both --layers 0:K and --next HOST:PORT (the stage holding layers K on)');
  const { parseAddress, parseLayers } = await import('../api/pipeline/protocol.js');
  let layers: { from: number; to: number }, next: string;
  try {
    layers = parseLayers(o.layers);
    next = parseAddress(o.next, '--next');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (layers.from !== 0) throw new UsageError(`--layers: the leader holds the embedding, so its layers start at 0 (0:K), got ${o.layers}; the others run \`grok stage\``);
  const token = o.stageToken ?? process.env.GROK_STAGE_TOKEN ?? '';
  const tls = await stageTlsFromOptions(o);
  return { layers, pipeline: { next, token, ...(tls ? { tls } : {}), ...(o.stageTimeout ? { stepTimeoutMs: o.stageTimeout * 1000 } : {}) } };
}

function cacheText(grok: { engine: { prefixCache: { stats(): { budgetBytes: number } } | null } }): string {
  const c = grok.engine.prefixCache;
  return c ? `${(c.stats().budgetBytes / 2 ** 20).toFixed(0)} MiB` : 'off';
}

/** --slot-save-path: an existing folder this process can write to (said now, not at the first save). */
function checkSlotFolder(dir: string): string {
  const abs = path.resolve(dir);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new UsageError(`--slot-save-path ${dir}: no such folder (create it first)`);
  }
  if (!st.isDirectory()) throw new UsageError(`--slot-save-path ${dir}: not a folder`);
  try {
    fs.accessSync(abs, fs.constants.W_OK);
  } catch {
    throw new UsageError(`--slot-save-path ${dir}: this process cannot write there`);
  }
  return abs;
}
