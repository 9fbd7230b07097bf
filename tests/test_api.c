/*
 * test_api.c: the malloc family's contract (DESIGN.md section 5, the
 * behaviour of glibc 2.36): return values, errno and out-parameters of every
 * row of the table, checked through the hak_* names (present in every build)
 * and, when the library interposes, through the standard names too; then the
 * introspection calls (stats, trim, glibc's mallinfo2/malloc_info/mallopt),
 * the interposition itself and the misuse checks.
 *
 * Tests are written against behaviour, not against a lane: the same tests
 * run whatever lanes are compiled in.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hak_config.h"
#include "hakmem.h"
#include "test_util.h"

#define ERRNO_SENTINEL 4242

/* ---- the two families: hak_* and (when interposing) the standard names -- */

struct family {
    const char *name;
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*usable_size)(void *);
};

static size_t hak_usable_size_mut(void *p) { return hak_usable_size(p); }

static const struct family families[] = {
    {"hak_*", hak_malloc, hak_free, hak_calloc, hak_realloc, hak_reallocarray,
     hak_posix_memalign, hak_aligned_alloc, hak_memalign, hak_valloc, hak_pvalloc,
     hak_usable_size_mut},
#if HAK_INTERPOSE
    {"standard", malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
     memalign, valloc, pvalloc, malloc_usable_size},
#endif
};
#define NFAMILIES (sizeof families / sizeof families[0])

#define FOR_EACH_FAMILY(f) for (const struct family *f = families; f < families + NFAMILIES; f++)

/* Sizes across every lane's range and the huge lane's two modes. */
static const size_t spread[] = {
    1,        8,         16,          24,          100,     1000,    1024,    1025,
    4096,     10000,     32 * KiB,    32 * KiB + 1, 100000,  MiB - 1, MiB + 1, 2 * MiB,
    3 * MiB,  10 * MiB,
};
#define NSPREAD (sizeof spread / sizeof spread[0])

/* Sizes no allocator can serve: beyond the address space or overflowing. */
static const size_t too_large[] = {
    SIZE_MAX,           SIZE_MAX - 4095,   SIZE_MAX / 2 + 1,
    (size_t)PTRDIFF_MAX, (size_t)1 << 62,   (size_t)1 << 48,
};
#define NTOO_LARGE (sizeof too_large / sizeof too_large[0])

static uint64_t live_bytes(void) {
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert_eq(hak_stats_get(&st), 0);
    return st.lane[0].live_bytes;
}

/* ---- malloc ------------------------------------------------------------ */

Test(api, malloc_zero_returns_unique_freeable_blocks) {
    FOR_EACH_FAMILY(f) {
        enum { N = 64 };
        void *p[N];
        for (int i = 0; i < N; i++) {
            p[i] = f->malloc(0);
            cr_assert_not_null(p[i], "%s: malloc(0) returned NULL", f->name);
            for (int j = 0; j < i; j++)
                cr_assert_neq(p[i], p[j], "%s: malloc(0) returned %p twice", f->name, p[i]);
        }
        for (int i = 0; i < N; i++) f->free(p[i]);
    }
}

Test(api, malloc_too_large_returns_null_with_enomem) {
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < NTOO_LARGE; i++) {
            errno = 0;
            void *p = f->malloc(too_large[i]);
            cr_assert_null(p, "%s: malloc(%zu) succeeded", f->name, too_large[i]);
            cr_assert_eq(errno, ENOMEM, "%s: malloc(%zu): errno %d", f->name, too_large[i], errno);
        }
    }
}

/* ---- calloc ------------------------------------------------------------ */

Test(api, calloc_overflowing_or_too_large_returns_null_with_enomem) {
    static const size_t cases[][2] = {
        {SIZE_MAX / 2 + 1, 2},          {2, SIZE_MAX / 2 + 1}, {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX, SIZE_MAX},           {65537, (size_t)1 << 48}, {3, SIZE_MAX / 3 + 1},
        {1, SIZE_MAX},                  {SIZE_MAX, 1},          {(size_t)1 << 31, (size_t)1 << 31},
    };
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            errno = 0;
            void *p = f->calloc(cases[i][0], cases[i][1]);
            cr_assert_null(p, "%s: calloc(%zu, %zu) succeeded", f->name, cases[i][0], cases[i][1]);
            cr_assert_eq(errno, ENOMEM, "%s: calloc(%zu, %zu): errno %d", f->name, cases[i][0],
                         cases[i][1], errno);
        }
    }
}

Test(api, calloc_with_zero_count_or_size_returns_unique_blocks) {
    FOR_EACH_FAMILY(f) {
        void *a = f->calloc(0, 16), *b = f->calloc(16, 0), *c = f->calloc(0, 0);
        cr_assert(a && b && c, "%s: calloc of zero bytes returned NULL", f->name);
        cr_assert(a != b && b != c && a != c, "%s: calloc(0) blocks are not unique", f->name);
        f->free(a);
        f->free(b);
        f->free(c);
    }
}

Test(api, calloc_returns_zeroed_memory_even_when_reused) {
    static const size_t sizes[] = {1,     8,      24,      100,     1000, 1024,
                                   4000,  10000,  40000,   200000,  MiB,  3 * MiB};
    FOR_EACH_FAMILY(f) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t size = sizes[s];
            int rounds = size <= 64 * KiB ? 20 : 3;
            int count = size <= 4 * KiB ? 32 : 4;
            void *blk[32];
            for (int r = 0; r < rounds; r++) {
                /* dirty blocks of this size, so the calloc below reuses them */
                for (int i = 0; i < count; i++) {
                    blk[i] = f->malloc(size);
                    cr_assert_not_null(blk[i]);
                    memset(blk[i], 0xAA, f->usable_size(blk[i]));
                }
                for (int i = 0; i < count; i++) f->free(blk[i]);
                for (int i = 0; i < count; i++) {
                    /* vary how the product is formed */
                    size_t n = (i % 3 == 0) ? 1 : (i % 3 == 1) ? size : (size % 4 ? size : size / 4);
                    size_t m = size / n;
                    blk[i] = f->calloc(n, m);
                    cr_assert_not_null(blk[i], "%s: calloc(%zu, %zu)", f->name, n, m);
                    cr_assert(all_zero(blk[i], size),
                              "%s: calloc(%zu, %zu) round %d block %d is not zeroed", f->name, n,
                              m, r, i);
                    memset(blk[i], 0xAA, size); /* dirty again for the next round */
                }
                for (int i = 0; i < count; i++) f->free(blk[i]);
            }
        }
    }
}

Test(api, calloc_of_one_gib_commits_no_memory) {
    FOR_EACH_FAMILY(f) {
        size_t before = rss_bytes();
        unsigned char *p = f->calloc(1, GiB);
        cr_assert_not_null(p, "%s: calloc(1, 1 GiB) failed", f->name);
        size_t after = rss_bytes();
        cr_assert_lt(after, before + 8 * MiB,
                     "%s: calloc of 1 GiB raised RSS from %zu to %zu bytes", f->name, before,
                     after);
        cr_assert(p[0] == 0 && p[GiB / 2 + 12345] == 0 && p[GiB - 1] == 0,
                  "%s: calloc of 1 GiB is not zeroed", f->name);
        f->free(p);

        /* the same through the product */
        before = rss_bytes();
        p = f->calloc((size_t)1 << 15, (size_t)1 << 15);
        cr_assert_not_null(p);
        after = rss_bytes();
        cr_assert_lt(after, before + 8 * MiB, "%s: calloc(2^15, 2^15) raised RSS by %zu bytes",
                     f->name, after - before);
        cr_assert(p[GiB - 1] == 0);
        f->free(p);
    }
}

/* A big block freed and allocated again by calloc (an allocator may keep
 * freed big blocks for reuse): calloc returns zeroes and still commits only
 * what the program touches, not the whole block. */
Test(api, calloc_of_a_recycled_big_block_is_zeroed_and_commits_no_memory) {
    static const size_t sizes[] = {3 * MiB, 16 * MiB, 60 * MiB};
    size_t ps = page_size();
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t size = sizes[i];
        unsigned char *p = hak_malloc(size);
        cr_assert_not_null(p);
        /* the previous user dirties a few pages only */
        p[0] = p[ps] = p[size / 2] = p[size - 1] = 0xAA;
        hak_free(p);
        size_t before = rss_bytes();
        unsigned char *q = hak_calloc(1, size);
        size_t after = rss_bytes();
        cr_assert_not_null(q);
        cr_assert(q[0] == 0 && q[ps] == 0 && q[size / 2] == 0 && q[size - 1] == 0,
                  "calloc(%zu) after free of a block of the same size is not zeroed", size);
        cr_assert_lt(after, before + 2 * MiB,
                     "calloc(%zu) after free of a block of that size raised RSS by %zu bytes",
                     size, after - before);
        hak_free(q);
    }
}

/* ---- realloc and reallocarray ------------------------------------------ */

Test(api, realloc_of_null_allocates) {
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < NSPREAD; i++) {
            unsigned char *p = f->realloc(NULL, spread[i]);
            cr_assert_not_null(p, "%s: realloc(NULL, %zu) failed", f->name, spread[i]);
            cr_assert_geq(f->usable_size(p), spread[i]);
            memset(p, 0x5A, spread[i]);
            f->free(p);
        }
        void *a = f->realloc(NULL, 0), *b = f->realloc(NULL, 0);
        cr_assert(a && b && a != b, "%s: realloc(NULL, 0) must act as malloc(0)", f->name);
        f->free(a);
        f->free(b);
    }
}

Test(api, realloc_to_zero_frees_and_returns_null) {
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < NSPREAD; i++) {
            void *p = f->malloc(spread[i]);
            cr_assert_not_null(p);
            cr_assert_null(f->realloc(p, 0), "%s: realloc(p, 0) did not return NULL", f->name);
        }
        /* the block really is freed: the live byte count comes back */
        warm_up_hakmem();
        uint64_t before = live_bytes();
        void *p = f->malloc(8 * MiB);
        cr_assert_not_null(p);
        uint64_t during = live_bytes();
        cr_assert_null(f->realloc(p, 0));
        uint64_t after = live_bytes();
        if (!HAK_BENCH_MINIMAL) {
            cr_assert_geq(during, before + 8 * MiB, "%s: live bytes %llu -> %llu", f->name,
                          (unsigned long long)before, (unsigned long long)during);
            cr_assert_eq(after, before, "%s: realloc(p, 0) left live bytes at %llu, not %llu",
                         f->name, (unsigned long long)after, (unsigned long long)before);
        }
    }
}

/* Fills a block of `size` bytes, asks for an impossible size, and checks that
 * realloc failed cleanly and the block is intact and still usable. */
static void check_failed_realloc(const struct family *f, size_t size, size_t impossible,
                                 bool array) {
    unsigned char *p = f->malloc(size);
    cr_assert_not_null(p);
    size_t usable = f->usable_size(p);
    pattern_fill(p, 0, size, size);
    errno = 0;
    void *q = array ? f->reallocarray(p, impossible, 2) : f->realloc(p, impossible);
    cr_assert_null(q, "%s: %s(p of %zu, %zu) succeeded", f->name,
                   array ? "reallocarray" : "realloc", size, impossible);
    cr_assert_eq(errno, ENOMEM, "%s: failed realloc of %zu bytes: errno %d", f->name, size,
                 errno);
    cr_assert_eq(f->usable_size(p), usable, "%s: failed realloc changed the block", f->name);
    cr_assert_eq(pattern_find_mismatch(p, 0, size, size), SIZE_MAX,
                 "%s: failed realloc damaged the block of %zu bytes", f->name, size);
    /* still a valid block: it can grow and be freed */
    unsigned char *r = f->realloc(p, size + 4096);
    cr_assert_not_null(r);
    cr_assert_eq(pattern_find_mismatch(r, 0, size, size), SIZE_MAX);
    f->free(r);
}

Test(api, realloc_too_large_returns_null_with_enomem_and_keeps_block) {
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < NSPREAD; i += 2)
            for (size_t j = 0; j < NTOO_LARGE; j++)
                check_failed_realloc(f, spread[i], too_large[j], false);
    }
}

Test(api, reallocarray_overflowing_returns_null_with_enomem_and_keeps_block) {
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < NSPREAD; i += 3) {
            check_failed_realloc(f, spread[i], SIZE_MAX / 2 + 1, true); /* overflows */
            check_failed_realloc(f, spread[i], SIZE_MAX / 4, true);     /* too large */
        }
        errno = 0;
        cr_assert_null(f->reallocarray(NULL, SIZE_MAX / 2 + 1, 2));
        cr_assert_eq(errno, ENOMEM, "%s: reallocarray(NULL, overflow): errno %d", f->name, errno);
        errno = 0;
        cr_assert_null(f->reallocarray(NULL, (size_t)1 << 32, (size_t)1 << 32));
        cr_assert_eq(errno, ENOMEM);
    }
}

Test(api, reallocarray_reallocates_the_product) {
    FOR_EACH_FAMILY(f) {
        unsigned char *p = f->reallocarray(NULL, 10, 10);
        cr_assert_not_null(p, "%s: reallocarray(NULL, 10, 10) failed", f->name);
        cr_assert_geq(f->usable_size(p), 100);
        pattern_fill(p, 0, 100, 7);
        p = f->reallocarray(p, 1000, 1000);
        cr_assert_not_null(p);
        cr_assert_geq(f->usable_size(p), 1000000);
        cr_assert_eq(pattern_find_mismatch(p, 0, 100, 7), SIZE_MAX);
        cr_assert_null(f->reallocarray(p, 0, 8), "%s: reallocarray(p, 0, n) frees p", f->name);
    }
}

/* The OS refuses (RLIMIT_AS): allocations fail with ENOMEM, existing blocks
 * survive, and the allocator keeps working once memory is available again. */
Test(api, allocation_refused_by_the_os_returns_enomem_and_keeps_blocks) {
    FOR_EACH_FAMILY(f) {
        unsigned char *small = f->malloc(1000), *big = f->malloc(4 * MiB);
        cr_assert(small && big);
        pattern_fill(small, 0, 1000, 1);
        pattern_fill(big, 0, 4 * MiB, 2);

        struct rlimit old, lim;
        cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
        lim = old;
        lim.rlim_cur = vm_bytes() + 256 * MiB;
        cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);

        errno = 0;
        cr_assert_null(f->malloc(GiB), "%s: malloc(1 GiB) succeeded under RLIMIT_AS", f->name);
        cr_assert_eq(errno, ENOMEM);
        errno = 0;
        cr_assert_null(f->calloc(GiB / 16, 16));
        cr_assert_eq(errno, ENOMEM);
        errno = 0;
        cr_assert_null(f->aligned_alloc(4096, GiB));
        cr_assert_eq(errno, ENOMEM);
        void *sentinel = (void *)(uintptr_t)0x1234, *m = sentinel;
        cr_assert_eq(f->posix_memalign(&m, 64, GiB), ENOMEM);
        cr_assert_eq(m, sentinel, "%s: failed posix_memalign wrote *memptr", f->name);
        errno = 0;
        cr_assert_null(f->realloc(small, GiB));
        cr_assert_eq(errno, ENOMEM);
        errno = 0;
        cr_assert_null(f->realloc(big, GiB), "%s: realloc(4 MiB -> 1 GiB) succeeded", f->name);
        cr_assert_eq(errno, ENOMEM);
        void *tiny = f->malloc(100); /* small requests still work */
        cr_assert_not_null(tiny);
        f->free(tiny);

        cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
        cr_assert_eq(pattern_find_mismatch(small, 0, 1000, 1), SIZE_MAX);
        cr_assert_eq(pattern_find_mismatch(big, 0, 4 * MiB, 2), SIZE_MAX);
        big = f->realloc(big, 64 * MiB);
        cr_assert_not_null(big, "%s: realloc failed after the limit was lifted", f->name);
        cr_assert_eq(pattern_find_mismatch(big, 0, 4 * MiB, 2), SIZE_MAX);
        f->free(big);
        f->free(small);
    }
}

/* ---- posix_memalign ---------------------------------------------------- */

Test(api, posix_memalign_bad_alignment_leaves_errno_and_memptr) {
    static const size_t bad[] = {0,  1,   2,   3,    4,    5,          12,
                                 24, 48,  100, 4097, 3 * 4096,   SIZE_MAX,
                                 SIZE_MAX / 2 + 2, ((size_t)1 << 20) + 8};
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            if (bad[i] == 4 && sizeof(void *) == 4) continue; /* a valid alignment there */
            void *sentinel = (void *)(uintptr_t)0xdead0, *m = sentinel;
            errno = ERRNO_SENTINEL;
            int r = f->posix_memalign(&m, bad[i], 100);
            cr_assert_eq(r, EINVAL, "%s: posix_memalign(alignment %zu) returned %d", f->name,
                         bad[i], r);
            cr_assert_eq(errno, ERRNO_SENTINEL, "%s: posix_memalign(alignment %zu) set errno %d",
                         f->name, bad[i], errno);
            cr_assert_eq(m, sentinel, "%s: posix_memalign(alignment %zu) wrote *memptr", f->name,
                         bad[i]);
        }
    }
}

Test(api, posix_memalign_valid_alignment_sets_memptr_and_keeps_errno) {
    FOR_EACH_FAMILY(f) {
        for (size_t a = sizeof(void *); a <= 64 * KiB; a *= 4) {
            for (size_t i = 0; i < NSPREAD; i += 3) {
                void *m = NULL;
                errno = ERRNO_SENTINEL;
                int r = f->posix_memalign(&m, a, spread[i]);
                cr_assert_eq(r, 0, "%s: posix_memalign(%zu, %zu) returned %d", f->name, a,
                             spread[i], r);
                cr_assert_eq(errno, ERRNO_SENTINEL);
                cr_assert_not_null(m);
                cr_assert(is_aligned(m, a), "%s: %p not aligned to %zu", f->name, m, a);
                cr_assert_geq(f->usable_size(m), spread[i]);
                f->free(m);
            }
        }
        void *m = NULL;
        cr_assert_eq(f->posix_memalign(&m, 64, 0), 0, "%s: posix_memalign of 0 bytes", f->name);
        cr_assert_not_null(m);
        f->free(m);
    }
}

Test(api, posix_memalign_out_of_memory_returns_enomem) {
    static const size_t cases[][2] = {
        {64, SIZE_MAX},       {4096, (size_t)1 << 62}, {SIZE_MAX / 2 + 1, 16},
        {8, SIZE_MAX - 4095}, {2 * MiB, (size_t)1 << 48},
        /* small alignments whose rounding of the size would wrap to 0 */
        {16, SIZE_MAX},       {8, SIZE_MAX - 3},       {16, SIZE_MAX - 14},
    };
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            void *sentinel = (void *)(uintptr_t)0xdead0, *m = sentinel;
            int r = f->posix_memalign(&m, cases[i][0], cases[i][1]);
            cr_assert_eq(r, ENOMEM, "%s: posix_memalign(%zu, %zu) returned %d", f->name,
                         cases[i][0], cases[i][1], r);
            cr_assert_eq(m, sentinel, "%s: failed posix_memalign wrote *memptr", f->name);
        }
    }
}

/* ---- aligned_alloc and memalign ---------------------------------------- */

static void check_rounded_alignment(const struct family *f, bool memalign) {
    static const size_t odd[] = {0,    3,     5,    6,     7,      9,      24,
                                 48,   100,   1000, 4097,  65537,  MiB + 1, 3 * MiB};
    static const size_t sizes[] = {1, 100, 5000, 3 * MiB};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        size_t want = 1;
        while (want < odd[i]) want *= 2;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            errno = 0;
            unsigned char *p = memalign ? f->memalign(odd[i], sizes[s])
                                        : f->aligned_alloc(odd[i], sizes[s]);
            cr_assert_not_null(p, "%s: %s(%zu, %zu) failed (errno %d)", f->name,
                               memalign ? "memalign" : "aligned_alloc", odd[i], sizes[s], errno);
            cr_assert(is_aligned(p, want), "%s: %s(%zu, %zu) = %p, not aligned to %zu", f->name,
                      memalign ? "memalign" : "aligned_alloc", odd[i], sizes[s], (void *)p, want);
            cr_assert_geq(f->usable_size(p), sizes[s]);
            p[0] = 1;
            p[sizes[s] - 1] = 2;
            f->free(p);
        }
    }
}

Test(api, aligned_alloc_rounds_alignment_up_to_a_power_of_two) {
    FOR_EACH_FAMILY(f) check_rounded_alignment(f, false);
}

Test(api, memalign_rounds_alignment_up_to_a_power_of_two) {
    FOR_EACH_FAMILY(f) check_rounded_alignment(f, true);
}

Test(api, memalign_alignment_above_half_the_address_space_fails_with_einval) {
    static const size_t bad[] = {SIZE_MAX / 2 + 2, SIZE_MAX / 2 + 4096, SIZE_MAX - 1, SIZE_MAX};
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            errno = 0;
            cr_assert_null(f->memalign(bad[i], 16));
            cr_assert_eq(errno, EINVAL, "%s: memalign(%zu): errno %d", f->name, bad[i], errno);
            errno = 0;
            cr_assert_null(f->aligned_alloc(bad[i], 16));
            cr_assert_eq(errno, EINVAL, "%s: aligned_alloc(%zu): errno %d", f->name, bad[i],
                         errno);
        }
    }
}

Test(api, aligned_alloc_too_large_returns_null_with_enomem) {
    static const size_t cases[][2] = {
        {SIZE_MAX / 2 + 1, 16}, /* a valid alignment no address space can give */
        {64, SIZE_MAX},
        {4096, (size_t)1 << 62},
        {2 * MiB, SIZE_MAX - 2 * MiB},
        {16, SIZE_MAX - 14}, /* rounding the size up would wrap to 0 */
        {8, SIZE_MAX - 3},
        {1, SIZE_MAX},
    };
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            errno = 0;
            cr_assert_null(f->memalign(cases[i][0], cases[i][1]));
            cr_assert_eq(errno, ENOMEM, "%s: memalign(%zu, %zu): errno %d", f->name, cases[i][0],
                         cases[i][1], errno);
            errno = 0;
            cr_assert_null(f->aligned_alloc(cases[i][0], cases[i][1]));
            cr_assert_eq(errno, ENOMEM);
        }
    }
}

/* ---- valloc and pvalloc ------------------------------------------------ */

Test(api, valloc_returns_page_aligned_blocks) {
    size_t ps = page_size();
    const size_t sizes[] = {0, 1, 100, ps - 1, ps, ps + 1, 100000, MiB + 1, 3 * MiB};
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = f->valloc(sizes[i]);
            cr_assert_not_null(p, "%s: valloc(%zu) failed", f->name, sizes[i]);
            cr_assert(is_aligned(p, ps), "%s: valloc(%zu) = %p", f->name, sizes[i], (void *)p);
            cr_assert_geq(f->usable_size(p), sizes[i]);
            memset(p, 0x33, sizes[i]);
            f->free(p);
        }
    }
}

Test(api, pvalloc_rounds_size_up_to_whole_pages) {
    size_t ps = page_size();
    const size_t sizes[] = {0, 1, 100, ps - 1, ps, ps + 1, 3 * ps + 7, MiB + 1, 3 * MiB + 5};
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t pages = sizes[i] == 0 ? ps : (sizes[i] + ps - 1) / ps * ps;
            unsigned char *p = f->pvalloc(sizes[i]);
            cr_assert_not_null(p, "%s: pvalloc(%zu) failed", f->name, sizes[i]);
            cr_assert(is_aligned(p, ps), "%s: pvalloc(%zu) = %p", f->name, sizes[i], (void *)p);
            size_t usable = f->usable_size(p);
            cr_assert_geq(usable, pages, "%s: pvalloc(%zu): usable %zu < %zu", f->name, sizes[i],
                          usable, pages);
            memset(p, 0x44, pages); /* the whole rounded size is the caller's */
            f->free(p);
        }
    }
}

Test(api, valloc_and_pvalloc_too_large_return_null_with_enomem) {
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < NTOO_LARGE; i++) {
            errno = 0;
            cr_assert_null(f->valloc(too_large[i]), "%s: valloc(%zu)", f->name, too_large[i]);
            cr_assert_eq(errno, ENOMEM);
            errno = 0;
            cr_assert_null(f->pvalloc(too_large[i]), "%s: pvalloc(%zu)", f->name, too_large[i]);
            cr_assert_eq(errno, ENOMEM, "%s: pvalloc(%zu): errno %d", f->name, too_large[i],
                         errno);
        }
    }
}

/* ---- free --------------------------------------------------------------- */

Test(api, free_of_null_is_a_noop_and_keeps_errno) {
    FOR_EACH_FAMILY(f) {
        errno = ERRNO_SENTINEL;
        f->free(NULL);
        cr_assert_eq(errno, ERRNO_SENTINEL);
    }
}

static void free_keeping_errno(const struct family *f, void *p, const char *what, size_t size) {
    errno = ERRNO_SENTINEL;
    f->free(p);
    cr_assert_eq(errno, ERRNO_SENTINEL, "%s: free of %s block of %zu bytes changed errno to %d",
                 f->name, what, size, errno);
}

Test(api, free_never_changes_errno) {
    FOR_EACH_FAMILY(f) {
        for (size_t i = 0; i < NSPREAD; i++) {
            unsigned char *p = f->malloc(spread[i]);
            cr_assert_not_null(p);
            memset(p, 1, spread[i]);
            free_keeping_errno(f, p, "a malloc", spread[i]);
            void *m = NULL;
            cr_assert_eq(f->posix_memalign(&m, 4096, spread[i]), 0);
            free_keeping_errno(f, m, "an aligned", spread[i]);
            p = f->realloc(f->malloc(10), spread[i]);
            cr_assert_not_null(p);
            free_keeping_errno(f, p, "a realloc'd", spread[i]);
        }
        unsigned char *huge = f->malloc(256 * MiB);
        cr_assert_not_null(huge);
        huge[0] = huge[256 * MiB - 1] = 1;
        free_keeping_errno(f, huge, "a huge", 256 * MiB);

        /* a burst freed, then frees after the purge delay: these frees may
         * run the purges (and unmap empty chunks) */
        enum { N = 512 };
        void *blk[N];
        for (int round = 0; round < 2; round++) {
            for (int i = 0; i < N; i++) {
                blk[i] = f->malloc(8 * KiB + (size_t)i);
                cr_assert_not_null(blk[i]);
                memset(blk[i], 2, 8 * KiB);
            }
            for (int i = 0; i < N; i += 2) free_keeping_errno(f, blk[i], "a burst", 8 * KiB);
            usleep(150 * 1000);
            for (int i = 1; i < N; i += 2) free_keeping_errno(f, blk[i], "a burst", 8 * KiB);
        }
    }
}

/* ---- usable size -------------------------------------------------------- */

Test(api, usable_size_of_null_is_zero) {
    FOR_EACH_FAMILY(f) cr_assert_eq(f->usable_size(NULL), 0);
}

Test(api, usable_size_covers_the_request_and_is_writable) {
    FOR_EACH_FAMILY(f) {
        for (size_t n = 0; n <= 2048; n += (n < 64 ? 1 : 37)) {
            unsigned char *p = f->malloc(n);
            cr_assert_not_null(p);
            size_t u = f->usable_size(p);
            cr_assert_geq(u, n, "%s: usable_size(malloc(%zu)) = %zu", f->name, n, u);
            memset(p, 0x77, u);
            f->free(p);
        }
        for (size_t i = 0; i < NSPREAD; i++) {
            unsigned char *p = f->malloc(spread[i]);
            cr_assert_not_null(p);
            size_t u = f->usable_size(p);
            cr_assert_geq(u, spread[i], "%s: usable_size(malloc(%zu)) = %zu", f->name, spread[i],
                          u);
            memset(p, 0x77, u);
            f->free(p);
        }
    }
}

/* DESIGN.md section 2: within a lane's own range a request of n bytes gets
 * at most max(round_up(n, 16), 1.25 n) bytes. Checked for the tiny and pool
 * lanes (the ACE lane's W_MAX policy may allow more; the huge lane serves
 * small sizes as whole pages only when their own lane is compiled out). */
Test(api, small_blocks_waste_at_most_a_quarter_of_the_request) {
    for (size_t n = 1; n <= HAK_POOL_MAX; n += n < 2048 ? 1 : 61) {
        void *p = hak_malloc(n);
        cr_assert_not_null(p);
        int lane = hak_lane_of(p);
        if (lane == HAK_LANE_TINY || lane == HAK_LANE_POOL) {
            size_t u = hak_usable_size(p);
            cr_assert(u <= (n + 15) / 16 * 16 || 4 * u <= 5 * n,
                      "malloc(%zu) from the %s lane has usable size %zu", n, hak_lane_name(lane),
                      u);
        }
        hak_free(p);
    }
}

/* Many blocks of many sizes live at once: no two share a byte. */
Test(api, live_blocks_never_overlap) {
    enum { N = 600 };
    static unsigned char *blk[N];
    static size_t len[N];
    struct rng r = rng_seed(42);
    FOR_EACH_FAMILY(f) {
        for (int i = 0; i < N; i++) {
            unsigned k = (unsigned)(rng_next(&r) % 100);
            len[i] = k < 60 ? rng_range(&r, 0, 1024)
                     : k < 90 ? rng_range(&r, 1025, 32 * KiB)
                     : k < 99 ? rng_range(&r, 32 * KiB + 1, MiB)
                              : rng_range(&r, MiB + 1, 3 * MiB);
            blk[i] = f->malloc(len[i]);
            cr_assert_not_null(blk[i]);
            len[i] = f->usable_size(blk[i]);
            pattern_fill(blk[i], 0, len[i], (uint64_t)i);
            if (i % 7 == 6) { /* free some, to reuse holes */
                int j = (int)(rng_next(&r) % (uint64_t)i);
                if (blk[j]) {
                    cr_assert_eq(pattern_find_mismatch(blk[j], 0, len[j], (uint64_t)j), SIZE_MAX);
                    f->free(blk[j]);
                    blk[j] = NULL;
                }
            }
        }
        for (int i = 0; i < N; i++) {
            if (!blk[i]) continue;
            size_t bad = pattern_find_mismatch(blk[i], 0, len[i], (uint64_t)i);
            cr_assert_eq(bad, SIZE_MAX, "%s: block %d (%p, %zu bytes) overwritten at offset %zu",
                         f->name, i, (void *)blk[i], len[i], bad);
            f->free(blk[i]);
            blk[i] = NULL;
        }
    }
}

/* ---- trim, stats, lanes ------------------------------------------------- */

Test(api, trim_returns_zero_or_one) {
    int r = hak_trim(0);
    cr_assert(r == 0 || r == 1, "hak_trim returned %d", r);
    void *p = hak_malloc(5000), *q = hak_malloc(5 * MiB);
    hak_free(p);
    hak_free(q);
    r = hak_trim(0);
    cr_assert(r == 0 || r == 1, "hak_trim returned %d", r);
    r = hak_trim(64 * MiB);
    cr_assert(r == 0 || r == 1, "hak_trim(64 MiB) returned %d", r);
}

/* A burst of 64 MiB in blocks of one size, touched, freed: after malloc_trim
 * the memory is back with the OS, whichever lane served it (its caches
 * included). */
static void burst_then_trim(size_t size) {
    enum { MAX_BLOCKS = 1 << 17 };
    static void *blk[MAX_BLOCKS];
    size_t n = 64 * MiB / size;
    cr_assert_leq(n, MAX_BLOCKS);
    memset(blk, 0, sizeof blk); /* the array's own pages count in RSS from here */
    size_t base = rss_bytes();
    for (size_t i = 0; i < n; i++) {
        blk[i] = hak_malloc(size);
        cr_assert_not_null(blk[i]);
        memset(blk[i], 0x11, size);
    }
    const char *lane = hak_lane_name(hak_lane_of(blk[0]));
    size_t peak = rss_bytes();
    cr_assert_geq(peak, base + 48 * MiB, "a burst of 64 MiB raised RSS only by %zu bytes",
                  peak - base);
    for (size_t i = 0; i < n; i++) hak_free(blk[i]);
    int r = hak_trim(0);
    cr_assert(r == 0 || r == 1, "hak_trim returned %d", r);
    size_t after = rss_bytes();
    cr_assert_lt(after, base + 8 * MiB,
                 "blocks of %zu bytes (%s lane): RSS %zu bytes before the burst, %zu at its "
                 "peak, %zu after free and trim",
                 size, lane, base, peak, after);
}

Test(api, trim_after_a_burst_gives_rss_back) {
    static const size_t sizes[] = {1000, 16 * KiB, 100 * KiB, 700 * KiB, 1536 * KiB, 4 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) burst_then_trim(sizes[i]);
}

/* The huge lane's page runs (when it serves small sizes, i.e. the lanes for
 * them are compiled out): trim purges the free pages of chunks that still
 * hold live blocks, not only the chunks that are empty. */
Test(huge, trim_purges_free_pages_of_partly_used_chunks) {
    enum { N = 4096, KEEP_EVERY = 64 };
    static void *blk[N];
    size_t base = rss_bytes();
    for (int i = 0; i < N; i++) {
        blk[i] = hak_malloc(16 * KiB);
        cr_assert_not_null(blk[i]);
        int lane = hak_lane_of(blk[0]);
        if (lane != HAK_LANE_HUGE) {
            hak_free(blk[0]);
            cr_skip_test("16 KiB blocks come from the %s lane", hak_lane_name(lane));
        }
        memset(blk[i], 0x11, 16 * KiB);
    }
    size_t peak = rss_bytes();
    for (int i = 0; i < N; i++)
        if (i % KEEP_EVERY != 0) hak_free(blk[i]);
    hak_trim(0);
    size_t after = rss_bytes();
    cr_assert_lt(after, base + 8 * MiB,
                 "RSS %zu bytes before, %zu at the peak, %zu after freeing 63 blocks in 64 and "
                 "trimming", base, peak, after);
    for (int i = 0; i < N; i += KEEP_EVERY) {
        cr_assert(((unsigned char *)blk[i])[16 * KiB - 1] == 0x11, "a live block was purged");
        hak_free(blk[i]);
    }
}

Test(api, stats_get_checks_its_size_field_and_reports_live_bytes) {
    cr_assert_eq(hak_stats_get(NULL), EINVAL);
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st.size; /* too small to hold any field */
    cr_assert_eq(hak_stats_get(&st), EINVAL);

    /* a caller built against an older, smaller struct: nothing past its size
     * is written */
    memset(&st, 0xEE, sizeof st);
    st.size = offsetof(struct hak_stats, rss);
    cr_assert_eq(hak_stats_get(&st), 0);
    cr_assert_eq(st.size, offsetof(struct hak_stats, rss));
    uint64_t untouched;
    memset(&untouched, 0xEE, sizeof untouched);
    cr_assert_eq(st.rss, untouched, "hak_stats_get wrote past the caller's size");
    cr_assert_eq(st.lane[HAK_LANE_COUNT - 1].purged_bytes, untouched);

    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert_eq(hak_stats_get(&st), 0);
    cr_assert_eq(st.size, sizeof st);
    cr_assert_gt(st.rss, 0);
    if (HAK_BENCH_MINIMAL) return; /* counters compiled out */

    /* nothing but the block between the reads (assertions allocate) */
    warm_up_hakmem();
    uint64_t before = live_bytes();
    void *p = hak_malloc(10 * MiB);
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    hak_stats_get(&st);
    hak_free(p);
    uint64_t after = live_bytes();
    cr_assert_not_null(p);
    int lane = hak_lane_of(p);
    cr_assert_geq(st.lane[0].live_bytes, before + 10 * MiB);
    cr_assert_geq(st.lane[lane].live_bytes, 10 * MiB, "lane %d", lane);
    cr_assert_geq(st.lane[0].peak_bytes, st.lane[0].live_bytes);
    cr_assert_geq(st.lane[0].os_mapped, 10 * MiB);
    cr_assert_eq(after, before, "live bytes %llu before malloc, %llu after free",
                 (unsigned long long)before, (unsigned long long)after);
}

Test(api, stats_print_writes_a_report_to_stderr) {
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fileno(tmp), 2), 0);
    hak_stats_print();
    dup2(saved, 2);
    close(saved);
    char buf[8192];
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
    cr_assert(strstr(buf, "hakmem") != NULL, "hak_stats_print wrote: \"%s\"", buf);
}

Test(api, every_block_belongs_to_an_enabled_lane) {
    cr_assert_eq(hak_lane_of(NULL), HAK_LANE_NONE);
    cr_assert_null(hak_lane_name(HAK_LANE_NONE));
    cr_assert_null(hak_lane_name(HAK_LANE_COUNT));
    cr_assert_null(hak_lane_name(-1));
    cr_assert_eq(hak_lane_enabled(HAK_LANE_NONE), 0);
    cr_assert_eq(hak_lane_enabled(HAK_LANE_COUNT), 0);
    cr_assert_eq(hak_lane_enabled(HAK_LANE_HUGE), 1, "the huge lane is always compiled in");
    for (size_t n = 1; n <= 16 * MiB; n = n * 3 / 2 + 1) {
        void *p = hak_malloc(n);
        cr_assert_not_null(p);
        int lane = hak_lane_of(p);
        cr_assert(hak_lane_enabled(lane), "malloc(%zu) = %p owned by lane %d", n, p, lane);
        cr_assert_not_null(hak_lane_name(lane));
        if (n > HAK_ACE_MAX)
            cr_assert_eq(lane, HAK_LANE_HUGE, "malloc(%zu) served by lane %d", n, lane);
        hak_free(p);
    }
    int local;
    cr_assert_eq(hak_lane_of(&local), HAK_LANE_NONE, "a stack address is foreign");
    cr_assert_eq(hak_lane_of(families), HAK_LANE_NONE, "a global is foreign");
}

/* ---- glibc's introspection calls (exported only when interposing) ------- */

#if HAK_INTERPOSE

Test(glibc, mallopt_returns_one_even_for_unknown_parameters) {
    static const int params[] = {M_MXFAST, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD,
                                 M_MMAP_MAX, M_CHECK_ACTION, M_PERTURB, M_ARENA_TEST,
                                 M_ARENA_MAX, 12345, -1};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        cr_assert_eq(mallopt(params[i], 0), 1, "mallopt(%d, 0)", params[i]);
    cr_assert_eq(mallopt(M_MMAP_THRESHOLD, 1 << 20), 1);
}

Test(glibc, malloc_trim_returns_zero_or_one) {
    void *p = malloc(3 * MiB);
    free(p);
    int r = malloc_trim(0);
    cr_assert(r == 0 || r == 1, "malloc_trim returned %d", r);
}

Test(glibc, mallinfo2_and_mallinfo_report_live_memory) {
    void *p = malloc(10 * MiB);
    cr_assert_not_null(p);
    struct mallinfo2 mi = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo old = mallinfo(); /* deprecated, still exported */
#pragma GCC diagnostic pop
    if (!HAK_BENCH_MINIMAL) {
        /* glibc counts mmapped blocks in hblkhd, others in uordblks */
        cr_assert_geq(mi.uordblks + mi.hblkhd, 10 * MiB, "uordblks %zu hblkhd %zu", mi.uordblks,
                      mi.hblkhd);
        cr_assert_geq((size_t)old.uordblks + (size_t)old.hblkhd, 10 * MiB);
    }
    free(p);
}

Test(glibc, malloc_stats_and_malloc_info_are_callable) {
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    fclose(tmp);

    tmp = tmpfile();
    cr_assert_not_null(tmp);
    cr_assert_eq(malloc_info(0, tmp), 0);
    fflush(tmp);
    rewind(tmp);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = 0;
    cr_assert(strncmp(buf, "<malloc", 7) == 0, "malloc_info wrote \"%s\"", buf);
    cr_assert(strstr(buf, "</malloc>") != NULL, "malloc_info's XML is not closed: \"%s\"", buf);
    errno = 0;
    cr_assert_eq(malloc_info(1, tmp), -1, "malloc_info with options != 0 fails");
    cr_assert_eq(errno, EINVAL);
    fclose(tmp);
}

#endif /* HAK_INTERPOSE */

/* ---- interposition ------------------------------------------------------ */

#if HAK_INTERPOSE

/* glibc's aliases, which its headers do not declare. */
void *__libc_malloc(size_t size);
void __libc_free(void *p);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __posix_memalign(void **memptr, size_t alignment, size_t size);

static void check_hakmem_block(const char *call, void *p) {
    cr_assert_not_null(p, "%s failed", call);
    cr_assert_neq(hak_lane_of(p), HAK_LANE_NONE, "%s returned %p, which is not hakmem's", call,
                  p);
    cr_assert_eq(malloc_usable_size(p), hak_usable_size(p), "malloc_usable_size is not hakmem's");
}

/* free is hakmem's when a block it frees leaves hakmem's live byte count. */
static void check_frees_hakmem_block(const char *call, void (*freefn)(void *)) {
    void *p = hak_malloc(8 * MiB);
    cr_assert_not_null(p);
    uint64_t before = live_bytes();
    freefn(p);
    uint64_t after = live_bytes();
    if (!HAK_BENCH_MINIMAL)
        cr_assert_leq(after + 4 * MiB, before, "%s did not free hakmem's block", call);
}

Test(interpose, standard_names_are_hakmem) {
    void *p, *m = NULL;
    check_hakmem_block("malloc", p = malloc(100));
    check_hakmem_block("realloc", p = realloc(p, 5000));
    check_hakmem_block("reallocarray", p = reallocarray(p, 100, 100));
    free(p);
    check_hakmem_block("realloc(NULL)", p = realloc(NULL, 100));
    free(p);
    check_hakmem_block("calloc", p = calloc(10, 10));
    free(p);
    cr_assert_eq(posix_memalign(&m, 64, 100), 0);
    check_hakmem_block("posix_memalign", m);
    free(m);
    check_hakmem_block("aligned_alloc", p = aligned_alloc(64, 128));
    free(p);
    check_hakmem_block("memalign", p = memalign(64, 100));
    free(p);
    check_hakmem_block("valloc", p = valloc(100));
    free(p);
    check_hakmem_block("pvalloc", p = pvalloc(100));
    free(p);
    check_hakmem_block("__libc_malloc", p = __libc_malloc(100));
    check_hakmem_block("__libc_realloc", p = __libc_realloc(p, 5000));
    __libc_free(p);
    check_hakmem_block("__libc_calloc", p = __libc_calloc(10, 10));
    __libc_free(p);
    check_hakmem_block("__libc_memalign", p = __libc_memalign(64, 100));
    __libc_free(p);
    check_hakmem_block("__libc_valloc", p = __libc_valloc(100));
    __libc_free(p);
    check_hakmem_block("__libc_pvalloc", p = __libc_pvalloc(100));
    __libc_free(p);
    m = NULL;
    cr_assert_eq(__posix_memalign(&m, 64, 100), 0);
    check_hakmem_block("__posix_memalign", m);
    free(m);

    check_frees_hakmem_block("free", free);
    check_frees_hakmem_block("__libc_free", __libc_free);
    p = hak_malloc(8 * MiB);
    uint64_t before = live_bytes();
    void *r = realloc(p, 0);
    uint64_t after = live_bytes();
    cr_assert_null(r);
    if (!HAK_BENCH_MINIMAL) cr_assert_leq(after + 4 * MiB, before, "realloc(p, 0) kept the block");
}

Test(interpose, malloc_info_describes_hakmem) {
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    cr_assert_eq(malloc_info(0, tmp), 0);
    rewind(tmp);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
    /* glibc's report says <malloc version="1">; hakmem's names itself */
    cr_assert(strstr(buf, "hakmem") != NULL, "malloc_info is not hakmem's: \"%s\"", buf);
}

#else

Test(interpose, standard_names_stay_with_libc_without_interposition) {
    void *p = malloc(100);
    cr_assert_not_null(p);
    cr_assert_eq(hak_lane_of(p), HAK_LANE_NONE, "malloc is hakmem's in a -Dinterpose=false build");
    free(p);
}

#endif /* HAK_INTERPOSE */

/* ---- misuse is reported and aborts (HAKMEM_ON_ERROR=abort, the default) -- */

Test(misuse, free_of_a_foreign_pointer_aborts, .signal = SIGABRT) {
    static char not_ours[64];
    hak_free(not_ours + 16);
}

Test(misuse, free_of_a_stack_address_aborts, .signal = SIGABRT) {
    char local[64];
    hak_free(local + 16);
}

Test(misuse, free_of_an_interior_pointer_of_a_large_block_aborts, .signal = SIGABRT) {
    unsigned char *p = hak_malloc(4 * MiB);
    cr_assert_not_null(p);
    hak_free(p + 2 * page_size());
}

Test(misuse, usable_size_of_a_foreign_pointer_aborts, .signal = SIGABRT) {
    static char not_ours[64];
    (void)hak_usable_size(not_ours);
}

Test(misuse, realloc_of_a_foreign_pointer_aborts, .signal = SIGABRT) {
    static char not_ours[64];
    (void)hak_realloc(not_ours, 100);
}
