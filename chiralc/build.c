/* chiralc/build.c: `chiralc build MODEL.net -o PROGRAM`: a standalone executable.
 *
 * The program is compiled for training (the driver sets prog->training), lowered,
 * written by the CPU backend (LLVM where chiralc has it, else C) into a private
 * temporary directory, and compiled or linked by the system C compiler together with libchiralrt (which provides main() and the command
 * line) and its libraries. Where those live is decided when chiralc itself is built
 * (CMake passes them as CHIRALC_BUILD_* definitions), so `build/chiralc build` works
 * from the build tree; environment variables override each (CHIRALC_CC,
 * CHIRALC_CFLAGS, CHIRALC_INCLUDE, CHIRALC_RUNTIME, CHIRALC_LIBS). PROGRAM appears whole or not at all:
 * the compiler writes a temporary file beside it, renamed into place on success.
 *
 * The compiler is run directly (fork + execvp, no shell), so file names need no
 * quoting. Link libraries are separated by '|' in the CMake definition (paths may
 * hold spaces) and by spaces in CHIRALC_LIBS.
 *
 * --backend llvm (the default where CMake found LLVM): codegen/emit_llvm.c writes an
 * object file for the host CPU, and the compiler only links it (-O0..-O3 pick LLVM's
 * pipeline). --backend c: codegen/emit_c.c's source, compiled by the C compiler.
 *
 * --target cuda: codegen/emit_cuda.c writes MODEL.cu and nvcc compiles it for sm_90
 * plus compute_90 PTX, linking the CUDA side of the runtime (libchiralrt_cuda.a, whose
 * main() selects the GPU), libchiralrt, cuBLAS and the runtime's libraries; where CMake
 * found no CUDA toolkit, this chiralc says so (CHIRALC_NVCC, CHIRALC_CUDA_RUNTIME and
 * CHIRALC_CUDA_LIBS override the CMake settings). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chiralc/cmd.h"
#include "codegen/codegen.h"

#ifndef CHIRALC_BUILD_CC
#define CHIRALC_BUILD_CC "cc"
#endif
#ifndef CHIRALC_BUILD_CFLAGS
#define CHIRALC_BUILD_CFLAGS "" /* extra flags, '|'-separated (the sanitizers of a sanitized build) */
#endif
#ifndef CHIRALC_BUILD_INCLUDE
#define CHIRALC_BUILD_INCLUDE "" /* the source tree (runtime/rt.h) and cblas.h's directory, '|'-separated */
#endif
#ifndef CHIRALC_BUILD_RUNTIME
#define CHIRALC_BUILD_RUNTIME "libchiralrt.a"
#endif
#ifndef CHIRALC_BUILD_LIBS
#define CHIRALC_BUILD_LIBS "-lopenblas|-llapacke|-lzip|-ljansson|-lz|-lm"
#endif
#ifndef CHIRALC_BUILD_NVCC
#define CHIRALC_BUILD_NVCC "" /* none: built without CUDA */
#endif
#ifndef CHIRALC_BUILD_CUDA_RUNTIME
#define CHIRALC_BUILD_CUDA_RUNTIME "libchiralrt_cuda.a"
#endif
#ifndef CHIRALC_BUILD_CUDA_LIBS
#define CHIRALC_BUILD_CUDA_LIBS "-lcublas" /* and an rpath to them, '|'-separated */
#endif

typedef struct Argv {
    const char **v;
    int n, cap;
} Argv;

static void push(Argv *a, const char *s) {
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? 2 * a->cap : 32;
        a->v = sup_realloc(a->v, sizeof(char *) * (size_t)a->cap);
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

/* Splits s at sep (empty pieces dropped), each piece through prefix. */
static void push_split(Arena *ar, Argv *a, const char *s, char sep, const char *prefix) {
    while (s && *s) {
        const char *e = strchr(s, sep);
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n) push(a, arena_printf(ar, "%s%.*s", prefix, (int)n, s));
        s = e ? e + 1 : NULL;
    }
}

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* Runs argv; its exit status (-1: it did not exit normally, 127: it could not start). */
static int run(const Argv *a, bool verbose) {
    if (verbose) {
        for (int i = 0; i < a->n; i++) fprintf(stderr, "%s%s", i ? " " : "", a->v[i]);
        fputc('\n', stderr);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execvp(a->v[0], (char *const *)a->v);
        fprintf(stderr, "chiralc: error: cannot run the C compiler '%s': %s (set CHIRALC_CC)\n", a->v[0],
                strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void remove_dir(Arena *ar, const char *dir, const char *model) {
    unlink(arena_printf(ar, "%s/%s.c", dir, model));
    unlink(arena_printf(ar, "%s/%s.cu", dir, model));
    unlink(arena_printf(ar, "%s/%s.o", dir, model));
    rmdir(dir);
}

/* nvcc's command line for --target cuda: the .cu, the runtime's two archives, the libraries.
 * No FMA contraction (--fmad=false), as the C backend's -ffp-contract=off: the GPU's
 * elementwise arithmetic is then the CPU's, operation for operation. */
static void cuda_argv(Arena *ar, Argv *a, const char *nvcc, const char *src, const BuildOpts *o) {
    push(a, nvcc);
    push(a, "-std=c++17");
    push(a, o->opt ? o->opt : "-O2");
    push(a, "--fmad=false");
    push(a, "-gencode=arch=compute_90,code=sm_90");
    push(a, "-gencode=arch=compute_90,code=compute_90");
    /* the C compiler's extra flags (a sanitized build's sanitizers) go to the host compiler,
     * which nvcc also links with: the sanitized runtime then finds its sanitizers' runtime */
    const char *cflags = getenv("CHIRALC_CFLAGS");
    if (cflags && *cflags) push_split(ar, a, cflags, ' ', "-Xcompiler=");
    else push_split(ar, a, CHIRALC_BUILD_CFLAGS, '|', "-Xcompiler=");
    const char *inc = getenv("CHIRALC_INCLUDE");
    if (inc && *inc) push_split(ar, a, inc, ' ', "-I");
    else push_split(ar, a, CHIRALC_BUILD_INCLUDE, '|', "-I");
    push(a, src);
    push(a, env_or("CHIRALC_CUDA_RUNTIME", CHIRALC_BUILD_CUDA_RUNTIME));
    push(a, env_or("CHIRALC_RUNTIME", CHIRALC_BUILD_RUNTIME));
    const char *cl = getenv("CHIRALC_CUDA_LIBS");
    if (cl && *cl) push_split(ar, a, cl, ' ', "");
    else push_split(ar, a, CHIRALC_BUILD_CUDA_LIBS, '|', "");
    const char *libs = getenv("CHIRALC_LIBS");
    if (libs && *libs) push_split(ar, a, libs, ' ', "");
    else push_split(ar, a, CHIRALC_BUILD_LIBS, '|', "");
}

int cmd_build(IrProgram *p, const BuildOpts *o) {
    Arena *ar = p->arena;
    bool cuda = o->target && strcmp(o->target, "cuda") == 0;
    /* LLVM is the CPU's default where this chiralc has it: its loops vectorise where
     * gcc's -O2 leaves them scalar (docs/performance.md) */
    bool llvm = o->backend ? strcmp(o->backend, "llvm") == 0 : !cuda && cg_llvm_available();
    const char *nvcc = env_or("CHIRALC_NVCC", CHIRALC_BUILD_NVCC);
    if (cuda && llvm) {
        fputs("chiralc: error: --target cuda has its own code generator: --backend llvm is for the CPU\n", stderr);
        return 2;
    }
    if (cuda && !*nvcc) {
        fputs("chiralc: error: --target cuda: this chiralc was built without CUDA (install the CUDA toolkit, "
              "nvcc on PATH, and rebuild; or set CHIRALC_NVCC)\n", stderr);
        return 1;
    }
    if (llvm && !cg_llvm_available()) {
        fputs("chiralc: error: --backend llvm: this chiralc was built without LLVM (use --backend c, or "
              "install llvm-14-dev and rebuild)\n", stderr);
        return 1;
    }
    CgOptions co = {.no_fold = o->no_fold, .no_fuse = o->no_fuse};
    CgModel *m = cg_lower(p, &co);
    if (!m) return 1;
    const char *tmpdir = env_or("TMPDIR", "/tmp");
    char *dir = arena_printf(ar, "%s/chiralc-build-XXXXXX", tmpdir);
    if (!mkdtemp(dir)) {
        diag_file_error(p->diag, dir, "cannot create a temporary directory: %s", strerror(errno));
        return 1;
    }
    const char *src = NULL;
    if (cuda) {
        if (!cg_write_cuda(m, dir, &src)) {
            rmdir(dir);
            return 1;
        }
    } else if (llvm) { /* an object file for the host; the compiler below only links */
        src = arena_printf(ar, "%s/%s.o", dir, p->model);
        CgLlvmOptions lo = {.opt = o->opt ? o->opt[2] - '0' : 2};
        if (!cg_write_llvm_object(m, src, &lo)) {
            remove_dir(ar, dir, p->model);
            return 1;
        }
    } else if (!cg_write_c(m, dir, &src)) {
        rmdir(dir);
        return 1;
    }
    /* the program's temporary name beside it, so that the rename stays on one file system */
    char *tmp = sup_atomic_temp(ar, o->output);
    if (!tmp) {
        diag_file_error(p->diag, o->output, "cannot write: %s", strerror(errno));
        remove_dir(ar, dir, p->model);
        return 1;
    }
    Argv a = {0};
    if (cuda) {
        cuda_argv(ar, &a, nvcc, src, o);
    } else {
        push(&a, env_or("CHIRALC_CC", CHIRALC_BUILD_CC));
        if (!llvm) {
            push(&a, "-std=c11");
            push(&a, o->opt ? o->opt : "-O2");
            /* the generated code's floating point is the runtime's: no contraction into FMAs,
             * so that a program gives the same numbers wherever it is compiled */
            push(&a, "-ffp-contract=off");
        }
        const char *cflags = getenv("CHIRALC_CFLAGS");
        if (cflags) push_split(ar, &a, cflags, ' ', "");
        else push_split(ar, &a, CHIRALC_BUILD_CFLAGS, '|', "");
        const char *inc = getenv("CHIRALC_INCLUDE");
        if (inc && *inc) push_split(ar, &a, inc, ' ', "-I");
        else push_split(ar, &a, CHIRALC_BUILD_INCLUDE, '|', "-I");
        push(&a, src);
        push(&a, env_or("CHIRALC_RUNTIME", CHIRALC_BUILD_RUNTIME));
        const char *libs = getenv("CHIRALC_LIBS");
        if (libs && *libs) push_split(ar, &a, libs, ' ', "");
        else push_split(ar, &a, CHIRALC_BUILD_LIBS, '|', "");
    }
    push(&a, "-o");
    push(&a, tmp);
    int st = run(&a, o->verbose);
    sup_free(a.v);
    if (st != 0) {
        unlink(tmp);
        if (st == 127) { /* the child said why */
            remove_dir(ar, dir, p->model);
            return 1;
        }
        fprintf(stderr, "chiralc: error: %s failed %s %s (kept for inspection)\n", cuda ? "nvcc" : "the C compiler",
                llvm ? "to link" : "on", src);
        return 1;
    }
    mode_t mask = umask(0);
    umask(mask);
    if (chmod(tmp, 0777 & ~mask) != 0 || !sup_atomic_rename(tmp, o->output)) {
        diag_file_error(p->diag, o->output, "cannot write: %s", strerror(errno));
        unlink(tmp);
        remove_dir(ar, dir, p->model);
        return 1;
    }
    remove_dir(ar, dir, p->model);
    printf("wrote %s (model %s%s%s%s, %ld parameters)\n", o->output, p->model, o->no_fold ? ", no-fold" : "",
           p->cfg.baseline ? ", baseline" : "", llvm ? ", llvm" : cuda ? ", cuda" : "", m->params_size);
    return 0;
}
