/*
 * test_pool.c: the pool lane on its own ((1 KiB, 32 KiB], 256 KiB slabs):
 * the checks of lane_suite.h applied to it. Skipped when -Dpool=false.
 */
#include "lane_suite.h"

static const struct lane_desc pool = {.id = HAK_LANE_POOL,
                                      .lo = HAK_TINY_MAX,
                                      .hi = HAK_POOL_MAX,
                                      .slab_size = 256 * KiB,
                                      .cache_max = HAK_SECURE ? 0 : 16};

Test(pool, class_map_meets_waste_and_alignment_rules_for_every_size) { check_class_map(&pool); }

Test(pool, aligned_requests_come_from_naturally_aligned_classes) { check_aligned(&pool); }

Test(pool, page_aligned_requests_are_served_by_page_multiple_classes) {
    require_lane(&pool);
    for (size_t n = 1; n <= 28 * KiB; n += 1000) {
        void *p = hak_valloc(n);
        cr_assert(is_aligned(p, page_size()));
        if (n > HAK_TINY_MAX) cr_assert_eq(hak_lane_of(p), HAK_LANE_POOL, "valloc(%zu)", n);
        hak_free(p);
    }
}

Test(pool, gib_burst_freed_gives_rss_back_within_two_seconds_of_fast_path_calls,
     .timeout = 120) {
    check_gib_burst_returns_memory(&pool, HAK_TINY_MAX + 1, HAK_POOL_MAX);
}

Test(pool, filling_slabs_takes_slabs_and_draining_returns_them) {
    check_fill_and_drain(&pool, 2048);
    check_fill_and_drain(&pool, 30000);
}

Test(pool, remote_free_returns_blocks_to_owner_including_full_slabs) {
    check_remote_free(&pool, 8192);
}

Test(pool, remote_frees_held_back_by_a_thread_come_home_when_it_exits) {
    check_remote_frees_come_home_at_thread_exit(&pool, 1280);
}

Test(pool, exited_threads_segments_are_adopted_and_trimmed) { check_abandon_adopt(&pool, 4000); }

Test(pool, grows_past_any_fixed_number_of_segments) { check_growth(&pool, 32 * KiB, 400 * MiB); }

Test(pool, burst_freed_returns_rss_without_trim) { check_burst_returns_memory(&pool, 256 * MiB); }

Test(pool, double_free_and_interior_pointer_abort_with_message) { check_misuse(&pool, 8192); }

Test(pool, blocks_of_an_exited_thread_freed_later_return_memory) {
    check_abandoned_blocks_return_memory(&pool, 8000, 96 * MiB);
}

/* ---- the block cache (HAKMEM_POOL_TCACHE_KB; none in -Dsecure) ---------- */

static void require_block_cache(void) {
    require_lane(&pool);
    if (HAK_SECURE) cr_skip_test("-Dsecure: the pool lane has no block cache");
    const char *kb = getenv("HAKMEM_POOL_TCACHE_KB"), *mode = getenv("HAKMEM_MODE");
    if ((kb && atoi(kb) == 0) || (!kb && mode && strcmp(mode, "minimal") == 0))
        cr_skip_test("the block cache is off");
}

static uintptr_t slab_no(const void *p) { return (uintptr_t)p / pool.slab_size; }

/* A block freed in a slab other than the one the heap allocates from is the
 * next malloc of its class: without the cache the malloc took a block of
 * the current slab, and a working set spread over several slabs searched
 * for a slab with a free block whenever the current one ran out. */
Test(pool, freed_block_of_another_slab_is_the_next_malloc) {
    require_block_cache();
    size_t size = 8192, n = pool.slab_size / size * 2 + 1;
    void **v = hak_malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) cr_assert_not_null(v[i] = hak_malloc(size));
    cr_assert_neq(slab_no(v[0]), slab_no(v[n - 1]), "the first and last blocks share a slab");
    for (size_t k = 0; k < 3; k++) {
        void *old = v[k];
        hak_free(old);
        v[k] = hak_malloc(size);
        cr_assert_eq(v[k], old, "block %zu: freed %p, the next malloc gave %p", k, old, v[k]);
    }
    for (size_t i = 0; i < n; i++) hak_free(v[i]); /* hak_free(NULL) for those left */
    hak_free(v);
}

/* Blocks in the cache stay used by their slab: a slab all of whose blocks
 * are freed is not released while the cache holds some of them (a malloc
 * of the class may pop them any time); malloc_trim gives them back and the
 * slab goes. A full cache gives its older half back on the next free, so
 * it never holds more than its bound. The next mallocs of the class come
 * from the slabs still in use. */
Test(pool, cached_blocks_keep_their_slab_until_the_cache_gives_them_back) {
    require_block_cache();
    require_counters();
    struct hak_policy pol = {.size = sizeof pol};
    cr_assert_eq(hak_policy_get(&pol), 0);
    for (unsigned c = 0; c < HAK_POLICY_CLASSES; c++) pol.cap_mid[c] = 0; /* release at once */
    cr_assert_eq(hak_policy_set(&pol), 0);
    size_t size = 8192, per_slab = pool.slab_size / size, n = per_slab * 2 + 1;
    unsigned cls;
    class_for(&pool, size, &cls);
    void **v = hak_malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) cr_assert_not_null(v[i] = hak_malloc(size));
    /* a slab all of whose blocks are ours (the first may hold someone
     * else's: stdio's or Criterion's) */
    uintptr_t gone = 0;
    for (size_t i = 0; i < n && !gone; i++) {
        size_t mine = 0;
        for (size_t j = 0; j < n; j++) mine += slab_no(v[j]) == slab_no(v[i]);
        if (mine == per_slab) gone = slab_no(v[i]);
    }
    cr_assert(gone, "no slab of %zu blocks among %zu", per_slab, n);
    int64_t slabs = class_stats(&pool, cls).slabs;
    for (size_t i = 0; i < n; i++)
        if (slab_no(v[i]) == gone) {
            hak_free(v[i]);
            v[i] = NULL;
        }
    cr_assert_eq(class_stats(&pool, cls).slabs, slabs, "released with blocks in the cache");
    hak_trim(0);
    cr_assert_eq(class_stats(&pool, cls).slabs, slabs - 1, "not released after the trim");
    /* half a slab: the slab in use with the fewest blocks has room for them
     * (more could take a new slab, and the released one is the next) */
    for (size_t i = 0, k = 0; i < n && k < per_slab / 2; i++) {
        if (v[i]) continue;
        cr_assert_not_null(v[i] = hak_malloc(size));
        cr_assert_neq(slab_no(v[i]), gone, "malloc handed out a block of the released slab");
        memset(v[i], 1, size);
        k++;
    }
    for (size_t i = 0; i < n; i++) hak_free(v[i]); /* hak_free(NULL) for those left */
    hak_free(v);
}

struct handover {
    void *block;
    pthread_barrier_t bar;
};

static void *allocate_and_wait(void *arg) {
    struct handover *h = arg;
    h->block = hak_malloc(8192);
    pthread_barrier_wait(&h->bar); /* the main thread frees it ... */
    pthread_barrier_wait(&h->bar); /* ... and allocates it again */
    return NULL;
}

/* A block of another thread's slab freed here is the next malloc of its
 * class here too (the cache takes any thread's blocks: no ownership test
 * on the free). */
Test(pool, another_threads_block_freed_here_is_the_next_malloc_here) {
    require_block_cache();
    struct handover h = {0};
    pthread_barrier_init(&h.bar, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, allocate_and_wait, &h);
    pthread_barrier_wait(&h.bar);
    cr_assert_not_null(h.block);
    void *mine = hak_malloc(8192); /* this thread has a heap of its own */
    hak_free(h.block);
    void *again = hak_malloc(8192);
    cr_assert_eq(again, h.block, "freed %p, the next malloc gave %p", h.block, again);
    pthread_barrier_wait(&h.bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&h.bar);
    hak_free(again);
    hak_free(mine);
}
