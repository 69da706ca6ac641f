/*
 * Float rows (src/quant/float.ts: f32, f16, bf16) and the float32 dot micro-kernel every exact-mode
 * kernel ends in. Exact mode: f32 rows are read in place; f16/bf16 rows are widened into scratch once per
 * row group and then serve every token. Fast mode (f16, bf16; the end of this file): rows read in place,
 * widened in registers, float32 sums.
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

/*
 * Fast mode for f16 / bf16 rows: float32 sums, each row read where it lies (no widening pass into
 * scratch) and widened in registers — bf16 is the top half of an f32 (a shift), f16 goes through F16C's
 * vcvtph2ps or NEON's vcvt_f32_f16 — fused into multiply-adds against the float32 activations.
 * Each output keeps two accumulators of one vector width, for the two halves of every FLOAT_STEP inputs
 * (two independent chains of multiply-adds per output, so one row streams at full speed), added once at
 * the end in one fixed order: an output's value does not depend on the tile (R rows × C tokens), on T or
 * on the thread. Float32 sums of n / (2·lanes) products per lane: the reference within 1e-5 of Σ|w·x|.
 *
 * FLOAT_FAST_TILE(R, C, WIDEN, rows, x, n, y, ldy): R rows × C tokens, WIDEN the level's widening of
 * f16 or bf16 values. Tiles of up to FLOAT_MAX_R rows × FLOAT_MAX_C tokens: 2·R·C accumulators, R
 * widened rows and one activation vector fit the register file (AVX-512, NEON: 32; AVX2: 16). Measured
 * with bf16_dot_fast, T = 128, 4096×512, one thread, GFLOP/s per CPU-second: 4×3 tiles 133–207, 3×4
 * 129–180, 2×4 112–147, 4×4 (spills) 130–131.
 */
#define FLOAT_PREFETCH GN_DIRECT_PREFETCH
#define FLOAT_MAX_C 3

#if GN_X86_AVX512
#define FLOAT_MAX_R 4
/* 16 values at p as float32; lanes outside mask m read nothing and are 0. */
GN_INLINE __m512 f16x16(const uint8_t *p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
GN_INLINE __m512 bf16x16(const uint8_t *p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
/* 16 inputs from k (lanes outside mask m add 0·0) into accumulators acc. The two accumulators of an output
 * are separate arrays indexed by constants only: GCC keeps such arrays in registers (acc[i][t][h] with h a
 * loop variable stayed on the stack: 16 instead of 51 GB/s, one thread, 4096×64 bf16 in L2). */
#define FLOAT_HALF512(R, C, WIDEN, rows, x, n, k, m, acc)                                               \
  do {                                                                                                \
    __m512 wv[R];                                                                                     \
    for (int i = 0; i < R; i++) wv[i] = WIDEN(rows[i] + 2 * (size_t)(k), m);                          \
    for (int t = 0; t < C; t++) {                                                                     \
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)t * n + (k));                            \
      for (int i = 0; i < R; i++) acc[i][t] = _mm512_fmadd_ps(wv[i], xv, acc[i][t]);                  \
    }                                                                                                 \
  } while (0)
#define FLOAT_FAST_TILE(R, C, WIDEN, rows, x, n, y, ldy)                                                \
  do {                                                                                                \
    __m512 a0[R][C], a1[R][C];                                                                        \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) a0[i][t] = a1[i][t] = _mm512_setzero_ps();                          \
    int k = 0;                                                                                        \
    for (; k + 32 <= n; k += 32) {                                                                    \
      for (int i = 0; i < R; i++) _mm_prefetch((const char *)rows[i] + 2 * (size_t)k + FLOAT_PREFETCH, _MM_HINT_T0); \
      FLOAT_HALF512(R, C, WIDEN, rows, x, n, k, (__mmask16)0xffff, a0);                               \
      FLOAT_HALF512(R, C, WIDEN, rows, x, n, k + 16, (__mmask16)0xffff, a1);                          \
    }                                                                                                 \
    if (k < n) {                                                                                      \
      const int rem = n - k;                                                                          \
      FLOAT_HALF512(R, C, WIDEN, rows, x, n, k, rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1), a0); \
      if (rem > 16) FLOAT_HALF512(R, C, WIDEN, rows, x, n, k + 16, (__mmask16)((1u << (rem - 16)) - 1), a1); \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum512(_mm512_add_ps(a0[i][t], a1[i][t])); \
  } while (0)
#define FLOAT_WIDEN_F16 f16x16
#define FLOAT_WIDEN_BF16 bf16x16

/*
 * bf16 rows on CPUs with AVX512_BF16 (the avx512_bf16 level): the activations are rounded to bf16 once
 * per call (core.c, round to nearest even) and vdpbf16ps multiplies 32 pairs and adds them into 16
 * float32 lanes per instruction, with no widening. This is llama.cpp's choice for BF16 weights:
 * ggml-cpu.c's type_traits_cpu[GGML_TYPE_BF16] has vec_dot_type GGML_TYPE_BF16 (activations converted
 * by ggml_cpu_fp32_to_bf16) and vec.cpp's ggml_vec_dot_bf16 runs _mm512_dpbf16_ps under __AVX512BF16__.
 * The instruction flushes denormal inputs and outputs to zero (values below 1.2e-38: nothing a sum of
 * weights × activations notices). Two accumulators per output, as above, for the two halves of every 64.
 */
/* 32 inputs from k (lanes outside mask m add 0·0) into accumulators acc. */
#define BF16_DOT_HALF(R, C, rows, xb, n, k, m, acc)                                                     \
  do {                                                                                                \
    __m512bh wv[R];                                                                                   \
    for (int i = 0; i < R; i++) wv[i] = (__m512bh)_mm512_maskz_loadu_epi16(m, rows[i] + 2 * (size_t)(k)); \
    for (int t = 0; t < C; t++) {                                                                     \
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, xb + (size_t)t * n + (k));            \
      for (int i = 0; i < R; i++) acc[i][t] = _mm512_dpbf16_ps(acc[i][t], wv[i], xv);                 \
    }                                                                                                 \
  } while (0)
#define BF16_DOT_TILE(R, C, rows, xb, n, y, ldy)                                                       \
  do {                                                                                                \
    __m512 a0[R][C], a1[R][C];                                                                        \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) a0[i][t] = a1[i][t] = _mm512_setzero_ps();                          \
    int k = 0;                                                                                        \
    for (; k + 64 <= n; k += 64) {                                                                    \
      for (int i = 0; i < R; i++) {                                                                   \
        _mm_prefetch((const char *)rows[i] + 2 * (size_t)k + FLOAT_PREFETCH, _MM_HINT_T0);            \
        _mm_prefetch((const char *)rows[i] + 2 * (size_t)k + FLOAT_PREFETCH + 64, _MM_HINT_T0);       \
      }                                                                                               \
      BF16_DOT_HALF(R, C, rows, xb, n, k, ~(__mmask32)0, a0);                                         \
      BF16_DOT_HALF(R, C, rows, xb, n, k + 32, ~(__mmask32)0, a1);                                    \
    }                                                                                                 \
    if (k < n) {                                                                                      \
      const int rem = n - k;                                                                          \
      BF16_DOT_HALF(R, C, rows, xb, n, k, rem >= 32 ? ~(__mmask32)0 : (__mmask32)((1u << rem) - 1), a0); \
      if (rem > 32) BF16_DOT_HALF(R, C, rows, xb, n, k + 32, (__mmask32)((1u << (rem - 32)) - 1), a1); \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum512(_mm512_add_ps(a0[i][t], a1[i][t])); \
  } while (0)

__attribute__((target("avx512bf16"))) static void bf16_dot_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  const int n = j->n_in, group = j->T <= 2 ? gn_direct_pair(n) : FLOAT_MAX_R;
  for (int rg = r0; rg < r1; rg += group) {
    const int R = GN_MIN(group, r1 - rg);
    const uint8_t *rows[GN_ROW_GROUP];
    for (int i = 0; i < R; i++) rows[i] = j->w + (size_t)(rg + i) * j->row_bytes;
    for (int t0 = 0; t0 < j->T; t0 += FLOAT_MAX_C) {
      const int C = GN_MIN(FLOAT_MAX_C, j->T - t0);
      const uint16_t *xb = j->xb + (size_t)t0 * n;
      float *y = j->y + (size_t)t0 * j->n_out + rg;
      GN_TILE(R, C, BF16_DOT_TILE, rows, xb, n, y, (size_t)j->n_out);
    }
  }
}

#elif GN_X86_AVX2
#define FLOAT_MAX_R 2 /* 16 ymm registers: 2 rows × 3 tokens × 2 accumulators, 2 rows, 1 activation */
GN_INLINE __m256 f16x8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
GN_INLINE __m256 bf16x8(const uint8_t *p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
GN_INLINE float f16x1(const uint8_t *p) { return _cvtsh_ss(gn_rd16(p)); }
GN_INLINE float bf16x1(const uint8_t *p) { return gn_bf16(gn_rd16(p)); }
/* 8 inputs from k into accumulators acc. */
#define FLOAT_HALF256(R, C, WIDEN, rows, x, n, k, acc)                                                  \
  do {                                                                                                \
    __m256 wv[R];                                                                                     \
    for (int i = 0; i < R; i++) wv[i] = WIDEN(rows[i] + 2 * (size_t)(k));                             \
    for (int t = 0; t < C; t++) {                                                                     \
      const __m256 xv = _mm256_loadu_ps(x + (size_t)t * n + (k));                                     \
      for (int i = 0; i < R; i++) acc[i][t] = _mm256_fmadd_ps(wv[i], xv, acc[i][t]);                  \
    }                                                                                                 \
  } while (0)
/* 16 inputs per step (halves of 8); then 8 more into the first accumulator, then the last < 8 one by one
 * after the horizontal sum. */
#define FLOAT_FAST_TILE(R, C, WIDEN, rows, x, n, y, ldy)                                                \
  do {                                                                                                \
    __m256 a0[R][C], a1[R][C];                                                                        \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) a0[i][t] = a1[i][t] = _mm256_setzero_ps();                          \
    int k = 0;                                                                                        \
    for (; k + 16 <= n; k += 16) {                                                                    \
      if ((k & 31) == 0)                                                                              \
        for (int i = 0; i < R; i++) __builtin_prefetch(rows[i] + 2 * (size_t)k + FLOAT_PREFETCH);     \
      FLOAT_HALF256(R, C, WIDEN##x8, rows, x, n, k, a0);                                              \
      FLOAT_HALF256(R, C, WIDEN##x8, rows, x, n, k + 8, a1);                                          \
    }                                                                                                 \
    if (k + 8 <= n) {                                                                                 \
      FLOAT_HALF256(R, C, WIDEN##x8, rows, x, n, k, a0);                                              \
      k += 8;                                                                                         \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) {                                                                   \
        float s = gn_hsum256(_mm256_add_ps(a0[i][t], a1[i][t]));                                      \
        for (int kk = k; kk < n; kk++) s += WIDEN##x1(rows[i] + 2 * (size_t)kk) * x[(size_t)t * n + kk]; \
        y[(size_t)t * ldy + i] = s;                                                                   \
      }                                                                                               \
  } while (0)
#define FLOAT_WIDEN_F16 f16
#define FLOAT_WIDEN_BF16 bf16

#elif GN_ARM_NEON
#define FLOAT_MAX_R 4
GN_INLINE float32x4_t f16x4(const uint8_t *p) { return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p))); }
GN_INLINE float32x4_t bf16x4(const uint8_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u8(vld1_u8(p)), 16)); }
GN_INLINE float f16x1(const uint8_t *p) { return gn_f16(gn_rd16(p)); }
GN_INLINE float bf16x1(const uint8_t *p) { return gn_bf16(gn_rd16(p)); }
#define FLOAT_HALF128(R, C, WIDEN, rows, x, n, k, acc)                                                  \
  do {                                                                                                \
    float32x4_t wv[R];                                                                                \
    for (int i = 0; i < R; i++) wv[i] = WIDEN(rows[i] + 2 * (size_t)(k));                             \
    for (int t = 0; t < C; t++) {                                                                     \
      const float32x4_t xv = vld1q_f32(x + (size_t)t * n + (k));                                      \
      for (int i = 0; i < R; i++) acc[i][t] = vfmaq_f32(acc[i][t], wv[i], xv);                        \
    }                                                                                                 \
  } while (0)
/* 8 inputs per step (halves of 4); then 4 more into the first accumulator, the last < 4 one by one. */
#define FLOAT_FAST_TILE(R, C, WIDEN, rows, x, n, y, ldy)                                                \
  do {                                                                                                \
    float32x4_t a0[R][C], a1[R][C];                                                                   \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) a0[i][t] = a1[i][t] = vdupq_n_f32(0);                               \
    int k = 0;                                                                                        \
    for (; k + 8 <= n; k += 8) {                                                                      \
      if ((k & 31) == 0)                                                                              \
        for (int i = 0; i < R; i++) __builtin_prefetch(rows[i] + 2 * (size_t)k + FLOAT_PREFETCH);     \
      FLOAT_HALF128(R, C, WIDEN##x4, rows, x, n, k, a0);                                              \
      FLOAT_HALF128(R, C, WIDEN##x4, rows, x, n, k + 4, a1);                                          \
    }                                                                                                 \
    if (k + 4 <= n) {                                                                                 \
      FLOAT_HALF128(R, C, WIDEN##x4, rows, x, n, k, a0);                                              \
      k += 4;                                                                                         \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) {                                                                   \
        float s = gn_hsumq(vaddq_f32(a0[i][t], a1[i][t]));                                            \
        for (int kk = k; kk < n; kk++) s += WIDEN##x1(rows[i] + 2 * (size_t)kk) * x[(size_t)t * n + kk]; \
        y[(size_t)t * ldy + i] = s;                                                                   \
      }                                                                                               \
  } while (0)
#define FLOAT_WIDEN_F16 f16
#define FLOAT_WIDEN_BF16 bf16

#else
#define FLOAT_MAX_R 4
GN_INLINE float f16x1(const uint8_t *p) { return gn_f16(gn_rd16(p)); }
GN_INLINE float bf16x1(const uint8_t *p) { return gn_bf16(gn_rd16(p)); }
/* Scalar: eight float32 lanes per output (input k into lane k mod 8), summed pairwise at the end. */
#define FLOAT_FAST_TILE(R, C, WIDEN, rows, x, n, y, ldy)                                                \
  do {                                                                                                \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) {                                                                   \
        const float *xt = x + (size_t)t * n;                                                          \
        float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                        \
        for (int k = 0; k < n; k++) l[k & 7] += WIDEN##x1(rows[i] + 2 * (size_t)k) * xt[k];           \
        y[(size_t)t * ldy + i] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));   \
      }                                                                                               \
  } while (0)
#define FLOAT_WIDEN_F16 f16
#define FLOAT_WIDEN_BF16 bf16
#endif

/* Rows [r0, r1), all tokens: one row per group for one or two tokens (two for rows past 16384 inputs, as
 * the direct kernels), FLOAT_MAX_R with more; tiles of up to FLOAT_MAX_C tokens. */
#define FLOAT_FAST_FN(name, WIDEN)                                                                     \
  static void name(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {                          \
    (void)scratch;                                                                                    \
    const int n = j->n_in, group = j->T <= 2 ? GN_MIN(gn_direct_pair(n), FLOAT_MAX_R) : FLOAT_MAX_R;  \
    for (int rg = r0; rg < r1; rg += group) {                                                         \
      const int R = GN_MIN(group, r1 - rg);                                                           \
      const uint8_t *rows[GN_ROW_GROUP];                                                              \
      for (int i = 0; i < R; i++) rows[i] = j->w + (size_t)(rg + i) * j->row_bytes;                  \
      for (int t0 = 0; t0 < j->T; t0 += FLOAT_MAX_C) {                                                \
        const int C = GN_MIN(FLOAT_MAX_C, j->T - t0);                                                 \
        const float *x = j->x + (size_t)t0 * n;                                                       \
        float *y = j->y + (size_t)t0 * j->n_out + rg;                                                 \
        GN_TILE(R, C, FLOAT_FAST_TILE, WIDEN, rows, x, n, y, (size_t)j->n_out);                       \
      }                                                                                               \
    }                                                                                                 \
  }
FLOAT_FAST_FN(f16_fast, FLOAT_WIDEN_F16)
FLOAT_FAST_FN(bf16_fast, FLOAT_WIDEN_BF16)
