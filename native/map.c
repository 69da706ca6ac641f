/*
 * File mappings (map.h). MAP_SHARED + PROT_READ: the pages are the page cache's own, so several processes
 * (or a restart) share them, memory use grows only with the pages touched, and the kernel can drop and
 * re-read them under memory pressure — a model larger than RAM runs, paged from disk.
 */
#define _GNU_SOURCE
#include "map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

void *gn_alloc(size_t bytes) {
  if (bytes == 0) return NULL;
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
  if (bytes >= ((size_t)2 << 20)) madvise(p, bytes, MADV_HUGEPAGE); /* fewer TLB misses when streaming weights */
#endif
  return p;
}

void gn_free(void *p, size_t bytes) {
  if (p) munmap(p, bytes);
}
