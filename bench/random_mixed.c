/* random_mixed - random sizes over a working set of live blocks.
 *
 * One thread keeps `ws` live blocks. Each step picks a random slot, checks
 * and frees its block, and allocates a new one of a uniformly random size
 * in [min, max] (default 16..1040 B: the small-object range every
 * allocator's size classes cover). Models the steady state of a program
 * that holds many small objects and replaces them in random order, which
 * keeps every size class busy and scatters frees across slabs.
 */
#include "bench_common.h"

typedef struct slot {
    void *p;
    uint32_t size;
    uint64_t tag;
} slot;

int main(int argc, char **argv)
{
    uint64_t iters = 6000000, ws = 20000, min = 16, max = 1040, seed = 1;
    bench_opt opts[] = {
        { "iters", BENCH_OPT_U64, &iters, "replacement steps" },
        { "ws", BENCH_OPT_U64, &ws, "live blocks (working set)" },
        { "min", BENCH_OPT_U64, &min, "smallest size in bytes" },
        { "max", BENCH_OPT_U64, &max, "largest size in bytes" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Random-mixed: replace random blocks of a working set "
                     "with blocks of random size in [min, max].",
                     opts, BENCH_NOPTS(opts));
    bench_require(ws >= 1 && min <= max && max < (UINT64_C(1) << 31),
                  "need ws >= 1 and min <= max < 2 GiB");

    slot *set = calloc(ws, sizeof *set);
    if (set == NULL)
        bench_oom(ws * sizeof *set);
    bench_rng rng;
    bench_rng_seed(&rng, seed, 0);
    uint64_t checksum = 0, ops = 0, tag = 0;

    double t0 = bench_now();
    for (uint64_t i = 0; i < ws; i++) {
        uint32_t n = (uint32_t)bench_rng_range(&rng, min, max);
        set[i].p = bench_malloc(n);
        set[i].size = n;
        set[i].tag = ++tag;
        bench_touch(set[i].p, n, set[i].tag);
    }
    ops += ws;
    for (uint64_t i = 0; i < iters; i++) {
        slot *s = &set[bench_rng_below(&rng, ws)];
        checksum += bench_verify(s->p, s->size, s->tag);
        free(s->p);
        uint32_t n = (uint32_t)bench_rng_range(&rng, min, max);
        s->p = bench_malloc(n);
        s->size = n;
        s->tag = ++tag;
        bench_touch(s->p, n, s->tag);
    }
    ops += 2 * iters;
    for (uint64_t i = 0; i < ws; i++) {
        checksum += bench_verify(set[i].p, set[i].size, set[i].tag);
        free(set[i].p);
    }
    ops += ws;
    double secs = bench_now() - t0;

    free(set);
    bench_report(ops, secs, checksum);
    return 0;
}
