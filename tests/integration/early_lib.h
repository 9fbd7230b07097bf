/*
 * early_lib.h: the two libraries built from early_lib.c, each allocating
 * from its constructor (one linked into early_main, loaded before hakmem's
 * constructor runs; one loaded with dlopen). Each records its blocks.
 */
#ifndef HAK_ITEST_EARLY_LIB_H
#define HAK_ITEST_EARLY_LIB_H

#include <stddef.h>

/* What a constructor allocated and left allocated, for main to check. */
struct early_record {
    void *block[16]; /* live blocks (the caller frees them) */
    size_t size[16]; /* their sizes */
    int n;
    int errors;      /* a NULL, a calloc that was not zero, lost content */
    const char *what; /* first error, or NULL */
};

const struct early_record *itest_early_linked(void);
const struct early_record *itest_early_dl(void);

#endif /* HAK_ITEST_EARLY_LIB_H */
