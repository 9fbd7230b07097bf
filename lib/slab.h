/*
 * slab.h: the segment/slab/heap engine shared by the lanes that serve
 * fixed size classes (tiny, pool). A lane describes itself with a struct
 * slab_lane (its id, slab size and classes) and keeps one TLS pointer to
 * its heap per thread; the engine does the rest.
 *
 * Main types:
 *   struct slab_segment  one 2 MiB chunk registered in the segment map under
 *                        the lane's id; slab 0 holds this header, the other
 *                        slabs hold blocks. Owned by one heap, or abandoned.
 *   struct slab          one slab of blocks of one size class; its metadata
 *                        lives in the segment header, blocks are headerless.
 *   struct slab_heap     one per thread and lane (the thread's TLS holds a
 *                        pointer to it; the heap itself is in hakmem's own
 *                        memory): the current slab of each class and the
 *                        lists of the heap's slabs and segments.
 *
 * Ownership: a slab's free list, used count and list links belong to its
 * owner heap's thread (the owner of every slab in use of a segment is the
 * segment's heap). Any other thread frees a block into a chain of its own
 * heap's remote buffer (struct slab_rbuf) and pushes whole chains onto the
 * slab's atomic remote list (one CAS each); the owner takes the whole list
 * with one exchange-like CAS, its length with it (SLAB_RC_SHIFT). The
 * remote word's low two bits carry the notification state (SLAB_RS_*): a
 * slab its owner put aside as full is handed back (through heap->notify)
 * by the first push onto it, so a full slab is never lost.
 *
 * Memory return: a slab whose last block comes back goes back to its
 * segment, and the purger (any thread: the slab's pstate arbitrates with
 * the owner) purges its pages once it has stayed unassigned for
 * HAKMEM_PURGE_DELAY_MS. A segment with no slab in use leaves its heap for
 * the lane's cache of empty segments (HAKMEM_TINY_SS_CACHE /
 * HAKMEM_POOL_SEG_CACHE) or, beyond it, is unmapped at once. malloc_trim
 * purges every unassigned slab and unmaps the whole cache.
 *
 * Utilisation tiers: a segment in use is HOT or DRAINING (SLAB_TIER_*). A
 * HOT segment whose share of slabs in use falls below
 * HAKMEM_SS_TIER_DOWN_THRESHOLD percent becomes DRAINING; a DRAINING one
 * whose share rises above HAKMEM_SS_TIER_UP_THRESHOLD is HOT again (the gap
 * is the hysteresis). A heap takes new slabs from its HOT segments first,
 * from DRAINING ones only when no HOT one has room, and maps a new segment
 * only when neither has: sparse segments drain and can be released. Tiers
 * change only where a slab is assigned or released (slow paths).
 *
 * Cap: a lane may cap the segments it has mapped (HAKMEM_TINY_SS_MAX_MB for
 * tiny, cached ones included); a heap that needs a segment beyond the cap
 * takes a cached one, reclaims abandoned ones, and otherwise fails (ENOMEM).
 *
 * Locks (per lane): orphan_lock, then lock (abandoned segments, the
 * segment cache); the heap pool's own lock (meta.h) nests inside neither.
 * Fast paths take no lock and do no atomic read-modify-write.
 */
#ifndef HAK_SLAB_H
#define HAK_SLAB_H

#include <pthread.h>

#include "internal.h"
#include "meta.h"
#include "stats.h"

#define SLAB_MAX_CLASSES 24
#define SLAB_DIV_SHIFT 40 /* see slab.div_magic */
#define SLAB_MAX_PER_SEG 32 /* slabs per segment at the smallest slab size (64 KiB) */

/* Remote-list notification states (low bits of slab.remote). */
enum {
    SLAB_RS_NORMAL = 0,    /* the owner has the slab on its avail list */
    SLAB_RS_NOTIFY = 1,    /* the owner put it aside as full: the next remote
                              free hands it back through owner->notify */
    SLAB_RS_NOTIFYING = 2, /* a remote freer is doing that right now */
    SLAB_RS_NEVER = 3,     /* abandoned: no owner to notify */
};
#define SLAB_RS_MASK ((uintptr_t)3)
/* The remote word: the number of blocks on the list in bits 48..63 (so the
 * owner takes the list without walking it: the blocks were last written by
 * the freeing thread, and a walk is one cache miss after the other), the
 * list's first block in bits 4..47 (user addresses are below 2^47: the
 * segment map covers no more; blocks are 16-aligned), the state in bits
 * 0..1. A slab holds fewer than 2^16 blocks (slab_lane_init checks it). */
#define SLAB_RC_SHIFT 48
#define SLAB_RPTR_MASK ((((uintptr_t)1 << SLAB_RC_SHIFT) - 1) & ~(uintptr_t)15)
static inline void *slab_remote_list(uintptr_t w) { return (void *)(w & SLAB_RPTR_MASK); }
static inline uint32_t slab_remote_count(uintptr_t w) { return (uint32_t)(w >> SLAB_RC_SHIFT); }

/* Purge states of a slab (slab.pstate). Unassigned slabs are CLEAN or
 * DIRTY; the purger takes DIRTY ones whose delay is over to PURGING, purges
 * their pages and sets CLEAN; slab_assign takes CLEAN or DIRTY to ASSIGNED
 * and skips PURGING ones. Fresh memory is CLEAN (zero). */
enum { SLAB_P_CLEAN = 0, SLAB_P_DIRTY = 1, SLAB_P_PURGING = 2, SLAB_P_ASSIGNED = 3 };

/* Where a slab is on its heap's lists. */
enum { SLAB_ON_NONE = 0, SLAB_ON_AVAIL = 1, SLAB_ON_FULL = 2 };

/* Utilisation tier of a segment (slab_segment.tier): NONE while it is empty
 * (new, or in the lane's cache), else HOT or DRAINING (see the top). */
enum { SLAB_TIER_NONE = 0, SLAB_TIER_HOT = 1, SLAB_TIER_DRAINING = 2 };

struct slab_heap;
struct slab_lane;

/* Invariant (owner's view): used == blocks handed out - blocks returned to
 * the free list (locally, or collected from the remote list); blocks still
 * on the remote list, batched in another thread's remote buffer or held in
 * any thread's block cache count as used. Unassigned: block_size == 0,
 * carved == 0.
 *
 * Three cache lines by who writes them and who reads them. The first is
 * the owner's: everything its malloc and free touch (the free list, the
 * count, and its copy of the slab's shape for the free's checks). The
 * second is read by other threads' frees: the owner and the same shape
 * (the _mt fields), written only at assignment, release and carve. The
 * third is written by other threads. The free fast path tells the owner
 * by the segment's heap (segment header, read-mostly), so another thread's
 * free never reads the owner's line: with the owner's free list on the
 * line a remote free read, a producer/consumer pair moved that line
 * between the two cores twice per block (the owner's pop wrote it, the
 * consumer's free read it). */
struct slab {
    /* line 1: the owner's */
    void *free;                      /* local free list (owner only) */
    uint32_t div_inv;                /* see slab_block_index_ok */
    uint32_t ncarved;                /* blocks carved so far */
    int32_t over;                    /* used - fast_floor (slab_used): the free fast
                                        path decrements it and goes on while it
                                        stays >= 0, one instruction and a branch */
    uint32_t fast_floor;             /* the owner's frees take the fast path while
                                        used > this: 0 for the heap's current slab
                                        (it stays current when empty), 1 for the
                                        others on the avail list (their last free
                                        may release them), seven eighths of its
                                        blocks on the full list (the slow path
                                        moves it to avail below that: see
                                        full_floor), SLAB_FLOOR_NONE when unowned */
    uint32_t block_size;             /* bytes; 0 when unassigned */
    uint32_t carved;                 /* bytes carved into blocks so far */
    uint32_t capacity;               /* bytes usable for blocks (multiple of block_size) */
    uint8_t cls;                     /* size class */
    uint8_t where;                   /* SLAB_ON_* */
    uint8_t index;                   /* slab number in its segment */
    uint8_t div_rot;                 /* see slab_block_index_ok */
    struct slab *next, *prev;        /* heap's avail or full list of the class */
    /* line 2: read by any thread's free; the shape is the owner's, copied
     * (slab_shape_set, slab_carved_set) */
    _Alignas(64) struct slab_heap *_Atomic owner; /* owner heap, NULL when abandoned */
    uint32_t div_inv_mt;             /* div_inv */
    _Atomic uint32_t ncarved_mt;     /* ncarved (relaxed: the owner carves while other
                                        threads free) */
    uint32_t block_size_mt;          /* block_size */
    uint8_t cls_mt;                  /* cls */
    uint8_t div_rot_mt;              /* div_rot */
    /* line 3: written by other threads */
    _Alignas(64) _Atomic uintptr_t remote; /* count | remote free list | SLAB_RS_* */
    struct slab *notify_next;        /* in owner->notify */
    _Atomic uint8_t in_notify;       /* 1 from a freer's push onto owner->notify
                                        until the owner drains it */
    _Atomic uint8_t pstate;          /* SLAB_P_*: the purger's view of the slab */
    uint64_t freed_at;               /* ns: when it was last released (DIRTY) */
    /* line 4: padding to a power of two (slab_of: a shift and a mask) */
    _Alignas(64) uint8_t pad;
};
#define SLAB_RECORD_SHIFT 8
_Static_assert(sizeof(struct slab) == (size_t)1 << SLAB_RECORD_SHIFT,
               "four cache lines, a power of two (slab_of)");
_Static_assert(offsetof(struct slab, next) + sizeof(void *) * 2 <= 64 &&
                   offsetof(struct slab, owner) == 64 && offsetof(struct slab, remote) == 128,
               "the owner's, the freers' and the remote writers' fields on their own lines");

#define SLAB_FLOOR_NONE ((uint32_t)1 << 30) /* above any used count */

/* used (see struct slab), kept as over = used - fast_floor. */
static inline uint32_t slab_used(const struct slab *sl) {
    return (uint32_t)(sl->over + (int32_t)sl->fast_floor);
}
static inline void slab_used_set(struct slab *sl, uint32_t used) {
    sl->over = (int32_t)used - (int32_t)sl->fast_floor;
}
static inline void slab_used_add(struct slab *sl, int32_t n) { sl->over += n; }
static inline void slab_floor_set(struct slab *sl, uint32_t floor) {
    sl->over += (int32_t)sl->fast_floor - (int32_t)floor;
    sl->fast_floor = floor;
}

/* The slab's shape: the owner's fields and the copy other threads read.
 * block_size is odd * 2^div_rot (every class is a multiple of 16, so
 * div_rot >= 4); div_inv is the odd factor's inverse modulo 2^32. */
static inline void slab_shape_set(struct slab *sl, uint32_t block_size, uint8_t cls) {
    uint8_t rot = block_size ? (uint8_t)HAK_CTZ64(block_size) : 0;
    uint32_t odd = block_size >> rot, inv = odd; /* Newton: each step doubles the bits */
    for (int i = 0; i < 5; i++) inv *= 2 - odd * inv;
    sl->block_size = block_size;
    sl->div_inv = inv;
    sl->div_rot = rot;
    sl->cls = cls;
    sl->block_size_mt = block_size;
    sl->div_inv_mt = inv;
    sl->div_rot_mt = rot;
    sl->cls_mt = cls;
}
static inline void slab_carved_set(struct slab *sl, uint32_t carved) {
    sl->carved = carved;
    sl->ncarved = sl->block_size ? carved / sl->block_size : 0;
    atomic_store_relaxed(&sl->ncarved_mt, sl->ncarved);
}

/* Whether the block offset off (in its slab) starts one of the first n
 * blocks of a slab of shape (inv, rot): off times the inverse of the
 * block size's odd factor, rotated right by rot, is off / block_size when
 * the block size divides off, and at least 2^32 / block_size otherwise (the
 * low rot bits, not all zero, rotate to the top; or the odd factor does
 * not divide off), so one compare checks "a block start" and "carved".
 * Four instructions and no division; n = 0 (an unassigned slab) refuses
 * every offset. Exact for n <= 2^32 / block_size. */
static HAK_ALWAYS_INLINE bool slab_block_index_ok(uint32_t off, uint32_t inv, unsigned rot,
                                                  uint32_t n) {
    uint32_t y = off * inv;
    y = (y >> rot) | (y << ((32 - rot) & 31));
    return y < n;
}

struct slab_segment {
    /* line 1: read by every free, written when the segment changes hands */
    uint32_t magic;                  /* SLAB_SEG_MAGIC */
    int32_t node;                    /* NUMA node of the thread that mapped it, -1
                                        when placement is off (HAKMEM_NUMA) */
    struct slab_lane *lane;          /* the lane this segment belongs to */
    struct slab_heap *_Atomic heap;  /* owner, NULL when abandoned or cached; the
                                        owner of every slab of it in use (the free
                                        fast path's ownership test) */
    /* line 2: the owner's (slow paths) */
    _Alignas(64) uint32_t free_slabs; /* bit i: slab i unassigned (slab 0 never) */
    struct slab_segment *next, *prev;/* heap's segment lists, or the lane's
                                        abandoned list or cache */
    struct slab_segment *all_next, *all_prev; /* the lane's list of all its
                                        segments (under the lane's lock) */
    uint8_t tier;                    /* SLAB_TIER_*; which heap list holds it follows
                                        from free_slabs and tier (heap_seg_list) */
    struct slab slabs[SLAB_MAX_PER_SEG]; /* slabs[0] describes the header slab */
};
#define SLAB_SEG_MAGIC 0x534c4142u /* "SLAB" */
_Static_assert(sizeof(struct slab_segment) <= 65536, "the header fits the smallest slab");

struct slab_list {
    struct slab *head, *tail;
};

/* Remote-free batching: a thread that frees another thread's blocks keeps
 * them in a small table of chains, one chain per slab (a slot chosen by
 * the slab's address), and pushes a whole chain onto the slab's remote
 * list with one CAS: when the chain holds SLAB_RBUF_BYTES or
 * SLAB_RBUF_BLOCKS, when a block of another slab needs its slot, every 64
 * allocation slow paths of the thread, at malloc_trim and at thread exit.
 * A block in a chain counts as used by its slab (the slab cannot be
 * released under it) and carries the freed-block mark (a second free of
 * it is reported). A thread that stops freeing keeps its chains until one
 * of those events: at most SLAB_RBUF_SLOTS chains of under SLAB_RBUF_BYTES
 * each, which keep at most as many slabs from going back to their
 * segments. Blocks that would make chains of fewer than
 * SLAB_RBUF_MIN_BLOCKS (above 1 KiB: the pool lane's, whose slabs are
 * 256 KiB) are pushed one by one: there a chain saves little and would
 * keep a big slab. */
#define SLAB_RBUF_SLOTS 32   /* a power of two */
#define SLAB_RBUF_BYTES 4096
#define SLAB_RBUF_BLOCKS 32
#define SLAB_RBUF_MIN_BLOCKS 4

struct slab_rbuf {
    struct slab *sl;   /* the chain's slab (another heap's); NULL: slot empty */
    void *head, *tail; /* the chain, linked as on a free list; tail's link unset */
    uint32_t n;        /* blocks on the chain */
    uint32_t cap;      /* blocks at which it is pushed */
};

struct slab_heap {
    struct slab *cur[SLAB_MAX_CLASSES]; /* current slab of each class; never NULL
                                           (the sentinel slab when none) */
    struct stats_batch stats;           /* counters not yet flushed */
    uint32_t slow_calls;                /* slow paths since the last stats flush */
    uint32_t stat_ops;                  /* -Dstats: fast-path operations since then */
    struct slab_lane *lane;             /* the lane this heap belongs to */
    struct slab_list avail[SLAB_MAX_CLASSES]; /* slabs that may have free blocks;
                                                 slabs back from full go last, so
                                                 they gather frees before reuse */
    struct slab_list full[SLAB_MAX_CLASSES];  /* slabs put aside as full (NOTIFY) */
    struct slab_segment *segs;          /* HOT segments with an unassigned slab */
    struct slab_segment *segs_drain;    /* DRAINING segments with an unassigned slab */
    struct slab_segment *segs_full;     /* segments with none (either tier) */
    uint32_t kind;                      /* SLAB_HEAP_* */
    /* The block cache (lanes with a tc_opt): blocks this thread freed, of
     * any heap's slabs, per class, LIFO, linked through their first word
     * and marked freed. They still count as used by their slabs: a free
     * into the cache touches no slab (so it needs no ownership test) and
     * the next malloc of the class pops the block without looking at a
     * slab. At most tc_max[cls] blocks (a few: each may keep a slab in
     * use); a free that finds the cache full goes where it went without
     * the cache (its slab's list, or the remote path); malloc_trim and
     * thread exit give the cache's blocks back to their slabs (own slabs'
     * lists, other heaps' through the remote path). */
    void *tc[SLAB_MAX_CLASSES];
    int64_t tc_room[SLAB_MAX_CLASSES];  /* blocks tc[cls] may take yet (eight bytes,
                                           as tc and the counters: one index serves
                                           all three on the fast paths) */
    uint16_t tc_max[SLAB_MAX_CLASSES];  /* tc_room when empty; 0: no block cache */
    /* a consumer's cache turns itself off (slab_free_slow_tc): */
    uint64_t tc_overflow_allocs[SLAB_MAX_CLASSES]; /* the class's batched alloc
                                                      count at its last overflow */
    uint8_t tc_idle_overflows[SLAB_MAX_CLASSES];   /* overflows since, with no
                                                      malloc of the class */
    uint32_t rbuf_used;                 /* slots of rbuf holding a chain */
    struct slab_rbuf rbuf[SLAB_RBUF_SLOTS]; /* other heaps' blocks this thread freed,
                                               not pushed yet (see above) */
    /* the only field other threads write, on a line of its own */
    _Alignas(64) struct slab *_Atomic notify; /* full slabs that got a remote free */
};

enum { SLAB_HEAP_LIVE = 1, SLAB_HEAP_EMPTY = 2, SLAB_HEAP_DEAD = 3, SLAB_HEAP_ORPHAN = 4 };

/* A lane built on the engine: configuration first, then mutable state. */
struct slab_lane {
    uint8_t id;                         /* lane id (segment map byte) */
    uint8_t slab_shift;                 /* log2 of the slab size */
    uint8_t nclasses;
    const uint32_t *class_size;         /* nclasses block sizes, ascending */
    uint32_t carve_bytes;               /* bytes carved per refill of a slab ... */
    uint32_t carve_min;                 /* ... but at least this many blocks */
    int cache_opt;                      /* option: empty segments kept (enum hak_opt_id) */
    int cap_opt;                        /* option: MiB cap on the segments mapped, or 0
                                           (HAK_OPT_MODE, never a cap) for no cap */
    bool use_cap_mid;                   /* keep the policy's cap_mid empty slabs per class */
    int tc_opt;                         /* option: KiB of freed blocks per class in a
                                           heap's block cache, or 0 (HAK_OPT_MODE, never
                                           a cache size) for none */
    uint16_t tc_cap;                    /* blocks per class in the cache at most, however
                                           small they are (each may keep a slab in use) */
    struct slab_heap **(*tls)(void);    /* the calling thread's TLS heap pointer (for a
                                           thread whose first call is a free) */
    /* state */
    pthread_mutex_t lock;               /* abandoned, cache */
    pthread_mutex_t orphan_lock;        /* orphan heap */
    struct slab_segment *abandoned;
    struct slab_segment *cache;         /* empty segments, mapped, no owner */
    struct slab_segment *all;           /* every mapped segment, for the purger */
    uint32_t cached;                    /* segments on cache */
    uint32_t mapped;                    /* segments mapped (on all, or being mapped:
                                           counted before the mmap, against the cap) */
    struct meta_pool heaps;             /* the lane's per-thread heap structs */
    struct slab_heap orphan;            /* for threads whose heap is gone */
};

/* The heap every thread starts with, and the one after its exit. */
extern HAK_HIDDEN struct slab_heap slab_heap_empty;
extern HAK_HIDDEN struct slab_heap slab_heap_dead;

/* Sets up a lane's state (its init; single-threaded) and registers the
 * lane with the engine's purger. */
void slab_lane_init(struct slab_lane *L);

/* Slow paths. tls is the address of the lane's TLS heap pointer. */
HAK_NOINLINE HAK_COLD void *slab_alloc_slow(struct slab_lane *L, struct slab_heap **tls,
                                            unsigned cls);
HAK_NOINLINE void slab_free_slow(struct slab *sl, void *p, struct slab_heap *me,
                                 hak_call_t call);
/* (no segment argument: the fast path keeps fewer values live across its
 * checks) */
HAK_NOINLINE void slab_free_slow_tc(void *p, struct slab_heap *me, hak_call_t call);
void *slab_alloc_class(struct slab_lane *L, struct slab_heap **tls, unsigned cls);

size_t slab_usable_size(const void *p, uintptr_t seg, hak_call_t call);
/* The smallest class of L holding size bytes whose blocks are aligned to
 * align (a power of two) by construction: block size a multiple of align
 * (slabs are aligned to their size). L->nclasses when there is none. */
unsigned slab_class_aligned(const struct slab_lane *L, size_t size, size_t align);
/* The slab of p (in the segment at seg). */
static inline struct slab *slab_of(const void *p, uintptr_t seg, unsigned slab_shift) {
    /* index * sizeof(struct slab) with one shift and one mask: the record
     * is 1 << SLAB_RECORD_SHIFT bytes, the slab at least that */
    uintptr_t at = ((uintptr_t)p >> (slab_shift - SLAB_RECORD_SHIFT)) &
                   (((uintptr_t)HAK_CHUNK - 1) >> (slab_shift - SLAB_RECORD_SHIFT)) &
                   ~(((uintptr_t)1 << SLAB_RECORD_SHIFT) - 1);
    return (struct slab *)((char *)((struct slab_segment *)seg)->slabs + at);
}
void slab_thread_exit(struct slab_lane *L, struct slab_heap **tls);
/* Pushes the remote-free chains of the calling thread (heap *tls), then
 * takes back what exited threads' segments got meanwhile. */
size_t slab_trim(struct slab_lane *L, struct slab_heap **tls);
/* Flushes h's batched counters (h: the calling thread's heap). */
void slab_flush_stats(struct slab_lane *L, struct slab_heap *h);
void slab_fork_prepare(struct slab_lane *L);
void slab_fork_parent(struct slab_lane *L);
/* In the child: releases the locks and repairs what a thread of the
 * parent left half-done on h, the calling thread's heap. */
void slab_fork_child(struct slab_lane *L, struct slab_heap *h);

/* Defines the lane-contract functions that a lane on the engine forwards
 * unchanged: <name>_thread_exit, _trim, _fork_prepare, _fork_parent,
 * _fork_child and _flush_stats, for the engine lane L and TLS pointer tls. */
#define SLAB_LANE_FORWARDERS(name, L, tls)                                      \
    static void name##_thread_exit(void) { slab_thread_exit(&(L), &(tls)); }   \
    static size_t name##_trim(void) { return slab_trim(&(L), &(tls)); }        \
    static void name##_fork_prepare(void) { slab_fork_prepare(&(L)); }         \
    static void name##_fork_parent(void) { slab_fork_parent(&(L)); }           \
    static void name##_fork_child(void) { slab_fork_child(&(L), (tls)); }      \
    static void name##_flush_stats(void) { slab_flush_stats(&(L), (tls)); }

/* ---- double-free marks --------------------------------------------------
 * A freed block's second word holds slab_free_key (every class is at least
 * 16 bytes); handing the block out clears it. A free that finds the mark is
 * a double free. The key is random per process, so no program data meets
 * it by accident (only a copy read out of a freed block could hold it).
 * One key for every block, not one mixed with the block's address: the
 * free fast path compares and stores it as it is. */
extern HAK_HIDDEN uintptr_t slab_free_key;

static inline uintptr_t *slab_mark_of(void *p) { return (uintptr_t *)p + 1; }
static inline uintptr_t slab_mark(const void *p) {
    (void)p;
    return slab_free_key;
}

/* ---- free-list links ---------------------------------------------------
 * A free block's first word links it to the next block of its list (the
 * slab's local list or its remote list). The hardened build (-Dsecure=true)
 * stores every link encoded, XORed with a random per-process key and with
 * the address of the word itself, and checks each link it follows: the
 * decoded link must stay inside the block's segment. So an overflow from
 * the block before cannot aim the list at memory of its choosing (it does
 * not know the key: what it writes decodes to a random address) and is
 * caught when the block is next handed out.
 * The key is per process rather than per heap because slabs and their lists
 * move between heaps (remote frees, adoption of an abandoned segment). The
 * default build stores links plain: both macros are the identity. */
#if HAK_SECURE
extern HAK_HIDDEN uintptr_t slab_link_key;
#define SLAB_LINK_ENCODE(next, at) ((void *)((uintptr_t)(next) ^ slab_link_key ^ (uintptr_t)(at)))
#else
#define SLAB_LINK_ENCODE(next, at) ((void *)(next))
#endif
#define SLAB_LINK_DECODE(word, at) SLAB_LINK_ENCODE(word, at)

/* -Dsecure: p, taken off a free list with decoded link next, was overwritten. */
HAK_NORETURN HAK_NOINLINE HAK_COLD void slab_link_corrupt(const void *p);

/* -Dsecure: checks the decoded link next of p, a block on a free list. */
static HAK_ALWAYS_INLINE void slab_link_check(void *p, void *next) {
    if (HAK_SECURE && HAK_UNLIKELY((((uintptr_t)next ^ (uintptr_t)p) >> HAK_CHUNK_SHIFT) != 0 &&
                                   next != NULL))
        slab_link_corrupt(p);
}

/* -Dstats=true: the fast paths flush their batch every STATS_EXACT_OPS
 * operations, so a snapshot from another thread is exact to within that
 * many operations per thread (the default build flushes on slow paths and
 * at thread exit). */
#define STATS_EXACT_OPS 64
HAK_NOINLINE HAK_COLD void slab_stats_exact_flush(struct slab_heap *h);

static HAK_ALWAYS_INLINE void slab_count_op(struct slab_heap *h) {
    if (HAK_STATS && HAK_UNLIKELY(++h->stat_ops >= STATS_EXACT_OPS)) slab_stats_exact_flush(h);
}

/* ---- fast paths (inlined by the lanes' <lane>_fast.h) ------------------ */

/* The block cache is built except in the hardened build, whose free lists
 * are all checked (free-list links above); there the lanes free onto
 * their slabs' lists (slab_free_fast) and never look at the cache. */
#define SLAB_TC_BUILT (!HAK_SECURE)

/* Pops a block of class cls from the heap's current slab; NULL when the
 * slab has none (the caller then takes its slow path). */
static HAK_ALWAYS_INLINE void *slab_pop_fast(struct slab_heap *h, unsigned cls) {
    struct slab *sl = h->cur[cls];
    void *p = sl->free;
    if (HAK_LIKELY(p != NULL)) {
        void *next = SLAB_LINK_DECODE(*(void **)p, p);
        slab_link_check(p, next);
        sl->free = next;
        *slab_mark_of(p) = 0;
        sl->over++; /* used++ */
        if (!HAK_BENCH_MINIMAL) h->stats.cls[HAK_CCTR_allocs][cls]++;
        slab_count_op(h);
    }
    return p;
}

/* A malloc that found the block cache empty (the lanes' <lane>_alloc_miss):
 * a block of the current slab, else the slow path. */
static HAK_ALWAYS_INLINE void *slab_alloc_cur(struct slab_lane *L, struct slab_heap **tls,
                                              unsigned cls) {
    void *p = slab_pop_fast(*tls, cls);
    if (HAK_LIKELY(p != NULL)) return p;
    return slab_alloc_slow(L, tls, cls);
}

/* Pops a block of class cls from heap h's block cache; NULL when it has
 * none (lanes without the cache always). The block counts as used by its
 * slab already (struct slab_heap). */
static HAK_ALWAYS_INLINE void *slab_tc_pop(struct slab_heap *h, unsigned cls) {
    if (!SLAB_TC_BUILT) return NULL;
    void *p = h->tc[cls];
    if (HAK_LIKELY(p != NULL)) {
        h->tc[cls] = SLAB_LINK_DECODE(*(void **)p, p);
        h->tc_room[cls]++;
        *slab_mark_of(p) = 0;
        if (!HAK_BENCH_MINIMAL) h->stats.cls[HAK_CCTR_allocs][cls]++;
        slab_count_op(h);
    }
    return p;
}

/* Frees p in the segment at seg, whose slabs are 1 << slab_shift bytes,
 * onto its slab's list (a lane's free without the block cache). The fast
 * case: p starts a carved block
 * of a slab of heap h that keeps more blocks out than its fast_floor (0
 * for the current slab, 1 for the others, most of its blocks on the full
 * list), and p carries no double-free mark; then p goes on its slab's
 * list. Everything else (and every misuse) goes to slab_free_slow, which
 * checks it all again. */
static HAK_ALWAYS_INLINE void slab_free_fast(void *p, uintptr_t seg, unsigned slab_shift,
                                             struct slab_heap *h, hak_call_t call) {
    /* The owner test comes before any read of the slab: another thread's
     * free does not read the owner's line (the fence keeps the compiler
     * from hoisting those reads above the test). */
    if (HAK_LIKELY(atomic_load_relaxed(&((struct slab_segment *)seg)->heap) == h)) {
        atomic_signal_fence(memory_order_acq_rel);
        struct slab *sl = slab_of(p, seg, slab_shift);
        uint32_t off = (uint32_t)((uintptr_t)p & (((uintptr_t)1 << slab_shift) - 1));
        uintptr_t mark = slab_mark(p);
        if (HAK_LIKELY(slab_block_index_ok(off, sl->div_inv, sl->div_rot, sl->ncarved) &&
                       *slab_mark_of(p) != mark)) {
            if (HAK_LIKELY(--sl->over >= 0)) { /* used-- stays above fast_floor */
                *slab_mark_of(p) = mark;
                *(void **)p = SLAB_LINK_ENCODE(sl->free, p);
                sl->free = p;
                if (!HAK_BENCH_MINIMAL) h->stats.cls[HAK_CCTR_frees][sl->cls]++;
                slab_count_op(h);
                return;
            }
            /* (the fence: a reload here, rather than the old value kept in
             * a register, lets the decrement and its test be one
             * read-modify-write and a branch) */
            atomic_signal_fence(memory_order_seq_cst);
            sl->over++;
        }
    }
    slab_free_slow(slab_of(p, seg, slab_shift), p, h, call);
}

/* Frees p in the segment at seg, whose slabs are 1 << slab_shift bytes, in
 * a lane with the block cache: whichever heap owns the slab, p goes on the
 * calling thread's cache of its class (it stays used by its slab) when the
 * cache has room, p starts a carved block and carries no double-free mark.
 * The checks read only the shape other threads may read, so no ownership
 * test is needed. Everything else goes to slab_free_slow_tc. */
static HAK_ALWAYS_INLINE void slab_free_fast_tc(void *p, uintptr_t seg, unsigned slab_shift,
                                                struct slab_heap *h, hak_call_t call) {
    if (!SLAB_TC_BUILT) {
        slab_free_fast(p, seg, slab_shift, h, call);
        return;
    }
    const struct slab *sl = slab_of(p, seg, slab_shift);
    unsigned cls = sl->cls_mt;
    uint32_t off = (uint32_t)((uintptr_t)p & (((uintptr_t)1 << slab_shift) - 1));
    uintptr_t mark = slab_mark(p);
    /* (room is tested before it is written: h may be one of the static
     * heaps every thread without a heap of its own shares, whose room is
     * 0, and a decrement undone on the slow path raced between them) */
    if (HAK_LIKELY(slab_block_index_ok(off, sl->div_inv_mt, sl->div_rot_mt,
                                       atomic_load_relaxed(&sl->ncarved_mt)) &&
                   *slab_mark_of(p) != mark && h->tc_room[cls] > 0)) {
        /* (the fence: the decrement is one read-modify-write of memory
         * rather than a store of the value the test loaded) */
        atomic_signal_fence(memory_order_seq_cst);
        h->tc_room[cls]--;
        *slab_mark_of(p) = mark;
        *(void **)p = SLAB_LINK_ENCODE(h->tc[cls], p);
        h->tc[cls] = p;
        if (!HAK_BENCH_MINIMAL) h->stats.cls[HAK_CCTR_frees][cls]++;
        slab_count_op(h);
        return;
    }
    slab_free_slow_tc(p, h, call);
}

#endif /* HAK_SLAB_H */
