/*
 * Generates the llama.cpp reference data used by test/quant-llama.test.ts.
 * It links the ggml library that node-llama-cpp ships (prebuilt llama.cpp release) and calls its reference
 * quantisers (quantize_row_<type>_ref / quantize_iq4_nl) and dequantisers (dequantize_row_<type>).
 *
 * Build and run (from the repository root):
 *   L=node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   gcc -O2 -o /tmp/quant-ref-gen test/data/quant-ref/gen.c $L/libggml-base.so -Wl,-rpath,$PWD/$L -lm
 *   /tmp/quant-ref-gen test/data/quant-ref
 *
 * Output files (all little-endian):
 *   inputs.f32            2048 float32 inputs: 8 rows of 256 with different distributions (see make_inputs)
 *   <type>.q              llama.cpp's quantisation of inputs.f32 (blocks back to back)
 *   <type>.deq            llama.cpp's dequantisation of <type>.q (2048 float32)
 *   <type>.rand.q         8×256 values' worth of random block bytes (f16 fields replaced by finite values)
 *   <type>.rand.deq       llama.cpp's dequantisation of <type>.rand.q
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint16_t ggml_fp16_t;
#define DECL(t) \
  void quantize_row_##t##_ref(const float *x, void *y, int64_t k); \
  void dequantize_row_##t(const void *x, float *y, int64_t k);
DECL(q8_0) DECL(q4_0) DECL(q4_1) DECL(q5_0) DECL(q5_1)
DECL(q2_K) DECL(q3_K) DECL(q4_K) DECL(q5_K) DECL(q6_K) DECL(iq4_nl)
size_t quantize_iq4_nl(const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *imatrix);
float ggml_fp16_to_fp32(ggml_fp16_t h);

#define N 2048
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 32); }
static double uni(void) { return (next_u32() + 0.5) / 4294967296.0; }
static double gauss(void) { return sqrt(-2 * log(uni())) * cos(6.283185307179586 * uni()); }

static void make_inputs(float *x) {
  for (int i = 0; i < 256; i++) x[i] = (float)gauss();                         /* row 0: N(0,1) */
  for (int i = 0; i < 256; i++) x[256 + i] = (float)(0.02 * gauss());          /* row 1: weights-like */
  for (int i = 0; i < 256; i++) x[512 + i] = (float)(2 * uni() - 1);           /* row 2: uniform */
  for (int i = 0; i < 256; i++) x[768 + i] = (float)(0.1 * gauss());           /* row 3: outliers */
  x[768 + 5] = 3.5f; x[768 + 77] = -4.25f; x[768 + 200] = 2.0f;
  for (int i = 0; i < 256; i++) x[1024 + i] = (float)(0.5 + 1.5 * uni());      /* row 4: all positive */
  for (int i = 0; i < 256; i++) x[1280 + i] = (float)(-0.5 - 1.5 * uni());     /* row 5: all negative */
  for (int i = 0; i < 256; i++) x[1536 + i] = i < 64 ? 0.0f : (float)(1e-6 * gauss()); /* row 6: zeros, tiny */
  for (int i = 0; i < 256; i++) x[1792 + i] = i < 32 ? 0.75f : (float)(round(gauss() * 10) / 10); /* row 7 */
}

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n) { perror(path); exit(1); }
  fclose(f);
}

/* f16 offsets (bytes) inside each block that must stay finite in random blocks. */
struct fmt { const char *name; int bs, bpb; void (*q)(const float *, void *, int64_t); void (*dq)(const void *, float *, int64_t); int f16[2]; };

static void q_iq4_nl(const float *x, void *y, int64_t k) { quantize_iq4_nl(x, y, 1, k, NULL); }

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  struct fmt fmts[] = {
    {"q8_0", 32, 34, quantize_row_q8_0_ref, dequantize_row_q8_0, {0, -1}},
    {"q4_0", 32, 18, quantize_row_q4_0_ref, dequantize_row_q4_0, {0, -1}},
    {"q4_1", 32, 20, quantize_row_q4_1_ref, dequantize_row_q4_1, {0, 2}},
    {"q5_0", 32, 22, quantize_row_q5_0_ref, dequantize_row_q5_0, {0, -1}},
    {"q5_1", 32, 24, quantize_row_q5_1_ref, dequantize_row_q5_1, {0, 2}},
    {"q2_k", 256, 84, quantize_row_q2_K_ref, dequantize_row_q2_K, {80, 82}},
    {"q3_k", 256, 110, quantize_row_q3_K_ref, dequantize_row_q3_K, {108, -1}},
    {"q4_k", 256, 144, quantize_row_q4_K_ref, dequantize_row_q4_K, {0, 2}},
    {"q5_k", 256, 176, quantize_row_q5_K_ref, dequantize_row_q5_K, {0, 2}},
    {"q6_k", 256, 210, quantize_row_q6_K_ref, dequantize_row_q6_K, {208, -1}},
    {"iq4_nl", 32, 18, q_iq4_nl, dequantize_row_iq4_nl, {0, -1}},
  };
  static float x[N], y[N];
  static uint8_t q[N * 2];
  make_inputs(x);
  write_file(dir, "inputs.f32", x, sizeof x);
  char name[256];
  for (size_t t = 0; t < sizeof fmts / sizeof fmts[0]; t++) {
    struct fmt *f = &fmts[t];
    size_t qbytes = (size_t)N / f->bs * f->bpb;
    memset(q, 0, sizeof q);
    f->q(x, q, N);
    f->dq(q, y, N);
    snprintf(name, sizeof name, "%s.q", f->name); write_file(dir, name, q, qbytes);
    snprintf(name, sizeof name, "%s.deq", f->name); write_file(dir, name, y, sizeof y);
    for (size_t i = 0; i < qbytes; i++) q[i] = (uint8_t)next_u32();
    for (size_t b = 0; b < (size_t)N / f->bs; b++) {
      for (int j = 0; j < 2; j++) {
        if (f->f16[j] < 0) continue;
        /* a finite f16 with exponent 5…24 (about 2^-10 … 2^9), random sign and mantissa */
        uint16_t h = (uint16_t)((next_u32() & 0x83ff) | ((5 + next_u32() % 20) << 10));
        memcpy(q + b * f->bpb + f->f16[j], &h, 2);
      }
    }
    f->dq(q, y, N);
    snprintf(name, sizeof name, "%s.rand.q", f->name); write_file(dir, name, q, qbytes);
    snprintf(name, sizeof name, "%s.rand.deq", f->name); write_file(dir, name, y, sizeof y);
  }
  return 0;
}
