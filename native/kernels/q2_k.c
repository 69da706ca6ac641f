/*
 * Q2_K (src/quant/q2_k.ts): 256 values in 84 bytes, scales u8[16] @0 (low nibble scale, high nibble
 * min per 16 values), qs @16 (2 bits each), d f16 @80, dmin f16 @82; value = d·sc·q − dmin·mn.
 * Canonical form: u = q, s = d·sc, m = dmin·mn per 16 values.
 */

static void unpack_q2_k(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 84 * b;
    const float d = gn_f16(gn_rd16(p + 80)), dmin = gn_f16(gn_rd16(p + 82));
    uint8_t *o = u + 256 * b;
    for (int h = 0; h < 2; h++) {
#if GN_X86_AVX2
      const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * h)), three = _mm256_set1_epi8(3);
      _mm256_storeu_si256((__m256i *)(o + 128 * h), _mm256_and_si256(q, three));
      _mm256_storeu_si256((__m256i *)(o + 128 * h + 32), _mm256_and_si256(_mm256_srli_epi16(q, 2), three));
      _mm256_storeu_si256((__m256i *)(o + 128 * h + 64), _mm256_and_si256(_mm256_srli_epi16(q, 4), three));
      _mm256_storeu_si256((__m256i *)(o + 128 * h + 96), _mm256_and_si256(_mm256_srli_epi16(q, 6), three));
#elif GN_ARM_NEON
      for (int half = 0; half < 2; half++) {
        const uint8x16_t q = vld1q_u8(p + 16 + 32 * h + 16 * half), three = vdupq_n_u8(3);
        uint8_t *oo = o + 128 * h + 16 * half;
        vst1q_u8(oo, vandq_u8(q, three));
        vst1q_u8(oo + 32, vandq_u8(vshrq_n_u8(q, 2), three));
        vst1q_u8(oo + 64, vandq_u8(vshrq_n_u8(q, 4), three));
        vst1q_u8(oo + 96, vshrq_n_u8(q, 6));
      }
#else
      for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) o[128 * h + 32 * j + l] = (p[16 + 32 * h + l] >> (2 * j)) & 3;
#endif
    }
    for (int g = 0; g < 16; g++) {
      s[16 * b + g] = d * (float)(p[g] & 0x0f);
      m[16 * b + g] = dmin * (float)(p[g] >> 4);
    }
  }
}
