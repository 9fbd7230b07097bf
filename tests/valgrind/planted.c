/*
 * planted.c: a program with two bugs planted on purpose, for the memcheck
 * test (memcheck.py): it leaks one 37-byte block and reads one byte past
 * the end of a 24-byte block, both through malloc. Before that it puts
 * hakmem to work through hak_* in every lane (and frees all of it), so
 * memcheck also watches hakmem's own code run.
 *
 * In the interposing build malloc is hakmem's, and memcheck sees the bugs
 * only when told to replace hakmem's malloc family with its own
 * (--soname-synonyms=somalloc=*hakmem*); in the -Dinterpose=false build
 * malloc is libc's, which memcheck replaces anyway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

void *volatile keep; /* where the leaked block's address is lost */

int main(void) {
    /* hakmem at work: every lane, realloc across lanes, all freed */
    static const size_t sizes[] = {1, 24, 100, 1000, 5000, 30000, 70000, 600000, 3000000};
    void *blk[sizeof sizes / sizeof sizes[0]];
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        blk[i] = hak_malloc(sizes[i]);
        if (!blk[i]) return 2;
        memset(blk[i], (int)i, sizes[i]);
    }
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        blk[i] = hak_realloc(blk[i], sizes[i] * 2 + 1);
        if (!blk[i]) return 2;
    }
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) hak_free(blk[i]);
    hak_trim(0);

    /* planted bug 1: a leak of 37 bytes */
    keep = malloc(37);
    keep = NULL;

    /* planted bug 2: a read one byte past a 24-byte block */
    unsigned char *p = malloc(24);
    if (!p) return 2;
    memset(p, 7, 24);
    volatile unsigned char *past = p + 24;
    int v = *past;
    free(p);

    printf("planted.c done (%d)\n", v & 1);
    return 0;
}
