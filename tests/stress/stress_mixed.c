/*
 * stress_mixed.c: threads allocating random sizes across every lane (1 B ..
 * 3 MiB), some aligned, some grown or shrunk by realloc across lane
 * boundaries, handing blocks to each other through a shared table of slots
 * (so about half the frees come from another thread). Every block carries a
 * pattern derived from its address and size, checked before it is freed or
 * reallocated. At the end every block is freed: live bytes return to their
 * starting value and, after malloc_trim, RSS comes back down.
 *
 * Bounded in time: HAK_STRESS_SECS (default 3) seconds, 4 threads.
 * Exit status 0 on success; prints "1 passed, 0 failed" or the failure.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"

#define THREADS 4
#define SLOTS 4096

struct blk {
    size_t size;  /* bytes of pattern after the header */
    uintptr_t at; /* the address the pattern was written for */
};

static _Atomic(uintptr_t) slots[SLOTS];
static atomic_int stop;
static atomic_long failures, ops;

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *s) {
    uint64_t r = next(s) % 1000;
    if (r < 650) return 1 + next(s) % 1024;                       /* tiny */
    if (r < 880) return 1025 + next(s) % (31 * 1024);              /* pool */
    if (r < 985) return 32769 + next(s) % (1024 * 1024 - 32768);   /* ace */
    return 1024 * 1024 + 1 + next(s) % (2 * 1024 * 1024);          /* huge */
}

/* The pattern: the first 64 bytes, the last 8, and a byte every 4 KiB. */
static unsigned char pat(uintptr_t at, size_t size, size_t i) {
    return (unsigned char)((at >> 4) ^ (size * 31) ^ (i * 131));
}

static void apply(struct blk *b, bool write) {
    unsigned char *d = (unsigned char *)(b + 1);
    size_t n = b->size;
    for (size_t i = 0; i < n; i = i < 64 ? i + 1 : (i + 4096 < n ? i + 4096 : (i + 8 < n ? n - 8 : n))) {
        if (write)
            d[i] = pat(b->at, n, i);
        else if (d[i] != pat(b->at, n, i)) {
            if (atomic_fetch_add(&failures, 1) == 0)
                fprintf(stderr, "block %p (size %zu) corrupted at byte %zu\n", (void *)b, n, i);
            return;
        }
    }
}

static struct blk *make(uint64_t *s) {
    size_t size = pick_size(s);
    struct blk *b;
    if (next(s) % 8 == 0) {
        size_t align = (size_t)1 << (3 + next(s) % 14); /* 8 B .. 64 KiB */
        void *p = NULL;
        if (hak_posix_memalign(&p, align, sizeof *b + size) != 0) p = NULL;
        if (p && ((uintptr_t)p & (align - 1))) {
            atomic_fetch_add(&failures, 1);
            fprintf(stderr, "posix_memalign(%zu) gave %p\n", align, p);
        }
        b = p;
    } else {
        b = hak_malloc(sizeof *b + size);
    }
    if (!b) {
        atomic_fetch_add(&failures, 1);
        fprintf(stderr, "allocation of %zu bytes failed (errno %d)\n", size, errno);
        return NULL;
    }
    b->size = size;
    b->at = (uintptr_t)b;
    apply(b, true);
    return b;
}

static void *worker(void *arg) {
    uint64_t s = (uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        struct blk *b = make(&s);
        if (!b) continue;
        uintptr_t old = atomic_exchange(&slots[next(&s) % SLOTS], (uintptr_t)b);
        if (old) {
            struct blk *o = (struct blk *)old;
            apply(o, false);
            if (next(&s) % 4 == 0) { /* grow or shrink across lanes, then free */
                size_t keep = o->size, size = pick_size(&s);
                struct blk *r = hak_realloc(o, sizeof *r + size);
                if (!r) {
                    atomic_fetch_add(&failures, 1);
                    hak_free(o);
                    continue;
                }
                /* the kept prefix still holds the pattern written for o */
                struct blk check = {keep < size ? keep : size, r->at};
                unsigned char *d = (unsigned char *)(r + 1);
                for (size_t i = 0; i < check.size && i < 64; i++)
                    if (d[i] != pat(check.at, keep, i)) {
                        if (atomic_fetch_add(&failures, 1) == 0)
                            fprintf(stderr, "realloc lost byte %zu\n", i);
                        break;
                    }
                hak_free(r);
            } else {
                hak_free(o);
            }
        }
        n++;
    }
    atomic_fetch_add(&ops, n);
    return NULL;
}

static size_t rss(void) {
    long a = 0, b = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &a, &b) != 2) b = 0;
        fclose(f);
    }
    return (size_t)b * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t live(void) {
    struct hak_stats st = {.size = sizeof st};
    hak_stats_get(&st);
    return st.lane[0].live_bytes;
}

int main(void) {
    const char *e = getenv("HAK_STRESS_SECS");
    int secs = e ? atoi(e) : 3;
    hak_free(hak_malloc(1));
    uint64_t live0 = live();
    size_t rss0 = rss();
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(i + 1));
    struct timespec ts = {secs, 0};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    size_t rss_peak = rss();
    for (int i = 0; i < SLOTS; i++) {
        struct blk *b = (struct blk *)atomic_exchange(&slots[i], 0);
        if (b) {
            apply(b, false);
            hak_free(b);
        }
    }
    hak_trim(0);
    uint64_t live1 = live();
    size_t rss1 = rss();
    long f = atomic_load(&failures);
    printf("%ld operations, %ld failures; live bytes %llu -> %llu; rss %zu KiB, %zu KiB with "
           "the table full, %zu KiB after trim\n",
           atomic_load(&ops), f, (unsigned long long)live0, (unsigned long long)live1,
           rss0 >> 10, rss_peak >> 10, rss1 >> 10);
    /* live bytes back (the batched counters of exited threads are flushed);
     * a few KiB of slack for thread bookkeeping glibc allocates through us */
    bool live_ok = live1 <= live0 + 64 * 1024;
    bool rss_ok = rss1 <= rss0 + 16 * 1024 * 1024;
    if (f || !live_ok || !rss_ok || atomic_load(&ops) == 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    printf("1 passed, 0 failed\n");
    return 0;
}
