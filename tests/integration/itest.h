/*
 * itest.h: helpers shared by the integration tests (tests/integration):
 * running a helper program with an exact environment and capturing its
 * output, reading the process's RSS and mappings, hiding a pointer from the
 * compiler's misuse warnings. None of them is part of the library.
 */
#ifndef HAK_ITEST_H
#define HAK_ITEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a program run by itest_run did. */
struct itest_run {
    int status;          /* waitpid status (valid unless timed_out) */
    bool timed_out;      /* killed with SIGKILL after the deadline */
    char out[16384];     /* its stdout, NUL-terminated (truncated if longer) */
    size_t out_len;
    char err[16384];     /* its stderr, NUL-terminated (truncated if longer) */
    size_t err_len;
};

/* Runs argv[0] with exactly the environment envp (NULL-terminated; nothing is
 * inherited), stdin from /dev/null, no core dump, and collects its stdout
 * and stderr. Kills it after timeout_s seconds. Returns 0, or an errno when
 * it could not be started. */
int itest_run(char *const argv[], char *const envp[], double timeout_s, struct itest_run *r);

/* Describes a wait status ("exit 0", "signal 6 (Aborted)", ...). */
const char *itest_status_str(const struct itest_run *r, char *buf, size_t cap);

/* The process's resident set, bytes (/proc/self/statm). */
uint64_t itest_rss_bytes(void);

/* Lines of /proc/self/maps: the number of mappings. */
long itest_count_maps(void);

/* Threads of the process ("Threads:" of /proc/self/status): a thread counts
 * until the kernel has seen it exit, after all its user-space clean-up. */
long itest_count_threads(void);

/* Returns p, hidden from the compiler (so that freeing a stack address or
 * freeing twice does not trip -Wfree-nonheap-object / -Wuse-after-free). */
void *itest_launder(void *p);

/* Monotonic time in seconds. */
double itest_now(void);

/* Sleeps for ms milliseconds. */
void itest_sleep_ms(long ms);

/* Removes every HAKMEM_* variable from the environment. */
void itest_clear_hakmem_env(void);

#endif /* HAK_ITEST_H */
