/*
 * stats.c: owns the global counters, the public snapshot (hak_stats_get,
 * mallinfo2) and the exit report. No locks: counters are relaxed atomics,
 * so a snapshot taken while other threads run is approximate.
 */
#include "stats.h"

#include <stdio.h>
#include <string.h>

#include "os.h"
#include "prof.h"

struct stats_lane stats_lanes[HAK_LANE_COUNT];

/* Raises *peak to live (a difference of two relaxed counters: a value
 * near wrap-around is a torn read, not a peak). */
static void raise_max(_Atomic uint64_t *peak, uint64_t live) {
    if (live < ((uint64_t)1 << 62)) atomic_max_relaxed(peak, live);
}

/* Raises s's peak to the live bytes now, plus extra (a batch's high-water
 * mark above its end). */
static void raise_peak_by(struct stats_lane *s, uint64_t extra) {
    raise_max(&s->peak_live, atomic_load_relaxed(&s->c[HAK_CTR_alloc_bytes]) -
                                 atomic_load_relaxed(&s->c[HAK_CTR_free_bytes]) + extra);
}

static void raise_peak(struct stats_lane *s) { raise_peak_by(s, 0); }

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

void stats_note_counts(int lane, uint64_t allocs, uint64_t alloc_bytes, uint64_t frees,
                       uint64_t free_bytes, int64_t net, int64_t net_max) {
    if (HAK_BENCH_MINIMAL || (allocs == 0 && frees == 0)) return;
    struct stats_lane *s = &stats_lanes[lane];
    if (allocs) {
        atomic_fetch_add_relaxed(&s->c[HAK_CTR_allocs], allocs);
        atomic_fetch_add_relaxed(&s->c[HAK_CTR_alloc_bytes], alloc_bytes);
    }
    if (frees) {
        atomic_fetch_add_relaxed(&s->c[HAK_CTR_frees], frees);
        atomic_fetch_add_relaxed(&s->c[HAK_CTR_free_bytes], free_bytes);
    }
    /* the batch peaked net_max - net above where it ended */
    if (allocs) raise_peak_by(s, (uint64_t)(net_max - net));
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

/* Raises class c's peak to its live blocks now. */
static void raise_class_peak(struct stats_class *c) {
    uint64_t allocs = atomic_load_relaxed(&c->c[HAK_CCTR_allocs]);
    raise_max(&c->peak_live, allocs - atomic_load_relaxed(&c->c[HAK_CCTR_frees]));
}

void stats_batch_flush(struct stats_batch *b, int lane, const uint32_t *class_size,
                       unsigned nclasses) {
    if (HAK_BENCH_MINIMAL) return;
    uint64_t allocs = 0, frees = 0, abytes = 0, fbytes = 0;
    for (unsigned k = 0; k < nclasses; k++) {
        bool allocated = b->cls[HAK_CCTR_allocs][k] != 0;
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
        /* after the batch's frees too: the blocks it allocated and freed
         * again were never live at once */
        if (allocated) raise_class_peak(&stats_classes[lane][k]);
    }
    stats_note_counts(lane, allocs, abytes, frees, fbytes, 0, 0);
}

void stats_batch_flush_one(int lane, enum hak_class_counter k, unsigned cls, uint64_t bytes) {
    if (HAK_BENCH_MINIMAL) return;
    atomic_fetch_add_relaxed(&stats_classes[lane][cls].c[k], 1);
    if (k == HAK_CCTR_allocs) raise_class_peak(&stats_classes[lane][cls]);
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

/* A segment count, read while other threads move it: never below 0. */
static uint64_t seg_count(_Atomic int64_t *c) {
    int64_t n = atomic_load_relaxed(c);
    return n > 0 ? (uint64_t)n : 0;
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
    st->segs_hot[0] = st->segs_draining[0] = st->segs_cached[0] = 0;
    for (int l = 1; l < HAK_LANE_COUNT; l++) {
        st->segs_hot[l] = seg_count(&stats_lanes[l].segs_tier[0]);
        st->segs_draining[l] = seg_count(&stats_lanes[l].segs_tier[1]);
        st->segs_cached[l] = seg_count(&stats_lanes[l].segs_cached);
        st->segs_hot[0] += st->segs_hot[l];
        st->segs_draining[0] += st->segs_draining[l];
        st->segs_cached[0] += st->segs_cached[l];
    }
    os_rss(&st->rss, &st->peak_rss);
    st->purges_pending = os_purge_pending();
    prof_fill(st->prof);
}
