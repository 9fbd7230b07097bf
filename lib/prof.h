/*
 * prof.h: the sampling profiler (HAKMEM_PROF=1, issue 8). Per category
 * (enum hak_prof_category in hakmem.h): events timed, their total and a
 * log2 histogram of nanoseconds, all relaxed atomics, from which the
 * report derives the average and the 99th percentile.
 *
 * Costs nothing when off:
 *  - malloc and free are timed in the dispatcher's generic paths only. With
 *    the profiler on, the dispatcher empties its inline fast ranges (as for
 *    HAKMEM_SITE_PROFILE), so every call reaches those paths, which count
 *    down a per-thread interval and time one call in 2^HAKMEM_PROF_SAMPLE.
 *    With it off, the fast paths run the instructions they always ran.
 *  - refills, remote drains, OS maps/unmaps and purges, already off the
 *    fast paths, are bracketed by prof_start/prof_stop: a load of
 *    prof_on and a predictable branch when off (folded away with
 *    -Dbench_minimal), and are timed on every event when on.
 */
#ifndef HAK_PROF_H
#define HAK_PROF_H

#include "internal.h"

#define PROF_BINS 48 /* bin b: ns in [2^(b-1), 2^b); bin 0: 0 ns; the last: the rest */

/* Whether the profiler runs (HAKMEM_PROF=1); set at initialisation. */
extern HAK_HIDDEN bool prof_on;

static inline bool prof_enabled(void) { return !HAK_BENCH_MINIMAL && prof_on; }

/* Reads HAKMEM_PROF / HAKMEM_PROF_SAMPLE (initialisation, constructor). */
void prof_configure(void);

/* Records one event of category cat that took ns nanoseconds. Lock-free. */
void prof_record(int cat, uint64_t ns);

/* The per-thread countdowns of malloc and free (separate, so that a
 * program alternating the two does not always sample the same one): true
 * for the thread's first call, then once every 2^HAKMEM_PROF_SAMPLE calls
 * on average (the gaps jittered, see prof.c). */
bool prof_tick_alloc(void);
bool prof_tick_free(void);

/* Brackets a slow-path event: prof_start returns 0 when the profiler is off
 * (then prof_stop does nothing), else the clock. Off, each is a load or a
 * test and a branch; the clock is read out of line, so that the bracket
 * does not change how the compiler inlines the code it times. */
HAK_NOINLINE HAK_COLD uint64_t prof_clock(void);
HAK_NOINLINE HAK_COLD void prof_record_since(int cat, uint64_t t0);
static inline uint64_t prof_start(void) {
    if (HAK_LIKELY(!prof_enabled())) return 0;
    return prof_clock();
}
static inline void prof_stop(int cat, uint64_t t0) {
    if (HAK_UNLIKELY(t0 != 0)) prof_record_since(cat, t0);
}

/* Fills out[HAK_PROF_COUNT] from the counters (zeros when nothing was
 * timed). */
void prof_fill(struct hak_prof_stats *out);

/* The sampling interval's exponent in force (HAKMEM_PROF_SAMPLE). */
unsigned prof_sample_shift(void);

#endif /* HAK_PROF_H */
