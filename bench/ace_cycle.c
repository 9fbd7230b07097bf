/* ace_cycle - frames of 64-512 KiB buffers whose working set the ACE
 * lane's default per-class caps are too small for (the learner's benchmark).
 *
 * Each frame allocates its buffers (a set of 64-512 KiB sizes, several per
 * size class), writes a header and a trailer word in each (a program that
 * fills only part of its buffers, so that the allocator's work shows),
 * reads them back, and frees them all. Frames alternate between two sets of
 * sizes, `phase` frames each (a decoder switching between two stream
 * formats, a server between two request types): when a set comes back, its
 * buffers have been away for a whole phase. With caches that hold both
 * working sets every buffer comes warm from a cache; with caches smaller
 * than the working set a frame takes the slow path, its buffers go back to
 * their chunks, and when they have stayed away longer than the purge delay
 * their pages are purged and must be faulted in again. The default caps of
 * hakmem (as many blocks as fit in 256 KiB per class and thread) are
 * smaller than this working set on purpose: HAKMEM_LEARN=1 should find
 * larger caps, within HAKMEM_BUDGET_MB.
 *
 * ops = allocator calls (malloc and free).
 */
#include "bench_common.h"

/* The two sets, in KiB: several blocks per ACE class each. */
static const uint64_t set_a[] = {64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
                                 96, 96, 96, 96, 96, 96, 96, 96, 128, 128, 128, 128, 128, 128};
static const uint64_t set_b[] = {256, 256, 256, 256, 256, 256, 256, 256,
                                 320, 320, 320, 320, 320, 320, 512, 512, 512, 512, 512, 512};
#define NA (sizeof set_a / sizeof set_a[0])
#define NB (sizeof set_b / sizeof set_b[0])

int main(int argc, char **argv)
{
    uint64_t frames = 500000, phase = 1, think = 200, seed = 1;
    bench_opt opts[] = {
        { "frames", BENCH_OPT_U64, &frames, "frames (each allocates and frees its buffers)" },
        { "phase", BENCH_OPT_U64, &phase, "frames before the other set of sizes takes over" },
        { "think", BENCH_OPT_U64, &think,
          "work between frames, in xorshift steps (time for purges to come due)" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Frames of 64-512 KiB buffers in two alternating working sets "
                     "larger than the default per-class caps.",
                     opts, BENCH_NOPTS(opts));
    bench_require(phase > 0, "--phase must be positive");

    void *blk[NA > NB ? NA : NB];
    size_t sz[NA > NB ? NA : NB];
    uint64_t ops = 0, sum = 0;
    bench_rng rng;
    bench_rng_seed(&rng, seed, 0);
    double t0 = bench_now();
    for (uint64_t f = 0; f < frames; f++) {
        int b = (f / phase) & 1;
        const uint64_t *set = b ? set_b : set_a;
        size_t n = b ? NB : NA;
        for (size_t i = 0; i < n; i++) {
            /* a little jitter inside the class, as real buffers have */
            size_t size = (size_t)(set[i] << 10) - (size_t)bench_rng_below(&rng, 4096);
            blk[i] = bench_malloc(size);
            sz[i] = size;
            uint64_t head = f * 64 + i, tail = ~head;
            memcpy(blk[i], &head, sizeof head);
            memcpy((char *)blk[i] + size - sizeof tail, &tail, sizeof tail);
            ops++;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t head, tail;
            memcpy(&head, blk[i], sizeof head);
            memcpy(&tail, (char *)blk[i] + sz[i] - sizeof tail, sizeof tail);
            if (head != f * 64 + i || tail != ~head) {
                fprintf(stderr, "ace_cycle: buffer %zu of frame %" PRIu64 " corrupted\n", i, f);
                return 1;
            }
            sum += bench_mix(head ^ sz[i]);
        }
        for (size_t i = 0; i < n; i++) {
            free(blk[i]);
            ops++;
        }
        /* think: the program's own work between frames */
        uint64_t x = f + 1;
        for (uint64_t k = 0; k < think; k++) x = bench_mix(x);
        sum += x & 0xff;
    }
    double secs = bench_now() - t0;
    bench_report(ops, secs, sum);
    return 0;
}
