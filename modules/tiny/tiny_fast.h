/*
 * tiny_fast.h: the tiny lane's inline fast paths, inlined by the
 * dispatcher; each has one unlikely branch to the engine's slow path.
 */
#ifndef HAK_TINY_FAST_H
#define HAK_TINY_FAST_H

#include "tiny.h"

/* Allocates size bytes, 0 <= size <= HAK_TINY_MAX. */
static HAK_ALWAYS_INLINE void *tiny_alloc_fast(size_t size) {
    unsigned cls = tiny_class_of[(size + 7) >> 3];
    void *p = slab_pop_fast(tiny_tls_heap, cls);
    if (HAK_LIKELY(p != NULL)) return p;
    return slab_alloc_slow(&tiny_slabs, &tiny_tls_heap, cls);
}

/* Frees p, which the segment map places in the tiny segment at seg. */
static HAK_ALWAYS_INLINE void tiny_free_fast(void *p, uintptr_t seg, hak_call_t call) {
    slab_free_fast(p, seg, TINY_SLAB_SHIFT, tiny_tls_heap, call);
}

#endif /* HAK_TINY_FAST_H */
