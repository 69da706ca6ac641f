/*
 * The driver behind gn.h: checks sizes, quantises fast-mode activations once per call, picks the kernel
 * for the type from the context's level (falling back to the scalar table where a level has none), and
 * splits the work between threads by output rows (or, for xai8, output columns), never inside one
 * output's sum.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pool.h"

const gn_type_info gn_types[] = {
  {GN_F32, "f32", 1, 4},        {GN_F16, "f16", 1, 2},       {GN_BF16, "bf16", 1, 2},     {GN_Q8_0, "q8_0", 32, 34},
  {GN_Q4_0, "q4_0", 32, 18},    {GN_Q4_1, "q4_1", 32, 20},   {GN_Q5_0, "q5_0", 32, 22},   {GN_Q5_1, "q5_1", 32, 24},
  {GN_Q2_K, "q2_k", 256, 84},   {GN_Q3_K, "q3_k", 256, 110}, {GN_Q4_K, "q4_k", 256, 144}, {GN_Q5_K, "q5_k", 256, 176},
  {GN_Q6_K, "q6_k", 256, 210},  {GN_IQ4_NL, "iq4_nl", 32, 18},
};
const int gn_type_count = (int)(sizeof gn_types / sizeof gn_types[0]);

const gn_type_info *gn_type(int id) {
  for (int i = 0; i < gn_type_count; i++)
    if (gn_types[i].id == id) return &gn_types[i];
  return NULL;
}

const char *gn_strerror(int code) {
  switch (code) {
  case GN_OK: return "ok";
  case GN_EINVAL: return "invalid sizes or arguments";
  case GN_ENOMEM: return "out of memory";
  case GN_ETYPE: return "unsupported block type";
  default: return "unknown error";
  }
}

struct gn_ctx {
  int threads, isa;
  const gn_table *table;
  gn_pool *pool;
  uint8_t **scratch; /* per thread */
  size_t *scratch_size;
  uint8_t *act; /* fast-mode activations of the current call */
  size_t act_size;
  int32_t *xcorr; /* xai8 fast mode: −128·Σ xq per 32 activations of the current call */
  size_t xcorr_size;
};

static const gn_table *table_for(int isa) {
  switch (isa) {
  case GN_ISA_SCALAR: return &gn_table_scalar;
#if defined(__x86_64__)
  case GN_ISA_AVX2: return &gn_table_avx2;
  case GN_ISA_AVX512: return &gn_table_avx512;
#endif
#if defined(__aarch64__)
  case GN_ISA_NEON: return &gn_table_neon;
  case GN_ISA_NEON_DOT: return &gn_table_neon_dot;
#endif
  default: return NULL;
  }
}

gn_ctx *gn_create(int threads, int isa, int spin) {
  if (threads < 1 || threads > 256 || !gn_cpu_can_run(isa) || !table_for(isa)) return NULL;
  gn_ctx *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->threads = threads;
  c->isa = isa;
  c->table = table_for(isa);
  c->scratch = calloc((size_t)threads, sizeof *c->scratch);
  c->scratch_size = calloc((size_t)threads, sizeof *c->scratch_size);
  c->pool = gn_pool_create(threads, spin);
  if (!c->scratch || !c->scratch_size || !c->pool) {
    gn_destroy(c);
    return NULL;
  }
  return c;
}

void gn_destroy(gn_ctx *c) {
  if (!c) return;
  if (c->pool) gn_pool_destroy(c->pool);
  if (c->scratch)
    for (int i = 0; i < c->threads; i++) free(c->scratch[i]);
  free(c->scratch);
  free(c->scratch_size);
  free(c->act);
  free(c->xcorr);
  free(c);
}

int gn_threads(const gn_ctx *c) { return c->threads; }
int gn_isa(const gn_ctx *c) { return c->isa; }

/* Make every thread's scratch at least `bytes` (grown by the caller, before the workers start). */
static int ensure_scratch(gn_ctx *c, size_t bytes) {
  for (int i = 0; i < c->threads; i++) {
    if (c->scratch_size[i] >= bytes) continue;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) return GN_ENOMEM;
    free(c->scratch[i]);
    c->scratch[i] = p;
    c->scratch_size[i] = bytes;
  }
  return GN_OK;
}

static void *ensure_act(gn_ctx *c, size_t bytes) {
  if (c->act_size >= bytes) return c->act;
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes) != 0) return NULL;
  free(c->act);
  c->act = p;
  c->act_size = bytes;
  return p;
}

/* a·b without overflow past SIZE_MAX / 2 (sizes from JavaScript are below 2^53 anyway). */
static int mul_ok(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > (SIZE_MAX / 2) / a) return 0;
  *out = a * b;
  return 1;
}

/* Chunks of `unit`-multiples over `total` items of `work` multiply-adds each: about 8 per thread, none
 * under 64k multiply-adds, one when the whole call is small. */
static int chunking(const gn_ctx *c, int total, double work, int unit, int *chunk) {
  if (c->threads == 1 || (double)total * work < (double)(1 << 17)) {
    *chunk = total;
    return 1;
  }
  int k = (total + c->threads * 8 - 1) / (c->threads * 8);
  const int floor_k = (int)((65536.0 + work - 1) / work);
  if (k < floor_k) k = floor_k;
  k = (k + unit - 1) / unit * unit;
  if (k >= total) {
    *chunk = total;
    return 1;
  }
  *chunk = k;
  return (total + k - 1) / k;
}

typedef struct {
  gn_ctx *ctx;
  gn_rows_fn *fn;
  gn_xai8_fn *xfn;
  const gn_rows_job *job;
  const gn_xai8_job *xjob;
  int chunk, total;
} split_task;

static void rows_task(void *arg, int chunk, int thread) {
  const split_task *s = arg;
  const int r0 = chunk * s->chunk, r1 = r0 + s->chunk < s->total ? r0 + s->chunk : s->total;
  s->fn(s->job, r0, r1, s->ctx->scratch[thread]);
}

static void xai8_task(void *arg, int chunk, int thread) {
  const split_task *s = arg;
  const int c0 = chunk * s->chunk, c1 = c0 + s->chunk < s->total ? c0 + s->chunk : s->total;
  s->xfn(s->xjob, c0, c1, s->ctx->scratch[thread]);
}

static int is_float_type(int type) { return type == GN_F32 || type == GN_F16 || type == GN_BF16; }

/* Fast-mode activations: xq [T][n] · xd [T][n/32] · xs16 [T][n/16] in the context's buffer. */
static int quantize_activations(gn_ctx *c, const float *x, int T, int n, const int8_t **xq, const float **xd, const float **xs16) {
  const size_t tn = (size_t)T * (size_t)n;
  const size_t q_bytes = (tn + 63) & ~(size_t)63, d_bytes = ((tn / 32) * 4 + 63) & ~(size_t)63;
  uint8_t *buf = ensure_act(c, q_bytes + d_bytes + (tn / 16) * 4 + 64);
  if (!buf) return GN_ENOMEM;
  int8_t *q = (int8_t *)buf;
  float *d = (float *)(buf + q_bytes), *s = (float *)(buf + q_bytes + d_bytes);
  c->table->quantize(x, T, n, q, d, s);
  *xq = q;
  *xd = d;
  *xs16 = s;
  return GN_OK;
}

int gn_matmul_rows(gn_ctx *c, int type, const uint8_t *w, size_t w_bytes, int n_in, int n_out, const float *x, size_t x_len,
                   int T, float *y, size_t y_len, int fast) {
  const gn_type_info *ti = gn_type(type);
  if (!ti) return GN_ETYPE;
  if (n_in <= 0 || n_out < 0 || T < 0 || n_in % ti->block_size != 0) return GN_EINVAL;
  size_t row_bytes = (size_t)(n_in / ti->block_size) * (size_t)ti->block_bytes, need_w, need_x, need_y;
  if (!mul_ok(row_bytes, (size_t)n_out, &need_w) || !mul_ok((size_t)T, (size_t)n_in, &need_x) || !mul_ok((size_t)T, (size_t)n_out, &need_y))
    return GN_EINVAL;
  if (w_bytes < need_w || x_len < need_x || y_len < need_y) return GN_EINVAL;
  if (T == 0 || n_out == 0) return GN_OK;

  const gn_table *t = c->table, *sc = &gn_table_scalar;
  gn_rows_job job = {.type = type, .w = w, .row_bytes = row_bytes, .n_in = n_in, .n_out = n_out, .T = T, .x = x, .y = y};
  gn_rows_fn *fn;
  const int quant = !is_float_type(type);
  if (!quant) fn = t->float_exact;
  else if (type == GN_Q8_0) fn = fast ? t->q8_0_fast : t->q8_0_exact;
  else {
    /* IQ4_NL's codes (up to 241) exceed what the SIMD byte products take: scalar kernels. */
    const gn_table *k = type == GN_IQ4_NL ? sc : t;
    job.unpack = k->unpack[type];
    fn = fast ? k->canon_fast : k->canon_exact;
  }
  if (!fn || (quant && type != GN_Q8_0 && !job.unpack)) return GN_ETYPE;
  if (fast && quant) {
    const int err = quantize_activations(c, x, T, n_in, &job.xq, &job.xd, &job.xs16);
    if (err) return err;
  }
  if (ensure_scratch(c, gn_rows_scratch(n_in)) != GN_OK) return GN_ENOMEM;
  split_task s = {.ctx = c, .fn = fn, .job = &job, .total = n_out};
  const int n_chunks = chunking(c, n_out, (double)n_in * T, GN_ROW_GROUP, &s.chunk);
  gn_pool_run(c->pool, rows_task, &s, n_chunks);
  return GN_OK;
}

int gn_matmul_xai8(gn_ctx *c, const int8_t *q, size_t q_len, const uint16_t *scales, size_t s_len, int n_in, int n_out, int groups,
                   const float *x, size_t x_len, int T, float *y, size_t y_len, int fast) {
  if (n_in <= 0 || n_out < 0 || T < 0 || groups <= 0 || n_in % groups != 0) return GN_EINVAL;
  size_t need_q, need_s, need_x, need_y;
  if (!mul_ok((size_t)n_in, (size_t)n_out, &need_q) || !mul_ok((size_t)groups, (size_t)n_out, &need_s) ||
      !mul_ok((size_t)T, (size_t)n_in, &need_x) || !mul_ok((size_t)T, (size_t)n_out, &need_y))
    return GN_EINVAL;
  if (q_len < need_q || s_len < need_s || x_len < need_x || y_len < need_y) return GN_EINVAL;
  if (T == 0 || n_out == 0) return GN_OK;
  /* int8 activations need whole 32-input blocks inside each scale group; otherwise the exact path. */
  const int use_fast = fast && (n_in / groups) % 32 == 0;
  gn_xai8_job job = {.q = q, .scales = scales, .n_in = n_in, .n_out = n_out, .groups = groups, .T = T, .x = x, .y = y};
  if (use_fast) {
    const float *xs16;
    const int err = quantize_activations(c, x, T, n_in, &job.xq, &job.xd, &xs16);
    if (err) return err;
    /* The AVX-512 kernel takes the weights as unsigned bytes (q + 128); each token's block then needs
     * −128·Σ xq, which depends on the activations only: once per call instead of once per column. */
    const size_t nblk = (size_t)T * (size_t)(n_in / 32);
    if (c->xcorr_size < nblk) {
      int32_t *p = malloc(nblk * sizeof *p);
      if (!p) return GN_ENOMEM;
      free(c->xcorr);
      c->xcorr = p;
      c->xcorr_size = nblk;
    }
    for (size_t b = 0; b < nblk; b++) {
      int32_t sum = 0;
      for (int i = 0; i < 32; i++) sum += job.xq[32 * b + (size_t)i];
      c->xcorr[b] = -128 * sum;
    }
    job.xc = c->xcorr;
  }
  /* Column chunks. Up to 16 tokens the call streams its weights: one chunk per thread, as wide as can be,
   * because every chunk cuts each row into pieces and each piece costs a page walk and a new stream
   * (6144×32768 at T = 1, one thread: 4.3 GB/s in 256-column chunks, 9 at 2048, 13.6 whole). With more
   * tokens, about 8 per thread for balance. Either way narrow enough that the partial sums (4 bytes per
   * column and token, up to GN_XAI8_TOKENS tokens) stay within 256 KiB. */
  split_task s = {.ctx = c, .xfn = use_fast ? c->table->xai8_fast : c->table->xai8_exact, .xjob = &job, .total = n_out};
  if (chunking(c, n_out, (double)n_in * T, 64, &s.chunk) > 1 && T <= 16) s.chunk = ((n_out + c->threads - 1) / c->threads + 63) / 64 * 64;
  const int tt = T < GN_XAI8_TOKENS ? T : GN_XAI8_TOKENS, fit = 65536 / tt / 64 * 64;
  if (s.chunk > fit) s.chunk = fit < 64 ? 64 : fit;
  const int n_chunks = (n_out + s.chunk - 1) / s.chunk;
  if (ensure_scratch(c, gn_xai8_scratch(s.chunk, T)) != GN_OK) return GN_ENOMEM;
  gn_pool_run(c->pool, xai8_task, &s, n_chunks);
  return GN_OK;
}

int gn_get_row(int type, const uint8_t *w, size_t w_bytes, int n_in, int n_out, int r, float *out, size_t out_len) {
  const gn_type_info *ti = gn_type(type);
  if (!ti) return GN_ETYPE;
  if (n_in <= 0 || n_out <= 0 || r < 0 || r >= n_out || n_in % ti->block_size != 0 || out_len < (size_t)n_in) return GN_EINVAL;
  const size_t row_bytes = (size_t)(n_in / ti->block_size) * (size_t)ti->block_bytes;
  size_t need;
  if (!mul_ok(row_bytes, (size_t)n_out, &need) || w_bytes < need) return GN_EINVAL;
  uint8_t *scratch = NULL;
  if (!is_float_type(type) && type != GN_Q8_0) {
    scratch = malloc(gn_rows_scratch(n_in));
    if (!scratch) return GN_ENOMEM;
  }
  gn_table_scalar.get_row(type, w + row_bytes * (size_t)r, n_in, out, scratch);
  free(scratch);
  return GN_OK;
}

typedef struct {
  gn_ctx *ctx;
  const gn_attention_args *a;
  int chunk, total;
} attn_task_arg;

/* Items are (query, KV head) pairs: the query heads sharing a KV head read its keys and values once. */
static void attn_task(void *arg, int chunk, int thread) {
  const attn_task_arg *s = arg;
  const int i0 = chunk * s->chunk, i1 = i0 + s->chunk < s->total ? i0 + s->chunk : s->total;
  for (int i = i0; i < i1; i++) s->ctx->table->attention(s->a, i / s->a->n_kv, i % s->a->n_kv, (float *)s->ctx->scratch[thread]);
}

int gn_attention(gn_ctx *c, const gn_attention_args *a) {
  if (a->T < 0 || a->pos0 < 0 || a->n_heads <= 0 || a->n_kv <= 0 || a->head_dim <= 0 || a->n_heads % a->n_kv != 0) return GN_EINVAL;
  if (a->T == 0) return GN_OK;
  const size_t n_keys = (size_t)a->pos0 + (size_t)a->T, G = (size_t)(a->n_heads / a->n_kv), K = (size_t)a->head_dim + 8;
  if (ensure_scratch(c, 8 * (G * K + K + G * (n_keys + 8)) + 4 * G * K + 128) != GN_OK) return GN_ENOMEM;
  attn_task_arg s = {.ctx = c, .a = a, .total = a->T * a->n_kv};
  /* Cost of one (query, KV head): its keys times the head width, twice (scores and values), per head. */
  const double work = 2.0 * (double)n_keys * a->head_dim * (double)G;
  const int n_chunks = chunking(c, s.total, work, 1, &s.chunk);
  gn_pool_run(c->pool, attn_task, &s, n_chunks);
  return GN_OK;
}

typedef struct {
  float *x;
  size_t n, chunk;
} gelu_task_arg;

/* gelu_tanh(v) = 0.5·v·(1 + tanh(z)) = v / (1 + e^(−2z)): the same value without the cancellation of
 * 1 + tanh(z) for negative z; float64 inside, as the reference. */
static void gelu_task(void *arg, int chunk, int thread) {
  (void)thread;
  const gelu_task_arg *s = arg;
  const size_t i0 = (size_t)chunk * s->chunk, i1 = i0 + s->chunk < s->n ? i0 + s->chunk : s->n;
  const double c = 0.7978845608028654; /* sqrt(2/π) */
  for (size_t i = i0; i < i1; i++) {
    const double v = s->x[i];
    const double z = c * (v + 0.044715 * v * v * v);
    s->x[i] = (float)(v / (1.0 + exp(-2.0 * z)));
  }
}

int gn_gelu(gn_ctx *c, float *x, size_t n) {
  if (n == 0) return GN_OK;
  /* Below ~64k values one thread is quicker than waking the others. */
  gelu_task_arg s = {.x = x, .n = n, .chunk = n < 65536 ? n : 16384};
  const size_t chunks = (n + s.chunk - 1) / s.chunk;
  if (chunks > (size_t)1 << 30) return GN_EINVAL;
  gn_pool_run(c->pool, gelu_task, &s, (int)chunks);
  return GN_OK;
}
