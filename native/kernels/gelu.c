/*
 * GELU, erf form (Grok-2's: src/model/config.ts `gelu`), x·½(1 + erf(x/√2)), in fast mode: float32 lanes.
 * Exact mode keeps libm's erf in float64 (core.c gelu_task), the reference's formula.
 *
 * erfc(z) = t·e^(−z² + P(t)), t = 1/(1 + z/2), z = |x|/√2, P the degree-9 Chebyshev fit of Numerical Recipes'
 * erfcc (Press et al., 2nd ed., §6.2: fractional error < 1.2e-7 for every z ≥ 0); then gelu(x) =
 * x·(1 − erfc/2) for x ≥ 0 and x·erfc/2 below, so the negative tail does not cancel. With av_exp and float32
 * arithmetic, |Δgelu| ≤ 3e-7·|x| against the float64 reference, the result's rounding included — erf within
 * 6e-7 (measured against reference.ts over 40M points of [−0.5, 0.5] and of [−20, 20]: 2.5e-7·|x| with fused
 * multiply-add, 2.8e-7·|x| without, worst near |x| = 0.05; test/kernel-checks.ts checkGeluErf); relative to
 * the value, ≤ 3e-6 for x > −5 and ≤ 2e-5 down to where it underflows (z² is rounded to float32 inside the
 * exponential). NaN stays NaN, +∞ → +∞, −∞ → NaN (−∞ · 0), as the tanh form gives. Per value, one thread:
 * 0.8 ns (AVX-512), 1.4 ns (AVX2), 4.3 ns (scalar level) against libm's erf at 14.6 ns.
 */

GN_INLINE av_f gelu_erf_lanes(av_f x) {
  const av_f z = (av_f)((av_i)x & 0x7fffffff) * av_set1(0.70710678118654752f);
  const av_f t = av_set1(1.0f) / (av_set1(1.0f) + av_set1(0.5f) * z);
  av_f p = av_set1(0.17087277f);
  p = av_fma(p, t, av_set1(-0.82215223f));
  p = av_fma(p, t, av_set1(1.48851587f));
  p = av_fma(p, t, av_set1(-1.13520398f));
  p = av_fma(p, t, av_set1(0.27886807f));
  p = av_fma(p, t, av_set1(-0.18628806f));
  p = av_fma(p, t, av_set1(0.09678418f));
  p = av_fma(p, t, av_set1(0.37409196f));
  p = av_fma(p, t, av_set1(1.00002368f));
  p = av_fma(p, t, av_set1(-1.26551223f));
  const av_f half_erfc = av_set1(0.5f) * t * av_exp(p - z * z);
  return av_sel(x >= av_set1(0.0f), x * (av_set1(1.0f) - half_erfc), x * half_erfc);
}

/* x[0..n) := gelu_erf(x[i]), times up[i] (float × float) when up is not NULL. A tail of fewer than AV values
 * goes through a padded vector, so each value's result is the same wherever it lies in the array. */
static void gelu_erf_fast(float *x, const float *up, size_t n) {
  size_t i = 0;
  for (; i + AV <= n; i += AV) {
    const av_f g = gelu_erf_lanes(av_load(x + i));
    av_store(x + i, up ? g * av_load(up + i) : g);
  }
  if (i < n) {
    float v[AV] = {0};
    memcpy(v, x + i, (n - i) * 4);
    const av_f g = gelu_erf_lanes(av_load(v));
    for (size_t j = 0; j < n - i; j++) x[i + j] = up ? g[j] * up[i + j] : g[j];
  }
}
