/*
 * ace.h: the ACE lane (L1), blocks above 32 KiB up to 1 MiB
 * (HAK_POOL_MAX, HAK_ACE_MAX]: 20 classes (40, 48, 56, 64, 80, ... 1024 KiB,
 * four per doubling, at most 25% over the request), each block a page run
 * in a shared 2 MiB chunk (lib/pagerun.h), headerless; the run's tag byte
 * holds its class (+1) and a "cached" bit.
 *
 * Free blocks are kept, per class, in a per-thread cache (struct
 * ace_tcache: one TLS pointer, the cache in hakmem's memory) and in a
 * shared cache; each bounded by a cap from the policy snapshot (cap_large,
 * read at refill and flush time). Beyond the caps a block goes back to its
 * chunk, whose pages the purge queue purges. W_MAX rounding: a request may
 * take a cached block of any class up to wmax_large_pct of its size, so a
 * burst of odd sizes shares a few warm classes.
 *
 * Any thread may free any block into its own cache: frees take no lock
 * unless a cache overflows. Locks: shared_lock (the shared caches), then
 * the arena's lock (lib/pagerun.h); the tcache pool's lock nests in none.
 */
#ifndef HAK_ACE_H
#define HAK_ACE_H

#include "lane.h"
#include "pagerun.h"
#include "stats.h"

#define ACE_CLASSES 20
#define ACE_TCACHE_MAX 32 /* the largest cap_large the policy accepts */
#define ACE_TAG_CACHED 0x80
_Static_assert(ACE_CLASSES <= HAK_POLICY_CLASSES && ACE_CLASSES <= STATS_MAX_CLASSES,
               "the policy and the stats hold every class");

extern HAK_HIDDEN const uint32_t ace_class_size[ACE_CLASSES];
/* Class of each size: ace_class_of[(size - 1) >> 13], size in
 * (HAK_POOL_MAX, HAK_ACE_MAX]. */
extern HAK_HIDDEN const uint8_t ace_class_of[HAK_ACE_MAX >> 13];

/* Hot fields first. Invariant: count[c] <= limit[c] <= ACE_TCACHE_MAX; every
 * slot below count holds a block of class c whose tag has ACE_TAG_CACHED. */
struct ace_tcache {
    uint8_t count[ACE_CLASSES];   /* blocks cached per class */
    uint8_t limit[ACE_CLASSES];   /* cap_large of the policy read last (0 in
                                     the sentinels: every push misses) */
    uint8_t span[ACE_CLASSES];    /* highest class a request of class c may take */
    uint8_t refill_batch;         /* blocks taken from the shared cache at once */
    uint8_t kind;                 /* ACE_TC_* */
    uint32_t slow_calls;          /* slow paths since the last stats flush */
    uint32_t stat_ops;            /* -Dstats: fast-path operations since then */
    const struct hak_policy *policy; /* snapshot the limits come from */
    uint64_t policy_gen;          /* policy_generation when it was read */
    uint32_t timing_countdown;    /* slow paths until the next timed one (learner) */
    struct stats_batch stats;     /* counters not yet flushed */
    void *slot[ACE_CLASSES][ACE_TCACHE_MAX];
};

enum { ACE_TC_LIVE = 1, ACE_TC_EMPTY = 2, ACE_TC_DEAD = 3 };

extern HAK_TLS_IE struct ace_tcache *ace_tls;
extern HAK_HIDDEN unsigned ace_page_shift; /* log2 of the page size */

extern HAK_HIDDEN const struct hak_lane ace_lane;

HAK_NOINLINE HAK_COLD void *ace_alloc_slow(size_t size);
HAK_NOINLINE void ace_free_slow(void *p, uintptr_t chunk, hak_call_t call);
/* -Dstats=true: flushes t's counters (every STATS_EXACT_OPS operations). */
HAK_NOINLINE HAK_COLD void ace_stats_exact_flush(struct ace_tcache *t);
/* The same for a malloc about to return p: returns p (a tail call, so that
 * the malloc fast paths keep p in no saved register). */
HAK_NOINLINE HAK_COLD void *ace_stats_flush_then(struct ace_tcache *t, void *p);

#endif /* HAK_ACE_H */
