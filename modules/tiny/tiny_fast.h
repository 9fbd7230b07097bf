/*
 * tiny_fast.h: the tiny lane's inline fast paths, inlined by the
 * dispatcher. Each has one unlikely branch to a noinline slow path in
 * tiny.c, which re-checks everything (the fast path only takes the case
 * that needs nothing else).
 */
#ifndef HAK_TINY_FAST_H
#define HAK_TINY_FAST_H

#include "tiny.h"

/* Allocates size bytes (0 <= size <= HAK_TINY_MAX). */
static HAK_ALWAYS_INLINE void *tiny_alloc_fast(size_t size) {
    struct tiny_heap *h = tiny_tls_heap;
    struct tiny_slab *sl = h->cur[tiny_class_of[(size + 7) >> 3]];
    void *p = sl->free;
    if (HAK_LIKELY(p != NULL)) {
        sl->free = *(void **)p;
        sl->used++;
        if (!HAK_BENCH_MINIMAL) {
            h->stats.c[HAK_CTR_allocs]++;
            h->stats.c[HAK_CTR_alloc_bytes] += sl->block_size;
        }
        return p;
    }
    return tiny_alloc_slow(size);
}

/* Frees p, which the segment map places in the tiny segment at seg. The
 * fast case: p is the start of a block handed out from a slab of this
 * thread's heap that keeps other blocks out and has free ones. */
static HAK_ALWAYS_INLINE void tiny_free_fast(void *p, uintptr_t seg, hak_call_t call) {
    struct tiny_segment *s = (struct tiny_segment *)seg;
    uintptr_t in_seg = (uintptr_t)p - seg;
    struct tiny_slab *sl = &s->slabs[in_seg >> TINY_SLAB_SHIFT];
    uint32_t off = (uint32_t)(in_seg & (TINY_SLAB_SIZE - 1));
    uint32_t idx = (uint32_t)(((uint64_t)off * sl->div_magic) >> 32);
    struct tiny_heap *h = tiny_tls_heap;
    void *head = sl->free;
    if (HAK_LIKELY(idx * sl->block_size == off && off < sl->carved &&
                   atomic_load_relaxed(&sl->owner) == h && head != NULL && head != p &&
                   sl->used > 1)) {
        *(void **)p = head;
        sl->free = p;
        sl->used--;
        if (!HAK_BENCH_MINIMAL) {
            h->stats.c[HAK_CTR_frees]++;
            h->stats.c[HAK_CTR_free_bytes] += sl->block_size;
        }
        return;
    }
    tiny_free_slow(sl, p, call);
}

#endif /* HAK_TINY_FAST_H */
