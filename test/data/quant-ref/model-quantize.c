/*
 * Whole-model reference: llama.cpp's own model quantiser (llama_model_quantize from the libllama that
 * node-llama-cpp ships), driven the way tools/quantize/quantize.cpp (llama-quantize) drives it. node-llama-cpp
 * ships the library but not the llama-quantize program; this is that program's core, for
 *   - test/convert-llama-quantize.test.ts (pure: every matrix the requested type or llama.cpp's fallback),
 *   - test/convert-recipes.test.ts (--mixed: llama.cpp's recipes, e.g. Q4_K_M, and --imatrix),
 *   - bench/convert.ts (the peer: --nthread N --requantize on a Q8_0 slice).
 * The headers come from the llama.cpp source bundled with node-llama-cpp:
 *
 *   git clone node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/lcpp
 *   L=$PWD/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   gcc -O2 -I/tmp/lcpp/include -I/tmp/lcpp/ggml/include -o /tmp/model-quantize test/data/quant-ref/model-quantize.c \
 *       $L/libllama.v0.5.0.so $L/libggml.v0.5.0.so $L/libggml-base.so -Wl,-rpath,$L
 *   /tmp/model-quantize test/data/fixtures/tiny-b/model.gguf /tmp/out.gguf 2     # 2 = LLAMA_FTYPE_MOSTLY_Q4_0, pure
 *   /tmp/model-quantize in.gguf out.gguf 15 --mixed --imatrix imatrix.dat           # 15 = Q4_K_M
 *
 * Options: --mixed (pure = false: llama.cpp's per-tensor recipe), --nthread N (default 1), --requantize
 * (allow_requantize: a quantised source), --imatrix FILE (legacy binary format: int32 n_entries, then per
 * entry int32 name length, name, int32 ncall, int32 nval, nval float32; values divided by ncall as
 * llama-quantize's load_imatrix does).
 *
 * test/data/quant-ref/digest.mjs then records each output tensor's type and SHA-256.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llama.h"

static struct llama_model_imatrix_data *load_imatrix(const char *file) {
  FILE *f = fopen(file, "rb");
  if (!f) { perror(file); exit(1); }
  int n = 0;
  if (fread(&n, 4, 1, f) != 1 || n < 1) { fprintf(stderr, "%s: no entries\n", file); exit(1); }
  struct llama_model_imatrix_data *d = calloc((size_t)n + 1, sizeof *d);
  for (int i = 0; i < n; i++) {
    int len = 0, ncall = 0, nval = 0;
    if (fread(&len, 4, 1, f) != 1 || len < 1 || len > 1024) { fprintf(stderr, "%s: bad name length\n", file); exit(1); }
    char *name = calloc((size_t)len + 1, 1);
    float *v;
    if (fread(name, 1, (size_t)len, f) != (size_t)len || fread(&ncall, 4, 1, f) != 1 || fread(&nval, 4, 1, f) != 1 || nval < 1) {
      fprintf(stderr, "%s: bad entry %d\n", file, i);
      exit(1);
    }
    v = malloc((size_t)nval * sizeof *v);
    if (fread(v, 4, (size_t)nval, f) != (size_t)nval) { fprintf(stderr, "%s: short entry %d\n", file, i); exit(1); }
    if (ncall > 0)
      for (int k = 0; k < nval; k++) v[k] = v[k] / (float)ncall; /* quantize.cpp: e[i] = entry.sums[i] / ncall */
    d[i].name = name;
    d[i].data = v;
    d[i].size = (size_t)nval;
  }
  fclose(f);
  return d; /* terminated by the zeroed entry (name NULL) */
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s in.gguf out.gguf llama_ftype [--mixed] [--nthread N] [--requantize] [--imatrix FILE]\n", argv[0]);
    return 2;
  }
  llama_backend_init();
  llama_model_quantize_params p = llama_model_quantize_default_params();
  p.ftype = (enum llama_ftype)atoi(argv[3]);
  p.pure = true;
  p.nthread = 1;
  for (int i = 4; i < argc; i++) {
    if (!strcmp(argv[i], "--mixed")) p.pure = false;
    else if (!strcmp(argv[i], "--requantize")) p.allow_requantize = true;
    else if (!strcmp(argv[i], "--nthread") && i + 1 < argc) p.nthread = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--imatrix") && i + 1 < argc) p.imatrix = load_imatrix(argv[++i]);
    else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
  }
  uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
  llama_backend_free();
  return rc == 0 ? 0 : 1;
}
