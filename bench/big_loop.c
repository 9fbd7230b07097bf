/* big_loop - one big block allocated, used and freed in a loop.
 *
 * Each step mallocs a block of --size bytes, uses it and frees it, so
 * only one block is ever live. --use once writes one word in its first
 * page (a buffer allocated for a short message: what the allocation itself
 * costs); --use full writes every byte (memset) and reads a word per 4 KiB
 * back (a scratch buffer filled each time: what reuse saves in page
 * faults). An allocator that maps and unmaps the block each time pays an
 * mmap, a munmap and, with full, a page fault per page on every step; one
 * that caches the freed block pays none of them.
 */
#include "bench_common.h"

int main(int argc, char **argv)
{
    const char *use = "full";
    uint64_t size = 2 << 20, iters = 2000, seed = 1;
    bench_opt opts[] = {
        { "size", BENCH_OPT_U64, &size, "block size in bytes" },
        { "use", BENCH_OPT_STR, &use, "once (one word) or full (every byte)" },
        { "iters", BENCH_OPT_U64, &iters, "malloc/free pairs" },
        { "seed", BENCH_OPT_U64, &seed, "tag seed (the loop is not random)" },
    };
    bench_parse_args(argc, argv,
                     "One big block malloc'ed, used (--use once|full) and "
                     "freed, over and over.",
                     opts, BENCH_NOPTS(opts));
    int full = strcmp(use, "full") == 0;
    bench_require(full || strcmp(use, "once") == 0, "--use must be once or full");
    bench_require(size >= 4096, "--size must be at least 4096");

    uint64_t checksum = 0, tag = seed * 1000003u;
    double t0 = bench_now();
    for (uint64_t i = 0; i < iters; i++, tag++) {
        unsigned char *p = bench_malloc(size);
        if (full) {
            memset(p, (int)(tag & 0xff), size);
            for (uint64_t off = 0; off < size; off += 4096) checksum += p[off];
        } else {
            ((volatile uint64_t *)p)[0] = tag;
            checksum += ((volatile uint64_t *)p)[0] & 0xff;
        }
        free(p);
    }
    double secs = bench_now() - t0;
    bench_report(2 * iters, secs, checksum);
    return 0;
}
