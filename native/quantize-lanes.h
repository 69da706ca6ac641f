/*
 * The lane-parallel part of native/quantize.c, included once per instruction-set level with
 *   SUF (name suffix), W (floats per vector), G (vectors interleaved), TARGET (function attribute).
 * LANES = W·G sub-blocks are searched at once; lane k = W·g + j is element j of vector g. Each lane
 * performs exactly the scalar sequence of float32 operations of its sub-block (ggml-ref.ts), so the lanes
 * are independent and the result does not depend on W, G or the level. G > 1 keeps G independent
 * accumulation chains in flight (the sums are sequential per lane: their latency, not the arithmetic,
 * bounds a single chain).
 */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define N(name) CAT(name, SUF)
#define LANES (W * G)
#define FN static inline __attribute__((always_inline)) TARGET
#define FOR_G for (int g = 0; g < G; g++)
#define vf N(vf)
#define vi N(vi)
#define vb N(vb)

typedef float vf __attribute__((vector_size(4 * W)));
typedef int32_t vi __attribute__((vector_size(4 * W)));
typedef uint8_t vb __attribute__((vector_size(W)));

FN vf N(splat)(float v) { return (vf){0} + v; }
/* m ? a : b per lane (m: a comparison's all-ones / zero lanes). */
FN vf N(sel)(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
FN vf N(vabs)(vf v) { return (vf)((vi)v & 0x7fffffff); }
FN vf N(vnearest)(vf v) { return (v + 12582912.0f) - 12582912.0f; }
/*
 * vnearest where the result is clamped into a range containing 0 right after (or offset by a non-zero
 * integer): one rounding instruction where there is one. It differs from vnearest only in the sign of a zero
 * (−0.5 … −0 rounds to −0) and beyond ±2^22 (clamped either way), which the clamp or the offset erases.
 */
FN vf N(vround)(vf v) {
#if defined(__x86_64__) && W == 16
  return (vf)_mm512_roundscale_ps((__m512)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(__x86_64__) && W == 8
  return (vf)_mm256_round_ps((__m256)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  return N(vnearest)(v);
#endif
}
/*
 * Math.max(lo, Math.min(hi, v)): a NaN stays NaN. x86's min/max have exactly these semantics with the bound
 * first: minps(a, b) = a < b ? a : b, maxps(a, b) = a > b ? a : b (the second operand when either is NaN).
 */
FN vf N(vclamp)(vf v, float lo, float hi) {
#if defined(__x86_64__) && W == 16
  return (vf)_mm512_max_ps(_mm512_set1_ps(lo), _mm512_min_ps(_mm512_set1_ps(hi), (__m512)v));
#elif defined(__x86_64__) && W == 8
  return (vf)_mm256_max_ps(_mm256_set1_ps(lo), _mm256_min_ps(_mm256_set1_ps(hi), (__m256)v));
#else
  v = N(sel)(v > hi, N(splat)(hi), v);
  return N(sel)(v < lo, N(splat)(lo), v);
#endif
}
/* A NaN becomes 0, as a typed-array store makes it. */
FN vf N(vstored)(vf v) { return N(sel)(v == v, v, N(splat)(0)); }
/* vstored(vclamp(v, 0, hi)): on x86 in two instructions, the NaN operand of maxps first (it yields 0). */
FN vf N(vlevel)(vf v, float hi) {
#if defined(__x86_64__) && W == 16
  return (vf)_mm512_max_ps(_mm512_min_ps(_mm512_set1_ps(hi), (__m512)v), _mm512_setzero_ps());
#elif defined(__x86_64__) && W == 8
  return (vf)_mm256_max_ps(_mm256_min_ps(_mm256_set1_ps(hi), (__m256)v), _mm256_setzero_ps());
#else
  return N(vstored)(N(vclamp)(v, 0, hi));
#endif
}

#define splat N(splat)
#define sel N(sel)
#define vabs N(vabs)
#define vnearest N(vnearest)
#define vround N(vround)
#define vclamp N(vclamp)
#define vstored N(vstored)
#define vlevel N(vlevel)

/* L[i] = the stored level clamp(nearest((x[i] + dm)/dd), lo, hi) + off for n values (a multiple of W): the
 * levels recomputed from the stored scales. dm = 0 stands for "no min": x + 0 = x but for −0, and ±0/dd
 * both round to level 0. */
FN void N(relevel)(const float *x, int n, float dm, float dd, float lo, float hi, float off, uint8_t *L) {
  for (int i = 0; i < n; i += W) {
    vf v;
    memcpy(&v, x + i, sizeof v);
    const vf l = vstored(vclamp(vround((v + dm) / dd), lo, hi) + off);
    /* exact small integers: one vector conversion and narrowing (not W scalar conversions) */
    const vb b = __builtin_convertvector(__builtin_convertvector(l, vi), vb);
    memcpy(L + i, &b, W);
  }
}

/* Lane k of a [G] group of vectors. */
#define LANE(v, k) ((v)[(k) / W][(k) % W])

/*
 * make_qkx2_quants (ggml-ref.ts makeQkx2Quants) on LANES sub-blocks of n values: x[i], weights w[i].
 * Out per lane: scale, negmin (the `qkx2Min`), and how to recompute its levels (qkx2_levels): the iscale and
 * min of the accepted step, or flat (max == min: levels 0). The TypeScript skips a step whose levels equal
 * the previous step's (exactly: same sums, same error, never better); here every step is evaluated.
 */
FN void N(qkx2_lanes)(int n, float nmax, const vf (*x)[G], const vf (*w)[G], float rmin, float rdelta, int nstep, int mad,
                      float *out_scale, float *out_negmin, float *out_isc, float *out_min, int *out_flat) {
  vf mn[G], mx[G], sum_w[G], sum_x[G], min0[G], l_isc[G], l_min[G], scale[G], best[G];
  vi flat[G];
  FOR_G {
    mn[g] = mx[g] = x[0][g];
    sum_w[g] = w[0][g];
    sum_x[g] = w[0][g] * x[0][g];
  }
  for (int i = 1; i < n; i++) FOR_G {
    mn[g] = sel(x[i][g] < mn[g], x[i][g], mn[g]);
    mx[g] = sel(x[i][g] > mx[g], x[i][g], mx[g]);
    sum_w[g] = sum_w[g] + w[i][g];
    sum_x[g] = sum_x[g] + w[i][g] * x[i][g];
  }
  FOR_G {
    mn[g] = sel(mn[g] > 0, splat(0), mn[g]);
    flat[g] = mx[g] == mn[g]; /* max == min: levels 0, scale 0, −min, before any search */
    min0[g] = l_min[g] = mn[g];
    l_isc[g] = nmax / (mx[g] - mn[g]);
    scale[g] = 1 / l_isc[g];
    best[g] = splat(0);
  }
  for (int i = 0; i < n; i++) FOR_G {
    vf l = vclamp(vnearest(l_isc[g] * (x[i][g] - mn[g])), 0, nmax);
    vf diff = (scale[g] * l + mn[g]) - x[i][g];
    diff = mad ? vabs(diff) : diff * diff;
    best[g] = best[g] + w[i][g] * diff;
  }
  vf lv[32][G];
  for (int is = 0; is <= nstep; is++) {
    const float step = (rmin + rdelta * (float)is) + nmax;
    vf isc[G], sum_l[G], sum_l2[G], sum_xl[G], ts[G], tm[G], cur[G];
    FOR_G {
      isc[g] = step / (mx[g] - mn[g]);
      sum_l[g] = sum_l2[g] = sum_xl[g] = splat(0);
    }
    for (int i = 0; i < n; i++) FOR_G {
      vf l = vlevel(vround(isc[g] * (x[i][g] - mn[g])), nmax); /* the sums read the stored Laux */
      lv[i][g] = l;
      vf wl = w[i][g] * l;
      sum_l[g] = sum_l[g] + wl;
      sum_l2[g] = sum_l2[g] + wl * l;
      sum_xl[g] = sum_xl[g] + wl * x[i][g];
    }
    FOR_G {
      const vf D = sum_w[g] * sum_l2[g] - sum_l[g] * sum_l[g];
      const vf s = (sum_w[g] * sum_xl[g] - sum_x[g] * sum_l[g]) / D;
      const vf m = (sum_l2[g] * sum_x[g] - sum_l[g] * sum_xl[g]) / D;
      const vi pos = m > 0;
      ts[g] = sel(pos, sum_xl[g] / sum_l2[g], s);
      tm[g] = sel(pos, splat(0), m);
      cur[g] = sel(D > 0, splat(0), splat(NAN)); /* NaN: never below the best (D ≤ 0 skips the step) */
    }
    for (int i = 0; i < n; i++) FOR_G {
      vf diff = (ts[g] * lv[i][g] + tm[g]) - x[i][g];
      diff = mad ? vabs(diff) : diff * diff;
      cur[g] = cur[g] + w[i][g] * diff;
    }
    FOR_G {
      const vi take = cur[g] < best[g];
      best[g] = sel(take, cur[g], best[g]);
      scale[g] = sel(take, ts[g], scale[g]);
      l_isc[g] = sel(take, isc[g], l_isc[g]);
      l_min[g] = sel(take, mn[g], l_min[g]);
      mn[g] = sel(take, tm[g], mn[g]);
    }
  }
  FOR_G {
    vf sc = sel(flat[g], splat(0), scale[g]), nm = -sel(flat[g], min0[g], mn[g]);
    for (int j = 0; j < W; j++) {
      out_scale[W * g + j] = sc[j];
      out_negmin[W * g + j] = nm[j];
      out_isc[W * g + j] = l_isc[g][j];
      out_min[W * g + j] = l_min[g][j];
      out_flat[W * g + j] = flat[g][j] != 0;
    }
  }
}

/* Largest magnitude and the value that has it, per lane (the first one on ties, as the scalar loops). */
FN void N(amax_lanes)(int n, const vf (*x)[G], vf *amax, vf *max) {
  FOR_G amax[g] = max[g] = splat(0);
  for (int i = 0; i < n; i++) FOR_G {
    vi gt = vabs(x[i][g]) > amax[g];
    max[g] = sel(gt, x[i][g], max[g]);
    amax[g] = sel(gt, vabs(x[i][g]), amax[g]);
  }
}

/*
 * make_qx_quants with rmse_type 1 (makeQxQuants, Q6_K; weights qw, else x²) on LANES groups of n values. Out per
 * lane: the scale, and the chosen candidate's iscale (or zero: all below GROUP_MAX_EPS) for qx_levels.
 */
FN void N(qx_lanes)(int n, float nmax, const vf (*x)[G], const vf (*qw)[G], float *out_scale, float *out_isc, int *out_zero) {
  vf amax[G], max[G], scale[G], best[G], l_isc[G];
  N(amax_lanes)(n, x, amax, max);
  FOR_G scale[g] = best[g] = l_isc[g] = splat(0); /* set by candidate 0 */
  for (int is = 0; is <= 18; is++) {
    /* is 0: the first candidate −nmax/max; then is −9 … 9 without 0 */
    const int t = is <= 9 ? is - 10 : is - 9;
    const float num = is == 0 ? -nmax : -(nmax + 0.1f * (float)t);
    vf isc[G], slx[G], sl2[G];
    FOR_G {
      isc[g] = num / max[g];
      slx[g] = sl2[g] = splat(0);
    }
    for (int i = 0; i < n; i++) FOR_G {
      vf l = vclamp(vnearest(isc[g] * x[i][g]), -nmax, nmax - 1);
      vf wt = qw ? qw[i][g] : x[i][g] * x[i][g]; /* importance weights, else x² */
      slx[g] = slx[g] + wt * x[i][g] * l;
      sl2[g] = sl2[g] + wt * l * l;
    }
    FOR_G {
      if (is == 0) {
        scale[g] = sel((sl2[g] != 0) & (sl2[g] == sl2[g]), slx[g] / sl2[g], splat(0)); /* `suml2 ? … : 0` */
        best[g] = scale[g] * slx[g];
        l_isc[g] = isc[g];
      } else {
        const vi take = (sl2[g] > 0) & (slx[g] * slx[g] > best[g] * sl2[g]);
        scale[g] = sel(take, slx[g] / sl2[g], scale[g]);
        best[g] = sel(take, scale[g] * slx[g], best[g]);
        l_isc[g] = sel(take, isc[g], l_isc[g]);
      }
    }
  }
  FOR_G {
    const vi zero = amax[g] < GROUP_MAX_EPS;
    const vf sc = sel(zero, splat(0), scale[g]);
    for (int j = 0; j < W; j++) {
      out_scale[W * g + j] = sc[j];
      out_isc[W * g + j] = l_isc[g][j];
      out_zero[W * g + j] = zero[j] != 0;
    }
  }
}

/*
 * make_q3_quants with do_rmse (makeQ3Quants, Q3_K) on LANES groups of n values: initial levels, then up to
 * 5 passes of coordinate descent; a lane whose pass changed nothing would change nothing in further
 * passes, so running the passes until no lane changes is the scalar loop per lane. L[i][k] = l + nmax.
 */
FN void N(q3_lanes)(int n, float nmax, const vf (*x)[G], uint8_t (*L)[LANES], float *out_scale) {
  vf amax[G], max[G], isc[G], slx[G], sl2[G], lv[16][G]; /* lv: the Int8Array levels */
  N(amax_lanes)(n, x, amax, max);
  FOR_G {
    isc[g] = -nmax / max[g];
    slx[g] = sl2[g] = splat(0);
  }
  for (int i = 0; i < n; i++) FOR_G {
    vf l = vclamp(vnearest(isc[g] * x[i][g]), -nmax, nmax - 1);
    lv[i][g] = vstored(l);
    vf wt = x[i][g] * x[i][g];
    slx[g] = slx[g] + wt * x[i][g] * l;
    sl2[g] = sl2[g] + wt * l * l;
  }
  for (int itry = 0; itry < 5; itry++) {
    vi changed = (vi){0};
    for (int i = 0; i < n; i++) FOR_G {
      const vf xi = x[i][g], li = lv[i][g], wt = xi * xi;
      const vf s1 = slx[g] - wt * xi * li, s2 = sl2[g] - wt * li * li;
      const vf nl = vclamp(vnearest(xi * s2 / s1), -nmax, nmax - 1);
      const vf t1 = s1 + wt * xi * nl, t2 = s2 + wt * nl * nl;
      const vi take = (s1 > 0) & (nl != li) & (t2 > 0) & (t1 * t1 * sl2[g] > slx[g] * slx[g] * t2);
      lv[i][g] = sel(take, nl, li);
      slx[g] = sel(take, t1, slx[g]);
      sl2[g] = sel(take, t2, sl2[g]);
      changed |= take;
    }
    int any = 0;
    for (int j = 0; j < W; j++) any |= changed[j];
    if (!any) break;
  }
  for (int i = 0; i < n; i++) FOR_G {
    const vf l = sel(amax[g] < GROUP_MAX_EPS, splat(0), lv[i][g] + nmax);
    const vb b = __builtin_convertvector(__builtin_convertvector(l, vi), vb); /* 0 … 2·nmax − 1 */
    memcpy(&L[i][W * g], &b, W);
  }
  FOR_G {
    vf sc = sel(amax[g] < GROUP_MAX_EPS, splat(0), slx[g] / sl2[g]);
    for (int j = 0; j < W; j++) out_scale[W * g + j] = sc[j];
  }
}

/*
 * In-place transpose of W vectors of W floats: for each bit h of the index, rows i and i + h swap their
 * off-diagonal h-blocks (element c of row i with bit h set ↔ element c − h of row i + h); the stages
 * commute, so all log2(W) of them transpose the whole tile. Constant masks: one two-source permute each.
 */
FN void N(transpose)(vf *r) {
#define TSTAGE(h, ...)                                                                                   \
  for (int i = 0; i < W; i++)                                                                            \
    if (!(i & (h))) {                                                                                    \
      static const vi m[2] = {__VA_ARGS__};                                                              \
      const vf a = __builtin_shuffle(r[i], r[i + (h)], m[0]), b = __builtin_shuffle(r[i], r[i + (h)], m[1]); \
      r[i] = a;                                                                                          \
      r[i + (h)] = b;                                                                                    \
    }
#if W == 4
  TSTAGE(1, {0, 4, 2, 6}, {1, 5, 3, 7});
  TSTAGE(2, {0, 1, 4, 5}, {2, 3, 6, 7});
#elif W == 8
  TSTAGE(1, {0, 8, 2, 10, 4, 12, 6, 14}, {1, 9, 3, 11, 5, 13, 7, 15});
  TSTAGE(2, {0, 1, 8, 9, 4, 5, 12, 13}, {2, 3, 10, 11, 6, 7, 14, 15});
  TSTAGE(4, {0, 1, 2, 3, 8, 9, 10, 11}, {4, 5, 6, 7, 12, 13, 14, 15});
#elif W == 16
  TSTAGE(1, {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}, {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31});
  TSTAGE(2, {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}, {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31});
  TSTAGE(4, {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}, {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31});
  TSTAGE(8, {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}, {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31});
#else
#error transpose: W must be 4, 8 or 16
#endif
#undef TSTAGE
}

/* Gather `count` ≤ LANES sub-blocks of n values (sub-block k starts at x + n·k) into lanes; the rest are 0. */
FN void N(gather)(const float *x, int n, int count, vf (*xt)[G]) {
  if (count == LANES) { /* W×W tiles transposed in registers (n is a multiple of W) */
    FOR_G for (int i0 = 0; i0 < n; i0 += W) {
      vf r[W];
      for (int k = 0; k < W; k++) memcpy(&r[k], x + n * (W * g + k) + i0, sizeof r[k]);
      N(transpose)(r);
      for (int c = 0; c < W; c++) xt[i0 + c][g] = r[c];
    }
    return;
  }
  for (int i = 0; i < n; i++) FOR_G xt[i][g] = splat(0);
  for (int k = 0; k < count; k++)
    for (int i = 0; i < n; i++) LANE(xt[i], k) = x[n * k + i];
}

/* Q4_K (nmax 15, rmin −1, 20 steps) and Q5_K (31, −0.5, 15): quantizeKSuper on LANES/8 super-blocks at once. */
TARGET static void N(k45)(const float *x, int nb, uint8_t *dst, int five) {
  const int per = LANES / 8, bytes = five ? 176 : 144;
  const float nmax = five ? 31 : 15;
  for (int b0 = 0; b0 < nb; b0 += per) {
    const int cnt = nb - b0 < per ? nb - b0 : per;
    vf xt[32][G], w[32][G], sx2[G];
    float scales[LANES], mins[LANES];
    float isc[LANES], lmin[LANES];
    int flat[LANES];
    N(gather)(x + 256 * b0, 32, 8 * cnt, xt);
    FOR_G sx2[g] = splat(0);
    for (int i = 0; i < 32; i++) FOR_G sx2[g] = sx2[g] + xt[i][g] * xt[i][g];
    FOR_G {
      vf av = sx2[g] / 32;
      for (int j = 0; j < W; j++) av[j] = sqrtf(av[j]);
      for (int i = 0; i < 32; i++) w[i][g] = av + vabs(xt[i][g]);
    }
    if (five) N(qkx2_lanes)(32, 31, (const vf (*)[G])xt, (const vf (*)[G])w, -0.5f, 0.1f, 15, 0, scales, mins, isc, lmin, flat);
    else N(qkx2_lanes)(32, 15, (const vf (*)[G])xt, (const vf (*)[G])w, -1.0f, 0.1f, 20, 0, scales, mins, isc, lmin, flat);
    for (int s = 0; s < cnt; s++) {
      const float *xb = x + 256 * (b0 + s);
      uint8_t *o = dst + (size_t)bytes * (b0 + s);
      float max_scale = 0, max_min = 0;
      uint8_t ls[8], lm[8], Lb[256];
      for (int j = 0; j < 8; j++) {
        const int k = 8 * s + j;
        if (scales[k] > max_scale) max_scale = scales[k];
        if (mins[k] > max_min) max_min = mins[k];
      }
      const float inv_scale = max_scale > 0 ? 63 / max_scale : 0, inv_min = max_min > 0 ? 63 / max_min : 0;
      for (int j = 0; j < 8; j++) {
        const int a = js_i32(nearest(inv_scale * scales[8 * s + j])) & 0xff, c = js_i32(nearest(inv_min * mins[8 * s + j])) & 0xff;
        ls[j] = (uint8_t)(a < 63 ? a : 63);
        lm[j] = (uint8_t)(c < 63 ? c : 63);
      }
      pack_scale_min_k4(o + 4, ls, lm);
      const float d = wr_f16(o, max_scale / 63), dmin = wr_f16(o + 2, max_min / 63);
      for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(o + 4, j, &sc, &m);
        const float dd = d * (float)sc;
        if (!truthy(dd)) { /* the search's own levels stay */
          const int k = 8 * s + j;
          qkx2_levels(xb + 32 * j, 32, nmax, isc[k], lmin[k], flat[k], Lb + 32 * j);
          continue;
        }
        N(relevel)(xb + 32 * j, 32, dmin * (float)m, dd, 0, nmax, 0, Lb + 32 * j);
      }
      if (five) {
        memset(o + 16, 0, 32);
        for (int c = 0; c < 4; c++)
          for (int l = 0; l < 32; l++) {
            const uint8_t l1 = Lb[64 * c + l], l2 = Lb[64 * c + 32 + l];
            o[16 + l] |= (uint8_t)(((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
            o[48 + 32 * c + l] = (uint8_t)((l1 & 15) | ((l2 & 15) << 4));
          }
      } else {
        for (int c = 0; c < 4; c++)
          for (int l = 0; l < 32; l++) o[16 + 32 * c + l] = (uint8_t)(Lb[64 * c + l] | (Lb[64 * c + 32 + l] << 4));
      }
    }
  }
}

/* Q2_K: make_qkx2_quants (levels 0…3, weights |x|, absolute error) per 16 values, LANES/16 super-blocks at once. */
TARGET static void N(q2_k)(const float *x, int nb, uint8_t *dst) {
  for (int b0 = 0; b0 < nb; b0 += LANES / 16) {
    const int cnt = nb - b0 < LANES / 16 ? nb - b0 : LANES / 16;
    vf xt[16][G], w[16][G];
    float scales[LANES], mins[LANES];
    float isc[LANES], lmin[LANES];
    int flat[LANES];
    N(gather)(x + 256 * b0, 16, 16 * cnt, xt);
    for (int i = 0; i < 16; i++) FOR_G w[i][g] = vabs(xt[i][g]);
    N(qkx2_lanes)(16, 3, (const vf (*)[G])xt, (const vf (*)[G])w, -0.5f, 0.1f, 15, 1, scales, mins, isc, lmin, flat);
    for (int sb = 0; sb < cnt; sb++) {
      const int g0 = 16 * sb;
      const float *xb = x + 256 * (b0 + sb);
      uint8_t *o = dst + 84 * (size_t)(b0 + sb);
      uint8_t L[256];
      float max_scale = 0, max_min = 0;
      for (int q = 0; q < 16; q++) {
        if (scales[g0 + q] > max_scale) max_scale = scales[g0 + q];
        if (mins[g0 + q] > max_min) max_min = mins[g0 + q];
      }
      float d = 0, dmin = 0;
      if (max_scale > 0) {
        const float iscale = 15 / max_scale;
        for (int q = 0; q < 16; q++) o[q] = js_u8(nearest(iscale * scales[g0 + q]));
        d = wr_f16(o + 80, max_scale / 15);
      } else {
        memset(o, 0, 16);
        wr_f16(o + 80, 0);
      }
      if (max_min > 0) {
        const float iscale = 15 / max_min;
        for (int q = 0; q < 16; q++) o[q] |= (uint8_t)((uint32_t)js_i32(nearest(iscale * mins[g0 + q])) << 4);
        dmin = wr_f16(o + 82, max_min / 15);
      } else {
        wr_f16(o + 82, 0);
      }
      for (int q = 0; q < 16; q++) {
        const float dd = d * (float)(o[q] & 15);
        if (!truthy(dd)) { /* the search's own levels stay */
          qkx2_levels(xb + 16 * q, 16, 3, isc[g0 + q], lmin[g0 + q], flat[g0 + q], L + 16 * q);
          continue;
        }
        N(relevel)(xb + 16 * q, 16, dmin * (float)(o[q] >> 4), dd, 0, 3, 0, L + 16 * q);
      }
      for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
          const int j = 128 * h;
          o[16 + 32 * h + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
  }
}

/* Q3_K: make_q3_quants (levels −4…3, weights x²) per 16 values, LANES/16 super-blocks at once. */
TARGET static void N(q3_k)(const float *x, int nb, uint8_t *dst) {
  for (int b0 = 0; b0 < nb; b0 += LANES / 16) {
    const int cnt = nb - b0 < LANES / 16 ? nb - b0 : LANES / 16;
    vf xt[16][G];
    float scales[LANES];
    uint8_t Lt[16][LANES];
    N(gather)(x + 256 * b0, 16, 16 * cnt, xt);
    N(q3_lanes)(16, 4, (const vf (*)[G])xt, Lt, scales);
    for (int sb = 0; sb < cnt; sb++) {
      const int g0 = 16 * sb;
      const float *xb = x + 256 * (b0 + sb);
      uint8_t *o = dst + 110 * (size_t)(b0 + sb);
      uint8_t L[256];
      float max_scale = 0, amax = 0;
      for (int q = 0; q < 16; q++) {
        if (fabsf(scales[g0 + q]) > amax) {
          amax = fabsf(scales[g0 + q]);
          max_scale = scales[g0 + q];
        }
        for (int i = 0; i < 16; i++) L[16 * q + i] = Lt[i][g0 + q];
      }
      memset(o + 96, 0, 12);
      float d = 0;
      if (max_scale != 0) {
        const float iscale = -32 / max_scale;
        for (int q = 0; q < 16; q++) {
          int l = (int8_t)(uint8_t)js_i32(nearest(iscale * scales[g0 + q])); /* (v << 24) >> 24 */
          l = l < 31 ? l : 31;
          l = (l > -32 ? l : -32) + 32;
          if (q < 8) o[96 + q] = (uint8_t)(l & 15);
          else o[96 + q - 8] |= (uint8_t)((l & 15) << 4);
          o[96 + 8 + (q & 3)] |= (uint8_t)((l >> 4) << (2 * (q >> 2)));
        }
        d = wr_f16(o + 108, 1 / iscale);
      } else {
        wr_f16(o + 108, 0);
      }
      for (int q = 0; q < 16; q++) {
        const float dd = d * (float)scale3(o + 96, q);
        if (!truthy(dd)) continue;
        N(relevel)(xb + 16 * q, 16, 0, dd, -4, 3, 4, L + 16 * q);
      }
      memset(o, 0, 32);
      for (int j = 0; j < 8; j++) /* L ≤ 7: the high bit of value 32j + l goes to hmask[l] bit j (branch-free) */
        for (int l = 0; l < 32; l++) {
          o[l] |= (uint8_t)((L[32 * j + l] >> 2) << j);
          L[32 * j + l] &= 3;
        }
      for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
          const int j = 128 * h;
          o[32 + 32 * h + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
  }
}

/* Q6_K: make_qx_quants (levels −32…31) per 16 values, LANES/16 super-blocks at once. */
TARGET static void N(q6_k)(const float *x, int nb, uint8_t *dst) {
  for (int b0 = 0; b0 < nb; b0 += LANES / 16) {
    const int cnt = nb - b0 < LANES / 16 ? nb - b0 : LANES / 16;
    vf xt[16][G];
    float scales[LANES];
    float isc[LANES];
    int zero[LANES];
    N(gather)(x + 256 * b0, 16, 16 * cnt, xt);
    N(qx_lanes)(16, 32, (const vf (*)[G])xt, NULL, scales, isc, zero);
    for (int sb = 0; sb < cnt; sb++) {
      const int g0 = 16 * sb;
      const float *xb = x + 256 * (b0 + sb);
      uint8_t *o = dst + 210 * (size_t)(b0 + sb);
      uint8_t L[256];
      float max_scale = 0, max_abs = 0;
      for (int q = 0; q < 16; q++) {
        if (fabsf(scales[g0 + q]) > max_abs) {
          max_abs = fabsf(scales[g0 + q]);
          max_scale = scales[g0 + q];
        }
      }
      memset(o, 0, 210);
      if (max_abs < GROUP_MAX_EPS) continue;
      const float iscale = -128 / max_scale;
      const float d = wr_f16(o + 208, 1 / iscale);
      for (int q = 0; q < 16; q++) o[192 + q] = js_u8(js_min(127, nearest(iscale * scales[g0 + q])));
      for (int q = 0; q < 16; q++) {
        const float dd = d * (float)(int8_t)o[192 + q];
        if (!truthy(dd)) { /* the search's own levels stay */
          qx_levels(xb + 16 * q, 16, 32, isc[g0 + q], zero[g0 + q], L + 16 * q);
          continue;
        }
        N(relevel)(xb + 16 * q, 16, 0, dd, -32, 31, 32, L + 16 * q);
      }
      for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
          const int j = 128 * h;
          const uint8_t q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
          o[64 * h + l] = (uint8_t)((q1 & 15) | ((q3 & 15) << 4));
          o[64 * h + 32 + l] = (uint8_t)((q2 & 15) | ((q4 & 15) << 4));
          o[128 + 32 * h + l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
  }
}

/*
 * Q8_0, W values at a time. Blocks with a NaN, or whose 1/d overflows, take the scalar definition
 * (q8_0_block); elsewhere roundf(v) is floor(|v|) + (frac(|v|) ≥ 0.5) with its sign, all exact in float32
 * (|v| ≤ 127.01: the truncation is the floor, the fraction is exact).
 */
TARGET static void N(q8_0)(const float *x, size_t nb, uint8_t *dst) {
  for (size_t b = 0; b < nb; b++) {
    const float *xb = x + 32 * b;
    uint8_t *o = dst + 34 * b;
    vf v[32 / W], m = splat(0);
    vi nan = (vi){0};
    for (int c = 0; c < 32 / W; c++) {
      memcpy(&v[c], xb + W * c, sizeof v[c]);
      m = sel(vabs(v[c]) > m, vabs(v[c]), m);
      nan |= v[c] != v[c];
    }
    float amax = 0;
    int any_nan = 0;
    for (int j = 0; j < W; j++) {
      amax = m[j] > amax ? m[j] : amax; /* max is order-free without NaNs */
      any_nan |= nan[j];
    }
    const float d = amax / 127, id = d != 0 ? 1 / d : 0;
    if (any_nan || !(id <= 3.4028235e38f)) {
      q8_0_block(xb, o);
      continue;
    }
    wr_f16(o, d);
    for (int c = 0; c < 32 / W; c++) {
      const vf p = v[c] * id, a = vabs(p);
      const vf t = __builtin_convertvector(__builtin_convertvector(a, vi), vf);
      const vf r = t + sel(a - t >= 0.5f, splat(1), splat(0));
      const vi q = __builtin_convertvector(sel(p < 0, -r, r), vi);
      for (int j = 0; j < W; j++) o[2 + W * c + j] = (uint8_t)q[j];
    }
  }
}

/*
 * gn_gauss_fill's stream on LANES lanes: lane k, starting from state st[k] (the stream's state 2·k·m steps
 * on), writes values [k·m, (k+1)·m) ∩ [0, n). The uint32 arithmetic is the scalar step's, lane by lane;
 * the double product and the rounding to float32 are gauss_scalar's.
 */
TARGET static void N(gauss)(float *out, size_t n, size_t m, const uint32_t (*st)[4], double scale) {
  typedef uint32_t vu __attribute__((vector_size(4 * W)));
  enum { CH = 128 };
  vu a[G], b[G], c[G], d[G];
  int32_t buf[LANES][CH];
  for (int k = 0; k < LANES; k++) {
    LANE(a, k) = st[k][0];
    LANE(b, k) = st[k][1];
    LANE(c, k) = st[k][2];
    LANE(d, k) = st[k][3];
  }
  for (size_t i0 = 0; i0 < m; i0 += CH) {
    const size_t cnt = m - i0 < CH ? m - i0 : CH;
    for (size_t i = 0; i < cnt; i++) FOR_G {
      vu t = a[g] ^ (a[g] << 11);
      a[g] = b[g];
      b[g] = c[g];
      c[g] = d[g];
      d[g] = d[g] ^ (d[g] >> 19) ^ (t ^ (t >> 8));
      const vu u = d[g];
      t = a[g] ^ (a[g] << 11);
      a[g] = b[g];
      b[g] = c[g];
      c[g] = d[g];
      d[g] = d[g] ^ (d[g] >> 19) ^ (t ^ (t >> 8));
      const vi sum = (vi)((u & 0xffff) + (u >> 16) + (d[g] & 0xffff) + (d[g] >> 16)) - 131070;
      for (int j = 0; j < W; j++) buf[W * g + j][i] = sum[j];
    }
    for (int k = 0; k < LANES; k++) {
      const size_t start = (size_t)k * m + i0;
      if (start >= n) break;
      const size_t len = n - start < cnt ? n - start : cnt;
      for (size_t i = 0; i < len; i++) out[start + i] = (float)((double)buf[k][i] * scale);
    }
  }
}

/* ---- with an importance matrix (llama.cpp quantize_row_q*_K_impl; src/quant/kquant-weighted.ts) ---------- */

/* Every weighted type's first step: sub-blocks k0 … k0 + count − 1 (count ≤ LANES) of in->x gathered into lanes xt,
 * their weights (weighing, quantize.c) into lanes w, and each one's weight sum into sw[k − k0] where sw is given. */
FN void N(weigh)(weighing *in, size_t k0, int count, vf (*xt)[G], vf (*w)[G], float *sw) {
  const int n = in->n;
  float wb[LANES * 32];
  for (int i = 0; i < count; i++) {
    const size_t k = k0 + (size_t)i;
    const float *q = in->qw + (size_t)n * (k % (size_t)in->nq);
    if (!in->sigma2) {
      memcpy(wb + n * i, q, sizeof(float) * (size_t)n);
      continue;
    }
    const size_t at = (size_t)n * k / (size_t)in->span;
    if (at != in->at) {
      in->at = at;
      in->s2 = in->sigma2(in->x + (size_t)in->span * at, in->span);
    }
    const float sum = importance(n, in->x + (size_t)n * k, q, in->s2, wb + n * i);
    if (sw) sw[i] = sum;
  }
  N(gather)(in->x + (size_t)n * k0, n, count, xt);
  N(gather)(wb, n, count, w);
}

/* Q4_K / Q5_K with weights qw·√(σ² + x²) (σ² = 2·mean x² of the super-block): make_qkx3_quants (= the qkx2 search
 * with rmin −0.9, rdelta 0.05, 37 steps), then 6-bit scales and mins by make_qp_quants weighted by the
 * sub-blocks' weight sums. */
TARGET static void N(k45w)(const float *x, int nb, uint8_t *dst, int five, const float *qw, int nbr) {
  const int per = LANES / 8, bytes = five ? 176 : 144;
  const float nmax = five ? 31 : 15;
  weighing in = {.x = x, .qw = qw, .n = 32, .nq = 8 * nbr, .span = 256, .sigma2 = k_sigma2, .at = SIZE_MAX};
  for (int b0 = 0; b0 < nb; b0 += per) {
    const int cnt = nb - b0 < per ? nb - b0 : per;
    vf xt[32][G], w[32][G];
    float scales[LANES], mins[LANES], isc[LANES], lmin[LANES], sw[LANES];
    int flat[LANES];
    N(weigh)(&in, 8 * (size_t)b0, 8 * cnt, xt, w, sw);
    N(qkx2_lanes)(32, nmax, (const vf (*)[G])xt, (const vf (*)[G])w, -0.9f, 0.05f, 36, 0, scales, mins, isc, lmin, flat);
    for (int s = 0; s < cnt; s++) {
      const float *xb = x + 256 * (size_t)(b0 + s);
      uint8_t *o = dst + (size_t)bytes * (size_t)(b0 + s);
      uint8_t ls[8], lm[8], Lb[256];
      const float d_block = make_qp_quants(8, 63, scales + 8 * s, ls, sw + 8 * s);
      const float m_block = make_qp_quants(8, 63, mins + 8 * s, lm, sw + 8 * s);
      if (five)
        for (int j = 0; j < 8; j++) {
          ls[j] = ls[j] < 63 ? ls[j] : 63;
          lm[j] = lm[j] < 63 ? lm[j] : 63;
        }
      pack_scale_min_k4(o + 4, ls, lm);
      const float d = wr_f16(o, d_block), dmin = wr_f16(o + 2, m_block);
      for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(o + 4, j, &sc, &m);
        const float dd = d * (float)sc;
        if (!truthy(dd)) { /* the search's own levels stay */
          const int k = 8 * s + j;
          qkx2_levels(xb + 32 * j, 32, nmax, isc[k], lmin[k], flat[k], Lb + 32 * j);
          continue;
        }
        N(relevel)(xb + 32 * j, 32, dmin * (float)m, dd, 0, nmax, 0, Lb + 32 * j);
      }
      if (five) {
        memset(o + 16, 0, 32);
        for (int c = 0; c < 4; c++)
          for (int l = 0; l < 32; l++) {
            const uint8_t l1 = Lb[64 * c + l], l2 = Lb[64 * c + 32 + l];
            o[16 + l] |= (uint8_t)(((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
            o[48 + 32 * c + l] = (uint8_t)((l1 & 15) | ((l2 & 15) << 4));
          }
      } else {
        for (int c = 0; c < 4; c++)
          for (int l = 0; l < 32; l++) o[16 + 32 * c + l] = (uint8_t)(Lb[64 * c + l] | (Lb[64 * c + 32 + l] << 4));
      }
    }
  }
}

/* Q2_K with weights qw·√(σ² + x²) (σ² = mean x²): make_qkx3_quants per 16 values (levels 0…3, squared error),
 * 4-bit scales and mins by make_qp_quants. */
TARGET static void N(q2_kw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr) {
  weighing in = {.x = x, .qw = qw, .n = 16, .nq = 16 * nbr, .span = 256, .sigma2 = row_sigma2, .at = SIZE_MAX};
  for (int b0 = 0; b0 < nb; b0 += LANES / 16) {
    const int cnt = nb - b0 < LANES / 16 ? nb - b0 : LANES / 16;
    vf xt[16][G], w[16][G];
    float scales[LANES], mins[LANES], isc[LANES], lmin[LANES], sw[LANES];
    int flat[LANES];
    N(weigh)(&in, 16 * (size_t)b0, 16 * cnt, xt, w, sw);
    N(qkx2_lanes)(16, 3, (const vf (*)[G])xt, (const vf (*)[G])w, -0.9f, 0.05f, 36, 0, scales, mins, isc, lmin, flat);
    for (int sb = 0; sb < cnt; sb++) {
      const int g0 = 16 * sb;
      const float *xb = x + 256 * (size_t)(b0 + sb);
      uint8_t *o = dst + 84 * (size_t)(b0 + sb);
      uint8_t ls[16], lm[16], L[256];
      const float dm = make_qp_quants(16, 15, scales + g0, ls, sw + g0), mm = make_qp_quants(16, 15, mins + g0, lm, sw + g0);
      const float d = wr_f16(o + 80, dm), dmin = wr_f16(o + 82, mm);
      for (int q = 0; q < 16; q++) o[q] = (uint8_t)(ls[q] | (lm[q] << 4));
      for (int q = 0; q < 16; q++) {
        const float dd = d * (float)(o[q] & 15);
        if (!truthy(dd)) {
          qkx2_levels(xb + 16 * q, 16, 3, isc[g0 + q], lmin[g0 + q], flat[g0 + q], L + 16 * q);
          continue;
        }
        N(relevel)(xb + 16 * q, 16, dmin * (float)(o[q] >> 4), dd, 0, 3, 0, L + 16 * q);
      }
      for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
          const int j = 128 * h;
          o[16 + 32 * h + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
  }
}

/* Q3_K with weights qw·√(σ² + x²) (σ² = 2·mean x²): make_qx_quants per 16 values (levels −4…3), the 6-bit
 * scales by make_qx_quants weighted by the sub-blocks' weight sums. */
TARGET static void N(q3_kw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr) {
  weighing in = {.x = x, .qw = qw, .n = 16, .nq = 16 * nbr, .span = 256, .sigma2 = k_sigma2, .at = SIZE_MAX};
  for (int b0 = 0; b0 < nb; b0 += LANES / 16) {
    const int cnt = nb - b0 < LANES / 16 ? nb - b0 : LANES / 16;
    vf xt[16][G], w[16][G];
    float scales[LANES], isc[LANES], sw[LANES];
    int zero[LANES];
    N(weigh)(&in, 16 * (size_t)b0, 16 * cnt, xt, w, sw);
    N(qx_lanes)(16, 4, (const vf (*)[G])xt, (const vf (*)[G])w, scales, isc, zero);
    for (int sb = 0; sb < cnt; sb++) {
      const int g0 = 16 * sb;
      const float *xb = x + 256 * (size_t)(b0 + sb);
      uint8_t *o = dst + 110 * (size_t)(b0 + sb);
      uint8_t L[256];
      int8_t Ls[16];
      memset(o + 96, 0, 12);
      const float d_block = make_qx_quants_w(16, 32, scales + g0, Ls, sw + g0);
      for (int j = 0; j < 16; j++) {
        int l = Ls[j];
        if (j < 8) o[96 + j] = (uint8_t)(l & 0xf);
        else o[96 + j - 8] |= (uint8_t)((l & 0xf) << 4);
        l >>= 4;
        o[96 + 8 + (j % 4)] |= (uint8_t)(l << (2 * (j >> 2)));
      }
      const float d = wr_f16(o + 108, d_block);
      for (int q = 0; q < 16; q++) {
        const float dd = d * (float)scale3(o + 96, q);
        if (!truthy(dd)) { /* the search's own levels stay */
          qx_levels(xb + 16 * q, 16, 4, isc[g0 + q], zero[g0 + q], L + 16 * q);
          continue;
        }
        N(relevel)(xb + 16 * q, 16, 0, dd, -4, 3, 4, L + 16 * q);
      }
      memset(o, 0, 32);
      for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) {
          o[l] |= (uint8_t)((L[32 * j + l] >> 2) << j);
          L[32 * j + l] &= 3;
        }
      for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
          const int j = 128 * h;
          o[32 + 32 * h + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
  }
}

/* Q6_K with the importance values themselves as make_qx_quants' weights (llama.cpp: not × √(σ² + x²)). */
TARGET static void N(q6_kw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr) {
  weighing in = {.x = x, .qw = qw, .n = 16, .nq = 16 * nbr, .span = 256, .sigma2 = NULL, .at = SIZE_MAX};
  for (int b0 = 0; b0 < nb; b0 += LANES / 16) {
    const int cnt = nb - b0 < LANES / 16 ? nb - b0 : LANES / 16;
    vf xt[16][G], w[16][G];
    float scales[LANES], isc[LANES];
    int zero[LANES];
    N(weigh)(&in, 16 * (size_t)b0, 16 * cnt, xt, w, NULL);
    N(qx_lanes)(16, 32, (const vf (*)[G])xt, (const vf (*)[G])w, scales, isc, zero);
    for (int sb = 0; sb < cnt; sb++) {
      const int g0 = 16 * sb;
      const float *xb = x + 256 * (size_t)(b0 + sb);
      uint8_t *o = dst + 210 * (size_t)(b0 + sb);
      uint8_t L[256];
      float max_scale = 0, max_abs = 0;
      for (int q = 0; q < 16; q++)
        if (fabsf(scales[g0 + q]) > max_abs) {
          max_abs = fabsf(scales[g0 + q]);
          max_scale = scales[g0 + q];
        }
      memset(o, 0, 210);
      if (max_abs < GROUP_MAX_EPS) continue;
      const float iscale = -128 / max_scale;
      const float d = wr_f16(o + 208, 1 / iscale);
      for (int q = 0; q < 16; q++) o[192 + q] = js_u8(js_min(127, nearest(iscale * scales[g0 + q])));
      for (int q = 0; q < 16; q++) {
        const float dd = d * (float)(int8_t)o[192 + q];
        if (!truthy(dd)) {
          qx_levels(xb + 16 * q, 16, 32, isc[g0 + q], zero[g0 + q], L + 16 * q);
          continue;
        }
        N(relevel)(xb + 16 * q, 16, 0, dd, -32, 31, 32, L + 16 * q);
      }
      for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
          const int j = 128 * h;
          const uint8_t q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
          o[64 * h + l] = (uint8_t)((q1 & 15) | ((q3 & 15) << 4));
          o[64 * h + 32 + l] = (uint8_t)((q2 & 15) | ((q4 & 15) << 4));
          o[128 + 32 * h + l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
  }
}

/* Q8_0 blocks → floats (gn_dequantize): d·q, exact (11 × 8 significant bits), vectorised by the compiler. */
TARGET static void N(deq_q8_0)(const uint8_t *src, size_t nb, float *out) {
  for (size_t b = 0; b < nb; b++) {
    const uint8_t *o = src + 34 * b;
    const float d = f16_to_f32((uint16_t)(o[0] | (o[1] << 8)));
    float *y = out + 32 * b;
    for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)o[2 + j];
  }
}

/* K_IQ4NL[iq4nl_index(v)] per lane (quantize.c): the bracket K[lo] ≤ v < K[lo + 1] by counting, then the
 * scalar's float comparison of the two distances; ≤ K[0] → K[0], ≥ K[15] or NaN → K[15] (where its
 * binary search ends). */
FN vf N(iq4_level)(vf v) {
  vi lo = (vi){0};
  for (int k = 1; k <= 14; k++) lo -= (vi)(v >= K_IQ4NL[k]);
  vf klo, khi;
#if defined(__x86_64__) && W == 16
  const __m512 table = _mm512_loadu_ps(K_IQ4NL);
  klo = (vf)_mm512_permutexvar_ps((__m512i)lo, table);
  khi = (vf)_mm512_permutexvar_ps((__m512i)(lo + 1), table);
#else
  for (int i = 0; i < W; i++) {
    klo[i] = K_IQ4NL[lo[i]];
    khi[i] = K_IQ4NL[lo[i] + 1];
  }
#endif
  vf q = sel((v - klo) < (khi - v), klo, khi);
  q = sel(v <= K_IQ4NL[0], splat(K_IQ4NL[0]), q);
  return sel((v >= K_IQ4NL[15]) | (v != v), splat(K_IQ4NL[15]), q);
}

/* iq4_sums (quantize.c) per lane: Σ w·q·x and Σ w·q² of one lane group of 32 values; w = x², or the importance
 * weights wt when given (weighted.ts). One group at a time: interleaving the G groups here spills registers
 * (the table's 14 bounds stay in registers) and measured slower. */
FN void N(iq4_sums)(const vf (*x)[G], const vf (*wt)[G], int g, vf id, vf *sumqx, vf *sumq2) {
  vf sqx = splat(0), sq2 = splat(0);
  for (int j = 0; j < 32; j++) {
    const vf q = N(iq4_level)(id * x[j][g]), w = wt ? wt[j][g] : x[j][g] * x[j][g];
    sqx = sqx + w * q * x[j][g];
    sq2 = sq2 + w * q * q;
  }
  *sumqx = sqx;
  *sumq2 = sq2;
}

/* iq4_scale (quantize.c) on LANES groups of 32 values at once: each lane the scalar's float32 sequence
 * (iq4_nl.ts iq4Scale; with importance weights wt when not NULL). */
FN void N(iq4_scale_lanes)(const vf (*x)[G], const vf (*wt)[G], float *out) {
  vf amax[G], max[G];
  N(amax_lanes)(32, x, amax, max);
  FOR_G {
    vf d = -max[g] / K_IQ4NL[0], sumqx, sumq2;
    N(iq4_sums)(x, wt, g, 1.0f / d, &sumqx, &sumq2);
    d = sel(sumq2 > 0, sumqx / sumq2, splat(0));
    vf best = d * sumqx;
    for (int itry = -7; itry <= 7; itry++) {
      N(iq4_sums)(x, wt, g, ((float)itry + K_IQ4NL[0]) / max[g], &sumqx, &sumq2);
      const vi better = (sumq2 > 0) & (sumqx * sumqx > best * sumq2);
      d = sel(better, sumqx / sumq2, d);
      best = sel(better, d * sumqx, best);
    }
    d = sel(amax[g] >= GROUP_MAX_EPS, d, splat(0));
    for (int i = 0; i < W; i++) out[W * g + i] = d[i];
  }
}

/* IQ4_XS: the 8 sub-block scales of LANES/8 super-blocks searched at once, the rest as the scalar iq4_xs_pack. */
TARGET static void N(iq4_xs)(const float *x, size_t nb, uint8_t *dst) {
  const size_t per = LANES / 8;
  for (size_t b0 = 0; b0 < nb; b0 += per) {
    const int cnt = (int)(nb - b0 < per ? nb - b0 : per);
    vf xt[32][G];
    float scales[LANES];
    N(gather)(x + 256 * b0, 32, 8 * cnt, xt);
    N(iq4_scale_lanes)((const vf (*)[G])xt, NULL, scales);
    for (int k = 0; k < cnt; k++) iq4_xs_pack(x + 256 * (b0 + k), scales + 8 * k, dst + 136 * (b0 + k));
  }
}

/* IQ4_NL: the scales of LANES blocks of 32 searched at once, the levels as the scalar iq4_nl_pack. */
TARGET static void N(iq4_nl)(const float *x, size_t nb, uint8_t *dst) {
  for (size_t b0 = 0; b0 < nb; b0 += LANES) {
    const int cnt = (int)(nb - b0 < LANES ? nb - b0 : LANES);
    vf xt[32][G];
    float scales[LANES];
    N(gather)(x + 32 * b0, 32, cnt, xt);
    N(iq4_scale_lanes)((const vf (*)[G])xt, NULL, scales);
    for (int k = 0; k < cnt; k++) iq4_nl_pack(x + 32 * (b0 + k), scales[k], dst + 18 * (b0 + k));
  }
}

/* ---- 32-value types and IQ4 with an importance matrix (llama.cpp quantize_row_q4_0_impl …, quantize_row_iq4_nl_impl;
 * src/quant/weighted.ts). A row is nbr blocks; block b reads the weights of column block b % nbr. ------------ */

/* Q4_0 (nmax 8) / Q5_0 (16) with weights qw·√(σ² + x²), σ² = mean x² of the block's row: make_qx_quants on LANES
 * blocks at once, the search's own levels (+ nmax) stored. */
TARGET static void N(qx0w)(const float *x, int nb, uint8_t *dst, int five, const float *qw, int nbr) {
  const int bytes = five ? 22 : 18;
  const float nmax = five ? 16 : 8;
  weighing in = {.x = x, .qw = qw, .n = 32, .nq = nbr, .span = 32 * nbr, .sigma2 = row_sigma2, .at = SIZE_MAX};
  for (int b0 = 0; b0 < nb; b0 += LANES) {
    const int cnt = nb - b0 < LANES ? nb - b0 : LANES;
    vf xt[32][G], w[32][G];
    float scales[LANES], isc[LANES];
    int zero[LANES];
    N(weigh)(&in, (size_t)b0, cnt, xt, w, NULL);
    N(qx_lanes)(32, nmax, (const vf (*)[G])xt, (const vf (*)[G])w, scales, isc, zero);
    for (int k = 0; k < cnt; k++) {
      uint8_t *o = dst + (size_t)bytes * (size_t)(b0 + k), L[32];
      qx_levels(x + 32 * (size_t)(b0 + k), 32, nmax, isc[k], zero[k], L);
      wr_f16(o, scales[k]);
      if (five) put_qh(L, o + 2);
      for (int j = 0; j < 16; j++) o[(five ? 6 : 2) + j] = (uint8_t)((L[j] & 15) | ((L[j + 16] & 15) << 4));
    }
  }
}

/* Q4_1 (nmax 15) / Q5_1 (31) with the same weights: make_qkx3_quants (the qkx2 search with rmin −0.9, rdelta 0.05,
 * 37 steps) on LANES blocks at once; d, m = −(its the_min), the search's own levels. */
TARGET static void N(qkx1w)(const float *x, int nb, uint8_t *dst, int five, const float *qw, int nbr) {
  const int bytes = five ? 24 : 20;
  const float nmax = five ? 31 : 15;
  weighing in = {.x = x, .qw = qw, .n = 32, .nq = nbr, .span = 32 * nbr, .sigma2 = row_sigma2, .at = SIZE_MAX};
  for (int b0 = 0; b0 < nb; b0 += LANES) {
    const int cnt = nb - b0 < LANES ? nb - b0 : LANES;
    vf xt[32][G], w[32][G];
    float scales[LANES], negmin[LANES], isc[LANES], lmin[LANES];
    int flat[LANES];
    N(weigh)(&in, (size_t)b0, cnt, xt, w, NULL);
    N(qkx2_lanes)(32, nmax, (const vf (*)[G])xt, (const vf (*)[G])w, -0.9f, 0.05f, 36, 0, scales, negmin, isc, lmin, flat);
    for (int k = 0; k < cnt; k++) {
      uint8_t *o = dst + (size_t)bytes * (size_t)(b0 + k), L[32];
      qkx2_levels(x + 32 * (size_t)(b0 + k), 32, nmax, isc[k], lmin[k], flat[k], L);
      wr_f16(o, scales[k]);
      wr_f16(o + 2, -negmin[k]);
      if (five) put_qh(L, o + 4);
      for (int j = 0; j < 16; j++) o[(five ? 8 : 4) + j] = (uint8_t)((L[j] & 15) | ((L[j + 16] & 15) << 4));
    }
  }
}

/* IQ4_NL with weights qw·√(σ² + x²), σ² = 2·mean x² of the block: the scales of LANES blocks searched at once. */
TARGET static void N(iq4_nlw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr) {
  weighing in = {.x = x, .qw = qw, .n = 32, .nq = nbr, .span = 32, .sigma2 = iq4_sigma2, .at = SIZE_MAX};
  for (int b0 = 0; b0 < nb; b0 += LANES) {
    const int cnt = nb - b0 < LANES ? nb - b0 : LANES;
    vf xt[32][G], w[32][G];
    float scales[LANES];
    N(weigh)(&in, (size_t)b0, cnt, xt, w, NULL);
    N(iq4_scale_lanes)((const vf (*)[G])xt, (const vf (*)[G])w, scales);
    for (int k = 0; k < cnt; k++) iq4_nl_pack(x + 32 * (size_t)(b0 + k), scales[k], dst + 18 * (size_t)(b0 + k));
  }
}

/* IQ4_XS with weights qw·√(σ² + x²), σ² = 2·mean x² of the super-block: 8 sub-block scales of LANES/8 super-blocks. */
TARGET static void N(iq4_xsw)(const float *x, int nb, uint8_t *dst, const float *qw, int nbr) {
  const int per = LANES / 8;
  weighing in = {.x = x, .qw = qw, .n = 32, .nq = 8 * nbr, .span = 256, .sigma2 = iq4_sigma2, .at = SIZE_MAX};
  for (int b0 = 0; b0 < nb; b0 += per) {
    const int cnt = nb - b0 < per ? nb - b0 : per;
    vf xt[32][G], w[32][G];
    float scales[LANES];
    N(weigh)(&in, 8 * (size_t)b0, 8 * cnt, xt, w, NULL);
    N(iq4_scale_lanes)((const vf (*)[G])xt, (const vf (*)[G])w, scales);
    for (int s = 0; s < cnt; s++) iq4_xs_pack(x + 256 * (size_t)(b0 + s), scales + 8 * s, dst + 136 * (size_t)(b0 + s));
  }
}

static const kq_table N(kq) = {N(k45), N(q2_k), N(q3_k), N(q6_k), N(q8_0), N(gauss), N(deq_q8_0), N(k45w), N(q2_kw), N(q3_kw), N(q6_kw), N(iq4_xs), N(iq4_nl),
                               N(qx0w), N(qkx1w), N(iq4_nlw), N(iq4_xsw), LANES};

#undef splat
#undef sel
#undef vabs
#undef vnearest
#undef vround
#undef vclamp
#undef vstored
#undef vlevel
#undef vf
#undef vi
#undef vb
#undef LANE
#undef FOR_G
#undef FN
#undef LANES
#undef N
#undef CAT
#undef CAT_
#undef SUF
#undef W
#undef G
#undef TARGET
