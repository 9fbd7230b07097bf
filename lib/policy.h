/*
 * policy.h: the published policy snapshot (DESIGN.md section 6). The
 * current snapshot is an immutable struct hak_policy behind one atomic
 * pointer; lanes read it at refill and flush time (policy_current), never
 * on a fast path. Publishing fills a slot of a fixed ring of snapshots and
 * swaps the pointer; a slot is reused only POLICY_SLOTS publishes later, and
 * the ring is never freed, so a reader never touches freed memory.
 *
 * A controller (the ACE module's learner, DESIGN.md 6) registers itself
 * here, so that lib/ can start it, report on it and carry it across fork
 * without including a module (DESIGN.md 1).
 *
 * Locks: policy_lock serialises publishers; readers take none. A
 * controller's own lock comes before policy_lock.
 */
#ifndef HAK_POLICY_H
#define HAK_POLICY_H

#include "internal.h"

#define POLICY_SLOTS 64

extern HAK_HIDDEN const struct hak_policy *_Atomic policy_ptr;
/* Publishes so far: a reader that cached a snapshot pointer compares this
 * too, since a ring slot comes back after POLICY_SLOTS publishes. */
extern HAK_HIDDEN _Atomic uint64_t policy_generation;

/* The current snapshot (acquire). Valid until POLICY_SLOTS more publishes. */
static inline const struct hak_policy *policy_current(void) {
    return atomic_load_acquire(&policy_ptr);
}

/* Sets the default snapshot from the HAKMEM_* options (hak_init). */
void policy_init(void);

/* Validates and publishes p; returns 0 or EINVAL. */
int policy_publish(const struct hak_policy *p);

/* fork(): prepare takes policy_lock, parent and child release it. */
void policy_fork_prepare(void);
void policy_fork_parent(void);
void policy_fork_child(void);

/* A policy controller: a background learner that publishes snapshots. */
struct policy_controller {
    /* Whether the controller should run (its option); asked once, when it
     * is enabled. A controller that should not run is never ticked. */
    bool (*wanted)(void);
    /* From allocator slow paths, the caller holding no hakmem lock: starts
     * the controller's thread when it should run and none does (may
     * allocate). Must cost a load or two when there is nothing to do. */
    void (*tick)(void);
    /* Fills *out (out->size honoured by the caller: a full struct here). */
    void (*info)(struct hak_learn_info *out);
    /* Appends the controller's part of the statistics report (text, or a
     * JSON value when json) to buf; returns the length written (< cap). */
    size_t (*report)(bool json, char *buf, size_t cap);
};

/* Registers c (from a lane's init, single-threaded). It is not called
 * before policy_enable_controller, which hakmem's constructor calls: by then
 * the C library (pthread_create) is ready. */
void policy_set_controller(const struct policy_controller *c);
void policy_enable_controller(void);
/* The registered controller once enabled, else NULL. */
extern HAK_HIDDEN const struct policy_controller *_Atomic policy_ctl;
/* Whether slow paths tick it (enabled and wanted). */
extern HAK_HIDDEN _Atomic bool policy_ticking;

/* The controller's tick, if one runs: slow paths call this (a load and a
 * branch when none does). */
static inline void policy_tick(void) {
    if (atomic_load_relaxed(&policy_ticking)) atomic_load_acquire(&policy_ctl)->tick();
}

#endif /* HAK_POLICY_H */
