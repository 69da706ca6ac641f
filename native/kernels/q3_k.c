/*
 * Q3_K (src/quant/q3_k.ts): 256 values in 110 bytes, hmask @0, qs @32 (2 low bits each), scales @96
 * (sixteen signed 6-bit scales), d f16 @108; value = d·S·(q − 4) when the hmask bit is clear, d·S·q when
 * set. Canonical form: u = q + 4·hbit (0…7), s = d·S, m = 4·s.
 */

static int q3k_scale(const uint8_t *sc, int t) {
  const int low4 = t < 8 ? sc[t] & 0x0f : sc[t - 8] >> 4;
  const int high2 = (sc[8 + (t & 3)] >> (2 * (t >> 2))) & 3;
  return (low4 | high2 << 4) - 32;
}

static void unpack_q3_k(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 110 * b;
    const float d = gn_f16(gn_rd16(p + 108));
    uint8_t *o = u + 256 * b;
#if GN_X86_AVX2
    const __m256i hm = _mm256_loadu_si256((const __m256i *)p), one = _mm256_set1_epi8(1), three = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; h++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 32 + 32 * h));
      for (int j = 0; j < 4; j++) {
        const __m128i sq = _mm_cvtsi32_si128(2 * j), sh = _mm_cvtsi32_si128(4 * h + j);
        const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(q, sq), three);
        const __m256i hb = _mm256_and_si256(_mm256_srl_epi16(hm, sh), one);
        _mm256_storeu_si256((__m256i *)(o + 128 * h + 32 * j), _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2)));
      }
    }
#elif GN_ARM_NEON
    for (int half = 0; half < 2; half++) {
      const uint8x16_t hm = vld1q_u8(p + 16 * half);
      for (int h = 0; h < 2; h++) {
        const uint8x16_t q = vld1q_u8(p + 32 + 32 * h + 16 * half);
        for (int j = 0; j < 4; j++) {
          const uint8x16_t lo = vandq_u8(vshlq_u8(q, vdupq_n_s8((int8_t)(-2 * j))), vdupq_n_u8(3));
          const uint8x16_t hb = vandq_u8(vshlq_u8(hm, vdupq_n_s8((int8_t)(-(4 * h + j)))), vdupq_n_u8(1));
          vst1q_u8(o + 128 * h + 32 * j + 16 * half, vorrq_u8(lo, vshlq_n_u8(hb, 2)));
        }
      }
    }
#else
    for (int h = 0; h < 2; h++)
      for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
          const int q = (p[32 + 32 * h + l] >> (2 * j)) & 3, hb = (p[l] >> (4 * h + j)) & 1;
          o[128 * h + 32 * j + l] = (uint8_t)(q + 4 * hb);
        }
#endif
    for (int g = 0; g < 16; g++) {
      const float sc = d * (float)q3k_scale(p + 96, g);
      s[16 * b + g] = sc;
      m[16 * b + g] = 4 * sc;
    }
  }
}
