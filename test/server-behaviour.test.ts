/**
 * Server behaviour a first-time user meets (issue "First contact"): the request log, --max-queue 0 on an
 * idle server, bad response_format refused, any model name served (or 404 with strictModel), the real
 * listening address, and the `grok serve` command's warnings.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import OpenAI from 'openai';
import { createServer, isLoopbackHost, reachableUrls, type GrokServer } from '../src/api/server.js';
import { formatTextLine } from '../src/api/http/log.js';
import { MODEL, startServer, until } from './server-helpers.js';
import { fixtureDir } from './engine-helpers.js';
import { loadModel as loadGrokModel } from '../src/model/loader.js';

const servers: GrokServer[] = [];
after(async () => { for (const s of servers) await s.close(0); });

async function post(url: string, path: string, body: object) {
  const r = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() as Record<string, unknown> & { error?: { param: string | null; code: string | null; message: string } } };
}

test('one request log line per request: method, route, status, tokens, time to first token, duration', async () => {
  const lines: string[] = [];
  const s = await startServer({ log: { format: 'json', stream: { write: (l: string) => lines.push(l) } }, apiKey: 'k' }, servers);
  await s.client.completions.create({ model: MODEL, prompt: 'the people', max_tokens: 5, temperature: 0 });
  const stream = await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 3, temperature: 0, stream: true });
  for await (const _ of stream) { /* drain */ }
  await fetch(`${s.url}/%76%31/models`); // no key: 401, logged with its matched route
  assert.ok(await until(() => lines.length >= 3));
  const [a, b, c] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const x of [a, b]) {
    assert.equal(x.method, 'POST');
    assert.equal(x.route, '/v1/completions');
    assert.equal(x.status, 200);
    assert.equal(typeof x.ttftMs, 'number');
    assert.ok((x.durationMs as number) >= (x.ttftMs as number));
    assert.equal(x.level, 30);
  }
  assert.equal(a.promptTokens, s.grok.encode('the people').length);
  assert.equal(a.completionTokens, 5);
  assert.equal(b.completionTokens, 3);
  assert.deepEqual([c.method, c.route, c.status], ['GET', '/v1/models', 401]);
  // The text format renders the same fields on one line.
  assert.match(formatTextLine(lines[0]!), /^\d{4}-\d\d-\d\dT\S+ INFO POST \/v1\/completions 200 prompt=\d+ completion=5 ttft=\d+ms \d+ms\n$/);
});

test('--max-queue 0: an idle server serves; a request that would wait gets 429', async () => {
  const s = await startServer({ slots: 1, maxQueue: 0 }, servers);
  const r = await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 2 });
  assert.equal(r.choices.length, 1);
  const ac = new AbortController();
  const long = await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 5000, ignore_eos: true, stream: true } as OpenAI.Completions.CompletionCreateParamsStreaming, { signal: ac.signal });
  assert.ok(await until(() => s.grok.engine.activeCount === 1));
  await assert.rejects(s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 1 }), (e: unknown) => e instanceof OpenAI.RateLimitError);
  ac.abort();
  try { for await (const _ of long) { /* aborted */ } } catch { /* APIUserAbortError */ }
  assert.ok(await until(() => s.grok.engine.activeCount === 0));
  assert.equal((await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 1 })).choices.length, 1);
});

test('response_format: an unknown type or a schema that cannot be used is a clear 400; text is plain generation', async () => {
  const s = await startServer({}, servers);
  for (const [path, body, code] of [
    ['/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'the' }], max_tokens: 2, response_format: { type: 'xml' } }, null],
    ['/v1/completions', { model: MODEL, prompt: 'the', max_tokens: 2, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { $ref: '#/$defs/none' } } } } } }, 'invalid_response_format'],
    ['/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'the' }], max_tokens: 2, response_format: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'number', maximum: 1 } } } }, 'invalid_response_format'],
  ] as const) {
    const r = await post(s.url, path, body);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.match(r.json.error!.param ?? '', /^response_format/);
    if (code) assert.equal(r.json.error!.code, code);
  }
  const ok = await post(s.url, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'the' }], max_tokens: 2, response_format: { type: 'text' } });
  assert.equal(ok.status, 200);
});

test('any model name is served (the served id is reported back); strictModel keeps the 404', async () => {
  const s = await startServer({}, servers);
  const r = await s.client.completions.create({ model: 'gpt-4o', prompt: 'the', max_tokens: 2 });
  assert.equal(r.model, MODEL);
  const c = await s.client.chat.completions.create({ model: 'whatever', messages: [{ role: 'user', content: 'the' }], max_tokens: 2 });
  assert.equal(c.model, MODEL);
  const strict = await startServer({ strictModel: true }, servers);
  const e = await post(strict.url, '/v1/completions', { model: 'gpt-4o', prompt: 'the', max_tokens: 2 });
  assert.equal(e.status, 404);
  assert.equal(e.json.error!.code, 'model_not_found');
  assert.equal(e.json.error!.param, 'model');
});

test('listening on 0.0.0.0 reports 0.0.0.0 and the interfaces it is reachable at', async () => {
  const { grok } = await startServer({}, servers);
  const server = createServer(grok);
  servers.push(server);
  const url = await server.listen({ host: '0.0.0.0', port: 0 });
  const port = new URL(url).port;
  assert.equal(url, `http://0.0.0.0:${port}`);
  assert.ok(reachableUrls(url).includes(`http://127.0.0.1:${port}`), reachableUrls(url).join(' '));
  assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
  assert.deepEqual(reachableUrls('http://127.0.0.1:9'), ['http://127.0.0.1:9']);
  for (const h of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.1.2.3']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '::', '192.168.1.2', 'example.org']) assert.ok(!isLoopbackHost(h), h);
});

test('grok serve --host 0.0.0.0 without --api-key: warns, prints the real address, logs requests', async () => {
  const cli = path.resolve('dist/src/cli/main.js');
  const child = spawn(process.execPath, [cli, 'serve', '--model', path.join(fixtureDir('tiny-b'), 'model.gguf'), '--host', '0.0.0.0', '--port', '0', '--kernels', 'reference'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  try {
    assert.ok(await until(() => /serving .* on http:\/\//.test(err), 20_000), err);
    assert.match(err, /warning: listening on 0\.0\.0\.0 without --api-key/);
    const port = /on http:\/\/0\.0\.0\.0:(\d+)/.exec(err)?.[1];
    assert.ok(port, `the real listening address: ${err}`);
    assert.match(err, new RegExp(`http://127\\.0\\.0\\.1:${port}`));
    const r = await fetch(`http://127.0.0.1:${port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'x', prompt: [5, 6], max_tokens: 2 }) });
    assert.equal(r.status, 200);
    assert.ok(await until(() => / INFO POST \/v1\/completions 200 prompt=2 completion=\d ttft=\d+ms \d+ms/.test(err), 5000), err);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
  }
});

test('n choices prefill their prompt once (chat and completions); choice j is seeded seed + j as before', async () => {
  const s = await startServer({}, servers);
  const e = s.grok.engine;
  const prompt = 'the people of the water';
  const before = e.prefilledTokens;
  const many = await s.client.completions.create({ model: MODEL, prompt, n: 4, max_tokens: 6, temperature: 1, seed: 40 });
  assert.equal(e.prefilledTokens - before, s.grok.encode(prompt).length);
  for (let j = 0; j < 4; j++) {
    const one = await s.client.completions.create({ model: MODEL, prompt, max_tokens: 6, temperature: 1, seed: 40 + j });
    assert.equal(many.choices[j]!.text, one.choices[0]!.text);
  }
  const b2 = e.prefilledTokens;
  const chat = await s.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'the' }], n: 3, max_tokens: 4, seed: 1 });
  assert.equal(chat.choices.length, 3);
  assert.equal(e.prefilledTokens - b2, chat.usage!.prompt_tokens);
});

test('--cors ORIGIN: headers on responses (streamed too) and preflights answered without the key; others get none', async () => {
  const origin = 'http://page.example';
  const s = await startServer({ cors: origin, apiKey: 'k' }, servers);
  const pre = await fetch(`${s.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), origin);
  assert.match(pre.headers.get('access-control-allow-headers') ?? '', /authorization/);
  // Not a preflight: OPTIONS stays behind the key.
  assert.equal((await fetch(`${s.url}/v1/models`, { method: 'OPTIONS' })).status, 401);
  const auth = { authorization: 'Bearer k', origin, 'content-type': 'application/json' };
  const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: MODEL, prompt: 'the', max_tokens: 2 }) });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), origin);
  const st = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: MODEL, prompt: 'the', max_tokens: 2, stream: true }) });
  assert.equal(st.headers.get('access-control-allow-origin'), origin);
  await st.text();
  const other = await fetch(`${s.url}/health`, { headers: { origin: 'http://evil.example' } });
  assert.equal(other.headers.get('access-control-allow-origin'), null);
  const off = await startServer({}, servers);
  assert.equal((await fetch(`${off.url}/health`, { headers: { origin } })).headers.get('access-control-allow-origin'), null);
});

test('the web page: / and its files are served (public, even with a key); /info needs the key', async () => {
  const s = await startServer({ apiKey: 'k' }, servers);
  const page = await fetch(`${s.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  const html = await page.text();
  assert.match(html, /data-testid="prompt"/);
  for (const src of [...html.matchAll(/(?:src|href)="\.?\/?([\w.-]+\.(?:js|css))"/g)].map((m) => m[1]!)) {
    const r = await fetch(`${s.url}/${src}`);
    assert.equal(r.status, 200, src);
  }
  assert.equal((await fetch(`${s.url}/..%2fpackage.json`)).status, 401, 'nothing but the page files is public');
  assert.equal((await fetch(`${s.url}/info`)).status, 401);
  const info = await (await fetch(`${s.url}/info`, { headers: { authorization: 'Bearer k' } })).json() as Record<string, unknown>;
  assert.equal(info.model, MODEL);
  assert.equal(info.layers, 2);
  assert.equal(info.experts, 4);
  assert.equal(info.contextLength, 8192);
  assert.equal(typeof info.backend, 'string');
  const none = await startServer({ webRoot: false }, servers);
  assert.equal((await fetch(`${none.url}/`)).status, 404);
});

test('n = 16 choices print no Node warning (MaxListenersExceededWarning on the abort signal): whole, chat, streamed and abandoned', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const s = await startServer({ slots: 4 }, servers);
    const whole = await s.client.completions.create({ model: MODEL, prompt: 'the', n: 16, max_tokens: 2 });
    assert.equal(whole.choices.length, 16);
    const chat = await s.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'the' }], n: 16, max_tokens: 2 });
    assert.equal(chat.choices.length, 16);
    // Streamed, then abandoned mid-way: the one listener still cancels all 16 choices.
    const ac = new AbortController();
    const long = { model: MODEL, prompt: 'the', n: 16, max_tokens: 5000, ignore_eos: true, stream: true } as OpenAI.Completions.CompletionCreateParamsStreaming;
    const stream = await s.client.completions.create(long, { signal: ac.signal });
    let chunks = 0;
    // Stop reading at the abort: chunks already buffered would otherwise still arrive.
    try { for await (const _ of stream) if (++chunks === 20) { ac.abort(); break; } } catch { /* APIUserAbortError */ }
    assert.equal(chunks, 20);
    assert.ok(await until(() => s.grok.engine.activeCount === 0 && s.grok.engine.queuedCount === 0), 'every choice was cancelled');
    await new Promise((r) => setTimeout(r, 50)); // process warnings are emitted on a later tick
    assert.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
  }
});

test('a prompt that does not fit: the 400 says how many tokens, and its numbers are never negative', async () => {
  const { model } = await loadGrokModel(path.join(fixtureDir('tiny-a'), 'ckpt-0'), { contextLength: 64 });
  const s = await startServer({ model }, servers);
  const numbers = (m: string) => (m.match(/-?\d+/g) ?? []).map(Number);
  const words = (n: number) => Array.from({ length: n }, () => 'water').join(' ');
  // Chat without max_tokens: the completion gets what the context leaves, and here nothing is left.
  const content = words(80);
  const P = s.grok.encode(`Human: ${content}\n\nAssistant:`).length;
  assert.ok(P > 64);
  const chat = await post(s.url, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content }] });
  assert.equal(chat.status, 400);
  assert.equal(chat.json.error!.code, 'context_length_exceeded');
  assert.equal(chat.json.error!.param, 'messages');
  assert.match(chat.json.error!.message, new RegExp(`maximum context length is 64 tokens\\. However, your prompt has ${P} tokens, which leaves no room for the completion`));
  assert.ok(numbers(chat.json.error!.message).every((n) => n >= 0), chat.json.error!.message);
  // 64 prompt tokens leave no room for even max_tokens 1.
  const full = await post(s.url, '/v1/completions', { model: MODEL, prompt: Array(64).fill(5), max_tokens: 1 });
  assert.equal(full.status, 400);
  // With max_tokens: prompt + max_tokens = the total, each as asked.
  const asked = await post(s.url, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content }], max_tokens: 10 });
  assert.match(asked.json.error!.message, new RegExp(`you requested ${P + 10} tokens \\(${P} in the prompt, 10 for the completion\\)`));
  // Completions without max_tokens use OpenAI's default of 16, and say so.
  const dflt = await post(s.url, '/v1/completions', { model: MODEL, prompt: Array(60).fill(5) });
  assert.equal(dflt.status, 400);
  assert.match(dflt.json.error!.message, /you requested 76 tokens \(60 in the prompt, 16 for the completion \(the default max_tokens\)\)/);
  // What fits is served: chat without max_tokens gets the rest of the context.
  const fits = await s.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: words(5) }], ignore_eos: true } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
  const used = fits.usage!.prompt_tokens + fits.usage!.completion_tokens;
  assert.ok(fits.choices[0]!.finish_reason === 'length' ? used === 64 : used < 64, `${used} tokens, ${fits.choices[0]!.finish_reason}`);
  await assert.rejects(s.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }] }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
});

test('context shift: a chat longer than the context loses its oldest turns (not the system prompt or the last user message) and says how many', async () => {
  const { model } = await loadGrokModel(path.join(fixtureDir('tiny-a'), 'ckpt-0'), { contextLength: 64 });
  const lines: string[] = [];
  const s = await startServer({ model, contextShift: true, metrics: true, log: { format: 'json', stream: { write: (l: string) => lines.push(l) } } }, servers);
  const words = (w: string, n: number) => Array.from({ length: n }, () => w).join(' ');
  type Msg = { role: 'system' | 'user' | 'assistant'; content: string };
  const chat: Msg[] = [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: words('water', 2) }, { role: 'assistant', content: words('fire', 2) },
    { role: 'user', content: words('earth', 2) }, { role: 'assistant', content: words('air', 2) },
    { role: 'user', content: 'the people' },
  ];
  // The transcript as the default template lays it out, counted by the tokenizer (not by the server's code).
  const tokens = (m: Msg[]) => s.grok.encode(m.map((x) => (x.role === 'user' ? `Human: ${x.content}\n\n` : x.role === 'assistant' ? `Assistant: ${x.content}\n\n` : `${x.content}\n\n`)).join('') + 'Assistant:').length;
  // Whole turns go: a user message with its reply (k turns = 2k messages).
  const dropFirst = (messages: number) => [chat[0]!, ...chat.slice(1 + messages)];
  assert.ok(tokens(chat) + 2 > 64, `${tokens(chat)} tokens: the test needs a chat that does not fit`);
  // The fewest dropped turns that leave room for max_tokens 2.
  let want = 2;
  while (tokens(dropFirst(want)) + 2 > 64) want += 2;
  assert.ok(want < 4, `${want} messages dropped: the test wants one turn kept`);

  const r = await s.client.chat.completions.create({ model: MODEL, messages: chat, max_tokens: 2, temperature: 0 });
  assert.equal((r as unknown as { truncated_messages: number }).truncated_messages, want);
  assert.equal(r.usage!.prompt_tokens, tokens(dropFirst(want)));
  // The same as sending the shortened chat itself.
  const same = await s.client.chat.completions.create({ model: MODEL, messages: dropFirst(want), max_tokens: 2, temperature: 0 });
  assert.equal(r.choices[0]!.message.content, same.choices[0]!.message.content);
  assert.equal((same as unknown as { truncated_messages?: number }).truncated_messages, undefined);

  // Streamed: the header and the first chunk say it; max_tokens omitted keeps at least a quarter of the context (16).
  const res = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: chat, stream: true, max_tokens: 2 }) });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-truncated-messages'), String(want));
  const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as { truncated_messages?: number });
  assert.equal(events[0]!.truncated_messages, want);
  assert.ok(events.slice(1).every((e) => e.truncated_messages === undefined));
  let room = 2;
  while (tokens(dropFirst(room)) + 16 > 64) room += 2;
  assert.ok(room <= 4 && room > want, `${room} and ${want} messages dropped`);
  const open = await s.client.chat.completions.create({ model: MODEL, messages: chat, temperature: 0 });
  assert.equal((open as unknown as { truncated_messages: number }).truncated_messages, room);
  assert.ok(open.usage!.prompt_tokens + 16 <= 64);
  // /metrics counts the shortened chats (three so far) and the messages they lost.
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(metrics, /^grok_context_shifts_total 3$/m);
  assert.match(metrics, new RegExp(`^grok_truncated_messages_total ${2 * want + room}$`, 'm'));

  // truncation: "disabled" in the request: the 400, whose message points at the way out.
  const off = await post(s.url, '/v1/chat/completions', { model: MODEL, messages: chat, max_tokens: 2, truncation: 'disabled' });
  assert.equal(off.status, 400);
  assert.equal(off.json.error!.code, 'context_length_exceeded');
  assert.match(off.json.error!.message, new RegExp(`you requested ${tokens(chat) + 2} tokens \\(${tokens(chat)} in the prompt, 2 for the completion\\)\\. .*truncation: "auto"`));
  // Too long even alone: the system prompt and the last user message are never dropped; the 400 counts them.
  const alone = [chat[0]!, ...chat.slice(1, 5), { role: 'user' as const, content: words('water', 70) }];
  const tooLong = await post(s.url, '/v1/chat/completions', { model: MODEL, messages: alone, max_tokens: 2 });
  assert.equal(tooLong.status, 400);
  assert.equal(tooLong.json.error!.code, 'context_length_exceeded');
  const P = tokens([chat[0]!, alone[5]!]);
  assert.match(tooLong.json.error!.message, new RegExp(`alone take ${P} tokens, which with 2 for the completion make ${P + 2}`));
  // The request log line says it.
  assert.ok(await until(() => lines.length >= 6));
  const logged = lines.map((l) => JSON.parse(l) as { truncatedMessages?: number });
  assert.deepEqual(logged.slice(0, 4).map((l) => l.truncatedMessages), [want, undefined, want, room]);
  assert.match(formatTextLine(lines[0]!), new RegExp(` truncated_messages=${want}\\n$`));
});
