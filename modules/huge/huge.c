/*
 * huge.c: the huge lane (see huge.h).
 *
 * Owns: the shared chunks (their page maps, the lists of chunks with free
 * pages, full chunks and chunks with dirty free pages, the cache of empty
 * chunks) and the own mappings (which need no lock: each is one block,
 * owned by its caller).
 *
 * Locks: huge_lock, one mutex for everything about shared chunks. Taken
 * after nothing and before the stats atomics; never held across a call into
 * another lane. The purger (huge_purge) takes it too.
 */
#include "huge.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "os.h"
#include "options.h"
#include "segmap.h"
#include "stats.h"

#define HUGE_MAGIC 0x4855474bu /* "HUGK" */
#define HUGE_MAX_PAGES (HAK_CHUNK / 4096) /* pages per chunk at the smallest page size */
#define HUGE_WORDS (HUGE_MAX_PAGES / 64)

enum huge_kind { HUGE_SHARED = 1, HUGE_OWN = 2 };

/* The first page of every huge head chunk. Fields for the hot path first.
 * Invariants (shared chunk, under huge_lock):
 *   free_pages == number of clear bits of used[] among pages 1..npages-1;
 *   run[i] != 0 exactly when page i starts an allocated run of run[i] pages;
 *   dirty[] bit set => the page may hold non-zero bytes (it was handed out
 *   since its last purge); page 0 (this header) is always used. */
struct huge_chunk {
    uint32_t magic;             /* HUGE_MAGIC */
    uint32_t kind;              /* enum huge_kind */
    /* own mappings */
    size_t map_size;            /* bytes mapped from the base, multiple of HAK_CHUNK */
    size_t user_off;            /* the block starts at base + user_off */
    size_t user_size;           /* usable bytes of the block, multiple of the page */
    size_t align;               /* alignment asked for (HAK_CHUNK or more: kept on moves) */
    /* shared chunks */
    struct huge_chunk *next, *prev; /* in avail_list or full_list */
    struct huge_chunk *dirty_next;  /* in dirty_list, when in_dirty */
    uint64_t purge_due;         /* ns: when its dirty free pages are purged */
    uint32_t free_pages;        /* free pages (of 1..npages-1) */
    uint32_t in_dirty;          /* 1 while on dirty_list */
    uint32_t on_full;           /* 1 while on full_list (no free page) */
    uint32_t search_hint;       /* first page that may be free */
    uint64_t used[HUGE_WORDS];  /* bit per page: allocated (page 0 always) */
    uint64_t dirty[HUGE_WORDS]; /* bit per page: may be non-zero */
    uint16_t run[HUGE_MAX_PAGES]; /* run length at the first page of each run */
};
_Static_assert(sizeof(struct huge_chunk) <= 4096, "the chunk header fits the smallest page");
_Static_assert(HUGE_MAX_PAGES % 64 == 0, "page bitmaps are whole words");

static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;
static struct huge_chunk *avail_list;  /* shared chunks with a free page */
static struct huge_chunk *full_list;   /* shared chunks with none */
static struct huge_chunk *dirty_list;  /* shared chunks with dirty free pages */
static size_t empty_chunks;            /* shared chunks with no block (mapped) */
static size_t npages;                  /* pages per chunk: HAK_CHUNK / page size */

static inline size_t page_size(void) { return os_page_size; }
static inline struct huge_chunk *chunk_of(uintptr_t head) { return (struct huge_chunk *)head; }

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

/* ---- lists (under huge_lock) ----------------------------------------- */

static void list_push(struct huge_chunk **list, struct huge_chunk *c) {
    c->prev = NULL;
    c->next = *list;
    if (*list) (*list)->prev = c;
    *list = c;
}

static void list_remove(struct huge_chunk **list, struct huge_chunk *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        *list = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void dirty_list_remove(struct huge_chunk *c) {
    for (struct huge_chunk **pp = &dirty_list; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == c) {
            *pp = c->dirty_next;
            c->dirty_next = NULL;
            c->in_dirty = 0;
            return;
        }
    }
}

/* ---- shared chunks (under huge_lock) --------------------------------- */

static struct huge_chunk *shared_chunk_new(void) {
    void *base;
    if (os_map_chunks(HAK_CHUNK, HAK_CHUNK, 0, &base) != 0) return NULL;
    stats_note_map(HAK_LANE_HUGE, HAK_CHUNK);
    struct huge_chunk *c = base; /* fresh memory reads as zero */
    c->magic = HUGE_MAGIC;
    c->kind = HUGE_SHARED;
    c->free_pages = (uint32_t)(npages - 1);
    c->search_hint = 1;
    bits_set(c->used, 0, 1, true);
    bits_set(c->dirty, 0, 1, true);
    segmap_register((uintptr_t)base, 1, HAK_LANE_HUGE);
    list_push(&avail_list, c);
    empty_chunks++;
    return c;
}

static void shared_chunk_release(struct huge_chunk *c) {
    if (c->in_dirty) dirty_list_remove(c);
    list_remove(c->on_full ? &full_list : &avail_list, c);
    empty_chunks--;
    segmap_unregister((uintptr_t)c, 1);
    os_unmap(c, HAK_CHUNK);
    stats_note_unmap(HAK_LANE_HUGE, HAK_CHUNK);
}

/* Finds n free pages in c whose first page index is a multiple of step
 * (step = alignment / page size, >= 1); returns the index or 0. */
static size_t shared_find(struct huge_chunk *c, size_t n, size_t step) {
    if (c->free_pages < n) return 0;
    size_t i = c->search_hint > step ? c->search_hint : step;
    i = (i + step - 1) / step * step;
    while (i + n <= npages) {
        i = next_clear(c->used, i);
        i = (i + step - 1) / step * step;
        if (i + n > npages) break;
        if (!bits_any(c->used, i, n)) return i;
        /* skip past the used page that blocked us */
        size_t j = i;
        while (j < i + n && !bit_get(c->used, j)) j++;
        i = j + 1;
    }
    return 0;
}

static void *shared_take(struct huge_chunk *c, size_t i, size_t n, bool *zeroed) {
    if (c->free_pages == npages - 1) empty_chunks--;
    bits_set(c->used, i, n, true);
    if (zeroed) *zeroed = !bits_any(c->dirty, i, n);
    bits_set(c->dirty, i, n, true);
    c->run[i] = (uint16_t)n;
    c->free_pages -= (uint32_t)n;
    if (i == c->search_hint) c->search_hint = (uint32_t)(i + n);
    if (c->free_pages == 0) {
        list_remove(&avail_list, c);
        list_push(&full_list, c);
        c->on_full = 1;
    }
    return (char *)c + i * page_size();
}

static void *shared_alloc(size_t size, size_t align, bool *zeroed) {
    size_t n = (size + page_size() - 1) / page_size();
    size_t step = align > page_size() ? align / page_size() : 1;
    pthread_mutex_lock(&huge_lock);
    for (struct huge_chunk *c = avail_list; c; c = c->next) {
        size_t i = shared_find(c, n, step);
        if (i) {
            void *p = shared_take(c, i, n, zeroed);
            pthread_mutex_unlock(&huge_lock);
            stats_note_alloc(HAK_LANE_HUGE, n * page_size());
            return p;
        }
    }
    struct huge_chunk *c = shared_chunk_new();
    void *p = NULL;
    if (c) {
        size_t i = shared_find(c, n, step);
        hak_assert(i != 0);
        p = shared_take(c, i, n, zeroed);
    }
    pthread_mutex_unlock(&huge_lock);
    if (p) stats_note_alloc(HAK_LANE_HUGE, n * page_size());
    return p;
}

/* Index of block p in chunk c, or 0 (after reporting) when p is not the
 * start of an allocated run. */
static size_t shared_index(struct huge_chunk *c, const void *p, hak_call_t call) {
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

static void shared_mark_dirty(struct huge_chunk *c) {
    if (c->in_dirty) return;
    uint64_t due = os_now_ns() + os_purge_delay_ns();
    c->purge_due = due;
    c->in_dirty = 1;
    c->dirty_next = dirty_list;
    dirty_list = c;
    os_purge_schedule(due);
}

static void shared_free(struct huge_chunk *c, void *p, hak_call_t call) {
    pthread_mutex_lock(&huge_lock);
    size_t i = shared_index(c, p, call);
    if (i == 0) {
        pthread_mutex_unlock(&huge_lock);
        return;
    }
    size_t n = c->run[i];
    c->run[i] = 0;
    bits_set(c->used, i, n, false);
    c->free_pages += (uint32_t)n;
    if (i < c->search_hint) c->search_hint = (uint32_t)i;
    if (c->on_full) {
        list_remove(&full_list, c);
        list_push(&avail_list, c);
        c->on_full = 0;
    }
    if (c->free_pages == npages - 1) empty_chunks++;
    shared_mark_dirty(c);
    pthread_mutex_unlock(&huge_lock);
    stats_note_free(HAK_LANE_HUGE, n * page_size());
}

/* Purges every dirty free page of c (under huge_lock). Returns bytes. */
static size_t shared_purge(struct huge_chunk *c) {
    size_t bytes = 0;
    for (size_t i = 1; i < npages;) {
        if (bit_get(c->used, i) || !bit_get(c->dirty, i)) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < npages && !bit_get(c->used, j) && bit_get(c->dirty, j)) j++;
        if (os_purge((char *)c + i * page_size(), (j - i) * page_size()) == 0) {
            bits_set(c->dirty, i, j - i, false);
            bytes += (j - i) * page_size();
            stats_note_purge(HAK_LANE_HUGE, (j - i) * page_size());
        }
        i = j;
    }
    return bytes;
}

/* The purger: purges chunks whose delay is over (all of them when all),
 * and unmaps empty chunks beyond the cache size. */
static size_t huge_purge(bool all, uint64_t now, uint64_t *next_due) {
    size_t bytes = 0;
    size_t keep = all ? 0 : (size_t)hak_opt(HAK_OPT_HUGE_CACHE_CHUNKS);
    pthread_mutex_lock(&huge_lock);
    struct huge_chunk **pp = &dirty_list;
    while (*pp) {
        struct huge_chunk *c = *pp;
        if (!all && c->purge_due > now) {
            if (c->purge_due < *next_due) *next_due = c->purge_due;
            pp = &c->dirty_next;
            continue;
        }
        *pp = c->dirty_next;
        c->dirty_next = NULL;
        c->in_dirty = 0;
        if (c->free_pages == npages - 1 && empty_chunks > keep) {
            bytes += HAK_CHUNK;
            shared_chunk_release(c);
        } else {
            bytes += shared_purge(c);
        }
    }
    pthread_mutex_unlock(&huge_lock);
    return bytes;
}

/* Grows or shrinks run i of c in place to n pages. */
static bool shared_resize(struct huge_chunk *c, void *p, size_t new_size) {
    size_t n = (new_size + page_size() - 1) / page_size();
    bool ok = false;
    size_t freed = 0, added = 0;
    pthread_mutex_lock(&huge_lock);
    size_t i = shared_index(c, p, "realloc");
    if (i != 0) {
        size_t cur = c->run[i];
        if (n <= cur) {
            if (n < cur) {
                bits_set(c->used, i + n, cur - n, false);
                c->free_pages += (uint32_t)(cur - n);
                c->run[i] = (uint16_t)n;
                if (i + n < c->search_hint) c->search_hint = (uint32_t)(i + n);
                if (c->on_full) {
                    list_remove(&full_list, c);
                    list_push(&avail_list, c);
                    c->on_full = 0;
                }
                shared_mark_dirty(c);
                freed = cur - n;
            }
            ok = true;
        } else if (i + n <= npages && !bits_any(c->used, i + cur, n - cur)) {
            bits_set(c->used, i + cur, n - cur, true);
            bits_set(c->dirty, i + cur, n - cur, true);
            c->free_pages -= (uint32_t)(n - cur);
            c->run[i] = (uint16_t)n;
            if (c->free_pages == 0) {
                list_remove(&avail_list, c);
                list_push(&full_list, c);
                c->on_full = 1;
            }
            added = n - cur;
            ok = true;
        }
    }
    pthread_mutex_unlock(&huge_lock);
    if (freed) stats_add(HAK_LANE_HUGE, HAK_CTR_free_bytes, freed * page_size());
    if (added) stats_add(HAK_LANE_HUGE, HAK_CTR_alloc_bytes, added * page_size());
    return ok;
}

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

static void *own_alloc(size_t size, size_t align, bool *zeroed) {
    void *base;
    size_t map_size;
    if (own_map(size, align, &map_size, &base) != 0) return NULL;
    struct huge_chunk *c = base;
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
    return (char *)base + c->user_off;
}

static bool own_check(struct huge_chunk *c, const void *p, hak_call_t call) {
    if ((uintptr_t)p == (uintptr_t)c + c->user_off) return true;
    hak_report_misuse(call, p, "invalid pointer (inside a block)");
    return false;
}

static void own_free(struct huge_chunk *c, void *p, hak_call_t call) {
    if (!own_check(c, p, call)) return;
    size_t map_size = c->map_size, user = c->user_size;
    segmap_unregister((uintptr_t)c, map_size >> HAK_CHUNK_SHIFT);
    os_unmap(c, map_size);
    stats_note_unmap(HAK_LANE_HUGE, map_size);
    stats_note_free(HAK_LANE_HUGE, user);
}

/* Resizes an own mapping; returns the block or NULL (p untouched). */
static void *own_resize(struct huge_chunk *c, void *p, size_t new_size) {
    if (!own_check(c, p, "realloc")) return NULL;
    size_t ps = page_size();
    size_t new_user = hak_align_up(new_size, ps);
    size_t old_user = c->user_size;
    size_t need;
    if (HAK_ADD_OVERFLOW(c->user_off, new_user + HAK_CHUNK - 1, &need)) return NULL;
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

/* ---- the lane contract ------------------------------------------------ */

/* A shared chunk can hold the run when it leaves the header page free. */
static bool fits_shared(size_t size, size_t align) {
    if (size >= HAK_CHUNK / 2 || align > HAK_CHUNK / 4) return false;
    size_t first = align > page_size() ? align / page_size() : 1;
    return first + (size + page_size() - 1) / page_size() <= npages;
}

static void *huge_alloc_aligned(size_t size, size_t align, bool *zeroed) {
    if (size > HAK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    os_purge_tick();
    void *p;
    if (fits_shared(size, align)) {
        p = shared_alloc(size, align, zeroed);
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
    struct huge_chunk *c = chunk_of(head);
    if (c->kind == HUGE_OWN)
        own_free(c, p, call);
    else
        shared_free(c, p, call);
    os_purge_tick();
    errno = saved;
}

static size_t huge_usable_size(const void *p, uintptr_t head, hak_call_t call) {
    struct huge_chunk *c = chunk_of(head);
    if (c->kind == HUGE_OWN) return own_check(c, p, call) ? c->user_size : 0;
    pthread_mutex_lock(&huge_lock);
    size_t i = shared_index(c, p, call);
    size_t n = i ? c->run[i] : 0;
    pthread_mutex_unlock(&huge_lock);
    return n * page_size();
}

static void *huge_resize(void *p, uintptr_t head, size_t new_size) {
    struct huge_chunk *c = chunk_of(head);
    if (c->kind == HUGE_OWN) {
        /* a block that shrinks far below a chunk moves to a shared chunk */
        if (fits_shared(new_size, c->align) && new_size < HAK_CHUNK / 4) return NULL;
        return own_resize(c, p, new_size);
    }
    if (!fits_shared(new_size, HAK_MIN_ALIGN)) return NULL;
    return shared_resize(c, p, new_size) ? p : NULL;
}

static int huge_init(void) {
    npages = HAK_CHUNK / os_page_size;
    if (npages > HUGE_MAX_PAGES) return EINVAL;
    os_purge_register(huge_purge);
    return 0;
}

static size_t huge_trim(void) {
    uint64_t next = UINT64_MAX;
    return huge_purge(true, os_now_ns(), &next);
}

static void huge_fork_prepare(void) { pthread_mutex_lock(&huge_lock); }
static void huge_fork_parent(void) { pthread_mutex_unlock(&huge_lock); }
static void huge_fork_child(void) { pthread_mutex_unlock(&huge_lock); }

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
    .trim = huge_trim,
};
