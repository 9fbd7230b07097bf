/*
 * os_policy.c: what happens to a fresh mapping once os_map_chunks has
 * trimmed its alignment slack (DESIGN.md 7): transparent huge page advice
 * (-Dthp, HAKMEM_THP), prefaulting (-Dprefault, HAKMEM_SS_PREFAULT) and
 * NUMA placement (-Dnuma, HAKMEM_NUMA). Every policy is applied to the
 * region that is kept, never to the slack, which is unmapped before any of
 * them runs (populating the slack would fault pages only to unmap them).
 *
 * Order on each mapping: NUMA binding, THP advice, then prefault, so that
 * the pages faulted in are on the right node and of the right size.
 *
 * Locks: none. The kernel's THP setting is read once in os_policy_init
 * (single-threaded, no malloc); the NUMA topology once in os_numa_init
 * (hakmem's constructor: libnuma allocates, which works by then); both are
 * only read afterwards.
 *
 * libnuma is loaded with dlopen by os_numa_init, only under HAKMEM_NUMA=1:
 * linked in, it cost every program its load-time constructor (which reads
 * /sys and allocates) and about 100 KiB of resident pages, placement or
 * not.
 */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#if HAK_NUMA
#include <dlfcn.h>
#endif

#include "options.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older headers lack it */
#endif
#define OS_MPOL_PREFERRED 1    /* linux/mempolicy.h: MPOL_PREFERRED */

/* The kernel's /sys/kernel/mm/transparent_hugepage/enabled: whether an
 * madvise(MADV_HUGEPAGE) can give huge pages ("always" or "madvise"). */
static bool thp_kernel_allows;
/* Highest NUMA node + 1 when placement is on (libnuma found the topology
 * and HAKMEM_NUMA=1); 0 when off. */
static int numa_nodes;

void os_policy_init(void) {
    thp_kernel_allows = false;
    int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    /* the setting in force is the bracketed word: "always [madvise] never" */
    thp_kernel_allows = strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

bool os_thp_kernel_allows(void) { return thp_kernel_allows; }

void os_numa_init(void) {
    numa_nodes = 0;
#if HAK_NUMA
    if (!hak_opt(HAK_OPT_NUMA)) return;
    void *lib = dlopen("libnuma.so.1", RTLD_NOW | RTLD_LOCAL);
    void *sym_available = lib ? dlsym(lib, "numa_available") : NULL;
    void *sym_max_node = lib ? dlsym(lib, "numa_max_node") : NULL;
    int (*numa_available)(void), (*numa_max_node)(void);
    /* ISO C has no cast from an object pointer to a function pointer */
    memcpy(&numa_available, &sym_available, sizeof numa_available);
    memcpy(&numa_max_node, &sym_max_node, sizeof numa_max_node);
    if (!numa_available || !numa_max_node) {
        hak_verbose("NUMA: libnuma.so.1 cannot be loaded; HAKMEM_NUMA ignored");
        return;
    }
    if (numa_available() < 0) {
        hak_verbose("NUMA: the kernel offers no NUMA policy; HAKMEM_NUMA ignored");
        return;
    }
    int max = numa_max_node();
    if (max < 0 || max >= OS_NUMA_MAX_NODES) {
        hak_verbose("NUMA: %d nodes, more than hakmem places; HAKMEM_NUMA ignored", max + 1);
        return;
    }
    numa_nodes = max + 1;
    hak_verbose("NUMA: %d node%s (libnuma); segments bound to the mapping thread's node",
                numa_nodes, numa_nodes > 1 ? "s" : "");
#else
    if (hak_opt(HAK_OPT_NUMA)) hak_verbose("NUMA: not built (-Dnuma); HAKMEM_NUMA ignored");
#endif
}

int os_numa_nodes(void) { return numa_nodes; }

int os_current_node(void) {
    if (numa_nodes == 0) return -1;
    unsigned cpu = 0, node = 0;
    if (getcpu(&cpu, &node) != 0 || node >= (unsigned)numa_nodes) return -1;
    return (int)node;
}

/* Prefers node for [p, p + size) (mbind, raw system call: libnuma's
 * wrapper is not needed for one call). The policy is MPOL_PREFERRED, not
 * MPOL_BIND: when the node is full, pages come from another one instead of
 * the allocation failing. */
static void node_bind(void *p, size_t size, int node) {
    unsigned long mask = 1ul << node;
    if (syscall(SYS_mbind, p, size, OS_MPOL_PREFERRED, &mask, (unsigned long)OS_NUMA_MAX_NODES + 1,
                0u) != 0)
        hak_verbose("NUMA: mbind of %zu bytes to node %d failed (errno %d)", size, node, errno);
}

/* THP advice for the whole of [p, p + size), of which a block will use
 * the first used bytes: advising only part of a
 * mapping would split it in two, and mremap (realloc, BigCache growth)
 * moves one mapping only. */
static void thp_advise(void *p, size_t size, size_t block, size_t used) {
    if (!HAK_THP) return;
    switch (hak_opt(HAK_OPT_THP)) {
    case HAK_THP_OFF:
        madvise(p, size, MADV_NOHUGEPAGE);
        break;
    case HAK_THP_AUTO:
        /* and only where the block fills three quarters of the mapping:
         * a 2 MiB block in a 4 MiB mapping (its header page spills into a
         * second chunk) would commit a second huge page for a page */
        if (block >= OS_THP_AUTO_MIN && thp_kernel_allows && used / 3 >= (size - used))
            madvise(p, size, MADV_HUGEPAGE);
        break;
    default: /* on */
        if (block >= OS_THP_ON_MIN) madvise(p, size, MADV_HUGEPAGE);
        break;
    }
}

/* Writes a zero into every page of [p, p + len): each write faults its
 * page in (a read would only map the shared zero page). */
static void touch_pages(void *p, size_t len) {
    for (size_t off = 0; off < len; off += os_page_size) ((volatile char *)p)[off] = 0;
}

int os_prefault_mode(void) {
    return HAK_PREFAULT ? (int)hak_opt(HAK_OPT_SS_PREFAULT) : HAK_PREFAULT_OFF;
}

static void prefault(void *p, size_t len) {
    switch (os_prefault_mode()) {
    case HAK_PREFAULT_POPULATE:
        /* MAP_POPULATE cannot be used: it would populate the over-sized
         * reservation, slack included. MADV_POPULATE_WRITE faults in just
         * the kept pages; a kernel without it gets them touched. */
        if (madvise(p, len, MADV_POPULATE_WRITE) != 0) touch_pages(p, len);
        break;
    case HAK_PREFAULT_TOUCH:
        touch_pages(p, len);
        break;
    default:
        break;
    }
}

int os_map_policy(void *p, size_t size, size_t block, size_t fault_len) {
    int node = os_current_node();
    if (node >= 0) node_bind(p, size, node);
    if (fault_len > size) fault_len = size;
    thp_advise(p, size, block, fault_len);
    if (fault_len) prefault(p, hak_align_up(fault_len, os_page_size));
    return node;
}

int os_map_segment(size_t block, void **out) {
    int err = os_map_chunks(HAK_CHUNK, HAK_CHUNK, 0, out);
    if (err) return err;
    os_map_policy(*out, HAK_CHUNK, block, HAK_CHUNK);
    return 0;
}
