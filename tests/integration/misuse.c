/*
 * misuse.c: bad pointers given to free/realloc/malloc_usable_size (DESIGN.md
 * 5). Each case runs misuse_helper in a child process and checks, from
 * outside:
 *  - default (HAKMEM_ON_ERROR=abort): exactly one line
 *      hakmem: <call>(): <what> <pointer>
 *    on stderr, then death by SIGABRT (never SIGSEGV: hakmem must not touch
 *    memory it does not own);
 *  - HAKMEM_ON_ERROR=warn: one warning line starting the same way, the call
 *    ignored, the process alive and exiting 0.
 * Every case runs through the hak_* names, and in -Dinterpose=true builds
 * through the standard names too. The wording of the report is checked
 * exactly where the huge lane or the dispatcher makes it (foreign pointers,
 * pointers into huge blocks); other lanes word theirs their own way.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hakmem.h"
#include "itest.h"

enum expect {
    FOREIGN,  /* "invalid pointer (not allocated by hakmem)" */
    INTERIOR, /* "invalid pointer (inside a block)" (huge lane) */
    ANY_TEXT, /* a double free: any one-line report naming call and pointer */
};

static void run_helper(const char *api, const char *kase, char *const env[], struct itest_run *r) {
    const char *helper = getenv("HAK_TEST_MISUSE_HELPER");
    cr_assert_not_null(helper, "HAK_TEST_MISUSE_HELPER is not set (meson sets it)");
    char *argv[] = {(char *)helper, (char *)api, (char *)kase, NULL};
    cr_assert(itest_run(argv, env, 20, r) == 0, "cannot run %s", helper);
}

/* The expected report (without newline) for a case, from the helper's
 * "ptr=... lane=..." line; for ANY_TEXT only the prefix. */
static void expected_line(const struct itest_run *r, const char *call, enum expect e, char *want,
                          size_t cap, char *ptr, size_t ptrcap, bool *exact) {
    int lane = -1;
    char ptrbuf[64];
    cr_assert(sscanf(r->out, "ptr=%63s lane=%d", ptrbuf, &lane) == 2,
              "the helper did not announce its pointer; stdout: \"%s\", stderr: \"%s\"", r->out,
              r->err);
    snprintf(ptr, ptrcap, "%s", ptrbuf);
    *exact = true;
    switch (e) {
    case FOREIGN:
        snprintf(want, cap, "hakmem: %s(): invalid pointer (not allocated by hakmem) %s", call,
                 ptr);
        break;
    case INTERIOR:
        /* the huge lane's wording; another lane may word it its own way */
        *exact = lane == HAK_LANE_HUGE;
        if (*exact)
            snprintf(want, cap, "hakmem: %s(): invalid pointer (inside a block) %s", call, ptr);
        else
            snprintf(want, cap, "hakmem: %s(): ", call);
        break;
    case ANY_TEXT:
        *exact = false;
        snprintf(want, cap, "hakmem: %s(): ", call);
        break;
    }
}

static void check_api(const char *api, const char *kase, const char *call, enum expect e,
                      bool warn) {
    char on_error[] = "HAKMEM_ON_ERROR=warn";
    /* No purger thread: starting it (pthread_create allocates) between the
     * two frees of a double-free case could hand the freed block out again,
     * making the second free legitimate. */
    char no_purger[] = "HAKMEM_PURGE_THREAD=0";
    char *env_warn[] = {on_error, no_purger, NULL};
    char *env_abort[] = {no_purger, NULL};
    struct itest_run r;
    run_helper(api, kase, warn ? env_warn : env_abort, &r);
    char st[64], want[256], ptr[64];
    itest_status_str(&r, st, sizeof st);
    cr_assert(!r.timed_out, "%s %s: the helper hung", api, kase);
    if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 77)
        cr_skip_test("%s %s: not applicable to this build (no size reaches the huge lane's page "
                     "runs)",
                     api, kase);
    bool exact;
    expected_line(&r, call, e, want, sizeof want, ptr, sizeof ptr, &exact);

    /* exactly one line on stderr */
    size_t len = r.err_len;
    cr_assert(len > 0 && r.err[len - 1] == '\n' && strchr(r.err, '\n') == r.err + len - 1,
              "%s %s: expected one line on stderr, got \"%s\" (%s)", api, kase, r.err, st);
    r.err[len - 1] = 0; /* drop the newline */
    if (!warn) {
        cr_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT,
                  "%s %s: expected death by SIGABRT, got %s; stderr \"%s\"", api, kase, st, r.err);
        if (exact) {
            cr_assert_str_eq(r.err, want, "%s %s: stderr \"%s\", expected \"%s\"", api, kase,
                             r.err, want);
        } else {
            cr_assert(strncmp(r.err, want, strlen(want)) == 0, "%s %s: \"%s\" should start \"%s\"",
                      api, kase, r.err, want);
            size_t pl = strlen(ptr);
            cr_assert(strlen(r.err) > pl && strcmp(r.err + strlen(r.err) - pl, ptr) == 0 &&
                          r.err[strlen(r.err) - pl - 1] == ' ',
                      "%s %s: \"%s\" should end with the pointer %s", api, kase, r.err, ptr);
        }
    } else {
        cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
                  "%s %s with HAKMEM_ON_ERROR=warn: expected exit 0, got %s; stdout \"%s\", "
                  "stderr \"%s\"",
                  api, kase, st, r.out, r.err);
        cr_assert(strstr(r.out, "survived"), "%s %s: the helper did not finish: \"%s\"", api,
                  kase, r.out);
        cr_assert(strncmp(r.err, want, strlen(want)) == 0,
                  "%s %s with HAKMEM_ON_ERROR=warn: warning \"%s\" should start \"%s\"", api, kase,
                  r.err, want);
        if (!exact) {
            char tail[80];
            snprintf(tail, sizeof tail, " %s", ptr);
            cr_assert(strstr(r.err, tail), "%s %s: \"%s\" should name the pointer %s", api, kase,
                      r.err, ptr);
        }
    }
}

static void skip_if_no_options(void) {
    if (HAK_TEST_BENCH_MINIMAL) cr_skip_test("-Dbench_minimal: HAKMEM_* variables are compiled out");
}

static void check_case(const char *kase, const char *call, enum expect e, bool warn) {
    if (warn) skip_if_no_options();
    check_api("hak", kase, call, e, warn);
    if (HAK_TEST_INTERPOSE) check_api("std", kase, call, e, warn);
}

/* One test per mode for each case. */
#define MISUSE_CASE(name, call, expect)                                                      \
    Test(misuse_abort, name, .timeout = 60) { check_case(#name, call, expect, false); }      \
    Test(misuse_warn, name, .timeout = 60) { check_case(#name, call, expect, true); }

/* pointers hakmem never mapped */
MISUSE_CASE(free_stack, "free", FOREIGN)
MISUSE_CASE(free_static, "free", FOREIGN)
MISUSE_CASE(free_own_mmap, "free", FOREIGN)
MISUSE_CASE(free_low_address, "free", FOREIGN)
MISUSE_CASE(free_kernel_address, "free", FOREIGN)
MISUSE_CASE(realloc_stack, "realloc", FOREIGN)
MISUSE_CASE(realloc_static, "realloc", FOREIGN)
MISUSE_CASE(usable_size_stack, "malloc_usable_size", FOREIGN)
MISUSE_CASE(usable_size_own_mmap, "malloc_usable_size", FOREIGN)

/* pointers inside a huge block (malloc(4 MiB), an own mapping) */
MISUSE_CASE(free_huge_interior_page, "free", INTERIOR)
MISUSE_CASE(free_huge_interior_byte, "free", INTERIOR)
MISUSE_CASE(free_huge_tail_chunk, "free", INTERIOR)
MISUSE_CASE(free_huge_header, "free", INTERIOR)
MISUSE_CASE(realloc_huge_interior_page, "realloc", INTERIOR)
MISUSE_CASE(realloc_huge_interior_byte, "realloc", INTERIOR)
MISUSE_CASE(usable_size_huge_interior_page, "malloc_usable_size", INTERIOR)
MISUSE_CASE(usable_size_huge_interior_byte, "malloc_usable_size", INTERIOR)

/* pointers inside smaller blocks, and into the header of their chunk: tiny
 * (64 B), mid (8 KiB), large (100000 B), and a page run of the huge lane */
MISUSE_CASE(free_tiny_interior, "free", INTERIOR)
MISUSE_CASE(free_mid_interior, "free", INTERIOR)
MISUSE_CASE(free_large_interior, "free", INTERIOR)
MISUSE_CASE(free_run_interior, "free", INTERIOR)
MISUSE_CASE(free_tiny_chunk_header, "free", INTERIOR)
MISUSE_CASE(free_mid_chunk_header, "free", INTERIOR)
MISUSE_CASE(free_large_chunk_header, "free", INTERIOR)
MISUSE_CASE(free_run_chunk_header, "free", INTERIOR)
MISUSE_CASE(realloc_tiny_interior, "realloc", INTERIOR)
MISUSE_CASE(realloc_mid_interior, "realloc", INTERIOR)
MISUSE_CASE(realloc_large_interior, "realloc", INTERIOR)
MISUSE_CASE(realloc_run_interior, "realloc", INTERIOR)
MISUSE_CASE(usable_size_tiny_interior, "malloc_usable_size", INTERIOR)
MISUSE_CASE(usable_size_mid_interior, "malloc_usable_size", INTERIOR)
MISUSE_CASE(usable_size_large_interior, "malloc_usable_size", INTERIOR)
MISUSE_CASE(usable_size_run_interior, "malloc_usable_size", INTERIOR)

/* double frees */
MISUSE_CASE(double_free_huge, "free", ANY_TEXT)
MISUSE_CASE(double_free_tiny, "free", ANY_TEXT)
MISUSE_CASE(double_free_mid, "free", ANY_TEXT)
MISUSE_CASE(double_free_large, "free", ANY_TEXT)
MISUSE_CASE(double_free_run, "free", ANY_TEXT)

/* realloc and malloc_usable_size of a block already freed, in every lane */
MISUSE_CASE(realloc_freed_tiny, "realloc", ANY_TEXT)
MISUSE_CASE(realloc_freed_mid, "realloc", ANY_TEXT)
MISUSE_CASE(realloc_freed_large, "realloc", ANY_TEXT)
MISUSE_CASE(realloc_freed_run, "realloc", ANY_TEXT)
MISUSE_CASE(realloc_freed_huge, "realloc", ANY_TEXT)
MISUSE_CASE(usable_size_freed_tiny, "malloc_usable_size", ANY_TEXT)
MISUSE_CASE(usable_size_freed_mid, "malloc_usable_size", ANY_TEXT)
MISUSE_CASE(usable_size_freed_large, "malloc_usable_size", ANY_TEXT)
MISUSE_CASE(usable_size_freed_run, "malloc_usable_size", ANY_TEXT)
MISUSE_CASE(usable_size_freed_huge, "malloc_usable_size", ANY_TEXT)

/* Every bad alignment and every huge or wrapping size at each lane's block
 * size, through every allocation call: the documented NULL+errno (or
 * return value), in a child that must neither crash nor hang. */
static void check_edges(const char *api, const char *kase) {
    struct itest_run r;
    char *env[] = {NULL};
    run_helper(api, kase, env, &r);
    char st[64];
    itest_status_str(&r, st, sizeof st);
    cr_assert(!r.timed_out, "%s %s: the helper hung", api, kase);
    if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 77) cr_skip_test("%s %s: not applicable", api, kase);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && strstr(r.out, "survived"),
              "%s %s: %s; stdout \"%s\", stderr \"%s\"", api, kase, st, r.out, r.err);
    cr_assert_str_empty(r.err, "%s %s: printed \"%s\"", api, kase, r.err);
}

#define EDGE_CASE(name)                                                          \
    Test(misuse_edges, name, .timeout = 60) {                                    \
        check_edges("hak", #name);                                               \
        if (HAK_TEST_INTERPOSE) check_edges("std", #name);                       \
    }
EDGE_CASE(edge_tiny)
EDGE_CASE(edge_mid)
EDGE_CASE(edge_large)
EDGE_CASE(edge_run)
EDGE_CASE(edge_huge)

/* HAKMEM_QUIET silences the warning, never the message before an abort. */
Test(misuse_quiet, quiet_warn_mode_ignores_silently) {
    skip_if_no_options();
    char on_error[] = "HAKMEM_ON_ERROR=warn", quiet[] = "HAKMEM_QUIET=1";
    char *env[] = {on_error, quiet, NULL};
    struct itest_run r;
    run_helper("hak", "free_stack", env, &r);
    char st[64];
    itest_status_str(&r, st, sizeof st);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "got %s; stderr \"%s\"", st,
              r.err);
    cr_assert_str_empty(r.err, "HAKMEM_QUIET=1 printed \"%s\"", r.err);
}

Test(misuse_quiet, quiet_abort_mode_still_prints_the_message) {
    char quiet[] = "HAKMEM_QUIET=1";
    char *env[] = {quiet, NULL};
    struct itest_run r;
    run_helper("hak", "free_stack", env, &r);
    char st[64];
    itest_status_str(&r, st, sizeof st);
    cr_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "got %s", st);
    cr_assert(strncmp(r.err, "hakmem: free(): invalid pointer", 31) == 0,
              "the message before the abort is missing: \"%s\"", r.err);
}
