/*
 * Run-time CPU detection: which isa.c copies this machine can run. x86: cpuid feature bits plus xgetbv,
 * because the OS must also save the wider registers (AVX-512 needs opmask and ZMM state enabled).
 * aarch64: NEON is baseline; dotprod comes from the kernel's hwcaps.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "gn.h"

#if defined(__x86_64__)
#include <cpuid.h>

typedef struct {
  int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16, avx_vnni;
} x86_features;

static x86_features x86_detect(void) {
  x86_features f = {0};
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  f.fma = (c >> 12) & 1;
  f.f16c = (c >> 29) & 1;
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = ((unsigned long long)hi << 32) | lo;
  }
  const int os_avx = avx && (xcr0 & 6) == 6, os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
  if (!os_avx) f.fma = f.f16c = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = os_avx && ((b >> 5) & 1);
    f.avx512f = os_avx512 && ((b >> 16) & 1);
    f.avx512dq = os_avx512 && ((b >> 17) & 1);
    f.avx512bw = os_avx512 && ((b >> 30) & 1);
    f.avx512vl = os_avx512 && ((b >> 31) & 1);
    f.avx512vnni = os_avx512 && ((c >> 11) & 1);
  }
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    f.avx_vnni = os_avx && ((a >> 4) & 1);
    f.avx512bf16 = os_avx512 && ((a >> 5) & 1);
  }
  return f;
}

/* Detected once: cpuid traps to the hypervisor in a VM (microseconds), and the quantisers ask per call. */
static x86_features x86_cached;
static pthread_once_t x86_once = PTHREAD_ONCE_INIT;
static void x86_init(void) { x86_cached = x86_detect(); }

int gn_cpu_can_run(int isa) {
  pthread_once(&x86_once, x86_init);
  const x86_features f = x86_cached;
  switch (isa) {
  case GN_ISA_SCALAR: return 1;
  case GN_ISA_AVX2: return f.avx2 && f.fma && f.f16c;
  case GN_ISA_AVX512: return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni;
  case GN_ISA_AVX512_BF16: return gn_cpu_can_run(GN_ISA_AVX512) && f.avx512bf16;
  default: return 0;
  }
}

const char *gn_cpu_features(void) {
  static char buf[256];
  pthread_once(&x86_once, x86_init);
  const x86_features f = x86_cached;
  buf[0] = 0;
  const struct { int on; const char *name; } list[] = {
    {f.avx2, "avx2"}, {f.fma, "fma"}, {f.f16c, "f16c"}, {f.avx512f, "avx512f"}, {f.avx512dq, "avx512dq"},
    {f.avx512bw, "avx512bw"}, {f.avx512vl, "avx512vl"}, {f.avx512vnni, "avx512vnni"}, {f.avx512bf16, "avx512bf16"},
    {f.avx_vnni, "avxvnni"},
  };
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
    if (!list[i].on) continue;
    if (buf[0]) strcat(buf, " ");
    strcat(buf, list[i].name);
  }
  return buf;
}

#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif

int gn_cpu_can_run(int isa) {
  switch (isa) {
  case GN_ISA_SCALAR:
  case GN_ISA_NEON: return 1;
  case GN_ISA_NEON_DOT: return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
  default: return 0;
  }
}

const char *gn_cpu_features(void) {
  static char buf[64];
  strcpy(buf, "neon");
  if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) strcat(buf, " dotprod");
  if (getauxval(AT_HWCAP2) & HWCAP2_I8MM) strcat(buf, " i8mm");
  return buf;
}

#else
int gn_cpu_can_run(int isa) { return isa == GN_ISA_SCALAR; }
const char *gn_cpu_features(void) { return ""; }
#endif

int gn_cpu_best_isa(void) {
  static const int order[] = {GN_ISA_AVX512_BF16, GN_ISA_AVX512, GN_ISA_AVX2, GN_ISA_NEON_DOT, GN_ISA_NEON};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
    if (gn_cpu_can_run(order[i])) return order[i];
  return GN_ISA_SCALAR;
}

static const char *const isa_names[GN_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon", "neon_dot", "avx512_bf16"};

const char *gn_isa_name(int isa) { return isa >= 0 && isa < GN_ISA_COUNT ? isa_names[isa] : "?"; }

int gn_isa_from_name(const char *name) {
  for (int i = 0; i < GN_ISA_COUNT; i++)
    if (strcmp(name, isa_names[i]) == 0) return i;
  return -1;
}
