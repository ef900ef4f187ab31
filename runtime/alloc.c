/* runtime/alloc.c: every allocation of the runtime goes through here, so that a test
 * can make one fail; a failed allocation is one line and exit status 1. */
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

void *(*rt_alloc_hook)(size_t n) = NULL;

void *rt_malloc(size_t n) {
    void *p = rt_alloc_hook ? rt_alloc_hook(n) : malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "error: out of memory (allocating %zu bytes)\n", n);
        exit(1);
    }
    return p;
}

void *rt_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) {
        fprintf(stderr, "error: out of memory (allocating %zu x %zu bytes)\n", n, size);
        exit(1);
    }
    void *p = rt_malloc(n * size);
    memset(p, 0, n * size);
    return p;
}

void rt_free(void *p) { free(p); }
