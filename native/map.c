/*
 * File mappings (map.h). MAP_SHARED + PROT_READ: the pages are the page cache's own, so several processes
 * (or a restart) share them, memory use grows only with the pages touched, and the kernel can drop and
 * re-read them under memory pressure — a model larger than RAM runs, paged from disk.
 */
#define _GNU_SOURCE
#include "map.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

struct gn_map {
  uint8_t *base;
  size_t size;
  _Atomic long refs;
};

gn_map *gn_map_open(const char *path, int *err) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    *err = errno;
    close(fd);
    return NULL;
  }
  gn_map *m = calloc(1, sizeof *m);
  if (!m) {
    *err = ENOMEM;
    close(fd);
    return NULL;
  }
  m->size = (size_t)st.st_size;
  if (m->size > 0) {
    void *p = mmap(NULL, m->size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      *err = errno;
      close(fd);
      free(m);
      return NULL;
    }
    m->base = p;
  }
  close(fd); /* the mapping keeps the file */
  atomic_store(&m->refs, 1);
  return m;
}

const uint8_t *gn_map_data(const gn_map *m) { return m->base; }
size_t gn_map_size(const gn_map *m) { return m->size; }
void gn_map_ref(gn_map *m) { atomic_fetch_add(&m->refs, 1); }

void gn_map_unref(gn_map *m) {
  if (atomic_fetch_sub(&m->refs, 1) != 1) return;
  if (m->base) munmap(m->base, m->size);
  free(m);
}

/* [off, off + len) rounded out to whole pages, clipped to the mapping. */
static int page_range(const gn_map *m, size_t off, size_t len, uint8_t **start, size_t *bytes) {
  if (!m->base || off > m->size || len > m->size - off) return EINVAL;
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t a = off / page * page, b = off + len;
  *start = m->base + a;
  *bytes = b - a;
  return 0;
}

int gn_map_advise(gn_map *m, size_t off, size_t len, int advice) {
  uint8_t *p;
  size_t n;
  if (len == 0) return 0;
  const int bad = page_range(m, off, len, &p, &n);
  if (bad) return bad;
  static const int flags[] = {MADV_NORMAL, MADV_WILLNEED, MADV_RANDOM, MADV_SEQUENTIAL, MADV_DONTNEED};
  if (advice < 0 || advice > 4) return EINVAL;
  return madvise(p, n, flags[advice]) == 0 ? 0 : errno;
}

int gn_map_lock(gn_map *m, size_t off, size_t len) {
  uint8_t *p;
  size_t n;
  if (len == 0) return 0;
  const int bad = page_range(m, off, len, &p, &n);
  if (bad) return bad;
  return mlock(p, n) == 0 ? 0 : errno;
}

/* One background thread for the whole process works through a queue of ranges, each holding a reference
 * on its mapping. It runs only when a core is otherwise idle (SCHED_IDLE): competing with the kernels'
 * threads for the first prefill cost more than the faults it saves. */
typedef struct populate_job {
  gn_map *m;
  uint8_t *p;
  size_t n;
  struct populate_job *next;
} populate_job;

static pthread_mutex_t pop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pop_cv = PTHREAD_COND_INITIALIZER;
static populate_job *pop_head, *pop_tail;
static int pop_started;

static void *populate_main(void *arg) {
  (void)arg;
#if defined(SCHED_IDLE) && defined(SYS_gettid)
  const struct sched_param idle = {0};
  if (sched_setscheduler((pid_t)syscall(SYS_gettid), SCHED_IDLE, &idle) != 0) setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
#endif
  for (;;) {
    pthread_mutex_lock(&pop_mu);
    while (!pop_head) pthread_cond_wait(&pop_cv, &pop_mu);
    populate_job *j = pop_head;
    pop_head = j->next;
    if (!pop_head) pop_tail = NULL;
    pthread_mutex_unlock(&pop_mu);
    if (madvise(j->p, j->n, MADV_POPULATE_READ) != 0) {
      /* older kernels: touch one byte per page */
      const size_t page = (size_t)sysconf(_SC_PAGESIZE);
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < j->n; i += page) sink ^= j->p[i];
      (void)sink;
    }
    gn_map_unref(j->m);
    free(j);
  }
  return NULL;
}

int gn_map_populate_async(gn_map *m, size_t off, size_t len) {
  uint8_t *p;
  size_t n;
  if (len == 0) return 0;
  const int bad = page_range(m, off, len, &p, &n);
  if (bad) return bad;
  populate_job *j = malloc(sizeof *j);
  if (!j) return ENOMEM;
  gn_map_ref(m);
  *j = (populate_job){m, p, n, NULL};
  pthread_mutex_lock(&pop_mu);
  if (!pop_started) {
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, populate_main, NULL) != 0) {
      pthread_attr_destroy(&a);
      pthread_mutex_unlock(&pop_mu);
      gn_map_unref(m);
      free(j);
      return EAGAIN;
    }
    pthread_attr_destroy(&a);
    pop_started = 1;
  }
  if (pop_tail) pop_tail->next = j;
  else pop_head = j;
  pop_tail = j;
  pthread_cond_signal(&pop_cv);
  pthread_mutex_unlock(&pop_mu);
  return 0;
}

void *gn_alloc(size_t bytes) {
  if (bytes == 0) return NULL;
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
  if (bytes >= ((size_t)2 << 20)) madvise(p, bytes, MADV_HUGEPAGE); /* fewer TLB misses when streaming weights */
#endif
  return p;
}

int gn_advise_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  const uintptr_t huge = (uintptr_t)2 << 20, a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + bytes) & ~(huge - 1);
  if (e <= a) return 0;
  return madvise((void *)a, e - a, MADV_HUGEPAGE) == 0 ? 0 : errno;
#else
  (void)p;
  (void)bytes;
  return 0;
#endif
}

void gn_free(void *p, size_t bytes) {
  if (p) munmap(p, bytes);
}
