/* bench_spawn - runs one program and reports its wall time, peak RSS and
 * exit status: the launcher behind bench/compare.py and bench/ab.py.
 *
 *     bench_spawn [--preload LIB] --report FILE -- PROG [ARGS...]
 *
 * It forks, sets LD_PRELOAD=LIB in the child only (or removes LD_PRELOAD
 * when no --preload is given), execs PROG, waits for it, and writes one
 * line to FILE:
 *
 *     status=exit:N|signal:N wall=S maxrss_kib=K utime=S stime=S minflt=N majflt=N
 *
 * Why not let Python wait for the program itself: Linux carries a process's
 * peak RSS across execve, and a child that Python forks (or vforks) starts
 * with Python's resident size as its peak, so os.wait4 would report tens of
 * MiB for a program that used one. A child forked from this small program
 * starts near 1 MiB, as under /usr/bin/time. SIGTERM (the runners'
 * time-out) kills the child with SIGKILL and still writes the report.
 * Exit status: 0 when the report was written (whatever PROG did), 2 on bad
 * usage, 1 on failure.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The child, for the SIGTERM handler. */
static volatile sig_atomic_t child_pid;

/* SIGTERM (the runner's time-out): kill the child and carry on, so that it
 * is reaped here and reported as killed, not left to whoever adopts it. */
static void on_term(int sig)
{
    (void)sig;
    if (child_pid > 0)
        kill((pid_t)child_pid, SIGKILL);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv_secs(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_spawn [--preload LIB] --report FILE -- "
                    "PROG [ARGS...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *preload = NULL, *report = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--preload") == 0)
            preload = argv[++i];
        else if (strcmp(argv[i], "--report") == 0)
            report = argv[++i];
        else
            return usage();
    }
    if (report == NULL || i >= argc)
        return usage();
    char **child_argv = &argv[i];

    fflush(NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bench_spawn: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        /* The child is a copy of a single-threaded process: setenv may
         * allocate here. */
        if (preload != NULL && preload[0] != '\0')
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(child_argv[0], child_argv);
        fprintf(stderr, "bench_spawn: %s: %s\n", child_argv[0],
                strerror(errno));
        _exit(127);
    }

    child_pid = pid;
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "bench_spawn: waitpid: %s\n", strerror(errno));
            return 1;
        }
    }
    double wall = now() - t0;
    /* The only child there was: its usage, peak RSS included. */
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);

    /* Opened only now, so that the child inherits no extra descriptor. */
    FILE *out = fopen(report, "w");
    if (out == NULL) {
        fprintf(stderr, "bench_spawn: %s: %s\n", report, strerror(errno));
        return 1;
    }

    if (WIFSIGNALED(status))
        fprintf(out, "status=signal:%d", WTERMSIG(status));
    else
        fprintf(out, "status=exit:%d", WEXITSTATUS(status));
    fprintf(out, " wall=%.6f maxrss_kib=%ld utime=%.6f stime=%.6f"
                 " minflt=%ld majflt=%ld\n",
            wall, ru.ru_maxrss, tv_secs(ru.ru_utime), tv_secs(ru.ru_stime),
            ru.ru_minflt, ru.ru_majflt);
    if (fclose(out) != 0) {
        fprintf(stderr, "bench_spawn: %s: %s\n", report, strerror(errno));
        return 1;
    }
    return 0;
}
