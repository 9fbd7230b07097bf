/*
 * stats.h: the counters, declared once (STYLE.md 12). Each lane has one set.
 * Slow paths (mapping, purging, the huge lane) add to the global atomics
 * directly; fast lanes count in a per-thread batch (struct stats_batch, kept
 * in the thread's heap, never in TLS) and flush it every STATS_BATCH_OPS
 * operations and at thread exit. With -Dbench_minimal everything folds away.
 */
#ifndef HAK_STATS_H
#define HAK_STATS_H

#include "internal.h"

#define HAK_COUNTERS(X)                                                        \
    X(allocs)        /* blocks handed out */                                   \
    X(frees)         /* blocks given back */                                   \
    X(alloc_bytes)   /* bytes handed out (block sizes), cumulative */          \
    X(free_bytes)    /* bytes given back, cumulative */                        \
    X(os_maps)       /* mmap calls that succeeded */                           \
    X(os_unmaps)     /* munmap calls */                                        \
    X(os_map_bytes)  /* bytes mapped, cumulative */                            \
    X(os_unmap_bytes)/* bytes unmapped, cumulative */                          \
    X(purges)        /* madvise purge calls */                                 \
    X(purged_bytes)  /* bytes purged, cumulative */

enum hak_counter {
#define X(name) HAK_CTR_##name,
    HAK_COUNTERS(X)
#undef X
        HAK_CTR_COUNT
};

struct stats_lane {
    _Atomic uint64_t c[HAK_CTR_COUNT];
    _Atomic uint64_t peak_live; /* high-water mark of alloc_bytes - free_bytes */
    _Atomic int64_t segs_tier[2]; /* slab segments in use: [0] HOT, [1] DRAINING
                                     (slab.c; counted in every build: slow paths) */
    _Atomic int64_t segs_cached;  /* empty slab segments in the lane's cache (slab.c) */
};
extern HAK_HIDDEN struct stats_lane stats_lanes[HAK_LANE_COUNT];

static inline void stats_add(int lane, enum hak_counter c, uint64_t v) {
    if (!HAK_BENCH_MINIMAL) atomic_fetch_add_relaxed(&stats_lanes[lane].c[c], v);
}

/* One allocation / free of `bytes` (block size) in lane; updates the peak. */
void stats_note_alloc(int lane, uint64_t bytes);
void stats_note_free(int lane, uint64_t bytes);
/* A thread's batch of allocations and frees of lane: their counts and
 * bytes, net = alloc_bytes - free_bytes and net_max its highest value
 * along the batch (>= net, >= 0), so that the peak stays exact for a
 * single thread. */
void stats_note_counts(int lane, uint64_t allocs, uint64_t alloc_bytes, uint64_t frees,
                       uint64_t free_bytes, int64_t net, int64_t net_max);
/* A mapping of `bytes` made / released by lane. */
void stats_note_map(int lane, uint64_t bytes);
void stats_note_unmap(int lane, uint64_t bytes);
void stats_note_purge(int lane, uint64_t bytes);

/* Per size class of a lane (lanes with classes: tiny, pool, ace). */
#define STATS_MAX_CLASSES 24
#define HAK_CLASS_COUNTERS(X)                                                  \
    X(allocs)       /* blocks of the class handed out */                      \
    X(frees)        /* blocks freed (by any thread) */                        \
    X(refills)      /* slow paths: the thread's current slab had no block */  \
    X(remote_frees) /* frees by a thread other than the owner */

enum hak_class_counter {
#define X(name) HAK_CCTR_##name,
    HAK_CLASS_COUNTERS(X)
#undef X
        HAK_CCTR_COUNT
};

struct stats_class {
    _Atomic uint64_t c[HAK_CCTR_COUNT];
    _Atomic int64_t slabs; /* slabs (or runs) of the class in use */
    _Atomic uint64_t peak_live; /* high-water mark of allocs - frees, in blocks, as
                                   seen at the flushes of per-thread batches */
};
extern HAK_HIDDEN struct stats_class stats_classes[HAK_LANE_COUNT][STATS_MAX_CLASSES];

/* A slab of lane's class cls was assigned (+1) or released (-1). */
static inline void stats_note_slabs(int lane, unsigned cls, int64_t delta) {
    if (!HAK_BENCH_MINIMAL)
        atomic_fetch_add_explicit(&stats_classes[lane][cls].slabs, delta, memory_order_relaxed);
}

/* A per-thread batch for fast lanes, kept in the thread's heap (never in
 * TLS): the fast paths add to it with plain increments; the lane flushes it
 * into the globals on its slow paths and at thread exit. Byte counts are
 * derived at the flush from the class sizes. */
struct stats_batch {
    uint64_t cls[HAK_CCTR_COUNT][STATS_MAX_CLASSES]; /* counts since the last flush */
};
void stats_batch_flush(struct stats_batch *b, int lane, const uint32_t *class_size,
                       unsigned nclasses);
/* One event of counter k for class cls (block size bytes) straight into the
 * globals, for a thread without a batch. */
void stats_batch_flush_one(int lane, enum hak_class_counter k, unsigned cls, uint64_t bytes);

/* Fills the public snapshot (stats.c). */
void stats_fill(struct hak_stats *st);

/* Writes the report (report.c): text or JSON (HAKMEM_STATS_FORMAT), to
 * HAKMEM_STATS_FILE, HAKMEM_LOG_FILE or stderr. */
void stats_report(void);
/* Starts the thread writing a report every HAKMEM_STATS_INTERVAL_MS (if
 * set); from the constructor. */
void stats_start_reporter(void);


#endif /* HAK_STATS_H */
