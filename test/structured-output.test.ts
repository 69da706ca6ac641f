/**
 * Structured output (response_format) on the embedded default model: generations constrained by XGrammar
 * to a JSON schema all parse and validate — checked by Ajv, a JSON Schema validator independent of the
 * grammar engine — for objects, arrays, enums, nested objects and bounded numbers; plain JSON mode gives
 * JSON; a schema the engine cannot compile is a GrammarError before anything is generated.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { loadModel, type Grok } from '../src/api/index.js';
import { createServer } from '../src/api/server.js';
import { loadModelInWorker } from '../src/api/worker/client.js';
import { GrammarEngine, GrammarError } from '../src/engine/grammar.js';

const SCHEMAS: [string, Record<string, unknown>][] = [
  ['object', {
    type: 'object', additionalProperties: false, required: ['name', 'age'],
    properties: { name: { type: 'string', maxLength: 16 }, age: { type: 'integer', minimum: 0, maximum: 120 } },
  }],
  ['array', { type: 'array', minItems: 1, maxItems: 4, items: { type: 'integer', minimum: -5, maximum: 5 } }],
  ['enum', {
    type: 'object', additionalProperties: false, required: ['color', 'ok'],
    properties: { color: { enum: ['red', 'green', 'blue'] }, ok: { type: 'boolean' } },
  }],
  ['nested', {
    type: 'object', additionalProperties: false, required: ['user'],
    properties: {
      user: {
        type: 'object', additionalProperties: false, required: ['id', 'tags'],
        properties: { id: { type: 'integer', minimum: 1, maximum: 999 }, tags: { type: 'array', maxItems: 3, items: { type: 'string', maxLength: 8 } } },
      },
    },
  }],
  ['bounded numbers', {
    type: 'object', additionalProperties: false, required: ['x', 'n', 'm', 'k'],
    properties: {
      x: { type: 'number' }, n: { type: 'integer', minimum: 10, maximum: 20 }, m: { type: 'integer', exclusiveMaximum: -2 },
      k: { type: 'integer', minimum: 5, exclusiveMaximum: 8.5 },
    },
  }],
];

const N = 50;

let grok: Grok;
test.before(async () => { grok = await loadModel(); });
test.after(async () => { await grok.close(); });

for (const [name, schema] of SCHEMAS) {
  test(`${N} sampled generations constrained to a JSON schema (${name}) all parse and validate`, async () => {
    const validate = new Ajv({ strict: false }).compile(schema);
    const streams = grok.generateMany('And God said', Array.from({ length: N }, (_, i) => ({
      seed: 1000 + i, temperature: 1, maxTokens: 200, responseFormat: { type: 'json_schema' as const, schema },
    })));
    const results = await Promise.all(streams.map((s) => s.result));
    results.forEach((r, i) => {
      assert.equal(r.finishReason, 'stop', `generation ${i} ended by ${r.finishReason}: ${JSON.stringify(r.text)}`);
      let v: unknown;
      assert.doesNotThrow(() => { v = JSON.parse(r.text); }, `generation ${i} is not JSON: ${JSON.stringify(r.text)}`);
      assert.ok(validate(v), `generation ${i} does not validate: ${JSON.stringify(r.text)} ${JSON.stringify(validate.errors)}`);
    });
    // Sampling still samples: the outputs are not all the same.
    assert.ok(new Set(results.map((r) => r.text)).size > 1);
  });
}

test('integer bounds are exact: with a one-character vocabulary, each value near a bound is allowed exactly when Ajv validates it', async () => {
  // Token 0 ends generation; the others are single characters, so a value is allowed iff every character and then the end are.
  const tokens = ['<eos>', '\n', ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))];
  const engine = await GrammarEngine.create({ tokens, type: 'byte_level', stopIds: [0] });
  const allows = async (schema: Record<string, unknown>, text: string): Promise<boolean> => {
    const c = await engine.constraint({ type: 'json_schema', schema });
    try {
      for (const ch of [...text, '<eos>']) {
        await c.prepare();
        const logits = new Float32Array(tokens.length);
        c.mask(logits);
        const id = tokens.indexOf(ch);
        if (logits[id] === -Infinity || !c.accept(id)) return false;
      }
      return true;
    } finally {
      c.release();
    }
  };
  const ajv = new Ajv({ strict: false });
  const bounds: [Record<string, number>, number[]][] = [
    [{ minimum: 0, maximum: 120 }, [0, 120]], [{ minimum: 0, maximum: 110 }, [0, 110]], [{ minimum: -120, maximum: 0 }, [-120, 0]],
    [{ minimum: -15, maximum: 130 }, [-15, 130]], [{ minimum: 12000, maximum: 12999 }, [12000, 12999]], [{ minimum: 5, exclusiveMaximum: 8.5 }, [5, 8]],
    [{ exclusiveMinimum: 1019, maximum: 1020 }, [1020, 1020]],
  ];
  for (const [b, [lo, hi]] of bounds) {
    const schema = { type: 'object', properties: { a: { type: 'integer', ...b } }, required: ['a'], additionalProperties: false };
    const validate = ajv.compile(schema);
    for (const v of [...Array.from({ length: 41 }, (_, i) => lo - 20 + i), ...Array.from({ length: 141 }, (_, i) => hi - 20 + i)]) {
      // XGrammar's own layout of an object: a newline and two spaces of indent.
      assert.equal(await allows(schema, `{\n  "a": ${v}\n}`), validate({ a: v }), `${JSON.stringify(b)}: ${v}`);
    }
  }
});

test('json_object: any JSON object; streamed chunks add up to the result', async () => {
  const s = grok.generate('The', { seed: 3, temperature: 0.8, maxTokens: 200, responseFormat: { type: 'json_object' } });
  let streamed = '';
  for await (const c of s) streamed += c.text;
  const r = await s.result;
  assert.equal(streamed, r.text);
  assert.equal(r.finishReason, 'stop');
  const v: unknown = JSON.parse(r.text);
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v));
});

test('a schema that cannot be used is a GrammarError from checkResponseFormat and ends a request with that error', async () => {
  const bad = { type: 'json_schema' as const, schema: { type: 'object', properties: { a: { $ref: '#/definitions/missing' } } } };
  await assert.rejects(grok.checkResponseFormat(bad), (e: Error) => e instanceof GrammarError && /definitions\/missing/.test(e.message));
  await assert.rejects(grok.checkResponseFormat({ type: 'json_schema', schema: { type: 'object', properties: { a: { type: 'strnig' } } } }), GrammarError);
  const s = grok.generate('x', { maxTokens: 5, responseFormat: bad });
  await assert.rejects(s.result, GrammarError);
  // Bounds on a non-integer number would not be enforced exactly by XGrammar 0.1.27: refused, naming where.
  const bounded = { type: 'json_schema' as const, schema: { type: 'object', properties: { p: { type: 'number', minimum: 0.5 } } } };
  await assert.rejects(grok.checkResponseFormat(bounded), (e: Error) => e instanceof GrammarError && /#\/properties\/p: "minimum" on a "number" is not supported/.test(e.message));
  // The engine still works after a failed compile.
  const ok = await grok.generate('x', { seed: 1, maxTokens: 100, responseFormat: { type: 'json_schema', schema: SCHEMAS[2]![1] } }).result;
  assert.ok(new Ajv({ strict: false }).validate(SCHEMAS[2]![1], JSON.parse(ok.text)));
});

test('the official openai client: chat.completions.parse with a zod schema gets a parsed object, streamed too, through the worker-thread server', async () => {
  const grok = await loadModelInWorker(undefined, { slots: 4 });
  const server = createServer(grok, { modelId: 'default' });
  try {
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    const Person = z.object({ name: z.string().max(12), age: z.number().int().min(0).max(120), tags: z.array(z.enum(['a', 'b', 'c'])).max(3) });
    const messages = [{ role: 'user' as const, content: 'Describe a person as JSON.' }];
    for (let i = 0; i < 5; i++) {
      const r = await client.chat.completions.parse({ model: 'default', messages, max_tokens: 200, seed: i, temperature: 1, response_format: zodResponseFormat(Person, 'person') });
      const parsed = r.choices[0]!.message.parsed;
      assert.ok(parsed, `choice ${i}: ${r.choices[0]!.message.content}`);
      assert.deepEqual(Person.parse(parsed), parsed);
    }
    const stream = client.chat.completions.stream({ model: 'default', messages, max_tokens: 200, seed: 7, response_format: zodResponseFormat(Person, 'person') });
    let deltas = 0;
    stream.on('content.delta', () => { deltas++; });
    const final = await stream.finalChatCompletion();
    assert.ok(deltas > 1, 'streamed in several chunks');
    assert.deepEqual(Person.parse(final.choices[0]!.message.parsed), final.choices[0]!.message.parsed);
    // n > 1: every choice follows the schema.
    const many = await client.chat.completions.parse({ model: 'default', messages, max_tokens: 200, n: 4, temperature: 1, response_format: zodResponseFormat(Person, 'person') });
    assert.equal(many.choices.length, 4);
    for (const c of many.choices) Person.parse(c.message.parsed);
  } finally {
    await server.close();
    await grok.close();
  }
});
