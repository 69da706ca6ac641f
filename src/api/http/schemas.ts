/**
 * Request bodies (zod) and their translation into library options. Unknown fields are ignored, as OpenAI
 * clients send optional extras; a field we know but do not implement is refused rather than ignored.
 */
import { z } from 'zod';
import type { TextGenerateOptions } from '../index.js';
import type { ResponseFormat } from '../../engine/grammar.js';
import { invalid } from './errors.js';

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
  // OpenAI's structured output: plain text, any JSON object, or JSON valid for a schema (json_schema.schema).
  response_format: z.discriminatedUnion('type', [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      json_schema: z.object({ name: z.string().min(1).max(64), description: z.string().nullish(), schema: z.record(z.string(), z.unknown()).nullish(), strict: z.boolean().nullish() }),
    }),
  ]).nullish(),
  // Extensions beyond OpenAI's set (llama.cpp / vLLM spellings).
  top_k: z.number().int().min(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(10).nullish(),
  ignore_eos: z.boolean().nullish(),
  // vLLM / SGLang's spelling: per token, the experts it was routed to in every layer.
  return_routed_experts: z.boolean().nullish(),
  // With it: the prompt's routing too (default: only for prompts up to the server's --max-prompt-routing tokens).
  return_prompt_routed_experts: z.boolean().nullish(),
};

export const completionSchema = z.object({
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

export const chatSchema = z.object({
  ...common,
  messages: z.array(messageSchema).min(1),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(z.unknown()).nullish(),
  functions: z.array(z.unknown()).nullish(),
  // A chat longer than the context: "auto" drops the oldest turns (the server's default with --context-shift).
  truncation: z.enum(['auto', 'disabled']).nullish(),
});

export type CommonBody = z.infer<z.ZodObject<typeof common>>;
export type CompletionBody = z.infer<typeof completionSchema>;
export type ChatBody = z.infer<typeof chatSchema>;

/** Validate a body; the first problem becomes a 400 naming the field (OpenAI's param / code). */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid('the request body must be a JSON object');
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  // Inside a union (prompt: string | string[] | ids | ids[]) the parameter is the field itself.
  const param = (issue.path[0] === 'prompt' ? 'prompt' : issue.path.map(String).join('.')) || null;
  let msg = issue.message;
  if (issue.code === 'invalid_union') msg = 'has the wrong type';
  const missing = issue.path.length === 1 && (body as Record<string, unknown>)[String(issue.path[0])] === undefined;
  if (missing) msg = 'is required';
  throw invalid(`Invalid value for '${param ?? 'body'}': ${msg}`, param, missing ? 'missing_required_parameter' : 'invalid_value');
}

/** OpenAI seeds are 64-bit; the engine's RNG takes 32 bits. */
export function seed32(s: number): number {
  return ((s % 4294967296) + 4294967296) % 4294967296;
}

/** The sampling fields of a body as library options, on top of `base`. */
export function samplingOf(b: CommonBody, base: Partial<TextGenerateOptions>): TextGenerateOptions {
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
  if (b.return_routed_experts) o.routing = true;
  const f = responseFormatOf(b);
  if (f) o.responseFormat = f;
  return o;
}

/** The request's structured-output format (none for text); a json_schema without a schema is any JSON object. */
export function responseFormatOf(b: CommonBody): ResponseFormat | undefined {
  const r = b.response_format;
  if (!r || r.type === 'text') return undefined;
  if (r.type === 'json_object' || !r.json_schema.schema) return { type: 'json_object' };
  return { type: 'json_schema', schema: r.json_schema.schema };
}

/** The body's stop strings, then `extra` (the chat template's) not already among them. */
export function stopsOf(b: CommonBody, extra: readonly string[] = []): string[] {
  const s = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
  return [...s, ...extra.filter((e) => !s.includes(e))];
}

