/**
 * The names of llama.cpp's quantisation mixtures (llama-quantize's type names, llama.h LLAMA_FTYPE_MOSTLY_*)
 * that this converter writes, with their general.file_type value and base block type; the rules are in
 * recipes.ts. A module of its own, without imports, so the command line can check a name cheaply.
 */
import type { BlockType } from '../quant/types.js';

export interface Recipe {
  readonly name: string;
  readonly ftype: number;
  readonly base: BlockType;
}

export const RECIPES: Readonly<Record<string, Recipe>> = Object.fromEntries(([
  ['F32', 0, 'f32'], ['F16', 1, 'f16'], ['BF16', 32, 'bf16'], ['Q4_0', 2, 'q4_0'], ['Q4_1', 3, 'q4_1'], ['Q8_0', 7, 'q8_0'],
  ['Q5_0', 8, 'q5_0'], ['Q5_1', 9, 'q5_1'], ['Q2_K', 10, 'q2_k'], ['Q3_K_S', 11, 'q3_k'], ['Q3_K_M', 12, 'q3_k'],
  ['Q3_K_L', 13, 'q3_k'], ['Q4_K_S', 14, 'q4_k'], ['Q4_K_M', 15, 'q4_k'], ['Q5_K_S', 16, 'q5_k'], ['Q5_K_M', 17, 'q5_k'],
  ['Q6_K', 18, 'q6_k'], ['Q2_K_S', 21, 'q2_k'], ['IQ4_NL', 25, 'iq4_nl'],
  ['IQ2_XXS', 19, 'iq2_xxs'], ['IQ2_XS', 20, 'iq2_xs'], ['IQ3_XS', 22, 'iq3_s'], ['IQ3_XXS', 23, 'iq3_xxs'], ['IQ1_S', 24, 'iq1_s'],
  ['IQ3_S', 26, 'iq3_s'], ['IQ3_M', 27, 'iq3_s'], ['IQ2_S', 28, 'iq2_xs'], ['IQ2_M', 29, 'iq2_s'], ['IQ4_XS', 30, 'iq4_xs'], ['IQ1_M', 31, 'iq1_m'],
] as const).map(([name, ftype, base]) => [name, { name, ftype, base }]));

/** llama-quantize's aliases: Q3_K, Q4_K and Q5_K name the _M mixtures. */
export const RECIPE_ALIASES: Readonly<Record<string, string>> = { Q3_K: 'Q3_K_M', Q4_K: 'Q4_K_M', Q5_K: 'Q5_K_M' };

/** The recipe of a llama-quantize name in any case (Q4_K_M, q4_k_m; Q4_K = Q4_K_M), or undefined. */
export function recipeNamed(name: string): Recipe | undefined {
  const n = name.toUpperCase();
  return RECIPES[RECIPE_ALIASES[n] ?? n];
}
