/*
 * test_threads.c: several threads allocating, reallocating and freeing at
 * once. Every block carries its size in its first word and a pattern derived
 * from its address and size, checked before it is freed, so a block handed
 * out twice or overwritten by a neighbour is caught. Blocks travel between
 * threads (a shared array of slots swapped with atomic exchange, a
 * producer/consumer ring, threads that exit leaving their blocks behind), so
 * many are freed by a thread other than the one that allocated them. At the
 * end every block is freed: hakmem's live byte count is back where it
 * started and, after malloc_trim, so is the resident set.
 *
 * Worker threads never call cr_assert (Criterion's assertions belong to the
 * test's own thread): they record the first failure, which the test thread
 * reports after joining them.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hak_config.h"
#include "hakmem.h"
#include "test_util.h"

#define MAX_THREADS 8
#define STACK_SIZE ((size_t)256 * 1024)
#define FULL_CHECK_MAX (256 * KiB) /* blocks up to this are patterned whole */

/* ---- failures, recorded by any thread ------------------------------------ */

static _Atomic unsigned long failures;
static char first_failure[512];

static void fail(const char *fmt, ...) {
    if (atomic_fetch_add_explicit(&failures, 1, memory_order_acq_rel) != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(first_failure, sizeof first_failure, fmt, ap);
    va_end(ap);
}

static void assert_no_failures(void) {
    unsigned long n = atomic_load_explicit(&failures, memory_order_acquire);
    cr_assert_eq(n, 0, "%lu failures; the first: %s", n, first_failure);
}

/* ---- blocks: [size][pattern ...] ----------------------------------------- */

static uint64_t salt_of(const void *p, size_t size) {
    return (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15u ^ size;
}

/* Applies op to the bytes of the pattern: all of a block up to
 * FULL_CHECK_MAX, else its first and last 4 KiB and 8 bytes every 64 KiB
 * (touching big blocks sparsely keeps the test fast). */
#define FOR_PATTERN_RANGES(size, from, to, body)                                            \
    do {                                                                                   \
        if ((size) <= FULL_CHECK_MAX) {                                                    \
            size_t from = 8, to = (size);                                                  \
            body;                                                                          \
        } else {                                                                           \
            size_t from = 8, to = 4096;                                                    \
            body;                                                                          \
            for (size_t off_ = 64 * KiB; off_ + 8 <= (size) - 4096; off_ += 64 * KiB) {    \
                from = off_;                                                               \
                to = off_ + 8;                                                             \
                body;                                                                      \
            }                                                                              \
            from = (size) - 4096;                                                          \
            to = (size);                                                                   \
            body;                                                                          \
        }                                                                                  \
    } while (0)

static void block_fill(unsigned char *p, size_t size) {
    memcpy(p, &size, sizeof size);
    uint64_t salt = salt_of(p, size);
    FOR_PATTERN_RANGES(size, from, to, pattern_fill(p, from, to, salt));
}

/* Checks p's header and pattern; returns its size (0 after a failure). */
static size_t block_check(const unsigned char *p, const char *who) {
    if (p == NULL) {
        fail("%s: NULL block", who);
        return 0;
    }
    if (!is_aligned(p, 16)) fail("%s: block %p is not 16-byte aligned", who, (const void *)p);
    size_t size;
    memcpy(&size, p, sizeof size);
    if (size < 16 || size > 64 * MiB) {
        fail("%s: block %p has a corrupt header (size %zu)", who, (const void *)p, size);
        return 0;
    }
    size_t usable = hak_usable_size(p);
    if (usable < size) {
        fail("%s: block %p of %zu bytes has usable size %zu", who, (const void *)p, size, usable);
        return 0;
    }
    uint64_t salt = salt_of(p, size);
    size_t bad = SIZE_MAX;
    FOR_PATTERN_RANGES(size, from, to,
                       if (bad == SIZE_MAX) bad = pattern_find_mismatch(p, from, to, salt));
    if (bad != SIZE_MAX) {
        fail("%s: block %p of %zu bytes overwritten at offset %zu", who, (const void *)p, size,
             bad);
        return 0;
    }
    return size;
}

static void block_check_and_free(unsigned char *p, const char *who) {
    block_check(p, who);
    hak_free(p);
}

/* Sizes from 16 B to 4 MiB, mostly small. */
static size_t random_size(struct rng *r) {
    unsigned k = (unsigned)(rng_next(r) % 1000);
    if (k < 600) return rng_range(r, 16, 1024);
    if (k < 880) return rng_range(r, 1025, 32 * KiB);
    if (k < 985) return rng_range(r, 32 * KiB + 1, MiB);
    return rng_range(r, MiB + 1, 4 * MiB);
}

/* A new block of a random size, through a random entry point. */
static unsigned char *block_new(struct rng *r) {
    size_t size = random_size(r);
    unsigned char *p = NULL;
    switch (rng_next(r) % 4) {
    case 0:
        p = hak_calloc(1, size);
        if (p && !all_zero(p, size <= FULL_CHECK_MAX ? size : 4096))
            fail("calloc(%zu) = %p is not zeroed", size, (void *)p);
        break;
    case 1: {
        void *m = NULL;
        if (hak_posix_memalign(&m, (size_t)16 << (rng_next(r) % 9), size) == 0) p = m;
        break;
    }
    default: p = hak_malloc(size); break;
    }
    if (p == NULL) {
        fail("allocation of %zu bytes failed (errno %d)", size, errno);
        return NULL;
    }
    block_fill(p, size);
    return p;
}

/* Reallocates p to a random size; the first bytes of the old pattern must
 * survive the move. */
static unsigned char *block_realloc(unsigned char *p, struct rng *r) {
    size_t old = block_check(p, "realloc");
    if (old == 0) return p;
    uint64_t old_salt = salt_of(p, old);
    size_t size = random_size(r);
    unsigned char *q = hak_realloc(p, size);
    if (q == NULL) {
        fail("realloc(%p, %zu) failed (errno %d)", (void *)p, size, errno);
        return p;
    }
    size_t keep = old < size ? old : size;
    if (keep > 4096) keep = 4096;
    size_t bad = pattern_find_mismatch(q, 8, keep, old_salt);
    if (bad != SIZE_MAX)
        fail("realloc(%zu -> %zu) lost the contents at offset %zu", old, size, bad);
    block_fill(q, size);
    return q;
}

/* ---- the shared slots ------------------------------------------------------ */

#define SLOTS 256
static _Atomic(unsigned char *) slots[SLOTS];

/* Puts p into a random slot and frees what was there (another thread's block,
 * most of the time). */
static void block_hand_over(unsigned char *p, struct rng *r) {
    unsigned char *old = atomic_exchange_explicit(&slots[rng_next(r) % SLOTS], p,
                                                  memory_order_acq_rel);
    if (old) block_check_and_free(old, "handed-over block");
}

static void *drain_slots(void *arg) {
    (void)arg;
    for (int i = 0; i < SLOTS; i++) {
        unsigned char *p = atomic_exchange_explicit(&slots[i], NULL, memory_order_acq_rel);
        if (p) block_check_and_free(p, "drained block");
    }
    return NULL;
}

/* ---- running threads ---------------------------------------------------- */

struct job {
    uint64_t seed;
    unsigned ops;
};

#define LOCAL 64

static void *mixed_worker(void *arg) {
    const struct job *job = arg;
    struct rng r = rng_seed(job->seed);
    unsigned char *local[LOCAL] = {0};
    for (unsigned op = 0; op < job->ops && atomic_load_explicit(&failures, memory_order_relaxed) == 0;
         op++) {
        unsigned i = (unsigned)(rng_next(&r) % LOCAL);
        if (local[i]) {
            unsigned action = (unsigned)(rng_next(&r) % 8);
            if (action < 2) {
                block_hand_over(local[i], &r);
                local[i] = NULL;
            } else if (action == 2) {
                local[i] = block_realloc(local[i], &r);
            } else {
                block_check_and_free(local[i], "local block");
                local[i] = NULL;
            }
        }
        if (!local[i]) local[i] = block_new(&r);
    }
    for (int i = 0; i < LOCAL; i++)
        if (local[i]) block_check_and_free(local[i], "local block at exit");
    return NULL;
}

static pthread_attr_t attr;

/* Starts n threads running fn(&args[i]) (elements of arg_size bytes; NULL
 * for all when args is NULL) and joins them. */
static void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size) {
    pthread_t t[MAX_THREADS * 2];
    int err = 0, started = 0;
    /* no assertion (which may allocate) before the threads are joined */
    while (started < n && started < MAX_THREADS * 2 && err == 0) {
        err = pthread_create(&t[started], &attr, fn,
                             args ? (char *)args + (size_t)started * arg_size : NULL);
        if (err == 0) started++;
    }
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
    cr_assert_eq(err, 0, "pthread_create: error %d", err);
    cr_assert_eq(started, n, "at most %d threads", MAX_THREADS * 2);
}

static void *idle_thread(void *arg) {
    (void)arg;
    return NULL;
}

static uint64_t live_bytes(void) {
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert_eq(hak_stats_get(&st), 0);
    return st.lane[0].live_bytes;
}

/* Before the live byte count is read: hakmem is warmed up (test_util.h) and
 * glibc's stack cache holds as many thread stacks as the test will run at
 * once, so that creating the test's threads allocates nothing (a new
 * thread's TLS vector comes from malloc, a cached stack keeps its own). */
static void setup(void) {
    cr_assert_eq(pthread_attr_init(&attr), 0);
    cr_assert_eq(pthread_attr_setstacksize(&attr, STACK_SIZE), 0);
    warm_up_hakmem();
    char dummy[MAX_THREADS * 2];
    run_threads(MAX_THREADS * 2, idle_thread, dummy, 1);
}

TestSuite(threads, .init = setup);

/* What the process holds before a test's threads run. */
struct baseline {
    uint64_t live; /* hakmem's live bytes */
    size_t rss;    /* resident set, bytes */
};

static struct baseline baseline_take(void) {
    struct baseline b = {live_bytes(), rss_bytes()};
    return b;
}

/* Every block is freed and every thread that allocated has exited: the live
 * byte count is back where it was (the test's own thread allocates nothing
 * in between; lanes that count per thread flush their counts at thread
 * exit), and once trimmed the memory is back with the OS. */
static void baseline_check(struct baseline b) {
    uint64_t live = live_bytes();
    assert_no_failures();
    if (!HAK_BENCH_MINIMAL)
        cr_assert_eq(live, b.live, "live bytes %llu before, %llu after every block was freed",
                     (unsigned long long)b.live, (unsigned long long)live);
    hak_trim(0);
    size_t rss = rss_bytes();
    cr_assert_lt(rss, b.rss + 8 * MiB,
                 "RSS %zu bytes before, %zu after every block was freed and hakmem trimmed",
                 b.rss, rss);
}

static void mixed_run(int nthreads, unsigned ops_per_thread) {
    struct job jobs[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) jobs[i] = (struct job){(uint64_t)i * 7919 + 1, ops_per_thread};
    struct baseline b = baseline_take();
    run_threads(nthreads, mixed_worker, jobs, sizeof jobs[0]);
    run_threads(1, drain_slots, NULL, 0); /* a thread of its own: see baseline_check */
    baseline_check(b);
}

Test(threads, two_threads_allocate_and_free_each_others_blocks) { mixed_run(2, 12000); }
Test(threads, four_threads_allocate_and_free_each_others_blocks) { mixed_run(4, 6000); }
Test(threads, eight_threads_allocate_and_free_each_others_blocks) { mixed_run(8, 3000); }

/* ---- producer / consumer ----------------------------------------------- */

#define RING 1024
struct ring {
    _Atomic(unsigned char *) cell[RING];
    _Atomic unsigned long head; /* next cell to fill (producer) */
    _Atomic unsigned long tail; /* next cell to take (consumer) */
    unsigned long count;        /* blocks to pass */
    uint64_t seed;
};

static void *producer(void *arg) {
    struct ring *q = arg;
    struct rng r = rng_seed(q->seed);
    for (unsigned long i = 0; i < q->count; i++) {
        unsigned char *p = block_new(&r);
        if (!p) return NULL; /* recorded; the consumer is told by the count */
        while (atomic_load_explicit(&q->head, memory_order_relaxed) -
                   atomic_load_explicit(&q->tail, memory_order_acquire) >=
               RING) {
            if (atomic_load_explicit(&failures, memory_order_relaxed)) {
                hak_free(p); /* the consumer may have stopped */
                return NULL;
            }
            sched_yield();
        }
        unsigned long h = atomic_load_explicit(&q->head, memory_order_relaxed);
        atomic_store_explicit(&q->cell[h % RING], p, memory_order_relaxed);
        atomic_store_explicit(&q->head, h + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg) {
    struct ring *q = arg;
    for (unsigned long i = 0; i < q->count; i++) {
        while (atomic_load_explicit(&q->head, memory_order_acquire) ==
               atomic_load_explicit(&q->tail, memory_order_relaxed)) {
            if (atomic_load_explicit(&failures, memory_order_relaxed)) return NULL;
            sched_yield();
        }
        unsigned long t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        unsigned char *p = atomic_load_explicit(&q->cell[t % RING], memory_order_relaxed);
        atomic_store_explicit(&q->tail, t + 1, memory_order_release);
        block_check_and_free(p, "consumed block");
    }
    return NULL;
}

static void *pair(void *arg) {
    /* each pair: one producer and one consumer thread */
    pthread_t prod, cons;
    pthread_create(&prod, &attr, producer, arg);
    pthread_create(&cons, &attr, consumer, arg);
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    return NULL;
}

Test(threads, blocks_allocated_by_one_thread_are_freed_by_another) {
    enum { PAIRS = 2 };
    static struct ring rings[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        memset(&rings[i], 0, sizeof rings[i]);
        rings[i].count = 20000;
        rings[i].seed = 100 + (uint64_t)i;
    }
    struct baseline b = baseline_take();
    run_threads(PAIRS, pair, rings, sizeof rings[0]);
    baseline_check(b);
    for (int i = 0; i < PAIRS; i++)
        cr_assert_eq(atomic_load(&rings[i].tail), rings[i].count, "pair %d stopped early", i);
}

/* ---- blocks that outlive their thread ---------------------------------- */

#define LEFT_PER_THREAD 300
#define SHORT_THREADS 32
static unsigned char *left_behind[SHORT_THREADS][LEFT_PER_THREAD];

static void *allocate_and_exit(void *arg) {
    int id = *(const int *)arg;
    struct rng r = rng_seed(1000 + (uint64_t)id);
    for (int i = 0; i < LEFT_PER_THREAD; i++) {
        left_behind[id][i] = block_new(&r);
        /* free some of them at once, so the thread exits with partly used
         * memory of its own */
        if (i % 3 == 2) {
            block_check_and_free(left_behind[id][i - 1], "own block");
            left_behind[id][i - 1] = NULL;
        }
    }
    return NULL;
}

static void *free_left_behind(void *arg) {
    (void)arg;
    for (int t = 0; t < SHORT_THREADS; t++)
        for (int i = 0; i < LEFT_PER_THREAD; i++)
            if (left_behind[t][i]) {
                block_check_and_free(left_behind[t][i], "block of an exited thread");
                left_behind[t][i] = NULL;
            }
    return NULL;
}

Test(threads, blocks_outlive_the_thread_that_allocated_them) {
    int ids[SHORT_THREADS];
    for (int i = 0; i < SHORT_THREADS; i++) ids[i] = i;
    struct baseline b = baseline_take();
    /* waves of short-lived threads, each leaving its blocks behind */
    for (int wave = 0; wave < SHORT_THREADS; wave += 4)
        run_threads(4, allocate_and_exit, ids + wave, sizeof ids[0]);
    run_threads(1, free_left_behind, NULL, 0);
    baseline_check(b);
}
