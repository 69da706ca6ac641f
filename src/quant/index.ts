/**
 * Registry of block formats. One module per format; add a format by importing it here.
 * Lookups fail with a message naming the type, never a silent fallback.
 */
import { BF16, F16, F32 } from './float.js';
import type { BlockFormat, BlockType } from './types.js';

export type { BlockFormat, BlockType } from './types.js';
export { rowBytes } from './types.js';

const formats: BlockFormat[] = [F32, F16, BF16];

const byName = new Map<string, BlockFormat>(formats.map((f) => [f.name, f]));
const byId = new Map<number, BlockFormat>(formats.map((f) => [f.ggmlId, f]));

export function blockFormat(name: BlockType): BlockFormat {
  const f = byName.get(name);
  if (!f) throw new Error(`unsupported tensor type '${name}' (supported: ${[...byName.keys()].join(', ')})`);
  return f;
}

export function isBlockType(name: string): name is BlockType {
  return byName.has(name);
}

export function blockFormatById(id: number): BlockFormat | undefined {
  return byId.get(id);
}

export function allBlockFormats(): readonly BlockFormat[] {
  return formats;
}
