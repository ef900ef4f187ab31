/* chiralc/inspect.c: `chiralc inspect`: the IR, the count table, a picture. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chiralc/cmd.h"

/* Writes the DOT file next to its destination and renames it into place, so a
 * failure never leaves half a file under the name the user asked for. */
static int write_dot(const IrProgram *p, const char *path) {
    size_t n = strlen(path) + 16;
    char *tmp = sup_malloc(n);
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        fprintf(stderr, "%s: error: cannot write the graph: ", path);
        perror(NULL);
        if (fd >= 0) close(fd), unlink(tmp);
        sup_free(tmp);
        return 1;
    }
    ir_write_dot(f, p);
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "%s: error: cannot write the graph: ", path);
        perror(NULL);
        unlink(tmp);
    }
    sup_free(tmp);
    return ok ? 0 : 1;
}

int cmd_inspect(IrProgram *p, const InspectOpts *o) {
    if (o->ir) ir_print(stdout, p);
    if (o->ir && o->table) fputc('\n', stdout);
    if (o->table) pass_print_counts(stdout, p);
    if (o->dot) return write_dot(p, o->dot);
    return 0;
}
