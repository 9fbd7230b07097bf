/*
 * os.h: the OS contract. Every system call hakmem makes goes through here
 * (STYLE.md 7). Each function documents its preconditions and returns 0 or
 * an errno; none allocates with the libc allocator, none touches the memory
 * it maps.
 */
#ifndef HAK_OS_H
#define HAK_OS_H

#include "internal.h"

/* The page size, read at run time (os_init). */
extern HAK_HIDDEN size_t os_page_size;

/* Reads the page size. Single-threaded (hak_init). Returns 0 or an errno. */
int os_init(void);

/* Reserves size bytes of read-write address space that commit nothing until
 * touched (MAP_NORESERVE): for tables that are written sparsely. size a
 * multiple of the page size. */
int os_reserve_noreserve(size_t size, void **out);

/* Maps size bytes of fresh, zeroed, read-write memory at an address r with
 * r % HAK_CHUNK == 0 and (r + offset) % align == 0. size a multiple of
 * HAK_CHUNK; align a power of two; offset < align, a multiple of HAK_CHUNK
 * when align > HAK_CHUNK (else 0). The slack of the over-sized reservation is
 * unmapped, never touched. Fails with ENOMEM when the OS refuses (even
 * after the release hook below), or when the result would lie outside the
 * segment map's address space. The caller holds no hakmem lock (see the
 * release hook). */
int os_map_chunks(size_t size, size_t align, size_t offset, void **out);

/* When the OS refuses to map memory, os_map_chunks runs this hook (the
 * dispatcher's hak_release_caches: every lane's caches unmapped) and, if it
 * gave anything back, asks the OS once more. The hook takes lane locks, so
 * callers of os_map_chunks hold no hakmem lock but a slab lane's
 * orphan_lock (which the release never takes). Set once in hak_init. */
typedef size_t (*os_release_fn)(void);
void os_set_release_hook(os_release_fn fn);

/* Test hook (tests/faults; not in hakmem.h): the calls that ask the OS for
 * address space (each mmap of os_map_chunks, its retry included,
 * os_grow_in_place, os_move) are counted; the `count` calls after the next
 * `after` fail with ENOMEM as if the OS refused (count 0: none fails, the
 * default; ULONG_MAX: all from then on). Returns the number of such calls
 * made so far. Exported as hak_test_os_fail; off the fast paths. */
HAK_EXPORT unsigned long hak_test_os_fail(unsigned long after, unsigned long count);

/* Unmaps [p, p + size). p and size page-aligned. */
int os_unmap(void *p, size_t size);

/* Gives the pages of [p, p + size) back to the OS; they read as zero when
 * next touched (MADV_DONTNEED). p and size page-aligned. */
int os_purge(void *p, size_t size);

/* Moves the mapping [old, old + old_size) to [dst, dst + new_size) (dst an
 * existing reservation of new_size bytes, which it replaces), keeping the
 * pages (mremap MREMAP_MAYMOVE|MREMAP_FIXED); the grown tail reads as zero.
 * On failure nothing changed. */
int os_move(void *old, size_t old_size, void *dst, size_t new_size);

/* Asks for the mapping [p, p + size) to grow in place to new_size (mremap
 * without MAYMOVE). On failure nothing changed. */
int os_grow_in_place(void *p, size_t size, size_t new_size);

/* Monotonic clock, nanoseconds. */
uint64_t os_now_ns(void);
/* The same clock at the kernel's tick resolution (a few ms), cheaper:
 * for time stamps compared with delays of many milliseconds. */
uint64_t os_now_coarse_ns(void);
/* CPU time the whole process has used (every thread), nanoseconds; 0 when
 * the clock is not available. */
uint64_t os_cpu_ns(void);

/* Writes len bytes to fd, retrying short writes; ignores errors. */
void os_write_all(int fd, const char *buf, size_t len);

/* Opens path for appending (HAKMEM_LOG_FILE); returns the fd or -1. */
int os_open_append(const char *path);

/* Current and peak resident set size of the process, bytes. */
void os_rss(uint64_t *current, uint64_t *peak);

/* Makes [p, p + size) inaccessible (access false: a guard) or readable and
 * writable again (true). p and size are multiples of the page size.
 * Returns 0 or an errno. */
int os_protect(void *p, size_t size, bool access);

/* A random word from the kernel (AT_RANDOM), mixed so that each call gives
 * another; never allocates, never blocks. */
uintptr_t os_random_word(void);

/* 1 when the process runs set-user-ID or with capabilities (AT_SECURE). */
int os_is_secure(void);

/* ---- the purge queue --------------------------------------------------
 * Lanes do not purge freed memory at once: they note it, and purge it in
 * batches once it has stayed free for HAKMEM_PURGE_DELAY_MS. Each lane that
 * keeps dirty free memory registers one purger (in its init). os_purge_tick
 * is called from allocator slow paths and a countdown on fast paths; it is
 * a single relaxed load until a purge is due. */

/* Runs the lane's purges: the ones due at now_ns, or all when all is true.
 * Returns bytes purged or released; sets *next_due_ns to the time of the
 * lane's next pending purge (UINT64_MAX if none). Takes the lane's locks. */
typedef size_t (*os_purger_fn)(bool all, uint64_t now_ns, uint64_t *next_due_ns);

void os_purge_register(os_purger_fn fn);
/* A lane has a purge pending at due_ns. */
void os_purge_schedule(uint64_t due_ns);
/* Earliest time any lane has a purge due (UINT64_MAX: none), and whether
 * the purger thread runs (0: none; 1: starting or running): os.c's, read
 * by os_purge_schedule_and_start. */
extern HAK_HIDDEN _Atomic uint64_t os_purge_next_due;
extern HAK_HIDDEN _Atomic int os_purger_state;
void os_purge_schedule_and_start_slow(uint64_t due_ns);
/* os_purge_schedule, and starts the purger thread if none runs (and
 * HAKMEM_PURGE_THREAD allows it): for a fast path that keeps memory without
 * ever ticking. Inline: two loads when a purge is due earlier and the
 * purger runs. The caller holds no hakmem lock. */
static inline void os_purge_schedule_and_start(uint64_t due_ns) {
    /* seq_cst, paired with the purger's last look before it ends */
    if (HAK_UNLIKELY(due_ns < atomic_load_relaxed(&os_purge_next_due) ||
                     atomic_load_explicit(&os_purger_state, memory_order_seq_cst) == 0))
        os_purge_schedule_and_start_slow(due_ns);
}
/* Runs due purges if any are due, and starts the purger thread if purges
 * are pending and none runs (a single relaxed load when nothing is
 * pending). The caller holds no hakmem lock. */
void os_purge_tick(void);
/* Runs every pending purge now (malloc_trim). Returns bytes given back. */
size_t os_purge_all(void);
/* Nanoseconds a freed range waits before its purge (HAKMEM_PURGE_DELAY_MS). */
uint64_t os_purge_delay_ns(void);
/* Number of lanes with purges pending (for the stats). */
uint64_t os_purge_pending(void);
/* In a fork child: forget a purge run the parent's other threads had going. */
void os_fork_child(void);

/* ---- policies for fresh mappings (os_policy.c) -----------------------
 * THP advice, prefault and NUMA placement of a mapping's kept region, after
 * os_map_chunks has unmapped the alignment slack. */

#define OS_THP_AUTO_MIN ((size_t)2 << 20) /* HAKMEM_THP=auto: blocks from 2 MiB */
#define OS_THP_ON_MIN ((size_t)1 << 20)   /* HAKMEM_THP=on: blocks from 1 MiB */
#define OS_NUMA_MAX_NODES 63              /* nodes hakmem places (one word of mask) */

/* Reads the kernel's THP setting without allocating (os_init). */
void os_policy_init(void);
/* Reads the NUMA topology with libnuma when HAKMEM_NUMA=1 (hakmem's
 * constructor: libnuma allocates). Until then, and without -Dnuma, no
 * mapping is bound. */
void os_numa_init(void);
/* Whether /sys/kernel/mm/transparent_hugepage/enabled allows advised huge
 * pages ("always" or "madvise"). */
bool os_thp_kernel_allows(void);
/* Nodes NUMA placement knows (0: placement off). */
int os_numa_nodes(void);
/* The NUMA node of the calling thread (getcpu), or -1 when placement is off. */
int os_current_node(void);
/* HAKMEM_SS_PREFAULT in force (0 when -Dprefault=false). */
int os_prefault_mode(void);
/* Applies the policies to the kept mapping [p, p + size) (page-aligned,
 * p chunk-aligned) whose first fault_len bytes will be used: binds it to
 * the calling thread's node, gives THP advice by block (the largest block
 * it will hold) and by how much of the mapping is used, and prefaults the
 * used part.
 * Returns the node it was bound to, or -1. */
int os_map_policy(void *p, size_t size, size_t block, size_t fault_len);
/* os_map_chunks(HAK_CHUNK, HAK_CHUNK, 0, out), then os_map_policy on the
 * whole chunk: a segment or page-run chunk whose blocks are at most block
 * bytes. Returns 0 or an errno. */
int os_map_segment(size_t block, void **out);

#endif /* HAK_OS_H */
