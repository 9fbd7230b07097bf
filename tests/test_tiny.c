/*
 * test_tiny.c: the tiny lane on its own (1 B .. 1 KiB, 64 KiB slabs): the
 * checks of lane_suite.h applied to it. Skipped when -Dtiny_superslab=false.
 */
#include "hak_config.h"
#include "lane_suite.h"

static const struct lane_desc tiny = {.id = HAK_LANE_TINY,
                                      .lo = 0,
                                      .hi = HAK_TINY_MAX,
                                      .slab_size = 64 * KiB,
                                      .cache_max = HAK_SECURE ? 0 : 128};

Test(tiny, class_map_meets_waste_and_alignment_rules_for_every_size) { check_class_map(&tiny); }

Test(tiny, aligned_requests_come_from_naturally_aligned_classes) { check_aligned(&tiny); }

Test(tiny, filling_slabs_takes_slabs_and_draining_returns_them) {
    check_fill_and_drain(&tiny, 64);
    check_fill_and_drain(&tiny, 1000);
}

Test(tiny, remote_free_returns_blocks_to_owner_including_full_slabs) {
    check_remote_free(&tiny, 48);
    check_remote_free(&tiny, 640);
}

Test(tiny, remote_frees_held_back_by_a_thread_come_home_when_it_exits) {
    check_remote_frees_come_home_at_thread_exit(&tiny, 48);
    check_remote_frees_come_home_at_thread_exit(&tiny, 96);
}

Test(tiny, exited_threads_segments_are_adopted_and_trimmed) { check_abandon_adopt(&tiny, 128); }

Test(tiny, grows_past_any_fixed_number_of_superslabs) { check_growth(&tiny, 1024, 300 * MiB); }

Test(tiny, burst_freed_returns_rss_without_trim) {
    check_burst_returns_memory(&tiny, 256 * MiB);
}

Test(tiny, double_free_and_interior_pointer_abort_with_message) { check_misuse(&tiny, 64); }

Test(tiny, blocks_of_an_exited_thread_freed_later_return_memory) {
    check_abandoned_blocks_return_memory(&tiny, 100, 96 * MiB);
}

struct spin {
    pthread_barrier_t done, go;
};

static void *fast_path_loop(void *arg) {
    struct spin *sp = arg;
    void *keep = hak_malloc(48); /* the slab keeps a block: every free below is fast */
    for (int i = 0; i < 10000; i++) hak_free(hak_malloc(48));
    pthread_barrier_wait(&sp->done); /* alive, batch not flushed by an exit */
    pthread_barrier_wait(&sp->go);
    hak_free(keep);
    return NULL;
}

Test(tiny, stats_build_counts_other_threads_fast_paths_within_64_operations) {
    require_lane(&tiny);
    if (!HAK_STATS) cr_skip_test("-Dstats=false: fast paths flush on slow paths and at exit");
    unsigned cls;
    class_for(&tiny, 48, &cls);
    uint64_t before = class_stats(&tiny, cls).allocs;
    struct spin sp;
    pthread_barrier_init(&sp.done, NULL, 2);
    pthread_barrier_init(&sp.go, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, fast_path_loop, &sp);
    pthread_barrier_wait(&sp.done);
    uint64_t seen = class_stats(&tiny, cls).allocs - before;
    pthread_barrier_wait(&sp.go);
    pthread_join(t, NULL);
    cr_assert_geq(seen + 64, 10001, "another thread's 10001 allocations seen as %llu",
                  (unsigned long long)seen);
}

/* ---- utilisation tiers (HAKMEM_SS_TIER_*_THRESHOLD, defaults 25 and 50) ----
 * Measured in slabs in use per segment: a tiny SuperSlab has 31 slabs of
 * 64 KiB for blocks (slab 0 holds its header), so it turns DRAINING below
 * 7.75 slabs in use and HOT again above 15.5. The work runs in a thread of
 * its own, whose heap starts without segments; the checks run afterwards in
 * the test's thread (Criterion asserts from the main thread). */

#define TIER_SEG ((uintptr_t)2 * MiB)
#define TIER_SLAB ((uintptr_t)64 * KiB)
#define TIER_MAX_BLOCKS ((size_t)6 * 32 * 1024)

struct tiers_run {
    void **v;             /* every block the thread holds */
    size_t n;
    uintptr_t a, d;       /* A: a full segment that is drained; D: the last one */
    size_t full_blocks;   /* 64-byte blocks in a full segment */
    uint64_t hot[4], drain[4]; /* tiny segments per tier: before, filled, A drained,
                                  A refilled */
    size_t after_drain_in_a;   /* blocks of the 3 slabs' worth after the drain that
                                  landed in A (want 0: D is HOT and has room) */
    size_t after_drain_elsewhere; /* ... that landed neither in A nor D (want 0) */
    size_t refill_in_a;        /* blocks of the refill that landed in A */
    size_t refill_elsewhere;   /* ... in neither A nor D (want 0: no new segment) */
    bool ok;
};

static uintptr_t seg_of(const void *p) { return (uintptr_t)p & ~(TIER_SEG - 1); }

static void tier_counts(struct tiers_run *r, int step) {
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    hak_stats_get(&st);
    r->hot[step] = st.segs_hot[HAK_LANE_TINY];
    r->drain[step] = st.segs_draining[HAK_LANE_TINY];
}

static void *tiers_thread(void *arg) {
    struct tiers_run *r = arg;
    tier_counts(r, 0);
    /* Fill: 64-byte blocks until one lands in a fourth segment (D). */
    uintptr_t segs[8] = {0};
    size_t count[8] = {0}, nsegs = 0;
    while (r->n < TIER_MAX_BLOCKS) {
        void *p = hak_malloc(64);
        if (!p) return NULL;
        r->v[r->n++] = p;
        size_t k = 0;
        while (k < nsegs && segs[k] != seg_of(p)) k++;
        if (k == nsegs) {
            if (nsegs == 8) return NULL;
            segs[nsegs++] = seg_of(p);
        }
        count[k]++;
        if (nsegs == 4) break;
    }
    r->d = segs[3];
    for (size_t k = 0; k < 3 && !r->a; k++)
        if (count[k] == r->full_blocks) r->a = segs[k];
    if (!r->a) return NULL;
    tier_counts(r, 1);
    /* Drain A: free its blocks except those of its first three slabs
     * (3 of 31 in use: below 25%). */
    size_t kept = 0;
    for (size_t i = 0; i < r->n; i++) {
        void *p = r->v[i];
        if (seg_of(p) == r->a && ((uintptr_t)p - r->a) / TIER_SLAB > 3) {
            hak_free(p);
            continue;
        }
        r->v[kept++] = p;
    }
    r->n = kept;
    /* the block cache keeps the last blocks freed, and so their slab in
     * use: give them back */
    hak_trim(0);
    tier_counts(r, 2);
    /* Three slabs' worth more: A (DRAINING, at the head of the heap's list
     * since its slabs came back last) has room, but so has D (HOT). */
    for (size_t i = 0; i < 3 * 1024; i++) {
        void *p = hak_malloc(64);
        if (!p) return NULL;
        r->v[r->n++] = p;
        if (seg_of(p) == r->a) r->after_drain_in_a++;
        else if (seg_of(p) != r->d) r->after_drain_elsewhere++;
    }
    /* Refill until 14 more slabs of A are in use (17 of 31: above 50%):
     * D fills up first, then A, the only segment with room, serves before
     * any new segment is mapped. */
    while (r->refill_in_a < 14 * 1024 && r->n < TIER_MAX_BLOCKS) {
        void *p = hak_malloc(64);
        if (!p) return NULL;
        r->v[r->n++] = p;
        if (seg_of(p) == r->a) r->refill_in_a++;
        else if (seg_of(p) != r->d) r->refill_elsewhere++;
    }
    tier_counts(r, 3);
    for (size_t i = 0; i < r->n; i++) hak_free(r->v[i]);
    r->ok = true;
    return NULL;
}

Test(tiny, segments_move_between_tiers_and_new_slabs_prefer_hot_segments) {
    require_lane(&tiny);
    struct tiers_run r = {.v = mmap_array(TIER_MAX_BLOCKS)};
    /* the hardened build gives up the segment's last page (a guard) */
    r.full_blocks = 31 * 1024 - (HAK_SECURE ? 4096 / 64 : 0);
    pthread_t t;
    pthread_create(&t, NULL, tiers_thread, &r);
    pthread_join(t, NULL);
    munmap_array(r.v, TIER_MAX_BLOCKS);
    cr_assert(r.ok, "the run stopped: %zu blocks, A %#lx, D %#lx", r.n, (unsigned long)r.a,
              (unsigned long)r.d);
    cr_assert_geq(r.hot[1], r.hot[0] + 3, "filling 3 segments: HOT %llu -> %llu",
                  (unsigned long long)r.hot[0], (unsigned long long)r.hot[1]);
    cr_assert_eq(r.drain[2], r.drain[1] + 1, "draining A: DRAINING %llu -> %llu",
                 (unsigned long long)r.drain[1], (unsigned long long)r.drain[2]);
    cr_assert_eq(r.hot[2] + 1, r.hot[1], "draining A: HOT %llu -> %llu",
                 (unsigned long long)r.hot[1], (unsigned long long)r.hot[2]);
    cr_assert_eq(r.after_drain_in_a, 0,
                 "%zu of 3072 new blocks came from the DRAINING segment while a HOT one had "
                 "room", r.after_drain_in_a);
    cr_assert_eq(r.after_drain_elsewhere, 0, "%zu new blocks from a third segment",
                 r.after_drain_elsewhere);
    cr_assert_eq(r.refill_elsewhere, 0,
                 "%zu blocks from a new segment while the DRAINING one had room",
                 r.refill_elsewhere);
    cr_assert_eq(r.drain[3], r.drain[1], "refilling A: DRAINING %llu -> %llu (want %llu)",
                 (unsigned long long)r.drain[2], (unsigned long long)r.drain[3],
                 (unsigned long long)r.drain[1]);
    cr_assert_eq(r.hot[3], r.hot[1], "refilling A: HOT %llu -> %llu (want %llu)",
                 (unsigned long long)r.hot[2], (unsigned long long)r.hot[3],
                 (unsigned long long)r.hot[1]);
}

/* ---- RSS after a GiB burst (lane_suite.h) ------------------------------ */

Test(tiny, gib_burst_freed_gives_rss_back_within_two_seconds_of_fast_path_calls,
     .timeout = 120) {
    check_gib_burst_returns_memory(&tiny, 64, 1024);
}

/* ---- per-class live and peak bytes ------------------------------------- */

Test(tiny, class_counters_give_live_and_peak_bytes) {
    require_lane(&tiny);
    if (HAK_BENCH_MINIMAL) cr_skip_test("-Dbench_minimal: no counters");
    enum { N = 100000 };
    static void *v[N];
    unsigned cls = 0;
    struct hak_class_stats cs;
    while (hak_class_stats_get(HAK_LANE_TINY, cls, &cs) == 0 && cs.block_size != 112) cls++;
    cr_assert_eq(cs.block_size, 112, "no 112-byte class");
    uint64_t live0 = cs.live_bytes;
    for (int i = 0; i < N; i++) cr_assert_not_null(v[i] = hak_malloc(112));
    cr_assert_eq(hak_class_stats_get(HAK_LANE_TINY, cls, &cs), 0);
    cr_assert_geq(cs.live_bytes, live0 + (uint64_t)N * 112, "live %llu with %d blocks out",
                  (unsigned long long)cs.live_bytes, N);
    for (int i = 0; i < N; i++) hak_free(v[i]);
    cr_assert_eq(hak_class_stats_get(HAK_LANE_TINY, cls, &cs), 0);
    cr_assert_leq(cs.live_bytes, live0, "live %llu after the frees (%llu before)",
                  (unsigned long long)cs.live_bytes, (unsigned long long)live0);
    cr_assert_geq(cs.peak_bytes, live0 + (uint64_t)N * 112, "peak %llu",
                  (unsigned long long)cs.peak_bytes);
}
