/*
 * pagerun.c: page runs in shared chunks (see pagerun.h). Locks: the
 * arena's lock for everything about its chunks.
 */
#include "pagerun.h"

#include <errno.h>

#include "options.h"
#include "os.h"
#include "segmap.h"
#include "stats.h"

static size_t npages; /* pages per chunk: HAK_CHUNK / page size */

static inline size_t page_size(void) { return os_page_size; }
static inline struct pagerun_chunk *chunk_at(uintptr_t chunk) {
    return (struct pagerun_chunk *)chunk;
}

static inline bool bit_get(const uint64_t *w, size_t i) { return (w[i >> 6] >> (i & 63)) & 1; }

/* Sets (v=1) or clears bits [i, i+n) of w. */
static void bits_set(uint64_t *w, size_t i, size_t n, bool v) {
    while (n > 0) {
        size_t off = i & 63, take = 64 - off < n ? 64 - off : n;
        uint64_t mask = (take == 64 ? ~(uint64_t)0 : (((uint64_t)1 << take) - 1)) << off;
        if (v)
            w[i >> 6] |= mask;
        else
            w[i >> 6] &= ~mask;
        i += take;
        n -= take;
    }
}

/* True when any bit of [i, i+n) is set. */
static bool bits_any(const uint64_t *w, size_t i, size_t n) {
    while (n > 0) {
        size_t off = i & 63, take = 64 - off < n ? 64 - off : n;
        uint64_t mask = (take == 64 ? ~(uint64_t)0 : (((uint64_t)1 << take) - 1)) << off;
        if (w[i >> 6] & mask) return true;
        i += take;
        n -= take;
    }
    return false;
}

/* First index >= i whose bit is clear (npages if none). */
static size_t next_clear(const uint64_t *w, size_t i) {
    while (i < npages) {
        uint64_t inv = ~w[i >> 6] >> (i & 63);
        if (inv) {
            size_t j = i + (size_t)HAK_CTZ64(inv);
            return j < npages ? j : npages;
        }
        i = (i | 63) + 1;
    }
    return npages;
}

/* First index >= i whose bit is set (npages if none). */
static size_t next_set(const uint64_t *w, size_t i) {
    while (i < npages) {
        uint64_t bits = w[i >> 6] >> (i & 63);
        if (bits) {
            size_t j = i + (size_t)HAK_CTZ64(bits);
            return j < npages ? j : npages;
        }
        i = (i | 63) + 1;
    }
    return npages;
}

/* Last index < i whose bit is set (page 0's bit of used[] always is). */
static size_t prev_set(const uint64_t *w, size_t i) {
    while (i > 0) {
        size_t k = (i - 1) >> 6, top = (i - 1) & 63;
        uint64_t bits = w[k] & (top == 63 ? ~(uint64_t)0 : (((uint64_t)2 << top) - 1));
        if (bits) return (k << 6) + 63 - (size_t)HAK_CLZ64(bits);
        i = k << 6;
    }
    return 0;
}

/* ---- lists (under the arena's lock) ------------------------------------ */

static void list_push(struct pagerun_chunk **list, struct pagerun_chunk *c) {
    c->prev = NULL;
    c->next = *list;
    if (*list) (*list)->prev = c;
    *list = c;
}

static void list_remove(struct pagerun_chunk **list, struct pagerun_chunk *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        *list = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void to_avail(struct pagerun_arena *a, struct pagerun_chunk *c) {
    if (!c->on_full) return;
    list_remove(&a->full, c);
    list_push(&a->avail, c);
    c->on_full = 0;
}

static void to_full_if_full(struct pagerun_arena *a, struct pagerun_chunk *c) {
    if (c->free_pages != 0 || c->on_full) return;
    list_remove(&a->avail, c);
    list_push(&a->full, c);
    c->on_full = 1;
}

/* ---- the search index (under the arena's lock) ------------------------ */

/* Copies c's search fields into its index entry: after every change. */
static void index_sync(struct pagerun_arena *a, struct pagerun_chunk *c) {
    if (c->index_slot == PAGERUN_UNINDEXED) return;
    struct pagerun_index_entry *e = &a->index[c->index_slot];
    e->free_pages = c->free_pages;
    e->no_run = c->no_run;
}

static void index_add(struct pagerun_arena *a, struct pagerun_chunk *c) {
    if (a->nindexed == PAGERUN_INDEX) {
        c->index_slot = PAGERUN_UNINDEXED; /* found by the walk of the avail list */
        a->unindexed++;
        return;
    }
    c->index_slot = a->nindexed;
    a->index[a->nindexed++].chunk = c;
    index_sync(a, c);
}

static void index_remove(struct pagerun_arena *a, struct pagerun_chunk *c) {
    if (c->index_slot == PAGERUN_UNINDEXED) {
        a->unindexed--;
        return;
    }
    uint32_t k = c->index_slot, last = --a->nindexed;
    if (k != last) {
        a->index[k] = a->index[last];
        a->index[k].chunk->index_slot = k;
    }
}

/* ---- chunks (under the arena's lock) ------------------------------------ */

/* Sets up the fresh chunk at base (mapped by the caller without the lock:
 * os_map_segment may release caches, which takes this lock). */
static struct pagerun_chunk *chunk_new(struct pagerun_arena *a, void *base) {
    stats_note_map(a->lane, HAK_CHUNK);
    struct pagerun_chunk *c = base; /* fresh memory reads as zero */
    c->magic = PAGERUN_MAGIC;
    c->kind = PAGERUN_KIND;
    c->arena = a;
    c->free_pages = (uint32_t)(npages - 1);
    c->search_hint = 1;
    c->no_run = (uint32_t)npages;
    bits_set(c->used, 0, 1, true);
    bits_set(c->dirty, 0, 1, true);
    segmap_register((uintptr_t)base, 1, a->lane);
    list_push(&a->avail, c);
    index_add(a, c);
    a->empty++;
    return c;
}

/* Unmaps empty chunk c, which is on no dirty list. */
static void chunk_release(struct pagerun_arena *a, struct pagerun_chunk *c) {
    list_remove(c->on_full ? &a->full : &a->avail, c);
    index_remove(a, c);
    a->empty--;
    segmap_unregister((uintptr_t)c, 1);
    os_unmap(c, HAK_CHUNK);
    stats_note_unmap(a->lane, HAK_CHUNK);
}

/* Rounds page index i up to a multiple of step (a power of two). */
static inline size_t round_step(size_t i, size_t step) { return (i + step - 1) & ~(step - 1); }

/* Finds n free pages in c whose first page index is a multiple of step
 * (step = alignment / page size, a power of two); returns the index or 0. */
static size_t find_run(struct pagerun_chunk *c, size_t n, size_t step) {
    if (c->free_pages < n || (step == 1 && n >= c->no_run)) return 0;
    size_t longest = 0; /* longest free run measured */
    size_t i = round_step(c->search_hint > step ? c->search_hint : step, step);
    while (i + n <= npages) {
        i = round_step(next_clear(c->used, i), step);
        if (i + n > npages) break;
        /* the free run from i ends at the next used page: a word at a time */
        size_t j = next_set(c->used, i);
        if (j >= i + n) return i;
        if (j - i > longest) longest = j - i;
        i = j + 1;
    }
    /* a chunk that holds no run of n pages is not searched again for one
     * until a free makes a longer run possible: the search from the hint saw
     * every free page (none is below it), each run measured but the last,
     * within the npages - i pages left */
    if (step == 1) {
        if (i < npages && npages - i > longest) longest = npages - i;
        if (longest + 1 < c->no_run) c->no_run = (uint32_t)(longest + 1);
    }
    return 0;
}

/* Pages [i, i+n) of c were just freed: the longest free run grows at most
 * to the free run they now belong to, so no_run, an upper bound, grows at
 * most past its length. A search for a longer run then still skips c in
 * O(1) (resetting the bound at every free had the first-fit walk scan the
 * bitmap of every chunk that had a free since its last failed search: 13%
 * of size_256k's time with HAKMEM_CAP_LARGE=0, every block a page run). */
static void note_freed(struct pagerun_chunk *c, size_t i, size_t n) {
    size_t start = prev_set(c->used, i) + 1, end = next_set(c->used, i + n);
    if (end - start + 1 > c->no_run) c->no_run = (uint32_t)(end - start + 1);
}

static void *take_run(struct pagerun_arena *a, struct pagerun_chunk *c, size_t i, size_t n,
                      bool *zeroed) {
    if (c->free_pages == npages - 1) a->empty--;
    c->empty_aged = 0;
    bits_set(c->used, i, n, true);
    if (zeroed) *zeroed = !bits_any(c->dirty, i, n);
    bits_set(c->dirty, i, n, true);
    bits_set(c->aged, i, n, false);
    bits_set(c->lazy, i, n, false);
    c->run[i] = (uint16_t)n;
    c->free_pages -= (uint32_t)n;
    if (i == c->search_hint) c->search_hint = (uint32_t)(i + n);
    index_sync(a, c);
    to_full_if_full(a, c);
    return (char *)c + i * page_size();
}

bool pagerun_fits(size_t size, size_t align) {
    if (size >= HAK_CHUNK / 2 || align > HAK_CHUNK / 4) return false;
    size_t first = align > page_size() ? align / page_size() : 1;
    return first + (size + page_size() - 1) / page_size() <= npages;
}

void *pagerun_alloc(struct pagerun_arena *a, size_t size, size_t align, bool *zeroed,
                    size_t *bytes) {
    size_t n = (size + page_size() - 1) / page_size();
    size_t step = align > page_size() ? align / page_size() : 1;
    void *p = NULL;
    pthread_mutex_lock(&a->lock);
    for (uint32_t k = 0; k < a->nindexed && !p; k++) {
        const struct pagerun_index_entry *e = &a->index[k];
        if (e->free_pages < n || (step == 1 && n >= e->no_run)) continue;
        struct pagerun_chunk *c = e->chunk;
        size_t i = find_run(c, n, step);
        if (i)
            p = take_run(a, c, i, n, zeroed);
        else
            index_sync(a, c); /* the failed search lowered no_run */
    }
    for (struct pagerun_chunk *c = a->unindexed ? a->avail : NULL; c && !p; c = c->next) {
        if (c->index_slot != PAGERUN_UNINDEXED) continue;
        size_t i = find_run(c, n, step);
        if (i) p = take_run(a, c, i, n, zeroed);
    }
    if (!p) {
        pthread_mutex_unlock(&a->lock);
        void *base;
        /* runs below half a chunk (pagerun_fits) */
        int err = os_map_segment(HAK_CHUNK / 2 - page_size(), &base);
        pthread_mutex_lock(&a->lock);
        if (err == 0) {
            struct pagerun_chunk *c = chunk_new(a, base);
            size_t i = find_run(c, n, step);
            hak_assert(i != 0);
            p = take_run(a, c, i, n, zeroed);
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (!p) errno = ENOMEM;
    *bytes = n * page_size();
    return p;
}

/* Index of run p in chunk c, or 0 (after reporting) when p is not the
 * start of an allocated run. */
static size_t run_index(struct pagerun_chunk *c, const void *p, hak_call_t call) {
    uintptr_t off = (uintptr_t)p - (uintptr_t)c;
    size_t i = off / page_size();
    if (off % page_size() != 0 || i == 0 || i >= npages || c->run[i] == 0) {
        hak_report_misuse(call, p,
                          off % page_size() == 0 && i > 0 && i < npages && !bit_get(c->used, i)
                              ? "double free or invalid pointer"
                              : "invalid pointer (inside a block)");
        return 0;
    }
    return i;
}

static void mark_dirty(struct pagerun_arena *a, struct pagerun_chunk *c) {
    if (c->in_dirty) return;
    uint64_t due = os_now_coarse_ns() + os_purge_delay_ns(); /* a tick early at most */
    c->purge_due = due;
    c->in_dirty = 1;
    c->dirty_next = a->dirty;
    a->dirty = c;
    os_purge_schedule(due);
}

size_t pagerun_free(uintptr_t chunk, void *p, hak_call_t call) {
    struct pagerun_chunk *c = chunk_at(chunk);
    struct pagerun_arena *a = c->arena;
    pthread_mutex_lock(&a->lock);
    size_t i = run_index(c, p, call);
    size_t n = i ? c->run[i] : 0;
    if (n) {
        c->run[i] = 0;
        atomic_store_relaxed(&c->tag[i], 0);
        bits_set(c->used, i, n, false);
        c->free_pages += (uint32_t)n;
        if (i < c->search_hint) c->search_hint = (uint32_t)i;
        note_freed(c, i, n);
        index_sync(a, c);
        to_avail(a, c);
        if (c->free_pages == npages - 1) a->empty++;
        mark_dirty(a, c);
    }
    pthread_mutex_unlock(&a->lock);
    return n * page_size();
}

size_t pagerun_usable(uintptr_t chunk, const void *p, hak_call_t call) {
    struct pagerun_chunk *c = chunk_at(chunk);
    pthread_mutex_lock(&c->arena->lock);
    size_t i = run_index(c, p, call);
    size_t n = i ? c->run[i] : 0;
    pthread_mutex_unlock(&c->arena->lock);
    return n * page_size();
}

bool pagerun_resize(uintptr_t chunk, void *p, size_t new_size, int64_t *delta) {
    struct pagerun_chunk *c = chunk_at(chunk);
    struct pagerun_arena *a = c->arena;
    size_t n = (new_size + page_size() - 1) / page_size();
    bool ok = false;
    *delta = 0;
    pthread_mutex_lock(&a->lock);
    size_t i = run_index(c, p, "realloc");
    if (i != 0) {
        size_t cur = c->run[i];
        if (n <= cur) {
            if (n < cur) {
                bits_set(c->used, i + n, cur - n, false);
                c->free_pages += (uint32_t)(cur - n);
                c->run[i] = (uint16_t)n;
                if (i + n < c->search_hint) c->search_hint = (uint32_t)(i + n);
                note_freed(c, i + n, cur - n);
                index_sync(a, c);
                to_avail(a, c);
                mark_dirty(a, c);
            }
            ok = true;
        } else if (i + n <= npages && !bits_any(c->used, i + cur, n - cur)) {
            bits_set(c->used, i + cur, n - cur, true);
            bits_set(c->dirty, i + cur, n - cur, true);
            bits_set(c->aged, i + cur, n - cur, false);
            bits_set(c->lazy, i + cur, n - cur, false);
            c->free_pages -= (uint32_t)(n - cur);
            c->run[i] = (uint16_t)n;
            index_sync(a, c);
            to_full_if_full(a, c);
            ok = true;
        }
        if (ok) *delta = ((int64_t)n - (int64_t)cur) * (int64_t)page_size();
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

/* One purge pass over c (under the lock): purges the free dirty pages the
 * previous pass already found free (or all of them when all), and marks
 * the others for the next pass. Returns bytes purged; *more says whether
 * some dirty free pages wait for the next pass. */
static size_t purge_chunk(struct pagerun_arena *a, struct pagerun_chunk *c, bool all, bool *more) {
    size_t bytes = 0;
    *more = false;
    for (size_t i = 1; i < npages;) {
        bool cand = !bit_get(c->used, i) && bit_get(c->dirty, i) && !bit_get(c->lazy, i);
        if (!cand) {
            i++;
            continue;
        }
        if (!all && !bit_get(c->aged, i)) {
            bits_set(c->aged, i, 1, true); /* purged by the next pass */
            *more = true;
            i++;
            continue;
        }
        size_t j = i;
        while (j < npages && !bit_get(c->used, j) && bit_get(c->dirty, j) &&
               !bit_get(c->lazy, j) && (all || bit_get(c->aged, j)))
            j++;
        if (os_purge((char *)c + i * page_size(), (j - i) * page_size()) == 0) {
            /* MADV_DONTNEED pages read as zero; MADV_FREE ones may keep their
             * bytes until the kernel takes them: still dirty, not purged again */
            if (hak_opt(HAK_OPT_PURGE) == HAK_PURGE_DONTNEED)
                bits_set(c->dirty, i, j - i, false);
            else
                bits_set(c->lazy, i, j - i, true);
            bits_set(c->aged, i, j - i, false);
            bytes += (j - i) * page_size();
            stats_note_purge(a->lane, (j - i) * page_size());
        }
        i = j;
    }
    return bytes;
}

/* One arena's purges: chunks whose delay is over (all of them when all) are
 * purged, or unmapped when empty beyond the arena's cache. */
static size_t purge_arena(struct pagerun_arena *a, bool all, uint64_t now, uint64_t *next_due) {
    size_t bytes = 0;
    size_t keep = all ? 0 : (size_t)hak_opt((enum hak_opt_id)a->cache_opt);
    pthread_mutex_lock(&a->lock);
    struct pagerun_chunk **pp = &a->dirty;
    while (*pp) {
        struct pagerun_chunk *c = *pp;
        if (!all && c->purge_due > now) {
            if (c->purge_due < *next_due) *next_due = c->purge_due;
            pp = &c->dirty_next;
            continue;
        }
        if (c->free_pages == npages - 1 && a->empty > keep) {
            /* unmapped by the second pass that finds it empty, as a page is
             * purged by the second pass that finds it free: a chunk that
             * empties and fills again within a delay (blocks of a lane's
             * larger classes come and go a few to a chunk) is not unmapped
             * and mapped again, its pages faulted in afresh */
            if (all || c->empty_aged) {
                *pp = c->dirty_next;
                c->in_dirty = 0;
                bytes += HAK_CHUNK;
                chunk_release(a, c);
                continue;
            }
            c->empty_aged = 1;
            c->purge_due = now + os_purge_delay_ns();
            if (c->purge_due < *next_due) *next_due = c->purge_due;
            pp = &c->dirty_next;
            continue;
        }
        bool more;
        bytes += purge_chunk(a, c, all, &more);
        if (more) { /* stays on the list for the next pass */
            c->purge_due = now + os_purge_delay_ns();
            if (c->purge_due < *next_due) *next_due = c->purge_due;
            pp = &c->dirty_next;
            continue;
        }
        *pp = c->dirty_next;
        c->dirty_next = NULL;
        c->in_dirty = 0;
    }
    if (all) {
        /* empty chunks already purged (off the dirty list) go too, so that
         * their address space is free for others (RLIMIT_AS) */
        struct pagerun_chunk *c = a->avail;
        while (c) {
            struct pagerun_chunk *next = c->next;
            if (c->free_pages == npages - 1 && !c->in_dirty) {
                bytes += HAK_CHUNK;
                chunk_release(a, c);
            }
            c = next;
        }
    }
    pthread_mutex_unlock(&a->lock);
    return bytes;
}

static struct pagerun_arena *arenas[HAK_LANE_COUNT];
static int narenas;

static size_t pagerun_purge(bool all, uint64_t now, uint64_t *next_due) {
    size_t bytes = 0;
    for (int i = 0; i < narenas; i++) bytes += purge_arena(arenas[i], all, now, next_due);
    return bytes;
}

void pagerun_arena_init(struct pagerun_arena *a) {
    npages = HAK_CHUNK / os_page_size;
    pthread_mutex_init(&a->lock, NULL);
    if (narenas == 0) os_purge_register(pagerun_purge);
    arenas[narenas++] = a;
}

void pagerun_fork_prepare(struct pagerun_arena *a) { pthread_mutex_lock(&a->lock); }
void pagerun_fork_parent(struct pagerun_arena *a) { pthread_mutex_unlock(&a->lock); }
void pagerun_fork_child(struct pagerun_arena *a) { pthread_mutex_unlock(&a->lock); }
