/**
 * `grok serve --model <model> [--host 127.0.0.1] [--port 8080] [--slots N] [--api-key KEY] [--max-queue N]`:
 * the OpenAI-compatible HTTP server (src/api/server.ts). Listens on 127.0.0.1 unless told otherwise;
 * SIGINT / SIGTERM stop accepting, let running requests finish (up to --grace seconds), then exit.
 */
import { parseArgs } from 'node:util';
import { loadModel, type LoadModelOptions } from '../api/index.js';
import { createServer, isLoopbackHost, reachableUrls, SERVER_DEFAULTS, type ServerOptions } from '../api/server.js';
import { loadChatTemplate } from '../api/chat.js';
import { UsageError, wrapParse } from './errors.js';
import { kernelsFromOption } from './kernels-option.js';

const USAGE = `usage: grok serve [--model <model>] [options]
  -m, --model PATH          model (ckpt-0 dir, .gguf, .safetensors); default: the embedded model
      --tokenizer PATH      SentencePiece tokenizer.model (default: the GGUF's own, or one beside the checkpoint)
      --host HOST           address to listen on (default 127.0.0.1: this machine only)
  -p, --port N              port (default 8080; 0 = any free port)
      --slots N             sequences decoded together (default 4)
      --max-queue N         requests allowed to wait for a slot; beyond that 429 (default 64)
      --api-key KEY         require "Authorization: Bearer KEY" on /v1/* (or set GROK_API_KEY)
      --model-id NAME       the model name clients send (default: the model file / folder name)
      --chat-template FILE  JSON {system, user, assistant, generation, stop} for /v1/chat/completions
      --max-body BYTES      largest request body (default 1048576)
      --prefill-chunk N     prompt tokens fed per step while prefilling (default 256)
      --grace SECONDS       on SIGINT/SIGTERM, time running requests get to finish (default 10)
      --request-timeout S   a client must send its whole request within S seconds (default 30)
      --headers-timeout S   … and its headers within S seconds of connecting (default 10)
      --idle-timeout S      close a connection idle between requests after S seconds (default 5)
      --max-connections N   open connections at most; more are closed on arrival (default 256)
      --strict-model        answer 404 to a "model" other than the served id (default: any name is served)
      --metrics             serve GET /metrics (Prometheus text; behind --api-key when set)
      --cors ORIGIN         let web pages from ORIGIN ('*' = any) call the API (default: none)
      --log-format F        request log as text (default) or json, on stderr
      --quiet               no request log
      --kernels NAME        kernel implementation; --threads N
      --config PATH         config.json to use instead of the one found beside the model`;

function intOpt(name: string, v: string | undefined, min: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return Number(v);
}

export async function runServe(argv: string[]): Promise<number> {
  const { values, positionals } = wrapParse(() => parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string', short: 'm' }, tokenizer: { type: 'string' }, host: { type: 'string' }, port: { type: 'string', short: 'p' },
      slots: { type: 'string' }, 'max-queue': { type: 'string' }, 'api-key': { type: 'string' }, 'model-id': { type: 'string' },
      'chat-template': { type: 'string' }, 'max-body': { type: 'string' }, 'prefill-chunk': { type: 'string' }, grace: { type: 'string' },
      kernels: { type: 'string' }, threads: { type: 'string' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      'strict-model': { type: 'boolean' }, metrics: { type: 'boolean' }, cors: { type: 'string' }, 'log-format': { type: 'string' }, quiet: { type: 'boolean' },
      'request-timeout': { type: 'string' }, 'headers-timeout': { type: 'string' }, 'idle-timeout': { type: 'string' }, 'max-connections': { type: 'string' },
    },
  }));
  if (values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'\n${USAGE}`);
  const port = intOpt('port', values.port, 0, 8080);
  if (port > 65535) throw new UsageError(`--port must be ≤ 65535, got ${port}`);
  const slots = intOpt('slots', values.slots, 1, 4);
  const maxQueue = intOpt('max-queue', values['max-queue'], 0, 64);
  const bodyLimit = intOpt('max-body', values['max-body'], 1024, 1 << 20);
  const prefillChunk = intOpt('prefill-chunk', values['prefill-chunk'], 1, 256);
  const graceMs = intOpt('grace', values.grace, 0, 10) * 1000;
  const apiKey = values['api-key'] ?? process.env.GROK_API_KEY;
  if (apiKey !== undefined && apiKey.length === 0) throw new UsageError('--api-key must not be empty');
  const logFormat = values['log-format'] ?? 'text';
  if (logFormat !== 'text' && logFormat !== 'json') throw new UsageError(`--log-format must be text or json, got '${logFormat}'`);
  const host = values.host ?? '127.0.0.1';
  const chatTemplate = values['chat-template'] ? loadChatTemplate(values['chat-template']) : undefined;

  const loadOpts: LoadModelOptions = { slots, maxQueue, prefillChunk };
  if (values.tokenizer) loadOpts.tokenizer = values.tokenizer;
  if (values.config) loadOpts.configPath = values.config;
  if (values.kernels || values.threads) loadOpts.kernels = await kernelsFromOption(values.kernels ?? 'exact', values.threads);
  const grok = await loadModel(values.model, loadOpts);
  if (!grok.tokenizer) process.stderr.write('grok: warning: this model has no tokenizer; only token-id prompts to /v1/completions will work (pass --tokenizer)\n');

  const serverOpts: ServerOptions = {
    bodyLimit,
    requestTimeoutMs: intOpt('request-timeout', values['request-timeout'], 1, SERVER_DEFAULTS.requestTimeoutMs / 1000) * 1000,
    headersTimeoutMs: intOpt('headers-timeout', values['headers-timeout'], 1, SERVER_DEFAULTS.headersTimeoutMs / 1000) * 1000,
    idleTimeoutMs: intOpt('idle-timeout', values['idle-timeout'], 1, SERVER_DEFAULTS.idleTimeoutMs / 1000) * 1000,
    maxConnections: intOpt('max-connections', values['max-connections'], 1, SERVER_DEFAULTS.maxConnections),
  };
  if (apiKey !== undefined) serverOpts.apiKey = apiKey;
  if (values['model-id']) serverOpts.modelId = values['model-id'];
  if (values['strict-model']) serverOpts.strictModel = true;
  if (values.metrics) serverOpts.metrics = true;
  if (values.cors !== undefined) {
    if (values.cors !== '*' && !/^https?:\/\/[^/\s]+$/.test(values.cors)) throw new UsageError(`--cors must be an origin like http://localhost:3000 (scheme, host, port; no path) or '*', got '${values.cors}'`);
    serverOpts.cors = values.cors;
  }
  if (!values.quiet) serverOpts.log = { format: logFormat };
  if (chatTemplate) serverOpts.chatTemplate = chatTemplate;
  const server = createServer(grok, serverOpts);
  if (!isLoopbackHost(host) && apiKey === undefined) {
    process.stderr.write(`grok: warning: listening on ${host} without --api-key: anyone who can reach this machine can use the model\n`);
  }
  const url = await server.listen({ host, port });
  const reach = reachableUrls(url).filter((u) => u !== url);
  process.stderr.write(`grok: serving ${grok.path} as '${server.modelId}' on ${url}${reach.length ? ` (${reach.join(', ')})` : ''} (${slots} slots, queue ${maxQueue}${apiKey ? ', API key required' : ''}; loaded in ${(grok.loadMs / 1000).toFixed(2)} s)\n`);

  await new Promise<void>((resolve) => {
    const onInt = (): void => stop('SIGINT');
    const onTerm = (): void => stop('SIGTERM');
    const stop = (sig: string): void => {
      process.stderr.write(`grok: ${sig}: shutting down (running requests get ${graceMs / 1000} s)\n`);
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
      // A second signal ends at once.
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      void server.close(graceMs).then(resolve, resolve);
    };
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
  });
  await grok.close();
  return 0;
}
