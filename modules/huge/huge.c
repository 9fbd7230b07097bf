/*
 * huge.c: the huge lane (see huge.h).
 *
 * Owns: the own mappings (which need no lock: each is one block, owned by
 * its caller), the BigCache of freed ones (big_lock), and the arena of page
 * runs that serves smaller requests (lib/pagerun.c, with its own lock).
 */
#include "huge.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "options.h"
#include "os.h"
#include "pagerun.h"
#include "policy.h"
#include "segmap.h"
#include "stats.h"

#define HUGE_MAGIC 0x4855474bu /* "HUGK" */
#define HUGE_OWN 2               /* kind of an own mapping (pagerun chunks: PAGERUN_KIND) */

/* The first page of an own mapping. magic and kind first, as in every
 * chunk header (pagerun.h), so huge_free tells the two kinds apart. */
struct huge_own {
    uint32_t magic;     /* HUGE_MAGIC */
    uint32_t kind;      /* HUGE_OWN */
    size_t map_size;    /* bytes mapped from the base, multiple of HAK_CHUNK */
    size_t user_off;    /* the block starts at base + user_off */
    size_t user_size;   /* usable bytes of the block, multiple of the page */
    size_t align;       /* alignment asked for (kept on moves) */
    uint32_t cached;    /* 1 while the mapping waits in the BigCache */
    size_t guard_off;   /* -Dsecure: offset of the guard page, 0 when none */
};
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

static int own_map(size_t size, size_t align, size_t *map_size, void **base) {
    size_t off = own_offset(align);
    size_t total;
    if (HAK_ADD_OVERFLOW(size, off + HAK_CHUNK - 1, &total)) return ENOMEM;
    total = hak_align_down(total, HAK_CHUNK);
    /* align > HAK_CHUNK: base + HAK_CHUNK must be align-aligned */
    int err = os_map_chunks(total, align > HAK_CHUNK ? align : HAK_CHUNK,
                            align > HAK_CHUNK ? HAK_CHUNK : 0, base);
    if (err) return err;
    *map_size = total;
    return 0;
}

/* ---- BigCache: freed own mappings kept for reuse ----------------------
 * A freed mapping of at most the policy's bigcache_mb waits here, still
 * mapped and registered, for HAKMEM_PURGE_DELAY_MS; a request that needs
 * at least half of it takes it (no mmap, no page faults for the pages it
 * had; pages the last user touched past the new block stay resident, at
 * most as much again as the block);
 * otherwise the purger unmaps it when its delay is over, and malloc_trim
 * at once. Locks: big_lock, after nothing. */

#define BIGCACHE_SLOTS 32
static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    struct huge_own *c;
    uint64_t freed_at; /* ns */
} big[BIGCACHE_SLOTS];
/* Written under big_lock; read without it by bigcache_take's early exit,
 * hence relaxed atomic. */
static _Atomic unsigned big_n;
static size_t big_bytes;

static size_t own_map_size(size_t size, size_t align) {
    size_t total;
    if (HAK_ADD_OVERFLOW(size, own_offset(align) + HAK_CHUNK - 1, &total)) return SIZE_MAX;
    return hak_align_down(total, HAK_CHUNK);
}

/* A cached mapping for (size, align), or NULL. */
static struct huge_own *bigcache_take(size_t size, size_t align) {
    size_t need = own_map_size(size, align);
    if (need == SIZE_MAX || atomic_load_relaxed(&big_n) == 0) return NULL;
    struct huge_own *best = NULL;
    unsigned best_i = 0;
    pthread_mutex_lock(&big_lock);
    unsigned n = atomic_load_relaxed(&big_n);
    for (unsigned i = 0; i < n; i++) {
        struct huge_own *c = big[i].c;
        if (c->map_size < need || c->map_size / 2 > need) continue; /* at most twice */
        if (align > HAK_CHUNK && ((uintptr_t)c + HAK_CHUNK) % align != 0) continue;
        if (!best || c->map_size < best->map_size) {
            best = c;
            best_i = i;
        }
    }
    if (best) {
        big[best_i] = big[n - 1];
        atomic_store_relaxed(&big_n, n - 1);
        big_bytes -= best->map_size;
    }
    pthread_mutex_unlock(&big_lock);
    return best;
}

/* Keeps freed mapping c if the cache has room; false otherwise. */
static bool bigcache_put(struct huge_own *c) {
    size_t limit = (size_t)policy_current()->bigcache_mb << 20;
    if (c->map_size > limit) return false;
    uint64_t now = os_now_ns();
    bool kept = false;
    pthread_mutex_lock(&big_lock);
    unsigned n = atomic_load_relaxed(&big_n);
    if (n < BIGCACHE_SLOTS && big_bytes + c->map_size <= limit) {
        c->cached = 1;
        big[n].c = c;
        big[n].freed_at = now;
        atomic_store_relaxed(&big_n, n + 1);
        big_bytes += c->map_size;
        kept = true;
    }
    pthread_mutex_unlock(&big_lock);
    if (kept) os_purge_schedule(now + os_purge_delay_ns());
    return kept;
}

static void own_unmap(struct huge_own *c) {
    size_t map_size = c->map_size;
    segmap_unregister((uintptr_t)c, map_size >> HAK_CHUNK_SHIFT);
    os_unmap(c, map_size);
    stats_note_unmap(HAK_LANE_HUGE, map_size);
}

/* The purger: unmaps cached mappings whose delay is over (all with all). */
static size_t bigcache_purge(bool all, uint64_t now, uint64_t *next_due) {
    size_t bytes = 0;
    uint64_t delay = os_purge_delay_ns();
    struct huge_own *victims[BIGCACHE_SLOTS];
    unsigned nv = 0;
    pthread_mutex_lock(&big_lock);
    unsigned n = atomic_load_relaxed(&big_n);
    for (unsigned i = 0; i < n;) {
        uint64_t due = big[i].freed_at + delay;
        if (all || due <= now) {
            victims[nv++] = big[i].c;
            big_bytes -= big[i].c->map_size;
            big[i] = big[--n];
            atomic_store_relaxed(&big_n, n);
            continue;
        }
        if (due < *next_due) *next_due = due;
        i++;
    }
    pthread_mutex_unlock(&big_lock);
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
 * (then the guard follows the block's slack: at most as much again as the
 * block, the BigCache's bound), so that reusing a cached mapping costs no
 * system call. mremap works on one VMA only: own_resize removes the guard
 * before it grows a mapping. */
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

static void *own_alloc(size_t size, size_t align, bool *zeroed) {
    void *p = NULL;
    struct huge_own *c;
    /* calloc wants memory that reads as zero without writing it: fresh */
    c = zeroed ? NULL : bigcache_take(size + HUGE_GUARD, align);
    if (c) {
        c->cached = 0;
        c->user_off = own_offset(align);
        c->user_size = hak_align_up(size, page_size());
        c->align = align;
        stats_note_alloc(HAK_LANE_HUGE, c->user_size);
        if (zeroed) *zeroed = false;
        p = (char *)c + c->user_off;
        own_guard(c, true);
        return p;
    }
    void *base;
    size_t map_size;
    if (own_map(size + HUGE_GUARD, align, &map_size, &base) != 0) return NULL;
    c = base;
    c->magic = HUGE_MAGIC;
    c->kind = HUGE_OWN;
    c->map_size = map_size;
    c->user_off = own_offset(align);
    c->user_size = hak_align_up(size, page_size());
    c->align = align;
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

static void own_free(struct huge_own *c, void *p, hak_call_t call) {
    if (!own_check(c, p, call)) return;
    stats_note_free(HAK_LANE_HUGE, c->user_size);
    if (!bigcache_put(c)) own_unmap(c);
}

/* Resizes an own mapping, keeping room for guard bytes after the block;
 * returns the block or NULL (p untouched). */
static void *own_resize_room(struct huge_own *c, void *p, size_t new_size, size_t guard) {
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
    char *q = own_resize_room(c, p, new_size, HUGE_GUARD);
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
    os_purge_tick();
    void *p;
    if (pagerun_fits(size, align)) {
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

static void huge_free(void *p, uintptr_t head, hak_call_t call) {
    int saved = errno; /* free never changes errno */
    if (kind_at(head) == HUGE_OWN) {
        own_free((struct huge_own *)head, p, call);
    } else {
        size_t bytes = pagerun_free(head, p, call);
        if (bytes) stats_note_free(HAK_LANE_HUGE, bytes);
    }
    os_purge_tick();
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
    os_purge_register(bigcache_purge);
    return 0;
}

static void huge_fork_prepare(void) {
    pthread_mutex_lock(&big_lock);
    pagerun_fork_prepare(&huge_runs);
}
static void huge_fork_parent(void) {
    pagerun_fork_parent(&huge_runs);
    pthread_mutex_unlock(&big_lock);
}
static void huge_fork_child(void) {
    pagerun_fork_child(&huge_runs);
    pthread_mutex_unlock(&big_lock);
}

const struct hak_lane huge_lane = {
    .name = "huge",
    .id = HAK_LANE_HUGE,
    .min_size = HAK_ACE_MAX,
    .max_size = SIZE_MAX,
    .init = huge_init,
    .alloc = huge_alloc,
    .alloc_aligned = huge_alloc_aligned,
    .free = huge_free,
    .usable_size = huge_usable_size,
    .resize = huge_resize,
    .thread_exit = NULL,
    .fork_prepare = huge_fork_prepare,
    .fork_parent = huge_fork_parent,
    .fork_child = huge_fork_child,
    .trim = NULL, /* the page-run purger unmaps the cache on malloc_trim */
};
