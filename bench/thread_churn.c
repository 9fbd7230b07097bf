/* thread_churn - many short-lived threads.
 *
 * The main thread starts `total` threads, at most `threads` at a time.
 * Each one allocates `per` small blocks (16..512 B) and a few mid-size ones,
 * frees most of them, and leaves the rest (one in `leave`) to the main
 * thread, which frees them after joining it: after their owner has exited.
 * Measures thread start-up and tear-down inside the allocator (creating a
 * heap, flushing caches, abandoning and adopting slabs) and the free of a
 * dead thread's blocks. Models a thread-per-request server or a program
 * that runs short tasks on new threads.
 */
#include "bench_common.h"

typedef struct left {
    void *p;
    uint64_t size;
    uint64_t tag;
} left;

typedef struct task {
    uint64_t index;      /* which thread of the run this is */
    uint64_t seed;
    left *left;          /* blocks left for the main thread */
    uint64_t nleft;
    bench_thread_result res;
} task;

static uint64_t g_per, g_leave;

static void *run(void *arg)
{
    task *t = arg;
    bench_rng rng;
    bench_rng_seed(&rng, t->seed, t->index + 1);
    void **ptrs = bench_malloc(g_per * sizeof *ptrs);
    uint64_t *sizes = bench_malloc(g_per * sizeof *sizes);
    uint64_t *tags = bench_malloc(g_per * sizeof *tags);
    uint64_t checksum = 0, ops = 3;
    for (uint64_t i = 0; i < g_per; i++) {
        sizes[i] = bench_rng_percent(&rng, 3) ? bench_rng_range(&rng, 2048, 16384)
                                              : bench_rng_range(&rng, 16, 512);
        tags[i] = bench_rng_next(&rng);
        ptrs[i] = bench_malloc(sizes[i]);
        bench_touch(ptrs[i], sizes[i], tags[i]);
    }
    ops += g_per;
    t->nleft = 0;
    for (uint64_t i = 0; i < g_per; i++) {
        if (g_leave != 0 && i % g_leave == 0) {
            t->left[t->nleft++] = (left){ ptrs[i], sizes[i], tags[i] };
            continue;
        }
        checksum += bench_verify(ptrs[i], sizes[i], tags[i]);
        free(ptrs[i]);
        ops++;
    }
    free(ptrs);
    free(sizes);
    free(tags);
    ops += 3;
    t->res.ops = ops;
    t->res.checksum = checksum;
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 4, total = 6000, per = 200, leave = 10, seed = 1;
    bench_opt opts[] = {
        { "threads", BENCH_OPT_U64, &threads, "threads alive at once" },
        { "iters", BENCH_OPT_U64, &total, "threads started in total" },
        { "per", BENCH_OPT_U64, &per, "blocks each thread allocates" },
        { "leave", BENCH_OPT_U64, &leave,
          "one block in this many is freed by main (0: none)" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Thread churn: many short-lived threads, some of whose "
                     "blocks are freed after they exit.",
                     opts, BENCH_NOPTS(opts));
    bench_require(threads >= 1 && threads <= 1024, "--threads 1..1024");
    bench_require(per >= 1, "--per >= 1");

    g_per = per;
    g_leave = leave;
    task *tasks = calloc(threads, sizeof *tasks);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (tasks == NULL || tids == NULL)
        bench_oom(threads * sizeof *tasks);
    for (unsigned i = 0; i < threads; i++) {
        tasks[i].left = calloc(per, sizeof(left));
        if (tasks[i].left == NULL)
            bench_oom(per * sizeof(left));
    }
    uint64_t checksum = 0, ops = 0;

    double t0 = bench_now();
    for (uint64_t started = 0; started < total; started += threads) {
        uint64_t n = total - started < threads ? total - started : threads;
        for (unsigned i = 0; i < n; i++) {
            tasks[i].index = started + i;
            tasks[i].seed = seed;
            bench_thread_create(&tids[i], run, &tasks[i]);
        }
        for (unsigned i = 0; i < n; i++) {
            bench_thread_join(tids[i]);
            ops += tasks[i].res.ops;
            checksum += tasks[i].res.checksum;
            for (uint64_t k = 0; k < tasks[i].nleft; k++) {
                left *l = &tasks[i].left[k];
                checksum += bench_verify(l->p, l->size, l->tag);
                free(l->p);
                ops++;
            }
        }
    }
    double secs = bench_now() - t0;

    for (unsigned i = 0; i < threads; i++)
        free(tasks[i].left);
    free(tasks);
    free(tids);
    bench_report(ops, secs, checksum);
    return 0;
}
