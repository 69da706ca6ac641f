/*
 * One kernel for every block type with a canonical form (internal.h: value = s·u − m, u a small unsigned
 * code, s and m per 16 values): each type only unpacks its rows (q4_0.c … q6_k.c), the arithmetic is here.
 *
 * Fast mode: Σ_k w·x ≈ Σ_g s_g·dx·(Σ_{k∈g} u·xq) − Σ_g m_g·(dx·Σ_{k∈g} xq). The u·xq sums are exact
 * integers (per 4 values in the SIMD lanes); the scale s·dx is applied per lane in float, the offsets
 * are one float dot over the 16-value groups. Exact mode expands s·u − m to float32 (the dequantiser's
 * values) and uses the float micro-kernel.
 */

/* Offsets first: mins[i·C + t] = Σ_g m_i[g]·xs16_t[g] over ng groups. */
static void canon_offsets(const float *const *m, int R, const float *xs16, int ng, int C, float *mins) {
  for (int i = 0; i < R; i++)
    for (int t = 0; t < C; t++) {
      const float *xs = xs16 + (size_t)t * ng;
      int g = 0;
#if GN_X86_AVX512
      __m512 a = _mm512_setzero_ps();
      for (; g + 16 <= ng; g += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(m[i] + g), _mm512_loadu_ps(xs + g), a);
      if (g < ng) {
        const __mmask16 mk = (__mmask16)((1u << (ng - g)) - 1);
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, m[i] + g), _mm512_maskz_loadu_ps(mk, xs + g), a);
        g = ng;
      }
      float s = gn_hsum512(a);
#elif GN_X86_AVX2
      __m256 a = _mm256_setzero_ps();
      for (; g + 8 <= ng; g += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(m[i] + g), _mm256_loadu_ps(xs + g), a);
      float s = gn_hsum256(a);
      for (; g < ng; g++) s = fmaf(m[i][g], xs[g], s);
#elif GN_ARM_NEON
      float32x4_t a = vdupq_n_f32(0);
      for (; g + 4 <= ng; g += 4) a = vfmaq_f32(a, vld1q_f32(m[i] + g), vld1q_f32(xs + g));
      float s = gn_hsumq(a);
      for (; g < ng; g++) s = fmaf(m[i][g], xs[g], s);
#else
      double s = 0;
      for (; g < ng; g++) s += (double)m[i][g] * xs[g];
#endif
      mins[i * 4 + t] = (float)s;
    }
}

#if GN_X86_AVX512
/* 64 values per step: 16 int32 lanes of 4 products each; lanes 4g…4g+3 share s_g, lanes 8b…8b+7 dx_b. */
#define CANON_FAST_TILE(R, C, u, s, n, xq, xd, mins, y, ldy)                                          \
  do {                                                                                                \
    const __m512i is = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);               \
    const __m512i id = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);               \
    const int nb = n / 32;                                                                            \
    __m512 acc[R][C];                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm512_setzero_ps();                                    \
    for (int k = 0; k < n; k += 64) {                                                                 \
      const int full = k + 64 <= n;                                                                   \
      const __mmask64 mb = full ? ~(__mmask64)0 : (__mmask64)0xffffffffu;                             \
      const __mmask8 ms = full ? 0x0f : 0x03;                                                         \
      const __mmask8 md = full ? 0x03 : 0x01;                                                         \
      __m512i U[R];                                                                                   \
      __m512 se[R];                                                                                   \
      for (int i = 0; i < R; i++) {                                                                   \
        U[i] = _mm512_maskz_loadu_epi8(mb, u[i] + k);                                                 \
        se[i] = _mm512_permutexvar_ps(is, _mm512_castps128_ps512(_mm_maskz_loadu_ps(ms, s[i] + k / 16))); \
      }                                                                                               \
      for (int t = 0; t < C; t++) {                                                                   \
        const __m512i X = _mm512_maskz_loadu_epi8(mb, xq + (size_t)t * n + k);                        \
        const __m512 dx = _mm512_permutexvar_ps(id, _mm512_castps128_ps512(_mm_maskz_loadu_ps(md, xd + (size_t)t * nb + k / 32))); \
        for (int i = 0; i < R; i++) {                                                                 \
          const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), U[i], X);                     \
          acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(se[i], dx), acc[i][t]);    \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum512(acc[i][t]) - mins[i * 4 + t];  \
  } while (0)

#elif GN_X86_AVX2
/* 32 values per step: 8 int32 lanes; lanes 0-3 share s_2b, 4-7 s_2b+1; all share dx_b. */
#define CANON_FAST_TILE(R, C, u, s, n, xq, xd, mins, y, ldy)                                          \
  do {                                                                                                \
    const __m256i is = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);                                      \
    const int nb = n / 32;                                                                            \
    __m256 acc[R][C];                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm256_setzero_ps();                                    \
    for (int k = 0; k < n; k += 32) {                                                                 \
      __m256i U[R];                                                                                   \
      __m256 se[R];                                                                                   \
      for (int i = 0; i < R; i++) {                                                                   \
        U[i] = _mm256_loadu_si256((const __m256i *)(u[i] + k));                                       \
        se[i] = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_castpd_ps(_mm_load_sd((const double *)(s[i] + k / 16)))), is); \
      }                                                                                               \
      for (int t = 0; t < C; t++) {                                                                   \
        const __m256i X = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * n + k));              \
        const __m256 dx = _mm256_broadcast_ss(xd + (size_t)t * nb + k / 32);                          \
        for (int i = 0; i < R; i++)                                                                   \
          acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(gn_dot_u8s8(U[i], X)), _mm256_mul_ps(se[i], dx), acc[i][t]); \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum256(acc[i][t]) - mins[i * 4 + t];  \
  } while (0)

#elif GN_ARM_NEON
#if GN_ARM_DOT
#define CANON_DOT4(acc, a, b) vdotq_s32(acc, a, b)
#else
/* Without dotprod: widening multiplies, pairwise-added into 4 int32 lanes of 4 products each. */
GN_INLINE int32x4_t gn_dot4_s8(int32x4_t acc, int8x16_t a, int8x16_t b) {
  const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t hi = vmull_high_s8(a, b);
  return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
}
#define CANON_DOT4(acc, a, b) gn_dot4_s8(acc, a, b)
#endif
/* 16 values per step (u ≤ 127 so codes are valid signed bytes): 4 lanes of 4 products share s_g. */
#define CANON_FAST_TILE(R, C, u, s, n, xq, xd, mins, y, ldy)                                          \
  do {                                                                                                \
    const int nb = n / 32;                                                                            \
    float32x4_t acc[R][C];                                                                            \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = vdupq_n_f32(0);                                         \
    for (int k = 0; k < n; k += 16) {                                                                 \
      int8x16_t U[R];                                                                                 \
      float32x4_t se[R];                                                                              \
      for (int i = 0; i < R; i++) {                                                                   \
        U[i] = vreinterpretq_s8_u8(vld1q_u8(u[i] + k));                                               \
        se[i] = vdupq_n_f32(s[i][k / 16]);                                                            \
      }                                                                                               \
      for (int t = 0; t < C; t++) {                                                                   \
        const int8x16_t X = vld1q_s8(xq + (size_t)t * n + k);                                         \
        const float32x4_t dx = vdupq_n_f32(xd[(size_t)t * nb + k / 32]);                              \
        for (int i = 0; i < R; i++)                                                                   \
          acc[i][t] = vfmaq_f32(acc[i][t], vcvtq_f32_s32(CANON_DOT4(vdupq_n_s32(0), U[i], X)), vmulq_f32(se[i], dx)); \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsumq(acc[i][t]) - mins[i * 4 + t];    \
  } while (0)


/*
 * The direct fast kernels' tile on NEON (q4_k.c, q5_k.c, q6_k.c): per block the type's HEADER gives its
 * 16 scales s and offsets m (value = s·u − m per 16 values, the canonical form) and CODES the codes of
 * values 32k … 32k + 31 as two registers; the sums are CANON_FAST_TILE's, without scratch rows.
 */
#define NEON_DIRECT_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, BB, HEADER, CODES)                      \
  do {                                                                                                \
    const int nb = n / 256;                                                                           \
    float32x4_t acc[R][C];                                                                            \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = vdupq_n_f32(0);                                         \
    for (int b = 0; b < nb; b++) {                                                                    \
      float cs[R][C][16];                                                                             \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + (BB) * (size_t)b;                                                \
        gn_prefetch_block(p, (BB));                                                                   \
        float s16[16], m16[16];                                                                       \
        HEADER(p, s16, m16);                                                                          \
        for (int t = 0; t < C; t++) {                                                                 \
          const float *xs = xs16 + (size_t)t * (n / 16) + 16 * (size_t)b, *xdt = xd + (size_t)t * (n / 32) + 8 * (size_t)b; \
          for (int g = 0; g < 16; g += 4) acc[i][t] = vfmsq_f32(acc[i][t], vld1q_f32(m16 + g), vld1q_f32(xs + g)); \
          for (int g = 0; g < 16; g++) cs[i][t][g] = s16[g] * xdt[g / 2];                             \
        }                                                                                             \
      }                                                                                               \
      for (int k = 0; k < 8; k++) {                                                                   \
        int8x16_t U0[R], U1[R];                                                                       \
        for (int i = 0; i < R; i++) CODES(rows[i] + (BB) * (size_t)b, k, U0[i], U1[i]);               \
        for (int t = 0; t < C; t++) {                                                                 \
          const int8_t *xk = xq + (size_t)t * n + 256 * (size_t)b + 32 * k;                           \
          const int8x16_t X0 = vld1q_s8(xk), X1 = vld1q_s8(xk + 16);                                  \
          for (int i = 0; i < R; i++) {                                                               \
            acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(CANON_DOT4(vdupq_n_s32(0), U0[i], X0)), cs[i][t][2 * k]); \
            acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(CANON_DOT4(vdupq_n_s32(0), U1[i], X1)), cs[i][t][2 * k + 1]); \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsumq(acc[i][t]);                       \
  } while (0)

/* Q4_K and Q5_K block headers (d @0, dmin @2, scales @4) as 16 scales and offsets. */
GN_INLINE void neon_k4_header(const uint8_t *p, float *s16, float *m16) {
  const float d = gn_f16(gn_rd16(p)), dmin = gn_f16(gn_rd16(p + 2));
  uint64_t sc, mn;
  gn_scales_k4(p + 4, &sc, &mn);
  for (int t = 0; t < 8; t++) {
    s16[2 * t] = s16[2 * t + 1] = d * (float)((sc >> (8 * t)) & 0xff);
    m16[2 * t] = m16[2 * t + 1] = dmin * (float)((mn >> (8 * t)) & 0xff);
  }
}

#else
/* Scalar: exact integer sums per 16 values, float64 accumulation. */
#define CANON_FAST_TILE(R, C, u, s, n, xq, xd, mins, y, ldy)                                          \
  do {                                                                                                \
    const int nb = n / 32;                                                                            \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) {                                                                   \
        const int8_t *x8 = xq + (size_t)t * n;                                                        \
        double acc = 0;                                                                               \
        for (int g = 0; g < n / 16; g++) {                                                            \
          int32_t is = 0;                                                                             \
          for (int k = 16 * g; k < 16 * g + 16; k++) is += (int32_t)u[i][k] * x8[k];                  \
          acc += (double)(s[i][g] * xd[(size_t)t * nb + g / 2]) * is;                                 \
        }                                                                                             \
        y[(size_t)t * ldy + i] = (float)(acc - mins[i * 4 + t]);                                      \
      }                                                                                               \
  } while (0)
#endif

static void canon_fast_tile(const uint8_t *const *u, const float *const *s, const float *const *m, int R, int n,
                            const int8_t *xq, const float *xd, const float *xs16, int C, float *y, size_t ldy) {
  float mins[GN_ROW_GROUP * 4];
  canon_offsets(m, R, xs16, n / 16, C, mins);
#if GN_X86_AVX2 && !GN_X86_AVX512
  for (int i0 = 0; i0 < R; i0 += 2) { /* 16 ymm registers: 2 rows × 4 tokens */
    const int r = GN_MIN(2, R - i0);
    const float *mi = mins + 4 * i0;
    GN_TILE(r, C, CANON_FAST_TILE, (u + i0), (s + i0), n, xq, xd, mi, (y + i0), ldy);
  }
#else
  GN_TILE(R, C, CANON_FAST_TILE, u, s, n, xq, xd, mins, y, ldy);
#endif
}

/* Canonical codes back to float32 values s·u − m (the product, then the difference: no fused rounding). */
static void canon_expand(const uint8_t *u, const float *s, const float *m, int n, float *out) {
  for (int g = 0; g < n / 16; g++) {
    const uint8_t *ug = u + 16 * g;
    float *o = out + 16 * g;
#if GN_X86_AVX512
    const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)ug)));
    _mm512_storeu_ps(o, _mm512_sub_ps(_mm512_mul_ps(v, _mm512_set1_ps(s[g])), _mm512_set1_ps(m[g])));
#elif GN_X86_AVX2
    for (int h = 0; h < 2; h++) {
      const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ug + 8 * h))));
      _mm256_storeu_ps(o + 8 * h, _mm256_sub_ps(_mm256_mul_ps(v, _mm256_set1_ps(s[g])), _mm256_set1_ps(m[g])));
    }
#elif GN_ARM_NEON
    const uint8x16_t b = vld1q_u8(ug);
    const uint16x8_t lo = vmovl_u8(vget_low_u8(b)), hi = vmovl_u8(vget_high_u8(b));
    const uint32x4_t w[4] = {vmovl_u16(vget_low_u16(lo)), vmovl_u16(vget_high_u16(lo)), vmovl_u16(vget_low_u16(hi)), vmovl_u16(vget_high_u16(hi))};
    for (int h = 0; h < 4; h++) vst1q_f32(o + 4 * h, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(w[h]), s[g]), vdupq_n_f32(m[g])));
#else
    for (int k = 0; k < 16; k++) {
      const float p = (float)ug[k] * s[g];
      o[k] = p - m[g];
    }
#endif
  }
}

/* Scratch layout per row of the group: u [n] · s, m [n/16 each] · floats [n] (exact mode). */
static void canon_rows(const gn_rows_job *j, int r0, int r1, uint8_t *scratch, int fast) {
  const int n = j->n_in, ng = n / 16;
  const size_t per = ((size_t)n + 63 + 2 * 4 * (size_t)ng + 63 + 4 * (size_t)n + 63) & ~(size_t)63;
  uint8_t *base = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  uint8_t *u[GN_ROW_GROUP];
  float *s[GN_ROW_GROUP], *m[GN_ROW_GROUP], *f[GN_ROW_GROUP];
  for (int i = 0; i < GN_ROW_GROUP; i++) {
    uint8_t *p = base + per * (size_t)i;
    u[i] = p;
    s[i] = (float *)(p + (((size_t)n + 63) & ~(size_t)63));
    m[i] = s[i] + ng;
    f[i] = (float *)(((uintptr_t)(m[i] + ng) + 63) & ~(uintptr_t)63);
  }
  const int group = gn_row_group(j->T, GN_ROW_GROUP);
  for (int rg = r0; rg < r1; rg += group) {
    const int R = GN_MIN(group, r1 - rg);
    gn_prefetch_rows(j, rg + R, GN_MIN(group, r1 - rg - R));
    for (int i = 0; i < R; i++) {
      j->unpack(j->w + (size_t)(rg + i) * j->row_bytes, n, u[i], s[i], m[i]);
      if (!fast) canon_expand(u[i], s[i], m[i], n, f[i]);
    }
    for (int t0 = 0; t0 < j->T; t0 += 4) {
      const int C = GN_MIN(4, j->T - t0);
      float *y = j->y + (size_t)t0 * j->n_out + rg;
      if (fast) {
        canon_fast_tile((const uint8_t *const *)u, (const float *const *)s, (const float *const *)m, R, n,
                        j->xq + (size_t)t0 * n, j->xd + (size_t)t0 * (n / 32), j->xs16 + (size_t)t0 * ng, C, y, (size_t)j->n_out);
      } else {
        f32_tile((const float *const *)f, R, j->x + (size_t)t0 * n, (size_t)n, C, n, y, (size_t)j->n_out);
      }
    }
  }
}

static void canon_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) { canon_rows(j, r0, r1, scratch, 1); }
static void canon_exact(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) { canon_rows(j, r0, r1, scratch, 0); }
