/* frontend/parse.c: fe_parse, the frontend's one entry point: runs the
 * reentrant scanner (lexer.l) and the pure parser (parser.y) over one file.
 * The readable syntax-error messages are made in parser.y, which alone can
 * see bison's expected-token lists. */
#include <limits.h>

#include "frontend/frontend.h"
#include "frontend/parser.h"
#include "frontend/lexer.h"

AstProgram *fe_parse(Arena *a, Diag *d, const SrcFile *file) {
    int errors_before = d->nerrors;
    /* flex counts buffer sizes in int (and wants two bytes more). */
    if (file->len > (size_t)INT_MAX - 2) {
        diag_file_error(d, file->name, "file is too large (%zu bytes)", file->len);
        return NULL;
    }
    AstProgram *prog = arena_alloc(a, sizeof *prog);
    prog->file = file;

    FeLexer lx = {.arena = a, .diag = d, .file = file, .line = 1, .col = 1, .prev_line_end = 1};
    FeParser ps = {.arena = a, .diag = d, .file = file, .prog = prog};
    ps.skel_tail = &prog->skeletons;
    ps.in_tail = &prog->inputs;
    ps.out_tail = &prog->outputs;
    ps.let_tail = &prog->lets;

    yyscan_t scanner;
    if (yylex_init_extra(&lx, &scanner) != 0) sup_bug("cannot start the scanner");
    /* yy_scan_bytes, not yy_scan_string: the file may hold NUL bytes, which
     * the scanner reports like any other stray byte. */
    yy_scan_bytes(file->text, (int)file->len, scanner);
    int rc = yyparse(scanner, &ps);
    yylex_destroy(scanner);

    /* A file without a single declaration (empty, blank or only comments) is
     * almost surely the wrong file: say so rather than complain later that
     * there is no net block. A file whose contents are all errors has had its
     * errors reported already. */
    if (rc == 0 && ps.ndecls == 0 && d->nerrors == errors_before)
        diag_error(d, (SrcLoc){file, 1, 1}, "empty model file");
    return d->nerrors == errors_before && rc == 0 ? prog : NULL;
}
