/**
 * The small grok models and cases of test/convert-recipes.test.ts and its reference generator
 * (test/data/quant-ref/gen-recipes.mjs): `grok synth` writes the models deterministically (values depend only
 * on the seed), so llama.cpp's quantiser and ours see the same floats. Rows of 256 (every K-quant fits),
 * 16 layers (so that the first/last eighth and use_more_bits rules all show), one model with Grok-1's
 * 8 experts and 4:1 grouped heads, one with 4 experts and 2:1 heads (llama.cpp's other branches).
 */
import fs from 'node:fs';
import { TINY } from '../src/convert/synth.js';
import type { GrokConfig } from '../src/model/config.js';
import type { BlockType } from '../src/quant/index.js';
import { grokTensorPlan } from '../src/model/gguf-grok.js';
import { mulberry32 } from './random.js';

export const RECIPE_MODELS: Readonly<Record<string, { config: GrokConfig; seed: number }>> = {
  moe8: { config: { ...TINY, nLayers: 16, nExperts: 8, nExpertsUsed: 2, nKVHeads: 1, ffnSize: 256 }, seed: 8 },
  moe4: { config: { ...TINY, nLayers: 16, nExperts: 4, nExpertsUsed: 2, nKVHeads: 2, ffnSize: 256 }, seed: 4 },
};

/** Recipes checked against llama.cpp (llama-quantize names), with or without the models' importance matrix. */
export const RECIPE_CASES: readonly { recipe: string; imatrix: boolean }[] = [
  'Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q4_K_M', 'Q5_K_S', 'Q5_K_M', 'Q6_K', 'Q8_0', 'Q4_0', 'IQ4_NL',
].map((recipe) => ({ recipe, imatrix: false })).concat(
  ['Q2_K_S', 'Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q4_K_S', 'Q4_K_M', 'Q5_K_M', 'Q6_K', 'Q8_0', 'Q4_0', 'Q5_0', 'IQ4_NL'].map((recipe) => ({ recipe, imatrix: true })),
);

/**
 * llama.cpp's i-quant mixtures, whose per-tensor types are checked against llama.cpp
 * (test/data/quant-ref/llama-recipes-iq.json): the very-low-bit ones and IQ3_XXS / IQ3_XS need the importance
 * matrix (llama.cpp refuses them without); IQ3_S, IQ3_M and IQ4_XS also without it. Their bytes are not
 * converted here (the grid-search quantisers run at ~1 MB/s in TypeScript); test/quant-llama.test.ts checks the
 * quantisers' bytes against llama.cpp's.
 */
export const IQ_RECIPE_CASES: readonly { recipe: string; imatrix: boolean }[] = [
  'IQ1_S', 'IQ1_M', 'IQ2_XXS', 'IQ2_XS', 'IQ2_S', 'IQ2_M', 'IQ3_XXS', 'IQ3_XS', 'IQ3_S', 'IQ3_M', 'IQ4_XS',
].map((recipe) => ({ recipe, imatrix: true })).concat(['IQ3_S', 'IQ3_M', 'IQ4_XS'].map((recipe) => ({ recipe, imatrix: false })));

/**
 * Single block types checked against llama.cpp: llama-quantize's pure mode (every matrix that type;
 * `grok convert --type <type>`), for the types whose quantisers take the importance matrix but that no recipe
 * above gives every matrix, and IQ3_S (on moe4 only: its search runs at ~1 MB/s, llama.cpp's too).
 * Recorded as `<model>/<type>` or `<model>/<type>+imatrix`.
 */
export const PURE_CASES: readonly { type: BlockType; imatrix: boolean; models?: readonly string[] }[] = [
  ...(['q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl', 'iq4_xs'] as const).map((type) => ({ type, imatrix: true })),
  { type: 'iq3_s', imatrix: true, models: ['moe4'] },
  { type: 'iq3_s', imatrix: false, models: ['moe4'] },
];

/**
 * A legacy (binary) llama.cpp imatrix for `config`'s matrices, as llama-imatrix writes it: per tensor the
 * sums of squared activations (positive, spread over four orders of magnitude, ≈ 1 % zero for dead
 * channels), `ncall` 7, then the optional trailer (chunk count, dataset name).
 */
export function writeImatrixDat(file: string, config: GrokConfig, seed: number): void {
  const r = mulberry32(seed * 7919 + 1);
  const parts: Buffer[] = [];
  const i32 = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); parts.push(b); };
  const entries = grokTensorPlan(config).filter((t) => t.kind === 'matrix' || t.kind === 'experts');
  i32(entries.length);
  for (const t of entries) {
    const name = Buffer.from(t.name, 'utf8');
    const n = t.nIn * (t.kind === 'experts' ? config.nExperts : 1);
    i32(name.length);
    parts.push(name);
    i32(7);
    i32(n);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = r() < 0.01 ? 0 : 7 * 10 ** (4 * r() - 2);
    parts.push(Buffer.from(v.buffer));
  }
  i32(10);
  const ds = Buffer.from('synthetic-calibration.txt', 'utf8');
  i32(ds.length);
  parts.push(ds);
  fs.writeFileSync(file, Buffer.concat(parts));
}
