/*
 * meta.h: pools of fixed-size objects for hakmem's own metadata (per-thread
 * heaps and caches), carved from 2 MiB chunks of hakmem's memory (never the
 * libc allocator, never registered in the segment map: free() of such an
 * address is a foreign pointer). Freed objects are kept for reuse.
 *
 * Locks: each pool's lock, taken after nothing and before nothing.
 */
#ifndef HAK_META_H
#define HAK_META_H

#include <pthread.h>

#include "internal.h"

struct meta_pool {
    size_t obj_size;       /* bytes per object (a multiple of 64) */
    uint8_t lane;          /* stats lane of the chunks */
    pthread_mutex_t lock;
    void *free;            /* freed objects (first word: next) */
    char *chunk;           /* chunk objects are carved from */
    size_t used, cap;      /* objects carved from chunk / room in it */
};

void meta_pool_init(struct meta_pool *m, size_t obj_size, uint8_t lane);
/* A zeroed object, or NULL when the OS refuses memory. */
void *meta_alloc(struct meta_pool *m);
void meta_free(struct meta_pool *m, void *obj);
void meta_fork_prepare(struct meta_pool *m);
void meta_fork_parent(struct meta_pool *m);
void meta_fork_child(struct meta_pool *m);

#endif /* HAK_META_H */
