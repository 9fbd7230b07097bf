/*
 * ace_fast.h: the ACE lane's inline fast paths, inlined by the dispatcher;
 * each has one unlikely branch to its slow path in ace.c.
 */
#ifndef HAK_ACE_FAST_H
#define HAK_ACE_FAST_H

#include "ace.h"
#include "learn.h"

static inline _Atomic uint8_t *ace_tag_of(const void *p, uintptr_t chunk) {
    return &((struct pagerun_chunk *)chunk)->tag[((uintptr_t)p - chunk) >> ace_page_shift];
}

/* Allocates size bytes, HAK_POOL_MAX < size <= HAK_ACE_MAX. */
static HAK_ALWAYS_INLINE void *ace_alloc_fast(size_t size) {
    unsigned cls = ace_class_of[(size - 1) >> 13];
    struct ace_tcache *t = ace_tls;
    unsigned n = t->count[cls];
    if (HAK_LIKELY(n != 0)) {
        void *p = t->slot[cls][n - 1];
        t->count[cls] = (uint8_t)(n - 1);
        uintptr_t chunk = (uintptr_t)p & ~HAK_CHUNK_MASK;
        atomic_store_relaxed(ace_tag_of(p, chunk), (uint8_t)(cls + 1));
        if (HAK_STATS) {
            t->stats.cls[HAK_CCTR_allocs][cls]++;
            if (HAK_UNLIKELY(++t->stat_ops >= 64)) return ace_stats_flush_then(t, p);
        } else if (!HAK_BENCH_MINIMAL) {
            /* the learner's windows read the global counters: a thread whose
             * allocations all hit its cache takes no slow path to flush them,
             * so while the learner runs it flushes every 64 allocations of a
             * class (the count since the last flush is at hand: one test,
             * then a load every 64) */
            uint64_t c = ++t->stats.cls[HAK_CCTR_allocs][cls];
            if (HAK_HAVE_LEARN && HAK_UNLIKELY((c & 63) == 0) && learn_running_now())
                return ace_stats_flush_then(t, p);
        }
        return p;
    }
    return ace_alloc_slow(size);
}

/* Frees p, which the segment map places in the ACE chunk at chunk. The fast
 * case: p starts a block that is not cached, and this thread's cache of its
 * class has room. */
static HAK_ALWAYS_INLINE void ace_free_fast(void *p, uintptr_t chunk, hak_call_t call) {
    _Atomic uint8_t *tagp = ace_tag_of(p, chunk);
    unsigned cls = (unsigned)atomic_load_relaxed(tagp) - 1; /* huge when free or cached */
    struct ace_tcache *t = ace_tls;
    if (HAK_LIKELY(cls < ACE_CLASSES && ((uintptr_t)p & ((1u << ace_page_shift) - 1)) == 0 &&
                   t->count[cls] < t->limit[cls])) {
        atomic_store_relaxed(tagp, (uint8_t)((cls + 1) | ACE_TAG_CACHED));
        t->slot[cls][t->count[cls]++] = p;
        if (!HAK_BENCH_MINIMAL) t->stats.cls[HAK_CCTR_frees][cls]++;
        if (HAK_STATS && HAK_UNLIKELY(++t->stat_ops >= 64)) ace_stats_exact_flush(t);
        return;
    }
    ace_free_slow(p, chunk, call);
}

#endif /* HAK_ACE_FAST_H */
