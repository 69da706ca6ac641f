/**
 * llama.cpp's mixtures (`grok convert --type Q4_K_M` …) against llama.cpp's own quantiser:
 * test/data/quant-ref/llama-recipes.json holds, for small grok models that `grok synth` writes
 * deterministically (test/recipe-models.ts: 16 layers; 8 experts with 4:1 heads like Grok-1, and 4 experts
 * with 2:1), the type and bytes of every tensor llama_model_quantize (pure = false) wrote for each recipe,
 * and the file's general.file_type, without and with an importance matrix (a legacy .dat that
 * test/recipe-models.ts writes), and single types (llama-quantize's pure mode: Q4_0 … Q5_1, IQ4_NL, IQ4_XS and
 * IQ3_S with the importance matrix, IQ3_S without) — made by test/data/quant-ref/gen-recipes.mjs with model-quantize.c
 * against the libllama node-llama-cpp ships. Converting the same models with our code must give the same.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { convertModel } from '../src/convert/convert.js';
import { recipeTypes, RECIPES, useMoreBits } from '../src/convert/recipes.js';
import { synthModel } from '../src/convert/synth.js';
import { readGgufFile } from '../src/formats/gguf.js';
import { GROK1 } from '../src/model/config.js';
import { grokTensorPlan } from '../src/model/gguf-grok.js';
import { blockFormat, isBlockType } from '../src/quant/index.js';
import { RECIPE_MODELS, writeImatrixDat } from './recipe-models.js';
import { readBytes } from './gguf-builder.js';

const ref = JSON.parse(fs.readFileSync(path.resolve('test/data/quant-ref/llama-recipes.json'), 'utf8')) as Record<string, { file_type: number; tensors: Record<string, [number, string]> }>;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-recipes-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const imatrices = new Map<string, string>();
function imatrix(model: string): string {
  let file = imatrices.get(model);
  if (!file) {
    file = path.join(tmp, `${model}.imatrix.dat`);
    writeImatrixDat(file, RECIPE_MODELS[model]!.config, RECIPE_MODELS[model]!.seed);
    imatrices.set(model, file);
  }
  return file;
}

const sources = new Map<string, Promise<string>>();
function source(model: string): Promise<string> {
  let p = sources.get(model);
  if (!p) {
    const m = RECIPE_MODELS[model]!;
    const file = path.join(tmp, `${model}.gguf`);
    p = synthModel({ config: m.config, type: 'f32', out: file, seed: m.seed }).then(() => file);
    sources.set(model, p);
  }
  return p;
}

for (const [key, want] of Object.entries(ref)) {
  const [model, name] = key.split('/') as [string, string];
  const recipe = name.replace(/\+imatrix$/, '');
  // a recipe (Q4_K_M), or a single type in lower case (iq4_xs: llama-quantize's pure mode)
  const what = isBlockType(recipe) ? { type: recipe } : { recipe };
  test(`${model} → ${name}: llama.cpp's per-tensor types, bytes and general.file_type`, async () => {
    const out = path.join(tmp, `${model}-${name}.gguf`);
    await convertModel({ source: await source(model), out, ...what, threads: 2, ...(name.endsWith('+imatrix') ? { imatrix: imatrix(model) } : {}) });
    const f = readGgufFile(out);
    assert.equal(Number(f.metadata.get('general.file_type')), want.file_type);
    assert.deepEqual(f.tensors.map((t) => t.name).sort(), Object.keys(want.tensors).sort());
    const types: string[] = [];
    for (const t of f.tensors) if (t.ggmlType !== want.tensors[t.name]![0]) types.push(`${t.name}: ${t.ggmlType} vs llama.cpp's ${want.tensors[t.name]![0]}`);
    assert.deepEqual(types, [], 'types');
    for (const t of f.tensors) {
      assert.equal(crypto.createHash('sha256').update(readBytes(t.ref)).digest('hex').slice(0, 16), want.tensors[t.name]![1], `${t.name}: bytes`);
    }
    fs.rmSync(out);
  });
}

// The i-quant mixtures: llama.cpp's per-tensor types (llama-recipes-iq.json, gen-recipes.mjs --iq), compared with
// recipeTypes directly (their bytes come from quantisers that test/quant-llama.test.ts checks against llama.cpp's).
const refIq = JSON.parse(fs.readFileSync(path.resolve('test/data/quant-ref/llama-recipes-iq.json'), 'utf8')) as typeof ref;
for (const [key, want] of Object.entries(refIq)) {
  const [model, name] = key.split('/') as [string, string];
  const recipe = RECIPES[name.replace(/\+imatrix$/, '')]!;
  test(`${model} → ${name}: llama.cpp's per-tensor types and general.file_type`, () => {
    const c = RECIPE_MODELS[model]!.config;
    const plan = grokTensorPlan(c);
    assert.equal(recipe.ftype, want.file_type);
    const types = recipeTypes(recipe, plan, c, { imatrix: name.endsWith('+imatrix') });
    assert.deepEqual(plan.map((t) => t.name).sort(), Object.keys(want.tensors).sort());
    const diff: string[] = [];
    plan.forEach((t, i) => { if (blockFormat(types[i]!).ggmlId !== want.tensors[t.name]![0]) diff.push(`${t.name}: ${types[i]} vs llama.cpp's ${want.tensors[t.name]![0]}`); });
    assert.deepEqual(diff, []);
  });
}

test('Grok-1 under Q4_K_M: the rules as llama.cpp states them (8 experts, 48/8 heads, 64 layers, tied output)', () => {
  const plan = grokTensorPlan(GROK1);
  const types = recipeTypes(RECIPES.Q4_K_M!, plan, GROK1);
  const of = (name: string) => types[plan.findIndex((t) => t.name === name)];
  assert.equal(of('token_embd.weight'), 'q6_k');
  for (let l = 0; l < 64; l++) {
    assert.equal(of(`blk.${l}.attn_v.weight`), 'q8_0');
    assert.equal(of(`blk.${l}.attn_k.weight`), 'q8_0');
    assert.equal(of(`blk.${l}.attn_q.weight`), 'q4_k');
    assert.equal(of(`blk.${l}.attn_output.weight`), 'q5_k');
    assert.equal(of(`blk.${l}.ffn_down_exps.weight`), useMoreBits(l, 64) ? 'q6_k' : 'q4_k');
    assert.equal(of(`blk.${l}.ffn_up_exps.weight`), 'q4_k');
    assert.equal(of(`blk.${l}.ffn_gate_exps.weight`), 'q4_k');
    assert.equal(of(`blk.${l}.ffn_gate_inp.weight`), 'f32');
  }
  // use_more_bits(i, 64): layers 0–7, 56–63 and every third from 10
  assert.deepEqual([...Array(64).keys()].filter((l) => useMoreBits(l, 64)), [0, 1, 2, 3, 4, 5, 6, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43, 46, 49, 52, 55, 56, 57, 58, 59, 60, 61, 62, 63]);
});
