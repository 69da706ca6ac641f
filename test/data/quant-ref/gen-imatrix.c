/*
 * Generates the llama.cpp reference data for the quantisers with an importance matrix (test/quant-llama.test.ts):
 * quantize_q2_K … quantize_q6_K, quantize_q4_0, q4_1, q5_0, q5_1, quantize_iq4_nl, iq4_xs, iq3_s, iq2_xxs,
 * iq2_xs, iq2_s, iq3_xxs, iq1_s and iq1_m of the libggml-base that node-llama-cpp ships, called with
 * quant_weights, as llama_model_quantize calls them for `llama-quantize --imatrix`. Inputs: inputs.f32 (gen.c), read as 8 rows of 256 and as 2 rows of 1024 (so
 * that the weights of later blocks of a row are exercised).
 *
 * Build and run (from the repository root):
 *   L=peer/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   gcc -O2 -o /tmp/quant-ref-gen-imatrix test/data/quant-ref/gen-imatrix.c $L/libggml-base.so -Wl,-rpath,$PWD/$L -lm
 *   /tmp/quant-ref-gen-imatrix test/data/quant-ref
 *
 * Output files (little-endian):
 *   weights256.f32, weights1024.f32   importance values (llama-quantize's sums / calls): 10^(−2 … 2), about
 *                                     1 in 32 zero (a channel never seen), one 16-value run of zeros
 *   weights256z.f32                   weights256.f32 with columns 64 … 127 zero (whole 32-value blocks no
 *                                     token reached)
 *   <type>.w256.q, <type>.w1024.q,    llama.cpp's quantisation of inputs.f32 with those weights
 *   <type>.w256z.q
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t quantize_q2_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q3_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q4_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q5_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q6_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q4_0(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q4_1(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q5_0(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q5_1(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq4_nl(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq4_xs(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq3_s(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq2_xxs(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq2_xs(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq2_s(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq3_xxs(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq1_s(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq1_m(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
void ggml_quantize_init(int type);

#define N 2048
static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t next_u32(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 32); }
static double uni(void) { return (next_u32() + 0.5) / 4294967296.0; }

static void io(const char *dir, const char *name, void *p, size_t n, int write) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, write ? "wb" : "rb");
  if (!f || (write ? fwrite(p, 1, n, f) : fread(p, 1, n, f)) != n) { perror(path); exit(1); }
  fclose(f);
}

static void make_weights(float *w, int n) {
  for (int i = 0; i < n; i++) w[i] = next_u32() % 32 == 0 ? 0.0f : (float)pow(10, 4 * uni() - 2);
  for (int i = 48; i < 64; i++) w[i] = 0; /* a whole 16-value sub-block that no token reached */
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  static float x[N], w256[256], w1024[1024], w256z[256];
  static uint8_t q[N];
  io(dir, "inputs.f32", x, sizeof x, 0);
  make_weights(w256, 256);
  make_weights(w1024, 1024);
  io(dir, "weights256.f32", w256, sizeof w256, 1);
  io(dir, "weights1024.f32", w1024, sizeof w1024, 1);
  memcpy(w256z, w256, sizeof w256);
  for (int i = 64; i < 128; i++) w256z[i] = 0;
  io(dir, "weights256z.f32", w256z, sizeof w256z, 1);
  struct { const char *name; size_t (*q)(const float *, void *, int64_t, int64_t, const float *); } fns[] = {
    {"q2_k", quantize_q2_K}, {"q3_k", quantize_q3_K}, {"q4_k", quantize_q4_K}, {"q5_k", quantize_q5_K}, {"q6_k", quantize_q6_K},
    {"q4_0", quantize_q4_0}, {"q4_1", quantize_q4_1}, {"q5_0", quantize_q5_0}, {"q5_1", quantize_q5_1},
    {"iq4_nl", quantize_iq4_nl}, {"iq4_xs", quantize_iq4_xs}, {"iq3_s", quantize_iq3_s},
    {"iq2_xxs", quantize_iq2_xxs}, {"iq2_xs", quantize_iq2_xs}, {"iq2_s", quantize_iq2_s}, {"iq3_xxs", quantize_iq3_xxs},
    {"iq1_s", quantize_iq1_s}, {"iq1_m", quantize_iq1_m},
  };
  /* the grid, map and neighbour tables of GGML_TYPE_IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ1_S, IQ1_M */
  const int init[] = {21, 16, 17, 22, 18, 19, 29};
  for (size_t i = 0; i < sizeof init / sizeof init[0]; i++) ggml_quantize_init(init[i]);
  char name[256];
  for (size_t t = 0; t < sizeof fns / sizeof fns[0]; t++) {
    memset(q, 0, sizeof q);
    size_t bytes = fns[t].q(x, q, 8, 256, w256);
    snprintf(name, sizeof name, "%s.w256.q", fns[t].name);
    io(dir, name, q, bytes, 1);
    memset(q, 0, sizeof q);
    bytes = fns[t].q(x, q, 2, 1024, w1024);
    snprintf(name, sizeof name, "%s.w1024.q", fns[t].name);
    io(dir, name, q, bytes, 1);
    memset(q, 0, sizeof q);
    bytes = fns[t].q(x, q, 8, 256, w256z);
    snprintf(name, sizeof name, "%s.w256z.q", fns[t].name);
    io(dir, name, q, bytes, 1);
  }
  return 0;
}
