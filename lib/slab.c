/*
 * slab.c: the slow paths of the slab engine (see slab.h for the types, the
 * ownership rules and the lock order): heaps, slab refill and carving,
 * remote frees and their collection, segments, thread exit (abandon),
 * adoption, the orphan heap, trim and fork.
 */
#include "slab.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "options.h"
#include "os.h"
#include "policy.h"
#include "prof.h"
#include "segmap.h"

/* The sentinel slab: no free block, ever; the current slab of every class
 * of a heap that has none. Never written. */
static struct slab sentinel_slab = {.over = -(int32_t)SLAB_FLOOR_NONE,
                                    .fast_floor = SLAB_FLOOR_NONE};

#define S1 &sentinel_slab
#define S4 S1, S1, S1, S1
#define SENTINEL_CUR {S4, S4, S4, S4, S4, S4}
_Static_assert(SLAB_MAX_CLASSES == 24, "SENTINEL_CUR names every class");

struct slab_heap slab_heap_empty = {.cur = SENTINEL_CUR, .kind = SLAB_HEAP_EMPTY};
struct slab_heap slab_heap_dead = {.cur = SENTINEL_CUR, .kind = SLAB_HEAP_DEAD};

void hak_thread_attach(void);

uintptr_t slab_free_key = 0x9e3779b97f4a7c15u; /* replaced by a random key at init */
#if HAK_SECURE
uintptr_t slab_link_key = 0x6a09e667f3bcc909u; /* likewise */
/* The carve order's random state (not durable: any value will do). */
static HAK_TLS_IE uint64_t carve_rng;
#endif

void slab_link_corrupt(const void *p) {
    hak_report_corruption("malloc", p, "a free block was overwritten");
}

/* A heap flushes its counters every this many slow paths (and at exit). */
#define SLAB_STATS_FLUSH_EVERY 64

/* free_slabs of an empty segment: every slab but slab 0 */
#define SEG_ALL_FREE(L) ((uint32_t)(((uint64_t)1 << (HAK_CHUNK >> (L)->slab_shift)) - 2))

static inline struct slab_segment *segment_of(const struct slab *sl) {
    return (struct slab_segment *)hak_align_down((uintptr_t)sl, HAK_CHUNK);
}

static inline char *slab_base(const struct slab *sl) {
    struct slab_segment *s = segment_of(sl);
    return (char *)s + ((uintptr_t)sl->index << s->lane->slab_shift);
}

static unsigned class_of(const struct slab_lane *L, size_t size) {
    unsigned c = 0;
    while (L->class_size[c] < size) c++;
    return c;
}

/* ---- lists (owner only) ------------------------------------------------ */

static void slist_push(struct slab_list *l, struct slab *sl) {
    sl->prev = NULL;
    sl->next = l->head;
    if (l->head)
        l->head->prev = sl;
    else
        l->tail = sl;
    l->head = sl;
}

static void slist_append(struct slab_list *l, struct slab *sl) {
    sl->next = NULL;
    sl->prev = l->tail;
    if (l->tail)
        l->tail->next = sl;
    else
        l->head = sl;
    l->tail = sl;
}

static void slist_remove(struct slab_list *l, struct slab *sl) {
    if (sl->prev)
        sl->prev->next = sl->next;
    else
        l->head = sl->next;
    if (sl->next)
        sl->next->prev = sl->prev;
    else
        l->tail = sl->prev;
    sl->next = sl->prev = NULL;
}

static void seg_push(struct slab_segment **l, struct slab_segment *s) {
    s->prev = NULL;
    s->next = *l;
    if (*l) (*l)->prev = s;
    *l = s;
}

static void seg_remove(struct slab_segment **l, struct slab_segment *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        *l = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

/* ---- utilisation tiers (slow paths only) -------------------------------- */

/* Slabs of a segment that can hold blocks (slab 0 holds the header). */
static unsigned seg_slabs(const struct slab_lane *L) {
    return (unsigned)(HAK_CHUNK >> L->slab_shift) - 1;
}

/* Sets s's tier, keeping the lane's counts of segments per tier. */
static void tier_set(struct slab_lane *L, struct slab_segment *s, uint8_t tier) {
    if (s->tier == tier) return;
    _Atomic int64_t *count = stats_lanes[L->id].segs_tier;
    if (s->tier != SLAB_TIER_NONE) atomic_fetch_add_relaxed(&count[s->tier - 1], -1);
    if (tier != SLAB_TIER_NONE) atomic_fetch_add_relaxed(&count[tier - 1], 1);
    s->tier = tier;
}

/* s just had a slab assigned (up) or released: a HOT segment with fewer
 * than HAKMEM_SS_TIER_DOWN_THRESHOLD percent of its slabs in use becomes
 * DRAINING, a DRAINING one with more than HAKMEM_SS_TIER_UP_THRESHOLD HOT.
 * Only the move in the direction of the change is looked at: between the
 * two thresholds a segment keeps its tier (hysteresis). */
static void tier_update(struct slab_lane *L, struct slab_segment *s, bool up) {
    long long n = seg_slabs(L);
    long long used = (n - HAK_POPCOUNT32(s->free_slabs)) * 100;
    if (up && s->tier == SLAB_TIER_DRAINING && used > n * hak_opt(HAK_OPT_SS_TIER_UP_THRESHOLD))
        tier_set(L, s, SLAB_TIER_HOT);
    else if (!up && s->tier == SLAB_TIER_HOT &&
             used < n * hak_opt(HAK_OPT_SS_TIER_DOWN_THRESHOLD))
        tier_set(L, s, SLAB_TIER_DRAINING);
}

/* The list of h that holds s, one of h's segments: full ones on segs_full,
 * the others by tier. */
static struct slab_segment **heap_seg_list(struct slab_heap *h, const struct slab_segment *s) {
    if (s->free_slabs == 0) return &h->segs_full;
    return s->tier == SLAB_TIER_DRAINING ? &h->segs_drain : &h->segs;
}

/* One of h's segments with an unassigned slab, HOT first; NULL if none. */
static struct slab_segment *seg_with_room(struct slab_heap *h) {
    return h->segs ? h->segs : h->segs_drain;
}

/* Bit bit of s's free_slabs (s one of h's segments, on its list) becomes
 * set (a slab released) or clear (assigned): the tier and the heap list
 * follow. */
static void seg_set_free(struct slab_lane *L, struct slab_heap *h, struct slab_segment *s,
                         uint32_t bit, bool free) {
    struct slab_segment **from = heap_seg_list(h, s);
    if (free)
        s->free_slabs |= bit;
    else
        s->free_slabs &= ~bit;
    tier_update(L, s, !free);
    struct slab_segment **to = heap_seg_list(h, s);
    if (to != from) {
        seg_remove(from, s);
        seg_push(to, s);
    }
}

/* ---- remote frees ------------------------------------------------------ */

static void heap_notify_push(struct slab_heap *h, struct slab *sl) {
    atomic_store_relaxed(&sl->in_notify, 1);
    struct slab *old = atomic_load_relaxed(&h->notify);
    do {
        sl->notify_next = old;
    } while (!atomic_compare_exchange_weak_explicit(&h->notify, &old, sl, memory_order_release,
                                                    memory_order_relaxed));
}

/* Pushes the chain head..tail (n blocks, linked, tail's link unset) of
 * blocks of sl onto sl's remote list with one CAS, handing a slab its owner
 * set aside as full back to the owner. Any thread, lock-free. */
static void free_remote(struct slab *sl, void *head, void *tail, uint32_t n) {
    uintptr_t add = (uintptr_t)head + ((uintptr_t)n << SLAB_RC_SHIFT);
    uintptr_t old = atomic_load_relaxed(&sl->remote);
    for (;;) {
        uintptr_t count = old & ~(((uintptr_t)1 << SLAB_RC_SHIFT) - 1);
        if ((old & SLAB_RS_MASK) == SLAB_RS_NOTIFY) {
            uintptr_t busy = (old & ~SLAB_RS_MASK) | SLAB_RS_NOTIFYING;
            if (!atomic_cas_weak_acq_rel(&sl->remote, &old, busy)) continue;
            /* The owner cannot disown the slab while it is NOTIFYING. */
            heap_notify_push(atomic_load_acquire(&sl->owner), sl);
            old = busy;
            for (;;) {
                count = old & ~(((uintptr_t)1 << SLAB_RC_SHIFT) - 1);
                *(void **)tail = SLAB_LINK_ENCODE(slab_remote_list(old), tail);
                if (atomic_cas_weak_acq_rel(&sl->remote, &old, (count + add) | SLAB_RS_NORMAL))
                    return;
            }
        }
        *(void **)tail = SLAB_LINK_ENCODE(slab_remote_list(old), tail);
        if (atomic_cas_weak_acq_rel(&sl->remote, &old, (count + add) | (old & SLAB_RS_MASK))) {
            /* the first blocks back to an abandoned slab: the purger takes
             * such blocks back (reclaim_abandoned) */
            if (old == SLAB_RS_NEVER) os_purge_schedule(os_now_ns() + os_purge_delay_ns());
            return;
        }
    }
}

/* The slot of h->rbuf for blocks of sl: slabs of one segment take
 * consecutive slots (a segment's slabs are 256 bytes apart). */
static inline unsigned rbuf_slot(const struct slab *sl) {
    uintptr_t a = (uintptr_t)sl;
    return (unsigned)(((a >> 8) ^ (a >> HAK_CHUNK_SHIFT)) & (SLAB_RBUF_SLOTS - 1));
}

/* Pushes the chain of slot b of h (the calling thread's heap). */
static void rbuf_push(struct slab_heap *h, struct slab_rbuf *b) {
    free_remote(b->sl, b->head, b->tail, b->n);
    b->sl = NULL;
    h->rbuf_used--;
}

/* Pushes every chain h (the calling thread's heap) keeps. */
static void rbuf_flush(struct slab_heap *h) {
    for (unsigned i = 0; h->rbuf_used != 0 && i < SLAB_RBUF_SLOTS; i++)
        if (h->rbuf[i].sl) rbuf_push(h, &h->rbuf[i]);
}

/* Takes sl's whole remote list onto its local free list (owner, or the
 * holder of the lane lock for an abandoned slab), setting the state to
 * new_state when set_state, else keeping it. Returns the blocks taken.
 * The list's length comes with it in the remote word: onto an empty free
 * list (a refill) it is taken without touching its blocks. */
static uint32_t collect_remote(struct slab *sl, uintptr_t new_state, bool set_state) {
    uintptr_t old = atomic_load_relaxed(&sl->remote);
    for (;;) {
        if (slab_remote_list(old) == NULL && !set_state) return 0;
        uintptr_t nw = set_state ? new_state : (old & SLAB_RS_MASK);
        if (atomic_cas_weak_acq_rel(&sl->remote, &old, nw)) break;
    }
    void *list = slab_remote_list(old);
    if (!list) return 0;
    uint64_t t0 = prof_start();
    uint32_t n = slab_remote_count(old);
    if (sl->free == NULL && !HAK_DEBUG_CHECKS) {
        sl->free = list;
    } else {
        uint32_t walked = 1;
        void *tail = list;
        for (void *next; (next = SLAB_LINK_DECODE(*(void **)tail, tail)) != NULL; walked++) {
            slab_link_check(tail, next);
            tail = next;
        }
        hak_assert(walked == n);
        *(void **)tail = SLAB_LINK_ENCODE(sl->free, tail);
        sl->free = list;
    }
    hak_assert(slab_used(sl) >= n);
    slab_used_add(sl, -(int32_t)n);
    prof_stop(HAK_PROF_REMOTE_DRAIN, t0);
    return n;
}

/* Marks an avail slab with nothing free as full (owner). Fails when a
 * remote free came in meanwhile (the caller collects it instead), or when
 * the slab still sits on the notify list from an earlier hand-back (a
 * second push would corrupt that list; the next drain clears it). */
static bool try_mark_full(struct slab *sl) {
    if (atomic_load_acquire(&sl->in_notify)) return false;
    uintptr_t old = atomic_load_relaxed(&sl->remote);
    for (;;) {
        if (slab_remote_list(old) != NULL) return false;
        if ((old & SLAB_RS_MASK) == SLAB_RS_NOTIFYING) return false;
        if (atomic_cas_weak_acq_rel(&sl->remote, &old, SLAB_RS_NOTIFY)) return true;
    }
}

/* ---- segments ---------------------------------------------------------- */

/* Unmaps segment s (under L->lock: the purger walks L->all). */
static void segment_unmap(struct slab_lane *L, struct slab_segment *s) {
    tier_set(L, s, SLAB_TIER_NONE);
    L->mapped--;
    if (s->all_prev)
        s->all_prev->all_next = s->all_next;
    else
        L->all = s->all_next;
    if (s->all_next) s->all_next->all_prev = s->all_prev;
    segmap_unregister((uintptr_t)s, 1);
    os_unmap(s, HAK_CHUNK);
    stats_note_unmap(L->id, HAK_CHUNK);
}

/* The lane's cache of empty segments (under L->lock), its length and the
 * statistics' count kept with it. */
static void cache_push(struct slab_lane *L, struct slab_segment *s) {
    seg_push(&L->cache, s);
    L->cached++;
    atomic_fetch_add_relaxed(&stats_lanes[L->id].segs_cached, 1);
}
static void cache_remove(struct slab_lane *L, struct slab_segment *s) {
    seg_remove(&L->cache, s);
    L->cached--;
    atomic_fetch_sub_relaxed(&stats_lanes[L->id].segs_cached, 1);
}

/* An empty segment (every slab unassigned, off every heap list) goes to the
 * lane's cache, to be purged after the delay, or is unmapped when the cache
 * is full. */
static void segment_retire(struct slab_lane *L, struct slab_segment *s) {
    atomic_store_relaxed(&s->heap, NULL);
    tier_set(L, s, SLAB_TIER_NONE);
    pthread_mutex_lock(&L->lock);
    if (L->cached < (uint64_t)hak_opt((enum hak_opt_id)L->cache_opt)) {
        cache_push(L, s); /* its slabs are purged as they come due */
    } else {
        segment_unmap(L, s);
    }
    pthread_mutex_unlock(&L->lock);
}

/* A cached segment mapped on node (any when node is -1), taken off the
 * lane's cache; NULL when it has none. */
static struct slab_segment *cache_take(struct slab_lane *L, int node) {
    if (!L->cache) return NULL; /* a racy look: the cache is usually empty */
    pthread_mutex_lock(&L->lock);
    struct slab_segment *s = L->cache;
    while (s && node >= 0 && s->node != node) s = s->next;
    if (s) {
        cache_remove(L, s);
    }
    pthread_mutex_unlock(&L->lock);
    return s;
}

_Static_assert(HAK_OPT_MODE == 0, "slab_lane.cap_opt 0 means no cap");

/* Counts a segment about to be mapped against the lane's cap (under
 * L->lock); false when the cap is reached. */
static bool segment_reserve(struct slab_lane *L) {
    long long cap_mb = L->cap_opt ? hak_opt((enum hak_opt_id)L->cap_opt) : 0;
    if (cap_mb > 0 && (unsigned long long)L->mapped + 1 >
                          ((unsigned long long)cap_mb << 20) / HAK_CHUNK)
        return false;
    L->mapped++;
    return true;
}

/* Maps a fresh segment on node (-1: placement off); NULL when the lane's
 * cap is reached or the OS refuses. */
static struct slab_segment *segment_map(struct slab_lane *L, int node) {
    pthread_mutex_lock(&L->lock);
    bool ok = segment_reserve(L);
    pthread_mutex_unlock(&L->lock);
    if (!ok) return NULL;
    void *base;
    if (os_map_segment(0, &base) != 0) { /* small blocks: no THP advice */
        pthread_mutex_lock(&L->lock);
        L->mapped--;
        pthread_mutex_unlock(&L->lock);
        return NULL;
    }
    stats_note_map(L->id, HAK_CHUNK);
    struct slab_segment *s = base; /* fresh memory reads as zero */
    s->magic = SLAB_SEG_MAGIC;
    s->free_slabs = SEG_ALL_FREE(L);
    s->lane = L;
    s->node = node;
    for (unsigned i = 0; i < SLAB_MAX_PER_SEG; i++) s->slabs[i].index = (uint8_t)i;
    if (HAK_SECURE) {
        /* Guard pages: the last page of the header slab (after the
         * header, before the first blocks) and the segment's last page
         * (the last slab gives it up: slab_assign), so no overflow runs
         * from one segment into the next or into a header. */
        size_t ps = os_page_size;
        os_protect((char *)base + ((size_t)1 << L->slab_shift) - ps, ps, false);
        os_protect((char *)base + HAK_CHUNK - ps, ps, false);
    }
    segmap_register((uintptr_t)base, 1, L->id);
    pthread_mutex_lock(&L->lock);
    s->all_next = L->all;
    if (L->all) L->all->all_prev = s;
    L->all = s;
    pthread_mutex_unlock(&L->lock);
    return s;
}

static size_t reclaim_abandoned(struct slab_lane *L);

/* A segment for h: from the lane's cache (one mapped on the calling
 * thread's NUMA node under HAKMEM_NUMA=1), or freshly mapped; when the cap
 * is reached or the OS refuses, another node's cached one, or a fresh one
 * once the empty abandoned segments are unmapped. NULL when none of that
 * gives one. A new segment starts HOT. */
static struct slab_segment *segment_new(struct slab_lane *L, struct slab_heap *h) {
    int node = os_current_node();
    struct slab_segment *s = cache_take(L, node);
    if (!s) s = segment_map(L, node);
    if (!s && node >= 0) s = cache_take(L, -1);
    if (!s) {
        pthread_mutex_lock(&L->lock);
        size_t freed = reclaim_abandoned(L);
        pthread_mutex_unlock(&L->lock);
        if (freed) s = segment_map(L, node);
        if (!s) return NULL;
    }
    atomic_store_relaxed(&s->heap, h);
    tier_set(L, s, SLAB_TIER_HOT);
    seg_push(&h->segs, s);
    return s;
}

static void drain_notify(struct slab_heap *h);

/* Gives slab sl (empty, off every list) back to its segment (owner); an
 * emptied segment leaves the heap. A stale entry of sl on h's notify list
 * must not outlive the slab (its segment may be unmapped): drain says
 * whether to drain the list first; heap_abandon discards the list unread
 * instead. */
static void slab_release(struct slab_heap *h, struct slab *sl, bool drain) {
    struct slab_segment *s = segment_of(sl);
    struct slab_lane *L = s->lane;
    if (drain && atomic_load_acquire(&sl->in_notify)) drain_notify(h);
    /* (without drain, the list that held it is discarded unread) */
    atomic_store_relaxed(&sl->in_notify, 0);
    stats_note_slabs(L->id, sl->cls, -1);
    sl->free = NULL;
    slab_used_set(sl, 0);
    slab_shape_set(sl, 0, sl->cls);
    slab_carved_set(sl, 0);
    sl->capacity = 0;
    sl->where = SLAB_ON_NONE;
    slab_floor_set(sl, SLAB_FLOOR_NONE);
    atomic_store_relaxed(&sl->remote, SLAB_RS_NORMAL);
    sl->freed_at = os_now_ns();
    atomic_store_release(&sl->pstate, SLAB_P_DIRTY); /* the purger may take it now */
    os_purge_schedule(sl->freed_at + os_purge_delay_ns());
    seg_set_free(L, h, s, (uint32_t)1 << sl->index, true);
    if (s->free_slabs == SEG_ALL_FREE(L)) {
        seg_remove(heap_seg_list(h, s), s);
        segment_retire(L, s);
    }
}

static void segment_adopt(struct slab_lane *L, struct slab_heap *h, struct slab_segment *a);

/* ---- heaps ------------------------------------------------------------- */

/* Sets up h, zero already (fresh from meta_alloc, or static). */
static void heap_init_zeroed(struct slab_heap *h, uint32_t kind) {
    for (unsigned c = 0; c < SLAB_MAX_CLASSES; c++) h->cur[c] = &sentinel_slab;
    h->kind = kind;
}

/* Sizes h's block cache: per class, as many blocks as fit in the lane's
 * option's KiB (at least one, at most the lane's tc_cap, so that the cache
 * holds on to few slabs), none without the option or in the hardened
 * build (SLAB_TC_BUILT). */
static void heap_tc_size_class(struct slab_heap *h, const struct slab_lane *L, unsigned c) {
    size_t bytes = L->tc_opt && SLAB_TC_BUILT ? (size_t)hak_opt(L->tc_opt) << 10 : 0;
    if (bytes == 0) return;
    size_t n = bytes / L->class_size[c];
    h->tc_max[c] = (uint16_t)(n < 1 ? 1 : n > L->tc_cap ? L->tc_cap : n);
    h->tc_room[c] = h->tc_max[c];
}

static void heap_tc_size(struct slab_heap *h, const struct slab_lane *L) {
    for (unsigned c = 0; c < L->nclasses; c++) heap_tc_size_class(h, L, c);
}

static struct slab_heap *heap_alloc(struct slab_lane *L) {
    struct slab_heap *h = meta_alloc(&L->heaps); /* zeroed */
    if (h) {
        heap_init_zeroed(h, SLAB_HEAP_LIVE);
        h->lane = L;
        heap_tc_size(h, L);
    }
    return h;
}

void slab_stats_exact_flush(struct slab_heap *h) {
    h->stat_ops = 0;
    if (h->kind == SLAB_HEAP_LIVE) stats_batch_flush(&h->stats, h->lane->id, h->lane->class_size,
                                                     h->lane->nclasses);
}

/* The lanes on the engine, for the purger. */
static struct slab_lane *lanes[HAK_LANE_COUNT];
static int nlanes;

/* The purger (os.h): purges cached segments whose delay is over; with all
 * (malloc_trim, or the OS refusing memory) unmaps the whole cache. */
/* Segments abandoned by exited threads (under L->lock, which keeps adopters
 * away): takes back what other threads freed into them, gives slabs left
 * empty back to their segment (to be purged after the delay) and unmaps
 * segments left empty. Returns bytes unmapped. */
static size_t reclaim_abandoned(struct slab_lane *L) {
    size_t bytes = 0;
    uint64_t now = os_now_ns();
    unsigned nslabs = (unsigned)(HAK_CHUNK >> L->slab_shift);
    struct slab_segment *s = L->abandoned;
    while (s) {
        struct slab_segment *next = s->next;
        for (unsigned i = 1; i < nslabs; i++) {
            if (s->free_slabs & ((uint32_t)1 << i)) continue;
            struct slab *sl = &s->slabs[i];
            collect_remote(sl, SLAB_RS_NEVER, true);
            if (slab_used(sl) != 0) continue;
            stats_note_slabs(L->id, sl->cls, -1);
            sl->free = NULL;
            slab_shape_set(sl, 0, sl->cls);
            slab_carved_set(sl, 0);
            sl->capacity = 0;
            atomic_store_relaxed(&sl->in_notify, 0);
            atomic_store_relaxed(&sl->remote, SLAB_RS_NORMAL);
            sl->freed_at = now;
            atomic_store_release(&sl->pstate, SLAB_P_DIRTY);
            s->free_slabs |= (uint32_t)1 << i;
            tier_update(L, s, false);
        }
        if (s->free_slabs == SEG_ALL_FREE(L)) {
            seg_remove(&L->abandoned, s);
            segment_unmap(L, s);
            bytes += HAK_CHUNK;
        }
        s = next;
    }
    return bytes;
}

/* Purges the unassigned slabs of s that have been free for the delay (all
 * of them when all); under L->lock. */
static size_t purge_segment(struct slab_lane *L, struct slab_segment *s, bool all, uint64_t now,
                            uint64_t *next_due) {
    size_t bytes = 0, slab = (size_t)1 << L->slab_shift;
    uint64_t delay = os_purge_delay_ns();
    unsigned nslabs = (unsigned)(HAK_CHUNK >> L->slab_shift);
    for (unsigned i = 1; i < nslabs; i++) {
        struct slab *sl = &s->slabs[i];
        uint8_t st = atomic_load_acquire(&sl->pstate);
        if (st != SLAB_P_DIRTY) continue;
        uint64_t due = sl->freed_at + delay;
        if (!all && due > now) {
            if (due < *next_due) *next_due = due;
            continue;
        }
        if (!atomic_compare_exchange_strong_explicit(&sl->pstate, &st, SLAB_P_PURGING,
                                                     memory_order_acquire, memory_order_relaxed))
            continue; /* its owner took it back */
        if (os_purge((char *)s + i * slab, slab) == 0) {
            stats_note_purge(L->id, slab);
            bytes += slab;
        }
        atomic_store_release(&sl->pstate, SLAB_P_CLEAN);
    }
    return bytes;
}

/* The purger (os.h): purges slabs that have stayed unassigned for the
 * delay, in every segment of every lane; with all (malloc_trim, or the OS
 * refusing memory) purges them all and unmaps the cache of empty segments. */
static size_t slab_purge(bool all, uint64_t now, uint64_t *next_due) {
    size_t bytes = 0;
    for (int i = 0; i < nlanes; i++) {
        struct slab_lane *L = lanes[i];
        pthread_mutex_lock(&L->lock);
        if (all) {
            while (L->cache) {
                struct slab_segment *s = L->cache;
                cache_remove(L, s);
                segment_unmap(L, s);
                bytes += HAK_CHUNK;
            }
        }
        bytes += reclaim_abandoned(L);
        for (struct slab_segment *s = L->all; s; s = s->all_next)
            bytes += purge_segment(L, s, all, now, next_due);
        pthread_mutex_unlock(&L->lock);
    }
    return bytes;
}

void slab_lane_init(struct slab_lane *L) {
    /* the remote word counts a slab's blocks in 16 bits (16-byte blocks) */
    hak_assert(((size_t)1 << L->slab_shift) / 16 < ((size_t)1 << (64 - SLAB_RC_SHIFT)));
    if (nlanes == 0) slab_free_key = os_random_word() | 1;
#if HAK_SECURE
    if (nlanes == 0) slab_link_key = os_random_word();
#endif
    pthread_mutex_init(&L->lock, NULL);
    pthread_mutex_init(&L->orphan_lock, NULL);
    meta_pool_init(&L->heaps, sizeof(struct slab_heap), L->id);
    memset(&L->orphan, 0, sizeof L->orphan);
    heap_init_zeroed(&L->orphan, SLAB_HEAP_ORPHAN);
    L->orphan.lane = L;
    if (nlanes == 0) os_purge_register(slab_purge);
    lanes[nlanes++] = L;
}

/* Takes back the slabs remote freers handed back (owner). */
static void drain_notify(struct slab_heap *h) {
    if (atomic_load_relaxed(&h->notify) == NULL) return;
    struct slab *sl = atomic_exchange_acq_rel(&h->notify, NULL);
    while (sl) {
        struct slab *next = sl->notify_next;
        sl->notify_next = NULL;
        atomic_store_release(&sl->in_notify, 0);
        if (sl->where == SLAB_ON_FULL && atomic_load_relaxed(&sl->owner) == h) {
            slist_remove(&h->full[sl->cls], sl);
            slist_append(&h->avail[sl->cls], sl);
            sl->where = SLAB_ON_AVAIL;
            slab_floor_set(sl, 1);
        }
        sl = next;
    }
}

/* Carves never-used blocks onto the free list: carve_bytes' worth, at least
 * carve_min blocks, at most what the slab has left. */
static bool carve(struct slab_lane *L, struct slab *sl) {
    uint32_t carved = sl->carved;
    if (carved >= sl->capacity) return false;
    uint32_t bs = sl->block_size;
    uint32_t n = L->carve_bytes / bs;
    if (n < L->carve_min) n = L->carve_min;
    uint32_t left = (sl->capacity - carved) / bs;
    if (n > left) n = left;
    char *first = slab_base(sl) + carved;
#if HAK_SECURE
    /* Hardened: the n blocks go on the list in a random order (block
     * start + i * step mod n, step prime to n), so that where the next
     * block comes from cannot be predicted. */
    uint64_t r = carve_rng;
    if (r == 0) r = os_random_word() | 1;
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    carve_rng = r;
    uint32_t start = (uint32_t)(r % n), step = 1;
    for (uint32_t tries = 0; n > 2 && tries < 8; tries++) {
        uint32_t cand = 1 + (uint32_t)((r >> 20) + tries * 0x9e37u) % (n - 1);
        uint32_t a = cand, b = n; /* gcd(cand, n) == 1? */
        while (b) {
            uint32_t t = a % b;
            a = b;
            b = t;
        }
        if (a == 1) {
            step = cand;
            break;
        }
    }
    void *head = sl->free;
    for (uint32_t i = 0, k = start; i < n; i++, k = (k + step) % n) {
        char *b = first + (size_t)k * bs;
        *(void **)b = SLAB_LINK_ENCODE(head, b);
        head = b;
    }
    sl->free = head;
#else
    for (uint32_t i = 0; i + 1 < n; i++)
        *(void **)(first + (size_t)i * bs) = first + (size_t)(i + 1) * bs;
    *(void **)(first + (size_t)(n - 1) * bs) = sl->free;
    sl->free = first;
#endif
    slab_carved_set(sl, carved + n * bs);
    return true;
}

/* Gives sl a free block if it can (owner). */
static bool refill(struct slab_lane *L, struct slab *sl) {
    if (sl->free) return true;
    if (slab_remote_list(atomic_load_relaxed(&sl->remote)) != NULL && collect_remote(sl, 0, false))
        return true;
    return carve(L, sl);
}

/* Picks an unassigned slab of s (which has one) and takes it from the
 * purger: CLEAN or DIRTY to ASSIGNED; a slab being purged is skipped (or
 * waited for, when it is the only one). */
static unsigned take_slab(struct slab_segment *s) {
    for (;;) {
        for (uint32_t m = s->free_slabs; m; m &= m - 1) {
            unsigned i = (unsigned)HAK_CTZ64(m);
            _Atomic uint8_t *ps = &s->slabs[i].pstate;
            uint8_t st = atomic_load_relaxed(ps);
            while (st != SLAB_P_PURGING) {
                if (atomic_compare_exchange_weak_explicit(ps, &st, SLAB_P_ASSIGNED,
                                                          memory_order_acquire,
                                                          memory_order_relaxed))
                    return i;
            }
        }
        sched_yield();
    }
}

/* Assigns an unassigned slab of h to class cls, adopting an abandoned
 * segment or mapping a new one when h has none; NULL when out of memory. */
static struct slab *slab_assign(struct slab_lane *L, struct slab_heap *h, unsigned cls) {
    struct slab_segment *s = seg_with_room(h);
    if (!s) {
        pthread_mutex_lock(&L->lock);
        struct slab_segment *a = L->abandoned;
        if (a) seg_remove(&L->abandoned, a);
        pthread_mutex_unlock(&L->lock);
        if (a) {
            segment_adopt(L, h, a);
            struct slab *sl = h->avail[cls].head;
            if (sl && refill(L, sl)) return sl; /* the adopted segment serves cls */
            s = seg_with_room(h);
        }
        if (!s) s = segment_new(L, h);
        if (!s) return NULL;
    }
    unsigned i = take_slab(s);
    seg_set_free(L, h, s, (uint32_t)1 << i, false);
    struct slab *sl = &s->slabs[i];
    uint32_t bs = L->class_size[cls];
    uint32_t slab_size = (uint32_t)1 << L->slab_shift;
    slab_shape_set(sl, bs, (uint8_t)cls);
    /* -Dsecure: the segment's last page is a guard (segment_new) */
    uint32_t room = slab_size;
    if (HAK_SECURE && i == (HAK_CHUNK >> L->slab_shift) - 1) room -= (uint32_t)os_page_size;
    sl->capacity = room / bs * bs;
    slab_carved_set(sl, 0);
    slab_used_set(sl, 0);
    sl->free = NULL;
    stats_note_slabs(L->id, cls, 1);
    atomic_store_relaxed(&sl->remote, SLAB_RS_NORMAL);
    atomic_store_release(&sl->owner, h);
    slist_push(&h->avail[cls], sl);
    sl->where = SLAB_ON_AVAIL;
    slab_floor_set(sl, 1);
    carve(L, sl);
    return sl;
}

/* fast_floor of a slab on the full list: the owner's frees into it take
 * the fast path (onto its free list; it stays on the full list) until an
 * eighth of its blocks are free, and the free after that moves it to the
 * avail list. Moving it at the first free made a working set of nearly
 * full slabs pay a slow free and a slow malloc per block replaced. A slab
 * of fewer than 16 blocks moves at its first free: a block hidden on the
 * full list is an eighth of it or more, memory no malloc can reach. */
static uint32_t full_floor(const struct slab *sl) {
    uint32_t n = sl->capacity / sl->block_size;
    return n < 16 ? n : n - n / 8;
}

/* Makes sl (a slab of h's avail list, or the sentinel) the current slab of
 * class cls; the one it replaces keeps the avail list's fast_floor. */
static void set_cur(struct slab_heap *h, unsigned cls, struct slab *sl) {
    struct slab *old = h->cur[cls];
    if (old == sl) return;
    if (old != &sentinel_slab && old->where == SLAB_ON_AVAIL) slab_floor_set(old, 1);
    if (sl != &sentinel_slab) slab_floor_set(sl, 0);
    h->cur[cls] = sl;
}

/* Finds or makes a slab of class cls with a free block and makes it the
 * current one (owner). NULL when out of memory. */
static struct slab *find_slab(struct slab_lane *L, struct slab_heap *h, unsigned cls) {
    drain_notify(h); /* before any slab is marked full: see try_mark_full */
    struct slab *sl = h->cur[cls];
    if (sl != &sentinel_slab && refill(L, sl)) return sl;
    sl = h->avail[cls].head;
    while (sl) {
        struct slab *next = sl->next;
        if (refill(L, sl)) {
            set_cur(h, cls, sl);
            return sl;
        }
        if (try_mark_full(sl)) {
            if (h->cur[cls] == sl) set_cur(h, cls, &sentinel_slab);
            slist_remove(&h->avail[cls], sl);
            slist_push(&h->full[cls], sl);
            sl->where = SLAB_ON_FULL;
            slab_floor_set(sl, full_floor(sl));
        } else if (refill(L, sl)) {
            set_cur(h, cls, sl);
            return sl;
        }
        sl = next;
    }
    sl = slab_assign(L, h, cls);
    set_cur(h, cls, sl ? sl : &sentinel_slab);
    return sl;
}

static void flush_stats(struct slab_lane *L, struct slab_heap *h) {
    stats_batch_flush(&h->stats, L->id, L->class_size, L->nclasses);
}

static void *alloc_from(struct slab_lane *L, struct slab_heap *h, unsigned cls) {
    struct slab *sl = find_slab(L, h, cls);
    if (!sl) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = slab_pop_fast(h, cls);
    hak_assert(p != NULL);
    return p;
}

/* An allocation for a thread without a heap (torn down): from the lane's
 * orphan heap, under orphan_lock. Its blocks are freed as remote frees by
 * every thread, so it needs no owner thread. */
static void *orphan_alloc(struct slab_lane *L, unsigned cls) {
    pthread_mutex_lock(&L->orphan_lock);
    void *p = alloc_from(L, &L->orphan, cls);
    flush_stats(L, &L->orphan);
    pthread_mutex_unlock(&L->orphan_lock);
    return p;
}

/* alloc_from timed as a refill (HAKMEM_PROF=1). */
static HAK_NOINLINE HAK_COLD void *alloc_from_timed(struct slab_lane *L, struct slab_heap *h,
                                                    unsigned cls) {
    uint64_t t0 = prof_start();
    void *p = alloc_from(L, h, cls);
    prof_stop(HAK_PROF_REFILL, t0);
    return p;
}

void *slab_alloc_class(struct slab_lane *L, struct slab_heap **tls, unsigned cls) {
    struct slab_heap *h = *tls;
    if (HAK_UNLIKELY(h->kind != SLAB_HEAP_LIVE)) {
        if (h->kind == SLAB_HEAP_DEAD) return orphan_alloc(L, cls);
        if (!hak_ensure_init()) {
            errno = ENOMEM;
            return NULL;
        }
        h = heap_alloc(L);
        if (!h) {
            errno = ENOMEM;
            return NULL;
        }
        *tls = h;
        hak_thread_attach();
    }
    /* a class whose cache a thread that only freed it turned off (see
     * slab_free_slow_tc): it mallocs the class now */
    if (HAK_UNLIKELY(h->tc_max[cls] == 0)) heap_tc_size_class(h, L, cls);
    void *p = slab_pop_fast(h, cls);
    if (p) return p;
    os_purge_tick();
    if (!HAK_BENCH_MINIMAL) h->stats.cls[HAK_CCTR_refills][cls]++;
    if (++h->slow_calls >= SLAB_STATS_FLUSH_EVERY) {
        h->slow_calls = 0;
        if (!HAK_BENCH_MINIMAL) flush_stats(L, h);
        /* other heaps' blocks it holds go home now and then (scanning the
         * buffer at every slow path cost larson 2 instructions per op) */
        if (h->rbuf_used) rbuf_flush(h);
    }
    if (HAK_UNLIKELY(prof_enabled())) return alloc_from_timed(L, h, cls);
    return alloc_from(L, h, cls);
}

void *slab_alloc_slow(struct slab_lane *L, struct slab_heap **tls, unsigned cls) {
    policy_tick(); /* a registered controller (the learner) starts lazily */
    return slab_alloc_class(L, tls, cls);
}

/* ---- free -------------------------------------------------------------- */

/* Whether the heap keeps empty slab sl on its class's list: fewer than the
 * policy's cap_mid other empty slabs are there (lanes with use_cap_mid;
 * read at this flush time, never on a fast path). */
static bool keep_empty(struct slab_heap *h, const struct slab *sl) {
    const struct slab_lane *L = segment_of(sl)->lane;
    if (!L->use_cap_mid) return false;
    uint32_t cap = policy_current()->cap_mid[sl->cls];
    uint32_t empty = 0;
    for (const struct slab *o = h->avail[sl->cls].head; o && empty < cap; o = o->next)
        if (o != sl && slab_used(o) == 0) empty++;
    return empty < cap;
}

/* The slab of h got a block back while on the full list, or became empty
 * (owner). */
static void local_free_fixup(struct slab_heap *h, struct slab *sl) {
    if (sl->where == SLAB_ON_FULL) {
        /* leave NOTIFY: the owner has it back */
        uintptr_t old = atomic_load_relaxed(&sl->remote);
        while ((old & SLAB_RS_MASK) == SLAB_RS_NOTIFY &&
               !atomic_cas_weak_acq_rel(&sl->remote, &old, old & ~SLAB_RS_MASK)) {
        }
        slist_remove(&h->full[sl->cls], sl);
        slist_append(&h->avail[sl->cls], sl);
        sl->where = SLAB_ON_AVAIL;
        slab_floor_set(sl, 1);
        /* The current slab has no free block left: this one becomes
         * current, so that the next mallocs of the class pop the blocks
         * just freed on the fast path instead of searching the avail list
         * for them (a working set of full slabs replacing blocks at random
         * otherwise pays a slow malloc per slow free). */
        struct slab *cur = h->cur[sl->cls];
        if (cur == &sentinel_slab ||
            (cur->free == NULL && cur->carved >= cur->capacity))
            set_cur(h, sl->cls, sl);
    }
    if (slab_used(sl) == 0 && h->cur[sl->cls] != sl &&
        (atomic_load_relaxed(&sl->remote) & SLAB_RS_MASK) == SLAB_RS_NORMAL &&
        !keep_empty(h, sl)) {
        slist_remove(&h->avail[sl->cls], sl);
        slab_release(h, sl, true);
    }
}

/* Frees p, a block of another heap's slab sl (marked freed already), for
 * the calling thread, whose heap is me: into a
 * chain of me's remote buffer, or straight onto sl's remote list for a
 * thread without a live heap and for big blocks. counted: the free is in
 * me's counters already (a block from me's block cache: only the remote
 * free is counted here). */
static void free_mt(struct slab_lane *L, struct slab *sl, void *p, struct slab_heap *me,
                    bool counted) {
    uint32_t bs = sl->block_size_mt;
    unsigned cls = sl->cls_mt; /* read before the push: the owner may reuse the slab */
    if (HAK_UNLIKELY(me->kind == SLAB_HEAP_EMPTY)) {
        /* a thread that frees before it allocates (a consumer) gets its
         * heap here: its counters and its remote buffer live there */
        struct slab_heap *h = heap_alloc(L);
        if (h) {
            *L->tls() = me = h;
            hak_thread_attach();
        }
    }
    if (HAK_UNLIKELY(me->kind != SLAB_HEAP_LIVE)) {
        free_remote(sl, p, p, 1);
        if (!HAK_BENCH_MINIMAL) {
            stats_note_free(L->id, bs);
            atomic_fetch_add_relaxed(&stats_classes[L->id][cls].c[HAK_CCTR_frees], 1);
            atomic_fetch_add_relaxed(&stats_classes[L->id][cls].c[HAK_CCTR_remote_frees], 1);
        }
        os_purge_tick();
        return;
    }
    if (!HAK_BENCH_MINIMAL) {
        if (!counted) me->stats.cls[HAK_CCTR_frees][cls]++;
        me->stats.cls[HAK_CCTR_remote_frees][cls]++;
    }
    if (!counted) slab_count_op(me);
    struct slab_rbuf *b = &me->rbuf[rbuf_slot(sl)];
    if (HAK_LIKELY(b->sl == sl)) {
        *(void **)p = SLAB_LINK_ENCODE(b->head, p);
        b->head = p;
        if (++b->n < b->cap) return;
        rbuf_push(me, b);
    } else {
        if (b->sl) rbuf_push(me, b);
        uint32_t cap = SLAB_RBUF_BYTES / bs;
        if (cap > SLAB_RBUF_BLOCKS) cap = SLAB_RBUF_BLOCKS;
        if (cap >= SLAB_RBUF_MIN_BLOCKS) {
            b->sl = sl;
            b->head = b->tail = p;
            b->n = 1;
            b->cap = cap;
            me->rbuf_used++;
            return;
        }
        free_remote(sl, p, p, 1);
    }
    /* a push: the rare events a free-only thread sees */
    if (!HAK_BENCH_MINIMAL && ++me->slow_calls >= SLAB_STATS_FLUSH_EVERY) {
        me->slow_calls = 0;
        flush_stats(L, me);
    }
    os_purge_tick();
}

/* Whether p starts a carved block of sl (in a lane whose slabs are
 * 1 << shift bytes), by the copy of the slab's shape every thread may read:
 * as the fast paths check it (slab_block_index_ok). False for an
 * unassigned slab (nothing carved). */
static bool block_start_mt(const struct slab *sl, const void *p, unsigned shift) {
    uint32_t off = (uint32_t)((uintptr_t)p & (((uintptr_t)1 << shift) - 1));
    return slab_block_index_ok(off, sl->div_inv_mt, sl->div_rot_mt,
                               atomic_load_relaxed(&sl->ncarved_mt));
}

static HAK_NOINLINE void free_generic(struct slab *sl, void *p, struct slab_heap *me,
                                      hak_call_t call);

/* The fast path's misses. The one that is not rare (a consumer's frees) is
 * first, in a frame of its own: another heap's block whose slab has a chain
 * in me's remote buffer with room, checked as the fast path checks a local
 * block. Everything else goes to free_generic. The empty and dead heaps'
 * buffers hold no chain. */
void slab_free_slow(struct slab *sl, void *p, struct slab_heap *me, hak_call_t call) {
    struct slab_rbuf *b = &me->rbuf[rbuf_slot(sl)];
    if (me->rbuf_used != 0 && HAK_LIKELY(b->sl == sl && b->n + 1 < b->cap)) {
        if (HAK_LIKELY(block_start_mt(sl, p, segment_of(sl)->lane->slab_shift) &&
                       *slab_mark_of(p) != slab_mark(p))) {
            *slab_mark_of(p) = slab_mark(p);
            *(void **)p = SLAB_LINK_ENCODE(b->head, p);
            b->head = p;
            b->n++;
            if (!HAK_BENCH_MINIMAL) {
                unsigned cls = sl->cls_mt;
                me->stats.cls[HAK_CCTR_frees][cls]++;
                me->stats.cls[HAK_CCTR_remote_frees][cls]++;
            }
            slab_count_op(me);
            return;
        }
    }
    free_generic(sl, p, me, call);
}

static void free_generic(struct slab *sl, void *p, struct slab_heap *me, hak_call_t call) {
    struct slab_segment *s = segment_of(sl);
    struct slab_lane *L = s->lane;
    /* the shape other threads read (this may be one) */
    if (s->magic != SLAB_SEG_MAGIC || sl->block_size_mt == 0) {
        hak_report_misuse(call, p, "invalid pointer (not a block)");
        return;
    }
    if (!block_start_mt(sl, p, L->slab_shift)) {
        hak_report_misuse(call, p, "invalid pointer (inside a block)");
        return;
    }
    bool mine = atomic_load_relaxed(&sl->owner) == me;
    if (*slab_mark_of(p) == slab_mark(p) || (mine && sl->free == p)) {
        hak_report_misuse(call, p, "double free");
        return;
    }
    *slab_mark_of(p) = slab_mark(p);
    if (!mine) {
        free_mt(L, sl, p, me, false);
        return;
    }
    if (slab_used(sl) == 0) {
        hak_report_misuse(call, p, "double free");
        return;
    }
    if (HAK_DEBUG_CHECKS) {
        for (void *q = sl->free; q; q = SLAB_LINK_DECODE(*(void **)q, q)) {
            if (q == p) {
                hak_report_misuse(call, p, "double free");
                return;
            }
        }
    }
    *(void **)p = SLAB_LINK_ENCODE(sl->free, p);
    sl->free = p;
    slab_used_add(sl, -1);
    if (!HAK_BENCH_MINIMAL) me->stats.cls[HAK_CCTR_frees][sl->cls]++;
    local_free_fixup(me, sl);
    os_purge_tick();
}

/* ---- the block cache (slab.h, struct slab_heap) ----------------------- */

/* Gives p, a block of me's block cache (marked freed, counted as freed by
 * me, still used by its slab), back to its slab: onto the slab's list when
 * me owns it, else as a remote free. */
static void tc_give_back(struct slab_lane *L, struct slab_heap *me, void *p) {
    uintptr_t seg = (uintptr_t)p & ~(uintptr_t)HAK_CHUNK_MASK;
    struct slab *sl = slab_of(p, seg, L->slab_shift);
    if (atomic_load_relaxed(&sl->owner) != me) {
        free_mt(L, sl, p, me, true);
        return;
    }
    *(void **)p = SLAB_LINK_ENCODE(sl->free, p);
    sl->free = p;
    slab_used_add(sl, -1);
    local_free_fixup(me, sl);
}

/* Empties me's cache of class cls: every block back to its slab. */
static void tc_flush(struct slab_lane *L, struct slab_heap *me, unsigned cls) {
    void *p = me->tc[cls];
    me->tc[cls] = NULL;
    me->tc_room[cls] = me->tc_max[cls];
    while (p) {
        void *next = SLAB_LINK_DECODE(*(void **)p, p);
        tc_give_back(L, me, p);
        p = next;
    }
}

/* Gives every block of h's block cache back to its slab. */
static void tc_flush_all(struct slab_lane *L, struct slab_heap *h) {
    for (unsigned c = 0; c < L->nclasses; c++)
        if (h->tc[c]) tc_flush(L, h, c);
}

#define SLAB_TC_IDLE_OVERFLOWS 64 /* see slab_free_slow_tc */

/* slab_free_fast out of line (for a lane with the cache: the slab list's
 * free is its overflow), so that slab_free_slow_tc saves no register. */
static HAK_NOINLINE void free_own(struct slab_lane *L, void *p, uintptr_t seg,
                                  struct slab_heap *me, hak_call_t call) {
    slab_free_fast(p, seg, L->slab_shift, me, call);
}

/* Turns off me's cache of class cls (its thread only frees the class). */
static HAK_NOINLINE HAK_COLD void tc_turn_off(struct slab_lane *L, struct slab_heap *me,
                                              unsigned cls) {
    me->tc_idle_overflows[cls] = 0;
    tc_flush(L, me, cls);
    me->tc_max[cls] = 0;
    me->tc_room[cls] = 0;
}

/* slab_free_fast_tc's misses. A full cache, or none (a thread without a
 * heap of its own, the option 0), and p goes where it went without the
 * cache: onto its slab's list when the thread owns the slab
 * (slab_free_fast, which checks it again), else to the remote path
 * (slab_free_slow's first case). A cache that overflows
 * SLAB_TC_IDLE_OVERFLOWS times with no malloc of its class in between
 * belongs to a thread that only frees the class (a consumer): it gives its
 * blocks back and turns itself off for the class until the thread's next
 * slow malloc of it (slab_alloc_class). The rest (p misused while the
 * cache has room) goes to slab_free_slow, which reports it. */
void slab_free_slow_tc(void *p, struct slab_heap *me, hak_call_t call) {
    uintptr_t seg = (uintptr_t)p & ~(uintptr_t)HAK_CHUNK_MASK;
    struct slab_lane *L = ((struct slab_segment *)seg)->lane;
    struct slab *sl = slab_of(p, seg, L->slab_shift);
    unsigned cls = sl->cls_mt;
    if (me->tc_room[cls] != 0) {
        slab_free_slow(sl, p, me, call); /* misuse */
        return;
    }
    /* p first (a double free of a cached block is reported before the
     * cache gives its blocks back, which may release p's slab) */
    if (atomic_load_relaxed(&((struct slab_segment *)seg)->heap) == me)
        free_own(L, p, seg, me, call);
    else
        slab_free_slow(sl, p, me, call);
    if (me->tc_max[cls] != 0 && !HAK_BENCH_MINIMAL) {
        uint64_t allocs = me->stats.cls[HAK_CCTR_allocs][cls];
        if (allocs != me->tc_overflow_allocs[cls]) {
            me->tc_overflow_allocs[cls] = allocs;
            me->tc_idle_overflows[cls] = 0;
        } else if (++me->tc_idle_overflows[cls] >= SLAB_TC_IDLE_OVERFLOWS) {
            tc_turn_off(L, me, cls);
        }
    }
}

size_t slab_usable_size(const void *p, uintptr_t seg, hak_call_t call) {
    struct slab_segment *s = (struct slab_segment *)seg;
    unsigned shift = s->lane->slab_shift;
    const struct slab *sl = slab_of(p, seg, shift);
    if (!block_start_mt(sl, p, shift)) { /* any thread; unassigned slabs too */
        hak_report_misuse(call, p, "invalid pointer (inside a block)");
        return 0;
    }
    /* A freed block (realloc or malloc_usable_size after free): without
     * this check realloc to the same class returned the freed block "in
     * place", and the next malloc handed it out a second time. */
    if (*slab_mark_of((void *)p) == slab_mark(p)) {
        hak_report_misuse(call, p, "double free");
        return 0;
    }
    return sl->block_size_mt;
}

/* ---- thread exit, abandonment, adoption ------------------------------- */

/* Sets sl's remote state to NEVER, waiting out a freer that is handing it
 * back (the owner's notify list is discarded afterwards). */
static void slab_disown(struct slab *sl) {
    uintptr_t old = atomic_load_relaxed(&sl->remote);
    for (;;) {
        if ((old & SLAB_RS_MASK) == SLAB_RS_NOTIFYING) {
            sched_yield();
            old = atomic_load_relaxed(&sl->remote);
            continue;
        }
        if (atomic_cas_weak_acq_rel(&sl->remote, &old, (old & ~SLAB_RS_MASK) | SLAB_RS_NEVER))
            break;
    }
    atomic_store_release(&sl->owner, NULL);
    sl->where = SLAB_ON_NONE;
    slab_floor_set(sl, SLAB_FLOOR_NONE);
    sl->next = sl->prev = NULL;
}

/* Gives up every slab and segment of h (its thread is ending). */
static void heap_abandon(struct slab_lane *L, struct slab_heap *h) {
    flush_stats(L, h);
    for (unsigned c = 0; c < L->nclasses; c++) {
        h->cur[c] = &sentinel_slab;
        for (int list = 0; list < 2; list++) {
            struct slab_list *l = list ? &h->full[c] : &h->avail[c];
            while (l->head) {
                struct slab *sl = l->head;
                slist_remove(l, sl);
                collect_remote(sl, 0, false);
                if (slab_used(sl) == 0 &&
                    (atomic_load_relaxed(&sl->remote) & SLAB_RS_MASK) == SLAB_RS_NORMAL) {
                    slab_release(h, sl, false);
                    continue;
                }
                slab_disown(sl);
            }
        }
    }
    atomic_exchange_acq_rel(&h->notify, NULL);
    pthread_mutex_lock(&L->lock);
    struct slab_segment **lists[] = {&h->segs, &h->segs_drain, &h->segs_full};
    for (int list = 0; list < 3; list++) {
        struct slab_segment **l = lists[list];
        while (*l) {
            struct slab_segment *s = *l;
            seg_remove(l, s);
            hak_assert(s->free_slabs != SEG_ALL_FREE(L)); /* empty ones were retired */
            atomic_store_relaxed(&s->heap, NULL);
            seg_push(&L->abandoned, s);
        }
    }
    pthread_mutex_unlock(&L->lock);
    h->kind = 0;
    meta_free(&L->heaps, h);
}

/* Makes h the owner of abandoned segment a, taking back the blocks other
 * threads freed into it meanwhile; its empty slabs go back to it. */
static void segment_adopt(struct slab_lane *L, struct slab_heap *h, struct slab_segment *a) {
    atomic_store_relaxed(&a->heap, h);
    uint32_t in_use = ~a->free_slabs & SEG_ALL_FREE(L);
    seg_push(heap_seg_list(h, a), a); /* its tier stays what it was */
    for (unsigned i = 1; i < SLAB_MAX_PER_SEG; i++) {
        if (!(in_use & ((uint32_t)1 << i))) continue;
        struct slab *sl = &a->slabs[i];
        atomic_store_release(&sl->owner, h);
        atomic_store_relaxed(&sl->in_notify, 0); /* its notify list was discarded */
        collect_remote(sl, SLAB_RS_NORMAL, true);
        if (slab_used(sl) == 0) {
            slab_release(h, sl, false); /* in_notify was just cleared */
            continue;
        }
        /* full ones are marked so by the next find_slab of their class */
        slist_push(&h->avail[sl->cls], sl);
        sl->where = SLAB_ON_AVAIL;
        slab_floor_set(sl, 1);
    }
}

void slab_thread_exit(struct slab_lane *L, struct slab_heap **tls) {
    struct slab_heap *h = *tls;
    if (h->kind != SLAB_HEAP_LIVE) return;
    *tls = &slab_heap_dead;
    tc_flush_all(L, h); /* before the remote buffer: it may add to it */
    rbuf_flush(h);
    heap_abandon(L, h);
    os_purge_tick(); /* what it released has purges due: make sure a purger runs */
}

size_t slab_trim(struct slab_lane *L, struct slab_heap **tls) {
    if ((*tls)->kind == SLAB_HEAP_LIVE) {
        tc_flush_all(L, *tls);
        rbuf_flush(*tls);
    }
    pthread_mutex_lock(&L->lock);
    size_t bytes = reclaim_abandoned(L);
    pthread_mutex_unlock(&L->lock);
    return bytes;
}

void slab_flush_stats(struct slab_lane *L, struct slab_heap *h) {
    if (h->kind == SLAB_HEAP_LIVE) flush_stats(L, h);
}

void slab_fork_prepare(struct slab_lane *L) {
    pthread_mutex_lock(&L->orphan_lock);
    pthread_mutex_lock(&L->lock);
    meta_fork_prepare(&L->heaps);
}

void slab_fork_parent(struct slab_lane *L) {
    meta_fork_parent(&L->heaps);
    pthread_mutex_unlock(&L->lock);
    pthread_mutex_unlock(&L->orphan_lock);
}

void slab_fork_child(struct slab_lane *L, struct slab_heap *h) {
    /* Heaps of the parent's other threads stay as they are: never adopted
     * (one may have been mid-update); blocks of theirs freed here are
     * remote frees onto their slabs. */
    meta_fork_child(&L->heaps);
    pthread_mutex_unlock(&L->lock);
    pthread_mutex_unlock(&L->orphan_lock);
    if (h->kind != SLAB_HEAP_LIVE) return;
    /* A thread of the parent may have been handing one of this heap's slabs
     * back (NOTIFYING) at the fork: in the child it never finishes. Take
     * back what it pushed, then finish the hand-back for it. */
    drain_notify(h);
    for (unsigned c = 0; c < L->nclasses; c++) {
        for (int list = 0; list < 2; list++) {
            struct slab *sl = list ? h->full[c].head : h->avail[c].head;
            while (sl) {
                struct slab *next = sl->next;
                uintptr_t r = atomic_load_relaxed(&sl->remote);
                if ((r & SLAB_RS_MASK) == SLAB_RS_NOTIFYING) {
                    atomic_store_relaxed(&sl->remote, r & ~SLAB_RS_MASK);
                    atomic_store_relaxed(&sl->in_notify, 0);
                    if (sl->where == SLAB_ON_FULL) {
                        slist_remove(&h->full[c], sl);
                        slist_append(&h->avail[c], sl);
                        sl->where = SLAB_ON_AVAIL;
                        slab_floor_set(sl, 1);
                    }
                }
                sl = next;
            }
        }
    }
}

unsigned slab_class_aligned(const struct slab_lane *L, size_t size, size_t align) {
    if (size > L->class_size[L->nclasses - 1]) return L->nclasses;
    unsigned c = class_of(L, size);
    while (c < L->nclasses && L->class_size[c] % align != 0) c++;
    return c;
}
