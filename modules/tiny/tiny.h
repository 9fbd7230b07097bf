/*
 * tiny.h: the tiny lane, blocks of 1 B .. 1 KiB (HAK_TINY_MAX).
 *
 * Main types:
 *   struct tiny_segment  a SuperSlab: one 2 MiB chunk, registered in the
 *                        segment map; slab 0 holds this header, slabs
 *                        1..31 hold blocks. Owned by one heap, or abandoned.
 *   struct tiny_slab     64 KiB of blocks of one size class; its metadata
 *                        lives in the segment header, blocks are headerless.
 *   struct tiny_heap     one per thread (the thread's TLS holds a pointer
 *                        to it; the heap itself is in hakmem's memory): the
 *                        current slab of each class and the lists of slabs.
 *
 * Ownership: a slab's free list, used count and lists belong to its owner
 * heap's thread. Any other thread frees a block by pushing it onto the
 * slab's atomic remote list (CAS); the owner takes the whole list with one
 * exchange. The remote word's low two bits carry the notification state
 * (TINY_RS_*), so that a slab the owner put aside as full is handed back to
 * it (through heap->notify) when another thread frees into it.
 *
 * Locks: tiny_global_lock guards the abandoned-segment list, the heap pool
 * and the orphan heap (used by threads whose own heap was torn down). Lock
 * order: tiny_global_lock, then nothing. Fast paths take no lock and do no
 * atomic read-modify-write.
 */
#ifndef HAK_TINY_H
#define HAK_TINY_H

#include "lane.h"
#include "stats.h"

#define TINY_SLAB_SHIFT 16
#define TINY_SLAB_SIZE ((uintptr_t)1 << TINY_SLAB_SHIFT) /* 64 KiB */
#define TINY_SLABS ((unsigned)(HAK_CHUNK / TINY_SLAB_SIZE)) /* 32 per segment */
#define TINY_CLASSES 21
#define TINY_SEG_MAGIC 0x54494e59u /* "TINY" */

_Static_assert(HAK_CHUNK % TINY_SLAB_SIZE == 0, "slabs divide the segment");
_Static_assert(TINY_SLABS <= 32, "the free-slab bitmap is one 32-bit word");

/* Remote-list notification states (low bits of tiny_slab.remote). */
enum {
    TINY_RS_NORMAL = 0,    /* owner has the slab on its avail list */
    TINY_RS_NOTIFY = 1,    /* owner put it aside as full: the next remote free
                              hands it back through owner->notify */
    TINY_RS_NOTIFYING = 2, /* a remote freer is doing that right now */
    TINY_RS_NEVER = 3,     /* abandoned: no owner to notify */
};
#define TINY_RS_MASK ((uintptr_t)3)

/* Where a slab is on its heap's lists. */
enum { TINY_ON_NONE = 0, TINY_ON_AVAIL = 1, TINY_ON_FULL = 2 };

struct tiny_heap;

/* Invariant (owner's view): used == blocks handed out - blocks returned to
 * free (locally or collected from remote); blocks on the remote list are
 * still counted in used. used == 0 and carved == 0 for an unassigned slab. */
struct tiny_slab {
    void *free;                        /* local free list (owner only) */
    uint32_t used;                     /* blocks out, see above */
    uint32_t block_size;               /* bytes; 0 when unassigned */
    struct tiny_heap *_Atomic owner;   /* owner heap, NULL when abandoned */
    uint32_t div_magic;                /* ceil(2^32 / block_size): offset -> index */
    uint32_t carved;                   /* bytes of the slab carved into blocks so far */
    uint32_t capacity;                 /* bytes usable for blocks (multiple of block_size) */
    uint8_t cls;                       /* size class */
    uint8_t where;                     /* TINY_ON_* */
    uint8_t index;                     /* slab number in its segment */
    _Atomic uint8_t in_notify;         /* 1 from a freer's push onto owner->notify
                                          until the owner drains it */
    _Atomic uintptr_t remote;          /* remote free list | TINY_RS_* */
    struct tiny_slab *next, *prev;     /* heap's avail or full list of the class */
    struct tiny_slab *notify_next;     /* in owner->notify */
};

struct tiny_segment {
    uint32_t magic;                    /* TINY_SEG_MAGIC */
    uint32_t free_slabs;               /* bit i: slab i unassigned (slab 0 never) */
    struct tiny_heap *heap;            /* owner, NULL when abandoned */
    struct tiny_segment *next, *prev;  /* heap's segment list, or the abandoned list */
    struct tiny_slab slabs[TINY_SLABS];/* slabs[0] describes the header slab */
};
_Static_assert(sizeof(struct tiny_segment) <= TINY_SLAB_SIZE, "the header fits slab 0");

struct tiny_slab_list {
    struct tiny_slab *head;
};

struct tiny_heap {
    struct tiny_slab *cur[TINY_CLASSES]; /* current slab of each class (never NULL:
                                            the empty sentinel slab when none) */
    struct stats_batch stats;            /* counters not yet flushed */
    struct tiny_slab_list avail[TINY_CLASSES]; /* slabs that may have free blocks */
    struct tiny_slab_list full[TINY_CLASSES];  /* slabs put aside as full (NOTIFY) */
    struct tiny_slab *_Atomic notify;    /* full slabs that got a remote free */
    struct tiny_segment *segs;           /* segments with an unassigned slab */
    struct tiny_segment *segs_full;      /* segments with none */
    struct tiny_heap *pool_next;         /* in the heap pool (free heaps) */
    uint32_t kind;                       /* TINY_HEAP_* */
    uint32_t empty_segs;                 /* segments of this heap with no slab in use */
};

enum { TINY_HEAP_LIVE = 1, TINY_HEAP_EMPTY = 2, TINY_HEAP_DEAD = 3, TINY_HEAP_ORPHAN = 4 };

/* Class of each size: tiny_class_of[(size + 7) >> 3], size 0 .. HAK_TINY_MAX. */
extern uint8_t tiny_class_of[(HAK_TINY_MAX >> 3) + 1]; /* filled by tiny_init */
extern const uint16_t tiny_class_size[TINY_CLASSES];

extern const struct hak_lane tiny_lane;

/* The calling thread's heap: the empty sentinel until its first tiny
 * allocation, the dead sentinel after it exits. */
extern HAK_TLS_IE struct tiny_heap *tiny_tls_heap;

/* Slow paths behind tiny_fast.h. */
HAK_NOINLINE HAK_COLD void *tiny_alloc_slow(size_t size);
HAK_NOINLINE void tiny_free_slow(struct tiny_slab *sl, void *p, hak_call_t call);

#endif /* HAK_TINY_H */
