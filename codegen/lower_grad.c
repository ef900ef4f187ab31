/* codegen/lower_grad.c: the backward half of the training graph (docs/design.md
 * "Training graph") -> the kernel IR functions backward_infer / backward_train.
 *
 * The float64 interpreter (ir/interp_grad.c) is the reference: every grad and
 * pgrad node computes what it computes there. Decisions (docs/kernel-ir.md):
 * - The runtime computes the loss and dL/d(output) (RtExec.doutputs); the
 *   target and loss nodes are not lowered, the gradient of the loss's output is
 *   the doutputs buffer.
 * - A backward runs after the forward of its mode on the same batch and reads
 *   what that forward computed (the memory plan keeps it alive): the values of
 *   the nodes, a map's analysed (im2col'd) input, a training batchnorm's
 *   statistics, a recurrence's per-step history. Inference mode, which only
 *   tests use, recomputes what forward_infer folded away (a map whose batchnorm
 *   was folded into it, the recurrences' histories).
 * - Folded maps: (dye, dyo) = S^T dy per frame; dA_tap = dye^T xe_col(tap),
 *   dB_tap likewise (one GEMM each over every batch row); dx = Q^T (dye A,
 *   dyo B) with one strided-batched GEMM per tap whose output rows step by the
 *   stride (the transposed convolution), then the adjoint butterfly.
 * - --no-fold: dW = dy^T col (every tap, [out][tap][in]), then the adjoint of the densify map
 *   W = S_out blockdiag(A, B) Q_in: dA = [S_out^T dW Q_in^T]_even,even, dB the
 *   odd block, so the gradients are exactly those of the folded parameters.
 * - Recurrences: back-propagation through the unrolled steps; per step an
 *   elementwise cell kernel and the hidden part's GEMMs (one per gate), then
 *   the input part and every weight gradient as GEMMs over all frames.
 * - RtExec.grads is overwritten: every trainable entry is written (zero for a
 *   layer the loss does not reach, and for the weights sharing = paper holds
 *   at zero). */
#include <string.h>

#include "codegen/lower_int.h"

typedef struct B {
    L *l;
    int grads;            /* the KIR_BUF_GRAD buffer */
    CgCols *dyc;          /* by forward node id: S^T dy of a folded map (buf[0] -2: not yet) */
    int *bst;             /* by forward node id: batchnorm mu/inv/k/var */
    int *bsum, *bsumx;    /* by forward node id: batchnorm sums of dy and of dy (x - mu) */
    int *rdx, *rdinit;    /* by forward node id: a recurrence's input and initial-state gradients */
    bool *rdone;
    bool *has_pgrad, *want0; /* by forward node id: has a pgrad node; a grad wrt 0 */
} B;

static KirProgram *K(B *b) { return b->l->k; }
static KirFn FN(B *b) { return b->l->fn; }

/* ---- tables and expressions ------------------------------------------------------------------------ */

/* The adjoint of the synthesis takes half of a pair's two features, all of a centre's:
 * component c of S^T dx is sh[c] * (dx[ef] + es dx[eg]) (odd: of, og, os). */
static int sh_tab(B *b, const BT *t, bool even) {
    int n = even ? t->de : t->dod;
    float *v = sup_malloc(sizeof(float) * (size_t)(n + 1));
    for (int c = 0; c < n; c++) v[c] = (even ? t->b->eg[c] : t->b->og[c]) < 0 ? 1.0f : 0.5f;
    int tab = kir_tab_float(K(b), v, n);
    sup_free(v);
    return tab;
}

/* Component cvar of S^T applied to the feature row at `row`. */
static KirExpr *synth_t_expr(B *b, const BT *t, bool even, KirIndex row, int cvar) {
    L *l = b->l;
    return MUL(l, TV(l, sh_tab(b, t, even), cvar), cg_analyse_expr(l, t, even, row, cvar));
}

/* Feature fvar of Q^T (E, O): the adjoint of the analysis,
 * dx_f = aE[f] E[kE[f]] + aO[f] O[kO[f]]. */
static KirExpr *analyse_t_expr(B *b, const BT *t, int fvar, const Src *ev, int ne, const Src *od, int no) {
    L *l = b->l;
    KirExpr *e = NULL;
    if (t->de > 0 && ne > 0) e = MUL(l, TV(l, t->aE, fvar), gather(l, ev, ne, t->kE, fvar));
    if (t->dod > 0 && no > 0) e = ADD(l, e, MUL(l, TV(l, t->aO, fvar), gather(l, od, no, t->kO, fvar)));
    return e ? e : C(l, 0);
}

static KirExpr *SUB(L *l, KirExpr *a, KirExpr *c) { return kir_bin(l->k, KIR_E_SUB, a, c); }
static KirExpr *DIV(L *l, KirExpr *a, KirExpr *c) { return kir_bin(l->k, KIR_E_DIV, a, c); }

static KirStep *loop1(B *b, const char *what, KirDim e0) {
    KirDim ext[1] = {e0};
    return kir_loop(K(b), FN(b), what, 1, ext);
}
static KirStep *loop2(B *b, const char *what, KirDim e0, long e1) {
    KirDim ext[2] = {e0, D(e1)};
    return kir_loop(K(b), FN(b), what, 2, ext);
}
static KirStep *loop3(B *b, const char *what, KirDim e0, long e1, long e2) {
    KirDim ext[3] = {e0, D(e1), D(e2)};
    return kir_loop(K(b), FN(b), what, 3, ext);
}
static KirStep *loop4(B *b, const char *what, KirDim e0, long e1, long e2, long e3) {
    KirDim ext[4] = {e0, D(e1), D(e2), D(e3)};
    return kir_loop(K(b), FN(b), what, 4, ext);
}

static void gemm(B *b, const char *what, bool ta, bool tb, KirDim m, KirDim n, KirDim k, int abuf, long aoff,
                 long lda, int bbuf, long boff, long ldb, int cbuf, long coff, long ldc, float beta) {
    KirGemm g = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .alpha = 1, .beta = beta};
    g.a = (KirMat){abuf, aoff, lda, 0};
    g.b = (KirMat){bbuf, boff, ldb, 0};
    g.c = (KirMat){cbuf, coff, ldc, 0};
    kir_gemm(K(b), FN(b), what, &g);
}

/* Where the gradient of a trainable entry lives in RtExec.grads. */
static long goff(B *b, const IrParamEntry *e) {
    long i = e - b->l->m->layout->entries;
    sup_assert(!b->l->m->entry_state[i]);
    return b->l->m->entry_offset[i];
}

/* ---- forward values ------------------------------------------------------------------------------- */

static bool is_map(const IrNode *n) { return n->op == IR_LINEAR || n->op == IR_CONV1D || n->op == IR_INVARIANT; }

/* The forward value of n; a map whose batchnorm forward_infer folded into it is
 * recomputed unfolded (from the parameters) here. */
static int fval(B *b, const IrNode *n) {
    L *l = b->l;
    if (l->val[n->id] >= 0) return l->val[n->id];
    if (!is_map(n)) sup_bug("backward: %%%d %s has no forward value", n->id, ir_op_info[n->op].name);
    bool tr = l->train;
    l->train = true; /* weights from params, no batchnorm folded: nothing else differs for a map */
    cg_lower_linear(l, n);
    l->train = tr;
    return l->val[n->id];
}

/* ---- linear maps ---------------------------------------------------------------------------------- */

typedef struct Geo {
    int Ti, To, k, s, d, pad;
    bool direct;
    bool tiled; /* the taps tile the input (stride = kernel, no dilation, padding or leftover
                 * frames): an im2col row is k consecutive frames, each read by one tap */
} Geo;

static Geo geo_of(const IrNode *f) {
    Geo g = {frames(f->in[0]), frames(f), 1, 1, 1, 0, false, false};
    if (f->op == IR_CONV1D) {
        g.k = f->a.kernel, g.d = f->a.dilation > 0 ? f->a.dilation : 1;
        g.s = f->a.stride > 0 ? f->a.stride : 1, g.pad = f->a.padding;
    }
    g.direct = g.k == 1 && g.s == 1 && g.pad == 0 && g.Ti == g.To;
    g.tiled = g.pad == 0 && g.d == 1 && g.k == g.s && g.Ti == g.To * g.s;
    return g;
}

/* The output frames t in [*t0, *t1) whose tap reads an input frame. */
static void tap_range(const Geo *g, int tap, int *t0, int *t1) {
    long off = (long)tap * g->d - g->pad; /* src = t s + off */
    long lo = off >= 0 ? 0 : (-off + g->s - 1) / g->s;
    long hi = (g->Ti - 1 - off) >= 0 ? (g->Ti - 1 - off) / g->s + 1 : 0;
    if (hi > g->To) hi = g->To;
    *t0 = (int)lo, *t1 = (int)(hi > lo ? hi : lo);
}

/* dx[b][t s + off][.] += dy[b][t][.] W_tap for the frames where the tap reads x:
 * one GEMM per tap (rows of dx step by the stride), into dx of width w; dy is wy
 * columns at dyoff of rows ldy apart.
 *
 * Where every tap reads every output frame and Ti = To s (VideoPose3D's strided
 * training form: stride = kernel, no padding), sample b's rows follow sample b-1's
 * at the same strides in dy and in dx, so a tap is one GEMM over all N To rows
 * instead of a batch of N tiny ones (m = To: 1 to 27 rows). Where moreover the
 * taps tile the stride (k = s, d = 1), each row of dx is written by exactly one tap:
 * no zero fill, beta = 0. */
static void transposed_taps(B *b, const IrNode *f, const Geo *g, int dy, long dyoff, long ldy, long wy, int W,
                            long woff, long tapstride, long ldw, int dx, long wx, const char *what) {
    L *l = b->l;
    if (g->direct) {
        gemm(b, arena_printf(l->a, "%s", what), false, false, NB(g->To), D(wx), D(wy), dy, dyoff, ldy, W, woff, ldw, dx,
             0, wx, 0);
        return;
    }
    bool whole = g->pad == 0 && g->Ti == g->To * g->s && (long)(g->k - 1) * g->d < g->s;
    if (!g->tiled) cg_zero_fill(l, FN(b), dx, 0, NB((long)g->Ti * wx), arena_printf(l->a, "%s: zero", what));
    for (int tap = 0; tap < g->k; tap++) {
        int t0, t1;
        tap_range(g, tap, &t0, &t1);
        if (t1 <= t0) continue;
        KirGemm gm = {.ta = false, .tb = false, .m = D(t1 - t0), .n = D(wx), .k = D(wy), .alpha = 1,
                      .beta = g->tiled ? 0 : 1};
        gm.a = (KirMat){dy, dyoff + (long)t0 * ldy, ldy, (long)g->To * ldy};
        gm.b = (KirMat){W, woff + tap * tapstride, ldw, 0};
        gm.c = (KirMat){dx, ((long)t0 * g->s + (long)tap * g->d - g->pad) * wx, (long)g->s * wx, (long)g->Ti * wx};
        gm.count = NB(1);
        if (whole) { /* t0 = 0, t1 = To: one GEMM over every sample's rows */
            sup_assert(t0 == 0 && t1 == g->To);
            gm.m = NB(g->To), gm.count = D(0);
            gm.a.stride = gm.c.stride = 0;
        }
        kir_gemm(K(b), FN(b), arena_printf(l->a, "%s tap %d", what, tap), &gm);
    }
    (void)f;
}

/* S^T dy of a folded map, even and odd side by side in one buffer (b->dyc), cached per
 * forward node: one kernel that reads dy once. */
static void map_dyeo(B *b, const IrNode *f, const Map *m, int dy) {
    if (b->dyc[f->id].buf[0] != -2) return;
    L *l = b->l;
    const BT *bo = m->bo;
    CgCols *c = &b->dyc[f->id];
    *c = (CgCols){{-1, -1}, {0, 0}, {0, 0}};
    bool parts[2] = {bo->de > 0, bo->dod > 0};
    if (!parts[0] && !parts[1]) return;
    CgEoTabs t = cg_eo_tabs(l, bo, parts, 1, 0, true);
    int buf = temp(l, arena_printf(l->a, "%%%d dy even, odd", f->id), (long)frames(f) * t.n, 0);
    KirStep *s = loop2(b, arena_printf(l->a, "%s: S^T dy (even, odd)", nname(l, f)), NB(frames(f)), t.n);
    kir_store(K(b), s, IXv(buf, 0, t.n, 1, 0, 0), cg_eo_expr(l, &t, IXv(dy, 0, bo->n, 0, 0, 0), 1));
    for (int p = 0; p < 2; p++)
        if (parts[p]) c->buf[p] = buf, c->off[p] = t.off[p], c->ld[p] = t.n;
}

static Map map_full(B *b, const IrNode *f) {
    Map m = cg_map_of(b->l, f, "A", "B", 0, 0);
    m.bias = ir_params_find(b->l->m->layout, f, "bias", 0, 0, 0);
    return m;
}

/* The dense W of a map (every tap), built from the parameters in this function. */
static int dense_w(B *b, const IrNode *f, const Map *m, int layer, int gate, const char *which) {
    L *l = b->l;
    int w = temp(l, arena_printf(l->a, "%%%d dense %s l%d g%d (backward)", f->id, which, layer, gate), 0,
                 (long)m->taps * m->bo->n * m->bi->n);
    cg_dense_build(l, FN(b), m, w, 0, NULL, arena_printf(l->a, "%s: dense %s", nname(l, f), which));
    return w;
}

static void grad_map_dx(B *b, const IrNode *f, int dy, int dx) {
    L *l = b->l;
    Map m = map_full(b, f);
    Geo g = geo_of(f);
    const BT *bo = m.bo, *bi = m.bi;
    const char *nm = nname(l, f);
    if (l->m->opts.no_fold) {
        if (bo->n == 0 || bi->n == 0) {
            cg_zero_fill(l, FN(b), dx, 0, NB((long)g.Ti * bi->n), arena_printf(l->a, "%s: dx = 0", nm));
            return;
        }
        int W = dense_w(b, f, &m, 0, 0, "W");
        long kw = (long)g.k * bi->n; /* a row of W: the taps side by side */
        if (g.tiled) { /* dx's frames in im2col order: every tap in one GEMM */
            gemm(b, arena_printf(l->a, "%s: dx = dy W (%d taps)", nm, g.k), false, false, NB(g.To), D(kw), D(bo->n),
                 dy, 0, bo->n, W, 0, kw, dx, 0, kw, 0);
            return;
        }
        transposed_taps(b, f, &g, dy, 0, bo->n, bo->n, W, 0, bi->n, kw, dx, bi->n, arena_printf(l->a, "%s: dx = dy W", nm));
        return;
    }
    map_dyeo(b, f, &m, dy);
    int part_buf[2] = {-1, -1};
    for (int part = 0; part < 2; part++) {
        int wo = part ? bo->dod : bo->de, wi = part ? bi->dod : bi->de;
        const CgCols *dc = &b->dyc[f->id];
        int dyp = dc->buf[part];
        if (wo == 0 || wi == 0 || dyp < 0) continue;
        part_buf[part] = temp(l, arena_printf(l->a, "%%%d dx %s", f->id, part ? "odd" : "even"), (long)g.Ti * wi, 0);
        const char *what = arena_printf(l->a, "%s: dx %s = dy %s %s", nm, part ? "odd" : "even",
                                        part ? "odd" : "even", part ? "B" : "A");
        int wsb = part ? l->wsbo[f->id] : l->wsbe[f->id];
        if (wsb >= 0 && g.tiled) {
            /* stride = kernel: dx's frames in im2col order, one GEMM with the forward's
             * side-by-side weights (every tap at once, each frame written once) */
            gemm(b, arena_printf(l->a, "%s (%d taps)", what, g.k), false, false, NB(g.To), D((long)g.k * wi), D(wo),
                 dyp, dc->off[part], dc->ld[part], wsb, 0, (long)g.k * wi, part_buf[part], 0, (long)g.k * wi, 0);
            continue;
        }
        int pb;
        long po;
        cg_ploc(l, part ? m.B0 : m.A0, &pb, &po);
        transposed_taps(b, f, &g, dyp, dc->off[part], dc->ld[part], wo, pb, po, m.tapstride, wi, part_buf[part], wi,
                        what);
    }
    KirStep *s = loop2(b, arena_printf(l->a, "%s: dx = Q^T (even, odd)", nm), NB(g.Ti), bi->n);
    Src ev[1], od[1];
    int ne = 0, no = 0;
    if (part_buf[0] >= 0) ev[ne++] = (Src){IXv(part_buf[0], 0, bi->de, 0, 0, 0)};
    if (part_buf[1] >= 0) od[no++] = (Src){IXv(part_buf[1], 0, bi->dod, 0, 0, 0)};
    kir_store(K(b), s, IXv(dx, 0, bi->n, 1, 0, 0), analyse_t_expr(b, bi, 1, ev, ne, od, no));
}

/* d b_even = sum over the rows of S^T dy (even part); rows of width ld at offset off. */
static void bias_grad(B *b, const IrNode *f, const IrParamEntry *bias, const BT *bo, int dy, long off, long ld,
                      KirDim rows, const char *what) {
    L *l = b->l;
    if (!bias || bo->de == 0) return;
    KirStep *s = loop1(b, arena_printf(l->a, "%s: %s", nname(l, f), what), D(bo->de));
    kir_loop_red(s, rows);
    KirIndex row = IX(dy, off);
    row.coef[KIR_RVAR] = ld;
    kir_store(K(b), s, IXv(b->grads, goff(b, bias), 1, 0, 0, 0), kir_un(K(b), KIR_E_SUM, synth_t_expr(b, bo, true, row, 0)));
}

/* The adjoint of the densify map W = S_out blockdiag(A, B) Q_in, per tap:
 * A_tap += [S_out^T dW_tap Q_in^T]_even,even and B_tap the odd block. dW: [Fo][taps][Fi],
 * the layout of cg_dense_build. */
static void project_dense(B *b, const IrNode *f, const Map *m, int dW, const char *what) {
    L *l = b->l;
    const BT *bo = m->bo, *bi = m->bi;
    long Fi = bi->n;
    for (int part = 0; part < 2; part++) {
        bool even = part == 0;
        int ro = even ? bo->de : bo->dod, ci = even ? bi->de : bi->dod;
        if (ro == 0 || ci == 0) continue;
        KirStep *s = loop3(b, arena_printf(l->a, "%s: %s from the dense gradient", nname(l, f), what), D(m->taps),
                           ro, ci);
        /* component (p, q): sh[p] (R(f1) + s_o[p] R(f2)), R(f) the analysis of row f at q */
        KirExpr *e = NULL;
        for (int second = 0; second < 2; second++) {
            if (second && !(even ? bo->pairs_e : bo->pairs_o)) break;
            KirIndex row = IXv(dW, 0, Fi, 0, 0, 0);
            kir_ix_tab(&row, even ? (second ? bo->eg : bo->ef) : (second ? bo->og : bo->of), 1, (long)m->taps * Fi);
            KirExpr *r = cg_analyse_expr(l, bi, even, row, 2);
            if (second) r = MUL(l, TV(l, even ? bo->es : bo->os, 1), r);
            e = ADD(l, e, r);
        }
        e = MUL(l, TV(l, sh_tab(b, bo, even), 1), e);
        const IrParamEntry *pe = even ? m->A0 : m->B0;
        kir_store(K(b), s, IXv(b->grads, goff(b, pe), m->tapstride, ci, 1, 0), e);
    }
}

static void mask_fixed_zero(B *b, const IrNode *f);

static void pgrad_map(B *b, const IrNode *f, int dy) {
    L *l = b->l;
    Map m = map_full(b, f);
    Geo g = geo_of(f);
    const BT *bo = m.bo, *bi = m.bi;
    const char *nm = nname(l, f);
    if (l->m->opts.no_fold) {
        if (bo->n > 0 && bi->n > 0) {
            int col = l->xc[f->id].buf[0];
            long ldc = l->xc[f->id].ld[0];
            sup_assert(col >= 0);
            int dW = temp(l, arena_printf(l->a, "%%%d dW dense", f->id), 0, (long)g.k * bo->n * bi->n);
            gemm(b, arena_printf(l->a, "%s: dW = dy^T x (%d taps)", nm, g.k), true, false, D(bo->n),
                 D((long)g.k * bi->n), NB(g.To), dy, 0, bo->n, col, 0, ldc, dW, 0, (long)g.k * bi->n, 0);
            project_dense(b, f, &m, dW, "A, B");
        }
    } else {
        map_dyeo(b, f, &m, dy);
        for (int part = 0; part < 2; part++) {
            int wo = part ? bo->dod : bo->de, wi = part ? bi->dod : bi->de;
            const CgCols *dc = &b->dyc[f->id], *xc = &l->xc[f->id];
            int dyp = dc->buf[part], xp = xc->buf[part];
            if (wo == 0 || wi == 0) continue;
            sup_assert(dyp >= 0 && xp >= 0);
            const IrParamEntry *pe = part ? m.B0 : m.A0;
            if ((part ? l->wsbo : l->wsbe)[f->id] >= 0) {
                /* the forward's im2col rows against dy: every tap in one GEMM, then each
                 * tap's block to its place in the gradient */
                long kw = (long)g.k * wi;
                int dw = temp(l, arena_printf(l->a, "%%%d d%s, taps side by side", f->id, part ? "B" : "A"), 0, wo * kw);
                gemm(b, arena_printf(l->a, "%s: d%s = dy^T x (%s, %d taps)", nm, part ? "B" : "A", part ? "odd" : "even", g.k),
                     true, false, D(wo), D(kw), NB(g.To), dyp, dc->off[part], dc->ld[part], xp, xc->off[part], xc->ld[part],
                     dw, 0, kw, 0);
                KirStep *s = loop3(b, arena_printf(l->a, "%s: d%s by tap", nm, part ? "B" : "A"), D(wo), g.k, wi);
                KirIndex to = IXv(b->grads, goff(b, pe), wi, m.tapstride, 1, 0);
                kir_store(K(b), s, to, LD(l, IXv(dw, 0, kw, wi, 1, 0)));
                continue;
            }
            for (int tap = 0; tap < g.k; tap++)
                gemm(b, arena_printf(l->a, "%s: d%s = dy^T x (%s), tap %d", nm, part ? "B" : "A", part ? "odd" : "even", tap),
                     true, false, D(wo), D(wi), NB(g.To), dyp, dc->off[part], dc->ld[part], xp,
                     xc->off[part] + (long)tap * wi, xc->ld[part], b->grads,
                     goff(b, pe) + tap * m.tapstride, wi, 0);
        }
    }
    bias_grad(b, f, m.bias, bo, dy, 0, bo->n, NB(g.To), "d bias");
    mask_fixed_zero(b, f);
}

/* sharing = paper: the weights held at zero get a zero gradient. */
static void mask_fixed_zero(B *b, const IrNode *f) {
    L *l = b->l;
    const IrParams *w = l->m->layout;
    for (int i = w->node_first[f->id], e = i + w->node_count[f->id]; i < e; i++) {
        const IrParamEntry *pe = &w->entries[i];
        if (!pe->trainable || pe->name[strlen(pe->name) - 1] != 'A') continue;
        int n = 0;
        int *idx = sup_malloc(sizeof(int) * ((size_t)pe->rows * (size_t)pe->cols + 1));
        for (int r = 0; r < pe->rows; r++)
            for (int c = 0; c < pe->cols; c++)
                if (ir_params_fixed_zero(w, pe, r, c)) idx[n++] = r * pe->cols + c;
        if (n) {
            int tab = kir_tab_int(K(b), idx, n);
            KirStep *s = loop1(b, arena_printf(l->a, "%s: %s held at zero", nname(l, f), pe->name), D(n));
            kir_store(K(b), s, withtab(IX(b->grads, goff(b, pe)), tab, 0), C(l, 0));
        }
        sup_free(idx);
    }
}

/* ---- batchnorm -------------------------------------------------------------------------------------- */

enum { BS_MU, BS_INV, BS_K, BS_VAR, BS_N };

/* Per feature: mu, 1/sqrt(var + eps), k = gamma / sqrt(var + eps), var (the
 * batch's in training, the running ones at inference); and the sums of dy and
 * dy (x - mu) over the rows. Cached per forward node. */
static void bn_stats(B *b, const IrNode *f, int dy) {
    if (b->bst[f->id] >= 0) return;
    L *l = b->l;
    int F = f->shape.feat, T = frames(f);
    const char *nm = nname(l, f);
    const IrParamEntry *eb = cg_need(l, f, "beta", 0, 0, 0);
    const BT *bt = cg_bt_of(l, eb->basis_out);
    Fold fo = cg_fold_of(l, f, bt);
    int st = temp(l, arena_printf(l->a, "%%%d batchnorm statistics (backward)", f->id), 0, (long)BS_N * F);
    b->bst[f->id] = st;
    KirStep *s = loop1(b, arena_printf(l->a, "%s: statistics", nm), D(F));
    KirExpr *g = LD(l, withtab(PIX(l, fo.gamma, 0), fo.orb.orb, 0));
    if (l->train) {
        int fs = l->bnst[f->id]; /* the forward's */
        sup_assert(fs >= 0);
        kir_store(K(b), s, IXv(st, BS_MU * F, 1, 0, 0, 0), LD(l, IXv(fs, BN_MU * (long)F, 1, 0, 0, 0)));
        kir_store(K(b), s, IXv(st, BS_VAR * F, 1, 0, 0, 0), LD(l, IXv(fs, BN_VAR * (long)F, 1, 0, 0, 0)));
    } else {
        Src mu = {PIX(l, fo.mean, 0)};
        kir_store(K(b), s, IXv(st, BS_MU * F, 1, 0, 0, 0), bt->de > 0 ? cg_synth_expr(l, bt, 0, &mu, 1, NULL, 0) : C(l, 0));
        kir_store(K(b), s, IXv(st, BS_VAR * F, 1, 0, 0, 0), LD(l, withtab(PIX(l, fo.var, 0), fo.orb.orb, 0)));
    }
    kir_store(K(b), s, IXv(st, BS_INV * F, 1, 0, 0, 0),
              DIV(l, C(l, 1), kir_un(K(b), KIR_E_SQRT, ADD(l, LD(l, IXv(st, BS_VAR * F, 1, 0, 0, 0)), C(l, fo.eps)))));
    kir_store(K(b), s, IXv(st, BS_K * F, 1, 0, 0, 0), MUL(l, g, LD(l, IXv(st, BS_INV * F, 1, 0, 0, 0))));
    int x = fval(b, f->in[0]);
    /* one kernel, one pass over the rows for both sums (the LLVM backend's rows
     * outside); two buffers, so that each store's window of a channel stays one float
     * wide and the kernel splits over the channels (kir_loop_parallel) */
    int sums = temp(l, arena_printf(l->a, "%%%d batchnorm sum of dy (backward)", f->id), 0, F);
    int sumx = temp(l, arena_printf(l->a, "%%%d batchnorm sum of dy (x - mu) (backward)", f->id), 0, F);
    b->bsum[f->id] = sums, b->bsumx[f->id] = sumx;
    s = loop1(b, arena_printf(l->a, "%s: sums of dy and dy (x - mu)", nm), D(F));
    kir_loop_red(s, NB(T));
    KirIndex dyr = IXv(dy, 0, 1, 0, 0, 0), xr = IXv(x, 0, 1, 0, 0, 0);
    dyr.coef[KIR_RVAR] = F, xr.coef[KIR_RVAR] = F;
    kir_store(K(b), s, IXv(sums, 0, 1, 0, 0, 0), kir_un(K(b), KIR_E_SUM, LD(l, dyr)));
    kir_store(K(b), s, IXv(sumx, 0, 1, 0, 0, 0),
              kir_un(K(b), KIR_E_SUM, MUL(l, LD(l, dyr), SUB(l, LD(l, xr), LD(l, IXv(st, BS_MU * F, 1, 0, 0, 0))))));
}

static void grad_bn_dx(B *b, const IrNode *f, int dy, int dx) {
    L *l = b->l;
    int F = f->shape.feat, T = frames(f);
    const char *nm = nname(l, f);
    bn_stats(b, f, dy);
    int st = b->bst[f->id], sums = b->bsum[f->id], sumx = b->bsumx[f->id];
    KirExpr *e = MUL(l, LD(l, IXv(dy, 0, F, 1, 0, 0)), LD(l, IXv(st, BS_K * F, 0, 1, 0, 0)));
    if (l->train) {
        /* through the augmented-batch statistics, in the centred form
         * dx = dy k + (dmc + 2 dq (x - mu)) / R with dmc the mean's part without
         * mu's (which cancels because mu is even) and dq the pooled variance's */
        const IrParamEntry *eb = cg_need(l, f, "beta", 0, 0, 0);
        const BT *bt = cg_bt_of(l, eb->basis_out);
        Fold fo = cg_fold_of(l, f, bt);
        int w = temp(l, arena_printf(l->a, "%%%d batchnorm dx terms", f->id), 0, 4L * F);
        KirStep *s = loop1(b, arena_printf(l->a, "%s: d var and d mean", nm), D(F));
        KirExpr *inv = LD(l, IXv(st, BS_INV * F, 1, 0, 0, 0));
        KirExpr *g = LD(l, withtab(PIX(l, fo.gamma, 0), fo.orb.orb, 0));
        KirExpr *dvar = MUL(l, MUL(l, LD(l, IXv(sumx, 0, 1, 0, 0, 0)), g),
                            MUL(l, C(l, -0.5), MUL(l, inv, MUL(l, inv, inv))));
        dvar = kir_select(K(b), kir_bin(K(b), KIR_E_GT, LD(l, IXv(st, BS_VAR * F, 1, 0, 0, 0)), C(l, 0)), dvar, C(l, 0));
        kir_store(K(b), s, IXv(w, 0, 1, 0, 0, 0), dvar);
        kir_store(K(b), s, IXv(w, F, 1, 0, 0, 0),
                  MUL(l, C(l, -1), MUL(l, LD(l, IXv(sums, 0, 1, 0, 0, 0)), LD(l, IXv(st, BS_K * F, 1, 0, 0, 0)))));
        s = loop1(b, arena_printf(l->a, "%s: pooled over partners", nm), D(F));
        KirExpr *R = MUL(l, kir_batch(K(b)), C(l, T));
        KirExpr *dmc = MUL(l, C(l, 0.5), ADD(l, LD(l, IXv(w, F, 1, 0, 0, 0)),
                                             MUL(l, TV(l, fo.orb.sign, 0), LD(l, withtab(IX(w, F), fo.orb.partner, 0)))));
        kir_store(K(b), s, IXv(w, 2L * F, 1, 0, 0, 0), DIV(l, dmc, R));
        KirExpr *dq2 = ADD(l, LD(l, IXv(w, 0, 1, 0, 0, 0)), LD(l, withtab(IX(w, 0), fo.orb.partner, 0)));
        kir_store(K(b), s, IXv(w, 3L * F, 1, 0, 0, 0), DIV(l, dq2, MUL(l, kir_batch(K(b)), C(l, T))));
        KirExpr *xc = SUB(l, LD(l, IXv(fval(b, f->in[0]), 0, F, 1, 0, 0)), LD(l, IXv(st, BS_MU * F, 0, 1, 0, 0)));
        e = ADD(l, e, ADD(l, LD(l, IXv(w, 2L * F, 0, 1, 0, 0)), MUL(l, LD(l, IXv(w, 3L * F, 0, 1, 0, 0)), xc)));
    }
    KirStep *s = loop2(b, arena_printf(l->a, "%s: dx", nm), NB(T), F);
    kir_store(K(b), s, IXv(dx, 0, F, 1, 0, 0), e);
}

static void pgrad_bn(B *b, const IrNode *f, int dy) {
    L *l = b->l;
    int F = f->shape.feat;
    const char *nm = nname(l, f);
    bn_stats(b, f, dy);
    int st = b->bst[f->id], sums = b->bsum[f->id], sumx = b->bsumx[f->id];
    const IrParamEntry *eb = cg_need(l, f, "beta", 0, 0, 0);
    const BT *bt = cg_bt_of(l, eb->basis_out);
    Fold fo = cg_fold_of(l, f, bt);
    /* d gamma of an orbit: sum over its features of sum(dy (x - mu)) / sqrt(var + eps) */
    int no = fo.orb.norb;
    int *first = sup_malloc(sizeof(int) * (size_t)(2 * no + 1)), *second = first + no;
    float *c2 = sup_malloc(sizeof(float) * (size_t)(no + 1));
    const IrChi *c = &f->chi;
    bool trivial = f->a.unconstrained || !c->partner;
    for (int q = 0, k = 0; q < F; q++) {
        int p = trivial ? q : c->partner[q];
        if (p < q) continue;
        first[k] = q, second[k] = p, c2[k] = p != q ? 1.0f : 0.0f;
        k++;
    }
    int tf = kir_tab_int(K(b), first, no), ts = kir_tab_int(K(b), second, no), tc = kir_tab_float(K(b), c2, no);
    sup_free(first), sup_free(c2);
    if (no > 0) {
        KirStep *s = loop1(b, arena_printf(l->a, "%s: d gamma", nm), D(no));
        KirExpr *e = ADD(l, LD(l, withtab(IX(sumx, 0), tf, 0)), MUL(l, TV(l, tc, 0), LD(l, withtab(IX(sumx, 0), ts, 0))));
        e = MUL(l, LD(l, withtab(IX(st, BS_INV * F), tf, 0)), e);
        kir_store(K(b), s, IXv(b->grads, goff(b, fo.gamma), 1, 0, 0, 0), e);
    }
    if (bt->de > 0) {
        KirStep *s = loop1(b, arena_printf(l->a, "%s: d beta", nm), D(bt->de));
        kir_store(K(b), s, IXv(b->grads, goff(b, fo.beta), 1, 0, 0, 0), synth_t_expr(b, bt, true, IX(sums, 0), 0));
    }
}

/* ---- elementwise ------------------------------------------------------------------------------------ */

/* phi'(x); at a kink the derivative of the branch the forward takes. */
static KirExpr *act_deriv(B *b, IrAct a, KirExpr *x, double slope) {
    L *l = b->l;
    KirProgram *k = K(b);
    switch (a) {
    case IR_ACT_RELU: return kir_select(k, kir_bin(k, KIR_E_GT, x, C(l, 0)), C(l, 1), C(l, 0));
    case IR_ACT_LEAKY_RELU: return kir_select(k, kir_bin(k, KIR_E_GE, x, C(l, 0)), C(l, 1), C(l, slope));
    case IR_ACT_ELU: return kir_select(k, kir_bin(k, KIR_E_GT, x, C(l, 0)), C(l, 1), kir_un(k, KIR_E_EXP, x));
    case IR_ACT_GELU:
        return ADD(l, MUL(l, C(l, 0.5), ADD(l, C(l, 1), kir_un(k, KIR_E_ERF, MUL(l, x, C(l, 0.70710678118654752440))))),
                   MUL(l, MUL(l, x, kir_un(k, KIR_E_EXP, MUL(l, C(l, -0.5), MUL(l, x, x)))),
                       C(l, 0.39894228040143267794)));
    case IR_ACT_SIGMOID: {
        KirExpr *s = kir_un(k, KIR_E_SIGMOID, x);
        return MUL(l, s, SUB(l, C(l, 1), s));
    }
    case IR_ACT_TANH: {
        KirExpr *t = kir_un(k, KIR_E_TANH, x);
        return SUB(l, C(l, 1), MUL(l, t, t));
    }
    case IR_ACT_SOFTSIGN: {
        KirExpr *d = ADD(l, C(l, 1), kir_un(k, KIR_E_ABS, x));
        return DIV(l, C(l, 1), MUL(l, d, d));
    }
    case IR_ACT_HARDTANH: return kir_select(k, kir_bin(k, KIR_E_GT, kir_un(k, KIR_E_ABS, x), C(l, 1)), C(l, 0), C(l, 1));
    default: sup_bug("backward: unknown activation %d", (int)a);
    }
}

/* Whether n is a training batchnorm whose only consumer is an activation: then the
 * activation's backward recomputes n's output from n's input (which batchnorm's own
 * backward keeps anyway) and the batch statistics, and the forward need not store it
 * (fuse.c turns the store into a let): one activation-sized tensor a layer less at
 * the peak of a training step. */
static bool bn_recomputed(B *b, const IrNode *n) {
    L *l = b->l;
    if (n->op != IR_BATCHNORM || l->bnst[n->id] < 0 || l->val[n->in[0]->id] < 0) return false;
    int uses = 0;
    for (const IrNode *u = n->next; u; u = u->next)
        for (int i = 0; i < u->nin; i++)
            if (u->in[i] == n && !l->bwd[u->id]) uses += u->op == IR_ACT ? 1 : 2;
    return uses == 1;
}

static void grad_act(B *b, const IrNode *f, int dy, int dx) {
    L *l = b->l;
    const IrNode *x = f->in[0];
    int F = f->shape.feat;
    KirStep *s = loop2(b, arena_printf(l->a, "%s: dx = dy %s'(x)", nname(l, f), ir_act_name[f->a.act]), NB(frames(f)), F);
    const IrChi *c = &x->chi;
    bool mixed = c->partner && f->a.act != f->a.act_neg && ir_chi_has_negated(c);
    KirExpr *xv = bn_recomputed(b, x) ? cg_bn_train_expr(l, x, fval(b, x->in[0])) : LD(l, IXv(fval(b, x), 0, F, 1, 0, 0)), *e;
    if (!mixed) {
        bool all_neg = c->partner && ir_chi_has_negated(c);
        for (int q = 0; all_neg && q < c->n; q++) all_neg &= c->sign[q] < 0;
        e = act_deriv(b, all_neg ? f->a.act_neg : f->a.act, xv, f->a.slope);
    } else {
        float *neg = sup_malloc(sizeof(float) * (size_t)(F + 1));
        for (int q = 0; q < F; q++) neg[q] = c->sign[q] < 0 ? 1.0f : 0.0f;
        int tb = kir_tab_float(K(b), neg, F);
        sup_free(neg);
        e = kir_select(K(b), kir_bin(K(b), KIR_E_GT, TV(l, tb, 1), C(l, 0.5)), act_deriv(b, f->a.act_neg, xv, f->a.slope),
                       act_deriv(b, f->a.act, xv, f->a.slope));
    }
    kir_store(K(b), s, IXv(dx, 0, F, 1, 0, 0), MUL(l, LD(l, IXv(dy, 0, F, 1, 0, 0)), e));
}

static void grad_softmax(B *b, const IrNode *f, int dy, int dx) {
    L *l = b->l;
    int F = f->shape.feat, T = frames(f), y = fval(b, f);
    int dot = temp(l, arena_printf(l->a, "%%%d softmax dy . y", f->id), T, 0);
    KirStep *s = loop1(b, arena_printf(l->a, "%s: dy . y per row", nname(l, f)), NB(T));
    kir_loop_red(s, D(F));
    KirIndex dr = IXv(dy, 0, F, 0, 0, 0), yr = IXv(y, 0, F, 0, 0, 0);
    dr.coef[KIR_RVAR] = 1, yr.coef[KIR_RVAR] = 1;
    kir_store(K(b), s, IXv(dot, 0, 1, 0, 0, 0), kir_un(K(b), KIR_E_SUM, MUL(l, LD(l, dr), LD(l, yr))));
    s = loop2(b, arena_printf(l->a, "%s: dx = y (dy - dy . y)", nname(l, f)), NB(T), F);
    kir_store(K(b), s, IXv(dx, 0, F, 1, 0, 0),
              MUL(l, LD(l, IXv(y, 0, F, 1, 0, 0)), SUB(l, LD(l, IXv(dy, 0, F, 1, 0, 0)), LD(l, IXv(dot, 0, 1, 0, 0, 0)))));
}

/* ---- recurrences --------------------------------------------------------------------------------------- */

static void bptt(B *b, const IrNode *f, int dy, int ds) {
    L *l = b->l;
    bool lstm = f->op == IR_LSTM, dense = l->m->opts.no_fold;
    int G = lstm ? 4 : 3, T = frames(f), H = f->shape.feat, Ls = f->a.layers > 0 ? f->a.layers : 1, S = lstm ? 2 : 1;
    const IrNode *init = f->nin > 1 ? f->in[1] : NULL;
    const CgRecHist *hist = &l->rec[f->id];
    sup_assert(hist->gates != NULL);
    const char *nm = nname(l, f);
    long GH = (long)G * H, gs = (long)T * (G + 1) * H;
    b->rdone[f->id] = true;
    b->rdx[f->id] = b->want0[f->id] ? temp(l, arena_printf(l->a, "%%%d dx", f->id), (long)T * f->in[0]->shape.feat, 0) : -1;
    b->rdinit[f->id] = init ? temp(l, arena_printf(l->a, "%%%d d init", f->id), (long)Ls * S * H, 0) : -1;
    int dhn = temp(l, arena_printf(l->a, "%%%d dh next", f->id), H, 0);
    int dcn = lstm ? temp(l, arena_printf(l->a, "%%%d dc next", f->id), H, 0) : -1;
    int dhb = temp(l, arena_printf(l->a, "%%%d dh", f->id), H, 0);
    int dcb = lstm ? temp(l, arena_printf(l->a, "%%%d dc", f->id), H, 0) : -1;
    int dY = dy;
    if (dY < 0) {
        dY = temp(l, arena_printf(l->a, "%%%d dy = 0", f->id), (long)T * H, 0);
        cg_zero_fill(l, FN(b), dY, 0, NB((long)T * H), arena_printf(l->a, "%s: no gradient of the sequence", nm));
    }
    for (int ly = Ls - 1; ly >= 0; ly--) {
        int Fin = ly == 0 ? f->in[0]->shape.feat : H;
        bool want_dx = ly > 0 || b->rdx[f->id] >= 0;
        int X = hist->x[ly], hh = hist->hh[ly], cc = hist->cc[ly], gates = hist->gates[ly];
        const char *at = arena_printf(l->a, "%s layer %d", nm, ly);
        Map wx[4], wh[4];
        const IrParamEntry *bias[4], *bias_h = NULL;
        for (int g = 0; g < G; g++) {
            wx[g] = cg_map_of(l, f, "Wx.A", "Wx.B", ly, g);
            wh[g] = cg_map_of(l, f, "Wh.A", "Wh.B", ly, g);
            bias[g] = cg_need(l, f, "bias", ly, g, 0);
        }
        if (!lstm) bias_h = cg_need(l, f, "bias_h", ly, 2, 0);
        const BT *bx = wx[0].bi, *bh = wh[0].bi;
        /* the initial states and the final states' gradients */
        int h0 = init ? l->hfin[init->id][ly] : -1;
        int c0 = init && lstm && init->op == IR_LSTM ? l->cfin[init->id][ly] : -1;
        KirStep *s = loop2(b, arena_printf(l->a, "%s: gradients of the final states", at), NB(1), H);
        kir_store(K(b), s, IXv(dhn, 0, H, 1, 0, 0), ds >= 0 ? LD(l, IXv(ds, (long)ly * S * H, (long)Ls * S * H, 1, 0, 0)) : C(l, 0));
        if (lstm)
            kir_store(K(b), s, IXv(dcn, 0, H, 1, 0, 0),
                      ds >= 0 ? LD(l, IXv(ds, ((long)ly * S + 1) * H, (long)Ls * S * H, 1, 0, 0)) : C(l, 0));
        int dpre = temp(l, arena_printf(l->a, "%%%d d pre l%d", f->id, ly), (long)T * GH, 0);
        int dhp = lstm ? dpre : temp(l, arena_printf(l->a, "%%%d d h part l%d", f->id, ly), (long)T * GH, 0);
        /* per-step buffers of the hidden part: S^T of its gradient (folded), or dense Wh */
        int hpe[4], hpo[4], whd[4], dhe = -1, dho = -1;
        for (int g = 0; g < G; g++) {
            hpe[g] = hpo[g] = whd[g] = -1;
            const BT *bg = wh[g].bo;
            if (dense) {
                whd[g] = dense_w(b, f, &wh[g], ly, g, "Wh");
                continue;
            }
            if (bg->de > 0 && bh->de > 0) hpe[g] = temp(l, arena_printf(l->a, "%%%d dh part even l%d g%d", f->id, ly, g), (long)T * bg->de, 0);
            if (bg->dod > 0 && bh->dod > 0) hpo[g] = temp(l, arena_printf(l->a, "%%%d dh part odd l%d g%d", f->id, ly, g), (long)T * bg->dod, 0);
        }
        if (!dense) {
            if (bh->de > 0) dhe = temp(l, arena_printf(l->a, "%%%d dh even l%d", f->id, ly), bh->de, 0);
            if (bh->dod > 0) dho = temp(l, arena_printf(l->a, "%%%d dh odd l%d", f->id, ly), bh->dod, 0);
        }
        for (int t = T - 1; t >= 0; t--) {
            const char *st = arena_printf(l->a, "%s step %d", at, t);
            long gt = (long)t * (G + 1) * H;
#define GATE(g) LD(l, IXv(gates, gt + (long)(g) * H, gs, 1, 0, 0))
#define DPRE(g) IXv(dpre, (long)t * GH + (long)(g) * H, (long)T * GH, 1, 0, 0)
#define DHP(g) IXv(dhp, (long)t * GH + (long)(g) * H, (long)T * GH, 1, 0, 0)
            KirExpr *hprev = t > 0 ? LD(l, IXv(hh, (long)(t - 1) * H, (long)T * H, 1, 0, 0))
                                   : h0 >= 0 ? LD(l, IXv(h0, 0, H, 1, 0, 0)) : C(l, 0);
            s = loop2(b, arena_printf(l->a, "%s: cell", st), NB(1), H);
            KirIndex dhi = IXv(dhb, 0, H, 1, 0, 0);
            kir_store(K(b), s, dhi, ADD(l, LD(l, IXv(dhn, 0, H, 1, 0, 0)), LD(l, IXv(dY, (long)t * H, (long)T * H, 1, 0, 0))));
            KirExpr *dh = LD(l, dhi);
            if (lstm) {
                KirExpr *cprev = t > 0 ? LD(l, IXv(cc, (long)(t - 1) * H, (long)T * H, 1, 0, 0))
                                       : c0 >= 0 ? LD(l, IXv(c0, 0, H, 1, 0, 0)) : C(l, 0);
                KirExpr *tc = kir_un(K(b), KIR_E_TANH, LD(l, IXv(cc, (long)t * H, (long)T * H, 1, 0, 0)));
                KirIndex dci = IXv(dcb, 0, H, 1, 0, 0);
                kir_store(K(b), s, dci,
                          ADD(l, LD(l, IXv(dcn, 0, H, 1, 0, 0)),
                              MUL(l, MUL(l, dh, GATE(3)), SUB(l, C(l, 1), MUL(l, tc, tc)))));
                KirExpr *dc = LD(l, dci);
#define DSIG(g) MUL(l, GATE(g), SUB(l, C(l, 1), GATE(g)))
                kir_store(K(b), s, DPRE(0), MUL(l, MUL(l, dc, GATE(2)), DSIG(0)));
                kir_store(K(b), s, DPRE(1), MUL(l, MUL(l, dc, cprev), DSIG(1)));
                kir_store(K(b), s, DPRE(2), MUL(l, MUL(l, dc, GATE(0)), SUB(l, C(l, 1), MUL(l, GATE(2), GATE(2)))));
                kir_store(K(b), s, DPRE(3), MUL(l, MUL(l, dh, tc), DSIG(3)));
                kir_store(K(b), s, IXv(dcn, 0, H, 1, 0, 0), MUL(l, dc, GATE(1)));
            } else {
                /* gates: r z (h part of n) n */
                kir_store(K(b), s, DPRE(2), MUL(l, MUL(l, dh, SUB(l, C(l, 1), GATE(1))), SUB(l, C(l, 1), MUL(l, GATE(3), GATE(3)))));
                KirExpr *dn = LD(l, DPRE(2));
                kir_store(K(b), s, DHP(2), MUL(l, dn, GATE(0)));
                kir_store(K(b), s, DPRE(0), MUL(l, MUL(l, dn, GATE(2)), DSIG(0)));
                kir_store(K(b), s, DPRE(1), MUL(l, MUL(l, dh, SUB(l, hprev, GATE(3))), DSIG(1)));
                kir_store(K(b), s, DHP(0), LD(l, DPRE(0)));
                kir_store(K(b), s, DHP(1), LD(l, DPRE(1)));
#undef DSIG
            }
            /* the hidden part: dh_prev = sum over gates of its map's transpose */
            if (dense) {
                for (int g = 0; g < G; g++)
                    gemm(b, arena_printf(l->a, "%s: dh prev += d h part Wh, gate %d", st, g), false, false, NB(1), D(H),
                         D(H), dhp, (long)t * GH + (long)g * H, (long)T * GH, whd[g], 0, H, dhn, 0, H, g ? 1.0f : 0.0f);
                if (!lstm) {
                    s = loop2(b, arena_printf(l->a, "%s: dh prev += dh z", st), NB(1), H);
                    kir_store(K(b), s, IXv(dhn, 0, H, 1, 0, 0), ADD(l, LD(l, IXv(dhn, 0, H, 1, 0, 0)), MUL(l, dh, GATE(1))));
                }
            } else {
                bool anye = false, anyo = false;
                for (int g = 0; g < G; g++) {
                    const BT *bg = wh[g].bo;
                    for (int part = 0; part < 2; part++) {
                        int buf = part ? hpo[g] : hpe[g], w = part ? bg->dod : bg->de, wi = part ? bh->dod : bh->de;
                        if (buf < 0) continue;
                        s = loop2(b, arena_printf(l->a, "%s: S^T d h part (%s), gate %d", st, part ? "odd" : "even", g),
                                  NB(1), w);
                        kir_store(K(b), s, IXv(buf, (long)t * w, (long)T * w, 1, 0, 0),
                                  synth_t_expr(b, bg, part == 0,
                                               IXv(dhp, (long)t * GH + (long)g * H, (long)T * GH, 0, 0, 0), 1));
                        int pb;
                        long po;
                        cg_ploc(l, part ? wh[g].B0 : wh[g].A0, &pb, &po);
                        bool *any = part ? &anyo : &anye;
                        gemm(b, arena_printf(l->a, "%s: dh %s += (%s) W, gate %d", st, part ? "odd" : "even",
                                             part ? "odd" : "even", g),
                             false, false, NB(1), D(wi), D(w), buf, (long)t * w, (long)T * w, pb, po, wi,
                             part ? dho : dhe, 0, wi, *any ? 1.0f : 0.0f);
                        *any = true;
                    }
                }
                s = loop2(b, arena_printf(l->a, "%s: dh prev = Q^T (even, odd)%s", st, lstm ? "" : " + dh z"), NB(1), H);
                Src ev[1], od[1];
                int ne = 0, no = 0;
                if (anye) ev[ne++] = (Src){IXv(dhe, 0, bh->de, 0, 0, 0)};
                if (anyo) od[no++] = (Src){IXv(dho, 0, bh->dod, 0, 0, 0)};
                KirExpr *e = analyse_t_expr(b, bh, 1, ev, ne, od, no);
                if (!lstm) e = ADD(l, e, MUL(l, dh, GATE(1)));
                kir_store(K(b), s, IXv(dhn, 0, H, 1, 0, 0), e);
            }
#undef GATE
#undef DPRE
#undef DHP
        }
        if (init) {
            s = loop2(b, arena_printf(l->a, "%s: gradients of the initial states", at), NB(1), H);
            int di = b->rdinit[f->id];
            kir_store(K(b), s, IXv(di, (long)ly * S * H, (long)Ls * S * H, 1, 0, 0), LD(l, IXv(dhn, 0, H, 1, 0, 0)));
            if (lstm)
                kir_store(K(b), s, IXv(di, ((long)ly * S + 1) * H, (long)Ls * S * H, 1, 0, 0), LD(l, IXv(dcn, 0, H, 1, 0, 0)));
        }
        /* h before every step, for the hidden weights' gradients */
        int hp = temp(l, arena_printf(l->a, "%%%d h prev l%d", f->id, ly), (long)T * H, 0);
        s = loop2(b, arena_printf(l->a, "%s: h before step 0", at), NB(1), H);
        kir_store(K(b), s, IXv(hp, 0, (long)T * H, 1, 0, 0), h0 >= 0 ? LD(l, IXv(h0, 0, H, 1, 0, 0)) : C(l, 0));
        if (T > 1) {
            s = loop3(b, arena_printf(l->a, "%s: h before steps 1..", at), NB(1), T - 1, H);
            kir_store(K(b), s, IXv(hp, H, (long)T * H, H, 1, 0), LD(l, IXv(hh, 0, (long)T * H, H, 1, 0)));
        }
        /* the gradient of the layer's input */
        int dX = ly == 0 ? b->rdx[f->id] : temp(l, arena_printf(l->a, "%%%d d input l%d", f->id, ly), (long)T * Fin, 0);
        if (dense) {
            for (int g = 0; g < G; g++) {
                int wxd = dense_w(b, f, &wx[g], ly, g, "Wx");
                if (want_dx)
                    gemm(b, arena_printf(l->a, "%s: dx += d pre Wx, gate %d", at, g), false, false, NB(T), D(Fin), D(H),
                         dpre, (long)g * H, GH, wxd, 0, Fin, dX, 0, Fin, g ? 1.0f : 0.0f);
                int dW = temp(l, arena_printf(l->a, "%%%d dWx dense l%d g%d", f->id, ly, g), 0, (long)H * Fin);
                gemm(b, arena_printf(l->a, "%s: dWx = d pre^T x, gate %d", at, g), true, false, D(H), D(Fin), NB(T), dpre,
                     (long)g * H, GH, X, 0, Fin, dW, 0, Fin, 0);
                project_dense(b, f, &wx[g], dW, arena_printf(l->a, "Wx layer %d gate %d", ly, g));
                int dWh = temp(l, arena_printf(l->a, "%%%d dWh dense l%d g%d", f->id, ly, g), 0, (long)H * H);
                gemm(b, arena_printf(l->a, "%s: dWh = d h part^T h prev, gate %d", at, g), true, false, D(H), D(H), NB(T),
                     dhp, (long)g * H, GH, hp, 0, H, dWh, 0, H, 0);
                project_dense(b, f, &wh[g], dWh, arena_printf(l->a, "Wh layer %d gate %d", ly, g));
            }
        } else {
            /* the analysed layer input and h prev, every frame */
            int xa[2] = {-1, -1}, ha[2] = {-1, -1};
            for (int part = 0; part < 2; part++) {
                int wi = part ? bx->dod : bx->de, wh2 = part ? bh->dod : bh->de;
                if (wi > 0) {
                    xa[part] = temp(l, arena_printf(l->a, "%%%d x %s l%d (backward)", f->id, part ? "odd" : "even", ly), (long)T * wi, 0);
                    s = loop2(b, arena_printf(l->a, "%s: analyse x (%s)", at, part ? "odd" : "even"), NB(T), wi);
                    kir_store(K(b), s, IXv(xa[part], 0, wi, 1, 0, 0), cg_analyse_expr(l, bx, part == 0, IXv(X, 0, Fin, 0, 0, 0), 1));
                }
                if (wh2 > 0) {
                    ha[part] = temp(l, arena_printf(l->a, "%%%d h prev %s l%d", f->id, part ? "odd" : "even", ly), (long)T * wh2, 0);
                    s = loop2(b, arena_printf(l->a, "%s: analyse h prev (%s)", at, part ? "odd" : "even"), NB(T), wh2);
                    kir_store(K(b), s, IXv(ha[part], 0, wh2, 1, 0, 0), cg_analyse_expr(l, bh, part == 0, IXv(hp, 0, H, 0, 0, 0), 1));
                }
            }
            int dxa[2] = {-1, -1};
            bool anyx[2] = {false, false};
            for (int part = 0; part < 2; part++) {
                int wi = part ? bx->dod : bx->de;
                if (wi > 0 && want_dx) dxa[part] = temp(l, arena_printf(l->a, "%%%d dx %s l%d", f->id, part ? "odd" : "even", ly), (long)T * wi, 0);
            }
            for (int g = 0; g < G; g++) {
                const BT *bg = wx[g].bo;
                for (int part = 0; part < 2; part++) {
                    int w = part ? bg->dod : bg->de, wi = part ? bx->dod : bx->de, wh2 = part ? bh->dod : bh->de;
                    if (w == 0) continue;
                    int dpp = temp(l, arena_printf(l->a, "%%%d d pre %s l%d g%d", f->id, part ? "odd" : "even", ly, g), (long)T * w, 0);
                    s = loop2(b, arena_printf(l->a, "%s: S^T d pre (%s), gate %d", at, part ? "odd" : "even", g), NB(T), w);
                    kir_store(K(b), s, IXv(dpp, 0, w, 1, 0, 0),
                              synth_t_expr(b, bg, part == 0, IXv(dpre, (long)g * H, GH, 0, 0, 0), 1));
                    int pb;
                    long po;
                    if (wi > 0) {
                        gemm(b, arena_printf(l->a, "%s: dWx.%s = d pre^T x, gate %d", at, part ? "B" : "A", g), true, false,
                             D(w), D(wi), NB(T), dpp, 0, w, xa[part], 0, wi, b->grads, goff(b, part ? wx[g].B0 : wx[g].A0),
                             wi, 0);
                        if (dxa[part] >= 0) {
                            cg_ploc(l, part ? wx[g].B0 : wx[g].A0, &pb, &po);
                            gemm(b, arena_printf(l->a, "%s: dx %s += d pre Wx, gate %d", at, part ? "odd" : "even", g), false,
                                 false, NB(T), D(wi), D(w), dpp, 0, w, pb, po, wi, dxa[part], 0, wi, anyx[part] ? 1.0f : 0.0f);
                            anyx[part] = true;
                        }
                    }
                    int hpb = part ? hpo[g] : hpe[g];
                    if (hpb >= 0)
                        gemm(b, arena_printf(l->a, "%s: dWh.%s = d h part^T h prev, gate %d", at, part ? "B" : "A", g), true,
                             false, D(w), D(wh2), NB(T), hpb, 0, w, ha[part], 0, wh2, b->grads,
                             goff(b, part ? wh[g].B0 : wh[g].A0), wh2, 0);
                }
            }
            if (want_dx) {
                s = loop2(b, arena_printf(l->a, "%s: dx = Q^T (even, odd)", at), NB(T), Fin);
                Src ev[1], od[1];
                int ne = 0, no = 0;
                if (anyx[0]) ev[ne++] = (Src){IXv(dxa[0], 0, bx->de, 0, 0, 0)};
                if (anyx[1]) od[no++] = (Src){IXv(dxa[1], 0, bx->dod, 0, 0, 0)};
                kir_store(K(b), s, IXv(dX, 0, Fin, 1, 0, 0), analyse_t_expr(b, bx, 1, ev, ne, od, no));
            }
        }
        for (int g = 0; g < G; g++)
            bias_grad(b, f, bias[g], wx[g].bo, dpre, (long)g * H, GH, NB(T), arena_printf(l->a, "d bias l%d g%d", ly, g));
        if (bias_h) bias_grad(b, f, bias_h, wh[2].bo, dhp, 2L * H, GH, NB(T), arena_printf(l->a, "d bias_h l%d", ly));
        if (ly > 0) {
            /* layer ly's input is layer ly-1's output after dropout */
            if (l->train && f->a.p > 0) {
                int m = temp(l, arena_printf(l->a, "%%%d dy l%d", f->id, ly - 1), (long)T * H, 0);
                s = loop1(b, arena_printf(l->a, "%s: through the dropout after layer %d", nm, ly - 1), NB((long)T * H));
                kir_store(K(b), s, IXv(m, 0, 1, 0, 0, 0),
                          MUL(l, LD(l, IXv(dX, 0, 1, 0, 0, 0)),
                              kir_dropmask(K(b), f->a.p, ((uint64_t)f->id << 8) | (uint64_t)ly, IXv(-1, 0, 1, 0, 0, 0))));
                dY = m;
            } else {
                dY = dX;
            }
        }
    }
    mask_fixed_zero(b, f);
}

/* A recurrence's gradient inputs: dy (has a time axis) and / or ds. */
static void rec_grads(B *b, const IrNode *n, int *dy, int *ds) {
    const IrNode *f = n->a.fwd;
    *dy = *ds = -1;
    for (int i = 0; i < n->nin && n->in[i] != f->in[0]; i++) {
        if (n->in[i]->shape.time == IR_NO_TIME) *ds = b->l->val[n->in[i]->id];
        else *dy = b->l->val[n->in[i]->id];
    }
}

static void rec_run(B *b, const IrNode *n) {
    const IrNode *f = n->a.fwd;
    if (b->rdone[f->id]) return;
    int dy, ds;
    rec_grads(b, n, &dy, &ds);
    bptt(b, f, dy, ds);
}

/* ---- the nodes --------------------------------------------------------------------------------------------- */

static int grad_buf(B *b, const IrNode *n) {
    L *l = b->l;
    return temp(l, arena_printf(l->a, "%%%d grad of %%%d %s", n->id, n->a.fwd->id, ir_op_info[n->a.fwd->op].name),
                (long)frames(n) * n->shape.feat, 0);
}

static int doutput_buf(B *b, int io) {
    KirProgram *k = K(b);
    for (int i = 0; i < k->nbufs; i++)
        if (k->bufs[i].kind == KIR_BUF_DOUTPUT && k->bufs[i].io == io) return i;
    const IrNode *out = b->l->p->outputs[io]->node;
    int d = kir_buf(k, arena_printf(b->l->a, "d %s", b->l->p->outputs[io]->name), KIR_BUF_DOUTPUT,
                    (long)frames(out) * out->shape.feat, 0);
    k->bufs[d].io = io;
    return d;
}

static void lower_grad(B *b, const IrNode *n) {
    L *l = b->l;
    const IrNode *f = n->a.fwd;
    int wrt = n->a.wrt;
    if (f->op == IR_LOSS) {
        l->val[n->id] = doutput_buf(b, f->in[1]->a.io);
        return;
    }
    if (f->op == IR_LSTM || f->op == IR_GRU) {
        rec_run(b, n);
        l->val[n->id] = wrt == 0 ? b->rdx[f->id] : b->rdinit[f->id];
        sup_assert(l->val[n->id] >= 0);
        return;
    }
    int dy = l->val[n->in[0]->id];
    sup_assert(dy >= 0);
    const IrNode *x = f->in[wrt];
    int F = x->shape.feat, T = frames(x), Fy = f->shape.feat, Ty = frames(f);
    const char *nm = nname(l, f);
    switch (f->op) {
    case IR_OUTPUT:
    case IR_ADD:
    case IR_FLATTEN: /* [T][F] row-major is already frame-major */
        l->val[n->id] = dy;
        return;
    case IR_DROPOUT: {
        if (!l->train || f->a.p <= 0) {
            l->val[n->id] = dy;
            return;
        }
        int y = l->val[n->id] = grad_buf(b, n);
        KirStep *s = loop1(b, arena_printf(l->a, "%s: dx = dy mask", nm), NB((long)T * F));
        kir_store(K(b), s, IXv(y, 0, 1, 0, 0, 0),
                  MUL(l, LD(l, IXv(dy, 0, 1, 0, 0, 0)), kir_dropmask(K(b), f->a.p, (uint64_t)f->id << 8, IXv(-1, 0, 1, 0, 0, 0))));
        return;
    }
    default:
        break;
    }
    int y = l->val[n->id] = grad_buf(b, n);
    KirStep *s;
    switch (f->op) {
    case IR_SUB:
        s = loop1(b, arena_printf(l->a, "%s: dx = -dy", nm), NB((long)T * F));
        kir_store(K(b), s, IXv(y, 0, 1, 0, 0, 0), kir_un(K(b), KIR_E_NEG, LD(l, IXv(dy, 0, 1, 0, 0, 0))));
        return;
    case IR_ACT: grad_act(b, f, dy, y); return;
    case IR_SOFTMAX: grad_softmax(b, f, dy, y); return;
    case IR_CONCAT: {
        long off = 0;
        for (int k = 0; k < wrt; k++) off += f->in[k]->shape.feat;
        s = loop2(b, arena_printf(l->a, "%s: dx = slice %d of dy", nm, wrt), NB(T), F);
        kir_store(K(b), s, IXv(y, 0, F, 1, 0, 0), LD(l, IXv(dy, off, Fy, 1, 0, 0)));
        return;
    }
    case IR_CROP: {
        if (f->a.stride > 1 && f->a.crop < f->a.stride && (long)Ty * f->a.stride == T) {
            /* every frame is one of a stride's (the strided VideoPose3D's residual): one
             * pass, dy where the frame's place in its stride is the crop, else 0. It writes
             * every element, so fusion can take it into the residual's add, which then reads
             * dy's frames instead of a full-size dx (docs/kernel-ir.md "Fusion") */
            s = loop4(b, arena_printf(l->a, "%s: dx = dy in the kept frames, else 0", nm), NB(1), Ty, f->a.stride, F);
            KirIndex di = IXv(dy, 0, (long)Ty * F, F, 0, 1);
            di.guard = true, di.goff = -f->a.crop, di.gcoef[2] = 1, di.glimit = 1;
            kir_store(K(b), s, IXv(y, 0, (long)T * F, (long)f->a.stride * F, F, 1), LD(l, di));
            return;
        }
        if (f->a.stride > 1) {
            /* a strided crop's adjoint scatters: zero, then dy into every stride-th frame */
            s = loop3(b, arena_printf(l->a, "%s: dx = 0", nm), NB(1), T, F);
            kir_store(K(b), s, IXv(y, 0, (long)T * F, F, 1, 0), C(l, 0));
            s = loop3(b, arena_printf(l->a, "%s: dx = dy in the kept frames", nm), NB(1), Ty, F);
            kir_store(K(b), s, IXv(y, (long)f->a.crop * F, (long)T * F, (long)f->a.stride * F, 1, 0),
                      LD(l, IXv(dy, 0, (long)Ty * F, F, 1, 0)));
            return;
        }
        s = loop3(b, arena_printf(l->a, "%s: dx = dy in the kept frames", nm), NB(1), T, F);
        KirIndex di = IXv(dy, -(long)f->a.crop * F, (long)Ty * F, F, 1, 0);
        di.guard = true, di.goff = -f->a.crop, di.gcoef[1] = 1, di.glimit = Ty;
        kir_store(K(b), s, IXv(y, 0, (long)T * F, F, 1, 0), LD(l, di));
        return;
    }
    case IR_MEANPOOL:
        s = loop3(b, arena_printf(l->a, "%s: dx = dy / T", nm), NB(1), T, F);
        kir_store(K(b), s, IXv(y, 0, (long)T * F, F, 1, 0), DIV(l, LD(l, IXv(dy, 0, F, 0, 1, 0)), C(l, T)));
        return;
    case IR_LAST: {
        s = loop3(b, arena_printf(l->a, "%s: dx = dy at the last frame", nm), NB(1), T, F);
        KirIndex di = IXv(dy, 0, F, 0, 1, 0);
        di.guard = true, di.goff = -(long)(T - 1), di.gcoef[1] = 1, di.glimit = 1;
        kir_store(K(b), s, IXv(y, 0, (long)T * F, F, 1, 0), LD(l, di));
        return;
    }
    case IR_REPEAT: {
        s = loop2(b, arena_printf(l->a, "%s: dx = sum of dy over the frames", nm), NB(1), F);
        kir_loop_red(s, D(Ty));
        KirIndex di = IXv(dy, 0, (long)Ty * F, 1, 0, 0);
        di.coef[KIR_RVAR] = F;
        kir_store(K(b), s, IXv(y, 0, F, 1, 0, 0), kir_un(K(b), KIR_E_SUM, LD(l, di)));
        return;
    }
    case IR_LINEAR:
    case IR_CONV1D:
    case IR_INVARIANT: grad_map_dx(b, f, dy, y); return;
    case IR_BATCHNORM: grad_bn_dx(b, f, dy, y); return;
    default: sup_bug("backward: no gradient of %s", ir_op_info[f->op].name);
    }
}

static void lower_pgrad(B *b, const IrNode *n) {
    const IrNode *f = n->a.fwd;
    switch (f->op) {
    case IR_LINEAR:
    case IR_CONV1D:
    case IR_INVARIANT: pgrad_map(b, f, b->l->val[n->in[0]->id]); return;
    case IR_BATCHNORM: pgrad_bn(b, f, b->l->val[n->in[0]->id]); return;
    case IR_LSTM:
    case IR_GRU: rec_run(b, n); return;
    default: sup_bug("backward: parameter gradient of %s", ir_op_info[f->op].name);
    }
}

bool cg_lower_backward(L *l) {
    KirProgram *k = l->k;
    const IrProgram *p = l->p;
    int nn = l->m->layout->nnodes;
    B b = {.l = l, .grads = -1};
    for (int i = 0; i < k->nbufs; i++)
        if (k->bufs[i].kind == KIR_BUF_GRAD) b.grads = i;
    if (b.grads < 0) b.grads = kir_buf(k, "grads", KIR_BUF_GRAD, 0, l->m->params_size);
    int *ints = sup_malloc(sizeof(int) * 5 * (size_t)(nn + 1));
    bool *flags = sup_malloc(sizeof(bool) * 3 * (size_t)(nn + 1));
    b.dyc = sup_malloc(sizeof(CgCols) * (size_t)(nn + 1));
    b.bst = ints, b.bsum = b.bst + nn + 1;
    b.bsumx = b.bsum + nn + 1, b.rdx = b.bsumx + nn + 1, b.rdinit = b.rdx + nn + 1;
    b.rdone = flags, b.has_pgrad = flags + nn + 1, b.want0 = b.has_pgrad + nn + 1;
    for (int i = 0; i <= nn; i++) {
        b.dyc[i] = (CgCols){{-2, -2}, {0, 0}, {0, 0}};
        b.bst[i] = b.bsum[i] = b.bsumx[i] = b.rdx[i] = b.rdinit[i] = -1;
        b.rdone[i] = b.has_pgrad[i] = b.want0[i] = false;
    }
    ir_foreach(p, n) {
        if (n->op == IR_PGRAD) b.has_pgrad[n->a.fwd->id] = true;
        if (n->op == IR_GRAD && n->a.wrt == 0) b.want0[n->a.fwd->id] = true;
    }
    KirFn saved = l->fn;
    l->fn = l->train ? KIR_FN_BWD_TRAIN : KIR_FN_BWD_INFER;
    /* layers the loss does not reach: a zero gradient */
    const IrParams *w = l->m->layout;
    ir_foreach(p, n) {
        if (!ir_op_has(n->op, OPF_PARAMS) || b.has_pgrad[n->id]) continue;
        for (int i = w->node_first[n->id], e = i + w->node_count[n->id]; i < e; i++) {
            const IrParamEntry *pe = &w->entries[i];
            long sz = (long)pe->rows * pe->cols;
            if (pe->trainable && sz > 0)
                cg_zero_fill(l, l->fn, b.grads, goff(&b, pe), D(sz), arena_printf(l->a, "%s: unused, %s = 0", nname(l, n), pe->name));
        }
    }
    /* inference: forward_infer keeps no history; recompute it here (training
     * semantics stay off: no dropout, running statistics) */
    if (!l->train) {
        bool kp = l->keep;
        l->keep = true;
        ir_foreach(p, n) if (!l->bwd[n->id] && (n->op == IR_LSTM || n->op == IR_GRU) && b.has_pgrad[n->id])
            cg_lower_recurrent(l, n);
        l->keep = kp;
    }
    ir_foreach(p, n) {
        if (!l->bwd[n->id]) continue;
        switch (n->op) {
        case IR_TARGET:
        case IR_LOSS: break; /* the runtime's (RtExec.doutputs) */
        case IR_GRAD: lower_grad(&b, n); break;
        case IR_PGRAD: lower_pgrad(&b, n); break;
        case IR_ADD: { /* a gradient sum */
            int y = l->val[n->id] = temp(l, arena_printf(l->a, "%%%d gradient sum", n->id), (long)frames(n) * n->shape.feat, 0);
            KirStep *s = loop1(&b, nname(l, n), NB((long)frames(n) * n->shape.feat));
            kir_store(k, s, IXv(y, 0, 1, 0, 0, 0),
                      ADD(l, LD(l, IXv(l->val[n->in[0]->id], 0, 1, 0, 0, 0)), LD(l, IXv(l->val[n->in[1]->id], 0, 1, 0, 0, 0))));
            break;
        }
        default: sup_bug("backward: op %s in the training graph", ir_op_info[n->op].name);
        }
    }
    l->fn = saved;
    sup_free(ints);
    sup_free(flags);
    sup_free(b.dyc);
    return true;
}
