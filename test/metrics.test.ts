/** GET /metrics: Prometheus text whose numbers follow the traffic (requests by status, tokens, latencies, slots, queue). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import type { GrokServer } from '../src/api/server.js';
import { MODEL, startServer, until } from './server-helpers.js';

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
