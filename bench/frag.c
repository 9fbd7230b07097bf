/* frag - fragmentation stress: interleaved lifetimes, long-lived survivors.
 *
 * One thread allocates one block per step and gives it a lifetime: most die
 * within 64 steps, some live up to `maxlife` steps, and `survive` per mille
 * live to the end of the run. The run goes through `phases` phases whose
 * size ranges differ (small, medium, larger, small again), so the survivors
 * of one phase pin memory that the next phase, wanting other sizes, cannot
 * reuse. An allocator that segregates sizes and lifetimes badly, or never
 * returns empty pages, shows it in peak RSS (the runner's third column);
 * the time column shows what its bookkeeping costs. Models a long-running
 * program whose workload changes over time (a cache, a compiler pass).
 */
#include "bench_common.h"

typedef struct node {
    void *p;
    uint64_t tag;
    uint32_t size;
    uint32_t next; /* next node in the same wheel bucket, or NIL */
} node;

#define NIL UINT32_MAX

/* Size ranges of the phases, cycled: [lo, hi] in bytes. */
static const struct { uint32_t lo, hi; } phase_sizes[] = {
    { 16, 128 }, { 96, 1024 }, { 512, 8192 }, { 16, 256 }, { 2048, 32768 },
};

int main(int argc, char **argv)
{
    uint64_t steps = 3000000, phases = 5, maxlife = 16384, survive = 5;
    uint64_t seed = 1;
    bench_opt opts[] = {
        { "iters", BENCH_OPT_U64, &steps, "allocations (one per step)" },
        { "phases", BENCH_OPT_U64, &phases, "phases (size ranges cycle)" },
        { "maxlife", BENCH_OPT_U64, &maxlife, "longest finite lifetime, steps" },
        { "survive", BENCH_OPT_U64, &survive, "per mille that live to the end" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Fragmentation stress: interleaved lifetimes over phases "
                     "of changing sizes, with long-lived survivors.",
                     opts, BENCH_NOPTS(opts));
    bench_require(phases >= 1 && steps >= phases, "--iters >= --phases >= 1");
    bench_require(maxlife >= 128 && maxlife < NIL / 2, "--maxlife >= 128");
    bench_require(survive <= 1000, "--survive <= 1000");

    /* A timer wheel of maxlife buckets; a node lives fewer than maxlife
     * steps, so at most maxlife nodes are on the wheel at once. */
    uint64_t wheel_len = maxlife;
    uint32_t *bucket = malloc(wheel_len * sizeof *bucket);
    node *pool = malloc((wheel_len + 1) * sizeof *pool);
    uint64_t surv_cap = 1024, nsurv = 0;
    node *surv = malloc(surv_cap * sizeof *surv);
    if (bucket == NULL || pool == NULL || surv == NULL)
        bench_oom(wheel_len * sizeof *pool);
    for (uint64_t i = 0; i < wheel_len; i++)
        bucket[i] = NIL;
    uint32_t free_node = 0; /* free list through .next */
    for (uint64_t i = 0; i <= wheel_len; i++)
        pool[i].next = i < wheel_len ? (uint32_t)(i + 1) : NIL;

    bench_rng rng;
    bench_rng_seed(&rng, seed, 0);
    uint64_t checksum = 0, ops = 0;
    uint64_t per_phase = steps / phases;

    double t0 = bench_now();
    for (uint64_t s = 0; s < steps; s++) {
        /* Free what dies now. */
        uint32_t *head = &bucket[s % wheel_len];
        while (*head != NIL) {
            node *n = &pool[*head];
            uint32_t idx = *head;
            *head = n->next;
            checksum += bench_verify(n->p, n->size, n->tag);
            free(n->p);
            ops++;
            n->next = free_node;
            free_node = idx;
        }
        /* Allocate this step's block. */
        uint64_t ph = s / per_phase;
        if (ph >= phases)
            ph = phases - 1;
        ph %= sizeof phase_sizes / sizeof phase_sizes[0];
        node b;
        b.size = (uint32_t)bench_rng_range(&rng, phase_sizes[ph].lo,
                                           phase_sizes[ph].hi);
        b.tag = bench_rng_next(&rng);
        b.p = bench_malloc(b.size);
        bench_touch(b.p, b.size, b.tag);
        ops++;
        uint64_t kind = bench_rng_below(&rng, 1000);
        if (kind < survive) {
            if (nsurv == surv_cap) {
                surv_cap *= 2;
                surv = bench_realloc(surv, surv_cap * sizeof *surv);
            }
            surv[nsurv++] = b;
            continue;
        }
        uint64_t life = kind < 850 ? bench_rng_range(&rng, 1, 64)
                                   : bench_rng_range(&rng, 65, maxlife - 1);
        uint32_t idx = free_node;
        free_node = pool[idx].next;
        b.next = bucket[(s + life) % wheel_len];
        pool[idx] = b;
        bucket[(s + life) % wheel_len] = idx;
    }
    /* Tear down: the wheel, then the survivors (oldest first). */
    for (uint64_t i = 0; i < wheel_len; i++) {
        for (uint32_t idx = bucket[i]; idx != NIL; idx = pool[idx].next) {
            checksum += bench_verify(pool[idx].p, pool[idx].size, pool[idx].tag);
            free(pool[idx].p);
            ops++;
        }
    }
    for (uint64_t i = 0; i < nsurv; i++) {
        checksum += bench_verify(surv[i].p, surv[i].size, surv[i].tag);
        free(surv[i].p);
        ops++;
    }
    double secs = bench_now() - t0;

    free(bucket);
    free(pool);
    free(surv);
    bench_report(ops, secs, checksum);
    return 0;
}
