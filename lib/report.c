/*
 * report.c: owns the statistics report (HAKMEM_STATS=1 at exit,
 * malloc_stats, hak_stats_print, and every HAKMEM_STATS_INTERVAL_MS), as
 * text or JSON (HAKMEM_STATS_FORMAT), to HAKMEM_STATS_FILE, HAKMEM_LOG_FILE
 * or stderr. Nothing here allocates: the report is formatted in a stack
 * buffer and written in pieces. Locks: none (counters are atomics).
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "options.h"
#include "os.h"
#include "policy.h"
#include "prof.h"
#include "sites.h"
#include "stats.h"

/* Output in pieces through a stack buffer. */
struct out {
    int fd;
    size_t len;
    char buf[2048];
};

static void out_flush(struct out *o) {
    if (o->len) os_write_all(o->fd, o->buf, o->len);
    o->len = 0;
}

static HAK_PRINTF(2, 3) void put(struct out *o, const char *fmt, ...) {
    if (o->len > sizeof o->buf - 512) out_flush(o);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
    va_end(ap);
    if (n > 0) o->len += (size_t)n < sizeof o->buf - o->len ? (size_t)n : sizeof o->buf - o->len - 1;
}

/* Bytes as a short figure ("12.3 MiB") without floating point. */
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

static void class_hits(const struct hak_class_stats *cs, uint64_t *hits, uint64_t *misses) {
    *misses = cs->refills;
    *hits = cs->allocs > cs->refills ? cs->allocs - cs->refills : 0;
}

/* The learner's state and the top call sites (issue 10): text. The
 * learner lives in a module; lib/ reaches it through its registered
 * controller (lib/policy.h). */
static void report_text_learn_sites(struct out *o) {
    char buf[4096];
    const struct policy_controller *c = atomic_load_acquire(&policy_ctl);
    if (c) {
        out_flush(o);
        size_t n = c->report(false, buf, sizeof buf);
        os_write_all(o->fd, buf, n);
    }
    size_t n = sites_report(false, buf, sizeof buf);
    if (n) {
        out_flush(o);
        os_write_all(o->fd, buf, n);
    }
}

/* The same as members of the JSON object: ,"learner":{...},"sites":[...] */
static void report_json_learn_sites(struct out *o) {
    char buf[8192];
    const struct policy_controller *c = atomic_load_acquire(&policy_ctl);
    out_flush(o);
    if (c) {
        put(o, ",\"learner\":");
        out_flush(o);
        size_t n = c->report(true, buf, sizeof buf);
        os_write_all(o->fd, buf, n);
    } else {
        put(o, ",\"learner\":null");
    }
    put(o, ",\"sites\":");
    out_flush(o);
    size_t n = sites_report(true, buf, sizeof buf);
    os_write_all(o->fd, buf, n);
}

/* The profiler's table (HAKMEM_PROF=1): only the categories that timed
 * something; nothing at all with the profiler off. */
static void report_text_prof(struct out *o, const struct hak_stats *st) {
    if (!prof_enabled()) return;
    put(o, "  profile (HAKMEM_PROF=1; malloc/free: 1 call in %u per thread timed, other "
           "events: every one)\n",
        1u << prof_sample_shift());
    put(o, "  %-14s %12s %10s %10s %12s %14s\n", "category", "timed", "avg ns", "p99 ns", "max ns",
        "total ns");
    for (int k = 0; k < HAK_PROF_COUNT; k++) {
        const struct hak_prof_stats *p = &st->prof[k];
        if (p->count == 0) continue;
        put(o, "  %-14s %12llu %10llu %10llu %12llu %14llu\n", hak_prof_name(k),
            (unsigned long long)p->count, (unsigned long long)p->avg_ns,
            (unsigned long long)p->p99_ns, (unsigned long long)p->max_ns,
            (unsigned long long)p->total_ns);
    }
}

/* The same as a member of the JSON object: ,"prof":{...} or ,"prof":null. */
static void report_json_prof(struct out *o, const struct hak_stats *st) {
    if (!prof_enabled()) {
        put(o, ",\"prof\":null");
        return;
    }
    put(o, ",\"prof\":{\"sample_shift\":%u,\"categories\":{", prof_sample_shift());
    for (int k = 0; k < HAK_PROF_COUNT; k++) {
        const struct hak_prof_stats *p = &st->prof[k];
        put(o,
            "%s\"%s\":{\"count\":%llu,\"total_ns\":%llu,\"avg_ns\":%llu,\"p99_ns\":%llu,"
            "\"max_ns\":%llu}",
            k ? "," : "", hak_prof_name(k), (unsigned long long)p->count,
            (unsigned long long)p->total_ns, (unsigned long long)p->avg_ns,
            (unsigned long long)p->p99_ns, (unsigned long long)p->max_ns);
    }
    put(o, "}}");
}

static void report_text(struct out *o, const struct hak_stats *st) {
    char h1[24], h2[24], h3[24], h4[24];
    put(o, "hakmem: statistics\n");
    put(o, "  %-6s %12s %12s %11s %11s %11s %8s %8s %11s\n", "lane", "allocs", "frees", "live",
        "peak", "mapped", "maps", "purges", "purged");
    for (int l = 0; l < HAK_LANE_COUNT; l++) {
        if (l > 0 && !hak_lane_enabled(l)) continue;
        const struct hak_lane_stats *s = &st->lane[l];
        put(o, "  %-6s %12llu %12llu %11s %11s %11s %8llu %8llu %11s\n",
            l == 0 ? "total" : hak_lane_name(l), (unsigned long long)s->allocs,
            (unsigned long long)s->frees, human(s->live_bytes, h1), human(s->peak_bytes, h2),
            human(s->os_mapped, h3), (unsigned long long)s->os_maps,
            (unsigned long long)s->purges, human(s->purged_bytes, h4));
    }
    put(o, "  rss %s, peak rss %s, purges pending %llu\n", human(st->rss, h1),
        human(st->peak_rss, h2), (unsigned long long)st->purges_pending);
    bool segs = false;
    for (int l = 1; l < HAK_LANE_COUNT; l++) {
        uint64_t n = st->segs_hot[l] + st->segs_draining[l] + st->segs_cached[l];
        if (!hak_lane_enabled(l) || n == 0) continue;
        put(o, "%s%s %llu hot, %llu draining, %llu cached", segs ? "; " : "  segments: ",
            hak_lane_name(l), (unsigned long long)st->segs_hot[l],
            (unsigned long long)st->segs_draining[l], (unsigned long long)st->segs_cached[l]);
        segs = true;
    }
    if (segs) put(o, "\n");
    bool header = false;
    for (int l = 1; l < HAK_LANE_COUNT; l++) {
        struct hak_class_stats cs;
        for (unsigned k = 0; hak_class_stats_get(l, k, &cs) == 0; k++) {
            if (cs.allocs == 0) continue;
            if (!header) {
                put(o, "  %-6s %8s %12s %12s %11s %11s %12s %10s %10s %6s\n", "lane", "class",
                    "allocs", "frees", "live", "peak", "hits", "misses", "remote", "slabs");
                header = true;
            }
            uint64_t hits, misses;
            class_hits(&cs, &hits, &misses);
            put(o, "  %-6s %8s %12llu %12llu %11s %11s %12llu %10llu %10llu %6lld\n",
                hak_lane_name(l), human(cs.block_size, h1), (unsigned long long)cs.allocs,
                (unsigned long long)cs.frees, human(cs.live_bytes, h2), human(cs.peak_bytes, h3),
                (unsigned long long)hits, (unsigned long long)misses,
                (unsigned long long)cs.remote_frees, (long long)cs.slabs);
        }
    }
    bool any = false;
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        char v[256];
        if (!options_value_text(i, v, sizeof v)) continue;
        put(o, "%s%s=%s", any ? " " : "  options: ", options_table[i].name, v);
        any = true;
    }
    if (any) put(o, "\n");
    const struct hak_policy *pol = policy_current();
    put(o, "  policy: wmax_large %u%%, refill_batch %u, bigcache %u MiB\n", pol->wmax_large_pct,
        pol->refill_batch, pol->bigcache_mb);
    report_text_prof(o, st);
    report_text_learn_sites(o);
}

static void json_lane(struct out *o, const char *name, const struct hak_lane_stats *s) {
    put(o,
        "{\"name\":\"%s\",\"allocs\":%llu,\"frees\":%llu,\"live_bytes\":%llu,"
        "\"peak_bytes\":%llu,\"mapped_bytes\":%llu,\"maps\":%llu,\"unmaps\":%llu,"
        "\"purges\":%llu,\"purged_bytes\":%llu",
        name, (unsigned long long)s->allocs, (unsigned long long)s->frees,
        (unsigned long long)s->live_bytes, (unsigned long long)s->peak_bytes,
        (unsigned long long)s->os_mapped, (unsigned long long)s->os_maps,
        (unsigned long long)s->os_unmaps, (unsigned long long)s->purges,
        (unsigned long long)s->purged_bytes);
}

/* A JSON string: the characters it may need escaped are few in paths. */
static void json_string(struct out *o, const char *s) {
    put(o, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            put(o, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            put(o, "\\u%04x", (unsigned)(unsigned char)*s);
        else
            put(o, "%c", *s);
    }
    put(o, "\"");
}

static void report_json(struct out *o, const struct hak_stats *st) {
    put(o, "{\"hakmem\":{\"version\":\"%d.%d\",\"pid\":%ld,\"rss\":%llu,\"peak_rss\":%llu,"
           "\"purges_pending\":%llu,\"total\":",
        HAKMEM_VERSION_MAJOR, HAKMEM_VERSION_MINOR, (long)getpid(),
        (unsigned long long)st->rss, (unsigned long long)st->peak_rss,
        (unsigned long long)st->purges_pending);
    json_lane(o, "total", &st->lane[0]);
    put(o, "},\"lanes\":[");
    bool first = true;
    for (int l = 1; l < HAK_LANE_COUNT; l++) {
        if (!hak_lane_enabled(l)) continue;
        put(o, first ? "" : ",");
        first = false;
        json_lane(o, hak_lane_name(l), &st->lane[l]);
        put(o, ",\"segments_hot\":%llu,\"segments_draining\":%llu,\"segments_cached\":%llu",
            (unsigned long long)st->segs_hot[l], (unsigned long long)st->segs_draining[l],
            (unsigned long long)st->segs_cached[l]);
        put(o, ",\"classes\":[");
        struct hak_class_stats cs;
        for (unsigned k = 0; hak_class_stats_get(l, k, &cs) == 0; k++) {
            uint64_t hits, misses;
            class_hits(&cs, &hits, &misses);
            put(o,
                "%s{\"block_size\":%llu,\"allocs\":%llu,\"frees\":%llu,\"live_bytes\":%llu,"
                "\"peak_bytes\":%llu,\"hits\":%llu,\"misses\":%llu,\"remote_frees\":%llu,"
                "\"slabs\":%lld}",
                k ? "," : "", (unsigned long long)cs.block_size, (unsigned long long)cs.allocs,
                (unsigned long long)cs.frees, (unsigned long long)cs.live_bytes,
                (unsigned long long)cs.peak_bytes, (unsigned long long)hits,
                (unsigned long long)misses, (unsigned long long)cs.remote_frees,
                (long long)cs.slabs);
        }
        put(o, "]}");
    }
    put(o, "],\"options\":{");
    first = true;
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        char v[256];
        if (!options_value_text(i, v, sizeof v)) continue;
        put(o, "%s\"%s\":", first ? "" : ",", options_table[i].name);
        json_string(o, v);
        first = false;
    }
    const struct hak_policy *pol = policy_current();
    put(o, "},\"policy\":{\"wmax_large_pct\":%u,\"refill_batch\":%u,\"bigcache_mb\":%u,",
        pol->wmax_large_pct, pol->refill_batch, pol->bigcache_mb);
    put(o, "\"cap_mid\":[");
    for (unsigned c = 0; c < HAK_POLICY_CLASSES; c++) put(o, "%s%u", c ? "," : "", pol->cap_mid[c]);
    put(o, "],\"cap_large\":[");
    for (unsigned c = 0; c < HAK_POLICY_CLASSES; c++)
        put(o, "%s%u", c ? "," : "", pol->cap_large[c]);
    put(o, "]}");
    report_json_prof(o, st);
    report_json_learn_sites(o);
    put(o, "}}\n");
}

void stats_report(void) {
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    stats_fill(&st);
    struct out o;
    o.len = 0;
    const char *path = HAK_BENCH_MINIMAL ? NULL : options_string[HAK_OPT_STATS_FILE];
    int file = path ? os_open_append(path) : -1;
    o.fd = file >= 0 ? file : hak_log_fd();
    if (hak_opt(HAK_OPT_STATS_FORMAT) == HAK_STATS_JSON)
        report_json(&o, &st);
    else
        report_text(&o, &st);
    out_flush(&o);
    if (file >= 0) close(file);
}

/* ---- periodic reports ------------------------------------------------- */

static void *reporter_main(void *arg) {
    (void)arg;
    uint64_t ms = (uint64_t)hak_opt(HAK_OPT_STATS_INTERVAL_MS);
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    for (;;) {
        nanosleep(&ts, NULL);
        stats_report();
    }
    return NULL;
}

void stats_start_reporter(void) {
    if (HAK_BENCH_MINIMAL || hak_opt(HAK_OPT_STATS_INTERVAL_MS) == 0) return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, (size_t)64 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, &attr, reporter_main, NULL) != 0)
        hak_log("HAKMEM_STATS_INTERVAL_MS: cannot start the reporter thread");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}
