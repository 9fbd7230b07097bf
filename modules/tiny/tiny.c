/*
 * tiny.c: the tiny lane's classes and lane contract; the work is done by
 * the slab engine (lib/slab.c). Locks: the engine's, per lane.
 */
#include "tiny.h"

#include <errno.h>

#include "tiny_fast.h"
#include "options.h"

const uint32_t tiny_class_size[TINY_CLASSES] = {
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
};

/* Indexed by the size itself (one load on the malloc fast path, no
 * rounding): size 0, then a run of eight sizes per entry (1..8, 9..16, ...;
 * every class is a multiple of 16 bytes). */
#define R8(c) c, c, c, c, c, c, c, c
const uint8_t tiny_class_of[HAK_TINY_MAX + 1] = {
    0, R8(0), R8(0), R8(1), R8(1), R8(2), R8(2), R8(3), R8(3), R8(4), R8(4), R8(5), R8(5), R8(6),
    R8(6), R8(7), R8(7), R8(8), R8(8), R8(8), R8(8), R8(9), R8(9), R8(9), R8(9), R8(10), R8(10),
    R8(10), R8(10), R8(11), R8(11), R8(11), R8(11), R8(12), R8(12), R8(12), R8(12), R8(12), R8(12),
    R8(12), R8(12), R8(13), R8(13), R8(13), R8(13), R8(13), R8(13), R8(13), R8(13), R8(14), R8(14),
    R8(14), R8(14), R8(14), R8(14), R8(14), R8(14), R8(15), R8(15), R8(15), R8(15), R8(15), R8(15),
    R8(15), R8(15), R8(16), R8(16), R8(16), R8(16), R8(16), R8(16), R8(16), R8(16), R8(16), R8(16),
    R8(16), R8(16), R8(16), R8(16), R8(16), R8(16), R8(17), R8(17), R8(17), R8(17), R8(17), R8(17),
    R8(17), R8(17), R8(17), R8(17), R8(17), R8(17), R8(17), R8(17), R8(17), R8(17), R8(18), R8(18),
    R8(18), R8(18), R8(18), R8(18), R8(18), R8(18), R8(18), R8(18), R8(18), R8(18), R8(18), R8(18),
    R8(18), R8(18), R8(19), R8(19), R8(19), R8(19), R8(19), R8(19), R8(19), R8(19), R8(19), R8(19),
    R8(19), R8(19), R8(19), R8(19), R8(19), R8(19),
};
#undef R8

HAK_TLS_IE struct slab_heap *tiny_tls_heap = &slab_heap_empty;
static struct slab_heap **tiny_tls(void) { return &tiny_tls_heap; }

struct slab_lane tiny_slabs = {
    .tls = tiny_tls,
    .id = HAK_LANE_TINY,
    .slab_shift = TINY_SLAB_SHIFT,
    .nclasses = TINY_CLASSES,
    .class_size = tiny_class_size,
    .cache_opt = HAK_OPT_TINY_SS_CACHE,
    .cap_opt = HAK_OPT_TINY_SS_MAX_MB,
    .carve_min = 16,
    .carve_bytes = 4096,
    .tc_opt = HAK_OPT_TINY_TCACHE_KB,
    .tc_cap = 128,
};

static int tiny_init(void) {
    slab_lane_init(&tiny_slabs);
    return 0;
}

static void *tiny_alloc(size_t size, bool *zeroed) {
    if (zeroed) *zeroed = false;
    return tiny_alloc_fast(size);
}

static void *tiny_alloc_aligned(size_t size, size_t align, bool *zeroed) {
    if (zeroed) *zeroed = false;
    unsigned cls = slab_class_aligned(&tiny_slabs, size, align);
    if (cls >= TINY_CLASSES) {
        errno = EINVAL; /* no naturally aligned class: the next lane */
        return NULL;
    }
    return slab_alloc_class(&tiny_slabs, &tiny_tls_heap, cls);
}

void *tiny_alloc_miss(size_t size) {
    return slab_alloc_cur(&tiny_slabs, &tiny_tls_heap, tiny_class_of[size]);
}

static void tiny_free(void *p, uintptr_t seg, hak_call_t call) { tiny_free_fast(p, seg, call); }

static void *tiny_resize(void *p, uintptr_t seg, size_t new_size) {
    /* in place when the new size has the same class */
    const struct slab *sl = slab_of(p, seg, TINY_SLAB_SHIFT);
    return tiny_class_of[new_size] == sl->cls_mt ? p : NULL;
}

SLAB_LANE_FORWARDERS(tiny, tiny_slabs, tiny_tls_heap)

const struct hak_lane tiny_lane = {
    .name = "tiny",
    .id = HAK_LANE_TINY,
    .min_size = 0,
    .max_size = HAK_TINY_MAX,
    .nclasses = TINY_CLASSES,
    .class_size = tiny_class_size,
    .init = tiny_init,
    .alloc = tiny_alloc,
    .alloc_aligned = tiny_alloc_aligned,
    .free = tiny_free,
    .usable_size = slab_usable_size,
    .resize = tiny_resize,
    .thread_exit = tiny_thread_exit,
    .fork_prepare = tiny_fork_prepare,
    .fork_parent = tiny_fork_parent,
    .fork_child = tiny_fork_child,
    .trim = tiny_trim,
    .flush_stats = tiny_flush_stats,
};
