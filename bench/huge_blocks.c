/* huge_blocks - large blocks of 5-25 MiB, written in full, freed and reallocated.
 *
 * One thread keeps `ws` blocks of random size in [min, max]; each step
 * frees a random one and allocates a new one, which it fills completely
 * (memset) before reading back a word per 4 KiB. Every allocator serves
 * these from their own mappings; what differs is whether freed mappings are
 * cached and reused (no page faults, but resident memory held), returned
 * at once (munmap, then page faults on every refill), or recycled with
 * transparent huge pages. Models image or matrix buffers, file loaders.
 */
#include "bench_common.h"

typedef struct blk {
    unsigned char *p;
    uint64_t size;
    uint64_t tag;
} blk;

/* Fills the block in full, then stamps the bench_touch words over it. */
static void fill(blk *b)
{
    memset(b->p, (int)(b->tag & 0xff), b->size);
    bench_touch(b->p, b->size, b->tag);
}

/* Checks the stamped words and one filler byte per 4 KiB. */
static uint64_t check(const blk *b)
{
    uint64_t sum = bench_verify(b->p, b->size, b->tag);
    unsigned char want = (unsigned char)(b->tag & 0xff);
    for (uint64_t off = 2048; off + 16 < b->size; off += 4096) {
        if (b->p[off] != want) {
            fprintf(stderr, "huge_blocks: block of %" PRIu64 " bytes corrupted\n",
                    b->size);
            exit(3);
        }
        sum += want;
    }
    return sum;
}

int main(int argc, char **argv)
{
    uint64_t iters = 100, ws = 4, min = 5 << 20, max = 25 << 20, seed = 1;
    bench_opt opts[] = {
        { "iters", BENCH_OPT_U64, &iters, "replacements" },
        { "ws", BENCH_OPT_U64, &ws, "live blocks" },
        { "min", BENCH_OPT_U64, &min, "smallest size in bytes" },
        { "max", BENCH_OPT_U64, &max, "largest size in bytes" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Huge blocks: replace blocks of 5-25 MiB, each written "
                     "in full.",
                     opts, BENCH_NOPTS(opts));
    bench_require(ws >= 1 && min >= 16 && min <= max, "ws >= 1, 16 <= min <= max");

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
            checksum += check(b);
            free(b->p);
        }
        b->size = bench_rng_range64(&rng, min, max);
        b->tag = bench_rng_next(&rng);
        b->p = bench_malloc(b->size);
        fill(b);
    }
    for (uint64_t i = 0; i < ws; i++) {
        checksum += check(&set[i]);
        free(set[i].p);
    }
    double secs = bench_now() - t0;

    free(set);
    bench_report(2 * (ws + iters), secs, checksum);
    return 0;
}
