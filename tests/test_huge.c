/*
 * test_huge.c: the huge lane's BigCache (freed big blocks kept mapped for
 * reuse): a hit reuses the mapping, a miss maps, the oldest entries are
 * evicted past the byte bound, entries older than the purge delay are
 * unmapped, malloc_trim empties it, and a bound of 0 keeps nothing.
 *
 * The slot tests: the freeing thread's one-block cache, filled and emptied
 * by the inline fast paths, keeps the BigCache's guarantees (purge delay
 * with the thread idle, malloc_trim, double free, exact counters, thread
 * exit, -Dsecure's guard page).
 *
 * Hits and misses are seen in the huge lane's os_maps / os_unmaps counters
 * (counted in every build but -Dbench_minimal, where these tests skip).
 * Run with HAKMEM_PURGE_DELAY_MS=1000 (tests/meson.build), so that nothing
 * ages out of the cache between two calls of a test unless it waits.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"

#ifndef HAK_TEST_BENCH_MINIMAL
#define HAK_TEST_BENCH_MINIMAL 0
#endif

#define DELAY_MS 1000 /* HAKMEM_PURGE_DELAY_MS of the test (meson.build) */

static struct hak_lane_stats huge_stats(void) {
    struct hak_stats st = {.size = sizeof st};
    cr_assert_eq(hak_stats_get(&st), 0);
    return st.lane[HAK_LANE_HUGE];
}

static void set_bigcache_mb(uint32_t mb) {
    struct hak_policy p = {.size = sizeof p};
    cr_assert_eq(hak_policy_get(&p), 0);
    p.bigcache_mb = mb;
    cr_assert_eq(hak_policy_set(&p), 0);
}

/* An empty cache and a known bound; skips where counters are compiled out. */
static void setup(uint32_t mb) {
    if (HAK_TEST_BENCH_MINIMAL) cr_skip_test("-Dbench_minimal: no counters");
    set_bigcache_mb(mb);
    hak_trim(0);
}

/* A block of n bytes, written in full (so that its pages are resident). */
static unsigned char *big(size_t n) {
    unsigned char *p = hak_malloc(n);
    cr_assert_not_null(p);
    cr_assert_eq(hak_lane_of(p), HAK_LANE_HUGE);
    memset(p, 0x5a, n);
    return p;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(bigcache, hit_reuses_the_freed_mapping_without_a_new_mmap) {
    setup(64);
    unsigned char *p = big(8 * MiB);
    hak_free(p);
    struct hak_lane_stats before = huge_stats();
    unsigned char *q = hak_malloc(8 * MiB);
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(q, p, "the cached mapping was not reused");
    cr_assert_eq(after.os_maps, before.os_maps, "a hit must not map");
    cr_assert_eq(after.os_unmaps, before.os_unmaps);
    cr_assert_eq(q[0], 0x5a, "a hit hands out the mapping as it was (no purge, no fault)");
    hak_free(q);
}

Test(bigcache, smaller_request_takes_the_head_and_caches_the_rest) {
    setup(64);
    unsigned char *p = big(8 * MiB); /* a 10 MiB mapping */
    hak_free(p);
    struct hak_lane_stats before = huge_stats();
    unsigned char *q = hak_malloc(3 * MiB); /* needs 4 MiB */
    cr_assert_eq(q, p);
    cr_assert_eq(hak_usable_size(q), 3 * MiB);
    cr_assert_eq(q[3 * MiB - 1], 0x5a, "the head's pages are reused");
    /* the other 6 MiB are a cached mapping of their own, still resident */
    unsigned char *r = hak_malloc(5 * MiB); /* needs 6 MiB */
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(r, p + 4 * MiB, "the rest was not reused");
    cr_assert_eq(hak_lane_of(r), HAK_LANE_HUGE);
    cr_assert_eq(r[16], 0x5a, "the rest's pages are reused");
    cr_assert_eq(after.os_maps, before.os_maps, "no new mapping");
    cr_assert_eq(after.os_mapped, before.os_mapped);
    hak_free(q);
    hak_free(r);
    /* both are blocks of their own: freeing and trimming gives it all back */
    cr_assert_eq(hak_trim(0), 1);
    cr_assert_eq(huge_stats().os_mapped, before.os_mapped - 10 * MiB);
}

Test(bigcache, growing_block_takes_the_pages_of_several_cached_blocks) {
    setup(64);
    unsigned char *a = big(3 * MiB), *b = big(3 * MiB), *c = big(3 * MiB); /* 4 MiB each */
    hak_free(a);
    hak_free(b);
    hak_free(c);
    struct hak_lane_stats before = huge_stats();
    unsigned char *q = hak_malloc(11 * MiB); /* needs 12 MiB: all three */
    struct hak_lane_stats after = huge_stats();
    cr_assert_not_null(q);
    cr_assert_eq(after.os_mapped, before.os_mapped, "made of the cached pages only");
    size_t carried = 0;
    for (size_t off = 0; off < 11 * MiB; off += 4096) carried += q[off] == 0x5a;
    cr_assert_geq(carried, 3 * (3 * MiB / 4096) - 8, "only %zu pages carried over", carried);
    memset(q, 1, 11 * MiB);
    /* such a block spans several kernel mappings: realloc still keeps it whole */
    unsigned char *g = hak_realloc(q, 30 * MiB);
    cr_assert_not_null(g);
    for (size_t off = 0; off < 11 * MiB; off += 4096) cr_assert_eq(g[off], 1);
    unsigned char *h = hak_realloc(g, 5 * MiB);
    cr_assert_not_null(h);
    for (size_t off = 0; off < 5 * MiB; off += 4096) cr_assert_eq(h[off], 1);
    hak_free(h);
}

Test(bigcache, larger_request_grows_the_cached_mapping_keeping_its_pages) {
    setup(64);
    unsigned char *p = big(8 * MiB); /* a 10 MiB mapping */
    hak_free(p);
    struct hak_lane_stats before = huge_stats();
    unsigned char *q = hak_malloc(12 * MiB); /* needs 14 MiB */
    struct hak_lane_stats after = huge_stats();
    cr_assert_not_null(q);
    cr_assert_eq(hak_usable_size(q), 12 * MiB);
    cr_assert_eq(after.os_mapped - before.os_mapped, 4 * MiB, "only the growth is mapped");
    for (size_t off = 0; off < 8 * MiB; off += 4096)
        cr_assert_eq(q[off], 0x5a, "page at %zu not carried over", off);
    cr_assert(all_zero(q + 8 * MiB + 4096, 4 * MiB - 4096), "the growth reads as zero");
    memset(q, 1, 12 * MiB);
    hak_free(q);
}

Test(bigcache, miss_maps_when_the_cache_is_empty) {
    setup(64);
    struct hak_lane_stats before = huge_stats();
    unsigned char *p = big(8 * MiB);
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(after.os_maps, before.os_maps + 1);
    cr_assert_eq(after.os_mapped - before.os_mapped, 10 * MiB);
    hak_free(p);
}

Test(bigcache, calloc_never_takes_a_dirty_cached_block) {
    setup(64);
    unsigned char *p = big(8 * MiB);
    hak_free(p);
    unsigned char *z = hak_calloc(1, 8 * MiB);
    cr_assert_not_null(z);
    cr_assert(all_zero(z, 8 * MiB));
    hak_free(z);
}

Test(bigcache, oldest_blocks_are_evicted_past_the_byte_bound) {
    setup(20); /* room for two 10 MiB mappings */
    unsigned char *a = big(8 * MiB), *b = big(8 * MiB), *c = big(8 * MiB);
    hak_free(a);
    sleep_ms(2);
    hak_free(b);
    sleep_ms(2);
    struct hak_lane_stats before = huge_stats();
    hak_free(c); /* evicts a, the oldest */
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(after.os_unmaps, before.os_unmaps + 1, "one block evicted");
    cr_assert_eq(after.os_mapped, before.os_mapped - 10 * MiB);
    unsigned char *x = hak_malloc(8 * MiB), *y = hak_malloc(8 * MiB);
    cr_assert(x == b || x == c);
    cr_assert(y == b || y == c);
    cr_assert_neq(x, y);
    cr_assert_eq(huge_stats().os_maps, after.os_maps, "b and c were kept");
    hak_free(x);
    hak_free(y);
}

Test(bigcache, block_larger_than_the_bound_is_unmapped_at_once) {
    setup(16);
    unsigned char *p = big(20 * MiB);
    struct hak_lane_stats before = huge_stats();
    hak_free(p);
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(after.os_unmaps, before.os_unmaps + 1);
    cr_assert_eq(before.os_mapped - after.os_mapped, 22 * MiB);
}

Test(bigcache, bound_of_zero_keeps_nothing) {
    setup(0);
    unsigned char *p = big(4 * MiB);
    struct hak_lane_stats before = huge_stats();
    hak_free(p);
    cr_assert_eq(huge_stats().os_unmaps, before.os_unmaps + 1);
    set_bigcache_mb(64);
}

Test(bigcache, blocks_older_than_the_purge_delay_are_unmapped) {
    setup(64);
    unsigned char *p = big(8 * MiB);
    size_t rss_held = rss_bytes();
    hak_free(p);
    struct hak_lane_stats before = huge_stats();
    cr_assert_eq(huge_stats().os_unmaps, before.os_unmaps, "kept while young");
    sleep_ms(DELAY_MS + 600);
    hak_free(hak_malloc(64)); /* an allocator call runs due purges (or the purger did) */
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(after.os_unmaps, before.os_unmaps + 1, "not unmapped after its delay");
    cr_assert_eq(before.os_mapped - after.os_mapped, 10 * MiB);
    cr_assert(rss_bytes() + 6 * MiB < rss_held, "RSS %zu, held %zu", rss_bytes(), rss_held);
}

Test(bigcache, malloc_trim_empties_it) {
    setup(64);
    unsigned char *a = big(4 * MiB), *b = big(6 * MiB);
    hak_free(a);
    hak_free(b);
    struct hak_lane_stats before = huge_stats();
    cr_assert_eq(hak_trim(0), 1);
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(after.os_unmaps, before.os_unmaps + 2);
    cr_assert_eq(before.os_mapped - after.os_mapped, 6 * MiB + 8 * MiB);
    unsigned char *c = hak_malloc(4 * MiB);
    cr_assert_eq(huge_stats().os_maps, after.os_maps + 1, "nothing left to reuse");
    hak_free(c);
}

/* ---- the thread's slot ------------------------------------------------
 * A freed own mapping waits first in the freeing thread's one-block slot
 * (no lock); the next malloc of about its size takes it back. What the
 * BigCache guarantees holds for it too. */

#ifndef HAK_TEST_SECURE
#define HAK_TEST_SECURE 0
#endif

/* Cycles a block of n bytes through the slot a few times (the first free
 * makes the thread's slot; the later ones are the inline fast path), and
 * leaves it freed there; returns its address. */
static void *cycle(size_t n) {
    unsigned char *p = big(n);
    hak_free(p);
    for (int i = 0; i < 8; i++) {
        unsigned char *q = hak_malloc(n);
        cr_assert_eq(q, p, "the slot's block was not reused");
        q[0] = (unsigned char)i;
        hak_free(q);
    }
    return p;
}

Test(slot, block_is_reused_without_a_new_mmap) {
    setup(64);
    void *p = cycle(4 * MiB);
    struct hak_lane_stats before = huge_stats();
    void *q = hak_malloc(4 * MiB);
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(q, p);
    cr_assert_eq(after.os_maps, before.os_maps, "a hit must not map");
    hak_free(q);
}

Test(slot, block_goes_back_to_the_os_after_the_delay_while_the_thread_idles) {
    setup(64);
    cycle(4 * MiB); /* a 6 MiB mapping, written in full once */
    size_t rss_held = rss_bytes();
    struct hak_lane_stats before = huge_stats();
    /* no allocator call from here on: the purger thread must take it */
    sleep_ms(DELAY_MS + 800);
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(after.os_unmaps, before.os_unmaps + 1, "the slot's block was kept");
    cr_assert_eq(before.os_mapped - after.os_mapped, 6 * MiB);
    cr_assert(rss_bytes() + 3 * MiB < rss_held, "RSS %zu, held %zu", rss_bytes(), rss_held);
}

Test(slot, malloc_trim_releases_its_block) {
    setup(64);
    cycle(4 * MiB);
    struct hak_lane_stats before = huge_stats();
    cr_assert_eq(hak_trim(0), 1);
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(after.os_unmaps, before.os_unmaps + 1);
    cr_assert_eq(before.os_mapped - after.os_mapped, 6 * MiB);
    void *q = hak_malloc(4 * MiB);
    cr_assert_eq(huge_stats().os_maps, after.os_maps + 1, "nothing left to reuse");
    hak_free(q);
}

Test(slot, double_free_of_its_block_aborts) {
    if (HAK_TEST_BENCH_MINIMAL) cr_skip_test("-Dbench_minimal");
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork");
    if (pid == 0) {
        void *p = cycle(4 * MiB);
        hak_free(p); /* it waits in the slot: a double free */
        _exit(0);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
              "the second free of the slot's block did not abort (status %#x)", st);
}

Test(slot, counters_stay_exact) {
    setup(64);
    cycle(4 * MiB);
    struct hak_lane_stats before = huge_stats();
    for (int i = 0; i < 1000; i++) hak_free(hak_malloc(4 * MiB));
    struct hak_lane_stats after = huge_stats();
    cr_assert_eq(after.allocs, before.allocs + 1000);
    cr_assert_eq(after.frees, before.frees + 1000);
    cr_assert_eq(after.live_bytes, before.live_bytes);
    void *p = hak_malloc(4 * MiB);
    struct hak_lane_stats held = huge_stats();
    cr_assert_eq(held.live_bytes, before.live_bytes + 4 * MiB);
    cr_assert_geq(held.peak_bytes, held.live_bytes);
    hak_free(p);
    cr_assert_eq(huge_stats().live_bytes, before.live_bytes);
}

Test(slot, peak_counts_a_block_held_between_two_flushes) {
    setup(64);
    cycle(4 * MiB);
    /* live bytes above every earlier peak (calloc never takes the slot) */
    void *held = hak_calloc(1, 16 * MiB);
    cr_assert_not_null(held);
    struct hak_lane_stats before = huge_stats();
    /* the slot's frees, still in the thread's batch at the calloc, do not
     * count as live there */
    cr_assert_lt(before.peak_bytes, before.live_bytes + 4 * MiB);
    /* 4 MiB more, reached and left between two flushes of the thread's
     * counters: the peak must still see it */
    hak_free(hak_malloc(4 * MiB));
    struct hak_lane_stats after = huge_stats();
    cr_assert_geq(after.peak_bytes, before.live_bytes + 4 * MiB);
    hak_free(held);
}

static void *cycle_and_exit(void *arg) {
    (void)arg;
    return cycle(4 * MiB);
}

Test(slot, thread_exit_moves_its_block_to_the_bigcache) {
    setup(64);
    pthread_t th;
    void *p;
    cr_assert_eq(pthread_create(&th, NULL, cycle_and_exit, NULL), 0);
    cr_assert_eq(pthread_join(th, &p), 0);
    struct hak_lane_stats before = huge_stats();
    void *q = hak_malloc(4 * MiB);
    cr_assert_eq(q, p, "the exited thread's block was not cached");
    cr_assert_eq(huge_stats().os_maps, before.os_maps);
    hak_free(q);
}

#if HAK_TEST_SECURE
/* -Dsecure: a block taken from the slot larger than the one freed into it
 * gets its guard page moved after its end. */
Test(slot, guard_page_follows_a_larger_block, .signal = SIGSEGV) {
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *p = cycle(3 * MiB); /* a 4 MiB mapping; the guard at 3 MiB */
    unsigned char *q = hak_malloc(4 * MiB - 2 * ps); /* the same mapping, filled */
    cr_assert_eq(q, p);
    memset(q, 1, 4 * MiB - 2 * ps);
    ((volatile unsigned char *)q)[4 * MiB - 2 * ps] = 1; /* the guard */
}
#endif
