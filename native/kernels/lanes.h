#ifndef GN_LANES_H
#define GN_LANES_H
/*
 * Vectors of AV float32 lanes through GCC's vector extension (the same source for every level: 16 lanes
 * with AVX-512, 8 with AVX2, 4 elsewhere — SSE2 or NEON, which both architectures' baselines have); fused
 * multiply-add where the level has it. For the fast paths of attention.c and gelu.c; isa.c undefines AV
 * after them.
 */
#if GN_X86_AVX512
#define AV 16
#elif GN_X86_AVX2
#define AV 8
#else
#define AV 4
#endif
typedef float av_f __attribute__((vector_size(AV * 4)));
typedef int32_t av_i __attribute__((vector_size(AV * 4)));
typedef float av_fu __attribute__((vector_size(AV * 4), aligned(4), may_alias)); /* unaligned access */

GN_INLINE av_f av_load(const float *p) { return *(const av_fu *)p; }
GN_INLINE void av_store(float *p, av_f v) { *(av_fu *)p = v; }
GN_INLINE av_f av_set1(float x) { return (av_f){0} + x; }
GN_INLINE av_f av_sel(av_i m, av_f a, av_f b) { return (av_f)((m & (av_i)a) | (~m & (av_i)b)); }
GN_INLINE av_f av_max(av_f a, av_f b) { return av_sel(a > b, a, b); }

GN_INLINE av_f av_fma(av_f a, av_f b, av_f c) {
#if GN_X86_AVX512
  return (av_f)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif GN_X86_AVX2
  return (av_f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#elif GN_ARM_NEON
  return (av_f)vfmaq_f32((float32x4_t)c, (float32x4_t)a, (float32x4_t)b);
#else
  return a * b + c;
#endif
}

/* Lanes summed in one fixed order. */
GN_INLINE float av_hsum(av_f v) {
#if GN_X86_AVX512
  return gn_hsum512((__m512)v);
#elif GN_X86_AVX2
  return gn_hsum256((__m256)v);
#else
  return (v[0] + v[1]) + (v[2] + v[3]);
#endif
}

/*
 * e^x for x ≤ 88 (Cephes expf: x = n·ln2 + r, |r| ≤ ln2/2, degree-7 polynomial, relative error ≈ 1e-7);
 * x < −87 gives exactly 0, so masked keys and padding lanes weigh nothing. NaN gives e^−87, not NaN.
 */
GN_INLINE av_f av_exp(av_f x) {
  const av_i under = x < av_set1(-87.0f);
  x = av_max(x, av_set1(-87.0f));
  const av_f magic = av_set1(12582912.0f); /* 1.5·2^23: adding it rounds to an integer */
  const av_f n = (x * av_set1(1.44269504088896341f) + magic) - magic;
  av_f r = av_fma(n, av_set1(-0.693359375f), x);
  r = av_fma(n, av_set1(2.12194440e-4f), r);
  av_f y = av_set1(1.9875691500e-4f);
  y = av_fma(y, r, av_set1(1.3981999507e-3f));
  y = av_fma(y, r, av_set1(8.3334519073e-3f));
  y = av_fma(y, r, av_set1(4.1665795894e-2f));
  y = av_fma(y, r, av_set1(1.6666665459e-1f));
  y = av_fma(y, r, av_set1(5.0000001201e-1f));
  y = av_fma(y, r * r, r) + av_set1(1.0f);
  const av_i e = (__builtin_convertvector(n, av_i) + 127) << 23;
  return av_sel(under, av_set1(0.0f), y * (av_f)e);
}

#endif
