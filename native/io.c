/* Reads on I/O threads: see io.h. */
#define _GNU_SOURCE
#include "io.h"
#include "map.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK ((uint64_t)8 << 20) /* bytes one thread reads at a time (a multiple of GN_IO_ALIGN) */
#define TICKETS 1024              /* reads in flight at most */
#define MAX_FILES 4096

typedef struct {
  int fd, dfd; /* buffered; O_DIRECT or −1 (set to −1 once the filesystem refuses a direct read) */
  int dfd_open; /* the O_DIRECT descriptor to close, or −1 */
} io_file;

typedef struct {
  int64_t ticket; /* 0: free */
  int remaining;  /* chunks not yet done */
  int err;        /* the first error; ECANCELED after gn_io_cancel */
  uint64_t at;
} io_ticket;

typedef struct {
  int64_t ticket;
  int file;
  uint64_t offset, len, need; /* need: bytes of this chunk that must be read */
  uint8_t *dst;
} io_chunk;

struct gn_io {
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  pthread_t *threads;
  int nthreads, stop;
  int refs;            /* gn_io_create's, plus one per buffer of gn_io_alloc */
  size_t inflight;     /* chunks queued or being read */
  io_file *files;
  int nfiles;
  io_ticket tickets[TICKETS];
  int64_t next_ticket;
  io_chunk *queue; /* ring */
  size_t qcap, qhead, qlen;
  uint64_t bytes, direct_bytes, busy_ns;
};

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Reads up to len bytes at off; returns bytes read (stopping at the file's end) or −errno. A direct read
 * that comes back short at an unaligned count has met the file's end (the next offset could not be read
 * directly anyway). */
static int64_t read_full(int fd, uint8_t *dst, uint64_t len, uint64_t off, int direct) {
  uint64_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, dst + got, (size_t)(len - got), (off_t)(off + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -(int64_t)errno;
    }
    if (n == 0) break;
    got += (uint64_t)n;
    if (direct && got % GN_IO_ALIGN != 0) break;
  }
  return (int64_t)got;
}

/* One chunk: 0 or an errno; *direct set when it went through O_DIRECT. */
static int read_chunk(gn_io *io, const io_chunk *c, int *direct) {
  io_file *f = &io->files[c->file];
  *direct = 0;
  int64_t got = -EINVAL;
  int dfd = __atomic_load_n(&f->dfd, __ATOMIC_RELAXED);
  if (dfd >= 0 && c->offset % GN_IO_ALIGN == 0 && c->len % GN_IO_ALIGN == 0 && (uintptr_t)c->dst % GN_IO_ALIGN == 0) {
    got = read_full(dfd, c->dst, c->len, c->offset, 1);
    if (got == -EINVAL) __atomic_store_n(&f->dfd, -1, __ATOMIC_RELAXED); /* this filesystem refuses it: buffered from now on (the fd stays open until destroy) */
    else *direct = 1;
  }
  if (got == -EINVAL && !*direct) {
    got = read_full(f->fd, c->dst, c->len, c->offset, 0);
#ifdef POSIX_FADV_DONTNEED
    if (got > 0) posix_fadvise(f->fd, (off_t)c->offset, (off_t)got, POSIX_FADV_DONTNEED);
#endif
  }
  if (got < 0) return (int)-got;
  if ((uint64_t)got < c->need) return ENODATA;
  return 0;
}

static void *worker(void *arg) {
  gn_io *io = arg;
  pthread_mutex_lock(&io->mu);
  for (;;) {
    while (io->qlen == 0 && !io->stop) pthread_cond_wait(&io->work, &io->mu);
    if (io->qlen == 0 && io->stop) break;
    io_chunk c = io->queue[io->qhead];
    io->qhead = (io->qhead + 1) % io->qcap;
    io->qlen--;
    if (c.file < 0) { /* gn_io_populate: fault the pages in, no ticket */
      pthread_mutex_unlock(&io->mu);
      if (gn_populate(c.dst, (size_t)c.len) != 0)
        for (uint64_t off = 0; off < c.len; off += 4096) ((volatile uint8_t *)c.dst)[off] = 0;
      pthread_mutex_lock(&io->mu);
      if (--io->inflight == 0) pthread_cond_broadcast(&io->done);
      continue;
    }
    io_ticket *t = &io->tickets[c.ticket % TICKETS];
    int skip = t->err != 0; /* an earlier chunk of this read failed: the read has failed */
    pthread_mutex_unlock(&io->mu);
    int err = 0, direct = 0;
    uint64_t t0 = now_ns();
    if (!skip) err = read_chunk(io, &c, &direct);
    uint64_t dt = now_ns() - t0;
    pthread_mutex_lock(&io->mu);
    io->busy_ns += dt;
    if (!skip && !err) {
      io->bytes += c.len;
      if (direct) io->direct_bytes += c.len;
    }
    if (err && !t->err) {
      t->err = err;
      t->at = c.offset;
    }
    io->inflight--;
    if (--t->remaining == 0 || io->inflight == 0) pthread_cond_broadcast(&io->done);
  }
  pthread_mutex_unlock(&io->mu);
  return NULL;
}

gn_io *gn_io_create(int threads) {
  if (threads < 1 || threads > 64) return NULL;
  gn_io *io = calloc(1, sizeof *io);
  if (!io) return NULL;
  io->threads = calloc((size_t)threads, sizeof(pthread_t));
  io->files = calloc(MAX_FILES, sizeof(io_file));
  io->qcap = 4096;
  io->queue = malloc(io->qcap * sizeof(io_chunk));
  if (!io->threads || !io->files || !io->queue) goto fail;
  pthread_mutex_init(&io->mu, NULL);
  pthread_cond_init(&io->work, NULL);
  pthread_cond_init(&io->done, NULL);
  io->next_ticket = 1;
  io->refs = 1;
  for (int i = 0; i < threads; i++) {
    if (pthread_create(&io->threads[i], NULL, worker, io) != 0) {
      io->nthreads = i;
      gn_io_unref(io);
      return NULL;
    }
    io->nthreads = i + 1;
  }
  return io;
fail:
  free(io->threads);
  free(io->files);
  free(io->queue);
  free(io);
  return NULL;
}

void gn_io_drain(gn_io *io) {
  pthread_mutex_lock(&io->mu);
  while (io->inflight > 0) pthread_cond_wait(&io->done, &io->mu);
  pthread_mutex_unlock(&io->mu);
}

void gn_io_close(gn_io *io) {
  pthread_mutex_lock(&io->mu);
  if (io->stop) {
    pthread_mutex_unlock(&io->mu);
    return;
  }
  io->stop = 1; /* the threads finish what is queued first: no buffer is written after close */
  pthread_cond_broadcast(&io->work);
  pthread_mutex_unlock(&io->mu);
  for (int i = 0; i < io->nthreads; i++) pthread_join(io->threads[i], NULL);
  io->nthreads = 0;
  for (int i = 0; i < io->nfiles; i++) {
    close(io->files[i].fd);
    if (io->files[i].dfd_open >= 0) close(io->files[i].dfd_open);
  }
  io->nfiles = 0;
}

void gn_io_ref(gn_io *io) { __atomic_add_fetch(&io->refs, 1, __ATOMIC_ACQ_REL); }

void gn_io_unref(gn_io *io) {
  if (__atomic_sub_fetch(&io->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  gn_io_close(io);
  pthread_mutex_destroy(&io->mu);
  pthread_cond_destroy(&io->work);
  pthread_cond_destroy(&io->done);
  free(io->threads);
  free(io->files);
  free(io->queue);
  free(io);
}

int gn_io_open(gn_io *io, const char *path, int *direct) {
  *direct = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return -EINVAL;
  }
  int dfd = -1;
#ifdef O_DIRECT
  dfd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
  if (dfd >= 0) {
    struct stat dst;
    if (fstat(dfd, &dst) != 0 || dst.st_ino != st.st_ino || dst.st_dev != st.st_dev) { /* replaced in between */
      close(dfd);
      dfd = -1;
    }
  }
#endif
  pthread_mutex_lock(&io->mu);
  if (io->stop || io->nfiles == MAX_FILES) {
    int e = io->stop ? EBADF : EMFILE;
    pthread_mutex_unlock(&io->mu);
    close(fd);
    if (dfd >= 0) close(dfd);
    return -e;
  }
  int i = io->nfiles++;
  io->files[i].fd = fd;
  io->files[i].dfd = dfd;
  io->files[i].dfd_open = dfd;
  pthread_mutex_unlock(&io->mu);
#ifdef POSIX_FADV_RANDOM
  /* Buffered reads of this file are one-off: no readahead beyond what is asked. */
  posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
#endif
  *direct = dfd >= 0;
  return i;
}

/* Makes room for `chunks` more chunks in the queue (lock held); 0 or ENOMEM. */
static int reserve(gn_io *io, size_t chunks) {
  if (io->qlen + chunks <= io->qcap) return 0;
  size_t cap = io->qcap;
  while (cap < io->qlen + chunks) cap *= 2;
  io_chunk *q = malloc(cap * sizeof(io_chunk));
  if (!q) return ENOMEM;
  for (size_t i = 0; i < io->qlen; i++) q[i] = io->queue[(io->qhead + i) % io->qcap];
  free(io->queue);
  io->queue = q;
  io->qcap = cap;
  io->qhead = 0;
  return 0;
}

void gn_io_populate(gn_io *io, void *p, size_t len) {
  size_t chunks = len == 0 ? 0 : (len + CHUNK - 1) / CHUNK;
  pthread_mutex_lock(&io->mu);
  if (io->stop || reserve(io, chunks) != 0) {
    pthread_mutex_unlock(&io->mu);
    return; /* the first reads fault the pages in instead */
  }
  for (size_t i = 0; i < chunks; i++) {
    uint64_t o = (uint64_t)i * CHUNK, n = len - o < CHUNK ? len - o : CHUNK;
    io_chunk c = {0, -1, 0, n, 0, (uint8_t *)p + o};
    io->queue[(io->qhead + io->qlen) % io->qcap] = c;
    io->qlen++;
    io->inflight++;
  }
  if (chunks) pthread_cond_broadcast(&io->work);
  pthread_mutex_unlock(&io->mu);
}

int64_t gn_io_submit(gn_io *io, int file, uint64_t offset, uint64_t len, uint64_t need, void *dst) {
  if (file < 0 || need > len || (len > 0 && !dst)) return -EINVAL;
  size_t chunks = len == 0 ? 0 : (size_t)((len + CHUNK - 1) / CHUNK);
  pthread_mutex_lock(&io->mu);
  if (io->stop || file >= io->nfiles) {
    pthread_mutex_unlock(&io->mu);
    return io->stop ? -EBADF : -EINVAL;
  }
  int64_t ticket = io->next_ticket;
  io_ticket *t = &io->tickets[ticket % TICKETS];
  if (t->ticket != 0) {
    pthread_mutex_unlock(&io->mu);
    return -E2BIG;
  }
  if (reserve(io, chunks) != 0) {
    pthread_mutex_unlock(&io->mu);
    return -ENOMEM;
  }
  io->next_ticket++;
  t->ticket = ticket;
  t->remaining = (int)chunks;
  t->err = 0;
  t->at = 0;
  for (size_t i = 0; i < chunks; i++) {
    uint64_t o = (uint64_t)i * CHUNK, n = len - o < CHUNK ? len - o : CHUNK;
    io_chunk c = {ticket, file, offset + o, n, need > o ? (need - o < n ? need - o : n) : 0, (uint8_t *)dst + o};
    io->queue[(io->qhead + io->qlen) % io->qcap] = c;
    io->qlen++;
    io->inflight++;
  }
  if (chunks) pthread_cond_broadcast(&io->work);
  pthread_mutex_unlock(&io->mu);
  return ticket;
}

static io_ticket *find(gn_io *io, int64_t ticket) {
  if (ticket <= 0) return NULL;
  io_ticket *t = &io->tickets[ticket % TICKETS];
  return t->ticket == ticket ? t : NULL;
}

int gn_io_wait(gn_io *io, int64_t ticket, uint64_t *at) {
  pthread_mutex_lock(&io->mu);
  io_ticket *t = find(io, ticket);
  if (!t) {
    pthread_mutex_unlock(&io->mu);
    return EINVAL;
  }
  while (t->remaining > 0) pthread_cond_wait(&io->done, &io->mu);
  int err = t->err;
  *at = t->at;
  t->ticket = 0;
  pthread_mutex_unlock(&io->mu);
  return err;
}

void gn_io_cancel(gn_io *io, int64_t ticket) {
  pthread_mutex_lock(&io->mu);
  io_ticket *t = find(io, ticket);
  if (t && t->remaining > 0 && !t->err) t->err = ECANCELED; /* chunks not yet started are skipped */
  pthread_mutex_unlock(&io->mu);
}

int gn_io_done(gn_io *io, int64_t ticket) {
  pthread_mutex_lock(&io->mu);
  io_ticket *t = find(io, ticket);
  int done = !t || t->remaining == 0;
  pthread_mutex_unlock(&io->mu);
  return done;
}

void gn_io_totals(gn_io *io, uint64_t *bytes, uint64_t *direct_bytes, uint64_t *busy_ns) {
  pthread_mutex_lock(&io->mu);
  *bytes = io->bytes;
  *direct_bytes = io->direct_bytes;
  *busy_ns = io->busy_ns;
  pthread_mutex_unlock(&io->mu);
}
