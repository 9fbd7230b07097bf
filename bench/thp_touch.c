/* thp_touch - how long this machine takes to fault in fresh memory with and
 * without transparent huge pages, no allocator involved.
 *
 * Each round maps `mib` MiB twice with mmap, 2 MiB aligned: one region
 * advised MADV_HUGEPAGE, one MADV_NOHUGEPAGE (the order alternates), writes
 * one byte per 4 KiB page of each and times it, then unmaps both. It prints
 * one line per round and the minimum, median and maximum of each kind.
 *
 * Why it exists: huge_blocks under HAKMEM_THP=auto is bimodal on some
 * machines, and this separates the allocator from the machine. On the
 * virtual machines this project is measured on, the kernel's zeroing of a
 * fresh huge page (clear_page_erms in `perf record -e cpu-clock`) is now and
 * then 20-30x slower than usual, with the same fault counts and no
 * compaction (compact_stall does not move): the guest's 2 MiB pages land on
 * memory the host has not backed yet. 4 KiB pages come from recently freed
 * memory and do not show it. See docs/BENCHMARKS.md ("THP on this machine").
 *
 *     build-bench/bench/thp_touch --mib 96 --rounds 10
 *
 * Not a comparison benchmark (bench/compare.py does not run it): it calls
 * mmap itself, so the preloaded allocator does not matter.
 */
#include "bench_common.h"

#include <stdbool.h>
#include <sys/mman.h>

#define TWO_MIB ((size_t)2 << 20)

/* Maps len bytes 2 MiB aligned (the slack is unmapped), advised as asked. */
static unsigned char *map_aligned(size_t len, int advice)
{
    size_t span = len + TWO_MIB;
    unsigned char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        bench_oom(span);
    uintptr_t at = ((uintptr_t)raw + TWO_MIB - 1) & ~(uintptr_t)(TWO_MIB - 1);
    unsigned char *p = (unsigned char *)at;
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    size_t tail = (size_t)((raw + span) - (p + len));
    if (tail)
        munmap(p + len, tail);
    madvise(p, len, advice); /* ignored where the kernel has no THP */
    return p;
}

/* Milliseconds to write one byte per 4 KiB page of a fresh region. */
static double touch_ms(size_t len, int advice)
{
    unsigned char *p = map_aligned(len, advice);
    double t0 = bench_now();
    for (size_t off = 0; off < len; off += 4096)
        p[off] = 1;
    double ms = (bench_now() - t0) * 1e3;
    munmap(p, len);
    return ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summary(const char *what, double *ms, uint64_t n)
{
    qsort(ms, n, sizeof *ms, cmp_double);
    printf("%-7s min %7.1f ms  median %7.1f ms  max %7.1f ms\n", what, ms[0],
           ms[n / 2], ms[n - 1]);
}

int main(int argc, char **argv)
{
    uint64_t mib = 96, rounds = 10;
    bench_opt opts[] = {
        { "mib", BENCH_OPT_U64, &mib, "MiB touched per region" },
        { "rounds", BENCH_OPT_U64, &rounds, "rounds (one region of each kind)" },
    };
    bench_parse_args(argc, argv,
                     "First-touch time of fresh memory with and without "
                     "transparent huge pages (mmap, no allocator).",
                     opts, BENCH_NOPTS(opts));
    bench_require(mib >= 2 && rounds >= 1 && rounds <= 1000,
                  "mib >= 2, 1 <= rounds <= 1000");
    size_t len = (size_t)mib << 20 & ~(TWO_MIB - 1);
    double huge[1000], small[1000];
    for (uint64_t r = 0; r < rounds; r++) {
        bool huge_first = r % 2 == 0;
        if (huge_first)
            huge[r] = touch_ms(len, MADV_HUGEPAGE);
        small[r] = touch_ms(len, MADV_NOHUGEPAGE);
        if (!huge_first)
            huge[r] = touch_ms(len, MADV_HUGEPAGE);
        printf("round %3" PRIu64 ": huge pages %7.1f ms, 4 KiB pages %7.1f ms\n", r,
               huge[r], small[r]);
    }
    summary("huge", huge, rounds);
    summary("4 KiB", small, rounds);
    return 0;
}
