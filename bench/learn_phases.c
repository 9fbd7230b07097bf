/* learn_phases - a workload in three phases, each suiting a different
 * policy of the ACE lane (the proof that learning pays: issue 10,
 * docs/BENCHMARKS.md "The learner").
 *
 * Every frame allocates a working set of buffers, writes a word in each of
 * their 4 KiB pages (a program that fills its buffers), reads the header
 * and trailer back, and frees them all. The phases run one after the other
 * in one process:
 *
 *   A  --frames-a frames of --ws-a buffers of 40-48 KiB: two ACE classes,
 *      many blocks each; a large per-class cap turns every allocation into
 *      a cache hit, the default one (5-6 blocks) misses about half;
 *   B  --frames-b frames of --ws-b buffers of 288-312 KiB: one class
 *      (320 KiB), whose default cap is a single block;
 *   C  --frames-c frames of --ws-c buffers of any size from 33 KiB to
 *      1 MiB (log-uniform): every ACE class a few blocks at a time, their
 *      numbers varying from frame to frame; large caps keep each class's
 *      worst frame cached, so they cost peak RSS and gain little.
 *
 * The sizes depend on --seed only, so the checksum is the same under every
 * allocator and policy. --think xorshift steps of work between frames let
 * the allocator's delayed purges come due, as in a real program.
 *
 * ops = allocator calls (malloc and free).
 */
#include "bench_common.h"

#define WS_MAX 256

struct phase {
    uint64_t frames, ws;
    uint64_t lo, hi; /* sizes in bytes, inclusive */
    int log_uniform;
};

/* A size in [lo, hi]: uniform, or uniform in log2 (by 1/64 steps of an
 * octave, without libm). */
static size_t draw(bench_rng *rng, const struct phase *ph)
{
    if (!ph->log_uniform)
        return (size_t)bench_rng_range(rng, ph->lo, ph->hi);
    for (;;) {
        uint64_t octaves = 0;
        while ((ph->lo << (octaves + 1)) <= ph->hi)
            octaves++;
        uint64_t o = bench_rng_below(rng, octaves + 1);
        uint64_t base = ph->lo << o;
        /* a point of the octave [base, 2 base) */
        uint64_t s = base + bench_rng_below(rng, base);
        if (s <= ph->hi)
            return (size_t)s;
    }
}

/* CPU seconds of the whole process (every thread, the allocator's too):
 * on a shared machine a phase's wall time says little. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    uint64_t frames_a = 200000, frames_b = 150000, frames_c = 60000;
    uint64_t ws_a = 40, ws_b = 12, ws_c = 24, think = 2000, seed = 1;
    bench_opt opts[] = {
        { "frames-a", BENCH_OPT_U64, &frames_a, "frames of phase A (40-48 KiB)" },
        { "frames-b", BENCH_OPT_U64, &frames_b, "frames of phase B (288-312 KiB)" },
        { "frames-c", BENCH_OPT_U64, &frames_c, "frames of phase C (33 KiB-1 MiB)" },
        { "ws-a", BENCH_OPT_U64, &ws_a, "buffers per frame in phase A" },
        { "ws-b", BENCH_OPT_U64, &ws_b, "buffers per frame in phase B" },
        { "ws-c", BENCH_OPT_U64, &ws_c, "buffers per frame in phase C" },
        { "think", BENCH_OPT_U64, &think, "work between frames, in xorshift steps" },
        { "seed", BENCH_OPT_U64, &seed, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
                     "Three phases of large buffers (40-48 KiB, 288-312 KiB, "
                     "33 KiB-1 MiB), each suiting another ACE policy.",
                     opts, BENCH_NOPTS(opts));
    bench_require(ws_a <= WS_MAX && ws_b <= WS_MAX && ws_c <= WS_MAX,
                  "--ws-* at most 256");
    const struct phase phases[3] = {
        { frames_a, ws_a, 40 << 10, 48 << 10, 0 },
        { frames_b, ws_b, 288 << 10, 312 << 10, 0 },
        { frames_c, ws_c, 33 << 10, 1 << 20, 1 },
    };

    static void *blk[WS_MAX];
    static size_t sz[WS_MAX];
    uint64_t ops = 0, sum = 0, f = 0;
    bench_rng rng;
    bench_rng_seed(&rng, seed, 0);
    double t0 = bench_now();
    for (int p = 0; p < 3; p++) {
        const struct phase *ph = &phases[p];
        double tp = bench_now(), cp = cpu_now();
        uint64_t ops0 = ops;
        for (uint64_t i = 0; i < ph->frames; i++, f++) {
            for (uint64_t k = 0; k < ph->ws; k++) {
                sz[k] = draw(&rng, ph);
                blk[k] = bench_malloc(sz[k]);
                bench_touch(blk[k], sz[k], f * WS_MAX + k);
                ops++;
            }
            for (uint64_t k = 0; k < ph->ws; k++) {
                uint64_t head, tail;
                memcpy(&head, blk[k], sizeof head);
                memcpy(&tail, (char *)blk[k] + sz[k] - sizeof tail, sizeof tail);
                if (head != f * WS_MAX + k || tail != ~head) {
                    fprintf(stderr, "learn_phases: buffer %" PRIu64 " of frame %" PRIu64
                                    " corrupted\n", k, f);
                    return 1;
                }
                sum += bench_mix(head ^ sz[k]);
            }
            for (uint64_t k = 0; k < ph->ws; k++) {
                free(blk[k]);
                ops++;
            }
            uint64_t x = f + 1;
            for (uint64_t k = 0; k < think; k++)
                x = bench_mix(x);
            sum += x & 0xff;
        }
        /* per phase, on stderr (the result line stays the last of stdout) */
        double dt = bench_now() - tp;
        fprintf(stderr, "learn_phases: phase %c: %.3f s, %.0f ops/s, CPU %.3f s\n", 'A' + p, dt,
                dt > 0 ? (double)(ops - ops0) / dt : 0.0, cpu_now() - cp);
    }
    double secs = bench_now() - t0;
    bench_report(ops, secs, sum);
    return 0;
}
