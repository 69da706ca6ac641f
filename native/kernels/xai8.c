/*
 * The released checkpoint's 8-bit matrices (src/quant/xai8.ts, formats.md §1.6), read in place:
 * q int8 [n_in][n_out] (input-major), bf16 scales [groups][n_out]; W[k][n] = q[k][n]·s[k / (n_in/G)][n].
 *
 * Work is split by output columns between threads; the inputs are walked in order and each column keeps
 * its own sums: per group a partial Σ x·q (exact mode: float64 FMAs per input; fast mode: exact integer
 * sums per 32 inputs, scaled by that block's dx), then y += partial·s per group. Within a thread's
 * columns, input blocks go outside and column slabs inside (see XAI8_EXACT_BODY).
 */

/*
 * Exact, all levels: float64 products (int8 · float32 is exact in float64) and sums, the reference's
 * numerics up to summation order. Columns go W at a time (W = LANES · V, V vectors of LANES doubles).
 * Loops run inputs outside and column slabs inside (XAI8_ROWS rows at a time), so memory is read as a
 * few dozen forward streams rather than one 64-byte piece per row with a row's stride between them (a TLB miss
 * each); each slab's partial sums wait in scratch meanwhile, and each token's running total over groups
 * too, as float64, until the last group. Per column the operations are the same as slab by slab.
 * scratch: 2 · (c1 − c0) doubles of totals, then per slab 2 · V vectors of partial sums.
 */
#define XAI8_ROWS 64
#define XAI8_EXACT_BODY(W, VEC, LANES, V, ZERO, LOADW, BCAST, FMA, STORE)                            \
  static void xai8_exact(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch) {                \
    const int gs = j->n_in / j->groups, ncol = c1 - c0, nslab = (ncol + W - 1) / W;                \
    double *yacc = (double *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63); /* [2][ncol] */       \
    VEC *parts = (VEC *)(((uintptr_t)(yacc + 2 * (size_t)ncol) + 63) & ~(uintptr_t)63);           \
    for (int t0 = 0; t0 < j->T; t0 += 2) {                                                        \
      const int C = GN_MIN(2, j->T - t0);                                                         \
      for (int i = 0; i < 2 * ncol; i++) yacc[i] = 0;                                             \
      for (int g = 0; g < j->groups; g++) {                                                       \
        for (int i = 0; i < nslab * 2 * V; i++) parts[i] = ZERO;                                  \
        for (int k0 = g * gs; k0 < (g + 1) * gs; k0 += XAI8_ROWS) {                               \
          const int k1 = GN_MIN(k0 + XAI8_ROWS, (g + 1) * gs);                                    \
          for (int sl = 0; sl < nslab; sl++) {                                                    \
            const int c = c0 + W * sl, cols = GN_MIN(W, c1 - c);                                  \
            VEC part[2][V];                                                                       \
            for (int t = 0; t < 2; t++)                                                           \
              for (int h = 0; h < V; h++) part[t][h] = parts[(size_t)(2 * sl + t) * V + h];       \
            for (int k = k0; k < k1; k++) {                                                       \
              const int8_t *src = j->q + (size_t)k * j->n_out + c;                                \
              int8_t pad[W];                                                                      \
              if (cols < W) {                                                                     \
                memset(pad, 0, W);                                                                \
                memcpy(pad, src, (size_t)cols);                                                   \
                src = pad;                                                                        \
              }                                                                                   \
              VEC w[V];                                                                           \
              for (int h = 0; h < V; h++) w[h] = LOADW(src + LANES * h);                          \
              for (int t = 0; t < C; t++) {                                                       \
                const VEC xv = BCAST((double)j->x[(size_t)(t0 + t) * j->n_in + k]);               \
                for (int h = 0; h < V; h++) part[t][h] = FMA(w[h], xv, part[t][h]);               \
              }                                                                                   \
            }                                                                                     \
            for (int t = 0; t < 2; t++)                                                           \
              for (int h = 0; h < V; h++) parts[(size_t)(2 * sl + t) * V + h] = part[t][h];       \
          }                                                                                       \
        }                                                                                         \
        for (int sl = 0; sl < nslab; sl++) {                                                      \
          const int c = c0 + W * sl, cols = GN_MIN(W, c1 - c);                                    \
          const uint16_t *sc = j->scales + (size_t)g * j->n_out + c;                              \
          for (int t = 0; t < C; t++) {                                                           \
            double pv[W];                                                                         \
            for (int h = 0; h < V; h++) STORE(pv + LANES * h, parts[(size_t)(2 * sl + t) * V + h]); \
            for (int l = 0; l < cols; l++) yacc[(size_t)t * ncol + W * sl + l] += pv[l] * gn_bf16(sc[l]); \
          }                                                                                       \
        }                                                                                         \
      }                                                                                           \
      for (int t = 0; t < C; t++)                                                                 \
        for (int l = 0; l < ncol; l++) j->y[(size_t)(t0 + t) * j->n_out + c0 + l] = (float)yacc[(size_t)t * ncol + l]; \
    }                                                                                             \
  }

static inline void xai8_zero(const gn_xai8_job *j, int c0, int c1, int t0, int C) {
  for (int t = 0; t < C; t++) memset(j->y + (size_t)(t0 + t) * j->n_out + c0, 0, sizeof(float) * (size_t)(c1 - c0));
}

#if GN_X86_AVX512
GN_INLINE __m512 xai8_scales16(const uint16_t *s, __mmask16 mk) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, s)), 16));
}

/* y[t][c…c+63] += part[t][·] · s[g][·] for the lanes in `cols`. */
GN_INLINE void xai8_group_end(const gn_xai8_job *j, int g, int c, int cols, int t0, int C, __m512 part[][4]) {
  for (int h = 0; h < 4; h++) {
    const int left = cols - 16 * h;
    if (left <= 0) break;
    const __mmask16 mk = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
    const __m512 sc = xai8_scales16(j->scales + (size_t)g * j->n_out + c + 16 * h, mk);
    for (int t = 0; t < C; t++) {
      float *y = j->y + (size_t)(t0 + t) * j->n_out + c + 16 * h;
      _mm512_mask_storeu_ps(y, mk, _mm512_fmadd_ps(part[t][h], sc, _mm512_maskz_loadu_ps(mk, y)));
    }
  }
}

#define X512_LOADW(p) _mm512_cvtepi32_pd(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
XAI8_EXACT_BODY(64, __m512d, 8, 8, _mm512_setzero_pd(), X512_LOADW, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_storeu_pd)

/*
 * Fast: four input rows at a time are interleaved so that each 32-bit lane holds one column's four
 * bytes; vpdpbusd against the four activations (made unsigned: xq + 128) sums them, and the
 * 128·Σq correction per block is subtracted before the float scaling. Lane p = 4L + j of quad i holds
 * column 16L + 4i + j; a 4×4 transpose of 128-bit blocks restores column order at each group's end.
 */
static void xai8_fast(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch) {
  const int gs = j->n_in / j->groups, nb = j->n_in / 32, nslab = (c1 - c0 + 63) / 64;
  __m512 *parts = (__m512 *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63); /* [slab][token][4], as exact mode */
  const __m512i k80 = _mm512_set1_epi8((char)0x80);
  for (int t0 = 0; t0 < j->T; t0 += 2) {
    const int C = GN_MIN(2, j->T - t0);
    xai8_zero(j, c0, c1, t0, C);
    for (int g = 0; g < j->groups; g++) {
      for (int i = 0; i < nslab * 8; i++) parts[i] = _mm512_setzero_ps();
      for (int b = g * gs / 32; b < (g + 1) * gs / 32; b++) {
        for (int sl = 0; sl < nslab; sl++) {
          const int c = c0 + 64 * sl, cols = GN_MIN(64, c1 - c);
          const __mmask64 mb = cols >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << cols) - 1);
          __m512i acc[2][4], corr[4];
          for (int i = 0; i < 4; i++) {
            corr[i] = _mm512_setzero_si512();
            for (int t = 0; t < 2; t++) acc[t][i] = _mm512_setzero_si512();
          }
          for (int k = 32 * b; k < 32 * b + 32; k += 4) {
            const int8_t *p = j->q + (size_t)k * j->n_out + c;
            const __m512i r0 = _mm512_maskz_loadu_epi8(mb, p), r1 = _mm512_maskz_loadu_epi8(mb, p + j->n_out);
            const __m512i r2 = _mm512_maskz_loadu_epi8(mb, p + 2 * (size_t)j->n_out), r3 = _mm512_maskz_loadu_epi8(mb, p + 3 * (size_t)j->n_out);
            const __m512i a0 = _mm512_unpacklo_epi8(r0, r1), a1 = _mm512_unpackhi_epi8(r0, r1);
            const __m512i a2 = _mm512_unpacklo_epi8(r2, r3), a3 = _mm512_unpackhi_epi8(r2, r3);
            const __m512i Q[4] = {_mm512_unpacklo_epi16(a0, a2), _mm512_unpackhi_epi16(a0, a2), _mm512_unpacklo_epi16(a1, a3),
                                  _mm512_unpackhi_epi16(a1, a3)};
            for (int i = 0; i < 4; i++) corr[i] = _mm512_dpbusd_epi32(corr[i], k80, Q[i]);
            for (int t = 0; t < C; t++) {
              int32_t x4;
              memcpy(&x4, j->xq + (size_t)(t0 + t) * j->n_in + k, 4);
              const __m512i xb = _mm512_xor_si512(_mm512_set1_epi32(x4), k80);
              for (int i = 0; i < 4; i++) acc[t][i] = _mm512_dpbusd_epi32(acc[t][i], xb, Q[i]);
            }
          }
          __m512 *part = parts + 8 * (size_t)sl;
          for (int t = 0; t < C; t++) {
            const __m512 dx = _mm512_set1_ps(j->xd[(size_t)(t0 + t) * nb + b]);
            for (int i = 0; i < 4; i++) part[4 * t + i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[t][i], corr[i])), dx, part[4 * t + i]);
          }
        }
      }
      for (int sl = 0; sl < nslab; sl++) {
        const int c = c0 + 64 * sl, cols = GN_MIN(64, c1 - c);
        const __m512 *part = parts + 8 * (size_t)sl;
        __m512 nat[2][4];
        for (int t = 0; t < C; t++) {
          const __m512 T0 = _mm512_shuffle_f32x4(part[4 * t], part[4 * t + 1], 0x44), T1 = _mm512_shuffle_f32x4(part[4 * t], part[4 * t + 1], 0xee);
          const __m512 T2 = _mm512_shuffle_f32x4(part[4 * t + 2], part[4 * t + 3], 0x44), T3 = _mm512_shuffle_f32x4(part[4 * t + 2], part[4 * t + 3], 0xee);
          nat[t][0] = _mm512_shuffle_f32x4(T0, T2, 0x88);
          nat[t][1] = _mm512_shuffle_f32x4(T0, T2, 0xdd);
          nat[t][2] = _mm512_shuffle_f32x4(T1, T3, 0x88);
          nat[t][3] = _mm512_shuffle_f32x4(T1, T3, 0xdd);
        }
        xai8_group_end(j, g, c, cols, t0, C, nat);
      }
    }
  }
}

#elif GN_X86_AVX2
/* 32 columns of row k, zero-padded past the matrix's last column (AVX2 has no masked byte loads). */
GN_INLINE __m256i xai8_load32(const int8_t *p, int cols) {
  if (cols >= 32) return _mm256_loadu_si256((const __m256i *)p);
  int8_t buf[32] = {0};
  memcpy(buf, p, (size_t)cols);
  return _mm256_loadu_si256((const __m256i *)buf);
}

GN_INLINE void xai8_group_end(const gn_xai8_job *j, int g, int c, int cols, int t0, int C, __m256 part[][4]) {
  for (int h = 0; h < 4; h++) {
    const int left = cols - 8 * h;
    if (left <= 0) break;
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const uint16_t *sp = j->scales + (size_t)g * j->n_out + c + 8 * h;
    uint16_t sb[8] = {0};
    memcpy(sb, sp, 2 * (size_t)GN_MIN(8, left));
    const __m256 sc = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)sb)), 16));
    for (int t = 0; t < C; t++) {
      float *y = j->y + (size_t)(t0 + t) * j->n_out + c + 8 * h;
      _mm256_maskstore_ps(y, mk, _mm256_fmadd_ps(part[t][h], sc, _mm256_maskload_ps(y, mk)));
    }
  }
}

#define X256_LOADW(p) _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_cvtsi32_si128((int)gn_rd32((const uint8_t *)(p)))))
XAI8_EXACT_BODY(16, __m256d, 4, 4, _mm256_setzero_pd(), X256_LOADW, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_storeu_pd)

/* Fast: rows k and k+1 interleaved into int16 pairs per column, vpmaddwd against (xq_k, xq_k+1).
 * Input blocks outside, 32-column slabs inside, partial sums in scratch ([slab][token][4]). */
static void xai8_fast(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch) {
  const int gs = j->n_in / j->groups, nb = j->n_in / 32, nslab = (c1 - c0 + 31) / 32;
  __m256 *parts = (__m256 *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  for (int t0 = 0; t0 < j->T; t0 += 2) {
    const int C = GN_MIN(2, j->T - t0);
    xai8_zero(j, c0, c1, t0, C);
    for (int g = 0; g < j->groups; g++) {
      for (int i = 0; i < nslab * 8; i++) parts[i] = _mm256_setzero_ps();
      for (int b = g * gs / 32; b < (g + 1) * gs / 32; b++) {
        for (int sl = 0; sl < nslab; sl++) {
          const int c = c0 + 32 * sl, cols = GN_MIN(32, c1 - c);
          __m256i acc[2][4];
          for (int t = 0; t < 2; t++)
            for (int h = 0; h < 4; h++) acc[t][h] = _mm256_setzero_si256();
          for (int k = 32 * b; k < 32 * b + 32; k += 2) {
            const int8_t *p = j->q + (size_t)k * j->n_out + c;
            const __m256i r0 = xai8_load32(p, cols), r1 = xai8_load32(p + j->n_out, cols);
            const __m256i e0 = _mm256_unpacklo_epi8(r0, r1), e1 = _mm256_unpackhi_epi8(r0, r1);
            /* columns 0-7, 8-15, 16-23, 24-31 */
            const __m256i w[4] = {_mm256_cvtepi8_epi16(_mm256_castsi256_si128(e0)), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(e1)),
                                  _mm256_cvtepi8_epi16(_mm256_extracti128_si256(e0, 1)), _mm256_cvtepi8_epi16(_mm256_extracti128_si256(e1, 1))};
            for (int t = 0; t < C; t++) {
              const int8_t *xk = j->xq + (size_t)(t0 + t) * j->n_in + k;
              const __m256i xp = _mm256_set1_epi32((int32_t)(uint16_t)(int16_t)xk[0] | (int32_t)((uint32_t)(uint16_t)(int16_t)xk[1] << 16));
              for (int h = 0; h < 4; h++) acc[t][h] = _mm256_add_epi32(acc[t][h], _mm256_madd_epi16(w[h], xp));
            }
          }
          __m256 *part = parts + 8 * (size_t)sl;
          for (int t = 0; t < C; t++) {
            const __m256 dx = _mm256_set1_ps(j->xd[(size_t)(t0 + t) * nb + b]);
            for (int h = 0; h < 4; h++) part[4 * t + h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t][h]), dx, part[4 * t + h]);
          }
        }
      }
      for (int sl = 0; sl < nslab; sl++) {
        __m256 p[2][4];
        for (int t = 0; t < 2; t++)
          for (int h = 0; h < 4; h++) p[t][h] = parts[8 * (size_t)sl + 4 * t + h];
        xai8_group_end(j, g, c0 + 32 * sl, GN_MIN(32, c1 - c0 - 32 * sl), t0, C, p);
      }
    }
  }
}

#elif GN_ARM_NEON
GN_INLINE int8x16_t xai8_load16(const int8_t *p, int cols) {
  if (cols >= 16) return vld1q_s8(p);
  int8_t buf[16] = {0};
  memcpy(buf, p, (size_t)cols);
  return vld1q_s8(buf);
}

GN_INLINE void xai8_group_end(const gn_xai8_job *j, int g, int c, int cols, int t0, int C, float32x4_t part[][4]) {
  for (int h = 0; h < 4; h++) {
    const int left = cols - 4 * h;
    if (left <= 0) break;
    const uint16_t *sp = j->scales + (size_t)g * j->n_out + c + 4 * h;
    for (int t = 0; t < C; t++) {
      float *y = j->y + (size_t)(t0 + t) * j->n_out + c + 4 * h;
      float pv[4];
      vst1q_f32(pv, part[t][h]);
      for (int l = 0; l < 4 && l < left; l++) y[l] = fmaf(pv[l], gn_bf16(sp[l]), y[l]);
    }
  }
}

GN_INLINE float64x2_t xneon_loadw(const int8_t *p) {
  const float64x2_t v = {(double)p[0], (double)p[1]};
  return v;
}
#define XNEON_FMA(a, b, c) vfmaq_f64(c, a, b)
XAI8_EXACT_BODY(8, float64x2_t, 2, 4, vdupq_n_f64(0), xneon_loadw, vdupq_n_f64, XNEON_FMA, vst1q_f64)

/* Fast: four rows zipped so each 32-bit lane holds one column's four bytes, then signed byte dots.
 * Input blocks outside, 16-column slabs inside, partial sums in scratch ([slab][token][4]). */
static void xai8_fast(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch) {
  const int gs = j->n_in / j->groups, nb = j->n_in / 32, nslab = (c1 - c0 + 15) / 16;
  float32x4_t *parts = (float32x4_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  for (int t0 = 0; t0 < j->T; t0 += 2) {
    const int C = GN_MIN(2, j->T - t0);
    xai8_zero(j, c0, c1, t0, C);
    for (int g = 0; g < j->groups; g++) {
      for (int i = 0; i < nslab * 8; i++) parts[i] = vdupq_n_f32(0);
      for (int b = g * gs / 32; b < (g + 1) * gs / 32; b++) {
        for (int sl = 0; sl < nslab; sl++) {
          const int c = c0 + 16 * sl, cols = GN_MIN(16, c1 - c);
          int32x4_t acc[2][4];
          for (int t = 0; t < 2; t++)
            for (int h = 0; h < 4; h++) acc[t][h] = vdupq_n_s32(0);
          for (int k = 32 * b; k < 32 * b + 32; k += 4) {
            const int8_t *p = j->q + (size_t)k * j->n_out + c;
            const int8x16_t r0 = xai8_load16(p, cols), r1 = xai8_load16(p + j->n_out, cols);
            const int8x16_t r2 = xai8_load16(p + 2 * (size_t)j->n_out, cols), r3 = xai8_load16(p + 3 * (size_t)j->n_out, cols);
            const int16x8_t a0 = vreinterpretq_s16_s8(vzip1q_s8(r0, r1)), a1 = vreinterpretq_s16_s8(vzip2q_s8(r0, r1));
            const int16x8_t a2 = vreinterpretq_s16_s8(vzip1q_s8(r2, r3)), a3 = vreinterpretq_s16_s8(vzip2q_s8(r2, r3));
            const int8x16_t Q[4] = {vreinterpretq_s8_s16(vzip1q_s16(a0, a2)), vreinterpretq_s8_s16(vzip2q_s16(a0, a2)),
                                    vreinterpretq_s8_s16(vzip1q_s16(a1, a3)), vreinterpretq_s8_s16(vzip2q_s16(a1, a3))};
            for (int t = 0; t < C; t++) {
              int32_t x4;
              memcpy(&x4, j->xq + (size_t)(t0 + t) * j->n_in + k, 4);
              const int8x16_t xb = vreinterpretq_s8_s32(vdupq_n_s32(x4));
              for (int h = 0; h < 4; h++) acc[t][h] = CANON_DOT4(acc[t][h], Q[h], xb);
            }
          }
          float32x4_t *part = parts + 8 * (size_t)sl;
          for (int t = 0; t < C; t++) {
            const float dx = j->xd[(size_t)(t0 + t) * nb + b];
            for (int h = 0; h < 4; h++) part[4 * t + h] = vfmaq_n_f32(part[4 * t + h], vcvtq_f32_s32(acc[t][h]), dx);
          }
        }
      }
      for (int sl = 0; sl < nslab; sl++) {
        float32x4_t p[2][4];
        for (int t = 0; t < 2; t++)
          for (int h = 0; h < 4; h++) p[t][h] = parts[8 * (size_t)sl + 4 * t + h];
        xai8_group_end(j, g, c0 + 16 * sl, GN_MIN(16, c1 - c0 - 16 * sl), t0, C, p);
      }
    }
  }
}

#else
/* Scalar: float64 partial sums per column; scratch holds 64 columns' partials and running totals. */
static void xai8_scalar(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch, int fast) {
  double *part = (double *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63), *acc = part + 64;
  int32_t *is = (int32_t *)(acc + 64);
  const int gs = j->n_in / j->groups, nb = j->n_in / 32;
  for (int t = 0; t < j->T; t++) {
    for (int c = c0; c < c1; c += 64) {
      const int cols = GN_MIN(64, c1 - c);
      for (int w = 0; w < cols; w++) acc[w] = 0;
      for (int g = 0; g < j->groups; g++) {
        for (int w = 0; w < cols; w++) part[w] = 0;
        if (fast) {
          for (int b = g * gs / 32; b < (g + 1) * gs / 32; b++) {
            for (int w = 0; w < cols; w++) is[w] = 0;
            for (int k = 32 * b; k < 32 * b + 32; k++) {
              const int xk = j->xq[(size_t)t * j->n_in + k];
              const int8_t *row = j->q + (size_t)k * j->n_out + c;
              for (int w = 0; w < cols; w++) is[w] += xk * row[w];
            }
            const double dx = j->xd[(size_t)t * nb + b];
            for (int w = 0; w < cols; w++) part[w] += dx * is[w];
          }
        } else {
          for (int k = g * gs; k < (g + 1) * gs; k++) {
            const double xk = j->x[(size_t)t * j->n_in + k];
            const int8_t *row = j->q + (size_t)k * j->n_out + c;
            for (int w = 0; w < cols; w++) part[w] += xk * row[w];
          }
        }
        const uint16_t *s = j->scales + (size_t)g * j->n_out + c;
        for (int w = 0; w < cols; w++) acc[w] += part[w] * gn_bf16(s[w]);
      }
      for (int w = 0; w < cols; w++) j->y[(size_t)t * j->n_out + c + w] = (float)acc[w];
    }
  }
}

static void xai8_exact(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch) { xai8_scalar(j, c0, c1, scratch, 0); }
static void xai8_fast(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch) { xai8_scalar(j, c0, c1, scratch, 1); }
#endif
