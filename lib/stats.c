/*
 * stats.c: owns the global counters, the public snapshot (hak_stats_get,
 * mallinfo2) and the exit report. No locks: counters are relaxed atomics,
 * so a snapshot taken while other threads run is approximate.
 */
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "os.h"

struct stats_lane stats_lanes[HAK_LANE_COUNT];

static void raise_peak(struct stats_lane *s) {
    uint64_t live = atomic_load_relaxed(&s->c[HAK_CTR_alloc_bytes]) -
                    atomic_load_relaxed(&s->c[HAK_CTR_free_bytes]);
    uint64_t peak = atomic_load_relaxed(&s->peak_live);
    while (live > peak && live < ((uint64_t)1 << 62) &&
           !atomic_compare_exchange_weak_explicit(&s->peak_live, &peak, live,
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void stats_note_alloc(int lane, uint64_t bytes) {
    if (HAK_BENCH_MINIMAL) return;
    struct stats_lane *s = &stats_lanes[lane];
    atomic_fetch_add_relaxed(&s->c[HAK_CTR_allocs], 1);
    atomic_fetch_add_relaxed(&s->c[HAK_CTR_alloc_bytes], bytes);
    raise_peak(s);
}

void stats_note_free(int lane, uint64_t bytes) {
    if (HAK_BENCH_MINIMAL) return;
    struct stats_lane *s = &stats_lanes[lane];
    atomic_fetch_add_relaxed(&s->c[HAK_CTR_frees], 1);
    atomic_fetch_add_relaxed(&s->c[HAK_CTR_free_bytes], bytes);
}

void stats_note_map(int lane, uint64_t bytes) {
    stats_add(lane, HAK_CTR_os_maps, 1);
    stats_add(lane, HAK_CTR_os_map_bytes, bytes);
}

void stats_note_unmap(int lane, uint64_t bytes) {
    stats_add(lane, HAK_CTR_os_unmaps, 1);
    stats_add(lane, HAK_CTR_os_unmap_bytes, bytes);
}

void stats_note_purge(int lane, uint64_t bytes) {
    stats_add(lane, HAK_CTR_purges, 1);
    stats_add(lane, HAK_CTR_purged_bytes, bytes);
}

struct stats_class stats_classes[HAK_LANE_COUNT][STATS_MAX_CLASSES];

void stats_batch_flush(struct stats_batch *b, int lane, const uint32_t *class_size,
                       unsigned nclasses) {
    if (HAK_BENCH_MINIMAL) return;
    struct stats_lane *s = &stats_lanes[lane];
    uint64_t allocs = 0, frees = 0, abytes = 0, fbytes = 0;
    for (unsigned k = 0; k < nclasses; k++) {
        for (int i = 0; i < HAK_CCTR_COUNT; i++) {
            uint64_t n = b->cls[i][k];
            if (!n) continue;
            atomic_fetch_add_relaxed(&stats_classes[lane][k].c[i], n);
            b->cls[i][k] = 0;
            if (i == HAK_CCTR_allocs) {
                allocs += n;
                abytes += n * class_size[k];
            } else if (i == HAK_CCTR_frees) {
                frees += n;
                fbytes += n * class_size[k];
            }
        }
    }
    if (allocs) {
        atomic_fetch_add_relaxed(&s->c[HAK_CTR_allocs], allocs);
        atomic_fetch_add_relaxed(&s->c[HAK_CTR_alloc_bytes], abytes);
    }
    if (frees) {
        atomic_fetch_add_relaxed(&s->c[HAK_CTR_frees], frees);
        atomic_fetch_add_relaxed(&s->c[HAK_CTR_free_bytes], fbytes);
    }
    if (allocs) raise_peak(s);
}

void stats_batch_flush_one(int lane, enum hak_class_counter k, unsigned cls, uint64_t bytes) {
    if (HAK_BENCH_MINIMAL) return;
    atomic_fetch_add_relaxed(&stats_classes[lane][cls].c[k], 1);
    if (k == HAK_CCTR_allocs) stats_note_alloc(lane, bytes);
    if (k == HAK_CCTR_frees) stats_note_free(lane, bytes);
}

static void lane_snapshot(int lane, struct hak_lane_stats *out) {
    struct stats_lane *s = &stats_lanes[lane];
    uint64_t c[HAK_CTR_COUNT];
    for (int i = 0; i < HAK_CTR_COUNT; i++) c[i] = atomic_load_relaxed(&s->c[i]);
    out->allocs = c[HAK_CTR_allocs];
    out->frees = c[HAK_CTR_frees];
    out->live_bytes = c[HAK_CTR_alloc_bytes] - c[HAK_CTR_free_bytes];
    out->peak_bytes = atomic_load_relaxed(&s->peak_live);
    if (out->peak_bytes < out->live_bytes) out->peak_bytes = out->live_bytes;
    out->os_mapped = c[HAK_CTR_os_map_bytes] - c[HAK_CTR_os_unmap_bytes];
    out->os_maps = c[HAK_CTR_os_maps];
    out->os_unmaps = c[HAK_CTR_os_unmaps];
    out->purges = c[HAK_CTR_purges];
    out->purged_bytes = c[HAK_CTR_purged_bytes];
}

void stats_fill(struct hak_stats *st) {
    struct hak_lane_stats total;
    memset(&total, 0, sizeof total);
    for (int l = 1; l < HAK_LANE_COUNT; l++) {
        lane_snapshot(l, &st->lane[l]);
        struct hak_lane_stats *ls = &st->lane[l];
        total.allocs += ls->allocs;
        total.frees += ls->frees;
        total.live_bytes += ls->live_bytes;
        total.peak_bytes += ls->peak_bytes; /* sum of per-lane peaks: an upper bound */
        total.os_mapped += ls->os_mapped;
        total.os_maps += ls->os_maps;
        total.os_unmaps += ls->os_unmaps;
        total.purges += ls->purges;
        total.purged_bytes += ls->purged_bytes;
    }
    st->lane[0] = total;
    os_rss(&st->rss, &st->peak_rss);
    st->purges_pending = os_purge_pending();
}

/* Appends formatted text to buf at *len (bounded). */
static HAK_PRINTF(4, 5) void put(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0) *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

/* Bytes as a short human figure ("12.3 MiB") without floating point. */
static const char *human(uint64_t b, char out[24]) {
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    uint64_t whole = b, tenth = 0;
    while (whole >= 1024 && u < 4) {
        tenth = (whole % 1024) * 10 / 1024;
        whole /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, 24, "%llu B", (unsigned long long)b);
    else
        snprintf(out, 24, "%llu.%llu %s", (unsigned long long)whole, (unsigned long long)tenth,
                 unit[u]);
    return out;
}

void stats_report(void) {
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    stats_fill(&st);
    char buf[4096];
    size_t len = 0;
    char h1[24], h2[24], h3[24], h4[24];
    put(buf, sizeof buf, &len, "hakmem: statistics\n");
    put(buf, sizeof buf, &len, "  %-6s %12s %12s %11s %11s %11s %8s %8s %11s\n", "lane", "allocs",
        "frees", "live", "peak", "mapped", "maps", "purges", "purged");
    for (int l = 0; l < HAK_LANE_COUNT; l++) {
        if (l > 0 && !hak_lane_enabled(l)) continue;
        const struct hak_lane_stats *s = &st.lane[l];
        put(buf, sizeof buf, &len, "  %-6s %12llu %12llu %11s %11s %11s %8llu %8llu %11s\n",
            l == 0 ? "total" : hak_lane_name(l), (unsigned long long)s->allocs,
            (unsigned long long)s->frees, human(s->live_bytes, h1), human(s->peak_bytes, h2),
            human(s->os_mapped, h3), (unsigned long long)s->os_maps,
            (unsigned long long)s->purges, human(s->purged_bytes, h4));
    }
    put(buf, sizeof buf, &len, "  rss %s, peak rss %s, purges pending %llu\n", human(st.rss, h1),
        human(st.peak_rss, h2), (unsigned long long)st.purges_pending);
    hak_log_raw(buf, len);
    /* per class, for the classes that were used */
    len = 0;
    put(buf, sizeof buf, &len, "  %-6s %8s %12s %12s %10s %10s %6s\n", "lane", "class", "allocs",
        "frees", "refills", "remote", "slabs");
    bool any = false;
    for (int l = 1; l < HAK_LANE_COUNT; l++) {
        struct hak_class_stats cs;
        for (unsigned k = 0; hak_class_stats_get(l, k, &cs) == 0; k++) {
            if (cs.allocs == 0) continue;
            any = true;
            put(buf, sizeof buf, &len, "  %-6s %8s %12llu %12llu %10llu %10llu %6lld\n",
                hak_lane_name(l), human(cs.block_size, h1), (unsigned long long)cs.allocs,
                (unsigned long long)cs.frees, (unsigned long long)cs.refills,
                (unsigned long long)cs.remote_frees, (long long)cs.slabs);
            if (len > sizeof buf - 128) {
                hak_log_raw(buf, len);
                len = 0;
            }
        }
    }
    if (any) hak_log_raw(buf, len);
}
