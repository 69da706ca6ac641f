/**
 * The kernel ABI: the numbers that the TypeScript driver (src/kernels/wasm.ts), the WebAssembly kernels
 * (assembly/*.ts, which import this very file) and a native backend must agree on. Declared once, here.
 *
 * This file is compiled by both tsc and asc (AssemblyScript), so it holds nothing but lines of the form
 *   export const NAME = <integer>; // <type>: <meaning>
 * (asc infers i32; tsc a number literal). test/abi.test.ts reads it as text: it checks the block-type
 * codes against src/quant, that each argument slot is written by wasm.ts and read by assembly/ under
 * the same name and type, and derives a C header from it (`#define GROK_<NAME> <value>`, each slot group
 * as a struct of 32-bit fields), which a native backend can include or check itself against.
 *
 * Block types (TYPE_*): ggml's type ids — enum ggml_type in ggml.h, the `type` field of a GGUF tensor
 * info (ggml docs/gguf.md) — equal to `blockFormat(name).ggmlId` in src/quant. The kernels handle f32,
 * f16, bf16, q8_0, q4_0, q4_k and q6_k; the other types run through the scalar reference.
 *
 * Numerics modes (MODE_*): exact = weights dequantised to f32, f32 activations and sums (matches the
 * reference to float32 rounding); fast = activations quantised to int8 per 32 values, integer block dots
 * (llama.cpp's numerics). The WebAssembly module has one entry point per mode (mmExact / mmFast,
 * mmXai8 / mmXai8Fast); a backend with one entry takes the code.
 *
 * Argument blocks (MM_*, XAI8_*, ATTN_*): a chunked entry point fn(args, r0, r1, scratch) computes output
 * rows (or xai8 columns, or attention items) [r0, r1) and reads everything else from a block of 32-bit
 * little-endian slots at byte address `args`, filled by the caller before the chunks run on any number of
 * threads. Each slot's value below is its byte offset in the block; slots of a group are consecutive from
 * 0 (so the group is a C struct of 32-bit fields). Types: `ptr` = u32 byte address in the kernels' memory,
 * `u32` = byte count, `i32` = count or code, `f32` = float.
 */

// Block types: ggml type ids (ggml.h enum ggml_type).
export const TYPE_F32 = 0; // ggml GGML_TYPE_F32
export const TYPE_F16 = 1; // ggml GGML_TYPE_F16
export const TYPE_Q4_0 = 2; // ggml GGML_TYPE_Q4_0
export const TYPE_Q4_1 = 3; // ggml GGML_TYPE_Q4_1
export const TYPE_Q5_0 = 6; // ggml GGML_TYPE_Q5_0
export const TYPE_Q5_1 = 7; // ggml GGML_TYPE_Q5_1
export const TYPE_Q8_0 = 8; // ggml GGML_TYPE_Q8_0
export const TYPE_Q2_K = 10; // ggml GGML_TYPE_Q2_K
export const TYPE_Q3_K = 11; // ggml GGML_TYPE_Q3_K
export const TYPE_Q4_K = 12; // ggml GGML_TYPE_Q4_K
export const TYPE_Q5_K = 13; // ggml GGML_TYPE_Q5_K
export const TYPE_Q6_K = 14; // ggml GGML_TYPE_Q6_K
export const TYPE_IQ2_XXS = 16; // ggml GGML_TYPE_IQ2_XXS
export const TYPE_IQ2_XS = 17; // ggml GGML_TYPE_IQ2_XS
export const TYPE_IQ3_XXS = 18; // ggml GGML_TYPE_IQ3_XXS
export const TYPE_IQ1_S = 19; // ggml GGML_TYPE_IQ1_S
export const TYPE_IQ4_NL = 20; // ggml GGML_TYPE_IQ4_NL
export const TYPE_IQ3_S = 21; // ggml GGML_TYPE_IQ3_S
export const TYPE_IQ2_S = 22; // ggml GGML_TYPE_IQ2_S
export const TYPE_IQ4_XS = 23; // ggml GGML_TYPE_IQ4_XS
export const TYPE_IQ1_M = 29; // ggml GGML_TYPE_IQ1_M
export const TYPE_BF16 = 30; // ggml GGML_TYPE_BF16

// Numerics modes.
export const MODE_EXACT = 0; // mode: f32 weights, activations and sums
export const MODE_FAST = 1; // mode: int8 activations per 32 values, integer block dots

// 'rows' matmul (mmExact, mmFast): y[t, r] = Σ_i W[r, i]·x[t, i] for output rows r of W [nOut, nIn].
export const MM_TYPE = 0; // i32: block type of W (TYPE_*)
export const MM_W = 4; // ptr: W, nOut rows of MM_ROW_BYTES bytes
export const MM_ROW_BYTES = 8; // u32: bytes per row of W
export const MM_N_IN = 12; // i32: values per row (inputs)
export const MM_X = 16; // ptr: activations [T][nIn], f32 (exact) or int8 widened to i16 (fast)
export const MM_T = 20; // i32: tokens T
export const MM_Y = 24; // ptr: output f32 [T][nOut]
export const MM_N_OUT = 28; // i32: rows of W (outputs)
export const MM_XS = 32; // ptr: fast only, f32 scale per 32 activations [T][nIn/32]
export const MM_XSUM = 36; // ptr: fast only, i32 sum of the int8 activations per 32 [T][nIn/32]
export const MM_XQ8 = 40; // ptr: fast only, int8 activations [T][nIn]
export const MM_ARGS_BYTES = 44; // u32: size of the block

// 'xai8' matmul (mmXai8, mmXai8Fast), the checkpoint's int8 layout: output columns [c0, c1).
export const XAI8_Q = 0; // ptr: int8 weights [nIn][nOut], input-major
export const XAI8_SCALES = 4; // ptr: bf16 scales [groups][nOut]
export const XAI8_N_IN = 8; // i32: inputs
export const XAI8_N_OUT = 12; // i32: outputs (columns)
export const XAI8_GROUPS = 16; // i32: scale groups along the inputs
export const XAI8_X = 20; // ptr: activations [T][nIn], f32 (exact) or int8 widened to i16 (fast)
export const XAI8_T = 24; // i32: tokens T
export const XAI8_Y = 28; // ptr: output f32 [T][nOut]
export const XAI8_XS = 32; // ptr: fast only, f32 scale per 32 activations [T][nIn/32]
export const XAI8_ARGS_BYTES = 36; // u32: size of the block

// Attention (attnChunk): items i = t·nKV + g, token t with the query heads of KV head g.
export const ATTN_Q = 0; // ptr: queries f32 [T][nHeads][headDim]
export const ATTN_K = 4; // ptr: keys f32 [pos0 + T][nKV][headDim]
export const ATTN_V = 8; // ptr: values f32 [pos0 + T][nKV][headDim]
export const ATTN_MASK = 12; // ptr: u8 per key position, 0 = masked
export const ATTN_OUT = 16; // ptr: output f32 [T][nHeads][headDim]
export const ATTN_POS0 = 20; // i32: position of the first query
export const ATTN_N_HEADS = 24; // i32: query heads
export const ATTN_N_KV = 28; // i32: key/value heads (divides nHeads)
export const ATTN_HEAD_DIM = 32; // i32: values per head
export const ATTN_SCALE = 36; // f32: multiplier of q·k
export const ATTN_SOFTCAP = 40; // f32: c of c·tanh(s/c), 0 = none
export const ATTN_TEMP_LEN = 44; // f32: Grok-2's attention temperature length L (scores at position p > L × log2(p)/log2(L)), 0 = none
export const ATTN_ARGS_BYTES = 48; // u32: size of the block

// WebAssembly memory layout: the argument block lies above the module's static data (asc places it from
// byte 1024; a few hundred bytes of math tables) and below the per-thread scratch at 64 KiB.
export const WASM_ARG_BLOCK = 61440; // ptr: address of the argument block in every kernel memory
