/*
 * lane_suite.h: behaviour checks for a lane built on the slab engine (tiny,
 * pool), parametrised by the lane's id, size range and slab size, so that
 * test_tiny.c and test_pool.c run the same checks on their own lanes.
 * Every check skips itself when the lane is not compiled in.
 */
#ifndef HAK_TEST_LANE_SUITE_H
#define HAK_TEST_LANE_SUITE_H

#include <criterion/criterion.h>

#include "hak_config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "test_util.h"

struct lane_desc {
    int id;            /* HAK_LANE_* */
    size_t lo, hi;     /* sizes served: (lo, hi] */
    size_t slab_size;  /* bytes of one slab */
    size_t cache_max;  /* blocks a thread's block cache holds per class at most
                          (SLAB_TC_MAX_BLOCKS), 0 for a lane without one; they
                          stay used by their slabs until the cache gives them back */
};

static inline void require_lane(const struct lane_desc *d) {
    if (!hak_lane_enabled(d->id)) cr_skip_test("the %s lane is not built", hak_lane_name(d->id));
}

/* Checks that read the lanes' counters (slabs per class, mapped bytes):
 * -Dbench_minimal compiles them out. */
static inline void require_counters(void) {
    if (HAK_BENCH_MINIMAL) cr_skip_test("-Dbench_minimal: the counters are compiled out");
}

/* The class of the lane that serves size n (its block size). */
static inline size_t class_for(const struct lane_desc *d, size_t n, unsigned *cls_out) {
    struct hak_class_stats cs;
    if (cls_out) *cls_out = 0;
    for (unsigned k = 0; hak_class_stats_get(d->id, k, &cs) == 0; k++) {
        if (cs.block_size >= n) {
            if (cls_out) *cls_out = k;
            return cs.block_size;
        }
    }
    return 0;
}

static inline struct hak_class_stats class_stats(const struct lane_desc *d, unsigned cls) {
    struct hak_class_stats cs;
    memset(&cs, 0, sizeof cs);
    cr_assert_eq(hak_class_stats_get(d->id, cls, &cs), 0);
    return cs;
}

/* Every size of the range: served by the lane, waste within
 * max(round_up(n, 16), 1.25 n), aligned to 16 (or to the largest power of
 * two dividing n below 16), the whole usable size writable. */
static inline void check_class_map(const struct lane_desc *d) {
    require_lane(d);
    for (size_t n = d->lo + 1; n <= d->hi; n++) {
        unsigned char *p = hak_malloc(n);
        cr_assert_not_null(p, "malloc(%zu)", n);
        cr_assert_eq(hak_lane_of(p), d->id, "malloc(%zu) served by lane %d", n, hak_lane_of(p));
        size_t u = hak_usable_size(p);
        size_t r16 = (n + 15) & ~(size_t)15;
        cr_assert(u >= n && (u <= r16 || u * 4 <= n * 5), "size %zu got %zu bytes", n, u);
        size_t a = n >= 16 ? 16 : low_pow2(n);
        cr_assert(is_aligned(p, a), "malloc(%zu) = %p not %zu-aligned", n, (void *)p, a);
        p[0] = 1;
        p[u - 1] = 2;
        hak_free(p);
    }
    /* malloc(0) is a unique block of the smallest class when the lane
     * starts at 0 */
    if (d->lo == 0) {
        void *a = hak_malloc(0), *b = hak_malloc(0);
        cr_assert(a && b && a != b);
        cr_assert_eq(hak_lane_of(a), d->id);
        hak_free(a);
        hak_free(b);
    }
}

/* Aligned requests come from the lane exactly when it has a class whose
 * block size is a multiple of the alignment; the pointer is aligned. */
static inline void check_aligned(const struct lane_desc *d) {
    require_lane(d);
    static const size_t sizes[] = {1, 8, 16, 24, 100, 500, 1000, 1024, 1025, 2000, 4096, 5000,
                                   8192, 10000, 32768};
    for (size_t a = 16; a <= 64 * KiB; a *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            if (n > d->hi) continue;
            void *p = NULL;
            cr_assert_eq(hak_posix_memalign(&p, a, n), 0);
            cr_assert(is_aligned(p, a), "posix_memalign(%zu, %zu) = %p", a, n, p);
            bool natural = false;
            struct hak_class_stats cs;
            for (unsigned k = 0; hak_class_stats_get(d->id, k, &cs) == 0; k++)
                if (cs.block_size >= n && cs.block_size % a == 0) natural = true;
            /* requests below the lane's range may be served lower down */
            if (n > d->lo) {
                if (natural)
                    cr_assert_eq(hak_lane_of(p), d->id, "align %zu size %zu", a, n);
                else
                    cr_assert_gt(hak_lane_of(p), d->id, "align %zu size %zu", a, n);
            }
            memset(p, 0x5a, n);
            hak_free(p);
        }
    }
}

/* Filling several slabs of one class takes slabs; freeing every block
 * gives them back. */
static inline void check_fill_and_drain(const struct lane_desc *d, size_t size) {
    require_lane(d);
    require_counters();
    unsigned cls;
    size_t bs = class_for(d, size, &cls);
    size_t per_slab = d->slab_size / bs;
    size_t n = per_slab * 5 + 3;
    int64_t before = class_stats(d, cls).slabs;
    void **v = hak_malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = hak_malloc(size);
        cr_assert_not_null(v[i]);
        memset(v[i], (int)i, size);
    }
    int64_t full = class_stats(d, cls).slabs;
    cr_assert_geq(full - before, 5, "slabs %lld -> %lld", (long long)before, (long long)full);
    for (size_t i = 0; i < n; i++) {
        unsigned char *b = v[i];
        cr_assert(b[0] == (unsigned char)i && b[size - 1] == (unsigned char)i, "block %zu", i);
        hak_free(v[i]);
    }
    hak_free(v);
    int64_t after = class_stats(d, cls).slabs;
    /* the heap keeps its current slab, and the pool lane cap_mid empty ones */
    struct hak_policy pol = {.size = sizeof pol};
    hak_policy_get(&pol);
    int64_t kept = 1 + (d->id == HAK_LANE_POOL ? (int64_t)pol.cap_mid[cls] : 0);
    /* and the block cache the last blocks freed: at most two slabs of them */
    if (d->cache_max) kept += 2;
    cr_assert_leq(after, before + kept, "slabs %lld after draining (%lld before)", (long long)after,
                  (long long)before);
}

/* ---- remote frees ------------------------------------------------------ */

struct remote_ctx {
    const struct lane_desc *d;
    size_t size, n;
    void **blocks;
    pthread_barrier_t bar;
    size_t reused; /* second-round blocks that were first-round blocks */
};

static inline int addr_cmp(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static inline void *remote_owner(void *arg) {
    struct remote_ctx *c = arg;
    for (size_t i = 0; i < c->n; i++) c->blocks[i] = hak_malloc(c->size);
    uintptr_t *first = malloc(c->n * sizeof *first);
    for (size_t i = 0; i < c->n; i++) first[i] = (uintptr_t)c->blocks[i];
    qsort(first, c->n, sizeof *first, addr_cmp);
    pthread_barrier_wait(&c->bar); /* the other thread frees them all */
    pthread_barrier_wait(&c->bar);
    for (size_t i = 0; i < c->n; i++) {
        void *p = hak_malloc(c->size);
        uintptr_t key = (uintptr_t)p;
        if (bsearch(&key, first, c->n, sizeof *first, addr_cmp)) c->reused++;
        c->blocks[i] = p;
    }
    for (size_t i = 0; i < c->n; i++) hak_free(c->blocks[i]);
    free(first);
    return NULL;
}

/* Frees every block of a remote_ctx (its first hakmem calls) and ends. */
static inline void *free_all_then_exit(void *arg) {
    struct remote_ctx *c = arg;
    for (size_t i = 0; i < c->n; i++) hak_free(c->blocks[i]);
    return NULL;
}

/* Three slabs' worth of blocks freed by a thread other than their owner go
 * back to the owner, who allocates them again (a full slab is found again
 * through the notify list); the frees are counted. By this thread (which
 * has allocated before), or with exiting_freer by a thread whose only calls
 * they are and which then ends: it holds its blocks back in chains of its
 * remote buffer, and a slab's last partial chain goes home only when the
 * thread ends, so every block must come home before any new one. */
static inline void check_remote_free_by(const struct lane_desc *d, size_t size,
                                        bool exiting_freer) {
    require_lane(d);
    require_counters();
    unsigned cls;
    size_t bs = class_for(d, size, &cls);
    struct remote_ctx c = {.d = d, .size = size, .n = d->slab_size / bs * 3};
    c.blocks = malloc(c.n * sizeof *c.blocks);
    pthread_barrier_init(&c.bar, NULL, 2);
    uint64_t remote_before = class_stats(d, cls).remote_frees;
    pthread_t owner, freer;
    pthread_create(&owner, NULL, remote_owner, &c);
    pthread_barrier_wait(&c.bar);
    if (exiting_freer) {
        pthread_create(&freer, NULL, free_all_then_exit, &c);
        pthread_join(freer, NULL);
    } else {
        free_all_then_exit(&c); /* (this thread does not end) */
    }
    pthread_barrier_wait(&c.bar);
    pthread_join(owner, NULL);
    pthread_barrier_destroy(&c.bar);
    uint64_t remote_after = class_stats(d, cls).remote_frees;
    /* all of them, but those a freer that goes on keeps in its block cache */
    size_t held = exiting_freer ? 0 : d->cache_max;
    cr_assert_geq(remote_after - remote_before + held, c.n, "remote frees counted: %llu of %zu",
                  (unsigned long long)(remote_after - remote_before), c.n);
    if (exiting_freer)
        cr_assert_eq(c.reused, c.n, "only %zu of %zu blocks came home", c.reused, c.n);
    else /* the owner's second round reuses them */
        cr_assert_geq(c.reused * 10, c.n * 9, "only %zu of %zu blocks reused", c.reused, c.n);
    free(c.blocks);
}

static inline void check_remote_free(const struct lane_desc *d, size_t size) {
    check_remote_free_by(d, size, false);
}

static inline void check_remote_frees_come_home_at_thread_exit(const struct lane_desc *d,
                                                              size_t size) {
    check_remote_free_by(d, size, true);
}

/* ---- abandonment and adoption -------------------------------------------- */

struct abandon_ctx {
    size_t size, n;
    void **blocks;
};

static inline void *abandoner(void *arg) {
    struct abandon_ctx *c = arg;
    for (size_t i = 0; i < c->n; i++) c->blocks[i] = hak_malloc(c->size);
    return NULL; /* exits with every block live: its segments are abandoned */
}

static inline void *adopter(void *arg) {
    struct abandon_ctx *c = arg;
    /* allocates as many blocks again: with half of the abandoned blocks
     * freed, an adopted segment serves some of them */
    for (size_t i = 0; i < c->n; i++) c->blocks[i] = hak_malloc(c->size);
    return NULL;
}

static inline bool same_segment_as_any(const void *p, void *const *set, size_t n) {
    uintptr_t seg = (uintptr_t)p & ~(HAK_CHUNK_SIZE - 1);
    for (size_t i = 0; i < n; i++)
        if (((uintptr_t)set[i] & ~(HAK_CHUNK_SIZE - 1)) == seg) return true;
    return false;
}

static inline void check_abandon_adopt(const struct lane_desc *d, size_t size) {
    require_lane(d);
    unsigned cls;
    size_t bs = class_for(d, size, &cls);
    struct abandon_ctx a = {.size = size, .n = d->slab_size / bs * 4};
    a.blocks = malloc(a.n * sizeof *a.blocks);
    int64_t slabs_before = class_stats(d, cls).slabs; /* this thread's own */
    pthread_t t;
    pthread_create(&t, NULL, abandoner, &a);
    pthread_join(t, NULL);
    for (size_t i = 0; i < a.n; i += 2) { /* free half, from this thread */
        hak_free(a.blocks[i]);
        a.blocks[i] = NULL;
    }
    size_t kept = 0;
    for (size_t i = 0; i < a.n; i++)
        if (a.blocks[i]) a.blocks[kept++] = a.blocks[i];

    struct abandon_ctx b = {.size = size, .n = a.n};
    b.blocks = malloc(b.n * sizeof *b.blocks);
    pthread_create(&t, NULL, adopter, &b);
    pthread_join(t, NULL);
    size_t adopted = 0;
    for (size_t i = 0; i < b.n; i++)
        if (same_segment_as_any(b.blocks[i], a.blocks, kept)) adopted++;
    cr_assert_gt(adopted, 0, "no block came from an abandoned segment");
    for (size_t i = 0; i < b.n; i++) hak_free(b.blocks[i]);
    for (size_t i = 0; i < kept; i++) hak_free(a.blocks[i]);
    free(a.blocks);
    free(b.blocks);
    /* everything freed: trimming unmaps the abandoned segments */
    hak_trim(0);
    int64_t slabs_after = class_stats(d, cls).slabs;
    cr_assert_leq(slabs_after, slabs_before, "slabs of the class: %lld before, %lld after",
                  (long long)slabs_before, (long long)slabs_after);
}

/* ---- growth, memory return --------------------------------------------- */

/* More segments than any fixed pool would hold. */
static inline void check_growth(const struct lane_desc *d, size_t size, size_t total) {
    require_lane(d);
    require_counters();
    size_t n = total / size;
    void **v = hak_malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = hak_malloc(size);
        cr_assert_not_null(v[i], "block %zu of %zu", i, n);
        *(size_t *)v[i] = i;
    }
    struct hak_stats st = {.size = sizeof st};
    hak_stats_get(&st);
    cr_assert_geq(st.lane[d->id].os_mapped, total, "mapped %llu",
                  (unsigned long long)st.lane[d->id].os_mapped);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(*(size_t *)v[i], i);
        hak_free(v[i]);
    }
    hak_free(v);
}

/* An array of n pointers outside hakmem, touched now so that it does not
 * count in what the burst adds to RSS. */
static inline void **mmap_array(size_t n) {
    void **v = mmap(NULL, n * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(v, MAP_FAILED);
    memset(v, 0, n * sizeof *v);
    return v;
}

static inline void munmap_array(void **v, size_t n) { munmap(v, n * sizeof *v); }

/* A burst freed: RSS comes back down without malloc_trim, while the
 * program only makes an occasional small allocation for two seconds (pages
 * and empty page-run chunks age a purge delay before they go: the purger's
 * second pass over them; the purger itself may look only after a delay). */
static inline void check_burst_returns_memory(const struct lane_desc *d, size_t total) {
    require_lane(d);
    size_t n = total / ((d->lo + 1 + d->hi) / 2);
    void **v = mmap_array(n);
    size_t before = rss_bytes();
    struct rng r = rng_seed(7);
    for (size_t i = 0; i < n; i++) {
        size_t s = rng_range(&r, d->lo + 1, d->hi);
        v[i] = hak_malloc(s);
        cr_assert_not_null(v[i]);
        memset(v[i], 1, s);
    }
    size_t peak = rss_bytes();
    for (size_t i = 0; i < n; i++) hak_free(v[i]);
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 200; i++) { /* 2 s of occasional calls */
        void *p = hak_malloc(d->lo + 1);
        hak_free(p);
        nanosleep(&ts, NULL);
    }
    size_t after = rss_bytes();
    munmap_array(v, n);
    cr_assert(after <= before || (after - before) * 10 <= peak - before,
              "rss before %zu KiB, peak %zu KiB, after %zu KiB", before >> 10, peak >> 10,
              after >> 10);
}

/* A GiB of blocks of lo..hi bytes allocated, touched and freed, then two
 * seconds of an occasional malloc/free pair that stays on the fast path
 * (no malloc_trim): RSS must come back to within 10% of the burst above
 * where it started. Empty slabs are purged after HAKMEM_PURGE_DELAY_MS by
 * the purger thread; empty segments beyond the lane's cache are unmapped.
 * 256 MiB where debug checks are on (-Ddebug_checks, -Dsecure: a slow free
 * walks its slab's free list); skipped under sanitizers (shadow memory is
 * RSS too). */
#ifndef HAK_TEST_SANITIZED
#define HAK_TEST_SANITIZED 0
#endif

static inline double lane_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void check_gib_burst_returns_memory(const struct lane_desc *d, size_t lo,
                                                  size_t hi) {
    require_lane(d);
    if (HAK_TEST_SANITIZED) cr_skip_test("a sanitizer build: RSS includes shadow memory");
    size_t total = HAK_DEBUG_CHECKS ? 256 * MiB : GiB;
    size_t max = total / lo + 1;
    void **v = mmap_array(max);
    size_t small = lo; /* the pairs after the burst: a slab of their class stays in use */
    void *kept = hak_malloc(small);
    hak_free(hak_malloc(small));
    size_t before = rss_bytes();
    double t0 = lane_now_s();
    struct rng r = rng_seed(61);
    size_t n = 0, bytes = 0;
    while (bytes < total) {
        size_t s = rng_range(&r, lo, hi);
        v[n] = hak_malloc(s);
        cr_assert_not_null(v[n]);
        memset(v[n], 0x3c, s);
        bytes += s;
        n++;
    }
    size_t peak = rss_bytes();
    double t1 = lane_now_s();
    for (size_t i = 0; i < n; i += 2) hak_free(v[i]);
    for (size_t i = 1; i < n; i += 2) hak_free(v[i]);
    double t2 = lane_now_s(), end = t2 + 2.0;
    struct timespec ts = {0, 10 * 1000 * 1000};
    while (lane_now_s() < end) {
        hak_free(hak_malloc(small));
        nanosleep(&ts, NULL);
    }
    size_t after = rss_bytes();
    hak_free(kept);
    munmap_array(v, max);
    fprintf(stderr,
            "%zu MiB in %zu blocks of %zu..%zu B: RSS before %zu KiB, peak %zu KiB, 2 s after "
            "the frees %zu KiB (%.2f%% of the burst left); %.2f s allocating, %.2f s freeing\n",
            bytes / MiB, n, lo, hi, before / KiB, peak / KiB, after / KiB,
            after > before ? 100.0 * (double)(after - before) / (double)(peak - before) : 0.0,
            t1 - t0, t2 - t1);
    cr_assert_geq(peak - before, total / 2, "the burst did not show in RSS");
    cr_assert(after <= before || (after - before) * 10 <= peak - before,
              "RSS before %zu KiB, peak %zu KiB, after %zu KiB: more than 10%% of the burst "
              "stayed",
              before / KiB, peak / KiB, after / KiB);
}

struct burst {
    size_t n, size;
    void **v;
};

static inline void *burst_and_exit(void *arg) {
    struct burst *b = arg;
    for (size_t i = 0; i < b->n; i++) {
        b->v[i] = hak_malloc(b->size);
        memset(b->v[i], 3, b->size);
    }
    return NULL; /* its segments are abandoned with every block live */
}

/* Blocks of an exited thread freed later by another thread give their
 * memory back without malloc_trim. */
static inline void check_abandoned_blocks_return_memory(const struct lane_desc *d, size_t size,
                                                        size_t total) {
    require_lane(d);
    struct burst b = {.n = total / size, .size = size};
    b.v = mmap_array(b.n);
    size_t before = rss_bytes();
    pthread_t t;
    pthread_create(&t, NULL, burst_and_exit, &b);
    pthread_join(t, NULL);
    size_t peak = rss_bytes();
    for (size_t i = 0; i < b.n; i++) hak_free(b.v[i]); /* frees into abandoned slabs */
    struct timespec ts = {0, 10 * 1000 * 1000};
    size_t after = rss_bytes();
    for (int i = 0; i < 150 && after > before && (after - before) * 10 > peak - before; i++) {
        void *p = hak_malloc(d->lo + 1);
        hak_free(p);
        nanosleep(&ts, NULL);
        after = rss_bytes();
    }
    munmap_array(b.v, b.n);
    cr_assert(after <= before || (after - before) * 10 <= peak - before,
              "rss before %zu KiB, peak %zu KiB, 1.5 s after the frees %zu KiB", before >> 10,
              peak >> 10, after >> 10);
}

/* ---- misuse, in a child process ----------------------------------------- */

/* Runs fn in a child with stderr captured; returns its stderr (static
 * buffer) and whether it died of SIGABRT. */
static inline const char *run_child(void (*fn)(void *), void *arg, bool *aborted) {
    static char out[1024];
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t k;
    while (len < sizeof out - 1 && (k = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    *aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    return out;
}

static inline void misuse_double_free(void *arg) {
    size_t size = *(size_t *)arg;
    void *p = hak_malloc(size);
    void *keep = hak_malloc(size); /* the slab keeps a live block */
    hak_free(p);
    hak_free(p);
    hak_free(keep);
}

/* A double free with other frees in between (the block is not the head of
 * any list any more). */
static inline void misuse_double_free_later(void *arg) {
    size_t size = *(size_t *)arg;
    void *a = hak_malloc(size), *b = hak_malloc(size), *c = hak_malloc(size);
    void *keep = hak_malloc(size);
    hak_free(a);
    hak_free(b);
    hak_free(c);
    hak_free(a);
    hak_free(keep);
}

static inline void *free_once(void *p) {
    hak_free(p);
    return NULL;
}

/* A block freed by another thread, then freed again here. */
static inline void misuse_double_free_remote(void *arg) {
    size_t size = *(size_t *)arg;
    void *a = hak_malloc(size), *keep = hak_malloc(size);
    pthread_t t;
    pthread_create(&t, NULL, free_once, a);
    pthread_join(t, NULL);
    hak_free(a);
    hak_free(keep);
}

static inline void *free_twice(void *p) {
    hak_free(p);
    hak_free(p);
    return NULL;
}

/* A block freed twice by another thread (held back in that thread's remote
 * buffer in between). */
static inline void misuse_double_free_remote_twice(void *arg) {
    size_t size = *(size_t *)arg;
    void *a = hak_malloc(size), *b = hak_malloc(size), *keep = hak_malloc(size);
    pthread_t t;
    pthread_create(&t, NULL, free_once, b); /* b starts a chain of the slab */
    pthread_join(t, NULL);
    pthread_create(&t, NULL, free_twice, a);
    pthread_join(t, NULL);
    hak_free(keep);
}

static inline void misuse_interior(void *arg) {
    size_t size = *(size_t *)arg;
    char *p = hak_malloc(size);
    hak_free(p + 8);
}

static inline void check_misuse(const struct lane_desc *d, size_t size) {
    require_lane(d);
    bool aborted;
    const char *err = run_child(misuse_double_free, &size, &aborted);
    cr_assert(aborted, "double free did not abort; stderr: %s", err);
    cr_assert(strstr(err, "hakmem: free(): double free") != NULL, "stderr: %s", err);
    err = run_child(misuse_double_free_later, &size, &aborted);
    cr_assert(aborted, "later double free did not abort; stderr: %s", err);
    cr_assert(strstr(err, "hakmem: free(): double free") != NULL, "stderr: %s", err);
    err = run_child(misuse_double_free_remote, &size, &aborted);
    cr_assert(aborted, "double free after a remote free did not abort; stderr: %s", err);
    cr_assert(strstr(err, "hakmem: free(): double free") != NULL, "stderr: %s", err);
    err = run_child(misuse_double_free_remote_twice, &size, &aborted);
    cr_assert(aborted, "double free by a remote thread did not abort; stderr: %s", err);
    cr_assert(strstr(err, "hakmem: free(): double free") != NULL, "stderr: %s", err);
    err = run_child(misuse_interior, &size, &aborted);
    cr_assert(aborted, "interior free did not abort; stderr: %s", err);
    cr_assert(strstr(err, "hakmem: free(): invalid pointer") != NULL, "stderr: %s", err);
}

#endif /* HAK_TEST_LANE_SUITE_H */
