/*
 * dispatch.c: the only file of lib/ that names the lanes. Owns:
 *  - initialisation on demand (first call, constructor), fork handlers and
 *    the thread-exit key;
 *  - size -> lane (a table computed once from the lanes compiled in) and
 *    pointer -> lane (the segment map);
 *  - the malloc family (hak_* and, with -Dinterpose=true, the standard
 *    names and glibc's __libc_* aliases), with glibc 2.36's behaviour for
 *    every edge case (docs/ARCHITECTURE.md).
 * Locks: none of its own but the init spin (hak_init_state); fork_prepare
 * takes every lane's locks in lane-id order and then returns.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lane.h"
#include "options.h"
#include "os.h"
#include "policy.h"
#include "prof.h"
#include "segmap.h"
#include "sites.h"
#include "stats.h"

#include "modules/huge/huge_fast.h"
#if HAK_HAVE_TINY
#include "modules/tiny/tiny_fast.h"
#endif
#if HAK_HAVE_POOL
#include "modules/pool/pool_fast.h"
#endif
#if HAK_HAVE_ACE
#include "modules/ace/ace_fast.h"
#endif

/* The lanes compiled in, by id. */
static const struct hak_lane *const lanes_built[HAK_LANE_COUNT] = {
#if HAK_HAVE_TINY
    [HAK_LANE_TINY] = &tiny_lane,
#endif
#if HAK_HAVE_POOL
    [HAK_LANE_POOL] = &pool_lane,
#endif
#if HAK_HAVE_ACE
    [HAK_LANE_ACE] = &ace_lane,
#endif
    [HAK_LANE_HUGE] = &huge_lane,
};

/* lane_of_size[(size - 1) >> 10] for 1 <= size <= HAK_ACE_MAX: every lane
 * boundary is a multiple of 1 KiB, so no bucket straddles two lanes. */
#define SIZE_BUCKET_SHIFT 10
#define SIZE_BUCKETS (HAK_ACE_MAX >> SIZE_BUCKET_SHIFT)
_Static_assert(HAK_TINY_MAX % 1024 == 0 && HAK_POOL_MAX % 1024 == 0 && HAK_ACE_MAX % 1024 == 0,
               "lane boundaries fall on size-bucket boundaries");
static uint8_t lane_of_size[SIZE_BUCKETS];

_Atomic int hak_init_state;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static inline const struct hak_lane *lane_for_size(size_t size) {
    if (size > HAK_ACE_MAX) return &huge_lane;
    return lanes_built[lane_of_size[(size - 1) >> SIZE_BUCKET_SHIFT]];
}

/* ---- initialisation, fork, thread exit -------------------------------- */

static void fork_prepare(void) {
    for (int id = 1; id < HAK_LANE_COUNT; id++)
        if (lanes_built[id] && lanes_built[id]->fork_prepare) lanes_built[id]->fork_prepare();
    policy_fork_prepare(); /* after the lanes: a controller's lock comes first */
}

static void fork_parent(void) {
    policy_fork_parent();
    for (int id = HAK_LANE_COUNT - 1; id > 0; id--)
        if (lanes_built[id] && lanes_built[id]->fork_parent) lanes_built[id]->fork_parent();
}

static void fork_child(void) {
    policy_fork_child();
    for (int id = HAK_LANE_COUNT - 1; id > 0; id--)
        if (lanes_built[id] && lanes_built[id]->fork_child) lanes_built[id]->fork_child();
    os_fork_child();
}

static void thread_exit(void *arg) {
    (void)arg;
    for (int id = 1; id < HAK_LANE_COUNT; id++)
        if (lanes_built[id] && lanes_built[id]->thread_exit) lanes_built[id]->thread_exit();
}

/* The calling thread's batched counters into the globals. */
static void flush_my_stats(void) {
    for (int id = 1; id < HAK_LANE_COUNT; id++)
        if (lanes_built[id] && lanes_built[id]->flush_stats) lanes_built[id]->flush_stats();
}

static void make_thread_key(void) { pthread_key_create(&thread_key, thread_exit); }

static void malloc_configure(void);

/* Phase 1: everything an allocation needs, without allocating. */
static int init_core(void) {
    options_defaults();
    options_read_env();
    hak_verbose_on = hak_opt(HAK_OPT_VERBOSE) != 0;
    policy_init();
    int err = os_init();
    if (!err) err = segmap_init();
    for (int id = 1; id < HAK_LANE_COUNT && !err; id++)
        if (lanes_built[id]) err = lanes_built[id]->init();
    if (err) return err;
    malloc_configure(); /* after segmap_init: it reads the map's limit */
    for (size_t b = 0; b < SIZE_BUCKETS; b++) {
        size_t size = (b << SIZE_BUCKET_SHIFT) + 1; /* every size of the bucket maps alike */
        uint8_t id = HAK_LANE_HUGE;
        for (int l = 1; l < HAK_LANE_COUNT; l++) {
            const struct hak_lane *lane = lanes_built[l];
            if (lane && lane->id != HAK_LANE_HUGE && size > lane->min_size &&
                size <= lane->max_size) {
                id = lane->id;
                break;
            }
        }
        lane_of_size[b] = id;
    }
    os_set_release_hook(hak_release_caches); /* DESIGN.md 4: before giving up */
    return 0;
}

bool hak_init_slow(void) {
    int expected = HAK_INIT_NONE;
    if (atomic_compare_exchange_strong_explicit(&hak_init_state, &expected, HAK_INIT_RUNNING,
                                                memory_order_acquire, memory_order_acquire)) {
        int err = init_core();
        if (err) {
            atomic_store_release(&hak_init_state, HAK_INIT_FAILED);
            hak_log("cannot initialise (error %d): every allocation will fail", err);
            return false;
        }
        atomic_store_release(&hak_init_state, HAK_INIT_READY);
        /* Phase 2: these may allocate, which now works. */
        pthread_once(&thread_key_once, make_thread_key);
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        hak_verbose("initialised: page size %zu, lanes:%s%s%s huge", os_page_size,
                    lanes_built[HAK_LANE_TINY] ? " tiny" : "",
                    lanes_built[HAK_LANE_POOL] ? " pool" : "",
                    lanes_built[HAK_LANE_ACE] ? " ace" : "");
        return true;
    }
    /* Another thread is initialising (phase 1 never allocates, so this is
     * never the same thread): wait for it. */
    while ((expected = atomic_load_acquire(&hak_init_state)) == HAK_INIT_RUNNING) sched_yield();
    return expected == HAK_INIT_READY;
}

/* Called by a lane the first time a thread gets per-thread state, so that
 * the lane's thread_exit runs when the thread ends. */
void hak_thread_attach(void);
void hak_thread_attach(void) {
    /* once, even for a thread that races the initialising one past READY */
    pthread_once(&thread_key_once, make_thread_key);
    pthread_setspecific(thread_key, (void *)1);
}

/* HAKMEM_VERBOSE: the lanes built, their ranges, the options that differ
 * from their defaults. */
static void log_configuration(void) {
    if (HAK_BENCH_MINIMAL || !hak_verbose_on) return;
    for (int id = 1; id < HAK_LANE_COUNT; id++) {
        const struct hak_lane *l = lanes_built[id];
        if (l && id != HAK_LANE_HUGE)
            hak_log("lane %s: (%zu, %zu] bytes, %u classes", l->name, l->min_size, l->max_size,
                    l->nclasses);
    }
    hak_log("lane huge: everything else");
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        char v[256];
        if (options_value_text(i, v, sizeof v)) hak_log("option %s=%s", options_table[i].name, v);
    }
}

/* The environment is complete by now: read the options again. */
HAK_CONSTRUCTOR static void hak_constructor(void) {
    if (!hak_ensure_init()) return;
    options_read_env();
    hak_verbose_on = hak_opt(HAK_OPT_VERBOSE) != 0;
    policy_init(); /* the options may have changed its defaults */
    malloc_configure();
    policy_enable_controller(); /* the C library is ready for its thread */
    os_numa_init(); /* libnuma allocates: only now, with hakmem ready */
    if (!HAK_BENCH_MINIMAL && hak_opt(HAK_OPT_HELP)) options_print_help();
    log_configuration();
    stats_start_reporter();
}

HAK_DESTRUCTOR static void hak_destructor(void) {
    if (!HAK_BENCH_MINIMAL && hak_verbose_on) hak_log_event_flush();
    if (!HAK_BENCH_MINIMAL && atomic_load_acquire(&hak_init_state) == HAK_INIT_READY &&
        hak_opt(HAK_OPT_STATS)) {
        flush_my_stats();
        stats_report();
    }
}

size_t hak_release_caches(void) {
    size_t bytes = 0;
    for (int id = 1; id < HAK_LANE_COUNT; id++)
        if (lanes_built[id] && lanes_built[id]->trim) bytes += lanes_built[id]->trim();
    /* after the lanes' trims: what they release (ACE's cached blocks freed
     * into page runs) is dirty memory with a purge scheduled */
    return bytes + os_purge_all();
}

/* ---- allocation ------------------------------------------------------- */

/* An allocation failed: release what the lanes cache and try once more. */
static HAK_NOINLINE HAK_COLD void *alloc_retry(const struct hak_lane *lane, size_t size,
                                               size_t align, bool *zeroed) {
    if (size <= HAK_MAX_REQUEST && hak_release_caches() > 0) {
        void *p = align ? lane->alloc_aligned(size, align, zeroed) : lane->alloc(size, zeroed);
        if (p) return p;
    }
    errno = ENOMEM;
    return NULL;
}

static HAK_NOINLINE void *alloc_generic(size_t size, bool *zeroed) {
    if (HAK_UNLIKELY(!hak_ensure_init())) {
        errno = ENOMEM;
        return NULL;
    }
    if (HAK_UNLIKELY(size == 0)) size = 1;
    const struct hak_lane *lane = lane_for_size(size);
    void *p = lane->alloc(size, zeroed);
    if (HAK_UNLIKELY(p == NULL)) p = alloc_retry(lane, size, 0, zeroed);
    return p;
}

/* malloc's body, inlined into hak_malloc and the sampling path. */
static HAK_ALWAYS_INLINE void *malloc_inline(size_t size) {
#if HAK_HAVE_TINY
    if (HAK_LIKELY(size <= HAK_TINY_MAX)) return tiny_alloc_fast(size);
#endif
#if HAK_HAVE_POOL
    if (HAK_LIKELY(size - (HAK_TINY_MAX + 1) < HAK_POOL_MAX - HAK_TINY_MAX))
        return pool_alloc_fast(size);
#endif
#if HAK_HAVE_ACE
    if (HAK_LIKELY(size - (HAK_POOL_MAX + 1) < HAK_ACE_MAX - HAK_POOL_MAX))
        return ace_alloc_fast(size);
#endif
    return alloc_generic(size, NULL);
}

/* The ranges hak_malloc sends to the lanes' inline fast paths: the lane
 * boundaries, or empty ranges with HAKMEM_SITE_PROFILE=1 or HAKMEM_PROF=1,
 * so that every call falls through to malloc_generic, which samples it.
 * They take the place of the constants in the same comparisons, so with
 * sampling off malloc runs the same instructions as without it (an
 * immediate operand becomes a memory operand). Likewise fast_free_limit
 * takes the place of the segment map's limit in hak_free: 0 with
 * HAKMEM_PROF=1, so that every free reaches free_generic. Written only at
 * initialisation (first call, after the segment map exists; constructor). */
static size_t fast_tiny_max = HAK_TINY_MAX;
static size_t fast_pool_span = HAK_POOL_MAX - HAK_TINY_MAX;
static size_t fast_ace_span = HAK_ACE_MAX - HAK_POOL_MAX;
static uintptr_t fast_free_limit; /* 0 before initialisation: free_generic */
static bool malloc_sampling;      /* sites_sampling || prof_enabled() */
static bool free_sampling;        /* prof_enabled() */

static void malloc_configure(void) {
    sites_configure();
    prof_configure();
    malloc_sampling = sites_sampling || prof_enabled();
    free_sampling = prof_enabled();
    fast_tiny_max = malloc_sampling ? 0 : HAK_TINY_MAX;
    fast_pool_span = malloc_sampling ? 0 : HAK_POOL_MAX - HAK_TINY_MAX;
    fast_ace_span = malloc_sampling ? 0 : HAK_ACE_MAX - HAK_POOL_MAX;
    fast_free_limit = free_sampling ? 0 : segmap_g.limit;
}

/* malloc while call sites or timings are sampled: every call, the inline
 * fast paths included. */
static HAK_NOINLINE HAK_COLD void *malloc_sampled(size_t size, uintptr_t site) {
    void *p;
    if (prof_enabled() && prof_tick_alloc()) {
        uint64_t t0 = os_now_ns();
        p = malloc_inline(size);
        uint64_t ns = os_now_ns() - t0;
        if (p) prof_record(HAK_PROF_ALLOC_TINY + lane_for_size(size ? size : 1)->id - 1, ns);
    } else {
        p = malloc_inline(size);
    }
    if (sites_sampling) sites_sample(site, size, p);
    return p;
}

/* Everything hak_malloc's fast ranges do not take: sizes above the lanes,
 * and every call while calls are sampled. */
static HAK_NOINLINE void *malloc_generic(size_t size, uintptr_t site) {
    if (HAK_UNLIKELY(malloc_sampling)) return malloc_sampled(size, site);
    void *p = huge_alloc_fast(size); /* the thread's slot, when it fits */
    if (HAK_LIKELY(p != NULL)) return p;
    return alloc_generic(size, NULL);
}

HAK_EXPORT void *hak_malloc(size_t size) {
#if HAK_HAVE_TINY
    if (HAK_LIKELY(size <= fast_tiny_max)) return tiny_alloc_fast(size);
#endif
#if HAK_HAVE_POOL
    if (HAK_LIKELY(size - (HAK_TINY_MAX + 1) < fast_pool_span)) return pool_alloc_fast(size);
#endif
#if HAK_HAVE_ACE
    if (HAK_LIKELY(size - (HAK_POOL_MAX + 1) < fast_ace_span)) return ace_alloc_fast(size);
#endif
    return malloc_generic(size, (uintptr_t)HAK_RETURN_ADDRESS());
}

HAK_EXPORT HAK_NOINLINE void *hak_alloc_cs(size_t size) {
    void *p = malloc_inline(size);
    if (p) sites_record((uintptr_t)HAK_RETURN_ADDRESS(), size, hak_lane_of(p), false);
    return p;
}

HAK_EXPORT HAK_NOINLINE void hak_free_cs(void *p) {
    if (p) sites_record((uintptr_t)HAK_RETURN_ADDRESS(), 0, HAK_LANE_NONE, true);
    hak_free(p);
}

HAK_EXPORT void *hak_calloc(size_t nmemb, size_t size) {
    size_t total;
    if (HAK_UNLIKELY(HAK_MUL_OVERFLOW(nmemb, size, &total))) {
        errno = ENOMEM;
        return NULL;
    }
    bool zeroed = false;
    void *p = alloc_generic(total, &zeroed);
    if (p && !zeroed) memset(p, 0, total);
    return p;
}

/* Aligned allocation: align is a power of two. The first lane, from the
 * size's own lane upwards, that has a naturally aligned block serves it;
 * huge serves every alignment. */
static void *alloc_aligned_generic(size_t align, size_t size) {
    if (size > HAK_MAX_REQUEST) { /* before any rounding can wrap around */
        errno = ENOMEM;
        return NULL;
    }
    if (align <= HAK_MIN_ALIGN) {
        /* malloc aligns to 16 from 16 bytes, and to the largest power of two
         * dividing the size below that */
        size_t s = size < align ? align : hak_align_up(size, align);
        return alloc_generic(s, NULL);
    }
    if (HAK_UNLIKELY(!hak_ensure_init()) || size > HAK_MAX_REQUEST || align > HAK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    if (size == 0) size = 1;
    int saved = errno;
    const struct hak_lane *lane = lane_for_size(size);
    for (int id = lane->id; id < HAK_LANE_COUNT; id++) {
        lane = lanes_built[id];
        if (!lane) continue;
        void *p = lane->alloc_aligned(size, align, NULL);
        if (p) {
            errno = saved;
            return p;
        }
        if (errno != EINVAL) return alloc_retry(lane, size, align, NULL);
    }
    errno = ENOMEM; /* unreachable: huge serves every alignment */
    return NULL;
}

HAK_EXPORT int hak_posix_memalign(void **memptr, size_t alignment, size_t size) {
    if (!hak_is_pow2(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    void *p = alloc_aligned_generic(alignment, size);
    if (!p) return ENOMEM;
    *memptr = p;
    return 0;
}

HAK_EXPORT void *hak_memalign(size_t alignment, size_t size) {
    /* glibc 2.36: rounds a non-power-of-two alignment up; refuses one above
     * SIZE_MAX / 2 + 1 with EINVAL */
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!hak_is_pow2(alignment)) alignment = alignment == 0 ? 1 : hak_pow2_up(alignment);
    return alloc_aligned_generic(alignment, size);
}

HAK_EXPORT void *hak_aligned_alloc(size_t alignment, size_t size) {
    return hak_memalign(alignment, size);
}

HAK_EXPORT void *hak_valloc(size_t size) {
    hak_ensure_init();
    return alloc_aligned_generic(os_page_size, size);
}

HAK_EXPORT void *hak_pvalloc(size_t size) {
    hak_ensure_init();
    size_t ps = os_page_size;
    if (size > HAK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    return alloc_aligned_generic(ps, size == 0 ? ps : hak_align_up(size, ps));
}

/* ---- free, usable size, realloc --------------------------------------- */

static HAK_NOINLINE HAK_COLD void foreign_pointer(hak_call_t call, const void *p) {
    hak_report_misuse(call, p, "invalid pointer (not allocated by hakmem)");
}

/* free through the segment map and the lane's vtable. */
static void free_lookup(void *p) {
    uintptr_t head;
    int id = segmap_lookup(p, &head);
    const struct hak_lane *lane = (unsigned)id < HAK_LANE_COUNT ? lanes_built[id] : NULL;
    if (HAK_UNLIKELY(lane == NULL)) {
        int saved = errno;
        foreign_pointer("free", p);
        errno = saved;
        return;
    }
    lane->free(p, head, "free");
}

/* free's hot cases, inlined: slab-engine segments are single head chunks.
 * Returns false for every other pointer. limit: hak_free's fast_free_limit,
 * or the segment map's own. */
static HAK_ALWAYS_INLINE bool free_inline(void *p, uintptr_t limit) {
    uintptr_t idx = (uintptr_t)p >> HAK_CHUNK_SHIFT;
    if (HAK_LIKELY(idx < limit)) {
        unsigned b = atomic_load_relaxed(&segmap_g.table[idx]);
        HAK_OPAQUE(idx); /* the lanes' segment base: idx << HAK_CHUNK_SHIFT */
#if HAK_HAVE_TINY
        if (HAK_LIKELY(b == HAK_LANE_TINY)) {
            tiny_free_fast(p, idx << HAK_CHUNK_SHIFT, "free");
            return true;
        }
#endif
#if HAK_HAVE_POOL
        if (HAK_LIKELY(b == HAK_LANE_POOL)) {
            pool_free_fast(p, idx << HAK_CHUNK_SHIFT, "free");
            return true;
        }
#endif
#if HAK_HAVE_ACE
        if (HAK_LIKELY(b == HAK_LANE_ACE)) {
            ace_free_fast(p, idx << HAK_CHUNK_SHIFT, "free");
            return true;
        }
#endif
        (void)b;
    }
    return false;
}

/* free while timings are sampled (HAKMEM_PROF=1): every call. */
static HAK_NOINLINE HAK_COLD void free_sampled(void *p) {
    if (!prof_tick_free()) {
        if (!free_inline(p, segmap_g.limit)) free_lookup(p);
        return;
    }
    uintptr_t head;
    int id = segmap_lookup(p, &head);
    uint64_t t0 = os_now_ns();
    if (!free_inline(p, segmap_g.limit)) free_lookup(p);
    uint64_t ns = os_now_ns() - t0;
    if (id > HAK_LANE_NONE && id < HAK_LANE_COUNT) prof_record(HAK_PROF_FREE_TINY + id - 1, ns);
}

/* free of everything but the inlined hot cases (tiny, pool, ACE), and every
 * free while they are sampled: kept out of hak_free so that their fast
 * paths save no registers. */
static HAK_NOINLINE void free_generic(void *p) {
    if (HAK_UNLIKELY(p == NULL)) return;
    if (HAK_UNLIKELY(free_sampling)) {
        free_sampled(p);
        return;
    }
    /* the head chunk of a huge mapping: the huge lane's inline fast path
     * (its own mappings' blocks start in their first chunk) */
    uintptr_t idx = (uintptr_t)p >> HAK_CHUNK_SHIFT;
    if (HAK_LIKELY(idx < segmap_g.limit) &&
        atomic_load_relaxed(&segmap_g.table[idx]) == HAK_LANE_HUGE) {
        huge_free_fast(p, idx << HAK_CHUNK_SHIFT, "free");
        return;
    }
    free_lookup(p);
}

HAK_EXPORT void hak_free(void *p) {
    if (HAK_LIKELY(free_inline(p, fast_free_limit))) return;
    free_generic(p);
}

/* The lane owning p (reporting misuse for call when none does). */
static const struct hak_lane *owner(const void *p, uintptr_t *head, hak_call_t call) {
    int id = segmap_lookup(p, head);
    const struct hak_lane *lane = (unsigned)id < HAK_LANE_COUNT ? lanes_built[id] : NULL;
    if (HAK_UNLIKELY(lane == NULL)) foreign_pointer(call, p);
    return lane;
}

HAK_EXPORT size_t hak_usable_size(const void *p) {
    if (p == NULL) return 0;
    uintptr_t head;
    const struct hak_lane *lane = owner(p, &head, "malloc_usable_size");
    return lane ? lane->usable_size(p, head, "malloc_usable_size") : 0;
}

HAK_EXPORT void *hak_realloc(void *p, size_t size) {
    if (p == NULL) return malloc_inline(size);
    if (size == 0) {
        hak_free(p);
        return NULL;
    }
    uintptr_t head;
    const struct hak_lane *lane = owner(p, &head, "realloc");
    if (!lane) return NULL;
    size_t old = lane->usable_size(p, head, "realloc");
    if (old == 0) return NULL; /* misuse, reported */
    if (size > HAK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    if (lane_for_size(size) == lane && lane->resize) {
        void *q = lane->resize(p, head, size);
        if (q) return q;
    }
    void *q = malloc_inline(size);
    if (!q) {
        if (size <= old) return p; /* a shrink that could not move keeps the block */
        return NULL;
    }
    memcpy(q, p, size < old ? size : old);
    hak_free(p);
    return q;
}

HAK_EXPORT void *hak_reallocarray(void *p, size_t nmemb, size_t size) {
    size_t total;
    if (HAK_MUL_OVERFLOW(nmemb, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return hak_realloc(p, total);
}

HAK_EXPORT int hak_trim(size_t pad) {
    (void)pad;
    if (atomic_load_acquire(&hak_init_state) != HAK_INIT_READY) return 0;
    return hak_release_caches() > 0;
}

/* ---- introspection ---------------------------------------------------- */


HAK_EXPORT int hak_lane_of(const void *p) {
    uintptr_t head;
    int id = segmap_lookup(p, &head);
    return (unsigned)id < HAK_LANE_COUNT && lanes_built[id] ? id : HAK_LANE_NONE;
}

HAK_EXPORT const char *hak_lane_name(int lane) {
    static const char *const names[HAK_LANE_COUNT] = {
        [HAK_LANE_TINY] = "tiny", [HAK_LANE_POOL] = "pool",
        [HAK_LANE_ACE] = "ace",   [HAK_LANE_HUGE] = "huge",
    };
    return lane > 0 && lane < HAK_LANE_COUNT ? names[lane] : NULL;
}

HAK_EXPORT int hak_lane_enabled(int lane) {
    return lane > 0 && lane < HAK_LANE_COUNT && lanes_built[lane] != NULL;
}

HAK_EXPORT int hak_stats_get(struct hak_stats *st) {
    if (st == NULL || st->size < offsetof(struct hak_stats, peak_rss) + sizeof st->peak_rss)
        return EINVAL;
    struct hak_stats full;
    memset(&full, 0, sizeof full);
    hak_ensure_init();
    flush_my_stats();
    stats_fill(&full);
    size_t n = st->size < sizeof full ? st->size : sizeof full;
    full.size = st->size;
    memcpy(st, &full, n);
    return 0;
}

HAK_EXPORT int hak_class_stats_get(int lane, unsigned cls, struct hak_class_stats *out) {
    if (out == NULL || lane <= 0 || lane >= HAK_LANE_COUNT || !lanes_built[lane] ||
        cls >= lanes_built[lane]->nclasses)
        return ENOENT;
    flush_my_stats();
    const struct stats_class *sc = &stats_classes[lane][cls];
    out->block_size = lanes_built[lane]->class_size[cls];
    out->allocs = atomic_load_relaxed(&sc->c[HAK_CCTR_allocs]);
    out->frees = atomic_load_relaxed(&sc->c[HAK_CCTR_frees]);
    out->refills = atomic_load_relaxed(&sc->c[HAK_CCTR_refills]);
    out->remote_frees = atomic_load_relaxed(&sc->c[HAK_CCTR_remote_frees]);
    out->slabs = atomic_load_relaxed(&sc->slabs);
    uint64_t live = out->allocs > out->frees ? out->allocs - out->frees : 0;
    uint64_t peak = atomic_load_relaxed(&sc->peak_live);
    out->live_bytes = live * out->block_size;
    out->peak_bytes = (peak > live ? peak : live) * out->block_size;
    return 0;
}

HAK_EXPORT int hak_policy_get(struct hak_policy *out) {
    if (out == NULL || out->size < sizeof out->size) return EINVAL;
    hak_ensure_init();
    struct hak_policy cur = *policy_current();
    size_t n = out->size < sizeof cur ? out->size : sizeof cur;
    cur.size = out->size;
    memcpy(out, &cur, n);
    return 0;
}

HAK_EXPORT int hak_policy_set(const struct hak_policy *in) {
    if (in == NULL) return EINVAL;
    hak_ensure_init();
    return policy_publish(in);
}

HAK_EXPORT int hak_learn_get(struct hak_learn_info *out) {
    if (out == NULL || out->size < offsetof(struct hak_learn_info, built) + sizeof out->built)
        return EINVAL;
    struct hak_learn_info full;
    memset(&full, 0, sizeof full);
    full.size = sizeof full;
    hak_ensure_init();
    const struct policy_controller *c = atomic_load_acquire(&policy_ctl);
    if (c) c->info(&full);
    full.built = HAK_HAVE_LEARN;
    full.enabled = HAK_HAVE_LEARN && hak_opt(HAK_OPT_LEARN) != 0;
    size_t n = out->size < sizeof full ? out->size : sizeof full;
    full.size = out->size;
    memcpy(out, &full, n);
    return 0;
}

HAK_EXPORT void hak_stats_print(void) {
    flush_my_stats();
    stats_report();
}

/* ---- glibc's introspection calls -------------------------------------- */

#if HAK_INTERPOSE
static struct mallinfo2 info2(void) {
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    hak_stats_get(&st);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = st.lane[0].os_mapped;
    mi.uordblks = st.lane[0].live_bytes;
    mi.fordblks = st.lane[0].os_mapped > st.lane[0].live_bytes
                      ? st.lane[0].os_mapped - st.lane[0].live_bytes
                      : 0;
    mi.usmblks = st.lane[0].peak_bytes;
    mi.ordblks = 1;
    return mi;
}


#define ALIAS_OF(target) HAK_ALIAS(target)

void *malloc(size_t size) ALIAS_OF(hak_malloc);
void free(void *p) ALIAS_OF(hak_free);
void *calloc(size_t n, size_t size) ALIAS_OF(hak_calloc);
void *realloc(void *p, size_t size) ALIAS_OF(hak_realloc);
void *reallocarray(void *p, size_t n, size_t size) ALIAS_OF(hak_reallocarray);
int posix_memalign(void **memptr, size_t alignment, size_t size) ALIAS_OF(hak_posix_memalign);
void *aligned_alloc(size_t alignment, size_t size) ALIAS_OF(hak_aligned_alloc);
void *memalign(size_t alignment, size_t size) ALIAS_OF(hak_memalign);
void *valloc(size_t size) ALIAS_OF(hak_valloc);
void *pvalloc(size_t size) ALIAS_OF(hak_pvalloc);
int malloc_trim(size_t pad) ALIAS_OF(hak_trim);
void malloc_stats(void) ALIAS_OF(hak_stats_print);

void *__libc_malloc(size_t size) ALIAS_OF(hak_malloc);
void __libc_free(void *p) ALIAS_OF(hak_free);
void *__libc_calloc(size_t n, size_t size) ALIAS_OF(hak_calloc);
void *__libc_realloc(void *p, size_t size) ALIAS_OF(hak_realloc);
void *__libc_memalign(size_t alignment, size_t size) ALIAS_OF(hak_memalign);
void *__libc_valloc(size_t size) ALIAS_OF(hak_valloc);
void *__libc_pvalloc(size_t size) ALIAS_OF(hak_pvalloc);
int __posix_memalign(void **memptr, size_t alignment, size_t size) ALIAS_OF(hak_posix_memalign);

/* glibc declares the argument non-const. */
HAK_EXPORT size_t malloc_usable_size(void *p) { return hak_usable_size(p); }

HAK_EXPORT struct mallinfo2 mallinfo2(void) { return info2(); }

static int clamp_int(size_t v) { return v > (size_t)INT32_MAX ? INT32_MAX : (int)v; }

HAK_EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 m2 = info2();
    struct mallinfo m;
    memset(&m, 0, sizeof m);
    m.arena = clamp_int(m2.arena);
    m.ordblks = clamp_int(m2.ordblks);
    m.uordblks = clamp_int(m2.uordblks);
    m.fordblks = clamp_int(m2.fordblks);
    m.usmblks = clamp_int(m2.usmblks);
    return m;
}

/* glibc 2.36 answers 1 even for parameters it does not know; hakmem takes
 * its settings from HAKMEM_* variables and ignores these. */
HAK_EXPORT int mallopt(int param, int value) {
    (void)param;
    (void)value;
    return 1;
}

HAK_EXPORT int malloc_info(int options, FILE *fp) {
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    hak_stats_get(&st);
    fprintf(fp, "<malloc version=\"hakmem-%d.%d\">\n", HAKMEM_VERSION_MAJOR,
            HAKMEM_VERSION_MINOR);
    for (int l = 1; l < HAK_LANE_COUNT; l++) {
        if (!lanes_built[l]) continue;
        const struct hak_lane_stats *s = &st.lane[l];
        fprintf(fp,
                "<lane name=\"%s\"><allocs>%llu</allocs><frees>%llu</frees>"
                "<live>%llu</live><peak>%llu</peak><mapped>%llu</mapped><maps>%llu</maps>"
                "<unmaps>%llu</unmaps><purges>%llu</purges><purged>%llu</purged>"
                "<segments hot=\"%llu\" draining=\"%llu\" cached=\"%llu\"/>\n",
                hak_lane_name(l), (unsigned long long)s->allocs, (unsigned long long)s->frees,
                (unsigned long long)s->live_bytes, (unsigned long long)s->peak_bytes,
                (unsigned long long)s->os_mapped, (unsigned long long)s->os_maps,
                (unsigned long long)s->os_unmaps, (unsigned long long)s->purges,
                (unsigned long long)s->purged_bytes, (unsigned long long)st.segs_hot[l],
                (unsigned long long)st.segs_draining[l], (unsigned long long)st.segs_cached[l]);
        struct hak_class_stats cs;
        for (unsigned k = 0; hak_class_stats_get(l, k, &cs) == 0; k++) {
            if (cs.allocs == 0) continue;
            fprintf(fp,
                    "<class size=\"%llu\" allocs=\"%llu\" frees=\"%llu\" live=\"%llu\" "
                    "peak=\"%llu\" refills=\"%llu\" remote_frees=\"%llu\" slabs=\"%lld\"/>\n",
                    (unsigned long long)cs.block_size, (unsigned long long)cs.allocs,
                    (unsigned long long)cs.frees, (unsigned long long)cs.live_bytes,
                    (unsigned long long)cs.peak_bytes,
                    (unsigned long long)cs.refills, (unsigned long long)cs.remote_frees,
                    (long long)cs.slabs);
        }
        fprintf(fp, "</lane>\n");
    }
    fprintf(fp,
            "<total type=\"mmap\" size=\"%llu\"/>\n<system type=\"current\" size=\"%llu\"/>\n"
            "<system type=\"max\" size=\"%llu\"/>\n",
            (unsigned long long)st.lane[0].os_mapped, (unsigned long long)st.rss,
            (unsigned long long)st.peak_rss);
    fprintf(fp, "</malloc>\n");
    return 0;
}

#endif /* HAK_INTERPOSE */
