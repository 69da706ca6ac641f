/*
 * The i-quants (src/quant/iq*.ts) in canonical form (internal.h: value = s·u − m per 16 values). Their
 * values are a scale times a signed codebook value; u = codebook value (signed) + the codebook's largest
 * magnitude c, s = the scale, m = c·s. Every s·u and m is exact in float32 (at most 24 significant bits:
 * an f16 scale times a 5-bit integer times u ≤ 124), so s·u − m is the dequantiser's value exactly.
 * Codes: iq2_* ≤ 86, iq3_xxs ≤ 124, iq3_s ≤ 30, iq1_* ≤ 18 (all SIMD levels); iq4_xs ≤ 241 (as IQ4_NL).
 *
 * Eight values at a time in a uint64 (SWAR): grid bytes G, a byte mask S (0xff where the sign is minus):
 * u = c + G − (2G & S); no byte carries into the next since every step stays in 0…255.
 */
#include "../iq-grids.h"

/* Bit j of b → byte j of the result as 0x00 / 0xff. */
static inline uint64_t iq_bytemask(unsigned b) {
  uint64_t x = ((uint64_t)(b & 0xff) * 0x0101010101010101ull) & 0x8040201008040201ull;
  x = ((x + 0x7f7f7f7f7f7f7f7full) & 0x8080808080808080ull) >> 7;
  return x * 0xff;
}

/* Canonical codes of 8 values from their grid bytes and sign bits: u = c + G − (2G & S). */
static inline uint64_t iq_codes8(uint64_t grid, unsigned signs, uint64_t c) {
  return c + grid - ((grid + grid) & iq_bytemask(signs));
}

/*
 * Per type: HEADER(p, s16, m16) the block's 16 scales and offsets; GROUP(p, k, &G, &S) the grid bytes and
 * sign bits of values 8k … 8k + 7 (k = 0 … 31); C the codebook's largest magnitude (the code offset).
 */
#define IQ_C43 0x2b2b2b2b2b2b2b2bull
#define IQ_C62 0x3e3e3e3e3e3e3e3eull
#define IQ_C15 0x0f0f0f0f0f0f0f0full

/* d·(0.5 + ls)·0.25 as the dequantiser computes it (exact). */
GN_INLINE float iq2_scale(float d, unsigned ls) { return d * (0.5f + (float)ls) * 0.25f; }

GN_INLINE void iq_pair(float *s16, float *m16, int ib, float s0, float s1, float c) {
  s16[2 * ib] = s0;
  s16[2 * ib + 1] = s1;
  m16[2 * ib] = c * s0;
  m16[2 * ib + 1] = c * s1;
}

GN_INLINE void iq2_xxs_header(const uint8_t *p, float *s16, float *m16) {
  const float d = gn_f16(gn_rd16(p));
  for (int ib = 0; ib < 8; ib++) {
    const float db = iq2_scale(d, gn_rd32(p + 2 + 8 * ib + 4) >> 28);
    iq_pair(s16, m16, ib, db, db, 43);
  }
}
GN_INLINE void iq2_xxs_group(const uint8_t *p, int k, uint64_t *g, unsigned *sg) {
  const uint8_t *q = p + 2 + 8 * (k >> 2);
  *g = gn_iq2xxs_grid[q[k & 3]];
  *sg = gn_ksigns_iq2xs[(gn_rd32(q + 4) >> 7 * (k & 3)) & 127];
}

GN_INLINE void iq2_xs_header(const uint8_t *p, float *s16, float *m16) {
  const float d = gn_f16(gn_rd16(p));
  for (int ib = 0; ib < 8; ib++) iq_pair(s16, m16, ib, iq2_scale(d, p[66 + ib] & 15), iq2_scale(d, p[66 + ib] >> 4), 43);
}
GN_INLINE void iq2_xs_group(const uint8_t *p, int k, uint64_t *g, unsigned *sg) {
  const unsigned q = gn_rd16(p + 2 + 2 * k);
  *g = gn_iq2xs_grid[q & 511];
  *sg = gn_ksigns_iq2xs[q >> 9];
}

GN_INLINE void iq2_s_header(const uint8_t *p, float *s16, float *m16) {
  const float d = gn_f16(gn_rd16(p));
  for (int ib = 0; ib < 8; ib++) iq_pair(s16, m16, ib, iq2_scale(d, p[74 + ib] & 15), iq2_scale(d, p[74 + ib] >> 4), 43);
}
GN_INLINE void iq2_s_group(const uint8_t *p, int k, uint64_t *g, unsigned *sg) {
  const int ib = k >> 2, l = k & 3;
  *g = gn_iq2s_grid[p[2 + k] | ((p[66 + ib] << (8 - 2 * l)) & 0x300)];
  *sg = p[34 + k];
}

GN_INLINE void iq3_xxs_header(const uint8_t *p, float *s16, float *m16) {
  const float d = gn_f16(gn_rd16(p));
  for (int ib = 0; ib < 8; ib++) {
    const float db = d * (0.5f + (float)(gn_rd32(p + 66 + 4 * ib) >> 28)) * 0.5f;
    iq_pair(s16, m16, ib, db, db, 62);
  }
}
GN_INLINE void iq3_xxs_group(const uint8_t *p, int k, uint64_t *g, unsigned *sg) {
  const uint8_t *q = p + 2 + 2 * k;
  *g = gn_iq3xxs_grid[q[0]] | (uint64_t)gn_iq3xxs_grid[q[1]] << 32;
  *sg = gn_ksigns_iq2xs[(gn_rd32(p + 66 + 4 * (k >> 2)) >> 7 * (k & 3)) & 127];
}

GN_INLINE void iq3_s_header(const uint8_t *p, float *s16, float *m16) {
  const float d = gn_f16(gn_rd16(p));
  for (int ib = 0; ib < 8; ib++) {
    const unsigned sc = p[106 + ib / 2];
    const float db = d * (float)(1 + 2 * (ib & 1 ? sc >> 4 : sc & 15));
    iq_pair(s16, m16, ib, db, db, 15);
  }
}
GN_INLINE void iq3_s_group(const uint8_t *p, int k, uint64_t *g, unsigned *sg) {
  const unsigned qh = p[66 + (k >> 2)], l = (unsigned)k & 3;
  const uint8_t *q = p + 2 + 2 * k;
  *g = gn_iq3s_grid[q[0] | ((qh << (8 - 2 * l)) & 256)] | (uint64_t)gn_iq3s_grid[q[1] | ((qh << (7 - 2 * l)) & 256)] << 32;
  *sg = p[74 + k];
}

/*
 * IQ1_S / IQ1_M: value = dl·(g + δ), g ∈ {−1, 0, 1}, δ = ±1/8, i.e. (dl/8)·(8g + 8δ) with 8g + 8δ ∈ {−9,
 * −7, −1, 1, 7, 9}: u = 8g + 8δ + 9 (0…18), s = dl/8, m = 9·s. From the grid's int8 bytes, per byte
 * g + 1 = (g & 1) + 1 − 2·(sign bit of g) (0, 1, 2, no carry between bytes) and u = 8(g + 1) + 1 ± 1.
 */
GN_INLINE uint64_t iq1_codes8(uint64_t grid, int minus) {
  const uint64_t g1 = ((grid & 0x0101010101010101ull) + 0x0101010101010101ull) - ((grid >> 6) & 0x0202020202020202ull);
  return (g1 << 3) + (minus ? 0 : 0x0202020202020202ull);
}

GN_INLINE void iq1_s_header(const uint8_t *p, float *s16, float *m16) {
  const float d = gn_f16(gn_rd16(p));
  for (int ib = 0; ib < 8; ib++) {
    const float sc = d * (float)(2 * ((gn_rd16(p + 34 + 2 * ib) >> 12) & 7) + 1) * 0.125f;
    iq_pair(s16, m16, ib, sc, sc, 9);
  }
}
GN_INLINE uint64_t iq1_s_codes(const uint8_t *p, int k) {
  const unsigned qh = gn_rd16(p + 34 + 2 * (k >> 2));
  return iq1_codes8(gn_iq1s_grid[p[2 + k] | (((qh >> 3 * (k & 3)) & 7) << 8)], qh & 0x8000);
}

GN_INLINE void iq1_m_header(const uint8_t *p, float *s16, float *m16) {
  uint16_t sc[4];
  for (int i = 0; i < 4; i++) sc[i] = gn_rd16(p + 48 + 2 * i);
  const float d = gn_f16((uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000)));
  for (int ib = 0; ib < 8; ib++) {
    const unsigned k0 = (sc[ib / 2] >> (6 * (ib % 2))) & 7, k1 = (sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7;
    iq_pair(s16, m16, ib, d * (float)(2 * k0 + 1) * 0.125f, d * (float)(2 * k1 + 1) * 0.125f, 9);
  }
}
GN_INLINE uint64_t iq1_m_codes(const uint8_t *p, int k) {
  const unsigned nib = (p[32 + (k >> 1)] >> 4 * (k & 1)) & 15;
  return iq1_codes8(gn_iq1s_grid[p[k] | ((nib & 7) << 8)], nib & 8);
}

/* IQ4_XS: u = K + 128 (1…241) as IQ4_NL, s = d·(ls − 32) (≤ 16 significant bits, so s·u ≤ 24), m = 128·s. */
GN_INLINE void iq4_xs_header(const uint8_t *p, float *s16, float *m16) {
  const float d = gn_f16(gn_rd16(p));
  const unsigned sh = gn_rd16(p + 2);
  for (int ib = 0; ib < 8; ib++) {
    const int ls = (int)(((p[4 + ib / 2] >> 4 * (ib % 2)) & 15) | (((sh >> 2 * ib) & 3) << 4));
    const float dl = d * (float)(ls - 32);
    iq_pair(s16, m16, ib, dl, dl, 128);
  }
}

/* The canonical rows (scalar and SWAR; the SIMD kernels below make the same codes in registers). */
#define IQ_UNPACK_GRID(name, BB, C)                                                                   \
  static void unpack_##name(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {           \
    for (int b = 0; b < n_in / 256; b++) {                                                            \
      const uint8_t *p = row + (BB) * b;                                                              \
      name##_header(p, s + 16 * b, m + 16 * b);                                                       \
      for (int k = 0; k < 32; k++) {                                                                  \
        uint64_t g;                                                                                   \
        unsigned sg;                                                                                  \
        name##_group(p, k, &g, &sg);                                                                  \
        const uint64_t v = iq_codes8(g, sg, C);                                                       \
        memcpy(u + 256 * b + 8 * k, &v, 8);                                                           \
      }                                                                                               \
    }                                                                                                 \
  }
#define IQ_UNPACK_CODES(name, BB)                                                                     \
  static void unpack_##name(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {           \
    for (int b = 0; b < n_in / 256; b++) {                                                            \
      const uint8_t *p = row + (BB) * b;                                                              \
      name##_header(p, s + 16 * b, m + 16 * b);                                                       \
      for (int k = 0; k < 32; k++) {                                                                  \
        const uint64_t v = name##_codes(p, k);                                                        \
        memcpy(u + 256 * b + 8 * k, &v, 8);                                                           \
      }                                                                                               \
    }                                                                                                 \
  }
IQ_UNPACK_GRID(iq2_xxs, 66, IQ_C43)
IQ_UNPACK_GRID(iq2_xs, 74, IQ_C43)
IQ_UNPACK_GRID(iq2_s, 82, IQ_C43)
IQ_UNPACK_GRID(iq3_xxs, 98, IQ_C62)
IQ_UNPACK_GRID(iq3_s, 110, IQ_C15)
IQ_UNPACK_CODES(iq1_s, 50)
IQ_UNPACK_CODES(iq1_m, 56)

static void unpack_iq4_xs(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 136 * b;
    iq4_xs_header(p, s + 16 * b, m + 16 * b);
    for (int ib = 0; ib < 8; ib++) {
      const uint8_t *q = p + 8 + 16 * ib;
      uint8_t *o = u + 256 * b + 32 * ib;
      for (int j = 0; j < 16; j++) {
        o[j] = (uint8_t)(iq4nl_values[q[j] & 15] + 128);
        o[j + 16] = (uint8_t)(iq4nl_values[q[j] >> 4] + 128);
      }
    }
  }
}

/*
 * Fast mode for one to four tokens, reading the blocks in place: the codes of each 64 (AVX-512) or 32
 * (AVX2) values made in registers from the grids, then exactly the canonical kernel's arithmetic
 * (canon.c: CANON_FAST_TILE's lanes, scales and order, and canon_offsets' sum of the offsets), so a token's
 * result is bit-identical whether it runs here (decode) or through unpack + canon_fast (longer batches,
 * which amortise the unpacking over their tokens): batch invariance holds across the switch.
 */
#if GN_X86_AVX512
#define IQ_DIRECT_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, BB, HEADER, CODES)                         \
  do {                                                                                                \
    const __m512i is = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);               \
    const __m512i id = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);               \
    const int nb = n / 256, n32 = n / 32, n16 = n / 16;                                               \
    __m512 acc[R][C], macc[R][C];                                                                     \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = macc[i][t] = _mm512_setzero_ps();                       \
    for (int b = 0; b < nb; b++) {                                                                    \
      float s16[R][16] __attribute__((aligned(64))), m16[R][16] __attribute__((aligned(64)));         \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + (BB) * (size_t)b;                                                \
        gn_prefetch_block(p, (BB)); /* 1024 bytes ahead (2048, 4096: no faster) */                  \
        HEADER(p, s16[i], m16[i]);                                                                    \
        for (int t = 0; t < C; t++)                                                                   \
          macc[i][t] = _mm512_fmadd_ps(_mm512_load_ps(m16[i]), _mm512_loadu_ps(xs16 + (size_t)t * n16 + 16 * (size_t)b), macc[i][t]); \
      }                                                                                               \
      for (int h = 0; h < 4; h++) {                                                                   \
        const size_t k = 256 * (size_t)b + 64 * (size_t)h;                                            \
        __m512i U[R];                                                                                 \
        __m512 se[R];                                                                                 \
        for (int i = 0; i < R; i++) {                                                                 \
          U[i] = CODES(rows[i] + (BB) * (size_t)b, h);                                                \
          se[i] = _mm512_permutexvar_ps(is, _mm512_castps128_ps512(_mm_load_ps(s16[i] + 4 * h)));     \
        }                                                                                             \
        for (int t = 0; t < C; t++) {                                                                 \
          const __m512i X = _mm512_loadu_si512(xq + (size_t)t * n + k);                               \
          const __m512 dx = _mm512_permutexvar_ps(id, _mm512_castps128_ps512(_mm_maskz_loadu_ps(0x03, xd + (size_t)t * n32 + k / 32))); \
          for (int i = 0; i < R; i++) {                                                               \
            const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), U[i], X);                   \
            acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(se[i], dx), acc[i][t]);  \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum512(acc[i][t]) - (float)gn_hsum512(macc[i][t]); \
  } while (0)

/* IQ4_XS values 64h … 64h + 63 (sub-blocks 2h, 2h + 1): low then high nibbles of 16 bytes each, K + 128. */
GN_INLINE __m512i iq4_xs_codes64(const uint8_t *p, int h) {
  const __m512i q = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 8 + 32 * h)));
  const __m512i qq = _mm512_shuffle_i64x2(q, q, 0x50); /* 128-bit lanes: bytes 0–15, 0–15, 16–31, 16–31 */
  const __m512i nib = _mm512_and_si512(_mm512_mask_srli_epi16(qq, 0xff00ff00u, qq, 4), _mm512_set1_epi8(0x0f));
  const __m512i table = _mm512_broadcast_i32x4(_mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153,
                                                            (char)166, (char)181, (char)197, (char)217, (char)241));
  return _mm512_shuffle_epi8(table, nib);
}

/* ksigns of eight 7-bit indices (16-bit lanes): the index with the parity of its bits in bit 7, as 8 bytes. */
GN_INLINE uint64_t iq_ksigns8(__m128i i7) {
  __m128i t = _mm_xor_si128(i7, _mm_srli_epi16(i7, 4));
  t = _mm_xor_si128(t, _mm_srli_epi16(t, 2));
  t = _mm_xor_si128(t, _mm_srli_epi16(t, 1));
  const __m128i s = _mm_or_si128(i7, _mm_slli_epi16(_mm_and_si128(t, _mm_set1_epi16(1)), 7));
  return (uint64_t)_mm_cvtsi128_si64(_mm_packus_epi16(s, s));
}

/* The four 7-bit sign indices of the u32 at p (iq2_xxs, iq3_xxs) for 32-bit lanes 0–3 and of the one at q for
 * lanes 4–7, as eight 16-bit lanes. */
GN_INLINE __m128i iq_sign_fields(uint32_t a, uint32_t b) {
  const __m256i v = _mm256_setr_epi32((int)a, (int)a, (int)a, (int)a, (int)b, (int)b, (int)b, (int)b);
  const __m256i f = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 7, 14, 21, 0, 7, 14, 21)), _mm256_set1_epi32(127));
  return _mm256_cvtepi32_epi16(f);
}

GN_INLINE __m512i iq_blend_codes(__m512i G, uint64_t sg, long long c) {
  const __m512i cc = _mm512_set1_epi64(c);
  return _mm512_mask_blend_epi8(_cvtu64_mask64(sg), _mm512_add_epi8(cc, G), _mm512_sub_epi8(cc, G));
}

#define IQ_SET8(grid, i) _mm512_set_epi64((long long)grid[i(7)], (long long)grid[i(6)], (long long)grid[i(5)], (long long)grid[i(4)], \
                                         (long long)grid[i(3)], (long long)grid[i(2)], (long long)grid[i(1)], (long long)grid[i(0)])
GN_INLINE __m512i iq2_xs_codes64_s(const uint8_t *p, int h) {
  const uint8_t *q = p + 2 + 16 * h;
#define I(k) (gn_rd16(q + 2 * (k)) & 511)
  const __m512i G = IQ_SET8(gn_iq2xs_grid, I);
#undef I
  return iq_blend_codes(G, iq_ksigns8(_mm_srli_epi16(_mm_loadu_si128((const __m128i *)q), 9)), (long long)IQ_C43);
}
GN_INLINE __m512i iq2_xxs_codes64_s(const uint8_t *p, int h) {
  const uint8_t *q = p + 2 + 16 * h;
#define I(k) q[(k) + ((k) & 4)]
  const __m512i G = IQ_SET8(gn_iq2xxs_grid, I);
#undef I
  const uint64_t sg = iq_ksigns8(iq_sign_fields(gn_rd32(q + 4), gn_rd32(q + 12)));
  return iq_blend_codes(G, sg, (long long)IQ_C43);
}
GN_INLINE __m512i iq2_s_codes64_s(const uint8_t *p, int h) {
  const uint8_t *q = p + 2 + 8 * h;
  const unsigned qh = gn_rd16(p + 66 + 2 * h);
#define I(k) (q[k] | ((qh >> (2 * (k)) & 3) << 8))
  const __m512i G = IQ_SET8(gn_iq2s_grid, I);
#undef I
  uint64_t sg;
  memcpy(&sg, p + 34 + 8 * h, 8);
  return iq_blend_codes(G, sg, (long long)IQ_C43);
}
GN_INLINE __m512i iq3_xxs_codes64_s(const uint8_t *p, int h) {
  const uint8_t *q = p + 2 + 16 * h;
  uint64_t g[8];
  for (int k = 0; k < 8; k++) g[k] = gn_iq3xxs_grid[q[2 * k]] | (uint64_t)gn_iq3xxs_grid[q[2 * k + 1]] << 32;
  const __m512i G = _mm512_loadu_si512(g);
  const uint64_t sg = iq_ksigns8(iq_sign_fields(gn_rd32(p + 66 + 8 * h), gn_rd32(p + 70 + 8 * h)));
  return iq_blend_codes(G, sg, (long long)IQ_C62);
}
GN_INLINE __m512i iq3_s_codes64_s(const uint8_t *p, int h) {
  const uint8_t *q = p + 2 + 16 * h;
  const unsigned qh = gn_rd16(p + 66 + 2 * h); /* bit j: the 9th index bit of point j */
  uint64_t g[8];
  for (int k = 0; k < 8; k++)
    g[k] = gn_iq3s_grid[q[2 * k] | ((qh >> (2 * k) & 1) << 8)] | (uint64_t)gn_iq3s_grid[q[2 * k + 1] | ((qh >> (2 * k + 1) & 1) << 8)] << 32;
  uint64_t sg;
  memcpy(&sg, p + 74 + 8 * h, 8);
  return iq_blend_codes(_mm512_loadu_si512(g), sg, (long long)IQ_C15);
}

/* IQ1: u = 8·(g + 1) + (δ > 0 ? 2 : 0) per byte (iq1_codes8); `plus` has byte k 0xff where group k's δ > 0. */
GN_INLINE __m512i iq1_codes64(__m512i G, uint64_t plus) {
  const __m512i g8 = _mm512_slli_epi16(_mm512_add_epi8(G, _mm512_set1_epi8(1)), 3); /* ≤ 16 per byte: no spill */
  return _mm512_mask_add_epi8(g8, _cvtu64_mask64(plus), g8, _mm512_set1_epi8(2));
}
GN_INLINE __m512i iq1_s_codes64_s(const uint8_t *p, int h) {
  const uint8_t *q = p + 2 + 8 * h;
  const unsigned h0 = gn_rd16(p + 34 + 4 * h), h1 = gn_rd16(p + 36 + 4 * h);
#define I(k) (q[k] | ((((k) < 4 ? h0 : h1) >> (3 * ((k) & 3)) & 7) << 8))
  const __m512i G = IQ_SET8(gn_iq1s_grid, I);
#undef I
  const uint64_t plus = (h0 & 0x8000 ? 0 : 0xffffffffull) | (h1 & 0x8000 ? 0 : 0xffffffff00000000ull);
  return iq1_codes64(G, plus);
}
GN_INLINE __m512i iq1_m_codes64_s(const uint8_t *p, int h) {
  const uint8_t *q = p + 8 * h;
  const uint32_t qh = gn_rd32(p + 32 + 4 * h); /* nibble k: 3 high index bits and the sign of δ of group k */
#define I(k) (q[k] | ((qh >> (4 * (k)) & 7) << 8))
  const __m512i G = IQ_SET8(gn_iq1s_grid, I);
#undef I
  unsigned minus = 0;
  for (int k = 0; k < 8; k++) minus |= ((qh >> (4 * k + 3)) & 1) << k;
  return iq1_codes64(G, iq_bytemask(~minus & 0xff));
}

/* Vector headers (AVX-512): the same float operations as the scalar ones, 16 scales at once. */
GN_INLINE void iq_store_sm(float *s16, float *m16, __m512 s, float c) {
  _mm512_store_ps(s16, s);
  _mm512_store_ps(m16, _mm512_mul_ps(_mm512_set1_ps(c), s));
}
/* Two 4-bit scales per byte of sc[0…7] (low nibble first) as 16 lanes: d·(0.5 + ls)·0.25. */
GN_INLINE void iq2_nibble_header(const uint8_t *p, const uint8_t *sc, float *s16, float *m16) {
  const __m128i b = _mm_loadl_epi64((const __m128i *)sc), k = _mm_set1_epi8(0x0f);
  const __m128i ls = _mm_unpacklo_epi8(_mm_and_si128(b, k), _mm_and_si128(_mm_srli_epi16(b, 4), k));
  const __m512 v = _mm512_add_ps(_mm512_set1_ps(0.5f), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(ls)));
  iq_store_sm(s16, m16, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(gn_f16(gn_rd16(p))), v), _mm512_set1_ps(0.25f)), 43);
}
GN_INLINE void iq2_xs_header512(const uint8_t *p, float *s16, float *m16) { iq2_nibble_header(p, p + 66, s16, m16); }
GN_INLINE void iq2_s_header512(const uint8_t *p, float *s16, float *m16) { iq2_nibble_header(p, p + 74, s16, m16); }
GN_INLINE void iq3_s_header512(const uint8_t *p, float *s16, float *m16) {
  const __m128i b = _mm_cvtsi32_si128((int)gn_rd32(p + 106)), k = _mm_set1_epi8(0x0f);
  const __m128i n = _mm_unpacklo_epi8(_mm_and_si128(b, k), _mm_and_si128(_mm_srli_epi16(b, 4), k)); /* ls of sub-blocks 0…7 */
  const __m128i n2 = _mm_unpacklo_epi8(n, n); /* each twice: 16 values */
  const __m512i odd = _mm512_add_epi32(_mm512_slli_epi32(_mm512_cvtepu8_epi32(n2), 1), _mm512_set1_epi32(1));
  iq_store_sm(s16, m16, _mm512_mul_ps(_mm512_set1_ps(gn_f16(gn_rd16(p))), _mm512_cvtepi32_ps(odd)), 15);
}

/* One row at a time for one or two tokens (measured: two rows sharing the activations lose here, unlike the
 * K-quants' gn_direct_pair), max_r for more. */
#define IQ_DIRECT(name, BB, max_r)                                                                    \
  static void name##_direct(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {                 \
    (void)scratch;                                                                                    \
    GN_DIRECT_ROWS_GROUP(j, r0, r1, j->T <= 2 ? 1 : (max_r), name##_TILE);                                          \
  }
#define iq2_xxs_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 66, iq2_xxs_header, iq2_xxs_codes64_s)
#define iq2_xs_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 74, iq2_xs_header512, iq2_xs_codes64_s)
#define iq2_s_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 82, iq2_s_header512, iq2_s_codes64_s)
#define iq3_xxs_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 98, iq3_xxs_header, iq3_xxs_codes64_s)
#define iq3_s_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 110, iq3_s_header512, iq3_s_codes64_s)
#define iq1_s_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 50, iq1_s_header, iq1_s_codes64_s)
#define iq1_m_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 56, iq1_m_header, iq1_m_codes64_s)
#define iq4_xs_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 136, iq4_xs_header, iq4_xs_codes64)
IQ_DIRECT(iq2_xxs, 66, GN_ROW_GROUP)
IQ_DIRECT(iq2_xs, 74, GN_ROW_GROUP)
IQ_DIRECT(iq2_s, 82, GN_ROW_GROUP)
IQ_DIRECT(iq3_xxs, 98, GN_ROW_GROUP)
IQ_DIRECT(iq3_s, 110, GN_ROW_GROUP)
IQ_DIRECT(iq1_s, 50, GN_ROW_GROUP)
IQ_DIRECT(iq1_m, 56, GN_ROW_GROUP)
IQ_DIRECT(iq4_xs, 136, GN_ROW_GROUP)
#define IQ_HAS_DIRECT 1

#elif GN_X86_AVX2
#define IQ_DIRECT_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, BB, HEADER, CODES)                         \
  do {                                                                                                \
    const __m256i is = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);                                      \
    const int nb = n / 256, n32 = n / 32, n16 = n / 16;                                               \
    __m256 acc[R][C], macc[R][C];                                                                     \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = macc[i][t] = _mm256_setzero_ps();                       \
    for (int b = 0; b < nb; b++) {                                                                    \
      float s16[R][16] __attribute__((aligned(32))), m16[R][16] __attribute__((aligned(32)));         \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + (BB) * (size_t)b;                                                \
        gn_prefetch_block(p, (BB));                                                                   \
        HEADER(p, s16[i], m16[i]);                                                                    \
        for (int t = 0; t < C; t++) {                                                                 \
          const float *xs = xs16 + (size_t)t * n16 + 16 * (size_t)b;                                  \
          macc[i][t] = _mm256_fmadd_ps(_mm256_load_ps(m16[i]), _mm256_loadu_ps(xs), macc[i][t]);      \
          macc[i][t] = _mm256_fmadd_ps(_mm256_load_ps(m16[i] + 8), _mm256_loadu_ps(xs + 8), macc[i][t]); \
        }                                                                                             \
      }                                                                                               \
      for (int sb = 0; sb < 8; sb++) {                                                                \
        const size_t k = 256 * (size_t)b + 32 * (size_t)sb;                                           \
        __m256i U[R];                                                                                 \
        __m256 se[R];                                                                                 \
        for (int i = 0; i < R; i++) {                                                                 \
          U[i] = CODES(rows[i] + (BB) * (size_t)b, sb);                                               \
          se[i] = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_castpd_ps(_mm_load_sd((const double *)(s16[i] + 2 * sb)))), is); \
        }                                                                                             \
        for (int t = 0; t < C; t++) {                                                                 \
          const __m256i X = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * n + k));            \
          const __m256 dx = _mm256_broadcast_ss(xd + (size_t)t * n32 + k / 32);                       \
          for (int i = 0; i < R; i++)                                                                 \
            acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(gn_dot_u8s8(U[i], X)), _mm256_mul_ps(se[i], dx), acc[i][t]); \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum256(acc[i][t]) - (float)gn_hsum256(macc[i][t]); \
  } while (0)

/* Bit j of the 32-bit s → byte j as 0x00 / 0xff. */
GN_INLINE __m256i iq_bytemask32(uint32_t s) {
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)s), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                                        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

#define IQ_CODES32_GRID(name, C)                                                                      \
  GN_INLINE __m256i name##_codes32(const uint8_t *p, int j) {                                         \
    uint64_t g[4];                                                                                    \
    uint32_t sg = 0;                                                                                  \
    for (int k = 0; k < 4; k++) {                                                                     \
      unsigned s;                                                                                     \
      name##_group(p, 4 * j + k, &g[k], &s);                                                          \
      sg |= s << 8 * k;                                                                               \
    }                                                                                                 \
    const __m256i G = _mm256_set_epi64x((long long)g[3], (long long)g[2], (long long)g[1], (long long)g[0]); \
    const __m256i c = _mm256_set1_epi64x((long long)(C));                                             \
    return _mm256_blendv_epi8(_mm256_add_epi8(c, G), _mm256_sub_epi8(c, G), iq_bytemask32(sg));       \
  }
#define IQ_CODES32_CODES(name)                                                                        \
  GN_INLINE __m256i name##_codes32(const uint8_t *p, int j) {                                         \
    return _mm256_set_epi64x((long long)name##_codes(p, 4 * j + 3), (long long)name##_codes(p, 4 * j + 2), \
                             (long long)name##_codes(p, 4 * j + 1), (long long)name##_codes(p, 4 * j));   \
  }

#define IQ_CODES(name) name##_codes32
IQ_CODES32_GRID(iq2_xxs, IQ_C43)
IQ_CODES32_GRID(iq2_xs, IQ_C43)
IQ_CODES32_GRID(iq2_s, IQ_C43)
IQ_CODES32_GRID(iq3_xxs, IQ_C62)
IQ_CODES32_GRID(iq3_s, IQ_C15)
IQ_CODES32_CODES(iq1_s)
IQ_CODES32_CODES(iq1_m)

#elif GN_ARM_NEON
/*
 * T ≤ GN_SMALL_T on NEON, bit-identical to CANON_FAST_TILE (canon.c) on the unpacked row: per 16 values one
 * dot of codes and activations scaled by s·dx into the same 4 lanes, the offsets m·xs16 in their own 4-lane
 * sum, in the same order — only the codes come from the block instead of scratch.
 */
#define IQ_DIRECT_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, BB, HEADER, CODES)                         \
  do {                                                                                                \
    const int nb = n / 256, n32 = n / 32, n16 = n / 16;                                               \
    float32x4_t acc[R][C], macc[R][C];                                                                \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = macc[i][t] = vdupq_n_f32(0);                            \
    for (int b = 0; b < nb; b++) {                                                                    \
      float s16[R][16], m16[R][16];                                                                   \
      for (int i = 0; i < R; i++) {                                                                   \
        const uint8_t *p = rows[i] + (BB) * (size_t)b;                                                \
        gn_prefetch_block(p, (BB));                                                                   \
        HEADER(p, s16[i], m16[i]);                                                                    \
        for (int t = 0; t < C; t++) {                                                                 \
          const float *xs = xs16 + (size_t)t * n16 + 16 * (size_t)b;                                  \
          for (int g = 0; g < 16; g += 4) macc[i][t] = vfmaq_f32(macc[i][t], vld1q_f32(m16[i] + g), vld1q_f32(xs + g)); \
        }                                                                                             \
      }                                                                                               \
      for (int g = 0; g < 16; g++) {                                                                  \
        int8x16_t U[R];                                                                               \
        for (int i = 0; i < R; i++) U[i] = CODES(rows[i] + (BB) * (size_t)b, g);                      \
        for (int t = 0; t < C; t++) {                                                                 \
          const int8x16_t X = vld1q_s8(xq + (size_t)t * n + 256 * (size_t)b + 16 * (size_t)g);         \
          const float32x4_t dx = vdupq_n_f32(xd[(size_t)t * n32 + 8 * (size_t)b + g / 2]);              \
          for (int i = 0; i < R; i++)                                                                 \
            acc[i][t] = vfmaq_f32(acc[i][t], vcvtq_f32_s32(CANON_DOT4(vdupq_n_s32(0), U[i], X)), vmulq_f32(vdupq_n_f32(s16[i][g]), dx)); \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsumq(acc[i][t]) - gn_hsumq(macc[i][t]); \
  } while (0)

/* Codes of values 16g … 16g + 15 (two groups of 8) as signed bytes (every i-quant code here is ≤ 124). */
#define IQ_CODES16_GRID(name, C)                                                                      \
  GN_INLINE int8x16_t name##_codes16(const uint8_t *p, int g) {                                       \
    uint64_t g0, g1;                                                                                  \
    unsigned s0, s1;                                                                                  \
    name##_group(p, 2 * g, &g0, &s0);                                                                 \
    name##_group(p, 2 * g + 1, &g1, &s1);                                                             \
    return vreinterpretq_s8_u64(vcombine_u64(vcreate_u64(iq_codes8(g0, s0, C)), vcreate_u64(iq_codes8(g1, s1, C)))); \
  }
#define IQ_CODES16_CODES(name)                                                                        \
  GN_INLINE int8x16_t name##_codes16(const uint8_t *p, int g) {                                       \
    return vreinterpretq_s8_u64(vcombine_u64(vcreate_u64(name##_codes(p, 2 * g)), vcreate_u64(name##_codes(p, 2 * g + 1)))); \
  }
#define IQ_CODES(name) name##_codes16
IQ_CODES16_GRID(iq2_xxs, IQ_C43)
IQ_CODES16_GRID(iq2_xs, IQ_C43)
IQ_CODES16_GRID(iq2_s, IQ_C43)
IQ_CODES16_GRID(iq3_xxs, IQ_C62)
IQ_CODES16_GRID(iq3_s, IQ_C15)
IQ_CODES16_CODES(iq1_s)
IQ_CODES16_CODES(iq1_m)
#endif

#if (GN_X86_AVX2 && !GN_X86_AVX512) || GN_ARM_NEON
/* AVX2 and NEON: the tiles above with this level's code maker (IQ_CODES), up to 2 rows a group. */
#define IQ_DIRECT(name, BB, max_r)                                                                    \
  static void name##_direct(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {                 \
    (void)scratch;                                                                                    \
    GN_DIRECT_ROWS(j, r0, r1, max_r, name##_TILE);                                                    \
  }
#define iq2_xxs_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 66, iq2_xxs_header, IQ_CODES(iq2_xxs))
#define iq2_xs_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 74, iq2_xs_header, IQ_CODES(iq2_xs))
#define iq2_s_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 82, iq2_s_header, IQ_CODES(iq2_s))
#define iq3_xxs_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 98, iq3_xxs_header, IQ_CODES(iq3_xxs))
#define iq3_s_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 110, iq3_s_header, IQ_CODES(iq3_s))
#define iq1_s_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 50, iq1_s_header, IQ_CODES(iq1_s))
#define iq1_m_TILE(R, C, ...) IQ_DIRECT_TILE(R, C, __VA_ARGS__, 56, iq1_m_header, IQ_CODES(iq1_m))
IQ_DIRECT(iq2_xxs, 66, 2)
IQ_DIRECT(iq2_xs, 74, 2)
IQ_DIRECT(iq2_s, 82, 2)
IQ_DIRECT(iq3_xxs, 98, 2)
IQ_DIRECT(iq3_s, 110, 2)
IQ_DIRECT(iq1_s, 50, 2)
IQ_DIRECT(iq1_m, 56, 2)
#define IQ_HAS_DIRECT 1
#endif

#if (GN_X86_AVX2 && !GN_X86_AVX512) || GN_ARM_NEON
/* IQ4_XS / IQ4_NL on AVX2 and NEON: the scales of a block's 32-value sub-blocks. */
GN_INLINE void iq4_xs_scales(const uint8_t *p, float *dl) {
  const float d = gn_f16(gn_rd16(p));
  const unsigned sh = gn_rd16(p + 2);
  for (int ib = 0; ib < 8; ib++) dl[ib] = d * (float)((int)(((p[4 + ib / 2] >> 4 * (ib % 2)) & 15) | (((sh >> 2 * ib) & 3) << 4)) - 32);
}
GN_INLINE void iq4_nl_scales(const uint8_t *p, float *dl) { dl[0] = gn_f16(gn_rd16(p)); }
#endif

#if GN_X86_AVX2 && !GN_X86_AVX512
/*
 * IQ4_XS and IQ4_NL on AVX2, fast mode at every T (their codes K + 128 do not fit maddubs, so the canonical
 * kernel runs them on the scalar level; this one multiplies the signed table values instead): per 32 values
 * |K| · (x with K's sign) in maddubs (pairs ≤ 2·127·127, no saturation), one float scale dl·dx per 32.
 * Its own arithmetic, the same for every T (batch invariance).
 */
GN_INLINE __m256i iq4_values32(const uint8_t *q) {
  const __m128i b = _mm_loadu_si128((const __m128i *)q);
  const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0f));
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)iq4nl_values));
  return _mm256_shuffle_epi8(table, nib);
}


/* BB bytes and NS sub-blocks per block; the nibbles of sub-block ib at QS + 16·ib. */
#define IQ4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, BB, NS, QS, SCALES)                         \
  do {                                                                                                \
    (void)xs16;                                                                                       \
    const int nk = n / 32;                                                                            \
    const __m256i ones = _mm256_set1_epi16(1);                                                        \
    __m256 acc[R][C];                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = _mm256_setzero_ps();                                    \
    for (int b = 0; b < nk / (NS); b++) {                                                             \
      float dl[R][NS];                                                                                \
      for (int i = 0; i < R; i++) {                                                                   \
        gn_prefetch_block(rows[i] + (BB) * (size_t)b, (BB));                                          \
        SCALES(rows[i] + (BB) * (size_t)b, dl[i]);                                                    \
      }                                                                                               \
      for (int ib = 0; ib < (NS); ib++) {                                                             \
        const int k = (NS) * b + ib;                                                                  \
        __m256i A[R], S[R];                                                                           \
        for (int i = 0; i < R; i++) {                                                                 \
          S[i] = iq4_values32(rows[i] + (BB) * (size_t)b + (QS) + 16 * ib);                           \
          A[i] = _mm256_sign_epi8(S[i], S[i]);                                                        \
        }                                                                                             \
        for (int t = 0; t < C; t++) {                                                                 \
          const __m256i X = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * n + 32 * (size_t)k)); \
          const float dx = xd[(size_t)t * nk + k];                                                    \
          for (int i = 0; i < R; i++) {                                                               \
            const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(A[i], _mm256_sign_epi8(X, S[i])), ones); \
            acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dl[i][ib] * dx), acc[i][t]); \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsum256(acc[i][t]);                     \
  } while (0)
#define IQ4_MAX_R 2
#define IQ4_HAS_AVX2 1

#elif GN_ARM_NEON
/*
 * IQ4_XS and IQ4_NL on NEON, fast mode at every T (the canonical codes K + 128 are not signed bytes): the
 * signed table values (vqtbl1q from the nibbles) times the 8-bit activations, s8 × s8 dots per 32 values,
 * one float scale dl·dx per 32. Its own arithmetic, the same for every T (batch invariance).
 */

#define IQ4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, BB, NS, QS, SCALES)                         \
  do {                                                                                                \
    (void)xs16;                                                                                       \
    const int nk = n / 32;                                                                            \
    const int8x16_t table = vld1q_s8(iq4nl_values);                                                   \
    float32x4_t acc[R][C];                                                                            \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) acc[i][t] = vdupq_n_f32(0);                                         \
    for (int b = 0; b < nk / (NS); b++) {                                                             \
      float dl[R][NS];                                                                                \
      for (int i = 0; i < R; i++) {                                                                   \
        gn_prefetch_block(rows[i] + (BB) * (size_t)b, (BB));                                          \
        SCALES(rows[i] + (BB) * (size_t)b, dl[i]);                                                    \
      }                                                                                               \
      for (int ib = 0; ib < (NS); ib++) {                                                             \
        const int k = (NS) * b + ib;                                                                  \
        int8x16_t V0[R], V1[R];                                                                       \
        for (int i = 0; i < R; i++) {                                                                 \
          const uint8x16_t q = vld1q_u8(rows[i] + (BB) * (size_t)b + (QS) + 16 * ib);                 \
          V0[i] = vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0f)));                                   \
          V1[i] = vqtbl1q_s8(table, vshrq_n_u8(q, 4));                                                \
        }                                                                                             \
        for (int t = 0; t < C; t++) {                                                                 \
          const int8_t *xk = xq + (size_t)t * n + 32 * (size_t)k;                                     \
          const int8x16_t X0 = vld1q_s8(xk), X1 = vld1q_s8(xk + 16);                                  \
          const float dx = xd[(size_t)t * nk + k];                                                    \
          for (int i = 0; i < R; i++) {                                                               \
            const int32x4_t s = CANON_DOT4(CANON_DOT4(vdupq_n_s32(0), V0[i], X0), V1[i], X1);          \
            acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(s), dl[i][ib] * dx);                      \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
    }                                                                                                 \
    for (int i = 0; i < R; i++)                                                                       \
      for (int t = 0; t < C; t++) y[(size_t)t * ldy + i] = gn_hsumq(acc[i][t]);                       \
  } while (0)
#define IQ4_MAX_R GN_ROW_GROUP
#define IQ4_HAS_NEON 1
#endif

#if IQ4_HAS_AVX2 || IQ4_HAS_NEON
#define IQ4_XS_TILE(R, C, rows, n, xq, xd, xs16, y, ldy) IQ4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, 136, 8, 8, iq4_xs_scales)
#define IQ4_NL_TILE(R, C, rows, n, xq, xd, xs16, y, ldy) IQ4_FAST_TILE(R, C, rows, n, xq, xd, xs16, y, ldy, 18, 1, 2, iq4_nl_scales)

static void iq4_xs_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, IQ4_MAX_R, IQ4_XS_TILE);
}
static void iq4_nl_fast(const gn_rows_job *j, int r0, int r1, uint8_t *scratch) {
  (void)scratch;
  GN_DIRECT_ROWS(j, r0, r1, IQ4_MAX_R, IQ4_NL_TILE);
}
#endif
