/*
 * internal.h: the types and helpers shared by every file of lib/ and the
 * modules: build configuration, size constants, assertions and misuse
 * checks, initialisation state. Lane-specific types live in the modules.
 */
#ifndef HAK_INTERNAL_H
#define HAK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hak_config.h"
#include "compiler.h"
#include "hakmem.h"

/* ---- sizes ------------------------------------------------------------ */

#define HAK_CHUNK_SHIFT 21 /* every lane maps 2 MiB chunks, aligned to 2 MiB */
#define HAK_CHUNK ((uintptr_t)1 << HAK_CHUNK_SHIFT)
#define HAK_CHUNK_MASK (HAK_CHUNK - 1)
_Static_assert(HAK_CHUNK == HAK_CHUNK_SIZE, "public and internal chunk sizes agree");

/* Alignment of every block of 16 bytes or more (alignof(max_align_t)). */
#define HAK_MIN_ALIGN ((size_t)16)

/* The largest request any call accepts: beyond it the answer is ENOMEM
 * without asking the OS (keeps every size computation free of overflow). */
#define HAK_MAX_REQUEST (((size_t)1 << 46) - ((size_t)1 << 30))

static inline uintptr_t hak_align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }
static inline uintptr_t hak_align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }
static inline bool hak_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }
/* Smallest power of two >= x (x >= 1, x <= 2^63). */
static inline size_t hak_pow2_up(size_t x) {
    return x <= 1 ? 1 : (size_t)1 << (64 - HAK_CLZ64((unsigned long long)(x - 1)));
}

/* ---- assertions and misuse checks (STYLE.md 13) ------------------------ */

/* Our own invariants: checked in -Ddebug_checks builds only. */
#define hak_assert(cond)                                                       \
    do {                                                                       \
        if (HAK_DEBUG_CHECKS && HAK_UNLIKELY(!(cond)))                         \
            hak_assert_fail(#cond, __FILE__, __LINE__);                        \
    } while (0)

HAK_NORETURN HAK_COLD void hak_assert_fail(const char *cond, const char *file, int line);

/* The caller's misuse, detected by a check: prints one line
 *   hakmem: <call>(): <what> 0x<ptr>
 * and aborts (HAKMEM_ON_ERROR=abort, the default) or returns (warn), in
 * which case the caller ignores the operation. Never allocates. */
HAK_COLD HAK_NOINLINE void hak_report_misuse(const char *call, const void *ptr, const char *what);

/* Which public call is running, for misuse messages ("free", "realloc",
 * "malloc_usable_size"). */
typedef const char *hak_call_t;

/* Heap corruption found by the hardened build (-Dsecure=true): prints one
 * line like hak_report_misuse and aborts whatever HAKMEM_ON_ERROR says (the
 * heap cannot be trusted any more). Never allocates. */
HAK_NORETURN HAK_COLD HAK_NOINLINE void hak_report_corruption(const char *call, const void *ptr,
                                                              const char *what);

/* ---- logging (never allocates) ---------------------------------------- */

/* Writes "hakmem: <message>\n" to stderr (or HAKMEM_LOG_FILE), unless
 * HAKMEM_QUIET=1. */
HAK_COLD void hak_log(const char *fmt, ...) HAK_PRINTF(1, 2);
/* An event (an OS refusal, a purge, a policy published): like hak_log,
 * but at most HAK_LOG_EVENTS_PER_SEC lines a second; the first line
 * allowed after some were dropped ends "(N messages suppressed)". */
#define HAK_LOG_EVENTS_PER_SEC 20
HAK_COLD void hak_log_event(const char *fmt, ...) HAK_PRINTF(1, 2);
/* Reports event lines dropped since the last one allowed (destructor). */
void hak_log_event_flush(void);
/* An event, only when HAKMEM_VERBOSE=1. */
#define hak_verbose(...)                                                       \
    do {                                                                       \
        if (!HAK_BENCH_MINIMAL && hak_verbose_on) hak_log_event(__VA_ARGS__);  \
    } while (0)
extern HAK_HIDDEN bool hak_verbose_on;
/* Writes raw text to the log output (error.c). */
void hak_log_raw(const char *buf, size_t len);
/* The log output's file descriptor (stderr or HAKMEM_LOG_FILE). */
int hak_log_fd(void);

/* ---- initialisation ---------------------------------------------------- */

/* 0: nothing done; 1: a thread is initialising; 2: ready; 3: failed (the
 * OS refused the segment map: every allocation answers ENOMEM). */
enum { HAK_INIT_NONE, HAK_INIT_RUNNING, HAK_INIT_READY, HAK_INIT_FAILED };
extern HAK_HIDDEN _Atomic int hak_init_state;
HAK_NOINLINE HAK_COLD bool hak_init_slow(void);
/* Initialises on demand, without allocating; false when hakmem cannot run. */
static inline bool hak_ensure_init(void) {
    if (HAK_LIKELY(atomic_load_acquire(&hak_init_state) == HAK_INIT_READY)) return true;
    return hak_init_slow();
}

/* Releases everything the lanes and the OS layer cache (used before giving
 * up on an allocation, and by malloc_trim). Returns bytes given back. */
size_t hak_release_caches(void);

#endif /* HAK_INTERNAL_H */
