/**
 * return_routed_experts (the acceptance test of the routing issue): for every fixture, loaded from ckpt-0
 * with the reference kernels and from model.gguf with the exact WebAssembly kernels, a /v1/completions
 * request whose prompt is the golden tokens returns, for every prompt token and layer, exactly the
 * experts in golden.json (computed by the independent reference), ordered by router probability; the
 * streamed routing equals the non-streamed one; chat counts the rendered transcript as the prompt; the
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

interface Routed { routed_experts?: number[][][]; routed_expert_weights?: number[][][] }

async function serve(grok: Grok) {
  const server = createServer(grok, { modelId: 'm' });
  servers.push(server);
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  return { url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 }) };
}

async function sse(url: string, route: string, body: object): Promise<{ choices: (Routed & { index: number; text?: string; delta?: { content?: string } })[]; usage?: unknown }[]> {
  const r = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  assert.equal(r.status, 200);
  const events = (await r.text()).split('\n\n').filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]');
  return events.map((e) => JSON.parse(e.slice(6)) as never);
}

/** A choice's routing gathered from its chunks, in order. */
function gather(chunks: Awaited<ReturnType<typeof sse>>, index: number): Required<Routed> {
  const out: Required<Routed> = { routed_experts: [], routed_expert_weights: [] };
  for (const c of chunks) {
    for (const ch of c.choices) {
      if (ch.index !== index) continue;
      assert.ok(ch.routed_experts && ch.routed_expert_weights, 'every chunk of the choice carries the fields');
      out.routed_experts.push(...ch.routed_experts);
      out.routed_expert_weights.push(...ch.routed_expert_weights);
    }
  }
  return out;
}

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
    assert.equal(choice.routed_experts.length, P + whole.usage!.completion_tokens);
    assert.equal(choice.routed_expert_weights.length, choice.routed_experts.length);
    const L = g.layers.length;
    for (let pos = 0; pos < P; pos++) {
      assert.equal(choice.routed_experts[pos]!.length, L);
      for (let l = 0; l < L; l++) {
        const got = choice.routed_experts[pos]![l]!;
        const want = g.layers[l]!.experts[pos]!;
        assert.deepEqual([...got].sort(), [...want].sort(), `position ${pos}, layer ${l}: the same experts`);
        assert.deepEqual(got, want, `position ${pos}, layer ${l}: highest router probability first`);
        const w = choice.routed_expert_weights[pos]![l]!;
        assert.ok(w[0]! >= w[1]! && w[1]! > 0 && w[0]! < 1, `gates ${w}`);
      }
    }
    // Streamed: the same routing, the prompt's entries in the first chunk.
    const chunks = await sse(url, '/v1/completions', req);
    assert.equal(chunks[0]!.choices[0]!.routed_experts!.length, P + 1, 'the first chunk: the prompt and the first token');
    assert.deepEqual(gather(chunks, 0), { routed_experts: choice.routed_experts, routed_expert_weights: choice.routed_expert_weights });
    // Without the flag, no routing fields.
    const plain = await client.completions.create({ model: 'm', prompt: g.tokens, max_tokens: 5, temperature: 0 });
    assert.equal(plain.choices[0]!.text, choice.text);
    assert.ok(!('routed_experts' in plain.choices[0]!));
  });
}

test('chat: the rendered transcript is the prompt; n choices each carry it; streamed equals non-streamed', async () => {
  const model = await fixtureModel('tiny-b');
  const grok = new Grok('tiny-b', model, testTokenizer(model.config.vocabSize), 0, { slots: 4, prefillChunk: 16 });
  const { url, client } = await serve(grok);
  const body = { model: 'm', messages: [{ role: 'user' as const, content: 'the people of the water' }], max_tokens: 6, temperature: 0.9, seed: 4, n: 2, return_routed_experts: true };
  const whole = await client.chat.completions.create(body as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
  const prompt = grok.encode('Human: the people of the water\n\nAssistant:');
  assert.equal(whole.usage!.prompt_tokens, prompt.length);
  const chunks = await sse(url, '/v1/chat/completions', body);
  for (const index of [0, 1]) {
    const c = whole.choices[index] as typeof whole.choices[0] & Required<Routed>;
    assert.ok(c.routed_experts.length > prompt.length);
    assert.equal(c.routed_experts.length, c.routed_expert_weights.length);
    const streamed = gather(chunks, index);
    assert.deepEqual(streamed, { routed_experts: c.routed_experts, routed_expert_weights: c.routed_expert_weights });
    const first = chunks.find((ch) => ch.choices[0]!.index === index)!.choices[0]!;
    assert.equal(first.delta?.content, '', 'the role chunk comes first');
    assert.equal(first.routed_experts!.length, prompt.length, 'and carries the prompt');
  }
  // The official client streams it too (the extra fields pass through untouched).
  let n = 0;
  for await (const c of await client.chat.completions.create({ ...body, stream: true } as OpenAI.Chat.ChatCompletionCreateParamsStreaming)) {
    for (const ch of c.choices) n += (ch as unknown as Routed).routed_experts?.length ?? 0;
  }
  assert.equal(n, (whole.choices as unknown as Required<Routed>[]).reduce((a, c) => a + c.routed_experts.length, 0));
  // Both choices share the prompt: the same prompt routing.
  const [a, b] = whole.choices as unknown as Required<Routed>[];
  assert.deepEqual(a!.routed_experts.slice(0, prompt.length), b!.routed_experts.slice(0, prompt.length));
  assert.equal(whole.usage!.completion_tokens, (a!.routed_experts.length - prompt.length) + (b!.routed_experts.length - prompt.length));
});
