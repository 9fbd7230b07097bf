/*
 * hakmem.h: the public API of the hakmem allocator.
 *
 * With the default build (-Dinterpose=true) the library also exports the
 * standard malloc family (malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size, malloc_trim, malloc_stats, malloc_info, mallinfo,
 * mallinfo2, mallopt and glibc's __libc_* aliases). The hak_* calls below are
 * always exported, so a program can use hakmem beside another allocator
 * (-Dinterpose=false) or under a sanitizer that owns malloc.
 *
 * Every hak_* call behaves exactly like its standard counterpart
 * (docs/ARCHITECTURE.md lists the rules, which follow glibc 2.36).
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAKMEM_VERSION_MAJOR 0
#define HAKMEM_VERSION_MINOR 1

/* Lane boundaries, constants of the build (sizes in bytes, inclusive upper
 * bounds): tiny serves [1, HAK_TINY_MAX], pool (HAK_TINY_MAX, HAK_POOL_MAX],
 * ace (HAK_POOL_MAX, HAK_ACE_MAX], huge everything above and every range
 * whose lane is not compiled in. */
#define HAK_TINY_MAX ((size_t)1024)
#define HAK_POOL_MAX ((size_t)32 * 1024)
#define HAK_ACE_MAX ((size_t)1024 * 1024)

/* Every lane maps memory in chunks of this size, aligned to it. */
#define HAK_CHUNK_SIZE ((size_t)2 * 1024 * 1024)

/* Lane ids, as hak_lane_of() reports them. */
enum hak_lane_id {
    HAK_LANE_NONE = 0, /* not hakmem's memory */
    HAK_LANE_TINY = 1,
    HAK_LANE_POOL = 2,
    HAK_LANE_ACE = 3,
    HAK_LANE_HUGE = 4,
    HAK_LANE_COUNT = 5
};

/* ---- The malloc family under hakmem's own names. -------------------- */
void *hak_malloc(size_t size);
void hak_free(void *ptr);
void *hak_calloc(size_t nmemb, size_t size);
void *hak_realloc(void *ptr, size_t size);
void *hak_reallocarray(void *ptr, size_t nmemb, size_t size);
int hak_posix_memalign(void **memptr, size_t alignment, size_t size);
void *hak_aligned_alloc(size_t alignment, size_t size);
void *hak_memalign(size_t alignment, size_t size);
void *hak_valloc(size_t size);
void *hak_pvalloc(size_t size);
size_t hak_usable_size(const void *ptr);
/* Runs every pending purge and empties every cache it safely can; returns 1
 * if memory was given back to the OS, 0 otherwise (as malloc_trim). */
int hak_trim(size_t pad);

/* ---- Introspection. ------------------------------------------------- */

/* Which lane owns ptr (any address inside one of hakmem's mappings), or
 * HAK_LANE_NONE for memory hakmem does not own. Never dereferences ptr. */
int hak_lane_of(const void *ptr);
/* The lane's name ("tiny", "pool", "ace", "huge"), or NULL for an id that is
 * not a lane. */
const char *hak_lane_name(int lane);
/* 1 when the lane is compiled into this build, 0 otherwise. */
int hak_lane_enabled(int lane);

/* Counters of one lane. All sizes in bytes. */
struct hak_lane_stats {
    uint64_t allocs;      /* successful allocations served by the lane */
    uint64_t frees;       /* blocks freed back to the lane */
    uint64_t live_bytes;  /* bytes of blocks currently allocated (block sizes) */
    uint64_t peak_bytes;  /* high-water mark of live_bytes */
    uint64_t os_mapped;   /* bytes the lane currently has mapped from the OS */
    uint64_t os_maps;     /* mappings made */
    uint64_t os_unmaps;   /* mappings released */
    uint64_t purges;      /* purge calls issued (MADV_DONTNEED / MADV_FREE) */
    uint64_t purged_bytes;/* bytes handed back by those purges */
};

/* Categories of the sampling profiler (HAKMEM_PROF=1). malloc and free are
 * timed one call in 2^HAKMEM_PROF_SAMPLE per thread, by the lane that served
 * them; the slow-path events below them are timed every time. */
enum hak_prof_category {
    HAK_PROF_ALLOC_TINY = 0, /* malloc served by the tiny lane (+ lane id - 1) */
    HAK_PROF_ALLOC_POOL,
    HAK_PROF_ALLOC_ACE,
    HAK_PROF_ALLOC_HUGE,
    HAK_PROF_FREE_TINY, /* free of a block of the tiny lane (+ lane id - 1) */
    HAK_PROF_FREE_POOL,
    HAK_PROF_FREE_ACE,
    HAK_PROF_FREE_HUGE,
    HAK_PROF_REFILL,       /* a slab lane's refill: its thread's slab had no block */
    HAK_PROF_REMOTE_DRAIN, /* a slab's list of remote frees taken by its owner */
    HAK_PROF_OS_MAP,       /* a mapping from the OS (mmap and the trim of its slack) */
    HAK_PROF_OS_UNMAP,     /* munmap */
    HAK_PROF_PURGE,        /* one madvise purge */
    HAK_PROF_COUNT
};

/* Timings of one category, in nanoseconds of CLOCK_MONOTONIC. */
struct hak_prof_stats {
    uint64_t count;    /* events timed */
    uint64_t total_ns; /* their sum */
    uint64_t avg_ns;   /* total_ns / count (0 when count is 0) */
    uint64_t p99_ns;   /* 99th percentile, from a log2 histogram (interpolated
                          within its power-of-two bucket, at most max_ns) */
    uint64_t max_ns;   /* the longest */
};

/* A snapshot of the allocator's counters. The struct carries its own size so
 * that it can grow: set size = sizeof(struct hak_stats) before the call. */
struct hak_stats {
    size_t size;                  /* in: sizeof(struct hak_stats) of the caller */
    uint64_t peak_rss;            /* bytes, the process's peak resident set */
    uint64_t rss;                 /* bytes, the current resident set */
    uint64_t purges_pending;      /* purges queued but not issued yet */
    struct hak_lane_stats lane[HAK_LANE_COUNT]; /* indexed by enum hak_lane_id;
                                                   [0] holds the totals */
    /* the profiler, all zero unless HAKMEM_PROF=1 */
    struct hak_prof_stats prof[HAK_PROF_COUNT]; /* indexed by enum hak_prof_category */
    /* Slab segments in use (tiny SuperSlabs, pool segments; not the cached
     * empty ones) by utilisation tier (HAKMEM_SS_TIER_*_THRESHOLD), indexed
     * by enum hak_lane_id, [0] the totals. */
    uint64_t segs_hot[HAK_LANE_COUNT];
    uint64_t segs_draining[HAK_LANE_COUNT];
    /* Empty slab segments kept mapped in each lane's cache
     * (HAKMEM_TINY_SS_CACHE, HAKMEM_POOL_SEG_CACHE), [0] the totals. */
    uint64_t segs_cached[HAK_LANE_COUNT];
};

/* Fills *st (up to st->size bytes). Returns 0, or EINVAL if st is NULL or
 * st->size is too small to hold the first field after size. */
int hak_stats_get(struct hak_stats *st);
/* Counters of one size class of a lane. */
struct hak_class_stats {
    uint64_t block_size;   /* bytes of each block of the class */
    uint64_t allocs;       /* blocks handed out */
    uint64_t frees;        /* blocks freed, by any thread */
    uint64_t refills;      /* allocations that took the slow path */
    uint64_t remote_frees; /* frees by a thread other than the block's owner */
    int64_t slabs;         /* slabs of the class in use */
    uint64_t live_bytes;   /* (allocs - frees) blocks, at block size */
    uint64_t peak_bytes;   /* high-water mark of live_bytes (as of the flushes of the
                              threads' counters: a lower bound) */
};

/* Fills *out for class cls (0, 1, ...) of lane. Returns 0, or ENOENT when
 * the lane is not built or has no such class. Counters of other threads
 * are flushed every few dozen slow paths and at thread exit. */
int hak_class_stats_get(int lane, unsigned cls, struct hak_class_stats *out);

/* The name of a profiler category ("alloc_tiny", ..., "purge"), or NULL. */
const char *hak_prof_name(int category);

/* Prints the report HAKMEM_STATS=1 prints at exit, to stderr. */
void hak_stats_print(void);

/* ---- The policy snapshot: what the learner (or a program) may tune. ----
 * Read by the lanes at refill and flush time, never on a fast path. A
 * published snapshot replaces the current one at once for new refills. */

#define HAK_POLICY_CLASSES 24

struct hak_policy {
    size_t size;                            /* in: sizeof(struct hak_policy) of the caller */
    uint32_t cap_mid[HAK_POLICY_CLASSES];   /* pool lane: empty slabs a thread keeps per
                                               class before giving them back (0 .. 64) */
    uint32_t cap_large[HAK_POLICY_CLASSES]; /* ACE lane: free blocks a thread caches per
                                               class (0 .. 32); the shared cache keeps
                                               twice as many */
    uint32_t wmax_large_pct;  /* ACE lane: a request may be served by any class up to
                                 this percentage of its size (100 .. 200), so that odd
                                 sizes share a few warm classes */
    uint32_t refill_batch;    /* ACE lane: blocks moved per shared-cache refill (1 .. 32) */
    uint32_t bigcache_mb;     /* huge lane: MiB of freed big mappings kept for reuse
                                 (0 .. 65536) */
};

/* Copies the current policy into *out (up to out->size bytes). Returns 0,
 * or EINVAL when out is NULL or out->size is too small. */
int hak_policy_get(struct hak_policy *out);
/* Publishes *in (a complete struct: in->size == sizeof(struct hak_policy)).
 * Returns 0, or EINVAL (and publishes nothing) when a value is out of its
 * range. */
int hak_policy_set(const struct hak_policy *in);

/* ---- The learner (the adaptive control engine; -Dlearn builds). ------
 * Runs only with HAKMEM_LEARN=1 or HAKMEM_MODE=learning|research. */

enum hak_learn_state {
    HAK_LEARN_OFF = 0,    /* not built, or not enabled */
    HAK_LEARN_LEARN = 1,  /* trying candidate policies window by window */
    HAK_LEARN_FROZEN = 2, /* converged: the policy is fixed, nothing is sampled */
    HAK_LEARN_CANARY = 3  /* a frozen learner re-checking the size distribution */
};

struct hak_learn_info {
    size_t size;             /* in: sizeof(struct hak_learn_info) of the caller */
    int built;               /* 1 when the learner is compiled in */
    int enabled;             /* 1 when HAKMEM_LEARN (or a learning mode) asks for it */
    int running;             /* 1 while its thread runs in this process */
    int state;               /* enum hak_learn_state */
    uint64_t threads_started;/* learner threads started by this process (a fork
                                child counts its own) */
    uint64_t windows;        /* windows closed */
    uint64_t trials;         /* candidate policies tried for a window */
    uint64_t adoptions;      /* candidates adopted (won by the margin, several
                                windows running) */
    uint64_t publishes;      /* snapshots published (trials, adoptions, reverts) */
    uint64_t relearns;       /* CANARY -> LEARN on a size-distribution shift */
    uint64_t refill_p99_ns;  /* p99 of sampled ACE refill latencies (P2), 0 if none */
};

/* Fills *out (up to out->size bytes). Returns 0, or EINVAL when out is NULL
 * or out->size is too small for the first field after size. */
int hak_learn_get(struct hak_learn_info *out);

/* ---- Call sites. -----------------------------------------------------
 * hak_alloc_cs / hak_free_cs are hak_malloc / hak_free that also record
 * their caller's return address in a fixed-size, lock-free table (nothing
 * is allocated to record). With HAKMEM_SITE_PROFILE=1, malloc samples its
 * own caller (1 in 2^HAKMEM_SITE_SAMPLE calls) into the same table. */

void *hak_alloc_cs(size_t size);
void hak_free_cs(void *ptr);

#define HAK_SITE_BINS 12 /* size histogram: <= 16 B, <= 64 B, ... (x4), > 16 MiB */

struct hak_site {
    uintptr_t addr;       /* the caller's return address */
    uint64_t allocs;      /* allocations recorded */
    uint64_t bytes;       /* bytes they asked for */
    uint64_t frees;       /* frees recorded from this address (hak_free_cs) */
    uint64_t hist[HAK_SITE_BINS]; /* allocations by size: bin i holds sizes up
                                     to 16 << 2i bytes; the last, the rest */
    int lane;             /* the lane that served most of them (enum hak_lane_id) */
};

/* Copies up to max sites, the most frequent first (by allocs, then frees),
 * into out; returns how many. */
unsigned hak_sites_get(struct hak_site *out, unsigned max);
/* Forgets every recorded site. */
void hak_sites_reset(void);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
