/**
 * The OpenAI-compatible server, driven by the official `openai` client (and raw fetch for malformed input),
 * started in-process on 127.0.0.1 with a random port, over the tiny-a fixture model and a tokenizer of its
 * vocabulary size (test/engine-helpers.ts).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Grok } from '../src/api/index.js';
import { createServer, defaultModelId, type GrokServer, type ServerOptions } from '../src/api/server.js';
import { continuation, fixtureModel, golden, testTokenizer } from './engine-helpers.js';

const MODEL = 'tiny-a';
const servers: GrokServer[] = [];
after(async () => { for (const s of servers) await s.close(0); });

async function start(opts: { slots?: number; maxQueue?: number } & ServerOptions = {}) {
  const model = await fixtureModel('tiny-a');
  const grok = new Grok('tiny-a', model, testTokenizer(model.config.vocabSize), 0, { slots: opts.slots ?? 8, maxQueue: opts.maxQueue ?? 64, prefillChunk: 16 });
  const server = createServer(grok, { modelId: MODEL, ...opts });
  servers.push(server);
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: opts.apiKey ?? 'none', maxRetries: 0 });
  return { url, client, grok, server };
}

const shared = start();

async function post(url: string, path: string, body: string | object, headers: Record<string, string> = {}) {
  const r = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() as { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown> };
}

async function streamText(s: AsyncIterable<OpenAI.Completions.Completion>) {
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.Completions.CompletionUsage | null | undefined = null;
  for await (const c of s) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) { text += ch.text; if (ch.finish_reason) finish = ch.finish_reason; }
  }
  return { text, finish, usage };
}

test('completions on token ids give the fixture\'s golden greedy continuation', async () => {
  const { client, grok } = await shared;
  const g = golden('tiny-a');
  const r = await client.completions.create({ model: MODEL, prompt: g.greedy.prompt, max_tokens: 16, temperature: 0, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, continuation(grok.tokenizer!, g.greedy.prompt, g.greedy.continuation));
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.deepEqual(r.usage, { prompt_tokens: 8, completion_tokens: 16, total_tokens: 24 });
  const lp = r.choices[0].logprobs!;
  assert.deepEqual(lp.tokens, g.greedy.continuation.map((id) => grok.tokenText(id)));
  assert.equal(lp.token_logprobs!.length, 16);
  assert.equal(Object.keys(lp.top_logprobs![0]).length, 2);
  assert.ok(lp.token_logprobs!.every((x) => x < 0));
});

test('chat completions use the documented transcript template', async () => {
  const { client, grok } = await shared;
  const messages = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'the people' }];
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  // The template written out by hand: system, user turn, then the assistant cue.
  const prompt = 'Be brief.\n\nHuman: the people\n\nAssistant:';
  assert.equal(r.usage!.prompt_tokens, grok.encode(prompt).length);
  const direct = await grok.complete(prompt, { temperature: 0, maxTokens: 12, stop: ['\nHuman:'] });
  assert.equal(r.choices[0].message.content, direct.text.trimStart()); // the space after "Assistant:" is dropped
  assert.equal(r.usage!.completion_tokens, direct.tokens.length);
});

test('streamed text equals non-streamed text for the same seed (completions and chat), with the usage chunk', async () => {
  const { client } = await shared;
  const req = { model: MODEL, prompt: 'the water was', max_tokens: 20, temperature: 1, seed: 7, top_p: 0.95 };
  const whole = await client.completions.create(req);
  const streamed = await streamText(await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } }));
  assert.equal(streamed.text, whole.choices[0].text);
  assert.equal(streamed.finish, whole.choices[0].finish_reason);
  assert.deepEqual(streamed.usage, whole.usage);

  const chatReq = { model: MODEL, messages: [{ role: 'user' as const, content: 'what time' }], max_tokens: 20, temperature: 0.9, seed: 11 };
  const chatWhole = await client.chat.completions.create(chatReq);
  let text = '';
  let role = '';
  let usage: OpenAI.Completions.CompletionUsage | null | undefined;
  for await (const c of await client.chat.completions.create({ ...chatReq, stream: true, stream_options: { include_usage: true } })) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) { text += ch.delta.content ?? ''; if (ch.delta.role) role = ch.delta.role; }
  }
  assert.equal(role, 'assistant');
  assert.equal(text, chatWhole.choices[0].message.content);
  assert.deepEqual(usage, chatWhole.usage);
  // n = 3 gives three choices, choice j seeded seed + j.
  const many = await client.completions.create({ ...req, n: 3 });
  assert.equal(many.choices.length, 3);
  assert.equal(many.choices[0].text, whole.choices[0].text);
  const seeded8 = await client.completions.create({ ...req, seed: 8 });
  assert.equal(many.choices[1].text, seeded8.choices[0].text);
});

test('32 concurrent streamed requests each return exactly what they return alone', async () => {
  const { client } = await shared;
  const words = ['the', 'people', 'water', 'time', 'way', 'day', 'man', 'work'];
  const reqs = Array.from({ length: 32 }, (_, i) => ({
    model: MODEL, prompt: `${words[i % 8]} ${words[(i * 3) % 8]} ${words[(i * 5 + 1) % 8]}`.repeat(1 + (i % 3)),
    max_tokens: 6 + (i % 5), temperature: i % 4 === 0 ? 0 : 1, seed: 1000 + i,
  }));
  const alone: string[] = [];
  for (const r of reqs) alone.push((await client.completions.create(r)).choices[0].text);
  const together = await Promise.all(reqs.map(async (r) => (await streamText(await client.completions.create({ ...r, stream: true }))).text));
  assert.deepEqual(together, alone);
});

test('malformed input → OpenAI-style errors with the right status', async () => {
  const { url } = await shared;
  const ok = { model: MODEL, prompt: 'the', max_tokens: 2 };
  const cases: [string, string | object, number, string | null, string | null][] = [
    ['/v1/completions', '{"model": "tiny-a", "prompt": ', 400, null, 'invalid_json'],
    ['/v1/completions', '[1, 2]', 400, null, null],
    ['/v1/completions', { ...ok, temperature: 'hot' }, 400, 'temperature', 'invalid_value'],
    ['/v1/completions', { ...ok, temperature: 3 }, 400, 'temperature', 'invalid_value'],
    ['/v1/completions', { ...ok, top_p: 1.5 }, 400, 'top_p', 'invalid_value'],
    ['/v1/completions', { ...ok, max_tokens: 0 }, 400, 'max_tokens', 'invalid_value'],
    ['/v1/completions', { ...ok, n: 0 }, 400, 'n', 'invalid_value'],
    ['/v1/completions', { ...ok, logprobs: 30 }, 400, 'logprobs', 'invalid_value'],
    ['/v1/completions', { ...ok, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'stop', 'invalid_value'],
    ['/v1/completions', { ...ok, logit_bias: { x: 1 } }, 400, 'logit_bias.x', 'invalid_value'],
    ['/v1/completions', { ...ok, prompt: [1, -2] }, 400, 'prompt', 'invalid_value'],
    ['/v1/completions', { ...ok, prompt: [600] }, 400, 'prompt', 'invalid_value'],
    ['/v1/completions', { model: MODEL }, 400, 'prompt', 'missing_required_parameter'],
    ['/v1/completions', { ...ok, prompt: new Array(8190).fill(5), max_tokens: 16 }, 400, 'prompt', 'context_length_exceeded'],
    // A prompt that fills the whole context leaves no room for even one token (no max_tokens given).
    ['/v1/completions', { model: MODEL, prompt: new Array(8192).fill(5) }, 400, 'prompt', 'context_length_exceeded'],
    ['/v1/chat/completions', { model: MODEL, messages: [] }, 400, 'messages', 'invalid_value'],
    ['/v1/chat/completions', { model: MODEL, messages: [{ role: 'robot', content: 'x' }] }, 400, 'messages.0.role', 'invalid_value'],
    ['/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'the' }], top_logprobs: 2 }, 400, 'top_logprobs', null],
    ['/v1/nothing', ok, 404, null, 'unknown_url'],
  ];
  for (const [path, body, status, param, code] of cases) {
    const r = await post(url, path, body);
    const what = `${path} ${typeof body === 'string' ? body : JSON.stringify(body).slice(0, 80)}`;
    assert.equal(r.status, status, what);
    assert.equal(typeof r.json.error?.message, 'string', what);
    assert.equal(r.json.error!.type, 'invalid_request_error', what);
    assert.equal(r.json.error!.param, param, what);
    if (code !== null) assert.equal(r.json.error!.code, code, what);
  }
  const wrongType = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
  assert.equal(wrongType.status, 415);
  assert.equal(((await wrongType.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
  // Oversized body on a server with a small limit.
  const small = await start({ bodyLimit: 4096 });
  const big = await post(small.url, '/v1/completions', { ...ok, prompt: 'x'.repeat(10_000) });
  assert.equal(big.status, 413);
  assert.equal(big.json.error!.code, 'request_too_large');
  // The official client surfaces them as typed errors.
  await assert.rejects((await shared).client.completions.create({ ...ok, temperature: 5 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.status === 400);
});

test('--api-key: 401 without the key, served with it; /health stays open', async () => {
  const s = await start({ apiKey: 'sekret' });
  const no = await post(s.url, '/v1/completions', { model: MODEL, prompt: 'the', max_tokens: 1 });
  assert.equal(no.status, 401);
  assert.equal(no.json.error!.code, 'invalid_api_key');
  const wrong = await post(s.url, '/v1/completions', { model: MODEL, prompt: 'the', max_tokens: 1 }, { authorization: 'Bearer nope' });
  assert.equal(wrong.status, 401);
  const r = await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 1 });
  assert.equal(r.choices.length, 1);
  const models = await s.client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
});

async function health(url: string) {
  return (await (await fetch(`${url}/health`)).json()) as { active: number; queued: number };
}

async function until(f: () => Promise<boolean>, ms = 2000) {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

test('a client abort mid-stream frees the slot and the next request is served', async () => {
  const s = await start({ slots: 1 });
  const ac = new AbortController();
  const stream = await s.client.completions.create(
    { model: MODEL, prompt: 'the', max_tokens: 5000, temperature: 1, seed: 3, ignore_eos: true, stream: true } as OpenAI.Completions.CompletionCreateParamsStreaming,
    { signal: ac.signal },
  );
  let chunks = 0;
  try {
    for await (const _ of stream) if (++chunks === 3) { ac.abort(); break; } // chunks already buffered would still arrive
  } catch (e) {
    assert.equal((e as Error).name, 'APIUserAbortError'); // the client either ends the loop or throws this
  }
  assert.equal(chunks, 3);
  assert.ok(await until(async () => (await health(s.url)).active === 0), 'slot freed after the disconnect');
  const g = golden('tiny-a');
  const next = await s.client.completions.create({ model: MODEL, prompt: g.greedy.prompt, max_tokens: 4, temperature: 0 });
  assert.equal(next.choices[0].text, continuation(s.grok.tokenizer!, g.greedy.prompt, g.greedy.continuation.slice(0, 4)));
});

test('a full queue answers 429', async () => {
  const s = await start({ slots: 1, maxQueue: 1 });
  const long = { model: MODEL, prompt: 'the', max_tokens: 5000, ignore_eos: true, stream: true } as OpenAI.Completions.CompletionCreateParamsStreaming;
  const acs = [new AbortController(), new AbortController()];
  const first = await s.client.completions.create(long, { signal: acs[0].signal });
  const second = await s.client.completions.create(long, { signal: acs[1].signal });
  assert.ok(await until(async () => { const h = await health(s.url); return h.active === 1 && h.queued === 1; }));
  await assert.rejects(s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 1 }),
    (e: unknown) => e instanceof OpenAI.RateLimitError && e.status === 429);
  for (const ac of acs) ac.abort();
  for (const st of [first, second]) {
    try { for await (const _ of st) { /* aborted */ } } catch (e) { assert.equal((e as Error).name, 'APIUserAbortError'); }
  }
  assert.ok(await until(async () => { const h = await health(s.url); return h.active === 0 && h.queued === 0; }));
  const r = await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 2 });
  assert.equal(r.choices[0].finish_reason, 'length');
});

test('graceful shutdown: running requests get the grace period, then are cancelled; the port closes', async () => {
  const s = await start({ slots: 2 });
  const stream = await s.client.completions.create(
    { model: MODEL, prompt: 'the', max_tokens: 5000, ignore_eos: true, stream: true } as OpenAI.Completions.CompletionCreateParamsStreaming);
  const t0 = Date.now();
  const closed = s.server.close(150);
  let text = '';
  try { for await (const c of stream) text += c.choices[0]?.text ?? ''; } catch { /* cut off by the shutdown */ }
  await closed;
  assert.ok(Date.now() - t0 >= 140, 'the grace period was given');
  assert.equal(s.grok.engine.activeCount, 0);
  await assert.rejects(fetch(`${s.url}/health`));
  assert.equal(defaultModelId('/x/tiny-a/ckpt-0'), 'tiny-a');
  assert.equal(defaultModelId('/pkg/models/default/model.gguf'), 'default');
  assert.equal(defaultModelId('/m/grok-1-Q8_0.gguf'), 'grok-1-Q8_0');
});
