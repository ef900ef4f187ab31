/* codegen/fuse.c: loop fusion, a kernel IR pass (docs/kernel-ir.md "Fusion").
 *
 * The lowering emits one loop kernel per operation: synthesise + bias, activation,
 * dropout, residual add, each a pass over memory. This pass merges a producer with
 * the next kernel that reads what it wrote (the consumer) when both run over the same
 * index space and the consumer reads the producer's results only at the point it is
 * at: the merged kernel runs the producer's stores, then the consumer's, per point,
 * and the consumer's loads become the values (KIR_E_VAL) the producer just computed.
 * A consumer may be moved up past steps it does not conflict with, or else the
 * producer down to it (the backward's dx = Q^T (even, odd) down past the weight
 * gradients to the residual's add and the activation's derivative). Two kernels over
 * the same points in a different shape ([N*119] and [N*7, 17]; [N*81, 1020] and the
 * crop's adjoint [N, 27, 3, 1020]) are first reshaped to the finest space that splits
 * both (common_space). The pass repeats while it merges. Two adjacent kernels over the
 * same points that do not touch each other's results (the even and odd im2col) merge
 * too: one pass over the input.
 *
 * Last, a store into a temporary that no other step of the program reads (in its
 * function or in the backward that reads the forward's temporaries) becomes a let:
 * the value exists only inside the kernel and the buffer drops out of the memory plan.
 * What a backward reads stays stored.
 *
 * Kernels with a reduction axis are left alone (their points are not elementwise).
 * The pass runs before the memory plan, so merged kernels get disjoint operands. */
#include <string.h>

#include "codegen/codegen.h"

enum { ACC_READ = 1, ACC_WRITE = 2 };

typedef struct F {
    KirProgram *k;
    int nb;
} F;

static void acc_expr(unsigned char *a, const KirExpr *e) {
    if (e->op == KIR_E_LOAD && e->idx.buf >= 0) a[e->idx.buf] |= ACC_READ;
    for (int i = 0; i < kir_eop_arity[e->op]; i++) acc_expr(a, e->a[i]);
}
/* a[b]: how step s touches buffer b (ACC_READ | ACC_WRITE). */
static void acc_step(const F *f, const KirStep *s, unsigned char *a) {
    memset(a, 0, (size_t)f->nb + 1);
    if (s->kind == KIR_STEP_GEMM) {
        a[s->g.a.buf] |= ACC_READ, a[s->g.b.buf] |= ACC_READ;
        a[s->g.c.buf] |= ACC_WRITE | (s->g.beta != 0 ? ACC_READ : 0);
        return;
    }
    for (int j = 0; j < s->l.nst; j++) {
        if (s->l.st[j].idx.buf >= 0) a[s->l.st[j].idx.buf] |= ACC_WRITE;
        acc_expr(a, s->l.st[j].e);
    }
}

static bool fusable(const KirStep *s) { return s->kind == KIR_STEP_LOOP && !s->l.has_red; }

/* ---- reshaping kernels to a common index space -------------------------------------------- */

/* Two kernels over the same points in the same (row-major) order can merge in the
 * space both are reshapes of: the finest one whose extents split each kernel's extents
 * ([N*81, 1020] and [N, 27, 3, 1020]: the residual crop's adjoint, a frame's place in its
 * stride being a variable of its own, and the add it feeds, both over [N, 27, 3, 1020]).
 * A kernel's variable becomes a group of the common space's variables, i_d = sum_r i_r
 * m_r. Only the outermost extent may scale with the batch, so every boundary between
 * extents inside a sample is a constant: the common space cuts where either kernel
 * cuts, and each cut must divide the next. */

/* Whether p and c run over the same points in the same order; *sp is then their common
 * space (its extents only). False for other points, cuts that do not nest, or more than
 * KIR_MAX_DIMS extents. */
static bool common_space(const KirLoop *p, const KirLoop *c, KirLoop *sp) {
    const KirLoop *two[2] = {p, c};
    long cuts[2 * KIR_MAX_DIMS], n[2] = {1, 1};
    int ncuts = 0;
    for (int w = 0; w < 2; w++) {
        long inner = 1;
        for (int d = two[w]->ndims - 1; d >= 0; d--) {
            n[w] *= two[w]->ext[d].n;
            if (d == 0) break;
            inner *= two[w]->ext[d].n;
            cuts[ncuts++] = inner; /* the points inside one step of variable d - 1 */
        }
    }
    if (n[0] != n[1] || p->ext[0].batch != c->ext[0].batch) return false;
    /* ascending, without repeats, each dividing the next and the whole */
    for (int i = 1; i < ncuts; i++)
        for (int j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            long t = cuts[j];
            cuts[j] = cuts[j - 1], cuts[j - 1] = t;
        }
    int m = 0;
    for (int i = 0; i < ncuts; i++)
        if (m == 0 || cuts[i] != cuts[m - 1]) cuts[m++] = cuts[i];
    if (m + 1 > KIR_MAX_DIMS) return false;
    for (int i = 0; i < m; i++)
        if ((i + 1 < m ? cuts[i + 1] : n[0]) % cuts[i] != 0) return false;
    *sp = *p;
    sp->ndims = m + 1;
    memset(sp->ext, 0, sizeof sp->ext);
    sp->ext[0] = (KirDim){.n = n[0] / (m ? cuts[m - 1] : 1), .batch = p->ext[0].batch};
    for (int r = 1; r <= m; r++) sp->ext[r].n = cuts[m - r] / (r < m ? cuts[m - r - 1] : 1);
    return true;
}

static bool same_shape(const KirLoop *a, const KirLoop *b) {
    if (a->ndims != b->ndims) return false;
    for (int d = 0; d < a->ndims; d++)
        if (a->ext[d].n != b->ext[d].n || a->ext[d].batch != b->ext[d].batch) return false;
    return true;
}

/* How a kernel's variables map into a common space: variable r of the space belongs to
 * the kernel's var_of[r] with multiplier mul[r]; a kernel variable whose group is one
 * variable of the space is renamed to single[d] (tables may read it), else -1. */
typedef struct Reshape {
    int ndims, var_of[KIR_MAX_DIMS], single[KIR_MAX_DIMS];
    long mul[KIR_MAX_DIMS];
} Reshape;

static void reshape_of(const KirLoop *from, const KirLoop *to, Reshape *rs) {
    rs->ndims = to->ndims;
    long below_to = 1;
    int count[KIR_MAX_DIMS] = {0};
    for (int r = to->ndims - 1; r >= 0; r--) {
        /* the kernel's variable whose step holds this one's: the innermost whose points
         * inside one step are at least below_to's */
        long below_from = 1;
        int d = from->ndims - 1;
        while (d > 0 && below_from * from->ext[d].n <= below_to) below_from *= from->ext[d--].n;
        rs->var_of[r] = d, rs->mul[r] = below_to / below_from;
        rs->single[d] = r;
        count[d]++;
        below_to *= to->ext[r].n;
    }
    for (int d = 0; d < from->ndims; d++)
        if (count[d] != 1) rs->single[d] = -1;
}

typedef struct Xf {
    KirProgram *k;
    const Reshape *rs;   /* into the common space (NULL: no reshape) */
    /* the producer's stores (merge): a load of buf at the store's index becomes VAL */
    const KirLoop *prod;
    int shift;           /* the consumer's VAL slots move by the producer's stores */
    bool ok;
} Xf;

static bool reshape_ix(const Xf *x, KirIndex *ix) {
    const Reshape *rs = x->rs;
    if (!rs) return true;
    for (int t = 0; t < ix->ntab; t++) {
        int v = ix->tab[t].var;
        if (v == KIR_RVAR) continue;
        if (rs->single[v] < 0) return false; /* a table at a variable that splits */
        ix->tab[t].var = rs->single[v];
    }
    long coef[KIR_NVARS] = {0}, gcoef[KIR_NVARS] = {0};
    coef[KIR_RVAR] = ix->coef[KIR_RVAR], gcoef[KIR_RVAR] = ix->gcoef[KIR_RVAR];
    for (int r = 0; r < rs->ndims; r++) {
        coef[r] = ix->coef[rs->var_of[r]] * rs->mul[r];
        gcoef[r] = ix->gcoef[rs->var_of[r]] * rs->mul[r];
    }
    memcpy(ix->coef, coef, sizeof coef);
    if (ix->guard) memcpy(ix->gcoef, gcoef, sizeof gcoef);
    return true;
}

static bool same_index(const KirIndex *a, const KirIndex *b) {
    if (a->buf != b->buf || a->off != b->off || a->ntab != b->ntab || a->guard || b->guard) return false;
    for (int v = 0; v < KIR_NVARS; v++)
        if (a->coef[v] != b->coef[v]) return false;
    for (int t = 0; t < a->ntab; t++)
        if (a->tab[t].tab != b->tab[t].tab || a->tab[t].var != b->tab[t].var || a->tab[t].coef != b->tab[t].coef)
            return false;
    return true;
}

/* A copy of e, reshaped, with the producer's results as values. */
static KirExpr *xform(Xf *x, const KirExpr *e) {
    KirExpr *n = arena_alloc(x->k->arena, sizeof *n);
    *n = *e;
    if (e->op == KIR_E_TAB && x->rs && e->var != KIR_RVAR) { /* a float table at a variable */
        if (x->rs->single[e->var] < 0) x->ok = false;
        else n->var = x->rs->single[e->var];
    }
    if (e->op == KIR_E_VAL) n->slot += x->shift;
    if (e->op == KIR_E_LOAD || e->op == KIR_E_DROPMASK) {
        if (!reshape_ix(x, &n->idx)) x->ok = false;
    }
    if (e->op == KIR_E_LOAD && x->prod) {
        bool written = false;
        int slot = -1;
        for (int j = 0; j < x->prod->nst; j++) {
            const KirIndex *s = &x->prod->st[j].idx;
            if (s->buf != n->idx.buf) continue;
            written = true;
            if (same_index(s, &n->idx)) slot = j; /* the last store there wins */
        }
        if (written && slot < 0) x->ok = false; /* it reads the producer at another point */
        if (slot >= 0) {
            memset(n, 0, sizeof *n);
            n->op = KIR_E_VAL;
            n->slot = slot;
            return n;
        }
    }
    for (int i = 0; i < kir_eop_arity[e->op]; i++) n->a[i] = xform(x, e->a[i]);
    return n;
}

/* A copy of loop l reshaped to the space `to` (NULL: as it is), with prod's results as
 * values; false when an index cannot be reshaped or reads prod at another point. */
static bool xform_loop(KirProgram *k, const KirLoop *l, const KirLoop *to, const KirLoop *prod, KirLoop *out) {
    Reshape rs;
    if (to) reshape_of(l, to, &rs);
    Xf x = {.k = k, .rs = to ? &rs : NULL, .prod = prod, .shift = prod ? prod->nst : 0, .ok = true};
    *out = *l;
    if (to) {
        out->ndims = to->ndims;
        memcpy(out->ext, to->ext, sizeof out->ext);
    }
    out->st = arena_new_array(k->arena, KirStore, l->nst + 1);
    for (int j = 0; j < l->nst; j++) {
        KirStore st = l->st[j];
        if (st.idx.buf >= 0 && !reshape_ix(&x, &st.idx)) return false;
        st.e = xform(&x, st.e);
        out->st[j] = st;
    }
    return x.ok;
}

/* Merges consumer c into producer p (both fusable, over the same points); false (and
 * nothing changed) when they cannot be. */
static bool merge(F *f, KirStep *p, const KirStep *c, const unsigned char *ap, const unsigned char *ac) {
    /* the consumer must not write what the producer touches (it would now run first at
     * later points); what it reads of the producer's results is checked point by point */
    for (int b = 0; b < f->nb; b++)
        if ((ac[b] & ACC_WRITE) && ap[b]) return false;
    KirLoop sp;
    if (!common_space(&p->l, &c->l, &sp)) return false;
    KirLoop np, nc;
    if (!xform_loop(f->k, &p->l, same_shape(&p->l, &sp) ? NULL : &sp, NULL, &np)) return false;
    if (!xform_loop(f->k, &c->l, same_shape(&c->l, &sp) ? NULL : &sp, &np, &nc)) return false;
    KirStore *st = arena_new_array(f->k->arena, KirStore, np.nst + nc.nst + 1);
    memcpy(st, np.st, sizeof *st * (size_t)np.nst);
    memcpy(st + np.nst, nc.st, sizeof *st * (size_t)nc.nst);
    np.st = st;
    np.nst += nc.nst;
    p->l = np;
    p->label = arena_printf(f->k->arena, "%s + %s", p->label, c->label);
    return true;
}

static void remove_step(KirFunc *fn, int j) {
    memmove(&fn->steps[j], &fn->steps[j + 1], sizeof *fn->steps * (size_t)(fn->nsteps - j - 1));
    fn->nsteps--;
}

/* Whether step j can move up to just after step i: none of the steps between touches
 * what it writes or writes what it reads (aj: how j touches buffers; am: scratch). */
static bool movable_up(const F *f, const KirFunc *fn, int i, int j, const unsigned char *aj, unsigned char *am) {
    for (int m = i + 1; m < j; m++) {
        acc_step(f, &fn->steps[m], am);
        for (int b = 0; b < f->nb; b++)
            if (((aj[b] & ACC_WRITE) && am[b]) || ((aj[b] & ACC_READ) && (am[b] & ACC_WRITE))) return false;
    }
    return true;
}

/* Whether the temporaries a step reads (a: acc_step's) are larger, together, than those
 * it writes by more than an eighth: a producer that moves down keeps what it reads alive
 * until its new place, instead of what it writes. The strided form's crop (the block's
 * input, 81 frames, read for 27), moved down to the block's add, would keep the whole
 * input alive through the block (113 MB more arena at batch 1024, `--no-fold`). The
 * dilated form's crop keeps nearly every frame (1234 of 1240 in the first block of the
 * bench's inference pass): moved down, its copy of the block's input is gone and the
 * arena about the same. */
static bool reads_more(const F *f, const unsigned char *a) {
    long in = 0, out = 0;
    for (int b = 0; b < f->nb; b++) {
        if (f->k->bufs[b].kind != KIR_BUF_TEMP) continue; /* only temporaries live and die */
        long n = kir_buf_size(f->k, b, 1);
        if (a[b] & ACC_WRITE) out += n;
        else if (a[b] & ACC_READ) in += n;
    }
    return in > out + out / 8;
}

/* One function: producer by producer, merge its consumers while possible. */
static int fuse_fn(F *f, KirFunc *fn) {
    int merges = 0;
    unsigned char *ap = sup_malloc((size_t)f->nb + 1), *ac = sup_malloc((size_t)f->nb + 1),
                  *am = sup_malloc((size_t)f->nb + 1), *ab = sup_malloc((size_t)f->nb + 1);
    for (int i = 0; i < fn->nsteps; i++) {
        KirStep *p = &fn->steps[i];
        if (!fusable(p)) continue;
        bool sunk = false;
        for (bool again = true; again && !sunk;) {
            again = false;
            acc_step(f, p, ap);
            /* the consumer: the first later step that touches what p writes */
            int j = i + 1;
            for (; j < fn->nsteps; j++) {
                acc_step(f, &fn->steps[j], ac);
                bool touches = false;
                for (int b = 0; b < f->nb && !touches; b++) touches = (ap[b] & ACC_WRITE) && ac[b];
                if (touches) break;
            }
            if (j == fn->nsteps || !fusable(&fn->steps[j])) break;
            /* c moves up to p; but past a GEMM, p moves down to c first where it can: c's
             * results are then not live during the GEMMs (the backward's Q^T of a block's
             * first convolution and the residual's add, around the weight gradients:
             * moved up, the add's dx overlapped their im2col operand, 113 MB more arena
             * at batch 1024) */
            bool up = movable_up(f, fn, i, j, ac, am), past_gemm = false;
            for (int m = i + 1; m < j; m++) past_gemm = past_gemm || fn->steps[m].kind == KIR_STEP_GEMM;
            if (up && !past_gemm && merge(f, p, &fn->steps[j], ap, ac)) {
                remove_step(fn, j);
                merges++;
                again = true;
                continue;
            }
            /* else p moves down to it, when none of the steps between writes what p
             * reads (none touches what p writes: c is the first that does), none is a
             * producer of c that c could merge with instead (the residual's add stays
             * with the activation before it rather than with the crop), and p reads no
             * more than it writes (moved down, p keeps what it reads alive instead) */
            bool sinkable = !reads_more(f, ap);
            for (int m = i + 1; m < j && sinkable; m++) {
                const KirStep *sm = &fn->steps[m];
                acc_step(f, sm, am);
                bool feeds = false;
                KirLoop sp;
                for (int b = 0; b < f->nb && sinkable; b++) {
                    if ((ap[b] & ACC_READ) && (am[b] & ACC_WRITE)) sinkable = false;
                    feeds = feeds || ((am[b] & ACC_WRITE) && (ac[b] & ACC_READ));
                }
                if (sinkable && feeds && fusable(sm) && common_space(&sm->l, &fn->steps[j].l, &sp))
                    sinkable = !movable_up(f, fn, m, j, ac, ab);
            }
            KirStep merged = *p;
            if (sinkable && merge(f, &merged, &fn->steps[j], ap, ac)) {
                fn->steps[j] = merged;
                remove_step(fn, i);
                merges++;
                sunk = true;
            } else if (up && past_gemm && merge(f, p, &fn->steps[j], ap, ac)) {
                remove_step(fn, j);
                merges++;
                again = true;
            }
        }
        if (sunk) { /* the step now at i is the next one; the merged step comes later */
            i--;
            continue;
        }
        /* a sibling: the next step, over the same space, independent of p */
        while (i + 1 < fn->nsteps && fusable(&fn->steps[i + 1])) {
            acc_step(f, p, ap);
            acc_step(f, &fn->steps[i + 1], ac);
            bool indep = true;
            for (int b = 0; b < f->nb && indep; b++)
                if (((ap[b] & ACC_WRITE) && ac[b]) || ((ac[b] & ACC_WRITE) && ap[b])) indep = false;
            if (!indep || !merge(f, p, &fn->steps[i + 1], ap, ac)) break;
            remove_step(fn, i + 1);
            merges++;
        }
    }
    sup_free(ap), sup_free(ac), sup_free(am), sup_free(ab);
    return merges;
}

/* ---- gathered producers: a cheap kernel recomputed where it is gathered -------------------- */

/* A producer whose readers gather it (S^T dy reads the batchnorm's dx at t0[i1] and at
 * t1[i1]) cannot merge with them: they read it at other points. When its expression
 * is cheap (no transcendental, no mask, a few operations: dx = dy * scale), each reader
 * computes it at the point it gathers instead, from the producer's operands gathered
 * through the same table: the producer's pass (a write and a read of its result) is
 * gone. The arithmetic is the producer's, operation for operation, in float32 (no
 * contraction), so the results are bit-identical. */
enum { CHEAP_OPS = 12 };

static bool cheap(const KirExpr *e, int *ops) {
    if (++*ops > CHEAP_OPS) return false;
    switch (e->op) {
    case KIR_E_LOAD:
        return e->idx.buf >= 0 && !e->idx.guard && e->idx.ntab == 0 && e->idx.coef[KIR_RVAR] == 0;
    case KIR_E_CONST: case KIR_E_BATCH: return true;
    case KIR_E_NEG: case KIR_E_ADD: case KIR_E_SUB: case KIR_E_MUL:
        for (int i = 0; i < kir_eop_arity[e->op]; i++)
            if (!cheap(e->a[i], ops)) return false;
        return true;
    default: return false;
    }
}

/* The store of p when p is a gatherable producer: one store, row-major over p's space
 * (element i_0 .. i_last at sum_d i_d stride_d), of a cheap expression. */
static const KirStore *gatherable(const KirProgram *k, const KirStep *p) {
    if (!fusable(p) || p->l.nst != 1 || p->l.ndims < 2) return NULL;
    const KirLoop *l = &p->l;
    const KirStore *st = &l->st[0];
    const KirIndex *x = &st->idx;
    if (x->buf < 0 || k->bufs[x->buf].kind != KIR_BUF_TEMP || x->guard || x->ntab) return NULL;
    long stride = 1;
    for (int d = l->ndims - 1; d >= 0; d--) {
        if (x->coef[d] != stride || (d > 0 && l->ext[d].batch)) return NULL;
        stride *= l->ext[d].n;
    }
    int ops = 0;
    return cheap(st->e, &ops) ? st : NULL;
}

/* Whether load x of p's result in consumer c gathers it: c has p's extents but the
 * last, and x is p's store index with the last variable read through a table. */
static bool gathers(const KirLoop *p, const KirIndex *s, const KirLoop *c, const KirIndex *x) {
    int last = p->ndims - 1;
    if (c->ndims != p->ndims || c->has_red || x->guard || x->off != s->off || x->coef[last] != 0 || x->ntab != 1 ||
        x->tab[0].var != last || x->tab[0].coef != 1 || x->coef[KIR_RVAR] != 0)
        return false;
    for (int d = 0; d < last; d++)
        if (c->ext[d].n != p->ext[d].n || c->ext[d].batch != p->ext[d].batch || x->coef[d] != s->coef[d]) return false;
    return true;
}

/* Every read of buffer b in e gathers it (counted in *n); false at one that does not. */
static bool reads_gather(const KirExpr *e, int b, const KirLoop *p, const KirIndex *s, const KirLoop *c, int *n) {
    if (e->op == KIR_E_LOAD && e->idx.buf == b) {
        if (!gathers(p, s, c, &e->idx)) return false;
        ++*n;
    }
    for (int i = 0; i < kir_eop_arity[e->op]; i++)
        if (!reads_gather(e->a[i], b, p, s, c, n)) return false;
    return true;
}

/* A copy of the producer's expression e at the point gathered through table t. */
static KirExpr *at_gathered(KirProgram *k, const KirExpr *e, int last, int t) {
    KirExpr *n = arena_alloc(k->arena, sizeof *n);
    *n = *e;
    if (e->op == KIR_E_LOAD && e->idx.coef[last] != 0) {
        n->idx.tab[n->idx.ntab++] = (KirTerm){t, last, e->idx.coef[last]};
        n->idx.coef[last] = 0;
    }
    for (int i = 0; i < kir_eop_arity[e->op]; i++) n->a[i] = at_gathered(k, e->a[i], last, t);
    return n;
}
/* e with every load of the producer's result b replaced by its expression there. */
static KirExpr *inline_gathers(KirProgram *k, const KirExpr *e, int b, const KirExpr *pe, int last) {
    if (e->op == KIR_E_LOAD && e->idx.buf == b) return at_gathered(k, pe, last, e->idx.tab[0].tab);
    KirExpr *n = arena_alloc(k->arena, sizeof *n);
    *n = *e;
    for (int i = 0; i < kir_eop_arity[e->op]; i++) n->a[i] = inline_gathers(k, e->a[i], b, pe, last);
    return n;
}

/* Reads of buffer b by the steps of every function. */
static void count_reads(const KirExpr *e, int *reads);
static int reads_of(const KirProgram *k, int b, int *reads) {
    memset(reads, 0, sizeof(int) * (size_t)(k->nbufs + 1));
    for (int fi = 0; fi < KIR_NUM_FNS; fi++)
        for (int i = 0; i < k->fn[fi].nsteps; i++) {
            const KirStep *s = &k->fn[fi].steps[i];
            if (s->kind == KIR_STEP_GEMM) {
                reads[s->g.a.buf]++, reads[s->g.b.buf]++, reads[s->g.c.buf]++;
                continue;
            }
            for (int j = 0; j < s->l.nst; j++) count_reads(s->l.st[j].e, reads);
        }
    return reads[b];
}

static int inline_fn(F *f, KirFunc *fn, int *reads) {
    int done = 0;
    unsigned char *ap = sup_malloc((size_t)f->nb + 1), *am = sup_malloc((size_t)f->nb + 1);
    for (int i = 0; i < fn->nsteps; i++) {
        const KirStore *st = gatherable(f->k, &fn->steps[i]);
        if (!st) continue;
        const KirLoop *p = &fn->steps[i].l;
        int b = st->idx.buf, last = p->ndims - 1, total = reads_of(f->k, b, reads), seen = 0;
        acc_step(f, &fn->steps[i], ap);
        /* every reader, up to the last, gathers it, and nothing between writes what the
         * producer reads or its result */
        bool ok = total > 0;
        for (int j = i + 1; ok && j < fn->nsteps && seen < total; j++) {
            const KirStep *c = &fn->steps[j];
            acc_step(f, c, am);
            for (int q = 0; q < f->nb && ok; q++) ok = !((am[q] & ACC_WRITE) && ((ap[q] & ACC_READ) || q == b));
            if (!ok || !am[b]) continue;
            ok = fusable(c);
            for (int s = 0; ok && s < c->l.nst; s++) ok = reads_gather(c->l.st[s].e, b, p, &st->idx, &c->l, &seen);
        }
        if (!ok || seen != total) continue;
        for (int j = i + 1, n = 0; n < total; j++) {
            KirStep *c = &fn->steps[j];
            int before = n;
            for (int s = 0; s < c->l.nst; s++) reads_gather(c->l.st[s].e, b, p, &st->idx, &c->l, &n);
            if (n == before) continue;
            KirStore *cs = arena_new_array(f->k->arena, KirStore, c->l.nst + 1);
            for (int s = 0; s < c->l.nst; s++) {
                cs[s] = c->l.st[s];
                cs[s].e = inline_gathers(f->k, cs[s].e, b, st->e, last);
            }
            c->l.st = cs;
            c->label = arena_printf(f->k->arena, "%s, at %s", c->label, fn->steps[i].label);
        }
        remove_step(fn, i);
        i--;
        done++;
    }
    sup_free(ap), sup_free(am);
    return done;
}

/* ---- lets: stores nobody reads ------------------------------------------------------------ */

static void count_reads(const KirExpr *e, int *reads) {
    if (e->op == KIR_E_LOAD && e->idx.buf >= 0) reads[e->idx.buf]++;
    for (int i = 0; i < kir_eop_arity[e->op]; i++) count_reads(e->a[i], reads);
}

static void make_lets(F *f) {
    KirProgram *k = f->k;
    int *reads = sup_malloc(sizeof(int) * (size_t)(f->nb + 1)), *writes = sup_malloc(sizeof(int) * (size_t)(f->nb + 1));
    memset(reads, 0, sizeof(int) * (size_t)(f->nb + 1));
    memset(writes, 0, sizeof(int) * (size_t)(f->nb + 1));
    for (int fi = 0; fi < KIR_NUM_FNS; fi++)
        for (int i = 0; i < k->fn[fi].nsteps; i++) {
            const KirStep *s = &k->fn[fi].steps[i];
            if (s->kind == KIR_STEP_GEMM) {
                reads[s->g.a.buf]++, reads[s->g.b.buf]++, reads[s->g.c.buf]++, writes[s->g.c.buf]++;
                continue;
            }
            for (int j = 0; j < s->l.nst; j++) {
                if (s->l.st[j].idx.buf >= 0) writes[s->l.st[j].idx.buf]++;
                count_reads(s->l.st[j].e, reads);
            }
        }
    for (int fi = 0; fi < KIR_NUM_FNS; fi++)
        for (int i = 0; i < k->fn[fi].nsteps; i++) {
            KirStep *s = &k->fn[fi].steps[i];
            if (s->kind != KIR_STEP_LOOP) continue;
            for (int j = 0; j < s->l.nst; j++) {
                int b = s->l.st[j].idx.buf;
                if (b < 0 || k->bufs[b].kind != KIR_BUF_TEMP || reads[b] || writes[b] != 1) continue;
                /* only fusion leaves a store unread: a lowering's store always has a reader,
                 * but keep the rule general */
                s->l.st[j].idx = kir_ix(-1, 0);
            }
        }
    sup_free(reads);
    sup_free(writes);
}

int cg_fuse(KirProgram *k) {
    F f = {.k = k, .nb = k->nbufs};
    int merges = 0;
    /* the functions of a batch; prepare and densify run once */
    static const KirFn fns[] = {KIR_FN_INFER, KIR_FN_TRAIN, KIR_FN_BWD_INFER, KIR_FN_BWD_TRAIN};
    int *reads = sup_malloc(sizeof(int) * (size_t)(k->nbufs + 1));
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) merges += inline_fn(&f, &k->fn[fns[i]], reads);
    sup_free(reads);
    /* again while it merges: a producer passed over early can join its consumer's merged
     * kernel later (the backward's Q^T of a block's first convolution, once the residual
     * crop's adjoint has merged with the add) */
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++)
        for (int n; (n = fuse_fn(&f, &k->fn[fns[i]])) > 0;) merges += n;
    make_lets(&f);
    return merges;
}
