/*
 * Stand-alone check of the native kernels against reference outputs computed elsewhere (by
 * test/native-arm.test.ts from src/kernels/reference.ts), for builds that Node cannot load here: the
 * aarch64 binary runs under qemu-user. Every level the CPU runs, on 1 and 3 threads; batched results
 * must also be bit-identical to each token computed alone (batch invariance).
 *
 *   check DIR        reads DIR/case-*.bin (format below), prints one line per level, exits 1 on a mismatch
 *
 * Case file, little-endian: "GNC1", u32 kind (0 rows matmul, 1 xai8 matmul, 2 attention, 3 gelu, 4 attention
 * over a KV cache of any type, exact or fast), then
 * kind 0/1: i32 type, n_in, n_out, T, groups, fast; f32 tol; u64 len + bytes (weights / q); u64 len +
 *   bytes (scales, xai8); f32 x[T·n_in]; f32 want[T·n_out]; f32 bound[T·n_out] (Σ|w·x| per output)
 * kind 2: i32 T, pos0, n_heads, n_kv, head_dim; f32 scale, softcap, tol; f32 q, k, v; u8 mask; f32 want
 * kind 3: i32 n, form (GN_GELU_*), fast; f32 tol, tol_x; f32 x[n]; f32 want[n]: |Δ| ≤ tol·(|want| + 1e-6) + tol_x·|x|
 * kind 4: i32 T, pos0, n_heads, n_kv, head_dim, kv_type, fast; f32 scale, softcap, tol, temperature_len;
 *   u64 len + bytes (k); u64 len + bytes (v); f32 q; u8 mask; f32 want — and each query must equal itself
 *   computed alone
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gn.h"

typedef struct {
  uint32_t kind;
  int32_t type, n_in, n_out, T, groups, fast;
  int32_t pos0, n_heads, n_kv, head_dim, kv_type, form;
  float tol, tol_x, scale, softcap, temperature_len;
  uint8_t *w, *s, *mask;
  uint64_t w_len, s_len;
  float *x, *want, *bound, *q, *k, *v;
  char name[256];
} check_case;

static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

static float *rd_floats(FILE *f, size_t n) {
  float *p = malloc(n * 4 + 4);
  if (p && !rd(f, p, n * 4)) {
    free(p);
    return NULL;
  }
  return p;
}

static uint8_t *rd_blob(FILE *f, uint64_t *len) {
  if (!rd(f, len, 8)) return NULL;
  uint8_t *p = malloc(*len + 1);
  if (p && !rd(f, p, *len)) {
    free(p);
    return NULL;
  }
  return p;
}

static int load(const char *path, check_case *c) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  char magic[4];
  int ok = rd(f, magic, 4) && memcmp(magic, "GNC1", 4) == 0 && rd(f, &c->kind, 4);
  if (ok && c->kind <= 1) {
    ok = rd(f, &c->type, 4) && rd(f, &c->n_in, 4) && rd(f, &c->n_out, 4) && rd(f, &c->T, 4) && rd(f, &c->groups, 4) &&
         rd(f, &c->fast, 4) && rd(f, &c->tol, 4) && (c->w = rd_blob(f, &c->w_len)) && (c->s = rd_blob(f, &c->s_len)) &&
         (c->x = rd_floats(f, (size_t)c->T * c->n_in)) && (c->want = rd_floats(f, (size_t)c->T * c->n_out)) &&
         (c->bound = rd_floats(f, (size_t)c->T * c->n_out));
  } else if (ok && c->kind == 2) {
    ok = rd(f, &c->T, 4) && rd(f, &c->pos0, 4) && rd(f, &c->n_heads, 4) && rd(f, &c->n_kv, 4) && rd(f, &c->head_dim, 4) &&
         rd(f, &c->scale, 4) && rd(f, &c->softcap, 4) && rd(f, &c->tol, 4);
    const size_t qn = (size_t)c->T * c->n_heads * c->head_dim, kvn = (size_t)(c->pos0 + c->T) * c->n_kv * c->head_dim;
    ok = ok && (c->q = rd_floats(f, qn)) && (c->k = rd_floats(f, kvn)) && (c->v = rd_floats(f, kvn)) &&
         (c->mask = malloc((size_t)(c->pos0 + c->T))) && rd(f, c->mask, (size_t)(c->pos0 + c->T)) && (c->want = rd_floats(f, qn));
  } else if (ok && c->kind == 4) {
    ok = rd(f, &c->T, 4) && rd(f, &c->pos0, 4) && rd(f, &c->n_heads, 4) && rd(f, &c->n_kv, 4) && rd(f, &c->head_dim, 4) &&
         rd(f, &c->kv_type, 4) && rd(f, &c->fast, 4) && rd(f, &c->scale, 4) && rd(f, &c->softcap, 4) && rd(f, &c->tol, 4) &&
         rd(f, &c->temperature_len, 4);
    const size_t qn = (size_t)c->T * c->n_heads * c->head_dim, need = (size_t)(c->pos0 + c->T) * c->n_kv * gn_kv_row_bytes(c->kv_type, c->head_dim);
    ok = ok && (c->w = rd_blob(f, &c->w_len)) && (c->s = rd_blob(f, &c->s_len)) && c->w_len >= need && c->s_len >= need &&
         (c->q = rd_floats(f, qn)) && (c->mask = malloc((size_t)(c->pos0 + c->T))) && rd(f, c->mask, (size_t)(c->pos0 + c->T)) &&
         (c->want = rd_floats(f, qn));
  } else if (ok && c->kind == 3) {
    ok = rd(f, &c->n_in, 4) && rd(f, &c->form, 4) && rd(f, &c->fast, 4) && rd(f, &c->tol, 4) && rd(f, &c->tol_x, 4) && (c->x = rd_floats(f, (size_t)c->n_in)) && (c->want = rd_floats(f, (size_t)c->n_in));
  } else ok = 0;
  fclose(f);
  return ok;
}

static int run_matmul(gn_ctx *ctx, const check_case *c, const float *x, int T, float *y) {
  if (c->kind == 0)
    return gn_matmul_rows(ctx, c->type, c->w, c->w_len, c->n_in, c->n_out, x, (size_t)T * c->n_in, T, y, (size_t)T * c->n_out, c->fast);
  return gn_matmul_xai8(ctx, (const int8_t *)c->w, c->w_len, (const uint16_t *)c->s, c->s_len / 2, c->n_in, c->n_out, c->groups, x,
                        (size_t)T * c->n_in, T, y, (size_t)T * c->n_out, c->fast);
}

static float bf16_value(uint16_t b) {
  const uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* x rounded to bf16 (nearest even) and back: what the avx512_bf16 level multiplies bf16 rows with. */
static float bf16_rounded(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return bf16_value((uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16));
}

/* The wanted outputs of a case at this level: the case's own, except bf16 rows in fast mode at avx512_bf16,
 * whose activations are rounded to bf16 first (the tests' definition, as the int8 rounding of the quantised
 * types): the float64 sum over those, computed here. NULL: the case's. */
static double *level_want(int isa, const check_case *c) {
  if (isa != GN_ISA_AVX512_BF16 || c->kind != 0 || c->type != GN_BF16 || !c->fast) return NULL;
  double *want = malloc((size_t)c->T * c->n_out * sizeof *want);
  for (int t = 0; t < c->T; t++)
    for (int o = 0; o < c->n_out; o++) {
      double s = 0;
      for (int k = 0; k < c->n_in; k++) {
        uint16_t w;
        memcpy(&w, c->w + 2 * ((size_t)o * c->n_in + k), 2);
        s += (double)bf16_value(w) * bf16_rounded(c->x[(size_t)t * c->n_in + k]);
      }
      want[(size_t)t * c->n_out + o] = s;
    }
  return want;
}

/* 0 when the case passes at this level and thread count. */
static int check_one(int isa, int threads, const check_case *c) {
  gn_ctx *ctx = gn_create(threads, isa, 50);
  gn_ctx *solo = gn_create(1, isa, 0);
  if (!ctx || !solo) {
    printf("%s: cannot create a %d-thread context\n", c->name, threads);
    return 1;
  }
  int bad = 0;
  if (c->kind <= 1) {
    const size_t ny = (size_t)c->T * c->n_out;
    float *y = malloc(ny * 4), *y1 = malloc((size_t)c->n_out * 4);
    double *own = level_want(isa, c);
    int err = run_matmul(ctx, c, c->x, c->T, y);
    if (err) {
      printf("%s [%s, %d threads]: %s\n", c->name, gn_isa_name(isa), threads, gn_strerror(err));
      bad = 1;
    }
    for (size_t i = 0; !bad && i < ny; i++) {
      const double tol = (double)c->tol * c->bound[i] + 1e-30, want = own ? own[i] : c->want[i];
      if (!(fabs((double)y[i] - want) <= tol)) {
        printf("%s [%s, %d threads]: output %zu is %.9g, want %.9g (tolerance %.3g)\n", c->name, gn_isa_name(isa), threads, i, y[i], want, tol);
        bad = 1;
      }
    }
    free(own);
    /* gn_matmul_many with this matrix twice (one shared quantisation, one dispatch): the same bytes. */
    if (!bad) {
      float *ya = malloc(ny * 4), *yb = malloc(ny * 4);
      gn_matrix m = {.n_out = c->n_out, .y_len = ny};
      if (c->kind == 0) {
        m.type = c->type;
        m.w = c->w;
        m.w_bytes = c->w_len;
      } else {
        m.q = (const int8_t *)c->w;
        m.q_len = c->w_len;
        m.scales = (const uint16_t *)c->s;
        m.s_len = c->s_len / 2;
        m.groups = c->groups;
      }
      gn_matrix two[2] = {m, m};
      two[0].y = ya;
      two[1].y = yb;
      err = gn_matmul_many(ctx, 2, two, c->n_in, c->x, (size_t)c->T * c->n_in, c->T, c->fast);
      if (err || memcmp(ya, y, ny * 4) != 0 || memcmp(yb, y, ny * 4) != 0) {
        printf("%s [%s, %d threads]: gn_matmul_many differs from the single matmul (%s)\n", c->name, gn_isa_name(isa), threads, gn_strerror(err));
        bad = 1;
      }
      free(ya);
      free(yb);
    }
    for (int t = 0; !bad && t < c->T && c->T > 1; t++) {
      run_matmul(solo, c, c->x + (size_t)t * c->n_in, 1, y1);
      if (memcmp(y1, y + (size_t)t * c->n_out, (size_t)c->n_out * 4) != 0) {
        printf("%s [%s, %d threads]: token %d of T = %d differs from the same token alone\n", c->name, gn_isa_name(isa), threads, t, c->T);
        bad = 1;
      }
    }
    free(y);
    free(y1);
  } else if (c->kind == 2 || c->kind == 4) {
    const size_t per = (size_t)c->n_heads * c->head_dim, qn = (size_t)c->T * per;
    float *out = malloc(qn * 4), *one = malloc(per * 4);
    gn_attention_args a = {c->q, c->k, c->v, c->mask, out, c->T, c->pos0, c->n_heads, c->n_kv, c->head_dim, c->scale, c->softcap};
    if (c->kind == 4) {
      a.k_cache = c->w;
      a.v_cache = c->s;
      a.kv_type = c->kv_type;
      a.fast = c->fast;
      a.temperature_len = c->temperature_len;
    }
    const int err = gn_attention(ctx, &a);
    if (err) {
      printf("%s [%s, %d threads]: %s\n", c->name, gn_isa_name(isa), threads, gn_strerror(err));
      bad = 1;
    }
    for (size_t i = 0; !bad && i < qn; i++) {
      if (!(fabs((double)out[i] - c->want[i]) <= c->tol)) {
        printf("%s [%s, %d threads]: attention output %zu is %.9g, want %.9g\n", c->name, gn_isa_name(isa), threads, i, out[i], c->want[i]);
        bad = 1;
      }
    }
    for (int t = 0; !bad && c->kind == 4 && t < c->T && c->T > 1; t++) {
      gn_attention_args b = a;
      b.q = c->q + (size_t)t * per;
      b.out = one;
      b.T = 1;
      b.pos0 = c->pos0 + t;
      gn_attention(solo, &b);
      if (memcmp(one, out + (size_t)t * per, per * 4) != 0) {
        printf("%s [%s, %d threads]: query %d of T = %d differs from the same query alone\n", c->name, gn_isa_name(isa), threads, t, c->T);
        bad = 1;
      }
    }
    free(out);
    free(one);
  } else {
    float *v = malloc((size_t)c->n_in * 4);
    memcpy(v, c->x, (size_t)c->n_in * 4);
    const int err = gn_gelu(ctx, v, NULL, (size_t)c->n_in, c->form, c->fast);
    if (err) {
      printf("%s [%s, %d threads]: %s\n", c->name, gn_isa_name(isa), threads, gn_strerror(err));
      bad = 1;
    }
    for (int i = 0; !bad && i < c->n_in; i++) {
      if (!(fabs((double)v[i] - c->want[i]) <= c->tol * (fabs(c->want[i]) + 1e-6) + c->tol_x * fabs(c->x[i]))) {
        printf("%s [%s, %d threads]: gelu %s%s(%.9g) is %.9g, want %.9g\n", c->name, gn_isa_name(isa), threads, c->form == GN_GELU_ERF ? "erf" : "tanh",
               c->fast ? " fast" : "", c->x[i], v[i], c->want[i]);
        bad = 1;
      }
    }
    free(v);
  }
  gn_destroy(ctx);
  gn_destroy(solo);
  return bad;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  DIR *d = opendir(argv[1]);
  if (!d) {
    perror(argv[1]);
    return 2;
  }
  char **names = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "case-", 5) != 0) continue;
    names = realloc(names, (n + 1) * sizeof *names);
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, by_name);
  check_case *cases = calloc(n, sizeof *cases);
  for (size_t i = 0; i < n; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
    if (!load(path, &cases[i])) {
      printf("%s: unreadable case file\n", path);
      return 2;
    }
    snprintf(cases[i].name, sizeof cases[i].name, "%s", names[i]);
  }
  printf("cpu features: %s\n", gn_cpu_features());
  int failed = 0;
  char levels[128] = "";
  for (int isa = 0; isa < GN_ISA_COUNT; isa++) {
    if (!gn_cpu_can_run(isa)) continue;
    int bad = 0;
    for (size_t i = 0; i < n; i++)
      for (int threads = 1; threads <= 3; threads += 2) bad += check_one(isa, threads, &cases[i]);
    printf("level %s: %zu cases × 1 and 3 threads: %s\n", gn_isa_name(isa), n, bad ? "FAILED" : "ok");
    strcat(levels, levels[0] ? " " : "");
    strcat(levels, gn_isa_name(isa));
    failed += bad;
  }
  printf("checked levels: %s\n", levels);
  return failed ? 1 : 0;
}
