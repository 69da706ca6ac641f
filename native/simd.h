/*
 * Per-level definitions for isa.c. The build compiles isa.c once per level with -DGN_LEVEL=<GN_ISA_*> and
 * that level's -m flags; code inside `#if GN_X86_AVX512` etc. exists only in that copy. Function names
 * stay the same in every copy (they are static); only the table's name (GN_TABLE) differs.
 */
#ifndef GN_SIMD_H
#define GN_SIMD_H

#include "internal.h"

#ifndef GN_LEVEL
#error "compile isa.c with -DGN_LEVEL=<level>"
#endif

#define GN_X86_AVX2 (GN_LEVEL == GN_ISA_AVX2 || GN_LEVEL == GN_ISA_AVX512)
#define GN_X86_AVX512 (GN_LEVEL == GN_ISA_AVX512)
#define GN_ARM_NEON (GN_LEVEL == GN_ISA_NEON || GN_LEVEL == GN_ISA_NEON_DOT)
#define GN_ARM_DOT (GN_LEVEL == GN_ISA_NEON_DOT)

#if GN_X86_AVX2
#include <immintrin.h>
#endif
#if GN_ARM_NEON
#include <arm_neon.h>
#endif

#if GN_LEVEL == GN_ISA_SCALAR
#define GN_TABLE gn_table_scalar
#elif GN_LEVEL == GN_ISA_AVX2
#define GN_TABLE gn_table_avx2
#elif GN_LEVEL == GN_ISA_AVX512
#define GN_TABLE gn_table_avx512
#elif GN_LEVEL == GN_ISA_NEON
#define GN_TABLE gn_table_neon
#elif GN_LEVEL == GN_ISA_NEON_DOT
#define GN_TABLE gn_table_neon_dot
#endif

#define GN_INLINE static inline __attribute__((always_inline))
#define GN_MIN(a, b) ((a) < (b) ? (a) : (b))

/*
 * Fetch rows [r, r + n) of a job's matrix into the caches while the current group is being used: the
 * hardware prefetchers stop at every 4 KiB page, which a row crosses (measured: q4_k at T = 1 from ~4 to
 * ~5.5 GB/s per core, f32 similar).
 */
/*
 * Rows per group: with one or two tokens a single row at a time (one sequential stream per thread reads
 * faster than four interleaved ones: measured 36–42 vs 26–28 GB/s for q8_0 at T = 1 on 2 threads); with
 * more tokens four, whose loads each token then reuses.
 */
GN_INLINE int gn_row_group(int T, int max) { return T <= 2 ? 1 : max; }

GN_INLINE void gn_prefetch_rows(const gn_rows_job *j, int r, int n) {
  const uint8_t *p = j->w + (size_t)r * j->row_bytes;
  for (size_t b = 0; n > 0 && b < (size_t)n * j->row_bytes; b += 64) __builtin_prefetch(p + b);
}

/*
 * Rows per group of the direct kernels for one or two tokens: one stream per thread, except for long rows
 * whose activations (n_in bytes of codes and their scales) no longer stay in L1: two rows then share
 * each activation load (measured: 32768-input q4_k rows 28 → 38 GB/s on 2 threads; 6144-input rows
 * lose with two).
 */
GN_INLINE int gn_direct_pair(int n_in) { return n_in > 16384 ? 2 : 1; }

/*
 * The row loop of the direct fast kernels (q4_k.c, q5_k.c, q6_k.c): R rows × C ≤ 4 tokens per tile, the
 * tile reading the rows' blocks in place. TILE(R, C, rows, n, xq, xd, xs16, y, ldy).
 */
#define GN_DIRECT_ROWS(j, r0, r1, max_r, TILE) GN_DIRECT_ROWS_GROUP(j, r0, r1, (j)->T <= 2 ? gn_direct_pair((j)->n_in) : (max_r), TILE)
/* The same with the rows per group given. */
#define GN_DIRECT_ROWS_GROUP(j, r0, r1, group, TILE)                                                  \
  do {                                                                                                \
    const int n_ = (j)->n_in, group_ = (group);                                                       \
    for (int rg = (r0); rg < (r1); rg += group_) {                                                    \
      const int R_ = GN_MIN(group_, (r1) - rg);                                                       \
      const uint8_t *rows_[GN_ROW_GROUP];                                                             \
      for (int i = 0; i < R_; i++) rows_[i] = (j)->w + (size_t)(rg + i) * (j)->row_bytes;             \
      for (int t0 = 0; t0 < (j)->T; t0 += 4) {                                                        \
        const int C_ = GN_MIN(4, (j)->T - t0);                                                        \
        const int8_t *xq_ = (j)->xq + (size_t)t0 * n_;                                                \
        const float *xd_ = (j)->xd + (size_t)t0 * (n_ / 32), *xs_ = (j)->xs16 + (size_t)t0 * (n_ / 16); \
        float *y_ = (j)->y + (size_t)t0 * (j)->n_out + rg;                                            \
        GN_TILE(R_, C_, TILE, rows_, n_, xq_, xd_, xs_, y_, (size_t)(j)->n_out);                      \
      }                                                                                               \
    }                                                                                                 \
  } while (0)

/* Bytes ahead of the current block that the direct kernels prefetch in each row (as Q8_PREFETCH). */

#define GN_DIRECT_PREFETCH 1024
GN_INLINE void gn_prefetch_block(const uint8_t *p, int bytes) {
  for (int o = 0; o < bytes; o += 64) __builtin_prefetch(p + GN_DIRECT_PREFETCH + o);
}

#if GN_X86_AVX2
/* Horizontal sums in one fixed order (every output of a level is reduced the same way). */
GN_INLINE float gn_hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
/* Unsigned bytes · signed bytes, summed per 4 bytes into 8 int32 (AVX2 has no vpdpbusd). Exact while
 * each pair of products stays within int16: u ≤ 128 with |s| ≤ 127. */
GN_INLINE __m256i gn_dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
#endif

#if GN_X86_AVX512
GN_INLINE float gn_hsum512(__m512 v) {
  __m256 s = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  return gn_hsum256(s);
}
#endif

#if GN_ARM_NEON
GN_INLINE float gn_hsumq(float32x4_t v) {
  float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
  return vget_lane_f32(vpadd_f32(s, s), 0);
}
#endif

/*
 * Micro-kernels take R rows × C tokens (1…4 each) as compile-time constants so that their loops unroll
 * into registers; GN_TILE calls KERNEL(r, c, args…) with the constants matching run-time R and C.
 */
#define GN_TILE(R, C, KERNEL, ...)                                                                   \
  switch ((R) * 8 + (C)) {                                                                           \
  case 9: KERNEL(1, 1, __VA_ARGS__); break;  case 10: KERNEL(1, 2, __VA_ARGS__); break;               \
  case 11: KERNEL(1, 3, __VA_ARGS__); break; case 12: KERNEL(1, 4, __VA_ARGS__); break;               \
  case 17: KERNEL(2, 1, __VA_ARGS__); break; case 18: KERNEL(2, 2, __VA_ARGS__); break;               \
  case 19: KERNEL(2, 3, __VA_ARGS__); break; case 20: KERNEL(2, 4, __VA_ARGS__); break;               \
  case 25: KERNEL(3, 1, __VA_ARGS__); break; case 26: KERNEL(3, 2, __VA_ARGS__); break;               \
  case 27: KERNEL(3, 3, __VA_ARGS__); break; case 28: KERNEL(3, 4, __VA_ARGS__); break;               \
  case 33: KERNEL(4, 1, __VA_ARGS__); break; case 34: KERNEL(4, 2, __VA_ARGS__); break;               \
  case 35: KERNEL(4, 3, __VA_ARGS__); break; case 36: KERNEL(4, 4, __VA_ARGS__); break;               \
  default: break;                                                                                    \
  }

#endif
