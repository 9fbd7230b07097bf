/*
 * huge_os.c: the OS policies on fresh mappings (lib/os_policy.c), seen from
 * outside: one check per run, chosen by argv[1], with the HAKMEM_*
 * variables tests/integration/meson.build sets for it. Exit 0: passed;
 * 1: failed (with a message); 77: skipped (meson's code), with the reason.
 *
 *   thp auto|off|on    THP advice as /proc/self/smaps shows it
 *                      (THPeligible, AnonHugePages)
 *   prefault 0|1|2     page faults (ru_minflt) and RSS at map time and at
 *                      the program's first touch, for a big block and for a
 *                      fresh segment of the lane that serves 64 B
 *   numa 0|1           the NUMA policy of a big block (/proc/self/numa_maps)
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hakmem.h"

#ifndef HAK_TEST_BENCH_MINIMAL
#define HAK_TEST_BENCH_MINIMAL 0
#endif
#ifndef HAK_TEST_THP
#define HAK_TEST_THP 1
#endif
#ifndef HAK_TEST_PREFAULT
#define HAK_TEST_PREFAULT 1
#endif
#ifndef HAK_TEST_NUMA
#define HAK_TEST_NUMA 0
#endif
#ifndef HAK_TEST_SECURE
#define HAK_TEST_SECURE 0
#endif
#ifndef HAK_TEST_SANITIZED
#define HAK_TEST_SANITIZED 0
#endif

#define MiB ((size_t)1 << 20)
#define KiB ((size_t)1 << 10)

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void skip(const char *why) {
    printf("SKIP: %s\n", why);
    exit(77);
}

static long minflt(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* Resident bytes, read without allocating (between two fault counts). */
static size_t rss(void) {
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *s = strchr(buf, ' ');
    return s ? strtoul(s + 1, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* The value of field (e.g. "AnonHugePages:") in the /proc/self/smaps entry
 * of the mapping that holds p, in kB; -1 when not found. */
static long smaps_field(const void *p, const char *field) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    bool inside = false;
    long value = -1;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        uintptr_t lo, hi;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2) { /* a mapping's line */
            inside = a >= lo && a < hi;
            continue;
        }
        if (inside && strncmp(line, field, strlen(field)) == 0) {
            value = strtol(line + strlen(field), NULL, 10);
            break;
        }
    }
    fclose(f);
    return value;
}

static bool kernel_thp_allows(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char buf[128] = {0};
    if (!f) return false;
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
    return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

static bool kernel_thp_madvise_only(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char buf[128] = {0};
    if (!f) return false;
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
    return strstr(buf, "[madvise]") != NULL;
}

/* ---- THP ------------------------------------------------------------------ */

static void check_thp(const char *mode) {
    if (HAK_TEST_BENCH_MINIMAL) skip("-Dbench_minimal: HAKMEM_THP is compiled out");
    if (!HAK_TEST_THP) skip("-Dthp=false: no THP advice");
    unsigned char *p = hak_malloc(8 * MiB);
    CHECK(p != NULL, "malloc");
    memset(p, 1, 8 * MiB);
    long eligible = smaps_field(p, "THPeligible:");
    long anon_huge = smaps_field(p, "AnonHugePages:");
    if (eligible < 0) skip("this kernel's smaps has no THPeligible field");
    /* a block of 1.5 MiB (an own mapping): advised only with "on" */
    unsigned char *run = hak_malloc(1536 * KiB);
    memset(run, 1, 1536 * KiB);
    long run_eligible = smaps_field(run, "THPeligible:");
    printf("HAKMEM_THP=%s: 8 MiB block THPeligible %ld AnonHugePages %ld kB; 1.5 MiB block "
           "THPeligible %ld\n",
           mode, eligible, anon_huge, run_eligible);
    if (strcmp(mode, "off") == 0) {
        CHECK(eligible == 0, "MADV_NOHUGEPAGE must make the block ineligible");
        CHECK(anon_huge == 0, "huge pages under HAKMEM_THP=off");
        CHECK(run_eligible == 0, "1.5 MiB block eligible under off");
    } else {
        if (!kernel_thp_allows())
            skip("/sys/kernel/mm/transparent_hugepage/enabled is [never]: no huge pages to see");
        CHECK(eligible == 1, "an advised block of 8 MiB must be THP-eligible");
        CHECK(anon_huge >= 2048, "no huge page backs the written 8 MiB block (%ld kB)",
              anon_huge);
        /* -Dsecure: the guard page after the block splits its mapping, and
         * the block's part (1.5 MiB and the header) holds no aligned 2 MiB */
        if (strcmp(mode, "on") == 0 && !HAK_TEST_SECURE)
            CHECK(run_eligible == 1, "on advises blocks from 1 MiB");
        if (strcmp(mode, "auto") == 0 && kernel_thp_madvise_only()) {
            /* 2 MiB + the header page: a 4 MiB mapping, half used: no advice */
            unsigned char *half = hak_malloc(2 * MiB);
            long half_eligible = smaps_field(half, "THPeligible:");
            printf("HAKMEM_THP=auto: 2 MiB block (half its mapping) THPeligible %ld\n",
                   half_eligible);
            CHECK(half_eligible == 0, "auto advised a mapping the block fills only half of");
            hak_free(half);
        }
    }
    hak_free(run);
    hak_free(p);
}

/* ---- prefault --------------------------------------------------------------- */

/* A big block: faults and RSS at map time and at the first touch. */
static void prefault_block(int mode) {
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = 8 * MiB + 12 * KiB; /* 2 chunks of slack reserved, 5 chunks kept */
    long pages = (long)(size / ps);
    hak_trim(0); /* no cached block to reuse */
    size_t rss0 = rss();
    long f0 = minflt();
    unsigned char *p = hak_malloc(size);
    long f1 = minflt();
    size_t rss1 = rss();
    CHECK(p != NULL, "malloc");
    memset(p, 7, size);
    long f2 = minflt();
    long at_map = f1 - f0, at_touch = f2 - f1;
    long rss_kib = (long)((rss1 - rss0) / KiB);
    printf("prefault %d, block of %zu bytes (%ld pages): %ld faults at malloc, %ld at the "
           "first touch, RSS +%ld KiB at malloc\n",
           mode, size, pages, at_map, at_touch, rss_kib);
    /* the block and its header page, never the rest of the last chunk
     * (2 MiB - 16 KiB) nor the slack (2 MiB more reserved, then unmapped) */
    /* (128 KiB of margin for the rest of the process: what it allocates
     * meanwhile; the slack would be 2 MiB) */
    long max_kib = (long)((size + 128 * KiB) / KiB);
    switch (mode) {
    case 0:
        CHECK(at_map <= 8, "off: malloc faulted %ld pages", at_map);
        CHECK(at_touch >= pages, "off: the touch faulted %ld < %ld pages", at_touch, pages);
        break;
    case 1:
        /* populated by the kernel (MADV_POPULATE_WRITE): older kernels
         * count these faults against no task, newer ones against ours;
         * either way never more than the block's pages (no slack) */
        CHECK(at_map <= pages + 8, "populate: malloc faulted %ld pages, the block has %ld",
              at_map, pages);
        CHECK(at_touch <= 8, "populate: the touch still faulted %ld pages", at_touch);
        CHECK(rss_kib >= (long)(size / KiB) && rss_kib <= max_kib,
              "populate: RSS grew by %ld KiB at malloc, want the block's %zu KiB", rss_kib,
              size / KiB);
        break;
    case 2:
        CHECK(at_map >= pages && at_map <= pages + 8,
              "touch: malloc faulted %ld pages, want the block's %ld (+ header)", at_map, pages);
        CHECK(at_touch <= 8, "touch: the first touch faulted %ld pages", at_touch);
        CHECK(rss_kib >= (long)(size / KiB) && rss_kib <= max_kib,
              "touch: RSS grew by %ld KiB at malloc", rss_kib);
        break;
    }
    hak_free(p);
}

static uint64_t lane_maps(int lane) {
    struct hak_stats st = {.size = sizeof st};
    hak_stats_get(&st);
    return st.lane[lane].os_maps;
}

/* A fresh segment (tiny SuperSlab, or a page-run chunk where no tiny lane
 * is built): the faults of the one malloc that maps it. */
static void prefault_segment(int mode) {
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    long seg_pages = (long)(2 * MiB / ps);
    void *first = hak_malloc(64);
    int lane = hak_lane_of(first);
    const size_t max_blocks = 200000;
    void **keep = calloc(max_blocks, sizeof *keep); /* the libc's (or hakmem's) */
    CHECK(keep != NULL, "calloc");
    uint64_t maps = lane_maps(lane);
    long at_map = -1, rss_kib = -1;
    size_t n = 0;
    for (; n < max_blocks; n++) {
        size_t r0 = rss();
        long f0 = minflt();
        keep[n] = hak_malloc(64);
        long f1 = minflt();
        size_t r1 = rss();
        if (lane_maps(lane) != maps) { /* this malloc mapped a segment */
            at_map = f1 - f0;
            rss_kib = (long)((r1 - r0) / KiB);
            n++;
            break;
        }
    }
    printf("prefault %d, new %s segment: %ld faults and RSS +%ld KiB at the malloc that "
           "mapped it (after %zu blocks)\n",
           mode, hak_lane_name(lane), at_map, rss_kib, n);
    CHECK(at_map >= 0, "no segment was mapped in %zu blocks of 64 B", max_blocks);
    if (at_map >= 0) {
        switch (mode) {
        case 0:
            CHECK(at_map < seg_pages / 4, "off: %ld faults", at_map);
            CHECK(rss_kib < 1024, "off: RSS +%ld KiB", rss_kib);
            break;
        case 1:
            CHECK(at_map <= seg_pages + 64, "populate: %ld faults", at_map);
            CHECK(rss_kib >= 2048 - 64 && rss_kib <= 2048 + 256,
                  "populate: RSS +%ld KiB, want the segment's 2048", rss_kib);
            break;
        case 2:
            CHECK(at_map >= seg_pages && at_map <= seg_pages + 64,
                  "touch: %ld faults, want the segment's %ld pages", at_map, seg_pages);
            break;
        }
    }
    for (size_t i = 0; i < n; i++) hak_free(keep[i]);
    hak_free(first);
    free(keep);
}

static void check_prefault(int mode) {
    if (HAK_TEST_BENCH_MINIMAL) skip("-Dbench_minimal: HAKMEM_SS_PREFAULT is compiled out");
    if (!HAK_TEST_PREFAULT && mode != 0) skip("-Dprefault=false: no prefault");
    /* the sanitizers' shadow memory faults pages of its own at every access */
    if (HAK_TEST_SANITIZED) skip("a sanitizer build: page-fault counts include shadow memory");
    prefault_block(mode);
    prefault_segment(mode);
}

/* ---- NUMA ------------------------------------------------------------------- */

/* The /proc/self/numa_maps entry of the mapping holding p, into best. */
static void numa_entry(const void *p, char *best, size_t size) {
    FILE *f = fopen("/proc/self/numa_maps", "r");
    char line[1024];
    uintptr_t best_lo = 0;
    best[0] = 0;
    /* the entry with the highest start at or below p */
    while (f && fgets(line, sizeof line, f)) {
        uintptr_t lo = (uintptr_t)strtoull(line, NULL, 16);
        if (lo <= (uintptr_t)p && lo >= best_lo) {
            best_lo = lo;
            snprintf(best, size, "%s", line);
        }
    }
    if (f) fclose(f);
}

/* A size one of the slab-engine lanes serves (their segments belong to the
 * thread's heap), or 0 in a build with none of them: the page runs that serve
 * small sizes there are shared chunks, possibly mapped before start-up read
 * the topology. */
static size_t slab_size(void) {
    if (hak_lane_enabled(HAK_LANE_POOL)) return 8192;
    if (hak_lane_enabled(HAK_LANE_TINY)) return 64;
    if (hak_lane_enabled(HAK_LANE_ACE)) return 64 * 1024;
    return 0;
}

static void *alloc_small(void *out) {
    size_t n = slab_size();
    unsigned char *p = hak_malloc(n);
    if (p) memset(p, 5, n);
    *(unsigned char **)out = p;
    return NULL;
}

static void check_numa(int on) {
    if (HAK_TEST_BENCH_MINIMAL) skip("-Dbench_minimal: HAKMEM_NUMA is compiled out");
    FILE *f = fopen("/proc/self/numa_maps", "r");
    if (!f) skip("no /proc/self/numa_maps (kernel without NUMA)");
    fclose(f);
    hak_trim(0);
    unsigned char *p = hak_malloc(6 * MiB);
    memset(p, 3, 6 * MiB);
    char best[1024], seg[1024];
    numa_entry(p, best, sizeof best);
    /* a slab-engine segment of a new thread's heap (the segments of the
     * main thread's were mapped before the constructor read the topology) */
    unsigned char *small = NULL;
    size_t small_size = slab_size();
    seg[0] = 0;
    if (small_size) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, alloc_small, &small) == 0 && pthread_join(t, NULL) == 0,
              "thread");
        CHECK(small != NULL, "malloc(%zu) in a thread", small_size);
        numa_entry(small, seg, sizeof seg);
    }
    unsigned cpu = 0, node = 0;
    getcpu(&cpu, &node);
    char want[32];
    snprintf(want, sizeof want, " prefer:%u ", node);
    printf("HAKMEM_NUMA=%d (libnuma %s), thread on node %u: %s", on,
           HAK_TEST_NUMA ? "built" : "not built", node, best);
    if (small_size) printf("%zu-byte block's mapping: %s", small_size, seg);
    else printf("no slab-engine lane in this build: no segment to check\n");
    if (on && HAK_TEST_NUMA) {
        CHECK(strstr(best, want) != NULL, "the block is not bound to node %u", node);
        CHECK(!small_size || strstr(seg, want) != NULL,
              "the %zu-byte block's segment is not bound to node %u", small_size, node);
    } else {
        CHECK(strstr(best, " default ") != NULL, "placement without HAKMEM_NUMA=1 and libnuma");
        CHECK(!small_size || strstr(seg, " default ") != NULL,
              "segment placed without HAKMEM_NUMA=1");
    }
    hak_free(small);
    /* a freed block is reused on its own node */
    hak_free(p);
    unsigned char *q = hak_malloc(6 * MiB);
    CHECK(q == p, "the cached block of this node was not reused");
    hak_free(q);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s thp auto|off|on | prefault 0|1|2 | numa 0|1\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "thp") == 0) check_thp(argv[2]);
    else if (strcmp(argv[1], "prefault") == 0) check_prefault(atoi(argv[2]));
    else if (strcmp(argv[1], "numa") == 0) check_numa(atoi(argv[2]));
    else return 2;
    if (failures) return 1;
    printf("ok\n");
    return 0;
}
