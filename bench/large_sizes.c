/* large_sizes - large-block scenarios: 64 KiB, 256 KiB, 2 MiB and their mix.
 *
 * One thread keeps `ws` live blocks and replaces a random one per step. The
 * new block's size is the scenario's nominal size give or take `jitter`
 * percent (so that several size classes are hit, as with real buffers), and
 * a word is written in every 4 KiB of it, so every page is touched. These
 * sizes sit where allocators switch strategy: 64 KiB and 256 KiB are large
 * classes or page runs, 2 MiB is where glibc and others go straight to
 * mmap/munmap. The time shows whether the allocator caches such blocks or
 * pays the system calls and page faults on each one; peak RSS shows what
 * the caching costs. Models I/O buffers, decoders, per-request arenas.
 *
 * --scenario 64k | 256k | 2m | mix (mix: each new block picks one of the
 * three at random).
 */
#include "bench_common.h"

typedef struct blk {
    void *p;
    uint64_t size;
    uint64_t tag;
} blk;

static const uint64_t nominal[] = { 64 << 10, 256 << 10, 2 << 20 };

int main(int argc, char **argv)
{
    const char *scenario = "mix";
    uint64_t iters = 0, ws = 0, jitter = 25, seed = 1;
    bench_opt opts[] = {
        { "scenario", BENCH_OPT_STR, &scenario, "64k, 256k, 2m or mix" },
        { "iters", BENCH_OPT_U64, &iters,
          "replacements (0: the scenario's default)" },
        { "ws", BENCH_OPT_U64, &ws, "live blocks (0: the scenario's default)" },
        { "jitter", BENCH_OPT_U64, &jitter, "size spread, percent (0..90)" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Large-block scenarios: replace random blocks of about "
                     "64 KiB, 256 KiB, 2 MiB, or a mix of the three.",
                     opts, BENCH_NOPTS(opts));
    bench_require(jitter <= 90, "--jitter 0..90");

    /* Which nominal sizes, and defaults that keep about 32-64 MiB live and
     * a run near one second. */
    int first, last;
    uint64_t def_iters, def_ws;
    if (strcmp(scenario, "64k") == 0) {
        first = last = 0;
        def_iters = 1000000;
        def_ws = 512;
    } else if (strcmp(scenario, "256k") == 0) {
        first = last = 1;
        def_iters = 300000;
        def_ws = 128;
    } else if (strcmp(scenario, "2m") == 0) {
        first = last = 2;
        def_iters = 20000;
        def_ws = 16;
    } else if (strcmp(scenario, "mix") == 0) {
        first = 0;
        last = 2;
        def_iters = 60000;
        def_ws = 96;
    } else {
        fprintf(stderr, "large_sizes: unknown --scenario '%s'\n", scenario);
        return 2;
    }
    if (iters == 0)
        iters = def_iters;
    if (ws == 0)
        ws = def_ws;

    blk *set = calloc(ws, sizeof *set);
    if (set == NULL)
        bench_oom(ws * sizeof *set);
    bench_rng rng;
    bench_rng_seed(&rng, seed, 0);
    uint64_t checksum = 0;

    double t0 = bench_now();
    for (uint64_t i = 0; i < ws + iters; i++) {
        blk *b = i < ws ? &set[i] : &set[bench_rng_below(&rng, ws)];
        if (i >= ws) {
            checksum += bench_verify(b->p, b->size, b->tag);
            free(b->p);
        }
        uint64_t n = nominal[bench_rng_range(&rng, (uint64_t)first,
                                             (uint64_t)last)];
        uint64_t spread = n * jitter / 100;
        b->size = bench_rng_range(&rng, n - spread, n + spread);
        b->tag = bench_rng_next(&rng);
        b->p = bench_malloc(b->size);
        bench_touch(b->p, b->size, b->tag);
    }
    for (uint64_t i = 0; i < ws; i++) {
        checksum += bench_verify(set[i].p, set[i].size, set[i].tag);
        free(set[i].p);
    }
    double secs = bench_now() - t0;

    free(set);
    bench_report(2 * (ws + iters), secs, checksum);
    return 0;
}
