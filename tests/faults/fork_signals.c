/*
 * fork_signals.c: fork() and signals while other threads allocate
 * (DESIGN.md 4, 9).
 *
 * fork: THREADS threads allocate, fill, publish, take back, realloc and free
 * blocks of every lane (aligned ones too) through a shared table, with a
 * purge delay of 1 ms (set by meson) so the purger thread is busy too.
 * Meanwhile the main thread forks 100 times (HAK_FAULT_FORKS). Each child,
 * alone with the parent's heap as it was at the fork, takes every block
 * from the table, checks it, reallocs some and frees all of them (frees
 * onto heaps whose threads do not exist in the child), allocates in every
 * lane, starts a thread, trims, and exits 0 within a deadline.
 *
 * signals: THREADS threads allocate and free across every lane (and call
 * malloc_trim now and then) while a signaller thread sends SIGUSR1 to them
 * one by one and SIGUSR2 to the process, as fast as it can, for 1.5 s
 * (HAK_FAULT_SIGNAL_MS). The handlers do not allocate (they count, and clobber errno and restore
 * it); they are installed without SA_RESTART. No allocation may fail, no
 * block may be damaged, and nothing may hang.
 *
 * Each test runs in a child process with a deadline (fault_run).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fault_util.h"

#define THREADS 3
#define SLOTS 256
/* Bounded by default; HAK_FAULT_FORKS and HAK_FAULT_SIGNAL_MS run longer. */
static unsigned env_or(const char *name, unsigned dflt) {
    const char *e = getenv(name);
    return e && atoi(e) > 0 ? (unsigned)atoi(e) : dflt;
}

struct blk {
    size_t size;
    uintptr_t check;
};

static _Atomic(struct blk *) table[SLOTS];
static atomic_bool stop;
static atomic_long errors;

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *s) {
    switch (rnd(s) % 8) {
    case 0: case 1: case 2: return 24 + rnd(s) % 1000;          /* tiny (past the header) */
    case 3: case 4: return 1025 + rnd(s) % 31000;               /* pool */
    case 5: case 6: return 32769 + rnd(s) % 1000000;            /* ace */
    default: return (1u << 20) + rnd(s) % (3u << 20);           /* huge */
    }
}

static uintptr_t check_of(const struct blk *b) {
    return (uintptr_t)b * 0x9E3779B97F4A7C15u ^ b->size;
}

/* A pattern at the start, the end and every 64 KiB, from address and size. */
static void seal(struct blk *b, size_t size) {
    b->size = size;
    b->check = check_of(b);
    unsigned char *d = (unsigned char *)b;
    for (size_t i = 4096; i < size - 1; i += 65536) d[i] = (unsigned char)(b->check >> (i % 7));
    d[size - 1] = (unsigned char)b->check;
}

static bool sealed(const struct blk *b) {
    if (b->check != check_of(b)) return false;
    const unsigned char *d = (const unsigned char *)b;
    for (size_t i = 4096; i < b->size - 1; i += 65536)
        if (d[i] != (unsigned char)(b->check >> (i % 7))) return false;
    return d[b->size - 1] == (unsigned char)b->check;
}

static struct blk *make(uint64_t *s) {
    size_t size = pick_size(s);
    struct blk *b;
    if (rnd(s) % 6 == 0) {
        void *p = NULL;
        size_t align = (size_t)1 << (4 + rnd(s) % 14); /* 16 B .. 128 KiB */
        if (hak_posix_memalign(&p, align, size) != 0) p = NULL;
        b = p;
    } else {
        b = hak_malloc(size);
    }
    if (b) seal(b, size);
    return b;
}

static atomic_int reported;

/* Checks b, sometimes moves it with realloc, frees it. */
static bool retire(struct blk *b, uint64_t *s) {
    if (!sealed(b)) {
        if (atomic_fetch_add(&reported, 1) < 3)
            fault_msg("block %p (lane %d, %zu bytes recorded, check %s) damaged", (void *)b,
                      hak_lane_of(b), b->size, b->check == check_of(b) ? "ok" : "bad");
        return false;
    }
    if (rnd(s) % 4 == 0) {
        size_t n = pick_size(s);
        struct blk *r = hak_realloc(b, n);
        if (!r) {
            fault_msg("realloc(%zu) failed", n);
            return false;
        }
        seal(r, n);
        b = r;
    }
    hak_free(b);
    return true;
}

static void *churn(void *arg) {
    uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15u + 7;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        struct blk *b = make(&s);
        if (!b) {
            fault_msg("allocation failed");
            atomic_fetch_add(&errors, 1);
            continue;
        }
        struct blk *old = atomic_exchange(&table[rnd(&s) % SLOTS], b);
        if (old && !retire(old, &s)) atomic_fetch_add(&errors, 1);
    }
    return NULL;
}

static void *child_thread(void *arg) {
    uint64_t s = (uintptr_t)arg + 99;
    for (int i = 0; i < 40; i++) {
        struct blk *b = make(&s);
        if (!b || !retire(b, &s)) return (void *)1;
    }
    return NULL;
}

/* In the forked child: everything the parent's threads left in the table. */
static int child_main(unsigned k) {
    uint64_t s = k * 2654435761u + 3;
    for (unsigned i = 0; i < SLOTS; i++) {
        struct blk *b = atomic_exchange(&table[i], NULL);
        if (b && !retire(b, &s)) return 10;
    }
    for (int i = 0; i < 50; i++) {
        struct blk *b = make(&s);
        if (!b) return 11;
        if (!retire(b, &s)) return 12;
    }
    pthread_t t;
    void *res = (void *)1;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0) return 13;
    pthread_join(t, &res);
    if (res) return 14;
    hak_trim(0);
    return 0;
}

static int wait_deadline(pid_t pid, double secs) {
    struct timespec ts = {0, 1000000};
    for (double waited = 0; waited < secs; waited += 0.001) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) return st;
        if (w < 0) return -2;
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static int fork_many(void *arg) {
    (void)arg;
    pthread_t th[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&th[i], NULL, churn, (void *)(i + 1)) != 0) return 2;
    struct timespec warm = {0, 20000000};
    nanosleep(&warm, NULL);
    int failed = 0;
    unsigned forks = env_or("HAK_FAULT_FORKS", 100);
    for (unsigned k = 0; k < forks && failed < 3; k++) {
        pid_t pid = fork();
        if (pid < 0) return 3;
        if (pid == 0) _exit(child_main(k));
        int st = wait_deadline(pid, 10.0);
        if (st == -1) {
            fault_msg("fork %u: the child hung", k);
            failed++;
        } else if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fault_msg("fork %u: the child failed (%s %d)", k,
                      st >= 0 && WIFSIGNALED(st) ? "signal" : "exit",
                      st >= 0 && WIFSIGNALED(st) ? WTERMSIG(st) : (st >= 0 ? WEXITSTATUS(st) : st));
            failed++;
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    uint64_t s = 5;
    for (unsigned i = 0; i < SLOTS; i++) {
        struct blk *b = atomic_exchange(&table[i], NULL);
        if (b && !retire(b, &s)) atomic_fetch_add(&errors, 1);
    }
    if (atomic_load(&errors)) {
        fault_msg("the parent's threads saw %ld failed or damaged blocks", atomic_load(&errors));
        return 4;
    }
    return failed ? 5 : 0;
}

Test(fork, children_free_the_blocks_of_threads_caught_mid_allocation, .timeout = 240) {
    char why[4096];
    cr_assert(fault_run(fork_many, NULL, 200, why, sizeof why), "%s", why);
}

/* ---- signals ----------------------------------------------------------- */

static atomic_long handled;
static pthread_t workers[THREADS];

static void on_signal(int sig) {
    int saved = errno;
    errno = sig == SIGUSR1 ? EINTR : EAGAIN; /* a handler may clobber errno... */
    atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
    errno = saved; /* ...a correct one restores it */
}

static void *allocating_worker(void *arg) {
    uint64_t s = (uintptr_t)arg * 0x2545F4914F6CDD1Du + 11;
    struct blk *mine[64] = {0};
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned i = (unsigned)(rnd(&s) % 64);
        if (mine[i] && !retire(mine[i], &s)) atomic_fetch_add(&errors, 1);
        mine[i] = make(&s);
        if (!mine[i]) atomic_fetch_add(&errors, 1);
        /* some blocks go through the shared table: freed by another thread */
        if (mine[i] && rnd(&s) % 4 == 0) {
            struct blk *old = atomic_exchange(&table[rnd(&s) % SLOTS], mine[i]);
            mine[i] = NULL;
            if (old && !retire(old, &s)) atomic_fetch_add(&errors, 1);
        }
        if (++n % 5000 == 0) hak_trim(0);
    }
    for (unsigned i = 0; i < 64; i++)
        if (mine[i] && !retire(mine[i], &s)) atomic_fetch_add(&errors, 1);
    return NULL;
}

static int signals_during_allocation(void *arg) {
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupted system calls return EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&workers[i], NULL, allocating_worker, (void *)(i + 1)) != 0) return 2;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long sent = 0, sig_ms = (long)env_or("HAK_FAULT_SIGNAL_MS", 1500);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        /* past the time asked for, the run goes on (up to 20 s more) until
         * enough signals were handled: a loaded machine merges pending ones */
        if (ms >= sig_ms && (atomic_load(&handled) >= 1000 || ms >= sig_ms + 20000)) break;
        pthread_kill(workers[sent % THREADS], SIGUSR1);
        if (sent % 8 == 0) kill(getpid(), SIGUSR2); /* any thread may take it */
        sent++;
        if (sent % 64 == 0) sched_yield();
    }
    atomic_store(&stop, true);
    for (int i = 0; i < THREADS; i++) pthread_join(workers[i], NULL);
    uint64_t s = 1;
    for (unsigned i = 0; i < SLOTS; i++) {
        struct blk *b = atomic_exchange(&table[i], NULL);
        if (b && !retire(b, &s)) atomic_fetch_add(&errors, 1);
    }
    if (atomic_load(&errors)) {
        fault_msg("%ld allocations failed or blocks were damaged under signals",
                  atomic_load(&errors));
        return 3;
    }
    if (atomic_load(&handled) < 1000) {
        fault_msg("only %ld signals handled (%ld sent): the test did not test much",
                  atomic_load(&handled), sent);
        return 4;
    }
    return 0;
}

Test(signals, handlers_interrupting_allocating_threads_break_nothing, .timeout = 120) {
    char why[4096];
    cr_assert(fault_run(signals_during_allocation, NULL, 60, why, sizeof why), "%s", why);
}
