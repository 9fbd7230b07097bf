/* false_sharing - threads writing to small blocks allocated together.
 *
 * Two phases of `rounds` rounds each, with `threads` worker threads:
 *  - passive: each round the main thread allocates one small block per
 *    worker, one right after the other, and hands them out; each worker
 *    writes its block `writes` times; the workers free the blocks (a
 *    cross-thread free);
 *  - active: each round every worker allocates its own small block, writes
 *    it `writes` times and frees it.
 * When an allocator puts the blocks of different threads in the same cache
 * line, every write makes the line bounce between cores and the phase runs
 * many times slower. Here `ops` counts the writes, not allocator calls:
 * the allocator's only influence is where it puts the blocks. On a single
 * core there is no bouncing and the result says nothing.
 */
#include "bench_common.h"

typedef struct worker {
    unsigned id;
    volatile uint64_t *block; /* passive phase: handed in by main */
    bench_thread_result res;
} worker;

static uint64_t g_rounds, g_writes, g_size;
static pthread_barrier_t g_start, g_done;

/* Increments the block's word `g_writes` times through a volatile pointer,
 * so that every write reaches memory (a short dependency chain: the cost of
 * losing the cache line shows). Returns the final value. */
static uint64_t hammer(volatile uint64_t *p, uint64_t seed)
{
    *p = seed;
    for (uint64_t i = 0; i < g_writes; i++)
        *p += 1;
    return *p;
}

static void *run(void *arg)
{
    worker *w = arg;
    uint64_t checksum = 0;
    /* Passive: main allocates, we write, we free. */
    for (uint64_t r = 0; r < g_rounds; r++) {
        pthread_barrier_wait(&g_start);
        checksum += hammer(w->block, r * 1000 + w->id);
        free((void *)w->block);
        pthread_barrier_wait(&g_done);
    }
    /* Active: we allocate, write and free. */
    for (uint64_t r = 0; r < g_rounds; r++) {
        pthread_barrier_wait(&g_start);
        volatile uint64_t *p = bench_malloc(g_size);
        checksum += hammer(p, r * 1000 + w->id + 7);
        free((void *)p);
        pthread_barrier_wait(&g_done);
    }
    w->res.checksum = checksum;
    w->res.ops = 2 * g_rounds * g_writes;
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 2, rounds = 40, writes = 5000000, size = 16;
    bench_opt opts[] = {
        { "threads", BENCH_OPT_U64, &threads, "worker threads" },
        { "rounds", BENCH_OPT_U64, &rounds, "rounds per phase" },
        { "writes", BENCH_OPT_U64, &writes, "writes per block per round" },
        { "size", BENCH_OPT_U64, &size, "block size in bytes (>= 8)" },
    };
    bench_parse_args(argc, argv,
                     "False sharing: workers write small blocks that the "
                     "main thread allocated together (passive) or that they "
                     "allocated themselves at the same time (active).",
                     opts, BENCH_NOPTS(opts));
    bench_require(threads >= 1 && threads <= 1024, "--threads 1..1024");
    bench_require(size >= 8, "--size >= 8");
    g_rounds = rounds;
    g_writes = writes;
    g_size = size;

    worker *ws = calloc(threads, sizeof *ws);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (ws == NULL || tids == NULL)
        bench_oom(threads * sizeof *ws);
    pthread_barrier_init(&g_start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&g_done, NULL, (unsigned)threads + 1);

    double t0 = bench_now();
    for (unsigned i = 0; i < threads; i++) {
        ws[i].id = i;
        bench_thread_create(&tids[i], run, &ws[i]);
    }
    for (uint64_t r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < threads; i++)
            ws[i].block = bench_malloc(size);
        pthread_barrier_wait(&g_start);
        pthread_barrier_wait(&g_done);
    }
    for (uint64_t r = 0; r < rounds; r++) {
        pthread_barrier_wait(&g_start);
        pthread_barrier_wait(&g_done);
    }
    for (unsigned i = 0; i < threads; i++)
        bench_thread_join(tids[i]);
    double secs = bench_now() - t0;

    uint64_t ops = 0, checksum = 0;
    for (unsigned i = 0; i < threads; i++) {
        ops += ws[i].res.ops;
        checksum += ws[i].res.checksum;
    }
    pthread_barrier_destroy(&g_start);
    pthread_barrier_destroy(&g_done);
    free(ws);
    free(tids);
    bench_report(ops, secs, checksum);
    return 0;
}
