/* larson - server simulation in the style of the Larson benchmark.
 *
 * `threads` workers each own `slots` live blocks. A run is `rounds` rounds;
 * in each round every worker makes `steps` replacements (free a random
 * slot's block, allocate a new one of random size in [min, max]) and then
 * hands `handoff` of its blocks to the next worker, taking the same number
 * from the previous one. So a block is often freed by a thread other than
 * the one that allocated it, long after, as in a server whose requests move
 * between worker threads. Written for this project; only the idea comes
 * from Larson and Krishnan's benchmark.
 *
 * Determinism: each worker's PRNG stream and the hand-off pattern are fixed
 * by the arguments, and a block's checksum contribution comes from its own
 * tag, so the total does not depend on scheduling.
 */
#include "bench_common.h"

typedef struct block {
    void *p;
    uint32_t size;
    uint64_t tag;
} block;

typedef struct worker {
    block *slots;       /* the worker's live blocks */
    block *outbox;      /* blocks handed to the next worker this round */
    uint32_t *vacated;  /* slot indices emptied by the hand-off */
    uint64_t seed;
    unsigned id;
    bench_thread_result res; /* written once, at the end */
} worker;

static uint64_t g_rounds, g_steps, g_slots, g_handoff, g_min, g_max;
static unsigned g_threads;
static worker *g_workers;
static pthread_barrier_t g_barrier;

static void new_block(bench_rng *rng, block *b)
{
    uint32_t n = (uint32_t)bench_rng_range(rng, g_min, g_max);
    b->p = bench_malloc(n);
    b->size = n;
    /* Any tag works as long as it is a function of the arguments. */
    b->tag = bench_rng_next(rng);
    bench_touch(b->p, n, b->tag);
}

static uint64_t drop_block(block *b)
{
    uint64_t sum = bench_verify(b->p, b->size, b->tag);
    free(b->p);
    return sum;
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    worker *prev = &g_workers[(w->id + g_threads - 1) % g_threads];
    /* The PRNG and the sums live on this thread's stack: nothing the loop
     * writes shares a cache line with another worker's. */
    bench_rng rng;
    bench_rng_seed(&rng, w->seed, w->id + 1);
    uint64_t ops = 0, checksum = 0;

    for (uint64_t i = 0; i < g_slots; i++)
        new_block(&rng, &w->slots[i]);
    ops += g_slots;

    for (uint64_t r = 0; r < g_rounds; r++) {
        for (uint64_t s = 0; s < g_steps; s++) {
            block *b = &w->slots[bench_rng_below(&rng, g_slots)];
            checksum += drop_block(b);
            new_block(&rng, b);
        }
        ops += 2 * g_steps;
        /* Hand `handoff` distinct random slots to the next worker: a
         * partial Fisher-Yates pick over slot indices. */
        for (uint64_t h = 0; h < g_handoff; h++) {
            uint32_t k = (uint32_t)(h + bench_rng_below(&rng, g_slots - h));
            uint32_t tmp = w->vacated[h];
            w->vacated[h] = w->vacated[k];
            w->vacated[k] = tmp;
            w->outbox[h] = w->slots[w->vacated[h]];
        }
        pthread_barrier_wait(&g_barrier);
        for (uint64_t h = 0; h < g_handoff; h++)
            w->slots[w->vacated[h]] = prev->outbox[h];
        pthread_barrier_wait(&g_barrier);
    }

    for (uint64_t i = 0; i < g_slots; i++)
        checksum += drop_block(&w->slots[i]);
    ops += g_slots;
    w->res.ops = ops;
    w->res.checksum = checksum;
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 2, rounds = 300, steps = 20000, slots = 4000;
    uint64_t handoff = 500, min = 8, max = 1024, seed = 1;
    bench_opt opts[] = {
        { "threads", BENCH_OPT_U64, &threads, "worker threads" },
        { "rounds", BENCH_OPT_U64, &rounds, "rounds (hand-off after each)" },
        { "steps", BENCH_OPT_U64, &steps, "replacements per worker per round" },
        { "slots", BENCH_OPT_U64, &slots, "live blocks per worker" },
        { "handoff", BENCH_OPT_U64, &handoff, "blocks handed on per round" },
        { "min", BENCH_OPT_U64, &min, "smallest size in bytes" },
        { "max", BENCH_OPT_U64, &max, "largest size in bytes" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Larson-style server simulation: workers replace "
                     "random-size blocks and pass some to the next worker "
                     "every round.",
                     opts, BENCH_NOPTS(opts));
    bench_require(threads >= 1 && threads <= 1024, "--threads 1..1024");
    bench_require(slots >= 1 && slots <= UINT32_MAX, "--slots >= 1");
    bench_require(handoff <= slots, "--handoff <= --slots");
    bench_require(min <= max && max < (UINT64_C(1) << 31), "min <= max < 2 GiB");

    g_threads = (unsigned)threads;
    g_rounds = rounds;
    g_steps = steps;
    g_slots = slots;
    g_handoff = handoff;
    g_min = min;
    g_max = max;
    g_workers = calloc(threads, sizeof *g_workers);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (g_workers == NULL || tids == NULL)
        bench_oom(threads * sizeof *g_workers);
    for (unsigned t = 0; t < g_threads; t++) {
        worker *w = &g_workers[t];
        w->id = t;
        w->slots = calloc(slots, sizeof *w->slots);
        w->outbox = calloc(handoff + 1, sizeof *w->outbox);
        w->vacated = calloc(slots, sizeof *w->vacated);
        if (w->slots == NULL || w->outbox == NULL || w->vacated == NULL)
            bench_oom(slots * sizeof *w->slots);
        for (uint64_t i = 0; i < slots; i++)
            w->vacated[i] = (uint32_t)i;
        w->seed = seed;
    }
    pthread_barrier_init(&g_barrier, NULL, g_threads);

    double t0 = bench_now();
    for (unsigned t = 0; t < g_threads; t++)
        bench_thread_create(&tids[t], run_worker, &g_workers[t]);
    for (unsigned t = 0; t < g_threads; t++)
        bench_thread_join(tids[t]);
    double secs = bench_now() - t0;

    uint64_t ops = 0, checksum = 0;
    for (unsigned t = 0; t < g_threads; t++) {
        ops += g_workers[t].res.ops;
        checksum += g_workers[t].res.checksum;
        free(g_workers[t].slots);
        free(g_workers[t].outbox);
        free(g_workers[t].vacated);
    }
    pthread_barrier_destroy(&g_barrier);
    free(g_workers);
    free(tids);
    bench_report(ops, secs, checksum);
    return 0;
}
