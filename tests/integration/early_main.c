/*
 * early_main.c: hakmem serving the earliest allocations of a program run
 * with LD_PRELOAD=libhakmem.so (DESIGN.md 9). Checks, with hak_lane_of found
 * by dlsym in the preloaded library, that these blocks are hakmem's:
 *  - those of its own constructor (priority 101) and of a thread that
 *    constructor starts and that keeps allocating while main runs;
 *  - those of the constructor (and its thread) of a library it links, which
 *    runs before hakmem's own constructor;
 *  - those of a library loaded with dlopen (path in argv[1]);
 *  - the strings glibc allocates for dlerror after a failing dlsym or
 *    dlopen, and a block from malloc found with dlsym(RTLD_NEXT).
 * Exits 0 when all are, 1 otherwise (printing why).
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "early_lib.h"
#include "hakmem.h"

static struct early_record main_rec;
static pthread_t busy_thread;
static atomic_bool busy_stop;
static atomic_long busy_rounds;

static void *busy_main(void *arg) {
    (void)arg;
    while (!atomic_load(&busy_stop)) {
        void *p = malloc(300 + (size_t)(atomic_load(&busy_rounds) % 5000));
        if (!p) return (void *)1;
        memset(p, 0x22, 300);
        free(p);
        atomic_fetch_add(&busy_rounds, 1);
    }
    return NULL;
}

__attribute__((constructor(101))) static void main_ctor(void) {
    static const size_t sizes[] = {1, 32, 1000, 9000, 200000};
    for (int i = 0; i < 5; i++) {
        main_rec.block[i] = malloc(sizes[i]);
        main_rec.size[i] = sizes[i];
        if (!main_rec.block[i]) {
            main_rec.errors++;
            main_rec.what = "malloc in the program's constructor";
            return;
        }
        memset(main_rec.block[i], 0x33, sizes[i]);
        main_rec.n++;
    }
    if (pthread_create(&busy_thread, NULL, busy_main, NULL) != 0) {
        main_rec.errors++;
        main_rec.what = "pthread_create in the program's constructor";
    }
}

static int (*lane_of)(const void *);
static int failures;

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "early_main: " __VA_ARGS__);                           \
        fputc('\n', stderr);                                                   \
        failures++;                                                            \
    } while (0)

static void check_block(const char *who, const void *p) {
    if (!p)
        FAIL("%s: NULL", who);
    else if (lane_of(p) == HAK_LANE_NONE)
        FAIL("%s: %p is not hakmem's (hak_lane_of == 0)", who, p);
}

static void check_record(const char *who, const struct early_record *r) {
    if (r->errors) FAIL("%s: %d errors, first: %s", who, r->errors, r->what);
    if (r->n == 0) FAIL("%s: allocated nothing", who);
    for (int i = 0; i < r->n; i++) {
        check_block(who, r->block[i]);
        if (malloc_usable_size(r->block[i]) < r->size[i])
            FAIL("%s: block %d: usable size %zu < %zu", who, i, malloc_usable_size(r->block[i]),
                 r->size[i]);
        free(r->block[i]);
    }
}

/* dlsym into a function pointer without an object-to-function cast. */
static void fn_from_sym(void *fnptr, size_t size, void *sym) { memcpy(fnptr, &sym, size); }

/* The file name of the object defining address p. */
static const char *object_of(const void *p) {
    Dl_info info;
    if (!p || !dladdr(p, &info) || !info.dli_fname) return "(unknown)";
    return info.dli_fname;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: early_main PATH-TO-DLOPENED-LIBRARY\n");
        return 2;
    }
    fn_from_sym(&lane_of, sizeof lane_of, dlsym(RTLD_DEFAULT, "hak_lane_of"));
    if (!lane_of) {
        fprintf(stderr, "early_main: hak_lane_of not found: run with LD_PRELOAD=libhakmem.so\n");
        return 1;
    }
    const char *malloc_obj = object_of(dlsym(RTLD_DEFAULT, "malloc"));
    if (!strstr(malloc_obj, "libhakmem")) FAIL("malloc is bound to %s, not libhakmem", malloc_obj);

    check_record("the program's constructor(101)", &main_rec);
    check_record("the constructor of a linked library", itest_early_linked());

    /* a library loaded now, whose constructor allocates and starts a thread */
    void *h = dlopen(argv[1], RTLD_LAZY | RTLD_LOCAL);
    if (!h) {
        FAIL("dlopen %s: %s", argv[1], dlerror());
    } else {
        const struct early_record *(*get)(void) = NULL;
        fn_from_sym(&get, sizeof get, dlsym(h, "itest_early_dl"));
        if (!get)
            FAIL("itest_early_dl not found in %s", argv[1]);
        else
            check_record("the constructor of a dlopen'ed library", get());
    }

    /* glibc allocates dlerror's message with malloc */
    if (dlsym(RTLD_NEXT, "itest_no_such_symbol") != NULL) FAIL("dlsym found a missing symbol");
    const char *err = dlerror();
    if (!err)
        FAIL("dlerror after a failing dlsym returned NULL");
    else
        check_block("dlerror() after dlsym(RTLD_NEXT)", err);
    if (dlopen("/nonexistent/libitest-none.so", RTLD_NOW) != NULL) FAIL("dlopen of nothing worked");
    err = dlerror();
    if (!err)
        FAIL("dlerror after a failing dlopen returned NULL");
    else
        check_block("dlerror() after dlopen", err);

    /* the interposer idiom: the next malloc after the program is hakmem's */
    void *(*next_malloc)(size_t) = NULL;
    fn_from_sym(&next_malloc, sizeof next_malloc, dlsym(RTLD_NEXT, "malloc"));
    if (!next_malloc) {
        FAIL("dlsym(RTLD_NEXT, \"malloc\") failed: %s", dlerror());
    } else {
        void *p = next_malloc(100);
        check_block("dlsym(RTLD_NEXT, \"malloc\")(100)", p);
        free(p);
    }

    atomic_store(&busy_stop, true);
    void *busy_res = NULL;
    pthread_join(busy_thread, &busy_res);
    if (busy_res != NULL) FAIL("the constructor's busy thread failed to allocate");

    int (*stats_get)(struct hak_stats *) = NULL;
    fn_from_sym(&stats_get, sizeof stats_get, dlsym(RTLD_DEFAULT, "hak_stats_get"));
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (!stats_get || stats_get(&st) != 0)
        FAIL("hak_stats_get failed");
    else if (st.lane[0].allocs == 0 && !HAK_TEST_BENCH_MINIMAL) /* no counters there */
        FAIL("hak_stats_get reports no allocations");

    if (h) dlclose(h);
    if (failures) return 1;
    printf("early init: every early block is hakmem's (%llu allocations, busy thread %ld rounds)\n",
           (unsigned long long)st.lane[0].allocs, atomic_load(&busy_rounds));
    return 0;
}
