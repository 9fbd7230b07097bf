/*
 * test_ace.c: the ACE lane on its own ((32 KiB, 1 MiB]): class map, W_MAX
 * rounding, caps from the policy snapshot, memory return, frees from other
 * threads and exiting threads, misuse. Skipped when -Dace=false.
 */
#include "lane_suite.h"

static const struct lane_desc ace = {
    .id = HAK_LANE_ACE, .lo = HAK_POOL_MAX, .hi = HAK_ACE_MAX, .slab_size = 0};

static struct hak_policy policy(void) {
    struct hak_policy p = {.size = sizeof p};
    cr_assert_eq(hak_policy_get(&p), 0);
    return p;
}

static void publish(const struct hak_policy *p) { cr_assert_eq(hak_policy_set(p), 0); }

Test(ace, class_map_meets_waste_and_alignment_rules_for_every_size) {
    require_lane(&ace);
    /* every size is long: check every 7th, plus the class edges */
    for (size_t n = ace.lo + 1; n <= ace.hi; n += (n % 8192 < 16) ? 1 : 7) {
        unsigned char *p = hak_malloc(n);
        cr_assert_not_null(p);
        cr_assert_eq(hak_lane_of(p), HAK_LANE_ACE, "malloc(%zu)", n);
        size_t u = hak_usable_size(p);
        cr_assert(u >= n && u * 4 <= n * 5, "size %zu got %zu", n, u);
        cr_assert(is_aligned(p, page_size()));
        p[0] = 1;
        p[u - 1] = 2;
        hak_free(p);
    }
}

Test(ace, aligned_requests_up_to_a_page_stay_in_the_lane) {
    require_lane(&ace);
    for (size_t a = 16; a <= 1 * MiB; a *= 2) {
        void *p = NULL;
        cr_assert_eq(hak_posix_memalign(&p, a, 100 * KiB), 0);
        cr_assert(is_aligned(p, a));
        if (a <= page_size())
            cr_assert_eq(hak_lane_of(p), HAK_LANE_ACE, "align %zu", a);
        else
            cr_assert_eq(hak_lane_of(p), HAK_LANE_HUGE, "align %zu", a);
        memset(p, 1, 100 * KiB);
        hak_free(p);
    }
}

Test(ace, wmax_lets_a_request_take_a_warm_block_of_a_larger_class) {
    require_lane(&ace);
    struct hak_policy p = policy();
    p.wmax_large_pct = 125;
    publish(&p);
    void *a = hak_malloc(56 * KiB);
    hak_free(a); /* cached */
    void *b = hak_malloc(46 * KiB); /* smallest fit 48 KiB; 56 KiB <= 1.25 x 46 KiB */
    cr_assert_eq(b, a, "the warm 56 KiB block was not reused");
    cr_assert_eq(hak_usable_size(b), 56 * KiB);
    hak_free(b);
    p.wmax_large_pct = 100; /* no rounding: a fresh 48 KiB block */
    publish(&p);
    void *c = hak_malloc(46 * KiB);
    cr_assert_neq(c, a);
    cr_assert_eq(hak_usable_size(c), 48 * KiB);
    hak_free(c);
}

/* Runs of class cls still allocated (in use or cached). */
static int64_t runs(unsigned cls) {
    struct hak_class_stats cs;
    cr_assert_eq(hak_class_stats_get(HAK_LANE_ACE, cls, &cs), 0);
    return cs.slabs;
}

/* Publishes cap as class cls's cap_large and empties every cache (and
 * every empty chunk left mapped). */
static void set_cap(unsigned cls, uint32_t cap) {
    struct hak_policy p = policy();
    p.cap_large[cls] = cap;
    publish(&p);
    hak_trim(0);
}

/* The class of size, its cap set (set_cap). */
static unsigned class_with_cap(size_t size, uint32_t cap) {
    unsigned cls;
    class_for(&ace, size, &cls);
    set_cap(cls, cap);
    return cls;
}

static int64_t cached_after_freeing(unsigned cap, unsigned cls, size_t size) {
    set_cap(cls, cap);
    int64_t base = runs(cls);
    void *v[40];
    for (int i = 0; i < 40; i++) v[i] = hak_malloc(size);
    for (int i = 0; i < 40; i++) hak_free(v[i]);
    return runs(cls) - base;
}

Test(ace, published_caps_bound_the_caches) {
    require_lane(&ace);
    require_counters();
    unsigned cls;
    size_t bs = class_for(&ace, 64 * KiB, &cls);
    cr_assert_eq(bs, 64 * KiB);
    /* cap 0: nothing stays cached; cap 3: the thread's 3 and the shared 6 */
    cr_assert_eq(cached_after_freeing(0, cls, 64 * KiB), 0);
    cr_assert_eq(cached_after_freeing(3, cls, 64 * KiB), 9);
    cr_assert_eq(cached_after_freeing(8, cls, 64 * KiB), 24);
}

Test(ace, blocks_beyond_the_cap_are_purged_after_a_burst) {
    require_lane(&ace);
    check_burst_returns_memory(&ace, 256 * MiB);
}

/* Eight 1 MiB blocks (a chunk each: two do not fit beside the header page)
 * taken and freed every 10 ms for about six purge delays, no cache keeping
 * them: the chunks empty at every purge pass, four beyond the lane's cache
 * of empty chunks (HAKMEM_ACE_CACHE_CHUNKS, 4). A chunk is unmapped only by
 * the second pass that finds it empty, and each round takes all eight
 * again in between: nothing is unmapped and mapped again (unmapped at the
 * first pass, four chunks were unmapped and mapped afresh after each one).
 * The bounds allow one stall of the test beyond a purge delay. */
Test(ace, chunks_emptied_and_refilled_within_a_purge_delay_stay_mapped) {
    require_lane(&ace);
    require_counters();
    class_with_cap(1 * MiB, 0); /* no cache, no empty chunk left mapped */
    struct hak_stats st0 = {.size = sizeof st0}, st1 = {.size = sizeof st1};
    hak_stats_get(&st0);
    void *v[8];
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int round = 0; round < 60; round++) {
        for (int i = 0; i < 8; i++) {
            v[i] = hak_malloc(1 * MiB);
            cr_assert_not_null(v[i]);
            memset(v[i], round, 4096);
        }
        for (int i = 0; i < 8; i++) hak_free(v[i]);
        nanosleep(&ts, NULL);
    }
    hak_stats_get(&st1);
    uint64_t maps = st1.lane[HAK_LANE_ACE].os_maps - st0.lane[HAK_LANE_ACE].os_maps;
    uint64_t unmaps = st1.lane[HAK_LANE_ACE].os_unmaps - st0.lane[HAK_LANE_ACE].os_unmaps;
    cr_assert(maps <= 12 && unmaps <= 4, "%llu chunks mapped, %llu unmapped for 8 blocks",
              (unsigned long long)maps, (unsigned long long)unmaps);
}

/* 1 MiB blocks, a chunk each, in more chunks than an arena's search index
 * holds (PAGERUN_INDEX, 2048, lib/pagerun.h): the room a free leaves in a
 * chunk beyond the index is found as in one inside it, without mapping. */
Test(ace, room_in_chunks_beyond_the_search_index_is_reused) {
    require_lane(&ace);
    require_counters();
    class_with_cap(1 * MiB, 0); /* no cache, no empty chunk left mapped */
    enum { N = 2100 };
    void **v = mmap_array(N);
    for (size_t i = 0; i < N; i++) {
        v[i] = hak_malloc(1 * MiB);
        cr_assert_not_null(v[i]);
        *(char *)v[i] = 1;
    }
    struct hak_stats st0 = {.size = sizeof st0}, st1 = {.size = sizeof st1};
    hak_stats_get(&st0);
    for (size_t k = 0; k < 3; k++) {
        size_t i = k == 0 ? N - 1 : k == 1 ? 7 : N - 30;
        void *old = v[i];
        hak_free(old);
        v[i] = hak_malloc(1 * MiB);
        cr_assert_eq(v[i], old, "block %zu: %p, then %p", i, old, v[i]);
    }
    hak_stats_get(&st1);
    cr_assert_eq(st1.lane[HAK_LANE_ACE].os_maps, st0.lane[HAK_LANE_ACE].os_maps);
    for (size_t i = 0; i < N; i++) hak_free(v[i]);
    munmap_array(v, N);
    hak_trim(0);
}

/* 12 blocks of 256 KiB freed with cap 4: the thread's cache keeps 4 and the
 * shared cache 8. The shared cache is not used again: the purge pass after
 * the one that found it unused gives its 8 blocks back to their chunks
 * (whose pages are purged in turn), so that after a burst they do not stay
 * resident for good; the thread's own 4 stay. */
Test(ace, an_unused_shared_cache_goes_back_to_the_chunks) {
    require_lane(&ace);
    require_counters();
    unsigned cls = class_with_cap(256 * KiB, 4);
    void *v[12];
    for (int i = 0; i < 12; i++) {
        v[i] = hak_malloc(256 * KiB);
        cr_assert_not_null(v[i]);
        memset(v[i], i, 256 * KiB);
    }
    for (int i = 0; i < 12; i++) hak_free(v[i]);
    cr_assert_eq(runs(cls), 12);
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 60; i++) { /* 600 ms (6 purge delays) of fast-path calls */
        hak_free(hak_malloc(40 * KiB));
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(runs(cls), 4);
}

Test(ace, grows_past_any_fixed_number_of_chunks) { check_growth(&ace, 1 * MiB, 300 * MiB); }

struct xfer {
    size_t n;
    void **blocks;
};

static void *free_all(void *arg) {
    struct xfer *x = arg;
    for (size_t i = 0; i < x->n; i++) hak_free(x->blocks[i]);
    return NULL;
}

static void *alloc_and_exit(void *arg) {
    struct xfer *x = arg;
    for (size_t i = 0; i < x->n; i++) x->blocks[i] = hak_malloc(100 * KiB);
    for (size_t i = 0; i < x->n; i++) hak_free(x->blocks[i]); /* into this thread's cache */
    return NULL; /* exit: the cache is flushed */
}

Test(ace, blocks_freed_by_another_thread_and_by_exiting_threads_come_back) {
    require_lane(&ace);
    struct hak_stats st0 = {.size = sizeof st0}, st1 = {.size = sizeof st1};
    hak_stats_get(&st0);
    struct xfer x = {.n = 64};
    x.blocks = malloc(x.n * sizeof *x.blocks);
    for (size_t i = 0; i < x.n; i++) {
        x.blocks[i] = hak_malloc(200 * KiB);
        memset(x.blocks[i], (int)i, 200 * KiB);
    }
    pthread_t t;
    pthread_create(&t, NULL, free_all, &x);
    pthread_join(t, NULL);
    for (int r = 0; r < 20; r++) {
        pthread_create(&t, NULL, alloc_and_exit, &x);
        pthread_join(t, NULL);
    }
    free(x.blocks);
    hak_stats_get(&st1);
    cr_assert_eq(st1.lane[HAK_LANE_ACE].live_bytes, st0.lane[HAK_LANE_ACE].live_bytes,
                 "live %llu -> %llu", (unsigned long long)st0.lane[HAK_LANE_ACE].live_bytes,
                 (unsigned long long)st1.lane[HAK_LANE_ACE].live_bytes);
    /* what exiting threads cached went to the shared caches or back */
    hak_trim(0);
    unsigned cls;
    class_for(&ace, 100 * KiB, &cls);
    cr_assert_eq(runs(cls), 0);
}

Test(ace, double_free_and_interior_pointer_abort_with_message) {
    check_misuse(&ace, 64 * KiB);
}
