/*
 * options.c: owns the table of HAKMEM_* variables and their parsing. No
 * locks: options are written during initialisation (first call, then the
 * constructor) and only read afterwards.
 */
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "os.h"
#include "stats.h"

extern char **environ;

const struct hak_opt_desc options_table[HAK_OPT_COUNT] = {
    [HAK_OPT_MODE] = {"HAKMEM_MODE", HAK_OPT_ENUM, HAK_MODE_BALANCED, 0, 0,
                      "balanced|minimal|fast|learning|research",
                      "a group of settings: balanced (the defaults), minimal (smallest "
                      "memory: no caches, immediate purges), fast (larger caches, slower "
                      "purges), learning (the learner on), research (learner, stats report "
                      "and verbose log); a variable set explicitly wins over its mode"},
    [HAK_OPT_HELP] = {"HAKMEM_HELP", HAK_OPT_BOOL, 0, 0, 1, NULL,
                      "print every HAKMEM_* variable with its value, default, range and "
                      "help to stderr at start-up, then run the program"},
    [HAK_OPT_STATS] = {"HAKMEM_STATS", HAK_OPT_BOOL, 0, 0, 1, NULL,
                       "print a per-lane statistics report to stderr at exit"},
    [HAK_OPT_STATS_FILE] = {"HAKMEM_STATS_FILE", HAK_OPT_FILE, 0, 0, 0, NULL,
                            "append the statistics report to this file (ignored in "
                            "set-user-ID programs)"},
    [HAK_OPT_STATS_FORMAT] = {"HAKMEM_STATS_FORMAT", HAK_OPT_ENUM, HAK_STATS_TEXT, 0, 0,
                              "text|json", "the report as a table or as one JSON object"},
    [HAK_OPT_STATS_INTERVAL_MS] = {"HAKMEM_STATS_INTERVAL_MS", HAK_OPT_INT, 0, 0, 86400000, NULL,
                                   "also write the report every this many milliseconds, for "
                                   "long-running servers (0: only at exit)"},
    [HAK_OPT_ON_ERROR] = {"HAKMEM_ON_ERROR", HAK_OPT_ENUM, HAK_ON_ERROR_ABORT, 0, 0, "abort|warn",
                          "on heap misuse (bad free, double free): abort after the message, "
                          "or warn and ignore the call"},
    [HAK_OPT_VERBOSE] = {"HAKMEM_VERBOSE", HAK_OPT_BOOL, 0, 0, 1, NULL,
                         "log the allocator's decisions (mappings, purges, options) to stderr"},
    [HAK_OPT_QUIET] = {"HAKMEM_QUIET", HAK_OPT_BOOL, 0, 0, 1, NULL,
                       "print no warnings (misuse messages are still printed before an abort)"},
    [HAK_OPT_LOG_FILE] = {"HAKMEM_LOG_FILE", HAK_OPT_FILE, 0, 0, 0, NULL,
                          "append messages and reports to this file instead of stderr "
                          "(ignored in set-user-ID programs)"},
    [HAK_OPT_PURGE_DELAY_MS] = {"HAKMEM_PURGE_DELAY_MS", HAK_OPT_INT, 100, 0, 60000, NULL,
                                "milliseconds freed memory stays mapped before it is purged "
                                "(0: purge on the next allocator call)"},
    [HAK_OPT_PURGE] = {"HAKMEM_PURGE", HAK_OPT_ENUM, HAK_PURGE_DONTNEED, 0, 0, "dontneed|free",
                       "how freed pages go back: MADV_DONTNEED (RSS drops at once) or "
                       "MADV_FREE (dropped when the kernel needs memory)"},
    [HAK_OPT_PURGE_THREAD] = {"HAKMEM_PURGE_THREAD", HAK_OPT_BOOL, 1, 0, 1, NULL,
                              "start a background thread while purges are pending, so that "
                              "they happen even when the program only takes fast paths"},
    [HAK_OPT_HUGE_CACHE_CHUNKS] = {"HAKMEM_HUGE_CACHE_CHUNKS", HAK_OPT_INT, 2, 0, 1024, NULL,
                                   "empty 2 MiB chunks of the huge lane kept mapped (purged) "
                                   "for reuse; beyond this they are unmapped"},
    [HAK_OPT_TINY_SS_CACHE] = {"HAKMEM_TINY_SS_CACHE", HAK_OPT_INT, 8, 0, 1024, NULL,
                               "empty tiny SuperSlabs (2 MiB) kept for reuse, purged after "
                               "the purge delay; beyond this they are unmapped"},
    [HAK_OPT_POOL_SEG_CACHE] = {"HAKMEM_POOL_SEG_CACHE", HAK_OPT_INT, 8, 0, 1024, NULL,
                                "empty pool segments (2 MiB) kept for reuse, purged after "
                                "the purge delay; beyond this they are unmapped"},
    [HAK_OPT_CAP_MID] = {"HAKMEM_CAP_MID", HAK_OPT_INT, 1, 0, 64, NULL,
                         "pool lane: empty slabs a thread keeps per class before giving "
                         "them back (the policy's starting cap_mid)"},
    [HAK_OPT_CAP_LARGE] = {"HAKMEM_CAP_LARGE", HAK_OPT_INT, -1, -1, 32, NULL,
                           "ACE lane: free blocks a thread caches per class; -1: as many as "
                           "fit in 256 KiB, at least one (the policy's starting cap_large)"},
    [HAK_OPT_WMAX_LARGE] = {"HAKMEM_WMAX_LARGE", HAK_OPT_INT, 125, 100, 200, NULL,
                            "ACE lane: a request may take a cached block of any class up to "
                            "this percentage of its size"},
    [HAK_OPT_ACE_CACHE_CHUNKS] = {"HAKMEM_ACE_CACHE_CHUNKS", HAK_OPT_INT, 4, 0, 1024, NULL,
                                  "empty 2 MiB chunks of the ACE lane kept mapped (purged) for "
                                  "reuse; beyond this they are unmapped"},
    [HAK_OPT_BIGCACHE_MB] = {"HAKMEM_BIGCACHE_MB", HAK_OPT_INT, 64, 0, 65536, NULL,
                             "MiB of freed big blocks (2 MiB and up) kept mapped for reuse "
                             "for the purge delay (the policy's starting bigcache_mb)"},
    [HAK_OPT_LEARN] = {"HAKMEM_LEARN", HAK_OPT_BOOL, 0, 0, 1, NULL,
                       "run the learner: a background thread that tunes caches, W_MAX and "
                       "refill batches through the policy snapshot (-Dlearn builds)"},
    [HAK_OPT_LEARN_WINDOW_MS] = {"HAKMEM_LEARN_WINDOW_MS", HAK_OPT_INT, 20, 5, 60000, NULL,
                                 "learner: a window closes after this many milliseconds or "
                                 "16384 allocations, whichever comes first"},
    [HAK_OPT_BUDGET_MB] = {"HAKMEM_BUDGET_MB", HAK_OPT_INT, 256, 1, 65536, NULL,
                           "learner: MiB of cached memory no policy it publishes may exceed"},
    [HAK_OPT_TARGET_HIT_MID] = {"HAKMEM_TARGET_HIT_MID", HAK_OPT_INT, 95, 1, 100, NULL,
                                "learner: pool-lane cache hit rate (percent) beyond which "
                                "larger caches earn nothing"},
    [HAK_OPT_TARGET_HIT_LARGE] = {"HAKMEM_TARGET_HIT_LARGE", HAK_OPT_INT, 95, 1, 100, NULL,
                                  "learner: ACE-lane cache hit rate (percent) beyond which "
                                  "larger caches earn nothing"},
    [HAK_OPT_SITE_PROFILE] = {"HAKMEM_SITE_PROFILE", HAK_OPT_BOOL, 0, 0, 1, NULL,
                              "malloc samples its caller's address into the call-site table; "
                              "the stats report lists the top sites"},
    [HAK_OPT_SITE_SAMPLE] = {"HAKMEM_SITE_SAMPLE", HAK_OPT_INT, 10, 0, 30, NULL,
                             "with HAKMEM_SITE_PROFILE=1, one malloc in 2^this many is "
                             "recorded (0: every one)"},
    [HAK_OPT_THP] = {"HAKMEM_THP", HAK_OPT_ENUM, HAK_THP_AUTO, 0, 0, "off|auto|on",
                     "transparent huge pages: off forbids them (MADV_NOHUGEPAGE), auto advises "
                     "them for blocks of 2 MiB and more where the kernel allows, on for "
                     "blocks from 1 MiB whatever the kernel says"},
    [HAK_OPT_SS_PREFAULT] = {"HAKMEM_SS_PREFAULT", HAK_OPT_INT, 0, 0, 2, NULL,
                             "fault in new segments and big blocks when mapped (only the part "
                             "kept, never the alignment slack): 0 off, 1 populate, 2 touch"},
    [HAK_OPT_NUMA] = {"HAKMEM_NUMA", HAK_OPT_BOOL, 0, 0, 1, NULL,
                      "bind new segments and big blocks to the NUMA node of the thread that "
                      "maps them (mbind), and reuse cached big blocks on their own node"},
    [HAK_OPT_PROF] = {"HAKMEM_PROF", HAK_OPT_BOOL, 0, 0, 1, NULL,
                      "sampling profiler: time malloc and free (per lane), refills, remote "
                      "drains, OS maps/unmaps and purges; average and p99 in the stats report"},
    [HAK_OPT_PROF_SAMPLE] = {"HAKMEM_PROF_SAMPLE", HAK_OPT_INT, 10, 0, 30, NULL,
                             "with HAKMEM_PROF=1, one malloc and one free in 2^this many per "
                             "thread are timed (0: every one); slow-path events always are"},
    [HAK_OPT_TINY_SS_MAX_MB] = {"HAKMEM_TINY_SS_MAX_MB", HAK_OPT_INT, 0, 0, 1048576, NULL,
                                "cap on the MiB of tiny SuperSlabs mapped (cached ones "
                                "included): beyond it tiny allocations fail with ENOMEM "
                                "(0: no cap)"},
    [HAK_OPT_SS_TIER_DOWN_THRESHOLD] = {"HAKMEM_SS_TIER_DOWN_THRESHOLD", HAK_OPT_INT, 25, 0,
                                        100, NULL,
                                        "a HOT slab segment with fewer than this percent of "
                                        "its slabs in use becomes DRAINING: new slabs come "
                                        "from it only when no HOT segment has room (0: never)"},
    [HAK_OPT_SS_TIER_UP_THRESHOLD] = {"HAKMEM_SS_TIER_UP_THRESHOLD", HAK_OPT_INT, 50, 0, 100,
                                      NULL,
                                      "a DRAINING slab segment with more than this percent of "
                                      "its slabs in use is HOT again"},
    [HAK_OPT_POOL_TCACHE_KB] = {"HAKMEM_POOL_TCACHE_KB", HAK_OPT_INT, 64, 0, 1024, NULL,
                                "pool lane: KiB of freed blocks a thread keeps per class for "
                                "its next mallocs of the class (1 to 16 blocks; 0: none)"},
    [HAK_OPT_TINY_TCACHE_KB] = {"HAKMEM_TINY_TCACHE_KB", HAK_OPT_INT, 8, 0, 1024, NULL,
                                "tiny lane: KiB of freed blocks a thread keeps per class for "
                                "its next mallocs of the class (1 to 128 blocks; 0: none)"},
};
_Static_assert(sizeof options_table / sizeof options_table[0] == HAK_OPT_COUNT,
               "one table entry per option");

long long options_value[HAK_OPT_COUNT];
const char *options_string[HAK_OPT_COUNT];
static uint64_t options_warned; /* bit per option: a warning was printed */

void options_defaults(void) {
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        options_value[i] = options_table[i].def;
        options_string[i] = NULL;
    }
}

/* Parses a decimal integer (optional sign); returns 0 or EINVAL/ERANGE. */
static int parse_int(const char *s, long long *out) {
    bool neg = false;
    unsigned long long v = 0;
    if (*s == '-' || *s == '+') neg = (*s++ == '-');
    if (*s == 0) return EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return EINVAL;
        if (v > (unsigned long long)INT64_MAX / 10) return ERANGE;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > (unsigned long long)INT64_MAX) return ERANGE;
    *out = neg ? -(long long)v : (long long)v;
    return 0;
}

/* Index of s in "a|b|c", or -1. */
static int find_choice(const char *choices, const char *s) {
    size_t n = strlen(s);
    int idx = 0;
    for (const char *c = choices; *c; idx++) {
        const char *end = strchr(c, '|');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0) return idx;
        if (!end) break;
        c = end + 1;
    }
    return -1;
}

static void warn_once(int id, const char *value, const char *why) {
    if (options_warned & ((uint64_t)1 << id)) return;
    options_warned |= (uint64_t)1 << id;
    const struct hak_opt_desc *d = &options_table[id];
    switch (d->type) {
    case HAK_OPT_INT:
        hak_log("%s=%s: %s; expected an integer in [%lld, %lld]; keeping %lld", d->name, value,
                why, d->min, d->max, d->def);
        break;
    case HAK_OPT_BOOL:
        hak_log("%s=%s: %s; expected 0 or 1; keeping %lld", d->name, value, why, d->def);
        break;
    case HAK_OPT_ENUM:
        hak_log("%s=%s: %s; expected one of %s; keeping the default", d->name, value, why,
                d->choices);
        break;
    case HAK_OPT_FILE:
        hak_log("%s=%s: %s; ignored", d->name, value, why);
        break;
    }
}

static void set_option(int id, const char *value) {
    const struct hak_opt_desc *d = &options_table[id];
    long long v;
    switch (d->type) {
    case HAK_OPT_BOOL:
    case HAK_OPT_INT: {
        long long lo = d->type == HAK_OPT_BOOL ? 0 : d->min;
        long long hi = d->type == HAK_OPT_BOOL ? 1 : d->max;
        int err = parse_int(value, &v);
        if (err) {
            warn_once(id, value, "not a number");
            return;
        }
        if (v < lo || v > hi) {
            warn_once(id, value, "out of range");
            return;
        }
        options_value[id] = v;
        return;
    }
    case HAK_OPT_ENUM: {
        int c = find_choice(d->choices, value);
        if (c < 0) {
            warn_once(id, value, "unknown value");
            return;
        }
        options_value[id] = c;
        return;
    }
    case HAK_OPT_FILE:
        if (os_is_secure()) {
            warn_once(id, value, "set-user-ID program");
            return;
        }
        if (*value) options_string[id] = value;
        return;
    }
}

/* The modes: each a list of (option, value) replacing the defaults. */
struct mode_setting {
    int opt;
    long long value;
};
static const struct mode_setting mode_minimal[] = {
    {HAK_OPT_PURGE_DELAY_MS, 0}, {HAK_OPT_HUGE_CACHE_CHUNKS, 0}, {HAK_OPT_TINY_SS_CACHE, 0},
    {HAK_OPT_POOL_SEG_CACHE, 0}, {HAK_OPT_ACE_CACHE_CHUNKS, 0},  {HAK_OPT_CAP_MID, 0},
    {HAK_OPT_CAP_LARGE, 0},      {HAK_OPT_BIGCACHE_MB, 0},       {HAK_OPT_WMAX_LARGE, 100},
    {HAK_OPT_POOL_TCACHE_KB, 0}, {HAK_OPT_TINY_TCACHE_KB, 0},
};
static const struct mode_setting mode_fast[] = {
    {HAK_OPT_PURGE_DELAY_MS, 1000}, {HAK_OPT_HUGE_CACHE_CHUNKS, 16}, {HAK_OPT_TINY_SS_CACHE, 32},
    {HAK_OPT_POOL_SEG_CACHE, 32},   {HAK_OPT_ACE_CACHE_CHUNKS, 16},  {HAK_OPT_CAP_MID, 4},
    {HAK_OPT_CAP_LARGE, 8},         {HAK_OPT_BIGCACHE_MB, 256},      {HAK_OPT_WMAX_LARGE, 150},
};
static const struct mode_setting mode_learning[] = {{HAK_OPT_LEARN, 1}};
static const struct mode_setting mode_research[] = {
    {HAK_OPT_LEARN, 1}, {HAK_OPT_STATS, 1}, {HAK_OPT_VERBOSE, 1}};

/* Index of the environment entry e's variable in the table, or -1. */
static int option_of(const char *e, const char **value) {
    if (strncmp(e, "HAKMEM_", 7) != 0) return -1;
    const char *eq = strchr(e, '=');
    if (!eq) return -1;
    size_t nlen = (size_t)(eq - e);
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        const char *name = options_table[i].name;
        if (strlen(name) == nlen && strncmp(name, e, nlen) == 0) {
            *value = eq + 1;
            return i;
        }
    }
    return -1;
}

void options_read_env(void) {
    if (HAK_BENCH_MINIMAL) return;
    char **env = environ;
    if (env == NULL) return;
    const char *value;
    /* First where and whether messages go, so that a bad variable anywhere
     * in the environment (HAKMEM_MODE included) is reported by their rules. */
    for (char **e = env; *e; e++) {
        int id = option_of(*e, &value);
        if (id >= 0 && (options_table[id].type == HAK_OPT_FILE || id == HAK_OPT_QUIET))
            set_option(id, value);
    }
    for (char **e = env; *e; e++) {
        if (option_of(*e, &value) != HAK_OPT_MODE) continue;
        set_option(HAK_OPT_MODE, value);
        const struct mode_setting *m = NULL;
        size_t n = 0;
        if (options_value[HAK_OPT_MODE] == HAK_MODE_MINIMAL) {
            m = mode_minimal;
            n = sizeof mode_minimal / sizeof mode_minimal[0];
        } else if (options_value[HAK_OPT_MODE] == HAK_MODE_FAST) {
            m = mode_fast;
            n = sizeof mode_fast / sizeof mode_fast[0];
        } else if (options_value[HAK_OPT_MODE] == HAK_MODE_LEARNING) {
            m = mode_learning;
            n = sizeof mode_learning / sizeof mode_learning[0];
        } else if (options_value[HAK_OPT_MODE] == HAK_MODE_RESEARCH) {
            m = mode_research;
            n = sizeof mode_research / sizeof mode_research[0];
        }
        for (size_t i = 0; i < n; i++) options_value[m[i].opt] = m[i].value;
    }
    for (char **e = env; *e; e++) {
        int id = option_of(*e, &value);
        if (id >= 0 && id != HAK_OPT_MODE && options_table[id].type != HAK_OPT_FILE &&
            id != HAK_OPT_QUIET)
            set_option(id, value);
    }
}

/* Writes the choice at index idx of "a|b|c" into out. */
static void choice_name(const char *choices, long long idx, char *out, size_t cap) {
    const char *c = choices;
    for (long long k = 0; k < idx && strchr(c, '|'); k++) c = strchr(c, '|') + 1;
    size_t len = strchr(c, '|') ? (size_t)(strchr(c, '|') - c) : strlen(c);
    snprintf(out, cap, "%.*s", (int)len, c);
}

bool options_value_text(int i, char *out, size_t cap) {
    const struct hak_opt_desc *d = &options_table[i];
    switch (d->type) {
    case HAK_OPT_FILE:
        snprintf(out, cap, "%s", options_string[i] ? options_string[i] : "(unset)");
        return options_string[i] != NULL;
    case HAK_OPT_ENUM:
        choice_name(d->choices, options_value[i], out, cap);
        break;
    default:
        snprintf(out, cap, "%lld", options_value[i]);
    }
    return options_value[i] != d->def;
}

void options_print_help(void) {
    char line[512];
    int n = snprintf(line, sizeof line, "hakmem: %-26s %-10s %-10s %-22s %s\n", "variable",
                     "value", "default", "range", "what it does");
    hak_log_raw(line, (size_t)n);
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        const struct hak_opt_desc *d = &options_table[i];
        char val[64], def[64], range[64];
        options_value_text(i, val, sizeof val);
        switch (d->type) {
        case HAK_OPT_ENUM:
            choice_name(d->choices, d->def, def, sizeof def);
            snprintf(range, sizeof range, "%s", d->choices);
            break;
        case HAK_OPT_FILE:
            snprintf(def, sizeof def, "(unset)");
            snprintf(range, sizeof range, "a path");
            break;
        default:
            snprintf(def, sizeof def, "%lld", d->def);
            snprintf(range, sizeof range, "%lld .. %lld", d->type == HAK_OPT_BOOL ? 0 : d->min,
                     d->type == HAK_OPT_BOOL ? 1 : d->max);
        }
        n = snprintf(line, sizeof line, "hakmem: %-26s %-10s %-10s %-22s %s\n", d->name, val,
                     def, range, d->help);
        if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
        hak_log_raw(line, (size_t)n);
    }
}
