/*
 * grok-native: the C core of the native kernel backend (src/kernels/native.ts drives it through Node-API,
 * native/test/check.c drives it directly). Plain C11; SIMD kernels live in isa.c, which the build compiles
 * once per instruction-set level, and gn_create picks one of them at run time.
 *
 * Every entry point checks its sizes again (the TypeScript side already did): a bad length is an error
 * code, never a read past a buffer.
 */
#ifndef GN_H
#define GN_H

#include <stddef.h>
#include <stdint.h>
#include "grok_abi.h" /* generated from src/kernels/abi.ts by the build */

/* Block types: ggml's type ids, from the one ABI declaration (src/kernels/abi.ts TYPE_*). */
enum {
  GN_F32 = GROK_TYPE_F32, GN_F16 = GROK_TYPE_F16, GN_Q4_0 = GROK_TYPE_Q4_0, GN_Q4_1 = GROK_TYPE_Q4_1,
  GN_Q5_0 = GROK_TYPE_Q5_0, GN_Q5_1 = GROK_TYPE_Q5_1, GN_Q8_0 = GROK_TYPE_Q8_0, GN_Q2_K = GROK_TYPE_Q2_K,
  GN_Q3_K = GROK_TYPE_Q3_K, GN_Q4_K = GROK_TYPE_Q4_K, GN_Q5_K = GROK_TYPE_Q5_K, GN_Q6_K = GROK_TYPE_Q6_K,
  GN_IQ4_NL = GROK_TYPE_IQ4_NL, GN_BF16 = GROK_TYPE_BF16, GN_IQ2_XXS = GROK_TYPE_IQ2_XXS, GN_IQ2_XS = GROK_TYPE_IQ2_XS,
  GN_IQ3_XXS = GROK_TYPE_IQ3_XXS, GN_IQ1_S = GROK_TYPE_IQ1_S, GN_IQ3_S = GROK_TYPE_IQ3_S, GN_IQ2_S = GROK_TYPE_IQ2_S,
  GN_IQ4_XS = GROK_TYPE_IQ4_XS, GN_IQ1_M = GROK_TYPE_IQ1_M,
};

typedef struct {
  int id;
  const char *name;
  int block_size;  /* values per block */
  int block_bytes; /* bytes per block */
} gn_type_info;

/* The table of supported types (for the ABI check against the TypeScript registry). */
extern const gn_type_info gn_types[];
extern const int gn_type_count;
const gn_type_info *gn_type(int id);

/* Instruction-set levels (macros: isa.c tests them in #if); gn_cpu_best_isa holds the order of preference.
 * AVX512_BF16 is the avx512 level plus vdpbf16ps for bf16 rows in fast mode (activations rounded to bf16). */
#define GN_ISA_SCALAR 0
#define GN_ISA_AVX2 1
#define GN_ISA_AVX512 2
#define GN_ISA_NEON 3
#define GN_ISA_NEON_DOT 4
#define GN_ISA_AVX512_BF16 5
#define GN_ISA_COUNT 6
const char *gn_isa_name(int isa);
/* Level named `name` ("scalar", "avx2", …), or -1. */
int gn_isa_from_name(const char *name);
/* Best level this CPU and OS can run, and whether `isa` can run here. */
int gn_cpu_best_isa(void);
int gn_cpu_can_run(int isa);
/* Space-separated CPU features the kernels use ("avx2 fma f16c avx512f …"). */
const char *gn_cpu_features(void);

/* Error codes (0 = success). */
enum { GN_OK = 0, GN_EINVAL = 1, GN_ENOMEM = 2, GN_ETYPE = 3 };
const char *gn_strerror(int code);

typedef struct gn_ctx gn_ctx;

/* A kernel context: `threads` threads (the caller's included; the others persistent), kernels of level
 * `isa` (must satisfy gn_cpu_can_run). `spin` = iterations a waiting worker polls before sleeping. */
gn_ctx *gn_create(int threads, int isa, int spin);
void gn_destroy(gn_ctx *ctx);
int gn_threads(const gn_ctx *ctx);
int gn_isa(const gn_ctx *ctx);

/* y[t][0..n_out) = x[t][0..n_in) · W for t < T, W a 'rows' matrix: n_out rows of `type` blocks, w_bytes
 * long. fast = 1: activations quantised to int8 per 32 values for the quantised types; f16 and bf16 rows
 * summed in float32 (at avx512_bf16, bf16 rows against the activations rounded to bf16). */
int gn_matmul_rows(gn_ctx *ctx, int type, const uint8_t *w, size_t w_bytes, int n_in, int n_out,
                   const float *x, size_t x_len, int T, float *y, size_t y_len, int fast);

/* The released checkpoint's int8 matrix: q[n_in][n_out], bf16 scales[groups][n_out]. */
int gn_matmul_xai8(gn_ctx *ctx, const int8_t *q, size_t q_len, const uint16_t *scales, size_t s_len,
                   int n_in, int n_out, int groups, const float *x, size_t x_len, int T, float *y,
                   size_t y_len, int fast);

/* One matrix of a gn_matmul_many call: a 'rows' matrix (w set, q NULL) or an xai8 one (q set, w NULL). */
typedef struct {
  int type; /* 'rows': block type */
  const uint8_t *w;
  size_t w_bytes;
  const int8_t *q; /* xai8: q[n_in][n_out], bf16 scales[groups][n_out] */
  size_t q_len;
  const uint16_t *scales;
  size_t s_len;
  int groups;
  int n_out;
  float *y; /* [T][n_out] */
  size_t y_len;
} gn_matrix;
#define GN_MANY_MAX 16

/* y_i = x · W_i for n ≤ GN_MANY_MAX matrices reading the same x [T][n_in] (q, k, v; gate, up): fast-mode
 * activations quantised once, every matrix's rows in one dispatch. Each y_i is bit-identical to what
 * gn_matmul_rows / gn_matmul_xai8 give for that matrix alone. */
int gn_matmul_many(gn_ctx *ctx, int n, const gn_matrix *m, int n_in, const float *x, size_t x_len, int T, int fast);

/* Pin the context's threads: thread i (0 = the caller) to cpus[i % n]. 0, or an errno value. */
int gn_set_affinity(gn_ctx *ctx, const int *cpus, int n);

/* out[0..n_in) = row r of a 'rows' matrix as floats. */
int gn_get_row(int type, const uint8_t *w, size_t w_bytes, int n_in, int n_out, int r, float *out, size_t out_len);

/*
 * Causal grouped-query attention (contract of src/kernels/types.ts `attention`). The caches hold rows of
 * kv_type: GN_F32 (default), GN_F16 or GN_Q8_0 (head_dim a multiple of 32). fast = 0: float64 scores and
 * softmax (exact); 1: float32 vector lanes, work split over key chunks too (flash-decoding).
 * temperature_len L: 0 (off), or finite and > 1 (else GN_EINVAL): Grok-2's attention temperature, the
 * scores of the query at position p > L multiplied by log2(p)/log2(L) after the soft-cap.
 */
typedef struct {
  const float *q;
  const void *k_cache, *v_cache;
  const uint8_t *key_mask;
  float *out;
  int T, pos0, n_heads, n_kv, head_dim;
  float scale, softcap;
  int kv_type, fast;
  double temperature_len;
} gn_attention_args;
/* Bytes of one cache row (one position's one KV head) of kv_type, or 0 for a type a cache cannot hold. */
size_t gn_kv_row_bytes(int kv_type, int head_dim);
int gn_attention(gn_ctx *ctx, const gn_attention_args *a);

/* GELU in place over n values; times up[i] when up is not NULL (gated FFN). form: GN_GELU_TANH, the tanh
 * approximation (Grok-1), or GN_GELU_ERF, the exact x·½(1 + erf(x/√2)) (Grok-2); other values GN_EINVAL.
 * fast = 1: the erf form in float32 lanes (|Δ| ≤ 3e-7·|x|: native/kernels/gelu.c); the tanh
 * form is the same in both modes. */
enum { GN_GELU_TANH = 0, GN_GELU_ERF = 1 };
int gn_gelu(gn_ctx *ctx, float *x, const float *up, size_t n, int form, int fast);

/* Quantise rows × n_in floats (row after row) into `type` blocks (native/quantize.c): the bytes the
 * TypeScript quantisers of src/quant/ write, at every level `isa` (gn_cpu_can_run). f32 is copied. */
int gn_quantize(int isa, int type, const float *x, size_t x_len, int n_in, int rows, uint8_t *dst, size_t dst_len);

/* gn_quantize with an importance matrix (llama.cpp quantize_<type> with quant_weights): qw holds n_in weights, the
 * same for every row; the bytes of src/quant/weighted.ts (K-quants, Q4_0 … Q5_1, IQ4_NL, IQ4_XS, IQ3_S). GN_ETYPE for
 * other types. */
int gn_quantize_weighted(int isa, int type, const float *x, size_t x_len, int n_in, int rows, uint8_t *dst, size_t dst_len, const float *qw, size_t qw_len);

/* n values of a q8_0 / f16 / bf16 / f32 run as floats (what src/quant's dequantisers give); GN_ETYPE for others. */
int gn_dequantize(int type, const uint8_t *src, size_t src_len, size_t n, float *out, size_t out_len);

/* The checkpoint's int8 q [n_in, n_out] + bf16 scales [groups, n_out] (src/quant/xai8.ts): rows r0 … r0+count−1 of
 * Wᵀ as floats (gn_xai8_rows: 0 or GN_EINVAL), or as Q8_0 blocks keeping the checkpoint's own scale and levels
 * where that loses nothing (gn_xai8_q8_0: the bytes of xai8RowsToQ8_0; returns the blocks kept, −1 on bad
 * arguments; vals: NULL, or count·n_in floats left holding the rows). */
int gn_xai8_rows(const int8_t *q, size_t q_len, const uint16_t *sc, size_t sc_len, int n_in, int n_out, int groups, int r0, int count,
                 float *out, size_t out_len);
long long gn_xai8_q8_0(const int8_t *q, size_t q_len, const uint16_t *sc, size_t sc_len, int n_in, int n_out, int groups, int r0, int count,
                       uint8_t *dst, size_t dst_len, float *vals);
/* Those rows quantised into `type` (with importance weights qw, n_in of them, when not NULL), a band at a time. */
int gn_xai8_quantize(int isa, int type, const int8_t *q, size_t q_len, const uint16_t *sc, size_t sc_len, int n_in, int n_out, int groups,
                     int r0, int count, uint8_t *dst, size_t dst_len, const float *qw, size_t qw_len);

/* grok synth's N(0, σ²) stand-in weights (src/convert/pool-jobs.ts gaussianFill) from xorshift128 state s. */
void gn_gauss_fill(float *out, size_t n, const uint32_t s[4], double scale);

#endif
