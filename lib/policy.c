/*
 * policy.c: owns the policy snapshots (see policy.h). Locks: policy_lock,
 * taken by publishers only, after nothing and before nothing.
 */
#include "policy.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "options.h"

static struct hak_policy slots[POLICY_SLOTS];
static unsigned next_slot;
static pthread_mutex_t policy_lock = PTHREAD_MUTEX_INITIALIZER;
const struct hak_policy *_Atomic policy_ptr = &slots[0];
_Atomic uint64_t policy_generation;
const struct policy_controller *_Atomic policy_ctl;

/* ACE classes for the default caps (the lane has the same table). */
static const uint32_t large_classes_kib[] = {40,  48,  56,  64,  80,  96,  112, 128, 160, 192,
                                             224, 256, 320, 384, 448, 512, 640, 768, 896, 1024};
#define NLARGE (sizeof large_classes_kib / sizeof large_classes_kib[0])

void policy_init(void) {
    struct hak_policy *p = &slots[0];
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    for (unsigned c = 0; c < HAK_POLICY_CLASSES; c++) {
        p->cap_mid[c] = (uint32_t)hak_opt(HAK_OPT_CAP_MID);
        long long cap = hak_opt(HAK_OPT_CAP_LARGE);
        if (cap < 0) {
            /* auto: as many blocks as fit in 256 KiB, at least one */
            uint32_t kib = c < NLARGE ? large_classes_kib[c] : 1024;
            cap = 256 / kib ? 256 / kib : 1;
        }
        p->cap_large[c] = (uint32_t)cap;
    }
    p->wmax_large_pct = (uint32_t)hak_opt(HAK_OPT_WMAX_LARGE);
    p->refill_batch = 4;
    p->bigcache_mb = (uint32_t)hak_opt(HAK_OPT_BIGCACHE_MB);
    next_slot = 1;
    atomic_fetch_add_explicit(&policy_generation, 1, memory_order_release);
    atomic_store_release(&policy_ptr, p);
}

static bool valid(const struct hak_policy *p) {
    if (p->size != sizeof *p) return false;
    for (unsigned c = 0; c < HAK_POLICY_CLASSES; c++)
        if (p->cap_mid[c] > 64 || p->cap_large[c] > 32) return false;
    return p->wmax_large_pct >= 100 && p->wmax_large_pct <= 200 && p->refill_batch >= 1 &&
           p->refill_batch <= 32 && p->bigcache_mb <= 65536;
}

int policy_publish(const struct hak_policy *p) {
    if (!valid(p)) return EINVAL;
    pthread_mutex_lock(&policy_lock);
    struct hak_policy *slot = &slots[next_slot];
    next_slot = (next_slot + 1) % POLICY_SLOTS;
    *slot = *p;
    atomic_fetch_add_explicit(&policy_generation, 1, memory_order_release);
    atomic_store_release(&policy_ptr, slot);
    pthread_mutex_unlock(&policy_lock);
    hak_verbose("policy published (wmax_large %u%%, refill_batch %u)", p->wmax_large_pct,
                p->refill_batch);
    return 0;
}

void policy_fork_prepare(void) { pthread_mutex_lock(&policy_lock); }
void policy_fork_parent(void) { pthread_mutex_unlock(&policy_lock); }
void policy_fork_child(void) { pthread_mutex_unlock(&policy_lock); }

static const struct policy_controller *pending_ctl;

void policy_set_controller(const struct policy_controller *c) { pending_ctl = c; }

_Atomic bool policy_ticking;

void policy_enable_controller(void) {
    atomic_store_release(&policy_ctl, pending_ctl);
    atomic_store_release(&policy_ticking, pending_ctl != NULL && pending_ctl->wanted());
}
