/*
 * tiny_fast.h: the tiny lane's inline fast paths, inlined by the
 * dispatcher; each has one unlikely branch to the engine's slow path.
 * Both go through the thread's block cache first (slab.h).
 */
#ifndef HAK_TINY_FAST_H
#define HAK_TINY_FAST_H

#include "tiny.h"

/* Allocates size bytes, 0 <= size <= HAK_TINY_MAX. */
static HAK_ALWAYS_INLINE void *tiny_alloc_fast(size_t size) {
    unsigned cls = tiny_class_of[size];
    void *p = slab_tc_pop(tiny_tls_heap, cls);
    if (HAK_LIKELY(p != NULL)) return p;
    return tiny_alloc_miss(size);
}

/* Frees p, which the segment map places in the tiny segment at seg. */
static HAK_ALWAYS_INLINE void tiny_free_fast(void *p, uintptr_t seg, hak_call_t call) {
    slab_free_fast_tc(p, seg, TINY_SLAB_SHIFT, tiny_tls_heap, call);
}

#endif /* HAK_TINY_FAST_H */
