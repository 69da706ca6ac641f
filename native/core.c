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
  {GN_Q6_K, "q6_k", 256, 210},  {GN_IQ4_NL, "iq4_nl", 32, 18}, {GN_IQ4_XS, "iq4_xs", 256, 136}, {GN_IQ1_S, "iq1_s", 256, 50},
  {GN_IQ1_M, "iq1_m", 256, 56}, {GN_IQ2_XXS, "iq2_xxs", 256, 66}, {GN_IQ2_XS, "iq2_xs", 256, 74}, {GN_IQ2_S, "iq2_s", 256, 82},
  {GN_IQ3_XXS, "iq3_xxs", 256, 98}, {GN_IQ3_S, "iq3_s", 256, 110},
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
  uint16_t *xb; /* bf16 rows in fast mode at avx512_bf16: the current call's activations rounded to bf16 */
  size_t xb_size;
};

static const gn_table *table_for(int isa) {
  switch (isa) {
  case GN_ISA_SCALAR: return &gn_table_scalar;
#if defined(__x86_64__)
  case GN_ISA_AVX2: return &gn_table_avx2;
  case GN_ISA_AVX512:
  case GN_ISA_AVX512_BF16: return &gn_table_avx512; /* + bf16_dot_fast, see rows_kernel */
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
  free(c->xb);
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

typedef struct {
  const gn_table *t;
  const float *x;
  int8_t *q;
  float *d, *s;
  size_t blocks, chunk; /* 32-value blocks in all, per chunk */
} quant_task_arg;

/* Blocks are quantised independently (act.c), so any split of the T·n/32 blocks gives the same bytes. */
static void quant_task(void *arg, int chunk, int thread) {
  (void)thread;
  const quant_task_arg *a = arg;
  const size_t b0 = (size_t)chunk * a->chunk, b1 = b0 + a->chunk < a->blocks ? b0 + a->chunk : a->blocks;
  a->t->quantize(a->x + 32 * b0, 1, (int)(32 * (b1 - b0)), a->q + 32 * b0, a->d + b0, a->s + 2 * b0);
}

/* Fast-mode activations: xq [T][n] · xd [T][n/32] · xs16 [T][n/16] in the context's buffer, quantised on
 * the pool's threads when there are enough blocks (a wake-up costs about as much as 512 blocks). */
static int quantize_activations(gn_ctx *c, const float *x, int T, int n, const int8_t **xq, const float **xd, const float **xs16) {
  const size_t tn = (size_t)T * (size_t)n;
  const size_t q_bytes = (tn + 63) & ~(size_t)63, d_bytes = ((tn / 32) * 4 + 63) & ~(size_t)63;
  uint8_t *buf = ensure_act(c, q_bytes + d_bytes + (tn / 16) * 4 + 64);
  if (!buf) return GN_ENOMEM;
  int8_t *q = (int8_t *)buf;
  float *d = (float *)(buf + q_bytes), *s = (float *)(buf + q_bytes + d_bytes);
  quant_task_arg qa = {.t = c->table, .x = x, .q = q, .d = d, .s = s, .blocks = tn / 32};
  size_t per = (qa.blocks + (size_t)c->threads * 4 - 1) / ((size_t)c->threads * 4);
  if (per < 512) per = 512;
  if (per > (size_t)1 << 28) per = (size_t)1 << 28; /* chunk counts stay ints */
  qa.chunk = per;
  gn_pool_run(c->pool, quant_task, &qa, (int)((qa.blocks + per - 1) / per));
  *xq = q;
  *xd = d;
  *xs16 = s;
  return GN_OK;
}

/* float → bf16, round to nearest even, NaN kept quiet: src/quant/half.ts f32ToBf16. */
static inline uint16_t bf16_round(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

typedef struct {
  const float *x;
  uint16_t *xb;
  size_t n, chunk;
} bf16_task_arg;

static void bf16_task(void *arg, int chunk, int thread) {
  (void)thread;
  const bf16_task_arg *a = arg;
  const size_t i0 = (size_t)chunk * a->chunk, i1 = i0 + a->chunk < a->n ? i0 + a->chunk : a->n;
  for (size_t i = i0; i < i1; i++) a->xb[i] = bf16_round(a->x[i]);
}

/* The activations rounded to bf16 once per call, for bf16_dot_fast (on the pool's threads past 64k values;
 * each value rounds alone, so any split gives the same bytes). */
static int bf16_activations(gn_ctx *c, const float *x, int T, int n, const uint16_t **xb) {
  const size_t tn = (size_t)T * (size_t)n;
  if (c->xb_size < tn) {
    void *p = NULL;
    if (posix_memalign(&p, 64, tn * 2 + 64) != 0) return GN_ENOMEM;
    free(c->xb);
    c->xb = p;
    c->xb_size = tn;
  }
  bf16_task_arg a = {.x = x, .xb = c->xb, .n = tn, .chunk = tn};
  if (tn > 65536 && c->threads > 1) a.chunk = (tn + (size_t)c->threads - 1) / (size_t)c->threads;
  gn_pool_run(c->pool, bf16_task, &a, (int)((tn + a.chunk - 1) / a.chunk));
  *xb = c->xb;
  return GN_OK;
}

/* The kernel for a 'rows' matrix of `type` (and its unpacker, for the canonical kernels); NULL: none. */
static gn_rows_fn *rows_kernel(const gn_ctx *c, int type, int fast, int T, gn_unpack_fn **unpack) {
  const gn_table *t = c->table;
  *unpack = NULL;
  if (fast && T <= GN_SMALL_T && t->direct_small[type]) return t->direct_small[type];
  if (is_float_type(type)) {
    if (fast && type == GN_BF16 && c->isa == GN_ISA_AVX512_BF16 && t->bf16_dot_fast) return t->bf16_dot_fast;
    return fast && t->float_fast[type] ? t->float_fast[type] : t->float_exact;
  }
  if (type == GN_Q8_0) return fast ? t->q8_0_fast : t->q8_0_exact;
  if (fast && t->direct_fast[type]) return t->direct_fast[type];
  /* IQ4_NL's and IQ4_XS's codes (up to 241) exceed what AVX2's and NEON's signed or saturating byte products
   * take: scalar kernels there; AVX-512 VNNI's dpbusd multiplies unsigned bytes without saturating. */
  const int wide = type == GN_IQ4_NL || type == GN_IQ4_XS;
  const gn_table *k = wide && t->isa != GN_ISA_AVX512 ? &gn_table_scalar : t;
  *unpack = k->unpack[type];
  if (!*unpack) return NULL;
  return fast ? k->canon_fast : k->canon_exact;
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

  gn_rows_job job = {.type = type, .w = w, .row_bytes = row_bytes, .n_in = n_in, .n_out = n_out, .T = T, .x = x, .y = y};
  const int quant = !is_float_type(type);
  gn_rows_fn *fn = rows_kernel(c, type, fast, T, &job.unpack);
  if (!fn) return GN_ETYPE;
  if (fast && quant) {
    const int err = quantize_activations(c, x, T, n_in, &job.xq, &job.xd, &job.xs16);
    if (err) return err;
  }
  if (fn == c->table->bf16_dot_fast) {
    const int err = bf16_activations(c, x, T, n_in, &job.xb);
    if (err) return err;
  }
  if (ensure_scratch(c, gn_rows_scratch(n_in)) != GN_OK) return GN_ENOMEM;
  split_task s = {.ctx = c, .fn = fn, .job = &job, .total = n_out};
  const int n_chunks = chunking(c, n_out, (double)n_in * T, GN_ROW_GROUP, &s.chunk);
  gn_pool_run(c->pool, rows_task, &s, n_chunks);
  return GN_OK;
}

/* The AVX-512 xai8 kernel takes the weights as unsigned bytes (q + 128); each token's block then needs
 * −128·Σ xq, which depends on the activations only: once per call instead of once per column. */
static int xai8_corrections(gn_ctx *c, const int8_t *xq, int T, int n_in, const int32_t **xc) {
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
    for (int i = 0; i < 32; i++) sum += xq[32 * b + (size_t)i];
    c->xcorr[b] = -128 * sum;
  }
  *xc = c->xcorr;
  return GN_OK;
}

/* xai8 column chunks. Up to 16 tokens the call streams its weights: one chunk per thread, as wide as can be,
 * because every chunk cuts each row into pieces and each piece costs a page walk and a new stream
 * (6144×32768 at T = 1, one thread: 4.3 GB/s in 256-column chunks, 9 at 2048, 13.6 whole). With more
 * tokens, about 8 per thread for balance. Either way narrow enough that the partial sums (4 bytes per
 * column and token, up to GN_XAI8_TOKENS tokens) stay within 256 KiB. */
static int xai8_chunk(const gn_ctx *c, int n_out, int n_in, int T) {
  int chunk;
  if (chunking(c, n_out, (double)n_in * T, 64, &chunk) > 1 && T <= 16) chunk = ((n_out + c->threads - 1) / c->threads + 63) / 64 * 64;
  const int tt = T < GN_XAI8_TOKENS ? T : GN_XAI8_TOKENS, fit = 65536 / tt / 64 * 64;
  if (chunk > fit) chunk = fit < 64 ? 64 : fit;
  return chunk;
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
    const int err2 = xai8_corrections(c, job.xq, T, n_in, &job.xc);
    if (err2) return err2;
  }
  split_task s = {.ctx = c, .xfn = use_fast ? c->table->xai8_fast : c->table->xai8_exact, .xjob = &job, .total = n_out,
                  .chunk = xai8_chunk(c, n_out, n_in, T)};
  const int n_chunks = (n_out + s.chunk - 1) / s.chunk;
  if (ensure_scratch(c, gn_xai8_scratch(s.chunk, T)) != GN_OK) return GN_ENOMEM;
  gn_pool_run(c->pool, xai8_task, &s, n_chunks);
  return GN_OK;
}

typedef struct {
  gn_ctx *ctx;
  int n;
  gn_rows_job rows[GN_MANY_MAX];
  gn_xai8_job xai8[GN_MANY_MAX];
  gn_rows_fn *fn[GN_MANY_MAX]; /* NULL: an xai8 matrix */
  gn_xai8_fn *xfn[GN_MANY_MAX];
  int chunk[GN_MANY_MAX], total[GN_MANY_MAX], first[GN_MANY_MAX + 1]; /* first[i]: matrix i's first chunk */
} many_task_arg;

static void many_task(void *arg, int chunk, int thread) {
  const many_task_arg *s = arg;
  int i = 0;
  while (chunk >= s->first[i + 1]) i++;
  const int a = (chunk - s->first[i]) * s->chunk[i], b = a + s->chunk[i] < s->total[i] ? a + s->chunk[i] : s->total[i];
  if (s->fn[i]) s->fn[i](&s->rows[i], a, b, s->ctx->scratch[thread]);
  else s->xfn[i](&s->xai8[i], a, b, s->ctx->scratch[thread]);
}

/* The checks and kernel choice of gn_matmul_rows for one matrix of gn_matmul_many (kept in step with it:
 * the outputs must be the same bytes). *quant: whether it reads int8 activations. */
static int many_rows_setup(const gn_ctx *c, const gn_matrix *m, int n_in, int T, int fast, gn_rows_job *job, gn_rows_fn **fn, int *quant) {
  const gn_type_info *ti = gn_type(m->type);
  if (!ti) return GN_ETYPE;
  if (n_in % ti->block_size != 0) return GN_EINVAL;
  size_t row_bytes = (size_t)(n_in / ti->block_size) * (size_t)ti->block_bytes, need_w, need_y;
  if (!mul_ok(row_bytes, (size_t)m->n_out, &need_w) || !mul_ok((size_t)T, (size_t)m->n_out, &need_y)) return GN_EINVAL;
  if (m->w_bytes < need_w || m->y_len < need_y) return GN_EINVAL;
  *job = (gn_rows_job){.type = m->type, .w = m->w, .row_bytes = row_bytes, .n_in = n_in, .n_out = m->n_out, .T = T, .y = m->y};
  *quant = fast && !is_float_type(m->type);
  *fn = rows_kernel(c, m->type, fast, T, &job->unpack);
  return *fn ? GN_OK : GN_ETYPE;
}

/* As gn_matmul_xai8's checks, for one matrix of gn_matmul_many. */
static int many_xai8_setup(const gn_ctx *c, const gn_matrix *m, int n_in, int T, int fast, gn_xai8_job *job, gn_xai8_fn **fn, int *quant) {
  if (m->groups <= 0 || n_in % m->groups != 0) return GN_EINVAL;
  size_t need_q, need_s, need_y;
  if (!mul_ok((size_t)n_in, (size_t)m->n_out, &need_q) || !mul_ok((size_t)m->groups, (size_t)m->n_out, &need_s) ||
      !mul_ok((size_t)T, (size_t)m->n_out, &need_y))
    return GN_EINVAL;
  if (m->q_len < need_q || m->s_len < need_s || m->y_len < need_y) return GN_EINVAL;
  *quant = fast && (n_in / m->groups) % 32 == 0;
  *job = (gn_xai8_job){.q = m->q, .scales = m->scales, .n_in = n_in, .n_out = m->n_out, .groups = m->groups, .T = T, .y = m->y};
  *fn = *quant ? c->table->xai8_fast : c->table->xai8_exact;
  return *fn ? GN_OK : GN_ETYPE;
}

int gn_matmul_many(gn_ctx *c, int n, const gn_matrix *m, int n_in, const float *x, size_t x_len, int T, int fast) {
  if (n < 0 || n > GN_MANY_MAX || n_in <= 0 || T < 0) return GN_EINVAL;
  size_t need_x;
  if (!mul_ok((size_t)T, (size_t)n_in, &need_x) || x_len < need_x) return GN_EINVAL;
  many_task_arg s = {.ctx = c, .n = n};
  int any_quant = 0, any_bf16 = 0;
  size_t scratch = gn_rows_scratch(n_in);
  for (int i = 0; i < n; i++) {
    if (m[i].n_out < 0 || (m[i].w == NULL) == (m[i].q == NULL)) return GN_EINVAL;
    int quant = 0, err;
    if (m[i].w) err = many_rows_setup(c, &m[i], n_in, T, fast, &s.rows[i], &s.fn[i], &quant);
    else {
      err = many_xai8_setup(c, &m[i], n_in, T, fast, &s.xai8[i], &s.xfn[i], &quant);
      s.fn[i] = NULL;
    }
    if (err) return err;
    any_quant |= quant;
    any_bf16 |= s.fn[i] && s.fn[i] == c->table->bf16_dot_fast;
  }
  if (T == 0) return GN_OK;
  if (any_quant) {
    const int8_t *xq;
    const float *xd, *xs16;
    const int err = quantize_activations(c, x, T, n_in, &xq, &xd, &xs16);
    if (err) return err;
    const int32_t *xc = NULL;
    for (int i = 0; i < n && !xc; i++)
      if (!s.fn[i] && s.xfn[i] == c->table->xai8_fast) {
        const int e2 = xai8_corrections(c, xq, T, n_in, &xc);
        if (e2) return e2;
      }
    for (int i = 0; i < n; i++) {
      s.rows[i].xq = s.xai8[i].xq = xq;
      s.rows[i].xd = s.xai8[i].xd = xd;
      s.rows[i].xs16 = xs16;
      s.xai8[i].xc = xc;
    }
  }
  if (any_bf16) {
    const uint16_t *xb;
    const int err = bf16_activations(c, x, T, n_in, &xb);
    if (err) return err;
    for (int i = 0; i < n; i++) s.rows[i].xb = xb;
  }
  for (int i = 0; i < n; i++) s.rows[i].x = s.xai8[i].x = x;
  s.first[0] = 0;
  for (int i = 0; i < n; i++) {
    s.total[i] = m[i].n_out;
    int count = 0;
    if (m[i].n_out > 0 && s.fn[i]) count = chunking(c, m[i].n_out, (double)n_in * T, GN_ROW_GROUP, &s.chunk[i]);
    else if (m[i].n_out > 0) {
      s.chunk[i] = xai8_chunk(c, m[i].n_out, n_in, T);
      count = (m[i].n_out + s.chunk[i] - 1) / s.chunk[i];
      if (gn_xai8_scratch(s.chunk[i], T) > scratch) scratch = gn_xai8_scratch(s.chunk[i], T);
    }
    if (count > INT32_MAX - s.first[i]) return GN_EINVAL;
    s.first[i + 1] = s.first[i] + count;
  }
  if (ensure_scratch(c, scratch) != GN_OK) return GN_ENOMEM;
  gn_pool_run(c->pool, many_task, &s, s.first[n]);
  return GN_OK;
}

int gn_set_affinity(gn_ctx *c, const int *cpus, int n) {
  if (n <= 0) return 22; /* EINVAL */
  return gn_pool_set_affinity(c->pool, cpus, n);
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

size_t gn_kv_row_bytes(int kv_type, int head_dim) {
  if (head_dim <= 0) return 0;
  switch (kv_type) {
  case GN_F32: return (size_t)head_dim * 4;
  case GN_F16: return (size_t)head_dim * 2;
  case GN_Q8_0: return head_dim % 32 == 0 ? (size_t)(head_dim / 32) * 34 : 0;
  default: return 0;
  }
}

typedef struct {
  gn_ctx *ctx;
  const gn_attention_args *a;
  int chunk, total;
  /* fast mode: queries from t0, nc chunk records per (query, head), KV heads per item gs (ng groups) */
  int t0, nc, gs, ng;
  float *rec;
} attn_task_arg;

/* Items are (query, KV head) pairs: the query heads sharing a KV head read its keys and values once. */
static void attn_task(void *arg, int chunk, int thread) {
  const attn_task_arg *s = arg;
  const int i0 = chunk * s->chunk, i1 = i0 + s->chunk < s->total ? i0 + s->chunk : s->total;
  for (int i = i0; i < i1; i++) s->ctx->table->attention(s->a, i / s->a->n_kv, i % s->a->n_kv, (float *)s->ctx->scratch[thread]);
}

/*
 * Fast mode, phase 1: items (query, chunk, group of gs KV heads); a query's chunks past its own key are
 * skipped. The grouping decides only which rows are read together, never a result.
 */
static void attn_part_task(void *arg, int chunk, int thread) {
  const attn_task_arg *s = arg;
  const gn_attention_args *a = s->a;
  const int i0 = chunk * s->chunk, i1 = i0 + s->chunk < s->total ? i0 + s->chunk : s->total, G = a->n_heads / a->n_kv;
  const size_t R = GN_ATTN_REC(a->head_dim);
  for (int i = i0; i < i1; i++) {
    const int tl = i / (s->nc * s->ng), c = i / s->ng % s->nc, g0 = i % s->ng * s->gs, t = s->t0 + tl;
    const int g1 = g0 + s->gs < a->n_kv ? g0 + s->gs : a->n_kv;
    if ((size_t)c * GN_ATTN_CHUNK >= (size_t)a->pos0 + (size_t)t + 1) continue;
    float *rec = s->rec + (((size_t)tl * a->n_heads + (size_t)g0 * G) * s->nc + (size_t)c) * R;
    s->ctx->table->attention_part(a, t, g0, g1, c, rec, (size_t)s->nc * R, (float *)s->ctx->scratch[thread]);
  }
}

/* Fast mode, phase 2: items (query, head), each merging that query's chunks in ascending order. */
static void attn_merge_task(void *arg, int chunk, int thread) {
  (void)thread;
  const attn_task_arg *s = arg;
  const gn_attention_args *a = s->a;
  const int i0 = chunk * s->chunk, i1 = i0 + s->chunk < s->total ? i0 + s->chunk : s->total;
  const size_t R = GN_ATTN_REC(a->head_dim);
  for (int i = i0; i < i1; i++) {
    const int tl = i / a->n_heads, t = s->t0 + tl;
    const int nc = (int)(((size_t)a->pos0 + (size_t)t + GN_ATTN_CHUNK) / GN_ATTN_CHUNK);
    s->ctx->table->attention_merge(s->rec + (size_t)i * s->nc * R, nc, R, a->head_dim,
                                   a->out + ((size_t)t * a->n_heads + (size_t)(i % a->n_heads)) * (size_t)a->head_dim);
  }
}

/* Chunk records of the queries one fast-mode pass holds (the passes' split changes no result). */
#define GN_ATTN_REC_BYTES ((size_t)16 << 20)

int gn_attention(gn_ctx *c, const gn_attention_args *a) {
  if (a->T < 0 || a->pos0 < 0 || a->n_heads <= 0 || a->n_kv <= 0 || a->head_dim <= 0 || a->n_heads % a->n_kv != 0) return GN_EINVAL;
  if (!gn_kv_row_bytes(a->kv_type, a->head_dim) || a->pos0 > INT32_MAX - a->T) return GN_EINVAL;
  /* log2(1) = 0 would divide by zero; NaN and infinities have no temperature (small-ops.ts checkTemperatureLen). */
  if (!(a->temperature_len == 0 || (a->temperature_len > 1 && isfinite(a->temperature_len)))) return GN_EINVAL;
  if (a->T == 0) return GN_OK;
  const size_t n_keys = (size_t)a->pos0 + (size_t)a->T, G = (size_t)(a->n_heads / a->n_kv), K = (size_t)a->head_dim + 8;
  attn_task_arg s = {.ctx = c, .a = a};
  if (!a->fast) {
    if (ensure_scratch(c, 8 * (G * K + K + G * (n_keys + 8)) + 4 * (G * K + K) + 128) != GN_OK) return GN_ENOMEM;
    s.total = a->T * a->n_kv;
    /* Cost of one (query, KV head): its keys times the head width, twice (scores and values), per head. */
    const double work = 2.0 * (double)n_keys * a->head_dim * (double)G;
    const int n_chunks = chunking(c, s.total, work, 1, &s.chunk);
    gn_pool_run(c->pool, attn_task, &s, n_chunks);
    return GN_OK;
  }
  s.nc = (int)((n_keys + GN_ATTN_CHUNK - 1) / GN_ATTN_CHUNK);
  /* All KV heads per item (one position's rows are contiguous) unless that leaves under 4 items a thread. */
  s.gs = a->n_kv;
  while (s.gs > 1 && (size_t)a->T * (size_t)s.nc * (size_t)((a->n_kv + s.gs - 1) / s.gs) < 4 * (size_t)c->threads) s.gs = (s.gs + 1) / 2;
  s.ng = (a->n_kv + s.gs - 1) / s.gs;
  if (ensure_scratch(c, GN_ATTN_SCRATCH(a->head_dim, (size_t)s.gs * G, s.gs)) != GN_OK) return GN_ENOMEM;
  const size_t per_query = (size_t)a->n_heads * (size_t)s.nc * GN_ATTN_REC(a->head_dim) * 4;
  size_t fit = GN_ATTN_REC_BYTES / per_query, rec_bytes;
  const int group = fit < 1 ? 1 : fit < (size_t)a->T ? (int)fit : a->T;
  if (!mul_ok(per_query, (size_t)group, &rec_bytes) || (size_t)group * (size_t)s.nc * (size_t)s.ng > INT32_MAX ||
      (size_t)group * (size_t)a->n_heads > INT32_MAX)
    return GN_EINVAL;
  s.rec = ensure_act(c, rec_bytes);
  if (!s.rec) return GN_ENOMEM;
  const double part_work = 2.0 * GN_ATTN_CHUNK * a->head_dim * (double)G * s.gs;
  for (int t0 = 0; t0 < a->T; t0 += group) {
    const int tg = a->T - t0 < group ? a->T - t0 : group;
    s.t0 = t0;
    s.total = tg * s.nc * s.ng;
    gn_pool_run(c->pool, attn_part_task, &s, chunking(c, s.total, part_work, 1, &s.chunk));
    s.total = tg * a->n_heads;
    gn_pool_run(c->pool, attn_merge_task, &s, chunking(c, s.total, (double)s.nc * a->head_dim, 1, &s.chunk));
  }
  return GN_OK;
}

typedef struct {
  const gn_table *table;
  float *x;
  const float *up;
  size_t n, chunk;
  int form, fast;
} gelu_task_arg;

/*
 * gelu_tanh(v) = 0.5·v·(1 + tanh(z)) = v / (1 + e^(−2z)): the same value without the cancellation of
 * 1 + tanh(z) for negative z; float64 inside, as the reference.
 * gelu_erf(v) = 0.5·v·(1 + erf(v/√2)) (Grok-2's: src/model/config.ts `gelu`): exact mode with
 * libm's erf in float64, the formula of reference.ts, whose 1 + erf cancels for v < 0 only to an absolute
 * ~1e-16·|v|, below anything float32 keeps near the values there (|gelu(v)| < 1.5e-6 for v < −5); fast mode in
 * float32 lanes (kernels/gelu.c: libm's erf costs ~15 ns a value, three times the tanh form's exp).
 */
static void gelu_task(void *arg, int chunk, int thread) {
  (void)thread;
  const gelu_task_arg *s = arg;
  const size_t i0 = (size_t)chunk * s->chunk, i1 = i0 + s->chunk < s->n ? i0 + s->chunk : s->n;
  if (s->form == GN_GELU_ERF && s->fast) {
    s->table->gelu_erf_fast(s->x + i0, s->up ? s->up + i0 : NULL, i1 - i0);
    return;
  }
  if (s->form == GN_GELU_ERF) {
    const double r = 0.7071067811865476; /* 1/√2, JavaScript's Math.SQRT1_2 */
    for (size_t i = i0; i < i1; i++) {
      const double v = s->x[i];
      const float g = (float)(0.5 * v * (1.0 + erf(v * r)));
      s->x[i] = s->up ? g * s->up[i] : g;
    }
    return;
  }
  const double c = 0.7978845608028654; /* sqrt(2/π) */
  for (size_t i = i0; i < i1; i++) {
    const double v = s->x[i];
    const double z = c * (v + 0.044715 * v * v * v);
    const float g = (float)(v / (1.0 + exp(-2.0 * z)));
    s->x[i] = s->up ? g * s->up[i] : g; /* float × float, as the JavaScript it replaces */
  }
}

int gn_gelu(gn_ctx *c, float *x, const float *up, size_t n, int form, int fast) {
  if (form != GN_GELU_TANH && form != GN_GELU_ERF) return GN_EINVAL;
  if (n == 0) return GN_OK;
  /* Below ~64k values one thread is quicker than waking the others. */
  gelu_task_arg s = {.table = c->table, .x = x, .up = up, .n = n, .chunk = n < 65536 ? n : 16384, .form = form, .fast = fast != 0};
  const size_t chunks = (n + s.chunk - 1) / s.chunk;
  if (chunks > (size_t)1 << 30) return GN_EINVAL;
  gn_pool_run(c->pool, gelu_task, &s, (int)chunks);
  return GN_OK;
}
