/*
 * error.c: messages, misuse reports and assertion failures, and the rate
 * limit of event messages (HAKMEM_VERBOSE=1). Nothing here allocates:
 * messages are formatted into a stack buffer and written with write(2).
 * Takes no lock (a message is one write call; the rate limit's counters
 * are relaxed atomics).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "options.h"
#include "os.h"
#include "stats.h"

bool hak_verbose_on;
static int log_fd = -1; /* -1: not decided yet */

static int output_fd(void) {
    int fd = log_fd;
    if (fd >= 0) return fd;
    fd = STDERR_FILENO;
    const char *path = HAK_BENCH_MINIMAL ? NULL : options_string[HAK_OPT_LOG_FILE];
    if (path) {
        int f = os_open_append(path);
        if (f >= 0) fd = f;
    }
    log_fd = fd;
    return fd;
}

/* Writes "hakmem: <message>[ (N messages suppressed)]\n" in one write. */
static void vlog_ex(bool force, uint64_t suppressed, const char *fmt, va_list ap) {
    if (!force && hak_opt(HAK_OPT_QUIET)) return;
    char buf[512];
    const size_t tail = 48; /* room for the suppressed count */
    int n = snprintf(buf, sizeof buf, "hakmem: ");
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - tail, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - tail - 1) len = sizeof buf - tail - 1;
    if (suppressed) {
        int k = snprintf(buf + len, tail, " (%llu messages suppressed)",
                         (unsigned long long)suppressed);
        if (k > 0) len += (size_t)k < tail ? (size_t)k : tail - 1;
    }
    buf[len++] = '\n';
    os_write_all(output_fd(), buf, len);
}

static void vlog(bool force, const char *fmt, va_list ap) { vlog_ex(force, 0, fmt, ap); }

void hak_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(false, fmt, ap);
    va_end(ap);
}

/* ---- the rate limit of events -----------------------------------------
 * At most HAK_LOG_EVENTS_PER_SEC event lines per second of the coarse
 * monotonic clock (a fixed window: a burst across a second's boundary may
 * show twice as many). The first line allowed after some were dropped
 * says how many; so does hakmem's destructor for the last ones. Approximate
 * under races (a window's reset may forget a concurrent line's count), never
 * blocking. */

static _Atomic uint64_t rl_second;     /* the window: seconds of the coarse clock */
static _Atomic uint32_t rl_lines;      /* event lines asked for in the window */
static _Atomic uint64_t rl_suppressed; /* lines dropped and not reported yet */

void hak_log_event(const char *fmt, ...) {
    if (hak_opt(HAK_OPT_QUIET)) return;
    uint64_t sec = os_now_coarse_ns() / 1000000000u;
    uint64_t w = atomic_load_relaxed(&rl_second);
    if (w != sec && atomic_compare_exchange_strong_explicit(&rl_second, &w, sec,
                                                            memory_order_relaxed,
                                                            memory_order_relaxed))
        atomic_store_relaxed(&rl_lines, 0);
    if (atomic_fetch_add_relaxed(&rl_lines, 1) >= HAK_LOG_EVENTS_PER_SEC) {
        atomic_fetch_add_relaxed(&rl_suppressed, 1);
        return;
    }
    uint64_t dropped = atomic_exchange_explicit(&rl_suppressed, 0, memory_order_relaxed);
    va_list ap;
    va_start(ap, fmt);
    vlog_ex(false, dropped, fmt, ap);
    va_end(ap);
}

void hak_log_event_flush(void) {
    if (atomic_load_relaxed(&rl_suppressed) == 0) return;
    uint64_t dropped = atomic_exchange_explicit(&rl_suppressed, 0, memory_order_relaxed);
    if (dropped && !hak_opt(HAK_OPT_QUIET))
        hak_log("%llu messages suppressed", (unsigned long long)dropped);
}

void hak_log_raw(const char *buf, size_t len) { os_write_all(output_fd(), buf, len); }

int hak_log_fd(void) { return output_fd(); }

static HAK_PRINTF(1, 2) void log_forced(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(true, fmt, ap);
    va_end(ap);
}

void hak_report_misuse(const char *call, const void *ptr, const char *what) {
    bool warn = hak_opt(HAK_OPT_ON_ERROR) == HAK_ON_ERROR_WARN;
    if (warn) {
        hak_log("%s(): %s %p (ignored: HAKMEM_ON_ERROR=warn)", call, what, ptr);
        return;
    }
    log_forced("%s(): %s %p", call, what, ptr);
    abort();
}

void hak_report_corruption(const char *call, const void *ptr, const char *what) {
    log_forced("%s(): heap corruption: %s %p", call, what, ptr);
    abort();
}

void hak_assert_fail(const char *cond, const char *file, int line) {
    log_forced("internal error: assertion '%s' failed at %s:%d", cond, file, line);
    abort();
}
