/* codegen/c_syntax.c: the C syntax that the C and CUDA printers share (emit_c.c,
 * emit_cuda.c): loop variables, extents, constants, indices and the kernel IR's
 * expressions. The two files differ only where the languages or the runtimes do (the
 * RtExec field of the batchnorm momentum, tanh's implementation, the dropout call):
 * CgCExpr names those, and the printer's own function prints the dropout mask. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"

const char *const cg_c_var[KIR_NVARS] = {"i0", "i1", "i2", "i3", "r"};

void cg_c_dim(FILE *out, KirDim d) {
    if (d.batch) fprintf(out, d.n == 1 ? "N" : "N * %ld", d.n);
    else fprintf(out, "%ld", d.n);
}

void cg_c_float(FILE *out, double v) {
    if (isinf(v)) {
        fputs(v > 0 ? "INFINITY" : "(-INFINITY)", out);
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", v);
    bool dot = strpbrk(buf, ".e") != NULL;
    fprintf(out, v < 0 ? "(%s%sf)" : "%s%sf", buf, dot ? "" : ".0");
}

void cg_c_num(FILE *out, bool f64, double v) {
    if (!f64 || isinf(v)) {
        cg_c_float(out, v);
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    fprintf(out, v < 0 ? "(%s%s)" : "%s%s", buf, strpbrk(buf, ".e") ? "" : ".0");
}

void cg_c_affine(FILE *out, long off, const long *coef) {
    fprintf(out, "%ld", off);
    for (int v = 0; v < KIR_NVARS; v++) {
        if (!coef[v]) continue;
        if (coef[v] == 1) fprintf(out, " + %s", cg_c_var[v]);
        else if (coef[v] == -1) fprintf(out, " - %s", cg_c_var[v]);
        else fprintf(out, " %c %ld * %s", coef[v] < 0 ? '-' : '+', labs(coef[v]), cg_c_var[v]);
    }
}

void cg_c_index(FILE *out, const KirIndex *x) {
    cg_c_affine(out, x->off, x->coef);
    for (int t = 0; t < x->ntab; t++) {
        if (x->tab[t].coef == 1) fprintf(out, " + t%d[%s]", x->tab[t].tab, cg_c_var[x->tab[t].var]);
        else fprintf(out, " + %ld * t%d[%s]", x->tab[t].coef, x->tab[t].tab, cg_c_var[x->tab[t].var]);
    }
}

/* ---- expressions ------------------------------------------------------------------------ */

static const char *ty(const CgCExpr *p) { return p->f64 ? "double" : "float"; }

/* A math function of the scalar type: expf or exp. */
static const char *fn(const CgCExpr *p, const char *f) {
    static char buf[32];
    snprintf(buf, sizeof buf, "%s%s", f, p->f64 ? "" : "f");
    return buf;
}

static void call1(const CgCExpr *p, const char *f, const KirExpr *a) {
    fprintf(p->out, "%s(", f);
    cg_c_expr(p, a);
    fputc(')', p->out);
}

static void infix(const CgCExpr *p, const char *op, const KirExpr *a, const KirExpr *b) {
    fputc('(', p->out);
    cg_c_expr(p, a);
    fprintf(p->out, " %s ", op);
    cg_c_expr(p, b);
    fputc(')', p->out);
}

static const char *cmp_op(KirEop op) {
    switch (op) {
    case KIR_E_LT: return "<";
    case KIR_E_LE: return "<=";
    case KIR_E_GT: return ">";
    case KIR_E_GE: return ">=";
    default: return NULL;
    }
}

void cg_c_expr(const CgCExpr *p, const KirExpr *x) {
    FILE *out = p->out;
    const char *zero = p->f64 ? "0.0" : "0.0f", *one = p->f64 ? "1.0" : "1.0f";
    switch (x->op) {
    case KIR_E_CONST: cg_c_num(out, p->f64, x->value); return;
    case KIR_E_LOAD:
        if (x->idx.guard) {
            fputs("(0 <= ", out);
            cg_c_affine(out, x->idx.goff, x->idx.gcoef);
            fputs(" && ", out);
            cg_c_affine(out, x->idx.goff, x->idx.gcoef);
            fprintf(out, " < %ld ? b%d[", x->idx.glimit, x->idx.buf);
            cg_c_index(out, &x->idx);
            fprintf(out, "] : %s)", zero);
            return;
        }
        fprintf(out, "b%d[", x->idx.buf);
        cg_c_index(out, &x->idx);
        fputc(']', out);
        return;
    case KIR_E_TAB: fprintf(out, "t%d[%s]", x->tab, cg_c_var[x->var]); return;
    case KIR_E_VAL: fprintf(out, "v%d", x->slot); return;
    case KIR_E_BATCH: fprintf(out, "(%s)N", ty(p)); return;
    case KIR_E_MOMENTUM:
        fprintf(out, "(%s >= 0 ? (%s)%s : ", p->momentum, ty(p), p->momentum);
        cg_c_num(out, p->f64, x->value);
        fputc(')', out);
        return;
    case KIR_E_DROPMASK: p->dropmask(p, x); return;
    case KIR_E_SUM:
    case KIR_E_RMAX:
        for (int i = 0; i < p->nred; i++)
            if (p->red[i] == x) {
                fprintf(out, "(%s)red%d", ty(p), p->redbase + i);
                return;
            }
        sup_bug("%s backend: a reduction was not hoisted", p->backend);
    case KIR_E_NEG: call1(p, "-", x->a[0]); return;
    case KIR_E_ABS: call1(p, fn(p, "fabs"), x->a[0]); return;
    case KIR_E_EXP: call1(p, fn(p, "exp"), x->a[0]); return;
    case KIR_E_EXPM1: call1(p, fn(p, "expm1"), x->a[0]); return;
    case KIR_E_LOG: call1(p, fn(p, "log"), x->a[0]); return;
    case KIR_E_SQRT: call1(p, fn(p, "sqrt"), x->a[0]); return;
    case KIR_E_TANH: call1(p, p->f64 ? "tanh" : p->tanh, x->a[0]); return;
    case KIR_E_ERF: call1(p, fn(p, "erf"), x->a[0]); return;
    case KIR_E_SIGMOID: call1(p, "sigmoid", x->a[0]); return;
    case KIR_E_ADD: infix(p, "+", x->a[0], x->a[1]); return;
    case KIR_E_SUB: infix(p, "-", x->a[0], x->a[1]); return;
    case KIR_E_MUL: infix(p, "*", x->a[0], x->a[1]); return;
    case KIR_E_DIV: infix(p, "/", x->a[0], x->a[1]); return;
    case KIR_E_MIN:
    case KIR_E_MAX:
        fprintf(out, "%s(", fn(p, x->op == KIR_E_MIN ? "fmin" : "fmax"));
        cg_c_expr(p, x->a[0]);
        fputs(", ", out);
        cg_c_expr(p, x->a[1]);
        fputc(')', out);
        return;
    case KIR_E_LT:
    case KIR_E_LE:
    case KIR_E_GT:
    case KIR_E_GE:
        fputc('(', out);
        infix(p, cmp_op(x->op), x->a[0], x->a[1]);
        fprintf(out, " ? %s : %s)", one, zero);
        return;
    case KIR_E_SELECT:
        fputc('(', out);
        if (cmp_op(x->a[0]->op)) infix(p, cmp_op(x->a[0]->op), x->a[0]->a[0], x->a[0]->a[1]);
        else fputc('(', out), cg_c_expr(p, x->a[0]), fprintf(out, " != %s)", zero);
        fputs(" ? ", out);
        cg_c_expr(p, x->a[1]);
        fputs(" : ", out);
        cg_c_expr(p, x->a[2]);
        fputc(')', out);
        return;
    default: sup_bug("%s backend: expression op %d", p->backend, (int)x->op);
    }
}

