/*
 * Node-API bindings of the native backend (loaded by src/kernels/native.ts). Node-API only — no V8 API —
 * so one build loads in every Node version with Node-API 8. Arguments arrive already checked by
 * native.ts; each function checks types and lengths again and throws instead of reading out of bounds.
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gn.h"
#include "io.h"
#include "map.h"

#define MAX_ARGS 16

static const napi_type_tag CTX_TAG = {0x67726f6b6e617469ULL, 0x0001637478740001ULL};
static const napi_type_tag MAP_TAG = {0x67726f6b6e617469ULL, 0x00026d6170000002ULL};
static const napi_type_tag IO_TAG = {0x67726f6b6e617469ULL, 0x0003696f00000003ULL};

#define CHECK(env, call)                                     \
  do {                                                       \
    if ((call) != napi_ok) {                                 \
      throw_last(env, #call);                                \
      return NULL;                                           \
    }                                                        \
  } while (0)

static void throw_last(napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  char msg[256];
  snprintf(msg, sizeof msg, "grok-native: %s failed: %s", what, info && info->error_message ? info->error_message : "?");
  napi_throw_error(env, NULL, msg);
}

static napi_value fail(napi_env env, const char *fmt, const char *arg) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, arg);
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = MAX_ARGS;
  napi_value tmp[MAX_ARGS];
  if (napi_get_cb_info(env, info, &argc, tmp, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_error(env, NULL, "grok-native: too few arguments");
    return 0;
  }
  memcpy(argv, tmp, want * sizeof(napi_value));
  return 1;
}

static int get_int(napi_env env, napi_value v, const char *name, int64_t lo, int64_t hi, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != (double)(int64_t)d || d < (double)lo || d > (double)hi) {
    fail(env, "grok-native: %s must be an integer in range", name);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

static int get_f32(napi_env env, napi_value v, const char *name, float *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    fail(env, "grok-native: %s must be a number", name);
    return 0;
  }
  *out = (float)d;
  return 1;
}

static int get_f64(napi_env env, napi_value v, const char *name, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    fail(env, "grok-native: %s must be a number", name);
    return 0;
  }
  return 1;
}

/* A typed array of `type`: its data and its length in elements. */
static int get_typed(napi_env env, napi_value v, napi_typedarray_type type, const char *name, void **data, size_t *len) {
  bool is = false;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is || napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok || t != type) {
    fail(env, "grok-native: %s has the wrong array type", name);
    return 0;
  }
  if (*len > 0 && !*data) {
    fail(env, "grok-native: %s is detached", name);
    return 0;
  }
  return 1;
}

/* ---- kernel contexts -------------------------------------------------------------------------------- */

typedef struct {
  gn_ctx *ctx;
  napi_env env;
} ctx_holder;

static void ctx_cleanup_hook(void *arg) {
  ctx_holder *h = arg;
  gn_destroy(h->ctx);
  h->ctx = NULL;
}

static void ctx_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  ctx_holder *h = data;
  if (h->ctx) {
    napi_remove_env_cleanup_hook(env, ctx_cleanup_hook, h);
    gn_destroy(h->ctx);
  }
  free(h);
}

/* The data of an external made by this addon with `tag`; NULL (a JavaScript error thrown) for anything else. */
static void *get_tagged(napi_env env, napi_value v, const napi_type_tag *tag, const char *what) {
  bool ok = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, v, tag, &ok) != napi_ok || !ok || napi_get_value_external(env, v, &data) != napi_ok) {
    fail(env, "grok-native: not %s", what);
    return NULL;
  }
  return data;
}

static gn_ctx *get_ctx(napi_env env, napi_value v) {
  ctx_holder *h = get_tagged(env, v, &CTX_TAG, "a kernel context");
  if (!h) return NULL;
  if (!h->ctx) {
    napi_throw_error(env, NULL, "grok-native: the kernel context was closed");
    return NULL;
  }
  return h->ctx;
}

/* create(threads, isaName, spinUs) → context */
static napi_value js_create(napi_env env, napi_callback_info info) {
  napi_value a[3];
  if (!get_args(env, info, 3, a)) return NULL;
  int64_t threads, spin;
  if (!get_int(env, a[0], "threads", 1, 256, &threads) || !get_int(env, a[2], "spin", 0, 1000000, &spin)) return NULL;
  char isa_name[32];
  size_t n;
  if (napi_get_value_string_utf8(env, a[1], isa_name, sizeof isa_name, &n) != napi_ok) return fail(env, "grok-native: %s", "isa must be a string");
  const int isa = gn_isa_from_name(isa_name);
  if (isa < 0) return fail(env, "grok-native: unknown instruction-set level '%s'", isa_name);
  if (!gn_cpu_can_run(isa)) return fail(env, "grok-native: this CPU cannot run the '%s' kernels", isa_name);
  ctx_holder *h = calloc(1, sizeof *h);
  if (!h) return fail(env, "grok-native: %s", "out of memory");
  h->ctx = gn_create((int)threads, isa, (int)spin);
  if (!h->ctx) {
    free(h);
    return fail(env, "grok-native: %s", "cannot start the thread pool");
  }
  h->env = env;
  napi_value ext;
  if (napi_create_external(env, h, ctx_finalize, NULL, &ext) != napi_ok) {
    gn_destroy(h->ctx);
    free(h);
    return fail(env, "grok-native: %s", "cannot create the context object");
  }
  CHECK(env, napi_type_tag_object(env, ext, &CTX_TAG));
  CHECK(env, napi_add_env_cleanup_hook(env, ctx_cleanup_hook, h));
  return ext;
}

/* destroy(context): stops the threads now (the object stays, unusable). */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  napi_value a[1];
  if (!get_args(env, info, 1, a)) return NULL;
  bool ok = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, a[0], &CTX_TAG, &ok) != napi_ok || !ok || napi_get_value_external(env, a[0], &data) != napi_ok)
    return fail(env, "grok-native: %s", "not a kernel context");
  ctx_holder *h = data;
  if (h->ctx) {
    napi_remove_env_cleanup_hook(env, ctx_cleanup_hook, h);
    gn_destroy(h->ctx);
    h->ctx = NULL;
  }
  return NULL;
}

static napi_value status(napi_env env, int err) {
  if (err) return fail(env, "grok-native: %s", gn_strerror(err));
  return NULL;
}

/* matmulRows(ctx, type, w: Uint8Array, nIn, nOut, x: Float32Array, T, y: Float32Array, fast) */
static napi_value js_matmul_rows(napi_env env, napi_callback_info info) {
  napi_value a[9];
  if (!get_args(env, info, 9, a)) return NULL;
  gn_ctx *ctx = get_ctx(env, a[0]);
  if (!ctx) return NULL;
  int64_t type, n_in, n_out, T;
  void *w, *x, *y;
  size_t wl, xl, yl;
  bool fast;
  if (!get_int(env, a[1], "type", 0, 255, &type) || !get_typed(env, a[2], napi_uint8_array, "w", &w, &wl) ||
      !get_int(env, a[3], "nIn", 1, INT32_MAX, &n_in) || !get_int(env, a[4], "nOut", 0, INT32_MAX, &n_out) ||
      !get_typed(env, a[5], napi_float32_array, "x", &x, &xl) || !get_int(env, a[6], "T", 0, INT32_MAX, &T) ||
      !get_typed(env, a[7], napi_float32_array, "y", &y, &yl))
    return NULL;
  CHECK(env, napi_get_value_bool(env, a[8], &fast));
  return status(env, gn_matmul_rows(ctx, (int)type, w, wl, (int)n_in, (int)n_out, x, xl, (int)T, y, yl, fast));
}

/* matmulXai8(ctx, q: Int8Array, scales: Uint16Array, nIn, nOut, groups, x, T, y, fast) */
static napi_value js_matmul_xai8(napi_env env, napi_callback_info info) {
  napi_value a[10];
  if (!get_args(env, info, 10, a)) return NULL;
  gn_ctx *ctx = get_ctx(env, a[0]);
  if (!ctx) return NULL;
  int64_t n_in, n_out, groups, T;
  void *q, *s, *x, *y;
  size_t ql, sl, xl, yl;
  bool fast;
  if (!get_typed(env, a[1], napi_int8_array, "q", &q, &ql) || !get_typed(env, a[2], napi_uint16_array, "scales", &s, &sl) ||
      !get_int(env, a[3], "nIn", 1, INT32_MAX, &n_in) || !get_int(env, a[4], "nOut", 0, INT32_MAX, &n_out) ||
      !get_int(env, a[5], "groups", 1, INT32_MAX, &groups) || !get_typed(env, a[6], napi_float32_array, "x", &x, &xl) ||
      !get_int(env, a[7], "T", 0, INT32_MAX, &T) || !get_typed(env, a[8], napi_float32_array, "y", &y, &yl))
    return NULL;
  CHECK(env, napi_get_value_bool(env, a[9], &fast));
  return status(env, gn_matmul_xai8(ctx, q, ql, s, sl, (int)n_in, (int)n_out, (int)groups, x, xl, (int)T, y, yl, fast));
}

/* matmulMany(ctx, mats: [{ type, w: Uint8Array, nOut, y } | { q: Int8Array, scales: Uint16Array, groups, nOut, y }],
 *            nIn, x: Float32Array, T, fast) */
static napi_value js_matmul_many(napi_env env, napi_callback_info info) {
  napi_value a[6];
  if (!get_args(env, info, 6, a)) return NULL;
  gn_ctx *ctx = get_ctx(env, a[0]);
  if (!ctx) return NULL;
  bool is_array = false, fast;
  uint32_t n;
  CHECK(env, napi_is_array(env, a[1], &is_array));
  if (!is_array) return fail(env, "grok-native: %s", "matmulMany: mats must be an array");
  CHECK(env, napi_get_array_length(env, a[1], &n));
  if (n > GN_MANY_MAX) return fail(env, "grok-native: %s", "matmulMany: too many matrices");
  int64_t n_in, T;
  void *x;
  size_t xl;
  if (!get_int(env, a[2], "nIn", 1, INT32_MAX, &n_in) || !get_typed(env, a[3], napi_float32_array, "x", &x, &xl) ||
      !get_int(env, a[4], "T", 0, INT32_MAX, &T))
    return NULL;
  CHECK(env, napi_get_value_bool(env, a[5], &fast));
  gn_matrix m[GN_MANY_MAX];
  memset(m, 0, sizeof m);
  for (uint32_t i = 0; i < n; i++) {
    napi_value o, v;
    bool has_w = false;
    int64_t n_out, type, groups;
    void *p;
    size_t len;
    CHECK(env, napi_get_element(env, a[1], i, &o));
    CHECK(env, napi_has_named_property(env, o, "w", &has_w));
    CHECK(env, napi_get_named_property(env, o, "nOut", &v));
    if (!get_int(env, v, "nOut", 0, INT32_MAX, &n_out)) return NULL;
    m[i].n_out = (int)n_out;
    CHECK(env, napi_get_named_property(env, o, "y", &v));
    if (!get_typed(env, v, napi_float32_array, "y", &p, &m[i].y_len)) return NULL;
    m[i].y = p;
    if (has_w) {
      CHECK(env, napi_get_named_property(env, o, "type", &v));
      if (!get_int(env, v, "type", 0, 255, &type)) return NULL;
      m[i].type = (int)type;
      CHECK(env, napi_get_named_property(env, o, "w", &v));
      if (!get_typed(env, v, napi_uint8_array, "w", &p, &len)) return NULL;
      /* an empty view has no data pointer: point at something so the kind stays 'rows' */
      m[i].w = len ? p : (const uint8_t *)"";
      m[i].w_bytes = len;
    } else {
      CHECK(env, napi_get_named_property(env, o, "q", &v));
      if (!get_typed(env, v, napi_int8_array, "q", &p, &len)) return NULL;
      m[i].q = len ? p : (const int8_t *)"";
      m[i].q_len = len;
      CHECK(env, napi_get_named_property(env, o, "scales", &v));
      if (!get_typed(env, v, napi_uint16_array, "scales", &p, &m[i].s_len)) return NULL;
      m[i].scales = p;
      CHECK(env, napi_get_named_property(env, o, "groups", &v));
      if (!get_int(env, v, "groups", 1, INT32_MAX, &groups)) return NULL;
      m[i].groups = (int)groups;
    }
  }
  return status(env, gn_matmul_many(ctx, (int)n, m, (int)n_in, x, xl, (int)T, fast));
}

/* setAffinity(ctx, cpus: Int32Array) → 0 or errno */
static napi_value js_set_affinity(napi_env env, napi_callback_info info) {
  napi_value a[2], r;
  if (!get_args(env, info, 2, a)) return NULL;
  gn_ctx *ctx = get_ctx(env, a[0]);
  if (!ctx) return NULL;
  void *cpus;
  size_t n;
  if (!get_typed(env, a[1], napi_int32_array, "cpus", &cpus, &n)) return NULL;
  if (n == 0 || n > 65536) return fail(env, "grok-native: %s", "setAffinity: 1…65536 CPUs");
  CHECK(env, napi_create_int32(env, gn_set_affinity(ctx, cpus, (int)n), &r));
  return r;
}

/* getRow(type, w: Uint8Array, nIn, nOut, r, out: Float32Array) */
static napi_value js_get_row(napi_env env, napi_callback_info info) {
  napi_value a[6];
  if (!get_args(env, info, 6, a)) return NULL;
  int64_t type, n_in, n_out, r;
  void *w, *out;
  size_t wl, ol;
  if (!get_int(env, a[0], "type", 0, 255, &type) || !get_typed(env, a[1], napi_uint8_array, "w", &w, &wl) ||
      !get_int(env, a[2], "nIn", 1, INT32_MAX, &n_in) || !get_int(env, a[3], "nOut", 1, INT32_MAX, &n_out) ||
      !get_int(env, a[4], "r", 0, INT32_MAX, &r) || !get_typed(env, a[5], napi_float32_array, "out", &out, &ol))
    return NULL;
  return status(env, gn_get_row((int)type, w, wl, (int)n_in, (int)n_out, (int)r, out, ol));
}

/*
 * attention(ctx, q, kCache, vCache, keyMask: Uint8Array, out, T, pos0, nHeads, nKV, headDim, scale, softcap,
 * kvType, fast, temperatureLen): the caches are a Float32Array (kvType GN_F32), a Uint16Array (GN_F16) or a
 * Uint8Array of Q8_0 blocks (GN_Q8_0); temperatureLen 0 (off) or finite > 1 (gn_attention checks it too).
 */
static napi_value js_attention(napi_env env, napi_callback_info info) {
  napi_value a[16];
  if (!get_args(env, info, 16, a)) return NULL;
  gn_ctx *ctx = get_ctx(env, a[0]);
  if (!ctx) return NULL;
  void *q, *k, *v, *m, *o;
  size_t ql, kl, vl, ml, ol;
  int64_t T, pos0, nh, nkv, hd, kv_type;
  bool fast = false;
  gn_attention_args args;
  if (!get_int(env, a[13], "kvType", 0, 255, &kv_type)) return NULL;
  const napi_typedarray_type kv_array = kv_type == GN_F16 ? napi_uint16_array : kv_type == GN_Q8_0 ? napi_uint8_array : napi_float32_array;
  const size_t kv_elem = kv_type == GN_F16 ? 2 : kv_type == GN_Q8_0 ? 1 : 4;
  if (!get_typed(env, a[1], napi_float32_array, "q", &q, &ql) || !get_typed(env, a[2], kv_array, "kCache", &k, &kl) ||
      !get_typed(env, a[3], kv_array, "vCache", &v, &vl) || !get_typed(env, a[4], napi_uint8_array, "keyMask", &m, &ml) ||
      !get_typed(env, a[5], napi_float32_array, "out", &o, &ol) || !get_int(env, a[6], "T", 0, INT32_MAX, &T) ||
      !get_int(env, a[7], "pos0", 0, INT32_MAX, &pos0) || !get_int(env, a[8], "nHeads", 1, 65536, &nh) ||
      !get_int(env, a[9], "nKV", 1, 65536, &nkv) || !get_int(env, a[10], "headDim", 1, 65536, &hd) ||
      !get_f32(env, a[11], "scale", &args.scale) || !get_f32(env, a[12], "softcap", &args.softcap))
    return NULL;
  if (napi_get_value_bool(env, a[14], &fast) != napi_ok) return fail(env, "grok-native: %s must be a boolean", "fast");
  if (!get_f64(env, a[15], "temperatureLen", &args.temperature_len)) return NULL;
  if (!(args.temperature_len == 0 || (args.temperature_len > 1 && isfinite(args.temperature_len))))
    return fail(env, "grok-native: %s", "attention: temperatureLen must be 0 (off) or a finite number > 1");
  const size_t row = gn_kv_row_bytes((int)kv_type, (int)hd);
  if (!row) return fail(env, "grok-native: %s", "attention: a KV cache cannot hold this type at this head width");
  const double qn = (double)T * nh * hd, kv_bytes = (double)(pos0 + T) * nkv * (double)row;
  if (nh % nkv != 0 || (double)ql < qn || (double)ol < qn || (double)kl * kv_elem < kv_bytes || (double)vl * kv_elem < kv_bytes ||
      (double)ml < (double)(pos0 + T))
    return fail(env, "grok-native: %s", "attention: buffers too short for T, pos0 and the head sizes");
  args.q = q;
  args.k_cache = k;
  args.v_cache = v;
  args.key_mask = m;
  args.out = o;
  args.T = (int)T;
  args.pos0 = (int)pos0;
  args.n_heads = (int)nh;
  args.n_kv = (int)nkv;
  args.head_dim = (int)hd;
  args.kv_type = (int)kv_type;
  args.fast = fast ? 1 : 0;
  return status(env, gn_attention(ctx, &args));
}

/* gelu(ctx, x: Float32Array, n, up: Float32Array | undefined, form: GN_GELU_TANH | GN_GELU_ERF, fast) */
static napi_value js_gelu(napi_env env, napi_callback_info info) {
  napi_value a[6];
  if (!get_args(env, info, 6, a)) return NULL;
  gn_ctx *ctx = get_ctx(env, a[0]);
  if (!ctx) return NULL;
  void *x, *up = NULL;
  size_t xl, ul = 0;
  int64_t n, form;
  napi_valuetype ut;
  bool fast = false;
  if (!get_typed(env, a[1], napi_float32_array, "x", &x, &xl) || !get_int(env, a[2], "n", 0, INT64_C(1) << 52, &n) ||
      !get_int(env, a[4], "form", GN_GELU_TANH, GN_GELU_ERF, &form))
    return NULL;
  if (napi_get_value_bool(env, a[5], &fast) != napi_ok) return fail(env, "grok-native: %s must be a boolean", "fast");
  if (napi_typeof(env, a[3], &ut) != napi_ok) return fail(env, "grok-native: %s", "gelu: bad up");
  if (ut != napi_undefined && !get_typed(env, a[3], napi_float32_array, "up", &up, &ul)) return NULL;
  if ((uint64_t)n > xl || (up && (uint64_t)n > ul)) return fail(env, "grok-native: %s", "gelu: n exceeds the array");
  return status(env, gn_gelu(ctx, x, up, (size_t)n, (int)form, fast ? 1 : 0));
}

/* ---- memory: anonymous weights and file mappings ---------------------------------------------------- */

static void free_anon(napi_env env, void *data, void *hint) {
  (void)env;
  gn_free(data, (size_t)(uintptr_t)hint);
}

/* alloc(bytes) → ArrayBuffer (zero-filled, outside the JavaScript heap) */
static napi_value js_alloc(napi_env env, napi_callback_info info) {
  napi_value a[1], ab;
  if (!get_args(env, info, 1, a)) return NULL;
  int64_t bytes;
  if (!get_int(env, a[0], "bytes", 0, INT64_C(1) << 52, &bytes)) return NULL;
  if (bytes == 0) {
    void *d;
    CHECK(env, napi_create_arraybuffer(env, 0, &d, &ab));
    return ab;
  }
  void *p = gn_alloc((size_t)bytes);
  if (!p) return fail(env, "grok-native: %s", "allocWeight: out of memory");
  if (napi_create_external_arraybuffer(env, p, (size_t)bytes, free_anon, (void *)(uintptr_t)bytes, &ab) != napi_ok) {
    gn_free(p, (size_t)bytes);
    return fail(env, "grok-native: %s", "cannot create an external ArrayBuffer (external buffers disallowed in this runtime?)");
  }
  return ab;
}

static void map_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  gn_map_unref(data);
}

static void view_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  gn_map_unref(hint);
}

static gn_map *get_map(napi_env env, napi_value v) { return get_tagged(env, v, &MAP_TAG, "a file mapping"); }

/* "dev:ino:size:mtime_ns", as the TypeScript side builds it from fs.statSync(file, { bigint: true }). */
static napi_value file_id_string(napi_env env, gn_file_id id) {
  char buf[128];
  napi_value v;
  snprintf(buf, sizeof buf, "%llu:%llu:%llu:%llu", (unsigned long long)id.dev, (unsigned long long)id.ino,
           (unsigned long long)id.size, (unsigned long long)id.mtime_ns);
  CHECK(env, napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &v));
  return v;
}

/* mapFile(path) → [mapping, size, identity] (identity: file_id_string of the opened descriptor). The mapping object holds one reference (dropped when collected). */
static napi_value js_map_file(napi_env env, napi_callback_info info) {
  napi_value a[1];
  if (!get_args(env, info, 1, a)) return NULL;
  size_t n;
  CHECK(env, napi_get_value_string_utf8(env, a[0], NULL, 0, &n));
  char *path = malloc(n + 1);
  if (!path) return fail(env, "grok-native: %s", "out of memory");
  napi_get_value_string_utf8(env, a[0], path, n + 1, &n);
  int err = 0;
  gn_map *m = gn_map_open(path, &err);
  if (!m) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s: cannot map: %s", path, strerror(err));
    free(path);
    napi_throw_error(env, "ENOMAP", msg);
    return NULL;
  }
  free(path);
  napi_value ext, size, out;
  if (napi_create_external(env, m, map_finalize, NULL, &ext) != napi_ok) {
    gn_map_unref(m);
    return fail(env, "grok-native: %s", "cannot create the mapping object");
  }
  CHECK(env, napi_type_tag_object(env, ext, &MAP_TAG));
  CHECK(env, napi_create_double(env, (double)gn_map_size(m), &size));
  napi_value id = file_id_string(env, gn_map_id(m));
  if (!id) return NULL;
  CHECK(env, napi_create_array_with_length(env, 3, &out));
  CHECK(env, napi_set_element(env, out, 0, ext));
  CHECK(env, napi_set_element(env, out, 1, size));
  CHECK(env, napi_set_element(env, out, 2, id));
  return out;
}

/* mapStat(mapping) → [size, identity] of the mapped file now (fstat of its descriptor), or null once the
 * mapping was released. */
static napi_value js_map_stat(napi_env env, napi_callback_info info) {
  napi_value a[1], out, size;
  if (!get_args(env, info, 1, a)) return NULL;
  gn_map *m = get_map(env, a[0]);
  if (!m) return NULL;
  gn_file_id now;
  const int r = gn_map_stat(m, &now);
  if (r == ESTALE) {
    CHECK(env, napi_get_null(env, &out));
    return out;
  }
  if (r != 0) return fail(env, "grok-native: mapStat: %s", strerror(r));
  CHECK(env, napi_create_double(env, (double)now.size, &size));
  napi_value id = file_id_string(env, now);
  if (!id) return NULL;
  CHECK(env, napi_create_array_with_length(env, 2, &out));
  CHECK(env, napi_set_element(env, out, 0, size));
  CHECK(env, napi_set_element(env, out, 1, id));
  return out;
}

/* mapRelease(mapping): unmap the file now (views still held read zeros); idempotent. */
static napi_value js_map_release(napi_env env, napi_callback_info info) {
  napi_value a[1], r;
  if (!get_args(env, info, 1, a)) return NULL;
  gn_map *m = get_map(env, a[0]);
  if (!m) return NULL;
  gn_map_release(m);
  CHECK(env, napi_get_undefined(env, &r));
  return r;
}

/* mapLive() → file mappings opened and not yet released in this process. */
static napi_value js_map_live(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  CHECK(env, napi_create_double(env, (double)gn_map_live(), &r));
  return r;
}

static int get_range(napi_env env, napi_value vo, napi_value vl, const gn_map *m, size_t *off, size_t *len) {
  int64_t o, l;
  if (!get_int(env, vo, "offset", 0, INT64_C(1) << 52, &o) || !get_int(env, vl, "length", 0, INT64_C(1) << 52, &l)) return 0;
  if ((uint64_t)o > gn_map_size(m) || (uint64_t)l > gn_map_size(m) - (uint64_t)o) {
    napi_throw_error(env, NULL, "grok-native: range outside the mapped file");
    return 0;
  }
  *off = (size_t)o;
  *len = (size_t)l;
  return 1;
}

/* mapView(mapping, offset, length) → ArrayBuffer over those bytes of the file (read-only memory: a
 * write faults). Holds a reference on the mapping until collected. */
static napi_value js_map_view(napi_env env, napi_callback_info info) {
  napi_value a[3], ab;
  if (!get_args(env, info, 3, a)) return NULL;
  gn_map *m = get_map(env, a[0]);
  size_t off, len;
  if (!m || !get_range(env, a[1], a[2], m, &off, &len)) return NULL;
  if (len == 0) {
    void *d;
    CHECK(env, napi_create_arraybuffer(env, 0, &d, &ab));
    return ab;
  }
  gn_file_id now;
  if (gn_map_stat(m, &now) == ESTALE) return fail(env, "grok-native: %s", "mapView: the mapping was released");
  gn_map_ref(m);
  if (napi_create_external_arraybuffer(env, (void *)(gn_map_data(m) + off), len, view_finalize, m, &ab) != napi_ok) {
    gn_map_unref(m);
    return fail(env, "grok-native: %s", "cannot create an external ArrayBuffer (external buffers disallowed in this runtime?)");
  }
  return ab;
}

/* mapAdvise(mapping, offset, length, advice) → 0 or errno; mapLock(mapping, offset, length) → 0 or errno */
static napi_value js_map_advise(napi_env env, napi_callback_info info) {
  napi_value a[4], r;
  if (!get_args(env, info, 4, a)) return NULL;
  gn_map *m = get_map(env, a[0]);
  size_t off, len;
  int64_t adv;
  if (!m || !get_range(env, a[1], a[2], m, &off, &len) || !get_int(env, a[3], "advice", 0, 4, &adv)) return NULL;
  CHECK(env, napi_create_int32(env, gn_map_advise(m, off, len, (int)adv), &r));
  return r;
}

static napi_value js_map_lock(napi_env env, napi_callback_info info) {
  napi_value a[3], r;
  if (!get_args(env, info, 3, a)) return NULL;
  gn_map *m = get_map(env, a[0]);
  size_t off, len;
  if (!m || !get_range(env, a[1], a[2], m, &off, &len)) return NULL;
  CHECK(env, napi_create_int32(env, gn_map_lock(m, off, len), &r));
  return r;
}

/* mapPopulate(mapping, offset, length) → 0 or errno: page-table entries filled in the background. */
static napi_value js_map_populate(napi_env env, napi_callback_info info) {
  napi_value a[3], r;
  if (!get_args(env, info, 3, a)) return NULL;
  gn_map *m = get_map(env, a[0]);
  size_t off, len;
  if (!m || !get_range(env, a[1], a[2], m, &off, &len)) return NULL;
  CHECK(env, napi_create_int32(env, gn_map_populate_async(m, off, len), &r));
  return r;
}

/* adviseHugePages(view: Uint8Array) → 0 or errno: transparent huge pages for the memory under a view (a large
 * SharedArrayBuffer read with strided patterns: one TLB entry per 2 MiB instead of per 4 KiB). */
static napi_value js_advise_huge(napi_env env, napi_callback_info info) {
  napi_value a[1], r;
  void *p;
  size_t len;
  if (!get_args(env, info, 1, a) || !get_typed(env, a[0], napi_uint8_array, "view", &p, &len)) return NULL;
  CHECK(env, napi_create_int32(env, len ? gn_advise_huge(p, len) : 0, &r));
  return r;
}

/* quantize(type, x: Float32Array, nIn, rows, dst: Uint8Array, isaName): rows × nIn floats → `type` blocks */
static napi_value js_quantize(napi_env env, napi_callback_info info) {
  napi_value a[6];
  if (!get_args(env, info, 6, a)) return NULL;
  char name[32];
  size_t nl;
  if (napi_get_value_string_utf8(env, a[5], name, sizeof name, &nl) != napi_ok) return fail(env, "grok-native: %s", "isa must be a string");
  int isa = gn_isa_from_name(name);
  if (isa < 0 || !gn_cpu_can_run(isa)) return fail(env, "grok-native: quantize: this CPU does not run level '%s'", name);
  int64_t type, n_in, rows;
  void *x, *dst;
  size_t xl, dl;
  if (!get_int(env, a[0], "type", 0, 255, &type) || !get_typed(env, a[1], napi_float32_array, "x", &x, &xl) ||
      !get_int(env, a[2], "nIn", 1, INT32_MAX, &n_in) || !get_int(env, a[3], "rows", 0, INT32_MAX, &rows) ||
      !get_typed(env, a[4], napi_uint8_array, "dst", &dst, &dl))
    return NULL;
  return status(env, gn_quantize(isa, (int)type, x, xl, (int)n_in, (int)rows, dst, dl));
}

/* quantizeWeighted(type, x: Float32Array, nIn, rows, dst: Uint8Array, isaName, weights: Float32Array): quantisation
 * with an importance matrix (weights: nIn values, the same for every row; gn_quantize_weighted's types) */
static napi_value js_quantize_weighted(napi_env env, napi_callback_info info) {
  napi_value a[7];
  if (!get_args(env, info, 7, a)) return NULL;
  char name[32];
  size_t nl;
  if (napi_get_value_string_utf8(env, a[5], name, sizeof name, &nl) != napi_ok) return fail(env, "grok-native: %s", "isa must be a string");
  int isa = gn_isa_from_name(name);
  if (isa < 0 || !gn_cpu_can_run(isa)) return fail(env, "grok-native: quantizeWeighted: this CPU does not run level '%s'", name);
  int64_t type, n_in, rows;
  void *x, *dst, *w;
  size_t xl, dl, wl;
  if (!get_int(env, a[0], "type", 0, 255, &type) || !get_typed(env, a[1], napi_float32_array, "x", &x, &xl) ||
      !get_int(env, a[2], "nIn", 1, INT32_MAX, &n_in) || !get_int(env, a[3], "rows", 0, INT32_MAX, &rows) ||
      !get_typed(env, a[4], napi_uint8_array, "dst", &dst, &dl) || !get_typed(env, a[6], napi_float32_array, "weights", &w, &wl))
    return NULL;
  return status(env, gn_quantize_weighted(isa, (int)type, x, xl, (int)n_in, (int)rows, dst, dl, w, wl));
}

/* dequantize(type, src: Uint8Array, n, out: Float32Array): q8_0 / f16 / bf16 / f32 values as floats */
static napi_value js_dequantize(napi_env env, napi_callback_info info) {
  napi_value a[4];
  if (!get_args(env, info, 4, a)) return NULL;
  int64_t type, n;
  void *src, *out;
  size_t sl, ol;
  if (!get_int(env, a[0], "type", 0, 255, &type) || !get_typed(env, a[1], napi_uint8_array, "src", &src, &sl) ||
      !get_int(env, a[2], "n", 0, INT64_C(1) << 52, &n) || !get_typed(env, a[3], napi_float32_array, "out", &out, &ol))
    return NULL;
  return status(env, gn_dequantize((int)type, src, sl, (size_t)n, out, ol));
}

/* The checkpoint matrix arguments shared by xai8Rows and xai8Q8_0: q, scales, nIn, nOut, groups, r0, count. */
typedef struct {
  void *q, *sc;
  size_t ql, sl;
  int64_t n_in, n_out, groups, r0, count;
} xai8_args;

static int get_xai8(napi_env env, const napi_value *a, xai8_args *x) {
  return get_typed(env, a[0], napi_int8_array, "q", &x->q, &x->ql) && get_typed(env, a[1], napi_uint16_array, "scales", &x->sc, &x->sl) &&
         get_int(env, a[2], "nIn", 1, INT32_MAX, &x->n_in) && get_int(env, a[3], "nOut", 1, INT32_MAX, &x->n_out) &&
         get_int(env, a[4], "groups", 1, INT32_MAX, &x->groups) && get_int(env, a[5], "r0", 0, INT32_MAX, &x->r0) &&
         get_int(env, a[6], "count", 0, INT32_MAX, &x->count);
}

/* xai8Rows(q: Int8Array, scales: Uint16Array, nIn, nOut, groups, r0, count, out: Float32Array) */
static napi_value js_xai8_rows(napi_env env, napi_callback_info info) {
  napi_value a[8];
  xai8_args x;
  void *out;
  size_t ol;
  if (!get_args(env, info, 8, a) || !get_xai8(env, a, &x) || !get_typed(env, a[7], napi_float32_array, "out", &out, &ol)) return NULL;
  return status(env, gn_xai8_rows(x.q, x.ql, x.sc, x.sl, (int)x.n_in, (int)x.n_out, (int)x.groups, (int)x.r0, (int)x.count, out, ol));
}

/* xai8Q8_0(q, scales, nIn, nOut, groups, r0, count, dst: Uint8Array, vals: Float32Array | undefined) → blocks that
 * kept the checkpoint's levels */
static napi_value js_xai8_q8_0(napi_env env, napi_callback_info info) {
  napi_value a[9], r;
  xai8_args x;
  void *dst, *vals = NULL;
  size_t dl, vl = 0;
  napi_valuetype vt;
  if (!get_args(env, info, 9, a) || !get_xai8(env, a, &x) || !get_typed(env, a[7], napi_uint8_array, "dst", &dst, &dl)) return NULL;
  if (napi_typeof(env, a[8], &vt) != napi_ok) return fail(env, "grok-native: %s", "xai8Q8_0: vals");
  if (vt != napi_undefined && vt != napi_null) {
    if (!get_typed(env, a[8], napi_float32_array, "vals", &vals, &vl)) return NULL;
    if (vl < (size_t)x.count * (size_t)x.n_in) return fail(env, "grok-native: %s", "xai8Q8_0: vals is too short");
  }
  const long long kept = gn_xai8_q8_0(x.q, x.ql, x.sc, x.sl, (int)x.n_in, (int)x.n_out, (int)x.groups, (int)x.r0, (int)x.count, dst, dl, vals);
  if (kept < 0) return status(env, GN_EINVAL);
  CHECK(env, napi_create_double(env, (double)kept, &r));
  return r;
}

/* xai8Quantize(q, scales, nIn, nOut, groups, r0, count, dst: Uint8Array, type, isaName, weights: Float32Array | undefined) */
static napi_value js_xai8_quantize(napi_env env, napi_callback_info info) {
  napi_value a[11];
  xai8_args x;
  void *dst, *w = NULL;
  size_t dl, wl = 0;
  int64_t type;
  char name[32];
  size_t nl;
  napi_valuetype vt;
  if (!get_args(env, info, 11, a) || !get_xai8(env, a, &x) || !get_typed(env, a[7], napi_uint8_array, "dst", &dst, &dl) ||
      !get_int(env, a[8], "type", 0, 255, &type))
    return NULL;
  if (napi_get_value_string_utf8(env, a[9], name, sizeof name, &nl) != napi_ok) return fail(env, "grok-native: %s", "isa must be a string");
  const int isa = gn_isa_from_name(name);
  if (isa < 0 || !gn_cpu_can_run(isa)) return fail(env, "grok-native: xai8Quantize: this CPU does not run level '%s'", name);
  if (napi_typeof(env, a[10], &vt) != napi_ok) return fail(env, "grok-native: %s", "xai8Quantize: weights");
  if (vt != napi_undefined && vt != napi_null && !get_typed(env, a[10], napi_float32_array, "weights", &w, &wl)) return NULL;
  return status(env, gn_xai8_quantize(isa, (int)type, x.q, x.ql, x.sc, x.sl, (int)x.n_in, (int)x.n_out, (int)x.groups, (int)x.r0, (int)x.count,
                                      dst, dl, w, wl));
}

/* gaussFill(out: Float32Array, state: Uint32Array [4], scale) */
static napi_value js_gauss_fill(napi_env env, napi_callback_info info) {
  napi_value a[3];
  if (!get_args(env, info, 3, a)) return NULL;
  void *out, *st;
  size_t n, sl;
  double scale;
  if (!get_typed(env, a[0], napi_float32_array, "out", &out, &n) || !get_typed(env, a[1], napi_uint32_array, "state", &st, &sl))
    return NULL;
  if (sl != 4) return fail(env, "grok-native: %s", "gaussFill: the state is 4 words");
  if (napi_get_value_double(env, a[2], &scale) != napi_ok) return fail(env, "grok-native: %s", "gaussFill: scale must be a number");
  gn_gauss_fill(out, n, st, scale);
  return NULL;
}

/* ---- information ------------------------------------------------------------------------------------ */

static napi_value str(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

/* info() → { best, levels: [names this CPU runs], features, types: [[id, name, blockSize, blockBytes]…] } */
static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, levels, types;
  CHECK(env, napi_create_object(env, &o));
  CHECK(env, napi_set_named_property(env, o, "best", str(env, gn_isa_name(gn_cpu_best_isa()))));
  CHECK(env, napi_create_array(env, &levels));
  uint32_t n = 0;
  for (int i = 0; i < GN_ISA_COUNT; i++)
    if (gn_cpu_can_run(i)) CHECK(env, napi_set_element(env, levels, n++, str(env, gn_isa_name(i))));
  CHECK(env, napi_set_named_property(env, o, "levels", levels));
  CHECK(env, napi_set_named_property(env, o, "features", str(env, gn_cpu_features())));
  CHECK(env, napi_create_array(env, &types));
  for (int i = 0; i < gn_type_count; i++) {
    napi_value t;
    CHECK(env, napi_create_array(env, &t));
    CHECK(env, napi_set_element(env, t, 0, num(env, gn_types[i].id)));
    CHECK(env, napi_set_element(env, t, 1, str(env, gn_types[i].name)));
    CHECK(env, napi_set_element(env, t, 2, num(env, gn_types[i].block_size)));
    CHECK(env, napi_set_element(env, t, 3, num(env, gn_types[i].block_bytes)));
    CHECK(env, napi_set_element(env, types, (uint32_t)i, t));
  }
  CHECK(env, napi_set_named_property(env, o, "types", types));
  return o;
}

/* ---- reads on I/O threads (io.h): the expert cache's way to disk ------------------------------------- */

static void io_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  gn_io_unref(data);
}

static gn_io *get_io(napi_env env, napi_value v) { return get_tagged(env, v, &IO_TAG, "an I/O pool"); }

/* (pool, ticket) arguments: 1, or 0 with a JavaScript error thrown. */
static int io_ticket_args(napi_env env, napi_callback_info info, gn_io **io, int64_t *ticket) {
  napi_value a[2];
  if (!get_args(env, info, 2, a) || !(*io = get_io(env, a[0]))) return 0;
  return get_int(env, a[1], "ticket", 1, INT64_C(1) << 53, ticket);
}

/* ioCreate(threads) → pool */
static napi_value js_io_create(napi_env env, napi_callback_info info) {
  napi_value a[1], ext;
  if (!get_args(env, info, 1, a)) return NULL;
  int64_t threads;
  if (!get_int(env, a[0], "threads", 1, 64, &threads)) return NULL;
  gn_io *io = gn_io_create((int)threads);
  if (!io) return fail(env, "grok-native: %s", "cannot start the I/O threads");
  if (napi_create_external(env, io, io_finalize, NULL, &ext) != napi_ok) {
    gn_io_unref(io);
    return fail(env, "grok-native: %s", "cannot create the I/O pool object");
  }
  CHECK(env, napi_type_tag_object(env, ext, &IO_TAG));
  return ext;
}

/* ioOpen(pool, path) → [file index, direct] ; a negative index is −errno */
static napi_value js_io_open(napi_env env, napi_callback_info info) {
  napi_value a[2], out, idx, dir;
  if (!get_args(env, info, 2, a)) return NULL;
  gn_io *io = get_io(env, a[0]);
  if (!io) return NULL;
  size_t n;
  CHECK(env, napi_get_value_string_utf8(env, a[1], NULL, 0, &n));
  char *path = malloc(n + 1);
  if (!path) return fail(env, "grok-native: %s", "out of memory");
  napi_get_value_string_utf8(env, a[1], path, n + 1, &n);
  int direct = 0;
  int r = gn_io_open(io, path, &direct);
  free(path);
  CHECK(env, napi_create_int32(env, r, &idx));
  CHECK(env, napi_get_boolean(env, direct != 0, &dir));
  CHECK(env, napi_create_array_with_length(env, 2, &out));
  CHECK(env, napi_set_element(env, out, 0, idx));
  CHECK(env, napi_set_element(env, out, 1, dir));
  return out;
}

typedef struct {
  gn_io *io;
  size_t bytes;
} io_buffer;

static void io_buffer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  io_buffer *b = hint;
  gn_io_drain(b->io); /* a read still in flight writes here: wait for it before the memory goes */
  gn_free(data, b->bytes);
  gn_io_unref(b->io);
  free(b);
}

/* ioAlloc(pool, bytes) → ArrayBuffer (page-aligned, zero-filled; freed only once no read of the pool is in flight) */
static napi_value js_io_alloc(napi_env env, napi_callback_info info) {
  napi_value a[2], ab;
  if (!get_args(env, info, 2, a)) return NULL;
  gn_io *io = get_io(env, a[0]);
  if (!io) return NULL;
  int64_t bytes;
  if (!get_int(env, a[1], "bytes", 1, INT64_C(1) << 52, &bytes)) return NULL;
  io_buffer *b = malloc(sizeof *b);
  void *p = b ? gn_alloc((size_t)bytes) : NULL;
  if (!p) {
    free(b);
    return fail(env, "grok-native: %s", "expert cache: out of memory");
  }
  b->io = io;
  b->bytes = (size_t)bytes;
  gn_io_ref(io);
  /* Fault the pages in on the I/O threads while the model loads, not at the first read into them. */
  gn_io_populate(io, p, (size_t)bytes);
  if (napi_create_external_arraybuffer(env, p, (size_t)bytes, io_buffer_finalize, b, &ab) != napi_ok) {
    gn_free(p, (size_t)bytes);
    gn_io_unref(io);
    free(b);
    return fail(env, "grok-native: %s", "cannot create an external ArrayBuffer (external buffers disallowed in this runtime?)");
  }
  return ab;
}

/* ioSubmit(pool, file, offset, length, need, dst: Uint8Array) → ticket > 0, or −errno */
static napi_value js_io_submit(napi_env env, napi_callback_info info) {
  napi_value a[6], out;
  if (!get_args(env, info, 6, a)) return NULL;
  gn_io *io = get_io(env, a[0]);
  if (!io) return NULL;
  int64_t file, offset, len, need;
  if (!get_int(env, a[1], "file", 0, 1 << 30, &file) || !get_int(env, a[2], "offset", 0, INT64_C(1) << 53, &offset) ||
      !get_int(env, a[3], "length", 0, INT64_C(1) << 52, &len) || !get_int(env, a[4], "need", 0, len, &need))
    return NULL;
  void *dst;
  size_t n;
  if (!get_typed(env, a[5], napi_uint8_array, "dst", &dst, &n)) return NULL;
  if ((uint64_t)len > n) return fail(env, "grok-native: %s", "ioSubmit: the read is longer than its buffer");
  int64_t t = gn_io_submit(io, (int)file, (uint64_t)offset, (uint64_t)len, (uint64_t)need, dst);
  CHECK(env, napi_create_double(env, (double)t, &out));
  return out;
}

/* ioWait(pool, ticket) → [errno (0: done), file offset where it failed] */
static napi_value js_io_wait(napi_env env, napi_callback_info info) {
  napi_value out, e, at;
  gn_io *io;
  int64_t ticket;
  if (!io_ticket_args(env, info, &io, &ticket)) return NULL;
  uint64_t where = 0;
  int err = gn_io_wait(io, ticket, &where);
  CHECK(env, napi_create_int32(env, err, &e));
  CHECK(env, napi_create_double(env, (double)where, &at));
  CHECK(env, napi_create_array_with_length(env, 2, &out));
  CHECK(env, napi_set_element(env, out, 0, e));
  CHECK(env, napi_set_element(env, out, 1, at));
  return out;
}

/* ioDone(pool, ticket) → boolean */
static napi_value js_io_done(napi_env env, napi_callback_info info) {
  napi_value out;
  gn_io *io;
  int64_t ticket;
  if (!io_ticket_args(env, info, &io, &ticket)) return NULL;
  CHECK(env, napi_get_boolean(env, gn_io_done(io, ticket) != 0, &out));
  return out;
}

/* ioCancel(pool, ticket) */
static napi_value js_io_cancel(napi_env env, napi_callback_info info) {
  gn_io *io;
  int64_t ticket;
  if (!io_ticket_args(env, info, &io, &ticket)) return NULL;
  gn_io_cancel(io, ticket);
  return NULL;
}

/* ioTotals(pool) → [bytes read, of them O_DIRECT, thread-seconds reading] */
static napi_value js_io_totals(napi_env env, napi_callback_info info) {
  napi_value a[1], out, v;
  if (!get_args(env, info, 1, a)) return NULL;
  gn_io *io = get_io(env, a[0]);
  if (!io) return NULL;
  uint64_t bytes, direct, busy;
  gn_io_totals(io, &bytes, &direct, &busy);
  CHECK(env, napi_create_array_with_length(env, 3, &out));
  CHECK(env, napi_create_double(env, (double)bytes, &v));
  CHECK(env, napi_set_element(env, out, 0, v));
  CHECK(env, napi_create_double(env, (double)direct, &v));
  CHECK(env, napi_set_element(env, out, 1, v));
  CHECK(env, napi_create_double(env, (double)busy / 1e9, &v));
  CHECK(env, napi_set_element(env, out, 2, v));
  return out;
}

/* ioClose(pool): finish queued reads, stop the threads, close the files */
static napi_value js_io_close(napi_env env, napi_callback_info info) {
  napi_value a[1];
  if (!get_args(env, info, 1, a)) return NULL;
  gn_io *io = get_io(env, a[0]);
  if (!io) return NULL;
  gn_io_close(io);
  return NULL;
}

NAPI_MODULE_INIT() {
  const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
    {"info", js_info},           {"create", js_create},         {"destroy", js_destroy},     {"matmulRows", js_matmul_rows},
    {"matmulXai8", js_matmul_xai8}, {"getRow", js_get_row},     {"attention", js_attention}, {"gelu", js_gelu},
    {"alloc", js_alloc},         {"mapFile", js_map_file},      {"mapView", js_map_view},    {"mapAdvise", js_map_advise},
    {"mapLock", js_map_lock},    {"mapPopulate", js_map_populate}, {"mapStat", js_map_stat}, {"mapRelease", js_map_release}, {"mapLive", js_map_live}, {"matmulMany", js_matmul_many}, {"setAffinity", js_set_affinity},
    {"quantize", js_quantize},   {"gaussFill", js_gauss_fill}, {"dequantize", js_dequantize}, {"xai8Rows", js_xai8_rows}, {"xai8Q8_0", js_xai8_q8_0}, {"quantizeWeighted", js_quantize_weighted}, {"xai8Quantize", js_xai8_quantize}, {"adviseHugePages", js_advise_huge},
    {"ioCreate", js_io_create}, {"ioOpen", js_io_open}, {"ioAlloc", js_io_alloc}, {"ioSubmit", js_io_submit}, {"ioWait", js_io_wait}, {"ioDone", js_io_done}, {"ioCancel", js_io_cancel}, {"ioTotals", js_io_totals}, {"ioClose", js_io_close},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return NULL;
  }
  return exports;
}
