/* heap_growth - a slowly growing heap with a long tail of survivors.
 *
 * One thread works in `rounds` rounds. In each round it allocates `batch`
 * temporaries (mostly small, a few up to 64 KiB), frees all but a few of
 * them in random order, and keeps the rest for good; the survivors' sizes
 * have a long tail (now and then one of 64 KiB to 1 MiB). So the heap
 * grows slowly and steadily, with fresh survivors scattered among the
 * holes the temporaries leave. Measures how well freed space between
 * survivors is reused (peak RSS against the live total) and how the
 * allocator copes as its heap keeps growing. Models a server's caches and
 * session tables filling up during a long run. Survivors are freed at the
 * end, oldest first.
 */
#include "bench_common.h"

typedef struct blk {
    void *p;
    uint64_t size;
    uint64_t tag;
} blk;

/* Size with a long tail: 16..256 B usually, up to 4 KiB sometimes, up to
 * 64 KiB rarely; `tail` adds a rarer 64 KiB..1 MiB. */
static uint64_t pick_size(bench_rng *r, int tail)
{
    uint64_t k = bench_rng_below(r, 1000);
    if (k < 800)
        return bench_rng_range(r, 16, 256);
    if (k < 970)
        return bench_rng_range(r, 257, 4096);
    if (k < 998 || !tail)
        return bench_rng_range(r, 4097, 65536);
    return bench_rng_range(r, 65537, 1 << 20);
}

int main(int argc, char **argv)
{
    uint64_t rounds = 10000, batch = 500, keep = 4, seed = 1;
    bench_opt opts[] = {
        { "iters", BENCH_OPT_U64, &rounds, "rounds" },
        { "batch", BENCH_OPT_U64, &batch, "temporaries per round" },
        { "keep", BENCH_OPT_U64, &keep, "survivors per round" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Slowly growing heap: rounds of temporaries, a few of "
                     "which survive to the end.",
                     opts, BENCH_NOPTS(opts));
    bench_require(batch >= 1 && keep <= batch, "1 <= --keep <= --batch");

    blk *tmp = calloc(batch, sizeof *tmp);
    uint64_t nsurv = 0, cap = rounds * keep + 1;
    blk *surv = calloc(cap, sizeof *surv);
    if (tmp == NULL || surv == NULL)
        bench_oom(cap * sizeof *surv);
    bench_rng rng;
    bench_rng_seed(&rng, seed, 0);
    uint64_t checksum = 0, ops = 0;

    double t0 = bench_now();
    for (uint64_t r = 0; r < rounds; r++) {
        for (uint64_t i = 0; i < batch; i++) {
            /* The survivors of this round are the first `keep` blocks; they
             * draw from the long-tailed distribution. */
            tmp[i].size = pick_size(&rng, i < keep);
            tmp[i].tag = bench_rng_next(&rng);
            tmp[i].p = bench_malloc(tmp[i].size);
            bench_touch(tmp[i].p, tmp[i].size, tmp[i].tag);
        }
        for (uint64_t i = 0; i < keep; i++)
            surv[nsurv++] = tmp[i];
        /* Free the others in random order (Fisher-Yates over the tail). */
        for (uint64_t i = keep; i < batch; i++) {
            uint64_t k = i + bench_rng_below(&rng, batch - i);
            blk b = tmp[k];
            tmp[k] = tmp[i];
            checksum += bench_verify(b.p, b.size, b.tag);
            free(b.p);
        }
        ops += batch + (batch - keep);
    }
    for (uint64_t i = 0; i < nsurv; i++) {
        checksum += bench_verify(surv[i].p, surv[i].size, surv[i].tag);
        free(surv[i].p);
    }
    ops += nsurv;
    double secs = bench_now() - t0;

    free(tmp);
    free(surv);
    bench_report(ops, secs, checksum);
    return 0;
}
