/*
 * tiny.h: the tiny lane, blocks of 1 B .. 1 KiB (HAK_TINY_MAX), built on
 * the slab engine (lib/slab.h): 64 KiB slabs in 2 MiB SuperSlabs, 20 size
 * classes, a heap per thread.
 *
 * Classes: steps of 16 to 128, then four per doubling (160, 192, 224, 256,
 * 320, ...), so a request of n bytes gets a block of at most
 * max(round_up(n, 16), 1.25 n) bytes (DESIGN.md section 2). Every class is a
 * multiple of 16: every block is 16-aligned and has room for the free
 * list's link and the engine's double-free mark (slab.h).
 */
#ifndef HAK_TINY_H
#define HAK_TINY_H

#include "lane.h"
#include "slab.h"

#define TINY_SLAB_SHIFT 16
#define TINY_CLASSES 20
_Static_assert(TINY_CLASSES <= SLAB_MAX_CLASSES, "the engine holds every class");

/* Class of each size: tiny_class_of[size], size 0 .. HAK_TINY_MAX. */
extern const uint8_t tiny_class_of[HAK_TINY_MAX + 1];
extern HAK_HIDDEN const uint32_t tiny_class_size[TINY_CLASSES];

extern HAK_HIDDEN const struct hak_lane tiny_lane;
/* tiny_alloc_fast's miss: the block cache had no block of the size's
 * class; a block of the current slab, else the slow path (out of line, and
 * the class found again here, so that the cache's pop keeps no register
 * for any of it). */
HAK_NOINLINE void *tiny_alloc_miss(size_t size);
extern HAK_HIDDEN struct slab_lane tiny_slabs;

/* The calling thread's tiny heap (slab_heap_empty until its first tiny
 * allocation, slab_heap_dead after it exits). */
extern HAK_TLS_IE struct slab_heap *tiny_tls_heap;

#endif /* HAK_TINY_H */
