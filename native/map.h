/*
 * Weights in place: read-only file mappings shared by the views made from them (each view holds a
 * reference; the mapping goes when the last one does), and zero-filled anonymous memory for weights
 * that must be built (allocWeight). POSIX only.
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

enum { GN_ADV_NORMAL = 0, GN_ADV_WILLNEED = 1, GN_ADV_RANDOM = 2, GN_ADV_SEQUENTIAL = 3, GN_ADV_DONTNEED = 4 };
/* madvise / mlock over [off, off + len) of the mapping (rounded out to pages); 0 or errno. */
int gn_map_advise(gn_map *m, size_t off, size_t len, int advice);
int gn_map_lock(gn_map *m, size_t off, size_t len);

/* Map page-table entries for [off, off + len) in a background thread (reading from disk what is not
 * cached), so the first pass over the weights does not pay a page fault per 64 KiB. Returns at once. */
int gn_map_populate_async(gn_map *m, size_t off, size_t len);

/* Zero-filled anonymous memory (transparent huge pages requested for large sizes); NULL on failure. */
void *gn_alloc(size_t bytes);
/* Ask for transparent huge pages over the whole 2 MiB pages inside [p, p + bytes) (memory allocated elsewhere,
 * e.g. a SharedArrayBuffer, before it is first touched); 0 or errno. */
int gn_advise_huge(void *p, size_t bytes);
void gn_free(void *p, size_t bytes);

#endif
