/*
 * prof.c: owns the sampling profiler's counters and per-thread sampling
 * countdowns (see prof.h). No locks: counters are relaxed atomics, so a
 * snapshot taken while threads record is approximate.
 */
#include "prof.h"

#include "options.h"
#include "os.h"

struct prof_cat {
    _Atomic uint64_t total_ns;                  /* sum over the events timed */
    _Atomic uint64_t max_ns;                    /* the longest */
    _Atomic uint64_t hist[PROF_BINS];           /* events by bin_of(ns); their sum
                                                   is the count */
};

static struct prof_cat cats[HAK_PROF_COUNT];
bool prof_on;
static unsigned sample_shift;
/* Per-thread countdowns to the next timed call and the generator of their
 * jitter: plain values in TLS, as for the call sites (a reused TLS block
 * only shifts one thread's phase). */
static HAK_TLS_IE uint32_t alloc_countdown, free_countdown;
static HAK_TLS_IE uint64_t jitter_state;

void prof_configure(void) {
    prof_on = !HAK_BENCH_MINIMAL && hak_opt(HAK_OPT_PROF) != 0;
    sample_shift = (unsigned)hak_opt(HAK_OPT_PROF_SAMPLE);
}

unsigned prof_sample_shift(void) { return sample_shift; }

/* The calls to skip before the next timed one: uniform in [0, 2m] with
 * m = 2^k - 1, so one call in 2^k on average, but never in step with a
 * program's own period (a fixed interval of 8 over a loop of 4 sizes
 * would time only one of them). */
static uint32_t next_gap(void) {
    uint64_t m = ((uint64_t)1 << sample_shift) - 1;
    if (m == 0) return 0;
    uint64_t x = jitter_state;
    if (HAK_UNLIKELY(x == 0)) x = (uint64_t)os_random_word() | 1;
    x ^= x << 13; /* xorshift64 */
    x ^= x >> 7;
    x ^= x << 17;
    jitter_state = x;
    return (uint32_t)((x >> 11) % (2 * m + 1));
}

static bool tick(uint32_t *countdown) {
    if (*countdown > 0) {
        (*countdown)--;
        return false;
    }
    *countdown = next_gap();
    return true;
}

bool prof_tick_alloc(void) { return tick(&alloc_countdown); }
bool prof_tick_free(void) { return tick(&free_countdown); }

static unsigned bin_of(uint64_t ns) {
    unsigned b = ns ? 64 - (unsigned)HAK_CLZ64((unsigned long long)ns) : 0;
    return b < PROF_BINS ? b : PROF_BINS - 1;
}

void prof_record(int cat, uint64_t ns) {
    if ((unsigned)cat >= HAK_PROF_COUNT) return;
    struct prof_cat *c = &cats[cat];
    atomic_fetch_add_relaxed(&c->total_ns, ns);
    atomic_fetch_add_relaxed(&c->hist[bin_of(ns)], 1);
    atomic_max_relaxed(&c->max_ns, ns);
}

uint64_t prof_clock(void) { return os_now_ns() | 1; /* never 0 */ }

void prof_record_since(int cat, uint64_t t0) {
    prof_record(cat, os_now_ns() - (t0 & ~(uint64_t)1));
}

/* The 99th percentile of a histogram of n events: the bucket holding the
 * event of rank ceil(0.99 n), interpolated linearly within it. */
static uint64_t p99_of(const uint64_t *hist, uint64_t n) {
    if (n == 0) return 0;
    uint64_t rank = n - n / 100; /* ceil(0.99 n) for the n we see, >= 1 */
    uint64_t seen = 0;
    for (unsigned b = 0; b < PROF_BINS; b++) {
        if (seen + hist[b] < rank) {
            seen += hist[b];
            continue;
        }
        if (b == 0) return 0;
        uint64_t lo = (uint64_t)1 << (b - 1), width = lo; /* [2^(b-1), 2^b) */
        return lo + width * (rank - seen) / hist[b];
    }
    return (uint64_t)1 << (PROF_BINS - 1);
}

void prof_fill(struct hak_prof_stats *out) {
    for (int k = 0; k < HAK_PROF_COUNT; k++) {
        uint64_t hist[PROF_BINS], n = 0;
        for (unsigned b = 0; b < PROF_BINS; b++) {
            hist[b] = atomic_load_relaxed(&cats[k].hist[b]);
            n += hist[b];
        }
        out[k].count = n; /* the histogram's count: consistent with its p99 */
        out[k].total_ns = atomic_load_relaxed(&cats[k].total_ns);
        out[k].avg_ns = n ? out[k].total_ns / n : 0;
        out[k].max_ns = atomic_load_relaxed(&cats[k].max_ns);
        out[k].p99_ns = p99_of(hist, n);
        if (out[k].p99_ns > out[k].max_ns) out[k].p99_ns = out[k].max_ns; /* bucket bound */
    }
}

HAK_EXPORT const char *hak_prof_name(int category) {
    static const char *const names[HAK_PROF_COUNT] = {
        [HAK_PROF_ALLOC_TINY] = "alloc_tiny",   [HAK_PROF_ALLOC_POOL] = "alloc_pool",
        [HAK_PROF_ALLOC_ACE] = "alloc_ace",     [HAK_PROF_ALLOC_HUGE] = "alloc_huge",
        [HAK_PROF_FREE_TINY] = "free_tiny",     [HAK_PROF_FREE_POOL] = "free_pool",
        [HAK_PROF_FREE_ACE] = "free_ace",       [HAK_PROF_FREE_HUGE] = "free_huge",
        [HAK_PROF_REFILL] = "refill",           [HAK_PROF_REMOTE_DRAIN] = "remote_drain",
        [HAK_PROF_OS_MAP] = "os_map",           [HAK_PROF_OS_UNMAP] = "os_unmap",
        [HAK_PROF_PURGE] = "purge",
    };
    return category >= 0 && category < HAK_PROF_COUNT ? names[category] : NULL;
}
