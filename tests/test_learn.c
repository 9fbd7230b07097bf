/*
 * test_learn.c: the learner's core through its internal API (the static
 * library): P2 against exact percentiles, UCB1 on synthetic rewards, the
 * window logic (convergence, hysteresis, cool-down, the budget) and the
 * lifecycle LEARN -> FROZEN -> CANARY -> LEARN on a size-distribution shift,
 * all on a synthetic workload whose miss rate follows the caps.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "modules/ace/ace.h"
#include "modules/ace/learn.h"

/* ---- P2 ------------------------------------------------------------------ */

static uint64_t rng_state = 88172645463325252ull;
static double uniform01(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The exact p-quantile of v (sorted in place). */
static double exact(double *v, size_t n, double p) {
    qsort(v, n, sizeof v[0], cmp_double);
    size_t idx = (size_t)ceil(p * (double)n);
    return v[idx ? idx - 1 : 0];
}

/* The rank of x in sorted v, as a fraction. */
static double rank_of(const double *v, size_t n, double x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid] < x) lo = mid + 1; else hi = mid;
    }
    return (double)lo / (double)n;
}

static void check_p2(const char *what, double (*gen)(void), double p) {
    enum { N = 200000 };
    double *v = malloc(N * sizeof *v);
    cr_assert_not_null(v);
    struct learn_p2 e;
    learn_p2_init(&e, p);
    for (size_t i = 0; i < N; i++) {
        v[i] = gen();
        learn_p2_add(&e, v[i]);
    }
    double want = exact(v, N, p), got = learn_p2_get(&e);
    /* P2 is an estimate: its rank within half a percentile point, and its
     * value within 5% of the exact quantile */
    double r = rank_of(v, N, got);
    cr_expect(fabs(r - p) < 0.005, "%s p%.0f: estimate %g at rank %.4f", what, p * 100, got, r);
    cr_expect(fabs(got - want) <= 0.05 * fabs(want), "%s p%.0f: estimate %g, exact %g", what,
              p * 100, got, want);
    free(v);
}

static double gen_uniform(void) { return 1000 * uniform01(); }
static double gen_exponential(void) { return -400 * log(uniform01()); }
/* refill latencies: mostly fast, a heavy tail (a few page faults, a lock) */
static double gen_latency(void) {
    double u = uniform01();
    return u < 0.9 ? 200 + 100 * uniform01() : 2000 - 1500 * log(uniform01());
}

Test(learn_p2, matches_exact_percentiles_of_generated_data) {
    check_p2("uniform", gen_uniform, 0.99);
    check_p2("uniform", gen_uniform, 0.5);
    check_p2("exponential", gen_exponential, 0.99);
    check_p2("exponential", gen_exponential, 0.9);
    check_p2("latency", gen_latency, 0.99);
    check_p2("latency", gen_latency, 0.5);
}

Test(learn_p2, exact_with_few_observations) {
    struct learn_p2 e;
    learn_p2_init(&e, 0.5);
    cr_assert_eq(learn_p2_get(&e), 0);
    learn_p2_add(&e, 30);
    learn_p2_add(&e, 10);
    learn_p2_add(&e, 20);
    cr_assert_eq(learn_p2_get(&e), 20);
}

/* ---- UCB1 ---------------------------------------------------------------- */

Test(learn_ucb1, picks_the_best_arm_on_synthetic_rewards) {
    const double p[] = {0.30, 0.45, 0.50, 0.70, 0.55, 0.40};
    enum { K = sizeof p / sizeof p[0], PULLS = 6000 };
    struct learn_arm arms[K];
    bool ok[K];
    memset(arms, 0, sizeof arms);
    for (int k = 0; k < K; k++) ok[k] = true;
    unsigned count[K] = {0};
    for (int t = 0; t < PULLS; t++) {
        unsigned a = learn_ucb1(arms, K, ok, sqrt(2.0));
        cr_assert_lt(a, K);
        double r = uniform01() < p[a] ? 1 : 0;
        arms[a].pulls += 1;
        arms[a].sum += r;
        count[a]++;
    }
    for (int k = 0; k < K; k++) cr_assert_gt(count[k], 0, "arm %d never tried", k);
    cr_expect_gt(count[3], PULLS * 6 / 10, "best arm pulled %u of %d times", count[3], PULLS);
    for (int k = 0; k < K; k++)
        if (k != 3) cr_expect_lt(count[k], count[3] / 4, "arm %d pulled %u times", k, count[k]);
}

Test(learn_ucb1, never_picks_an_ineligible_arm) {
    struct learn_arm arms[4] = {{1, 1}, {1, 0.1}, {0, 0}, {1, 0.5}};
    bool ok[4] = {true, true, false, true};
    for (int t = 0; t < 50; t++) cr_assert_neq(learn_ucb1(arms, 4, ok, 0.5), 2);
}

/* ---- the core on a synthetic workload ------------------------------------- */

/* A workload: per ACE class, blocks in use per thread at once (`ws`) and
 * allocations per window. The share of allocations that miss is the part
 * of the working set that the caches (the thread's cap + twice as many
 * shared) cannot hold. */
struct workload {
    uint32_t ws[ACE_CLASSES];
    uint64_t per_window[ACE_CLASSES];
    /* timed windows (0: untimed): the program's CPU time per allocation and
     * what a refill takes */
    double cpu_per_alloc_ns, refill_ns;
};

static void observe(const struct workload *w, const struct hak_policy *pol, struct learn_obs *o) {
    memset(o, 0, sizeof *o);
    for (unsigned k = 0; k < ACE_CLASSES; k++) {
        if (!w->per_window[k]) continue;
        uint32_t held = 3 * pol->cap_large[k];
        uint64_t miss = held >= w->ws[k] ? 0 : w->per_window[k] * (w->ws[k] - held) / w->ws[k];
        /* a little noise, as real windows have */
        uint64_t allocs = w->per_window[k] + (uint64_t)(uniform01() * 40);
        o->allocs_large += allocs;
        o->misses_large += miss;
        o->misses_cls[k] = miss;
        o->os_events += miss / 64;
        o->sig[LEARN_MID_CLASSES + k] = allocs;
        /* the caches hold what the working set leaves them, up to the caps */
        uint64_t cached = w->ws[k] < held ? w->ws[k] : held;
        o->cache_cls[k] = cached * ace_class_size[k];
        o->ace_cache_bytes += o->cache_cls[k];
        o->live_bytes += (uint64_t)w->ws[k] * ace_class_size[k];
    }
    if (w->cpu_per_alloc_ns > 0) {
        o->cpu_ns = (uint64_t)((double)o->allocs_large * w->cpu_per_alloc_ns);
        o->refill_ns = (uint64_t)w->refill_ns;
    }
}

static struct hak_policy start_policy(void) {
    struct hak_policy p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    for (unsigned c = 0; c < HAK_POLICY_CLASSES; c++) {
        p.cap_mid[c] = 1;
        uint32_t fit = c < ACE_CLASSES ? 256 / (ace_class_size[c] >> 10) : 1;
        p.cap_large[c] = fit ? fit : 1;
    }
    p.wmax_large_pct = 125;
    p.refill_batch = 4;
    p.bigcache_mb = 64;
    return p;
}

/* The workload of bench/ace_cycle: 64-512 KiB classes, working sets above
 * the default caps. */
static struct workload big_working_sets(void) {
    struct workload w;
    memset(&w, 0, sizeof w);
    const unsigned cls[] = {3, 5, 7, 11, 12, 15}; /* 64K, 96K, 128K, 256K, 320K, 512K */
    const uint32_t ws[] = {16, 8, 6, 8, 6, 6};
    for (unsigned i = 0; i < 6; i++) {
        w.ws[cls[i]] = ws[i];
        w.per_window[cls[i]] = 4000;
    }
    return w;
}

struct run {
    struct learn_core c;
    unsigned publishes, adoptions;
    unsigned windows_to_freeze;
    uint64_t max_bytes;
};

/* Runs windows of workload w through c; *pol follows what is published. */
static void run_windows(struct run *r, const struct workload *w, unsigned windows,
                        struct hak_policy *pol) {
    for (unsigned i = 0; i < windows; i++) {
        struct learn_obs o;
        observe(w, pol, &o);
        struct hak_policy out;
        char why[256];
        int before = r->c.state;
        if (learn_core_window(&r->c, &o, &out, why, sizeof why)) {
            *pol = out;
            r->publishes++;
            if (strncmp(why, "adopt", 5) == 0) r->adoptions++;
            uint64_t b = learn_policy_bytes(pol);
            if (b > r->max_bytes) r->max_bytes = b;
        }
        if (before == HAK_LEARN_LEARN && r->c.state == HAK_LEARN_FROZEN && !r->windows_to_freeze)
            r->windows_to_freeze = (unsigned)r->c.windows;
    }
}

static void start_run(struct run *r, uint64_t budget, struct hak_policy *pol) {
    memset(r, 0, sizeof *r);
    struct learn_cfg cfg;
    learn_cfg_default(&cfg, budget, 0.95, 0.95);
    *pol = start_policy();
    learn_core_init(&r->c, &cfg, pol);
}

Test(learn_core, grows_the_caps_a_big_working_set_needs_then_freezes) {
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload w = big_working_sets();
    run_windows(&r, &w, 3000, &pol);
    cr_assert_geq(r.adoptions, 1); /* one: every class short of room grown at once */
    /* the start policy misses a third of the time; the learned one reaches
     * the target hit rate (beyond it, larger caches earn nothing) */
    struct learn_obs o;
    struct hak_policy first = start_policy();
    observe(&w, &first, &o);
    cr_assert_gt((double)o.misses_large / (double)o.allocs_large, 0.3);
    observe(&w, &r.c.incumbent, &o);
    double hit = 1 - (double)o.misses_large / (double)o.allocs_large;
    cr_expect_geq(hit, r.c.cfg.target_hit_large, "hit rate %.3f", hit);
    cr_assert_neq(r.windows_to_freeze, 0, "never froze");
    cr_assert_neq(r.c.state, HAK_LEARN_LEARN);
    /* what it froze with is what is published */
    cr_assert(memcmp(&pol, &r.c.incumbent, sizeof pol) == 0);
}

Test(learn_core, no_adoption_when_every_move_is_as_good_as_staying) {
    /* a working set the default caps already hold, W_MAX already at 100%
     * (no waste to save): no move can win by the margin */
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    pol.wmax_large_pct = 100;
    struct learn_cfg cfg = r.c.cfg;
    learn_core_init(&r.c, &cfg, &pol);
    struct workload w;
    memset(&w, 0, sizeof w);
    w.ws[3] = 2;
    w.per_window[3] = 5000;
    run_windows(&r, &w, 400, &pol);
    cr_assert_eq(r.adoptions, 0, "%u adoptions", r.adoptions);
    cr_assert_gt(r.c.trials, 0, "nothing was tried");
    cr_assert_eq(r.c.state == HAK_LEARN_LEARN, false, "never froze");
}

Test(learn_core, adoption_needs_the_margin_several_windows_running_then_cools_down) {
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload w = big_working_sets();
    unsigned on_trial[LEARN_ARMS] = {0}; /* windows each arm was on trial since the last adoption */
    unsigned adoptions = 0, cooldown_checked = 0;
    for (unsigned i = 0; i < 1500 && r.c.state == HAK_LEARN_LEARN; i++) {
        struct learn_obs o;
        observe(&w, &pol, &o);
        unsigned trial = r.c.trial;
        on_trial[trial]++;
        struct hak_policy out;
        char why[256];
        if (!learn_core_window(&r.c, &o, &out, why, sizeof why)) continue;
        pol = out;
        if (strncmp(why, "adopt", 5) != 0) continue;
        adoptions++;
        /* hysteresis: the adopted arm was the one on trial, and had been
         * on trial for at least `hysteresis` windows since the last adoption */
        cr_assert_neq(trial, LEARN_ARM_STAY);
        cr_assert_geq(on_trial[trial], r.c.cfg.hysteresis, "adopted after %u windows on trial",
                      on_trial[trial]);
        memset(on_trial, 0, sizeof on_trial);
        /* cool-down: the next windows try nothing */
        for (unsigned k = 0; k < r.c.cfg.cooldown; k++) {
            observe(&w, &pol, &o);
            cr_assert_not(learn_core_window(&r.c, &o, &out, why, sizeof why),
                          "published during the cool-down: %s", why);
            cr_assert_eq(r.c.trial, LEARN_ARM_STAY);
            cooldown_checked++;
        }
    }
    cr_assert_gt(adoptions, 0);
    cr_assert_gt(cooldown_checked, 0);
}

Test(learn_core, never_publishes_a_policy_above_the_budget) {
    /* budget: 24 MiB, below what the start policy's BigCache (64 MiB) and
     * what the working set would like */
    const uint64_t budget = (uint64_t)24 << 20;
    struct run r;
    struct hak_policy pol;
    start_run(&r, budget, &pol);
    struct workload w = big_working_sets();
    for (unsigned k = 0; k < ACE_CLASSES; k++)
        if (w.ws[k]) w.ws[k] = 96; /* wants caps of 32 everywhere */
    run_windows(&r, &w, 2000, &pol);
    cr_assert_gt(r.publishes, 0);
    cr_assert_leq(r.max_bytes, budget, "published %llu bytes", (unsigned long long)r.max_bytes);
    cr_assert_leq(learn_policy_bytes(&r.c.incumbent), budget);
    cr_assert_leq(learn_policy_bytes(&pol), budget);
}

Test(learn_core, lifecycle_learn_frozen_canary_and_back_on_a_shift) {
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload w = big_working_sets();
    run_windows(&r, &w, 3000, &pol);
    cr_assert_neq(r.windows_to_freeze, 0);
    /* FROZEN -> CANARY after canary_every windows; same sizes: FROZEN again */
    while (r.c.state != HAK_LEARN_FROZEN) run_windows(&r, &w, 1, &pol);
    unsigned n = 0;
    while (r.c.state == HAK_LEARN_FROZEN && n < 1000) {
        run_windows(&r, &w, 1, &pol);
        n++;
    }
    cr_assert_eq(r.c.state, HAK_LEARN_CANARY);
    cr_assert_leq(n, r.c.cfg.canary_every);
    run_windows(&r, &w, 1, &pol);
    cr_assert_eq(r.c.state, HAK_LEARN_FROZEN, "the same distribution sent it to %d", r.c.state);
    /* a whole FROZEN period this time */
    for (n = 0; r.c.state == HAK_LEARN_FROZEN && n < 1000; n++) run_windows(&r, &w, 1, &pol);
    cr_assert_eq(n, r.c.cfg.canary_every);
    cr_assert_eq(r.c.state, HAK_LEARN_CANARY);
    run_windows(&r, &w, 1, &pol);
    cr_assert_eq(r.c.state, HAK_LEARN_FROZEN);
    cr_assert_lt(r.c.last_l1, r.c.cfg.shift_l1);
    cr_assert_eq(r.c.relearns, 0);
    /* the program now allocates other sizes: 40 KiB and 768 KiB */
    struct workload shifted;
    memset(&shifted, 0, sizeof shifted);
    shifted.ws[0] = 20;
    shifted.per_window[0] = 6000;
    shifted.ws[17] = 9;
    shifted.per_window[17] = 3000;
    n = 0;
    while (r.c.state != HAK_LEARN_LEARN && n < 1000) {
        run_windows(&r, &shifted, 1, &pol);
        n++;
    }
    cr_assert_eq(r.c.state, HAK_LEARN_LEARN);
    cr_assert_eq(r.c.relearns, 1);
    cr_assert_gt(r.c.last_l1, r.c.cfg.shift_l1);
    /* and it learns caps for the new sizes */
    struct learn_obs o;
    observe(&shifted, &pol, &o);
    double before = 1 - (double)o.misses_large / (double)o.allocs_large;
    run_windows(&r, &shifted, 3000, &pol);
    observe(&shifted, &pol, &o);
    double after = 1 - (double)o.misses_large / (double)o.allocs_large;
    cr_expect_lt(before, 0.8, "hit rate %.3f before", before);
    /* near the target a move gains less than the margin: close enough */
    cr_expect_geq(after, before + 0.15, "hit rate %.3f before, %.3f after", before, after);
    cr_expect_geq(after, 0.9, "hit rate %.3f after", after);
}

Test(learn_core, a_shift_while_frozen_relearns_at_once_not_at_the_periodic_canary) {
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload w = big_working_sets();
    run_windows(&r, &w, 3000, &pol);
    /* at the start of a FROZEN period */
    for (unsigned n = 0; n < 1000 && !(r.c.state == HAK_LEARN_FROZEN && r.c.frozen_windows == 0);
         n++)
        run_windows(&r, &w, 1, &pol);
    cr_assert_eq(r.c.state, HAK_LEARN_FROZEN);
    /* a FROZEN window of the same sizes changes nothing */
    run_windows(&r, &w, 1, &pol);
    cr_assert_eq(r.c.state, HAK_LEARN_FROZEN);
    cr_assert_eq(r.c.frozen_windows, 1);
    /* the program turns to 40 KiB blocks: the first FROZEN window that sees
     * them goes to CANARY, whose window confirms: LEARN two windows later,
     * where the periodic check alone would wait canary_every windows */
    struct workload shifted;
    memset(&shifted, 0, sizeof shifted);
    shifted.ws[0] = 40;
    shifted.per_window[0] = 6000;
    run_windows(&r, &shifted, 1, &pol);
    cr_assert_eq(r.c.state, HAK_LEARN_CANARY);
    cr_assert_gt(r.c.last_l1, r.c.cfg.shift_l1);
    run_windows(&r, &shifted, 1, &pol);
    cr_assert_eq(r.c.state, HAK_LEARN_LEARN);
    cr_assert_eq(r.c.relearns, 1);
    cr_assert_gt(r.c.cfg.canary_every, 2);
}

Test(learn_moves, every_move_stays_within_the_policy_ranges) {
    struct hak_policy p = start_policy();
    for (int round = 0; round < 20; round++)
        for (unsigned a = 1; a < LEARN_ARMS; a++) {
            struct hak_policy q;
            learn_arm_apply(&p, a, &q);
            cr_assert_eq(hak_policy_set(&q), 0, "arm %s made an invalid policy", learn_arm_name(a));
            if (round % 2) p = q; /* wander */
        }
    struct hak_policy q;
    cr_assert_not(learn_arm_apply(&p, LEARN_ARM_STAY, &q));
}

/* ---- timed windows, phases, steps ------------------------------------------ */

/* One class of 1 MiB blocks, six in use at once: the start cap (one block
 * per thread, two shared) misses half the time. */
static struct workload one_big_class(double cpu_per_alloc_ns) {
    struct workload w;
    memset(&w, 0, sizeof w);
    w.ws[19] = 6;
    w.per_window[19] = 4000;
    w.cpu_per_alloc_ns = cpu_per_alloc_ns;
    w.refill_ns = 200;
    return w;
}

Test(learn_core, timed_windows_grow_a_cap_only_where_its_misses_cost_cpu_time) {
    /* the program works 20 us per allocation: the misses (200 ns each, half
     * the allocations) cost 0.5% of its CPU time, less than the margin,
     * while three more cached MiB cost memory: the cap stays */
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload slow = one_big_class(20000);
    run_windows(&r, &slow, 600, &pol);
    cr_assert_eq(r.c.incumbent.cap_large[19], 1, "cap %u", r.c.incumbent.cap_large[19]);
    /* a growth that cannot pay is not even tried (its trial would leave
     * cached pages resident) */
    const unsigned grow_640k_1m = LEARN_ARM_LARGE_UP + 2 * (19 / LEARN_GROUP_CLASSES);
    cr_assert_eq(r.c.arms[grow_640k_1m].pulls, 0, "tried %s", learn_arm_name(grow_640k_1m));
    cr_assert_neq(r.c.state, HAK_LEARN_LEARN, "never froze");
    /* 400 ns per allocation: the same misses cost a quarter of its time */
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload fast = one_big_class(400);
    run_windows(&r, &fast, 600, &pol);
    cr_assert_geq(r.c.incumbent.cap_large[19], 2, "cap %u", r.c.incumbent.cap_large[19]);
    struct learn_obs o;
    observe(&fast, &r.c.incumbent, &o);
    cr_assert_eq(o.misses_large, 0);
}

Test(learn_core, the_memory_term_charges_cached_bytes_against_the_live_heap) {
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct learn_obs o;
    memset(&o, 0, sizeof o);
    o.live_bytes = (uint64_t)64 << 20;
    o.ace_cache_bytes = (uint64_t)32 << 20;
    cr_assert_float_eq(learn_mem_cost(&r.c, &o), LEARN_MEM_WEIGHT / 2, 1e-9);
    /* a small heap counts as budget / 64 (4 MiB) */
    o.live_bytes = 1 << 20;
    o.ace_cache_bytes = (uint64_t)4 << 20;
    cr_assert_float_eq(learn_mem_cost(&r.c, &o), LEARN_MEM_WEIGHT, 1e-9);
}

/* 40 KiB and 768 KiB blocks: another phase than big_working_sets. */
static struct workload other_phase(void) {
    struct workload w;
    memset(&w, 0, sizeof w);
    w.ws[0] = 20;
    w.per_window[0] = 6000;
    w.ws[17] = 9;
    w.per_window[17] = 3000;
    return w;
}

Test(learn_core, a_new_phase_drops_the_caps_only_the_old_phase_needed) {
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload w = big_working_sets();
    run_windows(&r, &w, 3000, &pol);
    const struct hak_policy learned = r.c.incumbent;
    unsigned grown = 0;
    for (unsigned k = 0; k < ACE_CLASSES; k++) grown += learned.cap_large[k] > r.c.start.cap_large[k];
    cr_assert_gt(grown, 0);
    struct workload shifted = other_phase();
    for (unsigned n = 0; n < 1000 && r.c.state != HAK_LEARN_LEARN; n++)
        run_windows(&r, &shifted, 1, &pol);
    cr_assert_eq(r.c.state, HAK_LEARN_LEARN);
    /* the classes of the old phase, and those that grew along with their
     * group without traffic of their own, are back at their start caps;
     * what is published is that policy */
    for (unsigned k = 0; k < ACE_CLASSES; k++)
        cr_assert_leq(r.c.incumbent.cap_large[k], r.c.start.cap_large[k], "class %u: cap %u", k,
                      r.c.incumbent.cap_large[k]);
    cr_assert(memcmp(&pol, &r.c.incumbent, sizeof pol) == 0);
}

Test(learn_core, a_new_phase_while_learning_starts_learning_anew) {
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload w = big_working_sets();
    run_windows(&r, &w, 12, &pol); /* still exploring */
    cr_assert_eq(r.c.state, HAK_LEARN_LEARN);
    cr_assert_eq(r.c.relearns, 0);
    struct workload shifted = other_phase();
    run_windows(&r, &shifted, 1, &pol);
    cr_assert_eq(r.c.relearns, 1);
    cr_assert_gt(r.c.last_l1, r.c.cfg.shift_l1);
    cr_assert_eq(r.c.state, HAK_LEARN_LEARN);
    /* the evidence of the old phase is gone: one window of the new one */
    double pulls = 0;
    for (unsigned a = 0; a < LEARN_ARMS; a++) pulls += r.c.arms[a].pulls;
    cr_assert_float_eq(pulls, 1, 1e-9);
    /* more windows of the same phase: no further relearn */
    run_windows(&r, &shifted, 50, &pol);
    cr_assert_eq(r.c.relearns, 1);
}

Test(learn_core, the_same_move_winning_again_by_a_wide_margin_takes_two_steps) {
    /* 48 KiB blocks, 96 in use: caps of 32 needed, from 5 */
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload w;
    memset(&w, 0, sizeof w);
    w.ws[1] = 96;
    w.per_window[1] = 8000;
    uint32_t caps[16];
    unsigned n = 0;
    caps[n++] = pol.cap_large[1];
    for (unsigned i = 0; i < 600 && n < 16; i++) {
        struct learn_obs o;
        observe(&w, &pol, &o);
        struct hak_policy out;
        char why[256];
        if (!learn_core_window(&r.c, &o, &out, why, sizeof why)) continue;
        pol = out;
        if (strncmp(why, "adopt", 5) == 0) caps[n++] = r.c.incumbent.cap_large[1];
    }
    cr_assert_eq(caps[n - 1], 32, "cap %u", caps[n - 1]);
    /* one step at most doubles; the first adoption is one step, a later
     * one of the same move two */
    cr_assert_leq(caps[1], 2 * caps[0] + 2);
    bool leapt = false;
    for (unsigned i = 2; i < n; i++)
        if (caps[i] > 2 * caps[i - 1] || (caps[i] == 32 && caps[i - 1] < 16)) leapt = true;
    cr_assert(leapt, "adopted caps %u -> %u -> %u", caps[0], caps[1], n > 2 ? caps[2] : 0);
    cr_assert_leq(n, 3, "%u adoptions", n - 1);
}

Test(learn_core, a_shrink_that_could_save_less_than_the_margin_is_not_tried) {
    /* 40 KiB blocks, 20 in use, little work per allocation: the caches
     * hold under 1 MiB, worth less than the margin against the smallest
     * heap (4 MiB): halving the caps cannot pay, so it is never on trial */
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload w;
    memset(&w, 0, sizeof w);
    w.ws[0] = 20;
    w.per_window[0] = 8000;
    w.cpu_per_alloc_ns = 300;
    w.refill_ns = 150;
    const unsigned shrink_40k_64k = LEARN_ARM_LARGE_UP + 1;
    for (unsigned i = 0; i < 300; i++) {
        run_windows(&r, &w, 1, &pol);
        cr_assert_neq(r.c.trial, shrink_40k_64k, "window %u: %s on trial", i,
                      learn_arm_name(shrink_40k_64k));
    }
    cr_assert_gt(r.c.trials, 0);
    cr_assert_gt(r.c.incumbent.cap_large[0], r.c.start.cap_large[0], "the cap did not grow");
}

Test(learn_core, misses_spread_over_every_group_grow_every_class_at_once) {
    /* one class in each of the five groups, a quarter of its allocations
     * missing: each group's misses cost 0.8% of the CPU time (below the
     * margin, so no group move may be tried), all five together 4%, more
     * than the memory the larger caps would keep: the move over every
     * class pays, and is the one adopted */
    struct run r;
    struct hak_policy pol;
    start_run(&r, (uint64_t)256 << 20, &pol);
    struct workload w;
    memset(&w, 0, sizeof w);
    const unsigned cls[LEARN_GROUPS] = {0, 4, 8, 12, 16};
    for (unsigned i = 0; i < LEARN_GROUPS; i++) {
        uint32_t held = 3 * pol.cap_large[cls[i]];
        w.ws[cls[i]] = held * 4 / 3;
        w.per_window[cls[i]] = 4000;
    }
    w.cpu_per_alloc_ns = 2000;
    w.refill_ns = 400;
    struct hak_policy first = pol;
    run_windows(&r, &w, 600, &pol);
    for (unsigned g = 0; g < LEARN_GROUPS; g++)
        cr_assert_eq(r.c.arms[LEARN_ARM_LARGE_UP + 2 * g].pulls, 0, "tried %s",
                     learn_arm_name(LEARN_ARM_LARGE_UP + 2 * g));
    for (unsigned i = 0; i < LEARN_GROUPS; i++)
        cr_assert_gt(r.c.incumbent.cap_large[cls[i]], first.cap_large[cls[i]],
                     "class %u: cap %u", cls[i], r.c.incumbent.cap_large[cls[i]]);
    struct learn_obs o;
    observe(&w, &r.c.incumbent, &o);
    cr_assert_eq(o.misses_large, 0);
    /* classes without traffic keep their caps */
    cr_assert_eq(r.c.incumbent.cap_large[1], first.cap_large[1]);
}
