/*
 * One translation unit per instruction-set level: the build compiles this file once per level with that
 * level's -m flags and -DGN_LEVEL (scalar: none; avx2: AVX2+FMA+F16C; avx512: + F/BW/VL/DQ/VNNI; neon:
 * aarch64 baseline; neon_dot: + dotprod), and gn_create picks one table at run time (cpu.c). The avx512_bf16
 * level is the avx512 table plus its bf16_dot_fast kernel (compiled here with a target attribute). Nothing else
 * in the addon is compiled with those flags, so it loads on any CPU of the architecture.
 */
#include <math.h>

#include "simd.h"

#include "kernels/float.c"
#include "kernels/canon.c"
#include "kernels/q8_0.c"
#include "kernels/q4_0.c"
#include "kernels/q4_1.c"
#include "kernels/q5_0.c"
#include "kernels/q5_1.c"
#include "kernels/iq4_nl.c"
#include "kernels/iq.c"
#include "kernels/q2_k.c"
#include "kernels/q3_k.c"
#include "kernels/q4_k.c"
#include "kernels/q5_k.c"
#include "kernels/q6_k.c"
#include "kernels/xai8.c"
#include "kernels/act.c"
#include "kernels/lanes.h"
#include "kernels/attention.c"
#include "kernels/gelu.c"
#undef AV

static void get_row(int type, const uint8_t *row, int n, float *out, uint8_t *scratch) {
  switch (type) {
  case GN_F32: memcpy(out, row, (size_t)n * 4); return;
  case GN_F16: f16_to_f32(row, n, out); return;
  case GN_BF16: bf16_to_f32(row, n, out); return;
  case GN_Q8_0: q8_0_expand(row, n, out); return;
  default: {
    float *s = (float *)(((uintptr_t)scratch + (size_t)n + 63) & ~(uintptr_t)63), *m = s + n / 16;
    GN_TABLE.unpack[type](row, n, scratch, s, m);
    canon_expand(scratch, s, m, n, out);
  }
  }
}

const gn_table GN_TABLE = {
  .isa = GN_LEVEL,
  .q8_0_fast = q8_0_fast,
  .q8_0_exact = q8_0_exact,
  .canon_fast = canon_fast,
  .canon_exact = canon_exact,
  .float_exact = float_exact,
  .float_fast = {[GN_F16] = f16_fast, [GN_BF16] = bf16_fast},
#if GN_X86_AVX512
  .bf16_dot_fast = bf16_dot_fast,
#endif
#if IQ4_HAS_AVX2
  .direct_fast = {[GN_Q4_K] = q4_k_fast, [GN_Q5_K] = q5_k_fast, [GN_Q6_K] = q6_k_fast, [GN_IQ4_XS] = iq4_xs_fast, [GN_IQ4_NL] = iq4_nl_fast},
#elif IQ4_HAS_NEON
  .direct_fast = {[GN_Q4_K] = q4_k_fast, [GN_Q5_K] = q5_k_fast, [GN_Q6_K] = q6_k_fast, [GN_IQ4_XS] = iq4_xs_fast, [GN_IQ4_NL] = iq4_nl_fast},
#elif GN_X86_AVX2
  .direct_fast = {[GN_Q4_K] = q4_k_fast, [GN_Q5_K] = q5_k_fast, [GN_Q6_K] = q6_k_fast},
#endif
#if IQ_HAS_DIRECT
  .direct_small = {
    [GN_IQ2_XXS] = iq2_xxs_direct, [GN_IQ2_XS] = iq2_xs_direct, [GN_IQ2_S] = iq2_s_direct, [GN_IQ3_XXS] = iq3_xxs_direct,
    [GN_IQ3_S] = iq3_s_direct, [GN_IQ1_S] = iq1_s_direct, [GN_IQ1_M] = iq1_m_direct,
#if GN_X86_AVX512
    [GN_IQ4_XS] = iq4_xs_direct,
#endif
  },
#endif
  .unpack = {
    [GN_Q4_0] = unpack_q4_0, [GN_Q4_1] = unpack_q4_1, [GN_Q5_0] = unpack_q5_0, [GN_Q5_1] = unpack_q5_1,
    [GN_IQ4_NL] = unpack_iq4_nl, [GN_Q2_K] = unpack_q2_k, [GN_Q3_K] = unpack_q3_k, [GN_Q4_K] = unpack_q4_k,
    [GN_Q5_K] = unpack_q5_k, [GN_Q6_K] = unpack_q6_k, [GN_IQ2_XXS] = unpack_iq2_xxs, [GN_IQ2_XS] = unpack_iq2_xs,
    [GN_IQ2_S] = unpack_iq2_s, [GN_IQ3_XXS] = unpack_iq3_xxs, [GN_IQ3_S] = unpack_iq3_s, [GN_IQ1_S] = unpack_iq1_s,
    [GN_IQ1_M] = unpack_iq1_m, [GN_IQ4_XS] = unpack_iq4_xs,
  },
  .xai8_fast = xai8_fast,
  .xai8_exact = xai8_exact,
  .quantize = act_quantize,
  .attention = attention_one,
  .attention_part = attention_part,
  .attention_merge = attention_merge,
  .gelu_erf_fast = gelu_erf_fast,
  .get_row = get_row,
};
