/*
 * Q4_0 (src/quant/q4_0.ts): 32 values in 18 bytes, d f16 @0, qs @2; value = d·(nibble − 8), low nibbles
 * the first 16 values. Canonical form: u = nibble, s = d, m = 8·d (d·u and 8·d are exact in float32).
 */

static void unpack_q4_0(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 32; b++) {
    const uint8_t *p = row + 18 * b;
    const float d = gn_f16(gn_rd16(p));
    uint8_t *o = u + 32 * b;
#if GN_X86_AVX2
    const __m128i q = _mm_loadu_si128((const __m128i *)(p + 2)), lo4 = _mm_set1_epi8(0x0f);
    _mm_storeu_si128((__m128i *)o, _mm_and_si128(q, lo4));
    _mm_storeu_si128((__m128i *)(o + 16), _mm_and_si128(_mm_srli_epi16(q, 4), lo4));
#elif GN_ARM_NEON
    const uint8x16_t q = vld1q_u8(p + 2);
    vst1q_u8(o, vandq_u8(q, vdupq_n_u8(0x0f)));
    vst1q_u8(o + 16, vshrq_n_u8(q, 4));
#else
    for (int j = 0; j < 16; j++) {
      o[j] = p[2 + j] & 0x0f;
      o[j + 16] = p[2 + j] >> 4;
    }
#endif
    s[2 * b] = s[2 * b + 1] = d;
    m[2 * b] = m[2 * b + 1] = 8 * d;
  }
}
