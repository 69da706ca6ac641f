/*
 * Float rows (src/quant/float.ts: f32, f16, bf16) and the float32 dot micro-kernel every exact-mode
 * kernel ends in. f32 rows are read in place; f16/bf16 rows are widened into scratch once per row group
 * and then serve every token.
 *
 * f32_tile: y[t·ldy + i] = Σ_k w[i][k]·x[t·ldx + k] for R rows × C tokens, in float64 (float32 inputs
 * multiply exactly in float64): the reference's numerics up to summation order, which the fixtures' 1e-4
 * golden logits need — a float32 sum drifts past it on the smaller, chaotic ones. Each output has its
 * own accumulator (lanes of fused multiply-adds over k in order, then one fixed horizontal sum), so its
 * value does not depend on R, C or its place in the tile.
 */

#if GN_X86_AVX512
/* Eight values per step, widened to float64: products exact, sums in float64 lanes. */
#define F32_TILE(R, C, w, x, ldx, n, y, ldy)                                                      \
  do {                                                                                            \
    __m512d acc[R][C];                                                                            \
    for (int i = 0; i < R; i++)                                                                   \
      for (int t = 0; t < C; t++) acc[i][t] = _mm512_setzero_pd();                                \
    for (int k = 0; k < n; k += 8) {                                                              \
      const __mmask8 mk = n - k >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (n - k)) - 1);          \
      __m512d wv[R];                                                                              \
      for (int i = 0; i < R; i++) wv[i] = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mk, w[i] + k));   \
      for (int t = 0; t < C; t++) {                                                               \
        const __m512d xv = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mk, x + (size_t)t * ldx + k));   \
        for (int i = 0; i < R; i++) acc[i][t] = _mm512_fmadd_pd(wv[i], xv, acc[i][t]);            \
      }                                                                                           \
    }                                                                                             \
    for (int i = 0; i < R; i++)                                                                   \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = (float)_mm512_reduce_add_pd(acc[i][t]); \
  } while (0)

static void f32_tile(const float *const *w, int R, const float *x, size_t ldx, int C, int n, float *y, size_t ldy) {
  GN_TILE(R, C, F32_TILE, w, x, ldx, n, y, ldy);
}

#elif GN_X86_AVX2
/* Four values per step in float64; 16 ymm registers: at most 2 rows × 4 tokens at once. */
GN_INLINE double gn_hsum256d(__m256d v) {
  const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}
#define F32_TILE(R, C, w, x, ldx, n, y, ldy)                                                      \
  do {                                                                                            \
    __m256d acc[R][C];                                                                            \
    for (int i = 0; i < R; i++)                                                                   \
      for (int t = 0; t < C; t++) acc[i][t] = _mm256_setzero_pd();                                \
    int k = 0;                                                                                    \
    for (; k + 4 <= n; k += 4) {                                                                  \
      __m256d wv[R];                                                                              \
      for (int i = 0; i < R; i++) wv[i] = _mm256_cvtps_pd(_mm_loadu_ps(w[i] + k));                \
      for (int t = 0; t < C; t++) {                                                               \
        const __m256d xv = _mm256_cvtps_pd(_mm_loadu_ps(x + (size_t)t * ldx + k));                \
        for (int i = 0; i < R; i++) acc[i][t] = _mm256_fmadd_pd(wv[i], xv, acc[i][t]);            \
      }                                                                                           \
    }                                                                                             \
    for (int i = 0; i < R; i++)                                                                   \
      for (int t = 0; t < C; t++) {                                                               \
        double s = gn_hsum256d(acc[i][t]);                                                        \
        for (int kk = k; kk < n; kk++) s += (double)w[i][kk] * x[(size_t)t * ldx + kk];           \
        y[(size_t)t * ldy + i] = (float)s;                                                        \
      }                                                                                           \
  } while (0)

static void f32_tile(const float *const *w, int R, const float *x, size_t ldx, int C, int n, float *y, size_t ldy) {
  for (int i0 = 0; i0 < R; i0 += 2) {
    const int r = GN_MIN(2, R - i0);
    GN_TILE(r, C, F32_TILE, (w + i0), x, ldx, n, (y + i0), ldy);
  }
}

#elif GN_ARM_NEON
#define F32_TILE(R, C, w, x, ldx, n, y, ldy)                                                      \
  do {                                                                                            \
    float64x2_t acc[R][C];                                                                        \
    for (int i = 0; i < R; i++)                                                                   \
      for (int t = 0; t < C; t++) acc[i][t] = vdupq_n_f64(0);                                     \
    int k = 0;                                                                                    \
    for (; k + 2 <= n; k += 2) {                                                                  \
      float64x2_t wv[R];                                                                          \
      for (int i = 0; i < R; i++) wv[i] = vcvt_f64_f32(vld1_f32(w[i] + k));                       \
      for (int t = 0; t < C; t++) {                                                               \
        const float64x2_t xv = vcvt_f64_f32(vld1_f32(x + (size_t)t * ldx + k));                   \
        for (int i = 0; i < R; i++) acc[i][t] = vfmaq_f64(acc[i][t], wv[i], xv);                  \
      }                                                                                           \
    }                                                                                             \
    for (int i = 0; i < R; i++)                                                                   \
      for (int t = 0; t < C; t++) {                                                               \
        double s = vaddvq_f64(acc[i][t]);                                                         \
        for (int kk = k; kk < n; kk++) s += (double)w[i][kk] * x[(size_t)t * ldx + kk];           \
        y[(size_t)t * ldy + i] = (float)s;                                                        \
      }                                                                                           \
  } while (0)

static void f32_tile(const float *const *w, int R, const float *x, size_t ldx, int C, int n, float *y, size_t ldy) {
  GN_TILE(R, C, F32_TILE, w, x, ldx, n, y, ldy);
}

#else
/* Scalar: float64 sums, as the reference. */
static void f32_tile(const float *const *w, int R, const float *x, size_t ldx, int C, int n, float *y, size_t ldy) {
  for (int i = 0; i < R; i++)
    for (int t = 0; t < C; t++) {
      const float *xt = x + (size_t)t * ldx;
      double acc = 0;
      for (int k = 0; k < n; k++) acc += (double)w[i][k] * xt[k];
      y[(size_t)t * ldy + i] = (float)acc;
    }
}
#endif

/* Widen n f16 / bf16 values to float32. */
static void f16_to_f32(const uint8_t *src, int n, float *dst) {
  int k = 0;
#if GN_X86_AVX512
  for (; k + 16 <= n; k += 16) _mm512_storeu_ps(dst + k, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + 2 * k))));
#elif GN_X86_AVX2
  for (; k + 8 <= n; k += 8) _mm256_storeu_ps(dst + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * k))));
#elif GN_ARM_NEON
  for (; k + 4 <= n; k += 4) vst1q_f32(dst + k, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(src + 2 * k)))));
#endif
  for (; k < n; k++) dst[k] = gn_f16(gn_rd16(src + 2 * k));
}

static void bf16_to_f32(const uint8_t *src, int n, float *dst) {
  int k = 0;
#if GN_X86_AVX512
  for (; k + 16 <= n; k += 16) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + 2 * k)));
    _mm512_storeu_ps(dst + k, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
  }
#elif GN_X86_AVX2
  for (; k + 8 <= n; k += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + 2 * k)));
    _mm256_storeu_ps(dst + k, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
  }
#elif GN_ARM_NEON
  for (; k + 4 <= n; k += 4) vst1q_f32(dst + k, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(src + 2 * k)), 16)));
#endif
  for (; k < n; k++) dst[k] = gn_bf16(gn_rd16(src + 2 * k));
}

/* Rows [r0, r1) of an f32 / f16 / bf16 matrix, all tokens, groups of GN_ROW_GROUP rows. */
static void float_exact(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  float *buf = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  const size_t stride = ((size_t)j->n_in + 15) & ~(size_t)15;
  const int group = gn_row_group(j->T, GN_ROW_GROUP);
  for (int rg = r0; rg < r1; rg += group) {
    const int R = GN_MIN(group, r1 - rg);
    const float *rows[GN_ROW_GROUP];
    gn_prefetch_rows(j, rg + R, GN_MIN(group, r1 - rg - R));
    for (int i = 0; i < R; i++) {
      const uint8_t *src = j->w + (size_t)(rg + i) * j->row_bytes;
      float *dst = buf + (size_t)i * stride;
      if (j->type == GN_F32) {
        /* Read in place when aligned (GGUF always is); a float at an odd offset is copied once. */
        if (((uintptr_t)src & 3) == 0) rows[i] = (const float *)src;
        else rows[i] = memcpy(dst, src, (size_t)j->n_in * 4);
        continue;
      }
      if (j->type == GN_F16) f16_to_f32(src, j->n_in, dst);
      else bf16_to_f32(src, j->n_in, dst);
      rows[i] = dst;
    }
    for (int t0 = 0; t0 < j->T; t0 += 4) {
      const int C = GN_MIN(4, j->T - t0);
      f32_tile(rows, R, j->x + (size_t)t0 * j->n_in, (size_t)j->n_in, C, j->n_in, j->y + (size_t)t0 * j->n_out + rg, (size_t)j->n_out);
    }
  }
}
