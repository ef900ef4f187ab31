/* tests/unit/front.h: the front half for unit tests. A source text, or a file of the
 * repository ($CHIRALC_SOURCE_DIR), through parsing and elaboration; the test then
 * configures the program (layout, sharing, training, ...) and runs the passes. Any
 * diagnostic fails the test. Include after <cmocka.h>. */
#ifndef CHIRALC_TEST_FRONT_H
#define CHIRALC_TEST_FRONT_H

#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

/* text != NULL: parse it under the name `rel`; else read `rel` from the repository.
 * NULL when the repository is unknown (CHIRALC_SOURCE_DIR unset): the caller skips. */
static inline IrProgram *front_elaborate(Arena *a, Diag *d, const char *rel, const char *text, IrOverride *ov,
                                         int nov) {
    SrcFile *f;
    if (text) {
        f = diag_string_file(a, rel, text, strlen(text));
    } else {
        const char *dir = getenv("CHIRALC_SOURCE_DIR");
        if (!dir) return NULL;
        f = diag_read_file(a, d, arena_printf(a, "%s/%s", dir, rel));
    }
    assert_non_null(f);
    AstProgram *ast = fe_parse(a, d, f);
    assert_non_null(ast);
    IrProgram *p = ir_elaborate(a, d, ast, ov, nov);
    assert_non_null(p);
    return p;
}

static inline IrProgram *front_passes(IrProgram *p) {
    assert_true(pass_pipeline(p, NULL));
    return p;
}

#endif
