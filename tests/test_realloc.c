/*
 * test_realloc.c: realloc keeps contents across sizes from 1 B to 64 MiB,
 * growing and shrinking in small and large steps and across the huge lane's
 * two modes (page runs in shared chunks below 1-2 MiB, own mappings from
 * 2 MiB); resizing within the usable size keeps the pointer; a huge block
 * grows to 512 MiB by moving its pages, never by copying them; reallocarray
 * checks its product.
 *
 * Contents are a pattern that depends only on the offset (test_util.h), so
 * it is checked wherever realloc moved the block.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hakmem.h"
#include "test_util.h"

#define SALT 0x5eed

/* Reallocates p (holding the pattern over [0, *size)) to new_size; checks the
 * kept prefix and fills the rest of the new size. */
static unsigned char *resize(unsigned char *p, size_t *size, size_t new_size) {
    unsigned char *q = hak_realloc(p, new_size);
    cr_assert_not_null(q, "realloc(%p, %zu -> %zu) failed (errno %d)", (void *)p, *size,
                       new_size, errno);
    cr_assert_geq(hak_usable_size(q), new_size, "realloc to %zu: usable size %zu", new_size,
                  hak_usable_size(q));
    size_t keep = *size < new_size ? *size : new_size;
    size_t bad = pattern_find_mismatch(q, 0, keep, SALT);
    cr_assert_eq(bad, SIZE_MAX, "realloc(%zu -> %zu) lost the contents at offset %zu", *size,
                 new_size, bad);
    if (new_size > keep) pattern_fill(q, keep, new_size, SALT);
    *size = new_size;
    return q;
}

Test(realloc, contents_survive_growth_in_small_steps_to_4_mib) {
    size_t size = 1;
    unsigned char *p = hak_malloc(size);
    cr_assert_not_null(p);
    pattern_fill(p, 0, size, SALT);
    /* one byte at a time at first, then steps of about 1/16 */
    while (size < 4 * MiB) p = resize(p, &size, size < 300 ? size + 1 : size + size / 16 + 7);
    hak_free(p);
}

Test(realloc, contents_survive_growth_in_large_steps_to_64_mib) {
    static const size_t steps[] = {1,       17,       1000,    40 * KiB, 900 * KiB,
                                   3 * MiB, 17 * MiB, 64 * MiB};
    size_t size = steps[0];
    unsigned char *p = hak_malloc(size);
    cr_assert_not_null(p);
    pattern_fill(p, 0, size, SALT);
    for (size_t i = 1; i < sizeof steps / sizeof steps[0]; i++) p = resize(p, &size, steps[i]);
    hak_free(p);
}

Test(realloc, contents_survive_shrinking_from_64_mib) {
    size_t size = 64 * MiB;
    unsigned char *p = hak_malloc(size);
    cr_assert_not_null(p);
    pattern_fill(p, 0, size, SALT);
    /* halving, with odd sizes, down to one byte */
    while (size > 1) p = resize(p, &size, size / 2 - (size > 64 ? 7 : 0));
    hak_free(p);
    /* small steps down from 3 MiB, through both of the huge lane's modes */
    size = 3 * MiB;
    p = hak_malloc(size);
    cr_assert_not_null(p);
    pattern_fill(p, 0, size, SALT);
    while (size > 300 * KiB) p = resize(p, &size, size - 37 * KiB - 1);
    while (size > 1000) p = resize(p, &size, size - size / 8 - 1);
    while (size > 1) p = resize(p, &size, size - 1);
    hak_free(p);
}

/* Around the sizes where lanes and the huge lane's modes change, in page
 * steps up and down. */
Test(realloc, contents_survive_steps_across_every_boundary) {
    static const size_t boundaries[] = {HAK_TINY_MAX, HAK_POOL_MAX, HAK_ACE_MAX,
                                        HAK_CHUNK_SIZE / 2, HAK_CHUNK_SIZE, 2 * HAK_CHUNK_SIZE};
    size_t ps = page_size();
    for (size_t b = 0; b < sizeof boundaries / sizeof boundaries[0]; b++) {
        size_t lo = boundaries[b] > 4 * ps ? boundaries[b] - 4 * ps : 1, hi = boundaries[b] + 4 * ps;
        size_t step = boundaries[b] <= 64 * KiB ? 255 : ps - 1;
        size_t size = lo;
        unsigned char *p = hak_malloc(size);
        cr_assert_not_null(p);
        pattern_fill(p, 0, size, SALT);
        while (size < hi) p = resize(p, &size, size + step);
        while (size > lo + step) p = resize(p, &size, size - step);
        hak_free(p);
    }
}

/* Several blocks resized in turn, so a block's neighbours are live and it
 * cannot always grow where it is. */
Test(realloc, random_resizes_of_neighbouring_blocks_keep_every_block) {
    enum { N = 16, STEPS = 1500 };
    unsigned char *p[N];
    size_t size[N];
    struct rng r = rng_seed(9);
    for (int i = 0; i < N; i++) {
        size[i] = 1 + (size_t)i * 100;
        p[i] = hak_malloc(size[i]);
        cr_assert_not_null(p[i]);
        pattern_fill(p[i], 0, size[i], SALT);
    }
    for (int s = 0; s < STEPS; s++) {
        int i = (int)(rng_next(&r) % N);
        /* log-uniform sizes to 4 MiB, so most are small */
        size_t n = (size_t)1 << rng_range(&r, 0, 21);
        n += rng_next(&r) % n;
        p[i] = resize(p[i], &size[i], n);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(pattern_find_mismatch(p[i], 0, size[i], SALT), SIZE_MAX, "block %d", i);
        hak_free(p[i]);
    }
}

Test(realloc, aligned_blocks_keep_their_contents) {
    for (size_t align = 64; align <= 8 * MiB; align *= 8) {
        void *m = NULL;
        cr_assert_eq(hak_posix_memalign(&m, align, 1000), 0);
        unsigned char *p = m;
        size_t size = 1000;
        pattern_fill(p, 0, size, SALT);
        p = resize(p, &size, 3 * MiB);
        p = resize(p, &size, 5000);
        p = resize(p, &size, 100);
        hak_free(p);
    }
}

/* ---- the pointer stays when the block already fits ------------------------ */

/* The lane a fresh block of size bytes comes from. */
static int lane_serving(size_t size) {
    void *q = hak_malloc(size);
    cr_assert_not_null(q);
    int lane = hak_lane_of(q);
    hak_free(q);
    return lane;
}

/* realloc to any size the block already holds keeps the pointer, unless that
 * size belongs to another lane (a block may then move to the lane that
 * serves the new size, which is the dispatcher's choice to make). */
Test(realloc, resizing_within_the_usable_size_keeps_the_pointer) {
    static const size_t sizes[] = {1,      15,     16,      100,     1000,    1024,
                                   5000,   40000,  300000,  MiB,     3 * MiB, 10 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = hak_malloc(n);
        cr_assert_not_null(p);
        size_t u = hak_usable_size(p);
        int lane = hak_lane_of(p);
        pattern_fill(p, 0, n, SALT);
        const size_t to[] = {u, (n + u) / 2, n + 1 <= u ? n + 1 : n, n};
        for (size_t k = 0; k < sizeof to / sizeof to[0]; k++) {
            if (lane_serving(to[k]) != lane) continue;
            cr_assert_eq(hak_realloc(p, to[k]), p,
                         "realloc(malloc(%zu), %zu) moved (usable size %zu, %s lane)", n, to[k],
                         u, hak_lane_name(lane));
        }
        cr_assert_eq(hak_realloc(p, n), p, "realloc(malloc(%zu), %zu) moved", n, n);
        cr_assert_eq(pattern_find_mismatch(p, 0, n, SALT), SIZE_MAX);
        hak_free(p);
    }
}

/* ---- the huge lane ------------------------------------------------------ */

Test(huge, usable_size_is_the_request_rounded_up_to_a_page) {
    size_t ps = page_size();
    static const size_t sizes[] = {HAK_ACE_MAX + 1, 2 * MiB - 1, 2 * MiB, 2 * MiB + 1,
                                   5 * MiB + 12345, 64 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = hak_malloc(sizes[i]);
        cr_assert_not_null(p);
        cr_assert_eq(hak_lane_of(p), HAK_LANE_HUGE);
        cr_assert_eq(hak_usable_size(p), (sizes[i] + ps - 1) / ps * ps, "malloc(%zu)", sizes[i]);
        hak_free(p);
    }
}

Test(huge, block_shrinks_in_place_and_gives_the_tail_back) {
    size_t size = 64 * MiB;
    unsigned char *p = hak_malloc(size);
    cr_assert_not_null(p);
    pattern_fill(p, 0, 8 * MiB, SALT);
    unsigned char *q = hak_realloc(p, 8 * MiB);
    cr_assert_eq(q, p, "shrinking a 64 MiB block to 8 MiB moved it");
    cr_assert_geq(hak_usable_size(q), 8 * MiB);
    cr_assert_lt(hak_usable_size(q), 64 * MiB, "the shrunk block kept its usable size");
    cr_assert_eq(pattern_find_mismatch(q, 0, 8 * MiB, SALT), SIZE_MAX);
    hak_free(q);
}

/* Page runs (when the huge lane serves sizes below 1 MiB, i.e. no other lane
 * does) resize in place while the pages after them are free. */
Test(huge, page_run_grows_and_shrinks_in_place_when_it_can) {
    unsigned char *p = hak_malloc(100 * KiB);
    cr_assert_not_null(p);
    if (hak_lane_of(p) != HAK_LANE_HUGE) {
        hak_free(p);
        cr_skip_test("100 KiB blocks are served by the %s lane", hak_lane_name(hak_lane_of(p)));
    }
    size_t size = 100 * KiB;
    pattern_fill(p, 0, size, SALT);
    unsigned char *q = resize(p, &size, 60 * KiB);
    cr_assert_eq(q, p, "a page run shrinking from 100 KiB to 60 KiB moved");
    /* the pages it just gave back are free: it can grow into them again */
    q = resize(q, &size, 100 * KiB);
    cr_assert_eq(q, p, "a page run growing back into its own freed pages moved");
    hak_free(q);
}

/* A block that doubles from 2 MiB to 512 MiB keeps every byte written (a few
 * per step) and never commits the untouched pages: its pages are moved, not
 * copied. */
Test(huge, block_doubling_to_512_mib_moves_pages_without_copying) {
    size_t size = 2 * MiB, ps = page_size();
    unsigned char *p = hak_malloc(size);
    cr_assert_not_null(p);
    size_t rss_before = rss_bytes();
    enum { MAX_MARKS = 64 };
    size_t mark[MAX_MARKS];
    int nmarks = 0;
    /* a neighbour that stops in-place growth now and then */
    void *neighbour = NULL;
    for (;;) {
        mark[nmarks++] = 0;
        mark[nmarks++] = size - 1;
        mark[nmarks++] = size / 2 + ps / 3;
        for (int i = 0; i < nmarks; i++) p[mark[i]] = (unsigned char)(mark[i] * 7 + 1);
        if (size == 512 * MiB) break;
        hak_free(neighbour);
        neighbour = hak_malloc(3 * MiB);
        size *= 2;
        p = hak_realloc(p, size);
        cr_assert_not_null(p, "realloc to %zu failed", size);
        cr_assert_geq(hak_usable_size(p), size);
        for (int i = 0; i < nmarks; i++)
            cr_assert_eq(p[mark[i]], (unsigned char)(mark[i] * 7 + 1),
                         "growing to %zu lost the byte at %zu", size, mark[i]);
    }
    size_t rss_after = rss_bytes();
    cr_assert_lt(rss_after, rss_before + 32 * MiB,
                 "growing to 512 MiB raised RSS by %zu bytes: pages were copied",
                 rss_after - rss_before);
    hak_free(neighbour);
    hak_free(p);
}

/* ---- reallocarray ------------------------------------------------------- */

Test(realloc, reallocarray_overflow_fails_and_keeps_the_block) {
    size_t size = 3000;
    unsigned char *p = hak_malloc(size);
    cr_assert_not_null(p);
    pattern_fill(p, 0, size, SALT);
    errno = 0;
    cr_assert_null(hak_reallocarray(p, SIZE_MAX / 2 + 1, 2));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(hak_reallocarray(p, (size_t)1 << 33, (size_t)1 << 33));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(pattern_find_mismatch(p, 0, size, SALT), SIZE_MAX);
    unsigned char *q = hak_reallocarray(p, 1000, 10);
    cr_assert_not_null(q);
    cr_assert_geq(hak_usable_size(q), 10000);
    cr_assert_eq(pattern_find_mismatch(q, 0, size, SALT), SIZE_MAX);
    hak_free(q);
}
