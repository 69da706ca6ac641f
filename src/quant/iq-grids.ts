/**
 * The i-quants' shared pieces: their codebooks (ggml-common.h's grids, expanded once from
 * iq-grids-data.ts), the sign table, and `defineIQ`, which builds a format's reference dequantiser and dot
 * product from one function that writes a super-block's 256 values. Every value of every i-quant is a
 * product of at most 24 significant bits (f16 scale × small integers × grid value), so the float32 results
 * are exact and the order of operations does not matter; `Math.fround` marks where ggml rounds anyway.
 */
import { checkBlocks } from './ggml-ref.js';
import * as data from './iq-grids-data.js';
import { defineFormat } from './layout.js';
import type { BlockFormat, BlockType } from './types.js';

export const QK_K = 256;

/** Expand a packed codebook into `entries × bytes` values (Int8Array: iq1s has negative values). */
function expand(g: data.PackedGrid): Int8Array {
  const bin = Uint8Array.from(atob(g.data), (c) => c.charCodeAt(0)); // atob: also in browsers
  const out = new Int8Array(g.entries * g.bytes);
  const mask = (1 << g.bits) - 1;
  for (let i = 0, bit = 0; i < out.length; i++, bit += g.bits) {
    const word = bin[bit >> 3]! | ((bin[(bit >> 3) + 1] ?? 0) << 8);
    out[i] = g.values[(word >> (bit & 7)) & mask]!;
  }
  return out;
}

/** Grid point `i` of a codebook occupies bytes [bytes·i, bytes·i + bytes). */
export const IQ2XXS_GRID = expand(data.IQ2XXS_GRID);
export const IQ2XS_GRID = expand(data.IQ2XS_GRID);
export const IQ2S_GRID = expand(data.IQ2S_GRID);
export const IQ3XXS_GRID = expand(data.IQ3XXS_GRID);
export const IQ3S_GRID = expand(data.IQ3S_GRID);
export const IQ1S_GRID = expand(data.IQ1S_GRID);
/** The values of the iq2 grids' levels 0, 1, 2 (IQ2_XXS, IQ2_XS, IQ2_S) and of iq1s's (−1, 0, 1). */
export const IQ2_GRID_VALUES = data.IQ2XXS_GRID.values;
export const IQ1_GRID_VALUES = data.IQ1S_GRID.values;

/** ksigns_iq2xs: 7 sign bits plus an 8th that makes the number of minus signs even. */
export const KSIGNS = Uint8Array.from({ length: 128 }, (_, i) => {
  let p = 0;
  for (let b = 0; b < 7; b++) p ^= (i >> b) & 1;
  return i | (p << 7);
});

/** IQ1_S / IQ1_M: each grid value (−1, 0, 1) is shifted by ±1/8 (the sign per 32 or 8 values). */
export const IQ1_DELTA = 0.125;

export function rd16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

/** Write 8 values s·grid[j]·(−1 if bit j of signs) at y[yo…]. */
export function put8(y: Float32Array, yo: number, s: number, grid: Int8Array, gi: number, signs: number): void {
  for (let j = 0; j < 8; j++) {
    const v = Math.fround(s * grid[gi + j]!);
    y[yo + j] = (signs >> j) & 1 ? -v : v;
  }
}

interface IQSpec {
  name: BlockType;
  ggmlId: number;
  bytesPerBlock: number;
  layout: Record<string, number>;
  /** Dequantise the super-block at src[o…] into y[0…256). */
  block(src: Uint8Array, o: number, y: Float32Array): void;
  /** Quantise 256 values x[xo…] into the block at dst[o…] (the types we also write). */
  quantizeBlock?(x: Float32Array, xo: number, dst: Uint8Array, o: number): void;
}

/** A 256-value i-quant format from its super-block dequantiser (and quantiser, where we write the type). */
export function defineIQ(spec: IQSpec): BlockFormat {
  const buf = new Float32Array(QK_K);
  const qb = spec.quantizeBlock;
  const quantize = qb && ((x: Float32Array, xOffset: number, n: number, dst: Uint8Array, offset: number) => {
    checkBlocks(spec.name, n, QK_K);
    for (let b = 0; b < n / QK_K; b++) qb(x, xOffset + QK_K * b, dst, offset + spec.bytesPerBlock * b);
  });
  return defineFormat({
    ...(quantize ? { quantize } : {}),
    name: spec.name, ggmlId: spec.ggmlId, blockSize: QK_K, bytesPerBlock: spec.bytesPerBlock, layout: spec.layout,
    dequantize(src, offset, n, out, outOffset) {
      checkBlocks(spec.name, n, QK_K);
      for (let b = 0; b < n / QK_K; b++) {
        spec.block(src, offset + spec.bytesPerBlock * b, buf);
        out.set(buf, outOffset + QK_K * b);
      }
    },
    dot(src, offset, x, xOffset, n) {
      checkBlocks(spec.name, n, QK_K);
      let s = 0;
      for (let b = 0; b < n / QK_K; b++) {
        spec.block(src, offset + spec.bytesPerBlock * b, buf);
        const xo = xOffset + QK_K * b;
        for (let i = 0; i < QK_K; i++) s += buf[i]! * x[xo + i]!;
      }
      return s;
    },
  });
}
