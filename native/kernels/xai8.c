/*
 * The released checkpoint's 8-bit matrices (src/quant/xai8.ts, formats.md §1.6), read in place:
 * q int8 [n_in][n_out] (input-major), bf16 scales [groups][n_out]; W[k][n] = q[k][n]·s[k / (n_in/G)][n].
 *
 * Work is split by output columns between threads; the inputs are walked in order and each column keeps
 * its own sums: per group a partial Σ x·q (exact mode: float64 FMAs per input; fast mode: exact integer
 * sums per 32 inputs, scaled by that block's dx), then y += partial·s per group. Within a thread's
 * columns, input blocks go outside and column slabs inside, so memory is read as a few dozen forward
 * streams; each row's lines are prefetched XAI8_AHEAD bytes ahead of the sweep (the hardware prefetchers
 * follow 32 streams a page apart too late: fast mode 6144×6144 at T = 1 from ~9 to ~35 GB/s on 2 threads).
 * Decode (fast, up to 4 tokens, x86) reads each 32-row block in sweeps of 8 or 16 rows instead (x512_sweep).
 */

/*
 * Exact, all levels: float64 products (int8 · float32 is exact in float64) and sums, the reference's
 * numerics up to summation order. Columns go W at a time (W = LANES · V, V vectors of LANES doubles),
 * tokens CT at a time. Loops run inputs outside and column slabs inside (XAI8_ROWS rows at a time); each
 * slab's partial sums wait in scratch meanwhile, and each token's running total over groups too, as
 * float64, until the last group. Per column and token the operations are the same in any tile.
 * scratch: CT · (c1 − c0) doubles of totals, then per slab CT · V vectors of partial sums.
 */
#define XAI8_ROWS 64

/* Prefetch distance along a sweep (bytes of each row; measured at T = 1 on 6144×32768: 4 slabs of 64
 * beat a whole sweep ahead and 8 or 16 slabs). */
#define XAI8_AHEAD 256

/* The first of `rows` rows to prefetch for column c of the sweep over rows k0…: c itself while inside the
 * chunk [c0, c1), else the same distance into the next rows' sweep; NULL past the matrix. */
static inline const int8_t *xai8_ahead(const gn_xai8_job *j, int k0, int rows, int c0, int c1, int c) {
  if (c < c1) return j->q + (size_t)k0 * j->n_out + c;
  c = c0 + (c - c1);
  if (k0 + 2 * rows > j->n_in || c >= c1) return NULL;
  return j->q + (size_t)(k0 + rows) * j->n_out + c;
}

#define XAI8_EXACT_BODY(W, CT, VEC, LANES, V, ZERO, LOADW, BCAST, FMA, STORE)                        \
  /* rows k0…k1−1 of the slab at column c into NT tokens' sums (NT a constant: sums in registers) */ \
  GN_INLINE void xai8_exact_rows(const gn_xai8_job *j, int k0, int k1, int c, int cols, const int8_t *pf, \
                                 double xk[][CT], const int NT, VEC part[][V]) {                  \
    for (int k = k0; k < k1; k++) {                                                               \
      const int8_t *src = j->q + (size_t)k * j->n_out + c;                                        \
      if (pf) __builtin_prefetch(pf + (size_t)(k - k0) * j->n_out);                               \
      int8_t pad[W];                                                                              \
      if (cols < W) {                                                                             \
        memset(pad, 0, W);                                                                        \
        memcpy(pad, src, (size_t)cols);                                                           \
        src = pad;                                                                                \
      }                                                                                           \
      VEC w[V];                                                                                   \
      for (int h = 0; h < V; h++) w[h] = LOADW(src + LANES * h);                                  \
      for (int t = 0; t < NT; t++) {                                                              \
        const VEC xv = BCAST(xk[k - k0][t]);                                                      \
        for (int h = 0; h < V; h++) part[t][h] = FMA(w[h], xv, part[t][h]);                       \
      }                                                                                           \
    }                                                                                             \
  }                                                                                               \
  static void xai8_exact(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch) {                \
    _Static_assert(CT <= 4 && W <= 64, "gn_xai8_scratch sizes exact mode for 4 tokens, 64 columns"); \
    const int gs = j->n_in / j->groups, ncol = c1 - c0, nslab = (ncol + W - 1) / W;                \
    double *yacc = (double *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63); /* [CT][ncol] */      \
    VEC *parts = (VEC *)(((uintptr_t)(yacc + CT * (size_t)ncol) + 63) & ~(uintptr_t)63);          \
    for (int t0 = 0; t0 < j->T; t0 += CT) {                                                       \
      const int C = GN_MIN(CT, j->T - t0);                                                        \
      for (int i = 0; i < CT * ncol; i++) yacc[i] = 0;                                            \
      for (int g = 0; g < j->groups; g++) {                                                       \
        for (int i = 0; i < nslab * CT * V; i++) parts[i] = ZERO;                                 \
        for (int k0 = g * gs; k0 < (g + 1) * gs; k0 += XAI8_ROWS) {                               \
          const int k1 = GN_MIN(k0 + XAI8_ROWS, (g + 1) * gs);                                    \
          /* the tile's activations of these rows as float64, once for all slabs; tokens past T    \
           * are zeros, for tiles of 3…CT tokens run as CT */                                      \
          double xk[XAI8_ROWS][CT];                                                               \
          for (int k = k0; k < k1; k++)                                                           \
            for (int t = 0; t < CT; t++) xk[k - k0][t] = t < C ? j->x[(size_t)(t0 + t) * j->n_in + k] : 0; \
          for (int sl = 0; sl < nslab; sl++) {                                                    \
            const int c = c0 + W * sl, cols = GN_MIN(W, c1 - c);                                  \
            const int8_t *pf = (W * sl) % 64 ? NULL : xai8_ahead(j, k0, k1 - k0, c0, c1, c + XAI8_AHEAD); \
            VEC part[CT][V];                                                                      \
            for (int t = 0; t < CT; t++)                                                          \
              for (int h = 0; h < V; h++) part[t][h] = parts[(size_t)(CT * sl + t) * V + h];      \
            if (C == 1) xai8_exact_rows(j, k0, k1, c, cols, pf, xk, 1, part);                     \
            else if (C == 2) xai8_exact_rows(j, k0, k1, c, cols, pf, xk, 2, part);                \
            else xai8_exact_rows(j, k0, k1, c, cols, pf, xk, CT, part);                           \
            for (int t = 0; t < CT; t++)                                                          \
              for (int h = 0; h < V; h++) parts[(size_t)(CT * sl + t) * V + h] = part[t][h];      \
          }                                                                                       \
        }                                                                                         \
        for (int sl = 0; sl < nslab; sl++) {                                                      \
          const int c = c0 + W * sl, cols = GN_MIN(W, c1 - c);                                    \
          const uint16_t *sc = j->scales + (size_t)g * j->n_out + c;                              \
          for (int t = 0; t < C; t++) {                                                           \
            double pv[W];                                                                         \
            for (int h = 0; h < V; h++) STORE(pv + LANES * h, parts[(size_t)(CT * sl + t) * V + h]); \
            for (int l = 0; l < cols; l++) yacc[(size_t)t * ncol + W * sl + l] += pv[l] * gn_bf16(sc[l]); \
          }                                                                                       \
        }                                                                                         \
      }                                                                                           \
      for (int t = 0; t < C; t++)                                                                 \
        for (int l = 0; l < ncol; l++) j->y[(size_t)(t0 + t) * j->n_out + c0 + l] = (float)yacc[(size_t)t * ncol + l]; \
    }                                                                                             \
  }

/*
 * Fast, SIMD levels: per 32-input block and column slab (XAI8_SW columns) the slab's 32 rows are loaded
 * once, reordered so that each 32-bit lane holds one column's consecutive inputs (xai8_pack, into qb,
 * ~2 KiB), their lines XAI8_AHEAD bytes on prefetched; then every token of the call (XAI8_C at a time in
 * registers, xai8_tile) takes its exact integer block sums from qb and adds sum·dx to its partial sums
 * in scratch. The weights are read from memory once per call whatever T, and the reordering is shared by
 * all tokens; a call of at most XAI8_C tokens skips qb (xai8_small: the same sums from registers, at
 * x86 levels in sweeps of fewer rows, see x512_sweep).
 * At each group's end y += partial·s (xai8_group_end). Per column and token: the same
 * integer sums, the same float operations in block order, whatever T, tile or chunk.
 * scratch: qb, then partial sums [slab][token][4 vectors] for up to GN_XAI8_TOKENS tokens.
 */
#define XAI8_FAST_BODY(XQ, XV, QN)                                                                \
  static void xai8_fast(const gn_xai8_job *j, int c0, int c1, uint8_t *scratch) {                 \
    const int gs = j->n_in / j->groups, nslab = (c1 - c0 + XAI8_SW - 1) / XAI8_SW;               \
    XQ *qb = (XQ *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);                                  \
    XV *parts = (XV *)(qb + (QN));                                                                \
    for (int s0 = 0; s0 < j->T; s0 += GN_XAI8_TOKENS) {                                           \
      const int S = GN_MIN(GN_XAI8_TOKENS, j->T - s0);                                            \
      for (int t = 0; t < S; t++) memset(j->y + (size_t)(s0 + t) * j->n_out + c0, 0, sizeof(float) * (size_t)(c1 - c0)); \
      for (int g = 0; g < j->groups; g++) {                                                       \
        for (size_t i = 0; i < (size_t)nslab * S * 4; i++) parts[i] = xai8_zero_v();              \
        if (S <= XAI8_C) xai8_small(j, g, c0, c1, s0, S, parts, (void *)(parts + (size_t)nslab * S * 4)); \
        else                                                                                      \
        for (int b = g * gs / 32; b < (g + 1) * gs / 32; b++) {                                   \
          for (int sl = 0; sl < nslab; sl++) {                                                    \
            const int c = c0 + XAI8_SW * sl, cols = GN_MIN(XAI8_SW, c1 - c);                      \
            const int8_t *pf = xai8_ahead(j, 32 * b, 32, c0, c1, c + XAI8_AHEAD);                  \
            XV *part = parts + (size_t)sl * S * 4;                                                \
            xai8_pack(j, 32 * b, c, cols, pf, qb);                                                \
            for (int t = 0; t < S; t += XAI8_C) xai8_tile(j, qb, b, s0 + t, GN_MIN(XAI8_C, S - t), part + 4 * (size_t)t); \
          }                                                                                       \
        }                                                                                         \
        for (int sl = 0; sl < nslab; sl++) {                                                      \
          const int c = c0 + XAI8_SW * sl;                                                        \
          xai8_group_end(j, g, c, GN_MIN(XAI8_SW, c1 - c), s0, S, parts + (size_t)sl * S * 4);    \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
  }

/* Calls of at most XAI8_C tokens, block by block: each 32-row block's sums from registers (xai8_fused). */
#define XAI8_SMALL_BY_BLOCKS(XV)                                                                  \
  static void xai8_small(const gn_xai8_job *j, int g, int c0, int c1, int s0, int S, XV *parts, void *spare) { \
    (void)spare;                                                                                  \
    const int gs = j->n_in / j->groups, nslab = (c1 - c0 + XAI8_SW - 1) / XAI8_SW;               \
    for (int b = g * gs / 32; b < (g + 1) * gs / 32; b++)                                         \
      for (int sl = 0; sl < nslab; sl++) {                                                        \
        const int c = c0 + XAI8_SW * sl;                                                          \
        xai8_fused(j, b, c, GN_MIN(XAI8_SW, c1 - c), xai8_ahead(j, 32 * b, 32, c0, c1, c + XAI8_AHEAD), s0, S, parts + (size_t)sl * S * 4); \
      }                                                                                           \
  }

/* Tiles of 1…XAI8_C tokens as compile-time constants, so that their loops unroll into registers. */
#define XAI8_TILES(KERNEL)                                                                        \
  static void xai8_tile(const gn_xai8_job *j, const void *qb, int b, int t0, int C, void *part) { \
    switch (C) {                                                                                  \
    case 1: KERNEL(j, qb, b, t0, 1, part); break;                                                 \
    case 2: KERNEL(j, qb, b, t0, 2, part); break;                                                 \
    case 3: KERNEL(j, qb, b, t0, 3, part); break;                                                 \
    default: KERNEL(j, qb, b, t0, 4, part); break;                                                \
    }                                                                                             \
  }

/* Rows per sweep in calls of 1–2 tokens (XAI8_R) and 3–4 (XAI8_R4, where the integer sums kept between
 * sweeps cost more) at x86 levels (see x512_sweep). Measured on 6144×32768 and 32768×6144, 2 threads. */
#define XAI8_R 8
#define XAI8_R4 16
/* Chunks of at most this many columns take whole 32-row blocks for 1–2 tokens (32768×6144 and 6144×6144 at
 * 2 threads, 3072 columns each: 0.98 → 1.10 and 0.90 → 0.99 × q8_0 in the same process, load 2). */
#define XAI8_NARROW 4096

#if GN_X86_AVX512
#define XAI8_SW 64
#define XAI8_C 4
#define X512_LOADW(p) _mm512_cvtepi32_pd(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
XAI8_EXACT_BODY(32, 4, __m512d, 8, 4, _mm512_setzero_pd(), X512_LOADW, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_storeu_pd)

GN_INLINE __m512 xai8_zero_v(void) { return _mm512_setzero_ps(); }

/*
 * Four rows at a time interleaved so that each 32-bit lane holds one column's four bytes, made unsigned
 * (q + 128, an xor) for vpdpbusd against the signed activations; the 128·Σ xq this adds per block is
 * taken off by starting each sum at job->xc. Lane p = 4L + i of quad vector h holds column 16L + 4h + i.
 */
GN_INLINE void x512_quad(const int8_t *p, size_t n, __mmask64 mb, __m512i Q[4]) {
  const __m512i k80 = _mm512_set1_epi8((char)0x80);
  const __m512i r0 = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mb, p), k80), r1 = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mb, p + n), k80);
  const __m512i r2 = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mb, p + 2 * n), k80), r3 = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mb, p + 3 * n), k80);
  const __m512i a0 = _mm512_unpacklo_epi8(r0, r1), a1 = _mm512_unpackhi_epi8(r0, r1);
  const __m512i a2 = _mm512_unpacklo_epi8(r2, r3), a3 = _mm512_unpackhi_epi8(r2, r3);
  Q[0] = _mm512_unpacklo_epi16(a0, a2);
  Q[1] = _mm512_unpackhi_epi16(a0, a2);
  Q[2] = _mm512_unpacklo_epi16(a1, a3);
  Q[3] = _mm512_unpackhi_epi16(a1, a3);
}

GN_INLINE __mmask64 x512_cols(int cols) { return cols >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << cols) - 1); }

GN_INLINE void xai8_pack(const gn_xai8_job *j, int k0, int c, int cols, const int8_t *pf, __m512i *qb) {
  const size_t n = (size_t)j->n_out;
  for (int k = k0; k < k0 + 32; k += 4) {
    if (pf)
      for (int i = 0; i < 4; i++) _mm_prefetch((const char *)(pf + (size_t)(k - k0 + i) * n), _MM_HINT_T0);
    __m512i Q[4];
    x512_quad(j->q + (size_t)k * n + c, n, x512_cols(cols), Q);
    for (int h = 0; h < 4; h++) _mm512_store_si512(qb + (k - k0) + h, Q[h]);
  }
}

/*
 * Calls of at most 4 tokens (decode): each 32-row block is read as 32/R sweeps of R rows (XAI8_R, XAI8_R4) across
 * all of the chunk's columns, its integer sums kept per column in scratch (iacc) between sweeps; the
 * block's last sweep scales them by dx into the partial sums. R rows a page apart are R
 * memory streams instead of 32 (6144×32768 had been at 0.79× q8_0's bytes/s). Our reading, not measured
 * directly: when n_out is a multiple of 4 KiB every row's line at one column falls in the same L1 set
 * (8 ways), so 32 rows' prefetched lines evicted each other before use. The integer sums are the same whatever the split, so the results are those of
 * whole 32-row blocks, bit for bit.
 */

GN_INLINE void x512_sweep(const gn_xai8_job *j, int k0, int c0, int c1, int t0, const int C, const int R, __m512i *iacc, __m512 *parts) {
  const size_t n = (size_t)j->n_out;
  const int nb = j->n_in / 32, b = k0 / 32, first = k0 % 32 == 0, last = (k0 + R) % 32 == 0;
  __m512i xb[4][8];
  __m512i init[4];
  __m512 dx[4];
  for (int t = 0; t < C; t++) {
    for (int i = 0; i < R / 4; i++) {
      int32_t x4;
      memcpy(&x4, j->xq + (size_t)(t0 + t) * j->n_in + k0 + 4 * i, 4);
      xb[t][i] = _mm512_set1_epi32(x4);
    }
    init[t] = _mm512_set1_epi32(j->xc[(size_t)(t0 + t) * nb + b]);
    dx[t] = _mm512_set1_ps(j->xd[(size_t)(t0 + t) * nb + b]);
  }
  for (int c = c0, sl = 0; c < c1; c += 64, sl++) {
    const __mmask64 mb = x512_cols(c1 - c);
    const int8_t *pf = xai8_ahead(j, k0, R, c0, c1, c + XAI8_AHEAD);
    __m512i *ia = iacc + (size_t)sl * C * 4;
    __m512i acc[4][4];
    for (int t = 0; t < C; t++)
      for (int h = 0; h < 4; h++) acc[t][h] = first ? init[t] : _mm512_load_si512(ia + 4 * t + h);
    for (int i = 0; i < R / 4; i++) {
      if (pf)
        for (int r = 0; r < 4; r++) _mm_prefetch((const char *)(pf + (size_t)(4 * i + r) * n), _MM_HINT_T0);
      __m512i Q[4];
      x512_quad(j->q + (size_t)(k0 + 4 * i) * n + c, n, mb, Q);
      for (int t = 0; t < C; t++)
        for (int h = 0; h < 4; h++) acc[t][h] = _mm512_dpbusd_epi32(acc[t][h], Q[h], xb[t][i]);
    }
    if (last) {
      __m512 *part = parts + (size_t)sl * C * 4;
      for (int t = 0; t < C; t++)
        for (int h = 0; h < 4; h++) part[4 * t + h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][h]), dx[t], part[4 * t + h]);
    } else {
      for (int t = 0; t < C; t++)
        for (int h = 0; h < 4; h++) _mm512_store_si512(ia + 4 * t + h, acc[t][h]);
    }
  }
}

/* spare: 64-byte aligned room for the integer sums, [slab][token][4 vectors] like parts. */
static void xai8_small(const gn_xai8_job *j, int g, int c0, int c1, int s0, int S, __m512 *parts, void *spare) {
  const int gs = j->n_in / j->groups;
  __m512i *iacc = spare;
  if (c1 - c0 <= XAI8_NARROW && S <= 2) {
    for (int k0 = g * gs; k0 < (g + 1) * gs; k0 += 32)
      if (S == 1) x512_sweep(j, k0, c0, c1, s0, 1, 32, iacc, parts);
      else x512_sweep(j, k0, c0, c1, s0, 2, 32, iacc, parts);
    return;
  }
  for (int k0 = g * gs; k0 < (g + 1) * gs; k0 += S <= 2 ? XAI8_R : XAI8_R4) switch (S) {
    case 1: x512_sweep(j, k0, c0, c1, s0, 1, XAI8_R, iacc, parts); break;
    case 2: x512_sweep(j, k0, c0, c1, s0, 2, XAI8_R, iacc, parts); break;
    case 3: x512_sweep(j, k0, c0, c1, s0, 3, XAI8_R4, iacc, parts); break;
    default: x512_sweep(j, k0, c0, c1, s0, 4, XAI8_R4, iacc, parts); break;
    }
}

GN_INLINE void x512_tile(const gn_xai8_job *j, const void *qv, int b, int t0, const int C, void *pv) {
  const __m512i *qb = qv;
  __m512 *part = pv;
  const int n = j->n_in, nb = n / 32;
  __m512i acc[4][4];
  for (int t = 0; t < C; t++) {
    const __m512i init = _mm512_set1_epi32(j->xc[(size_t)(t0 + t) * nb + b]);
    for (int h = 0; h < 4; h++) acc[t][h] = init;
  }
  for (int i = 0; i < 8; i++) {
    const __m512i Q0 = _mm512_load_si512(qb + 4 * i), Q1 = _mm512_load_si512(qb + 4 * i + 1);
    const __m512i Q2 = _mm512_load_si512(qb + 4 * i + 2), Q3 = _mm512_load_si512(qb + 4 * i + 3);
    for (int t = 0; t < C; t++) {
      int32_t x4;
      memcpy(&x4, j->xq + (size_t)(t0 + t) * n + 32 * (size_t)b + 4 * i, 4);
      const __m512i xb = _mm512_set1_epi32(x4);
      acc[t][0] = _mm512_dpbusd_epi32(acc[t][0], Q0, xb);
      acc[t][1] = _mm512_dpbusd_epi32(acc[t][1], Q1, xb);
      acc[t][2] = _mm512_dpbusd_epi32(acc[t][2], Q2, xb);
      acc[t][3] = _mm512_dpbusd_epi32(acc[t][3], Q3, xb);
    }
  }
  for (int t = 0; t < C; t++) {
    const __m512 dx = _mm512_set1_ps(j->xd[(size_t)(t0 + t) * nb + b]);
    for (int h = 0; h < 4; h++) part[4 * t + h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][h]), dx, part[4 * t + h]);
  }
}
XAI8_TILES(x512_tile)

/* y[t][c…c+63] += part[t][·] · s[g][·] for the lanes in `cols`, after a 4×4 transpose of 128-bit blocks
 * restores column order. */
GN_INLINE void xai8_group_end(const gn_xai8_job *j, int g, int c, int cols, int t0, int S, const __m512 *part) {
  __m512 sc[4];
  __mmask16 mk[4];
  for (int h = 0; h < 4; h++) {
    const int left = cols - 16 * h;
    mk[h] = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
    const __m256i s16 = _mm256_maskz_loadu_epi16(mk[h], j->scales + (size_t)g * j->n_out + c + 16 * h);
    sc[h] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(s16), 16));
  }
  for (int t = 0; t < S; t++) {
    const __m512 *p = part + 4 * (size_t)t;
    const __m512 T0 = _mm512_shuffle_f32x4(p[0], p[1], 0x44), T1 = _mm512_shuffle_f32x4(p[0], p[1], 0xee);
    const __m512 T2 = _mm512_shuffle_f32x4(p[2], p[3], 0x44), T3 = _mm512_shuffle_f32x4(p[2], p[3], 0xee);
    const __m512 nat[4] = {_mm512_shuffle_f32x4(T0, T2, 0x88), _mm512_shuffle_f32x4(T0, T2, 0xdd), _mm512_shuffle_f32x4(T1, T3, 0x88),
                           _mm512_shuffle_f32x4(T1, T3, 0xdd)};
    float *y = j->y + (size_t)(t0 + t) * j->n_out + c;
    for (int h = 0; h < 4; h++)
      if (mk[h]) _mm512_mask_storeu_ps(y + 16 * h, mk[h], _mm512_fmadd_ps(nat[h], sc[h], _mm512_maskz_loadu_ps(mk[h], y + 16 * h)));
  }
}
XAI8_FAST_BODY(__m512i, __m512, 32)

#elif GN_X86_AVX2
#define XAI8_SW 32
#define XAI8_C 2 /* 16 ymm registers: 8 sums, 4 weight vectors, the activations */
#define X256_LOADW(p) _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_cvtsi32_si128((int)gn_rd32((const uint8_t *)(p)))))
XAI8_EXACT_BODY(16, 2, __m256d, 4, 4, _mm256_setzero_pd(), X256_LOADW, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_storeu_pd)

GN_INLINE __m256 xai8_zero_v(void) { return _mm256_setzero_ps(); }

/* 32 columns of row k, zero-padded past the matrix's last column (AVX2 has no masked byte loads). */
GN_INLINE __m256i xai8_load32(const int8_t *p, int cols) {
  if (cols >= 32) return _mm256_loadu_si256((const __m256i *)p);
  int8_t buf[32] = {0};
  memcpy(buf, p, (size_t)cols);
  return _mm256_loadu_si256((const __m256i *)buf);
}

/* Rows k and k+1 interleaved into int16 pairs per column (for vpmaddwd against (xq_k, xq_k+1)): vector h
 * of pair i holds columns 8h…8h+7. */
GN_INLINE void xai8_pack(const gn_xai8_job *j, int k0, int c, int cols, const int8_t *pf, __m256i *qb) {
  const size_t n = (size_t)j->n_out;
  for (int k = k0; k < k0 + 32; k += 2) {
    const int8_t *p = j->q + (size_t)k * n + c;
    if (pf) {
      _mm_prefetch((const char *)(pf + (size_t)(k - k0) * n), _MM_HINT_T0);
      _mm_prefetch((const char *)(pf + (size_t)(k - k0 + 1) * n), _MM_HINT_T0);
    }
    const __m256i r0 = xai8_load32(p, cols), r1 = xai8_load32(p + n, cols);
    const __m256i e0 = _mm256_unpacklo_epi8(r0, r1), e1 = _mm256_unpackhi_epi8(r0, r1);
    __m256i *o = qb + 2 * (k - k0);
    _mm256_store_si256(o, _mm256_cvtepi8_epi16(_mm256_castsi256_si128(e0)));
    _mm256_store_si256(o + 1, _mm256_cvtepi8_epi16(_mm256_castsi256_si128(e1)));
    _mm256_store_si256(o + 2, _mm256_cvtepi8_epi16(_mm256_extracti128_si256(e0, 1)));
    _mm256_store_si256(o + 3, _mm256_cvtepi8_epi16(_mm256_extracti128_si256(e1, 1)));
  }
}

GN_INLINE void x256_tile(const gn_xai8_job *j, const void *qv, int b, int t0, const int C, void *pv) {
  const __m256i *qb = qv;
  __m256 *part = pv;
  const int n = j->n_in, nb = n / 32;
  __m256i acc[2][4];
  for (int t = 0; t < C; t++)
    for (int h = 0; h < 4; h++) acc[t][h] = _mm256_setzero_si256();
  for (int i = 0; i < 16; i++) {
    for (int t = 0; t < C; t++) {
      const int8_t *xk = j->xq + (size_t)(t0 + t) * n + 32 * (size_t)b + 2 * i;
      const __m256i xp = _mm256_set1_epi32((int32_t)(uint16_t)(int16_t)xk[0] | (int32_t)((uint32_t)(uint16_t)(int16_t)xk[1] << 16));
      for (int h = 0; h < 4; h++) acc[t][h] = _mm256_add_epi32(acc[t][h], _mm256_madd_epi16(_mm256_load_si256(qb + 4 * i + h), xp));
    }
  }
  for (int t = 0; t < C; t++) {
    const __m256 dx = _mm256_set1_ps(j->xd[(size_t)(t0 + t) * nb + b]);
    for (int h = 0; h < 4; h++) part[4 * t + h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t][h]), dx, part[4 * t + h]);
  }
}
static void xai8_tile(const gn_xai8_job *j, const void *qb, int b, int t0, int C, void *part) {
  if (C == 1) x256_tile(j, qb, b, t0, 1, part);
  else x256_tile(j, qb, b, t0, 2, part);
}

/* Calls of at most 2 tokens: 32-row blocks as 32/XAI8_R sweeps of XAI8_R rows, as at AVX-512 (there). */
GN_INLINE void x256_sweep(const gn_xai8_job *j, int k0, int c0, int c1, int t0, const int C, __m256i *iacc, __m256 *parts) {
  const size_t n = (size_t)j->n_out;
  const int nb = j->n_in / 32, b = k0 / 32, first = k0 % 32 == 0, last = (k0 + XAI8_R) % 32 == 0;
  int32_t xp[2][XAI8_R / 2];
  float dx[2];
  for (int t = 0; t < C; t++) {
    const int8_t *xk = j->xq + (size_t)(t0 + t) * j->n_in + k0;
    for (int i = 0; i < XAI8_R / 2; i++) xp[t][i] = (int32_t)(uint16_t)(int16_t)xk[2 * i] | (int32_t)((uint32_t)(uint16_t)(int16_t)xk[2 * i + 1] << 16);
    dx[t] = j->xd[(size_t)(t0 + t) * nb + b];
  }
  for (int c = c0, sl = 0; c < c1; c += 32, sl++) {
    const int cols = c1 - c;
    const int8_t *pf = xai8_ahead(j, k0, XAI8_R, c0, c1, c + XAI8_AHEAD);
    __m256i *ia = iacc + (size_t)sl * C * 4;
    __m256i acc[2][4];
    for (int t = 0; t < C; t++)
      for (int h = 0; h < 4; h++) acc[t][h] = first ? _mm256_setzero_si256() : _mm256_load_si256(ia + 4 * t + h);
    for (int i = 0; i < XAI8_R / 2; i++) {
      const int8_t *p = j->q + (size_t)(k0 + 2 * i) * n + c;
      if (pf) {
        _mm_prefetch((const char *)(pf + (size_t)(2 * i) * n), _MM_HINT_T0);
        _mm_prefetch((const char *)(pf + (size_t)(2 * i + 1) * n), _MM_HINT_T0);
      }
      const __m256i r0 = xai8_load32(p, cols), r1 = xai8_load32(p + n, cols);
      const __m256i e0 = _mm256_unpacklo_epi8(r0, r1), e1 = _mm256_unpackhi_epi8(r0, r1);
      const __m256i w[4] = {_mm256_cvtepi8_epi16(_mm256_castsi256_si128(e0)), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(e1)),
                            _mm256_cvtepi8_epi16(_mm256_extracti128_si256(e0, 1)), _mm256_cvtepi8_epi16(_mm256_extracti128_si256(e1, 1))};
      for (int t = 0; t < C; t++) {
        const __m256i x2 = _mm256_set1_epi32(xp[t][i]);
        for (int h = 0; h < 4; h++) acc[t][h] = _mm256_add_epi32(acc[t][h], _mm256_madd_epi16(w[h], x2));
      }
    }
    if (last) {
      __m256 *part = parts + (size_t)sl * C * 4;
      for (int t = 0; t < C; t++) {
        const __m256 d = _mm256_set1_ps(dx[t]);
        for (int h = 0; h < 4; h++) part[4 * t + h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t][h]), d, part[4 * t + h]);
      }
    } else {
      for (int t = 0; t < C; t++)
        for (int h = 0; h < 4; h++) _mm256_store_si256(ia + 4 * t + h, acc[t][h]);
    }
  }
}

static void xai8_small(const gn_xai8_job *j, int g, int c0, int c1, int s0, int S, __m256 *parts, void *spare) {
  const int gs = j->n_in / j->groups;
  for (int k0 = g * gs; k0 < (g + 1) * gs; k0 += XAI8_R) {
    if (S == 1) x256_sweep(j, k0, c0, c1, s0, 1, spare, parts);
    else x256_sweep(j, k0, c0, c1, s0, 2, spare, parts);
  }
}

GN_INLINE void xai8_group_end(const gn_xai8_job *j, int g, int c, int cols, int t0, int S, const __m256 *part) {
  for (int h = 0; h < 4; h++) {
    const int left = cols - 8 * h;
    if (left <= 0) break;
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    uint16_t sb[8] = {0};
    memcpy(sb, j->scales + (size_t)g * j->n_out + c + 8 * h, 2 * (size_t)GN_MIN(8, left));
    const __m256 sc = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)sb)), 16));
    for (int t = 0; t < S; t++) {
      float *y = j->y + (size_t)(t0 + t) * j->n_out + c + 8 * h;
      _mm256_maskstore_ps(y, mk, _mm256_fmadd_ps(part[4 * (size_t)t + h], sc, _mm256_maskload_ps(y, mk)));
    }
  }
}
XAI8_FAST_BODY(__m256i, __m256, 64)

#elif GN_ARM_NEON
#define XAI8_SW 16
#define XAI8_C 4
GN_INLINE float64x2_t xneon_loadw(const int8_t *p) {
  const float64x2_t v = {(double)p[0], (double)p[1]};
  return v;
}
#define XNEON_FMA(a, b, c) vfmaq_f64(c, a, b)
XAI8_EXACT_BODY(8, 4, float64x2_t, 2, 4, vdupq_n_f64(0), xneon_loadw, vdupq_n_f64, XNEON_FMA, vst1q_f64)

GN_INLINE float32x4_t xai8_zero_v(void) { return vdupq_n_f32(0); }

GN_INLINE int8x16_t xai8_load16(const int8_t *p, int cols) {
  if (cols >= 16) return vld1q_s8(p);
  int8_t buf[16] = {0};
  memcpy(buf, p, (size_t)cols);
  return vld1q_s8(buf);
}

/* Four rows zipped so that each 32-bit lane holds one column's four bytes, for signed byte dots: vector
 * h of quad i holds columns 4h…4h+3. */
GN_INLINE void xai8_pack(const gn_xai8_job *j, int k0, int c, int cols, const int8_t *pf, int8x16_t *qb) {
  const size_t n = (size_t)j->n_out;
  for (int k = k0; k < k0 + 32; k += 4) {
    const int8_t *p = j->q + (size_t)k * n + c;
    if (pf)
      for (int i = 0; i < 4; i++) __builtin_prefetch(pf + (size_t)(k - k0 + i) * n);
    const int8x16_t r0 = xai8_load16(p, cols), r1 = xai8_load16(p + n, cols);
    const int8x16_t r2 = xai8_load16(p + 2 * n, cols), r3 = xai8_load16(p + 3 * n, cols);
    const int16x8_t a0 = vreinterpretq_s16_s8(vzip1q_s8(r0, r1)), a1 = vreinterpretq_s16_s8(vzip2q_s8(r0, r1));
    const int16x8_t a2 = vreinterpretq_s16_s8(vzip1q_s8(r2, r3)), a3 = vreinterpretq_s16_s8(vzip2q_s8(r2, r3));
    int8x16_t *o = qb + (k - k0);
    o[0] = vreinterpretq_s8_s16(vzip1q_s16(a0, a2));
    o[1] = vreinterpretq_s8_s16(vzip2q_s16(a0, a2));
    o[2] = vreinterpretq_s8_s16(vzip1q_s16(a1, a3));
    o[3] = vreinterpretq_s8_s16(vzip2q_s16(a1, a3));
  }
}

GN_INLINE void xneon_tile(const gn_xai8_job *j, const void *qv, int b, int t0, const int C, void *pv) {
  const int8x16_t *qb = qv;
  float32x4_t *part = pv;
  const int n = j->n_in, nb = n / 32;
  int32x4_t acc[4][4];
  for (int t = 0; t < C; t++)
    for (int h = 0; h < 4; h++) acc[t][h] = vdupq_n_s32(0);
  for (int i = 0; i < 8; i++) {
    for (int t = 0; t < C; t++) {
      int32_t x4;
      memcpy(&x4, j->xq + (size_t)(t0 + t) * n + 32 * (size_t)b + 4 * i, 4);
      const int8x16_t xb = vreinterpretq_s8_s32(vdupq_n_s32(x4));
      for (int h = 0; h < 4; h++) acc[t][h] = CANON_DOT4(acc[t][h], qb[4 * i + h], xb);
    }
  }
  for (int t = 0; t < C; t++) {
    const float dx = j->xd[(size_t)(t0 + t) * nb + b];
    for (int h = 0; h < 4; h++) part[4 * t + h] = vfmaq_n_f32(part[4 * t + h], vcvtq_f32_s32(acc[t][h]), dx);
  }
}
XAI8_TILES(xneon_tile)

GN_INLINE void xai8_group_end(const gn_xai8_job *j, int g, int c, int cols, int t0, int S, const float32x4_t *part) {
  for (int h = 0; h < 4; h++) {
    const int left = cols - 4 * h;
    if (left <= 0) break;
    const uint16_t *sp = j->scales + (size_t)g * j->n_out + c + 4 * h;
    for (int t = 0; t < S; t++) {
      float *y = j->y + (size_t)(t0 + t) * j->n_out + c + 4 * h;
      float pv[4];
      vst1q_f32(pv, part[4 * (size_t)t + h]);
      for (int l = 0; l < 4 && l < left; l++) y[l] = fmaf(pv[l], gn_bf16(sp[l]), y[l]);
    }
  }
}
/* Calls of at most XAI8_C tokens: the block packed on the stack, then one tile. */
static void xai8_fused(const gn_xai8_job *j, int b, int c, int cols, const int8_t *pf, int t0, int S, float32x4_t *part) {
  int8x16_t qb[32] __attribute__((aligned(64)));
  xai8_pack(j, 32 * b, c, cols, pf, qb);
  xai8_tile(j, qb, b, t0, S, part);
}
XAI8_SMALL_BY_BLOCKS(float32x4_t)
XAI8_FAST_BODY(int8x16_t, float32x4_t, 32)

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
