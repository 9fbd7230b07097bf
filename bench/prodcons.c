/* prodcons - producer/consumer cross-thread free.
 *
 * `threads` threads form threads/2 pairs (at least one pair). In each pair
 * the producer allocates blocks of random size in [min, max], writes them
 * and pushes them through a bounded single-producer/single-consumer ring;
 * the consumer checks and frees them. Every free is a free of another
 * thread's block: this measures the remote-free path (atomic lists,
 * returning blocks to their owner) and how well the producer's cache is
 * refilled with the blocks the consumer gave back. Models a pipeline or a
 * message queue.
 */
#include "bench_common.h"

#include <stdatomic.h>

#define RING_SIZE 1024u /* power of two */

typedef struct item {
    void *p;
    uint64_t tag;  /* what bench_touch wrote into the block */
    uint64_t size; /* bytes */
} item;

typedef struct ring {
    _Alignas(64) _Atomic uint64_t head; /* next slot the consumer reads */
    _Alignas(64) _Atomic uint64_t tail; /* next slot the producer writes */
    _Alignas(64) item slot[RING_SIZE];
} ring;

typedef struct pair {
    ring q;
    uint64_t count;  /* blocks the producer makes */
    uint64_t seed;
    unsigned id;
    bench_thread_result prod, cons;
} pair;

static uint64_t g_min, g_max;

/* Spins a little, then yields: on a machine with fewer cores than threads
 * a pure spin would burn the peer's time slice. */
static void backoff(unsigned *spins)
{
    if (++*spins > 64) {
        sched_yield();
        *spins = 0;
    }
}

static void *producer(void *arg)
{
    pair *pr = arg;
    bench_rng rng;
    bench_rng_seed(&rng, pr->seed, (uint64_t)pr->id + 1);
    uint64_t tail = 0;
    for (uint64_t i = 0; i < pr->count; i++) {
        item it;
        it.size = bench_rng_range(&rng, g_min, g_max);
        it.tag = bench_rng_next(&rng);
        it.p = bench_malloc(it.size);
        bench_touch(it.p, it.size, it.tag);
        unsigned spins = 0;
        while (tail - atomic_load_explicit(&pr->q.head, memory_order_acquire) >=
               RING_SIZE)
            backoff(&spins);
        pr->q.slot[tail % RING_SIZE] = it;
        atomic_store_explicit(&pr->q.tail, ++tail, memory_order_release);
    }
    pr->prod.ops = pr->count;
    return NULL;
}

static void *consumer(void *arg)
{
    pair *pr = arg;
    uint64_t head = 0, checksum = 0;
    while (head < pr->count) {
        unsigned spins = 0;
        uint64_t tail;
        while ((tail = atomic_load_explicit(&pr->q.tail,
                                            memory_order_acquire)) == head)
            backoff(&spins);
        for (; head < tail; head++) {
            item it = pr->q.slot[head % RING_SIZE];
            checksum += bench_verify(it.p, it.size, it.tag);
            free(it.p);
            if (head % 32 == 31) /* give slots back as we go */
                atomic_store_explicit(&pr->q.head, head + 1,
                                      memory_order_release);
        }
        atomic_store_explicit(&pr->q.head, head, memory_order_release);
    }
    pr->cons.ops = pr->count;
    pr->cons.checksum = checksum;
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 2, count = 2000000, min = 16, max = 512, seed = 1;
    bench_opt opts[] = {
        { "threads", BENCH_OPT_U64, &threads, "threads (pairs = threads/2)" },
        { "iters", BENCH_OPT_U64, &count, "blocks passed in total" },
        { "min", BENCH_OPT_U64, &min, "smallest size in bytes" },
        { "max", BENCH_OPT_U64, &max, "largest size in bytes" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Producer/consumer: producers allocate, consumers free "
                     "(every free is a cross-thread free).",
                     opts, BENCH_NOPTS(opts));
    bench_require(threads >= 1 && threads <= 1024, "--threads 1..1024");
    bench_require(min <= max && max < (UINT64_C(1) << 31), "min <= max < 2 GiB");
    g_min = min;
    g_max = max;

    unsigned npairs = threads >= 2 ? (unsigned)(threads / 2) : 1;
    pair *pairs = aligned_alloc(64, ((npairs * sizeof(pair)) + 63) / 64 * 64);
    pthread_t *tids = calloc(2 * (size_t)npairs, sizeof *tids);
    if (pairs == NULL || tids == NULL)
        bench_oom(npairs * sizeof(pair));
    memset(pairs, 0, npairs * sizeof(pair));
    for (unsigned i = 0; i < npairs; i++) {
        pairs[i].id = i;
        pairs[i].seed = seed;
        /* Split the total so that it does not depend on the pair count
         * rounding: the first pairs take the remainder. */
        pairs[i].count = count / npairs + (i < count % npairs);
        atomic_init(&pairs[i].q.head, 0);
        atomic_init(&pairs[i].q.tail, 0);
    }

    double t0 = bench_now();
    for (unsigned i = 0; i < npairs; i++) {
        bench_thread_create(&tids[2 * i], consumer, &pairs[i]);
        bench_thread_create(&tids[2 * i + 1], producer, &pairs[i]);
    }
    for (unsigned i = 0; i < 2 * npairs; i++)
        bench_thread_join(tids[i]);
    double secs = bench_now() - t0;

    uint64_t ops = 0, checksum = 0;
    for (unsigned i = 0; i < npairs; i++) {
        ops += pairs[i].prod.ops + pairs[i].cons.ops;
        checksum += pairs[i].cons.checksum;
    }
    free(pairs);
    free(tids);
    bench_report(ops, secs, checksum);
    return 0;
}
