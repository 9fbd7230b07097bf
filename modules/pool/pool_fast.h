/*
 * pool_fast.h: the pool lane's inline fast paths, inlined by the
 * dispatcher; each has one unlikely branch to the engine's slow path.
 * Both go through the thread's block cache first (slab.h: a freed block
 * is the next malloc's of its class, whichever slab it is in).
 */
#ifndef HAK_POOL_FAST_H
#define HAK_POOL_FAST_H

#include "pool.h"

/* Allocates size bytes, HAK_TINY_MAX < size <= HAK_POOL_MAX. */
static HAK_ALWAYS_INLINE void *pool_alloc_fast(size_t size) {
    unsigned cls = POOL_CLASS_OF(size);
    void *p = slab_tc_pop(pool_tls_heap, cls);
    if (HAK_LIKELY(p != NULL)) return p;
    return pool_alloc_miss(size);
}

/* Frees p, which the segment map places in the pool segment at seg. */
static HAK_ALWAYS_INLINE void pool_free_fast(void *p, uintptr_t seg, hak_call_t call) {
    slab_free_fast_tc(p, seg, POOL_SLAB_SHIFT, pool_tls_heap, call);
}

#endif /* HAK_POOL_FAST_H */
