/*
 * observe_helper.c: known patterns for the observability tests (observe.c,
 * malloc_info.py), through the hak_* names so that it runs in every build:
 *
 *   prof        allocations in every lane built, frees, remote frees
 *               collected by a refill, a loop of malloc/free pairs, a trim;
 *               then prints "mallocs <calls made>" and one line
 *               "<category> <count> <avg ns> <p99 ns>" per profiler
 *               category (hak_stats_get)
 *   refusals N  N allocations the OS refuses (hak_test_os_fail) in a burst,
 *               prints "burst <seconds>", sleeps 1.1 s, one refusal more
 *   info        malloc_info(0, stdout) (exits 77 without -Dinterpose)
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hakmem.h"

#if HAK_TEST_INTERPOSE
#include <malloc.h>
#endif

/* The test hook of lib/os.h (exported, not in hakmem.h). */
unsigned long hak_test_os_fail(unsigned long after, unsigned long count);

#define ROUNDS 256
#define LOOP 40000

static unsigned long mallocs; /* hak_malloc calls made by main's thread */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *free_all(void *arg) {
    void **v = arg;
    for (int i = 0; i < ROUNDS; i++) hak_free(v[i]);
    return NULL;
}

/* Blocks of the smallest slab lane built, freed by another thread, then
 * the owner allocates that class again until a refill collects them. */
static int remote_frees(size_t size) {
    void *v[ROUNDS];
    for (int i = 0; i < ROUNDS; i++, mallocs++)
        if (!(v[i] = hak_malloc(size))) return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, free_all, v) != 0) return 1;
    pthread_join(t, NULL);
    static void *again[100000];
    int n = 0;
    for (; n < 100000; n++, mallocs++) /* through the slab's carved blocks to its remote list */
        if (!(again[n] = hak_malloc(size))) return 1;
    for (int i = 0; i < n; i++) hak_free(again[i]);
    return 0;
}

static int prof(void) {
    static const size_t sizes[] = {64, 4096, 100000, (size_t)4 << 20};
    for (int r = 0; r < ROUNDS; r++) {
        void *p[4];
        for (int k = 0; k < 4; k++) {
            p[k] = hak_malloc(sizes[k]);
            mallocs++;
            if (!p[k]) return 1;
            memset(p[k], r, 64);
        }
        for (int k = 0; k < 4; k++) hak_free(p[k]);
    }
    if (hak_lane_enabled(HAK_LANE_TINY) && remote_frees(64)) return 1;
    else if (!hak_lane_enabled(HAK_LANE_TINY) && hak_lane_enabled(HAK_LANE_POOL) &&
             remote_frees(4096))
        return 1;
    for (int i = 0; i < LOOP; i++, mallocs++) hak_free(hak_malloc(64)); /* for the sampling rate */
    hak_trim(0);
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (hak_stats_get(&st) != 0) return 1;
    printf("mallocs %lu\n", mallocs);
    for (int k = 0; k < HAK_PROF_COUNT; k++)
        printf("%s %llu %llu %llu\n", hak_prof_name(k), (unsigned long long)st.prof[k].count,
               (unsigned long long)st.prof[k].avg_ns, (unsigned long long)st.prof[k].p99_ns);
    return 0;
}

static int refusals(long n) {
    hak_free(hak_malloc(16)); /* initialised before the burst */
    double t0 = now();
    hak_test_os_fail(0, ULONG_MAX);
    for (long i = 0; i < n; i++) {
        void *p = hak_malloc((size_t)8 << 20);
        if (p) return 1; /* the OS was to refuse */
    }
    hak_test_os_fail(0, 0);
    printf("burst %.3f\n", now() - t0);
    fflush(stdout);
    struct timespec ts = {1, 100000000L};
    nanosleep(&ts, NULL);
    hak_test_os_fail(0, ULONG_MAX);
    void *p = hak_malloc((size_t)8 << 20);
    hak_test_os_fail(0, 0);
    return p != NULL;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "prof") == 0) return prof();
    if (argc >= 3 && strcmp(argv[1], "refusals") == 0) return refusals(atol(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "info") == 0) {
#if HAK_TEST_INTERPOSE
        void *p = malloc(100);
        int rc = malloc_info(0, stdout);
        free(p);
        return rc == 0 ? 0 : 1;
#else
        return 77;
#endif
    }
    fprintf(stderr, "usage: %s prof | refusals N | info\n", argv[0]);
    return 2;
}
