/*
 * Attention for one (query, head) pair (contract in src/kernels/types.ts): scores q·k in float32 lanes,
 * soft-cap, softmax (max-subtracted, float64 total), then the weighted sum of values. The driver hands
 * out (query, head) pairs to threads; each pair's result depends only on its own query and the cache, so
 * a query gives the same bytes alone or in any batch.
 */

/* q·k with float64 sums: the scores feed a softmax that amplifies their rounding. */
static double attn_dot(const float *a, const float *b, int n) {
  int k = 0;
#if GN_X86_AVX512
  __m512d acc = _mm512_setzero_pd();
  for (; k + 8 <= n; k += 8) acc = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + k)), _mm512_cvtps_pd(_mm256_loadu_ps(b + k)), acc);
  double s = _mm512_reduce_add_pd(acc);
#elif GN_X86_AVX2
  __m256d acc = _mm256_setzero_pd();
  for (; k + 4 <= n; k += 4) acc = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + k)), _mm256_cvtps_pd(_mm_loadu_ps(b + k)), acc);
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
  double s = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
#elif GN_ARM_NEON
  float64x2_t acc = vdupq_n_f64(0);
  for (; k + 2 <= n; k += 2) acc = vfmaq_f64(acc, vcvt_f64_f32(vld1_f32(a + k)), vcvt_f64_f32(vld1_f32(b + k)));
  double s = vaddvq_f64(acc);
#else
  double s = 0;
#endif
  for (; k < n; k++) s += (double)a[k] * b[k];
  return s;
}

/*
 * scratch: n_keys doubles of scores, then head_dim doubles of accumulator. Float64 throughout, as the
 * reference: the cost is small beside the matmuls, and tiny models amplify attention's rounding.
 */
static void attention_one(const gn_attention_args *a, int t, int h, float *scratch) {
  const int K = a->head_dim, g = h / (a->n_heads / a->n_kv), n_keys = a->pos0 + t + 1;
  const size_t stride = (size_t)a->n_kv * K;
  const float *q = a->q + ((size_t)t * a->n_heads + h) * K;
  double *scores = (double *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63), *acc = scores + ((n_keys + 7) & ~7);
  double max = -INFINITY;
  for (int p = 0; p < n_keys; p++) {
    double s = -1e30;
    if (a->key_mask[p]) {
      s = attn_dot(q, a->k_cache + p * stride + (size_t)g * K, K) * a->scale;
      if (a->softcap > 0) s = a->softcap * tanh(s / a->softcap);
    }
    scores[p] = s;
    if (s > max) max = s;
  }
  double sum = 0;
  for (int p = 0; p < n_keys; p++) {
    const double e = exp(scores[p] - max);
    scores[p] = e;
    sum += e;
  }
  for (int d = 0; d < K; d++) acc[d] = 0;
  for (int p = 0; p < n_keys; p++) {
    const double w = scores[p];
    if (w == 0) continue;
    const float *v = a->v_cache + p * stride + (size_t)g * K;
    int d = 0;
#if GN_X86_AVX512
    const __m512d wv = _mm512_set1_pd(w);
    for (; d + 8 <= K; d += 8) _mm512_storeu_pd(acc + d, _mm512_fmadd_pd(wv, _mm512_cvtps_pd(_mm256_loadu_ps(v + d)), _mm512_loadu_pd(acc + d)));
#elif GN_X86_AVX2
    const __m256d wv = _mm256_set1_pd(w);
    for (; d + 4 <= K; d += 4) _mm256_storeu_pd(acc + d, _mm256_fmadd_pd(wv, _mm256_cvtps_pd(_mm_loadu_ps(v + d)), _mm256_loadu_pd(acc + d)));
#endif
    for (; d < K; d++) acc[d] += w * v[d];
  }
  const double inv = 1.0 / sum;
  float *out = a->out + ((size_t)t * a->n_heads + h) * K;
  for (int d = 0; d < K; d++) out[d] = (float)(acc[d] * inv);
}
