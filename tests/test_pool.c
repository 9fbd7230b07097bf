/*
 * test_pool.c: the pool lane on its own ((1 KiB, 32 KiB], 256 KiB slabs):
 * the checks of lane_suite.h applied to it. Skipped when -Dpool=false.
 */
#include "lane_suite.h"

static const struct lane_desc pool = {
    .id = HAK_LANE_POOL, .lo = HAK_TINY_MAX, .hi = HAK_POOL_MAX, .slab_size = 256 * KiB};

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
