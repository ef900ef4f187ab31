/* support/atomic.c: files that appear whole or not at all. The compiler writes its
 * outputs (sources, graphs, programs) to a temporary file beside the destination and
 * renames it into place, so a failure never leaves half a file under the user's name. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/support.h"

char *sup_atomic_temp(Arena *a, const char *path) {
    char *tmp = arena_printf(a, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return NULL;
    /* mkstemp's 0600 is for secrets; outputs get what the umask allows */
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
    close(fd);
    return tmp;
}

bool sup_atomic_rename(const char *tmp, const char *path) {
    if (rename(tmp, path) == 0) return true;
    int err = errno;
    unlink(tmp);
    errno = err;
    return false;
}

FILE *sup_atomic_open(SupAtomic *w, Arena *a, const char *path) {
    w->path = path;
    w->tmp = sup_atomic_temp(a, path);
    w->f = w->tmp ? fopen(w->tmp, "w") : NULL;
    if (w->tmp && !w->f) {
        int err = errno;
        unlink(w->tmp);
        errno = err;
    }
    return w->f;
}

bool sup_atomic_commit(SupAtomic *w) {
    bool ok = fflush(w->f) == 0 && !ferror(w->f);
    ok = fsync(fileno(w->f)) == 0 && ok;
    int err = errno;
    ok = fclose(w->f) == 0 && ok;
    w->f = NULL;
    if (!ok) {
        unlink(w->tmp);
        errno = err ? err : EIO;
        return false;
    }
    return sup_atomic_rename(w->tmp, w->path);
}
