/*
 * learn.h: the adaptive control engine's learner (DESIGN.md 6), part of the
 * ACE module. Two layers:
 *
 *  - the core (struct learn_core): pure decision logic fed one observation
 *    per window: UCB1 over discrete moves of the current ("incumbent")
 *    policy, hysteresis, cool-down, the memory budget, the lifecycle
 *    LEARN -> FROZEN -> CANARY -> (FROZEN | LEARN); plus the P2 percentile
 *    estimator. No threads, no globals: the unit tests drive it with
 *    synthetic observations.
 *  - the runtime (learn.c, bottom): a background thread started lazily from
 *    slow paths (learn_tick), restarted after fork, that closes windows,
 *    reads the per-class counters and publishes through lib/policy.
 *
 * Locks: learn_lock (the core's state, the thread's bookkeeping), taken by
 * the learner thread, the report and hak_learn_get; it comes before
 * policy_lock and after the ACE lane's own locks in fork_prepare.
 */
#ifndef HAK_LEARN_H
#define HAK_LEARN_H

#include "internal.h"

/* ---- P2: one quantile in O(1) memory (Jain and Chlamtac, 1985) --------- */

struct learn_p2 {
    double p;        /* the quantile, 0 < p < 1 */
    uint64_t count;  /* observations so far */
    double q[5];     /* marker heights (the first five observations, sorted,
                        until count reaches 5) */
    double n[5];     /* marker positions, 0-based */
    double want[5];  /* desired positions */
};

void learn_p2_init(struct learn_p2 *e, double p);
void learn_p2_add(struct learn_p2 *e, double x);
/* The estimate (exact while count <= 5; 0 with no observation). */
double learn_p2_get(const struct learn_p2 *e);

/* ---- the knobs and the moves ------------------------------------------- */

/* ACE classes in groups of LEARN_GROUP_CLASSES for the cap moves. */
#define LEARN_GROUP_CLASSES 4
#define LEARN_LARGE_CLASSES 20
#define LEARN_MID_CLASSES 20
#define LEARN_GROUPS (LEARN_LARGE_CLASSES / LEARN_GROUP_CLASSES)
/* The size-distribution signature: a bin per pool class and per ACE class,
 * plus one for the huge lane. */
#define LEARN_SIG_BINS (LEARN_MID_CLASSES + LEARN_LARGE_CLASSES + 1)

/* Arms: 0 keeps the incumbent; then (up, down) pairs. */
enum {
    LEARN_ARM_STAY = 0,
    LEARN_ARM_LARGE_UP = 1, /* + 2 g: cap_large of group g doubled, + 2 g + 1: halved */
    LEARN_ARM_MID_UP = 1 + 2 * LEARN_GROUPS,
    LEARN_ARM_MID_DOWN,
    LEARN_ARM_WMAX_UP,
    LEARN_ARM_WMAX_DOWN,
    LEARN_ARM_BATCH_UP,
    LEARN_ARM_BATCH_DOWN,
    LEARN_ARM_BIGCACHE_UP,
    LEARN_ARM_BIGCACHE_DOWN,
    LEARN_ARM_LARGE_ALL_UP,   /* cap_large of every class with traffic doubled */
    LEARN_ARM_LARGE_ALL_DOWN, /* ... of every class halved */
    LEARN_ARMS
};

/* The arm's move applied to base; false when it changes nothing (a knob at
 * its bound). */
bool learn_arm_apply(const struct hak_policy *base, unsigned arm, struct hak_policy *out);
/* A one-line description of the arm ("cap_large 160K..256K x2"). */
const char *learn_arm_name(unsigned arm);

/* Bytes the policy lets one thread's caches and the shared caches hold:
 * ACE blocks (thread cap + twice as many shared) of each class, the pool's
 * kept empty slabs, the BigCache. What HAKMEM_BUDGET_MB bounds. */
uint64_t learn_policy_bytes(const struct hak_policy *p);

/* ---- UCB1 -------------------------------------------------------------- */

struct learn_arm {
    double pulls;  /* windows the arm was tried (discounted after adoptions) */
    double sum;    /* sum of its rewards */
};

/* The arm to try next among eligible ones: any never tried first (lowest
 * index), else the largest mean + c * sqrt(ln(total) / pulls). */
unsigned learn_ucb1(const struct learn_arm *arms, unsigned n, const bool *eligible, double c);

/* L1 distance of two signatures, each normalised to sum 1 (0 .. 2; 0 when
 * either is empty). */
double learn_l1(const double *a, const double *b, unsigned n);

/* ---- the core ---------------------------------------------------------- */

struct learn_cfg {
    uint64_t budget_bytes;   /* learn_policy_bytes never above this */
    double target_hit_mid;   /* 0 .. 1 */
    double target_hit_large; /* 0 .. 1 */
    double margin;           /* a move must beat staying by this much ... */
    unsigned hysteresis;     /* ... in this many of its windows running */
    unsigned cooldown;       /* windows without trials after an adoption */
    double leap;             /* the move of the last adoption, winning again by
                                leap x margin, is adopted as two steps */
    unsigned freeze_after;   /* LEARN windows without an adoption before FROZEN
                                (counted once every eligible move was tried) */
    unsigned canary_every;   /* FROZEN windows between CANARY checks */
    double shift_l1;         /* signature distance that means a new phase: LEARN
                                again (from CANARY), or anew (while learning) */
    double explore;          /* UCB1's exploration constant */
};

/* Default tuning (documented in ARCHITECTURE.md). */
void learn_cfg_default(struct learn_cfg *cfg, uint64_t budget_bytes, double hit_mid,
                       double hit_large);

/* What one window measured (deltas of the counters over the window). */
struct learn_obs {
    uint64_t allocs_mid, misses_mid;     /* pool lane: blocks handed out, refills */
    uint64_t allocs_large, misses_large; /* ACE lane */
    uint64_t allocs_huge;                /* huge lane */
    uint64_t os_events;                  /* maps, unmaps and purges of pool, ACE, huge */
    uint64_t cached_bytes;               /* mapped minus live bytes of those lanes, now */
    uint64_t sig[LEARN_SIG_BINS];        /* allocations per class (the signature) */
    uint64_t misses_cls[LEARN_LARGE_CLASSES]; /* ACE misses (refills) per class */
    uint64_t cache_cls[LEARN_LARGE_CLASSES];  /* bytes of free blocks of the class the
                                                 caches hold, now */
    /* What the misses cost and what the caches hold (0: not measured; the
     * reward then falls back on hit rates alone): */
    uint64_t cpu_ns;          /* CPU time of the whole process over the window */
    uint64_t refill_ns;       /* mean of the ACE refills timed in the window */
    uint64_t live_bytes;      /* bytes allocated and not freed, every lane (mean of
                                 the window's looks) */
    uint64_t ace_cache_bytes; /* free ACE blocks the thread and shared caches hold
                                 (mean of the window's looks) */
};

enum { LEARN_MIN_ALLOCS = 64 }; /* a window with fewer allocations is idle */

struct learn_core {
    struct learn_cfg cfg;
    int state;                      /* HAK_LEARN_LEARN / FROZEN / CANARY */
    struct hak_policy start;        /* the policy it started from (the defaults) */
    struct hak_policy incumbent;    /* the policy adopted so far */
    struct hak_policy current;      /* the one published (incumbent or a trial) */
    unsigned trial;                 /* arm that current is (LEARN_ARM_STAY: none) */
    struct learn_arm arms[LEARN_ARMS];
    unsigned leader, streak;        /* hysteresis: arm leading by the margin, windows */
    unsigned cooldown_left;         /* windows of cool-down left */
    unsigned last_adopted;          /* the arm of the last adoption (LEARN_ARM_STAY: none
                                       since the start or the last new phase) */
    unsigned quiet;                 /* LEARN windows since the last adoption */
    unsigned frozen_windows;        /* FROZEN windows since the last CANARY */
    double recent[LEARN_SIG_BINS];  /* traffic of recent windows (decaying) */
    double frozen_sig[LEARN_SIG_BINS]; /* the signature when it froze */
    double last_l1;                 /* the last CANARY's distance */
    double last_reward;
    double group_gain[LEARN_GROUPS]; /* what a cap_large group's misses beyond the
                                       target cost under the incumbent (share of the
                                       CPU time, last such window; < 0: not known) */
    double cpu_per_alloc;           /* ns of the process's CPU time per allocation,
                                       smoothed over the LEARN windows (0: none yet) */
    uint64_t windows, trials, adoptions, publishes, relearns;
};

void learn_core_init(struct learn_core *c, const struct learn_cfg *cfg,
                     const struct hak_policy *start);

/* The reward of a window observed under c->current (0 .. 1). Timed windows
 * (cpu_ns): 1 - the share of the CPU time the misses beyond the target hit
 * rates and the OS events cost - the memory term. Untimed ones: hit rates up
 * to their targets, few OS calls, a small policy bound - the memory term. */
double learn_reward(const struct learn_core *c, const struct learn_obs *o);
/* The memory term: LEARN_MEM_WEIGHT x the ACE caches' bytes / the live heap
 * (at least budget / 64). */
#define LEARN_MEM_WEIGHT 0.02
double learn_mem_cost(const struct learn_core *c, const struct learn_obs *o);

/* One window closed. Returns true with *out and why filled when a snapshot
 * must be published (a trial, an adoption, a return to the incumbent). */
bool learn_core_window(struct learn_core *c, const struct learn_obs *o, struct hak_policy *out,
                       char *why, size_t why_cap);

/* ---- the runtime (only in -Dlearn builds) ------------------------------- */

#if HAK_HAVE_LEARN
/* Registers the learner with lib/policy (ace_init). */
void learn_register(void);
/* From ACE slow paths: starts the thread if it should run. */
void learn_tick(void);
extern HAK_HIDDEN _Atomic bool learn_sampling;
extern HAK_HIDDEN _Atomic bool learn_running;
/* Whether ACE refills should be timed now (LEARN and CANARY). */
static inline bool learn_sampling_now(void) { return atomic_load_relaxed(&learn_sampling); }
/* Whether the learner's thread runs (it reads the global counters). */
static inline bool learn_running_now(void) { return atomic_load_relaxed(&learn_running); }
/* One sampled ACE refill took ns nanoseconds (any thread, lock-free). */
void learn_note_refill_ns(uint64_t ns);
void learn_fork_prepare(void);
void learn_fork_parent(void);
void learn_fork_child(void);
#else
static inline void learn_register(void) {}
static inline void learn_tick(void) {}
static inline bool learn_sampling_now(void) { return false; }
static inline bool learn_running_now(void) { return false; }
static inline void learn_note_refill_ns(uint64_t ns) { (void)ns; }
static inline void learn_fork_prepare(void) {}
static inline void learn_fork_parent(void) {}
static inline void learn_fork_child(void) {}
#endif

#endif /* HAK_LEARN_H */
