/*
 * A persistent thread pool: threads − 1 workers plus the calling thread. gn_pool_run hands out chunk
 * indices 0…n−1 (claimed one at a time from a shared counter) and returns when all are done, so calls
 * stay synchronous for JavaScript. Idle workers spin for `spin_us` microseconds, then sleep.
 */
#ifndef GN_POOL_H
#define GN_POOL_H

typedef void gn_task_fn(void *arg, int chunk, int thread);
typedef struct gn_pool gn_pool;

gn_pool *gn_pool_create(int threads, int spin_us);
void gn_pool_run(gn_pool *pool, gn_task_fn *fn, void *arg, int n_chunks);
void gn_pool_destroy(gn_pool *pool);
/* Pin thread i (0 = the calling thread) to CPU cpus[i % n] (Linux; elsewhere ENOSYS). 0 or an errno. */
int gn_pool_set_affinity(gn_pool *pool, const int *cpus, int n);

#endif
