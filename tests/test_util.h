/*
 * test_util.h: small helpers shared by the test programs (header-only, every
 * function static): a deterministic random generator, byte patterns that can
 * be written and checked quickly, and the process's memory figures from
 * /proc/self/statm.
 */
#ifndef HAK_TEST_UTIL_H
#define HAK_TEST_UTIL_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)
#define GiB ((size_t)1024 * 1024 * 1024)

/* ---- random numbers (xorshift64*, deterministic per seed) ------------- */

struct rng {
    uint64_t s;
};

static inline struct rng rng_seed(uint64_t seed) {
    struct rng r = {seed * 0x9E3779B97F4A7C15u + 0x2545F4914F6CDD1Du};
    if (r.s == 0) r.s = 1;
    return r;
}

static inline uint64_t rng_next(struct rng *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Du;
}

/* Uniform in [lo, hi] (hi >= lo). */
static inline size_t rng_range(struct rng *r, size_t lo, size_t hi) {
    return lo + (size_t)(rng_next(r) % ((uint64_t)(hi - lo) + 1));
}

/* ---- patterns ----------------------------------------------------------
 * Byte i of the pattern with a given salt depends only on (salt, i), so a
 * pattern written at one address can be checked after realloc moved the
 * block. Whole words are written and checked eight bytes at a time. */

static inline uint64_t pattern_word(uint64_t salt, size_t word) {
    uint64_t x = (uint64_t)word * 0x9E3779B97F4A7C15u ^ salt;
    x ^= x >> 29;
    return x * 0xBF58476D1CE4E5B9u ^ (x >> 32);
}

/* Byte i as pattern_fill stores it: byte i % 8 of word i / 8 in memory
 * order, so byte-wise and word-wise accesses agree on any byte order. */
static inline uint8_t pattern_byte(uint64_t salt, size_t i) {
    uint64_t w = pattern_word(salt, i / 8);
    uint8_t bytes[8];
    memcpy(bytes, &w, 8);
    return bytes[i % 8];
}

/* Writes the pattern into bytes [from, to) of p. */
static inline void pattern_fill(void *p, size_t from, size_t to, uint64_t salt) {
    uint8_t *b = p;
    size_t i = from;
    for (; i < to && i % 8 != 0; i++) b[i] = pattern_byte(salt, i);
    for (; i + 8 <= to; i += 8) {
        uint64_t w = pattern_word(salt, i / 8);
        memcpy(b + i, &w, 8);
    }
    for (; i < to; i++) b[i] = pattern_byte(salt, i);
}

/* The first offset in [from, to) where p differs from the pattern, or
 * SIZE_MAX when all bytes match. */
static inline size_t pattern_find_mismatch(const void *p, size_t from, size_t to, uint64_t salt) {
    const uint8_t *b = p;
    size_t i = from;
    for (; i < to && i % 8 != 0; i++)
        if (b[i] != pattern_byte(salt, i)) return i;
    for (; i + 8 <= to; i += 8) {
        uint64_t w = pattern_word(salt, i / 8), v;
        memcpy(&v, b + i, 8);
        if (v != w) {
            for (size_t j = i; j < i + 8; j++)
                if (b[j] != pattern_byte(salt, j)) return j;
        }
    }
    for (; i < to; i++)
        if (b[i] != pattern_byte(salt, i)) return i;
    return SIZE_MAX;
}

/* True when every byte of [p, p + n) is zero. */
static inline bool all_zero(const void *p, size_t n) {
    const uint8_t *b = p;
    size_t i = 0;
    for (; i < n && ((uintptr_t)(b + i) & 7) != 0; i++)
        if (b[i]) return false;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, b + i, 8);
        if (v) return false;
    }
    for (; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* ---- the process's memory --------------------------------------------- */

/* Field `field` (0: virtual size, 1: resident) of /proc/self/statm, bytes. */
static inline size_t statm_bytes(int field) {
    char buf[256];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *s = buf;
    for (int f = 0; f < field; f++) {
        while (*s && *s != ' ') s++;
        if (*s) s++;
    }
    size_t pages = 0;
    for (; *s >= '0' && *s <= '9'; s++) pages = pages * 10 + (size_t)(*s - '0');
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static inline size_t rss_bytes(void) { return statm_bytes(1); }
static inline size_t vm_bytes(void) { return statm_bytes(0); }

static inline size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* The largest power of two dividing x (x > 0). */
static inline size_t low_pow2(size_t x) { return x & (~x + 1); }

static inline bool is_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* ---- hakmem ------------------------------------------------------------ */

/* hakmem sets some things up lazily on first use (its state, a lane's
 * per-thread cache, a helper thread when the first purge is pending, whose
 * creation makes glibc allocate that thread's TLS vector through malloc).
 * Tests that compare hakmem's live byte count before and after some work
 * call this first, so that none of it happens in between: a little of every
 * kind of allocation, freed, and enough time for pending purges to start. */
static inline void warm_up_hakmem(void) {
    static const size_t sizes[] = {1, 100, 1000, 5000, 40000, 300000, 3 * 1024 * 1024,
                                   10 * 1024 * 1024};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = hak_malloc(sizes[i]);
            if (p) memset(p, 1, sizes[i] < 4096 ? sizes[i] : 4096);
            hak_free(p);
        }
        usleep(20 * 1000);
    }
}

#endif /* HAK_TEST_UTIL_H */
