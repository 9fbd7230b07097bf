/*
 * ace.c: the ACE lane (see ace.h): classes, per-thread and shared caches,
 * W_MAX rounding, the lane contract. Blocks are page runs of the lane's
 * arena (lib/pagerun.c). Locks: shared_lock, then the arena's lock.
 */
#include "ace.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "ace_fast.h"
#include "learn.h"
#include "meta.h"
#include "options.h"
#include "os.h"
#include "policy.h"

const uint32_t ace_class_size[ACE_CLASSES] = {
    40 << 10,  48 << 10,  56 << 10,  64 << 10,  80 << 10,  96 << 10,  112 << 10,
    128 << 10, 160 << 10, 192 << 10, 224 << 10, 256 << 10, 320 << 10, 384 << 10,
    448 << 10, 512 << 10, 640 << 10, 768 << 10, 896 << 10, 1024 << 10,
};

const uint8_t ace_class_of[HAK_ACE_MAX >> 13] = {
    0,  0,  0,  0,  0,  1,  2,  3,  4,  4,  5,  5,  6,  6,  7,  7,  8,  8,  8,  8,  9,  9,
    9,  9,  10, 10, 10, 10, 11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13,
    13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17,
    17, 17, 17, 17, 17, 17, 17, 17, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 18, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19,
};

static struct ace_tcache tc_empty = {.kind = ACE_TC_EMPTY};
static struct ace_tcache tc_dead = {.kind = ACE_TC_DEAD};
HAK_TLS_IE struct ace_tcache *ace_tls = &tc_empty;
unsigned ace_page_shift = 12;

static struct pagerun_arena ace_runs = {
    .lane = HAK_LANE_ACE,
    .cache_opt = HAK_OPT_ACE_CACHE_CHUNKS,
};
static struct meta_pool tcaches;

/* The shared caches: blocks any thread may take, safe from ABA by the lock. */
#define SHARED_MAX (2 * ACE_TCACHE_MAX)
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint32_t count;
    void *slot[SHARED_MAX];
} shared[ACE_CLASSES];
/* Under shared_lock: the class's shared cache held blocks at the last purge
 * pass and has not been used since; the next pass gives them back to their
 * chunks (whose pages are purged in turn), so that blocks parked there
 * after a burst do not stay resident for good. */
static bool shared_aged[ACE_CLASSES];

#define ACE_STATS_FLUSH_EVERY 64

void hak_thread_attach(void);

static inline _Atomic uint8_t *tag_of(const void *p) {
    return ace_tag_of(p, (uintptr_t)p & ~HAK_CHUNK_MASK);
}

static void count_class(struct ace_tcache *t, enum hak_class_counter k, unsigned cls) {
    if (HAK_BENCH_MINIMAL) return;
    if (t->kind == ACE_TC_LIVE)
        t->stats.cls[k][cls]++;
    else
        stats_batch_flush_one(HAK_LANE_ACE, k, cls, ace_class_size[cls]);
}

/* Gives a block that no cache takes back to its chunk. */
static void run_free(void *p, unsigned cls) {
    pagerun_free((uintptr_t)p & ~HAK_CHUNK_MASK, p, "free");
    stats_note_slabs(HAK_LANE_ACE, cls, -1);
}

/* A free block of class cls that the thread's cache does not keep: to the
 * shared cache while it has room under the cap, else to its chunk. */
static void release_block(void *p, unsigned cls) {
    const struct hak_policy *pol = policy_current();
    uint32_t cap = 2 * pol->cap_large[cls];
    if (cap > SHARED_MAX) cap = SHARED_MAX;
    atomic_store_relaxed(tag_of(p), (uint8_t)((cls + 1) | ACE_TAG_CACHED));
    pthread_mutex_lock(&shared_lock);
    if (shared[cls].count < cap) {
        bool first = shared[cls].count == 0;
        shared[cls].slot[shared[cls].count++] = p;
        shared_aged[cls] = false;
        pthread_mutex_unlock(&shared_lock);
        if (first) os_purge_schedule(os_now_coarse_ns() + os_purge_delay_ns());
        return;
    }
    pthread_mutex_unlock(&shared_lock);
    run_free(p, cls);
}

/* Reads the policy into t (refill and flush time), giving back what a
 * lowered cap no longer lets it keep. */
static void refresh(struct ace_tcache *t) {
    /* the generation first: a ring slot comes back after POLICY_SLOTS
     * publishes, so the pointer alone could hide a change */
    uint64_t gen = atomic_load_acquire(&policy_generation);
    const struct hak_policy *pol = policy_current();
    if (pol == t->policy && gen == t->policy_gen) return;
    t->policy = pol;
    t->policy_gen = gen;
    for (unsigned c = 0; c < ACE_CLASSES; c++) {
        uint32_t cap = pol->cap_large[c];
        t->limit[c] = (uint8_t)(cap > ACE_TCACHE_MAX ? ACE_TCACHE_MAX : cap);
        while (t->count[c] > t->limit[c]) release_block(t->slot[c][--t->count[c]], c);
    }
    t->refill_batch = (uint8_t)pol->refill_batch;
}

static void flush_stats(struct ace_tcache *t) {
    stats_batch_flush(&t->stats, HAK_LANE_ACE, ace_class_size, ACE_CLASSES);
}

void ace_stats_exact_flush(struct ace_tcache *t) {
    t->stat_ops = 0;
    flush_stats(t);
}

void *ace_stats_flush_then(struct ace_tcache *t, void *p) {
    ace_stats_exact_flush(t);
    return p;
}

/* The calling thread's cache, made on first use; NULL once it has exited. */
static struct ace_tcache *my_tcache(void) {
    struct ace_tcache *t = ace_tls;
    if (HAK_LIKELY(t->kind == ACE_TC_LIVE)) return t;
    if (t->kind == ACE_TC_DEAD || !hak_ensure_init()) return NULL;
    t = meta_alloc(&tcaches);
    if (!t) return NULL;
    t->kind = ACE_TC_LIVE;
    refresh(t);
    ace_tls = t;
    hak_thread_attach();
    return t;
}

static void *take(struct ace_tcache *t, unsigned cls) {
    void *p = t->slot[cls][--t->count[cls]];
    atomic_store_relaxed(tag_of(p), (uint8_t)(cls + 1));
    count_class(t, HAK_CCTR_allocs, cls);
    return p;
}

static void *alloc_refill(size_t size, struct ace_tcache *t);

/* The lane's purger (lib/os.h): the shared caches of classes unused for
 * a pass go back to their chunks (all of them when all). */
static size_t ace_purge(bool all, uint64_t now, uint64_t *next_due) {
    size_t bytes = 0;
    bool pending = false;
    for (unsigned c = 0; c < ACE_CLASSES; c++) {
        void *v[SHARED_MAX];
        uint32_t n = 0;
        pthread_mutex_lock(&shared_lock);
        if (shared[c].count != 0 && (all || shared_aged[c])) {
            n = shared[c].count;
            memcpy(v, shared[c].slot, n * sizeof v[0]);
            shared[c].count = 0;
        } else if (shared[c].count != 0) {
            shared_aged[c] = true;
            pending = true;
        }
        pthread_mutex_unlock(&shared_lock);
        for (uint32_t i = 0; i < n; i++) run_free(v[i], c);
        bytes += (size_t)n * ace_class_size[c];
    }
    uint64_t due = now + os_purge_delay_ns();
    if (pending && due < *next_due) *next_due = due;
    return bytes;
}

/* A sampled slow path timed for the learner's refill-latency percentile. */
#define ACE_TIMING_EVERY 8

void *ace_alloc_slow(size_t size) {
    policy_tick(); /* the learner's thread starts lazily, from here */
    struct ace_tcache *t = my_tcache();
    if (HAK_UNLIKELY(learn_sampling_now()) && t && t->timing_countdown-- == 0) {
        t->timing_countdown = ACE_TIMING_EVERY - 1;
        uint64_t t0 = os_now_ns();
        void *p = alloc_refill(size, t);
        learn_note_refill_ns(os_now_ns() - t0);
        return p;
    }
    return alloc_refill(size, t);
}

static void *alloc_refill(size_t size, struct ace_tcache *t) {
    unsigned cls = ace_class_of[(size - 1) >> 13];
    if (t) {
        refresh(t);
        if (!HAK_BENCH_MINIMAL) {
            t->stats.cls[HAK_CCTR_refills][cls]++;
            /* every 64 slow paths; the fast path flushes every 64 allocations
             * of a class (ace_fast.h), so the learner's windows, thousands of
             * allocations, see counts at most that far behind */
            if (++t->slow_calls >= ACE_STATS_FLUSH_EVERY) {
                t->slow_calls = 0;
                flush_stats(t);
            }
        }
        os_purge_tick();
        /* W_MAX: a warm block of a larger class within wmax_large_pct */
        uint64_t limit = (uint64_t)size * t->policy->wmax_large_pct;
        unsigned last = cls;
        while (last + 1 < ACE_CLASSES && (uint64_t)ace_class_size[last + 1] * 100 <= limit) last++;
        for (unsigned k = cls; k <= last; k++)
            if (t->count[k]) return take(t, k);
        /* the shared cache: a batch at once */
        pthread_mutex_lock(&shared_lock);
        for (unsigned k = cls; k <= last; k++) {
            uint32_t n = shared[k].count;
            if (n == 0) continue;
            uint32_t want = t->refill_batch, room = t->limit[k] - t->count[k];
            if (want > room) want = room;
            if (want == 0) want = 1; /* take one even with no room to keep more */
            if (want > n) want = n;
            shared_aged[k] = false;
            for (uint32_t i = 0; i < want; i++) {
                void *p = shared[k].slot[--shared[k].count];
                if (t->count[k] < t->limit[k]) {
                    t->slot[k][t->count[k]++] = p;
                } else { /* cap 0: hand it out directly */
                    pthread_mutex_unlock(&shared_lock);
                    atomic_store_relaxed(tag_of(p), (uint8_t)(k + 1));
                    count_class(t, HAK_CCTR_allocs, k);
                    return p;
                }
            }
            pthread_mutex_unlock(&shared_lock);
            return take(t, k);
        }
        pthread_mutex_unlock(&shared_lock);
    } else if (atomic_load_acquire(&hak_init_state) != HAK_INIT_READY) {
        errno = ENOMEM; /* hakmem could not initialise */
        return NULL;
    }
    size_t bytes;
    void *p = pagerun_alloc(&ace_runs, ace_class_size[cls], os_page_size, NULL, &bytes);
    if (!p) return NULL;
    atomic_store_relaxed(tag_of(p), (uint8_t)(cls + 1));
    stats_note_slabs(HAK_LANE_ACE, cls, 1);
    count_class(t ? t : &tc_dead, HAK_CCTR_allocs, cls);
    return p;
}

/* The class of block p, or ACE_CLASSES after reporting misuse for call. */
static unsigned checked_class(const void *p, hak_call_t call) {
    uint8_t tag = atomic_load_relaxed(tag_of(p));
    if (((uintptr_t)p & (os_page_size - 1)) != 0 || tag == 0) {
        hak_report_misuse(call, p, "invalid pointer (inside a block)");
        return ACE_CLASSES;
    }
    if (tag & ACE_TAG_CACHED) {
        hak_report_misuse(call, p, "double free");
        return ACE_CLASSES;
    }
    return (unsigned)(tag - 1);
}

void ace_free_slow(void *p, uintptr_t chunk, hak_call_t call) {
    (void)chunk;
    unsigned cls = checked_class(p, call);
    if (cls >= ACE_CLASSES) return;
    struct ace_tcache *t = my_tcache();
    if (t) {
        refresh(t);
        count_class(t, HAK_CCTR_frees, cls);
        if (t->count[cls] < t->limit[cls]) {
            atomic_store_relaxed(tag_of(p), (uint8_t)((cls + 1) | ACE_TAG_CACHED));
            t->slot[cls][t->count[cls]++] = p;
            return;
        }
    } else {
        count_class(&tc_dead, HAK_CCTR_frees, cls);
    }
    release_block(p, cls);
    os_purge_tick();
}

/* Empties t (its thread exits, or trims): every block to the shared cache
 * or its chunk. */
static void tcache_flush(struct ace_tcache *t) {
    for (unsigned c = 0; c < ACE_CLASSES; c++)
        while (t->count[c]) release_block(t->slot[c][--t->count[c]], c);
    flush_stats(t);
}

/* ---- the lane contract ------------------------------------------------- */

static int ace_init(void) {
    ace_page_shift = (unsigned)HAK_CTZ64(os_page_size);
    meta_pool_init(&tcaches, sizeof(struct ace_tcache), HAK_LANE_ACE);
    pagerun_arena_init(&ace_runs);
    os_purge_register(ace_purge);
    learn_register();
    return 0;
}

static void *ace_alloc(size_t size, bool *zeroed) {
    if (zeroed) *zeroed = false;
    return ace_alloc_fast(size);
}

static void *ace_alloc_aligned(size_t size, size_t align, bool *zeroed) {
    if (zeroed) *zeroed = false;
    if (align > os_page_size || size > HAK_ACE_MAX) {
        errno = EINVAL; /* runs are page-aligned only: the huge lane serves it */
        return NULL;
    }
    return ace_alloc_fast(size > HAK_POOL_MAX ? size : HAK_POOL_MAX + 1);
}

static void ace_free(void *p, uintptr_t chunk, hak_call_t call) { ace_free_fast(p, chunk, call); }

static size_t ace_usable_size(const void *p, uintptr_t chunk, hak_call_t call) {
    (void)chunk;
    unsigned cls = checked_class(p, call);
    return cls < ACE_CLASSES ? ace_class_size[cls] : 0;
}

static void *ace_resize(void *p, uintptr_t chunk, size_t new_size) {
    (void)chunk;
    unsigned cls = checked_class(p, "realloc");
    if (cls >= ACE_CLASSES) return NULL;
    /* in place while the block holds it and W_MAX allows the waste */
    const struct hak_policy *pol = policy_current();
    if (new_size <= ace_class_size[cls] &&
        (uint64_t)ace_class_size[cls] * 100 <= (uint64_t)new_size * pol->wmax_large_pct)
        return p;
    return NULL;
}

static void ace_thread_exit(void) {
    struct ace_tcache *t = ace_tls;
    if (t->kind != ACE_TC_LIVE) return;
    ace_tls = &tc_dead;
    tcache_flush(t);
    meta_free(&tcaches, t);
    os_purge_tick(); /* what it released has purges due: make sure a purger runs */
}

static size_t ace_trim(void) {
    struct ace_tcache *t = ace_tls;
    if (t->kind == ACE_TC_LIVE) tcache_flush(t);
    uint64_t next_due = UINT64_MAX;
    return ace_purge(true, 0, &next_due); /* every shared cache to the chunks */
}

static void ace_fork_prepare(void) {
    learn_fork_prepare();
    pthread_mutex_lock(&shared_lock);
    pagerun_fork_prepare(&ace_runs);
    meta_fork_prepare(&tcaches);
}

static void ace_fork_parent(void) {
    meta_fork_parent(&tcaches);
    pagerun_fork_parent(&ace_runs);
    pthread_mutex_unlock(&shared_lock);
    learn_fork_parent();
}

static void ace_fork_child(void) {
    meta_fork_child(&tcaches);
    pagerun_fork_child(&ace_runs);
    pthread_mutex_unlock(&shared_lock);
    learn_fork_child();
}

static void ace_flush_stats(void) {
    struct ace_tcache *t = ace_tls;
    if (t->kind == ACE_TC_LIVE) flush_stats(t);
}

const struct hak_lane ace_lane = {
    .name = "ace",
    .id = HAK_LANE_ACE,
    .min_size = HAK_POOL_MAX,
    .max_size = HAK_ACE_MAX,
    .nclasses = ACE_CLASSES,
    .class_size = ace_class_size,
    .init = ace_init,
    .alloc = ace_alloc,
    .alloc_aligned = ace_alloc_aligned,
    .free = ace_free,
    .usable_size = ace_usable_size,
    .resize = ace_resize,
    .thread_exit = ace_thread_exit,
    .fork_prepare = ace_fork_prepare,
    .fork_parent = ace_fork_parent,
    .fork_child = ace_fork_child,
    .trim = ace_trim,
    .flush_stats = ace_flush_stats,
};
