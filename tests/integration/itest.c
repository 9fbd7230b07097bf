/*
 * itest.c: helpers shared by the integration tests (see itest.h).
 */
#include "itest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

double itest_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void itest_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Appends what fd has to buf (keeping room for the NUL); returns false at
 * end of file or error. */
static bool drain(int fd, char *buf, size_t cap, size_t *len) {
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) return false;
    size_t room = cap - 1 - *len;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(buf + *len, tmp, take);
    *len += take;
    buf[*len] = 0;
    return true;
}

int itest_run(char *const argv[], char *const envp[], double timeout_s, struct itest_run *r) {
    memset(r, 0, sizeof *r);
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) return errno;
    if (pipe2(err, O_CLOEXEC) != 0) {
        int e = errno;
        close(out[0]);
        close(out[1]);
        return e;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(out[0]);
        close(out[1]);
        close(err[0]);
        close(err[1]);
        return e;
    }
    if (pid == 0) {
        /* async-signal-safe calls only: the parent may have threads */
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        execve(argv[0], argv, envp);
        static const char msg[] = "itest_run: execve failed\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) _exit(126);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    double deadline = itest_now() + timeout_s;
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        double left = deadline - itest_now();
        if (left <= 0) {
            kill(pid, SIGKILL);
            r->timed_out = true;
            break;
        }
        struct pollfd pfd[2] = {{out_open ? out[0] : -1, POLLIN, 0},
                                {err_open ? err[0] : -1, POLLIN, 0}};
        int n = poll(pfd, 2, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR) break;
        if (n <= 0) continue;
        if (out_open && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
            out_open = drain(out[0], r->out, sizeof r->out, &r->out_len);
        if (err_open && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
            err_open = drain(err[0], r->err, sizeof r->err, &r->err_len);
    }
    close(out[0]);
    close(err[0]);
    /* The pipes are closed; a child that closed them early may still run. */
    for (;;) {
        pid_t w = waitpid(pid, &r->status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) break;
        if (itest_now() > deadline && !r->timed_out) {
            kill(pid, SIGKILL);
            r->timed_out = true;
        }
        itest_sleep_ms(1);
    }
    return 0;
}

const char *itest_status_str(const struct itest_run *r, char *buf, size_t cap) {
    if (r->timed_out)
        snprintf(buf, cap, "timed out (killed)");
    else if (WIFEXITED(r->status))
        snprintf(buf, cap, "exit %d", WEXITSTATUS(r->status));
    else if (WIFSIGNALED(r->status))
        snprintf(buf, cap, "signal %d (%s)", WTERMSIG(r->status), strsignal(WTERMSIG(r->status)));
    else
        snprintf(buf, cap, "status 0x%x", (unsigned)r->status);
    return buf;
}

uint64_t itest_rss_bytes(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    unsigned long long size = 0, resident = 0;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

long itest_count_maps(void) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long lines = 0;
    char buf[8192];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
    close(fd);
    return lines;
}

long itest_count_threads(void) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    const char *t = strstr(buf, "\nThreads:");
    return t ? strtol(t + 9, NULL, 10) : -1;
}

void *itest_launder(void *p) {
    void *volatile v = p;
    return v;
}

void itest_clear_hakmem_env(void) {
    for (bool again = true; again;) {
        again = false;
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "HAKMEM_", 7) != 0) continue;
            char name[256];
            size_t len = strcspn(*e, "=");
            if (len >= sizeof name) len = sizeof name - 1;
            memcpy(name, *e, len);
            name[len] = 0;
            unsetenv(name);
            again = true; /* environ changed under us: start over */
            break;
        }
    }
}
