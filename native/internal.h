/*
 * What the driver (core.c) and the per-ISA kernels (isa.c, compiled once per level) share: the job
 * descriptions, the kernel table each level exports, the canonical unpacked row form, small helpers.
 *
 * Batch invariance: every kernel computes each (row, token) output with one sequence of float operations
 * that depends only on that row and that token's data — not on T, the token's place in the batch, how
 * many rows or tokens a micro-kernel handles at once, or which thread runs it. Integer block sums are
 * exact; the float scaling and accumulation happen in one fixed block order per output.
 */
#ifndef GN_INTERNAL_H
#define GN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gn.h"

#define GN_MAX_TYPE_ID 31
/* Tokens up to which direct_small kernels run (see gn_table). */
#define GN_SMALL_T 4
/* Rows per micro-kernel group: the canonical-row scratch holds this many unpacked rows. */
#define GN_ROW_GROUP 4

/* A 'rows' matmul over rows [r0, r1) for all T tokens. */
typedef struct gn_rows_job gn_rows_job;

/*
 * Canonical form of one row of a block-quantised type (all but q8_0 and the float types): per value an
 * unsigned code u (0…127 for the types the SIMD kernels take), per 16 values a scale s and an offset m,
 * value = s·u − m, every product exact in float32 as in the dequantisers of src/quant/. Fast mode then
 * sums u·xq exactly in integers per 16 values and scales in float; exact mode expands to floats.
 */
typedef void gn_unpack_fn(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m);

struct gn_rows_job {
  int type;
  const uint8_t *w;
  size_t row_bytes;
  int n_in, n_out, T;
  const float *x;     /* [T][n_in] float activations (exact mode) */
  const int8_t *xq;   /* [T][n_in] int8 activations (fast mode) */
  const float *xd;    /* [T][n_in/32] their scales */
  const float *xs16;  /* [T][n_in/16] xd · Σ xq over each 16 values (fast mode, for offsets m) */
  const uint16_t *xb; /* [T][n_in] activations rounded to bf16 (bf16 rows in fast mode at avx512_bf16) */
  float *y;           /* [T][n_out] */
  gn_unpack_fn *unpack;
};

/* xai8 ('xai8' layout) over output columns [c0, c1) (multiples of 64 except at n_out). */
typedef struct {
  const int8_t *q;
  const uint16_t *scales;
  int n_in, n_out, groups, T;
  const float *x;
  const int8_t *xq;
  const float *xd;
  const int32_t *xc; /* [T][n_in/32] −128·Σ xq over each 32 inputs (fast mode: the unsigned-weight correction) */
  float *y;
} gn_xai8_job;

/* Tokens an xai8 kernel keeps partial sums for at once (its scratch grows with them, see core.c). */
#define GN_XAI8_TOKENS 128

/* Scratch bytes an xai8 kernel needs for `cols` columns and T tokens: exact mode float64 totals and partial
 * sums for up to 4 tokens (2·4·8 bytes per column), fast mode one packed block of 32 rows × 64 columns and
 * float partial sums per column and token, and for calls of up to 4 tokens as many int32 block sums. */
static inline size_t gn_xai8_scratch(int cols, int T) {
  const size_t c = (size_t)cols + 64, t = (size_t)(T < GN_XAI8_TOKENS ? T : GN_XAI8_TOKENS);
  const size_t exact = 64 * c, fast = 2048 + 4 * c * t * (t <= 4 ? 2 : 1);
  return (exact > fast ? exact : fast) + 4096;
}

typedef void gn_rows_fn(const gn_rows_job *j, int r0, int r1, uint8_t *scratch);
typedef void gn_xai8_fn(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch);
/* Quantise T rows of n floats (n a multiple of 32): xq, xd per 32, xs16 per 16 (fast mode). */
typedef void gn_quant_fn(const float *x, int T, int n, int8_t *xq, float *xd, float *xs16);
/* Attention of query t for the query heads sharing KV head g (exact mode). */
typedef void gn_attn_fn(const gn_attention_args *a, int t, int g, float *scratch);
/*
 * Fast mode (flash-decoding): keys in chunks of GN_ATTN_CHUNK at fixed absolute positions, so a query's
 * chunks — and its result — are the same whatever T and the thread count. A chunk's record per head:
 * Σ e·v [GN_ATTN_KP(K)], then its max score and Σ e; GN_ATTN_REC(K) floats.
 */
#define GN_ATTN_CHUNK 256
#define GN_ATTN_KP(K) (((size_t)(K) + 15) & ~(size_t)15)
#define GN_ATTN_REC(K) (GN_ATTN_KP(K) + 16)
/* Keys per block of a fast-mode item's weighted sum of values (their widened rows stay in L1). */
#define GN_ATTN_SUB 16
/* Per-thread scratch of a fast-mode item over nh query heads of ng KV heads: a widened key row, the
 * scores, GN_ATTN_SUB positions' widened value rows; 64-byte aligned. */
#define GN_ATTN_SCRATCH(K, nh, ng) \
  (4 * (GN_ATTN_KP(K) + (size_t)(nh) * GN_ATTN_CHUNK + GN_ATTN_SUB * (size_t)(ng) * GN_ATTN_KP(K)) + 128)
typedef void gn_attn_part_fn(const gn_attention_args *a, int t, int g0, int g1, int c, float *rec, size_t head_stride, float *scratch);
typedef void gn_attn_merge_fn(const float *rec, int nc, size_t rec_stride, int K, float *out);

typedef struct {
  int isa;
  gn_rows_fn *q8_0_fast, *q8_0_exact;
  gn_rows_fn *canon_fast, *canon_exact;
  gn_rows_fn *float_exact; /* f32, f16, bf16 */
  /* Fast mode of f16 and bf16 rows (float32 sums; f32 rows take float_exact in both modes); NULL: float_exact. */
  gn_rows_fn *float_fast[GN_MAX_TYPE_ID + 1];
  /* bf16 rows in fast mode at the avx512_bf16 level (vdpbf16ps on activations rounded to bf16, job.xb);
   * compiled into the avx512 copy for CPUs that have AVX512_BF16, NULL elsewhere. */
  gn_rows_fn *bf16_dot_fast;
  /* Fast kernels that read a type's blocks in place (no canonical scratch rows); NULL: canon_fast. */
  gn_rows_fn *direct_fast[GN_MAX_TYPE_ID + 1];
  /* For T ≤ GN_SMALL_T: in-place kernels whose results are bit-identical to canon_fast's (the i-quants:
   * unpacking a row pays off only over several tokens). */
  gn_rows_fn *direct_small[GN_MAX_TYPE_ID + 1];
  gn_unpack_fn *unpack[GN_MAX_TYPE_ID + 1];
  gn_xai8_fn *xai8_fast, *xai8_exact;
  gn_quant_fn *quantize;
  gn_attn_fn *attention;
  gn_attn_part_fn *attention_part;
  gn_attn_merge_fn *attention_merge;
  /* Fast mode's GELU, erf form, in float32 lanes (kernels/gelu.c): x[0..n) := gelu(x) (· up when not NULL). */
  void (*gelu_erf_fast)(float *x, const float *up, size_t n);
  /* One row of a 'rows' matrix as float32 (the dequantisers' values); scratch: gn_rows_scratch(n). */
  void (*get_row)(int type, const uint8_t *row, int n, float *out, uint8_t *scratch);
} gn_table;

extern const gn_table gn_table_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const gn_table gn_table_avx2, gn_table_avx512;
#endif
#if defined(__aarch64__)
extern const gn_table gn_table_neon, gn_table_neon_dot;
#endif

/* Scratch bytes a rows job needs per thread. */
static inline size_t gn_rows_scratch(int n_in) {
  return (size_t)GN_ROW_GROUP * ((size_t)n_in * 5 + (size_t)n_in / 2 + 256) + 4096;
}

/* IEEE binary16 → binary32 (formats.md §3.4), without F16C. */
static inline float gn_f16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
  if (e == 0) {
    if (m == 0) bits = sign;
    else { /* subnormal: normalise */
      e = 113;
      while (!(m & 0x400)) { m <<= 1; e--; }
      bits = sign | (e << 23) | ((m & 0x3ff) << 13);
    }
  } else if (e == 31) bits = sign | 0x7f800000u | (m << 13);
  else bits = sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static inline float gn_bf16(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t gn_rd16(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

static inline uint32_t gn_rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Q4_K / Q5_K packing of eight 6-bit scales and mins in 12 bytes (formats.md §3.5). */
static inline void gn_scale_min_k4(const uint8_t *b, int t, int *sc, int *mn) {
  if (t < 4) {
    *sc = b[t] & 63;
    *mn = b[t + 4] & 63;
  } else {
    *sc = (b[t + 4] & 0x0f) | ((b[t - 4] >> 6) << 4);
    *mn = (b[t + 4] >> 4) | ((b[t] >> 6) << 4);
  }
}

/*
 * All eight Q4_K / Q5_K scales and mins at once (the same values as gn_scale_min_k4): byte t of *sc is
 * sc_t, byte t of *mn is mn_t. Bytes 0–3 of the 12 hold sc_0–3 (low 6 bits) and the top bits of sc_4–7,
 * bytes 4–7 mn_0–3 and the top bits of mn_4–7, bytes 8–11 the low nibbles of sc_4–7 and mn_4–7.
 */
static inline void gn_scales_k4(const uint8_t *b, uint64_t *sc, uint64_t *mn) {
  const uint32_t w0 = gn_rd32(b), w1 = gn_rd32(b + 4), w2 = gn_rd32(b + 8);
  const uint32_t s_hi = (w2 & 0x0f0f0f0fu) | ((w0 >> 6) & 0x03030303u) << 4;
  const uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 6) & 0x03030303u) << 4;
  *sc = (w0 & 0x3f3f3f3fu) | (uint64_t)s_hi << 32;
  *mn = (w1 & 0x3f3f3f3fu) | (uint64_t)m_hi << 32;
}

#endif
