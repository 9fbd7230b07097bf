/*
 * pool.c: the pool lane's classes and lane contract; the work is done by
 * the slab engine (lib/slab.c). Locks: the engine's, per lane.
 */
#include "pool.h"

#include <errno.h>

#include "pool_fast.h"
#include "options.h"

const uint32_t pool_class_size[POOL_CLASSES] = {
    1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144,
    7168, 8192, 10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768,
};

const uint8_t pool_class_of[(HAK_POOL_MAX - HAK_TINY_MAX) >> 8] = {
    0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11,
    11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 14, 14,
    14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 18, 18,
    18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19, 19,
    19, 19, 19, 19, 19, 19, 19,
};

HAK_TLS_IE struct slab_heap *pool_tls_heap = &slab_heap_empty;
static struct slab_heap **pool_tls(void) { return &pool_tls_heap; }

struct slab_lane pool_slabs = {
    .tls = pool_tls,
    .id = HAK_LANE_POOL,
    .slab_shift = POOL_SLAB_SHIFT,
    .nclasses = POOL_CLASSES,
    .class_size = pool_class_size,
    .cache_opt = HAK_OPT_POOL_SEG_CACHE,
    .use_cap_mid = true,
    .tc_opt = HAK_OPT_POOL_TCACHE_KB,
    .tc_cap = 16,
    .carve_min = 4,
    .carve_bytes = 16384,
};

static int pool_init(void) {
    slab_lane_init(&pool_slabs);
    return 0;
}

static void *pool_alloc(size_t size, bool *zeroed) {
    if (zeroed) *zeroed = false;
    return pool_alloc_fast(size);
}

static void *pool_alloc_aligned(size_t size, size_t align, bool *zeroed) {
    if (zeroed) *zeroed = false;
    unsigned cls = slab_class_aligned(&pool_slabs, size, align);
    if (cls >= POOL_CLASSES) {
        errno = EINVAL; /* no naturally aligned class: the next lane */
        return NULL;
    }
    return slab_alloc_class(&pool_slabs, &pool_tls_heap, cls);
}

void *pool_alloc_miss(size_t size) {
    return slab_alloc_cur(&pool_slabs, &pool_tls_heap, POOL_CLASS_OF(size));
}

static void pool_free(void *p, uintptr_t seg, hak_call_t call) { pool_free_fast(p, seg, call); }

static void *pool_resize(void *p, uintptr_t seg, size_t new_size) {
    /* in place when the new size has the same class */
    const struct slab *sl = slab_of(p, seg, POOL_SLAB_SHIFT);
    return new_size > HAK_TINY_MAX && POOL_CLASS_OF(new_size) == sl->cls_mt ? p : NULL;
}

SLAB_LANE_FORWARDERS(pool, pool_slabs, pool_tls_heap)

const struct hak_lane pool_lane = {
    .name = "pool",
    .id = HAK_LANE_POOL,
    .min_size = HAK_TINY_MAX,
    .max_size = HAK_POOL_MAX,
    .nclasses = POOL_CLASSES,
    .class_size = pool_class_size,
    .init = pool_init,
    .alloc = pool_alloc,
    .alloc_aligned = pool_alloc_aligned,
    .free = pool_free,
    .usable_size = slab_usable_size,
    .resize = pool_resize,
    .thread_exit = pool_thread_exit,
    .fork_prepare = pool_fork_prepare,
    .fork_parent = pool_fork_parent,
    .fork_child = pool_fork_child,
    .trim = pool_trim,
    .flush_stats = pool_flush_stats,
};
