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
 * 77: not applicable to this build (the std API is not interposed, or no
 * size reaches the huge lane's page runs).
 *
 * Blocks a case derives its bad pointer from: "huge" malloc(4 MiB) (an own
 * mapping of the huge lane), "tiny" 64 B, "mid" 8 KiB, "large" 100000 B
 * (whichever lane serves them in this build), "run" a page run in a shared
 * chunk of the huge lane.
 */
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

static char static_array[8192];

static void announce(const void *p, const void *block) {
    printf("ptr=%p lane=%d\n", p, block ? hak_lane_of(block) : 0);
    fflush(stdout);
}

/* A size that malloc serves as a page run in one of the huge lane's shared
 * chunks in this build (the lanes compiled in decide); exits 77 when none
 * does. */
static size_t page_run_size(void) {
    static const size_t sizes[] = {16384, 49152, 102400, 307200, 716800};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = do_malloc(sizes[i]);
        bool run = p && hak_lane_of(p) == HAK_LANE_HUGE && do_usable_size(p) < HAK_CHUNK_SIZE / 2;
        do_free(p);
        if (run) return sizes[i];
    }
    exit(77);
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
        if (strstr(kase, "double_free")) return h;
    }
    if (strstr(kase, "tiny") || strstr(kase, "mid") || strstr(kase, "large") ||
        strstr(kase, "run")) {
        /* a block below 1 MiB, with a neighbour kept alive so that its chunk
         * stays */
        size_t size = strstr(kase, "tiny")    ? 64
                      : strstr(kase, "mid")   ? 8192
                      : strstr(kase, "large") ? 100000
                                              : page_run_size();
        *keep = do_malloc(size);
        char *s = do_malloc(size);
        if (!s || !*keep) exit(2);
        memset(s, 2, size);
        *block = s;
        if (strstr(kase, "_interior")) return itest_launder(s + 16);
        if (strstr(kase, "_chunk_header"))
            return itest_launder((void *)((uintptr_t)s & ~(uintptr_t)(HAK_CHUNK_SIZE - 1)));
        if (strstr(kase, "double_free")) return s;
    }
    fprintf(stderr, "misuse_helper: unknown case %s\n", kase);
    exit(2);
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
    char stack_buf[256];
    memset(stack_buf, 0, sizeof stack_buf);
    void *block, *keep;
    void *bad = bad_pointer(kase, &block, &keep);
    if (!bad) bad = itest_launder(stack_buf + 32);

    if (strncmp(kase, "double_free", 11) == 0) {
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
