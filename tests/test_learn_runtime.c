/*
 * test_learn_runtime.c: the learner and the call-site table through the
 * public API (the shared library). meson runs this program twice: with
 * HAKMEM_LEARN=1 (and HAKMEM_SITE_PROFILE=1, HAKMEM_SITE_SAMPLE=0) and with
 * HAKMEM_LEARN=0; each test reads the environment to know which it is.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hak_config.h"
#include "hakmem.h"

/* A HAKMEM_* variable set to 1 (-Dbench_minimal builds read none). */
static bool env_on(const char *name) {
    const char *v = getenv(name);
    return !HAK_BENCH_MINIMAL && v && strcmp(v, "1") == 0;
}

static struct hak_learn_info info(void) {
    struct hak_learn_info li;
    memset(&li, 0, sizeof li);
    li.size = sizeof li;
    cr_assert_eq(hak_learn_get(&li), 0);
    return li;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ACE-size traffic (and some pool) so that slow paths run and windows see
 * allocations. */
static void traffic(unsigned rounds) {
    void *p[24];
    for (unsigned r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < 24; i++) {
            p[i] = hak_malloc(i < 20 ? (64 + 16 * (i % 8)) << 10 : 4000);
            cr_assert_not_null(p[i]);
            *(volatile char *)p[i] = 1;
        }
        for (unsigned i = 0; i < 24; i++) hak_free(p[i]);
    }
}

static unsigned threads_in_process(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Waits (generating traffic) until the learner has closed `windows` more
 * windows; false after 5 s. */
static bool wait_windows(uint64_t windows) {
    uint64_t start = info().windows;
    double t0 = now_s();
    while (now_s() - t0 < 5) {
        traffic(20);
        if (info().windows >= start + windows) return true;
    }
    return false;
}

Test(learn_runtime, learner_thread_runs_and_closes_windows_when_enabled) {
    if (!env_on("HAKMEM_LEARN")) cr_skip_test("HAKMEM_LEARN is not 1");
    struct hak_learn_info li = info();
    cr_assert_eq(li.enabled, HAK_HAVE_LEARN);
    if (!li.built) {
        traffic(100);
        cr_assert_eq(info().running, 0);
        cr_skip_test("the learner is not built (-Dlearn=false or -Dace=false)");
    }
    cr_assert(wait_windows(3), "no windows closed");
    /* the first busy window puts a candidate on trial; refills get timed */
    double t0 = now_s();
    while ((info().publishes == 0 || info().refill_p99_ns == 0) && now_s() - t0 < 5) traffic(20);
    li = info();
    cr_assert_eq(li.running, 1);
    cr_assert_eq(li.threads_started, 1);
    cr_assert_neq(li.state, HAK_LEARN_OFF);
    cr_assert_gt(li.publishes, 0, "nothing tried in %llu windows", (unsigned long long)li.windows);
    cr_assert_gt(li.refill_p99_ns, 0, "no refill latency sampled");
}

/* A thread that only hits its ACE cache, held alive while the main thread
 * reads the counters (thread exit would flush them). */
struct hits_only {
    pthread_barrier_t done, read;
};

static void *hit_the_cache(void *arg) {
    struct hits_only *h = arg;
    void *p = hak_malloc(64 << 10); /* a slow path; then the block is cached */
    cr_assert_not_null(p);
    hak_free(p);
    for (unsigned i = 0; i < 1000; i++) {
        p = hak_malloc(64 << 10);
        *(volatile char *)p = 1;
        hak_free(p);
    }
    pthread_barrier_wait(&h->done);
    pthread_barrier_wait(&h->read);
    return NULL;
}

/* The ACE lane's allocations over every class: W_MAX rounding may serve
 * the 64 KiB requests from a warm larger class (what the shared cache
 * holds, and the learner's W_MAX, decide), and they are counted there. */
static uint64_t ace_allocs(void) {
    uint64_t n = 0;
    struct hak_class_stats cs;
    for (unsigned k = 0; hak_class_stats_get(HAK_LANE_ACE, k, &cs) == 0; k++) n += cs.allocs;
    return n;
}

Test(learn_runtime, allocations_that_all_hit_the_cache_reach_the_learners_counters) {
    if (!env_on("HAKMEM_LEARN")) cr_skip_test("HAKMEM_LEARN is not 1");
    if (!info().built) cr_skip_test("the learner is not built");
    cr_assert(wait_windows(1), "no windows closed");
    uint64_t before = ace_allocs();
    struct hits_only h;
    pthread_barrier_init(&h.done, NULL, 2);
    pthread_barrier_init(&h.read, NULL, 2);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, hit_the_cache, &h), 0);
    pthread_barrier_wait(&h.done);
    uint64_t after = ace_allocs();
    pthread_barrier_wait(&h.read);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&h.done);
    pthread_barrier_destroy(&h.read);
    /* 1001 allocations, at most 63 of them still in the thread's batch */
    cr_assert_geq(after - before, 1001 - 63, "%llu counted", (unsigned long long)(after - before));
}

Test(learn_runtime, no_thread_and_no_window_when_disabled) {
    if (env_on("HAKMEM_LEARN")) cr_skip_test("HAKMEM_LEARN is 1");
    /* (in -Dbench_minimal builds this holds whatever the environment says) */
    unsigned before = threads_in_process();
    traffic(2000);
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    struct hak_learn_info li = info();
    cr_assert_eq(li.enabled, 0);
    cr_assert_eq(li.running, 0);
    cr_assert_eq(li.threads_started, 0);
    cr_assert_eq(li.windows, 0);
    cr_assert_eq(li.state, HAK_LEARN_OFF);
    /* no thread of hakmem's (the purger may run: only while purges are
     * pending, so trim them and let it end) */
    hak_trim(0);
    unsigned after = threads_in_process();
    cr_assert_leq(after, before + 1, "%u threads before, %u after", before, after);
}

Test(learn_runtime, learner_thread_restarts_in_a_fork_child) {
    if (!env_on("HAKMEM_LEARN")) cr_skip_test("HAKMEM_LEARN is not 1");
    if (!info().built) cr_skip_test("the learner is not built");
    cr_assert(wait_windows(2), "no windows in the parent");
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            /* the child has no learner thread until a slow path starts one */
            struct hak_learn_info li = info();
            if (li.threads_started != 0) _exit(2);
            uint64_t w0 = li.windows;
            double t0 = now_s();
            while (now_s() - t0 < 5) {
                traffic(20);
                li = info();
                if (li.running && li.threads_started == 1 && li.windows >= w0 + 2) _exit(0);
            }
            _exit(1);
        }
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    }
    /* and the parent's learner goes on */
    cr_assert(wait_windows(2));
    cr_assert_eq(info().threads_started, 1);
}

/* ---- call sites ---------------------------------------------------------- */

#define SITE_THREADS 4
#define SITE_A_CALLS 20000
#define SITE_B_CALLS 7000

static __attribute__((noinline)) void *site_a(size_t n) {
    void *p = hak_alloc_cs(n);
    __asm__ volatile("" ::: "memory"); /* keep the call a call, not a tail jump */
    return p;
}
static __attribute__((noinline)) void *site_b(size_t n) {
    void *p = hak_alloc_cs(n);
    __asm__ volatile("" ::: "memory");
    return p;
}
static __attribute__((noinline)) void site_free(void *p) {
    hak_free_cs(p);
    __asm__ volatile("" ::: "memory");
}

static void *site_worker(void *arg) {
    (void)arg;
    for (int i = 0; i < SITE_A_CALLS; i++) site_free(site_a(48));
    for (int i = 0; i < SITE_B_CALLS; i++) site_free(site_b(100000));
    return NULL;
}

static const struct hak_site *find_in(const struct hak_site *s, unsigned n, uint64_t allocs) {
    for (unsigned i = 0; i < n; i++)
        if (s[i].allocs == allocs) return &s[i];
    return NULL;
}

Test(sites, concurrent_records_from_two_sites_are_counted_exactly) {
    hak_sites_reset();
    pthread_t t[SITE_THREADS];
    for (int i = 0; i < SITE_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, site_worker, NULL), 0);
    for (int i = 0; i < SITE_THREADS; i++) pthread_join(t[i], NULL);
    struct hak_site s[64];
    unsigned n = hak_sites_get(s, 64);
    cr_assert_geq(n, 3); /* two allocation sites, one free site (and sampled mallocs) */
    const struct hak_site *a = find_in(s, n, (uint64_t)SITE_THREADS * SITE_A_CALLS);
    const struct hak_site *b = find_in(s, n, (uint64_t)SITE_THREADS * SITE_B_CALLS);
    cr_assert_not_null(a, "site A's count is not exact");
    cr_assert_not_null(b, "site B's count is not exact");
    cr_assert_neq(a->addr, b->addr);
    cr_assert(a->addr > (uintptr_t)site_a && a->addr < (uintptr_t)site_a + 256);
    cr_assert(b->addr > (uintptr_t)site_b && b->addr < (uintptr_t)site_b + 256);
    cr_assert_eq(a->bytes, (uint64_t)SITE_THREADS * SITE_A_CALLS * 48);
    cr_assert_eq(b->bytes, (uint64_t)SITE_THREADS * SITE_B_CALLS * 100000);
    cr_assert_eq(a->hist[1], a->allocs); /* 17..64 B */
    cr_assert_eq(b->hist[7], b->allocs); /* 64K..256K */
    cr_assert_eq(b->lane, hak_lane_of(NULL) == 0 && hak_lane_enabled(HAK_LANE_ACE)
                              ? HAK_LANE_ACE
                              : HAK_LANE_HUGE);
    /* the frees, all from one site */
    uint64_t frees = 0;
    for (unsigned i = 0; i < n; i++) frees += s[i].frees;
    cr_assert_eq(frees, (uint64_t)SITE_THREADS * (SITE_A_CALLS + SITE_B_CALLS));
    /* sorted, most frequent first */
    for (unsigned i = 1; i < n; i++) cr_assert_geq(s[i - 1].allocs, s[i].allocs);
}

static __attribute__((noinline)) void *malloc_site(size_t n) {
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

Test(sites, malloc_samples_its_caller_only_with_site_profile) {
    if (!HAK_INTERPOSE) cr_skip_test("malloc is not hakmem's (-Dinterpose=false)");
    hak_sites_reset();
    for (int i = 0; i < 1000; i++) free(malloc_site(200 + (size_t)i));
    struct hak_site s[64];
    unsigned n = hak_sites_get(s, 64);
    const struct hak_site *found = NULL;
    for (unsigned i = 0; i < n; i++)
        if (s[i].addr > (uintptr_t)malloc_site && s[i].addr < (uintptr_t)malloc_site + 256)
            found = &s[i];
    if (env_on("HAKMEM_SITE_PROFILE")) {
        /* HAKMEM_SITE_SAMPLE=0: every call */
        cr_assert_not_null(found, "malloc's caller was not recorded");
        cr_assert_eq(found->allocs, 1000);
        cr_assert_eq(found->lane, HAK_LANE_TINY * hak_lane_enabled(HAK_LANE_TINY) +
                                      HAK_LANE_HUGE * !hak_lane_enabled(HAK_LANE_TINY));
    } else {
        cr_assert_null(found, "malloc recorded its caller without HAKMEM_SITE_PROFILE");
    }
}
