/*
 * The peer of bench/quant-iq.ts: llama.cpp's own quantize_<type>(…, quant_weights) from the libggml-base that
 * node-llama-cpp ships, timed on the same rows and importance weights (files the bench writes), one thread.
 * Prints "<type> <seconds>" per run; writes the bytes to <dir>/<type>.peer.q so the bench can check that they
 * equal ours. Built by the bench:  cc -O2 -o quant-iq-peer bench/quant-iq-peer.c $L/libggml-base.so -Wl,-rpath,$L -lm
 * Usage: quant-iq-peer DIR ROWS NIN TYPE…
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t quantize_iq2_xxs(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_iq2_xs(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_iq2_s(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_iq3_xxs(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_iq1_s(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_iq1_m(const float *, void *, int64_t, int64_t, const float *);
void ggml_quantize_init(int type);

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void *slurp(const char *dir, const char *name, size_t n) {
  char p[1024]; snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "rb"); void *b = malloc(n);
  if (!f || !b || fread(b, 1, n, f) != n) { perror(p); exit(1); }
  fclose(f);
  return b;
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: %s DIR ROWS NIN TYPE…\n", argv[0]); return 2; }
  const char *dir = argv[1];
  const int rows = atoi(argv[2]), nin = atoi(argv[3]);
  float *x = slurp(dir, "x.f32", (size_t)rows * nin * 4), *w = slurp(dir, "w.f32", (size_t)nin * 4);
  uint8_t *q = malloc((size_t)rows * nin);
  struct { const char *name; int id; size_t (*f)(const float *, void *, int64_t, int64_t, const float *); } t[] = {
    {"iq2_xxs", 16, quantize_iq2_xxs}, {"iq2_xs", 17, quantize_iq2_xs}, {"iq2_s", 22, quantize_iq2_s},
    {"iq3_xxs", 18, quantize_iq3_xxs}, {"iq1_s", 19, quantize_iq1_s}, {"iq1_m", 29, quantize_iq1_m},
  };
  for (int a = 4; a < argc; a++) {
    int k = -1;
    for (int i = 0; i < 6; i++) if (!strcmp(argv[a], t[i].name)) k = i;
    if (k < 0) { fprintf(stderr, "unknown type %s\n", argv[a]); return 2; }
    ggml_quantize_init(t[k].id); /* the grid tables, built once (not timed, as ours are built before timing) */
    const double t0 = now();
    const size_t bytes = t[k].f(x, q, rows, nin, w);
    printf("%s %.6f\n", t[k].name, now() - t0);
    char p[1024]; snprintf(p, sizeof p, "%s/%s.peer.q", dir, t[k].name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(q, 1, bytes, f) != bytes) { perror(p); return 1; }
    fclose(f);
  }
  return 0;
}
