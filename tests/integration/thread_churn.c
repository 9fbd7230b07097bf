/*
 * thread_churn.c: thousands of short threads, each allocating and freeing a
 * few blocks, some of them freed by another thread (DESIGN.md 4: nothing is
 * leaked by thread churn). Afterwards the live bytes hakmem reports are back
 * where they started and the number of mappings has not grown.
 *
 * The starting point is taken after a warm-up of WARMUP threads: glibc keeps
 * the stacks of dead threads (and their TLS vectors, allocated with malloc)
 * in a cache of its own, which the first threads fill, and hakmem keeps the
 * per-thread heaps of dead threads for reuse, as many as were ever alive at
 * once. Live bytes may then still differ by LIVE_SLACK: a thread hakmem
 * starts itself (the purger) gets a TLS vector through malloc like any
 * other, and glibc's stack cache keeps or drops such vectors as it likes.
 * A leak of even one 16-byte block per thread is far above that.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "itest.h"

#define NTHREADS 3000
#define WAVE 4     /* threads alive at once */
#define WARMUP 100 /* threads before the starting point */
#define MAPS_SLACK 50
/* bytes; see above. Without the tiny lane, the huge lane serves those few
 * hundred bytes as a whole page. */
#define LIVE_SLACK (hak_lane_enabled(HAK_LANE_TINY) ? (uint64_t)2048 : (uint64_t)2 * 4096)

static const size_t sizes[] = {16, 48, 200, 1024, 3000, 8192, 20000, 65536, 200000, 1u << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Blocks handed from one thread to another, which frees them. */
static struct {
    pthread_mutex_t lock;
    void *slot[64];
    int n;
} mailbox = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};

static atomic_long failures;

static void *short_thread(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    enum { N = 8 };
    unsigned char *mine[N];
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = sizes[(seed >> 8) % NSIZES];
        mine[i] = hak_malloc(n);
        if (!mine[i]) {
            atomic_fetch_add(&failures, 1);
            return NULL;
        }
        memset(mine[i], i, n < 256 ? n : 256);
    }
    /* five freed here */
    for (int i = 0; i < 5; i++) {
        if (mine[i][0] != (unsigned char)i) atomic_fetch_add(&failures, 1);
        hak_free(mine[i]);
    }
    /* two handed over, up to two of another thread's freed here */
    void *theirs[2];
    int got = 0;
    pthread_mutex_lock(&mailbox.lock);
    while (got < 2 && mailbox.n > 0) theirs[got++] = mailbox.slot[--mailbox.n];
    int kept = 5;
    for (; kept < 7 && mailbox.n < 64; kept++) mailbox.slot[mailbox.n++] = mine[kept];
    pthread_mutex_unlock(&mailbox.lock);
    for (int i = 0; i < got; i++) hak_free(theirs[i]);
    for (int i = kept; i < N; i++) hak_free(mine[i]);
    /* and libc's own allocations of this thread (hakmem's with interposition) */
    char *s = malloc(64);
    if (s) strcpy(s, "thread");
    free(s);
    return NULL;
}

static uint64_t live_bytes(void) {
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert(hak_stats_get(&st) == 0);
    return st.lane[0].live_bytes;
}

static bool live_close(uint64_t a, uint64_t b) {
    return (a > b ? a - b : b - a) <= LIVE_SLACK;
}

Test(thread_churn, live_bytes_and_mappings_stay_flat, .timeout = 120) {
    uint64_t live_at_start = 0;
    long maps_at_start = 0;
    for (int t = 0; t < NTHREADS; t += WAVE) {
        pthread_t th[WAVE];
        for (int i = 0; i < WAVE; i++)
            cr_assert(pthread_create(&th[i], NULL, short_thread, (void *)(uintptr_t)(t + i)) == 0,
                      "pthread_create failed at thread %d", t + i);
        for (int i = 0; i < WAVE; i++) pthread_join(th[i], NULL);
        if (t + WAVE == WARMUP) {
            /* the mailbox may hold blocks now: count from an empty one */
            pthread_mutex_lock(&mailbox.lock);
            while (mailbox.n > 0) hak_free(mailbox.slot[--mailbox.n]);
            pthread_mutex_unlock(&mailbox.lock);
            live_at_start = live_bytes();
            maps_at_start = itest_count_maps();
        }
    }
    while (mailbox.n > 0) hak_free(mailbox.slot[--mailbox.n]);
    cr_assert(atomic_load(&failures) == 0, "%ld allocations failed or blocks were corrupt",
              atomic_load(&failures));
    uint64_t live_at_end = live_bytes();
    long maps_at_end = itest_count_maps();
    cr_assert(live_close(live_at_end, live_at_start),
              "live bytes after %d threads: %llu, after the first %d: %llu", NTHREADS,
              (unsigned long long)live_at_end, WARMUP, (unsigned long long)live_at_start);
    cr_assert(maps_at_end <= maps_at_start + MAPS_SLACK,
              "mappings after %d threads: %ld, after the first %d: %ld", NTHREADS, maps_at_end,
              WARMUP, maps_at_start);
}

/* The same churn with every thread detached: nobody joins them, so their
 * exit races with the next ones' start. At most WAVE of them run their
 * start routine at once, and at most WAVE + 1 threads besides main exist
 * (the kernel counts an exiting thread until it is gone), in the warm-up as
 * later. */
static atomic_int running;

static void *detached_thread(void *arg) {
    short_thread(arg);
    atomic_fetch_sub(&running, 1);
    return NULL;
}

/* Live bytes once no detached thread of ours is left and the value has held
 * still for a while. */
static uint64_t settled_live_bytes(void) {
    while (atomic_load(&running) > 0) itest_sleep_ms(1);
    /* the exiting ones (and at most one thread of hakmem's own) */
    for (int i = 0; i < 1000 && itest_count_threads() > 2; i++) itest_sleep_ms(1);
    uint64_t last = live_bytes();
    for (int i = 0, same = 0; i < 200 && same < 3; i++) {
        itest_sleep_ms(5);
        uint64_t now = live_bytes();
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

static void drain_mailbox(void) {
    pthread_mutex_lock(&mailbox.lock);
    while (mailbox.n > 0) hak_free(mailbox.slot[--mailbox.n]);
    pthread_mutex_unlock(&mailbox.lock);
}

Test(thread_churn, detached_threads_leave_nothing_behind, .timeout = 120) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    uint64_t live_at_start = 0;
    long maps_at_start = 0;
    for (int t = 0; t < 1000; t++) {
        while (atomic_load(&running) >= WAVE || itest_count_threads() > 1 + WAVE + 1)
            itest_sleep_ms(0);
        atomic_fetch_add(&running, 1);
        pthread_t th;
        cr_assert(pthread_create(&th, &attr, detached_thread, (void *)(uintptr_t)t) == 0);
        if (t + 1 == WARMUP) {
            settled_live_bytes();
            drain_mailbox();
            live_at_start = live_bytes();
            maps_at_start = itest_count_maps();
        }
    }
    pthread_attr_destroy(&attr);
    settled_live_bytes();
    drain_mailbox();
    uint64_t live_at_end = live_bytes();
    long maps_at_end = itest_count_maps();
    cr_assert(atomic_load(&failures) == 0);
    cr_assert(live_close(live_at_end, live_at_start),
              "live bytes %llu at the end, %llu at the start", (unsigned long long)live_at_end,
              (unsigned long long)live_at_start);
    cr_assert(maps_at_end <= maps_at_start + MAPS_SLACK, "mappings %ld at the end, %ld at the start",
              maps_at_end, maps_at_start);
}
