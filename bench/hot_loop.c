/* hot_loop - single-size hot loop.
 *
 * One thread allocates `batch` blocks of one size, writes and reads back a
 * few words of each, and frees them in the same order (batch 1: the
 * classic malloc/free pair). It measures the allocator's fast path and its
 * thread cache for one size class and little else.
 */
#include "bench_common.h"

int main(int argc, char **argv)
{
    uint64_t size = 32, iters = 30000000, batch = 100, seed = 1;
    bench_opt opts[] = {
        { "size", BENCH_OPT_U64, &size, "block size in bytes" },
        { "iters", BENCH_OPT_U64, &iters, "blocks allocated in total" },
        { "batch", BENCH_OPT_U64, &batch, "blocks live at once (1..65536)" },
        { "seed", BENCH_OPT_U64, &seed, "tag seed (the loop is not random)" },
    };
    bench_parse_args(argc, argv,
                     "Single-size hot loop: malloc `batch` blocks of --size "
                     "bytes, touch them, free them; repeat.",
                     opts, BENCH_NOPTS(opts));
    bench_require(batch >= 1 && batch <= 65536, "--batch must be 1..65536");

    void *slots[65536];
    uint64_t rounds = (iters + batch - 1) / batch;
    uint64_t checksum = 0, ops = 0;
    uint64_t tag = seed * 1000003u;

    double t0 = bench_now();
    for (uint64_t r = 0; r < rounds; r++) {
        for (uint64_t i = 0; i < batch; i++) {
            void *p = bench_malloc(size);
            bench_touch(p, size, tag + i);
            slots[i] = p;
        }
        for (uint64_t i = 0; i < batch; i++) {
            checksum += bench_verify(slots[i], size, tag + i);
            free(slots[i]);
        }
        ops += 2 * batch;
        tag += batch;
    }
    double secs = bench_now() - t0;
    bench_report(ops, secs, checksum);
    return 0;
}
