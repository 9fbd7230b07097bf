/*
 * pool.h: the pool lane (L2), blocks above 1 KiB up to 32 KiB
 * (HAK_TINY_MAX, HAK_POOL_MAX], built on the slab engine (lib/slab.h):
 * 256 KiB slabs in 2 MiB segments, 20 size classes, a heap per thread.
 *
 * Classes: four per doubling from 1280 to 32768 (1280, 1536, 1792, 2048,
 * 2560, ...), so a request of n bytes gets at most 1.25 n bytes. Classes
 * from 4096 up that are multiples of the page (4096, 8192, 12288, 16384,
 * 20480, 24576, 28672, 32768) give page-aligned blocks, since slabs are
 * aligned to 256 KiB: valloc and page-aligned requests find a home here.
 */
#ifndef HAK_POOL_H
#define HAK_POOL_H

#include "lane.h"
#include "slab.h"

#define POOL_SLAB_SHIFT 18
#define POOL_CLASSES 20
_Static_assert(POOL_CLASSES <= SLAB_MAX_CLASSES, "the engine holds every class");

/* Class of each size in (HAK_TINY_MAX, HAK_POOL_MAX], by 256-byte steps
 * from the lane's first size: the dispatcher's range check has computed
 * size - (HAK_TINY_MAX + 1) already. */
extern HAK_HIDDEN const uint8_t pool_class_of[(HAK_POOL_MAX - HAK_TINY_MAX) >> 8];
#define POOL_CLASS_OF(size) pool_class_of[((size) - (HAK_TINY_MAX + 1)) >> 8]
extern HAK_HIDDEN const uint32_t pool_class_size[POOL_CLASSES];

extern HAK_HIDDEN const struct hak_lane pool_lane;
/* pool_alloc_fast's miss: the block cache had no block of the size's
 * class; a block of the current slab, else the slow path (out of line, and
 * the class found again here, so that the cache's pop keeps no register
 * for any of it). */
HAK_NOINLINE void *pool_alloc_miss(size_t size);
extern HAK_HIDDEN struct slab_lane pool_slabs;

/* The calling thread's pool heap. */
extern HAK_TLS_IE struct slab_heap *pool_tls_heap;

#endif /* HAK_POOL_H */
