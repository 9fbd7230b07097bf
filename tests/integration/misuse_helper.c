/*
 * misuse_helper.c: performs one misuse of the malloc family, so that the
 * misuse tests can watch it from outside (the message on stderr, SIGABRT,
 * or survival with HAKMEM_ON_ERROR=warn).
 *
 *   misuse_helper hak|std CASE
 *
 * "hak" calls hak_free/hak_realloc/hak_usable_size, "std" the standard
 * names (only in -Dinterpose=true builds, where they are hakmem's). Before
 * the misuse it prints "ptr=<%p of the bad pointer> lane=<hak_lane_of of the
 * block it derives from>" on stdout; if it is still alive afterwards (warn
 * mode) it checks that the call was ignored and the heap still works, and
 * prints "survived". Exit 2: bad usage; 3: a wrong result in warn mode;
 * 77: not applicable to this build (the std API is not interposed).
 *
 * Blocks a case derives its bad pointer from: "huge" malloc(4 MiB) (an own
 * mapping of the huge lane), "tiny" 64 B, "mid" 8 KiB, "large" 100000 B
 * (whichever lane serves them in this build), "run" a page run in a shared
 * chunk of the huge lane. "*_freed_*" cases free the block first and then
 * misuse it (realloc or malloc_usable_size of a freed block).
 *
 *   misuse_helper hak|std edge_tiny|edge_mid|edge_large|edge_run|edge_huge
 *
 * runs every bad alignment and every huge or wrapping size at that lane's
 * block size through every allocation call, and every valid alignment up
 * to 4 MiB, and checks glibc 2.36's documented answers (EINVAL, ENOMEM,
 * rounded-up alignments, blocks left intact); exit 0, or 3 after printing
 * the first wrong answer.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hakmem.h"
#include "itest.h"

static bool use_std;

static void *do_malloc(size_t n) { return use_std ? malloc(n) : hak_malloc(n); }

static void do_free(void *p) {
    if (use_std)
        free(p);
    else
        hak_free(p);
}

static void *do_realloc(void *p, size_t n) { return use_std ? realloc(p, n) : hak_realloc(p, n); }

static size_t do_usable_size(void *p) {
    return use_std ? malloc_usable_size(p) : hak_usable_size(p);
}

static int do_posix_memalign(void **m, size_t a, size_t n) {
    return use_std ? posix_memalign(m, a, n) : hak_posix_memalign(m, a, n);
}
static void *do_memalign(size_t a, size_t n) { return use_std ? memalign(a, n) : hak_memalign(a, n); }
static void *do_aligned_alloc(size_t a, size_t n) {
    return use_std ? aligned_alloc(a, n) : hak_aligned_alloc(a, n);
}
static void *do_calloc(size_t k, size_t n) { return use_std ? calloc(k, n) : hak_calloc(k, n); }
static void *do_reallocarray(void *p, size_t k, size_t n) {
    return use_std ? reallocarray(p, k, n) : hak_reallocarray(p, k, n);
}
static void *do_valloc(size_t n) { return use_std ? valloc(n) : hak_valloc(n); }
static void *do_pvalloc(size_t n) { return use_std ? pvalloc(n) : hak_pvalloc(n); }

static char static_array[8192];

static void announce(const void *p, const void *block) {
    printf("ptr=%p lane=%d\n", p, block ? hak_lane_of(block) : 0);
    fflush(stdout);
}

/* Alignment that makes a block a page run of the huge lane when malloc
 * alone does not (0: malloc does); set by page_run_size. */
static size_t run_align;

/* A size that malloc serves as a page run in one of the huge lane's shared
 * chunks in this build (the lanes compiled in decide); when none does, an
 * aligned request the ACE lane cannot serve (64 KiB alignment) is one.
 * Exits 77 when nothing reaches a page run. */
static size_t page_run_size(void) {
    static const size_t sizes[] = {16384, 49152, 102400, 307200, 716800};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = do_malloc(sizes[i]);
        bool run = p && hak_lane_of(p) == HAK_LANE_HUGE && do_usable_size(p) < HAK_CHUNK_SIZE / 2;
        do_free(p);
        if (run) return sizes[i];
    }
    void *p = NULL;
    if (do_posix_memalign(&p, 65536, 100000) == 0) {
        bool run = hak_lane_of(p) == HAK_LANE_HUGE && do_usable_size(p) < HAK_CHUNK_SIZE / 2;
        do_free(p);
        if (run) {
            run_align = 65536;
            return 100000;
        }
    }
    exit(77);
}

/* A block of size bytes; a page run when run is set. */
static void *block_alloc(size_t size, bool run) {
    void *p = NULL;
    if (run && run_align) return do_posix_memalign(&p, run_align, size) == 0 ? p : NULL;
    return do_malloc(size);
}

/* The bad pointer for a case; *block is the block it is derived from (to be
 * freed properly at the end), or NULL. */
static void *bad_pointer(const char *kase, void **block, void **keep) {
    *block = NULL;
    *keep = NULL;
    if (strstr(kase, "_stack")) return NULL; /* filled in by the caller's frame */
    if (strstr(kase, "_static")) return itest_launder(static_array + 64);
    if (strstr(kase, "_own_mmap")) {
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            perror("mmap");
            exit(2);
        }
        return m;
    }
    if (strstr(kase, "_low_address")) return itest_launder((void *)(uintptr_t)0x1000);
    if (strstr(kase, "_kernel_address"))
        return itest_launder((void *)(uintptr_t)0xffff800000001000ull);
    if (strstr(kase, "huge")) {
        char *h = do_malloc((size_t)4 << 20);
        if (!h) exit(2);
        memset(h, 1, (size_t)4 << 20);
        *block = h;
        if (strstr(kase, "_interior_page")) return itest_launder(h + 4096);
        if (strstr(kase, "_interior_byte")) return itest_launder(h + 1);
        if (strstr(kase, "_tail_chunk")) return itest_launder(h + HAK_CHUNK_SIZE + 4096);
        if (strstr(kase, "_header")) return itest_launder(h - 4096);
        if (strstr(kase, "double_free") || strstr(kase, "_freed_")) return h;
    }
    if (strstr(kase, "tiny") || strstr(kase, "mid") || strstr(kase, "large") ||
        strstr(kase, "run")) {
        /* a block below 1 MiB, with a neighbour kept alive so that its chunk
         * stays */
        size_t size = strstr(kase, "tiny")    ? 64
                      : strstr(kase, "mid")   ? 8192
                      : strstr(kase, "large") ? 100000
                                              : page_run_size();
        bool run = strstr(kase, "run") != NULL;
        *keep = block_alloc(size, run);
        char *s = block_alloc(size, run);
        if (!s || !*keep) exit(2);
        memset(s, 2, size);
        *block = s;
        if (strstr(kase, "_interior")) return itest_launder(s + 16);
        if (strstr(kase, "_chunk_header"))
            return itest_launder((void *)((uintptr_t)s & ~(uintptr_t)(HAK_CHUNK_SIZE - 1)));
        if (strstr(kase, "double_free") || strstr(kase, "_freed_")) return s;
    }
    fprintf(stderr, "misuse_helper: unknown case %s\n", kase);
    exit(2);
}

/* ---- edge_*: bad alignments, huge and wrapping sizes ------------------ */

#define EDGE_FAIL(...)                                                         \
    do {                                                                       \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        return 3;                                                              \
    } while (0)

static bool aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* Checks a block the call returned: aligned, large enough, writable. */
static int edge_block(const char *what, void *p, size_t align, size_t size) {
    if (!p) EDGE_FAIL("%s: NULL (errno %d)", what, errno);
    if (!aligned(p, align)) EDGE_FAIL("%s: %p not aligned to %zu", what, p, align);
    if (do_usable_size(p) < size) EDGE_FAIL("%s: usable size %zu < %zu", what, do_usable_size(p), size);
    memset(p, 0x5c, size);
    do_free(p);
    return 0;
}

static int edge(size_t size) {
    char what[160];
    const int sentinel_errno = 4321;
    /* posix_memalign: every bad alignment -> EINVAL, errno and *memptr untouched */
    static const size_t bad_align[] = {0,  1,  2,   3,    4,        5,        6,       7,
                                       12, 24, 48,  100,  4097,     3 * 4096, 65537,   (1u << 20) + 8,
                                       SIZE_MAX, SIZE_MAX / 2 + 2, SIZE_MAX - 15};
    for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
        void *sentinel = (void *)(uintptr_t)0xdead0, *m = sentinel;
        errno = sentinel_errno;
        int r = do_posix_memalign(&m, bad_align[i], size);
        if (r != EINVAL || errno != sentinel_errno || m != sentinel)
            EDGE_FAIL("posix_memalign(%zu, %zu): returned %d, errno %d, memptr %p", bad_align[i],
                      size, r, errno, m);
    }
    /* memalign/aligned_alloc: a non-power-of-two alignment is rounded up */
    static const size_t odd_align[] = {0, 1, 3, 5, 24, 100, 4097, 3 * 4096, 65537, (1u << 20) + 8};
    for (size_t i = 0; i < sizeof odd_align / sizeof odd_align[0]; i++) {
        size_t a = odd_align[i], want = 1;
        while (want < a) want <<= 1;
        snprintf(what, sizeof what, "memalign(%zu, %zu)", a, size);
        if (edge_block(what, do_memalign(a, size), want, size)) return 3;
        snprintf(what, sizeof what, "aligned_alloc(%zu, %zu)", a, size);
        if (edge_block(what, do_aligned_alloc(a, size), want, size)) return 3;
    }
    /* ... but one above SIZE_MAX / 2 + 1 is EINVAL */
    static const size_t too_big_align[] = {SIZE_MAX / 2 + 2, SIZE_MAX - 4095, SIZE_MAX};
    for (size_t i = 0; i < sizeof too_big_align / sizeof too_big_align[0]; i++) {
        errno = 0;
        void *p = do_memalign(too_big_align[i], size);
        if (p || errno != EINVAL)
            EDGE_FAIL("memalign(%zu, %zu): %p, errno %d", too_big_align[i], size, p, errno);
        errno = 0;
        p = do_aligned_alloc(too_big_align[i], size);
        if (p || errno != EINVAL)
            EDGE_FAIL("aligned_alloc(%zu, %zu): %p, errno %d", too_big_align[i], size, p, errno);
    }
    /* every valid alignment, from sizeof(void *) to 4 MiB, at this size */
    for (size_t a = sizeof(void *); a <= ((size_t)4 << 20); a <<= 1) {
        void *m = NULL;
        int r = do_posix_memalign(&m, a, size);
        snprintf(what, sizeof what, "posix_memalign(%zu, %zu) = %d", a, size, r);
        if (r != 0) EDGE_FAIL("%s", what);
        if (edge_block(what, m, a, size)) return 3;
        snprintf(what, sizeof what, "aligned_alloc(%zu, %zu)", a, size);
        if (edge_block(what, do_aligned_alloc(a, size), a, size)) return 3;
    }
    /* huge and wrapping sizes at this lane's alignments: ENOMEM */
    static const size_t aligns[] = {16, 64, 4096, 65536, (size_t)2 << 20};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t a = aligns[i];
        const size_t sizes[] = {SIZE_MAX, SIZE_MAX - size + 1, SIZE_MAX - a + 2, SIZE_MAX / 2 + 1,
                                (size_t)1 << 62, ((size_t)1 << 47) + size};
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
            void *sentinel = (void *)(uintptr_t)0xdead0, *m = sentinel;
            int r = do_posix_memalign(&m, a, sizes[j]);
            if (r != ENOMEM || m != sentinel)
                EDGE_FAIL("posix_memalign(%zu, %zu): returned %d, memptr %p", a, sizes[j], r, m);
            errno = 0;
            void *p = do_memalign(a, sizes[j]);
            if (p || errno != ENOMEM)
                EDGE_FAIL("memalign(%zu, %zu): %p, errno %d", a, sizes[j], p, errno);
            errno = 0;
            p = do_aligned_alloc(a, sizes[j]);
            if (p || errno != ENOMEM)
                EDGE_FAIL("aligned_alloc(%zu, %zu): %p, errno %d", a, sizes[j], p, errno);
        }
    }
    const size_t huge_sizes[] = {SIZE_MAX, SIZE_MAX - size + 1, SIZE_MAX - 4094, SIZE_MAX / 2 + 1,
                                 (size_t)1 << 62, ((size_t)1 << 47) + size};
    char *blk = do_malloc(size);
    if (!blk) EDGE_FAIL("malloc(%zu) failed", size);
    memset(blk, 0x3a, size);
    for (size_t j = 0; j < sizeof huge_sizes / sizeof huge_sizes[0]; j++) {
        size_t n = huge_sizes[j];
        void *p;
        errno = 0;
        if ((p = do_malloc(n)) || errno != ENOMEM) EDGE_FAIL("malloc(%zu): %p, errno %d", n, p, errno);
        errno = 0;
        if ((p = do_valloc(n)) || errno != ENOMEM) EDGE_FAIL("valloc(%zu): %p, errno %d", n, p, errno);
        errno = 0;
        if ((p = do_pvalloc(n)) || errno != ENOMEM) EDGE_FAIL("pvalloc(%zu): %p, errno %d", n, p, errno);
        errno = 0;
        if ((p = do_realloc(blk, n)) || errno != ENOMEM)
            EDGE_FAIL("realloc(%zu-byte block, %zu): %p, errno %d", size, n, p, errno);
        errno = 0;
        if ((p = do_reallocarray(blk, 1, n)) || errno != ENOMEM)
            EDGE_FAIL("reallocarray(%zu-byte block, 1, %zu): %p, errno %d", size, n, p, errno);
    }
    /* products that overflow */
    const size_t factor[][2] = {{size, SIZE_MAX / size + 1}, {SIZE_MAX / size + 1, size},
                                {(size_t)1 << 32, (size_t)1 << 32}, {SIZE_MAX, 2}};
    for (size_t j = 0; j < sizeof factor / sizeof factor[0]; j++) {
        void *p;
        errno = 0;
        if ((p = do_calloc(factor[j][0], factor[j][1])) || errno != ENOMEM)
            EDGE_FAIL("calloc(%zu, %zu): %p, errno %d", factor[j][0], factor[j][1], p, errno);
        errno = 0;
        if ((p = do_reallocarray(blk, factor[j][0], factor[j][1])) || errno != ENOMEM)
            EDGE_FAIL("reallocarray(block, %zu, %zu): %p, errno %d", factor[j][0], factor[j][1],
                      p, errno);
        errno = 0;
        if ((p = do_reallocarray(NULL, factor[j][0], factor[j][1])) || errno != ENOMEM)
            EDGE_FAIL("reallocarray(NULL, %zu, %zu): %p, errno %d", factor[j][0], factor[j][1],
                      p, errno);
    }
    for (size_t i = 0; i < size; i++)
        if ((unsigned char)blk[i] != 0x3a) EDGE_FAIL("a failed call changed the block at byte %zu", i);
    if (do_usable_size(blk) < size) EDGE_FAIL("the block's usable size shrank");
    /* realloc(p, 0) frees and answers NULL */
    if (do_realloc(blk, 0) != NULL) EDGE_FAIL("realloc(p, 0) did not return NULL");
    return 0;
}

static int edge_case(const char *kase) {
    size_t size = strcmp(kase, "edge_tiny") == 0    ? 64
                  : strcmp(kase, "edge_mid") == 0   ? 8192
                  : strcmp(kase, "edge_large") == 0 ? 100000
                  : strcmp(kase, "edge_huge") == 0  ? (size_t)4 << 20
                  : strcmp(kase, "edge_run") == 0   ? page_run_size()
                                                    : 0;
    if (size == 0) {
        fprintf(stderr, "misuse_helper: unknown case %s\n", kase);
        return 2;
    }
    int r = edge(size);
    if (r == 0) printf("survived\n");
    return r;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "hak") != 0 && strcmp(argv[1], "std") != 0)) {
        fprintf(stderr, "usage: misuse_helper hak|std CASE\n");
        return 2;
    }
    use_std = strcmp(argv[1], "std") == 0;
    setvbuf(stdout, NULL, _IONBF, 0); /* stdio allocates no buffer later */
    if (use_std && !HAK_TEST_INTERPOSE) return 77;
    const char *kase = argv[2];
    if (strncmp(kase, "edge_", 5) == 0) return edge_case(kase);
    char stack_buf[256];
    memset(stack_buf, 0, sizeof stack_buf);
    void *block, *keep;
    void *bad = bad_pointer(kase, &block, &keep);
    if (!bad) bad = itest_launder(stack_buf + 32);

    if (strstr(kase, "_freed_")) {
        /* realloc or malloc_usable_size of a block already freed: announce
         * first, free, then misuse it with nothing allocated between */
        announce(bad, block);
        do_free(block);
        block = NULL;
        if (strncmp(kase, "realloc_", 8) == 0) {
            void *r = do_realloc(itest_launder(bad), 100);
            if (r != NULL) {
                printf("realloc of a freed block returned %p\n", r);
                return 3;
            }
        } else {
            size_t n = do_usable_size(itest_launder(bad));
            if (n != 0) {
                printf("malloc_usable_size of a freed block returned %zu\n", n);
                return 3;
            }
        }
    } else if (strncmp(kase, "double_free", 11) == 0) {
        /* Announce first: nothing may allocate between the two frees, or it
         * could get the freed block back and the second free be legitimate. */
        announce(bad, block);
        do_free(block); /* the legitimate free */
        block = NULL;
        do_free(itest_launder(bad));
    } else if (strncmp(kase, "free_", 5) == 0) {
        announce(bad, block);
        do_free(bad);
    } else if (strncmp(kase, "realloc_", 8) == 0) {
        announce(bad, block);
        void *r = do_realloc(bad, 100);
        if (r != NULL) {
            printf("realloc returned %p\n", r);
            return 3;
        }
    } else if (strncmp(kase, "usable_size_", 12) == 0) {
        announce(bad, block);
        size_t n = do_usable_size(bad);
        if (n != 0) {
            printf("malloc_usable_size returned %zu\n", n);
            return 3;
        }
    } else {
        fprintf(stderr, "misuse_helper: unknown case %s\n", kase);
        return 2;
    }

    /* Still here (HAKMEM_ON_ERROR=warn): the call was ignored. The blocks
     * are intact and the heap keeps working. */
    if (block) {
        const char *b = block;
        char want = strstr(kase, "huge") ? 1 : 2;
        if (b[0] != want) {
            printf("block changed\n");
            return 3;
        }
        do_free(block);
    }
    if (keep) do_free(keep);
    for (size_t n = 1; n <= ((size_t)8 << 20); n *= 3) {
        char *p = do_malloc(n);
        if (!p) return 3;
        memset(p, 3, n);
        do_free(p);
    }
    printf("survived\n");
    return 0;
}
