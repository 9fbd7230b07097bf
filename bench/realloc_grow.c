/* realloc_grow - realloc growth loop.
 *
 * One thread keeps `ws` growing buffers. Each step picks one at random and
 * grows it with realloc by a small append (1..64 bytes) plus a random share
 * of its size (`pct` percent on average), so small buffers grow like
 * strings being appended to and large ones like vectors. It writes the new
 * tail and checks that the old tail survived. A buffer that reaches its
 * target size is checked, freed and started again; targets have a long
 * tail: most stop within 4 KiB, some at up to 64 KiB, a few at up to `max`.
 * The buffers interleave, so a buffer cannot always grow in place: the
 * time shows whether realloc extends blocks in place, moves pages (mremap)
 * or copies. Models string builders, vectors and read-a-file-into-a-growing-
 * buffer loops.
 */
#include "bench_common.h"

typedef struct buf {
    unsigned char *p;
    uint64_t size;
    uint64_t target; /* the buffer restarts when it would grow past this */
    uint64_t last;   /* value written in the last 8 bytes */
    uint64_t first;  /* value written in the first 8 bytes */
} buf;

static uint64_t check_buf(const buf *b)
{
    uint64_t head, tail;
    memcpy(&head, b->p, sizeof head);
    memcpy(&tail, b->p + b->size - sizeof tail, sizeof tail);
    if (head != b->first || tail != b->last) {
        fprintf(stderr, "realloc_grow: contents lost at %" PRIu64 " bytes\n",
                b->size);
        exit(3);
    }
    return bench_mix(head) + bench_mix(tail ^ b->size);
}

static uint64_t pick_target(bench_rng *r, uint64_t max)
{
    uint64_t k = bench_rng_below(r, 100), t;
    if (k < 80)
        t = bench_rng_range(r, 256, 4096);
    else if (k < 98)
        t = bench_rng_range(r, 4097, 65536);
    else
        t = bench_rng_range64(r, 65537, max);
    return t < max ? t : max;
}

int main(int argc, char **argv)
{
    uint64_t iters = 1500000, ws = 64, max = 4 << 20, pct = 12, seed = 1;
    bench_opt opts[] = {
        { "iters", BENCH_OPT_U64, &iters, "realloc calls" },
        { "ws", BENCH_OPT_U64, &ws, "buffers growing at once" },
        { "max", BENCH_OPT_U64, &max, "largest target size in bytes" },
        { "pct", BENCH_OPT_U64, &pct, "average growth, percent of size" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Realloc growth: interleaved buffers grown by appends "
                     "and by a share of their size, restarted at a target "
                     "size with a long tail.",
                     opts, BENCH_NOPTS(opts));
    bench_require(ws >= 1 && max >= 65536 && pct <= 100,
                  "ws >= 1, max >= 64K, pct <= 100");

    buf *set = calloc(ws, sizeof *set);
    if (set == NULL)
        bench_oom(ws * sizeof *set);
    bench_rng rng;
    bench_rng_seed(&rng, seed, 0);
    uint64_t checksum = 0, ops = 0;

    double t0 = bench_now();
    for (uint64_t i = 0; i < iters; i++) {
        buf *b = &set[bench_rng_below(&rng, ws)];
        uint64_t n = b->size + bench_rng_range(&rng, 1, 64) +
                     b->size * bench_rng_below(&rng, 2 * pct + 1) / 100;
        if (b->p != NULL && n > b->target) {
            checksum += check_buf(b);
            free(b->p);
            ops++;
            b->p = NULL;
            b->size = 0;
        }
        if (b->p == NULL) { /* a fresh buffer holds at least its two words */
            n = bench_rng_range(&rng, 16, 64);
            b->target = pick_target(&rng, max);
        } else {
            checksum += check_buf(b);
        }
        b->p = bench_realloc(b->p, n);
        ops++;
        if (b->size == 0) {
            b->first = bench_rng_next(&rng);
            memcpy(b->p, &b->first, sizeof b->first);
        } else {
            /* The old tail must have moved with the block. */
            uint64_t tail;
            memcpy(&tail, b->p + b->size - sizeof tail, sizeof tail);
            if (tail != b->last) {
                fprintf(stderr, "realloc_grow: realloc lost data\n");
                return 3;
            }
        }
        b->size = n;
        b->last = bench_rng_next(&rng);
        memcpy(b->p + n - sizeof b->last, &b->last, sizeof b->last);
    }
    for (uint64_t i = 0; i < ws; i++) {
        if (set[i].p != NULL) {
            checksum += check_buf(&set[i]);
            free(set[i].p);
            ops++;
        }
    }
    double secs = bench_now() - t0;

    free(set);
    bench_report(ops, secs, checksum);
    return 0;
}
