/*
 * fault_util.h: helpers shared by the fault tests (tests/faults): running a
 * function in a child process with a deadline and a message channel (the
 * faults a test provokes, an address-space limit or a refused mapping,
 * stay in the child), the process's address-space size, and the test-only
 * hook of the OS layer.
 */
#ifndef HAK_FAULT_UTIL_H
#define HAK_FAULT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hakmem.h"

/* lib/os.c's test hook (declared in lib/os.h, not in hakmem.h): the
 * `count` requests for address space after the next `after` fail with
 * ENOMEM; count 0 ends the injection. Returns the requests made so far. */
unsigned long hak_test_os_fail(unsigned long after, unsigned long count);

/* A function run in a child: returns 0 on success, or an exit code after
 * describing the failure with fault_msg. */
typedef int (*fault_fn)(void *arg);

/* Runs fn(arg) in a child process, killed (SIGALRM) after timeout_s
 * seconds. Returns true when it exited 0; otherwise false with what went
 * wrong (its messages, its exit status or signal) in why. */
bool fault_run(fault_fn fn, void *arg, unsigned timeout_s, char *why, size_t cap);

/* In the child: appends a message for the parent (never allocates; safe
 * under an address-space limit and in signal handlers' absence of malloc). */
void fault_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The process's virtual size, bytes (/proc/self/statm). */
size_t fault_vm_bytes(void);

/* Sets RLIMIT_AS to the current virtual size plus extra bytes (the soft
 * limit; the hard one stays, so it can be lifted again). */
bool fault_limit_as(size_t extra);
/* Lifts it again. */
void fault_unlimit_as(void);

/* The lane that serves blocks of lane `want`'s sizes in this build (the
 * huge lane takes the range of a lane built out). */
int fault_lane_served(int want);

#endif /* HAK_FAULT_UTIL_H */
