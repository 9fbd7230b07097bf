/*
 * huge.h: the huge lane. Always compiled in: it serves every size above
 * HAK_ACE_MAX and the range of every lane that is not built, with any
 * power-of-two alignment.
 *
 * Two kinds of mapping, each headed by one page of metadata at the base of
 * its first chunk:
 *  - shared chunks: one 2 MiB chunk whose pages 1..n-1 are handed out as
 *    page runs (requests below 2 MiB that fit), so that millions of small
 *    blocks need no mapping each;
 *  - own mappings (struct huge_own): one block per mapping of whole chunks
 *    (requests of 1 MiB and more, or alignments a shared chunk cannot
 *    give); realloc grows them in place or moves their pages with mremap.
 *
 * Freed own mappings are kept for reuse, first in the freeing thread's
 * slot (struct huge_tcache: one block, no lock; huge_fast.h), else in the
 * shared BigCache (huge.c).
 */
#ifndef HAK_HUGE_H
#define HAK_HUGE_H

#include "lane.h"
#include "stats.h"

#define HUGE_MAGIC 0x4855474bu /* "HUGK" */
#define HUGE_OWN 2             /* kind of an own mapping (pagerun chunks: PAGERUN_KIND) */

/* The first page of an own mapping. magic and kind first, as in every
 * chunk header (pagerun.h), so huge_free tells the two kinds apart. While
 * the mapping is cached (cached == 1) its header belongs to the cache; a
 * block in a thread's slot is taken out of it only by an exchange. */
struct huge_own {
    uint32_t magic;     /* HUGE_MAGIC */
    uint32_t kind;      /* HUGE_OWN */
    size_t map_size;    /* bytes mapped from the base, multiple of HAK_CHUNK */
    size_t user_off;    /* the block starts at base + user_off */
    size_t user_size;   /* usable bytes of the block, multiple of the page */
    size_t align;       /* alignment asked for (kept on moves) */
    uint32_t cached;    /* 1 while the mapping waits in a slot or the BigCache */
    int32_t node;       /* NUMA node it is bound to, -1 when placement is off */
    size_t guard_off;   /* -Dsecure: offset of the guard page, 0 when none */
};

/* The huge lane's per-thread state: a one-block cache (the slot) and the
 * thread's batched counters. Kept in hakmem's memory (huge_tls points to
 * it; the sentinels tc_empty and tc_dead have live == false, slot_bytes 0
 * and an empty slot, so the fast paths need no other
 * test). Live ones are on a list the purger walks (huge.c).
 *
 * The slot: only the owner thread fills it (a release store, when it is
 * empty); the owner takes the block with an exchange, and so does the
 * purger when the block has waited HAKMEM_PURGE_DELAY_MS, or on
 * malloc_trim, so that exactly one of them gets it. Every other field is
 * the owner's, but freed_at (read by the purger, written before the slot).
 * Hot fields first. */
struct huge_tcache {
    size_t slot_bytes;     /* map_size of the slot's block; 0 when the owner
                              emptied it (the purger may empty it too) */
    struct huge_own *_Atomic slot; /* the kept block, or NULL */
    bool live;             /* false in the sentinels: every fast path misses */
    bool numa;             /* the slot's block is bound to slot_node */
    int32_t slot_node;     /* its node when numa */
    uint32_t tick;         /* fast operations until the next huge_tick */
    uint64_t delay_ns;     /* HAKMEM_PURGE_DELAY_MS (read at each tick) */
    _Atomic uint64_t freed_at; /* coarse clock (ns) of the slot's last fill */
    /* counters since the last flush (stats_flush_batch) */
    uint64_t allocs, frees, alloc_bytes, free_bytes;
    int64_t net, net_max;  /* alloc_bytes - free_bytes, and its highest value */
    struct huge_tcache *next, *prev; /* the list of live ones (huge.c) */
};

extern HAK_TLS_IE struct huge_tcache *huge_tls;

/* Fast operations between two huge_tick calls (stats flush, purge tick). */
#define HUGE_TICK_EVERY 64

/* The slow paths the fast ones fall back to (huge.c). */
HAK_NOINLINE void huge_free_slow(void *p, uintptr_t head, hak_call_t call);
/* Every HUGE_TICK_EVERY fast operations: flushes t's counters, runs a purge
 * tick. */
HAK_NOINLINE HAK_COLD void huge_tick(struct huge_tcache *t);
/* -Dsecure: puts c's guard page after its block (it was before its end). */
HAK_NOINLINE HAK_COLD void huge_guard_after(struct huge_own *c);
/* The slot's block c, just taken, is on the wrong NUMA node: to the shared
 * BigCache. */
HAK_NOINLINE HAK_COLD void huge_slot_return(struct huge_own *c);

extern HAK_HIDDEN const struct hak_lane huge_lane;

#endif /* HAK_HUGE_H */
