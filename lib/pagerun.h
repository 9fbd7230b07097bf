/*
 * pagerun.h: page runs in shared 2 MiB chunks, the allocator under the huge
 * lane's small requests and the ACE lane's blocks. A chunk's first page
 * holds its header (struct pagerun_chunk): a page map with one bit per page
 * (used, dirty) and the length of each run at its first page; the other
 * pages are handed out as runs of whole pages, aligned as asked. A freed
 * page is purged by the second purge pass that finds it still free, so it
 * stays resident between one and two purge delays: a run freed and taken
 * again soon after is not faulted in again.
 *
 * An arena (one per lane that uses page runs) owns its chunks: the list of
 * chunks with a free page, the full ones, the ones with dirty free pages
 * waiting for their purge, and a count of empty chunks. Freed runs stay
 * mapped and are purged (MADV_DONTNEED) once they have been free for
 * HAKMEM_PURGE_DELAY_MS; empty chunks beyond the arena's cache option are
 * unmapped by the second purge pass that finds them empty (between one and
 * two delays, as pages). Memory fresh from the OS, or purged, reads as zero:
 * pagerun_alloc says so, so that calloc skips its memset.
 *
 * Locks: each arena's lock guards all of its chunks; taken after nothing
 * of the lanes, never held across a call into a lane.
 */
#ifndef HAK_PAGERUN_H
#define HAK_PAGERUN_H

#include <pthread.h>

#include "internal.h"

#define PAGERUN_MAGIC 0x5052554eu /* "PRUN" */
#define PAGERUN_KIND 1            /* the kind field of a page-run chunk */
#define PAGERUN_MAX_PAGES (HAK_CHUNK / 4096) /* pages per chunk, smallest page */
#define PAGERUN_WORDS (PAGERUN_MAX_PAGES / 64)
_Static_assert(PAGERUN_MAX_PAGES % 64 == 0, "page bitmaps are whole words");

struct pagerun_arena;

/* The first page of a chunk. Invariants (under the arena's lock):
 *   free_pages == clear bits of used[] among pages 1 .. npages-1;
 *   run[i] != 0 exactly when page i starts an allocated run of run[i] pages;
 *   a set dirty[] bit: the page may hold non-zero bytes. Page 0 (this
 *   header) is always used. magic and kind come first in every header a
 *   lane puts at a chunk's base, so a lane can tell its kinds apart. */
struct pagerun_chunk {
    uint32_t magic;                 /* PAGERUN_MAGIC */
    uint32_t kind;                  /* PAGERUN_KIND */
    struct pagerun_arena *arena;    /* the owner */
    struct pagerun_chunk *next, *prev; /* in the arena's avail or full list */
    struct pagerun_chunk *dirty_next;  /* in the arena's dirty list, when in_dirty */
    uint64_t purge_due;             /* ns: when its dirty free pages are purged */
    uint32_t free_pages;            /* free pages (of 1 .. npages-1) */
    uint32_t in_dirty;              /* 1 while on the dirty list */
    uint32_t on_full;               /* 1 while on the full list (no free page) */
    uint32_t search_hint;           /* first page that may be free */
    uint32_t no_run;                /* no free run of this many pages (unaligned)
                                       or more (an upper bound; npages when
                                       unknown): lowered by a failed search,
                                       raised by a free past the free run it
                                       joins */
    uint32_t index_slot;            /* its entry in the arena's index[], or
                                       PAGERUN_UNINDEXED */
    uint32_t empty_aged;            /* 1: empty at the last purge pass, beyond the
                                       arena's cache: unmapped at the next one
                                       unless a run is taken meanwhile */
    uint64_t used[PAGERUN_WORDS];   /* bit per page: allocated (page 0 always) */
    uint64_t dirty[PAGERUN_WORDS];  /* bit per page: may be non-zero */
    uint64_t aged[PAGERUN_WORDS];   /* bit per page: free and dirty at the last
                                       purge pass; purged at the next one */
    uint64_t lazy[PAGERUN_WORDS];   /* bit per page: purged with MADV_FREE (its
                                       bytes may stay: still dirty) */
    uint16_t run[PAGERUN_MAX_PAGES];/* run length at the first page of each run */
    _Atomic uint8_t tag[PAGERUN_MAX_PAGES]; /* the lane's byte for each run, at its
                                        first page (0 when the run is freed) */
};
_Static_assert(sizeof(struct pagerun_chunk) <= 4096, "the chunk header fits the smallest page");

/* The search index: a copy of each chunk's free_pages and no_run in the
 * arena, so that a search skips the chunks that cannot hold a run without
 * reading their headers (each one a page of its own: a TLB and a cache miss
 * per chunk walked, which made the walk of the avail list 12% of
 * size_256k's time when every block is a page run). */
#define PAGERUN_INDEX 2048          /* chunks indexed per arena (4 GiB of chunks) */
#define PAGERUN_UNINDEXED UINT32_MAX
struct pagerun_index_entry {
    struct pagerun_chunk *chunk;
    uint32_t free_pages;            /* == chunk->free_pages */
    uint32_t no_run;                /* == chunk->no_run */
};

struct pagerun_arena {
    uint8_t lane;                   /* segment map byte and stats lane of its chunks */
    int cache_opt;                  /* option (enum hak_opt_id): empty chunks kept */
    pthread_mutex_t lock;
    struct pagerun_chunk *avail;    /* chunks with a free page */
    struct pagerun_chunk *full;     /* chunks with none */
    struct pagerun_chunk *dirty;    /* chunks with dirty free pages */
    size_t empty;                   /* chunks with no run (mapped) */
    size_t unindexed;               /* chunks not in index[] (made while it was full) */
    uint32_t nindexed;              /* entries of index[] in use; searches go
                                       through them in order: first fit */
    struct pagerun_index_entry index[PAGERUN_INDEX];
};

/* Sets up an arena (the lane's init; single-threaded) and registers it
 * with the purger. */
void pagerun_arena_init(struct pagerun_arena *a);

/* Whether a run for (size, align) fits a chunk beside its header. */
bool pagerun_fits(size_t size, size_t align);

/* A run of at least size bytes (size >= 1, pagerun_fits), aligned to align
 * (a power of two); *bytes gets its length, *zeroed (if not NULL) whether
 * it reads as zero. NULL with errno = ENOMEM when the OS refuses. */
void *pagerun_alloc(struct pagerun_arena *a, size_t size, size_t align, bool *zeroed,
                    size_t *bytes);

/* Frees run p of the chunk at chunk; returns its length, or 0 after
 * reporting misuse (not the start of a run, double free) for call. */
size_t pagerun_free(uintptr_t chunk, void *p, hak_call_t call);

/* Length of run p, or 0 after reporting misuse for call. */
size_t pagerun_usable(uintptr_t chunk, const void *p, hak_call_t call);

/* Resizes run p in place to hold new_size bytes; false when the pages after
 * it are taken. *delta gets the change of its length in bytes. */
bool pagerun_resize(uintptr_t chunk, void *p, size_t new_size, int64_t *delta);

void pagerun_fork_prepare(struct pagerun_arena *a);
void pagerun_fork_parent(struct pagerun_arena *a);
void pagerun_fork_child(struct pagerun_arena *a);

#endif /* HAK_PAGERUN_H */
