/**
 * The text layer (src/api) on a real fixture model with a tokenizer of the fixture's vocabulary size:
 * streamed text equals the tokenizer's own decode of the tokens, stop strings that span token boundaries
 * stop on the completing token and are not emitted, and loadModel's tokenizer rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Grok, loadModel, NoTokenizerError } from '../src/api/index.js';
import { continuation, fixtureDir, fixtureModel, golden, testTokenizer } from './engine-helpers.js';
import { TOKENIZER_MODEL } from './fixtures.js';

async function grokOn(name: string): Promise<Grok> {
  const model = await fixtureModel(name);
  return new Grok(name, model, testTokenizer(model.config.vocabSize), 0, { slots: 4 });
}

test('streamed text is the tokenizer decode of the generated tokens; complete() agrees with generate()', async () => {
  const grok = await grokOn('tiny-b');
  const tok = grok.tokenizer!;
  const opts = { temperature: 0.9, seed: 5, maxTokens: 40 };
  const s = grok.generate('the people who made the water', opts);
  let streamed = '';
  const ids: number[] = [];
  for await (const c of s) {
    streamed += c.text;
    if (c.token !== null) ids.push(c.token);
  }
  const r = await s.result;
  assert.equal(ids.length, 40);
  assert.deepEqual(r.tokens, ids);
  assert.equal(streamed, continuation(tok, tok.encode('the people who made the water'), ids));
  assert.equal(r.text, streamed);
  assert.equal(r.usage.promptTokens, tok.encode('the people who made the water').length);
  assert.equal(r.usage.completionTokens, 40);
  assert.equal(r.finishReason, 'length');
  const again = await grok.complete('the people who made the water', opts);
  assert.equal(again.text, r.text);
  assert.deepEqual(again.logprobs, r.logprobs);
});

test('a stop string spanning a token boundary ends generation on the completing token and is not emitted', async () => {
  const grok = await grokOn('tiny-b');
  const tok = grok.tokenizer!;
  const base = await grok.complete('the people who made the water', { temperature: 0, maxTokens: 40 });
  const prompt = tok.encode('the people who made the water');
  const text = (n: number) => continuation(tok, prompt, base.tokens.slice(0, n));
  assert.equal(base.text, text(base.tokens.length));
  // Find a boundary where both neighbouring tokens have text; the stop string is the last char before
  // it plus the first char after it.
  let k = -1;
  let stop = '';
  for (let i = 3; i < base.tokens.length - 1; i++) {
    const before = text(i + 1);
    const after = text(i + 2);
    if (before.length > 0 && after.length > before.length && !after.startsWith('\uFFFD', before.length)) {
      stop = before.slice(-1) + after.slice(before.length, before.length + 1);
      k = i;
      break;
    }
  }
  assert.ok(k >= 0, 'a usable boundary');
  const first = base.text.indexOf(stop);
  // The tokens needed: the shortest prefix whose decode contains the stop string.
  let need = 1;
  while (!text(need).includes(stop)) need++;
  const r = await grok.complete('the people who made the water', { temperature: 0, maxTokens: 40, stop: [stop, 'never-there'] });
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.text, base.text.slice(0, first));
  assert.deepEqual(r.tokens, base.tokens.slice(0, need));
  // Streaming releases the same text, never a piece of the stop string.
  let streamed = '';
  for await (const c of grok.generate('the people who made the water', { temperature: 0, maxTokens: 40, stop })) streamed += c.text;
  assert.equal(streamed, r.text);
  const none = await grok.complete('the people who made the water', { temperature: 0, maxTokens: 40, stop: 'never-there' });
  assert.equal(none.text, base.text);
  assert.equal(none.finishReason, 'length');
});

test('logprob alternatives carry their piece text', async () => {
  const grok = await grokOn('tiny-a');
  const g = golden('tiny-a');
  const r = await grok.complete(g.greedy.prompt, { temperature: 0, maxTokens: 3, topLogprobs: 5 });
  assert.deepEqual(r.tokens, g.greedy.continuation.slice(0, 3));
  assert.deepEqual(r.topLogprobs![0].map((a) => a.id), g.top5[g.greedy.prompt.length - 1]);
  for (const a of r.topLogprobs![0]) assert.equal(a.text, grok.tokenizer!.idToPiece(a.id).replaceAll('\u2581', ' '));
});

test('loadModel: a checkpoint with no tokenizer works on ids, refuses text; a tokenizer of another vocabulary is refused', async () => {
  const ckpt = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  const grok = await loadModel(ckpt);
  try {
    assert.equal(grok.tokenizer, null);
    const g = golden('tiny-a');
    const r = await grok.complete(g.greedy.prompt, { temperature: 0, maxTokens: 16 });
    assert.deepEqual(r.tokens, g.greedy.continuation);
    assert.equal(r.text, '');
    assert.throws(() => grok.generate('hello'), NoTokenizerError);
  } finally {
    await grok.close();
  }
  await assert.rejects(loadModel(ckpt, { tokenizer: TOKENIZER_MODEL }),
    /tokenizer has 131072 tokens but the model .* has a vocabulary of 512/);
  await assert.rejects(loadModel(path.resolve('no-such-model')), /no such file or directory/);
});

test('loadModel: the kernels it creates use fast numerics by default, as `grok generate` does; { mode: \'exact\' } on request', async () => {
  const ckpt = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  for (const [opts, want] of [[{}, 'fast'], [{ kernelOptions: { mode: 'exact' as const } }, 'exact'], [{ kernelOptions: { threads: 1 } }, 'fast']] as const) {
    const grok = await loadModel(ckpt, opts);
    try {
      const name = grok.model.kernels.name;
      assert.ok(name === 'reference' || name.includes(`-${want}-`), `${JSON.stringify(opts)}: kernels ${name}`);
      if (name !== 'reference') assert.equal((grok.model.kernels as { mode?: string }).mode, want);
    } finally {
      await grok.close();
    }
  }
});

test('loadModel kvType: the caches the engine makes hold that type; default f16 with fast kernels, f32 with exact', async () => {
  const reference = { kernels: 'reference' as const };
  const cases = [
    [{ kernelOptions: reference }, 'f32'],
    [{ kernelOptions: { kernels: 'wasm' as const, mode: 'fast' as const, threads: 1 } }, 'f16'],
    [{ kernelOptions: reference, kvType: 'q8_0' as const }, 'q8_0'],
  ] as const;
  for (const [opts, want] of cases) {
    const grok = await loadModel(undefined, opts); // the embedded model: heads 32 wide
    try {
      assert.equal(grok.model.kvType, want, JSON.stringify(opts));
      assert.equal(grok.model.newCache(4).kvType, want);
      const r = await grok.complete('And God said', { temperature: 0, maxTokens: 4, ignoreEos: true });
      assert.equal(r.tokens.length, 4);
    } finally {
      await grok.close();
    }
  }
  // tiny-a's heads are 16 wide: q8_0 rows need whole blocks of 32.
  await assert.rejects(loadModel(path.join(fixtureDir('tiny-a'), 'model.gguf'), { kernelOptions: reference, kvType: 'q8_0' }), /multiple of 32, got 16/);
});
