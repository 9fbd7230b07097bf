/*
 * segmap.c: owns the address-space map (see segmap.h). Takes no lock: each
 * mapping's entries are written by the one thread that maps or unmaps it.
 */
#include "segmap.h"

#include "os.h"

struct segmap segmap_g;

int segmap_init(void) {
    void *t;
    int err = os_reserve_noreserve(SEGMAP_ENTRIES, &t);
    if (err) return err;
    segmap_g.table = t;
    segmap_g.limit = SEGMAP_ENTRIES;
    return 0;
}

static unsigned tail_code(size_t distance) {
    /* floor(log2(distance)), distance >= 1 */
    return SEGMAP_TAIL | (unsigned)(63 - HAK_CLZ64((unsigned long long)distance));
}

void segmap_register(uintptr_t base, size_t nchunks, int lane) {
    uintptr_t idx = base >> HAK_CHUNK_SHIFT;
    hak_assert((base & HAK_CHUNK_MASK) == 0);
    hak_assert(idx + nchunks <= segmap_g.limit);
    hak_assert(lane > 0 && lane < (int)SEGMAP_TAIL);
    for (size_t i = 1; i < nchunks; i++)
        atomic_store_relaxed(&segmap_g.table[idx + i], (uint8_t)tail_code(i));
    atomic_store_release(&segmap_g.table[idx], (uint8_t)lane);
}

void segmap_unregister(uintptr_t base, size_t nchunks) {
    uintptr_t idx = base >> HAK_CHUNK_SHIFT;
    hak_assert((base & HAK_CHUNK_MASK) == 0);
    atomic_store_release(&segmap_g.table[idx], 0);
    for (size_t i = 1; i < nchunks; i++) atomic_store_relaxed(&segmap_g.table[idx + i], 0);
}
