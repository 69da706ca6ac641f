/**
 * GET /metrics: Prometheus text whose numbers follow the traffic (requests by status, tokens, latencies, slots, queue);
 * abandoned requests (499) and time-outs (408) counted and logged with the status the client really got.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import type { GrokServer } from '../src/api/server.js';
import { MODEL, rawHttp, startServer, until } from './server-helpers.js';

const servers: GrokServer[] = [];
after(async () => { for (const s of servers) await s.close(0); });

/** Samples by their full name with labels: `grok_requests_total{route="/v1/completions",status="200"}` → value. */
async function scrape(url: string, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const r = await fetch(`${url}/metrics`, { headers });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const m = new Map<string, number>();
  for (const line of (await r.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    const v = Number(line.slice(i + 1));
    assert.ok(Number.isFinite(v), line);
    m.set(line.slice(0, i), v);
  }
  return m;
}
const get = (m: Map<string, number>, k: string) => m.get(k) ?? 0;
const ok = 'grok_requests_total{route="/v1/completions",status="200"}';
const bad = 'grok_requests_total{route="/v1/completions",status="400"}';

test('metrics move with traffic', async () => {
  const s = await startServer({ metrics: true, slots: 1 }, servers);
  const before = await scrape(s.url);
  assert.equal(get(before, 'grok_slots'), 1);
  assert.ok(before.has('grok_model_load_seconds'));
  assert.equal(get(before, 'grok_generated_tokens_total'), 0);

  const a = await s.client.completions.create({ model: MODEL, prompt: 'the people', max_tokens: 5, temperature: 0, ignore_eos: true } as OpenAI.Completions.CompletionCreateParamsNonStreaming);
  let streamed = 0;
  for await (const c of await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 4, n: 2, temperature: 1, seed: 2, stream: true, ignore_eos: true } as OpenAI.Completions.CompletionCreateParamsStreaming)) streamed += c.choices.length;
  assert.ok(streamed > 0);
  await assert.rejects(s.client.completions.create({ model: MODEL, prompt: 'the', temperature: 9 }));
  const after1 = await scrape(s.url);
  assert.equal(get(after1, ok) - get(before, ok), 2);
  assert.equal(get(after1, bad) - get(before, bad), 1);
  assert.equal(get(after1, 'grok_generated_tokens_total'), a.usage!.completion_tokens + 2 * 4);
  assert.equal(get(after1, 'grok_prompt_tokens_total'), a.usage!.prompt_tokens + s.grok.encode('the').length);
  assert.equal(get(after1, 'grok_time_to_first_token_seconds_count'), 2, 'one first token per request');
  assert.equal(get(after1, 'grok_time_per_output_token_seconds_count'), (5 - 1) + 2 * (4 - 1), 'gaps between the tokens of each choice');
  assert.ok(get(after1, 'grok_time_to_first_token_seconds_sum') > 0);
  assert.equal(get(after1, 'grok_time_to_first_token_seconds_bucket{le="+Inf"}'), 2);
  assert.ok(get(after1, 'grok_request_duration_seconds_count') >= 4); // includes the first scrape

  // Gauges: one long generation holds the single slot, a second one waits.
  const acs = [new AbortController(), new AbortController()];
  const long = { model: MODEL, prompt: 'the', max_tokens: 5000, ignore_eos: true, stream: true } as OpenAI.Completions.CompletionCreateParamsStreaming;
  const streams = await Promise.all(acs.map((ac) => s.client.completions.create(long, { signal: ac.signal })));
  assert.ok(await until(async () => { const m = await scrape(s.url); return get(m, 'grok_slots_busy') === 1 && get(m, 'grok_queue_length') === 1; }));
  for (const ac of acs) ac.abort();
  for (const st of streams) { try { for await (const _ of st) { /* aborted */ } } catch { /* APIUserAbortError */ } }
  assert.ok(await until(async () => { const m = await scrape(s.url); return get(m, 'grok_slots_busy') === 0 && get(m, 'grok_queue_length') === 0; }));
});

test('/metrics is off by default, and needs the API key when one is set', async () => {
  const off = await startServer({}, servers);
  assert.equal((await fetch(`${off.url}/metrics`)).status, 404);
  const keyed = await startServer({ metrics: true, apiKey: 'k' }, servers);
  assert.equal((await fetch(`${keyed.url}/metrics`)).status, 401);
  assert.ok((await scrape(keyed.url, { authorization: 'Bearer k' })).has('grok_slots'));
});

test('a client that goes away is counted and logged as 499, one too slow to send its request as 408', async () => {
  const lines: Record<string, unknown>[] = [];
  const log = { format: 'json' as const, stream: { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) } };
  const s = await startServer({ metrics: true, log, requestTimeoutMs: 600, headersTimeoutMs: 400, idleTimeoutMs: 300 }, servers);
  const long = { model: MODEL, prompt: 'the', max_tokens: 5000, ignore_eos: true };
  // Streamed (its 200 already sent), abandoned after a few chunks.
  const ac = new AbortController();
  const stream = await s.client.completions.create({ ...long, stream: true } as OpenAI.Completions.CompletionCreateParamsStreaming, { signal: ac.signal });
  let chunks = 0;
  try { for await (const _ of stream) if (++chunks === 3) { ac.abort(); break; } } catch { /* APIUserAbortError */ }
  assert.equal(chunks, 3);
  assert.ok(await until(() => s.grok.engine.activeCount === 0));
  // Not streamed, abandoned while it generates.
  const ac2 = new AbortController();
  const whole = s.client.completions.create(long as OpenAI.Completions.CompletionCreateParamsNonStreaming, { signal: ac2.signal });
  assert.ok(await until(() => s.grok.engine.activeCount === 1));
  ac2.abort();
  await assert.rejects(whole);
  // A body trickling in past the request time-out, and headers that never end: both answered 408.
  const head = 'POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n';
  const slow = await rawHttp(s.port, [head, ...Array.from({ length: 40 }, () => ' ')], { gapMs: 100, timeoutMs: 8000 });
  assert.equal(slow.status, 408);
  assert.equal((await rawHttp(s.port, ['POST /v1/completions HTTP/1.1\r\nhost: x\r\n'], { timeoutMs: 5000 })).status, 408);
  // A connection that sends nothing is closed too, but made no request: not counted (nor are the spare
  // connections the openai client opens and leaves unused).
  await rawHttp(s.port, [], { timeoutMs: 5000 });

  const mine = () => lines.filter((l) => l.route !== '/metrics');
  assert.ok(await until(() => mine().length === 4, 3000), JSON.stringify(lines));
  assert.deepEqual(mine().map((l) => [l.method, l.route, l.status, l.aborted ?? false]).sort(), [
    ['-', '(no request)', 408, false],
    ['POST', '/v1/completions', 408, false],
    ['POST', '/v1/completions', 499, true],
    ['POST', '/v1/completions', 499, true],
  ]);
  const m = await scrape(s.url);
  const requests = (route: string, status: number) => get(m, `grok_requests_total{route="${route}",status="${status}"}`);
  assert.equal(requests('/v1/completions', 499), 2);
  assert.equal(requests('/v1/completions', 408), 1);
  assert.equal(requests('(no request)', 408), 1);
  assert.equal(requests('/v1/completions', 200), 0, 'no abandoned request counted as answered');
});
