/*
 * purge_rss.c: memory goes back to the OS (DESIGN.md 4). After a burst of
 * about 200 MiB of small blocks is freed, RSS comes back down:
 *  - on its own, once HAKMEM_PURGE_DELAY_MS (50 here, set by meson) is over,
 *    while the program only makes a few small allocations now and then
 *    (100 every 10 ms);
 *  - at once on malloc_trim(0) (hak_trim(0) in -Dinterpose=false builds);
 *    meson runs those tests with HAKMEM_PURGE_DELAY_MS=60000, so that only
 *    the trim can have brought RSS down.
 * Built twice: ITEST_PURGE_TRIM=0 has the tests that wait for the delay,
 * ITEST_PURGE_TRIM=1 the trim tests (meson gives each its own delay).
 * "Back down" means within 10% of the burst above the RSS before it.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "itest.h"

#define BURST_BYTES ((size_t)200 << 20)
#define MAX_BLOCKS (BURST_BYTES / 4096 + 16)

static void *blocks[MAX_BLOCKS];

/* Allocates about BURST_BYTES in blocks of 4 KiB .. 64 KiB, touching every
 * page; returns the number of blocks. */
static size_t burst(void) {
    size_t total = 0, n = 0;
    unsigned seed = 12345;
    while (total < BURST_BYTES && n < MAX_BLOCKS) {
        seed = seed * 1103515245u + 12345u;
        size_t size = 4096 + (size_t)((seed >> 8) % (60 * 1024 + 1));
        char *p = hak_malloc(size);
        cr_assert_not_null(p, "hak_malloc(%zu) failed after %zu bytes", size, total);
        memset(p, 0xa5, size);
        blocks[n++] = p;
        total += size;
    }
    return n;
}

static void free_all(size_t n) {
    /* in an order unlike the allocation's */
    for (size_t i = 0; i < n; i += 2) hak_free(blocks[i]);
    for (size_t i = 1; i < n; i += 2) hak_free(blocks[i]);
}

/* HAKMEM_PURGE_DELAY_MS as meson set it for this run. */
static long purge_delay_ms(void) {
    const char *v = getenv("HAKMEM_PURGE_DELAY_MS");
    return v ? atol(v) : 100;
}

static void check_down(uint64_t base, uint64_t peak, uint64_t now, const char *when) {
    uint64_t burst_rss = peak > base ? peak - base : 0;
    cr_assert(burst_rss >= BURST_BYTES / 2, "the burst did not show in RSS (%llu KiB above %llu KiB)",
              (unsigned long long)burst_rss >> 10, (unsigned long long)base >> 10);
    uint64_t left = now > base ? now - base : 0;
    cr_assert(left <= burst_rss / 10,
              "%s: RSS %llu KiB, %llu KiB above the %llu KiB before a burst of %llu KiB "
              "(at most 10%% of the burst may stay)",
              when, (unsigned long long)now >> 10, (unsigned long long)left >> 10,
              (unsigned long long)base >> 10, (unsigned long long)burst_rss >> 10);
}

#if ITEST_PURGE_TRIM == 0

Test(purge_rss, rss_returns_after_the_purge_delay_with_occasional_calls, .timeout = 60) {
    cr_assert(purge_delay_ms() <= 500, "meson should run this with a short purge delay");
    void *warm = hak_malloc(100); /* initialised, option read */
    hak_free(warm);
    uint64_t base = itest_rss_bytes();
    size_t n = burst();
    uint64_t peak = itest_rss_bytes();
    free_all(n);
    /* Now and then a few small blocks: these are fast-path calls, which
     * must still get due purges run (a countdown on the fast path, or a
     * purger thread: DESIGN.md 4). */
    double end = itest_now() + 1.0;
    for (unsigned k = 0; itest_now() < end; k++) {
        itest_sleep_ms(10);
        for (unsigned j = 0; j < 100; j++) {
            void *p = hak_malloc(16 + (k + j) % 241);
            cr_assert_not_null(p);
            hak_free(p);
        }
    }
    check_down(base, peak, itest_rss_bytes(), "1 s after the burst was freed");
}

/* The same when every call after the burst can take a lane's fast path:
 * blocks of the one size used stay allocated around it, so no slab
 * empties or fills up. DESIGN.md 4: due purges happen even then. */
Test(purge_rss, rss_returns_after_the_purge_delay_with_only_fast_path_calls, .timeout = 60) {
    cr_assert(purge_delay_ms() <= 500, "meson should run this with a short purge delay");
    enum { KEPT = 64 };
    void *kept[KEPT];
    for (int i = 0; i < KEPT; i++) {
        kept[i] = hak_malloc(48);
        cr_assert_not_null(kept[i]);
    }
    uint64_t base = itest_rss_bytes();
    size_t n = burst();
    uint64_t peak = itest_rss_bytes();
    free_all(n);
    /* warm the path once, then only fast-path pairs */
    void *w = hak_malloc(48);
    hak_free(w);
    double end = itest_now() + 1.0;
    while (itest_now() < end) {
        itest_sleep_ms(10);
        for (unsigned j = 0; j < 100; j++) {
            void *p = hak_malloc(48);
            cr_assert_not_null(p);
            hak_free(p);
        }
    }
    uint64_t now = itest_rss_bytes();
    for (int i = 0; i < KEPT; i++) hak_free(kept[i]);
    check_down(base, peak, now, "1 s of fast-path calls after the burst was freed");
}

#else /* ITEST_PURGE_TRIM */

/* With a long purge delay, nothing may have been purged before the trim. */
static void check_still_up(uint64_t base, uint64_t peak) {
    if (purge_delay_ms() < 10000) return;
    uint64_t now = itest_rss_bytes();
    cr_assert(now > base + (peak - base) / 2,
              "RSS dropped to %llu KiB before any trim although HAKMEM_PURGE_DELAY_MS=%ld "
              "(peak %llu KiB)",
              (unsigned long long)now >> 10, purge_delay_ms(), (unsigned long long)peak >> 10);
}

Test(purge_rss, trim_returns_rss_at_once, .timeout = 60) {
    void *warm = hak_malloc(100);
    hak_free(warm);
    uint64_t base = itest_rss_bytes();
    size_t n = burst();
    uint64_t peak = itest_rss_bytes();
    free_all(n);
    check_still_up(base, peak);
#if HAK_TEST_INTERPOSE
    malloc_trim(0);
#else
    hak_trim(0);
#endif
    check_down(base, peak, itest_rss_bytes(), "right after malloc_trim(0)");
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert(hak_stats_get(&st) == 0);
    cr_assert(st.purges_pending == 0, "purges still pending after trim: %llu",
              (unsigned long long)st.purges_pending);
}

Test(purge_rss, hak_trim_returns_rss_at_once, .timeout = 60) {
    void *warm = hak_malloc(100);
    hak_free(warm);
    uint64_t base = itest_rss_bytes();
    size_t n = burst();
    uint64_t peak = itest_rss_bytes();
    free_all(n);
    check_still_up(base, peak);
    cr_assert(hak_trim(0) == 1, "hak_trim gave nothing back");
    check_down(base, peak, itest_rss_bytes(), "right after hak_trim(0)");
}

#endif /* ITEST_PURGE_TRIM */
