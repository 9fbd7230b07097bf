/*
 * fuzz_ops.c: a fuzz target that drives hak_* with a sequence of operations
 * decoded from its input and checks every block against a shadow model.
 *
 * Built two ways (tests/fuzz/meson.build):
 *   - with libFuzzer (clang -fsanitize=fuzzer), which calls
 *     LLVMFuzzerTestOneInput with inputs it mutates;
 *   - with fuzz_replay.c, a small main() that feeds it the files of the seed
 *     corpus (tests/fuzz/corpus/), so every build replays them.
 *
 * The input is a byte string read as operations, each an opcode byte and
 * its arguments (missing bytes read as 0):
 *   ALLOC   slot size2        hak_malloc (size: see decode_size)
 *   CALLOC  slot size2        hak_calloc(1, size), contents checked zero
 *   ALIGNED slot size2 a      hak_aligned_alloc / hak_memalign /
 *                             hak_posix_memalign (by a), alignment 2^(a%22)
 *   FREE    slot              hak_free
 *   REALLOC slot size2        hak_realloc: the common prefix is kept
 *   USABLE  slot              hak_usable_size >= the size asked for
 *   SWITCH  t                 the operations that follow run on thread
 *                             t % FUZZ_THREADS (real threads, so frees of
 *                             another thread's blocks take the remote path)
 *   RETIRE                    the current worker thread exits (its heap is
 *                             abandoned) and a fresh one takes its place
 *   TRIM                      hak_trim(0)
 *   BAD                       hak_malloc(huge) fails with ENOMEM
 * A slot (0..FUZZ_SLOTS-1) that already holds a block when an allocation
 * names it frees that block first. The shadow model remembers, for each slot,
 * the block, the size asked for, its alignment and a fill seed; every block
 * holds a pattern written at allocation, checked before every free and
 * realloc and at the end, when all blocks still live are checked not to
 * overlap and then freed. Any disagreement aborts (libFuzzer then saves the
 * input as a crash).
 *
 * No allocation of the harness's own: the model is static.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

#define FUZZ_SLOTS 64
#define FUZZ_THREADS 3                         /* thread 0 is the caller */
#define FUZZ_LIVE_MAX ((size_t)96 << 20)       /* bytes live at most */
#define FUZZ_OPS_MAX 4096                      /* operations per input */

enum { OP_ALLOC, OP_CALLOC, OP_ALIGNED, OP_FREE, OP_REALLOC, OP_USABLE, OP_SWITCH,
       OP_RETIRE, OP_TRIM, OP_BAD, OP_COUNT };

struct shadow {
    unsigned char *p; /* the block, NULL when the slot is empty */
    size_t size;      /* bytes asked for */
    size_t align;     /* alignment asked for (16 for malloc and friends) */
    uint8_t seed;     /* fill pattern seed */
};

static struct shadow slots[FUZZ_SLOTS];
static size_t live_bytes;

/* ---- input ------------------------------------------------------------ */

struct input {
    const uint8_t *data;
    size_t size, at;
};

static unsigned byte(struct input *in) { return in->at < in->size ? in->data[in->at++] : 0; }

/* Two bytes -> a size that lands in every lane: the top three bits of the
 * first pick a range (tiny, its edges, pool, ace, huge), the rest a size
 * inside it. */
static size_t decode_size(struct input *in) {
    unsigned a = byte(in), b = byte(in);
    unsigned v = ((a & 0x1f) << 8) | b; /* 0 .. 8191 */
    switch (a >> 5) {
    case 0: return v % 129;                                  /* 0 .. 128 */
    case 1: return v % (HAK_TINY_MAX + 1);                   /* tiny */
    case 2: return HAK_TINY_MAX - 8 + v % 17;                /* tiny/pool edge */
    case 3: return HAK_TINY_MAX + 1 + (size_t)v * 4 % (HAK_POOL_MAX - HAK_TINY_MAX); /* pool */
    case 4: return HAK_POOL_MAX - 8 + v % 17;                /* pool/ace edge */
    case 5: return HAK_POOL_MAX + 1 + (size_t)v * 128;       /* ace */
    case 6: return HAK_ACE_MAX - 8 + v % 17;                 /* ace/huge edge */
    default: return HAK_ACE_MAX + (size_t)v * 512;           /* huge, up to 5 MiB */
    }
}

/* ---- the pattern -------------------------------------------------------
 * Whole blocks up to 64 KiB; beyond, the first and last 4 KiB and one byte
 * every 4 KiB (the cost of filling megabytes at every step would starve the
 * fuzzer). */
static uint8_t pat(uint8_t seed, size_t i) { return (uint8_t)(seed + i * 131 + (i >> 8)); }

#define FULL_FILL ((size_t)64 << 10)
#define EDGE 4096

static void fill(unsigned char *p, size_t n, uint8_t seed) {
    if (n <= FULL_FILL) {
        for (size_t i = 0; i < n; i++) p[i] = pat(seed, i);
        return;
    }
    for (size_t i = 0; i < EDGE; i++) p[i] = pat(seed, i);
    for (size_t i = EDGE; i < n - EDGE; i += 4096) p[i] = pat(seed, i);
    for (size_t i = n - EDGE; i < n; i++) p[i] = pat(seed, i);
}

static void fail(const char *what, unsigned slot, size_t a, size_t b) {
    fprintf(stderr, "fuzz_ops: %s (slot %u: %zu, %zu)\n", what, slot, a, b);
    fflush(stderr);
    abort();
}

/* Checks slot s's pattern (written for its whole size) in its first n
 * bytes. */
static void verify(unsigned s, size_t n) {
    const unsigned char *p = slots[s].p;
    size_t size = slots[s].size;
    uint8_t seed = slots[s].seed;
    for (size_t i = 0; i < n;) {
        if (p[i] != pat(seed, i)) fail("block contents changed", s, i, n);
        /* the next byte fill() wrote */
        if (size <= FULL_FILL || i + 1 <= EDGE || i >= size - EDGE)
            i++;
        else
            i = i + 4096 < size - EDGE ? i + 4096 : size - EDGE;
    }
}

/* A fresh block for slot s: alignment, usable size, then the pattern. */
static void adopt(unsigned s, void *p, size_t size, size_t align, uint8_t seed) {
    if (p == NULL) fail("allocation failed", s, size, align);
    if ((uintptr_t)p % align != 0) fail("misaligned block", s, (uintptr_t)p, align);
    size_t us = hak_usable_size(p);
    if (us < size) fail("usable size below the size asked for", s, us, size);
    slots[s] = (struct shadow){ p, size, align, seed };
    live_bytes += size;
    fill(p, size, seed);
}

static void release(unsigned s) {
    if (!slots[s].p) return;
    verify(s, slots[s].size);
    hak_free(slots[s].p);
    live_bytes -= slots[s].size;
    slots[s].p = NULL;
}

/* ---- operations ------------------------------------------------------- */

/* Runs one operation; returns the thread that runs the next one. */
static unsigned run_op(struct input *in, unsigned op, unsigned me, bool *retire) {
    unsigned s = 0;
    size_t size = 0;
    switch (op) {
    case OP_ALLOC:
    case OP_CALLOC:
    case OP_ALIGNED: {
        s = byte(in) % FUZZ_SLOTS;
        size = decode_size(in);
        unsigned a = op == OP_ALIGNED ? byte(in) : 0;
        release(s);
        if (live_bytes + size > FUZZ_LIVE_MAX) break;
        uint8_t seed = (uint8_t)(in->at * 7 + s);
        if (op == OP_ALLOC) {
            adopt(s, hak_malloc(size), size, 16, seed);
        } else if (op == OP_CALLOC) {
            unsigned char *p = hak_calloc(1, size);
            for (size_t i = 0; p && i < size; i += (size > FULL_FILL ? 4093 : 1))
                if (p[i] != 0) fail("calloc block not zero", s, i, size);
            adopt(s, p, size, 16, seed);
        } else {
            size_t align = (size_t)1 << (a % 22); /* 1 B .. 2 MiB */
            void *p = NULL;
            switch ((a >> 5) % 3) {
            case 0:
                /* aligned_alloc: size a multiple of align (C11) */
                size = (size + align - 1) / align * align;
                if (live_bytes + size > FUZZ_LIVE_MAX) return me;
                p = hak_aligned_alloc(align, size);
                break;
            case 1:
                p = hak_memalign(align, size);
                break;
            default:
                if (align < sizeof(void *)) align = sizeof(void *);
                if (hak_posix_memalign(&p, align, size) != 0) p = NULL;
                break;
            }
            adopt(s, p, size, align < 16 ? 1 : align, seed);
        }
        break;
    }
    case OP_FREE:
        release(byte(in) % FUZZ_SLOTS);
        break;
    case OP_REALLOC: {
        s = byte(in) % FUZZ_SLOTS;
        size = decode_size(in);
        struct shadow old = slots[s];
        if (old.p == NULL) {
            if (live_bytes + size > FUZZ_LIVE_MAX) break;
            adopt(s, hak_realloc(NULL, size), size, 16, (uint8_t)s);
            break;
        }
        if (live_bytes - old.size + size > FUZZ_LIVE_MAX) break;
        verify(s, old.size);
        if (size == 0) {
            /* glibc's realloc(p, 0) frees p and returns NULL */
            void *q = hak_realloc(old.p, 0);
            if (q != NULL) hak_free(q);
            live_bytes -= old.size;
            slots[s].p = NULL;
            break;
        }
        unsigned char *q = hak_realloc(old.p, size);
        if (q == NULL) fail("realloc failed", s, old.size, size);
        slots[s].p = q;
        size_t keep = old.size < size ? old.size : size;
        verify(s, keep); /* the prefix moved with the block */
        live_bytes -= old.size;
        slots[s].p = NULL;
        adopt(s, q, size, 16, old.seed);
        break;
    }
    case OP_USABLE:
        s = byte(in) % FUZZ_SLOTS;
        if (slots[s].p && hak_usable_size(slots[s].p) < slots[s].size)
            fail("usable size shrank", s, hak_usable_size(slots[s].p), slots[s].size);
        break;
    case OP_SWITCH:
        return byte(in) % FUZZ_THREADS;
    case OP_RETIRE:
        if (me != 0) {
            *retire = true;
            return 0;
        }
        break;
    case OP_TRIM:
        hak_trim(0);
        break;
    case OP_BAD:
        errno = 0;
        if (hak_malloc(SIZE_MAX - 4096) != NULL || errno != ENOMEM)
            fail("a huge request did not fail with ENOMEM", 0, 0, (size_t)errno);
        break;
    }
    return me;
}

/* ---- threads ----------------------------------------------------------
 * One thread runs operations at a time (the baton); it hands over with a
 * mutex, so the model needs no locks of its own and each handover orders
 * the threads' accesses to the blocks. Workers live across inputs. */
static pthread_mutex_t baton_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t baton_cv = PTHREAD_COND_INITIALIZER;
static unsigned baton;            /* who runs */
static bool input_done;           /* the input ran out: everyone back to 0 */
static struct input *current;     /* the input being run */
static unsigned ops_left;
static pthread_t workers[FUZZ_THREADS];
static bool retired[FUZZ_THREADS];
static bool started;

static void pass_baton(unsigned to) {
    pthread_mutex_lock(&baton_lock);
    baton = to;
    pthread_cond_broadcast(&baton_cv);
    pthread_mutex_unlock(&baton_lock);
}

static void wait_baton(unsigned me) {
    pthread_mutex_lock(&baton_lock);
    while (baton != me) pthread_cond_wait(&baton_cv, &baton_lock);
    pthread_mutex_unlock(&baton_lock);
}

/* Runs operations as thread me until the input ends, another thread is
 * named, or (retire) this worker is to exit; returns the next thread. */
static unsigned run_ops(unsigned me, bool *retire) {
    struct input *in = current;
    while (in->at < in->size && ops_left > 0) {
        ops_left--;
        unsigned next = run_op(in, byte(in) % OP_COUNT, me, retire);
        if (next != me || *retire) return next;
    }
    input_done = true;
    return 0;
}

static void *worker_main(void *arg) {
    unsigned me = (unsigned)(uintptr_t)arg;
    for (;;) {
        wait_baton(me);
        bool retire = false;
        unsigned next = run_ops(me, &retire);
        if (retire) retired[me] = true;
        pass_baton(next);
        if (retire) return NULL;
    }
}

static void start_worker(unsigned t) {
    if (pthread_create(&workers[t], NULL, worker_main, (void *)(uintptr_t)t) != 0) {
        fprintf(stderr, "fuzz_ops: pthread_create failed\n");
        abort();
    }
}

/* Frees everything still live, checking that no two blocks overlap. */
static void check_and_free_all(void) {
    for (unsigned i = 0; i < FUZZ_SLOTS; i++) {
        if (!slots[i].p) continue;
        uintptr_t a = (uintptr_t)slots[i].p, ae = a + hak_usable_size(slots[i].p);
        for (unsigned j = i + 1; j < FUZZ_SLOTS; j++) {
            if (!slots[j].p) continue;
            uintptr_t b = (uintptr_t)slots[j].p, be = b + hak_usable_size(slots[j].p);
            if (a < be && b < ae) fail("two live blocks overlap", i, j, 0);
        }
    }
    for (unsigned i = 0; i < FUZZ_SLOTS; i++) release(i);
    if (live_bytes != 0) fail("model lost count of live bytes", 0, live_bytes, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!started) {
        for (unsigned t = 1; t < FUZZ_THREADS; t++) start_worker(t);
        started = true;
    }
    static struct input in;
    in = (struct input){ data, size, 0 };
    current = &in;
    ops_left = FUZZ_OPS_MAX;
    input_done = false;
    unsigned who = 0;
    while (!input_done) {
        if (who == 0) {
            bool retire = false; /* thread 0 never retires */
            who = run_ops(0, &retire);
            continue;
        }
        pass_baton(who);
        wait_baton(0);
        for (unsigned t = 1; t < FUZZ_THREADS; t++) {
            if (!retired[t]) continue;
            pthread_join(workers[t], NULL);
            retired[t] = false;
            start_worker(t);
        }
        who = 0;
    }
    check_and_free_all();
    return 0;
}
