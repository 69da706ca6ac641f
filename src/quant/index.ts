/**
 * Registry of block formats. One module per format; add a format by importing it here.
 * Lookups fail with a message naming the type, never a silent fallback.
 */
import { BF16, F16, F32 } from './float.js';
import { IQ1_M } from './iq1_m.js';
import { IQ1_S } from './iq1_s.js';
import { IQ2_S } from './iq2_s.js';
import { IQ2_XS } from './iq2_xs.js';
import { IQ2_XXS } from './iq2_xxs.js';
import { IQ3_S } from './iq3_s.js';
import { IQ3_XXS } from './iq3_xxs.js';
import { IQ4_NL } from './iq4_nl.js';
import { IQ4_XS } from './iq4_xs.js';
import { Q2_K } from './q2_k.js';
import { Q3_K } from './q3_k.js';
import { Q4_0 } from './q4_0.js';
import { Q4_1 } from './q4_1.js';
import { Q4_K } from './q4_k.js';
import { Q5_0 } from './q5_0.js';
import { Q5_1 } from './q5_1.js';
import { Q5_K } from './q5_k.js';
import { Q6_K } from './q6_k.js';
import { Q8_0 } from './q8_0.js';
import type { BlockFormat, BlockType } from './types.js';

export type { BlockFormat, BlockType } from './types.js';
export { rowBytes } from './types.js';

const formats: BlockFormat[] = [F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL,
  IQ4_XS, IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S];

const byName = new Map<string, BlockFormat>(formats.map((f) => [f.name, f]));

export function blockFormat(name: BlockType): BlockFormat {
  const f = byName.get(name);
  if (!f) throw new Error(`unsupported tensor type '${name}' (supported: ${[...byName.keys()].join(', ')})`);
  return f;
}

export function isBlockType(name: string): name is BlockType {
  return byName.has(name);
}

/** Every registered format (the native backend checks its compiled-in table against these). */
export function allBlockFormats(): readonly BlockFormat[] {
  return formats;
}
