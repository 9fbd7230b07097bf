/* realloc_grow - realloc growth loop.
 *
 * One thread keeps `ws` growing buffers. Each step picks one at random and
 * grows it with realloc: usually by a few bytes (appending to a string),
 * sometimes by half its size (a vector doubling). It writes the new tail
 * and checks that the old tail survived the move. A buffer that reaches
 * `max` bytes is checked, freed and started again from nothing. The
 * buffers interleave, so a buffer cannot always grow in place; large ones
 * show whether realloc moves pages (mremap) or copies them. Models string
 * builders, vectors and read-a-file-into-a-growing-buffer loops.
 */
#include "bench_common.h"

typedef struct buf {
    unsigned char *p;
    uint64_t size;
    uint64_t last;  /* value written in the last 8 bytes */
    uint64_t first; /* value written in the first 8 bytes */
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

int main(int argc, char **argv)
{
    uint64_t iters = 3000000, ws = 64, max = 4 << 20, bigpct = 2, seed = 1;
    bench_opt opts[] = {
        { "iters", BENCH_OPT_U64, &iters, "realloc calls" },
        { "ws", BENCH_OPT_U64, &ws, "buffers growing at once" },
        { "max", BENCH_OPT_U64, &max, "size at which a buffer restarts" },
        { "big", BENCH_OPT_U64, &bigpct, "percent of steps that grow by half" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Realloc growth: interleaved buffers grown by small "
                     "appends and occasional halvings up to --max.",
                     opts, BENCH_NOPTS(opts));
    bench_require(ws >= 1 && max >= 64 && bigpct <= 100,
                  "ws >= 1, max >= 64, big <= 100");

    buf *set = calloc(ws, sizeof *set);
    if (set == NULL)
        bench_oom(ws * sizeof *set);
    bench_rng rng;
    bench_rng_seed(&rng, seed, 0);
    uint64_t checksum = 0, ops = 0;

    double t0 = bench_now();
    for (uint64_t i = 0; i < iters; i++) {
        buf *b = &set[bench_rng_below(&rng, ws)];
        uint64_t grow = bench_rng_percent(&rng, (unsigned)bigpct)
                            ? b->size / 2 + 16
                            : bench_rng_range(&rng, 1, 48);
        uint64_t n = b->size + grow;
        if (b->p != NULL && n > max) {
            checksum += check_buf(b);
            free(b->p);
            ops++;
            b->p = NULL;
            b->size = 0;
        }
        if (b->p == NULL) /* a fresh buffer holds at least its two words */
            n = bench_rng_range(&rng, 16, 64);
        if (b->p != NULL)
            checksum += check_buf(b);
        b->p = bench_realloc(b->p, n);
        ops++;
        if (b->size == 0) {
            b->first = bench_rng_next(&rng);
            memcpy(b->p, &b->first, sizeof b->first);
        }
        /* Old tail still there after the move? Then append. */
        if (b->size != 0) {
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
