/* mt_mid - multi-threaded mid-size loop (8-32 KiB by default).
 *
 * Each of `threads` threads keeps `ws` live blocks of random size in
 * [min, max] and replaces a random one per step; it writes a word in every
 * 4 KiB of each new block and checks them before the free. The threads
 * share nothing, so this measures how an allocator's mid-size classes scale
 * across threads (per-thread caches versus a locked arena) and how many
 * pages the churn keeps resident. Models buffers of a few pages (I/O
 * buffers, small arrays) in a multi-threaded program.
 */
#include "bench_common.h"

typedef struct blk {
    void *p;
    uint32_t size;
    uint64_t tag;
} blk;

typedef struct task {
    uint64_t seed;
    unsigned id;
    bench_thread_result res;
} task;

static uint64_t g_iters, g_ws, g_min, g_max;

static void *run(void *arg)
{
    task *t = arg;
    bench_rng rng;
    bench_rng_seed(&rng, t->seed, t->id + 1);
    blk *set = calloc(g_ws, sizeof *set);
    if (set == NULL)
        bench_oom(g_ws * sizeof *set);
    uint64_t checksum = 0;
    for (uint64_t i = 0; i < g_ws; i++) {
        set[i].size = (uint32_t)bench_rng_range(&rng, g_min, g_max);
        set[i].tag = bench_rng_next(&rng);
        set[i].p = bench_malloc(set[i].size);
        bench_touch(set[i].p, set[i].size, set[i].tag);
    }
    for (uint64_t i = 0; i < g_iters; i++) {
        blk *b = &set[bench_rng_below(&rng, g_ws)];
        checksum += bench_verify(b->p, b->size, b->tag);
        free(b->p);
        b->size = (uint32_t)bench_rng_range(&rng, g_min, g_max);
        b->tag = bench_rng_next(&rng);
        b->p = bench_malloc(b->size);
        bench_touch(b->p, b->size, b->tag);
    }
    for (uint64_t i = 0; i < g_ws; i++) {
        checksum += bench_verify(set[i].p, set[i].size, set[i].tag);
        free(set[i].p);
    }
    free(set);
    t->res.ops = 2 * g_ws + 2 * g_iters;
    t->res.checksum = checksum;
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 2, iters = 2500000, ws = 64, min = 8192, max = 32768;
    uint64_t seed = 1;
    bench_opt opts[] = {
        { "threads", BENCH_OPT_U64, &threads, "threads" },
        { "iters", BENCH_OPT_U64, &iters, "replacements per thread" },
        { "ws", BENCH_OPT_U64, &ws, "live blocks per thread" },
        { "min", BENCH_OPT_U64, &min, "smallest size in bytes" },
        { "max", BENCH_OPT_U64, &max, "largest size in bytes" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Multi-threaded mid-size loop: each thread replaces "
                     "random blocks of its own working set.",
                     opts, BENCH_NOPTS(opts));
    bench_require(threads >= 1 && threads <= 1024, "--threads 1..1024");
    bench_require(ws >= 1, "--ws >= 1");
    bench_require(min <= max && max < (UINT64_C(1) << 31), "min <= max < 2 GiB");
    g_iters = iters;
    g_ws = ws;
    g_min = min;
    g_max = max;

    task *tasks = calloc(threads, sizeof *tasks);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (tasks == NULL || tids == NULL)
        bench_oom(threads * sizeof *tasks);

    double t0 = bench_now();
    for (unsigned i = 0; i < threads; i++) {
        tasks[i].id = i;
        tasks[i].seed = seed;
        bench_thread_create(&tids[i], run, &tasks[i]);
    }
    for (unsigned i = 0; i < threads; i++)
        bench_thread_join(tids[i]);
    double secs = bench_now() - t0;

    uint64_t ops = 0, checksum = 0;
    for (unsigned i = 0; i < threads; i++) {
        ops += tasks[i].res.ops;
        checksum += tasks[i].res.checksum;
    }
    free(tasks);
    free(tids);
    bench_report(ops, secs, checksum);
    return 0;
}
