/*
 * huge_fast.h: the huge lane's inline fast paths, inlined by the
 * dispatcher: a block cycled through the calling thread's slot (struct
 * huge_tcache, huge.h). A program that mallocs and frees big blocks of
 * about one size reuses its mapping with one atomic exchange per pair
 * (the take; the put is a plain store), no lock, no shared counter.
 * Everything else falls through to the slow paths in huge.c.
 */
#ifndef HAK_HUGE_FAST_H
#define HAK_HUGE_FAST_H

#include "huge.h"
#include "os.h"
#include "policy.h"

/* -Dsecure: a guard page after every own block (huge.c's HUGE_GUARD). */
#define HUGE_FAST_GUARD (HAK_SECURE ? os_page_size : 0)

/* Counts one allocation / free of bytes in the thread's batch. */
static HAK_ALWAYS_INLINE void huge_count_alloc(struct huge_tcache *t, uint64_t bytes) {
    if (HAK_BENCH_MINIMAL) return;
    t->allocs++;
    t->alloc_bytes += bytes;
    t->net += (int64_t)bytes;
    if (t->net > t->net_max) t->net_max = t->net;
}
static HAK_ALWAYS_INLINE void huge_count_free(struct huge_tcache *t, uint64_t bytes) {
    if (HAK_BENCH_MINIMAL) return;
    t->frees++;
    t->free_bytes += bytes;
    t->net -= (int64_t)bytes;
}

/* malloc(size) from the slot, or NULL (the caller takes the slow path).
 * The slot's block (slot_bytes mapped) serves it in place when the mapping
 * the request needs, own_map_size(size + guard, page), is exactly
 * slot_bytes: the block the BigCache's best fit would pick too, with
 * nothing to cut or grow. (Sizes below HAK_CHUNK / 2 are page runs.)
 * Sentinels and an emptied slot have slot_bytes 0: nothing fits. */
static HAK_ALWAYS_INLINE void *huge_alloc_fast(size_t size) {
    struct huge_tcache *t = huge_tls;
    size_t need = (size + os_page_size + HUGE_FAST_GUARD + HAK_CHUNK_MASK) & ~HAK_CHUNK_MASK;
    if (HAK_LIKELY(t->slot_bytes == need && size >= HAK_CHUNK / 2 &&
                   need > size) && /* no wrap-around */
        atomic_load_relaxed(&t->slot) != NULL) {
        /* the purger may have taken it meanwhile: the exchange decides */
        struct huge_own *c = atomic_exchange_explicit(&t->slot, NULL, memory_order_acquire);
        t->slot_bytes = 0;
        if (HAK_UNLIKELY(c == NULL)) return NULL;
        if (HAK_UNLIKELY(t->numa) && t->slot_node != os_current_node()) {
            huge_slot_return(c); /* no cross-node reuse */
            return NULL;
        }
        size_t ps = os_page_size;
        c->cached = 0;
        c->user_off = ps;
        c->user_size = hak_align_up(size, ps);
        c->align = HAK_MIN_ALIGN;
        if (HAK_SECURE && c->guard_off < ps + c->user_size) huge_guard_after(c);
        huge_count_alloc(t, c->user_size);
        if (HAK_UNLIKELY(--t->tick == 0)) huge_tick(t);
        return (char *)c + ps;
    }
    return NULL;
}

/* Keeps own mapping c (a block just freed, checked) in t's empty slot. */
static HAK_ALWAYS_INLINE void huge_slot_fill(struct huge_tcache *t, struct huge_own *c) {
    huge_count_free(t, c->user_size);
    c->cached = 1;
    t->slot_bytes = c->map_size;
    t->numa = c->node >= 0;
    t->slot_node = c->node;
    uint64_t now = os_now_coarse_ns();
    atomic_store_relaxed(&t->freed_at, now);
    atomic_store_release(&t->slot, c);
    os_purge_schedule_and_start(now + t->delay_ns);
    if (HAK_UNLIKELY(--t->tick == 0)) huge_tick(t);
}

/* Frees p, which the segment map places in the huge mapping headed at
 * head. The fast case: p is the block of an own mapping, not cached, that
 * the cache may hold, and this thread's slot is empty. */
static HAK_ALWAYS_INLINE void huge_free_fast(void *p, uintptr_t head, hak_call_t call) {
    struct huge_own *c = (struct huge_own *)head;
    struct huge_tcache *t = huge_tls;
    if (HAK_LIKELY(t->live && c->kind == HUGE_OWN && (uintptr_t)p == head + c->user_off &&
                   !c->cached && atomic_load_relaxed(&t->slot) == NULL &&
                   c->map_size <= (size_t)policy_current()->bigcache_mb << 20)) {
        huge_slot_fill(t, c);
        return;
    }
    huge_free_slow(p, head, call);
}

#endif /* HAK_HUGE_FAST_H */
