/*
 * pool_fast.h: the pool lane's inline fast paths, inlined by the
 * dispatcher; each has one unlikely branch to the engine's slow path.
 * Both go through the heap's block cache first (slab.h: a freed block is
 * the next malloc's of its class, whichever slab it is in).
 */
#ifndef HAK_POOL_FAST_H
#define HAK_POOL_FAST_H

#include "pool.h"

/* Allocates size bytes, HAK_TINY_MAX < size <= HAK_POOL_MAX. */
static HAK_ALWAYS_INLINE void *pool_alloc_fast(size_t size) {
    unsigned cls = pool_class_of[(size - 1) >> 8];
    struct slab_heap *h = pool_tls_heap;
    void *p = slab_tc_pop(h, cls, POOL_SLAB_SHIFT);
    if (HAK_LIKELY(p != NULL)) return p;
    p = slab_pop_fast(h, cls);
    if (HAK_LIKELY(p != NULL)) return p;
    return slab_alloc_slow(&pool_slabs, &pool_tls_heap, cls);
}

/* Frees p, which the segment map places in the pool segment at seg. */
static HAK_ALWAYS_INLINE void pool_free_fast(void *p, uintptr_t seg, hak_call_t call) {
    slab_free_fast_tc(p, seg, POOL_SLAB_SHIFT, pool_tls_heap, call);
}

#endif /* HAK_POOL_FAST_H */
