/*
 * test_policy.c: the policy snapshot: defaults, validation, publish and get,
 * and publishing while other threads allocate (the lanes read the snapshot
 * at refill and flush time).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "hakmem.h"

static struct hak_policy get(void) {
    struct hak_policy p = {.size = sizeof p};
    cr_assert_eq(hak_policy_get(&p), 0);
    return p;
}

Test(policy, default_snapshot_is_valid_and_can_be_published_again) {
    struct hak_policy p = get();
    cr_assert_eq(p.size, sizeof p);
    cr_assert(p.wmax_large_pct >= 100 && p.wmax_large_pct <= 200);
    cr_assert(p.refill_batch >= 1 && p.refill_batch <= 32);
    cr_assert_eq(hak_policy_set(&p), 0);
}

Test(policy, out_of_range_values_are_refused_and_nothing_changes) {
    struct hak_policy before = get(), p = before;
    p.wmax_large_pct = 99;
    cr_assert_eq(hak_policy_set(&p), EINVAL);
    p = before;
    p.cap_large[3] = 33;
    cr_assert_eq(hak_policy_set(&p), EINVAL);
    p = before;
    p.refill_batch = 0;
    cr_assert_eq(hak_policy_set(&p), EINVAL);
    p = before;
    p.size = sizeof p - 4; /* a caller from another version must send the whole struct */
    cr_assert_eq(hak_policy_set(&p), EINVAL);
    cr_assert_eq(hak_policy_set(NULL), EINVAL);
    struct hak_policy after = get();
    cr_assert(memcmp(&before, &after, sizeof before) == 0);
}

Test(policy, get_with_a_smaller_struct_copies_only_its_size) {
    unsigned char buf[sizeof(struct hak_policy) + 16];
    memset(buf, 0xab, sizeof buf);
    struct hak_policy *p = (struct hak_policy *)buf;
    p->size = offsetof(struct hak_policy, cap_large);
    cr_assert_eq(hak_policy_get(p), 0);
    for (size_t i = offsetof(struct hak_policy, cap_large); i < sizeof buf; i++)
        cr_assert_eq(buf[i], 0xab, "byte %zu written", i);
    struct hak_policy tiny = {.size = 1};
    cr_assert_eq(hak_policy_get(&tiny), EINVAL);
}

Test(policy, published_snapshot_is_what_get_returns) {
    struct hak_policy p = get();
    for (unsigned c = 0; c < HAK_POLICY_CLASSES; c++) {
        p.cap_large[c] = c % 5;
        p.cap_mid[c] = c % 3;
    }
    p.wmax_large_pct = 150;
    p.refill_batch = 7;
    p.bigcache_mb = 12;
    cr_assert_eq(hak_policy_set(&p), 0);
    struct hak_policy q = get();
    cr_assert(memcmp(&p, &q, sizeof p) == 0);
}

static atomic_int stop;

static void *churn(void *arg) {
    (void)arg;
    unsigned x = 1;
    void *v[16] = {0};
    while (!atomic_load(&stop)) {
        x = x * 1103515245 + 12345;
        unsigned i = (x >> 8) % 16;
        hak_free(v[i]);
        size_t size = 1024 + (x >> 12) % (900 * 1024); /* pool and ACE sizes */
        v[i] = hak_malloc(size);
        if (v[i]) memset(v[i], 0x5a, 64);
    }
    for (unsigned i = 0; i < 16; i++) hak_free(v[i]);
    return NULL;
}

Test(policy, publishing_while_threads_allocate_is_safe, .timeout = 60) {
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn, NULL);
    struct hak_policy p = get();
    for (int k = 0; k < 2000; k++) {
        for (unsigned c = 0; c < HAK_POLICY_CLASSES; c++) {
            p.cap_large[c] = (unsigned)(k + c) % 9;
            p.cap_mid[c] = (unsigned)k % 3;
        }
        p.wmax_large_pct = 100 + (unsigned)k % 101;
        p.refill_batch = 1 + (unsigned)k % 32;
        cr_assert_eq(hak_policy_set(&p), 0);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
}
