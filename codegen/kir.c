/* codegen/kir.c: the kernel IR: construction, the text form and the verifier.
 *
 * Nothing here is C syntax: indices are affine maps plus gathered table terms,
 * expressions are trees of ops, and the text form is the IR's own. */
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"

const char *const kir_buf_kind_name[KIR_NUM_BUF_KINDS] = {"param", "state", "prep", "input",
                                                          "output", "target", "grad", "temp", "dense",
                                                          "doutput"};
const char *const kir_fn_name[KIR_NUM_FNS] = {"prepare", "forward_infer", "forward_train", "densify",
                                              "backward_infer", "backward_train"};

KirFn kir_fn_forward_of(KirFn f) {
    return f == KIR_FN_BWD_INFER ? KIR_FN_INFER : f == KIR_FN_BWD_TRAIN ? KIR_FN_TRAIN : f;
}
const char *const kir_eop_name[KIR_NUM_EOPS] = {
#define X(e, name, k) name,
    KIR_EXPRS(X)
#undef X
};
const int kir_eop_arity[KIR_NUM_EOPS] = {
#define X(e, name, k) k,
    KIR_EXPRS(X)
#undef X
};

KirProgram *kir_program_new(Arena *a) {
    KirProgram *k = arena_alloc(a, sizeof *k);
    k->arena = a;
    return k;
}

/* Growth by doubling inside the arena (the old block is simply left behind). */
static void *grow(Arena *a, void *old, int n, int *cap, size_t size) {
    if (n < *cap) return old;
    int nc = *cap ? 2 * *cap : 16;
    void *p = arena_alloc(a, size * (size_t)nc);
    if (n) memcpy(p, old, size * (size_t)n);
    *cap = nc;
    return p;
}

int kir_buf(KirProgram *k, const char *name, KirBufKind kind, long per_sample, long fixed) {
    k->bufs = grow(k->arena, k->bufs, k->nbufs, &k->capbufs, sizeof *k->bufs);
    k->bufs[k->nbufs] = (KirBuf){.name = arena_strdup(k->arena, name), .kind = kind,
                                 .per_sample = per_sample, .fixed = fixed, .io = -1,
                                 .func = -1, .first = -1, .last = -1};
    return k->nbufs++;
}

long kir_dim(KirDim d, long batch) { return d.batch ? d.n * batch : d.n; }

long kir_buf_size(const KirProgram *k, int b, long batch) {
    return k->bufs[b].per_sample * batch + k->bufs[b].fixed;
}

static int add_tab(KirProgram *k, bool is_float, const int *iv, const float *fv, int n) {
    for (int t = 0; t < k->ntabs; t++) {
        const KirTab *x = &k->tabs[t];
        if (x->is_float != is_float || x->n != n) continue;
        if (is_float ? memcmp(x->f, fv, sizeof(float) * (size_t)n) == 0
                     : memcmp(x->i, iv, sizeof(int) * (size_t)n) == 0)
            return t;
    }
    k->tabs = grow(k->arena, k->tabs, k->ntabs, &k->captabs, sizeof *k->tabs);
    KirTab *t = &k->tabs[k->ntabs];
    *t = (KirTab){.is_float = is_float, .n = n};
    if (is_float) {
        float *c = arena_new_array(k->arena, float, n + 1);
        memcpy(c, fv, sizeof(float) * (size_t)n);
        t->f = c;
    } else {
        int *c = arena_new_array(k->arena, int, n + 1);
        memcpy(c, iv, sizeof(int) * (size_t)n);
        t->i = c;
    }
    return k->ntabs++;
}
int kir_tab_int(KirProgram *k, const int *v, int n) { return add_tab(k, false, v, NULL, n); }
int kir_tab_float(KirProgram *k, const float *v, int n) { return add_tab(k, true, NULL, v, n); }

KirIndex kir_ix(int buf, long off) {
    KirIndex x;
    memset(&x, 0, sizeof x);
    x.buf = buf;
    x.off = off;
    return x;
}
KirIndex *kir_ix_var(KirIndex *x, int var, long coef) {
    sup_assert(var >= 0 && var < KIR_NVARS);
    x->coef[var] += coef;
    return x;
}
KirIndex *kir_ix_tab(KirIndex *x, int tab, int var, long coef) {
    sup_assert(x->ntab < KIR_MAX_TAB && var >= 0 && var < KIR_NVARS);
    x->tab[x->ntab++] = (KirTerm){tab, var, coef};
    return x;
}

static KirExpr *node(KirProgram *k, KirEop op) {
    KirExpr *e = arena_alloc(k->arena, sizeof *e);
    e->op = op;
    return e;
}
KirExpr *kir_const(KirProgram *k, double v) {
    KirExpr *e = node(k, KIR_E_CONST);
    e->value = v;
    return e;
}
KirExpr *kir_load(KirProgram *k, KirIndex idx) {
    KirExpr *e = node(k, KIR_E_LOAD);
    e->idx = idx;
    return e;
}
KirExpr *kir_tabv(KirProgram *k, int tab, int var) {
    sup_assert(k->tabs[tab].is_float);
    KirExpr *e = node(k, KIR_E_TAB);
    e->tab = tab;
    e->var = var;
    return e;
}
KirExpr *kir_batch(KirProgram *k) { return node(k, KIR_E_BATCH); }
KirExpr *kir_momentum(KirProgram *k, double dflt) {
    KirExpr *e = node(k, KIR_E_MOMENTUM);
    e->value = dflt;
    return e;
}
KirExpr *kir_dropmask(KirProgram *k, double p, uint64_t stream, KirIndex counter) {
    KirExpr *e = node(k, KIR_E_DROPMASK);
    e->value = p;
    e->stream = stream;
    e->idx = counter;
    e->idx.buf = -1;
    return e;
}
KirExpr *kir_un(KirProgram *k, KirEop op, KirExpr *a) {
    sup_assert(kir_eop_arity[op] == 1);
    KirExpr *e = node(k, op);
    e->a[0] = a;
    return e;
}
KirExpr *kir_bin(KirProgram *k, KirEop op, KirExpr *a, KirExpr *b) {
    sup_assert(kir_eop_arity[op] == 2);
    KirExpr *e = node(k, op);
    e->a[0] = a, e->a[1] = b;
    return e;
}
KirExpr *kir_select(KirProgram *k, KirExpr *c, KirExpr *a, KirExpr *b) {
    KirExpr *e = node(k, KIR_E_SELECT);
    e->a[0] = c, e->a[1] = a, e->a[2] = b;
    return e;
}

static KirStep *new_step(KirProgram *k, KirFn f, const char *label) {
    KirFunc *fn = &k->fn[f];
    fn->steps = grow(k->arena, fn->steps, fn->nsteps, &fn->cap, sizeof *fn->steps);
    KirStep *s = &fn->steps[fn->nsteps++];
    memset(s, 0, sizeof *s);
    s->label = arena_strdup(k->arena, label ? label : "");
    return s;
}
KirStep *kir_gemm(KirProgram *k, KirFn f, const char *label, const KirGemm *g) {
    KirStep *s = new_step(k, f, label);
    s->kind = KIR_STEP_GEMM;
    s->g = *g;
    return s;
}
KirStep *kir_loop(KirProgram *k, KirFn f, const char *label, int ndims, const KirDim *ext) {
    sup_assert(ndims >= 1 && ndims <= KIR_MAX_DIMS);
    for (int d = 1; d < ndims; d++) sup_assert(!ext[d].batch); /* only the outermost scales */
    KirStep *s = new_step(k, f, label);
    s->kind = KIR_STEP_LOOP;
    s->l.ndims = ndims;
    memcpy(s->l.ext, ext, sizeof(KirDim) * (size_t)ndims);
    return s;
}
void kir_loop_red(KirStep *s, KirDim red) {
    s->l.has_red = true;
    s->l.red = red;
}
void kir_store(KirProgram *k, KirStep *s, KirIndex idx, KirExpr *e) {
    sup_assert(s->kind == KIR_STEP_LOOP);
    /* stores are few per kernel: grow one by one */
    KirStore *st = arena_new_array(k->arena, KirStore, s->l.nst + 1);
    if (s->l.nst) memcpy(st, s->l.st, sizeof *st * (size_t)s->l.nst);
    st[s->l.nst++] = (KirStore){idx, e};
    s->l.st = st;
}

/* ---- text form --------------------------------------------------------------------- */

static void print_dim(FILE *out, KirDim d) {
    if (d.batch) fprintf(out, d.n == 1 ? "N" : "N*%ld", d.n);
    else fprintf(out, "%ld", d.n);
}

static const char *const var_name[KIR_NVARS] = {"i0", "i1", "i2", "i3", "r"};

static void print_index(FILE *out, const KirIndex *x) {
    if (x->buf >= 0) fprintf(out, "b%d", x->buf);
    fprintf(out, "[%ld", x->off);
    for (int v = 0; v < KIR_NVARS; v++)
        if (x->coef[v]) fprintf(out, " %+ld*%s", x->coef[v], var_name[v]);
    for (int t = 0; t < x->ntab; t++)
        fprintf(out, " %+ld*t%d[%s]", x->tab[t].coef, x->tab[t].tab, var_name[x->tab[t].var]);
    if (x->guard) {
        fprintf(out, " if 0 <= %ld", x->goff);
        for (int v = 0; v < KIR_NVARS; v++)
            if (x->gcoef[v]) fprintf(out, " %+ld*%s", x->gcoef[v], var_name[v]);
        fprintf(out, " < %ld", x->glimit);
    }
    fputc(']', out);
}

static void print_expr(FILE *out, const KirExpr *e) {
    switch (e->op) {
    case KIR_E_CONST: fprintf(out, "%.9g", e->value); return;
    case KIR_E_LOAD: print_index(out, &e->idx); return;
    case KIR_E_TAB: fprintf(out, "t%d[%s]", e->tab, var_name[e->var]); return;
    case KIR_E_BATCH: fputs("N", out); return;
    case KIR_E_MOMENTUM: fprintf(out, "momentum(%.9g)", e->value); return;
    case KIR_E_DROPMASK:
        fprintf(out, "dropmask(p=%.9g, stream=%llu, ", e->value, (unsigned long long)e->stream);
        print_index(out, &e->idx);
        fputc(')', out);
        return;
    case KIR_E_VAL: fprintf(out, "v%d", e->slot); return;
    default: break;
    }
    fprintf(out, "%s(", kir_eop_name[e->op]);
    for (int i = 0; i < kir_eop_arity[e->op]; i++) {
        if (i) fputs(", ", out);
        print_expr(out, e->a[i]);
    }
    fputc(')', out);
}

static bool expr_uses_val(const KirExpr *e, int slot) {
    if (e->op == KIR_E_VAL) return e->slot == slot;
    for (int i = 0; i < kir_eop_arity[e->op]; i++)
        if (expr_uses_val(e->a[i], slot)) return true;
    return false;
}

static void print_mat(FILE *out, const KirMat *m, bool batched) {
    fprintf(out, "b%d+%ld ld %ld", m->buf, m->off, m->ld);
    if (batched) fprintf(out, " stride %ld", m->stride);
}

void kir_print(FILE *out, const KirProgram *k) {
    fprintf(out, "buffers %d\n", k->nbufs);
    for (int b = 0; b < k->nbufs; b++) {
        const KirBuf *x = &k->bufs[b];
        fprintf(out, "  b%-4d %-6s %-28s", b, kir_buf_kind_name[x->kind], x->name);
        if (x->per_sample) fprintf(out, " N*%ld", x->per_sample);
        if (x->fixed || !x->per_sample) fprintf(out, " %s%ld", x->per_sample ? "+ " : "", x->fixed);
        if (x->kind == KIR_BUF_TEMP && x->func >= 0)
            fprintf(out, "  @%s%ld live %s %d..%d", x->per_sample ? "N*" : "fixed+", x->offset,
                    kir_fn_name[x->func], x->first, x->last);
        fputc('\n', out);
    }
    fprintf(out, "tables %d\n", k->ntabs);
    for (int t = 0; t < k->ntabs; t++) {
        const KirTab *x = &k->tabs[t];
        fprintf(out, "  t%-4d %s[%d] {", t, x->is_float ? "float" : "int", x->n);
        for (int i = 0; i < x->n; i++) {
            if (i) fputs(", ", out);
            if (x->is_float) fprintf(out, "%.9g", (double)x->f[i]);
            else fprintf(out, "%d", x->i[i]);
        }
        fputs("}\n", out);
    }
    fprintf(out, "arena N*%ld + %ld\n", k->arena_per_sample, k->arena_fixed);
    for (int f = 0; f < KIR_NUM_FNS; f++) {
        const KirFunc *fn = &k->fn[f];
        if (kir_fn_forward_of((KirFn)f) != (KirFn)f && fn->nsteps == 0) continue; /* no training graph */
        fprintf(out, "fn %s (%d steps)\n", kir_fn_name[f], fn->nsteps);
        for (int i = 0; i < fn->nsteps; i++) {
            const KirStep *s = &fn->steps[i];
            fprintf(out, "  s%d  # %s\n", i, s->label);
            if (s->kind == KIR_STEP_GEMM) {
                const KirGemm *g = &s->g;
                bool batched = g->count.n > 0;
                fputs("    gemm", out);
                if (batched) fputs(" x", out), print_dim(out, g->count);
                fputs(" m ", out), print_dim(out, g->m);
                fputs(" n ", out), print_dim(out, g->n);
                fputs(" k ", out), print_dim(out, g->k);
                fprintf(out, " alpha %.9g beta %.9g\n      A%s ", (double)g->alpha, (double)g->beta,
                        g->ta ? "^T" : "");
                print_mat(out, &g->a, batched);
                fprintf(out, "  B%s ", g->tb ? "^T" : "");
                print_mat(out, &g->b, batched);
                fputs("  C ", out);
                print_mat(out, &g->c, batched);
                fputc('\n', out);
                continue;
            }
            const KirLoop *l = &s->l;
            fputs("    loop [", out);
            for (int d = 0; d < l->ndims; d++) {
                if (d) fputs(", ", out);
                print_dim(out, l->ext[d]);
            }
            fputc(']', out);
            if (l->has_red) fputs(" reduce r < ", out), print_dim(out, l->red);
            fputc('\n', out);
            for (int j = 0; j < l->nst; j++) {
                /* a let prints as "v2 = ...", a store whose value a later one takes as "v2: b5[...] = ..." */
                fputs("      ", out);
                if (l->st[j].idx.buf < 0) fprintf(out, "v%d", j);
                else {
                    bool named = false;
                    for (int q = j + 1; q < l->nst && !named; q++) named = expr_uses_val(l->st[q].e, j);
                    if (named) fprintf(out, "v%d: ", j);
                    print_index(out, &l->st[j].idx);
                }
                fputs(" = ", out);
                print_expr(out, l->st[j].e);
                fputc('\n', out);
            }
        }
    }
}

/* ---- verifier ------------------------------------------------------------------------ */

long kir_ix_eval(const KirProgram *k, const KirIndex *x, const long *vars) {
    long v = x->off;
    for (int i = 0; i < KIR_NVARS; i++) v += x->coef[i] * vars[i];
    for (int t = 0; t < x->ntab; t++) v += x->tab[t].coef * k->tabs[x->tab[t].tab].i[vars[x->tab[t].var]];
    return v;
}

typedef struct Ver {
    const KirProgram *k;
    const char **why;
    const char *where;
    int store;           /* the store being checked: a VAL must name an earlier one */
    long ext[KIR_NVARS]; /* extents of the variables for the current batch (0: unused) */
    long batch;
} Ver;

static bool bad(Ver *v, const char *what) {
    *v->why = arena_printf(v->k->arena, "%s: %s", v->where, what);
    return false;
}

/* Exact check of a guarded index by enumerating the index space (small spaces only). */
static bool enum_guarded(Ver *v, const KirIndex *x, long size) {
    long total = 1;
    for (int i = 0; i < KIR_NVARS; i++) total *= v->ext[i] > 0 ? v->ext[i] : 1;
    if (total > (1L << 20)) return true; /* too big to be cheap: trusted */
    long vars[KIR_NVARS] = {0};
    for (long p = 0; p < total; p++) {
        long q = p;
        for (int i = KIR_NVARS - 1; i >= 0; i--) {
            long e = v->ext[i] > 0 ? v->ext[i] : 1;
            vars[i] = q % e;
            q /= e;
        }
        long g = x->goff;
        for (int i = 0; i < KIR_NVARS; i++) g += x->gcoef[i] * vars[i];
        if (g < 0 || g >= x->glimit) continue;
        long a = kir_ix_eval(v->k, x, vars);
        if (a < 0 || a >= size) return bad(v, "a guarded load's index leaves its buffer");
    }
    return true;
}

static bool check_index(Ver *v, const KirIndex *x, bool is_load) {
    const KirProgram *k = v->k;
    for (int i = 0; i < KIR_NVARS; i++)
        if ((x->coef[i] || (x->guard && x->gcoef[i])) && v->ext[i] == 0)
            return bad(v, "an index uses a variable outside the index space");
    long lo = x->off, hi = x->off;
    for (int i = 0; i < KIR_NVARS; i++) {
        if (!x->coef[i]) continue;
        long span = x->coef[i] * (v->ext[i] - 1);
        if (span > 0) hi += span;
        else lo += span;
    }
    for (int t = 0; t < x->ntab; t++) {
        const KirTerm *tm = &x->tab[t];
        if (tm->tab < 0 || tm->tab >= k->ntabs || k->tabs[tm->tab].is_float)
            return bad(v, "an index gathers through a missing or float table");
        const KirTab *tb = &k->tabs[tm->tab];
        if (v->ext[tm->var] == 0 || v->ext[tm->var] > tb->n)
            return bad(v, "a table is indexed past its end");
        int mn = tb->i[0], mx = tb->i[0];
        for (long j = 0; j < v->ext[tm->var]; j++) {
            if (tb->i[j] < mn) mn = tb->i[j];
            if (tb->i[j] > mx) mx = tb->i[j];
        }
        long a = tm->coef * mn, b = tm->coef * mx;
        lo += a < b ? a : b;
        hi += a < b ? b : a;
    }
    if (x->buf < 0) return true;
    if (x->buf >= k->nbufs) return bad(v, "an index names a missing buffer");
    long size = kir_buf_size(k, x->buf, v->batch);
    if (x->guard) {
        if (!is_load) return bad(v, "a guarded store");
        return enum_guarded(v, x, size);
    }
    if (lo < 0 || hi >= size)
        return bad(v, arena_printf(k->arena, "index range [%ld, %ld] leaves buffer b%d (%s, %ld elements)",
                                   lo, hi, x->buf, k->bufs[x->buf].name, size));
    return true;
}

static bool check_expr(Ver *v, const KirExpr *e, bool in_red) {
    if (!e) return bad(v, "a missing operand");
    switch (e->op) {
    case KIR_E_LOAD:
        if (!in_red && e->idx.coef[KIR_RVAR]) return bad(v, "the reduction variable outside a reduction");
        return check_index(v, &e->idx, true);
    case KIR_E_DROPMASK: return check_index(v, &e->idx, false);
    case KIR_E_TAB: {
        const KirProgram *k = v->k;
        if (e->tab < 0 || e->tab >= k->ntabs || !k->tabs[e->tab].is_float)
            return bad(v, "a value from a missing or int table");
        if (v->ext[e->var] == 0 || v->ext[e->var] > k->tabs[e->tab].n)
            return bad(v, "a table is read past its end");
        if (e->var == KIR_RVAR && !in_red) return bad(v, "the reduction variable outside a reduction");
        return true;
    }
    case KIR_E_VAL:
        if (e->slot < 0 || e->slot >= v->store) return bad(v, "a value of a store that does not come earlier");
        if (in_red) return bad(v, "a store's value inside a reduction");
        return true;
    case KIR_E_SUM:
    case KIR_E_RMAX:
        if (in_red) return bad(v, "nested reductions");
        if (v->ext[KIR_RVAR] == 0) return bad(v, "a reduction in a kernel without a reduction axis");
        return check_expr(v, e->a[0], true);
    default:
        for (int i = 0; i < kir_eop_arity[e->op]; i++)
            if (!check_expr(v, e->a[i], in_red)) return false;
        return true;
    }
}

static bool check_mat(Ver *v, const KirMat *m, long rows, long cols, long count) {
    if (m->buf < 0 || m->buf >= v->k->nbufs) return bad(v, "a GEMM operand names a missing buffer");
    if (rows == 0 || cols == 0) return true;
    if (m->ld < cols) return bad(v, "a GEMM leading dimension smaller than the row");
    long last = m->off + (count - 1) * m->stride + (rows - 1) * m->ld + cols - 1;
    if (m->off < 0 || last >= kir_buf_size(v->k, m->buf, v->batch))
        return bad(v, arena_printf(v->k->arena, "a GEMM operand leaves buffer b%d (%s)", m->buf,
                                   v->k->bufs[m->buf].name));
    return true;
}

bool kir_verify(const KirProgram *k, const char **why) {
    const char *dummy;
    Ver v = {.k = k, .why = why ? why : &dummy};
    *v.why = NULL;
    for (long batch = 1; batch <= 3; batch += 2) {
        v.batch = batch;
        for (int f = 0; f < KIR_NUM_FNS; f++)
            for (int i = 0; i < k->fn[f].nsteps; i++) {
                const KirStep *s = &k->fn[f].steps[i];
                v.where = arena_printf(k->arena, "%s s%d (%s)", kir_fn_name[f], i, s->label);
                if (s->kind == KIR_STEP_GEMM) {
                    const KirGemm *g = &s->g;
                    long m = kir_dim(g->m, batch), n = kir_dim(g->n, batch), kk = kir_dim(g->k, batch);
                    long cnt = g->count.n > 0 ? kir_dim(g->count, batch) : 1;
                    if (m <= 0 || n <= 0 || kk <= 0) return bad(&v, "an empty GEMM");
                    if (!check_mat(&v, &g->a, g->ta ? kk : m, g->ta ? m : kk, cnt) ||
                        !check_mat(&v, &g->b, g->tb ? n : kk, g->tb ? kk : n, cnt) ||
                        !check_mat(&v, &g->c, m, n, cnt))
                        return false;
                    continue;
                }
                const KirLoop *l = &s->l;
                memset(v.ext, 0, sizeof v.ext);
                for (int d = 0; d < l->ndims; d++) {
                    v.ext[d] = kir_dim(l->ext[d], batch);
                    if (v.ext[d] <= 0) return bad(&v, "an empty extent");
                }
                if (l->has_red) {
                    v.ext[KIR_RVAR] = kir_dim(l->red, batch);
                    if (v.ext[KIR_RVAR] <= 0) return bad(&v, "an empty reduction");
                }
                if (l->nst == 0) return bad(&v, "a loop without stores");
                for (int j = 0; j < l->nst; j++) {
                    if (l->st[j].idx.coef[KIR_RVAR]) return bad(&v, "a store indexed by the reduction variable");
                    v.store = j;
                    if (!check_index(&v, &l->st[j].idx, false) || !check_expr(&v, l->st[j].e, false))
                        return false;
                }
            }
    }
    return true;
}

int kir_collect_reductions(const KirExpr *x, const KirExpr **red, int n, int max) {
    if (x->op == KIR_E_SUM || x->op == KIR_E_RMAX) {
        for (int i = 0; i < n; i++)
            if (red[i] == x) return n;
        if (n == max) sup_bug("kernel IR: more than %d reductions in one store", max);
        red[n] = x;
        return n + 1;
    }
    for (int i = 0; i < kir_eop_arity[x->op]; i++) n = kir_collect_reductions(x->a[i], red, n, max);
    return n;
}

/* ---- the loop kernels' parallelism ------------------------------------------------------ */

/* The range of x - coef[0] * i0 over the other variables (static extents) and the
 * tables; false when it cannot be bounded without i0 (a table on i0, a batch-scaled
 * extent of another variable). */
static bool rest_range(const KirProgram *k, const KirLoop *l, const KirIndex *x, long *lo, long *hi) {
    *lo = *hi = x->off;
    for (int v = 1; v < KIR_NVARS; v++) {
        if (!x->coef[v]) continue;
        KirDim d = v == KIR_RVAR ? l->red : v < l->ndims ? l->ext[v] : (KirDim){0, false};
        if (d.batch || d.n <= 0) return false;
        long span = x->coef[v] * (d.n - 1);
        if (span > 0) *hi += span;
        else *lo += span;
    }
    for (int t = 0; t < x->ntab; t++) {
        const KirTerm *tm = &x->tab[t];
        if (tm->var == 0) return false;
        KirDim d = tm->var == KIR_RVAR ? l->red : l->ext[tm->var];
        if (d.batch) return false;
        const KirTab *tb = &k->tabs[tm->tab];
        long mn = tb->i[0], mx = tb->i[0];
        for (long j = 1; j < d.n && j < tb->n; j++) {
            if (tb->i[j] < mn) mn = tb->i[j];
            if (tb->i[j] > mx) mx = tb->i[j];
        }
        long a = tm->coef * mn, b = tm->coef * mx;
        *lo += a < b ? a : b;
        *hi += a < b ? b : a;
    }
    return true;
}

typedef struct Win {
    long c, lo, hi;
    bool set, ok;
    long all_lo, all_hi; /* the stores' addresses over every i0 (bounded: all_ok) */
    bool all_ok;
} Win;

/* Whether a load at x, over every point of l, reads none of the addresses the stores of
 * window w write over every i0: then it cannot meet another i0's store (a batchnorm's
 * centred second moment reads the means in the statistics buffer it writes past). */
static bool apart_from_stores(const KirProgram *k, const KirLoop *l, const Win *w, const KirIndex *x) {
    long lo, hi;
    if (!w->all_ok || l->ext[0].batch || !rest_range(k, l, x, &lo, &hi)) return false;
    long span = x->coef[0] * (l->ext[0].n - 1);
    if (span > 0) hi += span;
    else lo += span;
    return hi < w->all_lo || lo > w->all_hi;
}

/* Widens the window of buffer x->buf by one access. */
static void win_add(const KirProgram *k, const KirLoop *l, Win *w, const KirIndex *x) {
    long lo, hi;
    if (!w->ok) return;
    if (x->coef[0] == 0 || !rest_range(k, l, x, &lo, &hi) || (w->set && w->c != x->coef[0])) {
        w->ok = false;
        return;
    }
    if (!w->set) w->c = x->coef[0], w->lo = lo, w->hi = hi, w->set = true;
    if (lo < w->lo) w->lo = lo;
    if (hi > w->hi) w->hi = hi;
}
static void win_expr(const KirProgram *k, const KirLoop *l, Win *w, const KirExpr *e) {
    if (e->op == KIR_E_LOAD && e->idx.buf >= 0 && w[e->idx.buf].set &&
        !apart_from_stores(k, l, &w[e->idx.buf], &e->idx))
        win_add(k, l, &w[e->idx.buf], &e->idx);
    for (int i = 0; i < kir_eop_arity[e->op]; i++) win_expr(k, l, w, e->a[i]);
}

bool kir_loop_parallel(const KirProgram *k, const KirLoop *l) {
    if (!l->ext[0].batch && l->ext[0].n < 2) return false;
    Win *w = sup_malloc(sizeof(Win) * (size_t)(k->nbufs + 1));
    memset(w, 0, sizeof(Win) * (size_t)(k->nbufs + 1));
    for (int j = 0; j < l->nst; j++) { /* the written buffers first: each i0 has a window of them */
        int b = l->st[j].idx.buf;
        if (b < 0) continue;
        if (!w[b].set) w[b].ok = true;
        win_add(k, l, &w[b], &l->st[j].idx);
        w[b].set = true;
    }
    for (int b = 0; b < k->nbufs; b++) /* the stores' full extent, when i0's is fixed */
        if (w[b].set && w[b].ok && !l->ext[0].batch) {
            long span = w[b].c * (l->ext[0].n - 1);
            w[b].all_lo = w[b].lo + (span < 0 ? span : 0), w[b].all_hi = w[b].hi + (span > 0 ? span : 0);
            w[b].all_ok = true;
        }
    for (int j = 0; j < l->nst; j++) win_expr(k, l, w, l->st[j].e);
    bool par = true;
    for (int b = 0; b < k->nbufs; b++) /* windows of consecutive i0 must not overlap */
        if (w[b].set && (!w[b].ok || w[b].hi - w[b].lo >= (w[b].c < 0 ? -w[b].c : w[b].c))) par = false;
    sup_free(w);
    return par;
}

/* Every point at once. The kernel IR's order is the C backend's: points one after
 * another. A kernel may run them all at once (a GPU thread per point; any split of them
 * on the CPU) only if no point touches what another point writes. Proven here,
 * conservatively, from the indices: every store's address is a one-to-one function of the
 * point (an affine index whose coefficients dominate the spans of the smaller ones, no
 * gathered terms), stores to one buffer at different indices never meet (offsets apart
 * modulo the coefficients' gcd), and a load of a buffer the kernel writes reads the very
 * address a store of the same point writes, or a part no store writes. */
static bool store_injective(const KirLoop *l, const KirIndex *x) {
    if (x->ntab > 0 || x->coef[KIR_RVAR]) return false;
    int order[KIR_MAX_DIMS], n = 0;
    for (int d = 0; d < l->ndims; d++) {
        if (!l->ext[d].batch && l->ext[d].n == 1) continue; /* one value: no collision */
        if (!x->coef[d]) return false;
        order[n++] = d;
    }
    for (int a = 1; a < n; a++) /* by |coefficient|, ascending */
        for (int b = a; b > 0 && labs(x->coef[order[b]]) < labs(x->coef[order[b - 1]]); b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    long span = 0;
    for (int a = 0; a < n; a++) {
        int d = order[a];
        if (labs(x->coef[d]) <= span) return false;
        if (l->ext[d].batch) return a == n - 1; /* unbounded: only the outermost coefficient */
        span += labs(x->coef[d]) * (l->ext[d].n - 1);
    }
    return true;
}

static long gcd_l(long a, long b) {
    a = labs(a), b = labs(b);
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Two injective stores with the same coefficients never write the same address: their
 * offsets differ by a non-multiple of the coefficients' gcd, or by more than the span
 * of the index (modulo the outermost coefficient where that variable is the batch's). */
static bool stores_apart(const KirLoop *l, const KirIndex *a, const KirIndex *b) {
    long g = 0, span = 0, outer = 0;
    int big = -1;
    for (int v = 0; v < KIR_NVARS; v++) {
        if (a->coef[v] != b->coef[v]) return false;
        g = gcd_l(g, a->coef[v]);
        if (a->coef[v] && (big < 0 || labs(a->coef[v]) > labs(a->coef[big]))) big = v;
    }
    long diff = b->off - a->off;
    if (g == 0) return diff != 0;
    if (diff % g != 0) return true;
    for (int d = 0; d < l->ndims; d++) {
        if (d == big && l->ext[d].batch) continue;
        if (l->ext[d].batch) return false; /* an unbounded span */
        span += labs(a->coef[d]) * (l->ext[d].n - 1);
    }
    if (big >= 0 && big < l->ndims && l->ext[big].batch) {
        outer = labs(a->coef[big]);
        long dm = ((diff % outer) + outer) % outer;
        return dm > span && outer - dm > span;
    }
    return labs(diff) > span;
}

static bool same_index(const KirIndex *a, const KirIndex *b) {
    if (a->buf != b->buf || a->off != b->off || a->ntab != b->ntab || a->guard != b->guard) return false;
    for (int v = 0; v < KIR_NVARS; v++)
        if (a->coef[v] != b->coef[v]) return false;
    for (int t = 0; t < a->ntab; t++)
        if (a->tab[t].tab != b->tab[t].tab || a->tab[t].var != b->tab[t].var || a->tab[t].coef != b->tab[t].coef)
            return false;
    return !a->guard || (a->goff == b->goff && a->glimit == b->glimit);
}

/* The range [lo, hi] an index takes over the loop, without its batch-scaled variable
 * (whose coefficient goes to *row, 0 when there is none); false when unbounded. */
static bool index_range(const KirProgram *k, const KirLoop *l, const KirIndex *x, long *lo, long *hi, long *row) {
    *lo = *hi = x->off;
    *row = 0;
    for (int v = 0; v < KIR_NVARS; v++) {
        if (!x->coef[v]) continue;
        KirDim d = v == KIR_RVAR ? l->red : v < l->ndims ? l->ext[v] : (KirDim){1, false};
        if (d.batch) {
            if (*row) return false;
            *row = x->coef[v];
            continue;
        }
        long a = x->coef[v] * (d.n - 1);
        *lo += a < 0 ? a : 0, *hi += a > 0 ? a : 0;
    }
    for (int t = 0; t < x->ntab; t++) {
        const KirTab *tb = &k->tabs[x->tab[t].tab];
        if (tb->is_float || tb->n == 0) return false;
        long mn = tb->i[0], mx = tb->i[0];
        for (int i = 1; i < tb->n; i++) mn = tb->i[i] < mn ? tb->i[i] : mn, mx = tb->i[i] > mx ? tb->i[i] : mx;
        long a = x->tab[t].coef * mn, b = x->tab[t].coef * mx;
        *lo += a < b ? a : b, *hi += a < b ? b : a;
    }
    return true;
}

/* A load and a store of one buffer that never meet: their ranges are apart (in every
 * row of the batch alike, both within one row's stride). */
static bool ranges_apart(const KirProgram *k, const KirLoop *l, const KirIndex *a, const KirIndex *b) {
    long alo, ahi, arow, blo, bhi, brow;
    if (!index_range(k, l, a, &alo, &ahi, &arow) || !index_range(k, l, b, &blo, &bhi, &brow) || arow != brow)
        return false;
    if (arow && ((ahi > bhi ? ahi : bhi) - (alo < blo ? alo : blo) >= labs(arow) || alo < 0 || blo < 0))
        return false;
    return ahi < blo || bhi < alo;
}

/* Every load in x of a buffer the kernel writes reads what a store of the point writes,
 * or a part of the buffer no store writes. */
static bool loads_private(const KirProgram *k, const KirLoop *l, const KirExpr *x) {
    if (x->op == KIR_E_LOAD && x->idx.buf >= 0) {
        bool same = false, apart = true;
        for (int j = 0; j < l->nst; j++)
            if (l->st[j].idx.buf == x->idx.buf) {
                same |= same_index(&l->st[j].idx, &x->idx);
                apart &= ranges_apart(k, l, &l->st[j].idx, &x->idx);
            }
        if (!same && !apart) return false;
    }
    for (int i = 0; i < kir_eop_arity[x->op]; i++)
        if (!loads_private(k, l, x->a[i])) return false;
    return true;
}

bool kir_loop_points_independent(const KirProgram *k, const KirLoop *l) {
    for (int j = 0; j < l->nst; j++) {
        const KirIndex *a = &l->st[j].idx;
        if (!loads_private(k, l, l->st[j].e)) return false;
        if (a->buf < 0) continue;
        if (!store_injective(l, a)) return false;
        for (int q = 0; q < j; q++) { /* another store to the buffer: never the same address */
            const KirIndex *b = &l->st[q].idx;
            if (b->buf != a->buf || same_index(a, b)) continue;
            if (!stores_apart(l, a, b)) return false;
        }
    }
    return true;
}

KirDim kir_loop_work(const KirLoop *l) {
    KirDim w = {1, false};
    for (int d = 0; d < l->ndims; d++) w.n *= l->ext[d].n, w.batch |= l->ext[d].batch;
    if (l->has_red) w.n *= l->red.n, w.batch |= l->red.batch;
    return w;
}

/* ---- reductions over row blocks ------------------------------------------------------------ */

/* The elements [*lo, *hi] that an index of i0 alone reaches over [0, n); false when it
 * depends on anything else. */
static bool i0_range(const KirIndex *x, long n, long *lo, long *hi) {
    if (x->ntab || x->guard) return false;
    for (int v = 1; v < KIR_NVARS; v++)
        if (x->coef[v]) return false;
    long a = x->off, b = x->off + x->coef[0] * (n - 1);
    *lo = a < b ? a : b, *hi = a < b ? b : a;
    return true;
}
/* Whether every load in x of the buffer that st stores into reads elements that the
 * store never writes (batchnorm keeps its statistics side by side in one buffer). */
static bool loads_apart(const KirExpr *x, const KirIndex *st, long n) {
    if (x->op == KIR_E_LOAD && x->idx.buf == st->buf) {
        long a0, a1, b0, b1;
        if (!i0_range(&x->idx, n, &a0, &a1) || !i0_range(st, n, &b0, &b1) || !(a1 < b0 || b1 < a0)) return false;
    }
    for (int i = 0; i < kir_eop_arity[x->op]; i++)
        if (!loads_apart(x->a[i], st, n)) return false;
    return true;
}

bool kir_loop_rows_outside(const KirLoop *l) {
    if (l->ndims != 1 || !l->has_red || l->ext[0].batch || l->ext[0].n > KIR_ROWS_MAX_EXT || l->ext[0].n < 2)
        return false;
    int nred = 0;
    for (int j = 0; j < l->nst; j++) {
        const KirStore *st = &l->st[j];
        if (st->idx.buf < 0 || kir_expr_has(st->e, KIR_E_VAL) || kir_expr_has(st->e, KIR_E_DROPMASK)) return false;
        for (int q = 0; q < l->nst; q++)
            if (!loads_apart(st->e, &l->st[q].idx, l->ext[0].n)) return false;
        const KirExpr *red[16];
        nred += kir_collect_reductions(st->e, red, 0, 16); /* at most 16 a store, as everywhere */
    }
    return nred <= 16; /* the accumulators of all stores */
}

int kir_loop_reductions(const KirLoop *l, const KirExpr **red) {
    int n = 0;
    for (int j = 0; j < l->nst; j++) n = kir_collect_reductions(l->st[j].e, red, n, 16);
    return n;
}

bool kir_loop_row_blocks(const KirLoop *l) {
    const KirExpr *red[16];
    return kir_loop_rows_outside(l) && l->red.batch &&
           (long)KIR_ROW_BLOCKS * kir_loop_reductions(l, red) * l->ext[0].n <= KIR_ROW_BLOCKS_MAX_ACC;
}

/* ---- what expressions and steps touch (the backends' questions) --------------------------- */

bool kir_expr_has(const KirExpr *x, KirEop op) {
    if (x->op == op) return true;
    for (int i = 0; i < kir_eop_arity[x->op]; i++)
        if (kir_expr_has(x->a[i], op)) return true;
    return false;
}

bool kir_program_has(const KirProgram *k, KirEop op) {
    for (int f = 0; f < KIR_NUM_FNS; f++)
        for (int i = 0; i < k->fn[f].nsteps; i++) {
            const KirStep *s = &k->fn[f].steps[i];
            if (s->kind != KIR_STEP_LOOP) continue;
            for (int j = 0; j < s->l.nst; j++)
                if (kir_expr_has(s->l.st[j].e, op)) return true;
        }
    return false;
}

static void mark_loads(bool *used, const KirExpr *x) {
    if (x->op == KIR_E_LOAD) used[x->idx.buf] = true;
    for (int i = 0; i < kir_eop_arity[x->op]; i++) mark_loads(used, x->a[i]);
}

void kir_loop_bufs(const KirLoop *l, bool *used, bool *written) {
    for (int j = 0; j < l->nst; j++) {
        int b = l->st[j].idx.buf;
        if (b >= 0) {
            used[b] = true;
            if (written) written[b] = true;
        }
        mark_loads(used, l->st[j].e);
    }
}

void kir_step_bufs(const KirStep *s, bool *used, bool *written) {
    if (s->kind == KIR_STEP_LOOP) {
        kir_loop_bufs(&s->l, used, written);
        return;
    }
    used[s->g.a.buf] = used[s->g.b.buf] = used[s->g.c.buf] = true;
    if (written) written[s->g.c.buf] = true;
}
