/* codegen/emit_c.c: the C backend: the kernel IR printed as one readable C11
 * file that defines the model descriptor of runtime/rt.h (model.h section).
 *
 * One C function per kernel IR function; every step is a commented block: a
 * GEMM is an rt_sgemm call (OpenBLAS on the runtime's threads), a loop kernel
 * nested for loops with its reductions as inner loops (accumulated in double; in
 * 8 blocks of rows where kir_loop_row_blocks says, as the LLVM backend sums them);
 * tanh and the dropout mask are inline functions (codegen/fastmath.c,
 * support/philox.h) that gcc can vectorise. Buffers are pointers
 * into the caller's params / state / prep / inputs / outputs / arena, at the
 * offsets of the memory plan. Expressions, indices and literals are printed by
 * codegen/c_syntax.c, which the CUDA printer shares. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/codegen.h"

typedef struct E {
    FILE *out;
    const CgModel *m;
    const KirProgram *k;
    const KirExpr *red[16]; /* the reductions of the store being printed */
    int nred;
    int redbase;            /* named red<redbase + i>: the kernel's earlier stores' come first */
    bool f64;               /* CgEmitOptions.f64: double scalars (tests) */
} E;

/* A constant in the scalar type of the file. */
static void num_c(const E *e, double v) { cg_c_num(e->out, e->f64, v); }
static const char *ty_c(const E *e) { return e->f64 ? "double" : "float"; }

/* The C file's dropout mask: the runtime's inline function, its threshold and scale from
 * p here rather than per element. */
static void dropmask_c(const CgCExpr *p, const KirExpr *x) {
    fprintf(p->out, "dropmask(x, %lluu, ", (unsigned long long)x->stream);
    cg_c_index(p->out, &x->idx);
    if (p->f64) {
        fprintf(p->out, ", %.17g)", x->value);
        return;
    }
    CgDropout d = cg_dropout_of(x->value);
    fprintf(p->out, ", %luu, ", (unsigned long)d.threshold);
    cg_c_float(p->out, d.scale);
    fputc(')', p->out);
}

static void expr_c(E *e, const KirExpr *x) {
    CgCExpr p = {.out = e->out, .f64 = e->f64, .backend = "C", .tanh = "tanh_r", .momentum = "x->bn_momentum",
                 .red = e->red, .nred = e->nred, .redbase = e->redbase, .dropmask = dropmask_c};
    cg_c_expr(&p, x);
}

static void find_reds(E *e, const KirExpr *x) {
    e->nred = kir_collect_reductions(x, e->red, e->nred, (int)(sizeof e->red / sizeof e->red[0]));
}

static void indent(FILE *out, int n) {
    for (int i = 0; i < n; i++) fputs("    ", out);
}

static void mat_c(E *e, const KirMat *m, bool batched) {
    fprintf(e->out, "b%d + %ld", m->buf, m->off);
    if (batched && m->stride) fprintf(e->out, " + q * %ldL", m->stride);
    fprintf(e->out, ", %ld", m->ld);
}

static bool uses_val(const KirExpr *x, int slot) {
    if (x->op == KIR_E_VAL) return x->slot == slot;
    for (int i = 0; i < kir_eop_arity[x->op]; i++)
        if (uses_val(x->a[i], slot)) return true;
    return false;
}

/* The name of the outlined body of a parallel loop kernel (see function_c). */
static const char *outlined_name(KirFn f, int i) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%s_s%d", kir_fn_name[f], i);
    return buf;
}
/* Whether step i of f runs through rt_parallel_for: the functions of a batch only
 * (prepare and densify run once). */
static bool outlined(const KirProgram *k, KirFn f, const KirStep *s) {
    return s->kind == KIR_STEP_LOOP && f != KIR_FN_PREPARE && f != KIR_FN_DENSIFY && kir_loop_parallel(k, &s->l);
}

/* A step; body: the loop kernel's nest for i0 in [lo, hi) (an outlined body), at one
 * indentation level. */
static void step_c_at(E *e, int i, const KirStep *s, bool body);
static void step_c(E *e, int i, const KirStep *s) { step_c_at(e, i, s, false); }

static void step_c_at(E *e, int i, const KirStep *s, bool body) {
    FILE *out = e->out;
    fprintf(out, "    /* s%d: %s */\n", i, s->label);
    if (s->kind == KIR_STEP_GEMM) {
        const KirGemm *g = &s->g;
        bool batched = g->count.n > 0;
        int ind = 1;
        if (batched) {
            fputs("    for (int64_t q = 0; q < ", out);
            cg_c_dim(out, g->count);
            fputs("; q++)\n", out);
            ind = 2;
        }
        indent(out, ind);
        if (e->f64) /* the tests' float64 mode: OpenBLAS as it is */
            fprintf(out, "cblas_dgemm(CblasRowMajor, %s, %s, ", g->ta ? "CblasTrans" : "CblasNoTrans",
                    g->tb ? "CblasTrans" : "CblasNoTrans");
        else fprintf(out, "rt_sgemm(%d, %d, ", g->ta, g->tb); /* OpenBLAS on the runtime's threads */
        cg_c_dim(out, g->m), fputs(", ", out), cg_c_dim(out, g->n), fputs(", ", out), cg_c_dim(out, g->k);
        fputs(", ", out), num_c(e, g->alpha), fputs(",\n", out);
        indent(out, ind + 2), mat_c(e, &g->a, batched), fputs(", ", out), mat_c(e, &g->b, batched);
        fputs(", ", out), num_c(e, g->beta), fputs(", ", out), mat_c(e, &g->c, batched), fputs(");\n", out);
        return;
    }
    const KirLoop *l = &s->l;
    for (int d = 0; d < l->ndims; d++) {
        indent(out, d + 1);
        if (d == 0 && body) {
            fprintf(out, "for (int64_t i0 = lo; i0 < hi; i0++)%s\n", l->ndims == 1 ? " {" : "");
            continue;
        }
        fprintf(out, "for (int64_t %s = 0; %s < ", cg_c_var[d], cg_c_var[d]);
        cg_c_dim(out, l->ext[d]);
        fprintf(out, "; %s++)%s\n", cg_c_var[d], d + 1 == l->ndims ? " {" : "");
    }
    int ind = l->ndims + 1;
    bool blocks = kir_loop_row_blocks(l);
    e->redbase = e->nred = 0;
    for (int j = 0; j < l->nst; j++) {
        const KirStore *st = &l->st[j];
        e->redbase += e->nred;
        e->nred = 0;
        find_reds(e, st->e);
        for (int r = 0; r < e->nred; r++) {
            const KirExpr *x = e->red[r];
            bool sum = x->op == KIR_E_SUM;
            int n = e->redbase + r, saved = e->nred;
            indent(out, ind);
            if (blocks) { /* kir_loop_row_blocks: each block from its first row, then the blocks */
                fprintf(out, "double red%d = 0.0;\n", n);
                indent(out, ind);
                fprintf(out, "for (int64_t q = 0; q < %d; q++) {\n", KIR_ROW_BLOCKS);
                indent(out, ind + 1);
                fprintf(out, "double part = %s;\n", sum ? "0.0" : "-INFINITY");
                indent(out, ind + 1);
                fputs("for (int64_t r = ", out);
                cg_c_dim(out, l->red);
                fprintf(out, " * q / %d; r < ", KIR_ROW_BLOCKS);
                cg_c_dim(out, l->red);
                fprintf(out, " * (q + 1) / %d; r++) ", KIR_ROW_BLOCKS);
            } else {
                fprintf(out, "double red%d = %s;\n", n, sum ? "0.0" : "-INFINITY");
                indent(out, ind);
                fputs("for (int64_t r = 0; r < ", out);
                cg_c_dim(out, l->red);
                fputs("; r++) ", out);
            }
            const char *acc = blocks ? "part" : arena_printf(e->k->arena, "red%d", n);
            e->nred = 0; /* the body holds no reductions */
            if (sum) {
                fprintf(out, "%s += ", acc);
                expr_c(e, x->a[0]);
            } else {
                fprintf(out, "%s = fmax(%s, ", acc, acc);
                expr_c(e, x->a[0]);
                fputc(')', out);
            }
            e->nred = saved;
            fputs(";\n", out);
            if (blocks) {
                indent(out, ind + 1);
                if (sum) fprintf(out, "red%d = q ? red%d + part : part;\n", n, n);
                else fprintf(out, "red%d = q ? fmax(red%d, part) : part;\n", n, n);
                indent(out, ind);
                fputs("}\n", out);
            }
        }
        /* a let, or a store whose value a later store takes (fusion): a local first */
        bool named = st->idx.buf < 0;
        for (int q = j + 1; q < l->nst && !named; q++) named = uses_val(l->st[q].e, j);
        indent(out, ind);
        if (named) {
            fprintf(out, "const %s v%d = ", ty_c(e), j);
            expr_c(e, st->e);
            fputs(";\n", out);
            if (st->idx.buf < 0) continue;
            indent(out, ind);
        }
        fprintf(out, "b%d[", st->idx.buf);
        cg_c_index(e->out, &st->idx);
        fputs("] = ", out);
        if (named) fprintf(out, "v%d", j);
        else expr_c(e, st->e);
        fputs(";\n", out);
    }
    indent(out, l->ndims);
    fputs("}\n", out);
}

/* ---- buffers of a function ---------------------------------------------------------------- */

static void mark_tabs_ix(bool *used, const KirIndex *x) {
    for (int t = 0; t < x->ntab; t++) used[x->tab[t].tab] = true;
}
static void mark_tabs(bool *used, const KirExpr *x) {
    if (x->op == KIR_E_LOAD || x->op == KIR_E_DROPMASK) mark_tabs_ix(used, &x->idx);
    if (x->op == KIR_E_TAB) used[x->tab] = true;
    for (int i = 0; i < kir_eop_arity[x->op]; i++) mark_tabs(used, x->a[i]);
}

static void densify_c(E *e);
static void decl_bufs(E *e, const bool *used, const bool *written);

static void function_c(E *e, KirFn f) {
    if (f == KIR_FN_DENSIFY) { /* its own signature: not a forward pass */
        bool f64 = e->f64;
        e->f64 = false; /* float32 always: its buffers are the caller's floats */
        densify_c(e);
        e->f64 = f64;
        return;
    }
    const KirProgram *k = e->k;
    const KirFunc *fn = &k->fn[f];
    FILE *out = e->out;
    bool *used = sup_malloc(sizeof(bool) * (size_t)(k->nbufs + 1));
    bool *written = sup_malloc(sizeof(bool) * (size_t)(k->nbufs + 1));
    /* the parallel loop kernels' bodies first: fn(ctx = x, lo, hi) for rt_parallel_for */
    for (int i = 0; i < fn->nsteps; i++) {
        const KirStep *s = &fn->steps[i];
        if (!outlined(k, f, s)) continue;
        memset(used, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
        memset(written, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
        kir_step_bufs(s, used, written);
        fprintf(out, "\nstatic void %s(void *ctx, int64_t lo, int64_t hi) {\n    RtExec *x = ctx;\n", outlined_name(f, i));
        decl_bufs(e, used, written);
        step_c_at(e, i, s, true);
        fputs("}\n", out);
    }
    memset(used, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
    memset(written, 0, sizeof(bool) * (size_t)(k->nbufs + 1));
    for (int i = 0; i < fn->nsteps; i++)
        if (!outlined(k, f, &fn->steps[i])) kir_step_bufs(&fn->steps[i], used, written);
    fprintf(out, "\nstatic void %s(RtExec *x) {\n", kir_fn_name[f]);
    decl_bufs(e, used, written);
    for (int i = 0; i < fn->nsteps; i++) {
        const KirStep *s = &fn->steps[i];
        if (!outlined(k, f, s)) {
            step_c(e, i, s);
            continue;
        }
        KirDim w = kir_loop_work(&s->l);
        fprintf(out, "    /* s%d: %s */\n    rt_parallel_for(%s, x, ", i, s->label, outlined_name(f, i));
        cg_c_dim(out, s->l.ext[0]);
        fputs(", ", out);
        cg_c_dim(out, w);
        fputs(");\n", out);
    }
    fputs("}\n", out);
    sup_free(used);
    sup_free(written);
}


/* N and a pointer per buffer in used (const unless written), from x. */
static void decl_bufs(E *e, const bool *used, const bool *written) {
    const KirProgram *k = e->k;
    FILE *out = e->out;
    fputs("    const int64_t N = x->batch;\n    (void)N;\n", out);
    for (int b = 0; b < k->nbufs; b++) {
        if (!used[b]) continue;
        const KirBuf *x = &k->bufs[b];
        const char *cq = written[b] ? "" : "const ";
        fprintf(out, "    %s%s *b%d = ", cq, ty_c(e), b);
        if (e->f64) fprintf(out, "(%s%s *)", cq, ty_c(e)); /* the caller's doubles (CgEmitOptions) */
        switch (x->kind) {
        case KIR_BUF_PARAM: fputs("x->params", out); break;
        case KIR_BUF_STATE: fputs("x->state", out); break;
        case KIR_BUF_PREP: fputs("x->prep", out); break;
        case KIR_BUF_INPUT: fprintf(out, "x->inputs[%d]", x->io); break;
        case KIR_BUF_OUTPUT: fprintf(out, "x->outputs[%d]", x->io); break;
        case KIR_BUF_GRAD: fputs("x->grads", out); break;
        case KIR_BUF_TARGET: fprintf(out, "(const float *)x->targets[%d]", x->io); break;
        case KIR_BUF_DOUTPUT: fprintf(out, "x->doutputs[%d]", x->io); break;
        case KIR_BUF_TEMP:
            if (x->per_sample) fprintf(out, "x->arena + %ldL * N", x->offset);
            else fprintf(out, "x->arena + %ldL * N + %ldL", k->arena_per_sample, x->offset);
            break;
        default: sup_bug("C backend: buffer kind %d", (int)x->kind);
        }
        fprintf(out, "; /* %s */\n", x->name);
    }
}

/* ---- the dense export (codegen/export.c) -------------------------------------------------- */

/* densify_fn(m, params, state, dense): the steps of KIR_FN_DENSIFY, which read only
 * params and state and write only the dense buffer; then the dense table and the
 * graph's JSON, as string pieces one line each (readable in the file). */
static void str_c(FILE *out, const char *s);
static void str_c_n(FILE *out, const char *s, size_t n);
static void dense_tables_c(E *e);

static void densify_c(E *e) {
    const KirProgram *k = e->k;
    FILE *out = e->out;
    fputs("\n/* the dense export: every layer's weights in PyTorch's layout (RtModel.densify) */\n"
          "static void densify_fn(const RtModel *m, const float *params, const float *state, float *dense) {\n"
          "    (void)m, (void)params, (void)state, (void)dense;\n",
          out);
    for (int b = 0; b < k->nbufs; b++) {
        const KirBuf *bf = &k->bufs[b];
        if (bf->kind == KIR_BUF_PARAM) fprintf(out, "    const float *b%d = params;\n", b);
        else if (bf->kind == KIR_BUF_STATE) fprintf(out, "    const float *b%d = state;\n", b);
        else if (bf->kind == KIR_BUF_DENSE) fprintf(out, "    float *b%d = dense;\n", b);
        else continue;
        fprintf(out, "    (void)b%d;\n", b);
    }
    const KirFunc *fn = &k->fn[KIR_FN_DENSIFY];
    for (int i = 0; i < fn->nsteps; i++) step_c(e, i, &fn->steps[i]);
    fputs("}\n\n", out);
    dense_tables_c(e);
}

/* The dense table and the graph's JSON (also the CUDA backend's: cg_emit_c_host_tables). */
static void dense_tables_c(E *e) {
    const CgExport *x = e->m->dense;
    FILE *out = e->out;
    fprintf(out, "static const RtModelDense dense_table[%d] = {\n", x && x->n > 0 ? x->n : 1);
    for (int i = 0; x && i < x->n; i++) {
        const CgDense *d = &x->t[i];
        fputs("    {", out);
        str_c(out, d->name);
        fprintf(out, ", %d, {%ld, %ld, %ld}, %ld, %ld},\n", d->ndim, d->shape[0], d->shape[1], d->shape[2], d->offset,
                d->count);
    }
    if (!x || x->n == 0) fputs("    {NULL, 0, {0, 0, 0}, 0, 0}, /* none: the table is never read */\n", out);
    /* one string, longer than the 4095 characters ISO C promises; gcc and clang take it */
    fputs("};\n\n#pragma GCC diagnostic push\n#pragma GCC diagnostic ignored \"-Woverlength-strings\"\n"
          "static const char graph_json[] =\n", out);
    const char *s = x ? x->graph_json : "{}";
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s + 1) : strlen(s);
        fputs("    ", out);
        str_c_n(out, s, n);
        fputc('\n', out);
        s += n;
    }
    fputs("    \"\";\n#pragma GCC diagnostic pop\n", out);
}

/* The descriptor's fields of the dense export. */
static void export_fields_c(E *e) {
    const CgExport *x = e->m->dense;
    fprintf(e->out, "    .ndense = %d, .dense = dense_table, .dense_size = %ld, .densify = densify_fn,\n"
                    "    .graph_json = graph_json,\n",
            x ? x->n : 0, x ? x->size : 0L);
}

/* ---- the descriptor ----------------------------------------------------------------------- */

static void str_c(FILE *out, const char *s) {
    fputc('"', out);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        if ((unsigned char)*s < 32) fprintf(out, "\\%03o", (unsigned char)*s);
        else fputc(*s, out);
    }
    fputc('"', out);
}
/* The first n characters of s as a C string literal (export). */
static void str_c_n(FILE *out, const char *s, size_t n) {
    fputc('"', out);
    for (size_t i = 0; i < n && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fputc('\\', out);
        if (c == '\n') fputs("\\n", out);
        else if (c < 32) fprintf(out, "\\%03o", c);
        else fputc(c, out);
    }
    fputc('"', out);
}

static const char *param_name(Arena *a, const IrParamEntry *e) {
    const IrNode *n = e->node;
    const char *s = arena_printf(a, "%%%d %s%s%s.%s", n->id, ir_op_info[n->op].name, n->name ? " " : "",
                                 n->name ? n->name : "", e->name);
    if (n->op == IR_LSTM || n->op == IR_GRU) s = arena_printf(a, "%s.l%d.g%d", s, e->layer, e->gate);
    if (n->op == IR_CONV1D && (e->name[0] == 'A' || e->name[0] == 'B')) s = arena_printf(a, "%s.tap%d", s, e->tap);
    return s;
}

static void io_c(E *e, const char *kind, IrDecl *const *decls, const int *frames, int n) {
    FILE *out = e->out;
    for (int i = 0; i < n; i++) {
        const IrDecl *d = decls[i];
        if (d->invariant || !d->chi.partner) continue;
        fprintf(out, "static const int32_t %s%d_partner[%d] = {", kind, i, d->feat);
        for (int f = 0; f < d->feat; f++) fprintf(out, "%s%d", f ? ", " : "", d->chi.partner[f]);
        fprintf(out, "};\nstatic const float %s%d_sign[%d] = {", kind, i, d->feat);
        for (int f = 0; f < d->feat; f++) fprintf(out, "%s%d", f ? ", " : "", d->chi.sign[f]);
        fputs("};\n", out);
    }
    fprintf(out, "static const RtModelIo %ss[%d] = {\n", kind, n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        const IrDecl *d = decls[i];
        bool triv = d->invariant || !d->chi.partner;
        fputs("    {", out);
        str_c(out, d->name);
        fprintf(out, ", %d, %d, ", frames[i], d->feat);
        if (triv) fputs("NULL, NULL", out);
        else fprintf(out, "%s%d_partner, %s%d_sign", kind, i, kind, i);
        fprintf(out, ", %s, %s, %d, %d},\n", d->is_class ? "true" : "false", d->invariant ? "true" : "false",
                d->skeleton ? d->skeleton->njoints : 0, d->skeleton ? d->ncoords : 0);
    }
    fputs("};\n", out);
}

static void init_c(E *e) {
    FILE *out = e->out;
    const CgModel *m = e->m;
    const IrParams *w = m->layout;
    int ne = w->nentries;
    /* per entry: normal with sd (> 0) or the constant */
    fprintf(out, "\n/* initial values per entry: N(0, sd^2) where sd > 0, else the constant */\n");
    fprintf(out, "static const float init_sd[%d] = {", ne > 0 ? ne : 1);
    for (int i = 0; i < ne; i++) {
        const IrParamEntry *x = &w->entries[i];
        const IrNode *n = x->node;
        const char *nm = x->name;
        double sd = 0;
        if (x->cols > 1 || nm[0] == 'A' || nm[0] == 'B' || nm[0] == 'W') {
            double fan_in = n->op == IR_LSTM || n->op == IR_GRU
                                ? (nm[1] == 'x' ? n->in[0]->shape.feat : n->shape.feat)
                                : (double)(n->op == IR_CONV1D ? n->a.kernel : 1) * n->in[0]->shape.feat;
            sd = 1.0 / sqrt(fan_in > 0 ? fan_in : 1.0);
        } else if (strncmp(nm, "bias", 4) == 0) {
            sd = 0.1;
        }
        fputs(i ? ", " : "", out);
        cg_c_float(out, sd);
    }
    fprintf(out, "};\nstatic const float init_const[%d] = {", ne > 0 ? ne : 1);
    for (int i = 0; i < ne; i++) {
        const char *nm = w->entries[i].name;
        fprintf(out, "%s%s", i ? ", " : "", strcmp(nm, "gamma") == 0 || strcmp(nm, "var") == 0 ? "1.0f" : "0.0f");
    }
    fprintf(out, "};\nstatic const unsigned char init_in_state[%d] = {", ne > 0 ? ne : 1);
    for (int i = 0; i < ne; i++) fprintf(out, "%s%d", i ? ", " : "", m->entry_state[i] ? 1 : 0);
    fprintf(out, "};\nstatic const int64_t init_offset[%d] = {", ne > 0 ? ne : 1);
    for (int i = 0; i < ne; i++) fprintf(out, "%s%ld", i ? ", " : "", m->entry_offset[i]);
    fprintf(out, "};\nstatic const int64_t init_count[%d] = {", ne > 0 ? ne : 1);
    for (int i = 0; i < ne; i++) fprintf(out, "%s%ld", i ? ", " : "", (long)w->entries[i].rows * w->entries[i].cols);
    fputs("};\n", out);
    /* sharing = paper: weights held at zero, as (rows x cols) sets per entry */
    int nz = 0;
    for (int i = 0; i < ne; i++) {
        const IrParamEntry *x = &w->entries[i];
        int *rows, *cols, nr, nc;
        if (cg_fixed_zero_sets(w, x, &rows, &nr, &cols, &nc)) {
            fprintf(out, "static const int32_t zero%d_rows[%d] = {", nz, nr);
            for (int j = 0; j < nr; j++) fprintf(out, "%s%d", j ? ", " : "", rows[j]);
            fprintf(out, "}, zero%d_cols[%d] = {", nz, nc);
            for (int j = 0; j < nc; j++) fprintf(out, "%s%d", j ? ", " : "", cols[j]);
            fprintf(out, "}; /* entry %d */\n", i);
            nz++;
            sup_free(rows);
        }
    }
    fputs("\nstatic void init(const RtModel *m, float *params, float *state, uint64_t seed) {\n"
          "    (void)m;\n", out);
    fprintf(out, "    for (int i = 0; i < %d; i++) {\n"
                 "        float *d = (init_in_state[i] ? state : params) + init_offset[i];\n"
                 "        for (int64_t j = 0; j < init_count[i]; j++)\n"
                 "            d[j] = init_sd[i] > 0 ? init_sd[i] * (float)rt_rng_normal(seed, (uint64_t)i, (uint64_t)j)\n"
                 "                                  : init_const[i];\n"
                 "    }\n", ne);
    nz = 0;
    for (int i = 0; i < ne; i++) {
        const IrParamEntry *x = &w->entries[i];
        int *rows, *cols, nr, nc;
        if (!cg_fixed_zero_sets(w, x, &rows, &nr, &cols, &nc)) continue;
        sup_free(rows);
        fprintf(out, "    for (size_t a = 0; a < sizeof zero%d_rows / sizeof *zero%d_rows; a++)\n"
                     "        for (size_t b = 0; b < sizeof zero%d_cols / sizeof *zero%d_cols; b++)\n"
                     "            params[%ldL + zero%d_rows[a] * %dL + zero%d_cols[b]] = 0.0f;\n",
                nz, nz, nz, nz, m->entry_offset[i], nz, x->cols, nz);
        nz++;
    }
    fputs("}\n", out);
}

static void params_c(E *e, bool state) {
    FILE *out = e->out;
    const IrParams *w = e->m->layout;
    Arena *a = e->m->prog->arena;
    int n = 0;
    for (int i = 0; i < w->nentries; i++) n += e->m->entry_state[i] == state;
    fprintf(out, "static const RtModelParam %s_table[%d] = {\n", state ? "state" : "params", n > 0 ? n : 1);
    for (int i = 0; i < w->nentries; i++) {
        if (e->m->entry_state[i] != state) continue;
        const IrParamEntry *x = &w->entries[i];
        fputs("    {", out);
        str_c(out, param_name(a, x));
        fprintf(out, ", %ld, %ld, %d, {%d, %d}},\n", e->m->entry_offset[i], (long)x->rows * x->cols,
                x->cols == 1 ? 1 : 2, x->rows, x->cols == 1 ? 0 : x->cols);
    }
    if (n == 0) fputs("    {NULL, 0, 0, 0, {0, 0}}, /* none: the table is never read */\n", out);
    fputs("};\n", out);
    (void)a;
}

/* ---- the backward (codegen/lower_grad.c) ------------------------------------------------- */

/* Whether the model has a lowered training graph (backward_infer / backward_train). */
static bool has_backward(const E *e) {
    return e->k->fn[KIR_FN_BWD_INFER].nsteps > 0 || e->k->fn[KIR_FN_BWD_TRAIN].nsteps > 0;
}

/* backward_fn(m, x): the backward of x->mode (RtModel.backward). */
static void backward_c(E *e) {
    if (!has_backward(e)) return;
    fputs("static void backward_fn(const RtModel *m, RtExec *x) {\n    (void)m;\n"
          "    if (x->mode == RT_MODE_TRAINING) backward_train(x);\n    else backward_infer(x);\n}\n\n",
          e->out);
}

/* The scalar helpers of the float64 mode (CgEmitOptions.f64). */
static void helpers_f64_c(const E *e) {
    FILE *out = e->out;
    if (kir_program_has(e->k, KIR_E_SIGMOID)) fputs("static inline double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }\n\n", out);
    if (kir_program_has(e->k, KIR_E_DROPMASK))
        fputs("static inline double dropmask(const RtExec *x, uint64_t stream, int64_t k, double p) {\n"
              "    if (!x->dropout) return 1.0;\n"
              "    if (p >= 1) return 0.0;\n"
              "    return rt_rng_keep(x->dropout_seed, (x->step << 32) | stream, (uint64_t)k, p) ? 1.0 / (1.0 - p) : 0.0;\n"
              "}\n\n", out);
}

/* Horner's rule over c[0..n), in u: "((c5 * u + c4) * u + ...) + c0". */
static void horner_c(FILE *out, const double *c, int n) {
    for (int i = 1; i < n; i++) fputc('(', out);
    cg_c_float(out, c[n - 1]);
    for (int i = n - 2; i >= 0; i--) {
        fputs(" * u + ", out);
        cg_c_float(out, c[i]);
        fputc(')', out);
    }
}

/* tanh_r: the float32 tanh of codegen/fastmath.c, which gcc can vectorise. */
static void tanh_c(const E *e) {
    FILE *out = e->out;
    fputs("/* tanh as an exactly odd rational function (chiralc's codegen/fastmath.c): within 7 ulp */\n"
          "static inline float tanh_r(float x) {\n    const float cl = ", out);
    cg_c_float(out, cg_tanh_clamp);
    fputs(";\n    float c = x > cl ? cl : x < -cl ? -cl : x, u = c * c;\n    float p = ", out);
    horner_c(out, cg_tanh_num, CG_TANH_NNUM);
    fputs(";\n    float q = ", out);
    horner_c(out, cg_tanh_den, CG_TANH_NDEN);
    fputs(";\n    float y = c * p / q;\n    return y > 1.0f ? 1.0f : y < -1.0f ? -1.0f : y;\n}\n\n", out);
}

static void tables_c(E *e);

void cg_emit_c(FILE *out, const CgModel *m) { cg_emit_c_opts(out, m, NULL); }

void cg_emit_c_opts(FILE *out, const CgModel *m, const CgEmitOptions *o) {
    const KirProgram *k = m->k;
    const IrProgram *p = m->prog;
    E e = {.out = out, .m = m, .k = k, .f64 = o && o->f64};
    const char *src = p->file ? p->file->name : p->model;
    const IrChirality *c = &p->cfg;
    const char *options = arena_printf(p->arena, "%s%s layout=%s activations=%s sharing=%s",
                                       m->opts.no_fold ? "no-fold" : "fold", c->baseline ? " baseline" : "",
                                       c->layout == IR_LAYOUT_JOINTS ? "joints" : "pairs",
                                       c->activations == IR_ACTS_PAPER ? "paper" : "mixed",
                                       c->sharing == IR_SHARING_FULL ? "full" : "paper");
    fprintf(out, "/* %s.c: model %s, generated by chiralc from %s (%s).\n"
                 " * Do not edit: regenerate with `chiralc emit c`. The kernel IR it prints is in\n"
                 " * docs/kernel-ir.md; `chiralc emit kir` shows it as text.\n"
                 " * params %ld floats, state %ld, prep %ld, arena %ld per sample + %ld. */\n",
            p->model, p->model, src, options, m->params_size, m->state_size, m->prep_size,
            k->arena_per_sample, k->arena_fixed);
    fputs("#include <math.h>\n#include <stddef.h>\n#include <stdint.h>\n\n#include <cblas.h>\n\n"
          "#include \"runtime/rt.h\"\n#include \"support/philox.h\"\n\n", out);
    if (e.f64) helpers_f64_c(&e);
    else if (kir_program_has(k, KIR_E_SIGMOID))
        fputs("static inline float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }\n\n", out);
    if (!e.f64 && kir_program_has(k, KIR_E_TANH)) tanh_c(&e);
    if (!e.f64 && kir_program_has(k, KIR_E_DROPMASK))
        fputs("/* inverted dropout: the mask of element k of draw `stream` (see RtExec and\n"
              " * support/philox.h), inline so that the loops around it vectorise */\n"
              "static inline float dropmask(const RtExec *x, uint64_t stream, int64_t k, uint32_t thr, float scale) {\n"
              "    if (!x->dropout) return 1.0f;\n"
              "    return sup_dropout_keep(x->dropout_seed, (x->step << 32) | stream, (uint64_t)k, thr) ? scale : 0.0f;\n"
              "}\n\n", out);
    fputs("/* constant tables: gathers of the even/odd bases, orbits, coefficients */\n", out);
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
        fprintf(out, "static const %s t%d[%d] = {", x->is_float ? "float" : "int32_t", t, x->n > 0 ? x->n : 1);
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
    for (int f = 0; f < KIR_NUM_FNS; f++)
        if (kir_fn_forward_of((KirFn)f) == (KirFn)f || has_backward(&e)) function_c(&e, (KirFn)f);
    tables_c(&e);
    fputs("\nstatic void prepare_fn(const RtModel *m, RtExec *x) {\n    (void)m;\n    prepare(x);\n}\n"
          "static void forward_fn(const RtModel *m, RtExec *x) {\n    (void)m;\n"
          "    if (x->mode == RT_MODE_TRAINING) forward_train(x);\n    else forward_infer(x);\n}\n\n", out);
    backward_c(&e);
    const IrTrain *t = &p->train;
    static const char *const losses[] = {"", "mse", "l1", "mpjpe", "cross_entropy"};
    int lo = -1;
    for (int i = 0; i < p->noutputs; i++)
        if (t->loss_output == p->outputs[i]) lo = i;
    int np = 0, ns = 0;
    for (int i = 0; i < m->layout->nentries; i++) m->entry_state[i] ? ns++ : np++;
    fputs("static const RtModel model = {\n    .abi = RT_MODEL_ABI,\n    .name = ", out);
    str_c(out, p->model);
    fputs(",\n    .fingerprint = ", out);
    str_c(out, m->fingerprint);
    fputs(",\n    .options = ", out);
    str_c(out, options);
    fprintf(out, ",\n    .ninputs = %d, .noutputs = %d, .inputs = inputs, .outputs = outputs,\n"
                 "    .nparams = %d, .params = params_table, .params_size = %ld,\n"
                 "    .nstate = %d, .state = state_table, .state_size = %ld, .prep_size = %ld,\n"
                 "    .arena_per_sample = %ld, .arena_fixed = %ld,\n",
            p->ninputs, p->noutputs, np, m->params_size, ns, m->state_size, m->prep_size,
            k->arena_per_sample, k->arena_fixed);
    fprintf(out, "    .train = {.loss = \"%s\", .loss_output = %d, .optimizer = \"%s\", .lr = %.17g,\n"
                 "              .beta1 = %.17g, .beta2 = %.17g, .momentum = %.17g, .decay = %.17g,\n"
                 "              .weight_decay = %.17g, .clip = %.17g, .batch = %d, .epochs = %d, .mirror = %.17g},\n",
            losses[t->loss], lo, t->optimizer == IR_OPTIM_ADAM ? "adam" : "sgd", t->lr, t->beta1, t->beta2,
            t->momentum, t->decay, t->weight_decay, t->clip, t->batch, t->epochs, t->mirror);
    export_fields_c(&e);
    fprintf(out, "    .init = init, .prepare = prepare_fn, .forward = forward_fn, .backward = %s,\n",
            has_backward(&e) ? "backward_fn" : "NULL");
    fputs("};\n\n"
          "const RtModel *rt_model_get(void) { return &model; }\n", out);
}

/* init and the parameter, state, input and output tables. */
static void tables_c(E *e) {
    const CgModel *m = e->m;
    const IrProgram *p = m->prog;
    init_c(e);
    fputs("\n", e->out);
    params_c(e, false);
    params_c(e, true);
    io_c(e, "input", p->inputs, m->input_frames, p->ninputs);
    io_c(e, "output", p->outputs, m->output_frames, p->noutputs);
}

/* The host-side tables of the descriptor, shared with the CUDA printer (emit_cuda.c),
 * whose file nvcc compiles as C++: what this file prints is valid in both languages. */
void cg_emit_c_host_tables(FILE *out, const CgModel *m) {
    E e = {.out = out, .m = m, .k = m->k};
    dense_tables_c(&e);
    tables_c(&e);
}

bool cg_write_c(const CgModel *m, const char *dir, const char **path_out) {
    const IrProgram *p = m->prog;
    Arena *a = p->arena;
    const char *path = arena_printf(a, "%s/%s.c", dir, p->model);
    SupAtomic w;
    if (!sup_atomic_open(&w, a, path)) {
        diag_file_error(p->diag, path, "cannot write: %s", strerror(errno));
        return false;
    }
    cg_emit_c(w.f, m);
    if (!sup_atomic_commit(&w)) {
        diag_file_error(p->diag, path, "cannot write: %s", strerror(errno));
        return false;
    }
    if (path_out) *path_out = path;
    return true;
}
