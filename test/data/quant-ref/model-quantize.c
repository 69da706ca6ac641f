/*
 * Whole-model reference for test/convert-llama-quantize.test.ts: llama.cpp's own model quantiser
 * (llama_model_quantize from the libllama that node-llama-cpp ships) with `pure` set, so every matrix gets
 * the requested type (or llama.cpp's fallback when its rows do not fit the type's blocks), 1-D tensors and
 * the router stay F32. The headers come from the llama.cpp source bundled with node-llama-cpp:
 *
 *   git clone node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/lcpp
 *   L=$PWD/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   gcc -O2 -I/tmp/lcpp/include -I/tmp/lcpp/ggml/include -o /tmp/model-quantize test/data/quant-ref/model-quantize.c \
 *       $L/libllama.v0.5.0.so $L/libggml.v0.5.0.so $L/libggml-base.so -Wl,-rpath,$L
 *   /tmp/model-quantize test/data/fixtures/tiny-b/model.gguf /tmp/out.gguf 2     # 2 = LLAMA_FTYPE_MOSTLY_Q4_0
 *
 * test/data/quant-ref/digest.mjs then records each output tensor's type and SHA-256.
 */
#include <stdio.h>
#include <stdlib.h>
#include "llama.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s in.gguf out.gguf llama_ftype\n", argv[0]);
    return 2;
  }
  llama_backend_init();
  llama_model_quantize_params p = llama_model_quantize_default_params();
  p.ftype = (enum llama_ftype)atoi(argv[3]);
  p.pure = true;
  p.nthread = 1;
  uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
  llama_backend_free();
  return rc == 0 ? 0 : 1;
}
