/*
 * Reads of weight bytes on a small pool of I/O threads, while the caller computes: the expert cache's way
 * to disk (src/model/expert-cache.ts), instead of page faults on a mapping. A read is split into chunks
 * that the threads take in order, so one large range is read by every thread at once and several ranges
 * queue behind each other in the order they were asked for. POSIX only.
 *
 * Files are opened twice: buffered and, where the filesystem allows it, with O_DIRECT (no copy in the page
 * cache: the bytes then live once, in the caller's buffer). A direct read needs its offset, length and
 * destination aligned to GN_IO_ALIGN; any other read, and a direct read the kernel refuses (EINVAL), goes
 * through the buffered descriptor, whose pages are dropped from the page cache after the copy
 * (POSIX_FADV_DONTNEED), so a file is not cached twice either way.
 */
#ifndef GN_IO_H
#define GN_IO_H

#include <stddef.h>
#include <stdint.h>

#define GN_IO_ALIGN 4096

typedef struct gn_io gn_io;

/* A pool of `threads` I/O threads (1…64), holding one reference; NULL on failure. */
gn_io *gn_io_create(int threads);
/* Reference counting: the pool is closed and freed when the last reference goes. The buffers reads go
 * into hold references (the addon's ioAlloc), so a pool outlives every buffer it may still write. */
void gn_io_ref(gn_io *io);
void gn_io_unref(gn_io *io);
/* Blocks until no read is queued or in progress. */
void gn_io_drain(gn_io *io);
/* Finishes what is queued, stops the threads, closes the files (idempotent); later submits fail (EBADF). */
void gn_io_close(gn_io *io);

/* Opens `path` for reading: a file index ≥ 0, or −errno. *direct = 1 when O_DIRECT reads are possible. */
int gn_io_open(gn_io *io, const char *path, int *direct);

/* Faults in [p, p + len) of anonymous memory on the I/O threads, ahead of the reads queued after it (a direct
 * read into fresh memory would first wait for the kernel to find and zero its pages). No ticket. */
void gn_io_populate(gn_io *io, void *p, size_t len);

/* Starts reading [offset, offset + len) of file `file` into dst; bytes past the file's end are left as they
 * are, but fewer than `need` bytes read is an error (a short file). Returns a ticket > 0, or −errno (EINVAL:
 * bad file index, E2BIG: too many reads in flight). dst must stay valid until the ticket is waited for. */
int64_t gn_io_submit(gn_io *io, int file, uint64_t offset, uint64_t len, uint64_t need, void *dst);

/* Blocks until the read is done: 0, or an errno (the first error of its chunks; ENODATA: the file ended
 * before `need` bytes). *at = the file offset where it failed. A ticket is waited for once. */
int gn_io_wait(gn_io *io, int64_t ticket, uint64_t *at);
/* Gives up a read: its chunks not yet started are skipped (one being read finishes); its wait returns
 * ECANCELED and the buffer holds part of the range. */
void gn_io_cancel(gn_io *io, int64_t ticket);
/* 1 when the read is done (wait will not block), 0 otherwise. */
int gn_io_done(gn_io *io, int64_t ticket);

/* Totals since creation: bytes read, of them through O_DIRECT, and nanoseconds the threads spent reading. */
void gn_io_totals(gn_io *io, uint64_t *bytes, uint64_t *direct_bytes, uint64_t *busy_ns);

#endif
