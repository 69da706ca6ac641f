/**
 * Responses byte for byte: a fixed set of deterministic requests (seeded, greedy, errors), whole and
 * streamed, against test/data/server-responses.json, which was recorded from the server as it was before
 * the routing / metrics / page work (commit b84bb73). Ids and timestamps are normalised; everything else
 * — key order, numbers, SSE framing — must match exactly, so new features stay invisible to clients that
 * do not ask for them. GROK_RECORD=1 rewrites the file (only ever from the reference commit).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Grok } from '../src/api/index.js';
import { createServer, type GrokServer } from '../src/api/server.js';
import { fixtureModel, golden, testTokenizer } from './engine-helpers.js';

const FILE = path.resolve('test/data/server-responses.json');
const servers: GrokServer[] = [];
after(async () => { for (const s of servers) await s.close(0); });

const g = golden('tiny-a');
const chatMsgs = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'the people' }];
export const CASES: [string, string, object][] = [
  ['greedy ids with logprobs', '/v1/completions', { model: 'tiny-a', prompt: g.greedy.prompt, max_tokens: 8, temperature: 0, logprobs: 2 }],
  ['seeded text, n = 2', '/v1/completions', { model: 'tiny-a', prompt: 'the water was', max_tokens: 10, temperature: 1, seed: 7, top_p: 0.95, n: 2 }],
  ['two prompts', '/v1/completions', { model: 'tiny-a', prompt: ['the', 'people'], max_tokens: 4, temperature: 0 }],
  ['stop string', '/v1/completions', { model: 'tiny-a', prompt: 'the', max_tokens: 12, temperature: 0.8, seed: 3, stop: ['e'] }],
  ['streamed with usage and logprobs', '/v1/completions', { model: 'tiny-a', prompt: 'the water was', max_tokens: 6, temperature: 1, seed: 7, stream: true, stream_options: { include_usage: true }, logprobs: 1 }],
  ['streamed n = 2', '/v1/completions', { model: 'tiny-a', prompt: 'time', max_tokens: 4, temperature: 1, seed: 9, stream: true, n: 2 }],
  ['chat', '/v1/chat/completions', { model: 'tiny-a', messages: chatMsgs, max_tokens: 8, temperature: 0 }],
  ['chat logprobs', '/v1/chat/completions', { model: 'tiny-a', messages: chatMsgs, max_tokens: 4, temperature: 0.9, seed: 5, logprobs: true, top_logprobs: 2 }],
  ['chat streamed', '/v1/chat/completions', { model: 'tiny-a', messages: chatMsgs, max_tokens: 6, temperature: 0.9, seed: 11, stream: true, stream_options: { include_usage: true } }],
  ['bad temperature', '/v1/completions', { model: 'tiny-a', prompt: 'the', temperature: 3 }],
  ['prompt outside vocabulary', '/v1/completions', { model: 'tiny-a', prompt: [600] }],
  ['unknown url', '/v1/nothing', { model: 'tiny-a' }],
];

const normalise = (body: string) => body
  .replace(/"id":"(cmpl|chatcmpl)-[0-9a-f]{32}"/g, '"id":"$1-X"')
  .replace(/"created":\d+/g, '"created":0');

async function record(): Promise<Record<string, { status: number; type: string; body: string }>> {
  const model = await fixtureModel('tiny-a');
  const grok = new Grok('tiny-a', model, testTokenizer(model.config.vocabSize), 0, { slots: 4, prefillChunk: 16 });
  const server = createServer(grok, { modelId: 'tiny-a' });
  servers.push(server);
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const out: Record<string, { status: number; type: string; body: string }> = {};
  for (const [name, route, body] of CASES) {
    const r = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    out[name] = { status: r.status, type: r.headers.get('content-type') ?? '', body: normalise(await r.text()) };
  }
  return out;
}

test('responses are byte for byte those of the reference server (ids and timestamps aside)', async () => {
  const now = await record();
  if (process.env.GROK_RECORD === '1') { fs.writeFileSync(FILE, `${JSON.stringify(now, null, 1)}\n`); return; }
  const want = JSON.parse(fs.readFileSync(FILE, 'utf8')) as typeof now;
  assert.deepEqual(Object.keys(now), Object.keys(want));
  for (const k of Object.keys(want)) assert.deepEqual(now[k], want[k], k);
});
