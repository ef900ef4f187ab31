/* codegen/emit_cuda.c: the CUDA backend: the kernel IR printed as one readable .cu file
 * (nvcc, C++) that defines the model descriptor of runtime/rt.h (model.h section) with
 * every RtExec pointer in GPU memory.
 *
 * The same walk as the C printer (emit_c.c), step by step:
 *   - a loop step is a __global__ kernel: one thread per point of its index space, a
 *     grid-stride loop over the flattened extents (i0 outermost); where the innermost
 *     extent is a long constant (a row of channels), a block per row instead, its
 *     threads across the row (by_rows). A step with a
 *     reduction axis gets a second kernel, one 256-thread block per point reducing over
 *     r in shared memory; the launcher picks it when the points are too few to fill
 *     the GPU and the reduction is long (batchnorm statistics, bias gradients);
 *   - a GEMM step is a cuBLAS call: row-major C = op(A) op(B) is column-major
 *     C^T = op(B)^T op(A)^T, so the operands swap and keep their transposition flags;
 *     count > 0 is cublasSgemmStridedBatched;
 *   - every KIR function is a host function that launches its steps in order on the
 *     runtime's stream (runtime/cuda/rt_cuda.h), each launch and call checked.
 * Expressions, indices and literals are printed by codegen/c_syntax.c, as the C
 * printer's. Reductions accumulate in double as on the CPU; dropout draws
 * support/philox.h's mask, the CPU's bit for bit. The descriptor's tables come from the
 * C printer (cg_emit_c_host_tables): the initialiser runs on the host, as on the CPU.
 *
 * A new kind of step is a new case in step_kernel_cu / step_launch_cu. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "support/philox.h"

enum {
    THREADS = 256,         /* per block, every kernel */
    BLOCK_RED_POINTS = 65536, /* fewer points than this and ... */
    BLOCK_RED_MIN = 256,   /* ... a reduction at least this long: one block per point */
    ROW_MIN = 128,         /* an innermost constant extent at least this long: a block per row */
};

typedef struct E {
    FILE *out;
    const CgModel *m;
    const KirProgram *k;
    const KirExpr *red[16]; /* the reductions of the store being printed */
    int nred;
    int redbase;            /* named red<redbase + i>: the kernel's earlier stores' come first */
} E;

/* ---- expressions (float, as the C backend's: codegen/c_syntax.c) ------------------------- */

/* The CUDA file's dropout mask: support/philox.h's, with the threshold and the scale
 * (float)(1 / (1 - p)) folded here. */
static void dropmask_cu(const CgCExpr *p, const KirExpr *x) {
    FILE *out = p->out;
    if (x->value >= 1) {
        fputs("(x.dropout ? 0.0f : 1.0f)", out);
        return;
    }
    fprintf(out, "dropmask(x, %lluu, ", (unsigned long long)x->stream);
    cg_c_index(out, &x->idx);
    fprintf(out, ", %uu, ", (unsigned)sup_dropout_threshold(x->value));
    cg_c_float(out, (float)(1.0 / (1.0 - x->value)));
    fprintf(out, ") /* p = %.17g */", x->value);
}

static void expr_cu(E *e, const KirExpr *x) {
    CgCExpr p = {.out = e->out, .backend = "CUDA", .tanh = "tanhf", .momentum = "x.momentum", .red = e->red,
                 .nred = e->nred, .redbase = e->redbase, .dropmask = dropmask_cu};
    cg_c_expr(&p, x);
}

static bool uses_val(const KirExpr *x, int slot) {
    if (x->op == KIR_E_VAL) return x->slot == slot;
    for (int i = 0; i < kir_eop_arity[x->op]; i++)
        if (uses_val(x->a[i], slot)) return true;
    return false;
}

static void indent(FILE *out, int n) {
    for (int i = 0; i < n; i++) fputs("    ", out);
}

/* ---- buffers ---------------------------------------------------------------------------------- */

/* N and a device pointer per buffer in used (const unless written), from the Args x. */
static void decl_bufs(E *e, const bool *used, const bool *written) {
    const KirProgram *k = e->k;
    FILE *out = e->out;
    fputs("    const int64_t N = x.N;\n    (void)N;\n", out);
    for (int b = 0; b < k->nbufs; b++) {
        if (!used[b]) continue;
        const KirBuf *x = &k->bufs[b];
        const char *cq = written[b] ? "" : "const ";
        fprintf(out, "    %sfloat *b%d = ", cq, b);
        switch (x->kind) {
        case KIR_BUF_PARAM: fputs(written[b] ? "(float *)x.params" : "x.params", out); break;
        case KIR_BUF_STATE: fputs("x.state", out); break;
        case KIR_BUF_PREP: fputs("x.prep", out); break;
        case KIR_BUF_INPUT: fprintf(out, written[b] ? "(float *)x.in[%d]" : "x.in[%d]", x->io); break;
        case KIR_BUF_OUTPUT: fprintf(out, "x.out[%d]", x->io); break;
        case KIR_BUF_GRAD: fputs("x.grads", out); break;
        case KIR_BUF_TARGET: fprintf(out, "x.tgt[%d]", x->io); break;
        case KIR_BUF_DOUTPUT: fprintf(out, "x.dout[%d]", x->io); break;
        case KIR_BUF_DENSE: fputs("x.dense", out); break;
        case KIR_BUF_TEMP:
            if (x->per_sample) fprintf(out, "x.arena + %ldL * N", x->offset);
            else fprintf(out, "x.arena + %ldL * N + %ldL", k->arena_per_sample, x->offset);
            break;
        default: sup_bug("CUDA backend: buffer kind %d", (int)x->kind);
        }
        fprintf(out, "; /* %s */\n", x->name);
    }
}

/* ---- loop kernels ------------------------------------------------------------------------------- */

/* The number of points of the index space, as an expression of N. */
static void points_cu(FILE *out, const KirLoop *l) {
    for (int d = 0; d < l->ndims; d++) {
        if (d) fputs(" * ", out);
        cg_c_dim(out, l->ext[d]);
    }
}

/* The first ndims variables of point (or row) p_ (i0 outermost: the last varies fastest). */
static void decompose_cu(FILE *out, const KirLoop *l, int ndims, int ind) {
    indent(out, ind);
    fputs("int64_t q_ = p_;\n", out);
    for (int d = ndims - 1; d >= 0; d--) {
        indent(out, ind);
        if (d == 0) {
            fputs("const int64_t i0 = q_;\n", out);
            break;
        }
        fprintf(out, "const int64_t %s = q_ %% (", cg_c_var[d]);
        cg_c_dim(out, l->ext[d]);
        fputs(");\n", out);
        indent(out, ind);
        fputs("q_ /= ", out);
        cg_c_dim(out, l->ext[d]);
        fputs(";\n", out);
    }
    indent(out, ind);
    fputs("(void)q_;\n", out);
}

/* The stores of one point. block: the kernel runs one block per point; every thread
 * takes a share of r and the block combines the shares (block_sum / block_max, which
 * every thread gets), then every thread computes the value and thread 0 stores it. */
static void stores_cu(E *e, const KirLoop *l, int ind, bool block) {
    FILE *out = e->out;
    e->redbase = e->nred = 0;
    for (int j = 0; j < l->nst; j++) {
        const KirStore *st = &l->st[j];
        e->redbase += e->nred;
        e->nred = kir_collect_reductions(st->e, e->red, 0, (int)(sizeof e->red / sizeof e->red[0]));
        for (int r = 0; r < e->nred; r++) {
            const KirExpr *x = e->red[r];
            bool sum = x->op == KIR_E_SUM;
            indent(out, ind);
            fprintf(out, "double red%d = %s;\n", e->redbase + r, sum ? "0.0" : "-INFINITY");
            indent(out, ind);
            fputs(block ? "for (int64_t r = threadIdx.x; r < " : "for (int64_t r = 0; r < ", out);
            cg_c_dim(out, l->red);
            fputs(block ? "; r += blockDim.x) " : "; r++) ", out);
            int saved = e->nred;
            e->nred = 0; /* the body holds no reductions */
            if (sum) {
                fprintf(out, "red%d += ", e->redbase + r);
                expr_cu(e, x->a[0]);
            } else {
                fprintf(out, "red%d = fmax(red%d, (double)", e->redbase + r, e->redbase + r);
                expr_cu(e, x->a[0]);
                fputc(')', out);
            }
            e->nred = saved;
            fputs(";\n", out);
            if (block) {
                indent(out, ind);
                fprintf(out, "red%d = %s(red%d, sh_);\n", e->redbase + r, sum ? "block_sum" : "block_max", e->redbase + r);
            }
        }
        /* a let, or a store whose value a later store takes (fusion): a local first */
        bool named = st->idx.buf < 0;
        for (int q = j + 1; q < l->nst && !named; q++) named = uses_val(l->st[q].e, j);
        if (named) {
            indent(out, ind);
            fprintf(out, "const float v%d = ", j);
            expr_cu(e, st->e);
            fputs(";\n", out);
            if (st->idx.buf < 0) continue;
        }
        indent(out, ind);
        if (block) fputs("if (threadIdx.x == 0) ", out);
        fprintf(out, "b%d[", st->idx.buf);
        cg_c_index(e->out, &st->idx);
        fputs("] = ", out);
        if (named) fprintf(out, "v%d", j);
        else expr_cu(e, st->e);
        fputs(";\n", out);
        if (block && j + 1 < l->nst) {
            /* a later store may load what this one stored at the point */
            indent(out, ind);
            fputs("__syncthreads();\n", out);
        }
    }
}

/* How a loop kernel's points are spread over the GPU. */
typedef enum Par {
    PAR_POINTS, /* a thread per point (grid-stride over all of them) */
    PAR_BLOCK,  /* a block per point, the reduction spread over its threads */
    PAR_OUTER,  /* a thread per i0, the inner points in order (kir_loop_parallel) */
    PAR_SERIAL, /* one thread, the C backend's order */
} Par;

static Par par_of(const KirProgram *k, const KirLoop *l) {
    return kir_loop_points_independent(k, l) ? PAR_POINTS : kir_loop_parallel(k, l) ? PAR_OUTER : PAR_SERIAL;
}

/* A thread-per-point kernel whose innermost extent is a long constant runs a block per
 * row of it, the threads across the row: the outer variables are then decomposed once a
 * row rather than once a point (a 64-bit division by a constant is a dozen instructions
 * on the GPU, and a point is a load and a store: the flat loop ran at a third of the
 * memory's rate), and a warp's accesses along the row stay coalesced. */
static bool by_rows(const KirLoop *l) {
    return l->ndims >= 2 && !l->ext[l->ndims - 1].batch && l->ext[l->ndims - 1].n >= ROW_MIN;
}

/* The number of rows of a by_rows loop: the product of all but the innermost extent. */
static void rows_cu(FILE *out, const KirLoop *l) {
    for (int d = 0; d + 1 < l->ndims; d++) {
        if (d) fputs(" * ", out);
        cg_c_dim(out, l->ext[d]);
    }
}

static const char *kernel_name(KirFn f, int i, bool block) {
    static char buf[80];
    snprintf(buf, sizeof buf, "%s_s%d%s", kir_fn_name[f], i, block ? "_block" : "");
    return buf;
}

/* Nested loops over the variables from `first` on (the C backend's order); returns the
 * indentation of the body. */
static int nest_cu(FILE *out, const KirLoop *l, int first, int ind) {
    for (int d = first; d < l->ndims; d++) {
        indent(out, ind++);
        fprintf(out, "for (int64_t %s = 0; %s < ", cg_c_var[d], cg_c_var[d]);
        cg_c_dim(out, l->ext[d]);
        fprintf(out, "; %s++)\n", cg_c_var[d]);
    }
    if (first < l->ndims) {
        indent(out, ind - 1);
        fputs("{\n", out);
    }
    return ind;
}

/* The kernel(s) of step i, before the host function that launches them. */
static void step_kernel_cu(E *e, KirFn f, int i, const KirStep *s) {
    if (s->kind != KIR_STEP_LOOP) return; /* a GEMM is a cuBLAS call in the host function */
    FILE *out = e->out;
    const KirProgram *k = e->k;
    const KirLoop *l = &s->l;
    bool *used = sup_malloc(sizeof(bool) * (size_t)(k->nbufs + 1));
    bool *written = sup_malloc(sizeof(bool) * (size_t)(k->nbufs + 1));
    memset(used, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
    memset(written, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
    kir_step_bufs(s, used, written);
    Par par = par_of(k, l);
    if (par != PAR_POINTS) {
        static const char *const why[] = {"", "", "one thread per i0: the inner points depend on each other",
                                          "one thread: the points depend on each other"};
        fprintf(out, "\n/* s%d: %s (%s) */\n", i, s->label, why[par]);
        fprintf(out, "static __global__ void __launch_bounds__(%d) %s(const Args x) {\n", THREADS,
                kernel_name(f, i, false));
        decl_bufs(e, used, written);
        int ind = 1;
        if (par == PAR_OUTER) {
            fputs("    for (int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i0 < ", out);
            cg_c_dim(out, l->ext[0]);
            fputs(";\n         i0 += (int64_t)gridDim.x * blockDim.x) {\n", out);
            ind = nest_cu(out, l, 1, 2);
        } else {
            fputs("    if (blockIdx.x != 0 || threadIdx.x != 0) return;\n", out);
            ind = nest_cu(out, l, 0, 1);
        }
        stores_cu(e, l, ind, false);
        if (l->ndims > (par == PAR_OUTER ? 1 : 0)) { /* the nest's brace */
            indent(out, ind - 1);
            fputs("}\n", out);
        }
        fputs(par == PAR_OUTER ? "    }\n}\n" : "}\n", out);
        sup_free(used);
        sup_free(written);
        return;
    }
    for (int block = 0; block <= (l->has_red ? 1 : 0); block++) {
        fprintf(out, "\n/* s%d: %s%s */\n", i, s->label,
                block ? " (one block per point)" : l->has_red ? " (one thread per point)" : "");
        fprintf(out, "static __global__ void __launch_bounds__(%d) %s(const Args x) {\n", THREADS,
                kernel_name(f, i, block));
        if (block) fprintf(out, "    __shared__ double sh_[%d];\n", THREADS);
        decl_bufs(e, used, written);
        if (!block && by_rows(l)) {
            const int last = l->ndims - 1;
            fputs("    const int64_t rows_ = ", out);
            rows_cu(out, l);
            fputs(";\n    for (int64_t p_ = blockIdx.x; p_ < rows_; p_ += gridDim.x) {\n", out);
            decompose_cu(out, l, last, 2);
            fprintf(out, "        for (int64_t %s = threadIdx.x; %s < %ld; %s += blockDim.x) {\n", cg_c_var[last],
                    cg_c_var[last], l->ext[last].n, cg_c_var[last]);
            stores_cu(e, l, 3, false);
            fputs("        }\n    }\n}\n", out);
            continue;
        }
        fputs("    const int64_t n_ = ", out);
        points_cu(out, l);
        fputs(";\n", out);
        if (block) fputs("    for (int64_t p_ = blockIdx.x; p_ < n_; p_ += gridDim.x) {\n", out);
        else
            fputs("    for (int64_t p_ = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p_ < n_;\n"
                  "         p_ += (int64_t)gridDim.x * blockDim.x) {\n", out);
        decompose_cu(out, l, l->ndims, 2);
        stores_cu(e, l, 2, block);
        if (block) fputs("        __syncthreads();\n", out);
        fputs("    }\n}\n", out);
    }
    sup_free(used);
    sup_free(written);
}

/* ---- GEMMs ------------------------------------------------------------------------------------- */

static void mat_cu(FILE *out, const KirMat *m) { fprintf(out, "b%d + %ld, %ld", m->buf, m->off, m->ld); }

static void gemm_cu(E *e, const KirGemm *g) {
    FILE *out = e->out;
    bool batched = g->count.n > 0;
    /* cuBLAS runs the batch at once: where the C blocks of two items overlap (the C
     * backend accumulates them in order), one GEMM per item, in order on the stream */
    bool overlap = batched && (g->m.batch || g->n.batch || labs(g->c.stride) < (g->m.n - 1) * g->c.ld + g->n.n);
    if (overlap) {
        fputs("    for (int64_t q = 0; q < ", out);
        cg_c_dim(out, g->count);
        fputs("; q++) /* the items' C blocks overlap: in order */\n", out);
        fprintf(out, "    RT_CUBLAS_CHECK(cublasSgemm(h, %s, %s, (int)(", g->tb ? "CUBLAS_OP_T" : "CUBLAS_OP_N",
                g->ta ? "CUBLAS_OP_T" : "CUBLAS_OP_N");
        cg_c_dim(out, g->n), fputs("), (int)(", out), cg_c_dim(out, g->m), fputs("), (int)(", out), cg_c_dim(out, g->k);
        fputs("),\n        flt(", out);
        cg_c_float(out, g->alpha);
        fprintf(out, "), b%d + %ld + q * %ldL, %ld, b%d + %ld + q * %ldL, %ld, flt(", g->b.buf, g->b.off, g->b.stride,
                g->b.ld, g->a.buf, g->a.off, g->a.stride, g->a.ld);
        cg_c_float(out, g->beta);
        fprintf(out, "), b%d + %ld + q * %ldL, %ld));\n", g->c.buf, g->c.off, g->c.stride, g->c.ld);
        return;
    }
    /* row-major C[m x n] = op(A) op(B) is column-major C^T[n x m] = op(B)^T op(A)^T */
    fprintf(out, "    RT_CUBLAS_CHECK(%s(h, %s, %s, (int)(", batched ? "cublasSgemmStridedBatched" : "cublasSgemm",
            g->tb ? "CUBLAS_OP_T" : "CUBLAS_OP_N", g->ta ? "CUBLAS_OP_T" : "CUBLAS_OP_N");
    cg_c_dim(out, g->n), fputs("), (int)(", out), cg_c_dim(out, g->m), fputs("), (int)(", out), cg_c_dim(out, g->k);
    fputs("),\n        flt(", out);
    cg_c_float(out, g->alpha);
    fputs("), ", out);
    mat_cu(out, &g->b);
    if (batched) fprintf(out, ", %ldLL", g->b.stride);
    fputs(", ", out);
    mat_cu(out, &g->a);
    if (batched) fprintf(out, ", %ldLL", g->a.stride);
    fputs(", flt(", out);
    cg_c_float(out, g->beta);
    fputs("), ", out);
    mat_cu(out, &g->c);
    if (batched) {
        fprintf(out, ", %ldLL, (int)(", g->c.stride);
        cg_c_dim(out, g->count);
        fputc(')', out);
    }
    fputs("));\n", out);
}

/* The launch of step i (or its cuBLAS call) in the host function. */
static void step_launch_cu(E *e, KirFn f, int i, const KirStep *s) {
    FILE *out = e->out;
    fprintf(out, "    /* s%d: %s */\n", i, s->label);
    switch (s->kind) {
    case KIR_STEP_GEMM: gemm_cu(e, &s->g); return;
    case KIR_STEP_LOOP: {
        const KirLoop *l = &s->l;
        Par par = par_of(e->k, l);
        if (par != PAR_POINTS) {
            fprintf(out, "    %s<<<", kernel_name(f, i, false));
            if (par == PAR_OUTER) {
                fputs("rt_cuda_grid(", out);
                cg_c_dim(out, l->ext[0]);
                fprintf(out, ", %d), %d", THREADS, THREADS);
            } else {
                fputs("1, 1", out);
            }
            fprintf(out, ", 0, st>>>(x);\n    RT_CUDA_LAUNCHED(\"%s\");\n", kernel_name(f, i, false));
            return;
        }
        if (l->has_red) {
            /* few points with a long reduction: a block each; else a thread each */
            fputs("    if (", out);
            points_cu(out, l);
            fprintf(out, " < %d && ", BLOCK_RED_POINTS);
            cg_c_dim(out, l->red);
            fprintf(out, " >= %d) {\n        %s<<<rt_cuda_grid((", BLOCK_RED_MIN, kernel_name(f, i, true));
            points_cu(out, l);
            fprintf(out, ") * %d, %d), %d, 0, st>>>(x);\n", THREADS, THREADS, THREADS);
            fprintf(out, "        RT_CUDA_LAUNCHED(\"%s\");\n    } else {\n    ", kernel_name(f, i, true));
        }
        fprintf(out, "    %s<<<rt_cuda_grid(", kernel_name(f, i, false));
        if (by_rows(l)) { /* a block per row */
            fputs("(", out);
            rows_cu(out, l);
            fprintf(out, ") * %d", THREADS);
        } else {
            points_cu(out, l);
        }
        fprintf(out, ", %d), %d, 0, st>>>(x);\n", THREADS, THREADS);
        fprintf(out, "%s    RT_CUDA_LAUNCHED(\"%s\");\n", l->has_red ? "    " : "", kernel_name(f, i, false));
        if (l->has_red) fputs("    }\n", out);
        return;
    }
    }
    sup_bug("CUDA backend: step kind %d", (int)s->kind);
}

/* The kernels of f, then `static void NAME(const Args &x)` launching them in order. */
static void function_cu(E *e, KirFn f) {
    const KirProgram *k = e->k;
    const KirFunc *fn = &k->fn[f];
    FILE *out = e->out;
    fprintf(out, "\n/* ---- %s: %d steps ---- */\n", kir_fn_name[f], fn->nsteps);
    for (int i = 0; i < fn->nsteps; i++) step_kernel_cu(e, f, i, &fn->steps[i]);
    /* the host function binds the buffers its GEMMs use */
    bool *used = sup_malloc(sizeof(bool) * (size_t)(k->nbufs + 1));
    bool *written = sup_malloc(sizeof(bool) * (size_t)(k->nbufs + 1));
    memset(used, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
    memset(written, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
    for (int i = 0; i < fn->nsteps; i++)
        if (fn->steps[i].kind == KIR_STEP_GEMM) kir_step_bufs(&fn->steps[i], used, written);
    fprintf(out, "\nstatic void %s(const Args &x) {\n", kir_fn_name[f]);
    decl_bufs(e, used, written);
    fputs("    cudaStream_t st = rt_cuda_stream();\n    cublasHandle_t h = rt_cuda_blas();\n"
          "    (void)st, (void)h;\n", out);
    for (int i = 0; i < fn->nsteps; i++) step_launch_cu(e, f, i, &fn->steps[i]);
    fputs("}\n", out);
    sup_free(used);
    sup_free(written);
}

/* ---- the file ---------------------------------------------------------------------------------- */

static void str_cu(FILE *out, const char *s) {
    fputc('"', out);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        if ((unsigned char)*s < 32) fprintf(out, "\\%03o", (unsigned char)*s);
        else fputc(*s, out);
    }
    fputc('"', out);
}

static bool has_backward(const KirProgram *k) {
    return k->fn[KIR_FN_BWD_INFER].nsteps > 0 || k->fn[KIR_FN_BWD_TRAIN].nsteps > 0;
}

static void prelude_cu(E *e) {
    FILE *out = e->out;
    const IrProgram *p = e->m->prog;
    int ni = p->ninputs > 0 ? p->ninputs : 1, no = p->noutputs > 0 ? p->noutputs : 1;
    fputs("#include <math.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n\n"
          "#include \"runtime/cuda/rt_cuda.h\"\n#include \"support/philox.h\"\n\n", out);
    fprintf(out, "/* what every kernel gets, by value: RtExec's pointers (GPU memory) and scalars */\n"
                 "typedef struct Args {\n"
                 "    int64_t N;\n"
                 "    const float *params;\n"
                 "    float *state, *prep, *arena, *grads, *dense;\n"
                 "    const float *in[%d];\n"
                 "    float *out[%d];\n"
                 "    const float *tgt[%d];\n"
                 "    float *dout[%d];\n"
                 "    bool dropout;\n"
                 "    uint64_t seed, step;\n"
                 "    double momentum;\n"
                 "} Args;\n\n",
            ni, no, no, no);
    fprintf(out, "static Args args_of(const RtExec *e) {\n"
                 "    Args x;\n"
                 "    memset(&x, 0, sizeof x);\n"
                 "    x.N = e->batch;\n"
                 "    x.params = e->params, x.state = e->state, x.prep = e->prep, x.arena = e->arena, x.grads = e->grads;\n"
                 "    for (int i = 0; i < %d && e->inputs; i++) x.in[i] = e->inputs[i];\n"
                 "    for (int i = 0; i < %d; i++) {\n"
                 "        x.out[i] = e->outputs ? e->outputs[i] : NULL;\n"
                 "        x.tgt[i] = e->targets ? (const float *)e->targets[i] : NULL;\n"
                 "        x.dout[i] = e->doutputs ? e->doutputs[i] : NULL;\n"
                 "    }\n"
                 "    x.dropout = e->dropout, x.seed = e->dropout_seed, x.step = e->step, x.momentum = e->bn_momentum;\n"
                 "    return x;\n}\n\n",
            p->ninputs, p->noutputs);
    fputs("/* cuBLAS takes alpha and beta by address (host pointer mode: read before it returns) */\n"
          "struct flt {\n    float v;\n    explicit flt(float x) : v(x) {}\n    operator const float *() const { return &v; }\n};\n\n",
          out);
    if (kir_program_has(e->k, KIR_E_SIGMOID))
        fputs("static __device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }\n\n", out);
    if (kir_program_has(e->k, KIR_E_DROPMASK))
        fputs("/* inverted dropout: element k of draw `stream`, the CPU's mask (support/philox.h) */\n"
              "static __device__ __forceinline__ float dropmask(const Args &x, uint64_t stream, int64_t k, uint32_t threshold,\n"
              "                                                 float scale) {\n"
              "    if (!x.dropout) return 1.0f;\n"
              "    return sup_dropout_keep(x.seed, (x.step << 32) | stream, (uint64_t)k, threshold) ? scale : 0.0f;\n"
              "}\n\n", out);
    if (!kir_program_has(e->k, KIR_E_SUM) && !kir_program_has(e->k, KIR_E_RMAX)) return;
    fprintf(out, "/* the reductions of a block (%d threads): every thread gets the total, summed in a fixed order */\n"
                 "static __device__ __forceinline__ __attribute__((unused)) double block_sum(double v, double *sh) {\n"
                 "    sh[threadIdx.x] = v;\n    __syncthreads();\n"
                 "    for (int w = %d; w > 0; w >>= 1) {\n"
                 "        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];\n        __syncthreads();\n    }\n"
                 "    double t = sh[0];\n    __syncthreads();\n    return t;\n}\n"
                 "static __device__ __forceinline__ __attribute__((unused)) double block_max(double v, double *sh) {\n"
                 "    sh[threadIdx.x] = v;\n    __syncthreads();\n"
                 "    for (int w = %d; w > 0; w >>= 1) {\n"
                 "        if ((int)threadIdx.x < w) sh[threadIdx.x] = fmax(sh[threadIdx.x], sh[threadIdx.x + w]);\n"
                 "        __syncthreads();\n    }\n"
                 "    double t = sh[0];\n    __syncthreads();\n    return t;\n}\n",
            THREADS, THREADS / 2, THREADS / 2);
}

static void mark_tabs_ix(bool *used, const KirIndex *x) {
    for (int t = 0; t < x->ntab; t++) used[x->tab[t].tab] = true;
}
static void mark_tabs(bool *used, const KirExpr *x) {
    if (x->op == KIR_E_LOAD || x->op == KIR_E_DROPMASK) mark_tabs_ix(used, &x->idx);
    if (x->op == KIR_E_TAB) used[x->tab] = true;
    for (int i = 0; i < kir_eop_arity[x->op]; i++) mark_tabs(used, x->a[i]);
}

/* The constant tables some step reads, in device memory (gathered per thread: global
 * memory through the cache, not __constant__, which serialises divergent reads). */
static void tables_cu(E *e) {
    const KirProgram *k = e->k;
    FILE *out = e->out;
    fputs("\n/* constant tables: gathers of the even/odd bases, orbits, coefficients */\n", out);
    bool *tused = sup_malloc(sizeof(bool) * (size_t)(k->ntabs + 1));
    memset(tused, 0, sizeof(bool) * (size_t)(k->ntabs + 1));
    for (int f = 0; f < KIR_NUM_FNS; f++)
        for (int i = 0; i < k->fn[f].nsteps; i++) {
            const KirStep *s = &k->fn[f].steps[i];
            if (s->kind != KIR_STEP_LOOP) continue;
            for (int j = 0; j < s->l.nst; j++) {
                mark_tabs_ix(tused, &s->l.st[j].idx);
                mark_tabs(tused, s->l.st[j].e);
            }
        }
    for (int t = 0; t < k->ntabs; t++) {
        const KirTab *x = &k->tabs[t];
        if (!tused[t]) continue;
        fprintf(out, "static __device__ const %s t%d[%d] = {", x->is_float ? "float" : "int32_t", t, x->n > 0 ? x->n : 1);
        for (int i = 0; i < x->n; i++) {
            if (i) fputs(", ", out);
            if (i % 16 == 0 && x->n > 16) fputs("\n    ", out);
            if (x->is_float) cg_c_float(out, x->f[i]);
            else fprintf(out, "%d", x->i[i]);
        }
        if (x->n == 0) fputc('0', out);
        fputs("};\n", out);
    }
    sup_free(tused);
    fputs("\n/* the memory plan: every temporary's place in the arena (per sample, or fixed)\n", out);
    for (int b = 0; b < k->nbufs; b++) {
        const KirBuf *x = &k->bufs[b];
        if (x->kind != KIR_BUF_TEMP || x->func < 0) continue;
        fprintf(out, " *   b%-4d %-36s %s %ld + %ld  live %s s%d..s%d\n", b, x->name, x->per_sample ? "N*" : "fixed",
                x->offset, x->per_sample ? x->per_sample : x->fixed, kir_fn_name[x->func], x->first, x->last);
    }
    fputs(" */\n", out);
}

/* The RtModel functions: RtExec (GPU pointers) -> Args; densify takes host pointers (the
 * runtime's export) and copies through the GPU. */
static void entry_points_cu(E *e) {
    FILE *out = e->out;
    const CgModel *m = e->m;
    const CgExport *x = m->dense;
    fputs("\nstatic void prepare_fn(const RtModel *m, RtExec *e) {\n    (void)m;\n    prepare(args_of(e));\n}\n"
          "static void forward_fn(const RtModel *m, RtExec *e) {\n    (void)m;\n"
          "    if (e->mode == RT_MODE_TRAINING) forward_train(args_of(e));\n    else forward_infer(args_of(e));\n}\n",
          out);
    if (has_backward(e->k))
        fputs("static void backward_fn(const RtModel *m, RtExec *e) {\n    (void)m;\n"
              "    if (e->mode == RT_MODE_TRAINING) backward_train(args_of(e));\n    else backward_infer(args_of(e));\n}\n",
              out);
    fprintf(out, "\n/* the dense export on the GPU: the host's weights in, the dense tensors out */\n"
                 "static void densify_fn(const RtModel *m, const float *params, const float *state, float *dense) {\n"
                 "    (void)m;\n"
                 "    const size_t pb = %ldUL * sizeof(float), sb = %ldUL * sizeof(float), db = %ldUL * sizeof(float);\n"
                 "    cudaStream_t st = rt_cuda_stream();\n"
                 "    Args x;\n"
                 "    memset(&x, 0, sizeof x);\n"
                 "    x.N = 1;\n"
                 "    float *p = NULL, *s = NULL;\n"
                 "    RT_CUDA_CHECK(cudaMalloc((void **)&p, pb + 4));\n"
                 "    RT_CUDA_CHECK(cudaMalloc((void **)&s, sb + 4));\n"
                 "    RT_CUDA_CHECK(cudaMalloc((void **)&x.dense, db + 4));\n"
                 "    RT_CUDA_CHECK(cudaMemcpyAsync(p, params, pb, cudaMemcpyHostToDevice, st));\n"
                 "    RT_CUDA_CHECK(cudaMemcpyAsync(s, state, sb, cudaMemcpyHostToDevice, st));\n"
                 "    x.params = p, x.state = s;\n"
                 "    densify(x);\n"
                 "    RT_CUDA_CHECK(cudaMemcpyAsync(dense, x.dense, db, cudaMemcpyDeviceToHost, st));\n"
                 "    RT_CUDA_CHECK(cudaStreamSynchronize(st));\n"
                 "    RT_CUDA_CHECK(cudaFree(p));\n    RT_CUDA_CHECK(cudaFree(s));\n    RT_CUDA_CHECK(cudaFree(x.dense));\n}\n",
            m->params_size, m->state_size, x ? x->size : 0L);
}

/* The descriptor, filled field by field (C++ has no designated initialisers before C++20). */
static void descriptor_cu(E *e) {
    FILE *out = e->out;
    const CgModel *m = e->m;
    const KirProgram *k = e->k;
    const IrProgram *p = m->prog;
    const IrChirality *c = &p->cfg;
    const CgExport *x = m->dense;
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
    int np = 0, ns = 0;
    for (int i = 0; i < m->layout->nentries; i++) m->entry_state[i] ? ns++ : np++;
    fputs("\nstatic RtModel describe(void) {\n    RtModel d;\n    memset(&d, 0, sizeof d);\n"
          "    d.abi = RT_MODEL_ABI;\n    d.name = ", out);
    str_cu(out, p->model);
    fputs(";\n    d.fingerprint = ", out);
    str_cu(out, m->fingerprint);
    fputs(";\n    d.options = ", out);
    str_cu(out, options);
    fprintf(out, ";\n    d.ninputs = %d, d.noutputs = %d, d.inputs = inputs, d.outputs = outputs;\n"
                 "    d.nparams = %d, d.params = params_table, d.params_size = %ld;\n"
                 "    d.nstate = %d, d.state = state_table, d.state_size = %ld, d.prep_size = %ld;\n"
                 "    d.arena_per_sample = %ld, d.arena_fixed = %ld;\n",
            p->ninputs, p->noutputs, np, m->params_size, ns, m->state_size, m->prep_size, k->arena_per_sample,
            k->arena_fixed);
    fprintf(out, "    d.train.loss = \"%s\", d.train.loss_output = %d, d.train.optimizer = \"%s\", d.train.lr = %.17g;\n"
                 "    d.train.beta1 = %.17g, d.train.beta2 = %.17g, d.train.momentum = %.17g, d.train.decay = %.17g;\n"
                 "    d.train.weight_decay = %.17g, d.train.clip = %.17g, d.train.batch = %d, d.train.epochs = %d;\n"
                 "    d.train.mirror = %.17g;\n",
            losses[t->loss], lo, t->optimizer == IR_OPTIM_ADAM ? "adam" : "sgd", t->lr, t->beta1, t->beta2,
            t->momentum, t->decay, t->weight_decay, t->clip, t->batch, t->epochs, t->mirror);
    fprintf(out, "    d.init = init, d.prepare = prepare_fn, d.forward = forward_fn, d.backward = %s;\n",
            has_backward(k) ? "backward_fn" : "NULL");
    fprintf(out, "    d.ndense = %d, d.dense = dense_table, d.dense_size = %ld, d.densify = densify_fn;\n"
                 "    d.graph_json = graph_json;\n    return d;\n}\n\n"
                 "static const RtModel model = describe();\n\n"
                 "const RtModel *rt_model_get(void) { return &model; }\n",
            x ? x->n : 0, x ? x->size : 0L);
}

void cg_emit_cuda(FILE *out, const CgModel *m) {
    const KirProgram *k = m->k;
    const IrProgram *p = m->prog;
    E e = {.out = out, .m = m, .k = k};
    const char *src = p->file ? p->file->name : p->model;
    fprintf(out, "/* %s.cu: model %s for NVIDIA GPUs, generated by chiralc from %s.\n"
                 " * Do not edit: regenerate with `chiralc emit cuda`. The kernel IR it prints is in\n"
                 " * docs/kernel-ir.md (\"CUDA backend\"); `chiralc emit kir` shows it as text.\n"
                 " * Every RtExec pointer is GPU memory; the runtime's CUDA side is runtime/cuda/.\n"
                 " * params %ld floats, state %ld, prep %ld, arena %ld per sample + %ld. */\n",
            p->model, p->model, src, m->params_size, m->state_size, m->prep_size, k->arena_per_sample,
            k->arena_fixed);
    prelude_cu(&e);
    tables_cu(&e);
    for (int f = 0; f < KIR_NUM_FNS; f++)
        if (kir_fn_forward_of((KirFn)f) == (KirFn)f || has_backward(k)) function_cu(&e, (KirFn)f);
    fputs("\n/* ---- the descriptor's tables (shared with the C backend) ---- */\n", out);
    cg_emit_c_host_tables(out, m);
    entry_points_cu(&e);
    descriptor_cu(&e);
}

bool cg_write_cuda(const CgModel *m, const char *dir, const char **path_out) {
    const IrProgram *p = m->prog;
    Arena *a = p->arena;
    const char *path = arena_printf(a, "%s/%s.cu", dir, p->model);
    SupAtomic w;
    if (!sup_atomic_open(&w, a, path)) {
        diag_file_error(p->diag, path, "cannot write: %s", strerror(errno));
        return false;
    }
    cg_emit_cuda(w.f, m);
    if (!sup_atomic_commit(&w)) {
        diag_file_error(p->diag, path, "cannot write: %s", strerror(errno));
        return false;
    }
    if (path_out) *path_out = path;
    return true;
}
