/* bench_common.h - helpers shared by every benchmark program in bench/.
 *
 * Owns: the timer, the PRNG (splitmix64 seeding an xorshift64* stream), the
 * command-line parser, block fill/check helpers, thread helpers and the one
 * output line every program ends with:
 *
 *     ops/s=<float> checksum=0x<hex> ops=<int> secs=<float>
 *
 * Rules every benchmark follows (bench/compare.py relies on them):
 *  - only malloc/free/realloc/calloc from libc, so any allocator can be
 *    preloaded;
 *  - the checksum is a function of the arguments only: it sums values that
 *    were written into blocks and read back, never pointer values, and
 *    threads combine their parts by addition so the order in which threads
 *    run does not matter;
 *  - `ops` counts allocator calls (malloc, calloc, realloc and free each
 *    count one) unless the program's help says otherwise; it is
 *    deterministic too;
 *  - `secs` is the wall time of the measured part (after argument parsing,
 *    before the final report).
 *
 * Each program is one .c file that includes this header; the helpers are
 * `static inline` so that a program that does not use one gets no
 * unused-function warning.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

/* clock_gettime, pthread barriers and sched_yield need POSIX 2008 when the
 * program is built with -std=c11 on its own (Meson adds -D_GNU_SOURCE). */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------
 * Time
 * ---------------------------------------------------------------------- */

/* Seconds on the monotonic clock. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------
 * PRNG: splitmix64 for seeding, xorshift64* for the stream. Deterministic on
 * every platform; never rand().
 * ---------------------------------------------------------------------- */

typedef struct bench_rng {
    uint64_t s; /* xorshift64* state; never 0 */
} bench_rng;

static inline uint64_t bench_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Seeds a stream; `stream` separates the streams of threads or phases that
 * share one --seed. */
static inline void bench_rng_seed(bench_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * UINT64_C(0xd1b54a32d192ed03));
    r->s = bench_splitmix64(&x);
    if (r->s == 0)
        r->s = UINT64_C(0x2545f4914f6cdd1d);
}

static inline uint64_t bench_rng_next(bench_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

/* Uniform in [0, n), n <= 2^32 (multiply-shift; the tiny bias is
 * irrelevant here and the result is deterministic). */
static inline uint64_t bench_rng_below(bench_rng *r, uint64_t n)
{
    return ((bench_rng_next(r) >> 32) * n) >> 32;
}

/* Uniform in [lo, hi], hi - lo < 2^32. */
static inline uint64_t bench_rng_range(bench_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + bench_rng_below(r, hi - lo + 1);
}

/* Uniform in [lo, hi] for ranges of any width (large block sizes). */
static inline uint64_t bench_rng_range64(bench_rng *r, uint64_t lo, uint64_t hi)
{
    uint64_t span = hi - lo + 1;
    return span == 0 ? bench_rng_next(r) : lo + bench_rng_next(r) % span;
}

/* True with probability pct/100. */
static inline int bench_rng_percent(bench_rng *r, unsigned pct)
{
    return bench_rng_below(r, 100) < pct;
}

/* ------------------------------------------------------------------------
 * Command line: --name VALUE or --name=VALUE; numbers take K/M/G suffixes
 * (powers of 1024), e.g. --size 64K. --help prints the table.
 * ---------------------------------------------------------------------- */

enum bench_opt_kind {
    BENCH_OPT_U64, /* value points at a uint64_t */
    BENCH_OPT_STR  /* value points at a const char * */
};

typedef struct bench_opt {
    const char *name;         /* without the leading "--" */
    enum bench_opt_kind kind;
    void *value;              /* holds the default on entry */
    const char *help;
} bench_opt;

static inline void bench_usage(FILE *f, const char *prog, const char *what,
                               const bench_opt *opts, size_t n)
{
    fprintf(f, "usage: %s [options]\n%s\n\noptions (default in brackets):\n",
            prog, what);
    for (size_t i = 0; i < n; i++) {
        if (opts[i].kind == BENCH_OPT_U64)
            fprintf(f, "  --%-10s %s [%" PRIu64 "]\n", opts[i].name,
                    opts[i].help, *(const uint64_t *)opts[i].value);
        else
            fprintf(f, "  --%-10s %s [%s]\n", opts[i].name, opts[i].help,
                    *(const char *const *)opts[i].value);
    }
    fprintf(f, "\nLast line printed: ops/s=<float> checksum=0x<hex> "
               "ops=<int> secs=<float>\n");
}

static inline int bench_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || end == s || *s == '-')
        return -1;
    uint64_t mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = UINT64_C(1) << 10; end++; break;
    case 'm': case 'M': mul = UINT64_C(1) << 20; end++; break;
    case 'g': case 'G': mul = UINT64_C(1) << 30; end++; break;
    default: break;
    }
    if (*end != '\0' || (v != 0 && (uint64_t)v > UINT64_MAX / mul))
        return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

/* Parses argv into opts; exits 0 after --help and 2 on a bad argument. */
static inline void bench_parse_args(int argc, char **argv, const char *what,
                                    bench_opt *opts, size_t n)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            bench_usage(stdout, argv[0], what, opts, n);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0)
            goto bad;
        arg += 2;
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        bench_opt *o = NULL;
        for (size_t k = 0; k < n; k++) {
            if (strlen(opts[k].name) == len &&
                strncmp(opts[k].name, arg, len) == 0) {
                o = &opts[k];
                break;
            }
        }
        if (o == NULL)
            goto bad;
        const char *val;
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                goto bad;
            val = argv[++i];
        }
        if (o->kind == BENCH_OPT_U64) {
            if (bench_parse_u64(val, (uint64_t *)o->value) != 0) {
                fprintf(stderr, "%s: --%s: not a number: '%s'\n", argv[0],
                        o->name, val);
                exit(2);
            }
        } else {
            *(const char **)o->value = val;
        }
        continue;
    bad:
        fprintf(stderr, "%s: bad argument '%s' (try --help)\n", argv[0],
                argv[i]);
        exit(2);
    }
}

#define BENCH_NOPTS(a) (sizeof(a) / sizeof((a)[0]))

/* Exits with a message when a parameter is out of range. */
static inline void bench_require(int ok, const char *msg)
{
    if (!ok) {
        fprintf(stderr, "bench: invalid arguments: %s\n", msg);
        exit(2);
    }
}

/* ------------------------------------------------------------------------
 * Output
 * ---------------------------------------------------------------------- */

static inline void bench_report(uint64_t ops, double secs, uint64_t checksum)
{
    double rate = secs > 0 ? (double)ops / secs : 0.0;
    printf("ops/s=%.1f checksum=0x%016" PRIx64 " ops=%" PRIu64 " secs=%.6f\n",
           rate, checksum, ops, secs);
    fflush(stdout);
}

/* ------------------------------------------------------------------------
 * Allocation helpers
 * ---------------------------------------------------------------------- */

/* A volatile sink: storing each new block's address here makes it escape,
 * so the compiler can never drop a malloc/free pair (bench/meson.build also
 * passes -fno-builtin-malloc and friends). The address itself never enters
 * a checksum. Thread-local, so that threads do not share (and bounce) its
 * cache line. */
static _Thread_local void *volatile bench_sink;

static inline void bench_escape(void *p)
{
    bench_sink = p;
}

static inline void bench_oom(size_t size)
{
    fprintf(stderr, "bench: allocation of %zu bytes failed\n", size);
    exit(1);
}

/* malloc that escapes its result and exits on failure. */
static inline void *bench_malloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL && size != 0)
        bench_oom(size);
    bench_escape(p);
    return p;
}

static inline void *bench_realloc(void *old, size_t size)
{
    void *p = realloc(old, size);
    if (p == NULL && size != 0)
        bench_oom(size);
    bench_escape(p);
    return p;
}

/* Folds a 64-bit value into something that depends on all its bits. */
static inline uint64_t bench_mix(uint64_t v)
{
    v ^= v >> 33;
    v *= UINT64_C(0xff51afd7ed558ccd);
    v ^= v >> 33;
    return v;
}

/* The page stride of bench_touch: one word per 4 KiB, whatever the real page
 * size, so results do not depend on the machine. */
#define BENCH_TOUCH_STRIDE 4096u

/* Writes `tag`-derived words at the start of a block of n bytes, at every
 * 4 KiB after it and in its last 8 bytes: cheap for small blocks, and it
 * faults in every page of a large one. The stride words stop 16 bytes
 * before the end so that they never overlap the last word. */
static inline void bench_touch(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = p;
    if (n < sizeof(uint64_t)) {
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)(tag + i);
        return;
    }
    for (size_t off = 0; off + 2 * sizeof(uint64_t) <= n;
         off += BENCH_TOUCH_STRIDE) {
        uint64_t v = tag + off;
        memcpy(b + off, &v, sizeof v);
    }
    uint64_t last = ~tag;
    memcpy(b + n - sizeof last, &last, sizeof last);
}

/* Reads back what bench_touch wrote and returns a checksum of it. If the
 * block was corrupted (or not preserved by realloc) the sum differs, and so
 * does the checksum the runner compares across allocators. */
static inline uint64_t bench_check(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t sum = 0;
    if (n < sizeof(uint64_t)) {
        for (size_t i = 0; i < n; i++)
            sum = sum * 31 + b[i];
        return sum;
    }
    for (size_t off = 0; off + 2 * sizeof(uint64_t) <= n;
         off += BENCH_TOUCH_STRIDE) {
        uint64_t v;
        memcpy(&v, b + off, sizeof v);
        sum += bench_mix(v);
    }
    uint64_t last;
    memcpy(&last, b + n - sizeof last, sizeof last);
    return sum + bench_mix(last ^ n);
}

/* What bench_check returns for a block bench_touch(p, n, tag) wrote,
 * computed without the block. */
static inline uint64_t bench_expect(size_t n, uint64_t tag)
{
    uint64_t sum = 0;
    if (n < sizeof(uint64_t)) {
        for (size_t i = 0; i < n; i++)
            sum = sum * 31 + (unsigned char)(tag + i);
        return sum;
    }
    for (size_t off = 0; off + 2 * sizeof(uint64_t) <= n;
         off += BENCH_TOUCH_STRIDE)
        sum += bench_mix(tag + off);
    return sum + bench_mix(~tag ^ n);
}

/* Checks a block against what bench_touch(p, n, tag) wrote and returns its
 * checksum contribution; a mismatch is reported and exits: an allocator
 * that corrupts a live block must not produce a result. */
static inline uint64_t bench_verify(const void *p, size_t n, uint64_t tag)
{
    uint64_t got = bench_check(p, n);
    if (got != bench_expect(n, tag)) {
        fprintf(stderr, "bench: block of %zu bytes corrupted (tag %" PRIu64
                        ")\n", n, tag);
        exit(3);
    }
    return got;
}

/* ------------------------------------------------------------------------
 * Threads
 * ---------------------------------------------------------------------- */

static inline void bench_thread_create(pthread_t *t, void *(*fn)(void *),
                                       void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0) {
        fprintf(stderr, "bench: pthread_create: %s\n", strerror(rc));
        exit(1);
    }
}

static inline void bench_thread_join(pthread_t t)
{
    int rc = pthread_join(t, NULL);
    if (rc != 0) {
        fprintf(stderr, "bench: pthread_join: %s\n", strerror(rc));
        exit(1);
    }
}

/* Per-thread results padded to a cache line pair so that the benchmark's own
 * bookkeeping causes no false sharing. */
typedef struct bench_thread_result {
    uint64_t ops;
    uint64_t checksum;
    char pad[128 - 2 * sizeof(uint64_t)];
} bench_thread_result;

#endif /* BENCH_COMMON_H */
