/*
 * Weights in place: read-only file mappings shared by the views made from them (each view holds a
 * reference; the memory goes when the last one does), and zero-filled anonymous memory for weights
 * that must be built (allocWeight). POSIX only.
 *
 * A mapping keeps its file open, so the file's state can be asked at any time (gn_map_stat: fstat of that
 * descriptor, whatever the path now names), and can be released before its views are collected
 * (gn_map_release: the file is unmapped and closed at once; the views then read zeros, never a dead page).
 */
#ifndef GN_MAP_H
#define GN_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct gn_map gn_map;

/* Map `path` read-only; NULL with *err = errno on failure. A zero-length file maps to no memory. */
gn_map *gn_map_open(const char *path, int *err);
const uint8_t *gn_map_data(const gn_map *m);
size_t gn_map_size(const gn_map *m);
void gn_map_ref(gn_map *m);
void gn_map_unref(gn_map *m);

/* The identity of a file: device, inode, size, modification time (ns). */
typedef struct gn_file_id {
  uint64_t dev, ino, size, mtime_ns;
} gn_file_id;

/* The file as it was when mapped. */
gn_file_id gn_map_id(const gn_map *m);
/* The mapped file as it is now (fstat of the mapping's descriptor): 0, ESTALE once released, or errno. */
int gn_map_stat(gn_map *m, gn_file_id *now);
/* Unmap the file now (idempotent): its address range becomes zero-filled read-only memory until the last
 * reference goes, so a view still held reads zeros instead of faulting; the descriptor is closed. */
void gn_map_release(gn_map *m);
/* File mappings opened and not yet released, in this process (tests). */
long gn_map_live(void);

enum { GN_ADV_NORMAL = 0, GN_ADV_WILLNEED = 1, GN_ADV_RANDOM = 2, GN_ADV_SEQUENTIAL = 3, GN_ADV_DONTNEED = 4 };
/* madvise / mlock over [off, off + len) of the mapping (rounded out to pages); 0 or errno. */
int gn_map_advise(gn_map *m, size_t off, size_t len, int advice);
int gn_map_lock(gn_map *m, size_t off, size_t len);

/* Map page-table entries for [off, off + len) in a background thread (reading from disk what is not
 * cached), so the first pass over the weights does not pay a page fault per 64 KiB. Returns at once.
 * The thread never touches a page itself: it asks the kernel (MADV_POPULATE_READ, which fails instead of
 * raising SIGBUS past the end of a shrunk file; MADV_WILLNEED on older kernels), a chunk at a time, and
 * stops quietly once the mapping is released or the file changed. */
int gn_map_populate_async(gn_map *m, size_t off, size_t len);

/* Zero-filled anonymous memory (transparent huge pages requested for large sizes); NULL on failure. */
void *gn_alloc(size_t bytes);
/* Ask for transparent huge pages over the whole 2 MiB pages inside [p, p + bytes) (memory allocated elsewhere,
 * e.g. a SharedArrayBuffer, before it is first touched); 0 or errno. */
int gn_advise_huge(void *p, size_t bytes);
void gn_free(void *p, size_t bytes);
/* Fault in [p, p + bytes) of anonymous memory now, writable (MADV_POPULATE_WRITE); 0, or errno where the
 * kernel cannot (older than 5.14): the caller then touches the pages itself. */
int gn_populate(void *p, size_t bytes);

#endif
