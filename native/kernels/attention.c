/*
 * Attention (contract in src/kernels/types.ts), two ways:
 *
 * - exact (attention_one): one (query, KV head) item; scores q·k and the softmax in float64, the weighted
 *   sum of values in float32 lanes — the numerics the fixtures' 1e-4 goldens were checked with.
 * - fast (attention_part + attention_merge, flash-decoding): items are (query, key chunk, KV heads) with
 *   chunks of GN_ATTN_CHUNK keys at fixed absolute positions; each computes float32 scores, soft-cap and
 *   exponentials in vector lanes and leaves its max m, sum l and unnormalised Σ e·v; the merge combines
 *   a query's chunks in ascending order. Chunk bounds depend only on the key positions, so a query's
 *   bytes do not depend on T, its place in the batch or the thread count, and a decoded token at any
 *   context gives every thread work.
 *
 * The cache may hold float32, f16 or Q8_0 rows (one row = one position's one KV head); f16 and Q8_0 rows
 * are widened to float32 as they are read.
 *
 * Grok-2's attention temperature multiplies the soft-capped scores of the query at position p by
 * τ(p) = log2(p)/log2(L) when p > L (SGLang triton_ops decode_attention.py: xai_temperature_reg, applied
 * after the logit cap): one factor per query, computed in float64 from its absolute position, so a query's
 * result still does not depend on the batch it is in.
 */

/* τ of query t (position pos0 + t); 1 when the temperature is off (L = 0) or p ≤ L. */
static double attn_temperature(const gn_attention_args *a, int t) {
  const double p = (double)a->pos0 + t, L = a->temperature_len;
  return L > 0 && p > L ? log2(p) / log2(L) : 1.0;
}

/* Bytes of one cache row of the call's type. */
GN_INLINE size_t kv_row_size(const gn_attention_args *a) {
  const size_t K = (size_t)a->head_dim;
  return a->kv_type == GN_F16 ? 2 * K : a->kv_type == GN_Q8_0 ? K / 32 * 34 : 4 * K;
}

/* Row (position p, KV head g) of a cache as float32: f32 rows in place, f16 / Q8_0 rows widened into buf. */
static const float *kv_row(const gn_attention_args *a, const void *cache, size_t p, int g, float *buf) {
  const size_t i = p * (size_t)a->n_kv + (size_t)g, K = (size_t)a->head_dim;
  switch (a->kv_type) {
  case GN_F16: f16_to_f32((const uint8_t *)cache + i * 2 * K, (int)K, buf); return buf;
  case GN_Q8_0: q8_0_expand((const uint8_t *)cache + i * (K / 32) * 34, (int)K, buf); return buf;
  default: return (const float *)cache + i * K;
  }
}

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
 * scratch: G·K doubles (queries widened) · K doubles (a key widened) · G·n_keys doubles (scores) · G·K floats
 * (sums) · K floats (a row widened from f16 / Q8_0).
 */
static void attention_one(const gn_attention_args *a, int t, int g, float *scratch) {
  const int K = a->head_dim, G = a->n_heads / a->n_kv, n_keys = a->pos0 + t + 1;
  const size_t Kp = (size_t)((K + 7) & ~7), Np = (size_t)((n_keys + 7) & ~7);
  double *qd = (double *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  double *kd = qd + (size_t)G * Kp;
  double *scores = kd + Kp;
  float *acc = (float *)(scores + (size_t)G * Np), *row = acc + (size_t)G * Kp;
  const float *q = a->q + ((size_t)t * a->n_heads + (size_t)g * G) * K;
  for (int j = 0; j < G; j++)
    for (int d = 0; d < K; d++) qd[j * Kp + d] = q[(size_t)j * K + d];
  double max[64];
  const int Gc = G < 64 ? G : 64; /* heads per KV head: 6 for Grok-1 */
  const double tau = attn_temperature(a, t);
  for (int j = 0; j < Gc; j++) max[j] = -INFINITY;
  for (int p = 0; p < n_keys; p++) {
    if (a->key_mask[p]) {
      const float *kp = kv_row(a, a->k_cache, (size_t)p, g, row);
      for (int d = 0; d < K; d++) kd[d] = kp[d];
    }
    for (int j = 0; j < G; j++) {
      double s = -1e30;
      if (a->key_mask[p]) {
        s = attn_dot(qd + j * Kp, kd, K) * a->scale;
        if (a->softcap > 0) s = a->softcap * tanh(s / a->softcap);
        s *= tau;
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
    int any = 0;
    for (int j = 0; j < G; j++) any |= scores[j * Np + p] != 0;
    if (!any) continue;
    const float *v = kv_row(a, a->v_cache, (size_t)p, g, row);
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

/* Fast path: float32 lanes (kernels/lanes.h). */

/* cap·tanh(s/cap) with tanh|y| = (1 − e^(−2|y|)) / (1 + e^(−2|y|)): absolute error ≈ 1e-7·cap. */
GN_INLINE av_f av_softcap(av_f s, float cap, float inv_cap) {
  const av_f y = s * av_set1(inv_cap);
  const av_i sign = (av_i)y & (int32_t)0x80000000;
  const av_f e = av_exp((av_f)((av_i)y & 0x7fffffff) * av_set1(-2.0f));
  const av_f th = (av_set1(1.0f) - e) / (av_set1(1.0f) + e);
  return (av_f)((av_i)th | sign) * av_set1(cap);
}

/*
 * s[j] = q_j·k in float32 for H_ query heads (q_j = q + j·K) sharing one key row, which is loaded once
 * for all of them. Per head: two chains of lanes (even and odd vectors), summed in one fixed order, then
 * the scalar tail — the same operations whichever H_ the head is computed with.
 */
#define ATTN_DOTS(H_, q, K, k, s)                                                                   \
  do {                                                                                              \
    av_f e_[H_], o_[H_];                                                                            \
    for (int j_ = 0; j_ < H_; j_++) e_[j_] = o_[j_] = (av_f){0};                                    \
    int d_ = 0;                                                                                     \
    for (; d_ + 2 * AV <= K; d_ += 2 * AV) {                                                        \
      const av_f k0_ = av_load(k + d_), k1_ = av_load(k + d_ + AV);                                 \
      for (int j_ = 0; j_ < H_; j_++) {                                                             \
        e_[j_] = av_fma(av_load(q + (size_t)j_ * K + d_), k0_, e_[j_]);                             \
        o_[j_] = av_fma(av_load(q + (size_t)j_ * K + d_ + AV), k1_, o_[j_]);                        \
      }                                                                                             \
    }                                                                                               \
    if (d_ + AV <= K) {                                                                             \
      const av_f k0_ = av_load(k + d_);                                                             \
      for (int j_ = 0; j_ < H_; j_++) e_[j_] = av_fma(av_load(q + (size_t)j_ * K + d_), k0_, e_[j_]);\
      d_ += AV;                                                                                     \
    }                                                                                               \
    for (int j_ = 0; j_ < H_; j_++) {                                                               \
      float t_ = av_hsum(e_[j_] + o_[j_]);                                                          \
      for (int dd_ = d_; dd_ < K; dd_++) t_ += q[(size_t)j_ * K + dd_] * k[dd_];                    \
      s[j_] = t_;                                                                                   \
    }                                                                                               \
  } while (0)

/* s[j] = q_j·k for the G heads q_j = q + j·K, three at a time. */
static void attn_dots(const float *q, int G, int K, const float *k, float *s) {
  int h = 0;
  for (; h + 3 <= G; h += 3) ATTN_DOTS(3, (q + (size_t)h * K), K, k, (s + h));
  if (G - h == 2) ATTN_DOTS(2, (q + (size_t)h * K), K, k, (s + h));
  else if (G - h == 1) ATTN_DOTS(1, (q + (size_t)h * K), K, k, (s + h));
}

/*
 * Positions fetched ahead of the one in use: a KV head's rows lie n_kv rows apart, a stride the hardware
 * prefetchers follow poorly across 4 KiB pages (measured: 60 → 15 ms per Grok-1 layer at 8,192, 1 thread).
 */
#define KV_AHEAD 6

/* acc[0..n) += w·v[0..n). */
GN_INLINE void attn_axpy(float *acc, float w, const float *v, int n) {
  const av_f wv = av_set1(w);
  int d = 0;
  for (; d + AV <= n; d += AV) av_store(acc + d, av_fma(wv, av_load(v + d), av_load(acc + d)));
  for (; d < n; d++) acc[d] += w * v[d];
}

/* Vectors of a head's accumulator kept in registers per pass (AVX2 has 16 registers, the others 32). */
#if AV == 8
#define ATTN_NV 2
#else
#define ATTN_NV 4
#endif

/*
 * acc_h[d] += w_h[i]·v_i[d] for H_ heads (acc + h·acs, weights w + h·ws) over n keys (rows v + i·ldv), keys
 * in ascending order for every element: the accumulators stay in registers across the keys. The same
 * operations per element as one fused multiply-add (vector part) or multiply-then-add (tail) per key.
 */
#define ATTN_WSUM(H_, acc, acs, w, ws, v, ldv, n, K)                                                  \
  do {                                                                                              \
    int d_ = 0;                                                                                     \
    for (; d_ + ATTN_NV * AV <= K; d_ += ATTN_NV * AV) {                                            \
      av_f a_[H_][ATTN_NV];                                                                         \
      for (int h_ = 0; h_ < H_; h_++)                                                               \
        for (int x_ = 0; x_ < ATTN_NV; x_++) a_[h_][x_] = av_load(acc + (size_t)h_ * acs + d_ + x_ * AV); \
      for (int i_ = 0; i_ < n; i_++) {                                                              \
        av_f v_[ATTN_NV];                                                                           \
        for (int x_ = 0; x_ < ATTN_NV; x_++) v_[x_] = av_load(v + (size_t)i_ * ldv + d_ + x_ * AV); \
        for (int h_ = 0; h_ < H_; h_++) {                                                           \
          const av_f w_ = av_set1(w[(size_t)h_ * ws + i_]);                                         \
          for (int x_ = 0; x_ < ATTN_NV; x_++) a_[h_][x_] = av_fma(w_, v_[x_], a_[h_][x_]);         \
        }                                                                                           \
      }                                                                                             \
      for (int h_ = 0; h_ < H_; h_++)                                                               \
        for (int x_ = 0; x_ < ATTN_NV; x_++) av_store(acc + (size_t)h_ * acs + d_ + x_ * AV, a_[h_][x_]); \
    }                                                                                               \
    for (; d_ + AV <= K; d_ += AV)                                                                  \
      for (int h_ = 0; h_ < H_; h_++) {                                                             \
        av_f a_ = av_load(acc + (size_t)h_ * acs + d_);                                             \
        for (int i_ = 0; i_ < n; i_++)                                                              \
          a_ = av_fma(av_set1(w[(size_t)h_ * ws + i_]), av_load(v + (size_t)i_ * ldv + d_), a_);    \
        av_store(acc + (size_t)h_ * acs + d_, a_);                                                  \
      }                                                                                             \
    for (; d_ < K; d_++)                                                                            \
      for (int h_ = 0; h_ < H_; h_++)                                                               \
        for (int i_ = 0; i_ < n; i_++) acc[(size_t)h_ * acs + d_] += w[(size_t)h_ * ws + i_] * v[(size_t)i_ * ldv + d_]; \
  } while (0)

/* The weighted sum for G heads, three at a time. */
static void attn_wsum(float *acc, size_t acs, const float *w, size_t ws, int G, const float *v, size_t ldv, int n, int K) {
  int h = 0;
  for (; h + 3 <= G; h += 3) ATTN_WSUM(3, (acc + (size_t)h * acs), acs, (w + (size_t)h * ws), ws, v, ldv, n, K);
  if (G - h == 2) ATTN_WSUM(2, (acc + (size_t)h * acs), acs, (w + (size_t)h * ws), ws, v, ldv, n, K);
  else if (G - h == 1) ATTN_WSUM(1, (acc + (size_t)h * acs), acs, (w + (size_t)h * ws), ws, v, ldv, n, K);
}

/*
 * Chunk c (keys [c·GN_ATTN_CHUNK, …) up to the query's own) of query t for the query heads of KV heads
 * [g0, g1). Each head's record rec + h·head_stride (h counted from g0's first head) receives Σ e·v in
 * [0, K), the chunk's max score m at [GN_ATTN_KP(K)] and Σ e at [GN_ATTN_KP(K) + 1], e = exp(score − m).
 * A head's result depends only on its own operations, never on g0 and g1 (they only decide which rows
 * are read together: one position's rows of all KV heads are contiguous, which the prefetchers follow).
 * scratch: GN_ATTN_SCRATCH(K, (g1 − g0)·G, g1 − g0) bytes.
 */
static void attention_part(const gn_attention_args *a, int t, int g0, int g1, int c, float *rec, size_t head_stride, float *scratch) {
  enum { CH = GN_ATTN_CHUNK };
  const int K = a->head_dim, G = a->n_heads / a->n_kv, NH = (g1 - g0) * G, p0 = c * CH;
  const int n = GN_MIN(CH, a->pos0 + t + 1 - p0), np = (n + AV - 1) / AV * AV;
  const size_t Kp = GN_ATTN_KP(K), rb = kv_row_size(a), span = (size_t)(g1 - g0) * rb, pos_bytes = (size_t)a->n_kv * rb;
  float *row = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63), *sc = row + Kp;
  const float *q = a->q + ((size_t)t * a->n_heads + (size_t)g0 * G) * K;
  const uint8_t *mask = a->key_mask + p0;
  const uint8_t *kb = (const uint8_t *)a->k_cache + (size_t)g0 * rb, *vb = (const uint8_t *)a->v_cache + (size_t)g0 * rb;
  for (int i = 0; i < n; i++) {
    if (i + KV_AHEAD < n)
      for (size_t b = 0; b < span; b += 64) __builtin_prefetch(kb + (size_t)(p0 + i + KV_AHEAD) * pos_bytes + b);
    if (!mask[i]) continue;
    for (int g = g0; g < g1; g++) {
      const float *k = kv_row(a, a->k_cache, (size_t)(p0 + i), g, row);
      const int h0 = (g - g0) * G;
      float d[64];
      for (int j0 = 0; j0 < G; j0 += 64) {
        const int gj = GN_MIN(64, G - j0);
        attn_dots(q + (size_t)(h0 + j0) * K, gj, K, k, d);
        for (int j = 0; j < gj; j++) sc[(size_t)(h0 + j0 + j) * CH + i] = d[j] * a->scale;
      }
    }
  }
  const float cap = a->softcap, inv_cap = cap > 0 ? 1.0f / cap : 0.0f, tau = (float)attn_temperature(a, t);
  for (int h = 0; h < NH; h++) {
    float *s = sc + (size_t)h * CH, *r = rec + (size_t)h * head_stride;
    if (cap > 0)
      for (int i = 0; i < np; i += AV) av_store(s + i, av_softcap(av_load(s + i), cap, inv_cap));
    if (tau != 1.0f)
      for (int i = 0; i < np; i += AV) av_store(s + i, av_load(s + i) * av_set1(tau));
    for (int i = 0; i < n; i++) if (!mask[i]) s[i] = -1e30f;
    for (int i = n; i < np; i++) s[i] = -INFINITY;
    av_f mv = av_set1(-INFINITY);
    for (int i = 0; i < np; i += AV) mv = av_max(mv, av_load(s + i));
    float m = mv[0];
    for (int l = 1; l < AV; l++) m = mv[l] > m ? mv[l] : m;
    av_f lv = {0};
    const av_f mb = av_set1(m);
    for (int i = 0; i < np; i += AV) {
      const av_f e = av_exp(av_load(s + i) - mb);
      av_store(s + i, e);
      lv = lv + e;
    }
    memset(r, 0, (size_t)K * 4);
    r[Kp] = m;
    r[Kp + 1] = av_hsum(lv);
  }
  /* Values, GN_ATTN_SUB positions at a time: rows widened into vbuf (position-major, as stored), then each
   * KV head's weighted sums with the accumulators in registers. */
  float *vbuf = sc + (size_t)NH * CH;
  const size_t vld = (size_t)(g1 - g0) * Kp;
  for (int i0 = 0; i0 < n; i0 += GN_ATTN_SUB) {
    const int ns = GN_MIN(GN_ATTN_SUB, n - i0);
    for (int i = i0; i < i0 + ns; i++) {
      if (i + KV_AHEAD < n)
        for (size_t b = 0; b < span; b += 64) __builtin_prefetch(vb + (size_t)(p0 + i + KV_AHEAD) * pos_bytes + b);
      if (a->kv_type != GN_F32)
        for (int g = g0; g < g1; g++) kv_row(a, a->v_cache, (size_t)(p0 + i), g, vbuf + (size_t)(i - i0) * vld + (size_t)(g - g0) * Kp);
    }
    for (int g = g0; g < g1; g++) {
      const int h0 = (g - g0) * G;
      const float *v = a->kv_type == GN_F32 ? (const float *)a->v_cache + ((size_t)(p0 + i0) * a->n_kv + (size_t)g) * K : vbuf + (size_t)(g - g0) * Kp;
      const size_t ldv = a->kv_type == GN_F32 ? (size_t)a->n_kv * K : vld;
      attn_wsum(rec + (size_t)h0 * head_stride, head_stride, sc + (size_t)h0 * CH + i0, CH, G, v, ldv, ns, K);
    }
  }
}

/* One head of one query: its nc chunk records (rec_stride floats apart) merged in ascending order into out[0..K). */
static void attention_merge(const float *rec, int nc, size_t rec_stride, int K, float *out) {
  const size_t Kp = GN_ATTN_KP(K);
  float M = -INFINITY, L = 0;
  for (int c = 0; c < nc; c++) M = rec[c * rec_stride + Kp] > M ? rec[c * rec_stride + Kp] : M;
  memset(out, 0, (size_t)K * 4);
  for (int c = 0; c < nc; c++) {
    const float *r = rec + c * rec_stride, w = expf(r[Kp] - M);
    if (w == 0) continue;
    L += w * r[Kp + 1];
    attn_axpy(out, w, r, K);
  }
  const av_f inv = av_set1(1.0f / L);
  int d = 0;
  for (; d + AV <= K; d += AV) av_store(out + d, av_load(out + d) * inv);
  for (; d < K; d++) out[d] *= inv[0];
}
