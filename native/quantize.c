/*
 * Quantisers for `grok convert` / `grok synth`: C ports of the `quantize` functions of src/quant/ (llama.cpp's
 * quantize_row_*_ref), giving the SAME BYTES. Every float operation is the float32 operation the TypeScript
 * emulates with Math.fround, in the same order (the build passes -ffp-contract=off: no fused multiply-add);
 * Math.min/max and typed-array stores keep their JavaScript meaning where a NaN or an out-of-range level
 * could reach them (js_u8, js_i32, and clamps written as `a > hi ? hi : a`, which let a NaN through).
 *
 * Speed: the K-quant scale searches (make_qkx2_quants, make_qx_quants, make_q3_quants) run on LANES
 * sub-blocks at once, lane k holding sub-block k's values ([i][k] arrays): each lane performs exactly the
 * scalar sequence of its sub-block, and the inner loops over lanes are what the compiler vectorises.
 * A matrix is a flat run of blocks (rows of whole blocks are contiguous), so lanes cross row boundaries.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gn.h"
#include "iq-grids.h"


#define GROUP_MAX_EPS 1e-15f

/* ---- JavaScript semantics ----------------------------------------------------------------------------- */

/* ToInt32 (what `|`, `&`, `<<` and typed-array stores apply): NaN and ±Infinity → 0, else truncate mod 2^32. */
static inline int32_t js_i32(double v) {
  if (v > -2147483648.0 && v < 2147483648.0) return (int32_t)v;
  if (!isfinite(v)) return 0;
  double t = fmod(trunc(v), 4294967296.0);
  if (t < 0) t += 4294967296.0;
  return (int32_t)(uint32_t)t;
}
static inline uint8_t js_u8(double v) { return (uint8_t)(js_i32(v) & 0xff); }

/* Math.min / Math.max: a NaN operand gives NaN. */
static inline float js_min(float a, float b) { return a != a || b != b ? NAN : (a < b ? a : b); }
static inline float js_max(float a, float b) { return a != a || b != b ? NAN : (a > b ? a : b); }

/* `v ? a : b`: 0, −0 and NaN are falsy. */
static inline int truthy(float v) { return v != 0 && v == v; }

/* a | (b << 4) of two levels, stored in a Uint8Array. */
static inline uint8_t js_nibbles(float a, float b) { return (uint8_t)((uint32_t)js_i32(a) | ((uint32_t)js_i32(b) << 4)); }

/* llama.cpp nearest_int as ggml-ref.ts nearestInt: round half to even via the float addition of 1.5·2^23. */
static inline float nearest(float v) { return (v + 12582912.0f) - 12582912.0f; }

/* ---- binary16 / bfloat16 (src/quant/half.ts) -------------------------------------------------------- */

static inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static uint16_t f32_to_f16(float x) {
  uint32_t u = f32_bits(x);
  uint32_t sign = (u >> 16) & 0x8000, exp = (u >> 23) & 0xff, mant = u & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  int e = (int)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    int shift = 14 - e;
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
  return (uint16_t)(sign | half);
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
  if (e == 0) {
    float f = (float)m * 0x1p-24f;
    return sign ? -f : f;
  }
  if (e == 31) u = sign | 0x7f800000 | (m << 13);
  else u = sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint16_t f32_to_bf16(float x) {
  uint32_t u = f32_bits(x);
  if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)(((u + 0x7fff + ((u >> 16) & 1)) >> 16) & 0xffff);
}

/* ggml-ref.ts wrF16: store v as f16 at b, return the value the f16 holds. */
static inline float wr_f16(uint8_t *b, float v) {
  uint16_t h = f32_to_f16(v);
  b[0] = (uint8_t)h;
  b[1] = (uint8_t)(h >> 8);
  return f16_to_f32(h);
}

/* ---- the simple block types (per block, scalar) ---------------------------------------------------- */

static void q8_0_block(const float *x, uint8_t *o) {
  float amax = 0;
  for (int j = 0; j < 32; j++) amax = js_max(amax, fabsf(x[j]));
  float d = amax / 127, id = truthy(d) ? 1 / d : 0;
  wr_f16(o, d);
  for (int j = 0; j < 32; j++) {
    double v = x[j] * id; /* float product, then roundf emulated exactly in double */
    o[2 + j] = js_u8(v < 0 ? -floor(0.5 - v) : floor(v + 0.5));
  }
}

/* Q4_0 / Q5_0: d = (value of largest magnitude)/−(2^(bits−1)), level = min(2^bits − 1, trunc(x/d + offset)). */
static void q4_0_block(const float *x, uint8_t *o) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; j++)
    if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
  float d = max / -8, id = truthy(d) ? 1 / d : 0;
  wr_f16(o, d);
  for (int j = 0; j < 16; j++) {
    float q0 = js_min(15, truncf(x[j] * id + 8.5f)), q1 = js_min(15, truncf(x[j + 16] * id + 8.5f));
    o[2 + j] = js_nibbles(q0, q1);
  }
}

static void q4_1_block(const float *x, uint8_t *o) {
  float min = INFINITY, max = -INFINITY;
  for (int j = 0; j < 32; j++) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  float d = (max - min) / 15, id = truthy(d) ? 1 / d : 0;
  wr_f16(o, d);
  wr_f16(o + 2, min);
  for (int j = 0; j < 16; j++) {
    float q0 = js_min(15, truncf((x[j] - min) * id + 0.5f)), q1 = js_min(15, truncf((x[j + 16] - min) * id + 0.5f));
    o[4 + j] = js_nibbles(q0, q1);
  }
}

static void put_u32(uint8_t *b, uint32_t v) {
  b[0] = (uint8_t)v;
  b[1] = (uint8_t)(v >> 8);
  b[2] = (uint8_t)(v >> 16);
  b[3] = (uint8_t)(v >> 24);
}

static void q5_0_block(const float *x, uint8_t *o) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; j++)
    if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
  float d = max / -16, id = truthy(d) ? 1 / d : 0;
  wr_f16(o, d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; j++) {
    int32_t q0 = js_i32(js_min(31, truncf(x[j] * id + 16.5f))), q1 = js_i32(js_min(31, truncf(x[j + 16] * id + 16.5f)));
    o[6 + j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
    qh |= ((uint32_t)(q0 >> 4) << j) | ((uint32_t)(q1 >> 4) << (j + 16)); /* JS int32 shifts */
  }
  put_u32(o + 2, qh);
}

static void q5_1_block(const float *x, uint8_t *o) {
  float min = INFINITY, max = -INFINITY;
  for (int j = 0; j < 32; j++) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  float d = (max - min) / 31, id = truthy(d) ? 1 / d : 0;
  wr_f16(o, d);
  wr_f16(o + 2, min);
  uint32_t qh = 0;
  for (int j = 0; j < 16; j++) {
    int32_t q0 = js_i32(js_min(31, truncf((x[j] - min) * id + 0.5f)));
    int32_t q1 = js_i32(js_min(31, truncf((x[j + 16] - min) * id + 0.5f)));
    o[8 + j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
    qh |= ((uint32_t)(q0 >> 4) << j) | ((uint32_t)(q1 >> 4) << (j + 16)); /* JS int32 shifts */
  }
  put_u32(o + 4, qh);
}

/* IQ4_NL (iq4_nl.ts): llama.cpp quantize_iq4_nl without an importance matrix. */
static const float K_IQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* iq4_nl.ts bestIndex without its binary search's unpredictable branches: between K[0] and K[15], the bracket
 * K[lo] ≤ v < K[lo + 1] is the count of K[1 … 14] ≤ v (what the search ends with), then the same comparison of
 * the two distances; ≤ K[0] → 0, ≥ K[15] or NaN → 15 (where the search ends). */
static inline int iq4nl_index(float v) {
  int lo = 0;
  for (int k = 1; k <= 14; k++) lo += v >= K_IQ4NL[k];
  const int i = (v - K_IQ4NL[lo]) < (K_IQ4NL[lo + 1] - v) ? lo : lo + 1;
  return v <= K_IQ4NL[0] ? 0 : v >= K_IQ4NL[15] || v != v ? 15 : i;
}

/* Σ w·q·x and Σ w·q² over 32 values (w = x², q = the nearest level of id·x), in value order. */
static void iq4_sums(const float *x, float id, float *sumqx, float *sumq2) {
  float sqx = 0, sq2 = 0;
  for (int j = 0; j < 32; j++) {
    float q = K_IQ4NL[iq4nl_index(id * x[j])], w = x[j] * x[j];
    sqx = sqx + w * q * x[j];
    sq2 = sq2 + w * q * q;
  }
  *sumqx = sqx;
  *sumq2 = sq2;
}

/* The scale of 32 values (iq4_nl.ts iq4Scale): −max/K[0] refit, then 15 more starting scales; 0 for zeros. */
static float iq4_scale(const float *x) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; j++)
    if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
  if (!(amax >= GROUP_MAX_EPS)) return 0;
  float d = -max / K_IQ4NL[0], sumqx, sumq2;
  iq4_sums(x, 1 / d, &sumqx, &sumq2);
  d = sumq2 > 0 ? sumqx / sumq2 : 0;
  float best = d * sumqx;
  for (int itry = -7; itry <= 7; itry++) {
    iq4_sums(x, ((float)itry + K_IQ4NL[0]) / max, &sumqx, &sumq2);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

/* One IQ4_NL block from its scale (iq4_scale: here, or many at once in quantize-lanes.h). */
static void iq4_nl_pack(const float *x, float scale, uint8_t *o) {
  wr_f16(o, scale);
  float id = truthy(scale) ? 1 / scale : 0;
  uint8_t L[32];
  for (int j = 0; j < 32; j++) L[j] = (uint8_t)iq4nl_index(id * x[j]);
  for (int j = 0; j < 16; j++) o[2 + j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

/* IQ4_XS (iq4_xs.ts): llama.cpp quantize_iq4_xs without an importance matrix, from its 8 sub-block scales
 * (iq4_scale each: here, or many at once in quantize-lanes.h). */
static void iq4_xs_pack(const float *x, const float *scales, uint8_t *o) {
  float max_scale = 0, amax_scale = 0;
  for (int ib = 0; ib < 8; ib++)
    if (fabsf(scales[ib]) > amax_scale) { amax_scale = fabsf(scales[ib]); max_scale = scales[ib]; }
  const float d = -max_scale / 32;
  wr_f16(o, d);
  const float id = truthy(d) ? 1 / d : 0;
  uint8_t L[256];
  unsigned sh = 0;
  for (int ib = 0; ib < 8; ib++) {
    const float l = js_max(-32, js_min(31, nearest(id * scales[ib])));
    const float dl = d * l, idl = truthy(dl) ? 1 / dl : 0;
    for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)iq4nl_index(idl * x[32 * ib + j]);
    const int ls = (int)js_i32(l + 32); /* JavaScript semantics for a NaN level, as iq4_xs.ts */
    if (ib % 2 == 0) o[4 + ib / 2] = (uint8_t)(ls & 15);
    else o[4 + ib / 2] |= (uint8_t)((ls & 15) << 4);
    sh |= (unsigned)(ls >> 4) << (2 * ib);
  }
  o[2] = (uint8_t)(sh & 0xff);
  o[3] = (uint8_t)(sh >> 8);
  for (int ib = 0; ib < 8; ib++)
    for (int j = 0; j < 16; j++) o[8 + 16 * ib + j] = (uint8_t)(L[32 * ib + j] | (L[32 * ib + 16 + j] << 4));
}

/* ---- IQ3_S (src/quant/iq3_s.ts): llama.cpp quantize_iq3_s, with or without importance weights ------------ */

/* llama.cpp iq3xs_init_impl(512) (iq3_s.ts iq3Tables): grid levels 0…7, map from a 12-bit level code to its grid
 * index (or −(offset + 1) into iq3_nb: count, then the grid points at the 3 smallest squared distances, by
 * distance then index). Built once. */
static uint8_t iq3_levels[512 * 4];
static int32_t iq3_map[4096];
static uint16_t *iq3_nb;
static pthread_once_t iq3_once = PTHREAD_ONCE_INIT;

static void iq3_init(void) {
  for (int g = 0; g < 512; g++)
    for (int k = 0; k < 4; k++) iq3_levels[4 * g + k] = (uint8_t)((((gn_iq3s_grid[g] >> (8 * k)) & 0xff) - 1) / 2);
  for (int u = 0; u < 4096; u++) iq3_map[u] = -1;
  for (int g = 0; g < 512; g++)
    iq3_map[iq3_levels[4 * g] | (iq3_levels[4 * g + 1] << 3) | (iq3_levels[4 * g + 2] << 6) | (iq3_levels[4 * g + 3] << 9)] = g;
  size_t cap = 4096 * 32, len = 0;
  uint16_t *nb = malloc(cap * sizeof *nb);
  int d2[512];
  for (int u = 0; u < 4096 && nb; u++) {
    if (iq3_map[u] >= 0) continue;
    int m[3] = {INT32_MAX, INT32_MAX, INT32_MAX}; /* the 3 smallest distinct distances */
    for (int g = 0; g < 512; g++) {
      int s = 0;
      for (int k = 0; k < 4; k++) {
        const int e = (int)((gn_iq3s_grid[g] >> (8 * k)) & 0xff) - (2 * ((u >> (3 * k)) & 7) + 1);
        s += e * e;
      }
      d2[g] = s;
      if (s == m[0] || s == m[1] || s == m[2]) continue;
      if (s < m[0]) { m[2] = m[1]; m[1] = m[0]; m[0] = s; }
      else if (s < m[1]) { m[2] = m[1]; m[1] = s; }
      else if (s < m[2]) m[2] = s;
    }
    if (len + 1 + 512 > cap) {
      uint16_t *grown = realloc(nb, 2 * cap * sizeof *nb);
      if (!grown) { free(nb); nb = NULL; break; }
      nb = grown;
      cap *= 2;
    }
    iq3_map[u] = -(int32_t)(len + 1);
    const size_t start = len++;
    for (int r = 0; r < 3; r++)
      if (m[r] != INT32_MAX)
        for (int g = 0; g < 512; g++)
          if (d2[g] == m[r]) nb[len++] = (uint16_t)g;
    nb[start] = (uint16_t)(len - start - 1);
  }
  iq3_nb = nb;
}

/* iq3_find_best_neighbour (bestNeighbour): levels of the closest neighbour at `scale` into L; its grid index. */
static int iq3_best_neighbour(int off, const float *xval, const float *waux, float scale, uint8_t *L) {
  const int n = iq3_nb[off];
  float best = 3.4028234663852886e38f;
  int gi = iq3_nb[off + 1];
  for (int j = 1; j <= n; j++) {
    const int g = iq3_nb[off + j];
    float d2 = 0;
    for (int i = 0; i < 4; i++) {
      const float diff = scale * (float)((gn_iq3s_grid[g] >> (8 * i)) & 0xff) - xval[i];
      d2 = d2 + waux[i] * diff * diff;
    }
    if (d2 < best) { best = d2; gi = g; }
  }
  memcpy(L, iq3_levels + 4 * gi, 4);
  return gi;
}

static inline int iq3_code(const uint8_t *L) { return L[0] | (L[1] << 3) | (L[2] << 6) | (L[3] << 9); }

/* clamp(round((id·xval − 1)/2), 0, 7) of 4 values into L (a NaN stored as 0); their code. */
static int iq3_group_levels(const float *xval, float id, uint8_t *L) {
  for (int i = 0; i < 4; i++) L[i] = js_u8(js_max(0, js_min(7, nearest(0.5f * (id * xval[i] - 1)))));
  return iq3_code(L);
}

/* Σ w·xval·(2L + 1) and Σ w·(2L + 1)² over 32 values, in order. */
static void iq3_fit(const uint8_t *L, const float *w, const float *xval, float *sumqx, float *sumq2) {
  float sqx = 0, sq2 = 0;
  for (int i = 0; i < 32; i++) {
    const float q = (float)(2 * L[i] + 1);
    sqx = sqx + w[i] * xval[i] * q;
    sq2 = sq2 + w[i] * q * q;
  }
  *sumqx = sqx;
  *sumq2 = sq2;
}

/* One IQ3_S super-block (iq3sQuantizeBlock), weighted by qw[0 … 256) when not NULL. GN_OK, or GN_EINVAL where the
 * levels left the grid (never: every group is a grid point or a neighbour). As in llama.cpp, a sub-block of zeros
 * does not advance the qs and signs positions. */
static int iq3_s_block(const float *x, uint8_t *o, const float *qw) {
  float weight[32], waux[32], xval[32], scales[8], max_scale = 0, sumx2 = 0;
  uint8_t L[32], Laux[32], on[8], on_aux[8], signs[4];
  memset(o, 0, 110);
  for (int i = 0; i < 256; i++) sumx2 = sumx2 + x[i] * x[i];
  const float sigma2 = 2 * sumx2 / 256;
  uint8_t *qs = o + 2, *sg = o + 74;
  for (int ib = 0; ib < 8; ib++) {
    const float *xb = x + 32 * ib;
    for (int i = 0; i < 32; i++) {
      weight[i] = qw ? qw[32 * ib + i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
      waux[i] = sqrtf(weight[i]);
    }
    for (int k = 0; k < 4; k++) {
      unsigned s = 0;
      for (int i = 0; i < 8; i++) {
        const float v = xb[8 * k + i];
        if (v >= 0) xval[8 * k + i] = v;
        else { xval[8 * k + i] = -v; s |= 1u << i; }
      }
      signs[k] = (uint8_t)s;
    }
    float max = xval[0];
    for (int i = 1; i < 32; i++) max = max > xval[i] ? max : xval[i];
    memset(L, 0, 32);
    if (max == 0) { scales[ib] = 0; continue; }
    float best = 0, scale = max / 15;
    memset(on, 0, 8);
    for (int is = -9; is <= 9; is++) {
      const float id = (15 + (float)is * 0.2f) / max, this_scale = 1 / id;
      for (int k = 0; k < 8; k++) {
        const int gi = iq3_map[iq3_group_levels(xval + 4 * k, id, Laux + 4 * k)];
        on_aux[k] = gi >= 0;
        if (gi < 0) iq3_best_neighbour(-gi - 1, xval + 4 * k, waux + 4 * k, this_scale, Laux + 4 * k);
      }
      float sumqx, sumq2;
      iq3_fit(Laux, weight, xval, &sumqx, &sumq2);
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        scale = sumqx / sumq2;
        best = scale * sumqx;
        memcpy(L, Laux, 32);
        memcpy(on, on_aux, 8);
      }
    }
    if (memchr(on, 0, 8) && scale > 0) {
      const float id = 1 / scale;
      for (int k = 0; k < 8; k++) {
        const int gi = iq3_map[iq3_group_levels(xval + 4 * k, id, L + 4 * k)];
        if (gi < 0) iq3_best_neighbour(-gi - 1, xval + 4 * k, waux + 4 * k, scale, L + 4 * k);
      }
      float sumqx, sumq2;
      iq3_fit(L, weight, xval, &sumqx, &sumq2);
      if (sumq2 > 0) scale = sumqx / sumq2;
    }
    if (scale < 0) {
      scale = -scale;
      for (int k = 0; k < 4; k++) signs[k] = (uint8_t)~signs[k];
    }
    for (int k = 0; k < 8; k++) {
      const int gi = iq3_map[iq3_code(L + 4 * k)];
      if (gi < 0) return GN_EINVAL;
      qs[k] = (uint8_t)(gi & 255);
      o[66 + ib] |= (uint8_t)((gi >> 8) << k);
    }
    qs += 8;
    memcpy(sg, signs, 4);
    sg += 4;
    scales[ib] = scale;
    max_scale = max_scale > scale ? max_scale : scale;
  }
  if (max_scale == 0) return GN_OK;
  const float d = max_scale / 31;
  wr_f16(o, d * 1.033f);
  const float id = 1 / d;
  for (int ib = 0; ib < 8; ib += 2)
    o[106 + ib / 2] = js_nibbles(js_max(0, js_min(15, nearest(0.5f * (id * scales[ib] - 1)))),
                                 js_max(0, js_min(15, nearest(0.5f * (id * scales[ib + 1] - 1)))));
  return GN_OK;
}

/* IQ3_S rows of nbr super-blocks (block b weighted by qw + 256·(b % nbr) when qw is not NULL). */
static int iq3_s_rows(const float *x, size_t nb, uint8_t *dst, const float *qw, int nbr) {
  pthread_once(&iq3_once, iq3_init);
  if (!iq3_nb) return GN_ENOMEM;
  for (size_t b = 0; b < nb; b++) {
    const int rc = iq3_s_block(x + 256 * b, dst + 110 * b, qw ? qw + 256 * (b % (size_t)nbr) : NULL);
    if (rc != GN_OK) return rc;
  }
  return GN_OK;
}

/* ---- K-quants ----------------------------------------------------------------------------------------- */

/* Unpack sub-block t's (scale, min) from the 12-byte packing of Q4_K / Q5_K. */
static inline void scale_min_k4(const uint8_t *b, int t, int *sc, int *m) {
  if (t < 4) {
    *sc = b[t] & 63;
    *m = b[t + 4] & 63;
  } else {
    *sc = (b[t + 4] & 0x0f) | ((b[t - 4] >> 6) << 4);
    *m = (b[t + 4] >> 4) | ((b[t] >> 6) << 4);
  }
}

static void pack_scale_min_k4(uint8_t *b, const uint8_t *ls, const uint8_t *lm) {
  memset(b, 0, 12);
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      b[j] = ls[j];
      b[j + 4] = lm[j];
    } else {
      b[j + 4] = (uint8_t)((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
      b[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
      b[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
  }
}

/* The levels a make_qkx2_quants search ended with (qkx2_lanes' per-lane result), for the rare sub-block whose
 * stored scale is 0: clamp(nearest(isc·(x − min)), 0, nmax), a NaN stored as 0; all 0 when flat. */
static void qkx2_levels(const float *x, int n, float nmax, float isc, float min, int flat, uint8_t *L) {
  for (int i = 0; i < n; i++) {
    float l = nearest(isc * (x[i] - min));
    l = l > nmax ? nmax : l;
    l = l < 0 ? 0 : l;
    L[i] = flat || l != l ? 0 : (uint8_t)l;
  }
}

/* The same for make_qx_quants (qx_lanes): clamp(nearest(isc·x), −nmax, nmax − 1) + nmax; 0 when zero. */
static void qx_levels(const float *x, int n, float nmax, float isc, int zero, uint8_t *L) {
  for (int i = 0; i < n; i++) {
    float l = nearest(isc * x[i]);
    l = l > nmax - 1 ? nmax - 1 : l;
    l = (l < -nmax ? -nmax : l) + nmax;
    L[i] = zero || l != l ? 0 : (uint8_t)l;
  }
}

/* Signed 6-bit scale t of Q3_K's 12 packed bytes. */
static inline int scale3(const uint8_t *b, int t) {
  int low4 = t < 8 ? b[t] & 15 : b[t - 8] >> 4;
  int high2 = (b[8 + (t & 3)] >> (2 * (t >> 2))) & 3;
  return (low4 | (high2 << 4)) - 32;
}

/* ---- scalar searches of the importance-weighted K-quants (src/quant/kquant-weighted.ts) ------------------ */

/* make_qp_quants (makeQpQuants): levels 0 … nmax of non-negative values (sub-block scales or mins), weighted by
 * qw; 9 candidate scales, then up to 5 passes of coordinate descent. */
static float make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
  float max = 0;
  for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
  if (max < GROUP_MAX_EPS) {
    memset(L, 0, (size_t)n);
    return 0;
  }
  const float fn = (float)nmax;
  float iscale = fn / max;
  for (int i = 0; i < n; i++) L[i] = js_u8(nearest(iscale * x[i]));
  const float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; i++) {
    const float diff = x[i] - scale * (float)L[i];
    best = best + qw[i] * diff * diff;
  }
  for (int is = -4; is <= 4; is++) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * (float)is + fn) / max, scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; i++) {
      const float l = js_min(fn, nearest(iscale_is * x[i]));
      const float diff = x[i] - scale_is * l;
      mse = mse + qw[i] * diff * diff;
    }
    if (mse < best) {
      best = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    const float l = js_min(fn, nearest(iscale * x[i]));
    L[i] = js_u8(l);
    sumlx = sumlx + qw[i] * x[i] * l;
    suml2 = suml2 + qw[i] * l * l;
  }
  for (int itry = 0; itry < 5; itry++) {
    int changed = 0;
    for (int i = 0; i < n; i++) {
      const float w = qw[i], xi = x[i], li = (float)L[i];
      float slx = sumlx - w * xi * li, sl2 = suml2 - w * li * li;
      if (slx > 0 && sl2 > 0) {
        const float nl = js_min(fn, nearest(xi * sl2 / slx));
        if (nl != li) {
          slx = slx + w * xi * nl;
          sl2 = sl2 + w * nl * nl;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = js_u8(nl);
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0 ? sumlx / suml2 : 0;
}

/* make_qx_quants with rmse_type 1 and weights qw (makeQxQuantsWeighted), one group, scalar: Q3_K's scales. */
static float make_qx_quants_w(int n, int nmax, const float *x, int8_t *L, const float *qw) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++)
    if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
  if (amax < GROUP_MAX_EPS) {
    memset(L, 0, (size_t)n);
    return 0;
  }
  const float fn = (float)nmax;
  float iscale = -fn / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    const float l = js_max(-fn, js_min(fn - 1, nearest(iscale * x[i])));
    L[i] = (int8_t)js_u8(l + fn);
    sumlx = sumlx + qw[i] * x[i] * l;
    suml2 = suml2 + qw[i] * l * l;
  }
  float scale = truthy(suml2) ? sumlx / suml2 : 0, best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -(fn + 0.1f * (float)is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      const float l = js_max(-fn, js_min(fn - 1, nearest(iscale * x[i])));
      sumlx = sumlx + qw[i] * x[i] * l;
      suml2 = suml2 + qw[i] * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) L[i] = (int8_t)js_u8(fn + js_max(-fn, js_min(fn - 1, nearest(iscale * x[i]))));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/* weights[l] = qw[l]·√(σ² + x²) of n values (importance × llama.cpp's error weight); returns their sum, in order. */
static float importance(int n, const float *x, const float *qw, float sigma2, float *w) {
  float sumw = 0;
  for (int l = 0; l < n; l++) w[l] = qw[l] * sqrtf(sigma2 + x[l] * x[l]);
  for (int l = 0; l < n; l++) sumw = sumw + w[l];
  return sumw;
}

/* σ² of Q4_K, Q5_K and Q3_K with weights (kquant-weighted.ts): 2·Σ x² / n over the super-block, in order, as
 * llama.cpp writes it (2*sum_x2/QK_K: 2·Σ x² may overflow where Σ x² · (2/n) does not). */
static float k_sigma2(const float *x, int n) {
  float s = 0;
  for (int l = 0; l < n; l++) s = s + x[l] * x[l];
  return 2 * s / (float)n;
}

/* σ² of Q4_0 … Q5_1 with weights (weighted.ts rowSigma2): Σ x² over the row of n values, in order, / n; Q2_K's
 * over its super-block (kquant-weighted.ts: sumSquares / QK). */
static float row_sigma2(const float *x, int n) {
  float s = 0;
  for (int j = 0; j < n; j++) s = s + x[j] * x[j];
  return s / (float)n;
}

/* σ² of IQ4 with weights (weighted.ts iq4Sigma2): Σ x² · (2/n) over the (super-)block, as llama.cpp writes it. */
static float iq4_sigma2(const float *x, int n) {
  float s = 0;
  for (int j = 0; j < n; j++) s = s + x[j] * x[j];
  return s * (2.0f / (float)n);
}

/*
 * What the importance-weighted lanes read (quantize-lanes.h weigh): x in sub-blocks of n values; sub-block k weighed
 * by qw·√(σ² + x²) from qw + n·(k % nq) (nq sub-blocks a row), σ² = sigma2 of the `span` values holding it (its
 * super-block, its block or its row); by qw itself where sigma2 is NULL (Q6_K). at, s2: the span whose σ² was taken
 * last, and that σ² (a row's is taken once, not once a lane group).
 */
typedef struct {
  const float *x, *qw;
  int n, nq, span;
  float (*sigma2)(const float *x, int n);
  size_t at;
  float s2;
} weighing;

/* The 5th bits of 32 levels as Q5_0 / Q5_1's little-endian qh (bit j: value j). */
static void put_qh(const uint8_t *L, uint8_t *o) {
  uint32_t qh = 0;
  for (int j = 0; j < 32; j++) qh |= (uint32_t)((L[j] >> 4) & 1) << j;
  put_u32(o, qh);
}

/* ---- one copy per instruction-set level -------------------------------------------------------------- */

typedef struct {
  void (*k45)(const float *x, int nb, uint8_t *dst, int five);
  void (*q2_k)(const float *x, int nb, uint8_t *dst);
  void (*q3_k)(const float *x, int nb, uint8_t *dst);
  void (*q6_k)(const float *x, int nb, uint8_t *dst);
  void (*q8_0)(const float *x, size_t nb, uint8_t *dst);
  void (*gauss)(float *out, size_t n, size_t m, const uint32_t (*st)[4], double scale);
  void (*deq_q8_0)(const uint8_t *src, size_t nb, float *out);
  /* with importance weights qw (one per column of a row of nbr super-blocks; super-block b reads those of b % nbr) */
  void (*k45w)(const float *x, int nb, uint8_t *dst, int five, const float *qw, int nbr);
  void (*q2_kw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr);
  void (*q3_kw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr);
  void (*q6_kw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr);
  void (*iq4_xs)(const float *x, size_t nb, uint8_t *dst);
  void (*iq4_nl)(const float *x, size_t nb, uint8_t *dst);
  /* the 32-value types and IQ4 with importance weights qw (nbr blocks per row; block b reads those of b % nbr) */
  void (*qx0w)(const float *x, int nb, uint8_t *dst, int five, const float *qw, int nbr);
  void (*qkx1w)(const float *x, int nb, uint8_t *dst, int five, const float *qw, int nbr);
  void (*iq4_nlw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr);
  void (*iq4_xsw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr);
  int lanes; /* of gauss (≤ 64) */
} kq_table;

/* quantize-lanes.h: the lane-parallel searches and the K-quant block loops for vectors of W floats, G of
 * them interleaved (independent dependency chains in flight), compiled for TARGET. Every level performs
 * the same float32 operations (no contraction), so every level writes the same bytes. */
#define SUF base
#define W 4
#define G 4
#define TARGET
#include "quantize-lanes.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAS_X86_LEVELS 1
#define SUF avx2
#define W 8
#define G 2
#define TARGET __attribute__((target("avx2,fma,f16c")))
#include "quantize-lanes.h"
/* AVX-512: 32 registers hold four interleaved chains (≈ 8 % faster than two on Zen 5) */
#define SUF avx512
#define W 16
#define G 4
#define TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#include "quantize-lanes.h"
#endif

static const kq_table *kq_for(int isa) {
#ifdef HAS_X86_LEVELS
  if (isa == GN_ISA_AVX512 || isa == GN_ISA_AVX512_BF16) return &kq_avx512;
  if (isa == GN_ISA_AVX2) return &kq_avx2;
#endif
  (void)isa;
  return &kq_base;
}

/* ---- grok synth's stand-in weights -------------------------------------------------------------------- */

/* One xorshift128 step (pool-jobs.ts gaussianFill). */
static inline void xs_step(uint32_t s[4]) {
  const uint32_t t = s[0] ^ (s[0] << 11);
  s[0] = s[1];
  s[1] = s[2];
  s[2] = s[3];
  s[3] = s[3] ^ (s[3] >> 19) ^ (t ^ (t >> 8));
}

/* The scalar definition: value = (u & 0xffff) + (u >> 16) + (d & 0xffff) + (d >> 16) − 131070 for two
 * consecutive outputs u, d, times `scale` in double, rounded once to float32 (a Float32Array store). */
static void gauss_scalar(float *out, size_t n, uint32_t s[4], double scale) {
  for (size_t i = 0; i < n; i++) {
    xs_step(s);
    const uint32_t u = s[3];
    xs_step(s);
    const uint32_t d = s[3];
    const int32_t sum = (int32_t)((u & 0xffff) + (u >> 16) + (d & 0xffff) + (d >> 16)) - 131070;
    out[i] = (float)((double)sum * scale);
  }
}

/*
 * xorshift128 is linear over GF(2): T^(2^i) as 128 columns of 128 bits (xs_jump_cols[i][k] = T^(2^i) e_k)
 * lets a lane start 2^i·(…) steps ahead in O(128) per set bit, so one stream is generated by many lanes,
 * each over its own contiguous segment, with the stream's exact values.
 */
static uint32_t xs_jump_cols[64][128][4];
static pthread_once_t xs_jump_once = PTHREAD_ONCE_INIT;

static void xs_apply(const uint32_t (*cols)[4], const uint32_t s[4], uint32_t r[4]) {
  uint32_t o[4] = {0, 0, 0, 0};
  for (int k = 0; k < 128; k++)
    if ((s[k >> 5] >> (k & 31)) & 1)
      for (int w = 0; w < 4; w++) o[w] ^= cols[k][w];
  memcpy(r, o, sizeof o);
}

static void xs_jump_init(void) {
  for (int k = 0; k < 128; k++) {
    uint32_t e[4] = {0, 0, 0, 0};
    e[k >> 5] = 1u << (k & 31);
    xs_step(e);
    memcpy(xs_jump_cols[0][k], e, sizeof e);
  }
  for (int i = 1; i < 64; i++)
    for (int k = 0; k < 128; k++) xs_apply((const uint32_t (*)[4])xs_jump_cols[i - 1], xs_jump_cols[i - 1][k], xs_jump_cols[i][k]);
}

/* s advanced by `steps` steps. */
static void xs_jump(uint32_t s[4], uint64_t steps) {
  pthread_once(&xs_jump_once, xs_jump_init);
  for (int i = 0; i < 64; i++)
    if ((steps >> i) & 1) xs_apply((const uint32_t (*)[4])xs_jump_cols[i], s, s);
}

/* pool-jobs.ts gaussianFill after its seeding, from xorshift128 state s (the values of gauss_scalar). */
void gn_gauss_fill(float *out, size_t n, const uint32_t s[4], double scale) {
  uint32_t st[4];
  memcpy(st, s, sizeof st);
  if (n < 8192) {
    gauss_scalar(out, n, st, scale);
    return;
  }
  const kq_table *kq = kq_for(gn_cpu_best_isa());
  const size_t m = (n + (size_t)kq->lanes - 1) / (size_t)kq->lanes;
  uint32_t lane[64][4];
  memcpy(lane[0], st, sizeof st);
  for (int k = 1; k < kq->lanes; k++) {
    memcpy(lane[k], lane[k - 1], sizeof st);
    xs_jump(lane[k], 2 * (uint64_t)m); /* two steps per value */
  }
  kq->gauss(out, n, m, (const uint32_t (*)[4])lane, scale);
}

/* ---- dequantisation of the common source types (convert's GGUF sources) -------------------------------- */

/* out[0 … n) = the values of n `type` values at src, as the TypeScript dequantisers give them (a NaN may
 * differ in sign or payload). q8_0, f16, bf16, f32 only (GN_ETYPE otherwise): their values are exact
 * products, so there is one right answer. */
int gn_dequantize(int type, const uint8_t *src, size_t src_len, size_t n, float *out, size_t out_len) {
  const gn_type_info *t = gn_type(type);
  if (!t || (type != GN_Q8_0 && type != GN_F16 && type != GN_BF16 && type != GN_F32)) return GN_ETYPE;
  if (n % (size_t)t->block_size || out_len < n || src_len < n / (size_t)t->block_size * (size_t)t->block_bytes) return GN_EINVAL;
  switch (type) {
  case GN_F32: memcpy(out, src, 4 * n); break;
  case GN_F16:
    for (size_t i = 0; i < n; i++) out[i] = f16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
    break;
  case GN_BF16:
    for (size_t i = 0; i < n; i++) {
      const uint32_t u = (uint32_t)(src[2 * i] | (src[2 * i + 1] << 8)) << 16;
      memcpy(out + i, &u, 4);
    }
    break;
  default: kq_for(gn_cpu_best_isa())->deq_q8_0(src, n / 32, out); /* exact at every level: 11 × 8 bits */
  }
  return GN_OK;
}

/* ---- the checkpoint's int8 + bf16 scales as GGUF rows (src/quant/xai8.ts) ------------------------------ */

static inline float bf16_to_f32(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#if defined(__SSE2__)
#include <emmintrin.h>
/* 16 × 16 bytes transposed in registers: pairing rows i and i + 8 with byte unpacks rotates the 8-bit index
 * (row, column) left by one bit, so four rounds turn (r, c) into (c, r). */
static inline void transpose16(__m128i r[16]) {
  for (int round = 0; round < 4; round++) {
    __m128i t[16];
    for (int i = 0; i < 8; i++) {
      t[2 * i] = _mm_unpacklo_epi8(r[i], r[i + 8]);
      t[2 * i + 1] = _mm_unpackhi_epi8(r[i], r[i + 8]);
    }
    memcpy(r, t, sizeof t);
  }
}
#endif

/* The int8 columns r0 … r0+count−1 of q [n_in, n_out] as rows: qt[j·n_in + k] = q[k, r0 + j]. 64 × 64 tiles, so
 * that the 64 source rows (n_out bytes apart: a page each) and the 64 destination rows stay in cache and TLB;
 * inside, 16 × 16 register transposes where the tile is whole. */
static void xai8_transpose(const int8_t *q, int n_in, int n_out, int r0, int count, int8_t *qt) {
  enum { T = 64 };
  for (int k0 = 0; k0 < n_in; k0 += T) {
    const int k1 = k0 + T < n_in ? k0 + T : n_in;
    for (int j0 = 0; j0 < count; j0 += T) {
      const int j1 = j0 + T < count ? j0 + T : count;
      int kf = k0, jf = j0; /* the part done by 16 × 16 blocks: [k0, kf) × [j0, jf) */
#if defined(__SSE2__)
      kf = k0 + (k1 - k0) / 16 * 16;
      jf = j0 + (j1 - j0) / 16 * 16;
      for (int kb = k0; kb < kf; kb += 16)
        for (int jb = j0; jb < jf; jb += 16) {
          __m128i r[16];
          for (int i = 0; i < 16; i++) r[i] = _mm_loadu_si128((const __m128i *)(q + (size_t)(kb + i) * (size_t)n_out + (size_t)(r0 + jb)));
          transpose16(r);
          for (int i = 0; i < 16; i++) _mm_storeu_si128((__m128i *)(qt + (size_t)(jb + i) * (size_t)n_in + (size_t)kb), r[i]);
        }
#endif
      for (int j = j0; j < j1; j++) { /* the rest: columns past jf, and rows past kf */
        const int ks = j < jf ? kf : k0;
        const int8_t *src = q + (size_t)ks * (size_t)n_out + (size_t)(r0 + j);
        int8_t *dst = qt + (size_t)j * (size_t)n_in;
        for (int k = ks; k < k1; k++, src += n_out) dst[k] = *src;
      }
    }
  }
}

/* Per-thread scratch of the transposed columns (a converter job's, reused from job to job). */
static __thread int8_t *qt_buf;
static __thread size_t qt_cap;
static int8_t *qt_scratch(size_t bytes) {
  if (bytes > qt_cap) {
    free(qt_buf);
    qt_buf = malloc(bytes);
    qt_cap = qt_buf ? bytes : 0;
  }
  return qt_buf;
}

/* Transposed row j (n_in levels) times its scales: out[k] = qt[k]·s[k / (n_in/groups)], exact in float32. */
static void xai8_row_values(const int8_t *qt, const uint16_t *sc, int n_in, int n_out, int groups, int col, float *out) {
  const int gs = n_in / groups;
  for (int g = 0; g < groups; g++) {
    const float s = bf16_to_f32(sc[(size_t)g * (size_t)n_out + (size_t)col]);
    for (int k = g * gs; k < (g + 1) * gs; k++) out[k] = (float)qt[k] * s;
  }
}

static int xai8_check(size_t q_len, size_t sc_len, int n_in, int n_out, int groups, int r0, int count) {
  if (n_in <= 0 || n_out <= 0 || groups <= 0 || n_in % groups || r0 < 0 || count < 0 || r0 > n_out - count) return GN_EINVAL;
  if (q_len < (size_t)n_in * (size_t)n_out || sc_len < (size_t)groups * (size_t)n_out) return GN_EINVAL;
  return GN_OK;
}

/* Rows r0 … r0+count−1 of Wᵀ from q [n_in, n_out] and scales [groups, n_out] (xai8Rows): out[j·n_in + k] =
 * q[k, r0 + j]·s[k / (n_in/groups), r0 + j], a product that is exact in float32. */
int gn_xai8_rows(const int8_t *q, size_t q_len, const uint16_t *sc, size_t sc_len, int n_in, int n_out, int groups, int r0, int count,
                 float *out, size_t out_len) {
  if (xai8_check(q_len, sc_len, n_in, n_out, groups, r0, count) || out_len < (size_t)count * (size_t)n_in) return GN_EINVAL;
  int8_t *qt = qt_scratch((size_t)count * (size_t)n_in);
  if (!qt && count) return GN_ENOMEM;
  xai8_transpose(q, n_in, n_out, r0, count, qt);
  for (int j = 0; j < count; j++) xai8_row_values(qt + (size_t)j * (size_t)n_in, sc, n_in, n_out, groups, r0 + j, out + (size_t)j * (size_t)n_in);
  return GN_OK;
}

/* The same rows quantised into `type` blocks (with importance weights qw when not NULL), a band of rows at a
 * time so the floats stay in cache: gn_xai8_rows + gn_quantize(_weighted) without a whole job of floats. */
int gn_xai8_quantize(int isa, int type, const int8_t *q, size_t q_len, const uint16_t *sc, size_t sc_len, int n_in, int n_out, int groups,
                     int r0, int count, uint8_t *dst, size_t dst_len, const float *qw, size_t qw_len) {
  const gn_type_info *t = gn_type(type);
  if (!t) return GN_ETYPE;
  if (xai8_check(q_len, sc_len, n_in, n_out, groups, r0, count) || n_in % t->block_size) return GN_EINVAL;
  const size_t rb = (size_t)n_in / (size_t)t->block_size * (size_t)t->block_bytes;
  if (dst_len < (size_t)count * rb) return GN_EINVAL;
  int8_t *qt = qt_scratch((size_t)count * (size_t)n_in);
  const int band = n_in >= 65536 ? 1 : 65536 / n_in;
  float *vals = malloc(sizeof(float) * (size_t)band * (size_t)n_in);
  if ((!qt && count) || !vals) {
    free(vals);
    return GN_ENOMEM;
  }
  xai8_transpose(q, n_in, n_out, r0, count, qt);
  int rc = GN_OK;
  for (int j0 = 0; j0 < count && rc == GN_OK; j0 += band) {
    const int k = count - j0 < band ? count - j0 : band;
    for (int j = 0; j < k; j++)
      xai8_row_values(qt + (size_t)(j0 + j) * (size_t)n_in, sc, n_in, n_out, groups, r0 + j0 + j, vals + (size_t)j * (size_t)n_in);
    const size_t n = (size_t)k * (size_t)n_in;
    rc = qw ? gn_quantize_weighted(isa, type, vals, n, n_in, k, dst + (size_t)j0 * rb, (size_t)k * rb, qw, qw_len)
            : gn_quantize(isa, type, vals, n, n_in, k, dst + (size_t)j0 * rb, (size_t)k * rb);
  }
  free(vals);
  return rc;
}

/* JavaScript Math.round (half toward +∞), in double; NaN and ±∞ pass through. */
static inline double js_round(double v) {
  if (!isfinite(v)) return v;
  const double r = floor(v);
  return v - r >= 0.5 ? r + 1 : r;
}
/* ggml-ref.ts roundAway (C roundf) in double. */
static inline double js_round_away(double v) {
  const double a = fabs(v);
  double r = floor(a);
  if (a - r >= 0.5) r += 1;
  return v < 0 ? -r : r;
}

/* One block of xai8RowsToQ8_0 from its 32 exact values v, where candidate A is not known to be exact. */
static int xai8_q8_0_block(const float *v, int aligned, uint16_t h_a, double inv, uint8_t *o) {
  float amax = 0;
  for (int i = 0; i < 32; i++) amax = js_max(amax, fabsf(v[i]));
  const float d_b = amax / 127, id_b = truthy(d_b) ? 1 / d_b : 0;
  int8_t q_b[32], q_a[32];
  for (int i = 0; i < 32; i++) q_b[i] = (int8_t)js_u8(js_round_away(v[i] * id_b));
  const uint16_t h_b = f32_to_f16(d_b);
  const double d_bv = f16_to_f32(h_b);
  double err_b = 0;
  for (int i = 0; i < 32; i++) {
    const double e = q_b[i] * d_bv - v[i];
    err_b += e * e;
  }
  int use_a = 0;
  if (aligned) {
    const double d_av = f16_to_f32(h_a);
    int ok = isfinite(d_av);
    double err_a = 0;
    for (int i = 0; ok && i < 32; i++) {
      const double r = js_round((double)v[i] * inv);
      if (r == -128) ok = 0;
      q_a[i] = (int8_t)js_u8(r);
      const double e = r * d_av - v[i];
      err_a += e * e;
    }
    use_a = ok && err_a <= err_b;
  }
  if (use_a) {
    o[0] = (uint8_t)h_a;
    o[1] = (uint8_t)(h_a >> 8);
    for (int i = 0; i < 32; i++) o[2 + i] = (uint8_t)q_a[i];
    return 1;
  }
  wr_f16(o, d_b);
  for (int i = 0; i < 32; i++) o[2 + i] = (uint8_t)q_b[i];
  return 0;
}

/* xai8RowsToQ8_0 (src/quant/xai8.ts), the same bytes: per block, the checkpoint's own scale and levels
 * (candidate A) where that is at least as good as llama.cpp's Q8_0 rule (candidate B). Where the scale s
 * is finite, non-zero and an f16 value, A is exact unless a level is −128 — xai8.ts rounds q·s·(1/s) back to q
 * — so those blocks copy the levels; the others take the float path. Returns the blocks that kept A, or −1
 * on bad arguments. vals (count·n_in floats, or NULL): left holding the rows' values. */
long long gn_xai8_q8_0(const int8_t *q, size_t q_len, const uint16_t *sc, size_t sc_len, int n_in, int n_out, int groups, int r0, int count,
                       uint8_t *dst, size_t dst_len, float *vals) {
  if (n_in % 32 || xai8_check(q_len, sc_len, n_in, n_out, groups, r0, count)) return -1;
  if (dst_len < (size_t)count * (size_t)(n_in / 32) * 34) return -1;
  int8_t *qt = qt_scratch((size_t)count * (size_t)n_in);
  if (!qt && count) return -1;
  xai8_transpose(q, n_in, n_out, r0, count, qt);
  const int gs = n_in / groups, aligned = gs % 32 == 0;
  long long kept = 0;
  float v[32];
  for (int j = 0; j < count; j++) {
    const int n = r0 + j;
    const int8_t *row = qt + (size_t)j * (size_t)n_in;
    if (vals) xai8_row_values(row, sc, n_in, n_out, groups, n, vals + (size_t)j * (size_t)n_in);
    int last_g = -1, s_exact = 0, direct = 0;
    float s_f = 0;
    double inv = 0;
    uint16_t h_a = 0;
    for (int b = 0; b < n_in / 32; b++) {
      const int8_t *qb = row + 32 * (size_t)b;
      uint8_t *o = dst + ((size_t)j * (size_t)(n_in / 32) + (size_t)b) * 34;
      const int g = 32 * b / gs;
      if (aligned && g != last_g) {
        last_g = g;
        s_f = bf16_to_f32(sc[(size_t)g * (size_t)n_out + (size_t)n]);
        h_a = f32_to_f16(s_f);
        s_exact = f16_to_f32(h_a) == s_f;
        inv = s_f == 0 ? 0 : 1 / (double)s_f;
        direct = s_exact && s_f != 0 && isfinite(s_f);
      }
      if (aligned && direct) {
        int neg = 0;
        for (int i = 0; i < 32; i++) neg |= qb[i] == -128;
        if (!neg) { /* round(q·s·(1/s)) = q: the checkpoint's levels, exactly */
          o[0] = (uint8_t)h_a;
          o[1] = (uint8_t)(h_a >> 8);
          memcpy(o + 2, qb, 32);
          kept++;
          continue;
        }
      }
      if (!aligned) { /* a block across scale groups: candidate B only */
        for (int i = 0; i < 32; i++) v[i] = (float)qb[i] * bf16_to_f32(sc[(size_t)((32 * b + i) / gs) * (size_t)n_out + (size_t)n]);
        kept += xai8_q8_0_block(v, 0, 0, 0, o);
        continue;
      }
      if (s_exact && !direct) { /* s = 0 or ±∞: xai8.ts's own arithmetic decides */
        int ok = 1;
        for (int i = 0; i < 32; i++) {
          const double r = js_round((double)((float)qb[i] * s_f) * inv);
          if (r == -128) { ok = 0; break; }
          o[2 + i] = js_u8(r);
        }
        if (ok) {
          o[0] = (uint8_t)h_a;
          o[1] = (uint8_t)(h_a >> 8);
          kept++;
          continue;
        }
      }
      for (int i = 0; i < 32; i++) v[i] = (float)qb[i] * s_f;
      kept += xai8_q8_0_block(v, aligned, h_a, inv, o);
    }
  }
  return kept;
}

/* ---- entry point ---------------------------------------------------------------------------------------- */

/* gn_quantize with an importance matrix: qw holds n_in weights, the same for every row (src/quant/weighted.ts:
 * the K-quants, Q4_0 … Q5_1, IQ4_NL, IQ4_XS and IQ3_S). */
int gn_quantize_weighted(int isa, int type, const float *x, size_t x_len, int n_in, int rows, uint8_t *dst, size_t dst_len, const float *qw, size_t qw_len) {
  const gn_type_info *t = gn_type(type);
  if (!gn_cpu_can_run(isa)) return GN_EINVAL;
  switch (type) {
  case GN_Q2_K: case GN_Q3_K: case GN_Q4_K: case GN_Q5_K: case GN_Q6_K:
  case GN_Q4_0: case GN_Q4_1: case GN_Q5_0: case GN_Q5_1: case GN_IQ4_NL: case GN_IQ4_XS: case GN_IQ3_S: break;
  default: return GN_ETYPE;
  }
  if (!t) return GN_ETYPE;
  if (n_in <= 0 || rows < 0 || n_in % t->block_size || qw_len < (size_t)n_in) return GN_EINVAL;
  const size_t n = (size_t)n_in * (size_t)rows, nb = n / (size_t)t->block_size;
  if (x_len < n || dst_len < nb * (size_t)t->block_bytes || nb > (size_t)INT32_MAX) return GN_EINVAL;
  const kq_table *kq = kq_for(isa);
  const int nbr = n_in / t->block_size;
  switch (type) {
  case GN_Q2_K: kq->q2_kw(x, (int)nb, dst, qw, nbr); break;
  case GN_Q3_K: kq->q3_kw(x, (int)nb, dst, qw, nbr); break;
  case GN_Q4_K: kq->k45w(x, (int)nb, dst, 0, qw, nbr); break;
  case GN_Q5_K: kq->k45w(x, (int)nb, dst, 1, qw, nbr); break;
  case GN_Q6_K: kq->q6_kw(x, (int)nb, dst, qw, nbr); break;
  case GN_Q4_0: kq->qx0w(x, (int)nb, dst, 0, qw, nbr); break;
  case GN_Q5_0: kq->qx0w(x, (int)nb, dst, 1, qw, nbr); break;
  case GN_Q4_1: kq->qkx1w(x, (int)nb, dst, 0, qw, nbr); break;
  case GN_Q5_1: kq->qkx1w(x, (int)nb, dst, 1, qw, nbr); break;
  case GN_IQ4_NL: kq->iq4_nlw(x, (int)nb, dst, qw, nbr); break;
  case GN_IQ4_XS: kq->iq4_xsw(x, (int)nb, dst, qw, nbr); break;
  default: return iq3_s_rows(x, nb, dst, qw, nbr);
  }
  return GN_OK;
}

int gn_quantize(int isa, int type, const float *x, size_t x_len, int n_in, int rows, uint8_t *dst, size_t dst_len) {
  const gn_type_info *t = gn_type(type);
  if (!gn_cpu_can_run(isa)) return GN_EINVAL;
  const kq_table *kq = kq_for(isa);
  if (!t || n_in <= 0 || rows < 0 || n_in % t->block_size) return t ? GN_EINVAL : GN_ETYPE;
  size_t n = (size_t)n_in * (size_t)rows, nb = n / (size_t)t->block_size;
  if (x_len < n || dst_len < nb * (size_t)t->block_bytes) return GN_EINVAL;
  if (nb > (size_t)INT32_MAX) return GN_EINVAL;
  switch (type) {
  case GN_F32: memcpy(dst, x, 4 * n); return GN_OK;
  case GN_F16:
    for (size_t i = 0; i < n; i++) {
      uint16_t h = f32_to_f16(x[i]);
      dst[2 * i] = (uint8_t)h;
      dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return GN_OK;
  case GN_BF16:
    for (size_t i = 0; i < n; i++) {
      uint16_t h = f32_to_bf16(x[i]);
      dst[2 * i] = (uint8_t)h;
      dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return GN_OK;
  case GN_Q8_0: kq->q8_0(x, nb, dst); return GN_OK;
  case GN_Q4_0: for (size_t b = 0; b < nb; b++) q4_0_block(x + 32 * b, dst + 18 * b); return GN_OK;
  case GN_Q4_1: for (size_t b = 0; b < nb; b++) q4_1_block(x + 32 * b, dst + 20 * b); return GN_OK;
  case GN_Q5_0: for (size_t b = 0; b < nb; b++) q5_0_block(x + 32 * b, dst + 22 * b); return GN_OK;
  case GN_Q5_1: for (size_t b = 0; b < nb; b++) q5_1_block(x + 32 * b, dst + 24 * b); return GN_OK;
  case GN_IQ4_NL: kq->iq4_nl(x, nb, dst); return GN_OK;
  case GN_IQ4_XS: kq->iq4_xs(x, nb, dst); return GN_OK;
  case GN_IQ3_S: return iq3_s_rows(x, nb, dst, NULL, 1);
  case GN_Q2_K: kq->q2_k(x, (int)nb, dst); return GN_OK;
  case GN_Q3_K: kq->q3_k(x, (int)nb, dst); return GN_OK;
  case GN_Q4_K: kq->k45(x, (int)nb, dst, 0); return GN_OK;
  case GN_Q5_K: kq->k45(x, (int)nb, dst, 1); return GN_OK;
  case GN_Q6_K: kq->q6_k(x, (int)nb, dst); return GN_OK;
  default: return GN_ETYPE;
  }
}
