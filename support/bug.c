/* support/bug.c: internal errors and the one allocation hook. */
#include <stdlib.h>

#include "support/support.h"

void *(*sup_alloc_hook)(size_t n) = NULL;

_Noreturn void sup_bug_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "chiralc: internal error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    abort();
}

static _Noreturn void out_of_memory(size_t n) {
    fprintf(stderr, "chiralc: error: out of memory (allocating %zu bytes)\n", n);
    exit(1);
}

void *sup_malloc(size_t n) {
    void *p = sup_alloc_hook ? sup_alloc_hook(n) : malloc(n);
    if (!p && n) out_of_memory(n);
    return p;
}

void *sup_realloc(void *p, size_t n) {
    /* Through the hook as well, so that a failing hook also covers growth. */
    if (sup_alloc_hook) {
        void *q = sup_alloc_hook(n);
        if (!q && n) out_of_memory(n);
        free(q);
    }
    void *q = realloc(p, n);
    if (!q && n) out_of_memory(n);
    return q;
}

void sup_free(void *p) { free(p); }
