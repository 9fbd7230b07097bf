/*
 * huge.c: the huge lane (see huge.h).
 *
 * Owns: the own mappings (which need no lock: each is one block, owned by
 * its caller), the threads' slots and their list (tc_lock), the BigCache
 * of freed mappings (big_lock), and the arena of page runs that serves
 * smaller requests (lib/pagerun.c, with its own lock).
 *
 * Locks: tc_lock, big_lock and the arena's lock are never held together
 * (fork_prepare takes them in that order); the tcache pool's lock nests in
 * none. No system call runs under big_lock; the purger unmaps slots'
 * blocks under tc_lock.
 */
#include "huge.h"
#include "huge_fast.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "meta.h"
#include "options.h"
#include "os.h"
#include "pagerun.h"
#include "policy.h"
#include "segmap.h"
#include "stats.h"

_Static_assert(offsetof(struct huge_own, kind) == offsetof(struct pagerun_chunk, kind),
               "both headers keep their kind at the same place");

/* Small requests: page runs in shared chunks. */
static struct pagerun_arena huge_runs = {
    .lane = HAK_LANE_HUGE,
    .cache_opt = HAK_OPT_HUGE_CACHE_CHUNKS,
};

static inline size_t page_size(void) { return os_page_size; }

static inline uint32_t kind_at(uintptr_t head) { return ((const struct huge_own *)head)->kind; }

/* ---- own mappings (no lock: each belongs to its caller) -------------- */

/* Where the block starts in a mapping for alignment align. */
static size_t own_offset(size_t align) {
    if (align <= page_size()) return page_size();
    return align < HAK_CHUNK ? align : HAK_CHUNK;
}

/* Maps a mapping for (size, align). The OS policies are applied here, before
 * the header is written (so that its chunk can be a huge page), except for
 * calloc (late_policy): own_alloc applies them after the header write, so
 * that THP advice does not commit a whole huge page for a header page. */
static int own_map(size_t size, size_t align, bool late_policy, size_t *map_size, void **base,
                   int *node) {
    size_t off = own_offset(align);
    size_t total;
    if (HAK_ADD_OVERFLOW(size, off + HAK_CHUNK - 1, &total)) return ENOMEM;
    total = hak_align_down(total, HAK_CHUNK);
    /* align > HAK_CHUNK: base + HAK_CHUNK must be align-aligned */
    int err = os_map_chunks(total, align > HAK_CHUNK ? align : HAK_CHUNK,
                            align > HAK_CHUNK ? HAK_CHUNK : 0, base);
    if (err) return err;
    /* THP by the block's size; prefault the header page and the block's
     * pages, not the rest of its last chunk */
    if (!late_policy) *node = os_map_policy(*base, total, size, off + size);
    *map_size = total;
    return 0;
}

/* ---- BigCache: freed own mappings kept for reuse ----------------------
 * A freed mapping of at most the policy's bigcache_mb waits here, still
 * mapped and registered, for HAKMEM_PURGE_DELAY_MS; the next request of
 * any size takes one (see bigcache_take: no mmap, no page faults for the
 * pages it had); when the slots or the byte bound are full the oldest
 * entries are unmapped; the purger unmaps entries whose delay is over, and
 * malloc_trim all of them. Locks: big_lock, a spin lock (every critical
 * section is a few loads and stores over at most BIGCACHE_SLOTS entries;
 * unmapping happens outside it), after nothing. */

#define BIGCACHE_SLOTS 32
static _Atomic int big_lock;
static struct {
    struct huge_own *c;
    uint64_t freed_at; /* ns, coarse clock */
} big[BIGCACHE_SLOTS];

static unsigned big_n;             /* entries, under big_lock */
static _Atomic unsigned big_count; /* big_n as of the last unlock: a lock-free look */
static size_t big_bytes;           /* sum of their map_size, under big_lock */

static void big_lock_take(void) {
    while (atomic_exchange_explicit(&big_lock, 1, memory_order_acquire))
        while (atomic_load_relaxed(&big_lock)) sched_yield();
}
static void big_lock_drop(void) {
    atomic_store_relaxed(&big_count, big_n);
    atomic_store_release(&big_lock, 0);
}

static size_t own_map_size(size_t size, size_t align) {
    size_t total;
    if (HAK_ADD_OVERFLOW(size, own_offset(align) + HAK_CHUNK - 1, &total)) return SIZE_MAX;
    return hak_align_down(total, HAK_CHUNK);
}

/* A cached mapping for (size, align) on NUMA node node (any node when node
 * is -1, as when placement is off), or NULL. The smallest one that holds
 * the request (own_refit gives back its chunks past the request but one),
 * else the largest one (own_refit grows it): either way its pages are
 * reused and none stays cached beside the new block, so a program cycling
 * through buffers of varying sizes faults in little more than what its
 * footprint grows by, and holds little more than its live blocks. */
static struct huge_own *bigcache_take(size_t size, size_t align, int node) {
    size_t need = own_map_size(size, align);
    if (need == SIZE_MAX || atomic_load_relaxed(&big_count) == 0) return NULL;
    struct huge_own *best = NULL;
    unsigned best_i = 0;
    big_lock_take();
    for (unsigned i = 0; i < big_n; i++) {
        struct huge_own *c = big[i].c;
        if (align > HAK_CHUNK && ((uintptr_t)c + HAK_CHUNK) % align != 0) continue;
        if (node >= 0 && c->node != node) continue; /* no cross-node reuse */
        bool fits = c->map_size >= need;
        bool better = !best || (fits ? best->map_size < need || c->map_size < best->map_size
                                     : best->map_size < need && c->map_size > best->map_size);
        if (better) {
            best = c;
            best_i = i;
        }
    }
    if (best) {
        big[best_i] = big[--big_n];
        big_bytes -= best->map_size;
    }
    big_lock_drop();
    return best;
}

static void own_unmap(struct huge_own *c);

static struct huge_own *slot_take(struct huge_tcache *t);

/* Keeps freed mapping c, evicting the oldest cached mappings when the slots
 * or the byte bound (the policy's bigcache_mb) are full, so that the cache
 * holds the most recently freed blocks; false when c alone is over the
 * bound (the caller unmaps it). now: when it was freed (coarse clock).
 * The calling thread's slot (huge_tls) counts against the byte bound, and
 * its block is evicted when it is the oldest. */
static bool bigcache_put_at(struct huge_own *c, uint64_t now) {
    size_t limit = (size_t)policy_current()->bigcache_mb << 20;
    if (c->map_size > limit) return false;
    struct huge_tcache *t = huge_tls;
    size_t mine = atomic_load_relaxed(&t->slot) ? t->slot_bytes : 0;
    struct huge_own *victims[BIGCACHE_SLOTS + 1];
    unsigned nv = 0;
    big_lock_take();
    if (mine && big_bytes + mine + c->map_size > limit) {
        /* the slot's block goes first when it is older than every entry */
        uint64_t at = atomic_load_relaxed(&t->freed_at);
        bool oldest = true;
        for (unsigned i = 0; i < big_n && oldest; i++) oldest = at <= big[i].freed_at;
        if (oldest) {
            struct huge_own *s = slot_take(t);
            if (s) victims[nv++] = s;
            mine = 0;
        }
    }
    while (big_n > 0 && (big_n == BIGCACHE_SLOTS || big_bytes + mine + c->map_size > limit)) {
        unsigned oldest = 0;
        for (unsigned i = 1; i < big_n; i++)
            if (big[i].freed_at < big[oldest].freed_at) oldest = i;
        victims[nv++] = big[oldest].c;
        big_bytes -= big[oldest].c->map_size;
        big[oldest] = big[--big_n];
    }
    c->cached = 1;
    big[big_n].c = c;
    big[big_n].freed_at = now;
    big_n++;
    big_bytes += c->map_size;
    big_lock_drop();
    for (unsigned i = 0; i < nv; i++) own_unmap(victims[i]);
    os_purge_schedule(now + os_purge_delay_ns());
    return true;
}

static bool bigcache_put(struct huge_own *c) { return bigcache_put_at(c, os_now_coarse_ns()); }

static void own_unmap(struct huge_own *c) {
    size_t map_size = c->map_size;
    segmap_unregister((uintptr_t)c, map_size >> HAK_CHUNK_SHIFT);
    os_unmap(c, map_size);
    stats_note_unmap(HAK_LANE_HUGE, map_size);
}

/* ---- the threads' slots ----------------------------------------------
 * Each thread that frees an own mapping gets a struct huge_tcache (from
 * tc_pool, on the list tc_list under tc_lock) whose slot keeps one freed
 * mapping for its next malloc that needs a mapping of that size
 * (huge_fast.h). A slot's block counts as cached like a BigCache entry
 * (c->cached, so a double free of it is caught); it counts against the
 * BigCache's byte bound when its own thread puts into the BigCache, and
 * beyond that each other thread keeps at most one block of at most the
 * policy's bigcache_mb, for at most the purge delay.
 *
 * The owner fills its slot with a plain store and empties it with an
 * exchange; the purger (slots_purge) takes a block whose delay is over with
 * an exchange too, so the two never both get it. A block the slow paths
 * meet in the slot goes to the BigCache with its time stamp (slot_flush),
 * where the best-fit search sees it. A thread that exits moves its block
 * to the BigCache; fork's child does so for the threads it lacks.
 *
 * The put needs the purger to come by once the block is due: it schedules
 * a purge at freed_at + delay (a relaxed load when one is due earlier, as
 * while a program cycles a block). The purger's run resets the schedule
 * before it walks the slots, and a put racing with that walk can see the
 * old schedule while its store is not yet visible to the walk: the purger
 * thread walks everything once more before it ends for lack of work
 * (os.c), by when the store is visible, so no block is kept for good. */

static struct huge_tcache tc_empty = {.live = false};
static struct huge_tcache tc_dead = {.live = false};
HAK_TLS_IE struct huge_tcache *huge_tls = &tc_empty;
static struct meta_pool tc_pool;
static pthread_mutex_t tc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct huge_tcache *tc_list; /* the live ones, under tc_lock */

void hak_thread_attach(void);

static void tc_flush_stats(struct huge_tcache *t) {
    if (HAK_BENCH_MINIMAL) return;
    stats_note_counts(HAK_LANE_HUGE, t->allocs, t->alloc_bytes, t->frees, t->free_bytes, t->net,
                      t->net_max);
    t->allocs = t->frees = t->alloc_bytes = t->free_bytes = 0;
    t->net = t->net_max = 0;
}

/* The calling thread's counters to the globals (a snapshot, a slow path). */
static void huge_flush_stats(void) {
    struct huge_tcache *t = huge_tls;
    if (t->live) tc_flush_stats(t);
}

/* The calling thread's state, made on first use; NULL once it has exited
 * (or when no memory is left for it). */
static struct huge_tcache *my_tcache(void) {
    struct huge_tcache *t = huge_tls;
    if (HAK_LIKELY(t->live)) return t;
    if (t == &tc_dead) return NULL;
    t = meta_alloc(&tc_pool);
    if (!t) return NULL;
    t->live = true;
    t->tick = HUGE_TICK_EVERY;
    t->delay_ns = os_purge_delay_ns();
    pthread_mutex_lock(&tc_lock);
    t->next = tc_list;
    if (tc_list) tc_list->prev = t;
    tc_list = t;
    pthread_mutex_unlock(&tc_lock);
    huge_tls = t;
    hak_thread_attach();
    return t;
}

static void tc_unlink(struct huge_tcache *t) {
    if (t->prev) t->prev->next = t->next;
    else tc_list = t->next;
    if (t->next) t->next->prev = t->prev;
}

/* Moves the block of t's slot, if it has one, to the BigCache (or unmaps
 * it when the BigCache's bound is below it). */
static void slot_flush(struct huge_tcache *t) {
    struct huge_own *c = slot_take(t);
    if (c && !bigcache_put_at(c, atomic_load_relaxed(&t->freed_at))) own_unmap(c);
}

/* Empties the calling thread's slot t: its block, or NULL when it had none
 * (or the purger took it). */
static struct huge_own *slot_take(struct huge_tcache *t) {
    if (atomic_load_relaxed(&t->slot) == NULL) return NULL;
    t->slot_bytes = 0;
    return atomic_exchange_acq_rel(&t->slot, NULL);
}

void huge_slot_return(struct huge_own *c) {
    if (!bigcache_put(c)) own_unmap(c);
}

void huge_tick(struct huge_tcache *t) {
    int saved = errno; /* from free too, which never changes errno */
    t->tick = HUGE_TICK_EVERY;
    t->delay_ns = os_purge_delay_ns();
    tc_flush_stats(t);
    os_purge_tick();
    errno = saved;
}

/* The purger's part for the slots: unmaps the blocks whose delay is over
 * (all with all). */
static size_t slots_purge(bool all, uint64_t now, uint64_t delay, uint64_t *next_due) {
    size_t bytes = 0;
    pthread_mutex_lock(&tc_lock);
    for (struct huge_tcache *t = tc_list; t; t = t->next) {
        if (atomic_load_acquire(&t->slot) == NULL) continue;
        /* written before the slot: this fill's time, or a later one's */
        uint64_t due = atomic_load_relaxed(&t->freed_at) + delay;
        if (!all && due > now) {
            if (due < *next_due) *next_due = due;
            continue;
        }
        /* the owner may have taken it (NULL), or put another block since
         * (freed now, not due: purged early, which costs it a fresh map) */
        struct huge_own *c = atomic_exchange_acq_rel(&t->slot, NULL);
        if (c) {
            bytes += c->map_size;
            own_unmap(c);
        }
    }
    pthread_mutex_unlock(&tc_lock);
    return bytes;
}

/* The purger: unmaps cached mappings whose delay is over (all with all),
 * the threads' slots' too. */
static size_t bigcache_purge(bool all, uint64_t now, uint64_t *next_due) {
    uint64_t delay = os_purge_delay_ns();
    size_t bytes = slots_purge(all, now, delay, next_due);
    struct huge_own *victims[BIGCACHE_SLOTS];
    unsigned nv = 0;
    big_lock_take();
    for (unsigned i = 0; i < big_n;) {
        uint64_t due = big[i].freed_at + delay;
        if (all || due <= now) {
            victims[nv++] = big[i].c;
            big_bytes -= big[i].c->map_size;
            big[i] = big[--big_n];
            continue;
        }
        if (due < *next_due) *next_due = due;
        i++;
    }
    big_lock_drop();
    for (unsigned i = 0; i < nv; i++) {
        bytes += victims[i]->map_size;
        own_unmap(victims[i]);
    }
    return bytes;
}

/* -Dsecure: a guard page after the block (user_size is whole pages); the
 * mapping always has room for it (own_alloc and own_resize ask for
 * HUGE_GUARD more). It is put right after the block when the mapping is
 * made and whenever a block grows over it; it stays where it is while the
 * mapping is cached and when a block no larger than the last one reuses it
 * in place, so that reusing a cached mapping costs no system call. mremap
 * works on one VMA only, and a guard splits the mapping in two: the guard
 * comes off before a mapping is split, moved or grown (own_split,
 * own_refit, own_resize). */
#define HUGE_GUARD (HAK_SECURE ? page_size() : 0)

/* Puts c's guard page after its block if there is none there (on), or
 * removes it. */
static void own_guard(struct huge_own *c, bool on) {
    if (!HAK_SECURE) return;
    size_t at = on ? c->user_off + c->user_size : 0;
    if (on && c->guard_off >= at) return; /* after the block already */
    if (c->guard_off) os_protect((char *)c + c->guard_off, page_size(), true);
    if (at) os_protect((char *)c + at, page_size(), false);
    c->guard_off = at;
}

void huge_guard_after(struct huge_own *c) { own_guard(c, true); }

/* Cuts mapping c (off the cache) at need bytes (a multiple of HAK_CHUNK
 * below its size): the chunks from need on become a mapping of their own
 * (a header page, registered as a head), which goes to the BigCache, so
 * that their pages serve a later request instead of being unmapped now and
 * faulted in again then. */
static void own_split(struct huge_own *c, size_t need) {
    own_guard(c, false);
    uintptr_t tail = (uintptr_t)c + need;
    size_t tail_size = c->map_size - need;
    struct huge_own *t = (struct huge_own *)tail;
    t->magic = HUGE_MAGIC;
    t->kind = HUGE_OWN;
    t->map_size = tail_size;
    t->user_off = page_size();
    t->user_size = 0;
    t->align = HAK_MIN_ALIGN;
    t->cached = 0;
    t->node = c->node;
    t->guard_off = 0;
    c->map_size = need;
    segmap_register(tail, tail_size >> HAK_CHUNK_SHIFT, HAK_LANE_HUGE);
    if (!bigcache_put(t)) own_unmap(t);
}

/* A cached mapping on node (any when -1) to fill up to room bytes of a
 * growing block: the largest one that fits in room, else the smallest
 * larger one (the caller splits it); NULL when the cache has none. */
static struct huge_own *bigcache_take_piece(size_t room, int node) {
    if (atomic_load_relaxed(&big_count) == 0) return NULL;
    struct huge_own *best = NULL;
    unsigned best_i = 0;
    big_lock_take();
    for (unsigned i = 0; i < big_n; i++) {
        struct huge_own *c = big[i].c;
        if (node >= 0 && c->node != node) continue;
        bool fits = c->map_size <= room;
        bool better = !best || (fits ? best->map_size > room || c->map_size > best->map_size
                                     : best->map_size > room && c->map_size < best->map_size);
        if (better) {
            best = c;
            best_i = i;
        }
    }
    if (best) {
        big[best_i] = big[--big_n];
        big_bytes -= best->map_size;
    }
    big_lock_drop();
    return best;
}

/* Fits mapping c, just taken from the BigCache, to a block of size bytes
 * with alignment align. Shrinking cuts off the chunks past the block but
 * one (own_split caches them). Growing extends the mapping in place, else
 * moves its pages onto a fresh aligned reservation and moves the pages of
 * further cached mappings after them (mremap: no copy, no fault), so that
 * only what the cache cannot cover is fresh; the OS policies are applied
 * to that fresh part. Returns the mapping, perhaps moved, or NULL when it
 * cannot grow (then c is unmapped). */
static struct huge_own *own_refit(struct huge_own *c, size_t size, size_t align) {
    size_t need = own_map_size(size, align);
    size_t old = c->map_size;
    uintptr_t base = (uintptr_t)c;
    if (need <= old) {
        /* one chunk of excess stays (no split now, no regrowth when the
         * sizes alternate around a chunk boundary); pages past the block
         * that a previous user touched stay resident */
        if (old - need > HAK_CHUNK) own_split(c, need);
        return c;
    }
    own_guard(c, false); /* it grows: one VMA for mremap */
    size_t fresh_from = old, moved = 0;
    /* growing in place gives fresh pages: only when the cache has none
     * (a racy look, a hint) */
    bool pieces = atomic_load_relaxed(&big_count) != 0;
    if (pieces || os_grow_in_place(c, old, need) != 0) {
        void *dst;
        if (os_map_chunks(need, align > HAK_CHUNK ? align : HAK_CHUNK,
                          align > HAK_CHUNK ? HAK_CHUNK : 0, &dst) != 0) {
            own_unmap(c);
            return NULL;
        }
        segmap_unregister(base, old >> HAK_CHUNK_SHIFT);
        if (os_move(c, old, dst, old) != 0) {
            segmap_register(base, old >> HAK_CHUNK_SHIFT, HAK_LANE_HUGE);
            os_unmap(dst, need);
            own_unmap(c);
            return NULL;
        }
        c = dst;
        base = (uintptr_t)dst;
        /* the rest from other cached mappings, while the cache has some */
        while (fresh_from < need) {
            struct huge_own *piece = bigcache_take_piece(need - fresh_from, c->node);
            if (!piece) break;
            own_guard(piece, false);
            if (piece->map_size > need - fresh_from) own_split(piece, need - fresh_from);
            size_t len = piece->map_size;
            segmap_unregister((uintptr_t)piece, len >> HAK_CHUNK_SHIFT);
            if (os_move(piece, len, (void *)(base + fresh_from), len) != 0) {
                segmap_register((uintptr_t)piece, len >> HAK_CHUNK_SHIFT, HAK_LANE_HUGE);
                if (!bigcache_put(piece)) own_unmap(piece);
                break;
            }
            fresh_from += len;
            moved += len;
        }
    }
    segmap_register(base, need >> HAK_CHUNK_SHIFT, HAK_LANE_HUGE);
    /* os_mapped grows by what is new: the pieces were counted already */
    if (need - old > moved) stats_note_map(HAK_LANE_HUGE, need - old - moved);
    c->map_size = need;
    size_t used = own_offset(align) + size;
    if (fresh_from < need)
        os_map_policy((void *)(base + fresh_from), need - fresh_from, size,
                      used > fresh_from ? used - fresh_from : 0);
    return c;
}

static void *own_alloc(size_t size, size_t align, bool *zeroed) {
    size += HUGE_GUARD; /* room for the guard page; user_size leaves it out */
    /* calloc wants memory that reads as zero without writing it: fresh */
    int node = os_current_node();
    /* the slot's block did not fit (huge_alloc_fast): the best-fit search
     * considers it with the BigCache's */
    if (!zeroed) slot_flush(huge_tls);
    struct huge_own *c = zeroed ? NULL : bigcache_take(size, align, node);
    if (c) c = own_refit(c, size, align);
    void *base = NULL;
    size_t map_size = 0;
    if (!c) os_purge_tick(); /* a slow path: run due purges (a hit is fast) */
    if (!c && own_map(size, align, zeroed != NULL, &map_size, &base, &node) != 0) {
        /* memory is short: a cached block of another node will do */
        if (zeroed || node < 0 || !(c = bigcache_take(size, align, -1))) return NULL;
        if (!(c = own_refit(c, size, align))) return NULL;
    }
    if (c) {
        c->cached = 0;
        c->user_off = own_offset(align);
        c->user_size = hak_align_up(size - HUGE_GUARD, page_size());
        c->align = align;
        stats_note_alloc(HAK_LANE_HUGE, c->user_size);
        if (zeroed) *zeroed = false;
        own_guard(c, true);
        return (char *)c + c->user_off;
    }
    c = base;
    c->magic = HUGE_MAGIC;
    c->kind = HUGE_OWN;
    c->map_size = map_size;
    c->user_off = own_offset(align);
    c->user_size = hak_align_up(size - HUGE_GUARD, page_size());
    c->align = align;
    c->guard_off = 0;
    if (zeroed) node = os_map_policy(base, map_size, size, c->user_off + size);
    c->node = node;
    segmap_register((uintptr_t)base, map_size >> HAK_CHUNK_SHIFT, HAK_LANE_HUGE);
    stats_note_map(HAK_LANE_HUGE, map_size);
    stats_note_alloc(HAK_LANE_HUGE, c->user_size);
    if (zeroed) *zeroed = true;
    own_guard(c, true);
    return (char *)base + c->user_off;
}

static bool own_check(struct huge_own *c, const void *p, hak_call_t call) {
    if ((uintptr_t)p != (uintptr_t)c + c->user_off) {
        hak_report_misuse(call, p, "invalid pointer (inside a block)");
        return false;
    }
    if (c->cached) {
        hak_report_misuse(call, p, "double free");
        return false;
    }
    return true;
}

/* Frees of cached blocks between two purge ticks: a program cycling one
 * big buffer through the BigCache pays no clock read per free; due purges
 * still run (the purger thread, started by a tick, does most of them). */
#define HUGE_SLOW_TICK_EVERY 16
static _Atomic unsigned huge_free_count;

/* Returns whether the caller should run a purge tick. */
static bool own_free(struct huge_own *c, void *p, hak_call_t call) {
    if (!own_check(c, p, call)) return false;
    struct huge_tcache *t;
    if (c->map_size <= (size_t)policy_current()->bigcache_mb << 20 && (t = my_tcache()) &&
        atomic_load_relaxed(&t->slot) == NULL) {
        huge_slot_fill(t, c);
        return false;
    }
    stats_note_free(HAK_LANE_HUGE, c->user_size);
    if (!bigcache_put(c)) {
        own_unmap(c);
        return true;
    }
    /* a plain load and store, not a read-modify-write: a lost count only
     * shifts the next tick */
    unsigned n = atomic_load_relaxed(&huge_free_count);
    atomic_store_relaxed(&huge_free_count, n + 1);
    return n % HUGE_SLOW_TICK_EVERY == 0;
}

/* Resizes an own mapping, keeping room for guard bytes after the block;
 * returns the block or NULL (p untouched). */
static void *own_resize_room(struct huge_own *c, size_t new_size, size_t guard) {
    size_t ps = page_size();
    size_t new_user = hak_align_up(new_size, ps);
    size_t old_user = c->user_size;
    size_t need;
    if (HAK_ADD_OVERFLOW(c->user_off, new_user + guard + HAK_CHUNK - 1, &need)) return NULL;
    size_t new_map = hak_align_down(need, HAK_CHUNK);
    size_t old_map = c->map_size;
    uintptr_t base = (uintptr_t)c;

    if (new_map <= old_map) {
        /* Shrink (or grow within the last chunk): give back whole chunks
         * and the pages past the new end. */
        if (new_map < old_map) {
            segmap_unregister(base + new_map, (old_map - new_map) >> HAK_CHUNK_SHIFT);
            /* the remaining chunks keep their tail codes; the head is unchanged */
            os_unmap((void *)(base + new_map), old_map - new_map);
            stats_note_unmap(HAK_LANE_HUGE, old_map - new_map);
            c->map_size = new_map;
        }
        uintptr_t end_new = base + c->user_off + new_user;
        uintptr_t end_old = base + c->user_off + old_user;
        if (end_old > base + new_map) end_old = base + new_map;
        if (end_old > end_new) {
            os_purge((void *)end_new, end_old - end_new);
            stats_note_purge(HAK_LANE_HUGE, end_old - end_new);
        }
    } else if (os_grow_in_place(c, old_map, new_map) == 0) {
        /* the address space after us was free: now it is ours */
        segmap_register(base, new_map >> HAK_CHUNK_SHIFT, HAK_LANE_HUGE);
        stats_note_map(HAK_LANE_HUGE, new_map - old_map);
        c->map_size = new_map;
    } else {
        void *dst;
        size_t align = c->align;
        if (os_map_chunks(new_map, align > HAK_CHUNK ? align : HAK_CHUNK,
                          align > HAK_CHUNK ? HAK_CHUNK : 0, &dst) != 0)
            return NULL;
        segmap_unregister(base, old_map >> HAK_CHUNK_SHIFT);
        if (os_move(c, old_map, dst, new_map) != 0) {
            segmap_register(base, old_map >> HAK_CHUNK_SHIFT, HAK_LANE_HUGE);
            os_unmap(dst, new_map);
            return NULL;
        }
        c = dst;
        base = (uintptr_t)dst;
        c->map_size = new_map;
        segmap_register(base, new_map >> HAK_CHUNK_SHIFT, HAK_LANE_HUGE);
        stats_note_map(HAK_LANE_HUGE, new_map - old_map);
    }
    c->user_size = new_user;
    if (new_user >= old_user)
        stats_add(HAK_LANE_HUGE, HAK_CTR_alloc_bytes, new_user - old_user);
    else
        stats_add(HAK_LANE_HUGE, HAK_CTR_free_bytes, old_user - new_user);
    return (char *)base + c->user_off;
}

/* Resizes an own mapping; returns the block or NULL (p untouched). */
static void *own_resize(struct huge_own *c, void *p, size_t new_size) {
    if (!own_check(c, p, "realloc")) return NULL;
    size_t off = c->user_off; /* c is gone if the mapping moves */
    if (HAK_SECURE) {
        size_t end = off + hak_align_up(new_size, page_size());
        /* growing over the guard, or growing the mapping (mremap): off */
        if (c->guard_off < end || end + HUGE_GUARD > c->map_size) own_guard(c, false);
    }
    char *q = own_resize_room(c, new_size, HUGE_GUARD);
    struct huge_own *n = q ? (struct huge_own *)(q - off) : c;
    if (HAK_SECURE && n->guard_off >= n->map_size) n->guard_off = 0; /* unmapped tail */
    own_guard(n, true);
    return q;
}

/* ---- the lane contract ------------------------------------------------ */

static void *huge_alloc_aligned(size_t size, size_t align, bool *zeroed) {
    if (size > HAK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    /* the thread's batched frees first: the peak below must not count
     * blocks freed through the slot as live */
    huge_flush_stats();
    void *p;
    if (pagerun_fits(size, align)) {
        os_purge_tick();
        size_t bytes;
        p = pagerun_alloc(&huge_runs, size, align, zeroed, &bytes);
        if (p) stats_note_alloc(HAK_LANE_HUGE, bytes);
    } else {
        p = own_alloc(size, align, zeroed);
    }
    if (!p) errno = ENOMEM;
    return p;
}

static void *huge_alloc(size_t size, bool *zeroed) {
    return huge_alloc_aligned(size, HAK_MIN_ALIGN, zeroed);
}

void huge_free_slow(void *p, uintptr_t head, hak_call_t call) {
    int saved = errno; /* free never changes errno */
    bool tick = true;
    if (kind_at(head) == HUGE_OWN) {
        tick = own_free((struct huge_own *)head, p, call);
    } else {
        size_t bytes = pagerun_free(head, p, call);
        if (bytes) stats_note_free(HAK_LANE_HUGE, bytes);
    }
    if (tick) os_purge_tick();
    errno = saved;
}

static size_t huge_usable_size(const void *p, uintptr_t head, hak_call_t call) {
    if (kind_at(head) == HUGE_OWN) {
        struct huge_own *c = (struct huge_own *)head;
        return own_check(c, p, call) ? c->user_size : 0;
    }
    return pagerun_usable(head, p, call);
}

static void *huge_resize(void *p, uintptr_t head, size_t new_size) {
    if (kind_at(head) == HUGE_OWN) {
        struct huge_own *c = (struct huge_own *)head;
        /* a block that shrinks far below a chunk moves to a page run */
        if (pagerun_fits(new_size, c->align) && new_size < HAK_CHUNK / 4) return NULL;
        return own_resize(c, p, new_size);
    }
    if (!pagerun_fits(new_size, HAK_MIN_ALIGN)) return NULL;
    int64_t delta;
    if (!pagerun_resize(head, p, new_size, &delta)) return NULL;
    if (delta > 0) stats_add(HAK_LANE_HUGE, HAK_CTR_alloc_bytes, (uint64_t)delta);
    if (delta < 0) stats_add(HAK_LANE_HUGE, HAK_CTR_free_bytes, (uint64_t)-delta);
    return p;
}

static int huge_init(void) {
    if (HAK_CHUNK / os_page_size > PAGERUN_MAX_PAGES) return EINVAL;
    pagerun_arena_init(&huge_runs);
    meta_pool_init(&tc_pool, sizeof(struct huge_tcache), HAK_LANE_HUGE);
    os_purge_register(bigcache_purge);
    return 0;
}

/* A thread's state it no longer uses (it exited, or fork left it behind):
 * its counters to the globals, its block to the BigCache, it to the pool. */
static void tc_release(struct huge_tcache *t) {
    tc_flush_stats(t);
    pthread_mutex_lock(&tc_lock); /* the purger may be looking at t */
    tc_unlink(t);
    pthread_mutex_unlock(&tc_lock);
    slot_flush(t);
    meta_free(&tc_pool, t);
}

static void huge_thread_exit(void) {
    struct huge_tcache *t = huge_tls;
    if (!t->live) return;
    huge_tls = &tc_dead;
    tc_release(t);
    os_purge_tick(); /* its block has a purge due: make sure a purger runs */
}

static void huge_fork_prepare(void) {
    pthread_mutex_lock(&tc_lock);
    big_lock_take();
    pagerun_fork_prepare(&huge_runs);
    meta_fork_prepare(&tc_pool);
}
static void huge_fork_parent(void) {
    meta_fork_parent(&tc_pool);
    pagerun_fork_parent(&huge_runs);
    big_lock_drop();
    pthread_mutex_unlock(&tc_lock);
}
static void huge_fork_child(void) {
    meta_fork_child(&tc_pool);
    pagerun_fork_child(&huge_runs);
    big_lock_drop();
    pthread_mutex_unlock(&tc_lock);
    /* the other threads are not here: their counters to the globals, their
     * blocks to the BigCache, their state back to the pool */
    struct huge_tcache *t = tc_list;
    while (t) {
        struct huge_tcache *next = t->next;
        if (t != huge_tls) tc_release(t);
        t = next;
    }
}

const struct hak_lane huge_lane = {
    .name = "huge",
    .id = HAK_LANE_HUGE,
    .min_size = HAK_ACE_MAX,
    .max_size = SIZE_MAX,
    .init = huge_init,
    .alloc = huge_alloc,
    .alloc_aligned = huge_alloc_aligned,
    .free = huge_free_slow,
    .usable_size = huge_usable_size,
    .resize = huge_resize,
    .thread_exit = huge_thread_exit,
    .fork_prepare = huge_fork_prepare,
    .fork_parent = huge_fork_parent,
    .fork_child = huge_fork_child,
    .trim = NULL, /* the page-run purger unmaps the cache on malloc_trim */
    .flush_stats = huge_flush_stats,
};
