/* runtime/alloc.c: every allocation of the runtime goes through here, so that a test
 * can make one fail; a failed allocation is one line and exit status 1. */
#define _DEFAULT_SOURCE /* madvise and MADV_HUGEPAGE */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime/rt.h"

void *(*rt_alloc_hook)(size_t n) = NULL;

/* A large buffer (the arena, parameters, gradients) on 2 MiB pages where the kernel
 * hands them out on request (transparent huge pages in "madvise" mode): the generated
 * kernels walk activations of hundreds of MB, on 4 KiB pages a TLB miss every 1024
 * floats. */
enum { HUGE_MIN = 32 << 20, HUGE_PAGE = 2 << 20 };
static void *host_alloc(size_t n) {
    if (n < HUGE_MIN) return malloc(n ? n : 1);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, n) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE); /* advice only: without it the pages are small */
#endif
    return p;
}

void *rt_malloc(size_t n) {
    void *p = rt_alloc_hook ? rt_alloc_hook(n) : host_alloc(n);
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
