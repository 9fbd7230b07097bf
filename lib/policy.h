/*
 * policy.h: the published policy snapshot (DESIGN.md section 6). The
 * current snapshot is an immutable struct hak_policy behind one atomic
 * pointer; lanes read it at refill and flush time (policy_current), never
 * on a fast path. Publishing fills a slot of a fixed ring of snapshots and
 * swaps the pointer; a slot is reused only POLICY_SLOTS publishes later, and
 * the ring is never freed, so a reader never touches freed memory.
 *
 * Locks: policy_lock serialises publishers; readers take none.
 */
#ifndef HAK_POLICY_H
#define HAK_POLICY_H

#include "internal.h"

#define POLICY_SLOTS 64

extern const struct hak_policy *_Atomic policy_ptr;

/* The current snapshot (acquire). Valid until POLICY_SLOTS more publishes. */
static inline const struct hak_policy *policy_current(void) {
    return atomic_load_acquire(&policy_ptr);
}

/* Sets the default snapshot from the HAKMEM_* options (hak_init). */
void policy_init(void);

/* Validates and publishes p; returns 0 or EINVAL. */
int policy_publish(const struct hak_policy *p);

#endif /* HAK_POLICY_H */
