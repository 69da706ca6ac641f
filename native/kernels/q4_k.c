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
