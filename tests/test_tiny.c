/*
 * test_tiny.c: the tiny lane on its own (1 B .. 1 KiB, 64 KiB slabs): the
 * checks of lane_suite.h applied to it. Skipped when -Dtiny_superslab=false.
 */
#include "hak_config.h"
#include "lane_suite.h"

static const struct lane_desc tiny = {
    .id = HAK_LANE_TINY, .lo = 0, .hi = HAK_TINY_MAX, .slab_size = 64 * KiB};

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
