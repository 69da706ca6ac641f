/*
 * Q6_K (src/quant/q6_k.ts): 256 values in 210 bytes, ql @0 (low 4 bits), qh @128 (high 2 bits), int8
 * scales @192 per 16 values, d f16 @208; value = d·sc·(q − 32). Canonical form: u = q (0…63), s = d·sc,
 * m = 32·s.
 */

static void unpack_q6_k(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 210 * b;
    const float d = gn_f16(gn_rd16(p + 208));
    uint8_t *o = u + 256 * b;
    for (int h = 0; h < 2; h++) {
#if GN_X86_AVX2
      const __m256i l0 = _mm256_loadu_si256((const __m256i *)(p + 64 * h)), l1 = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h)), lo4 = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3);
      const __m256i hi0 = _mm256_slli_epi16(_mm256_and_si256(qh, three), 4);
      const __m256i hi1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), three), 4);
      const __m256i hi2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), three), 4);
      const __m256i hi3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), three), 4);
      uint8_t *oo = o + 128 * h;
      _mm256_storeu_si256((__m256i *)oo, _mm256_or_si256(_mm256_and_si256(l0, lo4), hi0));
      _mm256_storeu_si256((__m256i *)(oo + 32), _mm256_or_si256(_mm256_and_si256(l1, lo4), hi1));
      _mm256_storeu_si256((__m256i *)(oo + 64), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), lo4), hi2));
      _mm256_storeu_si256((__m256i *)(oo + 96), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), lo4), hi3));
#elif GN_ARM_NEON
      for (int half = 0; half < 2; half++) {
        const uint8x16_t l0 = vld1q_u8(p + 64 * h + 16 * half), l1 = vld1q_u8(p + 64 * h + 32 + 16 * half);
        const uint8x16_t qh = vld1q_u8(p + 128 + 32 * h + 16 * half), lo4 = vdupq_n_u8(0x0f), three = vdupq_n_u8(3);
        uint8_t *oo = o + 128 * h + 16 * half;
        vst1q_u8(oo, vorrq_u8(vandq_u8(l0, lo4), vshlq_n_u8(vandq_u8(qh, three), 4)));
        vst1q_u8(oo + 32, vorrq_u8(vandq_u8(l1, lo4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), three), 4)));
        vst1q_u8(oo + 64, vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), three), 4)));
        vst1q_u8(oo + 96, vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4)));
      }
#else
      for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++) {
          const uint8_t byte = p[64 * h + 32 * (k & 1) + l];
          const int lo = k < 2 ? byte & 0x0f : byte >> 4, hi = (p[128 + 32 * h + l] >> (2 * k)) & 3;
          o[128 * h + 32 * k + l] = (uint8_t)(lo | hi << 4);
        }
#endif
    }
    for (int g = 0; g < 16; g++) {
      const float sc = d * (float)(int8_t)p[192 + g];
      s[16 * b + g] = sc;
      m[16 * b + g] = 32 * sc;
    }
  }
}

/*
 * Fast mode, reading the blocks in place: Σ_g (d·sc_g·dx)·Σ_{16 values} q·xq − Σ_g 32·d·sc_g·xs16_g, the
 * q·xq sums exact in integers (q = 0…63 unsigned), one float scale per 16 values. Every output keeps its
 * own accumulator and block order, whatever the tile (batch invariance).
 */
#if GN_X86_AVX512
/* Values 64c … 64c + 63: ql bytes 64h … 64h + 63 (h = c/2) give the low 4 bits (low or high nibbles),
 * qh bytes 32h … 32h + 31 the high 2 (bits 4(c&1) and 4(c&1) + 2: lower and upper 32 values). */
GN_INLINE __m512i q6k_codes(const uint8_t *p, int c) {
  const int h = c >> 1, sh = 4 * (c & 1);
  const __m512i lo4 = _mm512_set1_epi8(0x0f), three = _mm512_set1_epi8(3);
  __m512i L = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 64 * h))),
                                 _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32)), 1);
  __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h)));
  L = _mm512_srl_epi16(L, _mm_cvtsi32_si128(sh));
  H = _mm512_srl_epi16(H, _mm_cvtsi32_si128(sh));
  H = _mm512_mask_srli_epi16(H, 0xffff0000u, H, 2);
  return _mm512_or_si512(_mm512_and_si512(L, lo4), _mm512_slli_epi16(_mm512_and_si512(H, three), 4));
}

#define Q6K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy)                                            \
  do {                                                                                                \
    const int nb = n / 256;                                                                           \
    const __m512i pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);           \
    const __m512i quarter = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);         \
    __m512 acc[R][C];                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm512_setzero_ps();                                    \
    for (int b = 0; b < nb; b++) {                                                                    \
      __m512 sd[R];                                                                                   \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + 210 * (size_t)b;                                                 \
        gn_prefetch_block(p, 210);                                                                    \
        sd[i] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 192)))), \
                              _mm512_set1_ps(_cvtsh_ss(gn_rd16(p + 208))));                           \
        const __m512 m = _mm512_mul_ps(sd[i], _mm512_set1_ps(32.0f));                                 \
        for (int t = 0; t < C; t++)                                                                   \
          acc[i][t] = _mm512_fnmadd_ps(m, _mm512_loadu_ps(xs16 + (size_t)t * (n / 16) + 16 * (size_t)b), acc[i][t]); \
      }                                                                                               \
      __m512 cs[R][C]; /* d·sc_g·dx per 16 values */                                                  \
      for (int t = 0; t < C; t++) {                                                                   \
        const __m512 dx = _mm512_permutexvar_ps(pairs, _mm512_castps256_ps512(_mm256_loadu_ps(xd + (size_t)t * (n / 32) + 8 * (size_t)b))); \
        for (int i = 0; i < R; i++) cs[i][t] = _mm512_mul_ps(sd[i], dx);                              \
      }                                                                                               \
      for (int c = 0; c < 4; c++) {                                                                   \
        const __m512i ig = _mm512_add_epi32(quarter, _mm512_set1_epi32(4 * c));                       \
        __m512i U[R];                                                                                 \
        for (int i = 0; i < R; i++) U[i] = q6k_codes(rows[i] + 210 * (size_t)b, c);                   \
        for (int t = 0; t < C; t++) {                                                                 \
          const __m512i X = _mm512_loadu_si512(xq + (size_t)t * n + 256 * (size_t)b + 64 * c);        \
          for (int i = 0; i < R; i++) {                                                               \
            const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), U[i], X);                   \
            acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_permutexvar_ps(ig, cs[i][t]), acc[i][t]); \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum512(acc[i][t]);                     \
  } while (0)

static void q6_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, GN_ROW_GROUP, Q6K_FAST_TILE);
}

#elif GN_X86_AVX2
/* Values 32k … 32k + 31 (k = 0…7): ql bytes 64h + 32(k&1) … (h = k/4) give the low 4 bits (low nibbles
 * for k&2 = 0, high otherwise), qh bytes 32h … the high 2 (bits 2·(k&3)). */
GN_INLINE __m256i q6k_codes32(const uint8_t *p, int k) {
  const int h = k >> 2, part = k & 3;
  const __m256i l = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32 * (part & 1)));
  const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
  const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(l, _mm_cvtsi32_si128(4 * (part >> 1))), _mm256_set1_epi8(0x0f));
  const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * part)), _mm256_set1_epi8(3));
  return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
}

/* 32 values per step: lanes 0–3 share group 2k's scale, lanes 4–7 group 2k+1's; all share dx_k. */
#define Q6K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy)                                            \
  do {                                                                                                \
    const int nb = n / 256;                                                                           \
    const __m256i ones = _mm256_set1_epi16(1), is = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);        \
    __m256 acc[R][C];                                                                                 \
    float cs[R][C][16] __attribute__((aligned(32)));                                                  \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm256_setzero_ps();                                    \
    for (int b = 0; b < nb; b++) {                                                                    \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + 210 * (size_t)b;                                                 \
        gn_prefetch_block(p, 210);                                                                    \
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(gn_rd16(p + 208)));                                 \
        const __m128i s8 = _mm_loadu_si128((const __m128i *)(p + 192));                               \
        const __m256 s0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s8)), d);             \
        const __m256 s1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(s8, 8))), d); \
        for (int t = 0; t < C; t++) {                                                                 \
          const float *xs = xs16 + (size_t)t * (n / 16) + 16 * (size_t)b, *xdt = xd + (size_t)t * (n / 32) + 8 * (size_t)b; \
          acc[i][t] = _mm256_fnmadd_ps(_mm256_mul_ps(s0, _mm256_set1_ps(32.0f)), _mm256_loadu_ps(xs), acc[i][t]); \
          acc[i][t] = _mm256_fnmadd_ps(_mm256_mul_ps(s1, _mm256_set1_ps(32.0f)), _mm256_loadu_ps(xs + 8), acc[i][t]); \
          const __m256 dlo = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(xdt)), _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)); \
          const __m256 dhi = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(xdt + 4)), _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)); \
          _mm256_store_ps(cs[i][t], _mm256_mul_ps(s0, dlo));                                          \
          _mm256_store_ps(cs[i][t] + 8, _mm256_mul_ps(s1, dhi));                                      \
        }                                                                                             \
      }                                                                                               \
      for (int k = 0; k < 8; k++) {                                                                   \
        __m256i U[R];                                                                                 \
        for (int i = 0; i < R; i++) U[i] = q6k_codes32(rows[i] + 210 * (size_t)b, k);                 \
        for (int t = 0; t < C; t++) {                                                                 \
          const __m256i X = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * n + 256 * (size_t)b + 32 * k)); \
          for (int i = 0; i < R; i++) {                                                               \
            const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(U[i], X), ones);                 \
            const __m256 S = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_castpd_ps(_mm_load_sd((const double *)(cs[i][t] + 2 * k)))), is); \
            acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), S, acc[i][t]);                         \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum256(acc[i][t]);                     \
  } while (0)

static void q6_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, 2, Q6K_FAST_TILE);
}

#elif GN_ARM_NEON
GN_INLINE void neon_q6k_header(const uint8_t *p, float *s16, float *m16) {
  const float d = gn_f16(gn_rd16(p + 208));
  for (int g = 0; g < 16; g++) {
    s16[g] = d * (float)(int8_t)p[192 + g];
    m16[g] = 32 * s16[g];
  }
}
/* Values 32k … 32k + 31, as q6k_codes32 (AVX2) says. */
#define Q6K_CODES(p, k, U0, U1)                                                                       \
  do {                                                                                                \
    const int h_ = (k) >> 2, part_ = (k) & 3;                                                         \
    const uint8_t *l_ = (p) + 64 * h_ + 32 * (part_ & 1), *qh_ = (p) + 128 + 32 * h_;                 \
    const int8x16_t ls_ = vdupq_n_s8((int8_t)(-4 * (part_ >> 1))), hs_ = vdupq_n_s8((int8_t)(-2 * part_)); \
    const uint8x16_t lo4_ = vdupq_n_u8(0x0f), three_ = vdupq_n_u8(3);                                  \
    U0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(vshlq_u8(vld1q_u8(l_), ls_), lo4_),                      \
                                      vshlq_n_u8(vandq_u8(vshlq_u8(vld1q_u8(qh_), hs_), three_), 4)));  \
    U1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(vshlq_u8(vld1q_u8(l_ + 16), ls_), lo4_),                 \
                                      vshlq_n_u8(vandq_u8(vshlq_u8(vld1q_u8(qh_ + 16), hs_), three_), 4))); \
  } while (0)
#define Q6K_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy) NEON_DIRECT_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, 210, neon_q6k_header, Q6K_CODES)

static void q6_k_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, GN_ROW_GROUP, Q6K_FAST_TILE);
}
#endif
