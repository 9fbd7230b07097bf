/*
 * fork_threads.c: fork() from a process whose other threads allocate and
 * free all the time (DESIGN.md 4, 9). Any lock one of them holds at the fork
 * must be usable in the child (atfork handlers); the child must allocate,
 * free and exit cleanly within a deadline, every time.
 *
 * Uses hak_* so that it tests hakmem in every build; in -Dinterpose=true
 * builds the child's malloc/free (and libc's own, from pthread_create and
 * stdio) are hakmem's too.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "itest.h"

#define CHURN_THREADS 3
#define FORKS 200
#define CHILD_DEADLINE_S 5.0

static const size_t churn_sizes[] = {16,    24,     100,        1000,      4096,      5000,
                                     40000, 300000, (size_t)3 << 19, (size_t)4 << 20};
#define NSIZES (sizeof churn_sizes / sizeof churn_sizes[0])

static atomic_bool stop_churn;
static atomic_long churn_errors;

static unsigned rnd(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* Writes a pattern at both ends (and every 64 KiB) of a block; checks it. */
static void fill(unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i += 65536) p[i] = v;
    p[n - 1] = v;
}
static bool intact(const unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i += 65536)
        if (p[i] != v) return false;
    return p[n - 1] == v;
}

static void *churn(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
    enum { SLOTS = 24 };
    unsigned char *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    while (!atomic_load_explicit(&stop_churn, memory_order_relaxed)) {
        unsigned i = rnd(&seed) % SLOTS;
        if (slot[i]) {
            if (!intact(slot[i], size[i], (unsigned char)i))
                atomic_fetch_add_explicit(&churn_errors, 1, memory_order_relaxed);
            hak_free(slot[i]);
        }
        size_t n = churn_sizes[rnd(&seed) % NSIZES];
        n += rnd(&seed) % 64;
        slot[i] = hak_malloc(n);
        size[i] = n;
        if (!slot[i]) {
            atomic_fetch_add_explicit(&churn_errors, 1, memory_order_relaxed);
            continue;
        }
        fill(slot[i], n, (unsigned char)i);
    }
    for (unsigned i = 0; i < SLOTS; i++) hak_free(slot[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 50; i++) {
        void *p = hak_malloc(churn_sizes[(size_t)i % NSIZES]);
        if (!p) return (void *)1;
        memset(p, 7, 16);
        hak_free(p);
    }
    return NULL;
}

/* The child: allocates and frees a variety of sizes through every entry
 * point, starts a thread, and exits with 0 when all went well. */
static int child_work(unsigned seed) {
    enum { N = 64 };
    unsigned char *p[N];
    size_t n[N];
    for (int i = 0; i < N; i++) {
        n[i] = churn_sizes[rnd(&seed) % NSIZES] + rnd(&seed) % 100;
        p[i] = hak_malloc(n[i]);
        if (!p[i]) return 10;
        fill(p[i], n[i], (unsigned char)i);
    }
    for (int i = 0; i < N; i += 2) {
        if (!intact(p[i], n[i], (unsigned char)i)) return 11;
        hak_free(p[i]);
    }
    for (int i = 1; i < N; i += 2) {
        size_t m = n[i] * 2 + 1;
        unsigned char *q = hak_realloc(p[i], m);
        if (!q) return 12;
        if (q[0] != (unsigned char)i) return 13;
        hak_free(q);
    }
    unsigned char *z = hak_calloc(1000, 1000);
    if (!z) return 14;
    for (size_t i = 0; i < 1000000; i += 4096)
        if (z[i]) return 15;
    hak_free(z);
    void *a = NULL;
    if (hak_posix_memalign(&a, 65536, 10000) != 0 || ((uintptr_t)a & 65535) != 0) return 16;
    hak_free(a);
    /* the standard names (hakmem's with interposition, glibc's without) */
    char *s = malloc(100);
    if (!s) return 17;
    strcpy(s, "child");
    free(s);
    pthread_t t;
    void *res = (void *)1;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0) return 18;
    pthread_join(t, &res);
    if (res != NULL) return 19;
    return 0;
}

/* Waits for pid until the deadline; kills it then. Returns its status, -1
 * when it had to be killed, -2 when waitpid failed. (Also used in children:
 * no Criterion assertion here.) */
static int wait_with_deadline(pid_t pid, double seconds) {
    double deadline = itest_now() + seconds;
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) return status;
        if (w != 0) return -2;
        if (itest_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        itest_sleep_ms(1);
    }
}

Test(fork, children_of_a_process_whose_threads_allocate_exit_cleanly, .timeout = 120) {
    pthread_t th[CHURN_THREADS];
    for (uintptr_t i = 0; i < CHURN_THREADS; i++)
        cr_assert(pthread_create(&th[i], NULL, churn, (void *)i) == 0);
    itest_sleep_ms(20); /* let them get going */
    int failures = 0;
    char first[160] = "";
    for (int k = 0; k < FORKS; k++) {
        pid_t pid = fork();
        cr_assert(pid >= 0, "fork failed");
        if (pid == 0) _exit(child_work((unsigned)k * 31u + 5u));
        int status = wait_with_deadline(pid, CHILD_DEADLINE_S);
        bool ok = status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok) {
            if (failures++ == 0) {
                if (status == -1)
                    snprintf(first, sizeof first, "fork %d: the child hung (killed after %.0f s)",
                             k, CHILD_DEADLINE_S);
                else if (status == -2)
                    snprintf(first, sizeof first, "fork %d: waitpid failed", k);
                else if (WIFSIGNALED(status))
                    snprintf(first, sizeof first, "fork %d: the child died of signal %d", k,
                             WTERMSIG(status));
                else
                    snprintf(first, sizeof first, "fork %d: the child exited with %d", k,
                             WEXITSTATUS(status));
            }
            if (failures >= 3) break;
        }
        /* the parent allocates between forks too */
        void *p = hak_malloc((size_t)(k % 7) * 1000 + 1);
        cr_assert_not_null(p);
        hak_free(p);
    }
    atomic_store(&stop_churn, true);
    for (int i = 0; i < CHURN_THREADS; i++) pthread_join(th[i], NULL);
    cr_assert(failures == 0, "%d children failed; first: %s", failures, first);
    cr_assert(atomic_load(&churn_errors) == 0, "the parent's threads saw %ld corrupt or failed blocks",
              atomic_load(&churn_errors));
}

Test(fork, child_of_a_child_allocates_and_exits_cleanly, .timeout = 60) {
    pthread_t th;
    cr_assert(pthread_create(&th, NULL, churn, (void *)(uintptr_t)9) == 0);
    for (int k = 0; k < 20; k++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            /* the child is multi-threaded for a moment, then forks again */
            pthread_t t;
            void *res = (void *)1;
            if (pthread_create(&t, NULL, child_thread, NULL) != 0) _exit(30);
            pid_t gc = fork();
            if (gc == 0) _exit(child_work((unsigned)k));
            pthread_join(t, &res);
            if (gc < 0 || res != NULL) _exit(31);
            int st = wait_with_deadline(gc, CHILD_DEADLINE_S);
            _exit(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 32);
        }
        int status = wait_with_deadline(pid, 2 * CHILD_DEADLINE_S);
        cr_assert(status != -1, "fork %d: hung", k);
        cr_assert(status != -2, "fork %d: waitpid failed", k);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "fork %d: child or grandchild failed (status 0x%x)", k, (unsigned)status);
    }
    atomic_store(&stop_churn, true);
    pthread_join(th, NULL);
    cr_assert(atomic_load(&churn_errors) == 0);
}
