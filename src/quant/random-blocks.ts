/**
 * Random but valid blocks of the types we read without writing (the i-quants), and of IQ3_S (written by
 * `grok convert`, but at llama.cpp's ~1 MB/s: too slow for synth's benchmark slices): random bytes for every code,
 * sign and sub-scale, and the super-block's f16 scale set so the values have about a chosen RMS. A file of
 * such blocks is as valid for llama.cpp as a quantised one, which is how the i-quant kernels are tested
 * against it and how `grok synth` writes benchmark slices of these types.
 */
import { f32ToF16 } from './half.js';
import { blockFormat, type BlockType } from './index.js';

/** Byte offset of the f16 super-block scale d in each read-only type's block; iq1_m spreads it (below). */
const D_OFFSET: Partial<Record<BlockType, number>> = {
  iq1_s: 0, iq2_xxs: 0, iq2_xs: 0, iq2_s: 0, iq3_xxs: 0, iq3_s: 0,
};

export function hasRandomBlocks(type: BlockType): boolean {
  return type in D_OFFSET || type === 'iq1_m';
}

function setD(type: BlockType, b: Uint8Array, o: number, h: number): void {
  if (type === 'iq1_m') {
    // IQ1_M: nibble i of d is the top nibble of its u16 scale i (@48 + 2i).
    for (let i = 0; i < 4; i++) b[o + 49 + 2 * i] = (b[o + 49 + 2 * i]! & 0x0f) | (((h >> (4 * i)) & 15) << 4);
    return;
  }
  b[o + D_OFFSET[type]!] = h & 0xff;
  b[o + D_OFFSET[type]! + 1] = h >> 8;
}

/**
 * `nBlocks` random blocks of `type` whose values have an RMS of about `rms`: every block's d is drawn within
 * ±25 % of the scale that gives random blocks of this type that RMS (measured once on up to 64 of them, at
 * d = 1: values are linear in d). `next32` supplies uniform uint32s (a seeded generator).
 */
export function randomBlocks(type: BlockType, nBlocks: number, next32: () => number, rms: number): Uint8Array {
  if (!hasRandomBlocks(type)) throw new Error(`randomBlocks: '${type}' has a quantiser; quantise values instead`);
  const f = blockFormat(type);
  const out = new Uint8Array(nBlocks * f.bytesPerBlock);
  const words = new Uint32Array(out.buffer, 0, out.length >> 2);
  for (let i = 0; i < words.length; i++) words[i] = next32();
  for (let i = words.length * 4; i < out.length; i++) out[i] = next32() & 0xff;
  const sample = Math.min(nBlocks, 64);
  const vals = new Float32Array(sample * f.blockSize);
  for (let b = 0; b < sample; b++) setD(type, out, b * f.bytesPerBlock, 0x3c00);
  f.dequantize(out, 0, vals.length, vals, 0);
  let ss = 0;
  for (const v of vals) ss += v * v;
  const d1 = rms / (Math.sqrt(ss / Math.max(1, vals.length)) || 1);
  for (let b = 0; b < nBlocks; b++) setD(type, out, b * f.bytesPerBlock, f32ToF16(d1 * (0.75 + 0.5 * (next32() / 4294967296))));
  return out;
}
