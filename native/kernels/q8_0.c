/*
 * Q8_0 (src/quant/q8_0.ts): 32 values in 34 bytes, d f16 @0, qs int8[32] @2; value = d·q. Read in place,
 * no unpacking: the int8 codes go straight into the byte dot products.
 *
 * Fast mode: per block the exact integer Σ q·xq (in lanes of 4 products), scaled by d·dx in float and
 * accumulated per lane in block order. Exact mode: rows expanded to d·q (exact in float32), then the
 * float64 micro-kernel of float.c.
 * Every output has its own accumulator, so a row × token result is the same in any tile (R rows × C
 * tokens) and on any thread.
 */

/* Bytes ahead of the current block to prefetch in each row: several rows stream at once, which the
 * hardware prefetchers alone follow too late (measured: ~11 → ~19 GB/s per core at T = 1). */
#define Q8_PREFETCH 1024

#if GN_X86_AVX512
/*
 * Two blocks per 512-bit step. vpdpbusd multiplies unsigned by signed bytes: the activations are made
 * unsigned (xq + 128, an xor) and the accumulator starts at −128·Σq for the row's bytes, computed once
 * per row and step, so Σ (xq + 128)·q − 128·Σq = Σ xq·q exactly, whatever q (−128 included).
 */
#define Q8_FAST_TILE(R, C, rows, nb, xq, xd, n, y, ldy)                                               \
  do {                                                                                                \
    const __m512i k80 = _mm512_set1_epi8((char)0x80);                                                 \
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);              \
    __m512 acc[R][C];                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm512_setzero_ps();                                    \
    for (int b = 0; b < nb; b += 2) {                                                                 \
      const int two = b + 1 < nb;                                                                     \
      __m512i W[R], init[R];                                                                          \
      __m512 dw[R];                                                                                   \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + 34 * (size_t)b;                                                  \
        _mm_prefetch((const char *)p + Q8_PREFETCH, _MM_HINT_T0);                                     \
        const __m256i lo = _mm256_loadu_si256((const __m256i *)(p + 2));                              \
        const __m256i hi = two ? _mm256_loadu_si256((const __m256i *)(p + 36)) : _mm256_setzero_si256(); \
        W[i] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);                                 \
        init[i] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), k80, W[i])); \
        const uint32_t dd = (uint32_t)gn_rd16(p) | (two ? (uint32_t)gn_rd16(p + 34) << 16 : 0);       \
        dw[i] = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd)))); \
      }                                                                                               \
      const __mmask64 mb = two ? ~(__mmask64)0 : (__mmask64)0xffffffffu;                              \
      for (int t = 0; t < C; t++) {                                                                   \
        const __m512i X = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mb, xq + (size_t)t * n + 32 * (size_t)b), k80); \
        const __m512 dx = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_maskz_loadu_ps(two ? 3 : 1, xd + (size_t)t * nb + b))); \
        for (int i = 0; i < R; i++) {                                                                 \
          const __m512i d = _mm512_dpbusd_epi32(init[i], X, W[i]);                                    \
          acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(dw[i], dx), acc[i][t]);    \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum512(acc[i][t]);                     \
  } while (0)


#elif GN_X86_AVX2
/* One block per 256-bit step: |q| (unsigned) · (xq with q's sign), exact in int16 pairs (128·127·2). */
#define Q8_FAST_TILE(R, C, rows, nb, xq, xd, n, y, ldy)                                               \
  do {                                                                                                \
    __m256 acc[R][C];                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm256_setzero_ps();                                    \
    for (int b = 0; b < nb; b++) {                                                                    \
      __m256i W[R], A[R];                                                                             \
      float dw[R];                                                                                    \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + 34 * (size_t)b;                                                  \
        if ((b & 1) == 0) __builtin_prefetch(p + Q8_PREFETCH);                                       \
        W[i] = _mm256_loadu_si256((const __m256i *)(p + 2));                                          \
        A[i] = _mm256_abs_epi8(W[i]);                                                                 \
        dw[i] = _cvtsh_ss(gn_rd16(p));                                                                \
      }                                                                                               \
      for (int t = 0; t < C; t++) {                                                                   \
        const __m256i X = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * n + 32 * (size_t)b)); \
        const float dx = xd[(size_t)t * nb + b];                                                      \
        for (int i = 0; i < R; i++) {                                                                 \
          const __m256i d = gn_dot_u8s8(A[i], _mm256_sign_epi8(X, W[i]));                             \
          acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(dw[i] * dx), acc[i][t]);  \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum256(acc[i][t]);                     \
  } while (0)


#elif GN_ARM_NEON
/* One block per step, two 16-byte halves: signed × signed byte dots (vdotq, or widening multiplies). */
#if GN_ARM_DOT
#define Q8_DOT4(acc, a, b) vdotq_s32(acc, a, b)
#else
#define Q8_DOT4(acc, a, b) gn_dot4_s8(acc, a, b)
#endif
#define Q8_FAST_TILE(R, C, rows, nb, xq, xd, n, y, ldy)                                               \
  do {                                                                                                \
    float32x4_t acc[R][C];                                                                            \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = vdupq_n_f32(0);                                         \
    for (int b = 0; b < nb; b++) {                                                                    \
      int8x16_t w0[R], w1[R];                                                                         \
      float dw[R];                                                                                    \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + 34 * (size_t)b;                                                  \
        if ((b & 1) == 0) __builtin_prefetch(p + Q8_PREFETCH);                                       \
        w0[i] = vld1q_s8((const int8_t *)p + 2);                                                      \
        w1[i] = vld1q_s8((const int8_t *)p + 18);                                                     \
        dw[i] = gn_f16(gn_rd16(p));                                                                   \
      }                                                                                               \
      for (int t = 0; t < C; t++) {                                                                   \
        const int8_t *xt = xq + (size_t)t * n + 32 * (size_t)b;                                       \
        const int8x16_t x0 = vld1q_s8(xt), x1 = vld1q_s8(xt + 16);                                    \
        const float dx = xd[(size_t)t * nb + b];                                                      \
        for (int i = 0; i < R; i++) {                                                                 \
          const int32x4_t d = Q8_DOT4(Q8_DOT4(vdupq_n_s32(0), w0[i], x0), w1[i], x1);                 \
          acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(d), dw[i] * dx);                           \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsumq(acc[i][t]);                       \
  } while (0)


#else
/* Scalar: exact integer block sums, float64 accumulation. */
#define Q8_FAST_TILE(R, C, rows, nb, xq, xd, n, y, ldy)                                               \
  do {                                                                                                \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) {                                                                   \
        const int8_t *xt = xq + (size_t)t * n;                                                        \
        double acc = 0;                                                                               \
        for (int b = 0; b < nb; b++) {                                                                \
          const uint8_t *p = rows[i] + 34 * (size_t)b;                                                \
          int32_t is = 0;                                                                             \
          for (int k = 0; k < 32; k++) is += (int8_t)p[2 + k] * xt[32 * b + k];                       \
          acc += (double)(gn_f16(gn_rd16(p)) * xd[(size_t)t * nb + b]) * is;                          \
        }                                                                                             \
        y[(size_t)t * ldy + i] = (float)acc;                                                          \
      }                                                                                               \
  } while (0)

#endif

#if GN_X86_AVX2 && !GN_X86_AVX512
#define Q8_MAX_R 2 /* 16 ymm registers */
#else
#define Q8_MAX_R GN_ROW_GROUP
#endif

static void q8_0_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  const int n = j->n_in, nb = n / 32, group = gn_row_group(j->T, Q8_MAX_R);
  for (int rg = r0; rg < r1; rg += group) {
    const int R = GN_MIN(group, r1 - rg);
    const uint8_t *rows[GN_ROW_GROUP];
    for (int i = 0; i < R; i++) rows[i] = j->w + (size_t)(rg + i) * j->row_bytes;
    for (int t0 = 0; t0 < j->T; t0 += 4) {
      const int C = GN_MIN(4, j->T - t0);
      float *y = j->y + (size_t)t0 * j->n_out + rg;
      const int8_t *xq = j->xq + (size_t)t0 * n;
      const float *xd = j->xd + (size_t)t0 * nb;
      GN_TILE(R, C, Q8_FAST_TILE, rows, nb, xq, xd, n, y, (size_t)j->n_out);
    }
  }
}

/* d·q, exact in float32. */
static void q8_0_expand(const uint8_t *row, int n, float *out) {
  for (int b = 0; b < n / 32; b++) {
    const uint8_t *p = row + 34 * (size_t)b;
    float *o = out + 32 * (size_t)b;
#if GN_X86_AVX512
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(gn_rd16(p)));
    _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)))), d));
    _mm512_storeu_ps(o + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 18)))), d));
#elif GN_X86_AVX2
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(gn_rd16(p)));
    for (int h = 0; h < 4; h++)
      _mm256_storeu_ps(o + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + 8 * h)))), d));
#else
    const float d = gn_f16(gn_rd16(p));
    for (int k = 0; k < 32; k++) o[k] = d * (float)(int8_t)p[2 + k];
#endif
  }
}

#if GN_X86_AVX512
/*
 * Exact, straight from the int8 codes: d·q widened to float64 in registers (the same values, order and
 * operations as expanding the row to float32 and running float.c's F32_TILE, so the results are the
 * same bytes), without the expanded row's store and reload.
 */
#define Q8_EXACT_TILE(R, C, rows, nb, x, n, y, ldy)                                                   \
  do {                                                                                                \
    __m512d acc[R][C];                                                                                \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm512_setzero_pd();                                    \
    for (int b = 0; b < nb; b++) {                                                                    \
      __m512d d[R];                                                                                   \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + 34 * (size_t)b;                                                  \
        if ((b & 1) == 0) __builtin_prefetch(p + Q8_PREFETCH);                                       \
        d[i] = _mm512_set1_pd((double)_cvtsh_ss(gn_rd16(p)));                                         \
      }                                                                                               \
      for (int h = 0; h < 4; h++) {                                                                   \
        __m512d w[R];                                                                                 \
        for (int i = 0; i < R; i++) {                                                                 \
          const __m128i q8 = _mm_loadl_epi64((const __m128i *)(rows[i] + 34 * (size_t)b + 2 + 8 * h)); \
          w[i] = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm256_cvtepi8_epi32(q8)), d[i]);                   \
        }                                                                                             \
        for (int t = 0; t < C; t++) {                                                                 \
          const __m512d xv = _mm512_cvtps_pd(_mm256_loadu_ps(x + (size_t)t * n + 32 * (size_t)b + 8 * h)); \
          for (int i = 0; i < R; i++) acc[i][t] = _mm512_fmadd_pd(w[i], xv, acc[i][t]);              \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = (float)_mm512_reduce_add_pd(acc[i][t]);     \
  } while (0)

static void q8_0_exact(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  const int n = j->n_in, nb = n / 32, group = gn_row_group(j->T, GN_ROW_GROUP);
  for (int rg = r0; rg < r1; rg += group) {
    const int R = GN_MIN(group, r1 - rg);
    const uint8_t *rows[GN_ROW_GROUP];
    for (int i = 0; i < R; i++) rows[i] = j->w + (size_t)(rg + i) * j->row_bytes;
    for (int t0 = 0; t0 < j->T; t0 += 4) {
      const int C = GN_MIN(4, j->T - t0);
      const float *x = j->x + (size_t)t0 * n;
      float *y = j->y + (size_t)t0 * j->n_out + rg;
      GN_TILE(R, C, Q8_EXACT_TILE, rows, nb, x, n, y, (size_t)j->n_out);
    }
  }
}

#else
/* Exact: each row of the group expanded to float32 once, then the float64 micro-kernel for all tokens. */
static void q8_0_exact(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  const int n = j->n_in;
  const size_t stride = ((size_t)n + 15) & ~(size_t)15;
  float *buf = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  const int group = gn_row_group(j->T, GN_ROW_GROUP);
  for (int rg = r0; rg < r1; rg += group) {
    const int R = GN_MIN(group, r1 - rg);
    const float *rows[GN_ROW_GROUP];
    gn_prefetch_rows(j, rg + R, GN_MIN(group, r1 - rg - R));
    for (int i = 0; i < R; i++) {
      q8_0_expand(j->w + (size_t)(rg + i) * j->row_bytes, n, buf + stride * (size_t)i);
      rows[i] = buf + stride * (size_t)i;
    }
    for (int t0 = 0; t0 < j->T; t0 += 4) {
      const int C = GN_MIN(4, j->T - t0);
      f32_tile(rows, R, j->x + (size_t)t0 * n, (size_t)n, C, n, j->y + (size_t)t0 * j->n_out + rg, (size_t)j->n_out);
    }
  }
}
#endif
