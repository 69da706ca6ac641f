/**
 * Server-sent events in OpenAI's streaming format: `data: <json>\n\n` per event, `data: [DONE]` at the
 * end. Written on the raw socket (the reply is hijacked), headers sent at once so that a queued request
 * gets its 200 before its first token.
 */
import type { FastifyReply } from 'fastify';

export interface EventStream {
  /** Still connected and not ended. */
  readonly open: boolean;
  send(payload: unknown): void;
  /** End with `data: [DONE]`. */
  done(): void;
  /** End with a last event (an error) instead of [DONE]. */
  fail(payload: unknown): void;
}

export function openEventStream(reply: FastifyReply): EventStream {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  const open = () => !res.writableEnded && !res.destroyed;
  return {
    get open() { return open(); },
    send(payload) { if (open()) res.write(`data: ${JSON.stringify(payload)}\n\n`); },
    done() { if (open()) res.end('data: [DONE]\n\n'); },
    fail(payload) { if (open()) res.end(`data: ${JSON.stringify(payload)}\n\n`); },
  };
}
