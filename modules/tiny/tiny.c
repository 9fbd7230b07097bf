/*
 * tiny.c: the tiny lane's slow paths (see tiny.h for the types, the
 * ownership rules and the lock order): heaps, slab refill and carving,
 * remote frees and their collection, segments, thread exit (abandon),
 * adoption, the orphan heap, fork.
 */
#include "tiny.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "os.h"
#include "segmap.h"
#include "tiny_fast.h"

const uint16_t tiny_class_size[TINY_CLASSES] = {
    8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
};
uint8_t tiny_class_of[(HAK_TINY_MAX >> 3) + 1];

/* The sentinel slab: no free block, ever; the current slab of every class
 * of a heap that has none. Never written. */
static struct tiny_slab sentinel_slab;

#define S1 &sentinel_slab
#define S3 S1, S1, S1
#define SENTINEL_CUR {S3, S3, S3, S3, S3, S3, S3}
_Static_assert(TINY_CLASSES == 21, "SENTINEL_CUR names every class");
static struct tiny_heap heap_empty = {.cur = SENTINEL_CUR, .kind = TINY_HEAP_EMPTY};
static struct tiny_heap heap_dead = {.cur = SENTINEL_CUR, .kind = TINY_HEAP_DEAD};
static struct tiny_heap heap_orphan = {.cur = SENTINEL_CUR, .kind = TINY_HEAP_ORPHAN};
static void tiny_adopt(struct tiny_heap *h, struct tiny_segment *a);

HAK_TLS_IE struct tiny_heap *tiny_tls_heap = &heap_empty;

static pthread_mutex_t tiny_global_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tiny_segment *abandoned;      /* segments with no owner */
static struct tiny_heap *heap_pool;         /* heap structs free for reuse */
static struct tiny_heap *heaps_chunk;       /* chunk heap structs are carved from */
static size_t heaps_used, heaps_cap;        /* structs carved / room in heaps_chunk */
/* Guards the orphan heap; taken before tiny_global_lock. */
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;

void hak_thread_attach(void);

static inline unsigned class_of(size_t size) { return tiny_class_of[(size + 7) >> 3]; }

static inline char *slab_base(struct tiny_slab *sl) {
    uintptr_t seg = hak_align_down((uintptr_t)sl, HAK_CHUNK);
    return (char *)seg + (uintptr_t)sl->index * TINY_SLAB_SIZE;
}

static inline struct tiny_segment *segment_of(struct tiny_slab *sl) {
    return (struct tiny_segment *)hak_align_down((uintptr_t)sl, HAK_CHUNK);
}

/* ---- lists (owner only) ------------------------------------------------ */

static void slist_push(struct tiny_slab_list *l, struct tiny_slab *sl) {
    sl->prev = NULL;
    sl->next = l->head;
    if (l->head) l->head->prev = sl;
    l->head = sl;
}

static void slist_remove(struct tiny_slab_list *l, struct tiny_slab *sl) {
    if (sl->prev)
        sl->prev->next = sl->next;
    else
        l->head = sl->next;
    if (sl->next) sl->next->prev = sl->prev;
    sl->next = sl->prev = NULL;
}

static void seg_push(struct tiny_segment **l, struct tiny_segment *s) {
    s->prev = NULL;
    s->next = *l;
    if (*l) (*l)->prev = s;
    *l = s;
}

static void seg_remove(struct tiny_segment **l, struct tiny_segment *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        *l = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

/* ---- remote frees ------------------------------------------------------ */

static void heap_notify_push(struct tiny_heap *h, struct tiny_slab *sl) {
    atomic_store_relaxed(&sl->in_notify, 1);
    struct tiny_slab *old = atomic_load_relaxed(&h->notify);
    do {
        sl->notify_next = old;
    } while (!atomic_compare_exchange_weak_explicit(&h->notify, &old, sl, memory_order_release,
                                                    memory_order_relaxed));
}

/* Pushes p onto sl's remote list; hands a slab its owner set aside as full
 * back to the owner. Any thread, lock-free. */
static void free_remote(struct tiny_slab *sl, void *p) {
    uintptr_t old = atomic_load_relaxed(&sl->remote);
    for (;;) {
        if ((old & TINY_RS_MASK) == TINY_RS_NOTIFY) {
            uintptr_t busy = (old & ~TINY_RS_MASK) | TINY_RS_NOTIFYING;
            if (!atomic_cas_weak_acq_rel(&sl->remote, &old, busy)) continue;
            /* The owner cannot abandon the slab while it is NOTIFYING. */
            heap_notify_push(atomic_load_acquire(&sl->owner), sl);
            old = busy;
            for (;;) {
                *(uintptr_t *)p = old & ~TINY_RS_MASK;
                if (atomic_cas_weak_acq_rel(&sl->remote, &old, (uintptr_t)p | TINY_RS_NORMAL))
                    return;
            }
        }
        *(uintptr_t *)p = old & ~TINY_RS_MASK;
        if (atomic_cas_weak_acq_rel(&sl->remote, &old, (uintptr_t)p | (old & TINY_RS_MASK)))
            return;
    }
}

/* Takes sl's whole remote list (owner), keeping the state bits; returns the
 * number of blocks and appends them to the local free list. */
static uint32_t collect_remote(struct tiny_slab *sl, uintptr_t new_state, bool set_state) {
    uintptr_t old = atomic_load_relaxed(&sl->remote);
    for (;;) {
        if ((old & ~TINY_RS_MASK) == 0 && !set_state) return 0;
        uintptr_t nw = set_state ? new_state : (old & TINY_RS_MASK);
        if (atomic_cas_weak_acq_rel(&sl->remote, &old, nw)) break;
    }
    void *list = (void *)(old & ~TINY_RS_MASK);
    if (!list) return 0;
    uint32_t n = 1;
    void *tail = list;
    while (*(void **)tail) {
        tail = *(void **)tail;
        n++;
    }
    *(void **)tail = sl->free;
    sl->free = list;
    hak_assert(sl->used >= n);
    sl->used -= n;
    return n;
}

/* Marks an avail slab with nothing free as full (owner). Fails when a
 * remote free came in meanwhile: the caller collects it instead. */
static bool try_mark_full(struct tiny_slab *sl) {
    /* still on the notify list from an earlier hand-back: a second push
     * would corrupt that list; the next drain clears the flag */
    if (atomic_load_acquire(&sl->in_notify)) return false;
    uintptr_t old = atomic_load_relaxed(&sl->remote);
    for (;;) {
        if ((old & ~TINY_RS_MASK) != 0) return false;
        if ((old & TINY_RS_MASK) == TINY_RS_NOTIFYING) return false; /* a freer is mid-way */
        if (atomic_cas_weak_acq_rel(&sl->remote, &old, TINY_RS_NOTIFY)) return true;
    }
}

/* ---- segments ---------------------------------------------------------- */

static void segment_release(struct tiny_segment *s) {
    segmap_unregister((uintptr_t)s, 1);
    os_unmap(s, HAK_CHUNK);
    stats_note_unmap(HAK_LANE_TINY, HAK_CHUNK);
}

static struct tiny_segment *segment_new(struct tiny_heap *h) {
    void *base;
    if (os_map_chunks(HAK_CHUNK, HAK_CHUNK, 0, &base) != 0) return NULL;
    stats_note_map(HAK_LANE_TINY, HAK_CHUNK);
    struct tiny_segment *s = base;
    s->magic = TINY_SEG_MAGIC;
    s->free_slabs = (uint32_t)(((uint64_t)1 << TINY_SLABS) - 2); /* all but slab 0 */
    s->heap = h;
    for (unsigned i = 0; i < TINY_SLABS; i++) s->slabs[i].index = (uint8_t)i;
    segmap_register((uintptr_t)base, 1, HAK_LANE_TINY);
    seg_push(&h->segs, s);
    h->empty_segs++;
    return s;
}

/* Gives slab sl (empty, off every list) back to its segment (owner). */
static void slab_release(struct tiny_heap *h, struct tiny_slab *sl) {
    struct tiny_segment *s = segment_of(sl);
    sl->free = NULL;
    sl->used = 0;
    sl->block_size = 0;
    sl->div_magic = 0;
    sl->carved = 0;
    sl->capacity = 0;
    sl->where = TINY_ON_NONE;
    atomic_store_relaxed(&sl->remote, TINY_RS_NORMAL);
    if (s->free_slabs == 0) {
        seg_remove(&h->segs_full, s);
        seg_push(&h->segs, s);
    }
    s->free_slabs |= (uint32_t)1 << sl->index;
    if (s->free_slabs == (uint32_t)(((uint64_t)1 << TINY_SLABS) - 2)) {
        /* the segment is empty: keep one per heap (its pages purged), unmap
         * the others */
        if (h->empty_segs >= 1) {
            seg_remove(&h->segs, s);
            segment_release(s);
        } else {
            h->empty_segs++;
            os_purge((char *)s + TINY_SLAB_SIZE, HAK_CHUNK - TINY_SLAB_SIZE);
            stats_note_purge(HAK_LANE_TINY, HAK_CHUNK - TINY_SLAB_SIZE);
        }
    }
}

/* Assigns an unassigned slab of h to class cls; NULL when out of memory. */
static struct tiny_slab *slab_assign(struct tiny_heap *h, unsigned cls);

/* ---- heaps ------------------------------------------------------------- */

static struct tiny_heap *heap_alloc(void) {
    struct tiny_heap *h;
    pthread_mutex_lock(&tiny_global_lock);
    h = heap_pool;
    if (h) {
        heap_pool = h->pool_next;
    } else {
        if (heaps_used == heaps_cap) {
            void *chunk;
            if (os_map_chunks(HAK_CHUNK, HAK_CHUNK, 0, &chunk) != 0) {
                pthread_mutex_unlock(&tiny_global_lock);
                return NULL;
            }
            stats_note_map(HAK_LANE_TINY, HAK_CHUNK);
            heaps_chunk = chunk;
            heaps_used = 0;
            heaps_cap = HAK_CHUNK / sizeof(struct tiny_heap);
        }
        h = &heaps_chunk[heaps_used++];
    }
    pthread_mutex_unlock(&tiny_global_lock);
    memset(h, 0, sizeof *h);
    for (unsigned c = 0; c < TINY_CLASSES; c++) h->cur[c] = &sentinel_slab;
    h->kind = TINY_HEAP_LIVE;
    return h;
}

static void flush_stats(struct tiny_heap *h) {
    stats_batch_flush(&h->stats, HAK_LANE_TINY);
}

/* Takes back the slabs the remote freers handed back (owner). */
static void drain_notify(struct tiny_heap *h) {
    if (atomic_load_relaxed(&h->notify) == NULL) return;
    struct tiny_slab *sl = atomic_exchange_acq_rel(&h->notify, NULL);
    while (sl) {
        struct tiny_slab *next = sl->notify_next;
        sl->notify_next = NULL;
        atomic_store_release(&sl->in_notify, 0);
        if (sl->where == TINY_ON_FULL && atomic_load_relaxed(&sl->owner) == h) {
            slist_remove(&h->full[sl->cls], sl);
            slist_push(&h->avail[sl->cls], sl);
            sl->where = TINY_ON_AVAIL;
        }
        sl = next;
    }
}

/* Carves a page's worth of never-used blocks onto the free list. */
static bool carve(struct tiny_slab *sl) {
    if (sl->carved >= sl->capacity) return false;
    uint32_t bs = sl->block_size;
    uint32_t want = (uint32_t)os_page_size;
    uint32_t n = want / bs ? want / bs : 1;
    uint32_t left = (sl->capacity - sl->carved) / bs;
    if (n > left) n = left;
    char *first = slab_base(sl) + sl->carved;
    for (uint32_t i = 0; i + 1 < n; i++) *(void **)(first + (size_t)i * bs) = first + (size_t)(i + 1) * bs;
    *(void **)(first + (size_t)(n - 1) * bs) = sl->free;
    sl->free = first;
    sl->carved += n * bs;
    return true;
}

/* Makes sl have a free block if it can (owner). */
static bool refill(struct tiny_slab *sl) {
    if (sl->free) return true;
    if (collect_remote(sl, 0, false)) return true;
    return carve(sl);
}

static struct tiny_slab *slab_assign(struct tiny_heap *h, unsigned cls) {
    struct tiny_segment *s = h->segs;
    if (!s) {
        /* adopt an abandoned segment before mapping a new one */
        s = NULL;
        pthread_mutex_lock(&tiny_global_lock);
        struct tiny_segment *a = abandoned;
        if (a) seg_remove(&abandoned, a);
        pthread_mutex_unlock(&tiny_global_lock);
        if (a) {
            tiny_adopt(h, a);
            /* adoption may have served this class already */
            struct tiny_slab *sl = h->avail[cls].head;
            if (sl && refill(sl)) return sl;
            s = h->segs;
        }
        if (!s) s = segment_new(h);
        if (!s) return NULL;
    }
    if (s->free_slabs == (uint32_t)(((uint64_t)1 << TINY_SLABS) - 2)) h->empty_segs--;
    unsigned i = (unsigned)HAK_CTZ64(s->free_slabs);
    s->free_slabs &= ~((uint32_t)1 << i);
    if (s->free_slabs == 0) {
        seg_remove(&h->segs, s);
        seg_push(&h->segs_full, s);
    }
    struct tiny_slab *sl = &s->slabs[i];
    uint32_t bs = tiny_class_size[cls];
    sl->block_size = bs;
    sl->div_magic = (uint32_t)((((uint64_t)1 << 32) + bs - 1) / bs);
    sl->capacity = (uint32_t)(TINY_SLAB_SIZE / bs * bs);
    sl->carved = 0;
    sl->used = 0;
    sl->free = NULL;
    sl->cls = (uint8_t)cls;
    atomic_store_relaxed(&sl->remote, TINY_RS_NORMAL);
    atomic_store_release(&sl->owner, h);
    slist_push(&h->avail[cls], sl);
    sl->where = TINY_ON_AVAIL;
    carve(sl);
    return sl;
}

/* Finds or makes a slab of class cls with a free block, and makes it the
 * current one (owner). NULL when out of memory. */
static struct tiny_slab *find_slab(struct tiny_heap *h, unsigned cls) {
    drain_notify(h);
    struct tiny_slab *sl = h->cur[cls];
    if (sl != &sentinel_slab && refill(sl)) return sl;
    sl = h->avail[cls].head;
    while (sl) {
        struct tiny_slab *next = sl->next;
        if (refill(sl)) {
            h->cur[cls] = sl;
            return sl;
        }
        if (try_mark_full(sl)) {
            slist_remove(&h->avail[cls], sl);
            slist_push(&h->full[cls], sl);
            sl->where = TINY_ON_FULL;
            if (h->cur[cls] == sl) h->cur[cls] = &sentinel_slab;
        } else if (refill(sl)) {
            h->cur[cls] = sl;
            return sl;
        }
        sl = next;
    }
    sl = slab_assign(h, cls);
    h->cur[cls] = sl ? sl : &sentinel_slab;
    return sl;
}

static void *pop(struct tiny_heap *h, struct tiny_slab *sl) {
    void *p = sl->free;
    sl->free = *(void **)p;
    sl->used++;
    if (!HAK_BENCH_MINIMAL) {
        h->stats.c[HAK_CTR_allocs]++;
        h->stats.c[HAK_CTR_alloc_bytes] += sl->block_size;
    }
    return p;
}

static void *alloc_class(struct tiny_heap *h, unsigned cls) {
    struct tiny_slab *sl = find_slab(h, cls);
    if (!sl) {
        errno = ENOMEM;
        return NULL;
    }
    return pop(h, sl);
}

/* The heap of the calling thread, made on its first allocation; NULL for a
 * thread whose heap was torn down (it uses the orphan heap). */
static struct tiny_heap *my_heap(void) {
    struct tiny_heap *h = tiny_tls_heap;
    if (HAK_LIKELY(h->kind == TINY_HEAP_LIVE)) return h;
    if (h->kind == TINY_HEAP_DEAD) return NULL;
    if (!hak_ensure_init()) return NULL;
    h = heap_alloc();
    if (!h) return NULL;
    tiny_tls_heap = h;
    hak_thread_attach();
    return h;
}

/* An allocation for a thread without a heap: from the orphan heap, under
 * the global lock. Its blocks are freed as remote frees by everyone. */
static void *orphan_alloc(unsigned cls) {
    pthread_mutex_lock(&orphan_lock);
    void *p = alloc_class(&heap_orphan, cls);
    flush_stats(&heap_orphan);
    pthread_mutex_unlock(&orphan_lock);
    return p;
}

void *tiny_alloc_slow(size_t size) {
    struct tiny_heap *h = my_heap(); /* initialises hakmem (and the class table) */
    if (!h) {
        if (atomic_load_acquire(&hak_init_state) != HAK_INIT_READY) {
            errno = ENOMEM;
            return NULL;
        }
        return orphan_alloc(class_of(size));
    }
    flush_stats(h);
    return alloc_class(h, class_of(size));
}

/* ---- free -------------------------------------------------------------- */

/* The slab of h became empty or got its first free block back (owner). */
static void local_free_fixup(struct tiny_heap *h, struct tiny_slab *sl) {
    if (sl->where == TINY_ON_FULL) {
        /* leave NOTIFY: the owner has it back */
        uintptr_t old = atomic_load_relaxed(&sl->remote);
        while ((old & TINY_RS_MASK) == TINY_RS_NOTIFY &&
               !atomic_cas_weak_acq_rel(&sl->remote, &old, old & ~TINY_RS_MASK)) {
        }
        slist_remove(&h->full[sl->cls], sl);
        slist_push(&h->avail[sl->cls], sl);
        sl->where = TINY_ON_AVAIL;
    }
    if (sl->used == 0 && h->cur[sl->cls] != sl &&
        (atomic_load_relaxed(&sl->remote) & TINY_RS_MASK) == TINY_RS_NORMAL) {
        slist_remove(&h->avail[sl->cls], sl);
        slab_release(h, sl);
    }
}

void tiny_free_slow(struct tiny_slab *sl, void *p, hak_call_t call) {
    uintptr_t seg = hak_align_down((uintptr_t)p, HAK_CHUNK);
    uint32_t off = (uint32_t)((uintptr_t)p & (TINY_SLAB_SIZE - 1));
    uint32_t bs = sl->block_size;
    if (bs == 0 || ((struct tiny_segment *)seg)->magic != TINY_SEG_MAGIC) {
        hak_report_misuse(call, p, "invalid pointer (not a block)");
        return;
    }
    if (off % bs != 0 || off >= sl->carved) {
        hak_report_misuse(call, p, "invalid pointer (inside a block)");
        return;
    }
    struct tiny_heap *h = tiny_tls_heap;
    if (atomic_load_relaxed(&sl->owner) != h) {
        free_remote(sl, p);
        if (!HAK_BENCH_MINIMAL) {
            if (h->kind == TINY_HEAP_LIVE) {
                h->stats.c[HAK_CTR_frees]++;
                h->stats.c[HAK_CTR_free_bytes] += bs;
            } else {
                stats_note_free(HAK_LANE_TINY, bs);
            }
        }
        return;
    }
    if (sl->free == p || sl->used == 0) {
        hak_report_misuse(call, p, "double free");
        return;
    }
    if (HAK_DEBUG_CHECKS) {
        for (void *q = sl->free; q; q = *(void **)q) {
            if (q == p) {
                hak_report_misuse(call, p, "double free");
                return;
            }
        }
    }
    *(void **)p = sl->free;
    sl->free = p;
    sl->used--;
    if (!HAK_BENCH_MINIMAL) {
        h->stats.c[HAK_CTR_frees]++;
        h->stats.c[HAK_CTR_free_bytes] += bs;
    }
    local_free_fixup(h, sl);
}

/* ---- thread exit, abandonment, adoption ------------------------------- */

/* Sets sl's remote state to NEVER, waiting out a freer that is handing it
 * back; the owner's notify list is drained afterwards. */
static void slab_disown(struct tiny_slab *sl) {
    uintptr_t old = atomic_load_relaxed(&sl->remote);
    for (;;) {
        if ((old & TINY_RS_MASK) == TINY_RS_NOTIFYING) {
            sched_yield();
            old = atomic_load_relaxed(&sl->remote);
            continue;
        }
        if (atomic_cas_weak_acq_rel(&sl->remote, &old, (old & ~TINY_RS_MASK) | TINY_RS_NEVER))
            break;
    }
    atomic_store_release(&sl->owner, NULL);
    sl->where = TINY_ON_NONE;
    sl->next = sl->prev = NULL;
}

/* Gives up every slab and segment of h (its thread is ending). */
static void heap_abandon(struct tiny_heap *h) {
    flush_stats(h);
    for (unsigned c = 0; c < TINY_CLASSES; c++) {
        h->cur[c] = &sentinel_slab;
        /* release empty slabs first, then disown the rest */
        for (int list = 0; list < 2; list++) {
            struct tiny_slab_list *l = list ? &h->full[c] : &h->avail[c];
            while (l->head) {
                struct tiny_slab *sl = l->head;
                slist_remove(l, sl);
                collect_remote(sl, 0, false);
                if (sl->used == 0 &&
                    (atomic_load_relaxed(&sl->remote) & TINY_RS_MASK) == TINY_RS_NORMAL) {
                    slab_release(h, sl);
                    continue;
                }
                slab_disown(sl);
            }
        }
    }
    atomic_exchange_acq_rel(&h->notify, NULL);
    pthread_mutex_lock(&tiny_global_lock);
    for (int list = 0; list < 2; list++) {
        struct tiny_segment **l = list ? &h->segs_full : &h->segs;
        while (*l) {
            struct tiny_segment *s = *l;
            seg_remove(l, s);
            if (s->free_slabs == (uint32_t)(((uint64_t)1 << TINY_SLABS) - 2)) {
                segment_release(s);
                continue;
            }
            s->heap = NULL;
            seg_push(&abandoned, s);
        }
    }
    h->kind = 0;
    h->pool_next = heap_pool;
    heap_pool = h;
    pthread_mutex_unlock(&tiny_global_lock);
}

/* Makes h the owner of abandoned segment a, taking back the blocks other
 * threads freed into it meanwhile. */
static void tiny_adopt(struct tiny_heap *h, struct tiny_segment *a) {
    a->heap = h;
    uint32_t in_use = ~a->free_slabs & (uint32_t)(((uint64_t)1 << TINY_SLABS) - 2);
    for (unsigned i = 1; i < TINY_SLABS; i++) {
        if (!(in_use & ((uint32_t)1 << i))) continue;
        struct tiny_slab *sl = &a->slabs[i];
        atomic_store_release(&sl->owner, h);
        atomic_store_relaxed(&sl->in_notify, 0); /* its notify list was discarded */
        collect_remote(sl, TINY_RS_NORMAL, true);
        slist_push(&h->avail[sl->cls], sl);
        sl->where = TINY_ON_AVAIL;
    }
    seg_push(a->free_slabs ? &h->segs : &h->segs_full, a);
    /* empty slabs go back to the segment; full ones are marked as such by
     * the next find_slab of their class */
    for (unsigned i = 1; i < TINY_SLABS; i++) {
        if (!(in_use & ((uint32_t)1 << i))) continue;
        struct tiny_slab *sl = &a->slabs[i];
        if (sl->used == 0) {
            slist_remove(&h->avail[sl->cls], sl);
            slab_release(h, sl);
        }
    }
}

static void tiny_thread_exit(void) {
    struct tiny_heap *h = tiny_tls_heap;
    if (h->kind != TINY_HEAP_LIVE) return;
    tiny_tls_heap = &heap_dead;
    heap_abandon(h);
}

/* ---- the lane contract ------------------------------------------------- */

static int tiny_init(void) {
    for (size_t i = 0; i <= (HAK_TINY_MAX >> 3); i++) {
        size_t size = i == 0 ? 1 : i << 3;
        unsigned c = 0;
        while (tiny_class_size[c] < size) c++;
        tiny_class_of[i] = (uint8_t)c;
    }
    return 0;
}

static void *tiny_alloc(size_t size, bool *zeroed) {
    if (zeroed) *zeroed = false;
    return tiny_alloc_fast(size);
}

static void *tiny_alloc_aligned(size_t size, size_t align, bool *zeroed) {
    if (zeroed) *zeroed = false;
    if (align > HAK_TINY_MAX || size > HAK_TINY_MAX) {
        errno = EINVAL;
        return NULL;
    }
    unsigned cls = class_of(size);
    while (cls < TINY_CLASSES && tiny_class_size[cls] % align != 0) cls++;
    if (cls == TINY_CLASSES) {
        errno = EINVAL;
        return NULL;
    }
    struct tiny_heap *h = my_heap();
    if (!h) return orphan_alloc(cls);
    struct tiny_slab *sl = h->cur[cls];
    if (sl->free) return pop(h, sl);
    return alloc_class(h, cls);
}

static void tiny_free(void *p, uintptr_t head, hak_call_t call) { tiny_free_fast(p, head, call); }

static struct tiny_slab *slab_of(const void *p, uintptr_t seg) {
    return &((struct tiny_segment *)seg)->slabs[((uintptr_t)p - seg) >> TINY_SLAB_SHIFT];
}

static size_t tiny_usable_size(const void *p, uintptr_t seg, hak_call_t call) {
    struct tiny_slab *sl = slab_of(p, seg);
    uint32_t off = (uint32_t)((uintptr_t)p & (TINY_SLAB_SIZE - 1));
    uint32_t bs = sl->block_size;
    if (bs == 0 || off % bs != 0 || off >= sl->carved) {
        hak_report_misuse(call, p, "invalid pointer (inside a block)");
        return 0;
    }
    return bs;
}

static void *tiny_resize(void *p, uintptr_t seg, size_t new_size) {
    struct tiny_slab *sl = slab_of(p, seg);
    /* in place when the new size has the same class */
    return class_of(new_size) == sl->cls ? p : NULL;
}

static size_t tiny_trim(void) {
    /* Segments abandoned by exited threads: take back what other threads
     * freed into them, and unmap those left empty. */
    size_t bytes = 0;
    pthread_mutex_lock(&tiny_global_lock);
    struct tiny_segment *s = abandoned;
    while (s) {
        struct tiny_segment *next = s->next;
        bool empty = true;
        for (unsigned i = 1; i < TINY_SLABS && empty; i++) {
            struct tiny_slab *sl = &s->slabs[i];
            if (s->free_slabs & ((uint32_t)1 << i)) continue;
            collect_remote(sl, TINY_RS_NEVER, true);
            if (sl->used != 0) empty = false;
        }
        if (empty) {
            seg_remove(&abandoned, s);
            segment_release(s);
            bytes += HAK_CHUNK;
        }
        s = next;
    }
    pthread_mutex_unlock(&tiny_global_lock);
    return bytes;
}

static void tiny_fork_prepare(void) {
    pthread_mutex_lock(&orphan_lock);
    pthread_mutex_lock(&tiny_global_lock);
}
static void tiny_fork_parent(void) {
    pthread_mutex_unlock(&tiny_global_lock);
    pthread_mutex_unlock(&orphan_lock);
}
static void tiny_fork_child(void) {
    /* Heaps of the parent's other threads stay as they are: never adopted
     * (one may have been mid-update); blocks of theirs freed here are
     * remote frees onto their slabs. */
    pthread_mutex_unlock(&tiny_global_lock);
    pthread_mutex_unlock(&orphan_lock);
}

const struct hak_lane tiny_lane = {
    .name = "tiny",
    .id = HAK_LANE_TINY,
    .min_size = 0,
    .max_size = HAK_TINY_MAX,
    .init = tiny_init,
    .alloc = tiny_alloc,
    .alloc_aligned = tiny_alloc_aligned,
    .free = tiny_free,
    .usable_size = tiny_usable_size,
    .resize = tiny_resize,
    .thread_exit = tiny_thread_exit,
    .fork_prepare = tiny_fork_prepare,
    .fork_parent = tiny_fork_parent,
    .fork_child = tiny_fork_child,
    .trim = tiny_trim,
};
