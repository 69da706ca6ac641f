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
/* Values 64c … 64c + 63: Q4_K's nibbles, fifth bits from qh bit 2c (lower 32 values) and 2c + 1 (upper). */
GN_INLINE __m512i q5k_codes(const uint8_t *p, int c) {
  const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 48 + 32 * c)));
  __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16)));
  h = _mm512_srl_epi16(_mm512_mask_srli_epi16(h, 0xffff0000u, h, 1), _mm_cvtsi32_si128(2 * c));
  const __m512i lo = _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xffff0000u, q, 4), _mm512_set1_epi8(0x0f));
  return _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(h, _mm512_set1_epi8(1)), 4));
}
#define Q5K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy) K4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, 176, q5k_codes)

static void q5_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, GN_ROW_GROUP, Q5K_FAST_TILE);
}

#elif GN_X86_AVX2
/* Values 32j … 32j + 31: Q4_K's nibbles with bit j of qh bytes 0 … 31 as the fifth bit. */
GN_INLINE __m256i q5k_codes(const uint8_t *p, int j) {
  const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 48 + 32 * (j >> 1)));
  const __m256i h = _mm256_and_si256(_mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)(p + 16)), _mm_cvtsi32_si128(j)), _mm256_set1_epi8(1));
  return _mm256_or_si256(_mm256_and_si256(j & 1 ? _mm256_srli_epi16(q, 4) : q, _mm256_set1_epi8(0x0f)), _mm256_slli_epi16(h, 4));
}
#define Q5K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy) K4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, 176, q5k_codes)

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
