/*
 * Attention for one (query, head) pair (contract in src/kernels/types.ts): scores q·k in float32 lanes,
 * soft-cap, softmax (max-subtracted, float64 total), then the weighted sum of values. The driver hands
 * out (query, head) pairs to threads; each pair's result depends only on its own query and the cache, so
 * a query gives the same bytes alone or in any batch.
 */

/*
 * q·k in float64 (the scores feed a softmax that amplifies their rounding; float32 here doubles the
 * fixtures' logit error). Both come widened; four accumulators break the FMA latency chain.
 */
static double attn_dot(const double *qd, const double *kd, int n) {
  int i = 0;
#if GN_X86_AVX512
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_pd(_mm512_loadu_pd(qd + i), _mm512_loadu_pd(kd + i), a0);
    a1 = _mm512_fmadd_pd(_mm512_loadu_pd(qd + i + 8), _mm512_loadu_pd(kd + i + 8), a1);
    a2 = _mm512_fmadd_pd(_mm512_loadu_pd(qd + i + 16), _mm512_loadu_pd(kd + i + 16), a2);
    a3 = _mm512_fmadd_pd(_mm512_loadu_pd(qd + i + 24), _mm512_loadu_pd(kd + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm512_fmadd_pd(_mm512_loadu_pd(qd + i), _mm512_loadu_pd(kd + i), a0);
  double s = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
#elif GN_X86_AVX2
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_pd(_mm256_loadu_pd(qd + i), _mm256_loadu_pd(kd + i), a0);
    a1 = _mm256_fmadd_pd(_mm256_loadu_pd(qd + i + 4), _mm256_loadu_pd(kd + i + 4), a1);
    a2 = _mm256_fmadd_pd(_mm256_loadu_pd(qd + i + 8), _mm256_loadu_pd(kd + i + 8), a2);
    a3 = _mm256_fmadd_pd(_mm256_loadu_pd(qd + i + 12), _mm256_loadu_pd(kd + i + 12), a3);
  }
  for (; i + 4 <= n; i += 4) a0 = _mm256_fmadd_pd(_mm256_loadu_pd(qd + i), _mm256_loadu_pd(kd + i), a0);
  const __m256d a = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
  const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  double s = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
#elif GN_ARM_NEON
  float64x2_t a0 = vdupq_n_f64(0), a1 = a0;
  for (; i + 4 <= n; i += 4) {
    a0 = vfmaq_f64(a0, vld1q_f64(qd + i), vld1q_f64(kd + i));
    a1 = vfmaq_f64(a1, vld1q_f64(qd + i + 2), vld1q_f64(kd + i + 2));
  }
  double s = vaddvq_f64(vaddq_f64(a0, a1));
#else
  double s = 0;
#endif
  for (; i < n; i++) s += qd[i] * kd[i];
  return s;
}

/*
 * One query t and one KV head g, for all the query heads that share it (G = n_heads / n_kv of them), so
 * each cached key and value is read from memory once, not G times. Scores and the softmax in float64 (the
 * exponentials amplify a score's rounding), the weighted sum of values in float32 lanes (normalised
 * weights ≤ 1). Each head's result is computed by the same operations whatever else is in the call.
 * scratch: G·K doubles (queries widened) · K doubles (a key widened) · G·n_keys doubles (scores) · G·K floats.
 */
static void attention_one(const gn_attention_args *a, int t, int g, float *scratch) {
  const int K = a->head_dim, G = a->n_heads / a->n_kv, n_keys = a->pos0 + t + 1;
  const size_t stride = (size_t)a->n_kv * K, Kp = (size_t)((K + 7) & ~7), Np = (size_t)((n_keys + 7) & ~7);
  double *qd = (double *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  double *kd = qd + (size_t)G * Kp;
  double *scores = kd + Kp;
  float *acc = (float *)(scores + (size_t)G * Np);
  const float *q = a->q + ((size_t)t * a->n_heads + (size_t)g * G) * K;
  for (int j = 0; j < G; j++)
    for (int d = 0; d < K; d++) qd[j * Kp + d] = q[(size_t)j * K + d];
  double max[64];
  const int Gc = G < 64 ? G : 64; /* heads per KV head: 6 for Grok-1 */
  for (int j = 0; j < Gc; j++) max[j] = -INFINITY;
  for (int p = 0; p < n_keys; p++) {
    const float *kp = a->k_cache + p * stride + (size_t)g * K;
    if (a->key_mask[p]) for (int d = 0; d < K; d++) kd[d] = kp[d];
    for (int j = 0; j < G; j++) {
      double s = -1e30;
      if (a->key_mask[p]) {
        s = attn_dot(qd + j * Kp, kd, K) * a->scale;
        if (a->softcap > 0) s = a->softcap * tanh(s / a->softcap);
      }
      scores[j * Np + p] = s;
      if (j < Gc && s > max[j]) max[j] = s;
    }
  }
  for (int j = 0; j < G; j++) {
    double m = -INFINITY, sum = 0;
    double *sc = scores + j * Np;
    if (j < Gc) m = max[j];
    else for (int p = 0; p < n_keys; p++) m = sc[p] > m ? sc[p] : m;
    for (int p = 0; p < n_keys; p++) {
      const double e = exp(sc[p] - m);
      sc[p] = e;
      sum += e;
    }
    const double inv = 1.0 / sum;
    for (int p = 0; p < n_keys; p++) sc[p] *= inv;
    for (int d = 0; d < K; d++) acc[j * Kp + d] = 0;
  }
  for (int p = 0; p < n_keys; p++) {
    const float *v = a->v_cache + p * stride + (size_t)g * K;
    for (int j = 0; j < G; j++) {
      const float w = (float)scores[j * Np + p];
      if (w == 0) continue;
      float *aj = acc + j * Kp;
      int d = 0;
#if GN_X86_AVX512
      const __m512 wv = _mm512_set1_ps(w);
      for (; d + 16 <= K; d += 16) _mm512_storeu_ps(aj + d, _mm512_fmadd_ps(wv, _mm512_loadu_ps(v + d), _mm512_loadu_ps(aj + d)));
#elif GN_X86_AVX2
      const __m256 wv = _mm256_set1_ps(w);
      for (; d + 8 <= K; d += 8) _mm256_storeu_ps(aj + d, _mm256_fmadd_ps(wv, _mm256_loadu_ps(v + d), _mm256_loadu_ps(aj + d)));
#elif GN_ARM_NEON
      const float32x4_t wv = vdupq_n_f32(w);
      for (; d + 4 <= K; d += 4) vst1q_f32(aj + d, vfmaq_f32(vld1q_f32(aj + d), wv, vld1q_f32(v + d)));
#endif
      for (; d < K; d++) aj[d] = fmaf(w, v[d], aj[d]);
    }
  }
  for (int j = 0; j < G; j++) memcpy(a->out + ((size_t)t * a->n_heads + (size_t)g * G + j) * K, acc + j * Kp, (size_t)K * 4);
}
