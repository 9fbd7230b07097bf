/*
 * segmap.h: the address-space map. One byte per 2 MiB chunk of the 47-bit
 * user address space (2^26 bytes, reserved once with MAP_NORESERVE and
 * touched lazily) says which lane owns the chunk:
 *
 *   0              not hakmem's (foreign)
 *   1 .. 0x7f      the head chunk of a mapping of lane <byte>
 *   0x80 | e       a tail chunk: the head is at least 2^e chunks below, and
 *                  less than 2^(e+1); stepping back 2^e chunks at least halves
 *                  the distance, so any head is found in <= 26 steps (one for
 *                  the second chunk, two for the third, ...).
 *
 * Lookups are lock-free byte loads; registration happens before a block of
 * the mapping is handed out and unregistration after its last block is gone,
 * so a lookup of a live block always sees a stable entry. A lookup of a
 * foreign or stale pointer may see any state, and still terminates and never
 * dereferences the pointer.
 */
#ifndef HAK_SEGMAP_H
#define HAK_SEGMAP_H

#include "internal.h"

#define SEGMAP_ADDR_BITS 47
#define SEGMAP_ENTRIES ((uintptr_t)1 << (SEGMAP_ADDR_BITS - HAK_CHUNK_SHIFT))
#define SEGMAP_TAIL 0x80u

struct segmap {
    _Atomic uint8_t *table; /* SEGMAP_ENTRIES bytes, or NULL before segmap_init */
    uintptr_t limit;        /* SEGMAP_ENTRIES once the table exists, else 0, so
                               one compare rejects both out-of-range and early */
};
extern HAK_HIDDEN struct segmap segmap_g;

/* Reserves the table. Single-threaded (hak_init). Returns 0 or an errno. */
int segmap_init(void);

/* The lane owning address p and the base of its mapping's head chunk, or
 * HAK_LANE_NONE for a foreign address. */
static inline int segmap_lookup(const void *p, uintptr_t *head) {
    uintptr_t idx = (uintptr_t)p >> HAK_CHUNK_SHIFT;
    *head = 0;
    if (HAK_UNLIKELY(idx >= segmap_g.limit)) return HAK_LANE_NONE;
    unsigned b = atomic_load_relaxed(&segmap_g.table[idx]);
    while (HAK_UNLIKELY(b >= SEGMAP_TAIL)) {
        uintptr_t step = (uintptr_t)1 << (b & 0x3f);
        if (step > idx) return HAK_LANE_NONE; /* torn or stale entry */
        idx -= step;
        b = atomic_load_relaxed(&segmap_g.table[idx]);
    }
    *head = idx << HAK_CHUNK_SHIFT;
    return (int)b;
}

/* Marks nchunks chunks from base (chunk-aligned) as one mapping of lane. */
void segmap_register(uintptr_t base, size_t nchunks, int lane);
/* Marks them foreign again. */
void segmap_unregister(uintptr_t base, size_t nchunks);

#endif /* HAK_SEGMAP_H */
