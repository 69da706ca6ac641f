/*
 * Thread pool (pool.h). A job is published by bumping the 64-bit ticket's generation (high half) with its
 * chunk counter (low half) reset; workers claim chunks with a compare-and-swap that also checks the
 * generation, so a worker that wakes late can never run a chunk of the next job with the old one's
 * arguments. The caller works on chunks too, then waits for the stragglers.
 */
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define GN_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define GN_PAUSE() __asm__ __volatile__("yield")
#else
#define GN_PAUSE() ((void)0)
#endif

/* The two counters every thread writes per chunk each get a cache line of their own, apart from the
 * read-mostly job description, so claiming a chunk does not invalidate the line the others read. */
struct gn_pool {
  _Alignas(64) _Atomic uint64_t ticket; /* generation << 32 | next chunk */
  _Alignas(64) _Atomic int done;        /* chunks finished in the current job */
  _Alignas(64) _Atomic int sleepers;
  _Atomic int stop;
  gn_task_fn *fn; /* the current job; stable while any of its chunks is unclaimed or running */
  void *arg;
  int n_chunks;
  int threads, spin_us;
  pthread_t *tids;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

typedef struct {
  gn_pool *pool;
  int index;
} worker_arg;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Claim and run chunks of generation `gen` until none is left. */
static void work(gn_pool *p, uint32_t gen, int thread) {
  for (;;) {
    uint64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    if ((uint32_t)(t >> 32) != gen) return;
    const int c = (int)(uint32_t)t;
    if (c >= p->n_chunks) return;
    if (!atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire)) continue;
    p->fn(p->arg, c, thread);
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
  }
}

static void *worker_main(void *varg) {
  worker_arg a = *(worker_arg *)varg;
  free(varg);
  gn_pool *p = a.pool;
  uint32_t seen = (uint32_t)(atomic_load(&p->ticket) >> 32);
  for (;;) {
    uint32_t gen = seen;
    const double until = now_us() + p->spin_us;
    for (int i = 0;; i++) {
      gen = (uint32_t)(atomic_load_explicit(&p->ticket, memory_order_acquire) >> 32);
      if (gen != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
      GN_PAUSE();
      if ((i & 255) == 255 && now_us() > until) break;
    }
    if (gen == seen && !atomic_load(&p->stop)) {
      /* Dekker with gn_pool_run: announce, then re-check under the mutex before waiting. */
      pthread_mutex_lock(&p->mu);
      atomic_fetch_add(&p->sleepers, 1);
      while ((uint32_t)(atomic_load(&p->ticket) >> 32) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
      atomic_fetch_sub(&p->sleepers, 1);
      pthread_mutex_unlock(&p->mu);
      gen = (uint32_t)(atomic_load(&p->ticket) >> 32);
    }
    if (atomic_load(&p->stop)) return NULL;
    seen = gen;
    work(p, gen, a.index);
  }
}

gn_pool *gn_pool_create(int threads, int spin_us) {
  gn_pool *p = NULL;
  if (posix_memalign((void **)&p, 64, sizeof *p) != 0) return NULL;
  memset(p, 0, sizeof *p);
  p->threads = threads;
  p->spin_us = spin_us < 0 ? 0 : spin_us;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->tids = calloc((size_t)(threads > 1 ? threads - 1 : 1), sizeof(pthread_t));
  if (!p->tids) {
    free(p);
    return NULL;
  }
  for (int i = 1; i < threads; i++) {
    worker_arg *a = malloc(sizeof *a);
    if (!a || (a->pool = p, a->index = i, pthread_create(&p->tids[i - 1], NULL, worker_main, a)) != 0) {
      free(a);
      p->threads = i; /* the ones started so far */
      gn_pool_destroy(p);
      return NULL;
    }
  }
  return p;
}

void gn_pool_run(gn_pool *p, gn_task_fn *fn, void *arg, int n_chunks) {
  if (n_chunks <= 0) return;
  if (p->threads <= 1 || n_chunks == 1) {
    for (int c = 0; c < n_chunks; c++) fn(arg, c, 0);
    return;
  }
  p->fn = fn;
  p->arg = arg;
  p->n_chunks = n_chunks;
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  const uint32_t gen = (uint32_t)(atomic_load(&p->ticket) >> 32) + 1;
  atomic_store(&p->ticket, (uint64_t)gen << 32); /* seq_cst: ordered before the sleepers check */
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  work(p, gen, 0);
  while (atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks) GN_PAUSE();
}

#if defined(__linux__)
static int pin(pthread_t t, int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(t, sizeof set, &set);
}

int gn_pool_set_affinity(gn_pool *p, const int *cpus, int n) {
  int err = pin(pthread_self(), cpus[0]);
  for (int i = 1; i < p->threads && !err; i++) err = pin(p->tids[i - 1], cpus[i % n]);
  return err;
}
#else
int gn_pool_set_affinity(gn_pool *p, const int *cpus, int n) {
  (void)p;
  (void)cpus;
  (void)n;
  return ENOSYS;
}
#endif

void gn_pool_destroy(gn_pool *p) {
  if (!p) return;
  atomic_store(&p->stop, 1);
  pthread_mutex_lock(&p->mu);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->threads; i++) pthread_join(p->tids[i - 1], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->tids);
  free(p);
}
