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
