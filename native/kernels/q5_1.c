/*
 * Q5_1 (src/quant/q5_1.ts): 32 values in 24 bytes, d f16 @0, m f16 @2, qh u32 @4, qs @8;
 * value = d·q5 + m. Canonical form: u = q5, s = d, offset −m.
 */

static void unpack_q5_1(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 32; b++) {
    const uint8_t *p = row + 24 * b;
    const float d = gn_f16(gn_rd16(p)), mn = gn_f16(gn_rd16(p + 2));
    const uint32_t qh = gn_rd32(p + 4);
    uint8_t *o = u + 32 * b;
    for (int j = 0; j < 16; j++) {
      o[j] = (uint8_t)((p[8 + j] & 0x0f) | ((qh >> j) & 1) << 4);
      o[j + 16] = (uint8_t)((p[8 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
    }
    s[2 * b] = s[2 * b + 1] = d;
    m[2 * b] = m[2 * b + 1] = -mn;
  }
}
