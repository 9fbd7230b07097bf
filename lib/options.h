/*
 * options.h: every HAKMEM_* run-time variable, declared once in the table
 * of options.c (STYLE.md 11). Values are read without allocating: at the
 * first allocator call (environ may not be set yet) and again in hakmem's
 * constructor. With -Dbench_minimal every look-up folds to the default.
 */
#ifndef HAK_OPTIONS_H
#define HAK_OPTIONS_H

#include "internal.h"

enum hak_opt_id {
    HAK_OPT_MODE,
    HAK_OPT_HELP,
    HAK_OPT_STATS,
    HAK_OPT_STATS_FILE,
    HAK_OPT_STATS_FORMAT,
    HAK_OPT_STATS_INTERVAL_MS,
    HAK_OPT_ON_ERROR,
    HAK_OPT_VERBOSE,
    HAK_OPT_QUIET,
    HAK_OPT_LOG_FILE,
    HAK_OPT_PURGE_DELAY_MS,
    HAK_OPT_PURGE,
    HAK_OPT_PURGE_THREAD,
    HAK_OPT_HUGE_CACHE_CHUNKS,
    HAK_OPT_TINY_SS_CACHE,
    HAK_OPT_POOL_SEG_CACHE,
    HAK_OPT_CAP_MID,
    HAK_OPT_CAP_LARGE,
    HAK_OPT_WMAX_LARGE,
    HAK_OPT_ACE_CACHE_CHUNKS,
    HAK_OPT_BIGCACHE_MB,
    HAK_OPT_LEARN,
    HAK_OPT_LEARN_WINDOW_MS,
    HAK_OPT_BUDGET_MB,
    HAK_OPT_TARGET_HIT_MID,
    HAK_OPT_TARGET_HIT_LARGE,
    HAK_OPT_SITE_PROFILE,
    HAK_OPT_SITE_SAMPLE,
    HAK_OPT_THP,
    HAK_OPT_SS_PREFAULT,
    HAK_OPT_NUMA,
    HAK_OPT_PROF,
    HAK_OPT_PROF_SAMPLE,
    HAK_OPT_TINY_SS_MAX_MB,
    HAK_OPT_SS_TIER_DOWN_THRESHOLD,
    HAK_OPT_SS_TIER_UP_THRESHOLD,
    HAK_OPT_POOL_TCACHE_KB,
    HAK_OPT_TINY_TCACHE_KB,
    HAK_OPT_COUNT
};

enum hak_opt_type {
    HAK_OPT_BOOL,   /* 0 or 1 */
    HAK_OPT_INT,    /* an integer in [min, max] */
    HAK_OPT_ENUM,   /* one of choices ("a|b|c"), stored as its index */
    HAK_OPT_FILE,   /* a file name; ignored when AT_SECURE */
};

/* Values of HAKMEM_MODE, HAKMEM_ON_ERROR and HAKMEM_PURGE. */
enum {
    HAK_MODE_BALANCED = 0,
    HAK_MODE_MINIMAL = 1,
    HAK_MODE_FAST = 2,
    HAK_MODE_LEARNING = 3,
    HAK_MODE_RESEARCH = 4
};
enum { HAK_STATS_TEXT = 0, HAK_STATS_JSON = 1 };
enum { HAK_ON_ERROR_ABORT = 0, HAK_ON_ERROR_WARN = 1 };
enum { HAK_PURGE_DONTNEED = 0, HAK_PURGE_FREE = 1 };
/* Values of HAKMEM_THP and HAKMEM_SS_PREFAULT (lib/os_policy.c). */
enum { HAK_THP_OFF = 0, HAK_THP_AUTO = 1, HAK_THP_ON = 2 };
enum { HAK_PREFAULT_OFF = 0, HAK_PREFAULT_POPULATE = 1, HAK_PREFAULT_TOUCH = 2 };

struct hak_opt_desc {
    const char *name;    /* "HAKMEM_..." */
    enum hak_opt_type type;
    long long def;       /* default (enum: index into choices) */
    long long min, max;  /* HAK_OPT_INT range */
    const char *choices; /* HAK_OPT_ENUM: "a|b|c" */
    const char *help;    /* one line */
};

extern HAK_HIDDEN const struct hak_opt_desc options_table[HAK_OPT_COUNT];
extern HAK_HIDDEN long long options_value[HAK_OPT_COUNT];
extern HAK_HIDDEN const char *options_string[HAK_OPT_COUNT]; /* HAK_OPT_FILE values or NULL */

/* The value of option id (its default in -Dbench_minimal builds). */
static inline long long hak_opt(enum hak_opt_id id) {
    return HAK_BENCH_MINIMAL ? options_table[id].def : options_value[id];
}

/* Sets every option to its default. Cannot fail, never allocates. */
void options_defaults(void);
/* Reads the environment (if the C library has set it up): first
 * HAKMEM_MODE, whose group of settings replaces the defaults, then every
 * other variable, which wins over its mode. Malformed values are reported
 * once each and keep the mode's value or the default. */
void options_read_env(void);

/* Writes the value of option i as text into out (an enum's choice name, a
 * file option's path or "(unset)"); returns whether it differs from the
 * default. */
bool options_value_text(int i, char *out, size_t cap);

/* Prints every variable with its value, default, range and help
 * (HAKMEM_HELP=1). */
void options_print_help(void);

#endif /* HAK_OPTIONS_H */
