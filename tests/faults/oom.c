/*
 * oom.c: out of memory for real, under setrlimit(RLIMIT_AS) (DESIGN.md 4,
 * 5). In a child process per case, the address space is limited to what
 * the process has plus BUDGET; then:
 *  - in each lane (tiny, pool, ACE, huge sizes), blocks are allocated
 *    until hakmem answers NULL with ENOMEM, which must come only after most
 *    of the budget is in use (the lane grows until the OS says no); every
 *    entry point then answers NULL/ENOMEM (or returns ENOMEM) for a request
 *    that needs more, leaving the blocks intact; after half the blocks are
 *    freed about as many fit again, and after all are freed as many as at
 *    first (recovery, no address space lost);
 *  - across lanes: blocks of one lane's size fill the budget and are all
 *    freed, then blocks of another lane's size must fill most of it again.
 *    The memory the first lane cached (empty segments, chunks, BigCache)
 *    must have been unmapped when the OS refused the second lane: hakmem
 *    releases its caches and retries before it gives up. The meson test
 *    runs this program a second time with every cache made unbounded
 *    (HAKMEM_*_CACHE=1024, HAKMEM_BIGCACHE_MB=65536, a purge delay of a
 *    minute): there only that release can give the address space back.
 * Every block carries a check word at each end, verified before its free.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "fault_util.h"

#define MiB ((size_t)1 << 20)
#define BUDGET (160 * MiB)

struct node {
    struct node *next;
    uintptr_t check;
};

static uintptr_t check_of(const void *p, size_t size) {
    return (uintptr_t)p * 0x9E3779B97F4A7C15u ^ size ^ 0x5a5a5a5au;
}

static void mark(struct node *b, size_t size) {
    b->check = check_of(b, size);
    memcpy((char *)b + size - sizeof(uintptr_t), &b->check, sizeof(uintptr_t));
}

static bool intact(const struct node *b, size_t size) {
    uintptr_t want = check_of(b, size), tail;
    memcpy(&tail, (const char *)b + size - sizeof(uintptr_t), sizeof tail);
    return b->check == want && tail == want;
}

struct lane_case {
    const char *name;
    int lane;
    size_t size;
};

static const struct lane_case lanes[] = {
    {"tiny", HAK_LANE_TINY, 256},
    {"pool", HAK_LANE_POOL, 8192},
    {"ace", HAK_LANE_ACE, 200000},
    {"huge", HAK_LANE_HUGE, 3 * MiB / 2},
};

/* Allocates blocks of size until hakmem refuses; pushes them on *list.
 * Returns the number allocated, or SIZE_MAX after reporting an error. */
static size_t fill(const struct lane_case *lc, struct node **list) {
    size_t n = 0;
    int want_lane = fault_lane_served(lc->lane);
    for (;;) {
        errno = 0;
        struct node *b = hak_malloc(lc->size);
        if (!b) {
            if (errno != ENOMEM) {
                fault_msg("%s: malloc(%zu) failed with errno %d, not ENOMEM", lc->name, lc->size,
                          errno);
                return SIZE_MAX;
            }
            return n;
        }
        if (hak_lane_of(b) != want_lane) {
            fault_msg("%s: malloc(%zu) served by lane %d, expected %d", lc->name, lc->size,
                      hak_lane_of(b), want_lane);
            return SIZE_MAX;
        }
        mark(b, lc->size);
        b->next = *list;
        *list = b;
        if (++n * lc->size > 4 * BUDGET) {
            fault_msg("%s: %zu bytes allocated under a limit of %zu more: RLIMIT_AS not in force?",
                      lc->name, n * lc->size, BUDGET);
            return SIZE_MAX;
        }
    }
}

/* Frees the blocks of *list (every other one when half), checking each. */
static bool drop(const struct lane_case *lc, struct node **list, bool half) {
    struct node **pp = list;
    bool odd = false;
    while (*pp) {
        struct node *b = *pp;
        if (!intact(b, lc->size)) {
            fault_msg("%s: block %p of %zu bytes overwritten", lc->name, (void *)b, lc->size);
            return false;
        }
        odd = !odd;
        if (half && !odd) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        hak_free(b);
    }
    return true;
}

/* Every entry point refuses a request that needs more address space,
 * with the documented error, and leaves the blocks alone. */
static bool refusals(const struct lane_case *lc, struct node *some) {
    const size_t big = 64 * MiB;
    errno = 0;
    void *p = hak_malloc(big);
    if (p || errno != ENOMEM) {
        fault_msg("%s: at the limit malloc(64 MiB) gave %p, errno %d", lc->name, p, errno);
        return false;
    }
    errno = 0;
    p = hak_calloc(big / 16, 16);
    if (p || errno != ENOMEM) {
        fault_msg("%s: at the limit calloc gave %p, errno %d", lc->name, p, errno);
        return false;
    }
    void *sentinel = (void *)(uintptr_t)0x1230, *m = sentinel;
    int r = hak_posix_memalign(&m, 4096, big);
    if (r != ENOMEM || m != sentinel) {
        fault_msg("%s: at the limit posix_memalign returned %d, memptr %p", lc->name, r, m);
        return false;
    }
    errno = 0;
    p = hak_aligned_alloc(2 * MiB, big);
    if (p || errno != ENOMEM) {
        fault_msg("%s: at the limit aligned_alloc gave %p, errno %d", lc->name, p, errno);
        return false;
    }
    errno = 0;
    p = hak_realloc(some, big);
    if (p || errno != ENOMEM || !intact(some, lc->size)) {
        fault_msg("%s: at the limit realloc(%p, 64 MiB) gave %p, errno %d, block %s", lc->name,
                  (void *)some, p, errno, intact(some, lc->size) ? "intact" : "damaged");
        return false;
    }
    /* the lane's own size: still no room (nothing was freed) */
    errno = 0;
    p = hak_calloc(1, lc->size);
    if (p || errno != ENOMEM) {
        fault_msg("%s: at the limit calloc(1, %zu) gave %p, errno %d", lc->name, lc->size, p,
                  errno);
        return false;
    }
    return true;
}

static int oom_in_lane(void *arg) {
    const struct lane_case *lc = arg;
    struct node *list = NULL;
    /* the thread's heap exists; a block takes this much of the budget at
     * least (a lane built out leaves the size to one that rounds up more) */
    void *probe = hak_malloc(lc->size);
    size_t per = hak_usable_size(probe);
    hak_free(probe);
    if (!fault_limit_as(BUDGET)) {
        fault_msg("setrlimit failed");
        return 2;
    }
    size_t n1 = fill(lc, &list);
    if (n1 == SIZE_MAX) return 3;
    if (n1 * per < BUDGET / 2) {
        fault_msg("%s: ENOMEM after only %zu blocks (%zu MiB of a %zu MiB budget)", lc->name, n1,
                  n1 * per / MiB, BUDGET / MiB);
        return 4;
    }
    if (!refusals(lc, list)) return 5;
    if (!drop(lc, &list, true)) return 6;
    size_t n2 = fill(lc, &list);
    if (n2 == SIZE_MAX) return 7;
    if (n2 < n1 / 2 - n1 / 20) {
        fault_msg("%s: %zu blocks at first, half freed, then only %zu fit again", lc->name, n1, n2);
        return 8;
    }
    if (!drop(lc, &list, false)) return 9;
    size_t n3 = fill(lc, &list);
    if (n3 == SIZE_MAX) return 10;
    if (n3 < n1 - n1 / 10) {
        fault_msg("%s: %zu blocks at first, all freed, then only %zu fit again", lc->name, n1, n3);
        return 11;
    }
    if (!drop(lc, &list, false)) return 12;
    fault_unlimit_as();
    void *p = hak_malloc(64 * MiB);
    if (!p) {
        fault_msg("%s: malloc(64 MiB) fails after the limit was lifted", lc->name);
        return 13;
    }
    hak_free(p);
    return 0;
}

static void run_lane(int i) {
    char why[4096];
    bool ok = fault_run(oom_in_lane, (void *)&lanes[i], 60, why, sizeof why);
    cr_assert(ok, "%s", why);
}

Test(oom, tiny_enomem_then_recovers) { run_lane(0); }
Test(oom, pool_enomem_then_recovers) { run_lane(1); }
Test(oom, ace_enomem_then_recovers) { run_lane(2); }
Test(oom, huge_enomem_then_recovers) { run_lane(3); }

/* ---- across lanes ------------------------------------------------------ */

struct cross {
    const struct lane_case *from, *to;
};

static int cross_lanes(void *arg) {
    const struct cross *c = arg;
    struct node *list = NULL;
    hak_free(hak_malloc(c->from->size));
    hak_free(hak_malloc(c->to->size));
    if (!fault_limit_as(BUDGET)) {
        fault_msg("setrlimit failed");
        return 2;
    }
    /* what the second lane's blocks fill on their own in this build */
    size_t n0 = fill(c->to, &list);
    if (n0 == SIZE_MAX || !drop(c->to, &list, false)) return 3;
    size_t n1 = fill(c->from, &list);
    if (n1 == SIZE_MAX) return 4;
    if (!drop(c->from, &list, false)) return 5;
    size_t n2 = fill(c->to, &list);
    if (n2 == SIZE_MAX) return 6;
    if (n2 < n0 - n0 / 10) {
        fault_msg("%s -> %s: %zu MiB in %s blocks, all freed; then only %zu MiB in %s blocks, "
                  "which fill %zu MiB on their own (of a %zu MiB budget)",
                  c->from->name, c->to->name, n1 * c->from->size / MiB, c->from->name,
                  n2 * c->to->size / MiB, c->to->name, n0 * c->to->size / MiB, BUDGET / MiB);
        return 7;
    }
    if (!drop(c->to, &list, false)) return 8;
    /* and back */
    size_t n3 = fill(c->from, &list);
    if (n3 == SIZE_MAX) return 9;
    if (n3 < n1 - n1 / 10) {
        fault_msg("%s -> %s -> %s: %zu blocks at first, only %zu at the end", c->from->name,
                  c->to->name, c->from->name, n1, n3);
        return 10;
    }
    if (!drop(c->from, &list, false)) return 11;
    return 0;
}

static void run_cross(int from, int to) {
    struct cross c = {&lanes[from], &lanes[to]};
    char why[4096];
    bool ok = fault_run(cross_lanes, &c, 60, why, sizeof why);
    cr_assert(ok, "%s", why);
}

#define CROSS(a, ia, b, ib) \
    Test(oom_cross, a##_freed_serves_##b) { run_cross(ia, ib); }

CROSS(tiny, 0, pool, 1)
CROSS(tiny, 0, ace, 2)
CROSS(tiny, 0, huge, 3)
CROSS(pool, 1, tiny, 0)
CROSS(pool, 1, ace, 2)
CROSS(pool, 1, huge, 3)
CROSS(ace, 2, tiny, 0)
CROSS(ace, 2, pool, 1)
CROSS(ace, 2, huge, 3)
CROSS(huge, 3, tiny, 0)
CROSS(huge, 3, pool, 1)
CROSS(huge, 3, ace, 2)
