/**
 * Running the choices of one completion request and answering it, whole or streamed. Each choice is one
 * request to the engine; a client that goes away cancels them all and frees their slots.
 */
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Completion, TextModel, TextGenerateOptions, TextStream, TokenRouting } from '../index.js';
import { ApiError, engineError, shuttingDown } from './errors.js';
import type { ChoiceFormat } from './format.js';
import type { RequestLogFields } from './log.js';
import type { ServerMetrics } from './metrics.js';
import { openEventStream } from './sse.js';

/** One choice to generate: its prompt (index into the request's prompts) and options. */
export interface Job {
  ids: number[];
  opts: TextGenerateOptions;
  prompt: number;
  /** With routing: this choice carries its prompt's routing (the prompt's first choice, once per response). */
  promptRouting?: boolean;
}

export interface GenerationPlan {
  format: ChoiceFormat;
  jobs: Job[];
  stream: boolean;
  includeUsage: boolean;
  logprobs: boolean;
  /** Prompt tokens of all prompts (each counted once, whatever n). */
  promptTokens: number;
  /**
   * return_routed_experts: each choice carries routed_experts / routed_expert_weights for its generated
   * tokens; the jobs marked promptRouting add prompt_routed_experts / prompt_routed_expert_weights.
   */
  routing: boolean;
  /**
   * Chat messages left out to fit the context: said in the response (truncated_messages in the body, in a
   * stream's first chunk) and in the x-truncated-messages header.
   */
  truncatedMessages?: number;
}

/** The routing fields of a choice (or of a chunk's choice): these generated tokens', and the prompt's if given. */
function routedFields(tokens: readonly TokenRouting[], prompt: readonly TokenRouting[] | null): Record<string, number[][][]> {
  const f: Record<string, number[][][]> = { routed_experts: tokens.map((t) => t.experts), routed_expert_weights: tokens.map((t) => t.gates) };
  if (prompt) { f.prompt_routed_experts = prompt.map((t) => t.experts); f.prompt_routed_expert_weights = prompt.map((t) => t.gates); }
  return f;
}

/** What a generation needs of the server. */
export interface GenerationContext {
  /** The model; throws a 503 while it loads (or after its worker thread died). */
  model(): TextModel;
  modelId: string;
  /** Requests in progress (aborted on shutdown). */
  live: Set<AbortController>;
  /** Adds fields to the request's log line. */
  note(req: FastifyRequest, fields: Partial<RequestLogFields>): void;
  metrics: ServerMetrics | null;
}

/**
 * Start every choice, the choices of one prompt together so that its prefill is shared; if one cannot
 * start (queue full, bad option), cancel the others. The signal cancels them all through one listener:
 * handing it to each choice would add one listener per choice, and from 11 on Node prints a
 * MaxListenersExceededWarning (on stderr, in the middle of --log-format json).
 */
function start(grok: TextModel, jobs: readonly Job[], signal: AbortSignal): TextStream[] {
  const streams: TextStream[] = [];
  const byPrompt = new Map<number, number[]>();
  jobs.forEach((j, i) => { const l = byPrompt.get(j.prompt); if (l) l.push(i); else byPrompt.set(j.prompt, [i]); });
  try {
    for (const idx of byPrompt.values()) {
      const group = grok.generateMany(jobs[idx[0]!]!.ids, idx.map((i) => jobs[i]!.opts));
      idx.forEach((i, k) => { streams[i] = group[k]!; });
    }
  } catch (e) {
    for (const s of streams) s?.cancel();
    throw engineError(e);
  }
  const cancel = () => { for (const s of streams) s.cancel(); };
  if (signal.aborted) cancel(); else signal.addEventListener('abort', cancel, { once: true });
  return streams;
}

/** Abort when the client goes away before the response is complete. */
function watch(ctx: GenerationContext, req: FastifyRequest, reply: FastifyReply): AbortController {
  const ac = new AbortController();
  ctx.live.add(ac);
  reply.raw.on('close', () => {
    ctx.live.delete(ac);
    if (!reply.raw.writableFinished) ac.abort(new Error('client disconnected'));
  });
  req.raw.on('aborted', () => ac.abort(new Error('client disconnected')));
  return ac;
}

export async function respond(ctx: GenerationContext, req: FastifyRequest, reply: FastifyReply, plan: GenerationPlan): Promise<void> {
  const { modelId } = ctx;
  const grok = ctx.model();
  const f = plan.format;
  const id = `${f.idPrefix}-${crypto.randomUUID().replaceAll('-', '')}`;
  const ac = watch(ctx, req, reply);
  const t0 = performance.now();
  const streams = start(grok, plan.jobs, ac.signal);
  const truncated = plan.truncatedMessages ? { truncated_messages: plan.truncatedMessages } : {};
  if (plan.truncatedMessages) reply.raw.setHeader('x-truncated-messages', String(plan.truncatedMessages));
  ctx.note(req, { promptTokens: plan.promptTokens });
  ctx.metrics?.promptTokens(plan.promptTokens);
  if (plan.truncatedMessages) ctx.metrics?.truncated(plan.truncatedMessages);
  let completionTokens = 0;
  /** A choice's clock: every chunk passes it (token counts, time to first token, gaps between tokens). */
  const clock = () => {
    let last = 0;
    return (token: number | null) => {
      if (token === null) return;
      const now = performance.now();
      if (completionTokens++ === 0) { ctx.note(req, { ttftMs: now - t0 }); ctx.metrics?.firstToken((now - t0) / 1000); }
      ctx.metrics?.token(last ? (now - last) / 1000 : undefined);
      last = now;
      ctx.note(req, { completionTokens });
    };
  };
  const usage = (cs: Completion[]) => {
    const completion = cs.reduce((a, c) => a + c.usage.completionTokens, 0);
    const u = { prompt_tokens: plan.promptTokens, completion_tokens: completion, total_tokens: plan.promptTokens + completion };
    if (!grok.engine.prefixCache) return u;
    // Each prompt counts once, as in prompt_tokens; its choices started from the same cached prefix.
    const cached = new Map<number, number>();
    cs.forEach((c, i) => { const p = plan.jobs[i]!.prompt; cached.set(p, Math.max(cached.get(p) ?? 0, c.usage.cachedTokens)); });
    return { ...u, prompt_tokens_details: { cached_tokens: [...cached.values()].reduce((a, b) => a + b, 0) } };
  };

  if (!plan.stream) {
    let results: Completion[];
    try {
      results = await Promise.all(streams.map(async (s) => { const seen = clock(); for await (const c of s) seen(c.token); return s.result; }));
    } catch (e) {
      for (const s of streams) s.cancel();
      if (reply.raw.destroyed) { reply.hijack(); return; } // the client is gone: nobody to answer
      if (ac.signal.aborted) throw shuttingDown();
      throw engineError(e);
    }
    ctx.live.delete(ac);
    const choices = results.map((r, index) => {
      const lp = plan.logprobs
        ? f.logprobs({ tokens: r.tokens, logprobs: r.logprobs, ...(r.topLogprobs ? { top: r.topLogprobs } : {}), text: r.tokens.map((t) => grok.tokenText(t)) })
        : null;
      const choice = f.choice(index, r, lp);
      return plan.routing && r.routing ? { ...choice, ...routedFields(r.routing.tokens, plan.jobs[index]!.promptRouting ? r.routing.prompt : null) } : choice;
    });
    await reply.type('application/json').send({ id, object: f.object, created: Math.floor(Date.now() / 1000), model: modelId, system_fingerprint: null, choices, usage: usage(results), ...truncated });
    return;
  }

  const events = openEventStream(reply);
  const createdAt = Math.floor(Date.now() / 1000);
  let first = true;
  const chunk = (choices: unknown[]) => {
    events.send({
      id, object: f.chunkObject, created: createdAt, model: modelId, system_fingerprint: null, choices, ...(plan.includeUsage ? { usage: null } : {}),
      ...(first ? truncated : {}),
    });
    first = false;
  };
  try {
    const results = await Promise.all(streams.map(async (s, index) => {
      // With routing, every chunk carries the entries of its own token, and the first chunk of the choice that
      // carries the prompt's routing has it too (so that chunk waits until the prompt has been processed).
      let promptSent = !plan.jobs[index]!.promptRouting;
      const routing = (tokens: TokenRouting[]) => {
        if (!plan.routing) return {};
        const prompt = promptSent ? null : [...(s.promptRouting ?? [])];
        promptSent = true;
        return routedFields(tokens, prompt);
      };
      let opened = false;
      const open = () => {
        if (opened) return;
        opened = true;
        const opening = f.opening(index);
        if (opening) chunk([{ ...opening, ...routing([]) }]);
      };
      if (!plan.routing) open();
      const seen = clock();
      let atStart = f.trimsLeadingSpace;
      for await (const c of s) {
        seen(c.token);
        open();
        if (atStart) { c.text = c.text.trimStart(); atStart = c.text === ''; }
        if (c.text === '' && !plan.logprobs && !(plan.routing && c.routing)) continue;
        const lp = c.token === null || !plan.logprobs ? null
          : f.logprobs({ tokens: [c.token], logprobs: [c.logprob!], ...(c.top ? { top: [c.top] } : {}), text: [c.text] });
        chunk([{ ...f.delta(index, c.text, lp), ...routing(c.routing ? [c.routing] : []) }]);
      }
      const r = await s.result;
      open();
      chunk([{ ...f.closing(index, r.finishReason), ...routing([]) }]);
      return r;
    }));
    if (plan.includeUsage) events.send({ id, object: f.chunkObject, created: createdAt, model: modelId, system_fingerprint: null, choices: [], usage: usage(results) });
    events.done();
  } catch (e) {
    for (const s of streams) s.cancel();
    // Still connected (an engine error, or the server shutting down): say why, then end the stream.
    if (events.open) {
      const err: ApiError = ac.signal.aborted ? shuttingDown() : engineError(e);
      ctx.note(req, { error: err.message });
      events.fail(err.toJSON());
    }
  } finally {
    ctx.live.delete(ac);
  }
}
