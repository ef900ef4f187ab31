/* tests/unit/cg_harness.h: the shared harness of the codegen tests (test_codegen.c,
 * test_export.c): the front half from text or a file of the repository, and
 * build(): lower, print as C, compile with the system compiler into a shared
 * object and dlopen it; with cg_backend = CG_BACKEND_LLVM, the LLVM backend
 * writes the object file instead and the system compiler only links it. Included by one test file each (static definitions), after
 * <cmocka.h> (it asserts with cmocka). */
#ifndef CHIRALC_CG_HARNESS_H
#define CHIRALC_CG_HARNESS_H

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "front.h"
#include "runtime/rt.h"

#ifndef CG_CC
#define CG_CC "cc"
#endif
#ifndef CG_CBLAS_INCLUDE
#define CG_CBLAS_INCLUDE "/usr/include"
#endif
#ifndef CG_OPENBLAS_LIB
#define CG_OPENBLAS_LIB "-lopenblas"
#endif

static __attribute__((unused)) Arena *arena;
/* Which backend build() and build_opts() use; cg_backends() says how many this
 * chiralc has (the LLVM backend only where CMake found LLVM). */
enum { CG_BACKEND_C, CG_BACKEND_LLVM };
static __attribute__((unused)) int cg_backend = CG_BACKEND_C;
static __attribute__((unused)) const char *const cg_backend_name[] = {"c", "llvm"};
static __attribute__((unused)) int cg_backends(void) { return cg_llvm_available() ? 2 : 1; }
static __attribute__((unused)) char cg_rng_obj[300]; /* runtime/rng.c's object for the LLVM objects */
static __attribute__((unused)) char cg_par_obj[300]; /* runtime/parallel.c's (rt_parallel_for) */
static __attribute__((unused)) char cg_alloc_obj[300]; /* runtime/alloc.c's (rt_malloc, for rt_sgemm) */
/* The loop kernels' threads in every loaded model (runtime/parallel.c): 2, so that the
 * outlined parallel kernels really run split, as in the programs. */
static __attribute__((unused)) int cg_threads = 2;
/* CgOptions.no_fuse for build() and build_opts(): the loop kernels as lowered. */
static __attribute__((unused)) bool cg_no_fuse;
static __attribute__((unused)) Diag diag;
static __attribute__((unused)) char workdir[256];

static __attribute__((unused)) const char *src_dir(void) {
    const char *d = getenv("CHIRALC_SOURCE_DIR");
#ifdef CG_SOURCE_DIR
    if (!d) d = CG_SOURCE_DIR;
#endif
    return d;
}

static __attribute__((unused)) int setup(void **state) {
    arena = arena_new();
    diag_init(&diag, stderr);
    return 0;
}
static __attribute__((unused)) int teardown(void **state) {
    arena_free(arena);
    return 0;
}

/* The group teardown of a test program: the work directory and what stays in it. */
static __attribute__((unused)) int cg_cleanup(void **state) {
    if (cg_rng_obj[0]) unlink(cg_rng_obj);
    if (cg_par_obj[0]) unlink(cg_par_obj);
    if (cg_alloc_obj[0]) unlink(cg_alloc_obj);
    if (workdir[0]) rmdir(workdir);
    return 0;
}

/* ---- the front half ------------------------------------------------------------------- */

static __attribute__((unused)) IrProgram *front_text(const char *name, const char *text, IrOverride *ov, int nov, bool baseline) {
    IrProgram *p = front_elaborate(arena, &diag, name, text, ov, nov);
    p->cfg.baseline = baseline;
    return front_passes(p);
}

static __attribute__((unused)) IrProgram *front_file(const char *rel, IrOverride *ov, int nov, bool baseline) {
    IrProgram *p = front_elaborate(arena, &diag, rel, NULL, ov, nov);
    if (!p) return NULL;
    p->cfg.baseline = baseline;
    return front_passes(p);
}

/* ---- compile and load ------------------------------------------------------------------- */

typedef struct Built {
    CgModel *m;
    void *dl;
    const RtModel *rm;
} Built;

/* dlopens so and takes its model (then removes the file). */
static __attribute__((unused)) void load_so(Built *b, const char *so) {
    b->dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!b->dl) fail_msg("dlopen: %s", dlerror());
    /* POSIX guarantees that a function pointer survives the round trip through void * */
    const RtModel *(*get)(void);
    void *sym = dlsym(b->dl, "rt_model_get");
    assert_non_null(sym);
    memcpy(&get, &sym, sizeof get);
    b->rm = get();
    assert_int_equal(b->rm->abi, RT_MODEL_ABI);
    void (*set_threads)(int);
    sym = dlsym(b->dl, "rt_parallel_set_threads");
    assert_non_null(sym);
    memcpy(&set_threads, &sym, sizeof set_threads);
    set_threads(cg_threads);
    unlink(so);
}

/* The LLVM backend's object file for b->m (LLVM pipeline level opt), linked into a
 * shared object with rng.c and loaded. */
static __attribute__((unused)) void build_llvm(Built *b, const char *tag, int opt) {
    static int serial;
    int id = serial++;
    const char *model = b->m->prog->model;
    char *obj = arena_printf(arena, "%s/%s%s_l%d.o", workdir, model, tag, id);
    char *so = arena_printf(arena, "%s/%s%s_l%d.so", workdir, model, tag, id);
    CgLlvmOptions lo = {.opt = opt};
    assert_true(cg_write_llvm_object(b->m, obj, &lo));
    /* rng.c compiled once per test program (cg_cleanup removes it) */
    char *rng = cg_rng_obj;
    if (!rng[0]) {
        snprintf(cg_rng_obj, sizeof cg_rng_obj, "%s/rng.o", workdir);
        char *cc = arena_printf(arena, "%s -std=c11 -O1 -fPIC -w -I%s -c %s/runtime/rng.c -o %s", CG_CC, src_dir(),
                                src_dir(), rng);
        if (system(cc) != 0) fail_msg("cannot compile: %s", cc);
        snprintf(cg_par_obj, sizeof cg_par_obj, "%s/parallel.o", workdir);
        cc = arena_printf(arena, "%s -std=c11 -O1 -fPIC -w -I%s -I%s -c %s/runtime/parallel.c -o %s", CG_CC, src_dir(),
                          CG_CBLAS_INCLUDE, src_dir(), cg_par_obj);
        if (system(cc) != 0) fail_msg("cannot compile: %s", cc);
        snprintf(cg_alloc_obj, sizeof cg_alloc_obj, "%s/alloc.o", workdir);
        cc = arena_printf(arena, "%s -std=c11 -O1 -fPIC -w -I%s -c %s/runtime/alloc.c -o %s", CG_CC, src_dir(), src_dir(),
                          cg_alloc_obj);
        if (system(cc) != 0) fail_msg("cannot compile: %s", cc);
    }
    char *cmd = arena_printf(arena, "%s -shared -fPIC -pthread %s %s %s %s -o %s %s -lm", CG_CC, obj, rng, cg_par_obj,
                             cg_alloc_obj, so, CG_OPENBLAS_LIB);
    if (system(cmd) != 0) fail_msg("cannot link the LLVM object: %s", cmd);
    unlink(obj);
    load_so(b, so);
}

static __attribute__((unused)) Built build(IrProgram *p, bool no_fold) {
    Built b = {0};
    CgOptions o = {.no_fold = no_fold, .no_fuse = cg_no_fuse};
    b.m = cg_lower(p, &o);
    assert_non_null(b.m);
    if (!workdir[0]) {
        snprintf(workdir, sizeof workdir, "/tmp/chiralc_test_codegen.XXXXXX");
        assert_non_null(mkdtemp(workdir));
    }
    if (cg_backend == CG_BACKEND_LLVM) {
        build_llvm(&b, no_fold ? "_nofold" : "", 2);
        return b;
    }
    const char *cpath = NULL;
    assert_true(cg_write_c(b.m, workdir, &cpath));
    /* a fresh name each time: dlopen hands back a library already loaded under a name */
    static int serial;
    char *so = arena_printf(arena, "%s/%s%s_%d.so", workdir, p->model, no_fold ? "_nofold" : "", serial++);
    /* rng.c goes into the object so that it needs nothing of the test executable */
    char *cmd = arena_printf(arena,
                             "%s -std=c11 -O1 -shared -fPIC -pthread -w -I%s -I%s %s %s/runtime/rng.c %s/runtime/parallel.c %s/runtime/alloc.c -o %s %s -lm",
                             CG_CC, src_dir(), CG_CBLAS_INCLUDE, cpath, src_dir(), src_dir(), src_dir(), so, CG_OPENBLAS_LIB);
    if (system(cmd) != 0) fail_msg("cannot compile the generated code: %s", cmd);
    unlink(cpath);
    load_so(&b, so);
    return b;
}

/* ---- the training graph (test_codegen_grad.c) ----------------------------------------------- */

/* The front half compiled for training (p->training before the pipeline). A model
 * without a train block gets a loss on its first output (cross_entropy for a class
 * output, mse otherwise) so that autodiff has a graph to build. */
static __attribute__((unused)) IrProgram *front_train(const char *rel, const char *text, IrOverride *ov, int nov) {
    IrProgram *p = front_elaborate(arena, &diag, rel, text, ov, nov);
    if (!p) return NULL;
    if (p->train.loss == IR_LOSS_NONE || !p->train.loss_output) {
        p->train.loss_output = p->outputs[0];
        p->train.loss = p->outputs[0]->is_class ? IR_LOSS_CROSS_ENTROPY : IR_LOSS_MSE;
    }
    p->training = true;
    assert_true(pass_pipeline(p, NULL));
    return p;
}

/* build() with the emission options: f64 prints the float64 variant (CgEmitOptions),
 * which only the C backend has. Compiled at -O0 (LLVM: O1): the unrolled recurrences'
 * backward takes gcc -O1 many seconds, and these programs are small enough that
 * their run time does not matter. */
static __attribute__((unused)) Built build_opts(IrProgram *p, bool no_fold, bool f64) {
    Built b = {0};
    CgOptions o = {.no_fold = no_fold, .no_fuse = cg_no_fuse};
    b.m = cg_lower(p, &o);
    assert_non_null(b.m);
    if (!workdir[0]) {
        snprintf(workdir, sizeof workdir, "/tmp/chiralc_test_codegen.XXXXXX");
        assert_non_null(mkdtemp(workdir));
    }
    if (cg_backend == CG_BACKEND_LLVM && !f64) {
        build_llvm(&b, "_g", 1);
        return b;
    }
    static int serial;
    int id = serial++;
    char *cpath = arena_printf(arena, "%s/%s_g%d.c", workdir, p->model, id);
    char *so = arena_printf(arena, "%s/%s_g%d.so", workdir, p->model, id);
    FILE *fc = fopen(cpath, "w");
    assert_non_null(fc);
    CgEmitOptions eo = {.f64 = f64};
    cg_emit_c_opts(fc, b.m, &eo);
    assert_int_equal(fclose(fc), 0);
    char *cmd = arena_printf(arena,
                             "%s -std=c11 -O0 -shared -fPIC -pthread -w -I%s -I%s %s %s/runtime/rng.c %s/runtime/parallel.c %s/runtime/alloc.c -o %s %s -lm",
                             CG_CC, src_dir(), CG_CBLAS_INCLUDE, cpath, src_dir(), src_dir(), src_dir(), so, CG_OPENBLAS_LIB);
    if (system(cmd) != 0) fail_msg("cannot compile the generated code: %s", cmd);
    unlink(cpath);
    load_so(&b, so);
    return b;
}

#endif
