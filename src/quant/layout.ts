/**
 * Declares a block format and asserts, when the module loads, that its field layout adds up to the block's
 * byte size (the TypeScript counterpart of `static_assert(sizeof(block_q4_0) == 18)`).
 */
import type { BlockFormat, BlockType } from './types.js';

export interface FormatSpec extends BlockFormat {
  /** Field name → bytes, in storage order (documentation and the size check). */
  readonly layout: Readonly<Record<string, number>>;
}

export function defineFormat(spec: FormatSpec): BlockFormat {
  const total = Object.values(spec.layout).reduce((a, b) => a + b, 0);
  if (total !== spec.bytesPerBlock) {
    throw new Error(`${spec.name}: block fields add up to ${total} bytes, expected ${spec.bytesPerBlock}`);
  }
  const { layout: _layout, ...format } = spec;
  return Object.freeze(format);
}

export type { BlockType };
