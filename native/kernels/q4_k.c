/*
 * Q4_K (src/quant/q4_k.ts): 256 values in 144 bytes, d f16 @0, dmin f16 @2, scales @4 (eight 6-bit
 * scale/min pairs), qs @16; value = d·sc·q − dmin·mn per 32 values. Canonical form: u = q, s = d·sc,
 * m = dmin·mn (both exact in float32).
 */

static void unpack_q4_k(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 144 * b;
    const float d = gn_f16(gn_rd16(p)), dmin = gn_f16(gn_rd16(p + 2));
    uint8_t *o = u + 256 * b;
    for (int c = 0; c < 4; c++) {
#if GN_X86_AVX2
      const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * c)), lo4 = _mm256_set1_epi8(0x0f);
      _mm256_storeu_si256((__m256i *)(o + 64 * c), _mm256_and_si256(q, lo4));
      _mm256_storeu_si256((__m256i *)(o + 64 * c + 32), _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4));
#elif GN_ARM_NEON
      for (int half = 0; half < 2; half++) {
        const uint8x16_t q = vld1q_u8(p + 16 + 32 * c + 16 * half);
        vst1q_u8(o + 64 * c + 16 * half, vandq_u8(q, vdupq_n_u8(0x0f)));
        vst1q_u8(o + 64 * c + 32 + 16 * half, vshrq_n_u8(q, 4));
      }
#else
      for (int l = 0; l < 32; l++) {
        o[64 * c + l] = p[16 + 32 * c + l] & 0x0f;
        o[64 * c + 32 + l] = p[16 + 32 * c + l] >> 4;
      }
#endif
    }
    for (int t = 0; t < 8; t++) {
      int sc, mn;
      gn_scale_min_k4(p + 4, t, &sc, &mn);
      s[16 * b + 2 * t] = s[16 * b + 2 * t + 1] = d * (float)sc;
      m[16 * b + 2 * t] = m[16 * b + 2 * t + 1] = dmin * (float)mn;
    }
  }
}

/*
 * Fast mode, reading the blocks in place. Per block and output: Σ_j (d·sc_j·dx_j)·Σ_{32 values} q·xq −
 * Σ_g dmin·mn_g·xs16_g: the q·xq sums exact in integers, one float scale per 32 values (Q4_K's sub-block
 * and the activations' block coincide), the offsets one float term per 16 (AVX-512) or 32 (AVX2) values.
 * Every output keeps its own accumulator and block order, whatever the tile (batch invariance).
 */
#if GN_X86_AVX512
/* d·sc_t (8 lanes) and dmin·mn per 16 values (16 lanes) of block p. */
#define Q4K_HEADER(p, sd, md)                                                                         \
  do {                                                                                                \
    const __m128 dm_ = _mm_cvtph_ps(_mm_cvtsi32_si128((int)gn_rd32(p)));                              \
    uint64_t sc_, mn_;                                                                                \
    gn_scales_k4((p) + 4, &sc_, &mn_);                                                                \
    sd = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc_))), _mm256_broadcastss_ps(dm_)); \
    const __m256 m8_ = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn_))), \
                                     _mm256_broadcastss_ps(_mm_movehdup_ps(dm_)));                    \
    md = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), _mm512_castps256_ps512(m8_)); \
  } while (0)

/*
 * Q4_K and Q5_K (q5_k.c): 64 values per step (sub-blocks 2c and 2c+1: lanes 0–7 and 8–15 of one
 * vpdpbusd); BB bytes per block, CODES(p, c) the block's codes of values 64c … 64c + 63.
 */
#define K4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, BB, CODES)                                   \
  do {                                                                                                \
    const int nb = n / 256;                                                                           \
    const __m512i half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);            \
    __m512 acc[R][C];                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm512_setzero_ps();                                    \
    for (int b = 0; b < nb; b++) {                                                                    \
      __m256 sd[R];                                                                                   \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + (BB) * (size_t)b;                                                \
        gn_prefetch_block(p, (BB));                                                                    \
        __m512 md;                                                                                    \
        Q4K_HEADER(p, sd[i], md);                                                                     \
        for (int t = 0; t < C; t++)                                                                   \
          acc[i][t] = _mm512_fnmadd_ps(md, _mm512_loadu_ps(xs16 + (size_t)t * (n / 16) + 16 * (size_t)b), acc[i][t]); \
      }                                                                                               \
      __m256 cs[R][C]; /* d·sc_j·dx_j per sub-block */                                                \
      for (int t = 0; t < C; t++) {                                                                   \
        const __m256 dx = _mm256_loadu_ps(xd + (size_t)t * (n / 32) + 8 * (size_t)b);                 \
        for (int i = 0; i < R; i++) cs[i][t] = _mm256_mul_ps(sd[i], dx);                              \
      }                                                                                               \
      for (int c = 0; c < 4; c++) {                                                                   \
        const __m512i ic = _mm512_add_epi32(half, _mm512_set1_epi32(2 * c));                          \
        __m512i U[R];                                                                                 \
        for (int i = 0; i < R; i++) U[i] = CODES(rows[i] + (BB) * (size_t)b, c);                      \
        for (int t = 0; t < C; t++) {                                                                 \
          const __m512i X = _mm512_loadu_si512(xq + (size_t)t * n + 256 * (size_t)b + 64 * c);        \
          for (int i = 0; i < R; i++) {                                                               \
            const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), U[i], X);                   \
            const __m512 S = _mm512_permutexvar_ps(ic, _mm512_castps256_ps512(cs[i][t]));             \
            acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), S, acc[i][t]);                         \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum512(acc[i][t]);                     \
  } while (0)

/* Values 64c … 64c + 63: low then high nibbles of qs bytes 32c … 32c + 31. */
GN_INLINE __m512i q4k_codes(const uint8_t *p, int c) {
  const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16 + 32 * c)));
  return _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xffff0000u, q, 4), _mm512_set1_epi8(0x0f));
}
#define Q4K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy) K4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, 144, q4k_codes)

static void q4_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, GN_ROW_GROUP, Q4K_FAST_TILE);
}

#elif GN_X86_AVX2
/* d·sc_t and dmin·mn_t, 8 lanes each. */
#define Q4K_HEADER(p, sd, m8)                                                                         \
  do {                                                                                                \
    const __m128 dm_ = _mm_cvtph_ps(_mm_cvtsi32_si128((int)gn_rd32(p)));                              \
    uint64_t sc_, mn_;                                                                                \
    gn_scales_k4((p) + 4, &sc_, &mn_);                                                                \
    sd = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc_))), _mm256_broadcastss_ps(dm_)); \
    m8 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn_))),   \
                       _mm256_broadcastss_ps(_mm_movehdup_ps(dm_)));                                  \
  } while (0)

/* xd·Σxq per 32 values of block b (8 lanes), from the per-16 sums in their order. */
GN_INLINE __m256 q4k_xs32(const float *xs16) {
  const __m256 h = _mm256_hadd_ps(_mm256_loadu_ps(xs16), _mm256_loadu_ps(xs16 + 8));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(h), 0xd8));
}

/*
 * Q4_K and Q5_K (q5_k.c): 32 values (one sub-block) per step, 8 int32 lanes sharing the sub-block's scale
 * d·sc_j·dx_j; BB bytes per block, CODES(p, j) the block's codes of values 32j … 32j + 31.
 */
#define K4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, BB, CODES)                                   \
  do {                                                                                                \
    const int nb = n / 256;                                                                           \
    const __m256i ones = _mm256_set1_epi16(1);                                                        \
    __m256 acc[R][C];                                                                                 \
    float cs[R][C][8] __attribute__((aligned(32)));                                                   \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm256_setzero_ps();                                    \
    for (int b = 0; b < nb; b++) {                                                                    \
      __m256 sd[R], m8[R];                                                                            \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + (BB) * (size_t)b;                                                \
        gn_prefetch_block(p, (BB));                                                                    \
        Q4K_HEADER(p, sd[i], m8[i]);                                                                  \
      }                                                                                               \
      for (int t = 0; t < C; t++) {                                                                   \
        const __m256 dx = _mm256_loadu_ps(xd + (size_t)t * (n / 32) + 8 * (size_t)b);                 \
        const __m256 xs = q4k_xs32(xs16 + (size_t)t * (n / 16) + 16 * (size_t)b);                     \
        for (int i = 0; i < R; i++) {                                                                 \
          acc[i][t] = _mm256_fnmadd_ps(m8[i], xs, acc[i][t]);                                         \
          _mm256_store_ps(cs[i][t], _mm256_mul_ps(sd[i], dx));                                        \
        }                                                                                             \
      }                                                                                               \
      for (int sb = 0; sb < 8; sb++) {                                                                \
        __m256i U[R];                                                                                 \
        for (int i = 0; i < R; i++) U[i] = CODES(rows[i] + (BB) * (size_t)b, sb);                     \
        for (int t = 0; t < C; t++) {                                                                 \
          const __m256i X = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * n + 256 * (size_t)b + 32 * sb)); \
          for (int i = 0; i < R; i++) {                                                               \
            const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(U[i], X), ones);                 \
            acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_broadcast_ss(&cs[i][t][sb]), acc[i][t]); \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum256(acc[i][t]);                     \
  } while (0)

/* Values 32j … 32j + 31: low (j even) or high nibbles of qs bytes 32·(j/2) …. */
GN_INLINE __m256i q4k_codes(const uint8_t *p, int j) {
  const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * (j >> 1)));
  return _mm256_and_si256(j & 1 ? _mm256_srli_epi16(q, 4) : q, _mm256_set1_epi8(0x0f));
}
#define Q4K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy) K4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, 144, q4k_codes)

static void q4_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, 2, Q4K_FAST_TILE); /* 16 ymm registers: 2 rows × 4 tokens */
}

#elif GN_ARM_NEON
/* Values 32k … 32k + 31: low (k even) or high nibbles of qs bytes 32·(k/2) …. */
#define Q4K_CODES(p, k, U0, U1)                                                                       \
  do {                                                                                                \
    const uint8x16_t q0_ = vld1q_u8((p) + 16 + 32 * ((k) >> 1)), q1_ = vld1q_u8((p) + 32 + 32 * ((k) >> 1)); \
    const int8x16_t sh_ = vdupq_n_s8((int8_t)(-4 * ((k) & 1)));                                       \
    U0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0_, sh_), vdupq_n_u8(0x0f)));                          \
    U1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1_, sh_), vdupq_n_u8(0x0f)));                          \
  } while (0)
#define Q4K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy) NEON_DIRECT_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, 144, neon_k4_header, Q4K_CODES)

static void q4_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, GN_ROW_GROUP, Q4K_FAST_TILE);
}
#endif
