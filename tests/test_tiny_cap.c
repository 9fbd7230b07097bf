/*
 * test_tiny_cap.c: the cap on tiny SuperSlab memory. Meson runs this
 * program with HAKMEM_TINY_SS_MAX_MB=8 (four 2 MiB SuperSlabs): 64-byte
 * blocks run out with ENOMEM close to 8 MiB, other lanes still serve, and
 * freeing the blocks makes room again. Skipped when -Dtiny_superslab=false.
 */
#include "lane_suite.h"

static const struct lane_desc tiny = {
    .id = HAK_LANE_TINY, .lo = 0, .hi = HAK_TINY_MAX, .slab_size = 64 * KiB};

#define CAP ((size_t)8 * MiB)
#define MAX_BLOCKS (CAP / 64 + 1024)

/* Allocates 64-byte blocks into v until one fails; returns how many. */
static size_t fill(void **v, int *err) {
    size_t n = 0;
    for (;;) {
        cr_assert_lt(n, MAX_BLOCKS, "%zu blocks of 64 bytes and no failure: is the cap on?", n);
        errno = 0;
        void *p = hak_malloc(64);
        if (!p) {
            *err = errno;
            return n;
        }
        memset(p, 0x5c, 64);
        v[n++] = p;
    }
}

static uint64_t segs_in_use(void) {
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert_eq(hak_stats_get(&st), 0);
    return st.segs_hot[HAK_LANE_TINY] + st.segs_draining[HAK_LANE_TINY];
}

/* Frees v[0 .. n), checking the blocks kept their bytes. */
static void free_all(void **v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char *b = v[i];
        cr_assert(b[0] == 0x5c && b[63] == 0x5c, "block %zu overwritten", i);
        hak_free(b);
    }
}

Test(tiny_cap, allocation_fails_with_enomem_at_the_cap_and_recovers_after_frees) {
    require_lane(&tiny);
    if (HAK_BENCH_MINIMAL) cr_skip_test("-Dbench_minimal: HAKMEM_* variables are compiled out");
    const char *cap = getenv("HAKMEM_TINY_SS_MAX_MB");
    cr_assert(cap && atol(cap) == (long)(CAP / MiB), "meson runs this with HAKMEM_TINY_SS_MAX_MB=8");
    void **v = mmap_array(MAX_BLOCKS);
    /* SuperSlabs the process (Criterion's runner) holds already */
    uint64_t others = segs_in_use();
    int err = 0;
    size_t n = fill(v, &err);
    uint64_t at_cap = segs_in_use();
    /* The cap is the tiny lane's: a larger block still comes. */
    void *big = hak_malloc(4096);
    bool big_ok = big != NULL;
    hak_free(big);
    /* free before asserting: Criterion's report allocates */
    free_all(v, n);
    fprintf(stderr, "tiny cap 8 MiB: %zu blocks of 64 bytes (%zu KiB) until ENOMEM; %llu "
            "SuperSlabs in use before, %llu at the cap\n", n, n * 64 / KiB,
            (unsigned long long)others, (unsigned long long)at_cap);
    cr_assert_eq(err, ENOMEM, "the failing malloc set errno %d, want ENOMEM", err);
    cr_assert_eq(at_cap, CAP / (2 * MiB), "%llu SuperSlabs in use at the failure, want all 4",
                 (unsigned long long)at_cap);
    /* The SuperSlabs the others did not hold are (nearly) all ours: 31
     * slabs of 64 KiB each but the header slab. */
    size_t room = (size_t)(CAP / (2 * MiB) - others) * 31 * 64 * KiB;
    cr_assert(n * 64 <= CAP && n * 64 >= room / 8 * 7,
              "%zu KiB of 64-byte blocks under an 8 MiB cap (%llu SuperSlabs held before)",
              n * 64 / KiB, (unsigned long long)others);
    cr_assert(big_ok, "a 4 KiB block at the tiny cap");
    /* Recovery: the same again. */
    size_t again = fill(v, &err);
    free_all(v, again);
    cr_assert_eq(err, ENOMEM);
    cr_assert(again + again / 16 >= n, "after freeing %zu blocks only %zu fit again", n, again);
    void *p = hak_malloc(1000);
    cr_assert_not_null(p, "a 1000-byte block after the frees");
    hak_free(p);
    munmap_array(v, MAX_BLOCKS);
}
