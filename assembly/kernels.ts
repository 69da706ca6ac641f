// WebAssembly SIMD128 kernels for grok-ts (AssemblyScript; built into dist/kernels.wasm by `npm run build`).
// This file is the module's entry: it only names the exports. The kernels live in files named after the
// block formats of src/quant (float.ts for f16/bf16/f32 rows, q8_0.ts, q4_0.ts, q4_k.ts, q6_k.ts, xai8.ts)
// and in shared modules: matmul.ts (the drivers for 'rows' matrices), activations.ts (int8 activations of
// the fast mode), attention.ts, half.ts (f16/bf16 → f32), math.ts (SIMD helpers).
//
// Every function works on byte offsets into the one (shared) memory it was instantiated with; the
// TypeScript side (src/kernels/wasm.ts) owns the layout: an argument block, one scratch area per thread,
// an activation area, then weights. Chunked entry points take (args, r0, r1, scratch) so that the main
// thread and the workers can each claim a range of output rows (or columns for 'xai8') and run it.
//
// Block layouts: ggml's (ggml-common.h block_q8_0, block_q4_0, block_q4_K, block_q6_K). Two numeric modes:
//   exact — weights dequantised to f32 (row by row, into L1-resident scratch), f32 activations, f32 sums;
//   fast  — activations quantised to int8 per 32 values (kept widened as i16, with one f32 scale and the
//           integer sum per block, as llama.cpp's Q8 activations); integer dot products per 32-block.
//
// Batch invariance: for each weight type and mode, one-token and many-token kernels perform the same
// float operations in the same order for every output (same lane assignment, block order, horizontal
// reduction and scale order); only integer work, which is exact, is arranged differently. A token's
// output row is therefore bit-identical whatever T and its position in the batch.

export { deqRowF32, deqRowI16, mmExact, mmFast } from './matmul';
export { quantizeX } from './activations';
export { mmXai8 } from './xai8';
export { getRow } from './matmul';
export { mmXai8Fast } from './xai8';
export { attnChunk } from './attention';
