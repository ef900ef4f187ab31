/* fuzz/fuzz_frontend.c: libFuzzer harness for the front half of the compiler.
 * Any bytes go through the parser; what parses is elaborated and run through
 * the pass pipeline. Diagnostics are fine, crashes, sanitizer reports, leaks
 * and internal errors (sup_bug aborts) are findings.
 *
 * One more property is checked: a program that parses, printed back with
 * ast_print, parses again and prints the same text.
 *
 * Build and run (clang required):
 *   CC=clang cmake -S . -B build-fuzz -DCHIRALC_FUZZ=ON -DCHIRALC_SANITIZE=ON
 *   cmake --build build-fuzz --target fuzz_frontend
 *   mkdir -p corpus && ./build-fuzz/fuzz_frontend corpus examples tests/bad -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "passes/passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull(void) {
    static FILE *f;
    if (!f) f = fopen("/dev/null", "w");
    if (!f) abort();
    return f;
}

static char *print_to_string(const AstProgram *p, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) abort();
    ast_print(f, p);
    fclose(f);
    return buf;
}

/* Print, parse the printout, print again: equal texts, or abort. */
static void check_round_trip(const AstProgram *ast) {
    size_t len1, len2;
    char *first = print_to_string(ast, &len1);
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, devnull());
    const SrcFile *f = diag_string_file(a, "reprinted.net", first, len1);
    AstProgram *again = fe_parse(a, &d, f);
    if (!again) {
        fprintf(stderr, "the printed program does not parse:\n%s", first);
        abort();
    }
    char *second = print_to_string(again, &len2);
    if (len1 != len2 || memcmp(first, second, len1) != 0) {
        fprintf(stderr, "printing is not stable:\n%s---\n%s", first, second);
        abort();
    }
    free(first);
    free(second);
    arena_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, devnull());
    const SrcFile *f = diag_string_file(a, "fuzz.net", (const char *)data, size);
    AstProgram *ast = fe_parse(a, &d, f);
    if (ast) {
        check_round_trip(ast);
        IrProgram *p = ir_elaborate(a, &d, ast, NULL, 0);
        if (p) pass_pipeline(p, NULL);
    }
    arena_free(a);
    return 0;
}
