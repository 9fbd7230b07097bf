/*
 * probe.c: a program that makes hakmem initialise (through hak_*, so that
 * it works in every build) and exits 0. The options tests run it with a
 * chosen environment and look at what hakmem printed, and where.
 */
#include <stdio.h>
#include <string.h>

#include "hakmem.h"

int main(void) {
    static const size_t sizes[] = {16, 4096, 100000, 3u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = hak_malloc(sizes[i]);
        if (!p) {
            fprintf(stdout, "hak_malloc(%zu) failed\n", sizes[i]);
            return 1;
        }
        memset(p, 0x5a, sizes[i]);
        hak_free(p);
    }
    return 0;
}
