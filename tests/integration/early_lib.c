/*
 * early_lib.c: a library whose constructor allocates through every entry
 * point and starts a thread that allocates (DESIGN.md 9: the first calls may
 * come from constructors of other libraries, before hakmem's own constructor
 * has run, and from threads started there). Built twice: EARLY_TAG=linked
 * (linked into early_main, so its constructor runs before the preloaded
 * hakmem's) and EARLY_TAG=dl (loaded by early_main with dlopen).
 */
#include "early_lib.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define GETTER CAT(itest_early_, EARLY_TAG)

static struct early_record rec;

static void keep(void *p, size_t n) {
    if (rec.n < 16) {
        rec.block[rec.n] = p;
        rec.size[rec.n] = n;
        rec.n++;
    } else {
        free(p);
    }
}

static void fail(const char *what) {
    rec.errors++;
    if (!rec.what) rec.what = what;
}

#define FAIL_RETURN(what)                                                      \
    do {                                                                       \
        fail(what);                                                            \
        return;                                                                \
    } while (0)

static void *thread_main(void *arg) {
    (void)arg;
    static const size_t sizes[] = {8, 100, 4000, 70000, 2u << 20};
    void *held[5];
    for (int i = 0; i < 5; i++) {
        held[i] = malloc(sizes[i]);
        if (!held[i]) return NULL;
        memset(held[i], 0x11, sizes[i]);
    }
    for (int i = 0; i < 5; i += 2) free(held[i]);
    /* two survive the thread; the constructor records them */
    static void *out[2];
    out[0] = held[1];
    out[1] = held[3];
    return out;
}

__attribute__((constructor)) static void early_ctor(void) {
    char *a = malloc(24);
    if (!a) FAIL_RETURN("malloc(24)");
    strcpy(a, "early");
    keep(a, 24);

    unsigned char *b = calloc(100, 50);
    if (!b) FAIL_RETURN("calloc(100, 50)");
    for (size_t i = 0; i < 5000; i++)
        if (b[i]) FAIL_RETURN("calloc memory is not zero");
    keep(b, 5000);

    char *c = realloc(NULL, 5000);
    if (!c) FAIL_RETURN("realloc(NULL, 5000)");
    memset(c, 'c', 5000);
    char *c2 = realloc(c, (size_t)3 << 20);
    if (!c2) FAIL_RETURN("realloc to 3 MiB");
    for (size_t i = 0; i < 5000; i++)
        if (c2[i] != 'c') FAIL_RETURN("realloc lost the content");
    c = realloc(c2, 100);
    if (!c || c[99] != 'c') FAIL_RETURN("realloc shrink");
    keep(c, 100);

    void *d = NULL;
    if (posix_memalign(&d, 4096, 10000) != 0 || ((uintptr_t)d & 4095) != 0)
        FAIL_RETURN("posix_memalign(4096)");
    keep(d, 10000);

    char *e = strdup("a string from the constructor");
    if (!e) FAIL_RETURN("strdup");
    keep(e, strlen(e) + 1);

    void *big = malloc((size_t)5 << 20);
    if (!big) FAIL_RETURN("malloc(5 MiB)");
    memset(big, 1, (size_t)5 << 20);
    free(big);

    pthread_t t;
    void *res = NULL;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0) FAIL_RETURN("pthread_create");
    pthread_join(t, &res);
    void **out = res;
    if (!out || !out[0] || !out[1]) FAIL_RETURN("the constructor's thread failed");
    keep(out[0], 100);
    keep(out[1], 70000);
}

const struct early_record *GETTER(void) { return &rec; }
