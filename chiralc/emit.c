/* chiralc/emit.c: `chiralc emit c|kir|llvm`: the generated sources.
 *
 *   emit c    MODEL.net -o DIR   writes DIR/MODEL.c (atomically), the C backend's file
 *   emit kir  MODEL.net [-o DIR] the kernel IR's text form (stdout, or DIR/MODEL.kir)
 *   emit llvm MODEL.net [-o DIR] the LLVM backend's module, optimised for this host
 *                                (stdout, or DIR/MODEL.ll)
 *   emit cuda MODEL.net [-o DIR] the CUDA backend's source (stdout, or DIR/MODEL.cu)
 * Without -o, both print to stdout. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chiralc/cmd.h"
#include "codegen/codegen.h"

/* DIR/NAME written whole or not at all. */
static bool write_kir(const CgModel *m, const char *dir) {
    Arena *a = m->prog->arena;
    const char *path = arena_printf(a, "%s/%s.kir", dir, m->prog->model);
    SupAtomic w;
    if (sup_atomic_open(&w, a, path)) {
        kir_print(w.f, m->k);
        if (sup_atomic_commit(&w)) return true;
    }
    diag_file_error(m->prog->diag, path, "cannot write: %s", strerror(errno));
    return false;
}

int cmd_emit(IrProgram *p, const EmitOpts *o) {
    if (o->dir) {
        struct stat st;
        if (stat(o->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "%s: error: not a directory (emit -o expects an existing directory)\n", o->dir);
            return 1;
        }
    }
    CgOptions co = {.no_fold = o->no_fold, .no_fuse = o->no_fuse};
    CgModel *m = cg_lower(p, &co);
    if (!m) return 1;
    if (strcmp(o->target, "kir") == 0) {
        if (!o->dir) {
            kir_print(stdout, m->k);
            return 0;
        }
        return write_kir(m, o->dir) ? 0 : 1;
    }
    if (strcmp(o->target, "llvm") == 0) {
        if (!cg_llvm_available()) {
            fputs("chiralc: error: emit llvm: this chiralc was built without LLVM (install llvm-14-dev and "
                  "rebuild)\n", stderr);
            return 1;
        }
        if (!o->dir) return cg_emit_llvm(stdout, m, NULL) ? 0 : 1;
        const char *path = NULL;
        if (!cg_write_llvm_ir(m, o->dir, NULL, &path)) return 1;
        printf("wrote %s\n", path);
        return 0;
    }
    if (strcmp(o->target, "cuda") == 0) {
        if (!o->dir) {
            cg_emit_cuda(stdout, m);
            return 0;
        }
        const char *path = NULL;
        if (!cg_write_cuda(m, o->dir, &path)) return 1;
        printf("wrote %s\n", path);
        return 0;
    }
    if (!o->dir) {
        cg_emit_c(stdout, m);
        return 0;
    }
    const char *path = NULL;
    if (!cg_write_c(m, o->dir, &path)) return 1;
    printf("wrote %s\n", path);
    return 0;
}
