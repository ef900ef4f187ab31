/* codegen/emit_llvm.c: the LLVM backend: the kernel IR built as an LLVM module
 * through the LLVM C API, verified, optimised for the host CPU and written as an
 * object file (chiralc build; the default CPU backend) or as text (chiralc emit llvm).
 *
 * It walks the same structure as the C backend (emit_c.c) and keeps its
 * arithmetic: float32 expressions, reductions accumulated in double, no
 * contraction into FMAs (LLVM contracts only under the `contract` flag, which is
 * never set), C's comparison semantics (ordered compares, `!= 0` unordered).
 * GEMM steps call rt_sgemm (OpenBLAS on the runtime's threads); tanh and the
 * dropout mask's Philox rounds are small internal functions inlined into the loops
 * (codegen/fastmath.c), so that the loop vectoriser widens them; the model
 * descriptor (RtModel, runtime/rt.h) with its tables is a set of constant
 * globals; the only external symbol is rt_model_get. Loop variables and
 * accumulators are allocas that mem2reg turns into registers.
 *
 * Aliasing: the operands of one step never share memory (the memory plan keeps
 * every temporary a step touches live through it; the caller's buffers are
 * distinct), so each loop kernel gets its own alias-scope domain with one scope
 * per buffer. The vectoriser then needs no runtime overlap checks. Steps do not
 * share a domain: two buffers of different steps may well reuse the same arena
 * memory, and LLVM must not move one's accesses across the other's.
 *
 * The descriptor's struct types mirror the C declarations; build_types checks
 * every field offset against offsetof on the host, so a change in rt.h that is
 * not made here is a compiler bug report, not a corrupt program.
 *
 * Compiled only where CMake found LLVM (CHIRALC_HAVE_LLVM); elsewhere the entry
 * points report one error line. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/codegen.h"

#ifndef CHIRALC_HAVE_LLVM

bool cg_llvm_available(void) { return false; }

static bool no_llvm(const CgModel *m, const char *path) {
    diag_file_error(m->prog->diag, path, "this chiralc was built without LLVM (use --backend c, or install "
                                         "llvm-14-dev and rebuild)");
    return false;
}
bool cg_write_llvm_ir(const CgModel *m, const char *dir, const CgLlvmOptions *o, const char **path_out) {
    (void)o, (void)path_out;
    return no_llvm(m, dir);
}
bool cg_emit_llvm(FILE *out, const CgModel *m, const CgLlvmOptions *o) {
    (void)out, (void)o;
    return no_llvm(m, m->prog->model);
}
bool cg_write_llvm_object(const CgModel *m, const char *path, const CgLlvmOptions *o) {
    (void)o;
    return no_llvm(m, path);
}

#else

#include <llvm-c/Analysis.h>
#include <llvm-c/Support.h>
#include <llvm-c/Core.h>
#include <llvm-c/DebugInfo.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "runtime/rt.h"

bool cg_llvm_available(void) { return true; }


enum { RUN_MAX_PARTS = 3 }; /* the most loops a run is cut into (runs_open) */
typedef struct L {
    const CgModel *m;
    const KirProgram *k;
    LLVMContextRef cx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;       /* the code */
    LLVMBuilderRef ab;      /* allocas, at the end of the entry block */
    LLVMTargetMachineRef tm;
    LLVMTargetDataRef td;
    LLVMTypeRef v, i1, i8, i32, i64, f32, f64, pi8, pf32, pexec;
    LLVMTypeRef exec_ty, io_ty, param_ty, dense_ty, train_ty, model_ty;
    LLVMTypeRef kfn_ty;     /* void (const RtModel *, RtExec *) */
    LLVMTypeRef sgemm_ty, keep_ty, normal_ty, math_ty, dropmask_ty, par_ty, body_ty;
    LLVMValueRef sgemm, keep, normal, dropmask, tanh_r, par;
    /* the loop kernel being built, where it draws dropout masks: RtExec's dropout flag,
     * seed and step << 32, loaded once before its loops */
    LLVMValueRef drop_on, drop_seed, drop_hi;
    /* ... and where a row's masks are drawn ahead (masks_ahead): the dropout
     * expressions, their [ext] float arrays and the innermost variable */
    const KirExpr *dm_expr[4];
    LLVMValueRef dm_arr[4];
    int ndm, dm_var;
    LLVMValueRef *tabs;     /* by table: its global, made on first use */
    const KirLoop *lp;      /* the loop kernel being built */
    /* the function being built */
    LLVMValueRef fn, exec, N;
    LLVMValueRef *buf;      /* by buffer: float * */
    LLVMValueRef var[KIR_NVARS];
    const KirExpr *red[16];
    LLVMValueRef redv[16];
    int nred;
    LLVMValueRef *vals;     /* the loop kernel being built: each store's value (KIR_E_VAL) */
    /* the loop kernel being built: by buffer, its alias.scope and noalias lists
     * (NULL outside loop kernels and for buffers the step does not touch) */
    LLVMValueRef *scope, *noalias;
    unsigned md_scope, md_noalias, md_loop;
    int ndomains;
    /* the loop kernel being built, when it loops over the runs of its gathers
     * (runs.c): by table of runs->tab, the run's base (i64) or value (float) */
    const KirRuns *runs;
    LLVMValueRef run_v[KIR_RUNS_MAX_TAB];
    int nruns;              /* kernels so far that loop over runs: names their globals */
    int lanes[RUN_MAX_PARTS], nlanes; /* the widths of a run's loops (runs_open) */
    bool flat;              /* the loop kernel being built splits over (i0, i1) (flat_split) */
    /* the function being built: by step, the block body of a reduction over row blocks
     * (row_blocks), and the blocks' accumulators, on its stack */
    LLVMValueRef *row_fn, row_scratch;
} L;

/* ---- small helpers ------------------------------------------------------------------------ */

static LLVMValueRef ci64(L *l, long v) { return LLVMConstInt(l->i64, (unsigned long long)v, true); }
static LLVMValueRef ci32(L *l, long v) { return LLVMConstInt(l->i32, (unsigned long long)v, true); }
/* A float constant as the C backend's file gives it to the C compiler: printed with 9
 * digits and read back as a float (not rounded straight from double, which can
 * differ in the last bit), so that both backends compute with the same numbers. */
static LLVMValueRef cf32(L *l, double v) {
    if (isinf(v) || isnan(v)) return LLVMConstReal(l->f32, v);
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", v);
    return LLVMConstReal(l->f32, (double)strtof(buf, NULL));
}

static LLVMValueRef add_fn(L *l, const char *name, LLVMTypeRef ty, bool internal) {
    LLVMValueRef f = LLVMAddFunction(l->mod, name, ty);
    if (internal) LLVMSetLinkage(f, LLVMInternalLinkage);
    unsigned kind = LLVMGetEnumAttributeKindForName("nounwind", 8);
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(l->cx, kind, 0));
    return f;
}

/* A private constant global holding init; returns the global. */
static LLVMValueRef const_global(L *l, LLVMValueRef init, const char *name) {
    LLVMValueRef g = LLVMAddGlobal(l->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, true);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    return g;
}
static LLVMValueRef as_pi8(L *l, LLVMValueRef g) { return LLVMConstBitCast(g, l->pi8); }

static LLVMValueRef str_const(L *l, const char *s) {
    if (!s) return LLVMConstNull(l->pi8);
    LLVMValueRef init = LLVMConstStringInContext(l->cx, s, (unsigned)strlen(s), false);
    return as_pi8(l, const_global(l, init, ".str"));
}

/* The entry block holds the allocas; the code starts in the block after it. */
static void fn_begin(L *l, LLVMValueRef fn) {
    l->fn = fn;
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(l->cx, fn, "entry");
    LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(l->cx, fn, "start");
    LLVMPositionBuilderAtEnd(l->ab, entry);
    LLVMPositionBuilderAtEnd(l->b, start);
}
static void fn_end(L *l) {
    LLVMBuildRetVoid(l->b);
    LLVMBuildBr(l->ab, LLVMGetNextBasicBlock(LLVMGetEntryBasicBlock(l->fn)));
}
static LLVMValueRef alloca_of(L *l, LLVMTypeRef t, const char *name) { return LLVMBuildAlloca(l->ab, t, name); }

/* for (iv = 0; iv < n; iv++): open returns the variable's value inside the body. */
typedef struct Loop {
    LLVMValueRef slot, iv;
    LLVMBasicBlockRef head, exit;
} Loop;
static LLVMValueRef loop_open_from(L *l, Loop *lp, LLVMValueRef start, LLVMValueRef n, const char *name) {
    lp->slot = alloca_of(l, l->i64, name);
    LLVMBuildStore(l->b, start, lp->slot);
    lp->head = LLVMAppendBasicBlockInContext(l->cx, l->fn, name);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(l->cx, l->fn, "body");
    lp->exit = LLVMAppendBasicBlockInContext(l->cx, l->fn, "done");
    LLVMBuildBr(l->b, lp->head);
    LLVMPositionBuilderAtEnd(l->b, lp->head);
    lp->iv = LLVMBuildLoad2(l->b, l->i64, lp->slot, name);
    LLVMBuildCondBr(l->b, LLVMBuildICmp(l->b, LLVMIntSLT, lp->iv, n, ""), body, lp->exit);
    LLVMPositionBuilderAtEnd(l->b, body);
    return lp->iv;
}
static LLVMValueRef loop_open(L *l, Loop *lp, LLVMValueRef n, const char *name) {
    return loop_open_from(l, lp, ci64(l, 0), n, name);
}
/* Closes the loop; its back edge carries the loop metadata md when there is one. */
static void loop_close_md(L *l, Loop *lp, LLVMValueRef md) {
    LLVMBuildStore(l->b, LLVMBuildNSWAdd(l->b, lp->iv, ci64(l, 1), ""), lp->slot);
    LLVMValueRef br = LLVMBuildBr(l->b, lp->head);
    if (md) LLVMSetMetadata(br, l->md_loop, md);
    LLVMPositionBuilderAtEnd(l->b, lp->exit);
}
static void loop_close(L *l, Loop *lp) { loop_close_md(l, lp, NULL); }

static LLVMValueRef dim_v(L *l, KirDim d) {
    return d.batch ? LLVMBuildNSWMul(l->b, l->N, ci64(l, d.n), "") : ci64(l, d.n);
}

/* A field of *x (RtExec). */
enum { X_BATCH, X_MODE, X_PARAMS, X_STATE, X_PREP, X_INPUTS, X_OUTPUTS, X_TARGETS, X_DOUTPUTS, X_GRADS,
       X_ARENA, X_DROPOUT, X_SEED, X_STEP, X_MOMENTUM, X_NFIELDS };
static LLVMValueRef exec_field(L *l, LLVMValueRef x, int f, LLVMTypeRef t) {
    LLVMValueRef p = LLVMBuildStructGEP2(l->b, l->exec_ty, x, (unsigned)f, "");
    return LLVMBuildLoad2(l->b, t, p, "");
}

/* ---- types, checked against the C declarations --------------------------------------------- */

static LLVMTypeRef struct_ty(L *l, const char *name, LLVMTypeRef *f, unsigned n) {
    LLVMTypeRef t = LLVMStructCreateNamed(l->cx, name);
    LLVMStructSetBody(t, f, n, false);
    return t;
}

static void check_layout(L *l, LLVMTypeRef t, const char *name, size_t size, const size_t *off, unsigned n) {
    if (LLVMABISizeOfType(l->td, t) != size)
        sup_bug("LLVM backend: %s is %llu bytes here, %zu in runtime/rt.h", name,
                (unsigned long long)LLVMABISizeOfType(l->td, t), size);
    for (unsigned i = 0; i < n; i++)
        if (LLVMOffsetOfElement(l->td, t, i) != off[i])
            sup_bug("LLVM backend: field %u of %s is at %llu here, %zu in runtime/rt.h", i, name,
                    (unsigned long long)LLVMOffsetOfElement(l->td, t, i), off[i]);
}

static void build_types(L *l) {
    LLVMContextRef c = l->cx;
    l->v = LLVMVoidTypeInContext(c);
    l->i1 = LLVMInt1TypeInContext(c), l->i8 = LLVMInt8TypeInContext(c);
    l->i32 = LLVMInt32TypeInContext(c), l->i64 = LLVMInt64TypeInContext(c);
    l->f32 = LLVMFloatTypeInContext(c), l->f64 = LLVMDoubleTypeInContext(c);
    l->pi8 = LLVMPointerType(l->i8, 0), l->pf32 = LLVMPointerType(l->f32, 0);
    LLVMTypeRef ppi8 = LLVMPointerType(l->pi8, 0);
    LLVMTypeRef ex[X_NFIELDS] = {l->i64, l->i32, l->pi8, l->pi8, l->pi8, ppi8, ppi8, ppi8, ppi8, l->pi8,
                                 l->pi8, l->i8, l->i64, l->i64, l->f64};
    l->exec_ty = struct_ty(l, "RtExec", ex, X_NFIELDS);
    l->pexec = LLVMPointerType(l->exec_ty, 0);
    const size_t exo[] = {offsetof(RtExec, batch), offsetof(RtExec, mode), offsetof(RtExec, params),
                          offsetof(RtExec, state), offsetof(RtExec, prep), offsetof(RtExec, inputs),
                          offsetof(RtExec, outputs), offsetof(RtExec, targets), offsetof(RtExec, doutputs),
                          offsetof(RtExec, grads), offsetof(RtExec, arena), offsetof(RtExec, dropout),
                          offsetof(RtExec, dropout_seed), offsetof(RtExec, step), offsetof(RtExec, bn_momentum)};
    check_layout(l, l->exec_ty, "RtExec", sizeof(RtExec), exo, X_NFIELDS);

    LLVMTypeRef io[] = {l->pi8, l->i32, l->i32, l->pi8, l->pi8, l->i8, l->i8, l->i32, l->i32};
    l->io_ty = struct_ty(l, "RtModelIo", io, 9);
    const size_t ioo[] = {offsetof(RtModelIo, name), offsetof(RtModelIo, frames), offsetof(RtModelIo, features),
                          offsetof(RtModelIo, partner), offsetof(RtModelIo, sign), offsetof(RtModelIo, is_class),
                          offsetof(RtModelIo, invariant), offsetof(RtModelIo, joints), offsetof(RtModelIo, coords)};
    check_layout(l, l->io_ty, "RtModelIo", sizeof(RtModelIo), ioo, 9);

    LLVMTypeRef pa[] = {l->pi8, l->i64, l->i64, l->i32, LLVMArrayType(l->i64, 2)};
    l->param_ty = struct_ty(l, "RtModelParam", pa, 5);
    const size_t pao[] = {offsetof(RtModelParam, name), offsetof(RtModelParam, offset), offsetof(RtModelParam, count),
                          offsetof(RtModelParam, ndim), offsetof(RtModelParam, shape)};
    check_layout(l, l->param_ty, "RtModelParam", sizeof(RtModelParam), pao, 5);

    LLVMTypeRef de[] = {l->pi8, l->i32, LLVMArrayType(l->i64, 3), l->i64, l->i64};
    l->dense_ty = struct_ty(l, "RtModelDense", de, 5);
    const size_t deo[] = {offsetof(RtModelDense, name), offsetof(RtModelDense, ndim), offsetof(RtModelDense, shape),
                          offsetof(RtModelDense, offset), offsetof(RtModelDense, count)};
    check_layout(l, l->dense_ty, "RtModelDense", sizeof(RtModelDense), deo, 5);

    LLVMTypeRef tr[] = {l->pi8, l->i32, l->pi8, l->f64, l->f64, l->f64, l->f64, l->f64, l->f64, l->f64,
                        l->i32, l->i32, l->f64};
    l->train_ty = struct_ty(l, "RtModelTrain", tr, 13);
    const size_t tro[] = {offsetof(RtModelTrain, loss), offsetof(RtModelTrain, loss_output),
                          offsetof(RtModelTrain, optimizer), offsetof(RtModelTrain, lr),
                          offsetof(RtModelTrain, beta1), offsetof(RtModelTrain, beta2),
                          offsetof(RtModelTrain, momentum), offsetof(RtModelTrain, decay),
                          offsetof(RtModelTrain, weight_decay), offsetof(RtModelTrain, clip),
                          offsetof(RtModelTrain, batch), offsetof(RtModelTrain, epochs),
                          offsetof(RtModelTrain, mirror)};
    check_layout(l, l->train_ty, "RtModelTrain", sizeof(RtModelTrain), tro, 13);

    LLVMTypeRef mo[] = {l->i32, l->pi8, l->pi8, l->pi8, l->i32, l->i32, l->pi8, l->pi8, l->i32,
                        l->pi8, l->i64, l->i32, l->pi8, l->i64, l->i64, l->i64, l->i64, l->train_ty,
                        l->pi8, l->pi8, l->pi8, l->pi8, l->i32, l->pi8, l->i64, l->pi8, l->pi8};
    l->model_ty = struct_ty(l, "RtModel", mo, 27);
    const size_t moo[] = {offsetof(RtModel, abi), offsetof(RtModel, name), offsetof(RtModel, fingerprint),
                          offsetof(RtModel, options), offsetof(RtModel, ninputs), offsetof(RtModel, noutputs),
                          offsetof(RtModel, inputs), offsetof(RtModel, outputs), offsetof(RtModel, nparams),
                          offsetof(RtModel, params), offsetof(RtModel, params_size), offsetof(RtModel, nstate),
                          offsetof(RtModel, state), offsetof(RtModel, state_size), offsetof(RtModel, prep_size),
                          offsetof(RtModel, arena_per_sample), offsetof(RtModel, arena_fixed),
                          offsetof(RtModel, train), offsetof(RtModel, init), offsetof(RtModel, prepare),
                          offsetof(RtModel, forward), offsetof(RtModel, backward), offsetof(RtModel, ndense),
                          offsetof(RtModel, dense), offsetof(RtModel, dense_size), offsetof(RtModel, densify),
                          offsetof(RtModel, graph_json)};
    check_layout(l, l->model_ty, "RtModel", sizeof(RtModel), moo, 27);

    LLVMTypeRef kp[] = {l->pi8, l->pexec};
    l->kfn_ty = LLVMFunctionType(l->v, kp, 2, false);
    LLVMTypeRef sg[] = {l->i32, l->i32, l->i32, l->i32, l->i32, l->f32, l->pf32, l->i32,
                        l->pf32, l->i32, l->f32, l->pf32, l->i32};
    l->sgemm_ty = LLVMFunctionType(l->v, sg, 13, false);
    l->sgemm = add_fn(l, "rt_sgemm", l->sgemm_ty, false);
    LLVMTypeRef u3[] = {l->i64, l->i64, l->i64};
    l->normal_ty = LLVMFunctionType(l->f64, u3, 3, false);
    l->normal = add_fn(l, "rt_rng_normal", l->normal_ty, false);
    LLVMTypeRef m1[] = {l->f32};
    l->math_ty = LLVMFunctionType(l->f32, m1, 1, false);
    /* rt_parallel_for(fn, ctx, n, work) and the outlined bodies fn(ctx, lo, hi) */
    LLVMTypeRef bp[] = {l->pi8, l->i64, l->i64};
    l->body_ty = LLVMFunctionType(l->v, bp, 3, false);
    LLVMTypeRef pp[] = {l->pi8, l->pi8, l->i64, l->i64};
    l->par_ty = LLVMFunctionType(l->v, pp, 4, false);
    l->par = add_fn(l, "rt_parallel_for", l->par_ty, false);
}

/* ---- expressions ---------------------------------------------------------------------------- */

static LLVMValueRef tab_global(L *l, int t) {
    if (l->tabs[t]) return l->tabs[t];
    const KirTab *x = &l->k->tabs[t];
    int n = x->n > 0 ? x->n : 1;
    LLVMValueRef *v = sup_malloc(sizeof(LLVMValueRef) * (size_t)n);
    for (int i = 0; i < n; i++)
        v[i] = x->n == 0 ? (x->is_float ? cf32(l, 0) : ci32(l, 0)) : x->is_float ? cf32(l, x->f[i]) : ci32(l, x->i[i]);
    char name[32];
    snprintf(name, sizeof name, "t%d", t);
    l->tabs[t] = const_global(l, LLVMConstArray(x->is_float ? l->f32 : l->i32, v, (unsigned)n), name);
    sup_free(v);
    return l->tabs[t];
}

/* table t at variable var: an int32 (sign-extended to i64) or a float */
static LLVMValueRef tab_at(L *l, int t, int var) {
    const KirTab *x = &l->k->tabs[t];
    if (l->runs && var == l->runs->var) /* inside a run, an index table is base + i */
        for (int j = 0; j < l->runs->ntab; j++)
            if (l->runs->tab[j] == t) return LLVMBuildNSWAdd(l->b, l->run_v[j], l->var[var], "");
    LLVMValueRef g = tab_global(l, t);
    LLVMValueRef ix[2] = {ci64(l, 0), l->var[var]};
    LLVMValueRef p = LLVMBuildInBoundsGEP2(l->b, LLVMArrayType(x->is_float ? l->f32 : l->i32, (unsigned)(x->n > 0 ? x->n : 1)),
                                           g, ix, 2, "");
    if (x->is_float) return LLVMBuildLoad2(l->b, l->f32, p, "");
    return LLVMBuildSExt(l->b, LLVMBuildLoad2(l->b, l->i32, p, ""), l->i64, "");
}

static LLVMValueRef affine_v(L *l, long off, const long *coef) {
    LLVMValueRef s = ci64(l, off);
    for (int v = 0; v < KIR_NVARS; v++)
        if (coef[v]) s = LLVMBuildNSWAdd(l->b, s, coef[v] == 1 ? l->var[v] : LLVMBuildNSWMul(l->b, l->var[v], ci64(l, coef[v]), ""), "");
    return s;
}
static LLVMValueRef index_v(L *l, const KirIndex *x) {
    LLVMValueRef s = affine_v(l, x->off, x->coef);
    for (int t = 0; t < x->ntab; t++) {
        LLVMValueRef g = tab_at(l, x->tab[t].tab, x->tab[t].var);
        if (x->tab[t].coef != 1) g = LLVMBuildNSWMul(l->b, g, ci64(l, x->tab[t].coef), "");
        s = LLVMBuildNSWAdd(l->b, s, g, "");
    }
    return s;
}
static LLVMValueRef elem_ptr(L *l, int buf, LLVMValueRef ix) {
    return LLVMBuildInBoundsGEP2(l->b, l->f32, l->buf[buf], &ix, 1, "");
}
static LLVMValueRef with_scope(L *l, int buf, LLVMValueRef inst) {
    if (l->scope && l->scope[buf]) {
        LLVMSetMetadata(inst, l->md_scope, l->scope[buf]);
        if (l->noalias[buf]) LLVMSetMetadata(inst, l->md_noalias, l->noalias[buf]);
    }
    return inst;
}
static LLVMValueRef load_at(L *l, int buf, LLVMValueRef ix) {
    return with_scope(l, buf, LLVMBuildLoad2(l->b, l->f32, elem_ptr(l, buf, ix), ""));
}
static void store_at(L *l, int buf, LLVMValueRef ix, LLVMValueRef v) {
    with_scope(l, buf, LLVMBuildStore(l->b, v, elem_ptr(l, buf, ix)));
}

static LLVMValueRef call_math(L *l, const char *name, LLVMValueRef a) {
    LLVMValueRef f = LLVMGetNamedFunction(l->mod, name);
    if (!f) {
        f = add_fn(l, name, l->math_ty, false);
        unsigned kind = LLVMGetEnumAttributeKindForName("willreturn", 10);
        LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(l->cx, kind, 0));
    }
    return LLVMBuildCall2(l->b, l->math_ty, f, &a, 1, "");
}
/* An overloaded intrinsic on type t (llvm.sqrt.f32, llvm.maxnum.f64, ...). */
static LLVMValueRef call_intr(L *l, const char *name, LLVMTypeRef t, LLVMValueRef *args, unsigned n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id) sup_bug("LLVM backend: no intrinsic %s", name);
    LLVMTypeRef tys[1] = {t};
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(l->mod, id, tys, 1);
    return LLVMBuildCall2(l->b, LLVMIntrinsicGetType(l->cx, id, tys, 1), f, args, n, "");
}

static LLVMRealPredicate cmp_pred(KirEop op) {
    switch (op) {
    case KIR_E_LT: return LLVMRealOLT;
    case KIR_E_LE: return LLVMRealOLE;
    case KIR_E_GT: return LLVMRealOGT;
    case KIR_E_GE: return LLVMRealOGE;
    default: return LLVMRealPredicateFalse;
    }
}

static LLVMValueRef expr_v(L *l, const KirExpr *x);

static LLVMValueRef bool_v(L *l, const KirExpr *c) {
    if (cmp_pred(c->op) != LLVMRealPredicateFalse)
        return LLVMBuildFCmp(l->b, cmp_pred(c->op), expr_v(l, c->a[0]), expr_v(l, c->a[1]), "");
    return LLVMBuildFCmp(l->b, LLVMRealUNE, expr_v(l, c), cf32(l, 0), ""); /* C's != 0 */
}

/* Whether a guarded index reads inside its buffer at every point of lp, the guard's
 * outside included: no variable is both in the guard and in the index, and the guard
 * (over variables of step 1) holds somewhere. Then every value the index takes, it also
 * takes where the guard holds, and there the verifier has checked it (a strided crop's
 * adjoint: dy at the kept frame of every stride, whatever the frame's place in it). */
static bool guard_apart(const KirLoop *lp, const KirIndex *x) {
    if (!lp) return false;
    long lo = x->goff, hi = x->goff;
    for (int v = 0; v < KIR_NVARS; v++) {
        if (x->gcoef[v] == 0) continue;
        /* steps of 1: the guard takes every value between its ends */
        if (x->coef[v] != 0 || v >= lp->ndims || lp->ext[v].batch || labs(x->gcoef[v]) != 1) return false;
        for (int t = 0; t < x->ntab; t++)
            if (x->tab[t].var == v) return false;
        long span = x->gcoef[v] * (lp->ext[v].n - 1);
        if (span > 0) hi += span;
        else lo += span;
    }
    return hi >= 0 && lo < x->glimit;
}

static LLVMValueRef expr_v(L *l, const KirExpr *x) {
    LLVMBuilderRef b = l->b;
    switch (x->op) {
    case KIR_E_CONST: return cf32(l, x->value);
    case KIR_E_LOAD: {
        LLVMValueRef ix = index_v(l, &x->idx);
        if (!x->idx.guard) return load_at(l, x->idx.buf, ix);
        /* zero padding without a branch: outside the guard read element 0 (always
         * there) and throw it away, so that the loop stays one basic block; where the
         * index is inside the buffer at every point (guard_apart), read it there, so that
         * a load along the innermost variable stays a vector load */
        LLVMValueRef g = affine_v(l, x->idx.goff, x->idx.gcoef);
        LLVMValueRef in = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSGE, g, ci64(l, 0), ""),
                                       LLVMBuildICmp(b, LLVMIntSLT, g, ci64(l, x->idx.glimit), ""), "");
        if (!guard_apart(l->lp, &x->idx)) ix = LLVMBuildSelect(b, in, ix, ci64(l, 0), "");
        return LLVMBuildSelect(b, in, load_at(l, x->idx.buf, ix), cf32(l, 0), "");
    }
    case KIR_E_TAB: return tab_at(l, x->tab, x->var);
    case KIR_E_VAL: return l->vals[x->slot];
    case KIR_E_BATCH: return LLVMBuildSIToFP(b, l->N, l->f32, "");
    case KIR_E_MOMENTUM: {
        LLVMValueRef mom = exec_field(l, l->exec, X_MOMENTUM, l->f64);
        LLVMValueRef has = LLVMBuildFCmp(b, LLVMRealOGE, mom, LLVMConstReal(l->f64, 0), "");
        return LLVMBuildSelect(b, has, LLVMBuildFPTrunc(b, mom, l->f32, ""), cf32(l, x->value), "");
    }
    case KIR_E_DROPMASK: {
        for (int i = 0; i < l->ndm; i++)
            if (l->dm_expr[i] == x) {
                LLVMTypeRef at = LLVMGetAllocatedType(l->dm_arr[i]);
                LLVMValueRef ix[2] = {ci64(l, 0), l->var[l->dm_var]};
                return LLVMBuildLoad2(b, l->f32, LLVMBuildInBoundsGEP2(b, at, l->dm_arr[i], ix, 2, ""), "");
            }
        CgDropout d = cg_dropout_of(x->value);
        LLVMValueRef a[6] = {l->drop_on, l->drop_seed,
                             LLVMBuildOr(b, l->drop_hi, LLVMConstInt(l->i64, x->stream, false), ""),
                             index_v(l, &x->idx), LLVMConstInt(l->i32, d.threshold, false), cf32(l, d.scale)};
        return LLVMBuildCall2(b, l->dropmask_ty, l->dropmask, a, 6, "");
    }
    case KIR_E_SUM:
    case KIR_E_RMAX:
        for (int i = 0; i < l->nred; i++)
            if (l->red[i] == x) return l->redv[i];
        sup_bug("LLVM backend: a reduction was not hoisted");
    case KIR_E_NEG: return LLVMBuildFNeg(b, expr_v(l, x->a[0]), "");
    case KIR_E_ABS: {
        LLVMValueRef a = expr_v(l, x->a[0]);
        return call_intr(l, "llvm.fabs", l->f32, &a, 1);
    }
    case KIR_E_SQRT: {
        LLVMValueRef a = expr_v(l, x->a[0]);
        return call_intr(l, "llvm.sqrt", l->f32, &a, 1);
    }
    case KIR_E_EXP: return call_math(l, "expf", expr_v(l, x->a[0]));
    case KIR_E_EXPM1: return call_math(l, "expm1f", expr_v(l, x->a[0]));
    case KIR_E_LOG: return call_math(l, "logf", expr_v(l, x->a[0]));
    case KIR_E_TANH: {
        LLVMValueRef a = expr_v(l, x->a[0]);
        return LLVMBuildCall2(b, l->math_ty, l->tanh_r, &a, 1, "");
    }
    case KIR_E_ERF: return call_math(l, "erff", expr_v(l, x->a[0]));
    case KIR_E_SIGMOID: { /* 1 / (1 + exp(-v)), as the C backend's helper */
        LLVMValueRef e = call_math(l, "expf", LLVMBuildFNeg(b, expr_v(l, x->a[0]), ""));
        return LLVMBuildFDiv(b, cf32(l, 1), LLVMBuildFAdd(b, cf32(l, 1), e, ""), "");
    }
    case KIR_E_ADD: return LLVMBuildFAdd(b, expr_v(l, x->a[0]), expr_v(l, x->a[1]), "");
    case KIR_E_SUB: return LLVMBuildFSub(b, expr_v(l, x->a[0]), expr_v(l, x->a[1]), "");
    case KIR_E_MUL: return LLVMBuildFMul(b, expr_v(l, x->a[0]), expr_v(l, x->a[1]), "");
    case KIR_E_DIV: return LLVMBuildFDiv(b, expr_v(l, x->a[0]), expr_v(l, x->a[1]), "");
    case KIR_E_MIN:
    case KIR_E_MAX: { /* fminf / fmaxf: the non-NaN operand wins, as minnum / maxnum */
        LLVMValueRef a[2] = {expr_v(l, x->a[0]), expr_v(l, x->a[1])};
        return call_intr(l, x->op == KIR_E_MIN ? "llvm.minnum" : "llvm.maxnum", l->f32, a, 2);
    }
    case KIR_E_LT:
    case KIR_E_LE:
    case KIR_E_GT:
    case KIR_E_GE: return LLVMBuildSelect(b, bool_v(l, x), cf32(l, 1), cf32(l, 0), "");
    case KIR_E_SELECT: {
        LLVMValueRef c = bool_v(l, x->a[0]);
        LLVMValueRef t = expr_v(l, x->a[1]), f = expr_v(l, x->a[2]);
        return LLVMBuildSelect(b, c, t, f, "");
    }
    default: sup_bug("LLVM backend: expression op %d", (int)x->op);
    }
}

static void find_reds(L *l, const KirExpr *x) {
    l->nred = kir_collect_reductions(x, l->red, l->nred, (int)(sizeof l->red / sizeof l->red[0]));
}

/* ---- steps ------------------------------------------------------------------------------------ */

static LLVMValueRef mat_v(L *l, const KirMat *m, LLVMValueRef q) {
    LLVMValueRef off = ci64(l, m->off);
    if (q && m->stride) off = LLVMBuildNSWAdd(l->b, off, LLVMBuildNSWMul(l->b, q, ci64(l, m->stride), ""), "");
    return elem_ptr(l, m->buf, off);
}

static LLVMValueRef i32_of(L *l, LLVMValueRef v) { return LLVMBuildTrunc(l->b, v, l->i32, ""); }

static void gemm_v(L *l, const KirGemm *g) {
    Loop q = {0};
    LLVMValueRef qv = NULL;
    if (g->count.n > 0) qv = loop_open(l, &q, dim_v(l, g->count), "q");
    LLVMValueRef a[13] = {
        ci32(l, g->ta), ci32(l, g->tb),
        i32_of(l, dim_v(l, g->m)), i32_of(l, dim_v(l, g->n)), i32_of(l, dim_v(l, g->k)), cf32(l, g->alpha),
        mat_v(l, &g->a, qv), ci32(l, g->a.ld), mat_v(l, &g->b, qv), ci32(l, g->b.ld), cf32(l, g->beta),
        mat_v(l, &g->c, qv), ci32(l, g->c.ld)};
    LLVMBuildCall2(l->b, l->sgemm_ty, l->sgemm, a, 13, "");
    if (qv) loop_close(l, &q);
}

/* One alias-scope domain for the step's buffers (see the head of the file). */
static void scopes_open(L *l, const KirLoop *lp) {
    int nb = l->k->nbufs;
    l->lp = lp;
    bool *used = sup_malloc(sizeof(bool) * (size_t)(nb + 1));
    memset(used, 0, sizeof(bool) * (size_t)(nb + 1));
    kir_loop_bufs(lp, used, NULL);
    char name[64];
    snprintf(name, sizeof name, "chiralc.step%d", l->ndomains++);
    LLVMMetadataRef dn = LLVMMDStringInContext2(l->cx, name, strlen(name));
    LLVMMetadataRef domain = LLVMMDNodeInContext2(l->cx, &dn, 1);
    LLVMMetadataRef *sc = sup_malloc(sizeof(LLVMMetadataRef) * (size_t)(nb + 1));
    int n = 0;
    for (int b = 0; b < nb; b++) {
        l->scope[b] = l->noalias[b] = NULL;
        if (!used[b]) continue;
        char sn[96];
        snprintf(sn, sizeof sn, "%s.b%d", name, b);
        LLVMMetadataRef ops[2] = {LLVMMDStringInContext2(l->cx, sn, strlen(sn)), domain};
        sc[n] = LLVMMDNodeInContext2(l->cx, ops, 2);
        l->scope[b] = LLVMMetadataAsValue(l->cx, LLVMMDNodeInContext2(l->cx, &sc[n], 1));
        n++;
    }
    LLVMMetadataRef *others = sup_malloc(sizeof(LLVMMetadataRef) * (size_t)(n + 1));
    for (int b = 0, i = 0; b < nb; b++) {
        if (!used[b]) continue;
        int m = 0;
        for (int j = 0; j < n; j++)
            if (j != i) others[m++] = sc[j];
        if (m) l->noalias[b] = LLVMMetadataAsValue(l->cx, LLVMMDNodeInContext2(l->cx, others, (size_t)m));
        i++;
    }
    sup_free(others), sup_free(sc), sup_free(used);
}
static void scopes_close(L *l) {
    l->lp = NULL;
    for (int b = 0; b < l->k->nbufs; b++) l->scope[b] = l->noalias[b] = NULL;
}

/* Reductions with the rows outside (kir_loop_rows_outside; where the rows scale with the
 * batch, row blocks below take such a kernel): a one-dimensional kernel whose reductions
 * run over many rows (batchnorm's statistics: loop [C] reduce r < N T, reading x[r C + i0]).
 * Channel by channel, as written, each channel walks the whole tensor a float per cache
 * line; here one accumulator per channel and reduction (a stack array of doubles) is
 * added to row by row, the inner loop over the channels is contiguous and vectorises,
 * and each channel still sums its rows in order r = 0, 1, ...: the same double
 * additions, the same result. The reductions of every store (the backward's sums of dy
 * and of dy (x - mu)) share the one pass over the rows; that the stores then run after
 * all of them changes nothing, since no store reads what any store writes. */
static void rows_outside_v(L *l, const KirLoop *lp, LLVMValueRef lo, LLVMValueRef hi) {
    if (!lo) lo = ci64(l, 0), hi = ci64(l, lp->ext[0].n);
    l->nred = 0;
    for (int j = 0; j < lp->nst; j++) find_reds(l, lp->st[j].e);
    int nred = l->nred;
    LLVMTypeRef arr = LLVMArrayType(l->f64, (unsigned)lp->ext[0].n);
    LLVMValueRef acc[16];
    Loop c, r;
    for (int k = 0; k < nred; k++) {
        acc[k] = alloca_of(l, arr, "acc");
        l->var[0] = loop_open_from(l, &c, lo, hi, "i0");
        LLVMValueRef ix[2] = {ci64(l, 0), l->var[0]};
        LLVMBuildStore(l->b, LLVMConstReal(l->f64, l->red[k]->op == KIR_E_SUM ? 0.0 : -INFINITY),
                       LLVMBuildInBoundsGEP2(l->b, arr, acc[k], ix, 2, ""));
        loop_close(l, &c);
    }
    l->var[KIR_RVAR] = loop_open(l, &r, dim_v(l, lp->red), "r");
    l->var[0] = loop_open_from(l, &c, lo, hi, "i0");
    l->nred = 0; /* the operands hold no reductions */
    for (int k = 0; k < nred; k++) {
        const KirExpr *x = l->red[k];
        LLVMValueRef ix[2] = {ci64(l, 0), l->var[0]};
        LLVMValueRef p = LLVMBuildInBoundsGEP2(l->b, arr, acc[k], ix, 2, "");
        LLVMValueRef v = LLVMBuildFPExt(l->b, expr_v(l, x->a[0]), l->f64, "");
        LLVMValueRef old = LLVMBuildLoad2(l->b, l->f64, p, ""), args[2] = {old, v};
        LLVMBuildStore(l->b, x->op == KIR_E_SUM ? LLVMBuildFAdd(l->b, old, v, "") : call_intr(l, "llvm.maxnum", l->f64, args, 2), p);
    }
    loop_close(l, &c);
    loop_close(l, &r);
    l->nred = nred;
    l->var[0] = loop_open_from(l, &c, lo, hi, "i0");
    for (int k = 0; k < nred; k++) {
        LLVMValueRef ix[2] = {ci64(l, 0), l->var[0]};
        LLVMValueRef p = LLVMBuildInBoundsGEP2(l->b, arr, acc[k], ix, 2, "");
        l->redv[k] = LLVMBuildFPTrunc(l->b, LLVMBuildLoad2(l->b, l->f64, p, ""), l->f32, "");
    }
    for (int j = 0; j < lp->nst; j++) {
        const KirStore *st = &lp->st[j];
        store_at(l, st->idx.buf, index_v(l, &st->idx), expr_v(l, st->e));
    }
    loop_close(l, &c);
}

static void philox_v(L *l, LLVMValueRef seed, LLVMValueRef stream, LLVMValueRef ctr, LLVMValueRef w[4]);

/* Dropout masks drawn a row ahead. Element k of a mask takes word k & 3 of the Philox
 * block at k >> 2, so four neighbours share a block; drawn element by element (the
 * vectorised loop computing a block per lane) each block is computed four times.
 * Where the mask's counter runs along the innermost variable with step 1 and every
 * row starts at a multiple of 4, a loop over the row's blocks draws each block once
 * into a stack array of the row's masks (four stores, an interleaved group LLVM
 * vectorises) before the kernel's innermost loop reads them: the same masks, a
 * quarter of the Philox rounds. The blocks are drawn in a multiple of 16, past the
 * row's end into the array's padding: a row of 1020 has 255 blocks, and the
 * vectorised loop's scalar remainder, 15 blocks one at a time, took a fifth of the
 * first block's normalise + tanh + dropout kernel (perf annotate, AVX-512). */
static void collect_masks(L *l, const KirExpr *x, bool *ok) {
    if (x->op == KIR_E_DROPMASK) {
        bool seen = false;
        for (int i = 0; i < l->ndm; i++) seen = seen || l->dm_expr[i] == x;
        if (!seen && l->ndm < 4) l->dm_expr[l->ndm++] = x;
        else if (!seen) *ok = false;
    }
    for (int i = 0; i < kir_eop_arity[x->op]; i++) collect_masks(l, x->a[i], ok);
}
static bool masks_ahead(L *l, const KirLoop *lp) {
    int in = lp->ndims - 1;
    if (in < 1 || lp->ext[in].batch || lp->ext[in].n % 4 || lp->ext[in].n > 16384) return false;
    bool ok = true;
    l->ndm = 0;
    for (int j = 0; j < lp->nst; j++) collect_masks(l, lp->st[j].e, &ok);
    for (int i = 0; ok && i < l->ndm; i++) {
        const KirIndex *x = &l->dm_expr[i]->idx;
        ok = x->ntab == 0 && !x->guard && x->coef[in] == 1 && x->off % 4 == 0 && x->coef[KIR_RVAR] == 0;
        for (int d = 0; ok && d < in; d++) ok = x->coef[d] % 4 == 0;
    }
    if (!ok) l->ndm = 0;
    l->dm_var = in;
    return l->ndm > 0;
}
static void draw_ahead(L *l, const KirLoop *lp) {
    int in = l->dm_var;
    long ext = lp->ext[in].n;
    LLVMBuilderRef b = l->b;
    LLVMValueRef on = LLVMBuildICmp(b, LLVMIntNE, l->drop_on, LLVMConstInt(l->i8, 0, false), "");
    const long blocks = (ext / 4 + 15) / 16 * 16;
    for (int i = 0; i < l->ndm; i++) {
        const KirExpr *x = l->dm_expr[i];
        CgDropout d = cg_dropout_of(x->value);
        LLVMTypeRef at = LLVMArrayType(l->f32, (unsigned)(4 * blocks));
        l->dm_arr[i] = alloca_of(l, at, "masks");
        Loop q;
        LLVMValueRef j = loop_open(l, &q, ci64(l, blocks), "block");
        l->var[in] = LLVMBuildNSWMul(b, j, ci64(l, 4), "");
        LLVMValueRef k0 = index_v(l, &x->idx), c[4];
        philox_v(l, l->drop_seed, LLVMBuildOr(b, l->drop_hi, LLVMConstInt(l->i64, x->stream, false), ""),
                 LLVMBuildLShr(b, k0, ci64(l, 2), ""), c);
        for (int u = 0; u < 4; u++) {
            LLVMValueRef kept = LLVMBuildICmp(b, LLVMIntUGE, c[u], LLVMConstInt(l->i32, d.threshold, false), "");
            LLVMValueRef m = LLVMBuildSelect(b, on, LLVMBuildSelect(b, kept, cf32(l, d.scale), cf32(l, 0), ""),
                                             cf32(l, 1), "");
            LLVMValueRef ix[2] = {ci64(l, 0), LLVMBuildNSWAdd(b, l->var[in], ci64(l, u), "")};
            LLVMBuildStore(b, m, LLVMBuildInBoundsGEP2(b, at, l->dm_arr[i], ix, 2, ""));
        }
        loop_close(l, &q);
    }
}

/* Runs (runs.c). The kernel's innermost loop becomes a loop over the runs of its
 * gathers, each run's bases loaded from a constant array, around a loop over the run's
 * elements, which gathers nothing and vectorises. Runs are short (20 to 200 at the
 * bench's widths) and their lengths multiples of 20: an odd multiple is 4 more than a
 * multiple of 8, and in one 8-lane loop such a run ends in 4 scalar elements (a fifth
 * of a run of 20; with tanh in the body, 7.6 % of the first block's backward Q^T
 * kernel's samples were scalar instructions). So each run is a few loops over the same
 * body, each as wide as the vectors that still fit: l->lanes (16, 8, 4 where the host
 * has AVX-512, else 8, 4). Held at 8 lanes on AVX-512, the kernels that loop over runs
 * ran half as wide as the others, and the first block's backward Q^T kernel took 1.45x
 * the time of the `--no-fold` one over the same bytes. None interleaves (unrolled four
 * times, the shorter runs would never reach the vector loop). */
enum { RUNS_MIN_LEN = 8 };
static LLVMValueRef runs_array(L *l, LLVMTypeRef ty, LLVMValueRef *v, int n, const char *what) {
    char name[48];
    snprintf(name, sizeof name, "runs%d.%s", l->nruns, what);
    return const_global(l, LLVMConstArray(ty, v, (unsigned)n), name);
}
/* element i of the array g of n elements of type ty */
static LLVMValueRef runs_at(L *l, LLVMValueRef g, LLVMTypeRef ty, int n, LLVMValueRef i) {
    LLVMValueRef ix[2] = {ci64(l, 0), i};
    return LLVMBuildLoad2(l->b, ty, LLVMBuildInBoundsGEP2(l->b, LLVMArrayType(ty, (unsigned)n), g, ix, 2, ""), "");
}
/* Opens the loop over the runs; bounds[0..l->nlanes] become the run's start, the ends
 * of its parts of l->lanes[0], l->lanes[1], ... lanes (whole vectors) and its end. */
static void runs_open(L *l, const KirRuns *ru, Loop *outer, LLVMValueRef *bounds) {
    int n = ru->n, nt = ru->ntab;
    LLVMValueRef *v = sup_malloc(sizeof(LLVMValueRef) * (size_t)(n * nt + n + 1));
    for (int q = 0; q <= n; q++) v[q] = ci64(l, ru->start[q]);
    LLVMValueRef starts = runs_array(l, l->i64, v, n + 1, "start"), ends[RUN_MAX_PARTS];
    for (int h = 0; h + 1 < l->nlanes; h++) {
        for (int q = 0; q < n; q++) {
            long at = ru->start[q];
            for (int g = 0; g <= h; g++) at += (ru->start[q + 1] - at) / l->lanes[g] * l->lanes[g];
            v[q] = ci64(l, at);
        }
        char what[16];
        snprintf(what, sizeof what, "end%d", h);
        ends[h] = runs_array(l, l->i64, v, n, what);
    }
    for (int i = 0; i < n * nt; i++) v[i] = ci32(l, ru->base[i]);
    LLVMValueRef bases = runs_array(l, l->i32, v, n * nt, "base");
    sup_free(v);
    l->nruns++;
    LLVMValueRef q = loop_open(l, outer, ci64(l, n), "run");
    bounds[0] = runs_at(l, starts, l->i64, n + 1, q);
    for (int h = 0; h + 1 < l->nlanes; h++) bounds[h + 1] = runs_at(l, ends[h], l->i64, n, q);
    bounds[l->nlanes] = runs_at(l, starts, l->i64, n + 1, LLVMBuildNSWAdd(l->b, q, ci64(l, 1), ""));
    LLVMValueRef at = LLVMBuildNSWMul(l->b, q, ci64(l, nt), "");
    for (int j = 0; j < nt; j++) {
        LLVMValueRef i = LLVMBuildNSWAdd(l->b, at, ci64(l, j), "");
        l->run_v[j] = LLVMBuildSExt(l->b, runs_at(l, bases, l->i32, n * nt, i), l->i64, "");
    }
    l->runs = ru;
}
/* A distinct, self-referencing loop ID: vectorise lanes wide, interleave once. */
static LLVMValueRef lanes_md(L *l, int lanes) {
    static const char width[] = "llvm.loop.vectorize.width", count[] = "llvm.loop.interleave.count";
    LLVMMetadataRef w[2] = {LLVMMDStringInContext2(l->cx, width, sizeof width - 1), LLVMValueAsMetadata(ci32(l, lanes))};
    LLVMMetadataRef c[2] = {LLVMMDStringInContext2(l->cx, count, sizeof count - 1), LLVMValueAsMetadata(ci32(l, 1))};
    LLVMMetadataRef self = LLVMTemporaryMDNode(l->cx, NULL, 0);
    LLVMMetadataRef ops[3] = {self, LLVMMDNodeInContext2(l->cx, w, 2), LLVMMDNodeInContext2(l->cx, c, 2)};
    LLVMMetadataRef id = LLVMMDNodeInContext2(l->cx, ops, 3);
    LLVMMetadataReplaceAllUsesWith(self, id);
    return LLVMMetadataAsValue(l->cx, id);
}
static void runs_close(L *l, Loop *outer) {
    loop_close(l, outer);
    l->runs = NULL;
}

/* Reductions over row blocks. rows_outside's kernel splits over its channels when it
 * runs on several threads, so each thread reads its part of every row: measured on the
 * bench's batchnorm statistics (82944 rows of 1020 floats), twice the time of each thread
 * reading whole rows, and no faster than one thread alone. Where the rows scale with the
 * batch, they are cut instead into KIR_ROW_BLOCKS blocks, a number fixed by the kernel and
 * not by the thread count (so the results are the same at every --threads): the threads
 * take the blocks (FN_sI_rows), each block sums its rows in order into its own double
 * accumulators on the caller's stack, and the caller adds the blocks' sums in block
 * order, channel by channel, before the stores: the grouping kir_loop_row_blocks
 * defines, which the C printer follows too. The accumulators are at most
 * KIR_ROW_BLOCKS_MAX_ACC doubles (256 KB), one array for all of a function's such kernels. */

/* The doubles of accumulators a kernel reduced over row blocks needs; 0: not one. */
static long row_blocks(const KirLoop *lp) {
    const KirExpr *red[16];
    return kir_loop_row_blocks(lp) ? (long)KIR_ROW_BLOCKS * kir_loop_reductions(lp, red) * lp->ext[0].n : 0;
}
/* Its block body: void (i8 *ctx, i64 lo, i64 hi), ctx = {RtExec *, double *acc}; block b
 * sums rows [R b / KIR_ROW_BLOCKS, R (b + 1) / KIR_ROW_BLOCKS) into acc[b][reduction][channel]. */
static void bufs_v(L *l, const bool *used);
static LLVMValueRef row_blocks_v(L *l, KirFn f, int i, const KirStep *s) {
    const KirLoop *lp = &s->l;
    char name[64];
    snprintf(name, sizeof name, "%s_s%d_rows", kir_fn_name[f], i);
    LLVMValueRef fv = add_fn(l, name, l->body_ty, true);
    fn_begin(l, fv);
    LLVMTypeRef ppi8 = LLVMPointerType(l->pi8, 0), pf64 = LLVMPointerType(l->f64, 0);
    LLVMValueRef ctx = LLVMBuildBitCast(l->b, LLVMGetParam(fv, 0), ppi8, "ctx"), one = ci64(l, 1);
    l->exec = LLVMBuildBitCast(l->b, LLVMBuildLoad2(l->b, l->pi8, ctx, ""), l->pexec, "x");
    LLVMValueRef acc = LLVMBuildBitCast(
        l->b, LLVMBuildLoad2(l->b, l->pi8, LLVMBuildInBoundsGEP2(l->b, l->pi8, ctx, &one, 1, ""), ""), pf64, "acc");
    l->N = exec_field(l, l->exec, X_BATCH, l->i64);
    bool *used = sup_malloc(sizeof(bool) * (size_t)(l->k->nbufs + 1));
    memset(used, 0, sizeof(bool) * (size_t)(l->k->nbufs + 1));
    kir_step_bufs(s, used, NULL);
    bufs_v(l, used);
    sup_free(used);
    scopes_open(l, lp);
    const KirExpr *red[16];
    int nred = kir_loop_reductions(lp, red);
    long C = lp->ext[0].n;
    LLVMValueRef R = dim_v(l, lp->red);
    Loop bq, z, r, c;
    LLVMValueRef b = loop_open_from(l, &bq, LLVMGetParam(fv, 1), LLVMGetParam(fv, 2), "block");
    LLVMValueRef base = LLVMBuildNSWMul(l->b, b, ci64(l, nred * C), "");
    for (int k = 0; k < nred; k++) {
        LLVMValueRef j = loop_open(l, &z, ci64(l, C), "z");
        LLVMValueRef at = LLVMBuildNSWAdd(l->b, base, LLVMBuildNSWAdd(l->b, ci64(l, k * C), j, ""), "");
        LLVMBuildStore(l->b, LLVMConstReal(l->f64, red[k]->op == KIR_E_SUM ? 0.0 : -INFINITY),
                       LLVMBuildInBoundsGEP2(l->b, l->f64, acc, &at, 1, ""));
        loop_close(l, &z);
    }
    LLVMValueRef rlo = LLVMBuildSDiv(l->b, LLVMBuildNSWMul(l->b, R, b, ""), ci64(l, KIR_ROW_BLOCKS), "");
    LLVMValueRef rhi = LLVMBuildSDiv(l->b, LLVMBuildNSWMul(l->b, R, LLVMBuildNSWAdd(l->b, b, one, ""), ""),
                                     ci64(l, KIR_ROW_BLOCKS), "");
    l->var[KIR_RVAR] = loop_open_from(l, &r, rlo, rhi, "r");
    l->var[0] = loop_open(l, &c, ci64(l, C), "i0");
    l->nred = 0; /* the operands hold no reductions */
    for (int k = 0; k < nred; k++) {
        LLVMValueRef at = LLVMBuildNSWAdd(l->b, base, LLVMBuildNSWAdd(l->b, ci64(l, k * C), l->var[0], ""), "");
        LLVMValueRef p = LLVMBuildInBoundsGEP2(l->b, l->f64, acc, &at, 1, "");
        LLVMValueRef v = LLVMBuildFPExt(l->b, expr_v(l, red[k]->a[0]), l->f64, "");
        LLVMValueRef old = LLVMBuildLoad2(l->b, l->f64, p, ""), args[2] = {old, v};
        LLVMBuildStore(l->b, red[k]->op == KIR_E_SUM ? LLVMBuildFAdd(l->b, old, v, "") : call_intr(l, "llvm.maxnum", l->f64, args, 2), p);
    }
    loop_close(l, &c);
    loop_close(l, &r);
    loop_close(l, &bq);
    scopes_close(l);
    fn_end(l);
    return fv;
}
/* In the caller: the blocks on the threads, then per channel their sums in block order
 * and the kernel's stores. */
static void row_blocks_call_v(L *l, const KirStep *s, LLVMValueRef body) {
    const KirLoop *lp = &s->l;
    LLVMValueRef ctx = alloca_of(l, LLVMArrayType(l->pi8, 2), "rows.ctx"), zero = ci64(l, 0), one = ci64(l, 1);
    LLVMValueRef ix0[2] = {zero, zero}, ix1[2] = {zero, one};
    LLVMBuildStore(l->b, LLVMBuildBitCast(l->b, l->exec, l->pi8, ""),
                   LLVMBuildInBoundsGEP2(l->b, LLVMArrayType(l->pi8, 2), ctx, ix0, 2, ""));
    LLVMBuildStore(l->b, LLVMBuildBitCast(l->b, l->row_scratch, l->pi8, ""),
                   LLVMBuildInBoundsGEP2(l->b, LLVMArrayType(l->pi8, 2), ctx, ix1, 2, ""));
    LLVMValueRef a[4] = {LLVMBuildBitCast(l->b, body, l->pi8, ""), LLVMBuildBitCast(l->b, ctx, l->pi8, ""),
                         ci64(l, KIR_ROW_BLOCKS), dim_v(l, kir_loop_work(lp))};
    LLVMBuildCall2(l->b, l->par_ty, l->par, a, 4, "");
    scopes_open(l, lp);
    LLVMValueRef acc = LLVMBuildBitCast(l->b, l->row_scratch, LLVMPointerType(l->f64, 0), "acc");
    l->nred = 0;
    for (int j = 0; j < lp->nst; j++) find_reds(l, lp->st[j].e);
    int nred = l->nred;
    long C = lp->ext[0].n;
    Loop c;
    l->var[0] = loop_open(l, &c, ci64(l, C), "i0");
    for (int k = 0; k < nred; k++) {
        LLVMValueRef sum = NULL;
        for (int b = 0; b < KIR_ROW_BLOCKS; b++) {
            LLVMValueRef at = LLVMBuildNSWAdd(l->b, ci64(l, ((long)b * nred + k) * C), l->var[0], "");
            LLVMValueRef v = LLVMBuildLoad2(l->b, l->f64, LLVMBuildInBoundsGEP2(l->b, l->f64, acc, &at, 1, ""), "");
            LLVMValueRef args[2] = {sum, v};
            sum = !sum ? v : l->red[k]->op == KIR_E_SUM ? LLVMBuildFAdd(l->b, sum, v, "") : call_intr(l, "llvm.maxnum", l->f64, args, 2);
        }
        l->redv[k] = LLVMBuildFPTrunc(l->b, sum, l->f32, "");
    }
    for (int j = 0; j < lp->nst; j++) {
        const KirStore *st = &lp->st[j];
        store_at(l, st->idx.buf, index_v(l, &st->idx), expr_v(l, st->e));
    }
    loop_close(l, &c);
    scopes_close(l);
}

/* Whether a parallel kernel splits over the pairs (i0, i1) rather than over i0: its outer
 * extent is the batch itself (one sample per i0: [N, T, ...], im2col and crops), which at
 * inference's batch 1 is one block, run on one core while the others wait. The pairs
 * may be split anywhere when every point is independent (the test that gives the CUDA
 * backend a thread per point). */
static bool flat_split(const KirProgram *k, const KirLoop *lp) {
    return lp->ndims >= 3 && lp->ext[0].batch && lp->ext[0].n == 1 && !lp->ext[1].batch && lp->ext[1].n >= 2 &&
           !lp->has_red && kir_loop_points_independent(k, lp);
}

/* The body of a loop kernel, inside its loops: every store in turn. */
static void stores_v(L *l, const KirLoop *lp) {
    for (int j = 0; j < lp->nst; j++) {
        const KirStore *st = &lp->st[j];
        l->nred = 0;
        find_reds(l, st->e);
        int nred = l->nred;
        for (int r = 0; r < nred; r++) {
            const KirExpr *x = l->red[r];
            bool sum = x->op == KIR_E_SUM;
            LLVMValueRef acc = alloca_of(l, l->f64, "red");
            LLVMBuildStore(l->b, LLVMConstReal(l->f64, sum ? 0.0 : -INFINITY), acc);
            Loop rl;
            l->var[KIR_RVAR] = loop_open(l, &rl, dim_v(l, lp->red), "r");
            l->nred = 0; /* the body holds no reductions */
            LLVMValueRef v = LLVMBuildFPExt(l->b, expr_v(l, x->a[0]), l->f64, "");
            LLVMValueRef old = LLVMBuildLoad2(l->b, l->f64, acc, "");
            LLVMValueRef args[2] = {old, v};
            LLVMBuildStore(l->b, sum ? LLVMBuildFAdd(l->b, old, v, "") : call_intr(l, "llvm.maxnum", l->f64, args, 2), acc);
            loop_close(l, &rl);
            l->nred = nred;
            l->redv[r] = LLVMBuildFPTrunc(l->b, LLVMBuildLoad2(l->b, l->f64, acc, ""), l->f32, "");
        }
        LLVMValueRef v = expr_v(l, st->e);
        l->vals[j] = v;
        if (st->idx.buf >= 0) store_at(l, st->idx.buf, index_v(l, &st->idx), v); /* else a let */
    }
}

/* A loop kernel; with lo and hi (an outlined body), i0 runs over [lo, hi), or, where
 * l->flat, the pair index q = i0 ext1 + i1 does. */
static void loop_v(L *l, const KirLoop *lp, LLVMValueRef i0_lo, LLVMValueRef i0_hi) {
    static const char *const names[KIR_NVARS] = {"i0", "i1", "i2", "i3", "r"};
    scopes_open(l, lp);
    if (kir_loop_rows_outside(lp)) {
        rows_outside_v(l, lp, i0_lo, i0_hi);
        scopes_close(l);
        return;
    }
    bool drops = false;
    for (int j = 0; j < lp->nst; j++) drops = drops || kir_expr_has(lp->st[j].e, KIR_E_DROPMASK);
    if (drops) { /* loop-invariant loads that LLVM could not hoist past the stores */
        l->drop_on = exec_field(l, l->exec, X_DROPOUT, l->i8);
        l->drop_seed = exec_field(l, l->exec, X_SEED, l->i64);
        l->drop_hi = LLVMBuildShl(l->b, exec_field(l, l->exec, X_STEP, l->i64), ci64(l, 32), "");
    }
    LLVMValueRef *vals = sup_malloc(sizeof(LLVMValueRef) * (size_t)(lp->nst + 1));
    l->vals = vals;
    l->ndm = 0;
    bool ahead = drops && masks_ahead(l, lp);
    KirRuns ru;
    bool runs = kir_loop_runs(l->k, lp, RUNS_MIN_LEN, &ru);
    Loop lo[KIR_MAX_DIMS], runl;
    bool flat = l->flat && i0_lo;
    for (int d = 0; d < lp->ndims; d++) {
        if (ahead && d == lp->ndims - 1) draw_ahead(l, lp);
        if (flat && d == 0) {
            LLVMValueRef q = loop_open_from(l, &lo[0], i0_lo, i0_hi, "i01"), e1 = ci64(l, lp->ext[1].n);
            l->var[0] = LLVMBuildSDiv(l->b, q, e1, "i0");
            l->var[1] = LLVMBuildSRem(l->b, q, e1, "i1");
        } else if (flat && d == 1) {
            continue;
        } else if (runs && d == ru.var) {
            continue; /* below */
        } else {
            l->var[d] = d == 0 && i0_lo ? loop_open_from(l, &lo[d], i0_lo, i0_hi, names[d])
                                        : loop_open(l, &lo[d], dim_v(l, lp->ext[d]), names[d]);
        }
    }
    if (runs) {
        Loop part;
        LLVMValueRef at[RUN_MAX_PARTS + 1];
        runs_open(l, &ru, &runl, at);
        for (int h = 0; h < l->nlanes; h++) {
            l->var[ru.var] = loop_open_from(l, &part, at[h], at[h + 1], names[ru.var]);
            stores_v(l, lp);
            loop_close_md(l, &part, lanes_md(l, l->lanes[h]));
        }
    } else stores_v(l, lp);
    for (int d = lp->ndims - 1; d >= 0; d--) {
        if (flat && d == 1) continue;
        if (runs && d == ru.var) runs_close(l, &runl);
        else loop_close(l, &lo[d]);
    }
    scopes_close(l);
    l->vals = NULL;
    l->ndm = 0;
    sup_free(vals);
}

/* outl: by step, the outlined body of a parallel loop kernel (NULL: inline). */
static void steps_v(L *l, const KirFunc *fn, LLVMValueRef *outl) {
    for (int i = 0; i < fn->nsteps; i++) {
        const KirStep *s = &fn->steps[i];
        if (s->kind == KIR_STEP_GEMM) gemm_v(l, &s->g);
        else if (l->row_fn && l->row_fn[i]) row_blocks_call_v(l, s, l->row_fn[i]);
        else if (outl && outl[i]) {
            LLVMValueRef n = dim_v(l, s->l.ext[0]);
            if (flat_split(l->k, &s->l)) n = LLVMBuildNSWMul(l->b, n, ci64(l, s->l.ext[1].n), "");
            LLVMValueRef a[4] = {LLVMBuildBitCast(l->b, outl[i], l->pi8, ""), LLVMBuildBitCast(l->b, l->exec, l->pi8, ""),
                                 n, dim_v(l, kir_loop_work(&s->l))};
            LLVMBuildCall2(l->b, l->par_ty, l->par, a, 4, "");
        } else loop_v(l, &s->l, NULL, NULL);
    }
}

/* ---- functions -------------------------------------------------------------------------------- */

/* Pointer arithmetic on a float * by an i64 element count. */
static LLVMValueRef fptr_add(L *l, LLVMValueRef p, LLVMValueRef n) {
    return LLVMBuildInBoundsGEP2(l->b, l->f32, p, &n, 1, "");
}
static LLVMValueRef io_ptr(L *l, int field, int io) {
    LLVMValueRef arr = exec_field(l, l->exec, field, LLVMPointerType(l->pi8, 0));
    LLVMValueRef ix = ci64(l, io);
    LLVMValueRef p = LLVMBuildLoad2(l->b, l->pi8, LLVMBuildInBoundsGEP2(l->b, l->pi8, arr, &ix, 1, ""), "");
    return LLVMBuildBitCast(l->b, p, l->pf32, "");
}

/* The outlined body of a parallel loop kernel (the C backend's NAME_sI):
 * void (i8 *x, i64 lo, i64 hi), i0 (or the pair index, flat_split) over [lo, hi), for
 * rt_parallel_for. */
static LLVMValueRef outlined_v(L *l, KirFn f, int i, const KirStep *s) {
    const KirProgram *k = l->k;
    char name[64];
    snprintf(name, sizeof name, "%s_s%d", kir_fn_name[f], i);
    LLVMValueRef fv = add_fn(l, name, l->body_ty, true);
    fn_begin(l, fv);
    l->exec = LLVMBuildBitCast(l->b, LLVMGetParam(fv, 0), l->pexec, "x");
    l->N = exec_field(l, l->exec, X_BATCH, l->i64);
    bool *used = sup_malloc(sizeof(bool) * (size_t)(k->nbufs + 1));
    memset(used, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
    kir_step_bufs(s, used, NULL);
    bufs_v(l, used);
    sup_free(used);
    l->flat = flat_split(k, &s->l);
    loop_v(l, &s->l, LLVMGetParam(fv, 1), LLVMGetParam(fv, 2));
    l->flat = false;
    fn_end(l);
    return fv;
}

/* One kernel IR function as `void NAME(const RtModel *, RtExec *)`; its parallel loop
 * kernels (the functions of a batch: not prepare) outlined and run by rt_parallel_for. */
static LLVMValueRef function_v(L *l, KirFn f) {
    const KirProgram *k = l->k;
    const KirFunc *fn = &k->fn[f];
    LLVMValueRef *outl = sup_malloc(sizeof(LLVMValueRef) * (size_t)(fn->nsteps + 1));
    LLVMValueRef *rows = sup_malloc(sizeof(LLVMValueRef) * (size_t)(fn->nsteps + 1));
    long scratch = 0;
    for (int i = 0; i < fn->nsteps; i++) {
        const KirStep *s = &fn->steps[i];
        bool batch_fn = s->kind == KIR_STEP_LOOP && f != KIR_FN_PREPARE;
        long need = batch_fn ? row_blocks(&s->l) : 0;
        rows[i] = need ? row_blocks_v(l, (KirFn)f, i, s) : NULL;
        if (need > scratch) scratch = need;
        outl[i] = batch_fn && !need && kir_loop_parallel(k, &s->l) ? outlined_v(l, (KirFn)f, i, s) : NULL;
    }
    LLVMValueRef fv = add_fn(l, kir_fn_name[f], l->kfn_ty, true);
    fn_begin(l, fv);
    l->row_fn = rows;
    l->row_scratch = scratch ? alloca_of(l, LLVMArrayType(l->f64, (unsigned)scratch), "row.acc") : NULL;
    l->exec = LLVMGetParam(fv, 1);
    l->N = exec_field(l, l->exec, X_BATCH, l->i64);
    bool *used = sup_malloc(sizeof(bool) * (size_t)(k->nbufs + 1));
    memset(used, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
    for (int i = 0; i < fn->nsteps; i++)
        if (!outl[i]) kir_step_bufs(&fn->steps[i], used, NULL);
    bufs_v(l, used);
    sup_free(used);
    steps_v(l, fn, outl);
    sup_free(outl);
    sup_free(rows);
    l->row_fn = NULL, l->row_scratch = NULL;
    fn_end(l);
    return fv;
}

/* l->buf[b] for every used buffer, from l->exec. */
static void bufs_v(L *l, const bool *used) {
    const KirProgram *k = l->k;
    LLVMValueRef arena = NULL;
    for (int b = 0; b < k->nbufs; b++) {
        l->buf[b] = NULL;
        if (!used[b]) continue;
        const KirBuf *x = &k->bufs[b];
        LLVMValueRef p = NULL;
        switch (x->kind) {
        case KIR_BUF_PARAM: p = exec_field(l, l->exec, X_PARAMS, l->pi8); break;
        case KIR_BUF_STATE: p = exec_field(l, l->exec, X_STATE, l->pi8); break;
        case KIR_BUF_PREP: p = exec_field(l, l->exec, X_PREP, l->pi8); break;
        case KIR_BUF_GRAD: p = exec_field(l, l->exec, X_GRADS, l->pi8); break;
        case KIR_BUF_INPUT: p = io_ptr(l, X_INPUTS, x->io); break;
        case KIR_BUF_OUTPUT: p = io_ptr(l, X_OUTPUTS, x->io); break;
        case KIR_BUF_TARGET: p = io_ptr(l, X_TARGETS, x->io); break;
        case KIR_BUF_DOUTPUT: p = io_ptr(l, X_DOUTPUTS, x->io); break;
        case KIR_BUF_TEMP: {
            if (!arena) arena = LLVMBuildBitCast(l->b, exec_field(l, l->exec, X_ARENA, l->pi8), l->pf32, "arena");
            LLVMValueRef off = x->per_sample ? LLVMBuildNSWMul(l->b, ci64(l, x->offset), l->N, "")
                                             : LLVMBuildNSWAdd(l->b, LLVMBuildNSWMul(l->b, ci64(l, k->arena_per_sample), l->N, ""),
                                                               ci64(l, x->offset), "");
            p = fptr_add(l, arena, off);
            break;
        }
        default: sup_bug("LLVM backend: buffer kind %d", (int)x->kind);
        }
        l->buf[b] = LLVMTypeOf(p) == l->pf32 ? p : LLVMBuildBitCast(l->b, p, l->pf32, "");
        LLVMSetValueName2(l->buf[b], x->name, strlen(x->name));
    }
}

/* densify_fn(m, params, state, dense): reads params and state, writes dense; no batch. */
static LLVMValueRef densify_v(L *l) {
    const KirProgram *k = l->k;
    LLVMTypeRef pt[] = {l->pi8, l->pf32, l->pf32, l->pf32};
    LLVMValueRef fv = add_fn(l, "densify_fn", LLVMFunctionType(l->v, pt, 4, false), true);
    fn_begin(l, fv);
    l->exec = NULL;
    l->N = ci64(l, 0);
    for (int b = 0; b < k->nbufs; b++) {
        KirBufKind kd = k->bufs[b].kind;
        l->buf[b] = kd == KIR_BUF_PARAM ? LLVMGetParam(fv, 1) : kd == KIR_BUF_STATE ? LLVMGetParam(fv, 2)
                    : kd == KIR_BUF_DENSE                   ? LLVMGetParam(fv, 3)
                                                            : NULL;
    }
    steps_v(l, &k->fn[KIR_FN_DENSIFY], NULL);
    fn_end(l);
    return fv;
}

/* ---- functions inlined into the loops (codegen/fastmath.c) ---------------------------------- */

static void always_inline(L *l, LLVMValueRef f) {
    unsigned kind = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(l->cx, kind, 0));
}
static LLVMValueRef fn_entry(L *l, LLVMValueRef f) {
    always_inline(l, f);
    LLVMPositionBuilderAtEnd(l->b, LLVMAppendBasicBlockInContext(l->cx, f, "entry"));
    return f;
}
/* select(a > b, b, select(a < -b, -b, a)), the C ternaries' order: NaN passes */
static LLVMValueRef clamp_v(L *l, LLVMValueRef a, double lim) {
    LLVMBuilderRef b = l->b;
    LLVMValueRef hi = cf32(l, lim), lo = cf32(l, -lim);
    LLVMValueRef low = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, a, lo, ""), lo, a, "");
    return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, a, hi, ""), hi, low, "");
}
static LLVMValueRef horner_v(L *l, LLVMValueRef u, const double *c, int n) {
    LLVMValueRef acc = cf32(l, c[n - 1]);
    for (int i = n - 2; i >= 0; i--) acc = LLVMBuildFAdd(l->b, LLVMBuildFMul(l->b, acc, u, ""), cf32(l, c[i]), "");
    return acc;
}

/* float tanh_r(float x): the rational tanh, the C backend's tanh_r operation for operation. */
static void tanh_fn_v(L *l) {
    LLVMValueRef f = fn_entry(l, l->tanh_r = add_fn(l, "tanh_r", l->math_ty, true));
    LLVMValueRef c = clamp_v(l, LLVMGetParam(f, 0), cg_tanh_clamp), u = LLVMBuildFMul(l->b, c, c, "u");
    LLVMValueRef p = horner_v(l, u, cg_tanh_num, CG_TANH_NNUM), q = horner_v(l, u, cg_tanh_den, CG_TANH_NDEN);
    LLVMBuildRet(l->b, clamp_v(l, LLVMBuildFDiv(l->b, LLVMBuildFMul(l->b, c, p, ""), q, ""), 1));
}

/* i1 philox_keep(i64 seed, i64 stream, i64 k, i32 thr): support/philox.h's
 * sup_dropout_keep, its ten rounds unrolled; pure integer arithmetic, so the loop
 * vectoriser widens it (a 32 x 32 -> 64-bit multiply per lane). */
/* The four words of the Philox block at counter ctr, built at the builder's place. */
static void philox_v(L *l, LLVMValueRef seed, LLVMValueRef stream, LLVMValueRef ctr, LLVMValueRef w[4]) {
    LLVMBuilderRef b = l->b;
#define LO(v) LLVMBuildTrunc(b, v, l->i32, "")
#define HI(v) LLVMBuildTrunc(b, LLVMBuildLShr(b, v, ci64(l, 32), ""), l->i32, "")
    LLVMValueRef c0 = LO(ctr), c1 = HI(ctr), c2 = LO(stream), c3 = HI(stream), k0 = LO(seed), k1 = HI(seed);
    for (int round = 0; round < 10; round++) {
        LLVMValueRef p0 = LLVMBuildNUWMul(b, LLVMBuildZExt(b, c0, l->i64, ""), ci64(l, 0xD2511F53L), "");
        LLVMValueRef p1 = LLVMBuildNUWMul(b, LLVMBuildZExt(b, c2, l->i64, ""), ci64(l, 0xCD9E8D57L), "");
        LLVMValueRef n0 = LLVMBuildXor(b, LLVMBuildXor(b, HI(p1), c1, ""), k0, "");
        LLVMValueRef n2 = LLVMBuildXor(b, LLVMBuildXor(b, HI(p0), c3, ""), k1, "");
        c0 = n0, c1 = LO(p1), c2 = n2, c3 = LO(p0);
        k0 = LLVMBuildAdd(b, k0, ci32(l, (long)0x9E3779B9L), "");
        k1 = LLVMBuildAdd(b, k1, ci32(l, (long)0xBB67AE85L), "");
    }
#undef LO
#undef HI
    w[0] = c0, w[1] = c1, w[2] = c2, w[3] = c3;
}

static void keep_fn_v(L *l) {
    LLVMTypeRef pt[] = {l->i64, l->i64, l->i64, l->i32};
    l->keep_ty = LLVMFunctionType(l->i1, pt, 4, false);
    LLVMValueRef f = fn_entry(l, l->keep = add_fn(l, "philox_keep", l->keep_ty, true));
    LLVMBuilderRef b = l->b;
    LLVMValueRef k = LLVMGetParam(f, 2), c[4];
    philox_v(l, LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMBuildLShr(b, k, ci64(l, 2), ""), c);
    LLVMValueRef w = LLVMBuildTrunc(b, LLVMBuildAnd(b, k, ci64(l, 3), ""), l->i32, "");
    LLVMValueRef word = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, w, ci32(l, 0), ""), c[0],
                         LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, w, ci32(l, 1), ""), c[1],
                          LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, w, ci32(l, 2), ""), c[2], c[3], ""), ""), "");
    LLVMBuildRet(b, LLVMBuildICmp(b, LLVMIntUGE, word, LLVMGetParam(f, 3), ""));
}

/* float dropmask(i8 on, i64 seed, i64 stream, i64 k, i32 thr, float scale): inverted
 * dropout, the C backend's helper without its branch (stream holds step << 32). */
static void dropmask_v(L *l) {
    LLVMTypeRef pt[] = {l->i8, l->i64, l->i64, l->i64, l->i32, l->f32};
    l->dropmask_ty = LLVMFunctionType(l->f32, pt, 6, false);
    LLVMValueRef f = fn_entry(l, l->dropmask = add_fn(l, "dropmask", l->dropmask_ty, true));
    LLVMBuilderRef b = l->b;
    LLVMValueRef a[4] = {LLVMGetParam(f, 1), LLVMGetParam(f, 2), LLVMGetParam(f, 3), LLVMGetParam(f, 4)};
    LLVMValueRef kept = LLVMBuildCall2(b, l->keep_ty, l->keep, a, 4, "kept");
    LLVMValueRef m = LLVMBuildSelect(b, kept, LLVMGetParam(f, 5), cf32(l, 0), "");
    LLVMValueRef on = LLVMBuildICmp(b, LLVMIntNE, LLVMGetParam(f, 0), LLVMConstInt(l->i8, 0, false), "");
    LLVMBuildRet(b, LLVMBuildSelect(b, on, m, cf32(l, 1), ""));
}

/* ---- the descriptor ----------------------------------------------------------------------------- */

/* The parameter table's names (the C backend's param_name). */
static const char *param_name(Arena *a, const IrParamEntry *e) {
    const IrNode *n = e->node;
    const char *s = arena_printf(a, "%%%d %s%s%s.%s", n->id, ir_op_info[n->op].name, n->name ? " " : "",
                                 n->name ? n->name : "", e->name);
    if (n->op == IR_LSTM || n->op == IR_GRU) s = arena_printf(a, "%s.l%d.g%d", s, e->layer, e->gate);
    if (n->op == IR_CONV1D && (e->name[0] == 'A' || e->name[0] == 'B')) s = arena_printf(a, "%s.tap%d", s, e->tap);
    return s;
}

/* The initial standard deviation of an entry (the C backend's init_sd): N(0, 1/fan_in)
 * for weight blocks, 0.1 for biases, 0 (a constant) otherwise. */
static double init_sd(const IrParamEntry *x) {
    const IrNode *n = x->node;
    const char *nm = x->name;
    if (x->cols > 1 || nm[0] == 'A' || nm[0] == 'B' || nm[0] == 'W') {
        double fan_in = n->op == IR_LSTM || n->op == IR_GRU ? (nm[1] == 'x' ? n->in[0]->shape.feat : n->shape.feat)
                                                            : (double)(n->op == IR_CONV1D ? n->a.kernel : 1) * n->in[0]->shape.feat;
        return 1.0 / sqrt(fan_in > 0 ? fan_in : 1.0);
    }
    return strncmp(nm, "bias", 4) == 0 ? 0.1 : 0.0;
}

static LLVMValueRef i32_array(L *l, const int *v, int n, const char *name) {
    LLVMValueRef *c = sup_malloc(sizeof(LLVMValueRef) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) c[i] = ci32(l, v[i]);
    LLVMValueRef g = const_global(l, LLVMConstArray(l->i32, c, (unsigned)n), name);
    sup_free(c);
    return g;
}

/* init(m, params, state, seed): every entry drawn or constant, then the weights that
 * sharing = paper holds at zero. */
static LLVMValueRef init_v(L *l) {
    const CgModel *m = l->m;
    const IrParams *w = m->layout;
    LLVMTypeRef pt[] = {l->pi8, l->pf32, l->pf32, l->i64};
    LLVMValueRef fv = add_fn(l, "init", LLVMFunctionType(l->v, pt, 4, false), true);
    fn_begin(l, fv);
    LLVMValueRef params = LLVMGetParam(fv, 1), state = LLVMGetParam(fv, 2), seed = LLVMGetParam(fv, 3);
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *x = &w->entries[i];
        long count = (long)x->rows * x->cols;
        if (count == 0) continue;
        double sd = init_sd(x);
        float cst = strcmp(x->name, "gamma") == 0 || strcmp(x->name, "var") == 0 ? 1.0f : 0.0f;
        LLVMValueRef d = fptr_add(l, m->entry_state[i] ? state : params, ci64(l, m->entry_offset[i]));
        Loop lp;
        LLVMValueRef j = loop_open(l, &lp, ci64(l, count), "j");
        LLVMValueRef v;
        if (sd > 0) {
            LLVMValueRef a[3] = {seed, ci64(l, i), j};
            LLVMValueRef z = LLVMBuildFPTrunc(l->b, LLVMBuildCall2(l->b, l->normal_ty, l->normal, a, 3, ""), l->f32, "");
            v = LLVMBuildFMul(l->b, cf32(l, sd), z, "");
        } else {
            v = cf32(l, cst);
        }
        LLVMBuildStore(l->b, v, fptr_add(l, d, j));
        loop_close(l, &lp);
    }
    for (int i = 0; i < w->nentries; i++) {
        const IrParamEntry *x = &w->entries[i];
        int *rows, *cols, nr, nc;
        if (cg_fixed_zero_sets(w, x, &rows, &nr, &cols, &nc)) { /* params[off + rows[a] * cols + cols[b]] = 0 */
            LLVMValueRef gr = i32_array(l, rows, nr, "zero_rows"), gc = i32_array(l, cols, nc, "zero_cols");
            Loop la, lb;
            LLVMValueRef a = loop_open(l, &la, ci64(l, nr), "a");
            LLVMValueRef ia[2] = {ci64(l, 0), a};
            LLVMValueRef r = LLVMBuildSExt(l->b, LLVMBuildLoad2(l->b, l->i32, LLVMBuildInBoundsGEP2(l->b, LLVMArrayType(l->i32, (unsigned)nr), gr, ia, 2, ""), ""), l->i64, "");
            LLVMValueRef bb = loop_open(l, &lb, ci64(l, nc), "b");
            LLVMValueRef ib[2] = {ci64(l, 0), bb};
            LLVMValueRef c = LLVMBuildSExt(l->b, LLVMBuildLoad2(l->b, l->i32, LLVMBuildInBoundsGEP2(l->b, LLVMArrayType(l->i32, (unsigned)nc), gc, ib, 2, ""), ""), l->i64, "");
            LLVMValueRef ix = LLVMBuildNSWAdd(l->b, LLVMBuildNSWAdd(l->b, ci64(l, m->entry_offset[i]), LLVMBuildNSWMul(l->b, r, ci64(l, x->cols), ""), ""), c, "");
            LLVMBuildStore(l->b, cf32(l, 0), fptr_add(l, params, ix));
            loop_close(l, &lb);
            loop_close(l, &la);
            sup_free(rows);
        }
    }
    fn_end(l);
    return fv;
}

/* forward_fn / backward_fn: the function of x->mode. */
static LLVMValueRef by_mode_v(L *l, const char *name, LLVMValueRef infer, LLVMValueRef train) {
    LLVMValueRef fv = add_fn(l, name, l->kfn_ty, true);
    fn_begin(l, fv);
    LLVMValueRef x = LLVMGetParam(fv, 1);
    LLVMBasicBlockRef t = LLVMAppendBasicBlockInContext(l->cx, fv, "train");
    LLVMBasicBlockRef i = LLVMAppendBasicBlockInContext(l->cx, fv, "infer");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(l->cx, fv, "done");
    LLVMValueRef mode = exec_field(l, x, X_MODE, l->i32);
    LLVMBuildCondBr(l->b, LLVMBuildICmp(l->b, LLVMIntEQ, mode, ci32(l, RT_MODE_TRAINING), ""), t, i);
    LLVMValueRef args[2] = {LLVMGetParam(fv, 0), x};
    LLVMPositionBuilderAtEnd(l->b, t);
    LLVMBuildCall2(l->b, l->kfn_ty, train, args, 2, "");
    LLVMBuildBr(l->b, done);
    LLVMPositionBuilderAtEnd(l->b, i);
    LLVMBuildCall2(l->b, l->kfn_ty, infer, args, 2, "");
    LLVMBuildBr(l->b, done);
    LLVMPositionBuilderAtEnd(l->b, done);
    fn_end(l);
    return fv;
}

static LLVMValueRef table_ptr(L *l, LLVMTypeRef ty, LLVMValueRef *v, int n, const char *name) {
    if (n == 0) { /* C's one-element placeholder: a zero entry, never read */
        LLVMValueRef z = LLVMConstNull(ty);
        return as_pi8(l, const_global(l, LLVMConstArray(ty, &z, 1), name));
    }
    return as_pi8(l, const_global(l, LLVMConstArray(ty, v, (unsigned)n), name));
}

static LLVMValueRef params_table_v(L *l, bool state, int *count) {
    const IrParams *w = l->m->layout;
    Arena *a = l->m->prog->arena;
    LLVMValueRef *v = sup_malloc(sizeof(LLVMValueRef) * (size_t)(w->nentries + 1));
    int n = 0;
    for (int i = 0; i < w->nentries; i++) {
        if (l->m->entry_state[i] != state) continue;
        const IrParamEntry *x = &w->entries[i];
        LLVMValueRef shape[2] = {ci64(l, x->rows), ci64(l, x->cols == 1 ? 0 : x->cols)};
        LLVMValueRef f[5] = {str_const(l, param_name(a, x)), ci64(l, l->m->entry_offset[i]), ci64(l, (long)x->rows * x->cols),
                             ci32(l, x->cols == 1 ? 1 : 2), LLVMConstArray(l->i64, shape, 2)};
        v[n++] = LLVMConstNamedStruct(l->param_ty, f, 5);
    }
    LLVMValueRef g = table_ptr(l, l->param_ty, v, n, state ? "state_table" : "params_table");
    sup_free(v);
    *count = n;
    return g;
}

static LLVMValueRef io_table_v(L *l, const char *kind, IrDecl *const *decls, const int *frames, int n) {
    LLVMValueRef *v = sup_malloc(sizeof(LLVMValueRef) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        const IrDecl *d = decls[i];
        LLVMValueRef partner = LLVMConstNull(l->pi8), sign = LLVMConstNull(l->pi8);
        if (!d->invariant && d->chi.partner) {
            LLVMValueRef *pv = sup_malloc(sizeof(LLVMValueRef) * (size_t)(d->feat + 1));
            LLVMValueRef *sv = sup_malloc(sizeof(LLVMValueRef) * (size_t)(d->feat + 1));
            for (int f = 0; f < d->feat; f++) pv[f] = ci32(l, d->chi.partner[f]), sv[f] = cf32(l, d->chi.sign[f]);
            partner = as_pi8(l, const_global(l, LLVMConstArray(l->i32, pv, (unsigned)d->feat), "partner"));
            sign = as_pi8(l, const_global(l, LLVMConstArray(l->f32, sv, (unsigned)d->feat), "sign"));
            sup_free(pv), sup_free(sv);
        }
        LLVMValueRef f[9] = {str_const(l, d->name), ci32(l, frames[i]), ci32(l, d->feat), partner, sign,
                             LLVMConstInt(l->i8, d->is_class, false), LLVMConstInt(l->i8, d->invariant, false),
                             ci32(l, d->skeleton ? d->skeleton->njoints : 0), ci32(l, d->skeleton ? d->ncoords : 0)};
        v[i] = LLVMConstNamedStruct(l->io_ty, f, 9);
    }
    LLVMValueRef g = table_ptr(l, l->io_ty, v, n, kind);
    sup_free(v);
    return g;
}

static LLVMValueRef dense_table_v(L *l) {
    const CgExport *x = l->m->dense;
    int n = x ? x->n : 0;
    LLVMValueRef *v = sup_malloc(sizeof(LLVMValueRef) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        const CgDense *d = &x->t[i];
        LLVMValueRef shape[3] = {ci64(l, d->shape[0]), ci64(l, d->shape[1]), ci64(l, d->shape[2])};
        LLVMValueRef f[5] = {str_const(l, d->name), ci32(l, d->ndim), LLVMConstArray(l->i64, shape, 3),
                             ci64(l, d->offset), ci64(l, d->count)};
        v[i] = LLVMConstNamedStruct(l->dense_ty, f, 5);
    }
    LLVMValueRef g = table_ptr(l, l->dense_ty, v, n, "dense_table");
    sup_free(v);
    return g;
}

static bool has_backward(const KirProgram *k) {
    return k->fn[KIR_FN_BWD_INFER].nsteps > 0 || k->fn[KIR_FN_BWD_TRAIN].nsteps > 0;
}

static void module_v(L *l) {
    const CgModel *m = l->m;
    const KirProgram *k = l->k;
    const IrProgram *p = m->prog;
    tanh_fn_v(l);
    keep_fn_v(l);
    dropmask_v(l);
    LLVMValueRef fns[KIR_NUM_FNS] = {0};
    for (int f = 0; f < KIR_NUM_FNS; f++) {
        if (f == KIR_FN_DENSIFY) continue;
        if (kir_fn_forward_of((KirFn)f) != (KirFn)f && !has_backward(k)) continue;
        fns[f] = function_v(l, (KirFn)f);
    }
    LLVMValueRef densify = densify_v(l), init = init_v(l);
    LLVMValueRef forward = by_mode_v(l, "forward_fn", fns[KIR_FN_INFER], fns[KIR_FN_TRAIN]);
    LLVMValueRef backward = has_backward(k) ? by_mode_v(l, "backward_fn", fns[KIR_FN_BWD_INFER], fns[KIR_FN_BWD_TRAIN]) : NULL;

    const IrChirality *c = &p->cfg;
    const char *options = arena_printf(p->arena, "%s%s layout=%s activations=%s sharing=%s",
                                       m->opts.no_fold ? "no-fold" : "fold", c->baseline ? " baseline" : "",
                                       c->layout == IR_LAYOUT_JOINTS ? "joints" : "pairs",
                                       c->activations == IR_ACTS_PAPER ? "paper" : "mixed",
                                       c->sharing == IR_SHARING_FULL ? "full" : "paper");
    const IrTrain *t = &p->train;
    static const char *const losses[] = {"", "mse", "l1", "mpjpe", "cross_entropy"};
    int lo = -1;
    for (int i = 0; i < p->noutputs; i++)
        if (t->loss_output == p->outputs[i]) lo = i;
    LLVMValueRef tr[13] = {str_const(l, losses[t->loss]), ci32(l, lo), str_const(l, t->optimizer == IR_OPTIM_ADAM ? "adam" : "sgd"),
                           LLVMConstReal(l->f64, t->lr), LLVMConstReal(l->f64, t->beta1), LLVMConstReal(l->f64, t->beta2),
                           LLVMConstReal(l->f64, t->momentum), LLVMConstReal(l->f64, t->decay),
                           LLVMConstReal(l->f64, t->weight_decay), LLVMConstReal(l->f64, t->clip), ci32(l, t->batch),
                           ci32(l, t->epochs), LLVMConstReal(l->f64, t->mirror)};
    int np = 0, ns = 0;
    LLVMValueRef ptab = params_table_v(l, false, &np), stab = params_table_v(l, true, &ns);
    const CgExport *x = m->dense;
    LLVMValueRef f[27] = {
        ci32(l, RT_MODEL_ABI), str_const(l, p->model), str_const(l, m->fingerprint), str_const(l, options),
        ci32(l, p->ninputs), ci32(l, p->noutputs), io_table_v(l, "inputs", p->inputs, m->input_frames, p->ninputs),
        io_table_v(l, "outputs", p->outputs, m->output_frames, p->noutputs), ci32(l, np), ptab,
        ci64(l, m->params_size), ci32(l, ns), stab, ci64(l, m->state_size), ci64(l, m->prep_size),
        ci64(l, k->arena_per_sample), ci64(l, k->arena_fixed), LLVMConstNamedStruct(l->train_ty, tr, 13),
        as_pi8(l, init), as_pi8(l, fns[KIR_FN_PREPARE]), as_pi8(l, forward),
        backward ? as_pi8(l, backward) : LLVMConstNull(l->pi8), ci32(l, x ? x->n : 0), dense_table_v(l),
        ci64(l, x ? x->size : 0), as_pi8(l, densify), str_const(l, x ? x->graph_json : "{}")};
    LLVMValueRef model = const_global(l, LLVMConstNamedStruct(l->model_ty, f, 27), "model");
    LLVMSetUnnamedAddress(model, LLVMNoUnnamedAddr); /* its address is the model's identity */

    LLVMValueRef get = add_fn(l, "rt_model_get", LLVMFunctionType(l->pi8, NULL, 0, false), false);
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(l->cx, get, "entry");
    LLVMPositionBuilderAtEnd(l->b, bb);
    LLVMBuildRet(l->b, as_pi8(l, model));
}

/* ---- build, verify, optimise, write --------------------------------------------------------------- */

/* CHIRALC_LLVM_OPTIONS: LLVM's own command-line options, for work on this backend
 * (say "-pass-remarks-missed=loop-vectorize" to hear why a loop kernel stays
 * scalar). LLVM takes them once per process. */
static void llvm_options(void) {
    static bool done;
    const char *env = getenv("CHIRALC_LLVM_OPTIONS");
    if (done || !env || !*env) return;
    done = true;
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s", env);
    const char *argv[64] = {"chiralc"};
    int argc = 1;
    for (char *t = strtok(buf, " "); t && argc < 64; t = strtok(NULL, " ")) argv[argc++] = t;
    LLVMParseCommandLineOptions(argc, argv, "chiralc");
}

/* The module for the host; false (with *why) when LLVM cannot target it. */
static bool module_new(L *l, const CgModel *m, int opt, const char **why) {
    memset(l, 0, sizeof *l);
    l->m = m, l->k = m->k;
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    llvm_options();
    char *triple = LLVMGetDefaultTargetTriple(), *err = NULL;
    LLVMTargetRef target;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) {
        *why = arena_printf(m->prog->arena, "LLVM has no target for %s: %s", triple, err ? err : "?");
        LLVMDisposeMessage(err);
        LLVMDisposeMessage(triple);
        return false;
    }
    char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    static const int lanes512[] = {16, 8, 4}, lanes256[] = {8, 4};
    bool avx512 = strstr(feat, "+avx512f") != NULL;
    l->nlanes = avx512 ? 3 : 2;
    memcpy(l->lanes, avx512 ? lanes512 : lanes256, sizeof(int) * (size_t)l->nlanes);
    static const LLVMCodeGenOptLevel level[] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess, LLVMCodeGenLevelDefault,
                                                LLVMCodeGenLevelAggressive};
    /* position-independent: the object goes into PIE programs and the tests' shared objects */
    l->tm = LLVMCreateTargetMachine(target, triple, cpu, feat, level[opt < 0 ? 0 : opt > 3 ? 3 : opt], LLVMRelocPIC,
                                    LLVMCodeModelDefault);
    l->cx = LLVMContextCreate();
    l->mod = LLVMModuleCreateWithNameInContext(m->prog->model, l->cx);
    const char *src = m->prog->file ? m->prog->file->name : m->prog->model;
    LLVMSetSourceFileName(l->mod, src, strlen(src));
    LLVMSetTarget(l->mod, triple);
    l->td = LLVMCreateTargetDataLayout(l->tm);
    LLVMSetModuleDataLayout(l->mod, l->td);
    LLVMDisposeMessage(cpu), LLVMDisposeMessage(feat), LLVMDisposeMessage(triple);
    l->b = LLVMCreateBuilderInContext(l->cx);
    l->ab = LLVMCreateBuilderInContext(l->cx);
    l->buf = sup_malloc(sizeof(LLVMValueRef) * (size_t)(l->k->nbufs + 1));
    l->tabs = sup_malloc(sizeof(LLVMValueRef) * (size_t)(l->k->ntabs + 1));
    l->scope = sup_malloc(sizeof(LLVMValueRef) * (size_t)(l->k->nbufs + 1));
    l->noalias = sup_malloc(sizeof(LLVMValueRef) * (size_t)(l->k->nbufs + 1));
    memset(l->scope, 0, sizeof(LLVMValueRef) * (size_t)(l->k->nbufs + 1));
    memset(l->noalias, 0, sizeof(LLVMValueRef) * (size_t)(l->k->nbufs + 1));
    l->md_scope = LLVMGetMDKindIDInContext(l->cx, "alias.scope", 11);
    l->md_noalias = LLVMGetMDKindIDInContext(l->cx, "noalias", 7);
    l->md_loop = LLVMGetMDKindIDInContext(l->cx, "llvm.loop", 9);
    memset(l->tabs, 0, sizeof(LLVMValueRef) * (size_t)(l->k->ntabs + 1));
    build_types(l);
    return true;
}

static void module_free(L *l) {
    if (l->b) LLVMDisposeBuilder(l->b);
    if (l->ab) LLVMDisposeBuilder(l->ab);
    if (l->mod) LLVMDisposeModule(l->mod);
    if (l->td) LLVMDisposeTargetData(l->td);
    if (l->tm) LLVMDisposeTargetMachine(l->tm);
    if (l->cx) LLVMContextDispose(l->cx);
    sup_free(l->buf);
    sup_free(l->tabs);
    sup_free(l->scope);
    sup_free(l->noalias);
}

/* Builds, verifies and optimises; false after reporting against path. */
static bool module_build(L *l, const CgModel *m, const CgLlvmOptions *o, const char *path) {
    const char *why = NULL;
    int opt = o ? o->opt : 2;
    if (!module_new(l, m, opt, &why)) {
        diag_file_error(m->prog->diag, path, "%s", why);
        return false;
    }
    module_v(l);
    char *msg = NULL;
    if (LLVMVerifyModule(l->mod, LLVMReturnStatusAction, &msg)) {
        /* a bug of this backend, not of the model: say so, with LLVM's words */
        diag_file_error(m->prog->diag, path, "internal error: the LLVM module does not verify: %s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return false;
    }
    LLVMDisposeMessage(msg);
    if (opt > 0) {
        LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
        LLVMPassBuilderOptionsSetLoopVectorization(po, opt >= 2);
        LLVMPassBuilderOptionsSetSLPVectorization(po, opt >= 2);
        /* unrolling (full and partial) triples the code and the compile time of the
         * many small loop kernels for no measurable gain: -O3 only */
        LLVMPassBuilderOptionsSetLoopUnrolling(po, opt >= 3);
        LLVMPassBuilderOptionsSetLoopInterleaving(po, opt >= 2);
        char pipeline[32];
        snprintf(pipeline, sizeof pipeline, "default<O%d>", opt > 3 ? 3 : opt);
        LLVMErrorRef e = LLVMRunPasses(l->mod, pipeline, l->tm, po);
        LLVMDisposePassBuilderOptions(po);
        if (e) {
            char *em = LLVMGetErrorMessage(e);
            diag_file_error(m->prog->diag, path, "internal error: LLVM's %s pipeline failed: %s", pipeline, em);
            LLVMDisposeErrorMessage(em);
            return false;
        }
    }
    return true;
}

/* A temporary name beside path (renamed into place by commit). */
static char *temp_beside(const CgModel *m, const char *path) { return sup_atomic_temp(m->prog->arena, path); }

static bool commit(const CgModel *m, const char *tmp, const char *path) {
    if (sup_atomic_rename(tmp, path)) return true;
    diag_file_error(m->prog->diag, path, "cannot write: %s", strerror(errno));
    return false;
}

bool cg_write_llvm_ir(const CgModel *m, const char *dir, const CgLlvmOptions *o, const char **path_out) {
    const char *path = arena_printf(m->prog->arena, "%s/%s.ll", dir, m->prog->model);
    L l;
    bool ok = module_build(&l, m, o, path);
    char *tmp = ok ? temp_beside(m, path) : NULL;
    if (ok && !tmp) {
        diag_file_error(m->prog->diag, path, "cannot write: %s", strerror(errno));
        ok = false;
    }
    if (ok) {
        char *err = NULL;
        if (LLVMPrintModuleToFile(l.mod, tmp, &err)) {
            diag_file_error(m->prog->diag, path, "cannot write: %s", err ? err : "?");
            unlink(tmp);
            ok = false;
        }
        LLVMDisposeMessage(err);
    }
    module_free(&l);
    if (ok) ok = commit(m, tmp, path);
    if (ok && path_out) *path_out = path;
    return ok;
}

bool cg_emit_llvm(FILE *out, const CgModel *m, const CgLlvmOptions *o) {
    L l;
    bool ok = module_build(&l, m, o, m->prog->model);
    if (ok) {
        char *s = LLVMPrintModuleToString(l.mod);
        fputs(s, out);
        LLVMDisposeMessage(s);
    }
    module_free(&l);
    return ok;
}

bool cg_write_llvm_object(const CgModel *m, const char *path, const CgLlvmOptions *o) {
    L l;
    bool ok = module_build(&l, m, o, path);
    char *tmp = ok ? temp_beside(m, path) : NULL;
    if (ok && !tmp) {
        diag_file_error(m->prog->diag, path, "cannot write: %s", strerror(errno));
        ok = false;
    }
    if (ok) {
        char *err = NULL;
        if (LLVMTargetMachineEmitToFile(l.tm, l.mod, tmp, LLVMObjectFile, &err)) {
            diag_file_error(m->prog->diag, path, "cannot write the object file: %s", err ? err : "?");
            unlink(tmp);
            ok = false;
        }
        LLVMDisposeMessage(err);
    }
    module_free(&l);
    if (ok) ok = commit(m, tmp, path);
    return ok;
}

#endif
