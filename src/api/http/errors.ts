/**
 * Errors in OpenAI's shape ({"error": {message, type, param, code}}) with their HTTP status, and the
 * mapping of engine and fastify errors onto them.
 */
import { ContextLengthError, QueueFullError } from '../../engine/scheduler.js';
import { NonFiniteLogitsError, SamplingError } from '../../engine/sampling.js';
import { GrammarError } from '../../engine/grammar.js';

export interface ApiErrorOptions {
  /** OpenAI's error type; default invalid_request_error below 500, server_error from 500. */
  type?: string;
  /** The request field at fault. */
  param?: string | null;
  /** A machine-readable code (invalid_value, model_not_found, …). */
  code?: string | null;
}

export class ApiError extends Error {
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;

  constructor(readonly status: number, message: string, o: ApiErrorOptions = {}) {
    super(message);
    this.name = 'ApiError';
    this.type = o.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = o.param ?? null;
    this.code = o.code ?? null;
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A 400 invalid_request_error. */
export const invalid = (message: string, param: string | null = null, code: string | null = null): ApiError =>
  new ApiError(400, message, { param, code });

export const shuttingDown = (): ApiError => new ApiError(503, 'the server is shutting down', { code: 'shutting_down' });

/** The engine's option names as the API spells them. */
const API_PARAM: Record<string, string> = {
  temperature: 'temperature', topK: 'top_k', topP: 'top_p', minP: 'min_p', repetitionPenalty: 'repetition_penalty',
  presencePenalty: 'presence_penalty', frequencyPenalty: 'frequency_penalty', logitBias: 'logit_bias', topLogprobs: 'logprobs',
  responseFormat: 'response_format',
};

/** An engine / sampling error as the API reports it: a bad option is the client's 400, anything else a 500. */
export function engineError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof QueueFullError) return new ApiError(429, `the server is busy: ${e.message}`, { type: 'rate_limit_exceeded', code: 'queue_full' });
  if (e instanceof ContextLengthError) return invalid(e.message, 'prompt', 'context_length_exceeded');
  // The model's own output, whatever the request asked: the server's fault.
  if (e instanceof NonFiniteLogitsError) {
    return new ApiError(500, `the model produced invalid logits (${e.message}): a fault in the model, its weights or the kernels, not in the request`, { code: 'non_finite_logits' });
  }
  if (e instanceof GrammarError) return invalid(e.message, 'response_format', 'invalid_response_format');
  if (e instanceof SamplingError) {
    const param = API_PARAM[e.param] ?? null;
    const message = param ? e.message.replace(new RegExp(`^${e.param}\\b`), param) : e.message;
    return invalid(message, param, 'invalid_value');
  }
  if (e instanceof RangeError) return invalid(e.message);
  // A pipeline stage is down or stalled (src/api/pipeline StageDownError, by name: it crosses the worker boundary).
  if ((e as Error)?.name === 'StageDownError') return new ApiError(503, `a pipeline stage is unavailable: ${(e as Error).message}`, { code: 'stage_unavailable' });
  return new ApiError(500, `generation failed: ${(e as Error).message}`);
}

/** fastify's own errors (body parsing, limits) in OpenAI's shape. */
export function fromFastifyError(err: Error & { statusCode?: number; code?: string }, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  const status = err.statusCode ?? 500;
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return new ApiError(413, `the request body is larger than ${bodyLimit} bytes`, { code: 'request_too_large' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return invalid('We could not parse the JSON body of your request: it is not valid JSON', null, 'invalid_json');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return new ApiError(415, 'the request body must be JSON (Content-Type: application/json)', { code: 'unsupported_media_type' });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY': return invalid('the request body is empty; expected a JSON object', null, 'invalid_json');
    default:
  }
  if (err instanceof SyntaxError) return invalid('We could not parse the JSON body of your request: it is not valid JSON', null, 'invalid_json');
  if (status >= 400 && status < 500) return new ApiError(status, err.message, { type: 'invalid_request_error' });
  return new ApiError(500, `internal error: ${err.message}`);
}
