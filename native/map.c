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
  gn_file_id id;         /* the file when mapped */
  pthread_mutex_t mu;    /* guards fd and released */
  int fd;                /* kept open: fstat of the mapped file itself, whatever its path now names */
  _Atomic int released;
};

static _Atomic long live_maps;

static gn_file_id file_id(const struct stat *st) {
#ifdef __APPLE__
  const struct timespec t = st->st_mtimespec;
#else
  const struct timespec t = st->st_mtim;
#endif
  return (gn_file_id){(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
                      (uint64_t)t.tv_sec * UINT64_C(1000000000) + (uint64_t)t.tv_nsec};
}

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
  m->id = file_id(&st);
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
  m->fd = fd;
  pthread_mutex_init(&m->mu, NULL);
  atomic_store(&m->refs, 1);
  atomic_fetch_add(&live_maps, 1);
  return m;
}

const uint8_t *gn_map_data(const gn_map *m) { return m->base; }
size_t gn_map_size(const gn_map *m) { return m->size; }
void gn_map_ref(gn_map *m) { atomic_fetch_add(&m->refs, 1); }
gn_file_id gn_map_id(const gn_map *m) { return m->id; }
long gn_map_live(void) { return atomic_load(&live_maps); }

int gn_map_stat(gn_map *m, gn_file_id *now) {
  int r = ESTALE;
  pthread_mutex_lock(&m->mu);
  if (!atomic_load(&m->released)) {
    struct stat st;
    r = fstat(m->fd, &st) == 0 ? 0 : errno;
    if (r == 0) *now = file_id(&st);
  }
  pthread_mutex_unlock(&m->mu);
  return r;
}

void gn_map_release(gn_map *m) {
  pthread_mutex_lock(&m->mu);
  if (!atomic_load(&m->released)) {
    atomic_store(&m->released, 1);
    /* Zero pages over the same addresses (one atomic mmap call): the file is no longer mapped, and a view
     * still alive reads zeros. Should that fail (no memory for the new mapping), the file stays mapped
     * until the last view goes, as before. */
    if (m->base && mmap(m->base, m->size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
      /* left mapped */
    }
    close(m->fd);
    m->fd = -1;
    atomic_fetch_sub(&live_maps, 1);
  }
  pthread_mutex_unlock(&m->mu);
}

void gn_map_unref(gn_map *m) {
  if (atomic_fetch_sub(&m->refs, 1) != 1) return;
  gn_map_release(m);
  if (m->base) munmap(m->base, m->size);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

/* [off, off + len) rounded out to whole pages, clipped to the mapping. */
static int page_range(const gn_map *m, size_t off, size_t len, uint8_t **start, size_t *bytes) {
  if (atomic_load(&m->released)) return ESTALE;
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

/* Whether the mapped file is still as it was mapped (and the mapping not released). */
static int unchanged(gn_map *m) {
  gn_file_id now;
  if (gn_map_stat(m, &now) != 0) return 0;
  return now.dev == m->id.dev && now.ino == m->id.ino && now.size == m->id.size && now.mtime_ns == m->id.mtime_ns;
}

/* A chunk at a time, each after checking the file: touching a page past the end of a file that shrank
 * would raise SIGBUS and kill the process, so no page is touched here. MADV_POPULATE_READ reports such a
 * page as EFAULT instead (then stop); kernels before 5.14 lack it (EINVAL): read-ahead of the rest. */
static void populate(populate_job *j) {
  const size_t chunk = (size_t)64 << 20;
  for (size_t done = 0; done < j->n;) {
    const size_t c = j->n - done < chunk ? j->n - done : chunk;
    if (!unchanged(j->m)) return;
    if (madvise(j->p + done, c, MADV_POPULATE_READ) != 0) {
      if (errno == EINVAL) madvise(j->p + done, j->n - done, MADV_WILLNEED);
      return;
    }
    done += c;
  }
}

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
    populate(j);
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

int gn_populate(void *p, size_t bytes) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
  return madvise(p, bytes, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
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
