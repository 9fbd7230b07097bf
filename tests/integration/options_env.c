/*
 * options_env.c: the HAKMEM_* table of lib/options (DESIGN.md 7): every
 * variable's default, a valid value taken, invalid values (not a number,
 * out of range, unknown choice) warned about in one line and the default
 * kept; docs/ENV_VARS.md agreeing with the table; HAKMEM_LOG_FILE taking
 * the warnings and the report.
 *
 * Linked with the static library to reach options_table, options_value,
 * options_defaults() and options_read_env(). Each Test runs in its own
 * process (Criterion), so the "warn once per variable" state starts fresh.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "options.h"

/* ---- helpers ---------------------------------------------------------- */

static void skip_if_bench_minimal(void) {
    if (HAK_BENCH_MINIMAL) cr_skip_test("-Dbench_minimal: options are compiled out");
}

/* Clean environment, every option at its default. */
static void fresh(void) {
    itest_clear_hakmem_env();
    options_defaults();
}

/* Captures what is written to fd 2 (hakmem writes with write(2)). */
struct capture {
    int saved;
    FILE *f;
};

static void capture_start(struct capture *c) {
    fflush(stderr);
    c->f = tmpfile();
    cr_assert_not_null(c->f, "tmpfile: %s", strerror(errno));
    c->saved = dup(STDERR_FILENO);
    cr_assert(c->saved >= 0);
    cr_assert(dup2(fileno(c->f), STDERR_FILENO) == STDERR_FILENO);
}

static void capture_end(struct capture *c, char *buf, size_t cap) {
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    rewind(c->f);
    size_t n = fread(buf, 1, cap - 1, c->f);
    buf[n] = 0;
    fclose(c->f);
}

/* Sets NAME=value, reads the environment, unsets it; returns what hakmem
 * printed in out. */
static void read_with(int id, const char *value, char *out, size_t cap) {
    const char *name = options_table[id].name;
    cr_assert(setenv(name, value, 1) == 0);
    struct capture c;
    capture_start(&c);
    options_read_env();
    capture_end(&c, out, cap);
    unsetenv(name);
}

/* The choice of index idx in "a|b|c", into buf. */
static const char *choice_name(const char *choices, long long idx, char *buf, size_t cap) {
    const char *c = choices;
    for (long long i = 0; i < idx && c; i++) {
        c = strchr(c, '|');
        if (c) c++;
    }
    if (!c) return NULL;
    size_t len = strcspn(c, "|");
    if (len >= cap) len = cap - 1;
    memcpy(buf, c, len);
    buf[len] = 0;
    return buf;
}

static int choice_count(const char *choices) {
    int n = 1;
    for (const char *c = choices; *c; c++) n += *c == '|';
    return n;
}

/* Checks that out is exactly one warning line about option id set to
 * value, naming the accepted range or choices, and that the default is
 * kept. */
static void assert_one_warning(int id, const char *value, const char *out) {
    const struct hak_opt_desc *d = &options_table[id];
    char prefix[256];
    snprintf(prefix, sizeof prefix, "hakmem: %s=%s: ", d->name, value);
    cr_assert(strncmp(out, prefix, strlen(prefix)) == 0,
              "%s=%s: expected one warning starting \"%s\", got \"%s\"", d->name, value, prefix,
              out);
    size_t len = strlen(out);
    cr_assert(len > 0 && out[len - 1] == '\n' && strchr(out, '\n') == out + len - 1,
              "%s=%s: expected exactly one line, got \"%s\"", d->name, value, out);
    const char *why = out + strlen(prefix);
    char num[32];
    switch (d->type) {
    case HAK_OPT_INT:
        snprintf(num, sizeof num, "%lld", d->min);
        cr_assert(strstr(why, num), "%s: the warning does not name the minimum %s: \"%s\"",
                  d->name, num, out);
        snprintf(num, sizeof num, "%lld", d->max);
        cr_assert(strstr(why, num), "%s: the warning does not name the maximum %s: \"%s\"",
                  d->name, num, out);
        break;
    case HAK_OPT_BOOL:
        cr_assert(strstr(why, "0") && strstr(why, "1"),
                  "%s: the warning does not name the accepted values 0 and 1: \"%s\"", d->name,
                  out);
        break;
    case HAK_OPT_ENUM:
        for (int i = 0; i < choice_count(d->choices); i++) {
            char ch[64];
            choice_name(d->choices, i, ch, sizeof ch);
            cr_assert(strstr(why, ch), "%s: the warning does not name the choice \"%s\": \"%s\"",
                      d->name, ch, out);
        }
        break;
    case HAK_OPT_FILE:
        break;
    }
    cr_assert(options_value[id] == d->def, "%s=%s: value %lld, expected the default %lld kept",
              d->name, value, options_value[id], d->def);
}

/* Sets every numeric (bool or int) option to value(id) in turn and checks
 * the warning; value returns NULL to leave an option out. */
static void check_numeric_invalid(const char *(*value)(int id, char *buf, size_t cap)) {
    skip_if_bench_minimal();
    fresh();
    int tested = 0;
    for (int id = 0; id < HAK_OPT_COUNT; id++) {
        enum hak_opt_type t = options_table[id].type;
        if (t != HAK_OPT_INT && t != HAK_OPT_BOOL) continue;
        char vbuf[64];
        const char *v = value(id, vbuf, sizeof vbuf);
        if (!v) continue;
        char out[1024];
        read_with(id, v, out, sizeof out);
        assert_one_warning(id, v, out);
        tested++;
    }
    cr_assert(tested > 0, "no option was tested");
}

/* ---- the table itself -------------------------------------------------- */

Test(options, table_entries_are_well_formed) {
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        const struct hak_opt_desc *d = &options_table[i];
        cr_assert_not_null(d->name, "option %d has no name", i);
        cr_assert(strncmp(d->name, "HAKMEM_", 7) == 0, "%s does not start with HAKMEM_", d->name);
        cr_assert(d->help && *d->help, "%s has no help line", d->name);
        for (int j = 0; j < i; j++)
            cr_assert(strcmp(d->name, options_table[j].name) != 0, "%s twice in the table",
                      d->name);
        switch (d->type) {
        case HAK_OPT_BOOL:
            cr_assert(d->def == 0 || d->def == 1, "%s: bool default %lld", d->name, d->def);
            break;
        case HAK_OPT_INT:
            cr_assert(d->min <= d->def && d->def <= d->max, "%s: default %lld outside [%lld, %lld]",
                      d->name, d->def, d->min, d->max);
            break;
        case HAK_OPT_ENUM:
            cr_assert_not_null(d->choices, "%s: enum without choices", d->name);
            cr_assert(d->def >= 0 && d->def < choice_count(d->choices),
                      "%s: default index %lld outside its choices", d->name, d->def);
            break;
        case HAK_OPT_FILE:
            break;
        }
    }
}

Test(options, every_variable_starts_at_its_default) {
    fresh();
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        cr_assert(options_value[i] == options_table[i].def, "%s: value %lld, default %lld",
                  options_table[i].name, options_value[i], options_table[i].def);
        cr_assert_null(options_string[i], "%s: a string value without being set",
                       options_table[i].name);
    }
    /* an environment without HAKMEM_ variables changes nothing and prints nothing */
    struct capture c;
    char out[1024];
    capture_start(&c);
    options_read_env();
    capture_end(&c, out, sizeof out);
    cr_assert_str_empty(out, "unexpected output: \"%s\"", out);
    for (int i = 0; i < HAK_OPT_COUNT; i++)
        cr_assert(options_value[i] == options_table[i].def, "%s changed without being set",
                  options_table[i].name);
}

Test(options, valid_values_are_taken_silently) {
    skip_if_bench_minimal();
    fresh();
    for (int id = 0; id < HAK_OPT_COUNT; id++) {
        const struct hak_opt_desc *d = &options_table[id];
        char out[1024], v[64];
        switch (d->type) {
        case HAK_OPT_BOOL:
        case HAK_OPT_INT: {
            long long lo = d->type == HAK_OPT_BOOL ? 0 : d->min;
            long long hi = d->type == HAK_OPT_BOOL ? 1 : d->max;
            long long cand[3] = {lo, hi, lo + (hi - lo) / 2};
            for (int k = 0; k < 3; k++) {
                snprintf(v, sizeof v, "%lld", cand[k]);
                read_with(id, v, out, sizeof out);
                cr_assert_str_empty(out, "%s=%s: unexpected output \"%s\"", d->name, v, out);
                cr_assert(options_value[id] == cand[k], "%s=%s: value %lld", d->name, v,
                          options_value[id]);
            }
            break;
        }
        case HAK_OPT_ENUM:
            for (int k = 0; k < choice_count(d->choices); k++) {
                choice_name(d->choices, k, v, sizeof v);
                read_with(id, v, out, sizeof out);
                cr_assert_str_empty(out, "%s=%s: unexpected output \"%s\"", d->name, v, out);
                cr_assert(options_value[id] == k, "%s=%s: value %lld, expected index %d",
                          d->name, v, options_value[id], k);
            }
            break;
        case HAK_OPT_FILE: {
            snprintf(v, sizeof v, "/tmp/hakmem-itest-%ld.log", (long)getpid());
            cr_assert(setenv(d->name, v, 1) == 0);
            struct capture c;
            capture_start(&c);
            options_read_env();
            capture_end(&c, out, sizeof out);
            cr_assert_str_empty(out, "%s=%s: unexpected output \"%s\"", d->name, v, out);
            cr_assert_not_null(options_string[id], "%s=%s not taken", d->name, v);
            cr_assert_str_eq(options_string[id], v, "%s: value \"%s\"", d->name,
                             options_string[id]);
            /* options_string points into the environment: keep it set */
            break;
        }
        }
    }
}

/* ---- invalid values ---------------------------------------------------- */

static const char *not_a_number(int id, char *buf, size_t cap) {
    (void)id;
    snprintf(buf, cap, "abc");
    return buf;
}
static const char *trailing_garbage(int id, char *buf, size_t cap) {
    (void)id;
    snprintf(buf, cap, "1ms");
    return buf;
}
static const char *empty_value(int id, char *buf, size_t cap) {
    (void)id;
    (void)cap;
    buf[0] = 0;
    return buf;
}
static const char *overflowing(int id, char *buf, size_t cap) {
    (void)id;
    snprintf(buf, cap, "99999999999999999999999");
    return buf;
}
static const char *above_max(int id, char *buf, size_t cap) {
    const struct hak_opt_desc *d = &options_table[id];
    long long hi = d->type == HAK_OPT_BOOL ? 1 : d->max;
    if (hi == INT64_MAX) return NULL;
    snprintf(buf, cap, "%lld", hi + 1);
    return buf;
}
static const char *below_min(int id, char *buf, size_t cap) {
    const struct hak_opt_desc *d = &options_table[id];
    long long lo = d->type == HAK_OPT_BOOL ? 0 : d->min;
    if (lo == INT64_MIN) return NULL;
    snprintf(buf, cap, "%lld", lo - 1);
    return buf;
}

Test(options, non_number_warns_once_and_keeps_default) { check_numeric_invalid(not_a_number); }

Test(options, number_with_trailing_text_warns_once_and_keeps_default) {
    check_numeric_invalid(trailing_garbage);
}

Test(options, empty_value_warns_once_and_keeps_default) { check_numeric_invalid(empty_value); }

Test(options, overflowing_number_warns_once_and_keeps_default) {
    check_numeric_invalid(overflowing);
}

Test(options, value_above_range_warns_once_and_keeps_default) { check_numeric_invalid(above_max); }

Test(options, value_below_range_warns_once_and_keeps_default) { check_numeric_invalid(below_min); }

Test(options, unknown_choice_warns_naming_the_choices_and_keeps_default) {
    skip_if_bench_minimal();
    fresh();
    int tested = 0;
    for (int id = 0; id < HAK_OPT_COUNT; id++) {
        if (options_table[id].type != HAK_OPT_ENUM) continue;
        char out[1024];
        read_with(id, "no-such-choice", out, sizeof out);
        assert_one_warning(id, "no-such-choice", out);
        tested++;
    }
    cr_assert(tested > 0, "the table has no enum option");
}

Test(options, second_bad_value_of_a_variable_is_not_warned_again) {
    skip_if_bench_minimal();
    fresh();
    char out[1024];
    read_with(HAK_OPT_PURGE_DELAY_MS, "abc", out, sizeof out);
    assert_one_warning(HAK_OPT_PURGE_DELAY_MS, "abc", out);
    /* the constructor reads the environment a second time */
    read_with(HAK_OPT_PURGE_DELAY_MS, "abc", out, sizeof out);
    cr_assert_str_empty(out, "warned twice: \"%s\"", out);
}

/* ---- docs/ENV_VARS.md -------------------------------------------------- */

struct doc_row {
    char name[64];
    char def[64];
};

/* Copies s[0..len) trimmed of spaces and of one pair of surrounding
 * backticks into out. */
static void cell_text(const char *s, size_t len, char *out, size_t cap) {
    while (len > 0 && (*s == ' ' || *s == '\t')) s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    if (len >= 2 && s[0] == '`' && s[len - 1] == '`') s++, len -= 2;
    if (len >= cap) len = cap - 1;
    memcpy(out, s, len);
    out[len] = 0;
}

/* Reads the rows of the doc's tables whose first cell is `HAKMEM_...`. */
static int read_doc(struct doc_row *rows, int max) {
    const char *path = getenv("HAK_TEST_ENV_VARS_MD");
    cr_assert_not_null(path, "HAK_TEST_ENV_VARS_MD is not set (meson sets it)");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *s = line;
        while (*s == ' ') s++;
        if (*s != '|') continue;
        /* the first three cells: name, type, default */
        const char *cell[4];
        size_t clen[3];
        const char *p = s + 1;
        int k = 0;
        for (; k < 3; k++) {
            const char *end = p;
            while (*end && *end != '|' && *end != '\n') end += (*end == '\\' && end[1]) ? 2 : 1;
            if (*end != '|') break;
            cell[k] = p;
            clen[k] = (size_t)(end - p);
            p = end + 1;
        }
        if (k < 3) continue;
        char name[sizeof rows[0].name];
        cell_text(cell[0], clen[0], name, sizeof name);
        if (strncmp(name, "HAKMEM_", 7) != 0) continue;
        cr_assert(n < max, "too many rows in %s", path);
        memcpy(rows[n].name, name, sizeof name);
        cell_text(cell[2], clen[2], rows[n].def, sizeof rows[n].def);
        n++;
    }
    fclose(f);
    return n;
}

/* The default of option id as the doc writes it. */
static const char *rendered_default(int id, char *buf, size_t cap) {
    const struct hak_opt_desc *d = &options_table[id];
    switch (d->type) {
    case HAK_OPT_BOOL:
    case HAK_OPT_INT:
        snprintf(buf, cap, "%lld", d->def);
        return buf;
    case HAK_OPT_ENUM:
        return choice_name(d->choices, d->def, buf, cap);
    case HAK_OPT_FILE:
        snprintf(buf, cap, "(unset)");
        return buf;
    }
    return NULL;
}

Test(options_doc, every_variable_is_documented_once_with_its_default) {
    struct doc_row rows[256];
    int n = read_doc(rows, 256);
    char problems[4096] = "";
    size_t len = 0;
    for (int id = 0; id < HAK_OPT_COUNT; id++) {
        const char *name = options_table[id].name;
        char want[64];
        rendered_default(id, want, sizeof want);
        int found = 0;
        for (int r = 0; r < n; r++) {
            if (strcmp(rows[r].name, name) != 0) continue;
            found++;
            if (strcmp(rows[r].def, want) != 0 && len < sizeof problems)
                len += (size_t)snprintf(problems + len, sizeof problems - len,
                                        "\n  %s: the doc says default \"%s\", the table \"%s\"",
                                        name, rows[r].def, want);
        }
        if (found != 1 && len < sizeof problems)
            len += (size_t)snprintf(problems + len, sizeof problems - len,
                                    "\n  %s: %d rows in docs/ENV_VARS.md (expected 1)", name,
                                    found);
    }
    cr_assert(len == 0, "docs/ENV_VARS.md disagrees with options_table:%s", problems);
}

Test(options_doc, doc_lists_no_variable_the_table_lacks) {
    struct doc_row rows[256];
    int n = read_doc(rows, 256);
    cr_assert(n > 0, "no `HAKMEM_...` rows found in docs/ENV_VARS.md");
    char problems[4096] = "";
    size_t len = 0;
    for (int r = 0; r < n; r++) {
        bool known = false;
        for (int id = 0; id < HAK_OPT_COUNT; id++)
            known |= strcmp(rows[r].name, options_table[id].name) == 0;
        if (!known && len < sizeof problems)
            len += (size_t)snprintf(problems + len, sizeof problems - len, " %s", rows[r].name);
    }
    cr_assert(len == 0, "docs/ENV_VARS.md lists variables that options_table lacks:%s", problems);
}

/* ---- HAKMEM_LOG_FILE ---------------------------------------------------- */

/* Runs the probe program (one hak_malloc/hak_free) with env; returns the
 * log file's content in log. */
static void run_probe(char *const env[], const char *logpath, struct itest_run *r, char *log,
                      size_t cap) {
    const char *probe = getenv("HAK_TEST_PROBE");
    cr_assert_not_null(probe, "HAK_TEST_PROBE is not set (meson sets it)");
    char *argv[] = {(char *)probe, NULL};
    cr_assert(itest_run(argv, env, 20, r) == 0, "cannot run %s", probe);
    char st[64];
    cr_assert(!r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
              "probe: %s; stderr: %s", itest_status_str(r, st, sizeof st), r->err);
    log[0] = 0;
    FILE *f = fopen(logpath, "r");
    if (f) {
        size_t n = fread(log, 1, cap - 1, f);
        log[n] = 0;
        fclose(f);
    }
    unlink(logpath);
}

static void check_warning_goes_to_log_file(bool log_file_first) {
    skip_if_bench_minimal();
    char path[128], logvar[160];
    snprintf(path, sizeof path, "/tmp/hakmem-itest-log-%ld-%d.txt", (long)getpid(),
             (int)log_file_first);
    unlink(path);
    snprintf(logvar, sizeof logvar, "HAKMEM_LOG_FILE=%s", path);
    char bad[] = "HAKMEM_PURGE_DELAY_MS=abc";
    char *env_a[] = {logvar, bad, NULL};
    char *env_b[] = {bad, logvar, NULL};
    struct itest_run r;
    char log[4096];
    run_probe(log_file_first ? env_a : env_b, path, &r, log, sizeof log);
    cr_assert_str_empty(r.err, "the warning went to stderr, not to %s: \"%s\"", path, r.err);
    const char *prefix = "hakmem: HAKMEM_PURGE_DELAY_MS=abc: ";
    cr_assert(strncmp(log, prefix, strlen(prefix)) == 0,
              "%s should start with \"%s\", holds \"%s\"", path, prefix, log);
    size_t len = strlen(log);
    cr_assert(log[len - 1] == '\n' && strchr(log, '\n') == log + len - 1,
              "%s should hold one line, holds \"%s\"", path, log);
}

Test(options_log_file, warning_goes_to_the_file_named_before_the_bad_variable) {
    check_warning_goes_to_log_file(true);
}

Test(options_log_file, warning_goes_to_the_file_named_after_the_bad_variable) {
    check_warning_goes_to_log_file(false);
}

Test(options_log_file, stats_report_goes_to_the_file) {
    skip_if_bench_minimal();
    char path[128], logvar[160];
    snprintf(path, sizeof path, "/tmp/hakmem-itest-report-%ld.txt", (long)getpid());
    unlink(path);
    snprintf(logvar, sizeof logvar, "HAKMEM_LOG_FILE=%s", path);
    char stats[] = "HAKMEM_STATS=1";
    char *env[] = {logvar, stats, NULL};
    struct itest_run r;
    char log[8192];
    run_probe(env, path, &r, log, sizeof log);
    cr_assert_str_empty(r.err, "output on stderr despite HAKMEM_LOG_FILE: \"%s\"", r.err);
    cr_assert(strncmp(log, "hakmem: statistics\n", 19) == 0, "%s holds \"%s\"", path, log);
}

/* A whole process reads the environment twice (first call, constructor):
 * still one warning per bad variable. */
Test(options_process, bad_value_is_warned_once_per_process) {
    skip_if_bench_minimal();
    char bad[] = "HAKMEM_PURGE_DELAY_MS=abc", bad2[] = "HAKMEM_ON_ERROR=maybe";
    char *env[] = {bad, bad2, NULL};
    const char *probe = getenv("HAK_TEST_PROBE");
    cr_assert_not_null(probe, "HAK_TEST_PROBE is not set (meson sets it)");
    char *argv[] = {(char *)probe, NULL};
    struct itest_run r;
    cr_assert(itest_run(argv, env, 20, &r) == 0, "cannot run %s", probe);
    char st[64];
    cr_assert(!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "probe: %s",
              itest_status_str(&r, st, sizeof st));
    const char *l1 = "hakmem: HAKMEM_PURGE_DELAY_MS=abc: ";
    const char *l2 = "hakmem: HAKMEM_ON_ERROR=maybe: ";
    const char *second = strchr(r.err, '\n');
    cr_assert(second && strncmp(r.err, l1, strlen(l1)) == 0 &&
                  strncmp(second + 1, l2, strlen(l2)) == 0,
              "expected one warning for each bad variable, in order; stderr: \"%s\"", r.err);
    const char *third = strchr(second + 1, '\n');
    cr_assert(third && third[1] == 0, "expected exactly two lines; stderr: \"%s\"", r.err);
}

/* HAKMEM_QUIET=1 silences a bad variable's warning wherever it stands in
 * the environment. */
static void check_quiet_silences(bool quiet_first) {
    skip_if_bench_minimal();
    char bad[] = "HAKMEM_PURGE_DELAY_MS=abc", quiet[] = "HAKMEM_QUIET=1";
    char *env_a[] = {quiet, bad, NULL};
    char *env_b[] = {bad, quiet, NULL};
    const char *probe = getenv("HAK_TEST_PROBE");
    cr_assert_not_null(probe, "HAK_TEST_PROBE is not set (meson sets it)");
    char *argv[] = {(char *)probe, NULL};
    struct itest_run r;
    cr_assert(itest_run(argv, quiet_first ? env_a : env_b, 20, &r) == 0, "cannot run %s", probe);
    char st[64];
    cr_assert(!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "probe: %s",
              itest_status_str(&r, st, sizeof st));
    cr_assert_str_empty(r.err, "HAKMEM_QUIET=1 did not silence the warning: \"%s\"", r.err);
}

Test(options_process, quiet_set_before_a_bad_variable_silences_its_warning) {
    check_quiet_silences(true);
}

Test(options_process, quiet_set_after_a_bad_variable_silences_its_warning) {
    check_quiet_silences(false);
}

/* ---- HAKMEM_HELP --------------------------------------------------------- */

/* HAKMEM_HELP=1 prints one row per variable of the table, with its value
 * and default, and the program runs on. */
Test(options_process, help_lists_every_variable_of_the_table) {
    skip_if_bench_minimal();
    const char *probe = getenv("HAK_TEST_PROBE");
    cr_assert_not_null(probe, "HAK_TEST_PROBE is not set (meson sets it)");
    char help[] = "HAKMEM_HELP=1", delay[] = "HAKMEM_PURGE_DELAY_MS=7";
    char *env[] = {help, delay, NULL};
    char *argv[] = {(char *)probe, NULL};
    struct itest_run r;
    cr_assert(itest_run(argv, env, 20, &r) == 0, "cannot run %s", probe);
    char st[64];
    cr_assert(!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
              "the program did not run on after the help: %s", itest_status_str(&r, st, sizeof st));
    for (int id = 0; id < HAK_OPT_COUNT; id++) {
        const struct hak_opt_desc *d = &options_table[id];
        char row[96];
        snprintf(row, sizeof row, "hakmem: %s ", d->name);
        const char *line = strstr(r.err, row);
        cr_assert_not_null(line, "HAKMEM_HELP lists no row for %s:\n%s", d->name, r.err);
        const char *end = strchr(line, '\n');
        cr_assert_not_null(end, "the row of %s is not a line", d->name);
        /* the row holds the help text, or its start where the row is cut */
        char start[24];
        snprintf(start, sizeof start, "%.20s", d->help);
        cr_assert(memmem(line, (size_t)(end - line), start, strlen(start)) != NULL,
                  "the row of %s lacks its help text \"%s\": %.*s", d->name, start,
                  (int)(end - line), line);
    }
    const char *row = strstr(r.err, "hakmem: HAKMEM_PURGE_DELAY_MS ");
    cr_assert_not_null(row);
    int value = -1, def = -1;
    cr_assert(sscanf(row, "hakmem: HAKMEM_PURGE_DELAY_MS %d %d", &value, &def) == 2 &&
                  value == 7 && def == options_table[HAK_OPT_PURGE_DELAY_MS].def,
              "HAKMEM_PURGE_DELAY_MS row: expected value 7 and the default: %.120s", row);
}

/* ---- modes and overrides ----------------------------------------------- */

/* HAKMEM_MODE=minimal sets its group; a variable set explicitly wins over
 * it, wherever it stands in the environment. */
static void check_mode_minimal_override(bool mode_first) {
    skip_if_bench_minimal();
    fresh();
    if (mode_first) {
        cr_assert(setenv("HAKMEM_MODE", "minimal", 1) == 0);
        cr_assert(setenv("HAKMEM_TINY_SS_CACHE", "5", 1) == 0);
    } else {
        cr_assert(setenv("HAKMEM_TINY_SS_CACHE", "5", 1) == 0);
        cr_assert(setenv("HAKMEM_MODE", "minimal", 1) == 0);
    }
    options_read_env();
    cr_assert_eq(options_value[HAK_OPT_MODE], HAK_MODE_MINIMAL);
    cr_assert_eq(options_value[HAK_OPT_TINY_SS_CACHE], 5, "the explicit variable lost: %lld",
                 options_value[HAK_OPT_TINY_SS_CACHE]);
    /* the rest of the group holds */
    cr_assert_eq(options_value[HAK_OPT_PURGE_DELAY_MS], 0);
    cr_assert_eq(options_value[HAK_OPT_POOL_SEG_CACHE], 0);
    cr_assert_eq(options_value[HAK_OPT_BIGCACHE_MB], 0);
    cr_assert_eq(options_value[HAK_OPT_WMAX_LARGE], 100);
    /* and what the mode does not name keeps its default */
    cr_assert_eq(options_value[HAK_OPT_LEARN], options_table[HAK_OPT_LEARN].def);
    cr_assert_eq(options_value[HAK_OPT_PROF], 0);
}

Test(options, mode_minimal_set_first_loses_to_an_explicit_variable) {
    check_mode_minimal_override(true);
}

Test(options, mode_minimal_set_last_loses_to_an_explicit_variable) {
    check_mode_minimal_override(false);
}

/* research turns the learner, the report and the verbose log on; an
 * explicit HAKMEM_VERBOSE=0 turns the log back off. */
Test(options, mode_research_with_verbose_off) {
    skip_if_bench_minimal();
    fresh();
    cr_assert(setenv("HAKMEM_MODE", "research", 1) == 0);
    cr_assert(setenv("HAKMEM_VERBOSE", "0", 1) == 0);
    options_read_env();
    cr_assert_eq(options_value[HAK_OPT_LEARN], 1);
    cr_assert_eq(options_value[HAK_OPT_STATS], 1);
    cr_assert_eq(options_value[HAK_OPT_VERBOSE], 0);
}
