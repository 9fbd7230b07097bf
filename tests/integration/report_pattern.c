/*
 * report_pattern.c: a known allocation pattern for the report tests: 1000
 * blocks of 100 bytes kept live, then a sleep of argv[1] milliseconds (for
 * periodic reports), then exit, where HAKMEM_STATS=1 writes the last report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hakmem.h"

int main(int argc, char **argv) {
    long ms = argc > 1 ? atol(argv[1]) : 0;
    static void *keep[1000];
    for (int i = 0; i < 1000; i++) {
        keep[i] = hak_malloc(100);
        if (!keep[i]) return 1;
        memset(keep[i], i, 100);
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return keep[999] ? 0 : 1;
}
