/*
 * inject.c: the OS refuses a mapping at every call site of the OS layer
 * (lib/os.c's test hook hak_test_os_fail). A workload that reaches every
 * site (a new thread's heaps, new tiny and pool segments, ACE chunks, the
 * huge lane's page runs and own mappings, aligned mappings, a huge block
 * grown in place or moved, realloc across lanes, calloc) is first run once
 * to count its requests for address space, C. Then, in a child process for
 * each k in [0, C]:
 *  - "from k on": every request after the k-th fails. Each operation of the
 *    workload either succeeds (its block intact to the end) or answers
 *    NULL with errno ENOMEM (posix_memalign: returns ENOMEM, *memptr
 *    untouched; a failed realloc keeps the old block intact); with k = 0
 *    every lane refuses something.
 *  - "only the k-th": one request fails; the same holds.
 * After the blocks are freed and the hook is off, the workload runs again
 * and every operation succeeds (recovery); no crash, no hang (each child
 * has a deadline).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "fault_util.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

enum op_kind { OP_MALLOC, OP_CALLOC, OP_MEMALIGN, OP_REALLOC_GROW, OP_THREAD };

struct op {
    const char *group; /* the lane or call site it aims at */
    enum op_kind kind;
    size_t size;
    size_t align;  /* OP_MEMALIGN */
    size_t size2;  /* OP_REALLOC_GROW: then to this size */
    size_t size3;  /*                  and then to this one (0: no third step) */
    unsigned reps;
};

static const struct op workload[] = {
    {"thread heaps", OP_THREAD, 0, 0, 0, 0, 1},
    {"tiny", OP_MALLOC, 400, 0, 0, 0, 8000},      /* more than one 2 MiB segment */
    {"pool", OP_MALLOC, 16 * KiB, 0, 0, 0, 200},  /* likewise */
    {"ace", OP_MALLOC, 200000, 0, 0, 0, 24},      /* three chunks */
    {"huge runs", OP_MEMALIGN, 100000, 64 * KiB, 0, 0, 24},
    {"huge", OP_MALLOC, 4 * MiB, 0, 0, 0, 6},
    {"huge aligned", OP_MEMALIGN, 3 * MiB, 8 * MiB, 0, 0, 2},
    {"huge realloc", OP_REALLOC_GROW, 4 * MiB, 0, 40 * MiB, 80 * MiB, 2},
    {"across lanes", OP_REALLOC_GROW, 700, 0, 300 * KiB, 3 * MiB, 4},
    {"calloc", OP_CALLOC, 5 * MiB, 0, 0, 0, 2},
};
#define NOPS (sizeof workload / sizeof workload[0])
#define MAX_BLOCKS 9000

struct blk {
    void *p;
    size_t size;
    uint8_t salt;
};

static struct blk blocks[MAX_BLOCKS];
static unsigned nblocks;
static unsigned refused[NOPS];

static uint8_t byte_at(uint8_t salt, size_t i) { return (uint8_t)(salt * 31u + (i >> 6) * 7u); }

/* Writes (or checks) the first and last 64 bytes and a byte every 64 KiB. */
static bool pattern(void *p, size_t size, uint8_t salt, bool write) {
    unsigned char *b = p;
    for (size_t i = 0; i < size; i = i < 64 ? i + 1 : (i + 65536 < size - 64 ? i + 65536 : (i < size - 64 ? size - 64 : i + 1))) {
        if (write)
            b[i] = byte_at(salt, i);
        else if (b[i] != byte_at(salt, i))
            return false;
    }
    return true;
}

static void keep(void *p, size_t size) {
    uint8_t salt = (uint8_t)(nblocks * 13u + 1);
    pattern(p, size, salt, true);
    blocks[nblocks++] = (struct blk){p, size, salt};
}

static bool refusal_ok(const struct op *o, const char *call) {
    if (errno == ENOMEM) return true;
    fault_msg("%s: %s(%zu) failed with errno %d, not ENOMEM", o->group, call, o->size, errno);
    return false;
}

static void *thread_main(void *arg) {
    (void)arg;
    static const size_t sizes[] = {100, 5000, 100000};
    for (unsigned i = 0; i < 3; i++) {
        errno = 0;
        void *p = hak_malloc(sizes[i]);
        if (!p && errno != ENOMEM) return (void *)1;
        if (!p) return (void *)2;
        memset(p, 1, sizes[i]);
        hak_free(p);
    }
    return NULL;
}

/* Runs the workload; false after reporting a wrong answer. With strict,
 * every operation must succeed. */
static bool run_workload(bool strict) {
    nblocks = 0;
    memset(refused, 0, sizeof refused);
    for (unsigned k = 0; k < NOPS; k++) {
        const struct op *o = &workload[k];
        for (unsigned r = 0; r < o->reps; r++) {
            void *p = NULL;
            errno = 0;
            switch (o->kind) {
            case OP_THREAD: {
                pthread_t t;
                void *res = (void *)1;
                if (pthread_create(&t, NULL, thread_main, NULL) != 0) break; /* glibc's own mmap */
                pthread_join(t, &res);
                if (res == (void *)1) {
                    fault_msg("%s: a failed malloc set errno to something else than ENOMEM",
                              o->group);
                    return false;
                }
                if (res == (void *)2) refused[k]++;
                continue;
            }
            case OP_MALLOC:
                p = hak_malloc(o->size);
                if (!p && !refusal_ok(o, "malloc")) return false;
                break;
            case OP_CALLOC:
                p = hak_calloc(1, o->size);
                if (!p && !refusal_ok(o, "calloc")) return false;
                if (p)
                    for (size_t i = 0; i < o->size; i += 4096)
                        if (((unsigned char *)p)[i]) {
                            fault_msg("%s: calloc memory not zero at %zu", o->group, i);
                            return false;
                        }
                break;
            case OP_MEMALIGN: {
                void *sentinel = (void *)(uintptr_t)0x4560, *m = sentinel;
                int rc = hak_posix_memalign(&m, o->align, o->size);
                if (rc == 0) {
                    p = m;
                    if ((uintptr_t)p % o->align != 0) {
                        fault_msg("%s: %p not aligned to %zu", o->group, p, o->align);
                        return false;
                    }
                } else if (rc != ENOMEM || m != sentinel) {
                    fault_msg("%s: posix_memalign returned %d, memptr %p", o->group, rc, m);
                    return false;
                }
                break;
            }
            case OP_REALLOC_GROW: {
                p = hak_malloc(o->size);
                if (!p) {
                    if (!refusal_ok(o, "malloc")) return false;
                    break;
                }
                uint8_t salt = (uint8_t)(r + 101);
                pattern(p, o->size, salt, true);
                size_t steps[2] = {o->size2, o->size3}, cur = o->size;
                for (int s = 0; s < 2 && steps[s]; s++) {
                    errno = 0;
                    void *q = hak_realloc(p, steps[s]);
                    if (!q) {
                        if (!refusal_ok(o, "realloc")) return false;
                        break; /* p stays valid */
                    }
                    p = q;
                    cur = steps[s];
                }
                if (!pattern(p, o->size, salt, false)) {
                    fault_msg("%s: realloc lost the contents of a %zu-byte block", o->group,
                              o->size);
                    return false;
                }
                if (cur != steps[1] && steps[1]) refused[k]++;
                keep(p, cur);
                continue;
            }
            }
            if (!p) {
                refused[k]++;
                continue;
            }
            keep(p, o->size);
        }
        if (strict && refused[k]) {
            fault_msg("%s: %u operations refused with the hook off", o->group, refused[k]);
            return false;
        }
    }
    return true;
}

static bool free_all(void) {
    for (unsigned i = 0; i < nblocks; i++) {
        if (!pattern(blocks[i].p, blocks[i].size, blocks[i].salt, false)) {
            fault_msg("block %p (%zu bytes) damaged", blocks[i].p, blocks[i].size);
            return false;
        }
        hak_free(blocks[i].p);
    }
    nblocks = 0;
    return true;
}

/* ---- the children --------------------------------------------------------- */

struct plan {
    unsigned long after, count; /* the hook's window */
};

static int count_requests(void *arg) {
    (void)arg;
    unsigned long before = hak_test_os_fail(0, 0);
    if (!run_workload(true)) return 2;
    unsigned long calls = hak_test_os_fail(0, 0) - before;
    if (!free_all()) return 3;
    /* the count goes back through the exit status: small enough */
    if (calls > 250) {
        fault_msg("%lu requests for address space: more than this test expects", calls);
        return 4;
    }
    return (int)(calls + 5);
}

static int refused_then_recovers(void *arg) {
    const struct plan *pl = arg;
    hak_test_os_fail(pl->after, pl->count);
    bool ok = run_workload(false);
    hak_test_os_fail(0, 0);
    if (!ok) return 2;
    if (pl->after == 0 && pl->count == ULONG_MAX) {
        /* everything refused from the first request on: every lane said
         * so (each group needs more than the process has mapped) */
        for (unsigned k = 0; k < NOPS; k++) {
            if (workload[k].kind != OP_THREAD && refused[k] == 0) {
                fault_msg("%s: nothing refused while every mapping failed", workload[k].group);
                return 3;
            }
        }
    }
    if (!free_all()) return 4;
    if (!run_workload(true)) return 5; /* recovery: all of it works again */
    if (!free_all()) return 6;
    return 0;
}

static unsigned long workload_requests(void) {
    /* The count, from a child (the parent's state stays as the children
     * inherit it): exit status - 5. */
    char why[2048];
    bool ok = fault_run(count_requests, NULL, 60, why, sizeof why);
    cr_assert(!ok, "the counting child exited 0");
    int code = 0;
    const char *s = strstr(why, "[child exited with ");
    cr_assert_not_null(s, "counting the workload's requests failed: %s", why);
    code = atoi(s + 19);
    cr_assert(code >= 5, "counting the workload's requests failed: %s", why);
    return (unsigned long)code - 5;
}

static void each_k(unsigned long count) {
    hak_free(hak_malloc(1)); /* this process's heaps exist before the children fork */
    unsigned long c = workload_requests();
    cr_assert(c >= 10, "the workload asked the OS for address space only %lu times", c);
    cr_log_info("the workload makes %lu requests for address space", c);
    for (unsigned long k = 0; k <= c; k++) {
        struct plan pl = {k, count};
        char why[4096];
        bool ok = fault_run(refused_then_recovers, &pl, 30, why, sizeof why);
        cr_assert(ok, "requests after the first %lu refused (%s): %s", k,
                  count == 1 ? "one" : "all", why);
    }
}

Test(inject, every_request_from_the_kth_refused_then_recovery, .timeout = 240) {
    each_k(ULONG_MAX);
}

Test(inject, only_the_kth_request_refused_then_recovery, .timeout = 240) { each_k(1); }
