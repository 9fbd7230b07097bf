/*
 * learn.c: the learner of the adaptive control engine (see learn.h): the
 * P2 estimator, the moves, UCB1, the core's window logic, and the thread
 * that feeds it from the counters and publishes what it decides.
 * Locks: learn_lock, then policy_lock (inside policy_publish, called after
 * learn_lock is released).
 */
#include "learn.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ace.h"
#include "options.h"
#include "os.h"
#include "policy.h"
#include "stats.h"

/* ---- P2 ---------------------------------------------------------------- */

void learn_p2_init(struct learn_p2 *e, double p) {
    memset(e, 0, sizeof *e);
    e->p = p;
}

static void p2_start(struct learn_p2 *e) {
    /* the first five observations, sorted, become the markers */
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && e->q[j - 1] > e->q[j]; j--) {
            double t = e->q[j];
            e->q[j] = e->q[j - 1];
            e->q[j - 1] = t;
        }
    double p = e->p;
    for (int i = 0; i < 5; i++) e->n[i] = i;
    e->want[0] = 0;
    e->want[1] = 2 * p;
    e->want[2] = 4 * p;
    e->want[3] = 2 + 2 * p;
    e->want[4] = 4;
}

/* The piecewise-parabolic prediction for marker i moved by d (+1 or -1). */
static double p2_parabolic(const struct learn_p2 *e, int i, double d) {
    const double *q = e->q, *n = e->n;
    return q[i] + d / (n[i + 1] - n[i - 1]) *
                      ((n[i] - n[i - 1] + d) * (q[i + 1] - q[i]) / (n[i + 1] - n[i]) +
                       (n[i + 1] - n[i] - d) * (q[i] - q[i - 1]) / (n[i] - n[i - 1]));
}

void learn_p2_add(struct learn_p2 *e, double x) {
    if (e->count < 5) {
        e->q[e->count++] = x;
        if (e->count == 5) p2_start(e);
        return;
    }
    e->count++;
    int k;
    if (x < e->q[0]) {
        e->q[0] = x;
        k = 0;
    } else if (x >= e->q[4]) {
        if (x > e->q[4]) e->q[4] = x;
        k = 3;
    } else {
        k = 0;
        while (k < 3 && x >= e->q[k + 1]) k++;
    }
    for (int i = k + 1; i < 5; i++) e->n[i] += 1;
    const double dn[5] = {0, e->p / 2, e->p, (1 + e->p) / 2, 1};
    for (int i = 0; i < 5; i++) e->want[i] += dn[i];
    for (int i = 1; i <= 3; i++) {
        double d = e->want[i] - e->n[i];
        if ((d >= 1 && e->n[i + 1] - e->n[i] > 1) || (d <= -1 && e->n[i - 1] - e->n[i] < -1)) {
            double s = d > 0 ? 1 : -1;
            double q = p2_parabolic(e, i, s);
            if (!(e->q[i - 1] < q && q < e->q[i + 1])) { /* linear instead */
                int j = i + (int)s;
                q = e->q[i] + s * (e->q[j] - e->q[i]) / (e->n[j] - e->n[i]);
            }
            e->q[i] = q;
            e->n[i] += s;
        }
    }
}

double learn_p2_get(const struct learn_p2 *e) {
    if (e->count == 0) return 0;
    if (e->count >= 5) return e->q[2];
    /* exact, from the few observations (sorted copy) */
    double v[5];
    unsigned n = (unsigned)e->count;
    memcpy(v, e->q, n * sizeof v[0]);
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    double want = e->p * n;
    unsigned idx = (unsigned)want;
    if (idx < want) idx++; /* rounded up */
    return v[idx ? idx - 1 : 0];
}

/* ---- arithmetic without libm -------------------------------------------
 * Linking libm cost every program about 300 KiB of resident pages (its
 * IFUNC resolvers run at load time); the learner needs little of it. */

static double abs_d(double x) { return x < 0 ? -x : x; }

/* Square root of x >= 0: a first guess from the exponent, then Newton's
 * iteration (each step doubles the correct digits). */
static double sqrt_d(double x) {
    if (!(x > 0)) return 0;
    union {
        double d;
        uint64_t u;
    } g = {.d = x};
    g.u = (g.u >> 1) + ((uint64_t)1023 << 51);
    double y = g.d;
    for (int i = 0; i < 6; i++) y = 0.5 * (y + x / y);
    return y;
}

/* Natural logarithm of x > 0: x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
 * ln m = 2 atanh(z), z = (m - 1) / (m + 1), |z| < 0.18, by its series. */
static double ln_d(double x) {
    if (!(x > 0)) return -1e300;
    union {
        double d;
        uint64_t u;
    } v = {.d = x};
    int e = (int)((v.u >> 52) & 0x7ff) - 1023;
    v.u = (v.u & ~((uint64_t)0x7ff << 52)) | ((uint64_t)1023 << 52); /* m in [1, 2) */
    double m = v.d;
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double z = (m - 1) / (m + 1), z2 = z * z, term = z, sum = 0;
    for (int k = 1; k <= 19; k += 2) {
        sum += term / k;
        term *= z2;
    }
    return e * 0.6931471805599453 + 2 * sum;
}

/* ---- moves ------------------------------------------------------------- */

#define CAP_LARGE_MAX 32
#define CAP_MID_MAX 64
#define WMAX_STEP 25
#define BIGCACHE_MAX_MB 4096
#define BIGCACHE_FIRST_MB 16
/* The pool lane's slab (a cap_mid unit): 256 KiB (modules/pool, which this
 * module may not include). */
#define MID_SLAB_BYTES ((uint64_t)256 << 10)

/* A step up: doubled, at least +2 (so that a cap of 1 does not crawl). A
 * cap_large step down halves, but not below 1: the learner never turns a
 * class's cache off (a cache of one block costs one block; a trial without
 * one makes every allocation of its classes a miss); HAKMEM_CAP_LARGE=0
 * still can. */
static uint32_t up(uint32_t v, uint32_t max) {
    uint32_t n = v * 2 > v + 2 ? v * 2 : v + 2;
    return n > max ? max : n;
}

/* The cap_large classes [*k0, *k1) that arm moves and whether it grows
 * them: a group's four, or all of them; false for the other arms. */
static bool large_arm(unsigned arm, unsigned *k0, unsigned *k1, bool *grows) {
    if (arm >= LEARN_ARM_LARGE_UP && arm < LEARN_ARM_MID_UP) {
        unsigned g = (arm - LEARN_ARM_LARGE_UP) / 2;
        *k0 = g * LEARN_GROUP_CLASSES;
        *k1 = *k0 + LEARN_GROUP_CLASSES;
        *grows = ((arm - LEARN_ARM_LARGE_UP) & 1) == 0;
        return true;
    }
    if (arm == LEARN_ARM_LARGE_ALL_UP || arm == LEARN_ARM_LARGE_ALL_DOWN) {
        *k0 = 0;
        *k1 = LEARN_LARGE_CLASSES;
        *grows = arm == LEARN_ARM_LARGE_ALL_UP;
        return true;
    }
    return false;
}

bool learn_arm_apply(const struct hak_policy *base, unsigned arm, struct hak_policy *out) {
    *out = *base;
    if (arm == LEARN_ARM_STAY || arm >= LEARN_ARMS) return false;
    unsigned k0, k1;
    bool grow;
    if (large_arm(arm, &k0, &k1, &grow)) {
        for (unsigned k = k0; k < k1; k++)
            out->cap_large[k] = grow ? up(base->cap_large[k], CAP_LARGE_MAX)
                                     : (base->cap_large[k] > 1 ? base->cap_large[k] / 2
                                                               : base->cap_large[k]);
    } else if (arm == LEARN_ARM_MID_UP || arm == LEARN_ARM_MID_DOWN) {
        for (unsigned k = 0; k < LEARN_MID_CLASSES; k++)
            out->cap_mid[k] =
                arm == LEARN_ARM_MID_UP ? up(base->cap_mid[k], CAP_MID_MAX) : base->cap_mid[k] / 2;
    } else if (arm == LEARN_ARM_WMAX_UP) {
        out->wmax_large_pct = base->wmax_large_pct + WMAX_STEP > 200 ? 200 : base->wmax_large_pct + WMAX_STEP;
    } else if (arm == LEARN_ARM_WMAX_DOWN) {
        out->wmax_large_pct = base->wmax_large_pct < 100 + WMAX_STEP ? 100 : base->wmax_large_pct - WMAX_STEP;
    } else if (arm == LEARN_ARM_BATCH_UP) {
        out->refill_batch = up(base->refill_batch, 32);
    } else if (arm == LEARN_ARM_BATCH_DOWN) {
        out->refill_batch = base->refill_batch > 1 ? base->refill_batch / 2 : 1;
    } else if (arm == LEARN_ARM_BIGCACHE_UP) {
        out->bigcache_mb = base->bigcache_mb == 0
                               ? BIGCACHE_FIRST_MB
                               : (base->bigcache_mb * 2 > BIGCACHE_MAX_MB ? BIGCACHE_MAX_MB
                                                                          : base->bigcache_mb * 2);
        if (out->bigcache_mb < base->bigcache_mb) out->bigcache_mb = base->bigcache_mb;
    } else if (arm == LEARN_ARM_BIGCACHE_DOWN) {
        out->bigcache_mb = base->bigcache_mb / 2;
    }
    return memcmp(out, base, sizeof *out) != 0;
}

const char *learn_arm_name(unsigned arm) {
    static const char *const names[LEARN_ARMS] = {
        [LEARN_ARM_STAY] = "stay",
        [1] = "cap_large 40K..64K x2",    [2] = "cap_large 40K..64K /2",
        [3] = "cap_large 80K..128K x2",   [4] = "cap_large 80K..128K /2",
        [5] = "cap_large 160K..256K x2",  [6] = "cap_large 160K..256K /2",
        [7] = "cap_large 320K..512K x2",  [8] = "cap_large 320K..512K /2",
        [9] = "cap_large 640K..1M x2",    [10] = "cap_large 640K..1M /2",
        [LEARN_ARM_MID_UP] = "cap_mid x2",          [LEARN_ARM_MID_DOWN] = "cap_mid /2",
        [LEARN_ARM_WMAX_UP] = "wmax_large +25%",    [LEARN_ARM_WMAX_DOWN] = "wmax_large -25%",
        [LEARN_ARM_BATCH_UP] = "refill_batch x2",   [LEARN_ARM_BATCH_DOWN] = "refill_batch /2",
        [LEARN_ARM_BIGCACHE_UP] = "bigcache x2",    [LEARN_ARM_BIGCACHE_DOWN] = "bigcache /2",
        [LEARN_ARM_LARGE_ALL_UP] = "cap_large all x2", [LEARN_ARM_LARGE_ALL_DOWN] = "cap_large all /2",
    };
    return arm < LEARN_ARMS ? names[arm] : "?";
}
_Static_assert(LEARN_ARM_MID_UP == 11, "the names above list five cap_large groups");
_Static_assert(LEARN_LARGE_CLASSES == ACE_CLASSES, "a cap_large group move covers every class");

uint64_t learn_policy_bytes(const struct hak_policy *p) {
    uint64_t b = (uint64_t)p->bigcache_mb << 20;
    for (unsigned k = 0; k < ACE_CLASSES; k++) b += 3ull * p->cap_large[k] * ace_class_size[k];
    for (unsigned k = 0; k < LEARN_MID_CLASSES; k++) b += p->cap_mid[k] * MID_SLAB_BYTES;
    return b;
}

/* ---- UCB1, L1 ---------------------------------------------------------- */

unsigned learn_ucb1(const struct learn_arm *arms, unsigned n, const bool *eligible, double c) {
    double total = 0;
    for (unsigned a = 0; a < n; a++)
        if (eligible[a]) {
            if (arms[a].pulls < 1) return a; /* every arm once first */
            total += arms[a].pulls;
        }
    unsigned best = 0;
    double best_score = -1e300;
    for (unsigned a = 0; a < n; a++) {
        if (!eligible[a]) continue;
        double score = arms[a].sum / arms[a].pulls + c * sqrt_d(ln_d(total) / arms[a].pulls);
        if (score > best_score) {
            best_score = score;
            best = a;
        }
    }
    return best;
}

double learn_l1(const double *a, const double *b, unsigned n) {
    double sa = 0, sb = 0, d = 0;
    for (unsigned i = 0; i < n; i++) {
        sa += a[i];
        sb += b[i];
    }
    if (sa <= 0 || sb <= 0) return 0;
    for (unsigned i = 0; i < n; i++) d += abs_d(a[i] / sa - b[i] / sb);
    return d;
}

/* ---- the core ---------------------------------------------------------- */

void learn_cfg_default(struct learn_cfg *cfg, uint64_t budget_bytes, double hit_mid,
                       double hit_large) {
    cfg->budget_bytes = budget_bytes;
    cfg->target_hit_mid = hit_mid;
    cfg->target_hit_large = hit_large;
    cfg->margin = 0.01;
    cfg->hysteresis = 3;
    cfg->cooldown = 1;
    cfg->leap = 5;
    cfg->freeze_after = 12;
    cfg->canary_every = 20;
    cfg->shift_l1 = 0.5;
    cfg->explore = 0.05;
}

void learn_core_init(struct learn_core *c, const struct learn_cfg *cfg,
                     const struct hak_policy *start) {
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    c->state = HAK_LEARN_LEARN;
    c->start = *start;
    for (unsigned g = 0; g < LEARN_GROUPS; g++) c->group_gain[g] = -1;
    c->incumbent = *start;
    c->current = *start;
    c->trial = LEARN_ARM_STAY;
}

static double clamp01(double x) { return x < 0 ? 0 : (x > 1 ? 1 : x); }

/* What a miss of the pool lane costs when the window timed no ACE refill
 * (the pool's refills are not timed), and what an OS event costs: the system
 * call and the page faults that follow a purge or a fresh mapping. */
#define UNTIMED_REFILL_NS 250.0
#define OS_EVENT_NS 10000.0

/* The memory term: the bytes the ACE caches hold, relative to the live
 * heap, costs LEARN_MEM_WEIGHT of reward per heap's worth: a cache as large
 * as what the program holds is worth LEARN_MEM_WEIGHT (2%) of its CPU time.
 * The heap counted is at least budget / 64, so that caches of a few MiB in
 * a small program do not look expensive. */
double learn_mem_cost(const struct learn_core *c, const struct learn_obs *o) {
    double floor = (double)c->cfg.budget_bytes / 64;
    double heap = (double)o->live_bytes > floor ? (double)o->live_bytes : floor;
    return heap > 0 ? LEARN_MEM_WEIGHT * (double)o->ace_cache_bytes / heap : 0;
}

double learn_reward(const struct learn_core *c, const struct learn_obs *o) {
    double wl = (double)o->allocs_large, wm = (double)o->allocs_mid;
    double mem = learn_mem_cost(c, o);
    if (o->cpu_ns > 0 && c->cpu_per_alloc > 0) {
        /* the misses beyond the target hit rates, at what the window's timed
         * ACE refills took (their median), plus the OS events, as a share
         * of the process's CPU time: 1 - that share is the speed the policy
         * leaves the program (the margin, 0.01, is then 1% of its CPU
         * time). The CPU time is the window's allocations at the program's
         * CPU time per allocation smoothed over recent windows: a window's
         * own CPU time is noisy (the counters are flushed late, the process
         * descheduled), and the moves differ in what the misses cost, not
         * in what the program does between allocations. */
        double total = (double)(o->allocs_mid + o->allocs_large + o->allocs_huge);
        double cpu = total * c->cpu_per_alloc;
        double xl = (double)o->misses_large - (1 - c->cfg.target_hit_large) * wl;
        double xm = (double)o->misses_mid - (1 - c->cfg.target_hit_mid) * wm;
        double refill = o->refill_ns ? (double)o->refill_ns : UNTIMED_REFILL_NS;
        double ns = (xl > 0 ? xl : 0) * refill + (xm > 0 ? xm : 0) * refill +
                    (double)o->os_events * OS_EVENT_NS;
        return clamp01(1 - clamp01(cpu > 0 ? ns / cpu : 0) - mem);
    }
    /* not timed (synthetic windows): hit rates up to their targets, OS
     * events per allocation, the policy's bound against the budget */
    double hl = wl > 0 ? 1 - (double)o->misses_large / wl : 1;
    double hm = wm > 0 ? 1 - (double)o->misses_mid / wm : 1;
    double sl = clamp01(clamp01(hl) / c->cfg.target_hit_large);
    double sm = clamp01(clamp01(hm) / c->cfg.target_hit_mid);
    double hit = wl + wm > 0 ? (wl * sl + wm * sm) / (wl + wm) : 1;
    double total = (double)(o->allocs_mid + o->allocs_large + o->allocs_huge);
    double os_rate = total > 0 ? (double)o->os_events / total : 0;
    double os_score = 1 / (1 + 8 * os_rate);
    uint64_t held = learn_policy_bytes(&c->current);
    if (o->cached_bytes > held) held = o->cached_bytes;
    double bound = clamp01((double)held / (double)c->cfg.budget_bytes);
    return clamp01(0.6 * hit + 0.3 * os_score + 0.1 * (1 - bound) - mem);
}

static bool group_has_traffic(const struct learn_core *c, unsigned first, unsigned count) {
    double t = 0;
    for (unsigned i = first; i < first + count; i++) t += c->recent[i];
    return t >= 1;
}

/* The arm's move applied to the incumbent, as the core makes it: a
 * cap_large move that grows (a group or all) raises only the caps of classes that had
 * traffic lately. A cap raised without traffic of its own is not backed
 * by any evidence, and would keep blocks of that class cached when a
 * later phase uses it (learn_phases: B's 320 KiB blocks grew the
 * 384-512 KiB caps too, which held C's first frames' blocks). */
static bool core_apply(const struct learn_core *c, unsigned arm, struct hak_policy *out) {
    if (!learn_arm_apply(&c->incumbent, arm, out)) return false;
    unsigned k0, k1;
    bool grows;
    if (large_arm(arm, &k0, &k1, &grows) && grows)
        for (unsigned k = k0; k < k1; k++)
            if (c->recent[LEARN_MID_CLASSES + k] < 1) out->cap_large[k] = c->incumbent.cap_large[k];
    return memcmp(out, &c->incumbent, sizeof *out) != 0;
}

/* The CPU time of window o's allocations (timed windows), else 0. */
static double window_cpu(const struct learn_core *c, const struct learn_obs *o) {
    if (o->cpu_ns == 0 || c->cpu_per_alloc <= 0) return 0;
    return (double)(o->allocs_mid + o->allocs_large + o->allocs_huge) * c->cpu_per_alloc;
}

/* What the misses of cap_large group g beyond the target hit rate cost in
 * window o, as a share of its CPU time (-1 when not timed). */
static double group_miss_cost(const struct learn_core *c, const struct learn_obs *o, unsigned g) {
    double cpu = window_cpu(c, o);
    if (cpu <= 0 || o->refill_ns == 0) return -1;
    double allocs = 0, misses = 0;
    for (unsigned k = g * LEARN_GROUP_CLASSES; k < (g + 1) * LEARN_GROUP_CLASSES; k++) {
        allocs += (double)o->sig[LEARN_MID_CLASSES + k];
        misses += (double)o->misses_cls[k];
    }
    double x = misses - (1 - c->cfg.target_hit_large) * allocs;
    return x > 0 ? x * (double)o->refill_ns / cpu : 0;
}

/* Whether growing the caps of classes [k0, k1) (whole groups) to cand
 * could pay, judged before trying it (timed windows only): their misses
 * under the incumbent must cost at least the margin, and at least the
 * memory term of the bytes the larger caps may keep. Those are estimated,
 * for each class with traffic, as what its caches hold now scaled by the
 * caps' growth (a cache that fills its cap now fills the larger one too),
 * at most the blocks the growth adds to the thread's and the shared
 * caches. A trial that grows caches leaves its pages resident after it
 * ends, so trying a move that cannot pay costs peak memory for nothing.
 * The move over every class pays where misses spread over several groups,
 * none worth a move alone, add up to the margin. */
static bool growth_can_pay(const struct learn_core *c, const struct learn_obs *o, unsigned k0,
                           unsigned k1, const struct hak_policy *cand) {
    double gain = 0;
    for (unsigned g = k0 / LEARN_GROUP_CLASSES; g < k1 / LEARN_GROUP_CLASSES; g++) {
        if (c->group_gain[g] < 0) return true; /* not known (untimed, or not measured yet) */
        gain += c->group_gain[g];
    }
    double extra = 0;
    for (unsigned k = k0; k < k1; k++) {
        uint32_t was = c->incumbent.cap_large[k], now = cand->cap_large[k];
        if (c->recent[LEARN_MID_CLASSES + k] < 1 || now <= was) continue;
        double bound = 3.0 * (now - was) * ace_class_size[k];
        double scaled = was ? (double)o->cache_cls[k] * (now - was) / was : bound;
        extra += scaled < bound ? scaled : bound;
    }
    struct learn_obs m = *o;
    m.ace_cache_bytes = (uint64_t)extra;
    return gain >= c->cfg.margin && gain >= learn_mem_cost(c, &m);
}

/* Whether shrinking the caps of classes [k0, k1) could pay (timed windows
 * only): it gains at most the memory term of what their caches hold, which
 * must reach the margin. */
static bool shrink_can_pay(const struct learn_core *c, const struct learn_obs *o, unsigned k0,
                           unsigned k1) {
    if (window_cpu(c, o) <= 0) return true; /* untimed */
    struct learn_obs m = *o;
    m.ace_cache_bytes = 0;
    for (unsigned k = k0; k < k1; k++) m.ace_cache_bytes += o->cache_cls[k];
    return learn_mem_cost(c, &m) >= c->cfg.margin;
}

/* Arms worth trying now: they change the incumbent, stay within the budget,
 * act on a class or lane that has had traffic lately, and (a cap_large
 * group grown or shrunk) could pay. */
static void eligible_arms(const struct learn_core *c, const struct learn_obs *o, bool *ok) {
    bool mid = group_has_traffic(c, 0, LEARN_MID_CLASSES);
    bool large = group_has_traffic(c, LEARN_MID_CLASSES, LEARN_LARGE_CLASSES);
    bool huge = group_has_traffic(c, LEARN_SIG_BINS - 1, 1);
    bool over = o->cached_bytes > c->cfg.budget_bytes; /* measured: only shrink */
    ok[LEARN_ARM_STAY] = true;
    for (unsigned a = 1; a < LEARN_ARMS; a++) {
        struct hak_policy cand;
        bool grows = ((a - 1) & 1) == 0;
        ok[a] = core_apply(c, a, &cand) &&
                learn_policy_bytes(&cand) <= c->cfg.budget_bytes && !(over && grows);
        if (!ok[a]) continue;
        unsigned k0, k1;
        if (large_arm(a, &k0, &k1, &grows))
            ok[a] = group_has_traffic(c, LEARN_MID_CLASSES + k0, k1 - k0) &&
                    (grows ? growth_can_pay(c, o, k0, k1, &cand) : shrink_can_pay(c, o, k0, k1));
        else if (a <= LEARN_ARM_MID_DOWN)
            ok[a] = mid;
        else if (a <= LEARN_ARM_BATCH_DOWN)
            ok[a] = large;
        else
            ok[a] = huge;
    }
}

static HAK_PRINTF(3, 4) void say(char *why, size_t cap, const char *fmt, ...) {
    if (!why || !cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static double mean(const struct learn_arm *a) { return a->pulls > 0 ? a->sum / a->pulls : 0; }

/* Shrinks the incumbent until it fits the budget (a budget below the
 * starting policy, or HAKMEM_BUDGET_MB lowered). */
static bool fit_budget(struct learn_core *c) {
    bool changed = false;
    for (int round = 0; round < 16 && learn_policy_bytes(&c->incumbent) > c->cfg.budget_bytes;
         round++) {
        struct hak_policy p = c->incumbent;
        for (unsigned k = 0; k < HAK_POLICY_CLASSES; k++) {
            p.cap_large[k] /= 2;
            p.cap_mid[k] /= 2;
        }
        p.bigcache_mb /= 2;
        c->incumbent = p;
        changed = true;
    }
    return changed;
}

/* The adopted arm's evidence now describes the incumbent; the old
 * incumbent is the opposite move; other moves keep half their evidence. */
static void adopt(struct learn_core *c, unsigned arm, unsigned steps) {
    struct learn_arm won = c->arms[arm], stayed = c->arms[LEARN_ARM_STAY];
    unsigned opposite = ((arm - 1) & 1) == 0 ? arm + 1 : arm - 1;
    for (unsigned a = 0; a < LEARN_ARMS; a++) {
        c->arms[a].pulls /= 2;
        c->arms[a].sum /= 2;
    }
    c->arms[LEARN_ARM_STAY] = won;
    c->arms[opposite] = stayed;
    c->arms[arm].pulls = 0; /* the same move again: untried */
    c->arms[arm].sum = 0;
    for (unsigned i = 0; i < steps; i++) {
        struct hak_policy next;
        if (!core_apply(c, arm, &next) ||
            learn_policy_bytes(&next) > c->cfg.budget_bytes)
            break;
        c->incumbent = next;
    }
    c->adoptions++;
    c->quiet = 0;
    c->cooldown_left = c->cfg.cooldown;
    c->leader = LEARN_ARM_STAY;
    c->streak = 0;
}

static void sig_of(const struct learn_obs *o, double *out) {
    for (unsigned i = 0; i < LEARN_SIG_BINS; i++) out[i] = (double)o->sig[i];
}

/* A new phase (the signature moved by more than shift_l1 from `was`, the
 * traffic the policy was learned on, to `now`): the arms' evidence is about
 * the old phase, so it is forgotten; and an ACE class keeps a cap above its
 * starting one only when the old phase used it and the new one still gives
 * it at least half its old share of the traffic. Otherwise the cap was
 * learned for traffic that is gone (or came along with its group's move
 * without traffic of its own), and would keep blocks cached for a phase
 * that hardly uses them; the new phase grows it again if that pays.
 * Returns true when that changed the incumbent. */
static bool relearn(struct learn_core *c, const double *was, const double *now) {
    c->state = HAK_LEARN_LEARN;
    c->relearns++;
    memset(c->arms, 0, sizeof c->arms);
    c->quiet = 0;
    c->leader = LEARN_ARM_STAY;
    c->streak = 0;
    c->cooldown_left = 0;
    c->last_adopted = LEARN_ARM_STAY;
    c->cpu_per_alloc = 0; /* the new phase's work per allocation differs */
    for (unsigned g = 0; g < LEARN_GROUPS; g++) c->group_gain[g] = -1;
    double sw = 0, sn = 0;
    for (unsigned i = 0; i < LEARN_SIG_BINS; i++) {
        sw += was[i];
        sn += now[i];
    }
    bool changed = false;
    if (sw > 0 && sn > 0)
        for (unsigned k = 0; k < LEARN_LARGE_CLASSES; k++) {
            unsigned i = LEARN_MID_CLASSES + k;
            if ((was[i] <= 0 || now[i] / sn < 0.5 * was[i] / sw) &&
                c->incumbent.cap_large[k] > c->start.cap_large[k]) {
                c->incumbent.cap_large[k] = c->start.cap_large[k];
                changed = true;
            }
        }
    memcpy(c->recent, now, sizeof c->recent);
    return changed;
}

bool learn_core_window(struct learn_core *c, const struct learn_obs *o, struct hak_policy *out,
                       char *why, size_t why_cap) {
    c->windows++;
    uint64_t total = o->allocs_mid + o->allocs_large + o->allocs_huge;
    bool idle = total < LEARN_MIN_ALLOCS;
    double now[LEARN_SIG_BINS];
    sig_of(o, now);
    bool shifted = false; /* while learning: a new phase began in this window */
    if (!idle && c->state == HAK_LEARN_LEARN) {
        c->last_l1 = learn_l1(now, c->recent, LEARN_SIG_BINS);
        shifted = c->last_l1 > c->cfg.shift_l1;
    }
    bool fell = false; /* relearn lowered caps */
    if (shifted) fell = relearn(c, c->recent, now);
    else if (!idle)
        for (unsigned i = 0; i < LEARN_SIG_BINS; i++)
            c->recent[i] = c->recent[i] * 0.75 + (double)o->sig[i];

    if (c->state == HAK_LEARN_FROZEN) {
        /* the counters run while FROZEN (no sampling: the lanes flush them
         * in batches), so a shift of the sizes shows at once: CANARY now,
         * whose own window confirms it, rather than at the next periodic
         * check (canary_every FROZEN windows, seconds at run time) */
        if (!idle) {
            c->last_l1 = learn_l1(now, c->frozen_sig, LEARN_SIG_BINS);
            if (c->last_l1 > c->cfg.shift_l1) {
                c->frozen_windows = 0;
                c->state = HAK_LEARN_CANARY;
                return false;
            }
        }
        if (++c->frozen_windows >= c->cfg.canary_every) {
            c->frozen_windows = 0;
            c->state = HAK_LEARN_CANARY;
        }
        return false;
    }
    if (c->state == HAK_LEARN_CANARY) {
        if (idle) return false;
        c->last_l1 = learn_l1(now, c->frozen_sig, LEARN_SIG_BINS);
        if (c->last_l1 <= c->cfg.shift_l1) {
            c->state = HAK_LEARN_FROZEN;
            return false;
        }
        if (!relearn(c, c->frozen_sig, now)) return false;
        fell = true;
    }
    if (fell) {
        c->current = c->incumbent;
        c->trial = LEARN_ARM_STAY;
        *out = c->current;
        c->publishes++;
        say(why, why_cap, "new phase (signature L1 %.2f): caps of classes it hardly uses back to "
            "their start", c->last_l1);
        return true;
    }

    /* LEARN */
    if (fit_budget(c)) {
        c->current = c->incumbent;
        c->trial = LEARN_ARM_STAY;
        *out = c->current;
        c->publishes++;
        say(why, why_cap, "budget: caps halved to fit %llu MiB",
            (unsigned long long)(c->cfg.budget_bytes >> 20));
        return true;
    }
    if (idle) return false; /* no evidence: keep whatever is on trial */
    if (o->cpu_ns > 0) {
        double cpa = (double)o->cpu_ns / (double)total;
        c->cpu_per_alloc = c->cpu_per_alloc > 0 ? 0.75 * c->cpu_per_alloc + 0.25 * cpa : cpa;
    }
    double r = learn_reward(c, o);
    c->last_reward = r;
    /* what each group's misses cost under the incumbent's caps for it */
    unsigned t0 = 0, t1 = 0; /* the classes the trial moves */
    bool tgrows;
    if (!large_arm(c->trial, &t0, &t1, &tgrows)) t0 = t1 = 0;
    for (unsigned g = 0; g < LEARN_GROUPS; g++)
        if ((g + 1) * LEARN_GROUP_CLASSES <= t0 || g * LEARN_GROUP_CLASSES >= t1)
            c->group_gain[g] = group_miss_cost(c, o, g);
    c->arms[c->trial].pulls += 1;
    c->arms[c->trial].sum += r;

    bool ok[LEARN_ARMS];
    eligible_arms(c, o, ok);
    unsigned next = LEARN_ARM_STAY;
    if (c->cooldown_left > 0) {
        c->cooldown_left--;
    } else {
        /* hysteresis: the best-scoring move must beat staying by the margin
         * in several of its own windows running */
        unsigned best = LEARN_ARM_STAY;
        double best_mean = -1;
        for (unsigned a = 1; a < LEARN_ARMS; a++)
            if (ok[a] && c->arms[a].pulls >= 2 && mean(&c->arms[a]) > best_mean) {
                best = a;
                best_mean = mean(&c->arms[a]);
            }
        double stay = mean(&c->arms[LEARN_ARM_STAY]);
        if (best != LEARN_ARM_STAY && c->arms[LEARN_ARM_STAY].pulls >= 1 &&
            best_mean >= stay + c->cfg.margin) {
            if (best != c->leader) {
                c->leader = best;
                c->streak = 0;
            }
            if (c->trial == best) c->streak++;
        } else {
            c->leader = LEARN_ARM_STAY;
            c->streak = 0;
        }
        if (c->leader != LEARN_ARM_STAY && c->streak >= c->cfg.hysteresis) {
            unsigned arm = c->leader;
            struct hak_policy old = c->incumbent;
            /* the same move adopted again, still by a wide margin: the
             * optimum is probably farther, two steps (cool-downs and
             * hysteresis are paid per adoption) */
            unsigned steps =
                arm == c->last_adopted && best_mean >= stay + c->cfg.leap * c->cfg.margin ? 2 : 1;
            c->last_adopted = arm;
            adopt(c, arm, steps);
            c->current = c->incumbent;
            c->trial = LEARN_ARM_STAY;
            *out = c->current;
            c->publishes++;
            say(why, why_cap,
                "adopt %s%s (reward %.3f vs %.3f staying, %u windows running; wmax %u->%u, "
                "batch %u->%u, bigcache %u->%u MiB)",
                learn_arm_name(arm), steps > 1 ? " twice" : "", best_mean, stay,
                c->cfg.hysteresis, old.wmax_large_pct,
                c->incumbent.wmax_large_pct, old.refill_batch, c->incumbent.refill_batch,
                old.bigcache_mb, c->incumbent.bigcache_mb);
            return true;
        }
        /* windows without an adoption count once every eligible move has
         * had its first window (a phase with many classes has many moves) */
        bool explored = true;
        for (unsigned a = 0; a < LEARN_ARMS; a++)
            if (ok[a] && c->arms[a].pulls < 1) explored = false;
        if (explored) c->quiet++;
        if (c->quiet >= c->cfg.freeze_after && c->leader == LEARN_ARM_STAY) {
            c->state = HAK_LEARN_FROZEN;
            c->frozen_windows = 0;
            memcpy(c->frozen_sig, c->recent, sizeof c->recent);
            bool back = c->trial != LEARN_ARM_STAY;
            c->trial = LEARN_ARM_STAY;
            c->current = c->incumbent;
            if (back) {
                *out = c->current;
                c->publishes++;
                say(why, why_cap, "frozen: no move beat the policy in %u windows", c->quiet);
            }
            return back;
        }
        next = learn_ucb1(c->arms, LEARN_ARMS, ok, c->cfg.explore);
    }
    if (next == c->trial) return false;
    unsigned was = c->trial;
    c->trial = next;
    if (next == LEARN_ARM_STAY) {
        c->current = c->incumbent;
        say(why, why_cap, "back to the incumbent after trying %s (reward %.3f)",
            learn_arm_name(was), r);
    } else {
        core_apply(c, next, &c->current);
        c->trials++;
        say(why, why_cap, "trial %s for a window (UCB1; last reward %.3f)", learn_arm_name(next),
            r);
    }
    *out = c->current;
    c->publishes++;
    return true;
}

/* ---- the runtime ------------------------------------------------------- */

/* A window closes after this many allocations at the latest. */
#define WINDOW_EVENTS 16384
/* Looks at the counters per window (HAKMEM_LEARN_WINDOW_MS / LOOKS apart). */
#define LOOKS 8
#define LEARN_STACK ((size_t)128 * 1024)
#define RING 256 /* sampled refill latencies waiting for the learner */
/* A FROZEN window lasts this many windows (the learner sleeps through it). */
#define FROZEN_WINDOWS 1

static pthread_mutex_t learn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct learn_core core;
static bool core_ready;
static struct learn_p2 refill_p99;
static uint64_t threads_started;
/* 0: no thread; 1: starting or running; 2: could not start (no retry). */
static _Atomic int thread_state;
_Atomic bool learn_sampling;
_Atomic bool learn_running;
static _Atomic uint32_t ring[RING];
static _Atomic uint64_t ring_head;
static uint64_t ring_tail; /* the learner's */

void learn_note_refill_ns(uint64_t ns) {
    uint64_t i = atomic_fetch_add_relaxed(&ring_head, 1);
    atomic_store_relaxed(&ring[i % RING], (uint32_t)(ns > UINT32_MAX ? UINT32_MAX : ns));
}

/* The counters the learner reads, summed as it needs them. */
struct reading {
    uint64_t allocs_all;
    struct learn_obs o; /* cumulative values; cached_bytes is current */
};

static uint64_t cls_ctr(int lane, unsigned k, enum hak_class_counter i) {
    return atomic_load_relaxed(&stats_classes[lane][k].c[i]);
}

static void read_counters(struct reading *r) {
    memset(r, 0, sizeof *r);
    struct learn_obs *o = &r->o;
    for (unsigned k = 0; k < LEARN_MID_CLASSES; k++) {
        uint64_t a = cls_ctr(HAK_LANE_POOL, k, HAK_CCTR_allocs);
        o->allocs_mid += a;
        o->misses_mid += cls_ctr(HAK_LANE_POOL, k, HAK_CCTR_refills);
        o->sig[k] = a;
    }
    for (unsigned k = 0; k < ACE_CLASSES; k++) {
        uint64_t a = cls_ctr(HAK_LANE_ACE, k, HAK_CCTR_allocs);
        o->allocs_large += a;
        o->misses_cls[k] = cls_ctr(HAK_LANE_ACE, k, HAK_CCTR_refills);
        o->misses_large += o->misses_cls[k];
        o->sig[LEARN_MID_CLASSES + k] = a;
    }
    o->allocs_huge = atomic_load_relaxed(&stats_lanes[HAK_LANE_HUGE].c[HAK_CTR_allocs]);
    o->sig[LEARN_SIG_BINS - 1] = o->allocs_huge;
    const int lanes[] = {HAK_LANE_POOL, HAK_LANE_ACE, HAK_LANE_HUGE};
    for (unsigned i = 0; i < sizeof lanes / sizeof lanes[0]; i++) {
        const struct stats_lane *s = &stats_lanes[lanes[i]];
        uint64_t c[HAK_CTR_COUNT];
        for (int j = 0; j < HAK_CTR_COUNT; j++) c[j] = atomic_load_relaxed(&s->c[j]);
        o->os_events += c[HAK_CTR_os_maps] + c[HAK_CTR_os_unmaps] + c[HAK_CTR_purges];
        uint64_t mapped = c[HAK_CTR_os_map_bytes] - c[HAK_CTR_os_unmap_bytes];
        uint64_t live = c[HAK_CTR_alloc_bytes] - c[HAK_CTR_free_bytes];
        if (mapped > live && mapped - live < ((uint64_t)1 << 62)) o->cached_bytes += mapped - live;
    }
    r->allocs_all = o->allocs_mid + o->allocs_large + o->allocs_huge +
                    atomic_load_relaxed(&stats_lanes[HAK_LANE_TINY].c[HAK_CTR_allocs]);
    for (int l = 0; l < HAK_LANE_COUNT; l++) {
        uint64_t a = atomic_load_relaxed(&stats_lanes[l].c[HAK_CTR_alloc_bytes]);
        uint64_t f = atomic_load_relaxed(&stats_lanes[l].c[HAK_CTR_free_bytes]);
        if (a > f) o->live_bytes += a - f;
    }
    /* an ACE class's runs in use are its live blocks plus those its caches
     * hold (the per-thread counts flushed lag a little: clamped at 0) */
    for (unsigned k = 0; k < ACE_CLASSES; k++) {
        const struct stats_class *s = &stats_classes[HAK_LANE_ACE][k];
        int64_t runs = atomic_load_relaxed(&s->slabs);
        int64_t live = (int64_t)(atomic_load_relaxed(&s->c[HAK_CCTR_allocs]) -
                                 atomic_load_relaxed(&s->c[HAK_CCTR_frees]));
        o->cache_cls[k] = runs > live ? (uint64_t)(runs - live) * ace_class_size[k] : 0;
        o->ace_cache_bytes += o->cache_cls[k];
    }
}

static void delta(const struct reading *now, const struct reading *base, struct learn_obs *o) {
    const struct learn_obs *a = &now->o, *b = &base->o;
    o->allocs_mid = a->allocs_mid - b->allocs_mid;
    o->misses_mid = a->misses_mid - b->misses_mid;
    o->allocs_large = a->allocs_large - b->allocs_large;
    o->misses_large = a->misses_large - b->misses_large;
    o->allocs_huge = a->allocs_huge - b->allocs_huge;
    o->os_events = a->os_events - b->os_events;
    o->cached_bytes = a->cached_bytes;
    for (unsigned i = 0; i < LEARN_SIG_BINS; i++) o->sig[i] = a->sig[i] - b->sig[i];
    for (unsigned k = 0; k < LEARN_LARGE_CLASSES; k++) {
        o->misses_cls[k] = a->misses_cls[k] - b->misses_cls[k];
        o->cache_cls[k] = a->cache_cls[k];
    }
    o->live_bytes = a->live_bytes;
    o->ace_cache_bytes = a->ace_cache_bytes;
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* Feeds the sampled refill latencies to the p99 and to the window's median
 * (the median: a refill preempted by the scheduler, tens of microseconds,
 * is no cost of the policy's). */
static void drain_latencies(struct learn_p2 *median) {
    uint64_t head = atomic_load_relaxed(&ring_head);
    if (head - ring_tail > RING) ring_tail = head - RING; /* overwritten: skip */
    for (; ring_tail < head; ring_tail++) {
        double ns = (double)atomic_load_relaxed(&ring[ring_tail % RING]);
        learn_p2_add(&refill_p99, ns);
        learn_p2_add(median, ns);
    }
}

static void log_changes(const struct hak_policy *old, const struct hak_policy *pol,
                        const char *why);
static void log_incumbent(const struct hak_policy *p);

static void *learner_main(void *arg) {
    (void)arg;
    uint64_t window_ns = (uint64_t)hak_opt(HAK_OPT_LEARN_WINDOW_MS) * 1000000u;
    pthread_mutex_lock(&learn_lock);
    if (!core_ready) {
        struct learn_cfg cfg;
        learn_cfg_default(&cfg, (uint64_t)hak_opt(HAK_OPT_BUDGET_MB) << 20,
                          (double)hak_opt(HAK_OPT_TARGET_HIT_MID) / 100,
                          (double)hak_opt(HAK_OPT_TARGET_HIT_LARGE) / 100);
        learn_core_init(&core, &cfg, policy_current());
        learn_p2_init(&refill_p99, 0.99);
        core_ready = true;
    }
    int state = core.state;
    pthread_mutex_unlock(&learn_lock);
    atomic_store_relaxed(&learn_sampling, state != HAK_LEARN_FROZEN);
    struct reading base, now;
    read_counters(&base);
    uint64_t start = os_now_ns(), cpu_start = os_cpu_ns();
    /* sums over the window's looks (the live and cached bytes vary within
     * a program's frames: their means are steadier than the last look) */
    double live_sum = 0, cache_sum = 0;
    uint64_t looks = 0;
    struct learn_p2 refill_median;
    learn_p2_init(&refill_median, 0.5);
    for (;;) {
        /* FROZEN: one look at the counters every FROZEN_WINDOWS windows */
        sleep_ns(state == HAK_LEARN_FROZEN ? FROZEN_WINDOWS * window_ns : window_ns / LOOKS);
        read_counters(&now);
        live_sum += (double)now.o.live_bytes;
        cache_sum += (double)now.o.ace_cache_bytes;
        looks++;
        uint64_t t = os_now_ns();
        /* a CANARY window only confirms a shift: an eighth of the events */
        uint64_t events = state == HAK_LEARN_CANARY ? WINDOW_EVENTS / 8 : WINDOW_EVENTS;
        if (state != HAK_LEARN_FROZEN && now.allocs_all - base.allocs_all < events &&
            t - start < window_ns)
            continue;
        struct learn_obs o;
        delta(&now, &base, &o);
        uint64_t cpu = os_cpu_ns();
        o.cpu_ns = cpu > cpu_start ? cpu - cpu_start : 0;
        o.live_bytes = (uint64_t)(live_sum / (double)looks);
        o.ace_cache_bytes = (uint64_t)(cache_sum / (double)looks);
        base = now;
        start = t;
        cpu_start = cpu;
        live_sum = cache_sum = 0;
        looks = 0;
        struct hak_policy pol;
        char why[256];
        pthread_mutex_lock(&learn_lock);
        drain_latencies(&refill_median);
        o.refill_ns = (uint64_t)learn_p2_get(&refill_median);
        learn_p2_init(&refill_median, 0.5);
        int before = core.state;
        struct hak_policy was = core.incumbent;
        bool publish = learn_core_window(&core, &o, &pol, why, sizeof why);
        state = core.state;
        struct hak_policy incumbent = core.incumbent;
        bool changed = memcmp(&was, &incumbent, sizeof was) != 0; /* adopted, or fit the budget */
        double l1 = core.last_l1;
        pthread_mutex_unlock(&learn_lock);
        if (publish) {
            log_changes(policy_current(), &pol, why);
            policy_publish(&pol);
        }
        if (changed) log_incumbent(&incumbent);
        if (before != state) {
            static const char *const names[] = {"off", "LEARN", "FROZEN", "CANARY"};
            /* not rate-limited: a few a second at most */
            if (!HAK_BENCH_MINIMAL && hak_verbose_on)
                hak_log("learn: %s -> %s (signature L1 %.2f)", names[before], names[state], l1);
        }
        atomic_store_relaxed(&learn_sampling, state != HAK_LEARN_FROZEN);
    }
    return NULL;
}

/* HAKMEM_VERBOSE: one line per knob (a cap group counts as one) that
 * differs between old and new: the knob, old and new values, why. */
static void log_changes(const struct hak_policy *old, const struct hak_policy *pol,
                        const char *why) {
    if (HAK_BENCH_MINIMAL || !hak_verbose_on) return;
    if (memcmp(old, pol, sizeof *old) == 0) { /* an adoption of the policy on trial */
        hak_log_event("learn: policy kept: %s", why);
        return;
    }
    for (unsigned g = 0; g < LEARN_GROUPS; g++) {
        unsigned k = g * LEARN_GROUP_CLASSES;
        if (memcmp(&old->cap_large[k], &pol->cap_large[k], LEARN_GROUP_CLASSES * sizeof(uint32_t)))
            hak_log_event("learn: cap_large[%u..%u KiB] %u,%u,%u,%u -> %u,%u,%u,%u: %s",
                          ace_class_size[k] >> 10, ace_class_size[k + 3] >> 10,
                          old->cap_large[k], old->cap_large[k + 1], old->cap_large[k + 2],
                          old->cap_large[k + 3], pol->cap_large[k], pol->cap_large[k + 1],
                          pol->cap_large[k + 2], pol->cap_large[k + 3], why);
    }
    _Static_assert(LEARN_GROUP_CLASSES == 4, "the line above prints four classes");
    if (memcmp(old->cap_mid, pol->cap_mid, sizeof old->cap_mid))
        hak_log_event("learn: cap_mid[1280 B] %u -> %u (every pool class alike): %s",
                      old->cap_mid[0], pol->cap_mid[0], why);
    if (old->wmax_large_pct != pol->wmax_large_pct)
        hak_log_event("learn: wmax_large %u%% -> %u%%: %s", old->wmax_large_pct,
                      pol->wmax_large_pct, why);
    if (old->refill_batch != pol->refill_batch)
        hak_log_event("learn: refill_batch %u -> %u: %s", old->refill_batch, pol->refill_batch,
                      why);
    if (old->bigcache_mb != pol->bigcache_mb)
        hak_log_event("learn: bigcache %u -> %u MiB: %s", old->bigcache_mb, pol->bigcache_mb,
                      why);
}

/* HAKMEM_VERBOSE: the whole incumbent after it changed (one line, for
 * bench/learn_grid.py; not rate-limited: adoptions are few): every ACE
 * class's cap, W_MAX, the pool's cap, batch, BigCache. */
static void log_incumbent(const struct hak_policy *p) {
    if (HAK_BENCH_MINIMAL || !hak_verbose_on) return;
    char caps[4 * LEARN_LARGE_CLASSES + 1];
    size_t n = 0;
    for (unsigned k = 0; k < LEARN_LARGE_CLASSES && n < sizeof caps; k++)
        n += (size_t)snprintf(caps + n, sizeof caps - n, k ? ",%u" : "%u", p->cap_large[k]);
    hak_log("learn: incumbent: cap_large %s, wmax_large %u%%, cap_mid %u, batch %u, "
            "bigcache %u MiB",
            caps, p->wmax_large_pct, p->cap_mid[0], p->refill_batch, p->bigcache_mb);
}

static HAK_NOINLINE HAK_COLD void learner_start(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&thread_state, &expected, 1,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, LEARN_STACK);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the learner takes no signal */
    pthread_t t;
    int err = pthread_create(&t, &attr, learner_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err) {
        atomic_store_release(&thread_state, 2);
        hak_verbose("learn: cannot start the learner thread (error %d)", err);
        return;
    }
    pthread_mutex_lock(&learn_lock);
    threads_started++;
    pthread_mutex_unlock(&learn_lock);
    atomic_store_relaxed(&learn_running, true);
    hak_verbose("learn: learner thread started");
}

void learn_tick(void) {
    if (HAK_LIKELY(atomic_load_relaxed(&thread_state) != 0)) return;
    if (!hak_opt(HAK_OPT_LEARN)) return;
    learner_start();
}

static void learn_info(struct hak_learn_info *out) {
    pthread_mutex_lock(&learn_lock);
    out->running = atomic_load_relaxed(&thread_state) == 1;
    out->state = core_ready ? core.state : (hak_opt(HAK_OPT_LEARN) ? HAK_LEARN_LEARN : HAK_LEARN_OFF);
    out->threads_started = threads_started;
    out->windows = core.windows;
    out->trials = core.trials;
    out->adoptions = core.adoptions;
    out->publishes = core.publishes;
    out->relearns = core.relearns;
    out->refill_p99_ns = (uint64_t)learn_p2_get(&refill_p99);
    pthread_mutex_unlock(&learn_lock);
}

static size_t learn_report(bool json, char *buf, size_t cap) {
    struct hak_learn_info li;
    memset(&li, 0, sizeof li);
    learn_info(&li);
    static const char *const names[] = {"off", "LEARN", "FROZEN", "CANARY"};
    const struct hak_policy *p = policy_current();
    int n;
    pthread_mutex_lock(&learn_lock);
    double reward = core.last_reward, l1 = core.last_l1;
    pthread_mutex_unlock(&learn_lock);
    if (json) {
        n = snprintf(buf, cap,
                     "{\"state\":\"%s\",\"running\":%d,\"windows\":%llu,\"trials\":%llu,"
                     "\"adoptions\":%llu,\"publishes\":%llu,\"relearns\":%llu,"
                     "\"last_reward\":%.4f,\"last_l1\":%.4f,\"refill_p99_ns\":%llu,"
                     "\"policy_bytes\":%llu}",
                     names[li.state & 3], li.running, (unsigned long long)li.windows,
                     (unsigned long long)li.trials, (unsigned long long)li.adoptions,
                     (unsigned long long)li.publishes, (unsigned long long)li.relearns, reward,
                     l1, (unsigned long long)li.refill_p99_ns,
                     (unsigned long long)learn_policy_bytes(p));
    } else {
        n = snprintf(buf, cap,
                     "  learner: %s, %llu windows, %llu trials, %llu adopted, %llu published, "
                     "%llu relearns, last reward %.3f, refill p99 %llu ns\n"
                     "  learner policy: cap_large by class group [%u %u %u %u %u], cap_mid[0] %u, "
                     "policy bytes %llu KiB\n",
                     names[li.state & 3], (unsigned long long)li.windows,
                     (unsigned long long)li.trials, (unsigned long long)li.adoptions,
                     (unsigned long long)li.publishes, (unsigned long long)li.relearns, reward,
                     (unsigned long long)li.refill_p99_ns, p->cap_large[0], p->cap_large[4],
                     p->cap_large[8], p->cap_large[12], p->cap_large[16], p->cap_mid[0],
                     (unsigned long long)(learn_policy_bytes(p) >> 10));
    }
    if (n < 0) n = 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

static bool learn_wanted(void) { return hak_opt(HAK_OPT_LEARN) != 0; }

static const struct policy_controller learner = {
    .wanted = learn_wanted,
    .tick = learn_tick,
    .info = learn_info,
    .report = learn_report,
};

void learn_register(void) { policy_set_controller(&learner); }

void learn_fork_prepare(void) { pthread_mutex_lock(&learn_lock); }
void learn_fork_parent(void) { pthread_mutex_unlock(&learn_lock); }

void learn_fork_child(void) {
    pthread_mutex_unlock(&learn_lock);
    /* the parent's learner thread is not here: the next slow path starts one */
    atomic_store_relaxed(&thread_state, 0);
    atomic_store_relaxed(&learn_running, false);
    atomic_store_relaxed(&learn_sampling, false);
    threads_started = 0;
}
