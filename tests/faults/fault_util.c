/*
 * fault_util.c: see fault_util.h.
 */
#include "fault_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int msg_fd = -1;

void fault_msg(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    int fd = msg_fd >= 0 ? msg_fd : STDERR_FILENO;
    if (write(fd, buf, (size_t)n) < 0) return;
}

bool fault_run(fault_fn fn, void *arg, unsigned timeout_s, char *why, size_t cap) {
    int p[2];
    why[0] = 0;
    if (pipe(p) != 0) {
        snprintf(why, cap, "pipe: %s", strerror(errno));
        return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, cap, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        close(p[0]);
        msg_fd = p[1];
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        signal(SIGALRM, SIG_DFL);
        alarm(timeout_s);
        _exit(fn(arg));
    }
    close(p[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p[0], why + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        if (len >= cap - 1) break;
    }
    why[len] = 0;
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return true;
    char tail[96];
    if (WIFSIGNALED(st))
        snprintf(tail, sizeof tail, "[child killed by signal %d (%s)%s]", WTERMSIG(st),
                 strsignal(WTERMSIG(st)), WTERMSIG(st) == SIGALRM ? ": it hung" : "");
    else
        snprintf(tail, sizeof tail, "[child exited with %d]", WEXITSTATUS(st));
    size_t room = cap - 1 - strlen(why);
    strncat(why, tail, room);
    return false;
}

size_t fault_vm_bytes(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    unsigned long long pages = 0;
    for (const char *s = buf; *s >= '0' && *s <= '9'; s++) pages = pages * 10 + (unsigned)(*s - '0');
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

bool fault_limit_as(size_t extra) {
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) != 0) return false;
    r.rlim_cur = fault_vm_bytes() + extra;
    return setrlimit(RLIMIT_AS, &r) == 0;
}

void fault_unlimit_as(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) != 0) return;
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_AS, &r);
}

int fault_lane_served(int want) { return hak_lane_enabled(want) ? want : HAK_LANE_HUGE; }
