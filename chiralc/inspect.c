/* chiralc/inspect.c: `chiralc inspect`: the IR, the count table, a picture. */
#include <errno.h>
#include <string.h>

#include "chiralc/cmd.h"

static int write_dot(const IrProgram *p, const char *path) {
    SupAtomic w;
    if (!sup_atomic_open(&w, p->arena, path)) goto fail;
    ir_write_dot(w.f, p);
    if (sup_atomic_commit(&w)) return 0;
fail:
    fprintf(stderr, "%s: error: cannot write the graph: %s\n", path, strerror(errno));
    return 1;
}

int cmd_inspect(IrProgram *p, const InspectOpts *o) {
    if (o->ir) ir_print(stdout, p);
    if (o->ir && o->table) fputc('\n', stdout);
    if (o->table) pass_print_counts(stdout, p);
    if (o->dot) return write_dot(p, o->dot);
    return 0;
}
