/*
 * Generates the llama.cpp reference data for the i-quants (test/quant-llama.test.ts), like gen.c: it links
 * the ggml library node-llama-cpp ships and calls llama.cpp's own quantisers (quantize_<type>, with an
 * all-ones importance matrix where ggml requires one) and dequantisers (dequantize_row_<type>).
 *
 * Build and run (from the repository root):
 *   L=peer/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   gcc -O2 -o /tmp/quant-ref-gen-iq test/data/quant-ref/gen-iq.c $L/libggml-base.so -Wl,-rpath,$PWD/$L -lm
 *   /tmp/quant-ref-gen-iq test/data/quant-ref
 *
 * Output files per type (inputs.f32 is gen.c's; all little-endian):
 *   <type>.q / .deq            llama.cpp's quantisation of inputs.f32 and its dequantisation
 *   <type>.rand.q / .deq       8 super-blocks of random bytes (f16 scales replaced by finite values)
 *   <type>.grid.q / .deq       random blocks whose grid indices enumerate every point of the type's codebook
 *                              in order, so each codebook entry is checked against llama.cpp (not for iq4_xs)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_IQ2_XXS = 16, T_IQ2_XS = 17, T_IQ3_XXS = 18, T_IQ1_S = 19, T_IQ3_S = 21, T_IQ2_S = 22, T_IQ4_XS = 23, T_IQ1_M = 29 };
#define DECL(t)                                                                                              \
  void dequantize_row_##t(const void *x, float *y, int64_t k);                                              \
  size_t quantize_##t(const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *imatrix);
DECL(iq2_xxs) DECL(iq2_xs) DECL(iq2_s) DECL(iq3_xxs) DECL(iq3_s) DECL(iq1_s) DECL(iq1_m) DECL(iq4_xs)
void ggml_quantize_init(int type);

#define N 2048
static uint64_t rng = 0x243f6a8885a308d3ull;
static uint32_t next_u32(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 32); }

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n) { perror(path); exit(1); }
  fclose(f);
}

static float *read_inputs(const char *dir) {
  char path[1024];
  snprintf(path, sizeof path, "%s/inputs.f32", dir);
  FILE *f = fopen(path, "rb");
  static float x[N];
  if (!f || fread(x, 4, N, f) != N) { perror(path); exit(1); }
  fclose(f);
  return x;
}

/* A finite f16 with exponent 5…24 (about 2^-10 … 2^9), random sign and mantissa. */
static uint16_t rand_f16(void) { return (uint16_t)((next_u32() & 0x83ff) | ((5 + next_u32() % 20) << 10)); }

struct fmt {
  const char *name;
  int type, bpb;
  void (*dq)(const void *, float *, int64_t);
  size_t (*q)(const float *, void *, int64_t, int64_t, const float *);
  int needs_imatrix;
  int grid_points, indices_per_block; /* codebook size, grid indices per super-block (0: no codebook) */
};

/* Random finite scales: every type but iq1_m keeps its f16 d at byte 0; iq1_m spreads it over the top
 * nibbles of its four u16 scales @48. */
static void fix_scales(const struct fmt *f, uint8_t *b) {
  const uint16_t h = rand_f16();
  if (f->type != T_IQ1_M) { memcpy(b, &h, 2); return; }
  for (int i = 0; i < 4; i++) b[48 + 2 * i + 1] = (uint8_t)((b[48 + 2 * i + 1] & 0x0f) | (((h >> (4 * i)) & 0xf) << 4));
}

/* Set grid index k (0 … indices_per_block − 1) of block b to idx, leaving the other bits alone. */
static void set_index(const struct fmt *f, uint8_t *b, int k, int idx) {
  const int ib = k / (f->indices_per_block / 8), l = k % (f->indices_per_block / 8);
  switch (f->type) {
  case T_IQ2_XXS: b[2 + 8 * ib + l] = (uint8_t)idx; break;
  case T_IQ2_XS: { uint8_t *p = b + 2 + 2 * k; p[0] = (uint8_t)idx; p[1] = (uint8_t)((p[1] & 0xfe) | (idx >> 8)); break; }
  case T_IQ2_S: b[2 + 4 * ib + l] = (uint8_t)idx; b[66 + ib] = (uint8_t)((b[66 + ib] & ~(3 << 2 * l)) | ((idx >> 8) << 2 * l)); break;
  case T_IQ3_XXS: b[2 + k] = (uint8_t)idx; break;
  case T_IQ3_S: b[2 + k] = (uint8_t)idx; b[66 + ib] = (uint8_t)((b[66 + ib] & ~(1 << l)) | ((idx >> 8) << l)); break;
  case T_IQ1_S: {
    b[2 + k] = (uint8_t)idx;
    uint16_t qh; memcpy(&qh, b + 34 + 2 * ib, 2);
    qh = (uint16_t)((qh & ~(7 << 3 * l)) | ((idx >> 8) << 3 * l));
    memcpy(b + 34 + 2 * ib, &qh, 2);
    break;
  }
  case T_IQ1_M: {
    b[k] = (uint8_t)idx;
    uint8_t *h = b + 32 + 2 * ib + (l >> 1);
    const int sh = 4 * (l & 1);
    *h = (uint8_t)((*h & ~(7 << sh)) | ((idx >> 8) << sh));
    break;
  }
  default: exit(2);
  }
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  const struct fmt fmts[] = {
    {"iq2_xxs", T_IQ2_XXS, 66, dequantize_row_iq2_xxs, quantize_iq2_xxs, 1, 256, 32},
    {"iq2_xs", T_IQ2_XS, 74, dequantize_row_iq2_xs, quantize_iq2_xs, 1, 512, 32},
    {"iq2_s", T_IQ2_S, 82, dequantize_row_iq2_s, quantize_iq2_s, 0, 1024, 32},
    {"iq3_xxs", T_IQ3_XXS, 98, dequantize_row_iq3_xxs, quantize_iq3_xxs, 0, 256, 64},
    {"iq3_s", T_IQ3_S, 110, dequantize_row_iq3_s, quantize_iq3_s, 0, 512, 64},
    {"iq1_s", T_IQ1_S, 50, dequantize_row_iq1_s, quantize_iq1_s, 1, 2048, 32},
    {"iq1_m", T_IQ1_M, 56, dequantize_row_iq1_m, quantize_iq1_m, 1, 2048, 32},
    {"iq4_xs", T_IQ4_XS, 136, dequantize_row_iq4_xs, quantize_iq4_xs, 0, 0, 0},
  };
  const float *x = read_inputs(dir);
  static float ones[256], y[64 * 256];
  static uint8_t q[64 * 136];
  for (int i = 0; i < 256; i++) ones[i] = 1;
  char name[256];
  for (size_t t = 0; t < sizeof fmts / sizeof fmts[0]; t++) {
    const struct fmt *f = &fmts[t];
    ggml_quantize_init(f->type);
    size_t qbytes = (size_t)N / 256 * f->bpb;
    memset(q, 0, sizeof q);
    f->q(x, q, N / 256, 256, f->needs_imatrix ? ones : NULL);
    f->dq(q, y, N);
    snprintf(name, sizeof name, "%s.q", f->name); write_file(dir, name, q, qbytes);
    snprintf(name, sizeof name, "%s.deq", f->name); write_file(dir, name, y, (size_t)N * 4);

    for (size_t i = 0; i < qbytes; i++) q[i] = (uint8_t)next_u32();
    for (int b = 0; b < N / 256; b++) fix_scales(f, q + (size_t)b * f->bpb);
    f->dq(q, y, N);
    snprintf(name, sizeof name, "%s.rand.q", f->name); write_file(dir, name, q, qbytes);
    snprintf(name, sizeof name, "%s.rand.deq", f->name); write_file(dir, name, y, (size_t)N * 4);

    if (!f->grid_points) continue;
    const int nb = f->grid_points / f->indices_per_block;
    qbytes = (size_t)nb * f->bpb;
    for (size_t i = 0; i < qbytes; i++) q[i] = (uint8_t)next_u32();
    for (int b = 0; b < nb; b++) {
      fix_scales(f, q + (size_t)b * f->bpb);
      for (int k = 0; k < f->indices_per_block; k++) set_index(f, q + (size_t)b * f->bpb, k, b * f->indices_per_block + k);
    }
    f->dq(q, y, (int64_t)nb * 256);
    snprintf(name, sizeof name, "%s.grid.q", f->name); write_file(dir, name, q, qbytes);
    snprintf(name, sizeof name, "%s.grid.deq", f->name); write_file(dir, name, y, (size_t)nb * 256 * 4);
  }
  return 0;
}
