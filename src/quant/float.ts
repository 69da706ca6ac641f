/** Plain float storage types F32 / F16 / BF16 as block formats of block size 1. */
import { bf16ToF32, f16Table, f32ToBf16, f32ToF16 } from './half.js';
import type { BlockFormat } from './types.js';

function view(src: Uint8Array): DataView {
  return new DataView(src.buffer, src.byteOffset, src.byteLength);
}

export const F32: BlockFormat = {
  name: 'f32', ggmlId: 0, blockSize: 1, bytesPerBlock: 4,
  dequantize(src, offset, n, out, outOffset) {
    const dv = view(src);
    for (let i = 0; i < n; i++) out[outOffset + i] = dv.getFloat32(offset + 4 * i, true);
  },
  dot(src, offset, x, xOffset, n) {
    const dv = view(src);
    let s = 0;
    for (let i = 0; i < n; i++) s += dv.getFloat32(offset + 4 * i, true) * x[xOffset + i]!;
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    const dv = view(dst);
    for (let i = 0; i < n; i++) dv.setFloat32(offset + 4 * i, x[xOffset + i]!, true);
  },
};

export const F16: BlockFormat = {
  name: 'f16', ggmlId: 1, blockSize: 1, bytesPerBlock: 2,
  dequantize(src, offset, n, out, outOffset) {
    const t = f16Table();
    for (let i = 0; i < n; i++) out[outOffset + i] = t[src[offset + 2 * i]! | (src[offset + 2 * i + 1]! << 8)]!;
  },
  dot(src, offset, x, xOffset, n) {
    const t = f16Table();
    let s = 0;
    for (let i = 0; i < n; i++) s += t[src[offset + 2 * i]! | (src[offset + 2 * i + 1]! << 8)]! * x[xOffset + i]!;
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    for (let i = 0; i < n; i++) {
      const h = f32ToF16(x[xOffset + i]!);
      dst[offset + 2 * i] = h & 0xff;
      dst[offset + 2 * i + 1] = h >> 8;
    }
  },
};

export const BF16: BlockFormat = {
  name: 'bf16', ggmlId: 30, blockSize: 1, bytesPerBlock: 2,
  dequantize(src, offset, n, out, outOffset) {
    for (let i = 0; i < n; i++) out[outOffset + i] = bf16ToF32(src[offset + 2 * i]! | (src[offset + 2 * i + 1]! << 8));
  },
  dot(src, offset, x, xOffset, n) {
    let s = 0;
    for (let i = 0; i < n; i++) s += bf16ToF32(src[offset + 2 * i]! | (src[offset + 2 * i + 1]! << 8)) * x[xOffset + i]!;
    return s;
  },
  quantize(x, xOffset, n, dst, offset) {
    for (let i = 0; i < n; i++) {
      const h = f32ToBf16(x[xOffset + i]!);
      dst[offset + 2 * i] = h & 0xff;
      dst[offset + 2 * i + 1] = h >> 8;
    }
  },
};
