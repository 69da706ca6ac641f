/*
 * IQ4_NL (src/quant/iq4_nl.ts): 32 values in 18 bytes, d f16 @0, qs @2; value = d·K[nibble] with a
 * fixed non-linear table. Canonical form: u = K + 128 (1…241), s = d, m = 128·d. Codes above 127 do not
 * fit the SIMD kernels' signed/saturating byte products, so the driver runs this type on the scalar ones.
 */

static const int8_t iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static void unpack_iq4_nl(const uint8_t *row, int n_in, uint8_t *u, float *s, float *m) {
  for (int b = 0; b < n_in / 32; b++) {
    const uint8_t *p = row + 18 * b;
    const float d = gn_f16(gn_rd16(p));
    uint8_t *o = u + 32 * b;
    for (int j = 0; j < 16; j++) {
      o[j] = (uint8_t)(iq4nl_values[p[2 + j] & 0x0f] + 128);
      o[j + 16] = (uint8_t)(iq4nl_values[p[2 + j] >> 4] + 128);
    }
    s[2 * b] = s[2 * b + 1] = d;
    m[2 * b] = m[2 * b + 1] = 128 * d;
  }
}
