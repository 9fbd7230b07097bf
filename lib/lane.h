/*
 * lane.h: the lane contract. A lane is a module serving one range of sizes;
 * the dispatcher (dispatch.c) holds a const table of the lanes compiled in
 * and calls them only through this struct (or, for the hot path, through the
 * static inline functions of the lane's <lane>_fast.h).
 *
 * Rules every lane follows:
 *  - all its memory is mapped in 2 MiB-aligned chunks registered in the
 *    segment map (segmap.h) under its id, so pointer -> lane is one lookup;
 *  - every pointer it hands out is the start of a block, aligned to 16 (or
 *    to the largest power of two dividing the size, for sizes below 16);
 *  - it never calls the libc allocator;
 *  - on out-of-memory it returns NULL and sets errno = ENOMEM; the
 *    dispatcher releases caches and retries once before giving up.
 */
#ifndef HAK_LANE_H
#define HAK_LANE_H

#include "internal.h"

struct hak_lane {
    const char *name;
    uint8_t id;          /* enum hak_lane_id; the byte stored in the segment map */
    size_t min_size;     /* the lane's default range is (min_size, max_size] */
    size_t max_size;
    unsigned nclasses;   /* size classes (0 for a lane without) */
    const uint32_t *class_size; /* their block sizes, ascending */

    /* Called once, single-threaded, from hak_init before any other member.
     * Must not allocate. Returns 0 or an errno. */
    int (*init)(void);

    /* size >= 1 (the dispatcher turns 0 into 1). Thread-safe. Returns a block
     * of at least size bytes, or NULL with errno = ENOMEM. zeroed is set to
     * true when the block is known to read as zero (fresh from the OS), so
     * that calloc can skip its memset; may be NULL. */
    void *(*alloc)(size_t size, bool *zeroed);

    /* align is a power of two >= 16. Returns NULL with errno = EINVAL when the
     * lane has no naturally aligned block for (size, align): the dispatcher
     * then asks the next lane up. Otherwise as alloc. */
    void *(*alloc_aligned)(size_t size, size_t align, bool *zeroed);

    /* Frees p; head is the base of the chunk the segment map names as the head
     * of p's mapping. Thread-safe, callable from any thread. Detects the
     * misuse it can (interior pointer, double free) and reports it through
     * hak_report_misuse(call, ...); never crashes on such a pointer. */
    void (*free)(void *p, uintptr_t head, hak_call_t call);

    /* The usable size of block p (>= the size requested), or 0 after
     * reporting misuse. Thread-safe. */
    size_t (*usable_size)(const void *p, uintptr_t head, hak_call_t call);

    /* Resizes p within the lane: in place, or by moving its pages (mremap).
     * Returns the block (same or new address) with its contents kept, or
     * NULL with p untouched when the lane cannot (the dispatcher then
     * allocates, copies and frees). new_size is within the lane's range or
     * larger for the huge lane. May be NULL: always alloc-copy-free. */
    void *(*resize)(void *p, uintptr_t head, size_t new_size);

    /* The calling thread is exiting: give back its caches. May be NULL. */
    void (*thread_exit)(void);

    /* fork(): prepare takes every lock of the lane (in its documented order),
     * parent and child release them; child also forgets per-thread state of
     * threads that do not exist in the child. May be NULL. */
    void (*fork_prepare)(void);
    void (*fork_parent)(void);
    void (*fork_child)(void);

    /* Gives cached memory back to the OS; returns bytes released. Thread-safe. */
    size_t (*trim)(void);

    /* Flushes the calling thread's batched counters into the global ones
     * (before a statistics snapshot). May be NULL. */
    void (*flush_stats)(void);
};

#endif /* HAK_LANE_H */
