/*
 * test_align.c: alignment. Every power-of-two alignment from 1 B to 64 MiB
 * times a spread of sizes, through each aligned entry point (posix_memalign,
 * aligned_alloc, memalign; valloc and pvalloc apart): the pointer is aligned,
 * the usable size covers the request, the whole usable size can be written
 * and no two live blocks overlap. And the natural alignment of every plain
 * allocation (DESIGN.md section 3): 16 from 16 bytes, the largest power of
 * two dividing the size below that.
 *
 * Big blocks are few and only their pages are touched once, so the whole
 * file runs in a second or two.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hakmem.h"
#include "test_util.h"

static const size_t sizes[] = {
    0,           1,           7,           8,        15,       16,      17,
    100,         1000,        1024,        1025,     4096,     32 * KiB - 1,
    32 * KiB,    32 * KiB + 1, MiB - 1,    MiB,      MiB + 1,  2 * MiB - 1,
    2 * MiB,     2 * MiB + 1, 3 * MiB,
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

#define MAX_ALIGN_SHIFT 26 /* 64 MiB */

enum entry { POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN };
static const char *const entry_name[] = {"posix_memalign", "aligned_alloc", "memalign"};

static void *aligned(enum entry e, size_t align, size_t size) {
    void *p = NULL;
    switch (e) {
    case POSIX_MEMALIGN: {
        int r = hak_posix_memalign(&p, align, size);
        cr_assert_eq(r, 0, "posix_memalign(%zu, %zu) returned %d", align, size, r);
        break;
    }
    case ALIGNED_ALLOC: p = hak_aligned_alloc(align, size); break;
    case MEMALIGN: p = hak_memalign(align, size); break;
    }
    cr_assert_not_null(p, "%s(%zu, %zu) failed (errno %d)", entry_name[e], align, size, errno);
    return p;
}

/* For each alignment: every size allocated at once, each block checked for
 * alignment and usable size and filled whole with its own pattern; then
 * every block checked (no overlap) and freed. */
static void alignment_matrix(enum entry e) {
    void *blk[NSIZES];
    size_t usable[NSIZES];
    size_t first = e == POSIX_MEMALIGN ? sizeof(void *) : 1;
    for (size_t align = first; align <= (size_t)1 << MAX_ALIGN_SHIFT; align *= 2) {
        for (size_t i = 0; i < NSIZES; i++) {
            blk[i] = aligned(e, align, sizes[i]);
            cr_assert(is_aligned(blk[i], align), "%s(%zu, %zu) = %p is misaligned",
                      entry_name[e], align, sizes[i], blk[i]);
            usable[i] = hak_usable_size(blk[i]);
            cr_assert_geq(usable[i], sizes[i], "%s(%zu, %zu): usable size %zu", entry_name[e],
                          align, sizes[i], usable[i]);
            pattern_fill(blk[i], 0, usable[i], align * 131 + i);
        }
        for (size_t i = 0; i < NSIZES; i++) {
            size_t bad = pattern_find_mismatch(blk[i], 0, usable[i], align * 131 + i);
            cr_assert_eq(bad, SIZE_MAX, "%s(%zu, %zu) = %p overwritten at offset %zu",
                         entry_name[e], align, sizes[i], blk[i], bad);
            hak_free(blk[i]);
        }
    }
}

Test(align, posix_memalign_matrix) { alignment_matrix(POSIX_MEMALIGN); }
Test(align, aligned_alloc_matrix) { alignment_matrix(ALIGNED_ALLOC); }
Test(align, memalign_matrix) { alignment_matrix(MEMALIGN); }

Test(align, posix_memalign_rejects_alignments_below_pointer_size) {
    for (size_t align = 1; align < sizeof(void *); align *= 2) {
        void *p = NULL;
        cr_assert_eq(hak_posix_memalign(&p, align, 100), EINVAL, "alignment %zu", align);
        cr_assert_null(p);
    }
}

/* Big alignments with sizes smaller and larger than the alignment, several
 * live at once: each its own block. */
Test(align, big_alignments_give_distinct_aligned_blocks) {
    enum { N = 6 };
    for (size_t align = 64 * KiB; align <= 64 * MiB; align *= 4) {
        void *p[N];
        for (int i = 0; i < N; i++) {
            size_t size = i % 2 ? align + 1 : 100;
            p[i] = aligned(MEMALIGN, align, size);
            cr_assert(is_aligned(p[i], align));
            for (int j = 0; j < i; j++) cr_assert_neq(p[i], p[j]);
            memset(p[i], i, size);
        }
        for (int i = 0; i < N; i++) {
            cr_assert_eq(((unsigned char *)p[i])[0], i);
            hak_free(p[i]);
        }
    }
}

/* ---- valloc, pvalloc --------------------------------------------------- */

Test(align, valloc_and_pvalloc_are_page_aligned_for_every_size) {
    size_t ps = page_size();
    for (size_t i = 0; i < NSIZES; i++) {
        unsigned char *v = hak_valloc(sizes[i]);
        unsigned char *pv = hak_pvalloc(sizes[i]);
        cr_assert(v && pv, "valloc/pvalloc(%zu) failed", sizes[i]);
        cr_assert(is_aligned(v, ps), "valloc(%zu) = %p", sizes[i], (void *)v);
        cr_assert(is_aligned(pv, ps), "pvalloc(%zu) = %p", sizes[i], (void *)pv);
        size_t uv = hak_usable_size(v), upv = hak_usable_size(pv);
        size_t rounded = sizes[i] == 0 ? ps : (sizes[i] + ps - 1) / ps * ps;
        cr_assert_geq(uv, sizes[i]);
        cr_assert_geq(upv, rounded, "pvalloc(%zu): usable %zu", sizes[i], upv);
        pattern_fill(v, 0, uv, 1);
        pattern_fill(pv, 0, upv, 2);
        cr_assert_eq(pattern_find_mismatch(v, 0, uv, 1), SIZE_MAX);
        hak_free(v);
        hak_free(pv);
    }
}

/* ---- natural alignment of plain allocations ----------------------------- */

static size_t natural_alignment(size_t n) { return n >= 16 ? 16 : low_pow2(n); }

static void check_natural(const char *call, const void *p, size_t n) {
    cr_assert_not_null(p, "%s(%zu) failed", call, n);
    cr_assert(is_aligned(p, natural_alignment(n)), "%s(%zu) = %p, not aligned to %zu", call, n,
              p, natural_alignment(n));
}

Test(align, malloc_aligns_to_16_or_the_largest_power_of_two_dividing_the_size) {
    enum { LIVE = 64 };
    void *live[LIVE] = {0};
    int k = 0;
    /* every size to 4 KiB, then a spread to 4 MiB; blocks stay live a while so
     * that later ones come from partly used memory */
    for (size_t n = 1; n <= 4 * MiB; n += n < 4096 ? 1 : n / 8 + 3) {
        void *p = hak_malloc(n);
        check_natural("malloc", p, n);
        hak_free(live[k]);
        live[k] = p;
        k = (k + 1) % LIVE;
    }
    for (int i = 0; i < LIVE; i++) hak_free(live[i]);
}

Test(align, calloc_and_realloc_results_are_naturally_aligned) {
    void *r = NULL;
    for (size_t n = 1; n <= 2 * MiB; n += n < 256 ? 1 : n / 4 + 1) {
        void *c = hak_calloc(1, n);
        check_natural("calloc", c, n);
        void *c2 = hak_calloc(n, 1);
        check_natural("calloc", c2, n);
        r = hak_realloc(r, n);
        check_natural("realloc", r, n);
        hak_free(c);
        hak_free(c2);
    }
    hak_free(r);
}

Test(align, small_alignments_with_small_sizes_are_honoured) {
    /* the dispatcher serves alignments up to 16 as plain allocations: each
     * still gets at least the alignment asked for */
    for (size_t align = 1; align <= 16; align *= 2)
        for (size_t n = 0; n <= 64; n++) {
            void *p = hak_aligned_alloc(align, n);
            cr_assert_not_null(p);
            cr_assert(is_aligned(p, align), "aligned_alloc(%zu, %zu) = %p", align, n, p);
            if (n) memset(p, 0x5c, n);
            hak_free(p);
        }
}
