/*
 * error.c: messages, misuse reports and assertion failures. Nothing here
 * allocates: messages are formatted into a stack buffer and written with
 * write(2). Takes no lock (a message is one write call).
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

static void vlog(bool force, const char *fmt, va_list ap) {
    if (!force && hak_opt(HAK_OPT_QUIET)) return;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "hakmem: ");
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    os_write_all(output_fd(), buf, len);
}

void hak_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(false, fmt, ap);
    va_end(ap);
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
