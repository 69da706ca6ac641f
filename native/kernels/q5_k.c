/*
 * Q5_K (src/quant/q5_k.ts): 256 values in 176 bytes, d f16 @0, dmin f16 @2, scales @4 (as Q4_K),
 * qh @16 (fifth bit of value 32t + l is bit t of qh[l]), qs @48; value = d·sc·q − dmin·mn per 32 values.
 * Canonical form: u = q (0…31), s = d·sc, m = dmin·mn.
 */

static void unpack_q5_k(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 176 * b;
    const float d = gn_f16(gn_rd16(p)), dmin = gn_f16(gn_rd16(p + 2));
    uint8_t *o = u + 256 * b;
#if GN_X86_AVX2
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 16)), lo4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    for (int c = 0; c < 4; c++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 48 + 32 * c));
      const __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c)), one);
      const __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c + 1)), one);
      _mm256_storeu_si256((__m256i *)(o + 64 * c), _mm256_or_si256(_mm256_and_si256(q, lo4), _mm256_slli_epi16(h0, 4)));
      _mm256_storeu_si256((__m256i *)(o + 64 * c + 32),
                          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), lo4), _mm256_slli_epi16(h1, 4)));
    }
#elif GN_ARM_NEON
    for (int half = 0; half < 2; half++) {
      const uint8x16_t qh = vld1q_u8(p + 16 + 16 * half), one = vdupq_n_u8(1);
      for (int c = 0; c < 4; c++) {
        const uint8x16_t q = vld1q_u8(p + 48 + 32 * c + 16 * half);
        const uint8x16_t h0 = vandq_u8(vshlq_u8(qh, vdupq_n_s8((int8_t)(-2 * c))), one);
        const uint8x16_t h1 = vandq_u8(vshlq_u8(qh, vdupq_n_s8((int8_t)(-2 * c - 1))), one);
        vst1q_u8(o + 64 * c + 16 * half, vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0f)), vshlq_n_u8(h0, 4)));
        vst1q_u8(o + 64 * c + 32 + 16 * half, vorrq_u8(vshrq_n_u8(q, 4), vshlq_n_u8(h1, 4)));
      }
    }
#else
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++) {
        const uint8_t q = p[48 + 32 * c + l], h = p[16 + l];
        o[64 * c + l] = (uint8_t)((q & 0x0f) | ((h >> (2 * c)) & 1) << 4);
        o[64 * c + 32 + l] = (uint8_t)((q >> 4) | ((h >> (2 * c + 1)) & 1) << 4);
      }
#endif
    for (int t = 0; t < 8; t++) {
      int sc, mn;
      gn_scale_min_k4(p + 4, t, &sc, &mn);
      s[16 * b + 2 * t] = s[16 * b + 2 * t + 1] = d * (float)sc;
      m[16 * b + 2 * t] = m[16 * b + 2 * t + 1] = dmin * (float)mn;
    }
  }
}

/* Fast mode, reading the blocks in place: as Q4_K (q4_k.c) with the fifth bit of each code from qh. */
#if GN_X86_AVX512
#define Q5K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy)                                            \
  do {                                                                                                \
    const int nb = n / 256;                                                                           \
    const __m512i lo4 = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);                            \
    const __m512i half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);            \
    __m512 acc[R][C];                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm512_setzero_ps();                                    \
    for (int b = 0; b < nb; b++) {                                                                    \
      __m256 sd[R];                                                                                   \
      __m512i qh[R];                                                                                  \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + 176 * (size_t)b;                                                 \
        gn_prefetch_block(p, 176);                                                                    \
        __m512 md;                                                                                    \
        Q4K_HEADER(p, sd[i], md);                                                                     \
        for (int t = 0; t < C; t++)                                                                   \
          acc[i][t] = _mm512_fnmadd_ps(md, _mm512_loadu_ps(xs16 + (size_t)t * (n / 16) + 16 * (size_t)b), acc[i][t]); \
        /* bit 2c of qh[l] → value 64c + l (lower half), bit 2c+1 → 64c + 32 + l (upper half) */     \
        const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16)));       \
        qh[i] = _mm512_mask_srli_epi16(h, 0xffff0000u, h, 1);                                         \
      }                                                                                               \
      __m256 cs[R][C];                                                                                \
      for (int t = 0; t < C; t++) {                                                                   \
        const __m256 dx = _mm256_loadu_ps(xd + (size_t)t * (n / 32) + 8 * (size_t)b);                 \
        for (int i = 0; i < R; i++) cs[i][t] = _mm256_mul_ps(sd[i], dx);                              \
      }                                                                                               \
      for (int c = 0; c < 4; c++) {                                                                   \
        const __m512i ic = _mm512_add_epi32(half, _mm512_set1_epi32(2 * c));                          \
        __m512i U[R];                                                                                 \
        for (int i = 0; i < R; i++) {                                                                 \
          const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(rows[i] + 176 * (size_t)b + 48 + 32 * c))); \
          const __m512i hb = _mm512_and_si512(_mm512_srl_epi16(qh[i], _mm_cvtsi32_si128(2 * c)), one); \
          U[i] = _mm512_or_si512(_mm512_and_si512(_mm512_mask_srli_epi16(q, 0xffff0000u, q, 4), lo4), _mm512_slli_epi16(hb, 4)); \
        }                                                                                             \
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

static void q5_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, GN_ROW_GROUP, Q5K_FAST_TILE);
}

#elif GN_X86_AVX2
#define Q5K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy)                                            \
  do {                                                                                                \
    const int nb = n / 256;                                                                           \
    const __m256i lo4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1), ones = _mm256_set1_epi16(1); \
    __m256 acc[R][C];                                                                                 \
    float cs[R][C][8] __attribute__((aligned(32)));                                                   \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm256_setzero_ps();                                    \
    for (int b = 0; b < nb; b++) {                                                                    \
      __m256 sd[R], m8[R];                                                                            \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + 176 * (size_t)b;                                                 \
        gn_prefetch_block(p, 176);                                                                    \
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
        for (int i = 0; i < R; i++) {                                                                 \
          const uint8_t *p = rows[i] + 176 * (size_t)b;                                               \
          const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 48 + 32 * (sb >> 1)));           \
          const __m256i h = _mm256_and_si256(_mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)(p + 16)), _mm_cvtsi32_si128(sb)), one); \
          U[i] = _mm256_or_si256(_mm256_and_si256(sb & 1 ? _mm256_srli_epi16(q, 4) : q, lo4), _mm256_slli_epi16(h, 4)); \
        }                                                                                             \
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

static void q5_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, 2, Q5K_FAST_TILE);
}

#elif GN_ARM_NEON
/* Values 32k … 32k + 31: Q4_K's nibbles with bit k of qh bytes 0 … 31 as the fifth bit. */
#define Q5K_CODES(p, k, U0, U1)                                                                       \
  do {                                                                                                \
    const uint8x16_t q0_ = vld1q_u8((p) + 48 + 32 * ((k) >> 1)), q1_ = vld1q_u8((p) + 64 + 32 * ((k) >> 1)); \
    const int8x16_t sh_ = vdupq_n_s8((int8_t)(-4 * ((k) & 1))), hs_ = vdupq_n_s8((int8_t)(-(k)));     \
    const uint8x16_t one_ = vdupq_n_u8(1), lo4_ = vdupq_n_u8(0x0f);                                    \
    const uint8x16_t h0_ = vshlq_n_u8(vandq_u8(vshlq_u8(vld1q_u8((p) + 16), hs_), one_), 4);            \
    const uint8x16_t h1_ = vshlq_n_u8(vandq_u8(vshlq_u8(vld1q_u8((p) + 32), hs_), one_), 4);            \
    U0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(vshlq_u8(q0_, sh_), lo4_), h0_));                       \
    U1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(vshlq_u8(q1_, sh_), lo4_), h1_));                       \
  } while (0)
#define Q5K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy) NEON_DIRECT_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, 176, neon_k4_header, Q5K_CODES)

static void q5_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, GN_ROW_GROUP, Q5K_FAST_TILE);
}
#endif
