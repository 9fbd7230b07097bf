/*
 * observe.c: the sampling profiler (HAKMEM_PROF) and the rate limit of the
 * verbose event log (issue 8), from outside: observe_helper runs a known
 * pattern under a chosen environment and prints what hak_stats_get says;
 * these tests check that and what hakmem wrote to stderr.
 *  - HAKMEM_PROF=1 fills the categories of the pattern (alloc and free of
 *    every lane built, refill, remote drain, OS map and unmap, purge) and
 *    the report shows a profile; without it, the counts stay zero and the
 *    report has no profile (text) or "prof":null (JSON).
 *  - A burst of OS refusals under HAKMEM_VERBOSE=1 prints at most
 *    HAK_LOG_EVENTS_PER_SEC lines a second; the next line allowed says how
 *    many were suppressed; HAKMEM_QUIET=1 silences them all.
 * No assertion depends on timing: the line bound is derived from the
 * burst's measured length.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hakmem.h"
#include "itest.h"

#define EVENTS_PER_SEC 20 /* HAK_LOG_EVENTS_PER_SEC (lib/internal.h) */

static void skip_if_bench_minimal(void) {
    if (HAK_TEST_BENCH_MINIMAL) cr_skip_test("-Dbench_minimal: options and stats are compiled out");
}

static void run_helper(char *const args[], char *const env[], struct itest_run *r) {
    const char *helper = getenv("HAK_TEST_OBSERVE_HELPER");
    cr_assert_not_null(helper, "HAK_TEST_OBSERVE_HELPER is not set (meson sets it)");
    char *argv[4] = {(char *)helper, args[0], args[1], NULL};
    cr_assert(itest_run(argv, env, 60, r) == 0, "cannot run %s", helper);
    char st[64];
    cr_assert(!r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
              "helper %s: %s; stdout: %s; stderr: %s", args[0], itest_status_str(r, st, sizeof st),
              r->out, r->err);
}

struct prof_line {
    unsigned long long count, avg, p99;
};

/* The helper's "<category> <count> <avg> <p99>" line for category k. */
static struct prof_line prof_of(const struct itest_run *r, int k) {
    char key[64];
    snprintf(key, sizeof key, "%s ", hak_prof_name(k));
    const char *line = r->out;
    while (line && strncmp(line, key, strlen(key)) != 0) {
        line = strchr(line, '\n');
        if (line) line++;
    }
    cr_assert_not_null(line, "no line for %s in: %s", key, r->out);
    struct prof_line p;
    cr_assert(sscanf(line + strlen(key), "%llu %llu %llu", &p.count, &p.avg, &p.p99) == 3);
    return p;
}

Test(prof, fills_every_category_of_a_known_pattern) {
    skip_if_bench_minimal();
    /* minimal: no caches, so huge blocks are unmapped and slabs purged */
    char e1[] = "HAKMEM_PROF=1", e2[] = "HAKMEM_PROF_SAMPLE=0", e3[] = "HAKMEM_STATS=1",
         e4[] = "HAKMEM_MODE=minimal";
    char *env[] = {e1, e2, e3, e4, NULL};
    char *args[] = {"prof", NULL};
    struct itest_run r;
    run_helper(args, env, &r);
    const int rounds = 256; /* observe_helper's ROUNDS */
    for (int lane = HAK_LANE_TINY; lane <= HAK_LANE_HUGE; lane++) {
        if (!hak_lane_enabled(lane)) continue;
        struct prof_line a = prof_of(&r, HAK_PROF_ALLOC_TINY + lane - 1);
        struct prof_line f = prof_of(&r, HAK_PROF_FREE_TINY + lane - 1);
        /* every call timed: at least the pattern's */
        cr_assert(a.count >= (unsigned long long)rounds, "alloc_%s: %llu timed",
                  hak_lane_name(lane), a.count);
        cr_assert(f.count >= (unsigned long long)rounds, "free_%s: %llu timed",
                  hak_lane_name(lane), f.count);
        cr_assert(a.p99 >= a.avg / 100 && a.p99 > 0, "alloc_%s: avg %llu, p99 %llu",
                  hak_lane_name(lane), a.avg, a.p99);
    }
    bool slab_lane = hak_lane_enabled(HAK_LANE_TINY) || hak_lane_enabled(HAK_LANE_POOL);
    if (slab_lane) {
        cr_assert(prof_of(&r, HAK_PROF_REFILL).count > 0, "no refill timed: %s", r.out);
        cr_assert(prof_of(&r, HAK_PROF_REMOTE_DRAIN).count > 0, "no remote drain timed: %s",
                  r.out);
    }
    cr_assert(prof_of(&r, HAK_PROF_OS_MAP).count > 0, "no OS map timed: %s", r.out);
    cr_assert(prof_of(&r, HAK_PROF_OS_UNMAP).count > 0, "no OS unmap timed: %s", r.out);
    cr_assert(prof_of(&r, HAK_PROF_PURGE).count > 0, "no purge timed: %s", r.out);
    /* the report at exit shows the profile, a row per category used */
    cr_assert_not_null(strstr(r.err, "  profile (HAKMEM_PROF=1"), "no profile in: %s", r.err);
    cr_assert_not_null(strstr(r.err, "\n  os_map "), "no os_map row in: %s", r.err);
}

Test(prof, sample_interval_times_one_call_in_two_to_the_k) {
    skip_if_bench_minimal();
    char e1[] = "HAKMEM_PROF=1", e2[] = "HAKMEM_PROF_SAMPLE=3";
    char *env[] = {e1, e2, NULL};
    char *args[] = {"prof", NULL};
    struct itest_run r;
    run_helper(args, env, &r);
    unsigned long long calls = 0, timed = 0;
    cr_assert(sscanf(r.out, "mallocs %llu", &calls) == 1 && calls > 40000, "helper: %s", r.out);
    for (int lane = HAK_LANE_TINY; lane <= HAK_LANE_HUGE; lane++)
        timed += prof_of(&r, HAK_PROF_ALLOC_TINY + lane - 1).count;
    /* one in 8 on average (jittered gaps: the count stays within a few per
     * cent of calls / 8 over this many calls; the loader's own few calls
     * add a handful) */
    cr_assert(timed * 8 >= calls * 8 / 10 && timed * 8 <= calls * 12 / 10,
              "%llu of %llu mallocs timed, expected about one in 8", timed, calls);
    /* and the pattern's 4 sizes in a loop are not aliased away: the huge
     * lane's 256 calls get some */
    if (hak_lane_enabled(HAK_LANE_TINY))
        cr_assert(prof_of(&r, HAK_PROF_ALLOC_HUGE).count > 0, "alloc_huge: none timed");
}

Test(prof, off_leaves_counts_zero_and_report_without_profile) {
    skip_if_bench_minimal();
    char e1[] = "HAKMEM_STATS=1", e2[] = "HAKMEM_MODE=minimal";
    char *env[] = {e1, e2, NULL};
    char *args[] = {"prof", NULL};
    struct itest_run r;
    run_helper(args, env, &r);
    for (int k = 0; k < HAK_PROF_COUNT; k++)
        cr_assert_eq(prof_of(&r, k).count, 0, "%s: timed with HAKMEM_PROF off", hak_prof_name(k));
    cr_assert_not_null(strstr(r.err, "hakmem: statistics"), "no report: %s", r.err);
    cr_assert_null(strstr(r.err, "profile"), "a profile with HAKMEM_PROF off: %s", r.err);

    char e3[] = "HAKMEM_STATS_FORMAT=json";
    char *env2[] = {e1, e3, NULL};
    run_helper(args, env2, &r);
    cr_assert_not_null(strstr(r.err, ",\"prof\":null"), "JSON without \"prof\":null: %s", r.err);
}

/* ---- the rate limit ---------------------------------------------------- */

/* Counts lines of s containing what; adds the N of "(N messages
 * suppressed)" and "N messages suppressed" to *suppressed; *after_sleep
 * gets the suppressed count carried by the last refusal line. */
static int scan_log(const char *s, const char *what, unsigned long long *suppressed,
                    unsigned long long *last_carried) {
    int lines = 0;
    *suppressed = 0;
    *last_carried = 0;
    for (const char *l = s; l && *l;) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), l);
        unsigned long long n = 0;
        const char *paren = strstr(line, " (");
        bool is_event = strstr(line, what) != NULL;
        if (is_event) lines++;
        if (paren && sscanf(paren, " (%llu messages suppressed)", &n) == 1) {
            *suppressed += n;
            if (is_event) *last_carried = n;
        } else if (sscanf(line, "hakmem: %llu messages suppressed", &n) == 1) {
            *suppressed += n;
        }
        l = end ? end + 1 : NULL;
    }
    return lines;
}

Test(ratelimit, burst_of_refusals_prints_at_most_the_limit_and_a_suppressed_count) {
    skip_if_bench_minimal();
    const long burst = 400;
    char e1[] = "HAKMEM_VERBOSE=1";
    char *env[] = {e1, NULL};
    char n[16];
    snprintf(n, sizeof n, "%ld", burst);
    char *args[] = {"refusals", n};
    struct itest_run r;
    run_helper(args, env, &r);
    double secs = -1;
    cr_assert(sscanf(r.out, "burst %lf", &secs) == 1, "helper said: %s", r.out);
    unsigned long long suppressed, carried;
    int lines = scan_log(r.err, "the OS refused", &suppressed, &carried);
    /* the burst spans at most floor(secs) + 2 windows of one second */
    long bound = EVENTS_PER_SEC * ((long)secs + 2);
    cr_assert(lines >= 1 && lines <= bound + 1, "%d refusal lines for a %.3f s burst (bound %ld):\n%s",
              lines, secs, bound, r.err);
    if (bound < burst) {
        cr_assert(lines < burst + 1, "nothing was suppressed:\n%s", r.err);
        /* the refusal after the pause is allowed and says how many went */
        cr_assert(carried > 0, "the line after the burst names no suppressed count:\n%s", r.err);
    }
    /* every refusal is printed or counted as suppressed */
    cr_assert(lines + suppressed >= (unsigned long long)burst + 1,
              "%d lines + %llu suppressed < %ld refusals:\n%s", lines, suppressed, burst + 1,
              r.err);
}

Test(ratelimit, quiet_silences_every_event) {
    skip_if_bench_minimal();
    char e1[] = "HAKMEM_VERBOSE=1", e2[] = "HAKMEM_QUIET=1";
    char *env[] = {e1, e2, NULL};
    char *args[] = {"refusals", "50"};
    struct itest_run r;
    run_helper(args, env, &r);
    cr_assert_str_empty(r.err, "HAKMEM_QUIET=1 printed: %s", r.err);
}

Test(ratelimit, log_file_takes_the_events) {
    skip_if_bench_minimal();
    char path[128], logvar[160];
    snprintf(path, sizeof path, "/tmp/hakmem-itest-events-%ld.txt", (long)getpid());
    unlink(path);
    snprintf(logvar, sizeof logvar, "HAKMEM_LOG_FILE=%s", path);
    char e1[] = "HAKMEM_VERBOSE=1";
    char *env[] = {e1, logvar, NULL};
    char *args[] = {"refusals", "30"};
    struct itest_run r;
    run_helper(args, env, &r);
    cr_assert_str_empty(r.err, "events on stderr despite HAKMEM_LOG_FILE: %s", r.err);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s was not written", path);
    char log[16384];
    size_t len = fread(log, 1, sizeof log - 1, f);
    log[len] = 0;
    fclose(f);
    unlink(path);
    cr_assert_not_null(strstr(log, "hakmem: the OS refused"), "%s holds: %s", path, log);
}
