/*
 * test_tiny.c: the tiny lane on its own (1 B .. 1 KiB, 64 KiB slabs): the
 * checks of lane_suite.h applied to it. Skipped when -Dtiny_superslab=false.
 */
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
