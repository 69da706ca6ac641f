/**
 * OpenAI-compatible HTTP server over one loaded model: POST /v1/completions, POST /v1/chat/completions,
 * GET /v1/models, GET /health. Every choice is one request to the model's continuous-batching engine, so
 * concurrent HTTP requests decode together; a client that goes away cancels its requests and frees their
 * slots at once; a full wait queue answers 429.
 *
 * fastify (v5) was chosen over node:http for its body limit, JSON parsing and routing; it runs on Node 20
 * (checked: only light-my-request's `cookie` asks for Node ≥ 22, and that is fastify.inject, unused here).
 * Streaming responses are written on the raw socket (reply.hijack) in the OpenAI server-sent-event format.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ContextLengthError, QueueFullError } from '../engine/scheduler.js';
import { SamplingError } from '../engine/sampling.js';
import { DEFAULT_CHAT_TEMPLATE, renderChat, type ChatMessage, type ChatTemplate } from './chat.js';
import type { Completion, Grok, TextGenerateOptions, TextStream, TopAlternative } from './index.js';
import { loggerOptions, type LogOptions, type RequestLogFields } from './log.js';

export interface ServerOptions {
  /** Name clients use in `model` (default: the model file / folder name). */
  modelId?: string;
  /**
   * Require `Authorization: Bearer <apiKey>` on every route except /health (and the page's static files).
   * Decided on the route the router matched, so no spelling of a path (percent-encoding, absolute-form
   * targets, unknown paths) gets past it.
   */
  apiKey?: string;
  chatTemplate?: ChatTemplate;
  /** Largest request body accepted, bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Most choices one request may ask for (n × prompts), default 16. */
  maxChoices?: number;
  /** A client must send its request headers within this many ms of connecting (default 10 000). */
  headersTimeoutMs?: number;
  /** A client must send its whole request, body included, within this many ms (default 30 000). */
  requestTimeoutMs?: number;
  /** A connection with no request in progress is closed after this many ms (default 5 000). */
  idleTimeoutMs?: number;
  /** Open connections at most; more are closed on arrival (default 256). */
  maxConnections?: number;
  /** One log line per request (method, route, status, tokens, time to first token, duration); default none. */
  log?: LogOptions;
  /** Answer 404 model_not_found to a `model` other than the served one (OpenAI's behaviour). By default any name is accepted and the served id is reported back. */
  strictModel?: boolean;
}

export const SERVER_DEFAULTS = Object.freeze({
  headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleTimeoutMs: 5_000, maxConnections: 256,
});

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the API key (only /health and the page's files). */
    public?: boolean;
  }
}

/** An error in OpenAI's shape, with its HTTP status. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly type: string, readonly param: string | null = null, readonly code: string | null = null) {
    super(message);
    this.name = 'ApiError';
  }
  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const shuttingDown = () => new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
const invalid = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, 'invalid_request_error', param, code);

// ---- request schemas (zod). Unknown fields are ignored, as OpenAI clients send optional extras. ----

const stopSchema = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish();
const tokenIds = z.array(z.number().int().min(0)).min(1);
const common = {
  model: z.string().min(1),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  stop: stopSchema,
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  logit_bias: z.record(z.string().regex(/^\d+$/, 'keys must be token ids'), z.number().min(-100).max(100)).nullish(),
  user: z.string().nullish(),
  // Extensions beyond OpenAI's set (llama.cpp / vLLM spellings).
  top_k: z.number().int().min(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(10).nullish(),
  ignore_eos: z.boolean().nullish(),
  response_format: z.object({ type: z.string() }).nullish(),
};

const completionSchema = z.object({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  logprobs: z.number().int().min(0).max(20).nullish(),
  echo: z.boolean().nullish(),
  suffix: z.string().nullish(),
  best_of: z.number().int().min(1).nullish(),
});

const contentPart = z.object({ type: z.literal('text'), text: z.string() });
const messageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(contentPart)]).nullish(),
  name: z.string().nullish(),
});
const chatSchema = z.object({
  ...common,
  messages: z.array(messageSchema).min(1),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(z.unknown()).nullish(),
  functions: z.array(z.unknown()).nullish(),
});

type CommonBody = z.infer<z.ZodObject<typeof common>>;

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid('the request body must be a JSON object');
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  // Inside a union (prompt: string | string[] | ids | ids[]) the parameter is the field itself.
  const param = (issue.path[0] === 'prompt' ? 'prompt' : issue.path.map(String).join('.')) || null;
  let msg = issue.message;
  if (issue.code === 'invalid_union') msg = 'has the wrong type';
  const missing = issue.path.length === 1 && (body as Record<string, unknown>)[String(issue.path[0])] === undefined;
  if (missing) msg = 'is required';
  throw invalid(`Invalid value for '${param ?? 'body'}': ${msg}`, param, missing ? 'missing_required_parameter' : 'invalid_value');
}

/** The engine's option names as the API spells them. */
const API_PARAM: Record<string, string> = {
  temperature: 'temperature', topK: 'top_k', topP: 'top_p', minP: 'min_p', repetitionPenalty: 'repetition_penalty',
  presencePenalty: 'presence_penalty', frequencyPenalty: 'frequency_penalty', logitBias: 'logit_bias', topLogprobs: 'logprobs',
};

/** An engine / sampling error as the API reports it: a bad option is the client's 400, anything else a 500. */
function engineError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof SamplingError) {
    const param = API_PARAM[e.param] ?? null;
    const message = param ? e.message.replace(new RegExp(`^${e.param}\\b`), param) : e.message;
    return invalid(message, param, 'invalid_value');
  }
  if (e instanceof RangeError) return invalid(e.message);
  return new ApiError(500, `generation failed: ${(e as Error).message}`, 'server_error');
}

/** OpenAI seeds are 64-bit; the engine's RNG takes 32 bits. */
function seed32(s: number): number {
  return ((s % 4294967296) + 4294967296) % 4294967296;
}

function samplingOf(b: CommonBody, base: Partial<TextGenerateOptions>): TextGenerateOptions {
  const o: TextGenerateOptions = { ...base };
  if (b.temperature != null) o.temperature = b.temperature;
  // top_p 0 asks for the single most probable token.
  if (b.top_p != null) { if (b.top_p === 0) o.topK = 1; else o.topP = b.top_p; }
  if (b.top_k != null && b.top_k > 0) o.topK = o.topK === 1 ? 1 : b.top_k;
  if (b.min_p != null) o.minP = b.min_p;
  if (b.repetition_penalty != null) o.repetitionPenalty = b.repetition_penalty;
  if (b.presence_penalty != null) o.presencePenalty = b.presence_penalty;
  if (b.frequency_penalty != null) o.frequencyPenalty = b.frequency_penalty;
  if (b.logit_bias) o.logitBias = Object.fromEntries(Object.entries(b.logit_bias).map(([k, v]) => [Number(k), v]));
  if (b.ignore_eos) o.ignoreEos = true;
  return o;
}

/** Structured output is not implemented: say so rather than ignore it. */
function refuseResponseFormat(b: CommonBody): void {
  const t = b.response_format?.type;
  if (t !== undefined && t !== 'text') {
    throw invalid(`response_format '${t}' is not supported: this server generates plain text only (omit response_format or use {"type": "text"})`, 'response_format', 'unsupported_parameter');
  }
}

function stopsOf(b: CommonBody, extra: readonly string[] = []): string[] {
  const s = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
  return [...s, ...extra.filter((e) => !s.includes(e))];
}

const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];

/** The file / folder name, or its parent's when the name is generic (…/tiny-a/ckpt-0, …/default/model.gguf). */
export function defaultModelId(modelPath: string): string {
  const base = path.basename(modelPath).replace(/\.(gguf|safetensors)$/i, '');
  return /^(ckpt-\d+|model|consolidated)$/i.test(base) ? path.basename(path.dirname(modelPath)) : base;
}

export interface GrokServer {
  readonly app: FastifyInstance;
  /** The name clients send as `model`. */
  readonly modelId: string;
  /** Start listening; returns the base URL (http://host:port). */
  listen(opts?: { host?: string; port?: number }): Promise<string>;
  /** Stop accepting, let running requests finish for up to graceMs, then cancel the rest. */
  close(graceMs?: number): Promise<void>;
}

export function createServer(grok: Grok, options: ServerOptions = {}): GrokServer {
  const modelId = options.modelId ?? defaultModelId(grok.path);
  const template = options.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
  const maxChoices = options.maxChoices ?? 16;
  const created = Math.floor(Date.now() / 1000);
  const ctx = grok.config.contextLength;
  const live = new Set<AbortController>();
  const requestTimeout = options.requestTimeoutMs ?? SERVER_DEFAULTS.requestTimeoutMs;
  const headersTimeout = Math.min(options.headersTimeoutMs ?? SERVER_DEFAULTS.headersTimeoutMs, requestTimeout);
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 1 << 20, logger: loggerOptions(options.log), logController: new LogController({ disableRequestLogging: true }), forceCloseConnections: 'idle',
    // Node checks the header and request deadlines every connectionsCheckingInterval ms (30 s by default).
    http: { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))) },
    requestTimeout, keepAliveTimeout: options.idleTimeoutMs ?? SERVER_DEFAULTS.idleTimeoutMs,
  });
  app.server.maxConnections = options.maxConnections ?? SERVER_DEFAULTS.maxConnections;

  app.removeContentTypeParser('text/plain'); // bodies are JSON only: anything else is a 415
  const send = (reply: FastifyReply, e: ApiError) => reply.code(e.status).type('application/json').send(e.toJSON());

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof ApiError) return send(reply, err);
    const status = err.statusCode ?? 500;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return send(reply, new ApiError(413, `the request body is larger than ${options.bodyLimit ?? 1 << 20} bytes`, 'invalid_request_error', null, 'request_too_large'));
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
      return send(reply, invalid('We could not parse the JSON body of your request: it is not valid JSON', null, 'invalid_json'));
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return send(reply, new ApiError(415, 'the request body must be JSON (Content-Type: application/json)', 'invalid_request_error', null, 'unsupported_media_type'));
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return send(reply, invalid('the request body is empty; expected a JSON object', null, 'invalid_json'));
    if (status >= 400 && status < 500) return send(reply, new ApiError(status, err.message, 'invalid_request_error'));
    return send(reply, new ApiError(500, `internal error: ${err.message}`, 'server_error'));
  });
  app.setNotFoundHandler((req, reply) => send(reply, new ApiError(404, `no route for ${req.method} ${req.url}`, 'invalid_request_error', null, 'unknown_url')));

  // The request log: one line when the response is over (sent, streamed to the end, or abandoned).
  const logged = new WeakMap<FastifyRequest, Partial<RequestLogFields>>();
  if (options.log) {
    app.addHook('onRequest', async (req, reply) => {
      const t0 = performance.now();
      const fields: Partial<RequestLogFields> = {};
      logged.set(req, fields);
      reply.raw.once('close', () => {
        const line: RequestLogFields = {
          method: req.method, route: req.routeOptions.url ?? '(no route)', status: reply.raw.statusCode, ...fields,
          durationMs: performance.now() - t0,
        };
        if (!reply.raw.writableFinished) line.aborted = true;
        if (line.status >= 500) req.log.error(line, 'request'); else req.log.info(line, 'request');
      });
    });
  }
  const note = (req: FastifyRequest, f: Partial<RequestLogFields>) => { const o = logged.get(req); if (o) Object.assign(o, f); };

  if (options.apiKey !== undefined) {
    const want = Buffer.from(`Bearer ${options.apiKey}`);
    // Deny by default: every route, and every URL that matches none, needs the key unless marked public.
    app.addHook('onRequest', async (req) => {
      if (req.routeOptions.config.public === true) return;
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) {
        throw new ApiError(401, 'Incorrect or missing API key: send Authorization: Bearer <key>', 'invalid_request_error', null, 'invalid_api_key');
      }
    });
  }

  app.get('/health', { config: { public: true } }, async () => ({
    status: 'ok', model: modelId, slots: grok.engine.slots, active: grok.engine.activeCount, queued: grok.engine.queuedCount,
  }));
  const modelCard = { id: modelId, object: 'model', created, owned_by: 'grok-ts' };
  app.get('/v1/models', async () => ({ object: 'list', data: [modelCard] }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (req) => {
    if (req.params.id !== modelId) throw new ApiError(404, `The model '${req.params.id}' does not exist`, 'invalid_request_error', 'model', 'model_not_found');
    return modelCard;
  });

  const checkModel = (m: string) => {
    if (options.strictModel && m !== modelId) throw new ApiError(404, `The model '${m}' does not exist; this server serves '${modelId}'`, 'invalid_request_error', 'model', 'model_not_found');
  };
  const needTokenizer = () => {
    if (!grok.tokenizer) throw invalid('this model has no tokenizer: send prompts as token ids', 'prompt', 'no_tokenizer');
  };

  /** Prompt ids and the max_tokens to use; a prompt that cannot fit is a 400 (like OpenAI). */
  const fit = (ids: number[], maxTokens: number | null | undefined, fallback: number | null): number => {
    if (ids.length === 0) throw invalid('the prompt is empty', 'prompt');
    for (const id of ids) {
      if (id >= grok.config.vocabSize) throw invalid(`prompt token ${id} is outside the vocabulary (0…${grok.config.vocabSize - 1})`, 'prompt', 'invalid_value');
    }
    const want = maxTokens ?? fallback ?? ctx - ids.length;
    if (want < 1 || ids.length + want > ctx) {
      throw invalid(`This model's maximum context length is ${ctx} tokens. However, you requested ${ids.length + want} tokens (${ids.length} in the prompt, ${want} for the completion). Please reduce the prompt or max_tokens.`,
        'prompt', 'context_length_exceeded');
    }
    return want;
  };

  /** Start every choice; if one cannot start (queue full, bad option), cancel the others. */
  const start = (jobs: { ids: number[]; opts: TextGenerateOptions }[], signal: AbortSignal): TextStream[] => {
    const streams: TextStream[] = [];
    try {
      for (const j of jobs) streams.push(grok.generate(j.ids, { ...j.opts, signal }));
    } catch (e) {
      for (const s of streams) s.cancel();
      if (e instanceof QueueFullError) throw new ApiError(429, `the server is busy: ${e.message}`, 'rate_limit_exceeded', null, 'queue_full');
      if (e instanceof ContextLengthError) throw invalid(e.message, 'prompt', 'context_length_exceeded');
      throw engineError(e);
    }
    return streams;
  };

  /** Abort when the client goes away before the response is complete. */
  const watch = (req: FastifyRequest, reply: FastifyReply): AbortController => {
    const ac = new AbortController();
    live.add(ac);
    reply.raw.on('close', () => {
      live.delete(ac);
      if (!reply.raw.writableFinished) ac.abort(new Error('client disconnected'));
    });
    req.raw.on('aborted', () => ac.abort(new Error('client disconnected')));
    return ac;
  };

  type Kind = 'text' | 'chat';
  const logprobsOf = (kind: Kind, c: { tokens: number[]; logprobs: number[]; top?: TopAlternative[][]; text: string[] }, want: boolean) => {
    if (!want) return null;
    if (kind === 'chat') {
      return {
        content: c.tokens.map((id, i) => {
          const token = grok.tokenText(id);
          return {
            token, logprob: c.logprobs[i], bytes: utf8(token),
            top_logprobs: (c.top?.[i] ?? []).map((a) => ({ token: a.text, logprob: a.logprob, bytes: utf8(a.text) })),
          };
        }),
        refusal: null,
      };
    }
    let offset = 0;
    const text_offset: number[] = [];
    for (const t of c.text) { text_offset.push(offset); offset += t.length; }
    return {
      tokens: c.tokens.map((id) => grok.tokenText(id)),
      token_logprobs: c.logprobs,
      top_logprobs: c.top ? c.top.map((alts) => Object.fromEntries(alts.map((a) => [a.text, a.logprob]))) : null,
      text_offset,
    };
  };

  async function respond(
    kind: Kind, req: FastifyRequest, reply: FastifyReply, body: CommonBody,
    jobs: { ids: number[]; opts: TextGenerateOptions; prompt: number }[], wantLogprobs: boolean, promptTokens: number,
  ): Promise<void> {
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${crypto.randomUUID().replaceAll('-', '')}`;
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const ac = watch(req, reply);
    const t0 = performance.now();
    const streams = start(jobs, ac.signal).map((s) => timed(s));
    note(req, { promptTokens });
    let completionTokens = 0;
    let firstToken = 0;
    /** Counts tokens and the time to the first one for the request log. */
    function timed(s: TextStream): TextStream {
      return {
        get result() { return s.result; },
        cancel: () => s.cancel(),
        async *[Symbol.asyncIterator]() {
          for await (const c of s) {
            if (c.token !== null) {
              completionTokens++;
              if (!firstToken) { firstToken = performance.now(); note(req, { ttftMs: firstToken - t0 }); }
            }
            note(req, { completionTokens });
            yield c;
          }
        },
      };
    }
    const usage = (cs: Completion[]) => {
      const completion = cs.reduce((a, c) => a + c.usage.completionTokens, 0);
      return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
    };

    if (!body.stream) {
      let results: Completion[];
      try {
        results = await Promise.all(streams.map(async (s) => { for await (const _ of s) { /* gathered in result */ } return s.result; }));
      } catch (e) {
        for (const s of streams) s.cancel();
        if (reply.raw.destroyed) { reply.hijack(); return; } // the client is gone: nobody to answer
        if (ac.signal.aborted) throw shuttingDown();
        throw engineError(e);
      }
      live.delete(ac);
      const choices = results.map((r, index) => {
        const lp = logprobsOf(kind, {
          tokens: r.tokens, logprobs: r.logprobs, ...(r.topLogprobs ? { top: r.topLogprobs } : {}),
          text: r.tokens.map((t) => grok.tokenText(t)),
        }, wantLogprobs);
        return kind === 'chat'
          ? { index, message: { role: 'assistant', content: r.text.trimStart(), refusal: null }, logprobs: lp, finish_reason: r.finishReason }
          : { index, text: r.text, logprobs: lp, finish_reason: r.finishReason };
      });
      await reply.type('application/json').send({ id, object, created: Math.floor(Date.now() / 1000), model: modelId, system_fingerprint: null, choices, usage: usage(results) });
      return;
    }

    // ---- server-sent events ----
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.flushHeaders(); // a queued request gets its 200 now, not when its first token comes
    const includeUsage = body.stream_options?.include_usage === true;
    const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    const createdAt = Math.floor(Date.now() / 1000);
    const write = (payload: unknown) => { if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(payload)}\n\n`); };
    const chunk = (choices: unknown[]) => write({ id, object: chunkObject, created: createdAt, model: modelId, system_fingerprint: null, choices, ...(includeUsage ? { usage: null } : {}) });
    try {
      const results = await Promise.all(streams.map(async (s, index) => {
        if (kind === 'chat') chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
        // The answer follows the template's cue ("Assistant:"), so its leading space is not content.
        let atStart = kind === 'chat';
        for await (const c of s) {
          if (atStart) { c.text = c.text.trimStart(); atStart = c.text === ''; }
          if (c.text === '' && !wantLogprobs) continue;
          const lp = c.token === null ? null : logprobsOf(kind, {
            tokens: [c.token], logprobs: [c.logprob!], ...(c.top ? { top: [c.top] } : {}), text: [c.text],
          }, wantLogprobs);
          chunk([kind === 'chat'
            ? { index, delta: { content: c.text }, logprobs: lp, finish_reason: null }
            : { index, text: c.text, logprobs: lp, finish_reason: null }]);
        }
        const r = await s.result;
        chunk([kind === 'chat'
          ? { index, delta: {}, logprobs: null, finish_reason: r.finishReason }
          : { index, text: '', logprobs: null, finish_reason: r.finishReason }]);
        return r;
      }));
      if (includeUsage) write({ id, object: chunkObject, created: createdAt, model: modelId, system_fingerprint: null, choices: [], usage: usage(results) });
      if (!res.writableEnded) res.end('data: [DONE]\n\n');
    } catch (e) {
      for (const s of streams) s.cancel();
      // Still connected (an engine error, or the server shutting down): say why, then end the stream.
      if (!res.writableEnded && !res.destroyed) {
        const err = ac.signal.aborted ? shuttingDown() : engineError(e);
        note(req, { error: err.message });
        res.end(`data: ${JSON.stringify(err.toJSON())}\n\n`);
      }
    } finally {
      live.delete(ac);
    }
  }

  app.post('/v1/completions', async (req, reply) => {
    const b = parseBody(completionSchema, req.body);
    checkModel(b.model);
    refuseResponseFormat(b);
    if (b.echo) throw invalid('echo is not supported', 'echo', 'unsupported_parameter');
    if (b.suffix) throw invalid('suffix is not supported', 'suffix', 'unsupported_parameter');
    const n = b.n ?? 1;
    if (b.best_of != null && b.best_of !== n) throw invalid('best_of other than n is not supported', 'best_of', 'unsupported_parameter');
    const p = b.prompt;
    let prompts: number[][];
    if (typeof p === 'string') { needTokenizer(); prompts = [grok.encode(p)]; }
    else if (p.length > 0 && typeof p[0] === 'string') { needTokenizer(); prompts = (p as string[]).map((s) => grok.encode(s)); }
    else if (p.length > 0 && typeof p[0] === 'number') prompts = [p as number[]];
    else prompts = p as number[][];
    if (prompts.length * n > maxChoices) throw invalid(`at most ${maxChoices} choices per request (prompts × n)`, 'n');
    const stop = stopsOf(b);
    if (stop.length > 0) needTokenizer();
    const jobs: { ids: number[]; opts: TextGenerateOptions; prompt: number }[] = [];
    let promptTokens = 0;
    prompts.forEach((ids, pi) => {
      const maxTokens = fit(ids, b.max_tokens, 16);
      promptTokens += ids.length;
      for (let j = 0; j < n; j++) {
        const opts = samplingOf(b, { maxTokens, ...(stop.length ? { stop } : {}), ...(b.logprobs ? { topLogprobs: b.logprobs } : {}) });
        if (b.seed != null) opts.seed = seed32(b.seed + pi * n + j);
        jobs.push({ ids, opts, prompt: pi });
      }
    });
    await respond('text', req, reply, b, jobs, b.logprobs != null, promptTokens);
  });

  app.post('/v1/chat/completions', async (req, reply) => {
    const b = parseBody(chatSchema, req.body);
    checkModel(b.model);
    refuseResponseFormat(b);
    if ((b.tools && b.tools.length > 0) || (b.functions && b.functions.length > 0)) throw invalid('tools / functions are not supported', 'tools', 'unsupported_parameter');
    if (b.top_logprobs && !b.logprobs) throw invalid('top_logprobs requires logprobs: true', 'top_logprobs');
    needTokenizer();
    const n = b.n ?? 1;
    if (n > maxChoices) throw invalid(`at most ${maxChoices} choices per request`, 'n');
    const messages: ChatMessage[] = b.messages.map((m) => ({
      role: m.role,
      content: m.content == null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
    }));
    const ids = grok.encode(renderChat(messages, template));
    let maxTokens: number;
    try {
      maxTokens = fit(ids, b.max_completion_tokens ?? b.max_tokens, null);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'context_length_exceeded') throw invalid(e.message, 'messages', e.code);
      throw e;
    }
    const stop = stopsOf(b, template.stop);
    const jobs = Array.from({ length: n }, (_, j) => {
      const opts = samplingOf(b, { maxTokens, stop, ...(b.logprobs && b.top_logprobs ? { topLogprobs: b.top_logprobs } : {}) });
      if (b.seed != null) opts.seed = seed32(b.seed + j);
      return { ids, opts, prompt: 0 };
    });
    await respond('chat', req, reply, b, jobs, b.logprobs === true, ids.length);
  });

  let closing: Promise<void> | null = null;
  return {
    app,
    modelId,
    async listen(o = {}) {
      await app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 8080 });
      // The address really bound (fastify's own answer names 127.0.0.1 for 0.0.0.0).
      const a = app.server.address() as AddressInfo;
      return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
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

/** Whether a --host value only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

/** The URLs a listening URL is reachable at: itself, or every interface's address for 0.0.0.0 / [::]. */
export function reachableUrls(url: string): string[] {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (host !== '0.0.0.0' && host !== '::') return [url];
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (host === '0.0.0.0' && a.family !== 'IPv4') continue;
      if (a.family === 'IPv6' && a.scopeid) continue; // link-local addresses need a zone id
      out.push(`http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${u.port}`);
    }
  }
  return out;
}
