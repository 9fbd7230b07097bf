/*
 * overflow_free_block.c: a heap overflow from a block into the free block
 * right after it, overwriting that block's free-list link with an address
 * the "attacker" chose (a static buffer), then two allocations of the size.
 *
 *   default build: the allocator follows the forged link and hands out the
 *     static buffer (the overflow goes unnoticed: this is what the hardened
 *     build is for);
 *   -Dsecure=true: the first allocation finds the block overwritten and
 *     aborts with "hakmem: malloc(): heap corruption: ...".
 *
 * Both the link alone (8 bytes past the end) and the link with the block's
 * free mark (16 bytes) are overwritten, in the tiny and the pool lanes (the
 * slab engine's free lists). And one byte written past a huge block: the
 * hardened build's guard page faults. Each case runs in a child process. A plain
 * program (no Criterion), so it runs under every sanitizer too.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hak_config.h"
#include "hakmem.h"

#define N 64

static _Alignas(64) unsigned char target[4096];

/* The child: returns its exit status. 0: the forged link was followed. */
static int overflow_and_allocate(size_t size, size_t bytes) {
    unsigned char *blk[N];
    for (int i = 0; i < N; i++) blk[i] = hak_malloc(size);
    /* two neighbours, p and q = p + size */
    unsigned char *p = NULL, *q = NULL;
    for (int i = 0; i < N && !q; i++)
        for (int j = 0; j < N; j++)
            if (blk[j] == blk[i] + size) {
                p = blk[i];
                q = blk[j];
                break;
            }
    if (!q) {
        fprintf(stderr, "no two neighbouring blocks of %zu bytes\n", size);
        return 3;
    }
    hak_free(q); /* q heads its slab's free list */
    uintptr_t forged[2] = {(uintptr_t)target, 0};
    memcpy(p + size, forged, bytes); /* the overflow */
    void *a = hak_malloc(size);
    void *b = hak_malloc(size);
    if (a == q && b == target) return 0; /* the forged link was followed */
    fprintf(stderr, "unexpected: got %p and %p (q %p, target %p)\n", a, b, (void *)q,
            (void *)target);
    return 4;
}

/* The child of the huge case: one byte written just past a huge block's
 * usable size. Returns 0 when the write went through. */
static int write_past_huge_block(size_t size) {
    unsigned char *p = hak_malloc(size);
    if (!p) return 3;
    volatile unsigned char *end = p + hak_usable_size(p);
    signal(SIGSEGV, SIG_DFL); /* a sanitizer's handler would exit instead */
    *end = 1;
    return 0;
}

/* Runs one case in a child; returns 1 when it behaved as this build must.
 * bytes == 0: the huge case. */
static int run_case(const char *lane, size_t size, size_t bytes) {
    int errpipe[2];
    if (pipe(errpipe) != 0) return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(errpipe[1], STDERR_FILENO);
        close(errpipe[0]);
        _exit(bytes ? overflow_and_allocate(size, bytes) : write_past_huge_block(size));
    }
    close(errpipe[1]);
    char err[1024];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof err - 1 && (r = read(errpipe[0], err + n, sizeof err - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = 0;
    close(errpipe[0]);
    int st;
    waitpid(pid, &st, 0);
    int ok;
    if (bytes == 0) {
        /* -Dsecure: a guard page follows every huge block */
        ok = HAK_SECURE ? WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV
                        : WIFEXITED(st) && WEXITSTATUS(st) == 0;
        printf("%s huge: a byte past a %zu-byte block (%s)\n", ok ? "ok" : "FAIL", size,
               HAK_SECURE ? "must fault" : "goes unnoticed");
        if (!ok) fprintf(stderr, "child status %#x, stderr:\n%s\n", st, err);
        return ok;
    }
    if (HAK_SECURE)
        ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT &&
             strstr(err, "hakmem: malloc(): heap corruption: a free block was overwritten");
    else
        ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("%s %s: %zu bytes over a free %zu-byte block (%s)\n", ok ? "ok" : "FAIL", lane, bytes,
           size, HAK_SECURE ? "must abort" : "goes unnoticed");
    if (!ok) fprintf(stderr, "child status %#x, stderr:\n%s\n", st, err);
    return ok;
}

int main(void) {
    int cases = 0, passed = 0;
    const struct {
        const char *name;
        int lane;
        size_t size;
    } lanes[] = {{"tiny", HAK_LANE_TINY, 64}, {"pool", HAK_LANE_POOL, 2048}};
    for (unsigned l = 0; l < 2; l++) {
        if (!hak_lane_enabled(lanes[l].lane)) continue;
        /* the pool's freed block goes on the thread's block cache, not on
         * the slab list this test forges, unless the cache is off
         * (HAKMEM_POOL_TCACHE_KB=0 in meson.build); -Dbench_minimal reads
         * no variable */
        if (HAK_TEST_BENCH_MINIMAL && lanes[l].lane == HAK_LANE_POOL) {
            printf("skip pool: -Dbench_minimal cannot turn the block cache off\n");
            continue;
        }
        for (size_t bytes = 8; bytes <= 16; bytes += 8) {
            cases++;
            passed += run_case(lanes[l].name, lanes[l].size, bytes);
        }
    }
    cases++;
    passed += run_case("huge", 3 * HAK_CHUNK_SIZE + 100, 0);
    printf("%d of %d cases passed\n", passed, cases);
    return passed == cases ? 0 : 1;
}
