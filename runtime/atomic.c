/* runtime/atomic.c: files that appear whole or not at all.
 * The temporary file lives beside the destination so that rename(2) stays within one
 * file system and is atomic; a crash leaves either the old file or the new one, plus
 * at worst a stray PATH.tmp.XXXXXX, never a half-written PATH. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/rt.h"

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = rt_malloc(n);
    memcpy(p, s, n);
    return p;
}

bool rt_atomic_open(RtAtomic *a, const char *path, RtError *e) {
    memset(a, 0, sizeof *a);
    size_t n = strlen(path);
    char *tmp = rt_malloc(n + sizeof ".tmp.XXXXXX");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int err = errno;
        rt_free(tmp);
        return rt_fail(e, "%s: cannot create a temporary file beside it: %s", path, strerror(err));
    }
    /* mkstemp makes the file 0600; give the result the permissions a plain fopen would. */
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        int err = errno;
        close(fd);
        unlink(tmp);
        rt_free(tmp);
        return rt_fail(e, "%s: cannot open a temporary file: %s", path, strerror(err));
    }
    a->tmp = tmp;
    a->path = dup_str(path);
    return true;
}

static void release(RtAtomic *a) {
    rt_free(a->tmp);
    rt_free(a->path);
    a->tmp = a->path = NULL;
    a->f = NULL;
}

/* The directory entry of the rename must reach the disk too; best effort, since some
 * file systems refuse fsync on directories. */
static void sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = dup_str(".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        dir = rt_malloc(n + 1);
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    rt_free(dir);
}

bool rt_atomic_commit(RtAtomic *a, RtError *e) {
    int err = 0;
    if (fflush(a->f) != 0 || ferror(a->f)) err = errno ? errno : EIO;
    if (!err && fsync(fileno(a->f)) != 0) err = errno;
    if (fclose(a->f) != 0 && !err) err = errno ? errno : EIO;
    a->f = NULL;
    if (!err && rename(a->tmp, a->path) != 0) err = errno;
    if (err) {
        unlink(a->tmp);
        rt_fail(e, "%s: cannot write: %s", a->path, strerror(err));
        release(a);
        return false;
    }
    sync_dir(a->path);
    release(a);
    return true;
}

void rt_atomic_abort(RtAtomic *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    release(a);
}
