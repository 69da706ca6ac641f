/*
 * Fast mode's activations (test/kernels.test.ts quantDequantX): per 32 values d = max|x| / 127,
 * q = round-half-even(x · (1/d)), all in float32. Every level computes the same bytes (IEEE division,
 * multiplication and rounding), so levels differ only in how they sum afterwards.
 * Also xs16 = d · Σ q over each 16 values, for the canonical kernels' offsets.
 */

/* Round half to even for |v| < 2^22 without SSE4.1: adding 1.5·2^23 rounds in the current (nearest-even)
 * mode; IEEE arithmetic (no -ffast-math) keeps (v + c) − c as written. */
static inline float act_round(float v) {
  return (v + 12582912.0f) - 12582912.0f;
}

static void act_quantize(const float *x, int T, int n, int8_t *xq, float *xd, float *xs16) {
  const size_t blocks = (size_t)T * (size_t)(n / 32);
  for (size_t b = 0; b < blocks; b++) {
    const float *src = x + 32 * b;
    int8_t *q = xq + 32 * b;
#if GN_X86_AVX512
    const __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(q1));
    xd[b] = d;
    xs16[2 * b] = d * (float)_mm512_reduce_add_epi32(q0);
    xs16[2 * b + 1] = d * (float)_mm512_reduce_add_epi32(q1);
#elif GN_X86_AVX2
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], m = _mm256_setzero_ps();
    for (int h = 0; h < 4; h++) {
      v[h] = _mm256_loadu_ps(src + 8 * h);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[h]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    __m256i qi[4];
    for (int h = 0; h < 4; h++)
      qi[h] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[h], _mm256_set1_ps(id)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    /* pack to bytes; packs work per 128-bit lane, the permute restores order */
    const __m256i w01 = _mm256_packs_epi32(qi[0], qi[1]), w23 = _mm256_packs_epi32(qi[2], qi[3]);
    const __m256i b8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, b8);
    xd[b] = d;
    for (int h = 0; h < 2; h++) {
      const __m256i s = _mm256_add_epi32(qi[2 * h], qi[2 * h + 1]);
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
      xs16[2 * b + h] = d * (float)_mm_cvtsi128_si32(s4);
    }
#elif GN_ARM_NEON
    float32x4_t v[8], m = vdupq_n_f32(0);
    for (int h = 0; h < 8; h++) {
      v[h] = vld1q_f32(src + 4 * h);
      m = vmaxq_f32(m, vabsq_f32(v[h]));
    }
    const float amax = vmaxvq_f32(m);
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    int32x4_t qi[8];
    for (int h = 0; h < 8; h++) qi[h] = vcvtnq_s32_f32(vmulq_n_f32(v[h], id)); /* round to nearest, ties even */
    for (int h = 0; h < 2; h++) {
      const int16x8_t a = vcombine_s16(vmovn_s32(qi[4 * h]), vmovn_s32(qi[4 * h + 1]));
      const int16x8_t c = vcombine_s16(vmovn_s32(qi[4 * h + 2]), vmovn_s32(qi[4 * h + 3]));
      vst1q_s8(q + 16 * h, vcombine_s8(vmovn_s16(a), vmovn_s16(c)));
      const int32x4_t s = vaddq_s32(vaddq_s32(qi[4 * h], qi[4 * h + 1]), vaddq_s32(qi[4 * h + 2], qi[4 * h + 3]));
      xs16[2 * b + h] = d * (float)vaddvq_s32(s);
    }
    xd[b] = d;
#else
    float amax = 0;
    for (int k = 0; k < 32; k++) {
      const float a = src[k] < 0 ? -src[k] : src[k];
      if (a > amax) amax = a;
    }
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    int s[2] = {0, 0};
    for (int k = 0; k < 32; k++) {
      const int v = (int)act_round(src[k] * id);
      q[k] = (int8_t)v;
      s[k >> 4] += v;
    }
    xd[b] = d;
    xs16[2 * b] = d * (float)s[0];
    xs16[2 * b + 1] = d * (float)s[1];
#endif
  }
}
