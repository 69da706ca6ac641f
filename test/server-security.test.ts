/**
 * What the server guarantees a client it does not trust (README "Server" → guarantees): the API key is
 * checked on the route the router matched, whatever the spelling of the request target; slow and idle
 * clients are dropped on time while others are served; connections are bounded, per client address too;
 * bad sampling options are refused before any work. Raw HTTP over a socket, since a client library would
 * normalise the URLs.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import OpenAI from 'openai';
import { clientKey, type GrokServer } from '../src/api/server.js';
import type { GrokModel } from '../src/model/grok.js';
import { MODEL, rawHttp, request, startServer, until } from './server-helpers.js';
import { fixtureModel } from './engine-helpers.js';

const servers: GrokServer[] = [];
after(async () => { for (const s of servers) await s.close(0); });

const KEY = 'sekret';
const completion = JSON.stringify({ model: MODEL, prompt: 'the', max_tokens: 1 });

test('API key: every spelling of a protected route is refused without the key; /health stays open', async () => {
  const s = await startServer({ apiKey: KEY }, servers);
  const protectedTargets: [string, string, string?][] = [
    ['POST', '/v1/completions', completion],
    ['POST', '/%76%31/completions', completion], // percent-encoded "v1"
    ['POST', '/v1/%63ompletions', completion],
    ['POST', 'http://x/v1/completions', completion], // absolute-form request target
    ['POST', 'http://localhost/%76%31/chat/completions', JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }] })],
    ['GET', '/%761/models'],
    ['GET', '/v1/models'],
    ['GET', '/v1/models?x=1'],
    ['GET', '/v1/models/tiny-a'],
    ['GET', '/v1/../v1/models'],
    ['GET', '/x/../v1/models'],
    ['GET', '/v1/./models'],
    ['GET', '//v1/models'],
    ['GET', '/v1//models'],
    ['GET', '/V1/MODELS'],
    ['GET', '/v1/models/'],
    ['GET', '/v1%2fmodels'],
    ['GET', '/metrics'],
    ['GET', '/info'],
    ['GET', '/nothing-here'],
    ['HEAD', '/v1/models'],
    ['HEAD', '/%76%31/models'],
    ['OPTIONS', '/v1/completions'],
    ['OPTIONS', '*'],
    ['DELETE', '/v1/models/tiny-a'],
  ];
  for (const [method, target, body] of protectedTargets) {
    const r = await rawHttp(s.port, request(method, target, body === undefined ? {} : { body }));
    assert.equal(r.status, 401, `${method} ${target} → ${r.status} ${r.body.slice(0, 120)}`);
    if (method !== 'HEAD') assert.match(r.body, /invalid_api_key/, `${method} ${target}`);
    // A wrong key is no better than none.
    const wrong = await rawHttp(s.port, request(method, target, { ...(body === undefined ? {} : { body }), headers: { authorization: 'Bearer nope' } }));
    assert.equal(wrong.status, 401, `${method} ${target} with a wrong key`);
  }
  // The same spellings with the key reach the route (or its honest 404).
  const withKey = { authorization: `Bearer ${KEY}` };
  assert.equal((await rawHttp(s.port, request('POST', '/%76%31/completions', { body: completion, headers: withKey }))).status, 200);
  assert.equal((await rawHttp(s.port, request('POST', 'http://x/v1/completions', { body: completion, headers: withKey }))).status, 200);
  assert.equal((await rawHttp(s.port, request('GET', '/nothing-here', { headers: withKey }))).status, 404);
  // Public: the health check (in any spelling the router matches).
  for (const target of ['/health', '/%68ealth', 'http://x/health']) {
    assert.equal((await rawHttp(s.port, request('GET', target))).status, 200, target);
  }
  assert.equal((await rawHttp(s.port, request('HEAD', '/health'))).status, 200);
});

test('a client trickling its body is dropped within the request time-out while others are served', async () => {
  const s = await startServer({ requestTimeoutMs: 600, headersTimeoutMs: 400, idleTimeoutMs: 300 }, servers);
  const head = `POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n`;
  const drip = [head, ...Array.from({ length: 60 }, () => ' ')];
  const slow = rawHttp(s.port, drip, { gapMs: 100, timeoutMs: 8000 });
  // Meanwhile normal requests keep being answered.
  let served = 0;
  const others = (async () => {
    for (let i = 0; i < 5; i++) {
      const r = await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 2 });
      assert.equal(r.choices.length, 1);
      served++;
    }
  })();
  const r = await slow;
  await others;
  assert.equal(served, 5);
  assert.ok(r.ms < 2500, `the trickling client was dropped after ${r.ms} ms (time-out 600 ms)`);
  assert.ok(r.status === 408 || r.status === 0, `status ${r.status}`);
});

test('a connection that sends nothing, and an idle keep-alive connection, are closed on time', async () => {
  const s = await startServer({ requestTimeoutMs: 600, headersTimeoutMs: 400, idleTimeoutMs: 300 }, servers);
  const silent = await rawHttp(s.port, [], { timeoutMs: 5000 });
  assert.ok(silent.ms < 2000, `a silent connection lived ${silent.ms} ms (headers time-out 400 ms)`);
  // Keep-alive: one request answered, then the connection idles and is closed.
  const ka = await rawHttp(s.port, request('GET', '/health', { headers: { connection: 'keep-alive' } }), { timeoutMs: 5000 });
  assert.equal(ka.status, 200);
  assert.ok(ka.ms < 2000, `an idle keep-alive connection lived ${ka.ms} ms (idle time-out 300 ms)`);
});

test('a long streamed response is not cut by the request time-out (it bounds receiving, not answering)', async () => {
  const s = await startServer({ requestTimeoutMs: 300, headersTimeoutMs: 200, idleTimeoutMs: 200, slots: 1 }, servers);
  const t0 = Date.now();
  let text = '';
  // Slow each step down so that the response lasts well past the request time-out.
  const stream = await s.client.completions.create({ model: MODEL, prompt: 'the', max_tokens: 40, ignore_eos: true, stream: true } as never) as unknown as AsyncIterable<{ choices: { text: string; finish_reason: string | null }[] }>;
  let finish: string | null = null;
  for await (const c of stream) {
    for (const ch of c.choices) { text += ch.text; finish = ch.finish_reason ?? finish; }
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(finish, 'length');
  assert.ok(Date.now() - t0 > 600, 'the response outlived the request time-out');
});

test('connections beyond maxConnections are closed on arrival; the server recovers', async () => {
  const s = await startServer({ maxConnections: 2, maxConnectionsPerIp: 2 }, servers);
  const hold = await Promise.all([0, 1].map(() => new Promise<net.Socket>((res) => { const c = net.connect(s.port, '127.0.0.1', () => res(c)); })));
  await until(() => s.server.app.server.listening);
  const extra = await rawHttp(s.port, request('GET', '/health'), { timeoutMs: 3000 });
  assert.equal(extra.status, 0, 'the third connection got no answer');
  assert.ok(extra.ms < 1500, `closed after ${extra.ms} ms`);
  for (const c of hold) c.destroy();
  assert.ok(await until(async () => (await rawHttp(s.port, request('GET', '/health'))).status === 200));
});

test('one address holding its cap of connections gets more closed on arrival, while another address is served', async (t) => {
  // Two clients on one machine without a test-only hook in the server: on Linux all of 127.0.0.0/8 is
  // loopback, so a socket bound to 127.0.0.2 is a second client of a server on 127.0.0.1.
  if (process.platform !== 'linux') { t.skip('needs a second loopback address (127.0.0.2), which Linux has'); return; }
  const s = await startServer({ maxConnections: 10, maxConnectionsPerIp: 3 }, servers);
  const connect = () => new Promise<net.Socket>((res, rej) => { const c = net.connect(s.port, '127.0.0.1', () => res(c)); c.once('error', rej); });
  const health = (localAddress?: string) => rawHttp(s.port, request('GET', '/health'), { timeoutMs: 3000, ...(localAddress ? { localAddress } : {}) });
  for (let round = 0; round < 2; round++) { // twice: closed connections give their places back
    const held = await Promise.all([0, 1, 2].map(connect));
    const extra = await health();
    assert.equal(extra.status, 0, 'a fourth connection from 127.0.0.1 got no answer');
    assert.ok(extra.ms < 1500, `closed after ${extra.ms} ms`);
    assert.equal((await health('127.0.0.2')).status, 200, 'another address is served meanwhile');
    for (const c of held) c.destroy();
    assert.ok(await until(async () => (await health()).status === 200), '127.0.0.1 is served again');
    await new Promise((r) => setTimeout(r, 50)); // the server side of that probe closes too
  }
  // The default: a quarter of maxConnections (here 2).
  const d = await startServer({ maxConnections: 8 }, servers);
  const two = await Promise.all([0, 1].map(() => new Promise<net.Socket>((res) => { const c = net.connect(d.port, '127.0.0.1', () => res(c)); })));
  assert.equal((await rawHttp(d.port, request('GET', '/health'), { timeoutMs: 3000 })).status, 0);
  assert.equal((await rawHttp(d.port, request('GET', '/health'), { localAddress: '127.0.0.2' })).status, 200);
  for (const c of two) c.destroy();
});

test('with an API key, requests without it never reach the engine: 401 at once, nothing queued or computed', async () => {
  const s = await startServer({ apiKey: KEY, slots: 1 }, servers);
  const { steps, prefilledTokens } = s.grok.engine;
  const body = JSON.stringify({ model: MODEL, prompt: 'the people of the water', max_tokens: 50, n: 4 });
  const answers = await Promise.all(Array.from({ length: 24 }, () => fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })));
  assert.deepEqual([...new Set(answers.map((r) => r.status))], [401]);
  assert.equal(s.grok.engine.activeCount + s.grok.engine.queuedCount, 0);
  assert.equal(s.grok.engine.steps, steps, 'no forward pass ran');
  assert.equal(s.grok.engine.prefilledTokens, prefilledTokens);
  // With the key, the one slot is free to serve.
  const ok = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify({ model: MODEL, prompt: 'the', max_tokens: 2 }) });
  assert.equal(ok.status, 200);
});

test('clientKey: IPv4 as is (IPv4-mapped too), IPv6 by its /64', () => {
  assert.equal(clientKey('127.0.0.1'), '127.0.0.1');
  assert.equal(clientKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64', 'the same host network');
  assert.notEqual(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'));
  assert.equal(clientKey('2001:DB8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(clientKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
});

test('logit_bias outside the vocabulary: 400 invalid_value (param logit_bias) before any prefill, streaming or not', async () => {
  const s = await startServer({}, servers);
  const steps = s.grok.engine.steps;
  for (const stream of [false, true]) {
    const r = await fetch(`${s.url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'the people', max_tokens: 3, logit_bias: { 5: 1, 100000: -100 }, stream }),
    });
    assert.equal(r.status, 400);
    const e = (await r.json() as { error: { param: string; code: string; type: string; message: string } }).error;
    assert.equal(e.param, 'logit_bias');
    assert.equal(e.code, 'invalid_value');
    assert.equal(e.type, 'invalid_request_error');
    assert.match(e.message, /100000/);
  }
  assert.equal(s.grok.engine.steps, steps, 'no forward pass ran');
});

test('non-finite logits (NaN, +Infinity) are the server\'s fault: 500 server_error, streamed or not; bad options stay 400', async () => {
  // A model whose logits turn to NaN or +Infinity: the sampler cannot draw from them at the first token.
  const real = await fixtureModel('tiny-a');
  for (const bad of [NaN, Infinity]) {
    const broken = Object.create(real) as GrokModel;
    broken.forward = (seqs, o) => real.forward(seqs, o).fill(bad);
    const s = await startServer({ model: broken }, servers);
    const body = { model: MODEL, prompt: 'the', max_tokens: 3 };
    const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 500, String(bad));
    const e = (await r.json() as { error: { type: string; code: string; param: string | null; message: string } }).error;
    assert.equal(e.type, 'server_error');
    assert.equal(e.code, 'non_finite_logits');
    assert.equal(e.param, null);
    assert.match(e.message, bad === Infinity ? /logits are \+Infinity/ : /logits are NaN/);
    assert.match(e.message, /not in the request/);
    // Streamed: the 200 is already sent, so the stream ends with the error event.
    const sr = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
    assert.equal(sr.status, 200);
    const text = await sr.text();
    const events = text.split('\n\n').filter(Boolean).map((l) => JSON.parse(l.replace(/^data: /, '')) as { error?: { type: string; code: string } });
    const err = events.find((x) => x.error)?.error;
    assert.ok(err, text);
    assert.equal(err.type, 'server_error');
    assert.equal(err.code, 'non_finite_logits');
    // The official client sees an InternalServerError (maxRetries 0: no retry).
    await assert.rejects(s.client.completions.create(body), (x: unknown) => x instanceof OpenAI.InternalServerError && x.status === 500);
    // A bad request parameter on the same server is still the client's 400.
    await assert.rejects(s.client.completions.create({ ...body, logit_bias: { 100000: 1 } }), (x: unknown) => x instanceof OpenAI.BadRequestError);
  }
});
