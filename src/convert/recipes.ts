/**
 * llama.cpp's quantisation mixtures ("recipes": Q4_K_M, Q3_K_S, Q6_K …) as data and rules: which type each
 * of a grok GGUF's tensors gets. A port of llama.cpp src/llama-quant.cpp (the release node-llama-cpp ships)
 * llama_tensor_get_type → llama_tensor_get_type_impl → tensor_type_fallback, restricted to what a Grok
 * model has (no Falcon, no 70B, no fused QKV): the K-quant, legacy and i-quant mixtures (IQ1_S … IQ4_XS).
 * test/convert-recipes.test.ts checks every tensor's type, and its bytes, against llama_model_quantize.
 *
 * The rules, for Grok-1 (64 layers, 8 experts, 48/8 heads) under Q4_K_M for example:
 *   - token_embd (tied to the output) and output.weight: Q6_K (Q8_0 when the rows do not fit 256);
 *   - attn_v and attn_k: Q8_0 ("for the 8-expert model, bumping this to Q8_0 trades just ~128MB");
 *   - attn_output: Q5_K (8 experts);
 *   - ffn_down_exps: Q6_K on use_more_bits layers (the first and last eighth, and every third between),
 *     else Q4_K;  everything else: the recipe's base type (Q4_K); norms and the router stay F32.
 * Counters follow llama.cpp's tensor order (by layer number, then name), as its quantiser visits them.
 */
import type { GrokConfig } from '../model/config.js';
import { blockTypeForRow, type GrokTensorSpec } from '../model/gguf-grok.js';
import { blockFormat, type BlockType } from '../quant/index.js';
import type { Recipe } from './recipe-names.js';

export { RECIPE_ALIASES, recipeNamed, RECIPES, type Recipe } from './recipe-names.js';

type Category = 'token_embd' | 'output' | 'attn_v' | 'attn_k' | 'attn_q' | 'attn_output' | 'ffn_up' | 'ffn_gate' | 'ffn_down' | 'other';

/** llama-quant.cpp tensor_get_category (substring matches, in its order). */
function category(name: string): Category {
  if (name === 'output.weight') return 'output';
  if (name === 'token_embd.weight') return 'token_embd';
  if (name.includes('attn_v.weight')) return 'attn_v';
  if (name.includes('attn_k.weight')) return 'attn_k';
  if (name.includes('attn_q.weight')) return 'attn_q';
  if (name.includes('attn_output.weight')) return 'attn_output';
  if (name.includes('ffn_up')) return 'ffn_up';
  if (name.includes('ffn_gate')) return 'ffn_gate';
  if (name.includes('ffn_down')) return 'ffn_down';
  return 'other';
}

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third layer between (C integer division). */
export function useMoreBits(i: number, n: number): boolean {
  const e = Math.trunc(n / 8);
  return i < e || i >= Math.trunc((7 * n) / 8) || (i - e) % 3 === 2;
}

/** llama.cpp's very-low-bit mixtures, which share one branch of llama_tensor_get_type_impl. */
const LOW_BIT: ReadonlySet<string> = new Set(['IQ2_XXS', 'IQ2_XS', 'IQ1_S', 'IQ2_S', 'IQ2_M', 'IQ1_M']);

function layerOf(name: string): number {
  const m = /^blk\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

export interface RecipeOptions {
  /** An importance matrix is given (llama.cpp's has_imatrix: changes Q4_0/Q5_0 and IQ4_NL's ffn_down). */
  imatrix?: boolean;
  /** --embd-type: the type of token_embd and output.weight (llama-quantize's --token-embedding-type / --output-tensor-type). */
  embdType?: BlockType;
}

/**
 * The type of every tensor of `plan` under `recipe` (llama_tensor_get_type with pure = false). Vectors and
 * the router are not quantised (F32 here, as the converter writes them).
 */
export function recipeTypes(recipe: Recipe, plan: readonly GrokTensorSpec[], c: GrokConfig, opts: RecipeOptions = {}): BlockType[] {
  const f = recipe.name;
  const nLayer = c.nLayers;
  const nExpert = Math.max(1, c.nExperts);
  const gqa = Math.trunc(c.nHeads / c.nKVHeads);
  const tied = !plan.some((t) => t.name === 'output.weight');
  const nAttnV = plan.filter((t) => category(t.name) === 'attn_v').length;
  // llama.cpp visits tensors ordered by layer (blk.N., others first as −1), then by name; its counters count in that order
  const order = plan.map((t, i) => i).sort((a, b) => {
    const la = layerOf(plan[a]!.name), lb = layerOf(plan[b]!.name);
    if (la !== lb) return la - lb;
    return plan[a]!.name < plan[b]!.name ? -1 : plan[a]!.name > plan[b]!.name ? 1 : 0;
  });
  let iAttnV = 0;
  let iFfnDown = 0;
  const types: BlockType[] = plan.map(() => 'f32');
  const quantised = (base: BlockType) => base !== 'f32' && base !== 'f16' && base !== 'bf16';
  for (const idx of order) {
    const t = plan[idx]!;
    if (t.kind === 'vector' || t.kind === 'router') continue; // not quantised: 1-D, or ffn_gate_inp
    const cat = category(t.name);
    if (opts.embdType && (cat === 'token_embd' || cat === 'output')) {
      types[idx] = opts.embdType; // llama_tensor_get_type returns the override as is
      continue;
    }
    let type: BlockType = recipe.base;
    if (quantised(recipe.base)) {
      type = ruleType(type, t, cat);
      type = blockTypeForRow(type, t.nIn); // tensor_type_fallback
    }
    types[idx] = type;
  }
  return types;

  function ruleType(base: BlockType, t: GrokTensorSpec, cat: Category): BlockType {
    let type = base;
    const lowBit = LOW_BIT.has(f);
    if (cat === 'output' || (tied && cat === 'token_embd')) {
      if (t.nIn % blockFormat(base).blockSize !== 0) type = 'q8_0';
      else if (lowBit || f === 'IQ3_XXS') type = 'q5_k';
      else if (type !== 'q8_0') type = 'q6_k';
    } else if (cat === 'token_embd') {
      // untied embedding
      if (f === 'IQ2_XXS' || f === 'IQ2_XS' || f === 'IQ1_S' || f === 'IQ1_M') type = 'q2_k';
      else if (f === 'IQ2_S' || f === 'IQ2_M' || f === 'IQ3_XXS') type = 'iq3_s';
    } else if (lowBit) {
      const s = f === 'IQ2_S' || f === 'IQ2_M';
      if (cat === 'attn_v') {
        type = gqa >= 4 || c.nExperts >= 4 ? 'q4_k' : s ? 'iq3_s' : 'q2_k';
        iAttnV++;
      } else if (c.nExperts === 8 && cat === 'attn_k') type = 'q4_k';
      else if (cat === 'ffn_down') {
        if (iFfnDown < Math.trunc(nLayer / 8)) type = s ? 'iq3_s' : 'q2_k';
        iFfnDown++;
      } else if (cat === 'attn_output') {
        if (c.nExperts === 8) type = 'q5_k';
        else if (f === 'IQ1_S' || f === 'IQ1_M') type = 'iq2_xxs';
        else if (s) type = 'iq3_s';
      }
    } else if (cat === 'attn_v') {
      if (f === 'Q2_K') type = gqa >= 4 ? 'q4_k' : 'q3_k';
      else if (f === 'Q2_K_S' && gqa >= 4) type = 'q4_k';
      else if (f === 'IQ3_XXS') type = gqa >= 4 ? 'q4_k' : !opts.imatrix ? 'iq3_s' : 'iq3_xxs';
      else if ((f === 'IQ3_XS' || f === 'IQ3_S') && gqa >= 4) type = 'q4_k';
      else if (f === 'IQ3_M') type = 'q4_k';
      else if (f === 'Q3_K_M') type = iAttnV < 2 ? 'q5_k' : 'q4_k';
      else if (f === 'Q3_K_L') type = 'q5_k';
      else if ((f === 'IQ4_NL' || f === 'IQ4_XS') && gqa >= 4) type = 'q5_k';
      else if ((f === 'Q4_K_M' || f === 'Q5_K_M') && useMoreBits(iAttnV, nAttnV)) type = 'q6_k';
      else if (f === 'Q4_K_S' && iAttnV < 4) type = 'q5_k';
      if (c.nExperts === 8) type = 'q8_0';
      iAttnV++;
    } else if (cat === 'attn_k') {
      if (c.nExperts === 8) type = 'q8_0';
      else if (f === 'IQ3_XS') type = 'iq3_xxs';
      else if (f === 'IQ3_XXS') type = 'iq2_s';
    } else if (cat === 'attn_q') {
      if (f === 'IQ3_XS') type = 'iq3_xxs';
      else if (f === 'IQ3_XXS') type = 'iq2_s';
    } else if (cat === 'ffn_down') {
      const i = layerOf(t.name);
      if (nExpert > 1 && (i < 0 || i >= nLayer)) throw new Error(`recipe: bad layer for tensor ${t.name}`);
      if (f === 'Q2_K') type = 'q3_k';
      else if (f === 'Q2_K_S') { if (i < Math.trunc(nLayer / 8)) type = 'q4_k'; }
      else if (f === 'IQ3_XXS' && !opts.imatrix) type = i < Math.trunc(nLayer / 8) ? 'q4_k' : 'q3_k';
      else if (f === 'Q3_K_M') type = i < Math.trunc(nLayer / 16) ? 'q5_k' : 'q4_k'; // not Falcon: use_more_bits is not asked
      else if (f === 'IQ3_M' && (i < Math.trunc(nLayer / 8) || (c.nExperts === 8 && useMoreBits(i, nLayer)))) type = 'q4_k';
      else if (f === 'Q3_K_L') type = 'q5_k';
      else if (f === 'Q4_K_M') { if (useMoreBits(i, nLayer)) type = 'q6_k'; }
      else if (i < Math.trunc(nLayer / 8) && (f === 'IQ4_NL' || f === 'IQ4_XS') && !opts.imatrix) type = 'q5_k';
      else if (f === 'Q5_K_M' && useMoreBits(i, nLayer)) type = 'q6_k';
      else if (f === 'Q4_K_S' && i < Math.trunc(nLayer / 8)) type = 'q5_k';
      else if ((f === 'Q4_0' || f === 'Q5_0') && opts.imatrix && i < Math.trunc(nLayer / 8)) type = f === 'Q4_0' ? 'q4_1' : 'q5_1';
    } else if (cat === 'attn_output') {
      if (c.nExperts === 8) {
        if (['Q2_K', 'IQ3_XS', 'IQ3_XXS', 'Q3_K_S', 'Q3_K_M', 'IQ4_NL', 'Q4_K_S', 'Q4_K_M', 'IQ3_S', 'IQ3_M', 'IQ4_XS'].includes(f)) type = 'q5_k';
      } else if (f === 'Q2_K') type = 'q3_k';
      else if (f === 'IQ3_XXS') type = 'iq3_s';
      else if (f === 'Q3_K_M') type = 'q4_k';
      else if (f === 'Q3_K_L') type = 'q5_k';
      else if (f === 'IQ3_M') type = 'q4_k';
    } else if (cat === 'ffn_gate' || cat === 'ffn_up') {
      const i = layerOf(t.name);
      if (f === 'IQ3_XS' && i >= Math.trunc(nLayer / 8) && i < Math.trunc((7 * nLayer) / 8)) type = 'iq3_xxs';
    }
    return type;
  }
}
