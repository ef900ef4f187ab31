/* codegen/codegen.h: the back half of the compiler. Prefixes kir_ (the kernel
 * IR) and cg_ (lowering, planning, backends).
 *
 * The kernel IR is the seam between the graph and the machines (docs/kernel-ir.md):
 * buffers and step lists of GEMM calls and loop kernels. It knows nothing of C:
 * every backend (C printer, LLVM, CUDA) walks the same structure.
 * Sections are named after the files that implement them. */
#ifndef CHIRALC_CODEGEN_H
#define CHIRALC_CODEGEN_H

#include <stdint.h>

#include "passes/passes.h"

/* ---- kir.c: the kernel IR, its printer and verifier ------------------------------ */

enum {
    KIR_MAX_DIMS = 4,              /* extents of a loop kernel's index space */
    KIR_RVAR = KIR_MAX_DIMS,       /* the variable of the reduction axis */
    KIR_NVARS = KIR_MAX_DIMS + 1,
    KIR_MAX_TAB = 2,               /* gathered terms in one index */
};

/* An extent or a GEMM dimension: n, times the runtime batch when `batch`. */
typedef struct KirDim {
    long n;
    bool batch;
} KirDim;

typedef enum KirBufKind {
    KIR_BUF_PARAM,   /* the flat folded parameters (trainable) */
    KIR_BUF_STATE,   /* batchnorm running statistics */
    KIR_BUF_PREP,    /* derived inference weights, filled by the prepare function */
    KIR_BUF_INPUT,
    KIR_BUF_OUTPUT,
    KIR_BUF_TARGET,
    KIR_BUF_GRAD,
    KIR_BUF_TEMP,    /* placed in the arena by the memory plan */
    KIR_BUF_DENSE,   /* the dense export (densify's output, export.c) */
    KIR_BUF_DOUTPUT, /* dL/d(output), from the runtime (RtExec.doutputs) */
    KIR_NUM_BUF_KINDS
} KirBufKind;
extern const char *const kir_buf_kind_name[KIR_NUM_BUF_KINDS];

/* Elements (float32): per_sample * batch + fixed. A temporary is either
 * per-sample or fixed, never both. */
typedef struct KirBuf {
    const char *name;
    KirBufKind kind;
    long per_sample, fixed;
    int io;          /* input / output / target: its index in the model's table */
    /* filled by cg_plan for temporaries: the function that uses it, the first
     * and last step that touch it, and the offset in its arena region */
    int func, first, last;
    long offset;
} KirBuf;

/* A constant table (int indices or float coefficients), gathered by index. */
typedef struct KirTab {
    bool is_float;
    int n;
    const int *i;
    const float *f;
} KirTab;

/* An affine index: off + sum_v coef[v] * var[v] + sum_t coef * table[var].
 * guard (loads only): the load is 0 unless 0 <= goff + sum gcoef[v]*var[v] < glimit. */
typedef struct KirTerm {
    int tab, var;
    long coef;
} KirTerm;
typedef struct KirIndex {
    int buf;         /* -1: no buffer (an RNG counter) */
    long off;
    long coef[KIR_NVARS];
    int ntab;
    KirTerm tab[KIR_MAX_TAB];
    bool guard;
    long goff, gcoef[KIR_NVARS], glimit;
} KirIndex;

/* X(ENUM, "name", operands) */
#define KIR_EXPRS(X)                                                                     \
    X(CONST, "const", 0) X(LOAD, "load", 0) X(TAB, "tab", 0) X(BATCH, "batch", 0)         \
    X(MOMENTUM, "momentum", 0) X(DROPMASK, "dropmask", 0)                                \
    X(NEG, "neg", 1) X(ABS, "abs", 1) X(EXP, "exp", 1) X(EXPM1, "expm1", 1)               \
    X(LOG, "log", 1) X(SQRT, "sqrt", 1) X(TANH, "tanh", 1) X(ERF, "erf", 1)               \
    X(SIGMOID, "sigmoid", 1)                                                             \
    X(ADD, "add", 2) X(SUB, "sub", 2) X(MUL, "mul", 2) X(DIV, "div", 2) X(MIN, "min", 2)  \
    X(MAX, "max", 2) X(LT, "lt", 2) X(LE, "le", 2) X(GT, "gt", 2) X(GE, "ge", 2)           \
    X(SELECT, "select", 3) X(SUM, "sum", 1) X(RMAX, "rmax", 1) X(VAL, "val", 0)
typedef enum KirEop {
#define X(e, name, k) KIR_E_##e,
    KIR_EXPRS(X)
#undef X
    KIR_NUM_EOPS
} KirEop;
extern const char *const kir_eop_name[KIR_NUM_EOPS];
extern const int kir_eop_arity[KIR_NUM_EOPS];

/* One node of an expression tree. Semantics per op:
 *   CONST value; LOAD buffer at idx; TAB float value of table `tab` at var `var`;
 *   BATCH the runtime batch as a number; MOMENTUM the runtime batchnorm momentum,
 *   `value` when the runtime gives none;
 *   DROPMASK inverted dropout: u = uniform(seed, (step << 32) | stream, counter idx);
 *   u >= p ? 1/(1-p) : 0 when dropout is on at run time, 1 when it is off;
 *   compares give 1 or 0; SELECT(c, a, b) = c != 0 ? a : b;
 *   SUM / RMAX reduce their operand over the kernel's reduction axis (var KIR_RVAR);
 *   reductions do not nest;
 *   VAL the value that store `slot` (< this store's) of the same kernel computed at
 *   this point: fusion (fuse.c) turns a load of what an earlier kernel stored at the
 *   same point into it. */
typedef struct KirExpr KirExpr;
struct KirExpr {
    KirEop op;
    KirExpr *a[3];
    double value;    /* CONST, MOMENTUM; DROPMASK: p */
    KirIndex idx;    /* LOAD; DROPMASK: the counter (buf -1) */
    int tab, var;    /* TAB */
    uint64_t stream; /* DROPMASK */
    int slot;        /* VAL */
};

/* Adds the distinct reductions (sum, rmax) of x, outermost first, to red[n..]: a backend
 * evaluates them before the store that uses them. Returns the new count; more than max
 * is an internal error. */
int kir_collect_reductions(const KirExpr *x, const KirExpr **red, int n, int max);
/* Whether x holds an expression of op. */
bool kir_expr_has(const KirExpr *x, KirEop op);

/* Row-major C[m x n] = alpha op(A) op(B) + beta C, with leading dimensions;
 * count > 0 (possibly batch-scaled): strided-batched, operand i at + i * stride. */
typedef struct KirMat {
    int buf;
    long off, ld, stride;
} KirMat;
typedef struct KirGemm {
    bool ta, tb;
    KirDim m, n, k;
    float alpha, beta;
    KirMat a, b, c;
    KirDim count;    /* n == 0: a single GEMM */
} KirGemm;

/* At every point of the index space (var 0 outermost), the stores run in
 * order: a later store may load what an earlier one stored at the same point, or
 * take its value (KIR_E_VAL). A store with idx.buf == -1 (a "let", made by fusion)
 * writes no memory: its value exists only for the later stores of the point. */
typedef struct KirStore {
    KirIndex idx;
    KirExpr *e;
} KirStore;
typedef struct KirLoop {
    int ndims;
    KirDim ext[KIR_MAX_DIMS];
    bool has_red;
    KirDim red;      /* extent of var KIR_RVAR */
    KirStore *st;
    int nst;
} KirLoop;

typedef enum KirStepKind { KIR_STEP_GEMM, KIR_STEP_LOOP } KirStepKind;
typedef struct KirStep {
    KirStepKind kind;
    const char *label; /* what it computes, for the reader ("%7 conv1d: even GEMM tap 0") */
    KirGemm g;
    KirLoop l;
} KirStep;

/* The functions of a program. prepare: parameters -> derived inference weights,
 * once after loading; forward_infer / forward_train: one batch; backward_infer /
 * backward_train (training graphs only): the parameter gradients after a forward of
 * the same mode on the same batch, reading what that forward left in the arena. */
typedef enum KirFn {
    KIR_FN_PREPARE, KIR_FN_INFER, KIR_FN_TRAIN, KIR_FN_DENSIFY, KIR_FN_BWD_INFER, KIR_FN_BWD_TRAIN, KIR_NUM_FNS
} KirFn;
/* The forward a function runs after (itself for the others): a temporary may
 * live across a forward and its backward. */
KirFn kir_fn_forward_of(KirFn f);
extern const char *const kir_fn_name[KIR_NUM_FNS];
typedef struct KirFunc {
    KirStep *steps;
    int nsteps, cap;
} KirFunc;

typedef struct KirProgram {
    Arena *arena;
    KirBuf *bufs;
    int nbufs, capbufs;
    KirTab *tabs;
    int ntabs, captabs;
    KirFunc fn[KIR_NUM_FNS];
    /* the memory plan (cg_plan): arena = per_sample * batch + fixed floats */
    long arena_per_sample, arena_fixed;
} KirProgram;

KirProgram *kir_program_new(Arena *a);
int kir_buf(KirProgram *k, const char *name, KirBufKind kind, long per_sample, long fixed);
/* Tables are shared: the same contents give the same table. */
int kir_tab_int(KirProgram *k, const int *v, int n);
int kir_tab_float(KirProgram *k, const float *v, int n);
/* Elements of buffer b for a batch. */
long kir_buf_size(const KirProgram *k, int b, long batch);

/* index helpers: kir_ix(buf, off) then set coefficients */
KirIndex kir_ix(int buf, long off);
KirIndex *kir_ix_var(KirIndex *x, int var, long coef);
KirIndex *kir_ix_tab(KirIndex *x, int tab, int var, long coef);

KirExpr *kir_const(KirProgram *k, double v);
KirExpr *kir_load(KirProgram *k, KirIndex idx);
KirExpr *kir_tabv(KirProgram *k, int tab, int var);
KirExpr *kir_batch(KirProgram *k);
KirExpr *kir_momentum(KirProgram *k, double dflt);
KirExpr *kir_dropmask(KirProgram *k, double p, uint64_t stream, KirIndex counter);
KirExpr *kir_un(KirProgram *k, KirEop op, KirExpr *a);
KirExpr *kir_bin(KirProgram *k, KirEop op, KirExpr *a, KirExpr *b);
KirExpr *kir_select(KirProgram *k, KirExpr *c, KirExpr *a, KirExpr *b);

/* Steps are appended to function f. kir_loop returns the step for its stores. */
KirStep *kir_gemm(KirProgram *k, KirFn f, const char *label, const KirGemm *g);
KirStep *kir_loop(KirProgram *k, KirFn f, const char *label, int ndims, const KirDim *ext);
void kir_loop_red(KirStep *s, KirDim red);
void kir_store(KirProgram *k, KirStep *s, KirIndex idx, KirExpr *e);

/* Whether the outer iterations (i0) of a loop kernel are independent: no two of them
 * touch the same element of a buffer the kernel writes. Such a kernel may run its i0
 * blocks on several cores (C and LLVM: rt_parallel_for) or one i0 per GPU thread. */
bool kir_loop_parallel(const KirProgram *k, const KirLoop *l);
/* Whether every point of a loop kernel may run at once: proven from the indices (no
 * point touches what another writes). The CUDA printer then gives each point a thread
 * (else one thread per i0, kir_loop_parallel, or one thread); the LLVM backend may split
 * such a kernel over (i0, i1). */
bool kir_loop_points_independent(const KirProgram *k, const KirLoop *l);
/* Whether any loop kernel of k holds an expression of op. */
bool kir_program_has(const KirProgram *k, KirEop op);
/* Marks the buffers step s (loop l) touches in used[] and those it writes in written[]
 * (which may be NULL); marks are added, never cleared. */
void kir_step_bufs(const KirStep *s, bool *used, bool *written);
void kir_loop_bufs(const KirLoop *l, bool *used, bool *written);
/* The kernel's work in points (times the reduction's length), for the decision
 * whether waking other cores pays: the product of the extents, batch-scaled when any
 * of them is (never N^2: a batch-scaled reduction counts once). */
KirDim kir_loop_work(const KirLoop *l);
/* A one-dimensional kernel whose reductions run over rows (batchnorm's statistics: loop
 * [C] reduce r < N T reading x[r C + i0]), which a backend may run with the rows outside
 * (one accumulator per channel, the channels inside): C at most KIR_ROWS_MAX_EXT, every
 * store into a buffer apart from what the kernel loads, no values of other stores, no
 * dropout, at most 16 reductions in all. */
enum { KIR_ROWS_MAX_EXT = 8192, KIR_ROW_BLOCKS = 8, KIR_ROW_BLOCKS_MAX_ACC = 32768 };
bool kir_loop_rows_outside(const KirLoop *l);
/* Its reductions, in order of first appearance (red: room for 16); their number. */
int kir_loop_reductions(const KirLoop *l, const KirExpr **red);
/* Such a kernel whose rows scale with the batch sums them in KIR_ROW_BLOCKS blocks of
 * rows, [R b / 8, R (b + 1) / 8): each block its rows in order from 0 (max: -inf), then
 * the blocks' results in order, the first as it is, in double; every CPU backend alike
 * (docs/kernel-ir.md "row blocks"). Only where the blocks' accumulators,
 * KIR_ROW_BLOCKS reductions C doubles, are at most KIR_ROW_BLOCKS_MAX_ACC. */
bool kir_loop_row_blocks(const KirLoop *l);

/* The stable text form (chiralc emit kir). */
void kir_print(FILE *out, const KirProgram *k);
/* Structural checks, and every index in bounds for batch 1 and 3 (guarded loads
 * where the index space is small enough to enumerate). Returns false with a
 * message in *why (arena-owned) at the first violation. */
bool kir_verify(const KirProgram *k, const char **why);
/* Evaluates an index at a point (vars[KIR_NVARS]); for the verifier and tests. */
long kir_ix_eval(const KirProgram *k, const KirIndex *x, const long *vars);
long kir_dim(KirDim d, long batch);

/* ---- lower.c: the typed graph (after pass_pipeline) -> the kernel IR ------------- */

typedef struct CgOptions {
    bool no_fold;    /* dense masked weights W = S_out blockdiag(A, B) Q_in, one GEMM per map */
    bool no_fuse;    /* keep every loop kernel as lowered (fuse.c off: benchmarks, tests) */
} CgOptions;

/* A lowered model: the kernel IR plus where every folded parameter of the graph
 * (ir_params_new's entries, in order) lives in the params or state buffer. */
typedef struct CgModel {
    IrProgram *prog;
    CgOptions opts;
    IrParams *layout;      /* ir_params_new(prog): the entries (its data is unused) */
    KirProgram *k;
    long *entry_offset;    /* by entry: offset in params (trainable) or state */
    bool *entry_state;     /* by entry: lives in the state buffer */
    long params_size, state_size, prep_size;
    int params_buf, state_buf, prep_buf;
    int *input_buf, *output_buf;   /* by declaration index */
    int *input_frames, *output_frames; /* 0: no time axis */
    const char *fingerprint;       /* of the typed graph: checkpoint compatibility */
    struct CgExport *dense;        /* the dense export (export.c) */
} CgModel;

/* Returns NULL after reporting a user error through prog->diag. */
CgModel *cg_lower(IrProgram *prog, const CgOptions *o);
/* The interpreter's double parameters as the compiled program's float buffers. */
void cg_params_from_ir(const CgModel *m, const IrParams *w, float *params, float *state);
/* A fingerprint of the typed graph's text form ("fnv1a64:..."). */
const char *cg_fingerprint(Arena *a, const IrProgram *p);

/* The weights `sharing paper` holds at zero in entry x form a product set rows x cols
 * (ir_params_fixed_zero). Returns false when there are none; else *rows (sup_malloc'd,
 * free with sup_free) and *cols (inside the same block) hold them. */
bool cg_fixed_zero_sets(const IrParams *w, const IrParamEntry *x, int **rows, int *nr, int **cols, int *nc);

/* ---- export.c: the dense export (PyTorch's modules, names and layouts) ----------------- */

/* One dense tensor: `count` floats at `offset` of the dense buffer, shape[0..ndim). */
typedef struct CgDense {
    const char *name;      /* "n3.weight", "n7.bias_hh_l1" */
    int ndim;
    long shape[3];
    long offset, count;
} CgDense;
typedef struct CgExport {
    CgDense *t;
    int n;
    long size;             /* floats of the dense buffer */
    int dense_buf;         /* its kernel IR buffer (KIR_BUF_DENSE) */
    const char *graph_json;/* the network for a loader (tests/torch_export_check.py) */
} CgExport;
/* Lowers the dense construction of every layer into the function KIR_FN_DENSIFY
 * (params, state -> dense; no temporaries) and sets m->dense. cg_lower calls it. */
void cg_export_lower(CgModel *m);

/* ---- fuse.c: loop fusion, a kernel IR pass ---------------------------------------------- */

/* Merges chains of loop kernels over the same index space (docs/kernel-ir.md "Fusion"):
 * a consumer that reads what its producer stored at the same point takes the value
 * instead, and an intermediate nobody else reads (in the function or in its backward)
 * becomes a let, so it is never written to memory. cg_lower runs it after lowering,
 * before the memory plan, unless CgOptions.no_fuse. Returns the number of merges. */
int cg_fuse(KirProgram *k);

/* ---- runs.c: the runs of a kernel's gathers along its innermost variable ---------------- */

/* Along the innermost variable v of a loop kernel, the tables it gathers at v split
 * [0, ext) into runs [start[q], start[q + 1]) over which every one of them is affine:
 * an int table t[i] = base + i, a float table one value. A backend loops over the runs
 * and, inside, over i as a plain affine loop (docs/kernel-ir.md "Runs"). */
enum { KIR_RUNS_MAX_TAB = 8 };
typedef struct KirRuns {
    int var;                     /* the innermost variable */
    int ntab;                    /* index (int) tables gathered at var */
    int tab[KIR_RUNS_MAX_TAB];
    int n;                       /* runs */
    long *start;                 /* [n + 1], start[n] = ext */
    int *base;                   /* [n * ntab]: table j in run q: t[i] = base[q * ntab + j] + i */
} KirRuns;
/* The runs of l (arena-owned); false when it gathers nothing at its innermost
 * variable, gathers at more than KIR_RUNS_MAX_TAB tables there, that variable's extent
 * is batch-scaled or the runs are shorter than min_len on average. Float tables read at
 * the variable (coefficients) are contiguous already and do not cut the runs. */
bool kir_loop_runs(const KirProgram *k, const KirLoop *l, long min_len, KirRuns *r);

/* ---- plan.c: the static memory plan ----------------------------------------------- */

/* Liveness (first and last step of the one function that touches a temporary)
 * and first-fit offsets, per-sample and fixed regions separately; sets
 * k->arena_per_sample and k->arena_fixed. A forward and its backward are one
 * timeline (the backward's steps numbered after the forward's): a temporary of
 * either has func = the forward (kir_fn_forward_of) and first/last on it. */
void cg_plan(KirProgram *k);
/* The arena offset of a temporary for a batch: per-sample buffers at
 * offset * batch, fixed ones after the per-sample region. */
long cg_plan_address(const KirProgram *k, int b, long batch);

/* ---- fastmath.c: tanh and dropout as the CPU backends inline them -------------------- */

/* tanh(x) ~ clamp(c P(c^2) / Q(c^2), -1, 1), c = clamp(x, -clamp, clamp); P and Q by
 * Horner from their highest coefficient, in float32 (each coefficient read as a float). */
enum { CG_TANH_NNUM = 6, CG_TANH_NDEN = 4 };
extern const double cg_tanh_num[CG_TANH_NNUM], cg_tanh_den[CG_TANH_NDEN], cg_tanh_clamp;

/* Inverted dropout of probability p, as the CPU backends draw it: kept when the
 * Philox word is >= threshold (support/philox.h), then scaled by `scale`; p >= 1
 * keeps nothing (scale 0). */
typedef struct CgDropout {
    uint32_t threshold;
    float scale;
} CgDropout;
CgDropout cg_dropout_of(double p);

/* ---- c_syntax.c: the C syntax shared by the C and CUDA printers ---------------------------- */

/* How cg_c_expr prints: the stream, and what the C and CUDA files spell differently. */
typedef struct CgCExpr {
    FILE *out;
    bool f64;             /* double scalars (the C backend's test mode, CgEmitOptions.f64) */
    const char *backend;  /* "C", "CUDA": for internal errors */
    const char *tanh;     /* the float tanh: tanh_r (codegen/fastmath.c) or CUDA's tanhf */
    const char *momentum; /* the RtExec field of the batchnorm momentum, as the file reaches it */
    /* the reductions the store being printed hoisted into accumulators red<redbase + i> */
    const KirExpr *const *red;
    int nred, redbase;
    /* the printer's own dropout call (KIR_E_DROPMASK) */
    void (*dropmask)(const struct CgCExpr *p, const KirExpr *x);
} CgCExpr;

extern const char *const cg_c_var[KIR_NVARS]; /* i0 .. i3, r */
void cg_c_dim(FILE *out, KirDim d);           /* 1020, N, N * 235 */
void cg_c_float(FILE *out, double v);         /* a float literal: 0.5f, (-2.0f), INFINITY */
void cg_c_num(FILE *out, bool f64, double v); /* a literal of the scalar type */
/* An affine index (off + sum coef[v] * i_v), and a whole KirIndex with its gathered
 * terms (t<tab>[var]). */
void cg_c_affine(FILE *out, long off, const long *coef);
void cg_c_index(FILE *out, const KirIndex *x);
void cg_c_expr(const CgCExpr *p, const KirExpr *x);

/* ---- emit_c.c: the C backend ---------------------------------------------------------- */

/* One readable C11 file defining the model descriptor (RtModel, runtime/rt.h). */
void cg_emit_c(FILE *out, const CgModel *m);
/* float64: every scalar and buffer is double (cblas_dgemm); the RtExec pointers
 * must then point to doubles (cast). For tests only (finite differences). */
typedef struct CgEmitOptions {
    bool f64;
} CgEmitOptions;
void cg_emit_c_opts(FILE *out, const CgModel *m, const CgEmitOptions *o);
/* Writes DIR/MODEL.c atomically; false after reporting through prog->diag. */
bool cg_write_c(const CgModel *m, const char *dir, const char **path_out);
/* The descriptor's host-side tables (initial values, parameter, input and output tables,
 * the dense table and the graph's JSON), valid C and C++: the CUDA printer's too. */
void cg_emit_c_host_tables(FILE *out, const CgModel *m);

/* ---- emit_cuda.c: the CUDA backend ------------------------------------------------------ */

/* One readable .cu file (nvcc, C++) of the same kernel IR: a __global__ kernel per loop
 * step, a cuBLAS call per GEMM step, host functions that launch them on the runtime's
 * stream (runtime/cuda/rt_cuda.h) and the RtModel descriptor; every RtExec pointer is
 * GPU memory. Needs no CUDA on the machine that prints it. */
void cg_emit_cuda(FILE *out, const CgModel *m);
/* Writes DIR/MODEL.cu atomically; false after reporting through prog->diag. */
bool cg_write_cuda(const CgModel *m, const char *dir, const char **path_out);

/* ---- emit_llvm.c: the LLVM backend ---------------------------------------------------- */

/* The same kernel IR and descriptor as the C backend, built through the LLVM C API,
 * verified (LLVMVerifyModule), optimised for the host CPU and written as an object
 * file or as text. Where chiralc was built without LLVM, cg_llvm_available() is false
 * and the writers report one error line. */
typedef struct CgLlvmOptions {
    int opt;         /* LLVM's default<O1..O3> pipeline; 0: none (verified only). NULL options: 2 */
} CgLlvmOptions;
bool cg_llvm_available(void);
/* Prints the module (after optimisation) to out; false after reporting. */
bool cg_emit_llvm(FILE *out, const CgModel *m, const CgLlvmOptions *o);
/* Writes DIR/MODEL.ll (the module after optimisation) atomically; false after
 * reporting through prog->diag. */
bool cg_write_llvm_ir(const CgModel *m, const char *dir, const CgLlvmOptions *o, const char **path_out);
/* Writes the object file (position-independent, defining rt_model_get) at path,
 * atomically; false after reporting through prog->diag. */
bool cg_write_llvm_object(const CgModel *m, const char *path, const CgLlvmOptions *o);

#endif
