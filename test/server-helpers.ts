/**
 * Shared by the server tests: an in-process server over the tiny-a fixture (reference kernels) with the
 * test tokenizer, and raw HTTP over a socket for what a client library would normalise (paths, targets).
 */
import net from 'node:net';
import OpenAI from 'openai';
import { Grok, type LoadModelOptions } from '../src/api/index.js';
import { createServer, type GrokServer, type ServerOptions } from '../src/api/server.js';
import { fixtureModel, testTokenizer } from './engine-helpers.js';
import type { GrokModel } from '../src/model/grok.js';

export const MODEL = 'tiny-a';

export interface Started {
  url: string;
  port: number;
  client: OpenAI;
  grok: Grok;
  server: GrokServer;
}

/** Start a server; `model` replaces the fixture model (e.g. a wrapper that breaks its logits). */
export async function startServer(
  opts: ServerOptions & Pick<LoadModelOptions, 'slots' | 'maxQueue' | 'prefixCacheBytes'> & { model?: GrokModel } = {},
  servers: GrokServer[] = [],
): Promise<Started> {
  const model = opts.model ?? await fixtureModel('tiny-a');
  const grok = new Grok('tiny-a', model, testTokenizer(model.config.vocabSize), 0, {
    slots: opts.slots ?? 8, maxQueue: opts.maxQueue ?? 64, prefillChunk: 16, ...(opts.prefixCacheBytes !== undefined ? { prefixCacheBytes: opts.prefixCacheBytes } : {}),
  });
  const server = createServer(grok, { modelId: MODEL, ...opts });
  servers.push(server);
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const port = Number(new URL(url).port);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: opts.apiKey ?? 'none', maxRetries: 0 });
  return { url, port, client, grok, server };
}

export interface RawResponse {
  status: number;
  headers: string;
  body: string;
  /** ms from connecting until the server closed the connection (or the read timed out). */
  ms: number;
}

/**
 * Send bytes exactly as given and read until the server closes (or `timeoutMs`). Writes `parts` one after
 * another `gapMs` apart (a trickling client). `localAddress`: connect from this address (on Linux any of
 * 127.0.0.0/8 is this machine, so 127.0.0.2 is a second client).
 */
export function rawHttp(port: number, parts: string | string[], o: { gapMs?: number; timeoutMs?: number; localAddress?: string } = {}): Promise<RawResponse> {
  const chunks = typeof parts === 'string' ? [parts] : parts;
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const sock = net.connect({ port, host: '127.0.0.1', ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    let data = '';
    let done = false;
    let timer: NodeJS.Timeout | null = null;
    const finish = () => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      clearTimeout(deadline);
      sock.destroy();
      const [head = '', ...rest] = data.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, headers: head, body: rest.join('\r\n\r\n'), ms: Date.now() - t0 });
    };
    const deadline = setTimeout(finish, o.timeoutMs ?? 5000);
    sock.on('data', (d) => { data += d.toString('latin1'); });
    sock.on('close', finish);
    sock.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (!done && data === '' && (code === 'ECONNREFUSED' || code === 'EADDRNOTAVAIL')) { done = true; clearTimeout(deadline); reject(e); }
    });
    sock.on('connect', () => {
      let i = 0;
      const next = () => {
        if (done || sock.destroyed || i >= chunks.length) return;
        sock.write(chunks[i++]!);
        if (i < chunks.length) timer = setTimeout(next, o.gapMs ?? 0);
      };
      next();
    });
  });
}

/** A one-request HTTP/1.1 message with Connection: close. */
export function request(method: string, target: string, o: { body?: string; headers?: Record<string, string> } = {}): string {
  const h: Record<string, string> = { host: 'localhost', connection: 'close', ...o.headers };
  if (o.body !== undefined) { h['content-type'] ??= 'application/json'; h['content-length'] = String(Buffer.byteLength(o.body)); }
  return `${method} ${target} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${o.body ?? ''}`;
}

export async function until(f: () => Promise<boolean> | boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}
