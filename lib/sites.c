/*
 * sites.c: owns the call-site table (see sites.h) and the malloc sampling
 * countdown. No locks: slots are claimed by CAS on their key, counters are
 * relaxed atomics; a snapshot taken while threads record is approximate.
 */
#include "sites.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "options.h"

struct site_slot {
    _Atomic uintptr_t key; /* the call site; 0: free slot */
    _Atomic uint64_t allocs, bytes, frees;
    _Atomic uint64_t hist[HAK_SITE_BINS];
    _Atomic uint64_t lane[HAK_LANE_COUNT]; /* allocations per serving lane */
};

static struct site_slot table[SITES_SLOTS];
static _Atomic uint64_t overflow; /* records that found no slot */
bool sites_sampling;
static unsigned sample_shift;
/* Per-thread countdown to the next sample: a plain counter in TLS is fine
 * here (a reused TLS block only shifts one thread's sampling phase). */
static HAK_TLS_IE uint32_t sample_countdown;

_Static_assert((SITES_SLOTS & (SITES_SLOTS - 1)) == 0, "the table size is a power of two");

static unsigned size_bin(size_t size) {
    unsigned b = 0;
    for (size_t lim = 16; b < HAK_SITE_BINS - 1 && size > lim; lim <<= 2) b++;
    return b;
}

static struct site_slot *slot_of(uintptr_t addr) {
    uint64_t h = (uint64_t)addr * 0x9e3779b97f4a7c15ull;
    unsigned i = (unsigned)(h >> 40) & (SITES_SLOTS - 1);
    for (unsigned probe = 0; probe < SITES_PROBES; probe++, i = (i + 1) & (SITES_SLOTS - 1)) {
        struct site_slot *s = &table[i];
        uintptr_t k = atomic_load_acquire(&s->key);
        if (k == addr) return s;
        if (k == 0) {
            if (atomic_cas_strong_acq_rel(&s->key, &k, addr)) return s;
            if (k == addr) return s; /* another thread claimed it for this site */
        }
    }
    return NULL;
}

void sites_record(uintptr_t addr, size_t size, int lane, bool is_free) {
    if (addr == 0) return;
    struct site_slot *s = slot_of(addr);
    if (!s) {
        atomic_fetch_add_relaxed(&overflow, 1);
        return;
    }
    if (is_free) {
        atomic_fetch_add_relaxed(&s->frees, 1);
        return;
    }
    atomic_fetch_add_relaxed(&s->allocs, 1);
    atomic_fetch_add_relaxed(&s->bytes, size);
    atomic_fetch_add_relaxed(&s->hist[size_bin(size)], 1);
    if ((unsigned)lane < HAK_LANE_COUNT) atomic_fetch_add_relaxed(&s->lane[lane], 1);
}

void sites_sample(uintptr_t addr, size_t size, const void *p) {
    if (sample_countdown > 0) {
        sample_countdown--;
        return;
    }
    sample_countdown = (uint32_t)((1ull << sample_shift) - 1);
    if (p) sites_record(addr, size, hak_lane_of(p), false);
}

void sites_configure(void) {
    sites_sampling = !HAK_BENCH_MINIMAL && hak_opt(HAK_OPT_SITE_PROFILE) != 0;
    sample_shift = (unsigned)hak_opt(HAK_OPT_SITE_SAMPLE);
}

/* ---- reading the table ------------------------------------------------ */

static void snapshot(const struct site_slot *s, struct hak_site *out) {
    memset(out, 0, sizeof *out);
    out->addr = atomic_load_relaxed(&s->key);
    out->allocs = atomic_load_relaxed(&s->allocs);
    out->bytes = atomic_load_relaxed(&s->bytes);
    out->frees = atomic_load_relaxed(&s->frees);
    for (int b = 0; b < HAK_SITE_BINS; b++) out->hist[b] = atomic_load_relaxed(&s->hist[b]);
    uint64_t best = 0;
    for (int l = 0; l < HAK_LANE_COUNT; l++) {
        uint64_t n = atomic_load_relaxed(&s->lane[l]);
        if (n > best) {
            best = n;
            out->lane = l;
        }
    }
}

static bool before(const struct hak_site *a, const struct hak_site *b) {
    if (a->allocs != b->allocs) return a->allocs > b->allocs;
    return a->frees > b->frees;
}

HAK_EXPORT unsigned hak_sites_get(struct hak_site *out, unsigned max) {
    if (out == NULL) return 0;
    unsigned n = 0;
    for (unsigned i = 0; i < SITES_SLOTS; i++) {
        if (atomic_load_acquire(&table[i].key) == 0) continue;
        struct hak_site cur;
        snapshot(&table[i], &cur);
        /* insertion into the top max, kept sorted */
        unsigned j = n < max ? n++ : max;
        if (j == max && (max == 0 || !before(&cur, &out[max - 1]))) continue;
        if (j == max) j = max - 1;
        while (j > 0 && before(&cur, &out[j - 1])) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = cur;
    }
    return n;
}

HAK_EXPORT void hak_sites_reset(void) {
    for (unsigned i = 0; i < SITES_SLOTS; i++) {
        struct site_slot *s = &table[i];
        atomic_store_relaxed(&s->allocs, 0);
        atomic_store_relaxed(&s->bytes, 0);
        atomic_store_relaxed(&s->frees, 0);
        for (int b = 0; b < HAK_SITE_BINS; b++) atomic_store_relaxed(&s->hist[b], 0);
        for (int l = 0; l < HAK_LANE_COUNT; l++) atomic_store_relaxed(&s->lane[l], 0);
        atomic_store_release(&s->key, 0);
    }
    atomic_store_relaxed(&overflow, 0);
}

/* ---- the report ------------------------------------------------------- */

#define REPORT_SITES 10

/* Appends to buf at *len, never past cap - 1. */
static HAK_PRINTF(4, 5) void add(char *buf, size_t cap, size_t *len, const char *fmt, ...);
static void add(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0) *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

/* "name+0xoff" through dladdr, or "" when the address has no symbol. */
static void symbol_of(uintptr_t addr, char *out, size_t cap) {
    Dl_info info;
    out[0] = 0;
    if (dladdr((void *)addr, &info) == 0) return;
    if (info.dli_sname)
        snprintf(out, cap, "%s+0x%lx", info.dli_sname,
                 (unsigned long)(addr - (uintptr_t)info.dli_saddr));
    else if (info.dli_fname)
    {
        const char *base = strrchr(info.dli_fname, '/');
        snprintf(out, cap, "%s+0x%lx", base ? base + 1 : info.dli_fname,
                 (unsigned long)(addr - (uintptr_t)info.dli_fbase));
    }
}

size_t sites_report(bool json, char *buf, size_t cap) {
    struct hak_site top[REPORT_SITES];
    unsigned n = hak_sites_get(top, REPORT_SITES);
    size_t len = 0;
    if (cap) buf[0] = 0;
    if (json) add(buf, cap, &len, "[");
    else if (n) add(buf, cap, &len, "  call sites (top %u):\n", n);
    for (unsigned i = 0; i < n; i++) {
        char sym[160];
        symbol_of(top[i].addr, sym, sizeof sym);
        const char *lane = hak_lane_name(top[i].lane);
        if (json) {
            add(buf, cap, &len,
                "%s{\"addr\":\"0x%lx\",\"symbol\":\"%s\",\"allocs\":%llu,\"bytes\":%llu,"
                "\"frees\":%llu,\"lane\":\"%s\",\"hist\":[",
                i ? "," : "", (unsigned long)top[i].addr, sym,
                (unsigned long long)top[i].allocs, (unsigned long long)top[i].bytes,
                (unsigned long long)top[i].frees, lane ? lane : "none");
            for (int b = 0; b < HAK_SITE_BINS; b++)
                add(buf, cap, &len, "%s%llu", b ? "," : "", (unsigned long long)top[i].hist[b]);
            add(buf, cap, &len, "]}");
        } else {
            add(buf, cap, &len, "  %#14lx %-28s %10llu allocs %12llu B %8llu frees  %-4s  sizes:",
                (unsigned long)top[i].addr, sym[0] ? sym : "?",
                (unsigned long long)top[i].allocs, (unsigned long long)top[i].bytes,
                (unsigned long long)top[i].frees, lane ? lane : "none");
            for (int b = 0; b < HAK_SITE_BINS; b++) {
                if (!top[i].hist[b]) continue;
                static const char *const bin_name[HAK_SITE_BINS] = {
                    "16", "64", "256", "1K", "4K", "16K", "64K", "256K", "1M", "4M", "16M", "big"};
                add(buf, cap, &len, " <=%s:%llu", bin_name[b], (unsigned long long)top[i].hist[b]);
            }
            add(buf, cap, &len, "\n");
        }
    }
    uint64_t lost = atomic_load_relaxed(&overflow);
    if (json) add(buf, cap, &len, "]");
    else if (lost) add(buf, cap, &len, "  call sites: %llu records found the table full\n",
                       (unsigned long long)lost);
    return len;
}
