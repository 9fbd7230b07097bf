/*
 * test_segmap.c: the segment map (lib/segmap.h) through its internal API,
 * linked against the static library: head and tail lookups across mappings
 * of 1 to 70,000 chunks, adjacent mappings, shrinking and regrowing,
 * unregistration, foreign and out-of-range addresses; then the same through
 * the public hak_lane_of on real blocks.
 *
 * The mappings registered here live in address space this test reserves
 * itself (an mmap with PROT_NONE), so hakmem can never map anything there
 * while the test fiddles with the map's entries.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hakmem.h"
#include "segmap.h"
#include "test_util.h"

#define CHUNK ((uintptr_t)HAK_CHUNK_SIZE)

/* hakmem initialises (and creates the segment map) on its first call. */
static void init_hakmem(void) {
    void *p = hak_malloc(1);
    cr_assert_not_null(p);
    hak_free(p);
    cr_assert_not_null(segmap_g.table);
}

/* Reserves nchunks chunk-aligned chunks with one guard chunk before and
 * after (also reserved, never registered); returns the first usable chunk. */
struct reservation {
    void *map;
    size_t map_len;
    uintptr_t base;
};

static struct reservation reserve(size_t nchunks) {
    struct reservation r;
    r.map_len = (nchunks + 3) * CHUNK; /* guards, and slack to align */
    r.map = mmap(NULL, r.map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(r.map, MAP_FAILED, "cannot reserve %zu chunks", nchunks);
    r.base = ((uintptr_t)r.map + CHUNK - 1) / CHUNK * CHUNK + CHUNK;
    cr_assert_lt((r.base >> HAK_CHUNK_SHIFT) + nchunks + 1, SEGMAP_ENTRIES,
                 "the reservation lies outside the segment map's address space");
    return r;
}

static void release(struct reservation *r) { munmap(r->map, r->map_len); }

static void expect_owner(uintptr_t addr, uintptr_t head, int lane) {
    uintptr_t h = 12345;
    int got = segmap_lookup((const void *)addr, &h);
    cr_assert_eq(got, lane, "lookup(%#lx): lane %d, expected %d", (unsigned long)addr, got, lane);
    cr_assert_eq(h, head, "lookup(%#lx): head %#lx, expected %#lx", (unsigned long)addr,
                 (unsigned long)h, (unsigned long)head);
}

/* (The head reported with HAK_LANE_NONE means nothing.) */
static void expect_foreign(uintptr_t addr) {
    uintptr_t h;
    int got = segmap_lookup((const void *)addr, &h);
    cr_assert_eq(got, HAK_LANE_NONE, "lookup(%#lx): lane %d, expected none", (unsigned long)addr,
                 got);
}

/* Every chunk (first and last byte) and random interior addresses of the
 * mapping [base, base + n chunks) resolve to base and lane. */
static void check_mapping(uintptr_t base, size_t n, int lane, struct rng *r) {
    for (size_t i = 0; i < n; i++) {
        expect_owner(base + i * CHUNK, base, lane);
        expect_owner(base + i * CHUNK + CHUNK - 1, base, lane);
    }
    for (int k = 0; k < 1000; k++) expect_owner(base + rng_next(r) % (n * CHUNK), base, lane);
}

static void check_unowned(uintptr_t base, size_t n, struct rng *r) {
    for (size_t i = 0; i < n; i++) {
        expect_foreign(base + i * CHUNK);
        expect_foreign(base + i * CHUNK + CHUNK - 1);
    }
    for (int k = 0; k < 1000; k++) expect_foreign(base + rng_next(r) % (n * CHUNK));
}

Test(segmap, lookup_finds_the_head_from_every_chunk_of_a_mapping) {
    static const size_t counts[] = {1, 2, 3, 4, 5, 7, 8, 9, 64, 1000, 70000};
    init_hakmem();
    struct rng r = rng_seed(1);
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        size_t n = counts[c];
        int lane = 1 + (int)(c % 0x7f); /* lane ids 1 .. 0x7f all fit a head byte */
        struct reservation res = reserve(n);
        segmap_register(res.base, n, lane);
        check_mapping(res.base, n, lane, &r);
        expect_foreign(res.base - 1);           /* the guard chunk before */
        expect_foreign(res.base + n * CHUNK);   /* the byte just after */
        segmap_unregister(res.base, n);
        check_unowned(res.base, n, &r);
        release(&res);
    }
}

Test(segmap, every_lane_id_round_trips) {
    init_hakmem();
    struct reservation res = reserve(0x7f * 2);
    for (int lane = 1; lane < (int)SEGMAP_TAIL; lane++) {
        uintptr_t base = res.base + (uintptr_t)(lane - 1) * 2 * CHUNK;
        segmap_register(base, 2, lane);
    }
    for (int lane = 1; lane < (int)SEGMAP_TAIL; lane++) {
        uintptr_t base = res.base + (uintptr_t)(lane - 1) * 2 * CHUNK;
        expect_owner(base + 77, base, lane);
        expect_owner(base + CHUNK + 77, base, lane);
        segmap_unregister(base, 2);
        expect_foreign(base);
        expect_foreign(base + CHUNK);
    }
    release(&res);
}

Test(segmap, adjacent_mappings_resolve_to_their_own_heads) {
    init_hakmem();
    struct rng r = rng_seed(2);
    static const size_t len[] = {3, 5, 1, 64, 2, 1000, 1};
    enum { N = sizeof len / sizeof len[0] };
    size_t total = 0;
    for (int i = 0; i < N; i++) total += len[i];
    struct reservation res = reserve(total);
    uintptr_t base[N];
    uintptr_t at = res.base;
    for (int i = 0; i < N; i++) {
        base[i] = at;
        segmap_register(at, len[i], HAK_LANE_TINY + i % 4);
        at += len[i] * CHUNK;
    }
    for (int i = 0; i < N; i++) check_mapping(base[i], len[i], HAK_LANE_TINY + i % 4, &r);

    /* unregistering the middle ones leaves their neighbours intact */
    for (int i = 1; i < N; i += 2) segmap_unregister(base[i], len[i]);
    for (int i = 0; i < N; i++) {
        if (i % 2)
            check_unowned(base[i], len[i], &r);
        else
            check_mapping(base[i], len[i], HAK_LANE_TINY + i % 4, &r);
    }
    for (int i = 0; i < N; i += 2) segmap_unregister(base[i], len[i]);
    check_unowned(res.base, total, &r);
    release(&res);
}

Test(segmap, a_range_reused_with_another_layout_sees_only_the_new_one) {
    init_hakmem();
    struct rng r = rng_seed(3);
    struct reservation res = reserve(1000);
    segmap_register(res.base, 1000, HAK_LANE_HUGE);
    check_mapping(res.base, 1000, HAK_LANE_HUGE, &r);
    segmap_unregister(res.base, 1000);
    /* ten mappings of 100 chunks where the one of 1000 was */
    for (int i = 0; i < 10; i++) segmap_register(res.base + (uintptr_t)i * 100 * CHUNK, 100, 1 + i);
    for (int i = 0; i < 10; i++)
        check_mapping(res.base + (uintptr_t)i * 100 * CHUNK, 100, 1 + i, &r);
    for (int i = 0; i < 10; i++) segmap_unregister(res.base + (uintptr_t)i * 100 * CHUNK, 100);
    check_unowned(res.base, 1000, &r);
    release(&res);
}

/* What the huge lane does on realloc: a mapping shrinks by unregistering its
 * last chunks, and grows in place by registering the whole again. */
Test(segmap, a_mapping_shrinks_and_grows_in_place) {
    init_hakmem();
    struct rng r = rng_seed(4);
    struct reservation res = reserve(200);
    segmap_register(res.base, 64, HAK_LANE_HUGE);
    segmap_unregister(res.base + 24 * CHUNK, 40);
    check_mapping(res.base, 24, HAK_LANE_HUGE, &r);
    check_unowned(res.base + 24 * CHUNK, 40, &r);
    segmap_register(res.base, 200, HAK_LANE_HUGE);
    check_mapping(res.base, 200, HAK_LANE_HUGE, &r);
    segmap_unregister(res.base + CHUNK, 199);
    check_mapping(res.base, 1, HAK_LANE_HUGE, &r);
    check_unowned(res.base + CHUNK, 199, &r);
    segmap_unregister(res.base, 1);
    check_unowned(res.base, 200, &r);
    release(&res);
}

static int global_object;

Test(segmap, foreign_and_out_of_range_addresses_are_not_owned) {
    init_hakmem();
    int local = 0;
    const uintptr_t top = (uintptr_t)1 << SEGMAP_ADDR_BITS;
    const uintptr_t addrs[] = {
        0,
        1,
        4096,
        CHUNK,
        (uintptr_t)&local,
        (uintptr_t)&global_object,
        (uintptr_t)&init_hakmem,
        (uintptr_t)segmap_g.table, /* the map itself is not a lane's */
        top - 1,
        top,
        top + 1,
        top + 12345 * CHUNK + 17,
        (uintptr_t)1 << 48,
        (uintptr_t)1 << 56,
        UINTPTR_MAX / 2,
        UINTPTR_MAX - CHUNK,
        UINTPTR_MAX,
    };
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        expect_foreign(addrs[i]);
        cr_assert_eq(hak_lane_of((const void *)addrs[i]), HAK_LANE_NONE, "hak_lane_of(%#lx)",
                     (unsigned long)addrs[i]);
    }
}

/* segmap_unregister clears the head first: meanwhile, and if the tails were
 * ever left behind, a lookup of a tail chunk finds nothing. */
Test(segmap, a_tail_whose_head_is_gone_resolves_to_nothing) {
    init_hakmem();
    struct reservation res = reserve(8);
    segmap_register(res.base, 8, HAK_LANE_HUGE);
    segmap_unregister(res.base, 1); /* the head is gone, the tails stay */
    for (size_t i = 0; i < 8; i++) expect_foreign(res.base + i * CHUNK + 5);
    segmap_unregister(res.base, 8);
    release(&res);
}

/* ---- the same through the public API, on real blocks --------------------- */

static void check_block_chunks(unsigned char *p, size_t size) {
    uintptr_t head;
    int lane = segmap_lookup(p, &head);
    cr_assert_eq(lane, HAK_LANE_HUGE, "a block of %zu bytes belongs to the huge lane", size);
    cr_assert_eq(hak_lane_of(p), lane);
    cr_assert_leq(head, (uintptr_t)p);
    cr_assert_eq(head % CHUNK, 0);
    const size_t offsets[] = {0,       1,           4095,        4096,       MiB,
                              2 * MiB - 1, 2 * MiB, 5 * MiB + 3, size / 2,   size - 1};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        if (offsets[i] >= size) continue;
        uintptr_t h;
        cr_assert_eq(hak_lane_of(p + offsets[i]), lane, "hak_lane_of(p + %zu)", offsets[i]);
        cr_assert_eq(segmap_lookup(p + offsets[i], &h), lane);
        cr_assert_eq(h, head, "p + %zu resolves to another mapping", offsets[i]);
    }
    /* a mapping owns every chunk it touches, the last one whole */
    uintptr_t last_chunk = ((uintptr_t)p + size - 1) / CHUNK * CHUNK;
    for (uintptr_t c = (uintptr_t)p / CHUNK * CHUNK; c <= last_chunk; c += CHUNK)
        expect_owner(c + CHUNK / 2, head, lane);
    expect_owner(last_chunk + CHUNK - 1, head, lane);
    /* the byte just after the mapping is not this block's: foreign, or the
     * head of some other mapping */
    uintptr_t h;
    /* (-Dsecure: a guard page after the block is part of the mapping) */
    uintptr_t guard = HAK_SECURE ? (uintptr_t)sysconf(_SC_PAGESIZE) : 0;
    uintptr_t map_last = ((uintptr_t)p + size - 1 + guard) / CHUNK * CHUNK;
    int after = segmap_lookup((const void *)(map_last + CHUNK), &h);
    cr_assert(after == HAK_LANE_NONE || h != head,
              "the chunk after a block of %zu bytes resolves to the block's own head", size);
}

Test(segmap, interior_pointers_of_big_blocks_resolve_to_their_mapping) {
    init_hakmem();
    static const size_t sizes[] = {MiB + 1, 2 * MiB, 3 * MiB, 10 * MiB, 10 * MiB + 4096,
                                   64 * MiB + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = hak_malloc(sizes[i]);
        cr_assert_not_null(p);
        check_block_chunks(p, sizes[i]);
        unsigned char *a = hak_aligned_alloc(8 * MiB, sizes[i]);
        cr_assert_not_null(a);
        check_block_chunks(a, sizes[i]);
        hak_free(a);
        hak_free(p);
    }
}

Test(segmap, every_live_block_is_found_by_its_lane) {
    init_hakmem();
    enum { N = 2000 };
    static void *blk[N];
    struct rng r = rng_seed(5);
    for (int i = 0; i < N; i++) {
        size_t size = (size_t)1 << rng_range(&r, 0, 22);
        size += rng_next(&r) % size;
        blk[i] = hak_malloc(size);
        cr_assert_not_null(blk[i]);
        uintptr_t head;
        int lane = segmap_lookup(blk[i], &head);
        cr_assert(hak_lane_enabled(lane), "malloc(%zu) = %p: segment map says lane %d", size,
                  blk[i], lane);
        cr_assert_eq(hak_lane_of(blk[i]), lane);
        cr_assert_leq(head, (uintptr_t)blk[i]);
        cr_assert_lt((uintptr_t)blk[i] - head, (size_t)1 << 40);
    }
    for (int i = 0; i < N; i++) hak_free(blk[i]);
}
