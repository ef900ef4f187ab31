/* codegen/lower.c: the typed graph IR -> the kernel IR, forward, in inference
 * and training mode.
 *
 * The interpreter (ir/interp.c) is the reference: every op computes what it
 * computes there, in float32. Decisions (docs/kernel-ir.md):
 * - Folding (chirality.md 2): a linear/conv1d/invariant layer is an analyse
 *   kernel (the butterfly, fused with im2col for convolutions: rows (b, t) of
 *   the even components' k taps, then the odd ones', in one buffer), GEMMs on
 *   the even and the odd part, and a synthesis + bias epilogue. Training: the
 *   weights' taps copied side by side every step, one GEMM per part (a
 *   linear map: one GEMM per part straight from the parameters). Inference:
 *   `prepare` lays each layer's taps side by side ([out][k * in]) and folds a
 *   following batchnorm into A, B and the even bias.
 * - --no-fold: dense W = S_out blockdiag(A, B) Q_in built as [out][tap][in] (in
 *   prepare at inference, at the start of every training forward), one GEMM over
 *   the im2col rows, every tap at once.
 * - Batchnorm in training: statistics of the augmented batch, two passes
 *   (mean, then the centred second moment pooled over partners), and the
 *   running statistics updated with the runtime's momentum.
 * - LSTM/GRU: unrolled over the static time steps; the input part of every
 *   gate is one GEMM over all frames, the hidden part one GEMM per step.
 *   For a training graph the training forward also keeps every step's h, c
 *   and gates (CgRecHist) for the backward (lower_grad.c).
 * - Time extents are static (the shape pass's); the batch is a runtime value. */
#include <stdlib.h>
#include <string.h>

#include "codegen/lower_int.h"

/* ---- tables ------------------------------------------------------------------------- */

/* Where a feature has no even (odd) component, its synthesis index (-1 here) is read
 * and multiplied by a zero coefficient: any element in [0, lim) will do. 0 for all
 * would cut the runs of consecutive indices that the LLVM backend turns into
 * contiguous loads (runs.c), so a gap continues the run before it, or leads into
 * the one after it, or counts from 0. */
static void fill_gaps(int *idx, int n, int lim) {
    for (int a = 0, b; a < n; a = b) {
        for (b = a; b < n && idx[b] < 0; b++) {}
        if (b == a) {
            b++;
            continue;
        }
        for (int i = a; i < b; i++) {
            if (a > 0 && idx[a - 1] + (b - a) < lim) idx[i] = idx[a - 1] + (i - a + 1);
            else if (b < n && idx[b] - (b - a) >= 0) idx[i] = idx[b] - (b - i);
            else idx[i] = lim > 0 ? (i - a) % lim : 0;
        }
    }
}

/* Component c (even or odd) of x is x[f1] + s x[f2]; a centre's has no second term
 * (f2 = f1, s = 0: returns false). */
static bool analyse_terms(const IrBasis *b, bool even, int c, int *f1, int *f2, float *s) {
    const int *f = even ? b->ef : b->of, *g = even ? b->eg : b->og;
    *f1 = f[c];
    *f2 = g[c] < 0 ? f[c] : g[c];
    *s = g[c] < 0 ? 0.0f : even ? (float)b->es[c] : -(float)b->os[c];
    return g[c] >= 0;
}

const BT *cg_bt_of(L *l, const IrBasis *b) {
    for (int i = 0; i < l->nbts; i++)
        if (l->bts[i]->b == b) return l->bts[i];
    KirProgram *k = l->k;
    int n = b->n, de = b->d_even, dod = b->d_odd, mx = n + de + dod + 1;
    int *iv = sup_malloc(sizeof(int) * 4 * (size_t)mx);
    int *i2 = iv + mx, *i3 = i2 + mx, *i4 = i3 + mx;
    float *fv = sup_malloc(sizeof(float) * 4 * (size_t)mx);
    float *f2 = fv + mx, *f3 = f2 + mx, *f4 = f3 + mx;
    BT *t = arena_alloc(l->a, sizeof *t);
    *t = (BT){.b = b, .n = n, .de = de, .dod = dod};
    for (int c = 0; c < de; c++) t->pairs_e |= analyse_terms(b, true, c, &iv[c], &i2[c], &fv[c]);
    t->ef = kir_tab_int(k, iv, de), t->eg = kir_tab_int(k, i2, de), t->es = kir_tab_float(k, fv, de);
    for (int c = 0; c < dod; c++) t->pairs_o |= analyse_terms(b, false, c, &iv[c], &i2[c], &fv[c]);
    t->of = kir_tab_int(k, iv, dod), t->og = kir_tab_int(k, i2, dod), t->os = kir_tab_float(k, fv, dod);
    /* synthesis and the dense builder's coefficients, feature by feature */
    for (int i = 0; i < 4 * mx; i++) iv[i] = -1;
    memset(fv, 0, sizeof(float) * 4 * (size_t)mx);
    for (int c = 0; c < de; c++) {
        int f = b->ef[c], g = b->eg[c];
        iv[f] = c, i3[f] = c, fv[f] = g < 0 ? 1.0f : 0.5f, f3[f] = 1.0f;
        if (g >= 0) iv[g] = c, i3[g] = c, fv[g] = 0.5f * b->es[c], f3[g] = b->es[c];
    }
    for (int c = 0; c < dod; c++) {
        int f = b->of[c], g = b->og[c];
        i2[f] = c, i4[f] = c, f2[f] = g < 0 ? 1.0f : 0.5f, f4[f] = 1.0f;
        if (g >= 0) i2[g] = c, i4[g] = c, f2[g] = -0.5f * b->os[c], f4[g] = -(float)b->os[c];
    }
    fill_gaps(iv, n, de), fill_gaps(i3, n, de), fill_gaps(i2, n, dod), fill_gaps(i4, n, dod);
    t->ie = kir_tab_int(k, iv, n), t->io = kir_tab_int(k, i2, n);
    t->ca = kir_tab_float(k, fv, n), t->cb = kir_tab_float(k, f2, n);
    t->kE = kir_tab_int(k, i3, n), t->kO = kir_tab_int(k, i4, n);
    t->aE = kir_tab_float(k, f3, n), t->aO = kir_tab_float(k, f4, n);
    sup_free(iv);
    sup_free(fv);
    if (l->nbts == l->capbts) {
        l->capbts = l->capbts ? 2 * l->capbts : 16;
        BT **nb = arena_new_array(l->a, BT *, l->capbts);
        if (l->nbts) memcpy(nb, l->bts, sizeof(BT *) * (size_t)l->nbts);
        l->bts = nb;
    }
    l->bts[l->nbts++] = t;
    return t;
}

Orb cg_orb_of(L *l, const IrChi *c, bool trivial, const BT *bt) {
    int n = c->n;
    int *orb = sup_malloc(sizeof(int) * (size_t)(3 * n + bt->de + bt->dod + 1));
    int *first = orb + n, *part = first + n, *oe = part + n, *oo = oe + bt->de;
    float *sg = sup_malloc(sizeof(float) * (size_t)(n + 1));
    Orb o = {0};
    for (int f = 0; f < n; f++) {
        int g = trivial || !c->partner ? f : c->partner[f];
        part[f] = g;
        sg[f] = trivial || !c->partner ? 1.0f : (float)c->sign[f];
        if (g < f) orb[f] = orb[g];
        else first[o.norb] = f, orb[f] = o.norb++;
    }
    for (int k = 0; k < bt->de; k++) oe[k] = orb[bt->b->ef[k]];
    for (int k = 0; k < bt->dod; k++) oo[k] = orb[bt->b->of[k]];
    o.orb = kir_tab_int(l->k, orb, n);
    o.first = kir_tab_int(l->k, first, o.norb);
    o.partner = kir_tab_int(l->k, part, n);
    o.sign = kir_tab_float(l->k, sg, n);
    o.orbE = kir_tab_int(l->k, oe, bt->de);
    o.orbO = kir_tab_int(l->k, oo, bt->dod);
    sup_free(orb);
    sup_free(sg);
    return o;
}

/* ---- expression helpers ---------------------------------------------------------------- */

/* Where a parameter entry lives: params or state buffer, and its offset. */
void cg_ploc(L *l, const IrParamEntry *e, int *buf, long *off) {
    long i = e - l->m->layout->entries;
    *buf = l->m->entry_state[i] ? l->m->state_buf : l->m->params_buf;
    *off = l->m->entry_offset[i];
}
const IrParamEntry *cg_need(L *l, const IrNode *n, const char *name, int layer, int gate, int tap) {
    const IrParamEntry *e = ir_params_find(l->m->layout, n, name, layer, gate, tap);
    if (!e) sup_bug("lowering: %s %%%d has no parameter %s", ir_op_info[n->op].name, n->id, name);
    return e;
}
static long prep_alloc(L *l, long n) {
    long off = l->m->prep_size;
    l->m->prep_size += n;
    return off;
}

/* Even (odd) component `cvar` of x at index `row` (element = row + feature). */
KirExpr *cg_analyse_expr(L *l, const BT *t, bool even, KirIndex row, int cvar) {
    KirExpr *e = LD(l, withtab(row, even ? t->ef : t->of, cvar));
    if (!(even ? t->pairs_e : t->pairs_o)) return e;
    KirExpr *g = LD(l, withtab(row, even ? t->eg : t->og, cvar));
    return ADD(l, e, MUL(l, TV(l, even ? t->es : t->os, cvar), g));
}

/* The parts side by side, so that one kernel reads x once for both: the even and odd
 * analyses were two kernels that each read all of x (at batch 1024 the first block's
 * input is 85 M floats). */
CgEoTabs cg_eo_tabs(L *l, const BT *t, const bool parts[2], int k, long step, bool adjoint) {
    const IrBasis *b = t->b;
    CgEoTabs o = {.sh = -1};
    int cap = k * (t->de + t->dod) + 1;
    int *f1 = sup_malloc(sizeof(int) * 2 * (size_t)cap), *f2 = f1 + cap;
    float *sv = sup_malloc(sizeof(float) * 2 * (size_t)cap), *sh = sv + cap;
    for (int p = 0; p < 2; p++) {
        o.off[p] = o.n;
        int w = p ? t->dod : t->de;
        if (!parts[p]) continue;
        for (int tap = 0; tap < k; tap++)
            for (int c = 0; c < w; c++, o.n++) {
                o.pairs |= analyse_terms(b, p == 0, c, &f1[o.n], &f2[o.n], &sv[o.n]);
                f1[o.n] += (int)(tap * step), f2[o.n] += (int)(tap * step);
                sh[o.n] = (p ? b->og[c] : b->eg[c]) < 0 ? 1.0f : 0.5f;
            }
    }
    o.f1 = kir_tab_int(l->k, f1, o.n), o.f2 = kir_tab_int(l->k, f2, o.n), o.s = kir_tab_float(l->k, sv, o.n);
    if (adjoint) o.sh = kir_tab_float(l->k, sh, o.n);
    sup_free(f1);
    sup_free(sv);
    return o;
}

KirExpr *cg_eo_expr(L *l, const CgEoTabs *t, KirIndex row, int cvar) {
    KirExpr *e = LD(l, withtab(row, t->f1, cvar));
    if (t->pairs) e = ADD(l, e, MUL(l, TV(l, t->s, cvar), LD(l, withtab(row, t->f2, cvar))));
    return t->sh >= 0 ? MUL(l, TV(l, t->sh, cvar), e) : e;
}

/* Feature fvar of a map's output from its even and odd sources: ca*E + cb*O. */
KirExpr *cg_synth_expr(L *l, const BT *t, int fvar, const Src *ev, int ne, const Src *od, int no) {
    KirExpr *e = NULL;
    if (t->de > 0 && ne > 0) e = MUL(l, TV(l, t->ca, fvar), gather(l, ev, ne, t->ie, fvar));
    if (t->dod > 0 && no > 0) e = ADD(l, e, MUL(l, TV(l, t->cb, fvar), gather(l, od, no, t->io, fvar)));
    return e ? e : C(l, 0);
}

/* ---- linear maps ----------------------------------------------------------------------- */

Map cg_map_of(L *l, const IrNode *n, const char *a, const char *b, int layer, int gate) {
    Map m = {0};
    m.A0 = cg_need(l, n, a, layer, gate, 0);
    m.B0 = cg_need(l, n, b, layer, gate, 0);
    m.taps = n->op == IR_CONV1D ? n->a.kernel : 1;
    if (m.taps > 1) {
        int b0;
        long o0, o1;
        cg_ploc(l, m.A0, &b0, &o0);
        cg_ploc(l, cg_need(l, n, a, layer, gate, 1), &b0, &o1);
        m.tapstride = o1 - o0;
    }
    m.bo = cg_bt_of(l, m.A0->basis_out);
    m.bi = cg_bt_of(l, m.A0->basis_in);
    return m;
}

Fold cg_fold_of(L *l, const IrNode *bn, const BT *bt) {
    Fold f = {.bn = bn};
    f.gamma = cg_need(l, bn, "gamma", 0, 0, 0), f.beta = cg_need(l, bn, "beta", 0, 0, 0);
    f.mean = cg_need(l, bn, "mean", 0, 0, 0), f.var = cg_need(l, bn, "var", 0, 0, 0);
    f.orb = cg_orb_of(l, &bn->chi, bn->a.unconstrained || !bn->chi.partner, bt);
    f.eps = bn->a.eps > 0 ? bn->a.eps : 1e-5;
    return f;
}
/* gamma[orb] / sqrt(var[orb] + eps), the orbit gathered through table `orbtab` at var v. */
static KirExpr *bn_scale(L *l, const Fold *f, int orbtab, int v) {
    KirExpr *g = LD(l, withtab(PIX(l, f->gamma, 0), orbtab, v));
    KirExpr *var = LD(l, withtab(PIX(l, f->var, 0), orbtab, v));
    return kir_bin(l->k, KIR_E_DIV, g, kir_un(l->k, KIR_E_SQRT, ADD(l, var, C(l, f->eps))));
}

/* Dense W[Fout][tap][Fin] of a map into (buf, off), the taps side by side so that one
 * GEMM over an im2col row ([tap][Fin]) takes every tap, optionally scaled per output
 * feature by a folded batchnorm. Function l->fn or prepare. */
void cg_dense_build(L *l, KirFn fn, const Map *m, int buf, long off, const Fold *bn, const char *what) {
    const BT *bo = m->bo, *bi = m->bi;
    long Fo = bo->n, Fi = bi->n;
    KirDim ext[3] = {D(m->taps), D(Fo), D(Fi)};
    KirStep *s = kir_loop(l->k, fn, what, 3, ext);
    KirExpr *e = NULL;
    if (bo->de > 0 && bi->de > 0) {
        KirIndex a = PIX(l, m->A0, 0);
        kir_ix_var(&a, 0, m->tapstride);
        kir_ix_tab(&a, bo->ie, 1, bi->de);
        kir_ix_tab(&a, bi->kE, 2, 1);
        e = MUL(l, MUL(l, TV(l, bo->ca, 1), TV(l, bi->aE, 2)), LD(l, a));
    }
    if (bo->dod > 0 && bi->dod > 0) {
        KirIndex b = PIX(l, m->B0, 0);
        kir_ix_var(&b, 0, m->tapstride);
        kir_ix_tab(&b, bo->io, 1, bi->dod);
        kir_ix_tab(&b, bi->kO, 2, 1);
        e = ADD(l, e, MUL(l, MUL(l, TV(l, bo->cb, 1), TV(l, bi->aO, 2)), LD(l, b)));
    }
    if (!e) e = C(l, 0);
    if (bn) e = MUL(l, bn_scale(l, bn, bn->orb.orb, 1), e);
    kir_store(l->k, s, IXv(buf, off, Fi, (long)m->taps * Fi, 1, 0), e);
}

/* Full bias vector b[f] (Fout) of a dense map into (buf, off), with a folded BN:
 * sc[f] * (b[f] - mean[f]) + beta[f]. */
static void dense_bias(L *l, KirFn fn, const Map *m, int buf, long off, const Fold *bn, const char *what) {
    const BT *bo = m->bo;
    KirDim ext[1] = {D(bo->n)};
    KirStep *s = kir_loop(l->k, fn, what, 1, ext);
    Src b = {PIX(l, m->bias ? m->bias : m->A0, 0)};
    KirExpr *e = m->bias ? cg_synth_expr(l, bo, 0, &b, 1, NULL, 0) : C(l, 0);
    if (bn) {
        Src mu = {PIX(l, bn->mean, 0)}, be = {PIX(l, bn->beta, 0)};
        e = kir_bin(l->k, KIR_E_SUB, e, cg_synth_expr(l, bo, 0, &mu, 1, NULL, 0));
        e = ADD(l, MUL(l, bn_scale(l, bn, bn->orb.orb, 0), e), cg_synth_expr(l, bo, 0, &be, 1, NULL, 0));
    }
    kir_store(l->k, s, IXv(buf, off, 1, 0, 0, 0), e);
}

/* im2col rows (b, t) x (tap, feature) of x, zero outside [0, Ti): for the dense path,
 * or (even/odd set) the butterfly of each gathered frame for the folded path. */
static int im2col(L *l, const IrNode *n, int xbuf, int Ti, int To, int Fin, const BT *bi, int part,
                  long width) {
    int k = n->a.kernel, d = n->a.dilation > 0 ? n->a.dilation : 1;
    int s = n->a.stride > 0 ? n->a.stride : 1, pad = n->a.padding;
    const char *pn = part == 0 ? "even" : part == 1 ? "odd" : "dense";
    int col = temp(l, arena_printf(l->a, "%%%d col %s", n->id, pn), (long)To * k * width, 0);
    KirDim ext[4] = {NB(1), D(To), D(k), D(width)};
    KirStep *st = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: im2col (%s)", nname(l, n), pn), 4, ext);
    /* x[b][t*s + tap*d - pad][.] */
    KirIndex row = IXv(xbuf, -(long)pad * Fin, (long)Ti * Fin, (long)s * Fin, (long)d * Fin, 0);
    KirExpr *e;
    if (part == 2) e = LD(l, *kir_ix_var(&row, 3, 1));
    else e = cg_analyse_expr(l, bi, part == 0, row, 3);
    if (pad > 0) {
        /* every load of e shares the guard on the source frame */
        KirExpr *stack[8];
        int sp = 0;
        stack[sp++] = e;
        while (sp) {
            KirExpr *x = stack[--sp];
            if (x->op == KIR_E_LOAD) {
                x->idx.guard = true;
                x->idx.goff = -pad;
                x->idx.gcoef[1] = s, x->idx.gcoef[2] = d;
                x->idx.glimit = Ti;
            }
            for (int i = 0; i < kir_eop_arity[x->op]; i++)
                if (x->a[i]) stack[sp++] = x->a[i];
        }
    }
    kir_store(l->k, st, IXv(col, 0, (long)To * k * width, (long)k * width, width, 1), e);
    return col;
}

/* A folded map's even and odd input columns (the parts `need` asks for): one kernel that
 * gathers both side by side, taps included, where no tap reads outside x; with
 * padding, whose frame guards are per tap, an im2col kernel per part. */
static CgCols analysed_input(L *l, const IrNode *n, int xbuf, int Ti, int To, int Fin, const BT *bi,
                             const bool need[2], bool direct) {
    CgCols c = {{-1, -1}, {0, 0}, {0, 0}};
    if (!need[0] && !need[1]) return c;
    bool conv = n->op == IR_CONV1D;
    int k = conv ? n->a.kernel : 1, d = conv && n->a.dilation > 0 ? n->a.dilation : 1;
    int s = conv && n->a.stride > 0 ? n->a.stride : 1;
    if (!direct && n->a.padding > 0) {
        for (int p = 0; p < 2; p++) {
            long w = p ? bi->dod : bi->de;
            if (!need[p]) continue;
            c.buf[p] = im2col(l, n, xbuf, Ti, To, Fin, bi, p, w);
            c.ld[p] = k * w;
        }
        return c;
    }
    CgEoTabs t = cg_eo_tabs(l, bi, need, k, (long)d * Fin, false);
    const char *what = need[0] && need[1] ? "even, odd" : need[0] ? "even" : "odd";
    int buf = temp(l, arena_printf(l->a, "%%%d x %s", n->id, what), (long)To * t.n, 0);
    KirStep *st;
    KirIndex row;
    int cvar;
    if (direct) {
        KirDim ext[2] = {NB(To), D(t.n)};
        st = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: analyse (%s)", nname(l, n), what), 2, ext);
        row = IXv(xbuf, 0, Fin, 0, 0, 0), cvar = 1;
    } else {
        /* x[b][t s + tap d][.], the tap's d Fin in the tables */
        KirDim ext[3] = {NB(1), D(To), D(t.n)};
        st = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: im2col (%s)", nname(l, n), what), 3, ext);
        row = IXv(xbuf, 0, (long)Ti * Fin, (long)s * Fin, 0, 0), cvar = 2;
    }
    kir_store(l->k, st, direct ? IXv(buf, 0, t.n, 1, 0, 0) : IXv(buf, 0, (long)To * t.n, t.n, 1, 0),
              cg_eo_expr(l, &t, row, cvar));
    for (int p = 0; p < 2; p++)
        if (need[p]) c.buf[p] = buf, c.off[p] = t.off[p], c.ld[p] = t.n;
    return c;
}

/* The next node consumes only n and is a batchnorm over the same basis: fold it (inference). */
static const IrNode *foldable_bn(L *l, const IrNode *n, const BT *bo) {
    if (l->train) return NULL;
    int uses = 0;
    for (const IrNode *u = n->next; u; u = u->next)
        for (int i = 0; i < u->nin; i++) uses += !l->bwd[u->id] && u->in[i] == n;
    if (uses != 1) return NULL;
    for (const IrNode *u = n->next; u; u = u->next)
        for (int i = 0; u && !l->bwd[u->id] && i < u->nin; i++)
            if (u->in[i] == n) {
                if (u->op != IR_BATCHNORM) return NULL;
                const IrParamEntry *be = cg_need(l, u, "beta", 0, 0, 0);
                const IrBasis *b = be->basis_out, *o = bo->b;
                if (b->n != o->n || b->d_even != o->d_even || b->d_odd != o->d_odd) return NULL;
                if (memcmp(b->ef, o->ef, sizeof(int) * (size_t)b->d_even) ||
                    memcmp(b->eg, o->eg, sizeof(int) * (size_t)b->d_even) ||
                    memcmp(b->of, o->of, sizeof(int) * (size_t)b->d_odd) ||
                    memcmp(b->og, o->og, sizeof(int) * (size_t)b->d_odd))
                    return NULL;
                return u;
            }
    return NULL;
}

/* linear, conv1d, invariant. Returns the node that now holds the result (n, or
 * the batchnorm folded into it). */
const IrNode *cg_lower_linear(L *l, const IrNode *n) {
    const IrNode *x = n->in[0];
    int xbuf = l->val[x->id], Ti = frames(x), To = frames(n);
    Map m = cg_map_of(l, n, "A", "B", 0, 0);
    m.bias = ir_params_find(l->m->layout, n, "bias", 0, 0, 0);
    const BT *bo = m.bo, *bi = m.bi;
    int Fin = bi->n, Fo = bo->n, k = m.taps;
    const IrNode *bn = foldable_bn(l, n, bo);
    Fold fold;
    if (bn) fold = cg_fold_of(l, bn, bo);
    const IrNode *res = bn ? bn : n;
    int y = temp(l, arena_printf(l->a, "%%%d %s", res->id, ir_op_info[res->op].name), (long)To * Fo, 0);
    l->val[res->id] = y;
    const char *nm = nname(l, n);
    bool direct = k == 1 && (n->a.stride <= 1) && n->a.padding == 0 && Ti == To;
    int pb = l->m->prep_buf;

    if (l->m->opts.no_fold) {
        /* dense weights: prepared (inference) or rebuilt every step (training) */
        int wbuf;
        long woff = 0, boff = 0;
        bool has_bias = m.bias || bn;
        if (l->train) {
            wbuf = temp(l, arena_printf(l->a, "%%%d W dense", n->id), 0, (long)k * Fo * Fin + (has_bias ? Fo : 0));
            cg_dense_build(l, l->fn, &m, wbuf, 0, NULL, arena_printf(l->a, "%s: dense W", nm));
            boff = (long)k * Fo * Fin;
            if (has_bias) dense_bias(l, l->fn, &m, wbuf, boff, NULL, arena_printf(l->a, "%s: dense bias", nm));
        } else {
            wbuf = pb;
            woff = prep_alloc(l, (long)k * Fo * Fin);
            cg_dense_build(l, KIR_FN_PREPARE, &m, pb, woff, bn ? &fold : NULL, arena_printf(l->a, "%s: dense W", nm));
            if (has_bias) {
                boff = prep_alloc(l, Fo);
                dense_bias(l, KIR_FN_PREPARE, &m, pb, boff, bn ? &fold : NULL, arena_printf(l->a, "%s: dense bias", nm));
            }
        }
        /* stride = kernel, no dilation, padding or leftover frames: the im2col rows are x's
         * own frames k at a time, so the GEMM reads x (its copy was 26 ms a step at batch
         * 1024 in the bench's first block) */
        bool as_cols = n->op == IR_CONV1D && n->a.padding == 0 && n->a.dilation <= 1 && n->a.stride == k &&
                       Ti == (long)To * k;
        int src = direct || as_cols ? xbuf : im2col(l, n, xbuf, Ti, To, Fin, bi, 2, Fin);
        long lda = direct ? Fin : (long)k * Fin;
        l->xc[n->id] = (CgCols){{src, -1}, {0, 0}, {lda, 0}};
        if (Fin > 0) { /* every tap in one GEMM: the rows hold the taps side by side, as W does */
            KirGemm g = gemm_abt(NB(To), Fo, (long)k * Fin, src, 0, lda, wbuf, woff, (long)k * Fin, y, 0, Fo, 0.0f);
            kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: dense GEMM (%d taps)", nm, k), &g);
        }
        if (has_bias || Fin == 0) {
            KirDim ext[2] = {NB(To), D(Fo)};
            KirStep *s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: bias", nm), 2, ext);
            KirExpr *e = Fin > 0 ? LD(l, IXv(y, 0, Fo, 1, 0, 0)) : C(l, 0);
            if (has_bias) e = ADD(l, e, LD(l, IXv(wbuf, boff, 0, 1, 0, 0)));
            kir_store(l->k, s, IXv(y, 0, Fo, 1, 0, 0), e);
        }
        return res;
    }

    /* folded: butterfly (+ im2col), two GEMMs, synthesis + bias */
    int de = bi->de, dod = bi->dod, oe = bo->de, oo = bo->dod;
    bool need[2] = {de > 0 && oe > 0, dod > 0 && oo > 0};
    CgCols xc = analysed_input(l, n, xbuf, Ti, To, Fin, bi, need, direct);
    l->xc[n->id] = xc;
    int xe = xc.buf[0], xo = xc.buf[1];
    int ye = xe >= 0 ? temp(l, arena_printf(l->a, "%%%d y even", n->id), (long)To * oe, 0) : -1;
    int yo = xo >= 0 ? temp(l, arena_printf(l->a, "%%%d y odd", n->id), (long)To * oo, 0) : -1;
    int bbuf = -1;
    long boff = 0;
    if (l->train && k > 1) {
        /* taps side by side, copied from the parameters every step (a copy of the
         * weights against a GEMM over the batch): one GEMM of depth k de instead of k
         * GEMMs of depth de that each read and write all of y. The backward's dx
         * uses the copy too (l->wsb). */
        for (int part = 0; part < 2; part++) {
            int yb = part ? yo : ye, xb = xc.buf[part];
            long rows = part ? oo : oe, cols = part ? dod : de;
            if (yb < 0) continue;
            int w = temp(l, arena_printf(l->a, "%%%d %s weights, taps side by side", n->id, part ? "odd" : "even"), 0,
                         rows * k * cols);
            (part ? l->wsbo : l->wsbe)[n->id] = w;
            KirDim ext[3] = {D(rows), D(k), D(cols)};
            KirStep *s = kir_loop(l->k, l->fn,
                                  arena_printf(l->a, "%s: %s weights, taps side by side", nm, part ? "odd" : "even"), 3,
                                  ext);
            KirIndex wi = PIX(l, part ? m.B0 : m.A0, 0);
            kir_ix_var(&wi, 0, cols), kir_ix_var(&wi, 1, m.tapstride), kir_ix_var(&wi, 2, 1);
            kir_store(l->k, s, IXv(w, 0, (long)k * cols, cols, 1, 0), LD(l, wi));
            KirGemm g = gemm_abt(NB(To), rows, (long)k * cols, xb, xc.off[part], xc.ld[part], w, 0, (long)k * cols,
                                 yb, 0, rows, 0);
            kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: %s GEMM (%d taps)", nm, part ? "odd" : "even", k), &g);
        }
        if (m.bias) cg_ploc(l, m.bias, &bbuf, &boff);
    } else if (l->train) {
        for (int t = 0; t < k; t++) {
            long ao, bof;
            int pbuf;
            cg_ploc(l, m.A0, &pbuf, &ao);
            cg_ploc(l, m.B0, &pbuf, &bof);
            if (ye >= 0) {
                KirGemm g = gemm_abt(NB(To), oe, de, xe, xc.off[0] + (long)t * de, xc.ld[0], pbuf, ao + t * m.tapstride,
                                     de, ye, 0, oe, t ? 1.0f : 0.0f);
                kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: even GEMM tap %d", nm, t), &g);
            }
            if (yo >= 0) {
                KirGemm g = gemm_abt(NB(To), oo, dod, xo, xc.off[1] + (long)t * dod, xc.ld[1], pbuf,
                                     bof + t * m.tapstride, dod, yo, 0, oo, t ? 1.0f : 0.0f);
                kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: odd GEMM tap %d", nm, t), &g);
            }
        }
        if (m.bias) cg_ploc(l, m.bias, &bbuf, &boff);
    } else {
        /* prepare: taps side by side, batchnorm folded in */
        long we = prep_alloc(l, (long)oe * k * de), wo = prep_alloc(l, (long)oo * k * dod);
        for (int part = 0; part < 2; part++) {
            long rows = part ? oo : oe, cols = part ? dod : de;
            if (rows == 0 || cols == 0 || (part ? yo : ye) < 0) continue;
            KirDim ext[3] = {D(rows), D(k), D(cols)};
            KirStep *s = kir_loop(l->k, KIR_FN_PREPARE,
                                  arena_printf(l->a, "%s: %s weights, taps side by side%s", nm,
                                               part ? "odd" : "even", bn ? ", batchnorm folded" : ""),
                                  3, ext);
            KirIndex w = PIX(l, part ? m.B0 : m.A0, 0);
            kir_ix_var(&w, 0, cols), kir_ix_var(&w, 1, m.tapstride), kir_ix_var(&w, 2, 1);
            KirExpr *e = LD(l, w);
            if (bn) e = MUL(l, bn_scale(l, &fold, part ? fold.orb.orbO : fold.orb.orbE, 0), e);
            kir_store(l->k, s, IXv(pb, part ? wo : we, (long)k * cols, cols, 1, 0), e);
        }
        if (ye >= 0) {
            KirGemm g = gemm_abt(NB(To), oe, (long)k * de, xe, xc.off[0], xc.ld[0], pb, we, (long)k * de, ye, 0, oe, 0);
            kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: even GEMM (%d taps)", nm, k), &g);
        }
        if (yo >= 0) {
            KirGemm g = gemm_abt(NB(To), oo, (long)k * dod, xo, xc.off[1], xc.ld[1], pb, wo, (long)k * dod, yo, 0, oo,
                                 0);
            kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: odd GEMM (%d taps)", nm, k), &g);
        }
        if (bn) {
            boff = prep_alloc(l, oe);
            bbuf = pb;
            if (oe > 0) {
                KirDim ext[1] = {D(oe)};
                KirStep *s = kir_loop(l->k, KIR_FN_PREPARE, arena_printf(l->a, "%s: even bias, batchnorm folded", nm), 1, ext);
                KirExpr *b = m.bias ? LD(l, *kir_ix_var((KirIndex[]){PIX(l, m.bias, 0)}, 0, 1)) : C(l, 0);
                KirExpr *mu = LD(l, *kir_ix_var((KirIndex[]){PIX(l, fold.mean, 0)}, 0, 1));
                KirExpr *be = LD(l, *kir_ix_var((KirIndex[]){PIX(l, fold.beta, 0)}, 0, 1));
                KirExpr *e = ADD(l, MUL(l, bn_scale(l, &fold, fold.orb.orbE, 0), kir_bin(l->k, KIR_E_SUB, b, mu)), be);
                kir_store(l->k, s, IXv(pb, boff, 1, 0, 0, 0), e);
            }
        } else if (m.bias) {
            cg_ploc(l, m.bias, &bbuf, &boff);
        }
    }
    /* epilogue: y = S (ye + bias, yo) */
    KirDim ext[2] = {NB(To), D(Fo)};
    KirStep *s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: synthesise%s", nm, bbuf >= 0 ? " + bias" : ""), 2, ext);
    Src ev[2], od[1];
    int ne = 0, no = 0;
    if (ye >= 0) ev[ne++] = (Src){IXv(ye, 0, oe, 0, 0, 0)};
    if (bbuf >= 0 && oe > 0) ev[ne++] = (Src){IX(bbuf, boff)};
    if (yo >= 0) od[no++] = (Src){IXv(yo, 0, oo, 0, 0, 0)};
    kir_store(l->k, s, IXv(y, 0, Fo, 1, 0, 0), cg_synth_expr(l, bo, 1, ev, ne, od, no));
    return res;
}

/* ---- batchnorm ------------------------------------------------------------------------- */

KirExpr *cg_bn_train_expr(L *l, const IrNode *n, int xb) {
    int F = n->shape.feat, st = l->bnst[n->id];
    sup_assert(st >= 0);
    const IrParamEntry *eb = cg_need(l, n, "beta", 0, 0, 0);
    const BT *bt = cg_bt_of(l, eb->basis_out);
    KirExpr *e = MUL(l, kir_bin(l->k, KIR_E_SUB, LD(l, IXv(xb, 0, F, 1, 0, 0)), LD(l, IXv(st, BN_MU * (long)F, 0, 1, 0, 0))),
                     LD(l, IXv(st, BN_SCALE * (long)F, 0, 1, 0, 0)));
    return bt->de > 0 ? ADD(l, e, LD(l, IXv(st, BN_SHIFT * (long)F, 0, 1, 0, 0))) : e;
}

static void lower_batchnorm(L *l, const IrNode *n) {
    const IrNode *x = n->in[0];
    int xb = l->val[x->id], T = frames(n), F = n->shape.feat;
    const char *nm = nname(l, n);
    int y = temp(l, arena_printf(l->a, "%%%d batchnorm", n->id), (long)T * F, 0);
    l->val[n->id] = y;
    const IrParamEntry *eb = cg_need(l, n, "beta", 0, 0, 0);
    const BT *bt = cg_bt_of(l, eb->basis_out);
    Fold f = cg_fold_of(l, n, bt);
    Src beta = {PIX(l, f.beta, 0)};
    KirDim ext2[2] = {NB(T), D(F)}, ext1[1] = {D(F)};
    if (!l->train) {
        /* standalone at inference: scale and shift from the running statistics */
        long sc = prep_alloc(l, 2L * F);
        int pb = l->m->prep_buf;
        KirStep *s = kir_loop(l->k, KIR_FN_PREPARE, arena_printf(l->a, "%s: scale and shift", nm), 1, ext1);
        kir_store(l->k, s, IXv(pb, sc, 1, 0, 0, 0), bn_scale(l, &f, f.orb.orb, 0));
        Src mu = {PIX(l, f.mean, 0)}, b0 = beta;
        KirExpr *mean = bt->de > 0 ? cg_synth_expr(l, bt, 0, &mu, 1, NULL, 0) : C(l, 0);
        KirExpr *sh = kir_bin(l->k, KIR_E_SUB, bt->de > 0 ? cg_synth_expr(l, bt, 0, &b0, 1, NULL, 0) : C(l, 0),
                              MUL(l, mean, LD(l, IXv(pb, sc, 1, 0, 0, 0))));
        kir_store(l->k, s, IXv(pb, sc + F, 1, 0, 0, 0), sh);
        s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: apply", nm), 2, ext2);
        KirExpr *e = ADD(l, MUL(l, LD(l, IXv(xb, 0, F, 1, 0, 0)), LD(l, IXv(pb, sc, 0, 1, 0, 0))),
                         LD(l, IXv(pb, sc + F, 0, 1, 0, 0)));
        kir_store(l->k, s, IXv(y, 0, F, 1, 0, 0), e);
        return;
    }
    /* training: statistics of the augmented batch {x, T x} */
    int st = temp(l, arena_printf(l->a, "%%%d batch statistics", n->id), 0, BN_NSTATS * (long)F);
    l->bnst[n->id] = st;
    long M = BN_M * (long)F, MU = BN_MU * (long)F, DV = BN_D * (long)F, VAR = BN_VAR * (long)F, SC = BN_SCALE * (long)F;
    KirExpr *rows = MUL(l, kir_batch(l->k), C(l, T));
    KirStep *s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: mean", nm), 1, ext1);
    kir_loop_red(s, NB(T));
    KirIndex xr = IXv(xb, 0, 1, 0, 0, 0);
    xr.coef[KIR_RVAR] = F;
    kir_store(l->k, s, IXv(st, M, 1, 0, 0, 0), kir_bin(l->k, KIR_E_DIV, kir_un(l->k, KIR_E_SUM, LD(l, xr)), rows));
    s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: mean of the augmented batch", nm), 1, ext1);
    KirExpr *mp = LD(l, withtab(IX(st, M), f.orb.partner, 0));
    kir_store(l->k, s, IXv(st, MU, 1, 0, 0, 0),
              MUL(l, C(l, 0.5), ADD(l, LD(l, IXv(st, M, 1, 0, 0, 0)), MUL(l, TV(l, f.orb.sign, 0), mp))));
    s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: centred second moment", nm), 1, ext1);
    kir_loop_red(s, NB(T));
    KirExpr *dx = kir_bin(l->k, KIR_E_SUB, LD(l, xr), LD(l, IXv(st, MU, 1, 0, 0, 0)));
    kir_store(l->k, s, IXv(st, DV, 1, 0, 0, 0), kir_bin(l->k, KIR_E_DIV, kir_un(l->k, KIR_E_SUM, MUL(l, dx, dx)), rows));
    s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: variance pooled over partners, scale, shift", nm), 1, ext1);
    kir_store(l->k, s, IXv(st, VAR, 1, 0, 0, 0),
              MUL(l, C(l, 0.5), ADD(l, LD(l, IXv(st, DV, 1, 0, 0, 0)), LD(l, withtab(IX(st, DV), f.orb.partner, 0)))));
    KirExpr *g = LD(l, withtab(PIX(l, f.gamma, 0), f.orb.orb, 0));
    kir_store(l->k, s, IXv(st, SC, 1, 0, 0, 0),
              kir_bin(l->k, KIR_E_DIV, g, kir_un(l->k, KIR_E_SQRT, ADD(l, LD(l, IXv(st, VAR, 1, 0, 0, 0)), C(l, f.eps)))));
    if (bt->de > 0) kir_store(l->k, s, IXv(st, BN_SHIFT * (long)F, 1, 0, 0, 0), cg_synth_expr(l, bt, 0, &beta, 1, NULL, 0));
    s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: normalise", nm), 2, ext2);
    kir_store(l->k, s, IXv(y, 0, F, 1, 0, 0), cg_bn_train_expr(l, n, xb));
    /* running statistics (ir/interp.c update_running) */
    double mom = n->a.momentum;
    KirExpr *unbias = kir_select(l->k, kir_bin(l->k, KIR_E_GT, rows, C(l, 1)),
                                 kir_bin(l->k, KIR_E_DIV, rows, kir_bin(l->k, KIR_E_SUB, rows, C(l, 1))), C(l, 1));
    if (bt->de > 0) {
        KirDim e1[1] = {D(bt->de)};
        s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: running mean", nm), 1, e1);
        KirIndex rm = *kir_ix_var((KirIndex[]){PIX(l, f.mean, 0)}, 0, 1);
        KirExpr *mo = kir_momentum(l->k, mom);
        KirExpr *v = ADD(l, MUL(l, kir_bin(l->k, KIR_E_SUB, C(l, 1), mo), LD(l, rm)),
                         MUL(l, kir_momentum(l->k, mom), cg_analyse_expr(l, bt, true, IX(st, MU), 0)));
        kir_store(l->k, s, rm, v);
    }
    KirDim e1[1] = {D(f.orb.norb)};
    s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: running variance", nm), 1, e1);
    KirIndex rv = *kir_ix_var((KirIndex[]){PIX(l, f.var, 0)}, 0, 1);
    KirExpr *v = ADD(l, MUL(l, kir_bin(l->k, KIR_E_SUB, C(l, 1), kir_momentum(l->k, mom)), LD(l, rv)),
                     MUL(l, kir_momentum(l->k, mom), MUL(l, LD(l, withtab(IX(st, VAR), f.orb.first, 0)), unbias)));
    kir_store(l->k, s, rv, v);
}

/* ---- elementwise ------------------------------------------------------------------------- */

KirExpr *cg_act_expr(L *l, IrAct a, KirExpr *x, double slope) {
    KirProgram *k = l->k;
    switch (a) {
    case IR_ACT_RELU: return kir_bin(k, KIR_E_MAX, x, C(l, 0));
    case IR_ACT_LEAKY_RELU: return kir_select(k, kir_bin(k, KIR_E_GE, x, C(l, 0)), x, MUL(l, C(l, slope), x));
    case IR_ACT_ELU: return kir_select(k, kir_bin(k, KIR_E_GT, x, C(l, 0)), x, kir_un(k, KIR_E_EXPM1, x));
    case IR_ACT_GELU:
        return MUL(l, MUL(l, C(l, 0.5), x),
                   ADD(l, C(l, 1), kir_un(k, KIR_E_ERF, MUL(l, x, C(l, 0.70710678118654752440)))));
    case IR_ACT_SIGMOID: return kir_un(k, KIR_E_SIGMOID, x);
    case IR_ACT_TANH: return kir_un(k, KIR_E_TANH, x);
    case IR_ACT_SOFTSIGN: return kir_bin(k, KIR_E_DIV, x, ADD(l, C(l, 1), kir_un(k, KIR_E_ABS, x)));
    case IR_ACT_HARDTANH: return kir_bin(k, KIR_E_MIN, kir_bin(k, KIR_E_MAX, x, C(l, -1)), C(l, 1));
    default: sup_bug("lowering: unknown activation %d", (int)a);
    }
}

static int new_val(L *l, const IrNode *n) {
    int b = temp(l, arena_printf(l->a, "%%%d %s", n->id, ir_op_info[n->op].name), (long)frames(n) * n->shape.feat, 0);
    l->val[n->id] = b;
    return b;
}

/* y[r][f] = e(x[r][f]) over rows NB(T) and features; *xload gets the load of x. */
static KirStep *rowwise(L *l, const IrNode *n, int y, const char *what) {
    KirDim ext[2] = {NB(frames(n)), D(n->shape.feat)};
    (void)y;
    return kir_loop(l->k, l->fn, arena_printf(l->a, "%s: %s", nname(l, n), what), 2, ext);
}

static void copy_rows(L *l, const IrNode *n, int dst, long dld, long doff, int src, long sld, long soff,
                      long T, long F, const char *what) {
    KirDim ext[2] = {NB(T), D(F)};
    KirStep *s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: %s", nname(l, n), what), 2, ext);
    kir_store(l->k, s, IXv(dst, doff, dld, 1, 0, 0), LD(l, IXv(src, soff, sld, 1, 0, 0)));
}

/* ---- recurrences --------------------------------------------------------------------------- */

void cg_zero_fill(L *l, KirFn fn, int buf, long off, KirDim n, const char *what) {
    KirDim ext[1] = {n};
    KirStep *s = kir_loop(l->k, fn, what, 1, ext);
    kir_store(l->k, s, IXv(buf, off, 1, 0, 0, 0), C(l, 0));
}

void cg_lower_recurrent(L *l, const IrNode *n) {
    bool lstm = n->op == IR_LSTM, dense = l->m->opts.no_fold;
    int G = lstm ? 4 : 3, T = frames(n), H = n->shape.feat, Ls = n->a.layers > 0 ? n->a.layers : 1;
    const char *nm = nname(l, n);
    const IrNode *init = n->nin > 1 ? n->in[1] : NULL;
    int y = new_val(l, n);
    l->hfin[n->id] = arena_new_array(l->a, int, Ls);
    l->cfin[n->id] = arena_new_array(l->a, int, Ls);
    int in = l->val[n->in[0]->id];
    CgRecHist *hist = &l->rec[n->id];
    if (l->keep) {
        hist->x = arena_new_array(l->a, int, Ls), hist->hh = arena_new_array(l->a, int, Ls);
        hist->cc = arena_new_array(l->a, int, Ls), hist->gates = arena_new_array(l->a, int, Ls);
    }
    for (int ly = 0; ly < Ls; ly++) {
        int X = in, Fin = ly == 0 ? n->in[0]->shape.feat : H;
        int out = ly + 1 == Ls ? y : temp(l, arena_printf(l->a, "%%%d layer %d", n->id, ly), (long)T * H, 0);
        /* the history for the backward: h and c of every step, the gates of every step */
        int hh = -1, cc = -1;
        if (l->keep) {
            hh = temp(l, arena_printf(l->a, "%%%d h history l%d", n->id, ly), (long)T * H, 0);
            if (lstm) cc = temp(l, arena_printf(l->a, "%%%d c history l%d", n->id, ly), (long)T * H, 0);
            hist->x[ly] = X, hist->hh[ly] = hh, hist->cc[ly] = cc;
        }
        Map wx[4], wh[4];
        const IrParamEntry *bias[4], *bias_h = NULL;
        for (int g = 0; g < G; g++) {
            wx[g] = cg_map_of(l, n, "Wx.A", "Wx.B", ly, g);
            wh[g] = cg_map_of(l, n, "Wh.A", "Wh.B", ly, g);
            bias[g] = cg_need(l, n, "bias", ly, g, 0);
        }
        if (!lstm) bias_h = cg_need(l, n, "bias_h", ly, 2, 0);
        const BT *bx = wx[0].bi, *bh = wh[0].bi;
        sup_assert(bx->n == Fin && bh->n == H);
        /* states */
        int h = temp(l, arena_printf(l->a, "%%%d h[%d]", n->id, ly), H, 0);
        int c = lstm ? temp(l, arena_printf(l->a, "%%%d c[%d]", n->id, ly), H, 0) : -1;
        l->hfin[n->id][ly] = h;
        l->cfin[n->id][ly] = c;
        if (init) copy_rows(l, n, h, H, 0, l->hfin[init->id][ly], H, 0, 1, H, arena_printf(l->a, "h[%d] from %%%d", ly, init->id));
        else cg_zero_fill(l, l->fn, h, 0, NB(H), arena_printf(l->a, "%s: h[%d] = 0", nm, ly));
        if (lstm) {
            if (init && init->op == IR_LSTM)
                copy_rows(l, n, c, H, 0, l->cfin[init->id][ly], H, 0, 1, H, arena_printf(l->a, "c[%d] from %%%d", ly, init->id));
            else cg_zero_fill(l, l->fn, c, 0, NB(H), arena_printf(l->a, "%s: c[%d] = 0", nm, ly));
        }
        /* input part of every gate, all frames at once */
        int gx[4], gxo[4] = {-1, -1, -1, -1}, wd[4], whd[4];
        long wdo[4] = {0}, whdo[4] = {0};
        int xe = -1, xo = -1;
        if (dense) {
            for (int g = 0; g < G; g++) {
                KirFn wf = l->train ? l->fn : KIR_FN_PREPARE;
                if (l->train) {
                    wd[g] = temp(l, arena_printf(l->a, "%%%d Wx dense l%d g%d", n->id, ly, g), 0, (long)H * Fin);
                    whd[g] = temp(l, arena_printf(l->a, "%%%d Wh dense l%d g%d", n->id, ly, g), 0, (long)H * H);
                } else {
                    wd[g] = whd[g] = l->m->prep_buf;
                    wdo[g] = prep_alloc(l, (long)H * Fin);
                    whdo[g] = prep_alloc(l, (long)H * H);
                }
                cg_dense_build(l, wf, &wx[g], wd[g], wdo[g], NULL, arena_printf(l->a, "%s: dense Wx layer %d gate %d", nm, ly, g));
                cg_dense_build(l, wf, &wh[g], whd[g], whdo[g], NULL, arena_printf(l->a, "%s: dense Wh layer %d gate %d", nm, ly, g));
                gx[g] = temp(l, arena_printf(l->a, "%%%d x part l%d g%d", n->id, ly, g), (long)T * H, 0);
                if (Fin > 0) {
                    KirGemm gm = gemm_abt(NB(T), H, Fin, X, 0, Fin, wd[g], wdo[g], Fin, gx[g], 0, H, 0);
                    kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: x part, layer %d gate %d", nm, ly, g), &gm);
                } else {
                    cg_zero_fill(l, l->fn, gx[g], 0, NB((long)T * H), "x part = 0");
                }
            }
        } else {
            KirDim ext[2] = {NB(T), D(0)};
            if (bx->de > 0) {
                xe = temp(l, arena_printf(l->a, "%%%d x even l%d", n->id, ly), (long)T * bx->de, 0);
                ext[1] = D(bx->de);
                KirStep *s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: analyse x (even), layer %d", nm, ly), 2, ext);
                kir_store(l->k, s, IXv(xe, 0, bx->de, 1, 0, 0), cg_analyse_expr(l, bx, true, IXv(X, 0, Fin, 0, 0, 0), 1));
            }
            if (bx->dod > 0) {
                xo = temp(l, arena_printf(l->a, "%%%d x odd l%d", n->id, ly), (long)T * bx->dod, 0);
                ext[1] = D(bx->dod);
                KirStep *s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: analyse x (odd), layer %d", nm, ly), 2, ext);
                kir_store(l->k, s, IXv(xo, 0, bx->dod, 1, 0, 0), cg_analyse_expr(l, bx, false, IXv(X, 0, Fin, 0, 0, 0), 1));
            }
            for (int g = 0; g < G; g++) {
                const BT *bg = wx[g].bo;
                gx[g] = gxo[g] = -1;
                int pb;
                long ao, bo;
                cg_ploc(l, wx[g].A0, &pb, &ao);
                cg_ploc(l, wx[g].B0, &pb, &bo);
                if (bg->de > 0 && xe >= 0) {
                    gx[g] = temp(l, arena_printf(l->a, "%%%d x part even l%d g%d", n->id, ly, g), (long)T * bg->de, 0);
                    KirGemm gm = gemm_abt(NB(T), bg->de, bx->de, xe, 0, bx->de, pb, ao, bx->de, gx[g], 0, bg->de, 0);
                    kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: x part even, layer %d gate %d", nm, ly, g), &gm);
                }
                if (bg->dod > 0 && xo >= 0) {
                    gxo[g] = temp(l, arena_printf(l->a, "%%%d x part odd l%d g%d", n->id, ly, g), (long)T * bg->dod, 0);
                    KirGemm gm = gemm_abt(NB(T), bg->dod, bx->dod, xo, 0, bx->dod, pb, bo, bx->dod, gxo[g], 0, bg->dod, 0);
                    kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: x part odd, layer %d gate %d", nm, ly, g), &gm);
                }
            }
        }
        int gates = temp(l, arena_printf(l->a, "%%%d gates l%d", n->id, ly), (long)(l->keep ? T : 1) * (G + 1) * H, 0);
        if (l->keep) hist->gates[ly] = gates;
        /* the gates of step t: at gt in rows of gs (every step's, when kept) */
        long gs = (long)(l->keep ? T : 1) * (G + 1) * H;
        int he = -1, ho = -1, ghe[4];
        if (!dense) {
            if (bh->de > 0) he = temp(l, arena_printf(l->a, "%%%d h even l%d", n->id, ly), bh->de, 0);
            if (bh->dod > 0) ho = temp(l, arena_printf(l->a, "%%%d h odd l%d", n->id, ly), bh->dod, 0);
        }
        for (int g = 0; g < G; g++) {
            const BT *bg = wh[g].bo;
            long w = dense ? H : bg->de + bg->dod;
            ghe[g] = temp(l, arena_printf(l->a, "%%%d h part l%d g%d", n->id, ly, g), w, 0);
        }
        for (int t = 0; t < T; t++) {
            const char *at = arena_printf(l->a, "%s: layer %d step %d", nm, ly, t);
            long gt = l->keep ? (long)t * (G + 1) * H : 0;
            KirDim e2[2] = {NB(1), D(0)};
            if (!dense) {
                if (he >= 0) {
                    e2[1] = D(bh->de);
                    KirStep *s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: analyse h (even)", at), 2, e2);
                    kir_store(l->k, s, IXv(he, 0, bh->de, 1, 0, 0), cg_analyse_expr(l, bh, true, IXv(h, 0, H, 0, 0, 0), 1));
                }
                if (ho >= 0) {
                    e2[1] = D(bh->dod);
                    KirStep *s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: analyse h (odd)", at), 2, e2);
                    kir_store(l->k, s, IXv(ho, 0, bh->dod, 1, 0, 0), cg_analyse_expr(l, bh, false, IXv(h, 0, H, 0, 0, 0), 1));
                }
            }
            for (int g = 0; g < G; g++) {
                const BT *bg = wh[g].bo;
                if (dense) {
                    KirGemm gm = gemm_abt(NB(1), H, H, h, 0, H, whd[g], whdo[g], H, ghe[g], 0, H, 0);
                    kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: h part gate %d", at, g), &gm);
                    continue;
                }
                int pb;
                long ao, bo;
                cg_ploc(l, wh[g].A0, &pb, &ao);
                cg_ploc(l, wh[g].B0, &pb, &bo);
                long w = bg->de + bg->dod;
                if (bg->de > 0 && he >= 0) {
                    KirGemm gm = gemm_abt(NB(1), bg->de, bh->de, he, 0, bh->de, pb, ao, bh->de, ghe[g], 0, w, 0);
                    kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: h part even gate %d", at, g), &gm);
                }
                if (bg->dod > 0 && ho >= 0) {
                    KirGemm gm = gemm_abt(NB(1), bg->dod, bh->dod, ho, 0, bh->dod, pb, bo, bh->dod, ghe[g], bg->de, w, 0);
                    kir_gemm(l->k, l->fn, arena_printf(l->a, "%s: h part odd gate %d", at, g), &gm);
                }
            }
            /* gate pre-activations: x part + h part + bias, synthesised, activated */
            KirDim eg[2] = {NB(1), D(H)};
            KirStep *s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: gates", at), 2, eg);
            KirExpr *pre[4], *gxn = NULL, *ghn = NULL;
            for (int g = 0; g < G; g++) {
                const BT *bg = wx[g].bo;
                bool split = !lstm && g == 2; /* gru's n: r * (h part + bias_h) */
                KirExpr *xpart, *hpart;
                if (dense) {
                    Src bb = {PIX(l, bias[g], 0)};
                    xpart = ADD(l, LD(l, IXv(gx[g], (long)t * H, (long)T * H, 1, 0, 0)), cg_synth_expr(l, bg, 1, &bb, 1, NULL, 0));
                    hpart = LD(l, IXv(ghe[g], 0, H, 1, 0, 0));
                    if (split) {
                        Src bh2 = {PIX(l, bias_h, 0)};
                        hpart = ADD(l, hpart, cg_synth_expr(l, bg, 1, &bh2, 1, NULL, 0));
                    }
                } else {
                    long w = bg->de + bg->dod;
                    Src ev[4], od[4];
                    int ne = 0, no = 0;
                    if (gx[g] >= 0) ev[ne++] = (Src){IXv(gx[g], (long)t * bg->de, (long)T * bg->de, 0, 0, 0)};
                    ev[ne++] = (Src){PIX(l, bias[g], 0)};
                    if (gxo[g] >= 0) od[no++] = (Src){IXv(gxo[g], (long)t * bg->dod, (long)T * bg->dod, 0, 0, 0)};
                    Src hev[2], hod[1];
                    int nhe = 0, nho = 0;
                    if (he >= 0) hev[nhe++] = (Src){IXv(ghe[g], 0, w, 0, 0, 0)};
                    if (ho >= 0) hod[nho++] = (Src){IXv(ghe[g], bg->de, w, 0, 0, 0)};
                    if (split) {
                        hev[nhe++] = (Src){PIX(l, bias_h, 0)};
                        xpart = cg_synth_expr(l, bg, 1, ev, ne, od, no);
                        hpart = cg_synth_expr(l, bg, 1, hev, nhe, hod, nho);
                    } else {
                        for (int i = 0; i < nhe; i++) ev[ne++] = hev[i];
                        for (int i = 0; i < nho; i++) od[no++] = hod[i];
                        xpart = cg_synth_expr(l, bg, 1, ev, ne, od, no);
                        hpart = NULL;
                    }
                }
                if (split) {
                    gxn = xpart, ghn = hpart;
                    continue;
                }
                pre[g] = hpart && dense ? ADD(l, xpart, hpart) : xpart;
                bool cand = lstm && g == 2;
                kir_store(l->k, s, IXv(gates, gt + (long)g * H, gs, 1, 0, 0),
                          kir_un(l->k, cand ? KIR_E_TANH : KIR_E_SIGMOID, pre[g]));
            }
            /* the cell */
            s = kir_loop(l->k, l->fn, arena_printf(l->a, "%s: cell", at), 2, eg);
#define GATE(g) LD(l, IXv(gates, gt + (long)(g) * H, gs, 1, 0, 0))
            KirIndex hi = IXv(h, 0, H, 1, 0, 0);
            if (lstm) {
                KirIndex ci = IXv(c, 0, H, 1, 0, 0);
                kir_store(l->k, s, ci, ADD(l, MUL(l, GATE(1), LD(l, ci)), MUL(l, GATE(0), GATE(2))));
                kir_store(l->k, s, hi, MUL(l, GATE(3), kir_un(l->k, KIR_E_TANH, LD(l, ci))));
                if (l->keep) kir_store(l->k, s, IXv(cc, (long)t * H, (long)T * H, 1, 0, 0), LD(l, ci));
            } else {
                if (l->keep) { /* slot 2 keeps the h part of n for the backward */
                    kir_store(l->k, s, IXv(gates, gt + 2L * H, gs, 1, 0, 0), ghn);
                    ghn = GATE(2);
                }
                KirExpr *nn = kir_un(l->k, KIR_E_TANH, ADD(l, gxn, MUL(l, GATE(0), ghn)));
                kir_store(l->k, s, IXv(gates, gt + 3L * H, gs, 1, 0, 0), nn);
                KirExpr *z = GATE(1);
                kir_store(l->k, s, hi, ADD(l, MUL(l, kir_bin(l->k, KIR_E_SUB, C(l, 1), z), GATE(3)), MUL(l, GATE(1), LD(l, hi))));
            }
#undef GATE
            KirExpr *hv = LD(l, hi);
            if (l->keep) kir_store(l->k, s, IXv(hh, (long)t * H, (long)T * H, 1, 0, 0), hv);
            if (ly + 1 < Ls && l->train && n->a.p > 0) {
                /* PyTorch: dropout on every layer's output but the last */
                KirIndex cnt = IXv(-1, (long)t * H, (long)T * H, 1, 0, 0);
                hv = MUL(l, hv, kir_dropmask(l->k, n->a.p, ((uint64_t)n->id << 8) | (uint64_t)(ly + 1), cnt));
            }
            kir_store(l->k, s, IXv(out, (long)t * H, (long)T * H, 1, 0, 0), hv);
        }
        in = out;
    }
}

/* ---- every op ------------------------------------------------------------------------------ */

static bool lower_node(L *l, const IrNode *n) {
    if (l->val[n->id] >= 0) return true; /* folded into its producer */
    if (l->bwd[n->id]) return true; /* the training graph's backward half: a later round lowers it */
    const IrNode *x = n->nin ? n->in[0] : NULL;
    int xb = x ? l->val[x->id] : -1, T = frames(n), F = n->shape.feat;
    KirProgram *k = l->k;
    switch (n->op) {
    case IR_INPUT:
        l->val[n->id] = l->m->input_buf[n->a.io];
        return true;
    case IR_OUTPUT: {
        int ob = l->m->output_buf[n->a.io];
        l->val[n->id] = ob;
        copy_rows(l, n, ob, F, 0, xb, F, 0, T, F, "copy out");
        return true;
    }
    case IR_LINEAR:
    case IR_CONV1D:
    case IR_INVARIANT:
        cg_lower_linear(l, n);
        return true;
    case IR_BATCHNORM:
        lower_batchnorm(l, n);
        return true;
    case IR_DROPOUT: {
        if (!l->train || n->a.p <= 0) {
            l->val[n->id] = xb; /* identity: the same buffer */
            return true;
        }
        int y = new_val(l, n);
        KirDim ext[1] = {NB((long)T * F)};
        KirStep *s = kir_loop(k, l->fn, arena_printf(l->a, "%s: inverted dropout", nname(l, n)), 1, ext);
        kir_store(k, s, IXv(y, 0, 1, 0, 0, 0),
                  MUL(l, LD(l, IXv(xb, 0, 1, 0, 0, 0)),
                      kir_dropmask(k, n->a.p, (uint64_t)n->id << 8, IXv(-1, 0, 1, 0, 0, 0))));
        return true;
    }
    case IR_ACT: {
        int y = new_val(l, n);
        KirStep *s = rowwise(l, n, y, ir_act_name[n->a.act]);
        const IrChi *c = &x->chi;
        bool mixed = c->partner && n->a.act != n->a.act_neg && ir_chi_has_negated(c);
        KirExpr *xv = LD(l, IXv(xb, 0, F, 1, 0, 0)), *e;
        if (!mixed) {
            bool all_neg = c->partner && ir_chi_has_negated(c);
            if (all_neg) {
                for (int f = 0; f < c->n; f++) all_neg &= c->sign[f] < 0;
            }
            e = cg_act_expr(l, all_neg ? n->a.act_neg : n->a.act, xv, n->a.slope);
        } else {
            float *neg = sup_malloc(sizeof(float) * (size_t)(F + 1));
            for (int f = 0; f < F; f++) neg[f] = c->sign[f] < 0 ? 1.0f : 0.0f;
            int tb = kir_tab_float(k, neg, F);
            sup_free(neg);
            e = kir_select(k, kir_bin(k, KIR_E_GT, TV(l, tb, 1), C(l, 0.5)), cg_act_expr(l, n->a.act_neg, xv, n->a.slope),
                           cg_act_expr(l, n->a.act, xv, n->a.slope));
        }
        kir_store(k, s, IXv(y, 0, F, 1, 0, 0), e);
        return true;
    }
    case IR_ADD:
    case IR_SUB: {
        int y = new_val(l, n), b = l->val[n->in[1]->id];
        KirDim ext[1] = {NB((long)T * F)};
        KirStep *s = kir_loop(k, l->fn, nname(l, n), 1, ext);
        kir_store(k, s, IXv(y, 0, 1, 0, 0, 0),
                  kir_bin(k, n->op == IR_ADD ? KIR_E_ADD : KIR_E_SUB, LD(l, IXv(xb, 0, 1, 0, 0, 0)),
                          LD(l, IXv(b, 0, 1, 0, 0, 0))));
        return true;
    }
    case IR_CONCAT: {
        int y = new_val(l, n);
        long off = 0;
        for (int i = 0; i < n->nin; i++) {
            int Fi = n->in[i]->shape.feat;
            copy_rows(l, n, y, F, off, l->val[n->in[i]->id], Fi, 0, T, Fi, arena_printf(l->a, "part %d", i));
            off += Fi;
        }
        return true;
    }
    case IR_CROP: {
        int y = new_val(l, n), Tx = frames(x);
        KirDim ext[3] = {NB(1), D(T), D(F)};
        KirStep *s = kir_loop(k, l->fn, arena_printf(l->a, "%s", nname(l, n)), 3, ext);
        kir_store(k, s, IXv(y, 0, (long)T * F, F, 1, 0),
                  LD(l, IXv(xb, (long)n->a.crop * F, (long)Tx * F, (long)n->a.stride * F, 1, 0)));
        return true;
    }
    case IR_MEANPOOL: {
        int y = new_val(l, n), Tx = frames(x);
        KirDim ext[2] = {NB(1), D(F)};
        KirStep *s = kir_loop(k, l->fn, arena_printf(l->a, "%s: mean over time", nname(l, n)), 2, ext);
        kir_loop_red(s, D(Tx));
        KirIndex xi = IXv(xb, 0, (long)Tx * F, 1, 0, 0);
        xi.coef[KIR_RVAR] = F;
        kir_store(k, s, IXv(y, 0, F, 1, 0, 0), kir_bin(k, KIR_E_DIV, kir_un(k, KIR_E_SUM, LD(l, xi)), C(l, Tx)));
        return true;
    }
    case IR_LAST: {
        int y = new_val(l, n), Tx = frames(x);
        copy_rows(l, n, y, F, 0, xb, (long)Tx * F, (long)(Tx - 1) * F, 1, F, "last frame");
        return true;
    }
    case IR_REPEAT: {
        int y = new_val(l, n);
        KirDim ext[3] = {NB(1), D(T), D(F)};
        KirStep *s = kir_loop(k, l->fn, nname(l, n), 3, ext);
        kir_store(k, s, IXv(y, 0, (long)T * F, F, 1, 0), LD(l, IXv(xb, 0, F, 0, 1, 0)));
        return true;
    }
    case IR_FLATTEN:
        l->val[n->id] = xb; /* [T][F] row-major is already frame-major */
        return true;
    case IR_SOFTMAX: {
        int y = new_val(l, n);
        int mx = temp(l, arena_printf(l->a, "%%%d row max and sum", n->id), 2L * T, 0);
        KirDim e1[1] = {NB(T)}, e2[2] = {NB(T), D(F)};
        KirIndex xr = IXv(xb, 0, F, 0, 0, 0);
        xr.coef[KIR_RVAR] = 1;
        KirStep *s = kir_loop(k, l->fn, arena_printf(l->a, "%s: row max", nname(l, n)), 1, e1);
        kir_loop_red(s, D(F));
        kir_store(k, s, IXv(mx, 0, 2, 0, 0, 0), kir_un(k, KIR_E_RMAX, LD(l, xr)));
        s = kir_loop(k, l->fn, arena_printf(l->a, "%s: exp", nname(l, n)), 2, e2);
        kir_store(k, s, IXv(y, 0, F, 1, 0, 0),
                  kir_un(k, KIR_E_EXP, kir_bin(k, KIR_E_SUB, LD(l, IXv(xb, 0, F, 1, 0, 0)), LD(l, IXv(mx, 0, 2, 0, 0, 0)))));
        KirIndex yr = IXv(y, 0, F, 0, 0, 0);
        yr.coef[KIR_RVAR] = 1;
        s = kir_loop(k, l->fn, arena_printf(l->a, "%s: row sum", nname(l, n)), 1, e1);
        kir_loop_red(s, D(F));
        kir_store(k, s, IXv(mx, 1, 2, 0, 0, 0), kir_un(k, KIR_E_SUM, LD(l, yr)));
        s = kir_loop(k, l->fn, arena_printf(l->a, "%s: normalise", nname(l, n)), 2, e2);
        kir_store(k, s, IXv(y, 0, F, 1, 0, 0),
                  kir_bin(k, KIR_E_DIV, LD(l, IXv(y, 0, F, 1, 0, 0)), LD(l, IXv(mx, 1, 2, 0, 0, 0))));
        return true;
    }
    case IR_LSTM:
    case IR_GRU:
        cg_lower_recurrent(l, n);
        return true;
    default:
        sup_bug("lowering: op %s not handled", ir_op_info[n->op].name);
    }
}

/* ---- the model ------------------------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

const char *cg_fingerprint(Arena *a, const IrProgram *p) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) sup_bug("open_memstream failed");
    ir_print(f, p);
    fclose(f);
    /* neither the train block nor the backward half of a training graph changes
     * what a checkpoint holds */
    int nn = 0;
    ir_foreach(p, n) nn = n->id + 1 > nn ? n->id + 1 : nn;
    bool *bwd = sup_malloc(sizeof(bool) * (size_t)(nn + 1));
    memset(bwd, 0, sizeof(bool) * (size_t)(nn + 1));
    ir_foreach(p, n) {
        bwd[n->id] = ir_op_has(n->op, OPF_TRAIN);
        for (int i = 0; i < n->nin; i++) bwd[n->id] |= bwd[n->in[i]->id];
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line + 1) : strlen(line);
        long id = line[0] == '%' ? strtol(line + 1, NULL, 10) : -1;
        bool skip = strncmp(line, "train:", 6) == 0 || (id >= 0 && id < nn && bwd[id]);
        if (!skip) h = fnv1a(h, line, n);
        line += n;
    }
    sup_free(bwd);
    free(text);
    return arena_printf(a, "fnv1a64:%016llx", (unsigned long long)h);
}

CgModel *cg_lower(IrProgram *p, const CgOptions *o) {
    Arena *a = p->arena;
    for (int i = 0; i < p->ninputs; i++) {
        const IrDecl *d = p->inputs[i];
        if (d->seq && (!d->node || d->node->shape.time <= 0)) {
            diag_error(p->diag, d->loc, "input '%s' is a sequence without a length: give seq(N) to compile it",
                       d->name);
            return NULL;
        }
    }
    CgModel *m = arena_alloc(a, sizeof *m);
    m->prog = p;
    m->opts = o ? *o : (CgOptions){0};
    m->layout = ir_params_new(a, p);
    m->k = kir_program_new(a);
    m->fingerprint = cg_fingerprint(a, p);
    int ne = m->layout->nentries;
    m->entry_offset = arena_new_array(a, long, ne + 1);
    m->entry_state = arena_new_array(a, bool, ne + 1);
    for (int i = 0; i < ne; i++) {
        const IrParamEntry *e = &m->layout->entries[i];
        long sz = (long)e->rows * e->cols;
        m->entry_state[i] = !e->trainable;
        m->entry_offset[i] = e->trainable ? m->params_size : m->state_size;
        if (e->trainable) m->params_size += sz;
        else m->state_size += sz;
    }
    KirProgram *k = m->k;
    m->params_buf = kir_buf(k, "params", KIR_BUF_PARAM, 0, m->params_size);
    m->state_buf = kir_buf(k, "state", KIR_BUF_STATE, 0, m->state_size);
    m->prep_buf = kir_buf(k, "prep", KIR_BUF_PREP, 0, 0);
    m->input_buf = arena_new_array(a, int, p->ninputs + 1);
    m->output_buf = arena_new_array(a, int, p->noutputs + 1);
    m->input_frames = arena_new_array(a, int, p->ninputs + 1);
    m->output_frames = arena_new_array(a, int, p->noutputs + 1);
    for (int i = 0; i < p->ninputs; i++) {
        const IrNode *n = p->inputs[i]->node;
        m->input_frames[i] = n->shape.time == IR_NO_TIME ? 0 : n->shape.time;
        m->input_buf[i] = kir_buf(k, p->inputs[i]->name, KIR_BUF_INPUT, (long)frames(n) * n->shape.feat, 0);
        k->bufs[m->input_buf[i]].io = i;
    }
    for (int i = 0; i < p->noutputs; i++) {
        const IrNode *n = p->outputs[i]->node;
        m->output_frames[i] = n->shape.time == IR_NO_TIME ? 0 : n->shape.time;
        m->output_buf[i] = kir_buf(k, p->outputs[i]->name, KIR_BUF_OUTPUT, (long)frames(n) * n->shape.feat, 0);
        k->bufs[m->output_buf[i]].io = i;
    }
    L l = {.m = m, .k = k, .p = p, .a = a};
    int nn = m->layout->nnodes;
    l.val = arena_new_array(a, int, nn + 1);
    l.hfin = arena_new_array(a, int *, nn + 1);
    l.cfin = arena_new_array(a, int *, nn + 1);
    l.bwd = arena_new_array(a, bool, nn + 1);
    l.xc = arena_new_array(a, CgCols, nn + 1);
    l.bnst = arena_new_array(a, int, nn + 1);
    l.wsbe = arena_new_array(a, int, nn + 1);
    l.wsbo = arena_new_array(a, int, nn + 1);
    l.rec = arena_new_array(a, CgRecHist, nn + 1);
    ir_foreach(p, n) {
        l.bwd[n->id] = ir_op_has(n->op, OPF_TRAIN);
        for (int i = 0; i < n->nin; i++) l.bwd[n->id] |= l.bwd[n->in[i]->id];
    }
    for (int mode = 0; mode < 2; mode++) {
        l.train = mode == 1;
        l.keep = l.train && p->training; /* what the backward of a recurrence reads */
        l.fn = l.train ? KIR_FN_TRAIN : KIR_FN_INFER;
        for (int i = 0; i < nn; i++) {
            l.val[i] = l.bnst[i] = l.wsbe[i] = l.wsbo[i] = -1;
            l.xc[i] = (CgCols){{-1, -1}, {0, 0}, {0, 0}};
        }
        memset(l.rec, 0, sizeof(CgRecHist) * (size_t)(nn + 1));
        ir_foreach(p, n) if (!lower_node(&l, n)) return NULL;
        if (p->training && !cg_lower_backward(&l)) return NULL;
    }
    k->bufs[m->prep_buf].fixed = m->prep_size;
    cg_export_lower(m);
    if (!m->opts.no_fuse) cg_fuse(k);
    cg_plan(k);
    const char *why = NULL;
    if (!kir_verify(k, &why)) sup_bug("lowering produced a broken kernel IR: %s", why);
    return m;
}

void cg_params_from_ir(const CgModel *m, const IrParams *w, float *params, float *state) {
    for (int i = 0; i < m->layout->nentries; i++) {
        const IrParamEntry *e = &m->layout->entries[i];
        const double *src = w->data + w->entries[i].offset;
        float *dst = (m->entry_state[i] ? state : params) + m->entry_offset[i];
        for (long j = 0; j < (long)e->rows * e->cols; j++) dst[j] = (float)src[j];
    }
}

bool cg_fixed_zero_sets(const IrParams *w, const IrParamEntry *x, int **rows, int *nr, int **cols, int *nc) {
    int *r_ = sup_malloc(sizeof(int) * (size_t)(x->rows + x->cols + 1)), *c_ = r_ + x->rows;
    *nr = *nc = 0;
    for (int r = 0; r < x->rows; r++)
        for (int c = 0; c < x->cols; c++)
            if (ir_params_fixed_zero(w, x, r, c)) {
                r_[(*nr)++] = r;
                break;
            }
    for (int c = 0; c < x->cols; c++)
        for (int r = 0; r < x->rows; r++)
            if (ir_params_fixed_zero(w, x, r, c)) {
                c_[(*nc)++] = c;
                break;
            }
    if (*nr && *nc) {
        *rows = r_;
        *cols = c_;
        return true;
    }
    sup_free(r_);
    return false;
}
