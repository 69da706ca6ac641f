/*
 * Q4_1 (src/quant/q4_1.ts): 32 values in 20 bytes, d f16 @0, m f16 @2, qs @4; value = d·nibble + m.
 * Canonical form: u = nibble, s = d, offset −m.
 */

static void unpack_q4_1(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 32; b++) {
    const uint8_t *p = row + 20 * b;
    const float d = gn_f16(gn_rd16(p)), mn = gn_f16(gn_rd16(p + 2));
    uint8_t *o = u + 32 * b;
    for (int j = 0; j < 16; j++) {
      o[j] = p[4 + j] & 0x0f;
      o[j + 16] = p[4 + j] >> 4;
    }
    s[2 * b] = s[2 * b + 1] = d;
    m[2 * b] = m[2 * b + 1] = -mn;
  }
}
