/*
 * fuzz_replay.c: runs the fuzz target (fuzz_ops.c) on files, without
 * libFuzzer: each argument is a file, or a directory whose files are all
 * run (in name order, so a failure names the same file every time). The
 * seed corpus and every crash ever found live in tests/fuzz/corpus/, so
 * this is the fuzzer's regression test in every build.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (1 << 16)

static uint8_t buf[INPUT_MAX];

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv) {
    int files = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += run_file(argv[i]);
            files++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, by_name);
        if (n < 0) {
            perror(argv[i]);
            return 1;
        }
        for (int k = 0; k < n; k++) {
            if (names[k]->d_name[0] != '.') {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
                bad += run_file(path);
                files++;
            }
            free(names[k]);
        }
        free(names);
    }
    if (files == 0 || bad) {
        fprintf(stderr, "fuzz_replay: %d files, %d unreadable\n", files, bad);
        return 1;
    }
    printf("fuzz_replay: %d inputs replayed, every check held\n", files);
    return 0;
}
