/**
 * OpenAI-compatible HTTP server over one loaded model: POST /v1/completions, POST /v1/chat/completions,
 * GET /v1/models, GET /health, GET /ready. Every choice is one request to the model's continuous-batching
 * engine, so concurrent HTTP requests decode together; a client that goes away cancels its requests and
 * frees their slots at once; a full wait queue answers 429.
 *
 * The model is a TextModel: Grok (forward passes in this thread, blocking it while they run) or WorkerGrok
 * (in a worker thread: what `grok serve` uses, so that health checks, other streams and cancellations are
 * answered during any forward pass). Given a ModelLoading, the server listens before the model is loaded:
 * /health (liveness) answers 200 at once, /ready (and /health?ready) 503 until the model is loaded, the
 * API 503 meanwhile.
 *
 * This file assembles the server from its units in src/api/http: schemas (request bodies), format (the
 * completion and chat response shapes), generation (running choices, whole or streamed), sse (the event
 * stream), routes, errors, log, net. Here: limits and time-outs, the request log, the API key, errors.
 *
 * fastify (v5) was chosen over node:http for its body limit, JSON parsing and routing; it runs on Node 20
 * (checked: only light-my-request's `cookie` asks for Node ≥ 22, and that is fastify.inject, unused here).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { ChatTemplate } from './chat.js';
import { packageRoot, TextModel } from './index.js';
import { ApiError, fromFastifyError } from './http/errors.js';
import type { GenerationContext } from './http/generation.js';
import { loggerOptions, type LogOptions, type RequestLogFields } from './http/log.js';
import { clientKey, urlOf } from './http/net.js';
import { registerOpenAiRoutes } from './http/routes.js';
import { ServerMetrics } from './http/metrics.js';
import { registerStaticPage } from './http/static.js';
import { registerSlotRoutes } from './http/slots.js';

export { ApiError, type ApiErrorOptions } from './http/errors.js';
export { clientKey, isLoopbackHost, reachableUrls } from './http/net.js';
export type { LogFormat, LogOptions } from './http/log.js';

export interface ServerOptions {
  /** Name clients use in `model` (default: the model file / folder name). */
  modelId?: string;
  /**
   * Require `Authorization: Bearer <apiKey>` on every route except /health and /ready (and the page's static files).
   * Decided on the route the router matched, so no spelling of a path (percent-encoding, absolute-form
   * targets, unknown paths) gets past it.
   */
  apiKey?: string;
  chatTemplate?: ChatTemplate;
  /** Largest request body accepted, bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Most choices one request may ask for (n × prompts), default 16. */
  maxChoices?: number;
  /**
   * return_routed_experts includes the prompt's routing (once per prompt) for prompts up to this many tokens,
   * longer ones only with return_prompt_routed_experts: true (default 4096; Grok-1's routing is about 3 KB of JSON a token).
   */
  maxPromptRoutingTokens?: number;
  /**
   * Context overflow policy for chat: a conversation that does not fit the context (its prompt plus
   * max_tokens, or plus a minimum completion room when max_tokens is omitted) loses its oldest turns — never
   * the system messages nor the last user message — and the response says how many (truncated_messages, the
   * x-truncated-messages header, the log line). A request's `truncation: "auto" | "disabled"` overrides it.
   * Default false: such a chat is a 400 context_length_exceeded.
   */
  contextShift?: boolean;
  /**
   * Folder for POST /slots/save and /slots/restore (llama-server's --slot-save-path): the prefix cache's
   * keys and values of a prompt saved to a file there, and read back (after a restart). Default none: 501.
   */
  slotSavePath?: string;
  /** A client must send its request headers within this many ms of connecting (default 10 000). */
  headersTimeoutMs?: number;
  /** A client must send its whole request, body included, within this many ms (default 30 000). */
  requestTimeoutMs?: number;
  /** A connection with no request in progress is closed after this many ms (default 5 000). */
  idleTimeoutMs?: number;
  /** Open connections at most; more are closed on arrival (default 256). */
  maxConnections?: number;
  /**
   * Open connections one client address (IPv6: one /64) may hold; more from it are closed on arrival, so
   * that one client cannot take every connection. Default a quarter of maxConnections (64): room for one
   * client's 32 concurrent streams plus spare connections. Behind a reverse proxy every connection comes
   * from the proxy: raise it to maxConnections there.
   */
  maxConnectionsPerIp?: number;
  /** One log line per request (method, route, status, tokens, time to first token, duration); default none. */
  log?: LogOptions;
  /** Answer 404 model_not_found to a `model` other than the served one (OpenAI's behaviour). By default any name is accepted and the served id is reported back. */
  strictModel?: boolean;
  /** Serve GET /metrics (Prometheus text; needs the API key when one is set). Default false. */
  metrics?: boolean;
  /** Allow browsers on this origin ('*' for any) to call the API: CORS headers and preflight answers. Default none. */
  cors?: string;
  /** Folder of the web page's files served at / (default: the package's dist/web); false: no page. */
  webRoot?: string | false;
}

export const SERVER_DEFAULTS = Object.freeze({
  headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleTimeoutMs: 5_000, maxConnections: 256, bodyLimit: 1 << 20, maxChoices: 16,
  maxPromptRoutingTokens: 4096,
});

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the API key (only /health, /ready and the page's files). */
    public?: boolean;
  }
}

/** The file / folder name, or its parent's when the name is generic (…/tiny-a/ckpt-0, …/default/model.gguf). */
export function defaultModelId(modelPath: string): string {
  const base = path.basename(modelPath).replace(/\.(gguf|safetensors)$/i, '');
  return /^(ckpt-\d+|model|consolidated)$/i.test(base) ? path.basename(path.dirname(modelPath)) : base;
}

/** A model still loading (src/api/worker/client.ts startModelWorker gives one). */
export interface ModelLoading {
  /** The model's file or folder. */
  readonly path: string;
  readonly loaded: Promise<TextModel>;
}

/** GET /health: the server is alive; whether the model is ready, and the engine's slots and queue. */
export interface HealthReport {
  status: 'ok' | 'loading' | 'failed';
  ready: boolean;
  model: string;
  /** Sequences decoded together, those holding a slot now, those waiting for one (0 while loading). */
  slots: number;
  active: number;
  queued: number;
  /** Why the model is not serving (status failed). */
  error?: string;
  /**
   * The leader of a pipeline (src/api/pipeline): the next stage, whether the stages behind are up, and
   * which one is down when they are not (ready is then false); steps in flight now and at most (micro-batches).
   */
  pipeline?: { next: string; up: boolean; chain: string | null; error: string | null; connections: number; inFlight: number; mostInFlight: number };
}

export interface GrokServer {
  readonly app: FastifyInstance;
  /** The name clients send as `model`. */
  readonly modelId: string;
  /** Start listening; returns the base URL of the address really bound (http://host:port). */
  listen(opts?: { host?: string; port?: number }): Promise<string>;
  /** Stop accepting, let running requests finish for up to graceMs, then cancel the rest. */
  close(graceMs?: number): Promise<void>;
}

function createApp(o: ServerOptions): FastifyInstance {
  const requestTimeout = o.requestTimeoutMs ?? SERVER_DEFAULTS.requestTimeoutMs;
  const headersTimeout = Math.min(o.headersTimeoutMs ?? SERVER_DEFAULTS.headersTimeoutMs, requestTimeout);
  const app = Fastify({
    bodyLimit: o.bodyLimit ?? SERVER_DEFAULTS.bodyLimit,
    logger: loggerOptions(o.log),
    logController: new LogController({ disableRequestLogging: true }), // our own one line per request instead
    forceCloseConnections: 'idle',
    // Node checks the header and request deadlines every connectionsCheckingInterval ms (30 s by default).
    http: { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))) },
    requestTimeout,
    keepAliveTimeout: o.idleTimeoutMs ?? SERVER_DEFAULTS.idleTimeoutMs,
  });
  const maxConnections = o.maxConnections ?? SERVER_DEFAULTS.maxConnections;
  app.server.maxConnections = maxConnections;
  capConnectionsPerClient(app.server, o.maxConnectionsPerIp ?? Math.max(1, Math.floor(maxConnections / 4)));
  app.removeContentTypeParser('text/plain'); // bodies are JSON only: anything else is a 415
  return app;
}

/** Close a connection on arrival when its client (clientKey) already holds `cap` open ones. */
function capConnectionsPerClient(server: Server, cap: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const key = clientKey(socket.remoteAddress);
    const n = open.get(key) ?? 0;
    if (n >= cap) { socket.destroy(); return; }
    open.set(key, n + 1);
    socket.once('close', () => { const left = open.get(key)! - 1; if (left > 0) open.set(key, left); else open.delete(key); });
  });
}

/** The status logged for a request whose client went away before the response was complete (nginx's). */
const CLIENT_CLOSED_REQUEST = 499;

/**
 * Watches every request to its end (sent, streamed to the end, or abandoned): one log line, and the
 * request metrics, with the status the client really got: 499 when it went away before the response was
 * complete (whatever status line had been sent), 408 when it did not send its request in time (Node answers
 * those itself: they are seen as client errors, with or without a request under way; a connection that
 * sent nothing at all is not a request). Returns how handlers add fields (tokens, time to first token)
 * to the line.
 */
function addRequestObserver(app: FastifyInstance, log: boolean, metrics: ServerMetrics | null): GenerationContext['note'] {
  const fields = new WeakMap<FastifyRequest, Partial<RequestLogFields>>();
  /** The request under way on a connection, told that it timed out. */
  const underWay = new WeakMap<Socket, () => void>();
  const connectedAt = new WeakMap<Socket, number>();
  const record = (line: RequestLogFields, logger: FastifyBaseLogger) => {
    metrics?.request(line.route, line.status, line.durationMs / 1000);
    if (!log) return;
    if (line.status >= 500) logger.error(line, 'request'); else logger.info(line, 'request');
  };
  app.server.on('connection', (socket: Socket) => connectedAt.set(socket, performance.now()));
  app.addHook('onRequest', async (req, reply) => {
    const t0 = performance.now();
    const f: Partial<RequestLogFields> = {};
    fields.set(req, f);
    const socket = req.raw.socket;
    let timedOut = false;
    const tell = () => { timedOut = true; };
    underWay.set(socket, tell);
    reply.raw.once('close', () => {
      if (underWay.get(socket) === tell) underWay.delete(socket);
      const line: RequestLogFields = {
        method: req.method, route: req.routeOptions.url ?? '(no route)', status: reply.raw.statusCode, ...f, durationMs: performance.now() - t0,
      };
      if (timedOut) line.status = 408;
      else if (!reply.raw.writableFinished) { line.status = CLIENT_CLOSED_REQUEST; line.aborted = true; }
      record(line, req.log);
    });
  });
  // Before fastify's own handler, which answers and destroys the socket.
  app.server.prependListener('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code !== 'ERR_HTTP_REQUEST_TIMEOUT') return;
    const tell = underWay.get(socket);
    if (tell) { tell(); return; } // its close handler logs it
    // A connection that sent nothing made no request (clients open spare connections, and browsers preconnect).
    if (socket.bytesRead === 0) return;
    // Its headers did not all come: nothing to name but the time since connecting.
    record({ method: '-', route: '(no request)', status: 408, durationMs: performance.now() - (connectedAt.get(socket) ?? performance.now()) }, app.log);
  });
  return (req, f) => { const o = fields.get(req); if (o) Object.assign(o, f); };
}

/**
 * CORS for one origin (or '*'): response headers on every request from it, and answers to preflights.
 * A preflight carries no credentials (browsers never send them), so it is public; it reveals nothing.
 */
function addCors(app: FastifyInstance, origin: string): (req: FastifyRequest) => boolean {
  const allowed = (o: string | undefined) => o !== undefined && (origin === '*' || o === origin);
  const preflight = (req: FastifyRequest) => req.method === 'OPTIONS' && allowed(req.headers.origin) && req.headers['access-control-request-method'] !== undefined;
  app.addHook('onRequest', async (req, reply) => {
    if (!allowed(req.headers.origin)) return;
    // On the raw response, so that hijacked (streamed) responses carry them too.
    reply.raw.setHeader('access-control-allow-origin', origin === '*' ? '*' : origin);
    reply.raw.setHeader('vary', 'Origin');
  });
  app.options('*', async (req, reply) => {
    if (!preflight(req)) return reply.code(404).send(new ApiError(404, `no route for OPTIONS ${req.url}`, { code: 'unknown_url' }).toJSON());
    return reply.code(204)
      .header('access-control-allow-methods', 'GET, POST, OPTIONS')
      .header('access-control-allow-headers', 'authorization, content-type')
      .header('access-control-max-age', '600')
      .send();
  });
  return preflight;
}

/**
 * Deny by default: every route, and every URL that matches none, needs the key unless marked public (or,
 * with CORS, is a preflight: browsers send those without credentials).
 */
function addApiKey(app: FastifyInstance, apiKey: string, preflight: ((req: FastifyRequest) => boolean) | null): void {
  const want = Buffer.from(`Bearer ${apiKey}`);
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config.public === true || preflight?.(req)) return;
    const got = Buffer.from(req.headers.authorization ?? '');
    if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) {
      throw new ApiError(401, 'Incorrect or missing API key: send Authorization: Bearer <key>', { code: 'invalid_api_key' });
    }
  });
}

export function createServer(model: TextModel | ModelLoading, options: ServerOptions = {}): GrokServer {
  let grok: TextModel | null = model instanceof TextModel ? model : null;
  let loadError: Error | null = null;
  if (!(model instanceof TextModel)) model.loaded.then((g) => { grok = g; }, (e: Error) => { loadError = e; });
  const modelId = options.modelId ?? defaultModelId(model.path);
  /** The model, or the 503 that says why there is none to use. */
  const current = (): TextModel => {
    if (grok && !grok.failure) return grok;
    const why = loadError ? `the model failed to load: ${loadError.message}` : grok?.failure ? `the model stopped: ${grok.failure.message}` : 'the model is still loading; retry later';
    throw new ApiError(503, why, { code: loadError || grok?.failure ? 'model_unavailable' : 'model_loading' });
  };
  const health = (): HealthReport => {
    const e = grok?.engine;
    const failure = loadError ?? grok?.failure ?? null;
    const pipeline = (grok as { pipelineStatus?: () => HealthReport['pipeline'] | null } | null)?.pipelineStatus?.() ?? null;
    return {
      status: failure ? 'failed' : grok ? 'ok' : 'loading', ready: grok !== null && !failure && (!pipeline || pipeline.up), model: modelId,
      slots: e?.slots ?? 0, active: e?.activeCount ?? 0, queued: e?.queuedCount ?? 0, ...(failure ? { error: failure.message } : {}),
      ...(pipeline ? { pipeline } : {}),
    };
  };
  const live = new Set<AbortController>();
  const app = createApp(options);
  const metrics = options.metrics ? new ServerMetrics(() => grok) : null;
  const note: GenerationContext['note'] = options.log || metrics ? addRequestObserver(app, options.log !== undefined, metrics) : () => undefined;
  const preflight = options.cors !== undefined ? addCors(app, options.cors) : null;
  if (options.apiKey !== undefined) addApiKey(app, options.apiKey, preflight);

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    const e = fromFastifyError(err, options.bodyLimit ?? SERVER_DEFAULTS.bodyLimit);
    return reply.code(e.status).type('application/json').send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError(404, `no route for ${req.method} ${req.url}`, { code: 'unknown_url' });
    return reply.code(404).type('application/json').send(e.toJSON());
  });

  // Liveness: 200 whenever the server answers. Readiness (?ready, or /ready): 503 until the model serves.
  app.get<{ Querystring: Record<string, string> }>('/health', { config: { public: true } }, async (req, reply) => {
    const h = health();
    return reply.code('ready' in req.query && !h.ready ? 503 : 200).send(h);
  });
  app.get('/ready', { config: { public: true } }, async (_req, reply) => {
    const h = health();
    return reply.code(h.ready ? 200 : 503).send(h);
  });
  if (metrics) {
    app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render()));
  }
  // What the web page shows and needs to know about the model.
  app.get('/info', async () => {
    const g = current();
    return {
      model: modelId,
      contextLength: g.config.contextLength,
      vocabSize: g.config.vocabSize,
      layers: g.config.nLayers,
      experts: g.config.nExperts,
      expertsPerToken: g.config.nExpertsUsed,
      backend: g.backend,
      slots: g.engine.slots,
      tokenizer: g.tokenizer !== null,
      loadSeconds: g.loadMs / 1000,
      metrics: metrics !== null,
    };
  });
  registerSlotRoutes(app, current, options.slotSavePath ?? null);
  const webRoot = options.webRoot ?? path.join(packageRoot(), 'dist', 'web');
  if (webRoot !== false) registerStaticPage(app, webRoot);
  registerOpenAiRoutes(app, { model: current, modelId, live, note, metrics }, {
    template: options.chatTemplate ?? null,
    maxChoices: options.maxChoices ?? SERVER_DEFAULTS.maxChoices,
    maxPromptRoutingTokens: options.maxPromptRoutingTokens ?? SERVER_DEFAULTS.maxPromptRoutingTokens,
    contextShift: options.contextShift ?? false,
    strictModel: options.strictModel ?? false,
  });

  let closing: Promise<void> | null = null;
  return {
    app,
    modelId,
    async listen(o = {}) {
      await app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 8080 });
      // The address really bound (fastify's own answer names 127.0.0.1 for 0.0.0.0).
      return urlOf(app.server.address() as AddressInfo);
    },
    close(graceMs = 5000) {
      if (!closing) {
        closing = (async () => {
          const closed = app.close();
          const tick = () => new Promise((r) => setTimeout(r, 20));
          const deadline = Date.now() + graceMs;
          // Keep-alive connections whose request finished would otherwise hold the close until they time out.
          while (live.size > 0 && Date.now() < deadline) { app.server.closeIdleConnections(); await tick(); }
          for (const ac of live) ac.abort(new Error('server shutting down'));
          for (let i = 0; i < 50 && live.size > 0; i++) await tick(); // cancelled streams write their last event
          app.server.closeAllConnections();
          await closed;
        })();
      }
      return closing;
    },
  };
}
