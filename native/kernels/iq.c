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

/* ksigns_iq2xs: 7 sign bits and the parity bit that makes the count of minus signs even. */
static inline unsigned iq_ksigns(unsigned i) { return i | (unsigned)(__builtin_parity(i) << 7); }

static inline void iq_put8(uint8_t *o, uint64_t grid, unsigned signs, uint64_t c) {
  const uint64_t u = c + grid - ((grid + grid) & iq_bytemask(signs));
  memcpy(o, &u, 8);
}

#define IQ_C43 0x2b2b2b2b2b2b2b2bull
#define IQ_C62 0x3e3e3e3e3e3e3e3eull
#define IQ_C15 0x0f0f0f0f0f0f0f0full

/* d·(0.5 + ls)·0.25 as the dequantiser computes it (exact). */
static inline float iq2_scale(float d, unsigned ls) { return d * (0.5f + (float)ls) * 0.25f; }

static inline void iq_scales16(float *s, float *m, int g, float sc, float c) {
  s[g] = sc;
  m[g] = c * sc;
}

static void unpack_iq2_xxs(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 66 * b;
    const float d = gn_f16(gn_rd16(p));
    for (int ib = 0; ib < 8; ib++) {
      const uint8_t *q = p + 2 + 8 * ib;
      const uint32_t sg = gn_rd32(q + 4);
      const float db = iq2_scale(d, sg >> 28);
      for (int l = 0; l < 4; l++) iq_put8(u + 256 * b + 32 * ib + 8 * l, gn_iq2xxs_grid[q[l]], iq_ksigns((sg >> 7 * l) & 127), IQ_C43);
      iq_scales16(s, m, 16 * b + 2 * ib, db, 43);
      iq_scales16(s, m, 16 * b + 2 * ib + 1, db, 43);
    }
  }
}

static void unpack_iq2_xs(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 74 * b;
    const float d = gn_f16(gn_rd16(p));
    for (int k = 0; k < 32; k++) {
      const unsigned q = gn_rd16(p + 2 + 2 * k);
      iq_put8(u + 256 * b + 8 * k, gn_iq2xs_grid[q & 511], iq_ksigns(q >> 9), IQ_C43);
    }
    for (int ib = 0; ib < 8; ib++) {
      const unsigned sc = p[66 + ib];
      iq_scales16(s, m, 16 * b + 2 * ib, iq2_scale(d, sc & 15), 43);
      iq_scales16(s, m, 16 * b + 2 * ib + 1, iq2_scale(d, sc >> 4), 43);
    }
  }
}

static void unpack_iq2_s(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 82 * b;
    const float d = gn_f16(gn_rd16(p));
    for (int ib = 0; ib < 8; ib++) {
      const unsigned qh = p[66 + ib], sc = p[74 + ib];
      for (int l = 0; l < 4; l++) {
        const unsigned idx = p[2 + 4 * ib + l] | ((qh << (8 - 2 * l)) & 0x300);
        iq_put8(u + 256 * b + 32 * ib + 8 * l, gn_iq2s_grid[idx], p[34 + 4 * ib + l], IQ_C43);
      }
      iq_scales16(s, m, 16 * b + 2 * ib, iq2_scale(d, sc & 15), 43);
      iq_scales16(s, m, 16 * b + 2 * ib + 1, iq2_scale(d, sc >> 4), 43);
    }
  }
}

static void unpack_iq3_xxs(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 98 * b;
    const float d = gn_f16(gn_rd16(p));
    for (int ib = 0; ib < 8; ib++) {
      const uint8_t *q = p + 2 + 8 * ib;
      const uint32_t sg = gn_rd32(p + 66 + 4 * ib);
      const float db = d * (0.5f + (float)(sg >> 28)) * 0.5f;
      for (int l = 0; l < 4; l++) {
        const uint64_t g = gn_iq3xxs_grid[q[2 * l]] | (uint64_t)gn_iq3xxs_grid[q[2 * l + 1]] << 32;
        iq_put8(u + 256 * b + 32 * ib + 8 * l, g, iq_ksigns((sg >> 7 * l) & 127), IQ_C62);
      }
      iq_scales16(s, m, 16 * b + 2 * ib, db, 62);
      iq_scales16(s, m, 16 * b + 2 * ib + 1, db, 62);
    }
  }
}

static void unpack_iq3_s(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 110 * b;
    const float d = gn_f16(gn_rd16(p));
    for (int ib = 0; ib < 8; ib++) {
      const uint8_t *q = p + 2 + 8 * ib;
      const unsigned qh = p[66 + ib], sc = p[106 + ib / 2];
      const float db = d * (float)(1 + 2 * (ib & 1 ? sc >> 4 : sc & 15));
      for (int l = 0; l < 4; l++) {
        const unsigned i0 = q[2 * l] | ((qh << (8 - 2 * l)) & 256), i1 = q[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
        const uint64_t g = gn_iq3s_grid[i0] | (uint64_t)gn_iq3s_grid[i1] << 32;
        iq_put8(u + 256 * b + 32 * ib + 8 * l, g, p[74 + 4 * ib + l], IQ_C15);
      }
      iq_scales16(s, m, 16 * b + 2 * ib, db, 15);
      iq_scales16(s, m, 16 * b + 2 * ib + 1, db, 15);
    }
  }
}

/*
 * IQ1_S / IQ1_M: value = dl·(g + δ), g ∈ {−1, 0, 1}, δ = ±1/8, i.e. (dl/8)·(8g + 8δ) with 8g + 8δ ∈ {−9,
 * −7, −1, 1, 7, 9}: u = 8g + 8δ + 9 (0…18), s = dl/8, m = 9·s. Grid bytes as int8 −1/0/1: u = 8g + 9 ± 1.
 */
static inline void iq1_put8(uint8_t *o, uint64_t grid, int minus) {
  /* Per byte g + 1 = (g & 1) + 1 − 2·(sign bit of g): 0, 1, 2 for −1, 0, 1, with no carry between bytes. */
  const uint64_t g1 = ((grid & 0x0101010101010101ull) + 0x0101010101010101ull) - ((grid >> 6) & 0x0202020202020202ull);
  /* 8(g + 1) + 1 ± 1 = 8g + 9 ± 1 */
  const uint64_t v = (g1 << 3) + (minus ? 0 : 0x0202020202020202ull);
  memcpy(o, &v, 8);
}

static void unpack_iq1_s(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 50 * b;
    const float d = gn_f16(gn_rd16(p));
    for (int ib = 0; ib < 8; ib++) {
      const unsigned qh = gn_rd16(p + 34 + 2 * ib);
      for (int l = 0; l < 4; l++)
        iq1_put8(u + 256 * b + 32 * ib + 8 * l, gn_iq1s_grid[p[2 + 4 * ib + l] | (((qh >> 3 * l) & 7) << 8)], qh & 0x8000);
      const float sc = d * (float)(2 * ((qh >> 12) & 7) + 1) * 0.125f;
      iq_scales16(s, m, 16 * b + 2 * ib, sc, 9);
      iq_scales16(s, m, 16 * b + 2 * ib + 1, sc, 9);
    }
  }
}

static void unpack_iq1_m(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 56 * b;
    uint16_t sc[4];
    for (int i = 0; i < 4; i++) sc[i] = gn_rd16(p + 48 + 2 * i);
    const float d = gn_f16((uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000)));
    for (int ib = 0; ib < 8; ib++) {
      for (int l = 0; l < 4; l++) {
        const unsigned nib = (p[32 + 2 * ib + (l >> 1)] >> 4 * (l & 1)) & 15;
        iq1_put8(u + 256 * b + 32 * ib + 8 * l, gn_iq1s_grid[p[4 * ib + l] | ((nib & 7) << 8)], nib & 8);
      }
      for (int h = 0; h < 2; h++) {
        const unsigned k = (sc[ib / 2] >> (6 * (ib % 2) + 3 * h)) & 7;
        iq_scales16(s, m, 16 * b + 2 * ib + h, d * (float)(2 * k + 1) * 0.125f, 9);
      }
    }
  }
}

/* IQ4_XS: u = K + 128 (1…241) as IQ4_NL, s = d·(ls − 32) (≤ 16 significant bits, so s·u ≤ 24), m = 128·s. */
static void unpack_iq4_xs(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 256; b++) {
    const uint8_t *p = row + 136 * b;
    const float d = gn_f16(gn_rd16(p));
    const unsigned sh = gn_rd16(p + 2);
    for (int ib = 0; ib < 8; ib++) {
      const int ls = (int)(((p[4 + ib / 2] >> 4 * (ib % 2)) & 15) | (((sh >> 2 * ib) & 3) << 4));
      const float dl = d * (float)(ls - 32);
      const uint8_t *q = p + 8 + 16 * ib;
      uint8_t *o = u + 256 * b + 32 * ib;
      for (int j = 0; j < 16; j++) {
        o[j] = (uint8_t)(iq4nl_values[q[j] & 15] + 128);
        o[j + 16] = (uint8_t)(iq4nl_values[q[j] >> 4] + 128);
      }
      iq_scales16(s, m, 16 * b + 2 * ib, dl, 128);
      iq_scales16(s, m, 16 * b + 2 * ib + 1, dl, 128);
    }
  }
}
