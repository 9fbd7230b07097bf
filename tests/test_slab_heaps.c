/*
 * test_slab_heaps.c: the static heaps every thread without a heap of its
 * own shares (slab_heap_empty before a thread's first allocation,
 * slab_heap_dead after its exit) are never written by a free: their block
 * caches stay empty and without room. A free from such a thread once
 * decremented the shared room and undid it on the slow path, unlocked: two
 * threads' updates raced, the room drifted above zero, and the next free
 * put its block on the shared cache, where two threads could pop it (this
 * test caught the drift in one run of five against that code; ThreadSanitizer
 * would report every such write, but the TSan configuration leaves out the
 * Criterion programs: tests/meson.build). The internal API: the static
 * library.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "hakmem.h"
#include "slab.h"

enum { THREADS = 8, BLOCKS = 20000 };

static pthread_key_t late_key;
static pthread_barrier_t start;

static void check_untouched(const struct slab_heap *h, const char *name) {
    for (unsigned c = 0; c < SLAB_MAX_CLASSES; c++) {
        cr_assert_eq(h->tc_room[c], 0, "%s: room %lld in class %u", name,
                     (long long)h->tc_room[c], c);
        cr_assert_null(h->tc[c], "%s: a cached block in class %u", name, c);
    }
}

/* Runs after hakmem's own thread-exit hook (its key was made first): the
 * thread's heaps are the dead ones now. */
static void free_after_exit(void *arg) {
    void **v = arg;
    for (int i = 0; i < BLOCKS; i++) hak_free(v[i]);
    for (int i = 0; i < BLOCKS; i++) hak_free(hak_malloc(16 + (size_t)(i % 8) * 64));
    hak_free(v);
}

static void *allocate_then_exit(void *arg) {
    (void)arg;
    void **v = hak_malloc(BLOCKS * sizeof *v);
    for (int i = 0; i < BLOCKS; i++) v[i] = hak_malloc(16 + (size_t)(i % 8) * 64);
    pthread_setspecific(late_key, v);
    pthread_barrier_wait(&start);
    return NULL;
}

Test(slab_heaps, frees_after_thread_exit_leave_the_dead_heap_untouched) {
    hak_free(hak_malloc(1)); /* hakmem's key first */
    cr_assert_eq(pthread_key_create(&late_key, free_after_exit), 0);
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, allocate_then_exit, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    check_untouched(&slab_heap_dead, "slab_heap_dead");
    check_untouched(&slab_heap_empty, "slab_heap_empty");
}

struct handoff {
    void *blocks[BLOCKS];
};

static void *free_first(void *arg) {
    struct handoff *h = arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < BLOCKS / THREADS; i++) hak_free(h->blocks[i]);
    return NULL;
}

Test(slab_heaps, first_calls_that_are_frees_leave_the_empty_heap_untouched) {
    static struct handoff h[THREADS];
    for (int k = 0; k < THREADS; k++)
        for (int i = 0; i < BLOCKS / THREADS; i++) h[k].blocks[i] = hak_malloc(16 + (size_t)i % 1000);
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, free_first, &h[i]);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    check_untouched(&slab_heap_empty, "slab_heap_empty");
    check_untouched(&slab_heap_dead, "slab_heap_dead");
}
