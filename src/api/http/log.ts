/**
 * The server's request log: one line per request through fastify's logger (pino), as JSON lines or as
 * text. Text is pino's JSON re-rendered by a small destination stream, so both formats carry the same
 * fields and no pretty-printer dependency is needed.
 *
 *   2025-01-01T12:00:00.000Z INFO POST /v1/completions 200 prompt=8 completion=16 ttft=12ms 45ms
 */

export type LogFormat = 'text' | 'json';

export interface LogOptions {
  format?: LogFormat;
  /** Where lines go (default process.stderr). */
  stream?: { write(line: string): unknown };
}

/** What the request log line says about one request (filled in as the request runs). */
export interface RequestLogFields {
  method: string;
  /** The matched route pattern (never the raw URL, whose query may carry anything). */
  route: string;
  /** The HTTP status; 499 when the client went away before the response was complete (as nginx). */
  status: number;
  promptTokens?: number;
  completionTokens?: number;
  /** Request received → first generated token, ms. */
  ttftMs?: number;
  durationMs: number;
  /** Chat messages left out to fit the context (truncation: "auto" / --context-shift). */
  truncatedMessages?: number;
  /** The client went away before the response was complete. */
  aborted?: boolean;
  /** The error a stream ended with (its HTTP status was already sent). */
  error?: string;
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One pino JSON line as text; lines that are not request lines keep their message. */
export function formatTextLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const time = typeof o.time === 'number' ? new Date(o.time).toISOString() : '';
  const level = LEVELS[o.level as number] ?? String(o.level);
  const parts = [time, level];
  if (typeof o.method === 'string') {
    parts.push(o.method, String(o.route), String(o.status));
    if (o.promptTokens !== undefined) parts.push(`prompt=${o.promptTokens}`);
    if (o.completionTokens !== undefined) parts.push(`completion=${o.completionTokens}`);
    if (o.ttftMs !== undefined) parts.push(`ttft=${Math.round(o.ttftMs as number)}ms`);
    parts.push(`${Math.round(o.durationMs as number)}ms`);
    if (o.truncatedMessages) parts.push(`truncated_messages=${o.truncatedMessages}`);
    if (o.aborted) parts.push('aborted');
    if (o.error) parts.push(`error=${JSON.stringify(o.error)}`);
  } else {
    parts.push(String(o.msg ?? ''));
    const err = o.err as { message?: string } | undefined;
    if (err?.message) parts.push(err.message);
  }
  return `${parts.filter((p) => p !== '').join(' ')}\n`;
}

/** Request lines, and fastify's own warnings and errors; not its informational chatter ("Server listening at"). */
function wanted(line: string): boolean {
  try {
    const o = JSON.parse(line) as { level?: number; method?: unknown };
    return o.method !== undefined || (o.level ?? 0) >= 40;
  } catch {
    return true;
  }
}

/** fastify's `logger` option for these log options (false: no logging). */
export function loggerOptions(o: LogOptions | undefined): false | { level: string; stream: { write(line: string): void } } {
  if (!o) return false;
  const out = o.stream ?? process.stderr;
  const render = o.format === 'json' ? (line: string) => line : formatTextLine;
  return { level: 'info', stream: { write: (line: string) => { if (wanted(line)) out.write(render(line)); } } };
}
