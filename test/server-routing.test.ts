/**
 * return_routed_experts (the acceptance test of the routing issue): for every fixture, loaded from ckpt-0
 * with the reference kernels and from model.gguf with the exact WebAssembly kernels, a /v1/completions
 * request whose prompt is the golden tokens returns, for every prompt token and layer, exactly the
 * experts in golden.json (computed by the independent reference), ordered by router probability; the
 * streamed routing equals the non-streamed one; chat counts the rendered transcript as the prompt; the
 * prompt's routing comes once per prompt (not once per choice) and only up to a length unless asked; the
 * official openai client works with the flag (and, test/server-snapshot.test.ts, byte for byte without).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import OpenAI from 'openai';
import { Grok, loadModel } from '../src/api/index.js';
import { createServer, type GrokServer } from '../src/api/server.js';
import { createKernels } from '../src/kernels/index.js';
import { fixtureDir, fixtureModel, golden, testTokenizer } from './engine-helpers.js';

const servers: GrokServer[] = [];
const models: Grok[] = [];
after(async () => {
  for (const s of servers) await s.close(0);
  for (const m of models) await m.close();
});

interface Routed {
  routed_experts?: number[][][]; routed_expert_weights?: number[][][];
  prompt_routed_experts?: number[][][]; prompt_routed_expert_weights?: number[][][];
}

async function serve(grok: Grok, o: { maxPromptRoutingTokens?: number } = {}) {
  const server = createServer(grok, { modelId: 'm', ...o });
  servers.push(server);
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  return { url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 }) };
}

type Chunk = { choices: (Routed & { index: number; text?: string; delta?: { content?: string } })[]; usage?: unknown };

async function sse(url: string, route: string, body: object): Promise<Chunk[]> {
  const r = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  assert.equal(r.status, 200);
  const events = (await r.text()).split('\n\n').filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]');
  return events.map((e) => JSON.parse(e.slice(6)) as never);
}

/** A choice's routing gathered from its chunks, in order (the prompt's fields only where some chunk had them). */
function gather(chunks: Chunk[], index: number): Routed {
  const out: Required<Routed> = { routed_experts: [], routed_expert_weights: [], prompt_routed_experts: [], prompt_routed_expert_weights: [] };
  let withPrompt = false;
  for (const c of chunks) {
    for (const ch of c.choices) {
      if (ch.index !== index) continue;
      assert.ok(ch.routed_experts && ch.routed_expert_weights, 'every chunk of the choice carries the fields');
      out.routed_experts.push(...ch.routed_experts);
      out.routed_expert_weights.push(...ch.routed_expert_weights);
      if (ch.prompt_routed_experts) {
        assert.ok(!withPrompt, 'the prompt comes once');
        withPrompt = true;
        out.prompt_routed_experts.push(...ch.prompt_routed_experts);
        out.prompt_routed_expert_weights.push(...ch.prompt_routed_expert_weights!);
      }
    }
  }
  if (withPrompt) return out;
  return { routed_experts: out.routed_experts, routed_expert_weights: out.routed_expert_weights };
}

/** A choice's routing fields, and only those. */
const routingOf = (c: object): Routed => Object.fromEntries(Object.entries(c).filter(([k]) => k.includes('routed_expert')));

const sources = [
  { fixture: 'tiny-a', file: 'ckpt-0', kernels: 'reference' },
  { fixture: 'tiny-a', file: 'model.gguf', kernels: 'exact' },
  { fixture: 'tiny-b', file: 'ckpt-0', kernels: 'reference' },
  { fixture: 'tiny-b', file: 'model.gguf', kernels: 'exact' },
] as const;

for (const src of sources) {
  test(`${src.fixture} ${src.file} (${src.kernels} kernels): routed_experts of the golden prompt equal golden.json's experts, streamed and not`, async () => {
    let grok: Grok;
    if (src.kernels === 'reference') {
      const model = await fixtureModel(src.fixture);
      grok = new Grok(src.fixture, model, testTokenizer(model.config.vocabSize), 0, { slots: 4, prefillChunk: 7 });
    } else {
      grok = await loadModel(path.join(fixtureDir(src.fixture), src.file), { kernels: createKernels({ mode: 'exact' }), slots: 4, prefillChunk: 7 });
      models.push(grok);
    }
    const { url, client } = await serve(grok);
    const g = golden(src.fixture);
    const req = { model: 'm', prompt: g.tokens, max_tokens: 5, temperature: 0, return_routed_experts: true };
    const whole = await client.completions.create(req as OpenAI.Completions.CompletionCreateParamsNonStreaming);
    const choice = whole.choices[0] as typeof whole.choices[0] & Required<Routed>;
    const P = g.tokens.length;
    assert.equal(choice.prompt_routed_experts.length, P);
    assert.equal(choice.prompt_routed_expert_weights.length, P);
    assert.equal(choice.routed_experts.length, whole.usage!.completion_tokens, 'routed_experts: the generated tokens');
    assert.equal(choice.routed_expert_weights.length, choice.routed_experts.length);
    const L = g.layers.length;
    for (let pos = 0; pos < P; pos++) {
      assert.equal(choice.prompt_routed_experts[pos]!.length, L);
      for (let l = 0; l < L; l++) {
        const got = choice.prompt_routed_experts[pos]![l]!;
        const want = g.layers[l]!.experts[pos]!;
        assert.deepEqual([...got].sort(), [...want].sort(), `position ${pos}, layer ${l}: the same experts`);
        assert.deepEqual(got, want, `position ${pos}, layer ${l}: highest router probability first`);
        const w = choice.prompt_routed_expert_weights[pos]![l]!;
        assert.ok(w[0]! >= w[1]! && w[1]! > 0 && w[0]! < 1, `gates ${w}`);
      }
    }
    // Streamed: the same routing, the prompt's entries in the first chunk.
    const chunks = await sse(url, '/v1/completions', req);
    assert.equal(chunks[0]!.choices[0]!.prompt_routed_experts!.length, P, 'the first chunk: the prompt');
    assert.equal(chunks[0]!.choices[0]!.routed_experts!.length, 1, '… and the first token');
    assert.deepEqual(gather(chunks, 0), routingOf(choice));
    // Without the flag, no routing fields.
    const plain = await client.completions.create({ model: 'm', prompt: g.tokens, max_tokens: 5, temperature: 0 });
    assert.equal(plain.choices[0]!.text, choice.text);
    assert.ok(!('routed_experts' in plain.choices[0]!));
  });
}

test('chat: the rendered transcript is the prompt, sent once (in choice 0) whatever n; streamed equals non-streamed', async () => {
  const model = await fixtureModel('tiny-b');
  const grok = new Grok('tiny-b', model, testTokenizer(model.config.vocabSize), 0, { slots: 4, prefillChunk: 16 });
  const { url, client } = await serve(grok);
  const body = { model: 'm', messages: [{ role: 'user' as const, content: 'the people of the water' }], max_tokens: 6, temperature: 0.9, seed: 4, n: 2, return_routed_experts: true };
  const whole = await client.chat.completions.create(body as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
  const prompt = grok.encode('Human: the people of the water\n\nAssistant:');
  assert.equal(whole.usage!.prompt_tokens, prompt.length);
  const [a, b] = whole.choices as unknown as [Required<Routed>, Routed];
  assert.equal(a.prompt_routed_experts.length, prompt.length);
  assert.equal(a.prompt_routed_expert_weights.length, prompt.length);
  assert.deepEqual(Object.keys(b).filter((k) => k.startsWith('prompt_')), [], 'choice 1 does not repeat the prompt');
  assert.equal(a.routed_experts.length + b.routed_experts!.length, whole.usage!.completion_tokens);
  const chunks = await sse(url, '/v1/chat/completions', body);
  for (const index of [0, 1]) {
    const c = whole.choices[index]!;
    assert.equal(routingOf(c).routed_experts!.length, routingOf(c).routed_expert_weights!.length);
    assert.deepEqual(gather(chunks, index), routingOf(c));
    const first = chunks.find((ch) => ch.choices[0]!.index === index)!.choices[0]!;
    assert.equal(first.delta?.content, '', 'the role chunk comes first');
    assert.equal(first.routed_experts!.length, 0, 'and carries no token');
    assert.equal(first.prompt_routed_experts?.length, index === 0 ? prompt.length : undefined, 'choice 0\'s carries the prompt');
  }
  // The official client streams it too (the extra fields pass through untouched).
  let n = 0;
  let p = 0;
  for await (const c of await client.chat.completions.create({ ...body, stream: true } as OpenAI.Chat.ChatCompletionCreateParamsStreaming)) {
    for (const ch of c.choices as unknown as Routed[]) { n += ch.routed_experts?.length ?? 0; p += ch.prompt_routed_experts?.length ?? 0; }
  }
  assert.equal(n, a.routed_experts.length + b.routed_experts!.length);
  assert.equal(p, prompt.length);
});

test('the prompt\'s routing is sent once per prompt, so the response grows with one copy, not n', async () => {
  const model = await fixtureModel('tiny-a');
  const grok = new Grok('tiny-a', model, testTokenizer(model.config.vocabSize), 0, { slots: 4, prefillChunk: 64 });
  const { url } = await serve(grok);
  const ids = Array.from({ length: 300 }, (_, i) => 5 + (i % 50));
  const size = async (body: object) => {
    const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 200);
    const text = await r.text();
    return { bytes: Buffer.byteLength(text), json: JSON.parse(text) as { choices: Routed[] } };
  };
  const req = { model: 'm', prompt: ids, max_tokens: 1, temperature: 0, ignore_eos: true, return_routed_experts: true };
  const one = await size({ ...req, n: 1 });
  const eight = await size({ ...req, n: 8 });
  const entries = (r: { choices: Routed[] }) => r.choices.reduce((t, c) => t + (c.prompt_routed_experts?.length ?? 0), 0);
  assert.equal(entries(one.json), 300);
  assert.equal(entries(eight.json), 300, 'one copy of the prompt among the 8 choices');
  assert.deepEqual(eight.json.choices[0]!.prompt_routed_experts, one.json.choices[0]!.prompt_routed_experts);
  // The prompt (300 tokens) dwarfs a choice's one token: 8 copies would make it about 8 times larger.
  const without = await size({ ...req, n: 1, return_prompt_routed_experts: false });
  const perChoice = without.bytes;
  assert.ok(eight.bytes < one.bytes + 8 * perChoice, `n=8: ${eight.bytes} bytes; n=1: ${one.bytes}; a choice without the prompt: ${perChoice}`);
  assert.ok(eight.bytes < 2 * one.bytes, `n=8: ${eight.bytes} bytes, n=1: ${one.bytes}`);
  // A list of prompts: each prompt's routing once, in its first choice (index i·n).
  const two = await size({ ...req, prompt: [ids.slice(0, 10), ids.slice(0, 20)], n: 3 });
  assert.deepEqual(two.json.choices.map((c) => c.prompt_routed_experts?.length ?? null), [10, null, null, 20, null, null]);
});

test('prompts longer than maxPromptRoutingTokens get no prompt routing unless return_prompt_routed_experts asks', async () => {
  const model = await fixtureModel('tiny-a');
  const grok = new Grok('tiny-a', model, testTokenizer(model.config.vocabSize), 0, { slots: 4 });
  const { url, client } = await serve(grok, { maxPromptRoutingTokens: 16 });
  const ask = async (body: object) => {
    const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', max_tokens: 2, return_routed_experts: true, ...body }) });
    return { status: r.status, json: await r.json() as { choices: Routed[]; error?: { param: string } } };
  };
  const short = Array.from({ length: 16 }, (_, i) => 5 + i);
  const long = Array.from({ length: 17 }, (_, i) => 5 + i);
  assert.equal((await ask({ prompt: short })).json.choices[0]!.prompt_routed_experts?.length, 16, 'at the limit: sent');
  const capped = (await ask({ prompt: long })).json.choices[0]!;
  assert.ok(!('prompt_routed_experts' in capped), 'over the limit: left out');
  assert.equal(capped.routed_experts!.length, 2, 'the generated tokens\' routing still comes');
  assert.equal((await ask({ prompt: long, return_prompt_routed_experts: true })).json.choices[0]!.prompt_routed_experts?.length, 17, 'asked: sent');
  assert.ok(!('prompt_routed_experts' in (await ask({ prompt: short, return_prompt_routed_experts: false })).json.choices[0]!), 'declined: left out');
  const alone = await ask({ prompt: short, return_routed_experts: false, return_prompt_routed_experts: true });
  assert.equal(alone.status, 400);
  assert.equal(alone.json.error!.param, 'return_prompt_routed_experts');
  // Streamed, the same rule; through the official client.
  let p = 0;
  for await (const c of await client.completions.create({ model: 'm', prompt: long, max_tokens: 2, stream: true, return_routed_experts: true } as OpenAI.Completions.CompletionCreateParamsStreaming)) {
    for (const ch of c.choices as unknown as Routed[]) p += ch.prompt_routed_experts?.length ?? 0;
  }
  assert.equal(p, 0);
});
