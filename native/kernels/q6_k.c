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
