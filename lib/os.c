/*
 * os.c: owns every system call (mmap, munmap, madvise, mremap, clocks,
 * /proc reads) and the purge queue. Locks: purge_lock (a spin lock guarding
 * the purger registry is not needed: purgers register during init); the
 * purge run itself is serialised by purge_running so that two threads never
 * walk the lanes' purgers at once. Lanes' purgers take their own locks.
 */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "options.h"
#include "prof.h"
#include "segmap.h"

size_t os_page_size = 4096;

int os_init(void) {
    unsigned long ps = getauxval(AT_PAGESZ);
    if (ps == 0) {
        long s = sysconf(_SC_PAGESIZE);
        ps = s > 0 ? (unsigned long)s : 4096;
    }
    if (!hak_is_pow2(ps) || ps > HAK_CHUNK / 8) return EINVAL;
    os_page_size = ps;
    os_policy_init(); /* THP, prefault, NUMA: os_policy.c */
    return 0;
}

int os_reserve_noreserve(size_t size, void **out) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return errno ? errno : ENOMEM;
    *out = p;
    return 0;
}

/* ---- when the OS refuses memory ---------------------------------------
 * DESIGN.md 4: before an allocation gives up, hakmem releases what it
 * caches (empty segments, BigCache, purged chunks: unmapped, so that their
 * address space is free for any lane under RLIMIT_AS) and tries again.
 * Every mapping of fresh memory goes through map_anon, which does that once
 * per refusal, whichever lane asked. The hook takes the lanes' locks: no
 * caller of os_map_chunks holds one (see os.h). */

static os_release_fn release_hook;

void os_set_release_hook(os_release_fn fn) { release_hook = fn; }

/* Test hook: map calls numbered in [fail_from, fail_to) fail (see
 * hak_test_os_fail in os.h); map_calls counts every call that asks the OS
 * for address space. */
static _Atomic unsigned long map_calls, fail_from, fail_to;

static bool injected_failure(void) {
    unsigned long n = atomic_fetch_add_relaxed(&map_calls, 1) + 1;
    return HAK_UNLIKELY(n >= atomic_load_relaxed(&fail_from) && n < atomic_load_relaxed(&fail_to));
}

HAK_EXPORT unsigned long hak_test_os_fail(unsigned long after, unsigned long count) {
    unsigned long now = atomic_load_relaxed(&map_calls);
    atomic_store_relaxed(&fail_to, 0); /* off while the window moves */
    if (count == 0) return now;
    unsigned long from = now + after + 1;
    atomic_store_relaxed(&fail_from, from);
    atomic_store_relaxed(&fail_to, count > ULONG_MAX - from ? ULONG_MAX : from + count);
    return now;
}

static void *mmap_anon_once(size_t size) {
    if (injected_failure()) return MAP_FAILED;
    return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

/* size bytes of fresh anonymous memory, anywhere; MAP_FAILED when the OS
 * refuses even after the caches were released. */
static void *map_anon(size_t size) {
    void *m = mmap_anon_once(size);
    if (HAK_UNLIKELY(m == MAP_FAILED)) {
        size_t released = release_hook ? release_hook() : 0;
        hak_verbose("the OS refused %zu bytes%s", size,
                    released ? ": caches released, trying again" : "");
        if (released) m = mmap_anon_once(size);
    }
    return m;
}

int os_map_chunks(size_t size, size_t align, size_t offset, void **out) {
    if (align < HAK_CHUNK) {
        align = HAK_CHUNK;
        offset = 0;
    }
    hak_assert(size % HAK_CHUNK == 0 && hak_is_pow2(align) && offset < align);
    size_t total;
    if (HAK_ADD_OVERFLOW(size, align, &total)) return ENOMEM;
    uint64_t t0 = prof_start();
    void *m = map_anon(total);
    if (m == MAP_FAILED) return ENOMEM;
    uintptr_t lo = (uintptr_t)m, hi = lo + total;
    uintptr_t r = hak_align_up(lo + offset, align) - offset;
    if (r < lo) r += align;
    if (r > lo) munmap(m, r - lo);
    if (hi > r + size) munmap((void *)(r + size), hi - (r + size));
    if (((r + size - 1) >> HAK_CHUNK_SHIFT) >= SEGMAP_ENTRIES) {
        munmap((void *)r, size); /* outside the address space we map */
        return ENOMEM;
    }
    *out = (void *)r;
    prof_stop(HAK_PROF_OS_MAP, t0);
    return 0;
}

int os_unmap(void *p, size_t size) {
    uint64_t t0 = prof_start();
    int err = munmap(p, size) == 0 ? 0 : errno;
    prof_stop(HAK_PROF_OS_UNMAP, t0);
    return err;
}

int os_purge(void *p, size_t size) {
    uint64_t t0 = prof_start();
    int advice = hak_opt(HAK_OPT_PURGE) == HAK_PURGE_FREE ? MADV_FREE : MADV_DONTNEED;
    int err = 0;
    if (madvise(p, size, advice) != 0 &&
        (advice != MADV_FREE || madvise(p, size, MADV_DONTNEED) != 0)) /* old kernel */
        err = errno;
    prof_stop(HAK_PROF_PURGE, t0);
    return err;
}

int os_protect(void *p, size_t size, bool access) {
    return mprotect(p, size, access ? PROT_READ | PROT_WRITE : PROT_NONE) == 0 ? 0 : errno;
}

int os_move(void *old, size_t old_size, void *dst, size_t new_size) {
    if (injected_failure()) return ENOMEM;
    void *r = mremap(old, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    return r == MAP_FAILED ? errno : 0;
}

int os_grow_in_place(void *p, size_t size, size_t new_size) {
    if (injected_failure()) return ENOMEM;
    void *r = mremap(p, size, new_size, 0);
    return r == MAP_FAILED ? errno : 0;
}

uint64_t os_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t os_cpu_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t os_now_coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void os_write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

int os_open_append(const char *path) {
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

void os_rss(uint64_t *current, uint64_t *peak) {
    struct rusage ru;
    *peak = getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024 : 0;
    *current = 0;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    /* second field: resident pages */
    const char *s = buf;
    while (*s && *s != ' ') s++;
    uint64_t pages = 0;
    for (s++; *s >= '0' && *s <= '9'; s++) pages = pages * 10 + (uint64_t)(*s - '0');
    *current = pages * os_page_size;
}

int os_is_secure(void) { return getauxval(AT_SECURE) != 0; }

uintptr_t os_random_word(void) {
    static _Atomic uint64_t counter;
    uint64_t seed = 0;
    const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM); /* 16 bytes */
    if (r)
        for (int i = 0; i < 8; i++) seed = seed << 8 | r[i];
    seed ^= os_now_ns() ^ ((uint64_t)getpid() << 32);
    /* splitmix64 of the seed and a call counter */
    uint64_t x = seed + 0x9e3779b97f4a7c15u * (atomic_fetch_add_relaxed(&counter, 1) + 1);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return (uintptr_t)(x ^ (x >> 31));
}

/* ---- purge queue ------------------------------------------------------ */

#define OS_MAX_PURGERS 8
static os_purger_fn purgers[OS_MAX_PURGERS];
static int npurgers;
/* Earliest time any lane has a purge due; UINT64_MAX when none is pending. */
_Atomic uint64_t os_purge_next_due = UINT64_MAX;
static _Atomic int purge_running;
static _Atomic uint64_t purge_lanes_pending;

void os_purge_register(os_purger_fn fn) {
    hak_assert(npurgers < OS_MAX_PURGERS);
    if (npurgers < OS_MAX_PURGERS) purgers[npurgers++] = fn;
}

void os_purge_schedule(uint64_t due_ns) {
    uint64_t cur = atomic_load_relaxed(&os_purge_next_due);
    /* seq_cst, paired with the purger's last look before it ends */
    while (due_ns < cur &&
           !atomic_compare_exchange_weak_explicit(&os_purge_next_due, &cur, due_ns,
                                                  memory_order_seq_cst, memory_order_relaxed)) {
    }
}

uint64_t os_purge_delay_ns(void) {
    return (uint64_t)hak_opt(HAK_OPT_PURGE_DELAY_MS) * 1000000u;
}

static size_t purge_run(bool all) {
    int expected = 0;
    while (!atomic_compare_exchange_strong_explicit(&purge_running, &expected, 1,
                                                    memory_order_acquire, memory_order_relaxed)) {
        if (!all) return 0; /* another thread is purging */
        expected = 0;       /* trim waits its turn, so that nothing stays pending */
        sched_yield();
    }
    /* Reset before running, so a purge scheduled meanwhile is not lost. */
    atomic_store_relaxed(&os_purge_next_due, UINT64_MAX);
    uint64_t now = os_now_ns();
    size_t freed = 0;
    uint64_t pending = 0;
    for (int i = 0; i < npurgers; i++) {
        uint64_t next = UINT64_MAX;
        freed += purgers[i](all, now, &next);
        if (next != UINT64_MAX) {
            pending++;
            os_purge_schedule(next);
        }
    }
    atomic_store_relaxed(&purge_lanes_pending, pending);
    atomic_store_release(&purge_running, 0);
    if (freed) hak_verbose("purged %zu bytes%s", freed, all ? " (trim)" : "");
    return freed;
}

/* ---- the purger thread ------------------------------------------------
 * Started when a purge is pending and no purger runs (HAKMEM_PURGE_THREAD=1,
 * the default), so that due purges happen even when the program, after a
 * burst, only takes fast paths. It sleeps until the next due time, purges,
 * and ends after PURGER_IDLE_NS with nothing pending; a fork child has none
 * and starts one again when it needs it. */

#define PURGER_IDLE_NS ((uint64_t)2000000000u)
#define PURGER_LOOK_MIN_NS ((uint64_t)10000000u)
#define PURGER_STACK ((size_t)64 * 1024)
/* 0: none; 1: starting or running. */
_Atomic int os_purger_state;

static void *purger_main(void *arg) {
    (void)arg;
    uint64_t idle_since = os_now_ns();
    for (;;) {
        uint64_t now = os_now_ns();
        uint64_t due = atomic_load_relaxed(&os_purge_next_due);
        if (due == UINT64_MAX) {
            if (now - idle_since >= PURGER_IDLE_NS) {
                /* One more walk first: a lane may keep memory whose owner
                 * scheduled nothing because it raced with the reset of the
                 * last run (huge.c's slots); by now its stores are seen. */
                purge_run(false);
                if (atomic_load_relaxed(&os_purge_next_due) != UINT64_MAX) {
                    idle_since = now;
                    continue;
                }
                atomic_store_explicit(&os_purger_state, 0, memory_order_seq_cst);
                /* A purge scheduled just before the store above saw this
                 * purger still running and started none: look again. */
                if (atomic_load_explicit(&os_purge_next_due, memory_order_seq_cst) == UINT64_MAX)
                    return NULL;
                int expected = 0;
                if (!atomic_compare_exchange_strong(&os_purger_state, &expected, 1)) return NULL;
                idle_since = now;
                continue;
            }
            /* Nothing pending: look again after a purge delay (10 ms to
             * 500 ms). A purge scheduled meanwhile does not wake this
             * sleep, so the first pass after a burst comes up to one look
             * late; a look every 500 ms made it up to half a second late,
             * and a chunk that takes two passes to unmap (pagerun.c) later
             * still. */
            uint64_t look = os_purge_delay_ns();
            if (look < PURGER_LOOK_MIN_NS) look = PURGER_LOOK_MIN_NS;
            if (look > PURGER_IDLE_NS / 4) look = PURGER_IDLE_NS / 4;
            due = now + look;
        } else {
            idle_since = now;
        }
        if (due > now) {
            uint64_t wait = due - now;
            struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
            nanosleep(&ts, NULL);
            continue;
        }
        purge_run(false);
    }
}

/* Starts the purger if purges are pending and none runs. Call only where
 * the calling thread holds no hakmem lock (pthread_create allocates). */
static HAK_NOINLINE HAK_COLD void purger_start(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&os_purger_state, &expected, 1,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, PURGER_STACK);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the purger takes no signal */
    pthread_t t;
    int err = pthread_create(&t, &attr, purger_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err) atomic_store_release(&os_purger_state, 0); /* ticks still purge */
    else hak_verbose("purger thread started");
}

/* Starts the purger thread if none runs and HAKMEM_PURGE_THREAD allows it
 * (its default in -Dbench_minimal). */
static void purger_ensure(void) {
    /* seq_cst, paired with the purger's last look before it ends */
    if (hak_opt(HAK_OPT_PURGE_THREAD) &&
        atomic_load_explicit(&os_purger_state, memory_order_seq_cst) == 0)
        purger_start();
}

void os_purge_schedule_and_start_slow(uint64_t due_ns) {
    os_purge_schedule(due_ns);
    purger_ensure();
}

void os_purge_tick(void) {
    uint64_t due = atomic_load_relaxed(&os_purge_next_due);
    if (HAK_LIKELY(due == UINT64_MAX)) return;
    purger_ensure();
    /* the coarse clock: a purge a tick late is still due, and this runs on
     * every slow path of the lanes while anything is pending */
    if (os_now_coarse_ns() >= due) purge_run(false);
}

size_t os_purge_all(void) { return purge_run(true); }

uint64_t os_purge_pending(void) {
    if (atomic_load_relaxed(&os_purge_next_due) == UINT64_MAX) return 0;
    uint64_t lanes = atomic_load_relaxed(&purge_lanes_pending);
    return lanes ? lanes : 1;
}

void os_fork_child(void) {
    atomic_store_relaxed(&purge_running, 0);
    atomic_store_relaxed(&os_purger_state, 0); /* the parent's purger is not here */
    /* a purge run the fork interrupted had taken the schedule: rescan */
    atomic_store_relaxed(&os_purge_next_due, 0);
}
