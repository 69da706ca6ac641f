/**
 * The OpenAI routes: request body → prompts and per-choice options → generation. Validation happens
 * here, before anything is queued.
 */
import type { FastifyInstance } from 'fastify';
import { chatTemplateFor, renderChat, type ChatMessage, type ChatTemplate } from '../chat.js';
import { ApiError, engineError, invalid } from './errors.js';
import { chatFormat, completionFormat, type ChoiceFormat } from './format.js';
import type { TextModel } from '../index.js';
import { respond, type GenerationContext, type Job } from './generation.js';
import {
  chatSchema, completionSchema, parseBody, responseFormatOf, samplingOf, seed32, stopsOf, type CommonBody,
} from './schemas.js';

export interface RouteOptions {
  /** null: the one the model's family comes with (chatTemplateFor). */
  template: ChatTemplate | null;
  maxChoices: number;
  strictModel: boolean;
  /** return_routed_experts sends a longer prompt's routing only when return_prompt_routed_experts asks. */
  maxPromptRoutingTokens: number;
  /** A chat that does not fit the context loses its oldest turns unless the request says truncation: "disabled". */
  contextShift: boolean;
}

/**
 * With truncation, the completion room a chat keeps when max_tokens is omitted: turns are dropped until
 * this much is left (the completion then gets all that is left).
 */
export function minCompletionTokens(contextLength: number): number {
  return Math.max(1, Math.min(256, Math.floor(contextLength / 4)));
}

/**
 * Context overflow policy for a chat (llama-server's context shift, done on whole turns): the oldest turns
 * are dropped until the rendered chat leaves `room` tokens in the context. A turn is a user message with the
 * assistant messages after it, so no reply is left without its question. System and developer
 * messages are never dropped, nor the last user message and what follows it. Returns the token ids and how
 * many messages were dropped (0 when it fits as it is); null when even dropping every earlier turn does not
 * make it fit.
 */
export function shiftChat(
  messages: readonly ChatMessage[], encode: (chat: readonly ChatMessage[]) => number[], contextLength: number, room: number,
): { ids: number[]; dropped: number } | null {
  const fits = (ids: number[]) => ids.length + room <= contextLength;
  const whole = encode(messages);
  if (fits(whole)) return { ids: whole, dropped: 0 };
  let lastUser = -1;
  messages.forEach((m, i) => { if (m.role === 'user') lastUser = i; });
  // The droppable turns, oldest first, as lists of message indices (replies before the first user message: a turn of their own).
  const turns: number[][] = [];
  messages.forEach((m, i) => {
    if (i >= lastUser || m.role === 'system' || m.role === 'developer') return;
    if (m.role === 'user' || turns.length === 0) turns.push([i]);
    else turns[turns.length - 1]!.push(i);
  });
  const tried = new Map<number, number[]>();
  const without = (k: number) => {
    let ids = tried.get(k);
    if (!ids) {
      const gone = new Set(turns.slice(0, k).flat());
      ids = encode(messages.filter((_, i) => !gone.has(i)));
      tried.set(k, ids);
    }
    return ids;
  };
  // Fewer tokens with every turn dropped: binary search for the fewest turns that fit (log n encodings).
  if (turns.length === 0 || !fits(without(turns.length))) return null;
  let lo = 1, hi = turns.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fits(without(mid))) hi = mid; else lo = mid + 1;
  }
  return { ids: without(lo), dropped: turns.slice(0, lo).flat().length };
}

export function registerOpenAiRoutes(app: FastifyInstance, ctx: GenerationContext, o: RouteOptions): void {
  const { modelId } = ctx;
  const created = Math.floor(Date.now() / 1000);
  const modelCard = { id: modelId, object: 'model', created, owned_by: 'grok-ts' };
  /** The response shapes, made once the model is there (they name tokens with its tokenizer). */
  let formats: { grok: TextModel; text: ChoiceFormat; chat: ChoiceFormat } | null = null;
  const formatsOf = (grok: TextModel) => {
    if (formats?.grok !== grok) formats = { grok, text: completionFormat(grok), chat: chatFormat(grok) };
    return formats;
  };

  app.get('/v1/models', async () => ({ object: 'list', data: [modelCard] }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (req) => {
    if (req.params.id !== modelId) throw new ApiError(404, `The model '${req.params.id}' does not exist`, { param: 'model', code: 'model_not_found' });
    return modelCard;
  });

  const checkBody = (b: CommonBody) => {
    if (o.strictModel && b.model !== modelId) {
      throw new ApiError(404, `The model '${b.model}' does not exist; this server serves '${modelId}'`, { param: 'model', code: 'model_not_found' });
    }
    if (b.return_prompt_routed_experts != null && !b.return_routed_experts) {
      throw invalid('return_prompt_routed_experts requires return_routed_experts: true', 'return_prompt_routed_experts');
    }
  };
  /** Whether the response carries this prompt's routing (once, in the prompt's first choice). */
  const promptRouting = (b: CommonBody, ids: readonly number[]): boolean =>
    b.return_routed_experts === true && (b.return_prompt_routed_experts ?? ids.length <= o.maxPromptRoutingTokens);
  const needTokenizer = (grok: TextModel) => {
    if (!grok.tokenizer) throw invalid('this model has no tokenizer: send prompts as token ids', 'prompt', 'no_tokenizer');
  };
  /** Structured output: the schema compiled before anything is generated, so a bad one is a 400, not a failed stream. */
  const checkFormat = async (grok: TextModel, b: CommonBody) => {
    const f = responseFormatOf(b);
    if (!f) return;
    if (!grok.tokenizer) throw invalid('response_format needs the model\'s tokenizer: this model has none', 'response_format', 'no_tokenizer');
    try {
      await grok.checkResponseFormat(f);
    } catch (e) {
      throw engineError(e);
    }
  };

  /**
   * The max_tokens to use for a prompt: the request's, else `fallback`, else what the context leaves. A
   * prompt that cannot fit is a 400 (like OpenAI), whose numbers add up to what was asked.
   */
  const fit = (grok: TextModel, ids: number[], maxTokens: number | null | undefined, fallback: number | null): number => {
    const ctxLen = grok.config.contextLength;
    if (ids.length === 0) throw invalid('the prompt is empty', 'prompt');
    for (const id of ids) {
      if (id >= grok.config.vocabSize) throw invalid(`prompt token ${id} is outside the vocabulary (0…${grok.config.vocabSize - 1})`, 'prompt', 'invalid_value');
    }
    const P = ids.length;
    const intro = `This model's maximum context length is ${ctxLen} tokens.`;
    if (maxTokens == null && fallback === null) {
      // Nothing was asked for the completion: it gets what is left, which must be at least one token.
      if (P >= ctxLen) {
        throw invalid(`${intro} However, your prompt has ${P} tokens, which leaves no room for the completion (at least 1 token). Please reduce the prompt.`, 'prompt', 'context_length_exceeded');
      }
      return ctxLen - P;
    }
    const want = maxTokens ?? fallback!;
    if (P + want > ctxLen) {
      const which = maxTokens == null ? `${want} for the completion (the default max_tokens)` : `${want} for the completion`;
      throw invalid(`${intro} However, you requested ${P + want} tokens (${P} in the prompt, ${which}). Please reduce the prompt or max_tokens.`, 'prompt', 'context_length_exceeded');
    }
    return want;
  };

  app.post('/v1/completions', async (req, reply) => {
    const b = parseBody(completionSchema, req.body);
    checkBody(b);
    const grok = ctx.model();
    if (b.echo) throw invalid('echo is not supported', 'echo', 'unsupported_parameter');
    if (b.suffix) throw invalid('suffix is not supported', 'suffix', 'unsupported_parameter');
    const n = b.n ?? 1;
    if (b.best_of != null && b.best_of !== n) throw invalid('best_of other than n is not supported', 'best_of', 'unsupported_parameter');
    const p = b.prompt;
    let prompts: number[][];
    if (typeof p === 'string') { needTokenizer(grok); prompts = [grok.encode(p)]; }
    else if (p.length > 0 && typeof p[0] === 'string') { needTokenizer(grok); prompts = (p as string[]).map((s) => grok.encode(s)); }
    else if (p.length > 0 && typeof p[0] === 'number') prompts = [p as number[]];
    else prompts = p as number[][];
    if (prompts.length * n > o.maxChoices) throw invalid(`at most ${o.maxChoices} choices per request (prompts × n)`, 'n');
    const stop = stopsOf(b);
    if (stop.length > 0) needTokenizer(grok);
    await checkFormat(grok, b);
    const jobs: Job[] = [];
    let promptTokens = 0;
    prompts.forEach((ids, pi) => {
      const maxTokens = fit(grok, ids, b.max_tokens, 16);
      promptTokens += ids.length;
      for (let j = 0; j < n; j++) {
        const opts = samplingOf(b, { maxTokens, ...(stop.length ? { stop } : {}), ...(b.logprobs ? { topLogprobs: b.logprobs } : {}) });
        if (b.seed != null) opts.seed = seed32(b.seed + pi * n + j);
        jobs.push({ ids, opts, prompt: pi, promptRouting: j === 0 && promptRouting(b, ids) });
      }
    });
    await respond(ctx, req, reply, {
      format: formatsOf(grok).text, jobs, stream: b.stream === true, includeUsage: b.stream_options?.include_usage === true,
      logprobs: b.logprobs != null, promptTokens, routing: b.return_routed_experts === true,
    });
  });

  app.post('/v1/chat/completions', async (req, reply) => {
    const b = parseBody(chatSchema, req.body);
    checkBody(b);
    const grok = ctx.model();
    if ((b.tools && b.tools.length > 0) || (b.functions && b.functions.length > 0)) throw invalid('tools / functions are not supported', 'tools', 'unsupported_parameter');
    if (b.top_logprobs && !b.logprobs) throw invalid('top_logprobs requires logprobs: true', 'top_logprobs');
    needTokenizer(grok);
    const n = b.n ?? 1;
    if (n > o.maxChoices) throw invalid(`at most ${o.maxChoices} choices per request`, 'n');
    const messages: ChatMessage[] = b.messages.map((m) => ({
      role: m.role,
      content: m.content == null ? '' : typeof m.content === 'string' ? m.content : m.content.map((part) => part.text).join(''),
    }));
    const template = o.template ?? chatTemplateFor(grok.config);
    const asked = b.max_completion_tokens ?? b.max_tokens;
    const ctxLen = grok.config.contextLength;
    let ids: number[];
    let dropped = 0;
    const hint = 'send truncation: "auto" (or start the server with --context-shift) to drop the oldest turns';
    if ((b.truncation ?? (o.contextShift ? 'auto' : 'disabled')) === 'auto') {
      const room = asked ?? minCompletionTokens(ctxLen);
      const shifted = shiftChat(messages, (m) => grok.encode(renderChat(m, template)), ctxLen, room);
      if (!shifted) {
        const kept = messages.filter((m, i) => m.role === 'system' || m.role === 'developer' || i >= messages.map((x) => x.role).lastIndexOf('user'));
        const P = grok.encode(renderChat(kept, template)).length;
        throw invalid(`This model's maximum context length is ${ctxLen} tokens. The system messages and the last user message alone take ${P} tokens, which with ${room} for the completion${asked == null ? ' (the least kept when max_tokens is omitted)' : ''} make ${P + room}, even with every earlier turn dropped. Please shorten them or reduce max_tokens.`, 'messages', 'context_length_exceeded');
      }
      ({ ids, dropped } = shifted);
      if (dropped > 0) ctx.note(req, { truncatedMessages: dropped });
    } else {
      ids = grok.encode(renderChat(messages, template));
    }
    let maxTokens: number;
    try {
      maxTokens = fit(grok, ids, asked, null);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'context_length_exceeded') throw invalid(`${e.message} Or ${hint}.`, 'messages', e.code);
      throw e;
    }
    const stop = stopsOf(b, template.stop);
    await checkFormat(grok, b);
    const jobs = Array.from({ length: n }, (_, j): Job => {
      const opts = samplingOf(b, { maxTokens, stop, ...(b.logprobs && b.top_logprobs ? { topLogprobs: b.top_logprobs } : {}) });
      if (b.seed != null) opts.seed = seed32(b.seed + j);
      return { ids, opts, prompt: 0, promptRouting: j === 0 && promptRouting(b, ids) };
    });
    await respond(ctx, req, reply, {
      format: formatsOf(grok).chat, jobs, stream: b.stream === true, includeUsage: b.stream_options?.include_usage === true,
      logprobs: b.logprobs === true, promptTokens: ids.length, routing: b.return_routed_experts === true, truncatedMessages: dropped,
    });
  });
}
