/* ir/interp_grad.c: the float64 reference for the training graph: targets,
 * losses, and the backward of every forward op (docs/design.md "Training
 * graph"), run by interp.c's node loop through one hook.
 *
 * Gradients are taken in the folded basis: a layer y = S_out blockdiag(A, B)
 * Q_in x (+ S_out b_even) has dA = sum dy_even (x) x_even, where dy_even is the
 * adjoint of the synthesis applied to dy. The adjoints of ir_basis_synthesise
 * and ir_basis_analyse are written out below (synth_t, analyse_t). Forward
 * internals (batchnorm statistics, LSTM/GRU gates and cells) are recomputed
 * from the forward node's inputs rather than kept: this file is the
 * reference, written for clarity. */
#include <math.h>
#include <string.h>

#include "ir/interp_run.h"

/* A recurrent node's backward gives all its gradients at once (dx, the
 * initial states', the parameters'); it is kept for the other grad / pgrad
 * nodes of the same forward node within one run. */
typedef struct RecCache {
    double *dx, *dinit, *dparam; /* dparam: the node's entries, from its first entry's offset */
    long pbase, plen;
    bool done;
} RecCache;

struct IrRunTrain {
    double **targets; /* by output, NULL until asked for */
    int *target_time; /* frames (IR_NO_TIME: none) */
    double *grad;     /* IrParams.size */
    double loss;
    RecCache *rec;    /* by node id */
};

static int frames_of(int t) { return t == IR_NO_TIME ? 1 : t; }

static double *alloc_zero(long n) {
    double *d = sup_malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    memset(d, 0, sizeof(double) * (size_t)(n > 0 ? n : 1));
    return d;
}

static IrRunTrain *train_of(IrRun *r) {
    if (!r->train) {
        IrRunTrain *t = sup_malloc(sizeof *t);
        memset(t, 0, sizeof *t);
        int no = r->p->noutputs;
        t->targets = sup_malloc(sizeof(double *) * (size_t)(no + 1));
        t->target_time = sup_malloc(sizeof(int) * (size_t)(no + 1));
        memset(t->targets, 0, sizeof(double *) * (size_t)(no + 1));
        t->loss = NAN;
        t->rec = sup_malloc(sizeof(RecCache) * (size_t)(r->nnodes + 1));
        memset(t->rec, 0, sizeof(RecCache) * (size_t)(r->nnodes + 1));
        r->train = t;
    }
    return r->train;
}

static void rec_clear(RecCache *c) {
    sup_free(c->dx), sup_free(c->dinit), sup_free(c->dparam);
    memset(c, 0, sizeof *c);
}

void ir_interp_train_reset(IrRun *r) {
    IrRunTrain *t = r->train;
    if (!t) return;
    if (t->grad) memset(t->grad, 0, sizeof(double) * (size_t)(r->w->size > 0 ? r->w->size : 1));
    for (int i = 0; i < r->nnodes; i++) rec_clear(&t->rec[i]);
    t->loss = NAN;
}

void ir_interp_train_free(IrRun *r) {
    IrRunTrain *t = r->train;
    if (!t) return;
    for (int i = 0; i < r->p->noutputs; i++) sup_free(t->targets[i]);
    for (int i = 0; i < r->nnodes; i++) rec_clear(&t->rec[i]);
    sup_free(t->targets), sup_free(t->target_time), sup_free(t->grad), sup_free(t->rec);
    sup_free(t);
    r->train = NULL;
}

/* Width of a target: a class output's label is its class index. */
static int target_feat(const IrDecl *d) { return d->is_class ? 1 : d->feat; }

double *ir_run_target(IrRun *r, int i) {
    sup_assert(i >= 0 && i < r->p->noutputs);
    IrRunTrain *t = train_of(r);
    if (t->targets[i]) return t->targets[i];
    /* The output's frames follow from the inputs' lengths: walk the forward
     * ops' time extents (a run recomputes them the same way). */
    const IrNode *out = r->p->outputs[i]->node;
    int time = out->shape.time;
    const char *why = NULL;
    for (const IrNode *n = r->p->first; n && !why; n = n->next) {
        if (ir_op_has(n->op, OPF_TRAIN)) continue;
        r->time[n->id] = ir_interp_time_of(r, n, &why);
        if (n == out) {
            if (!why) time = r->time[n->id];
            break;
        }
    }
    t->target_time[i] = time;
    t->targets[i] = alloc_zero((long)r->batch * frames_of(time) * target_feat(r->p->outputs[i]));
    return t->targets[i];
}

int ir_run_target_time(IrRun *r, int i) {
    ir_run_target(r, i);
    return frames_of(r->train->target_time[i]);
}

const double *ir_run_grad(IrRun *r) {
    IrRunTrain *t = train_of(r);
    if (!t->grad) t->grad = alloc_zero(r->w->size);
    return t->grad;
}

double ir_run_loss(const IrRun *r) { return r->train ? r->train->loss : NAN; }

/* ---- the even/odd basis and its adjoints ------------------------------------------- */

/* (de, do) = S^T dx, the adjoint of ir_basis_synthesise:
 * x_f = (e + o)/2, x_g = s (e - o)/2 give de = (dx_f + s dx_g)/2, do = (dx_f - s dx_g)/2. */
static void synth_t(const IrBasis *b, const double *dx, double *de, double *dodd) {
    for (int k = 0; k < b->d_even; k++)
        de[k] = b->eg[k] < 0 ? dx[b->ef[k]] : 0.5 * (dx[b->ef[k]] + b->es[k] * dx[b->eg[k]]);
    for (int k = 0; k < b->d_odd; k++)
        dodd[k] = b->og[k] < 0 ? dx[b->of[k]] : 0.5 * (dx[b->of[k]] - b->os[k] * dx[b->og[k]]);
}

/* dx += Q^T (de, do), the adjoint of ir_basis_analyse (e = x_f + s x_g, o = x_f - s x_g). */
static void analyse_t_acc(const IrBasis *b, const double *de, const double *dodd, double *dx) {
    for (int k = 0; k < b->d_even; k++) {
        dx[b->ef[k]] += de[k];
        if (b->eg[k] >= 0) dx[b->eg[k]] += b->es[k] * de[k];
    }
    for (int k = 0; k < b->d_odd; k++) {
        dx[b->of[k]] += dodd[k];
        if (b->og[k] >= 0) dx[b->og[k]] -= b->os[k] * dodd[k];
    }
}

/* y[c] += sum_r M[r][c] v[r]: the transposed product */
static void matvec_t_acc(const double *M, int rows, int cols, const double *v, double *y) {
    for (int r = 0; r < rows; r++) {
        const double *m = M + (long)r * cols;
        double vr = v[r];
        if (vr == 0) continue;
        for (int c = 0; c < cols; c++) y[c] += m[c] * vr;
    }
}

static void matvec_acc(const double *M, int rows, int cols, const double *x, double *y) {
    for (int r = 0; r < rows; r++) {
        const double *m = M + (long)r * cols;
        double s = 0;
        for (int c = 0; c < cols; c++) s += m[c] * x[c];
        y[r] += s;
    }
}

/* G[r][c] += u[r] v[c] */
static void outer_acc(double *G, int rows, int cols, const double *u, const double *v) {
    for (int r = 0; r < rows; r++) {
        double ur = u[r];
        if (ur == 0) continue;
        double *g = G + (long)r * cols;
        for (int c = 0; c < cols; c++) g[c] += ur * v[c];
    }
}

/* ---- parameters ---------------------------------------------------------------------------- */

static const IrParamEntry *need(const IrRun *r, const IrNode *n, const char *name, int layer, int gate,
                                int tap) {
    const IrParamEntry *e = ir_params_find(r->w, n, name, layer, gate, tap);
    if (!e) sup_bug("interpreter: %s node %%%d has no parameter %s[%d,%d,%d]", ir_op_info[n->op].name, n->id,
                    name, layer, gate, tap);
    return e;
}

/* Where the gradient of entry e goes: a buffer laid out like the node's
 * entries, starting at offset `base` of the parameter buffer. */
typedef struct PGrad {
    double *g;
    long base;
} PGrad;
static double *pg(const PGrad *d, const IrParamEntry *e) { return d->g + (e->offset - d->base); }

/* The node's entries as one range of the parameter buffer. */
static void node_range(const IrRun *r, const IrNode *n, long *base, long *len) {
    const IrParams *w = r->w;
    int first = w->node_first[n->id], count = w->node_count[n->id];
    *base = count ? w->entries[first].offset : 0;
    const IrParamEntry *last = count ? &w->entries[first + count - 1] : NULL;
    *len = last ? last->offset + (long)last->rows * last->cols - *base : 0;
}

/* Training never moves what must not move: running statistics and the
 * weights the paper's sharing holds at zero get a zero gradient. */
static void mask_node(const IrRun *r, const IrNode *n, const PGrad *d) {
    const IrParams *w = r->w;
    for (int i = w->node_first[n->id], e = i + w->node_count[n->id]; i < e; i++) {
        const IrParamEntry *pe = &w->entries[i];
        double *g = pg(d, pe);
        if (!pe->trainable) {
            memset(g, 0, sizeof(double) * (size_t)pe->rows * (size_t)pe->cols);
            continue;
        }
        if (pe->name[strlen(pe->name) - 1] == 'A')
            for (int row = 0; row < pe->rows; row++)
                for (int c = 0; c < pe->cols; c++)
                    if (ir_params_fixed_zero(w, pe, row, c)) g[(long)row * pe->cols + c] = 0.0;
    }
}

/* ---- activations ------------------------------------------------------------------------- */

/* phi'(x); at a kink the derivative of the branch the forward takes for x */
static double act_deriv(IrAct a, double x, double slope) {
    switch (a) {
    case IR_ACT_RELU: return x > 0 ? 1.0 : 0.0;
    case IR_ACT_LEAKY_RELU: return x >= 0 ? 1.0 : slope;
    case IR_ACT_ELU: return x > 0 ? 1.0 : exp(x);
    case IR_ACT_GELU:
        return 0.5 * (1.0 + erf(x * 0.70710678118654752440)) + x * exp(-0.5 * x * x) * 0.39894228040143267794;
    case IR_ACT_SIGMOID: {
        double s = ir_interp_act(a, x, slope);
        return s * (1.0 - s);
    }
    case IR_ACT_TANH: {
        double t = tanh(x);
        return 1.0 - t * t;
    }
    case IR_ACT_SOFTSIGN: {
        double d = 1.0 + fabs(x);
        return 1.0 / (d * d);
    }
    case IR_ACT_HARDTANH: return x < -1.0 || x > 1.0 ? 0.0 : 1.0;
    default: sup_bug("interpreter: unknown activation %d", (int)a);
    }
}

static bool dropout_on(const IrInterpOpts *o) { return o->mode == IR_TRAINING && o->dropout; }

/* ---- linear maps ----------------------------------------------------------------------------- */

/* linear, invariant, conv1d: dx (if wanted) and the parameter gradients (if d). */
static void grad_linear(IrRun *r, const IrNode *f, const double *dy, const double *x, double *dx, const PGrad *d) {
    int N = r->batch, k = 1, dil = 1, s = 1, pad = 0;
    if (f->op == IR_CONV1D) k = f->a.kernel, dil = f->a.dilation, s = f->a.stride, pad = f->a.padding;
    if (dil < 1) dil = 1;
    if (s < 1) s = 1;
    const IrParamEntry *a0 = need(r, f, "A", 0, 0, 0);
    const IrBasis *bi = a0->basis_in, *bo = a0->basis_out;
    int ti = frames_of(r->time[f->in[0]->id]), to = frames_of(r->time[f->id]);
    long fin = (long)N * ti, fout = (long)N * to;
    double *dye = alloc_zero(fout * bo->d_even), *dyo = alloc_zero(fout * bo->d_odd);
    for (long fr = 0; fr < fout; fr++) synth_t(bo, dy + fr * bo->n, dye + fr * bo->d_even, dyo + fr * bo->d_odd);
    double *xe = NULL, *xo = NULL, *dxe = NULL, *dxo = NULL;
    if (d) {
        xe = alloc_zero(fin * bi->d_even), xo = alloc_zero(fin * bi->d_odd);
        for (long fr = 0; fr < fin; fr++)
            ir_basis_analyse(bi, x + fr * bi->n, xe + fr * bi->d_even, xo + fr * bi->d_odd);
        const IrParamEntry *bias = ir_params_find(r->w, f, "bias", 0, 0, 0);
        if (bias) {
            double *gb = pg(d, bias);
            for (long fr = 0; fr < fout; fr++)
                for (int q = 0; q < bo->d_even; q++) gb[q] += dye[fr * bo->d_even + q];
        }
    }
    if (dx) dxe = alloc_zero(fin * bi->d_even), dxo = alloc_zero(fin * bi->d_odd);
    for (int tap = 0; tap < k; tap++) {
        const IrParamEntry *ea = need(r, f, "A", 0, 0, tap), *eb = need(r, f, "B", 0, 0, tap);
        const double *A = ir_params_data(r->w, ea), *B = ir_params_data(r->w, eb);
        for (int b = 0; b < N; b++)
            for (int t = 0; t < to; t++) {
                int src = t * s - pad + tap * dil;
                if (src < 0 || src >= ti) continue;
                long fi = (long)b * ti + src, fo = (long)b * to + t;
                const double *ge = dye + fo * bo->d_even, *go = dyo + fo * bo->d_odd;
                if (d) {
                    outer_acc(pg(d, ea), bo->d_even, bi->d_even, ge, xe + fi * bi->d_even);
                    outer_acc(pg(d, eb), bo->d_odd, bi->d_odd, go, xo + fi * bi->d_odd);
                }
                if (dx) {
                    matvec_t_acc(A, bo->d_even, bi->d_even, ge, dxe + fi * bi->d_even);
                    matvec_t_acc(B, bo->d_odd, bi->d_odd, go, dxo + fi * bi->d_odd);
                }
            }
    }
    if (dx)
        for (long fr = 0; fr < fin; fr++) analyse_t_acc(bi, dxe + fr * bi->d_even, dxo + fr * bi->d_odd, dx + fr * bi->n);
    sup_free(dye), sup_free(dyo), sup_free(xe), sup_free(xo), sup_free(dxe), sup_free(dxo);
}

/* ---- batchnorm ------------------------------------------------------------------------------ */

static void grad_batchnorm(IrRun *r, const IrNode *f, const double *dy, const double *x, double *dx,
                           const PGrad *d, const IrInterpOpts *o) {
    int F = f->shape.feat;
    long R = (long)r->batch * frames_of(r->time[f->id]);
    bool trivial = f->a.unconstrained || !f->chi.partner;
    const IrParamEntry *eg = need(r, f, "gamma", 0, 0, 0), *eb = need(r, f, "beta", 0, 0, 0);
    const IrParamEntry *em = need(r, f, "mean", 0, 0, 0), *ev = need(r, f, "var", 0, 0, 0);
    const IrBasis *basis = eb->basis_out;
    const double *gamma = ir_params_data(r->w, eg), *rmean_e = ir_params_data(r->w, em);
    const double *rvar = ir_params_data(r->w, ev);
    double *buf = alloc_zero(12L * F + basis->d_even + basis->d_odd + 2);
    double *mu = buf, *var = mu + F, *m = var + F, *q = m + F, *k = q + F, *inv = k + F;
    double *dmu = inv + F, *dvar = dmu + F, *dm = dvar + F, *dq = dm + F, *sdy = dq + F, *sdyx = sdy + F;
    double *ze = sdyx + F, *zo = ze + basis->d_even;
    int *orb = sup_malloc(sizeof(int) * (size_t)(F + 1));
    for (int ff = 0, next = 0; ff < F; ff++) { /* orbits numbered by their first feature, as params.c */
        int g = trivial ? ff : f->chi.partner[ff];
        orb[ff] = g < ff ? orb[g] : next++;
    }
    int *pt = sup_malloc(sizeof(int) * (size_t)(F + 1));
    double *sg = alloc_zero(F);
    for (int ff = 0; ff < F; ff++) {
        pt[ff] = trivial ? ff : f->chi.partner[ff];
        sg[ff] = trivial ? 1.0 : f->chi.sign[ff];
    }
    double eps = f->a.eps > 0 ? f->a.eps : 1e-5;
    bool training = o->mode == IR_TRAINING;
    if (training) {
        for (long i = 0; i < R; i++)
            for (int ff = 0; ff < F; ff++) {
                double v = x[i * F + ff];
                m[ff] += v, q[ff] += v * v;
            }
        for (int ff = 0; ff < F; ff++) m[ff] /= (double)R, q[ff] /= (double)R;
        for (int ff = 0; ff < F; ff++) {
            mu[ff] = 0.5 * (m[ff] + sg[ff] * m[pt[ff]]);
            var[ff] = 0.5 * (q[ff] + q[pt[ff]]) - mu[ff] * mu[ff];
            if (var[ff] < 0) var[ff] = 0;
        }
    } else {
        ir_basis_synthesise(basis, rmean_e, zo, mu);
        for (int ff = 0; ff < F; ff++) var[ff] = rvar[orb[ff]];
    }
    for (int ff = 0; ff < F; ff++) inv[ff] = 1.0 / sqrt(var[ff] + eps), k[ff] = gamma[orb[ff]] * inv[ff];
    /* sums over the rows of dy and dy * (x - mu) */
    for (long i = 0; i < R; i++)
        for (int ff = 0; ff < F; ff++) {
            double g = dy[i * F + ff];
            sdy[ff] += g, sdyx[ff] += g * (x[i * F + ff] - mu[ff]);
        }
    if (d) {
        double *gg = pg(d, eg), *gb = pg(d, eb);
        for (int ff = 0; ff < F; ff++) gg[orb[ff]] += sdyx[ff] * inv[ff];
        /* beta = S(beta_even, 0): its gradient is the even part of S^T dbeta */
        synth_t(basis, sdy, ze, zo);
        for (int q2 = 0; q2 < basis->d_even; q2++) gb[q2] += ze[q2];
    }
    if (dx) {
        for (long i = 0; i < R; i++)
            for (int ff = 0; ff < F; ff++) dx[i * F + ff] += dy[i * F + ff] * k[ff];
        if (training) {
            /* through the augmented-batch statistics:
             * var = (q + q_p)/2 - mu^2, mu = (m + s m_p)/2, m = mean x, q = mean x^2 */
            for (int ff = 0; ff < F; ff++) {
                double v = var[ff] + eps;
                dvar[ff] = var[ff] > 0 ? sdyx[ff] * gamma[orb[ff]] * -0.5 / (v * sqrt(v)) : 0.0;
                dmu[ff] = -sdy[ff] * k[ff] - 2.0 * mu[ff] * dvar[ff];
            }
            for (int ff = 0; ff < F; ff++) {
                dq[ff] += 0.5 * dvar[ff], dq[pt[ff]] += 0.5 * dvar[ff];
                dm[ff] += 0.5 * dmu[ff], dm[pt[ff]] += 0.5 * sg[ff] * dmu[ff];
            }
            for (long i = 0; i < R; i++)
                for (int ff = 0; ff < F; ff++)
                    dx[i * F + ff] += (dm[ff] + 2.0 * dq[ff] * x[i * F + ff]) / (double)R;
        }
    }
    sup_free(buf), sup_free(orb), sup_free(pt), sup_free(sg);
}

/* ---- recurrences --------------------------------------------------------------------------- */

typedef struct RGate {
    const IrParamEntry *ax, *bx, *ah, *bh, *bias, *bias_h;
    const double *Ax, *Bx, *Ah, *Bh, *b, *b_h;
    const IrBasis *bin, *bhid, *bg;
} RGate;

/* out = S_g(A xe + bias, B xo) for one frame (bias may be NULL) */
static void map_fwd(const IrBasis *bg, const IrBasis *bin, const double *A, const double *B, const double *bias,
                    const double *x, double *out, double *work) {
    double *xe = work, *xo = xe + bin->d_even, *ye = xo + bin->d_odd, *yo = ye + bg->d_even;
    ir_basis_analyse(bin, x, xe, xo);
    for (int q = 0; q < bg->d_even; q++) ye[q] = bias ? bias[q] : 0.0;
    memset(yo, 0, sizeof(double) * (size_t)bg->d_odd);
    matvec_acc(A, bg->d_even, bin->d_even, xe, ye);
    matvec_acc(B, bg->d_odd, bin->d_odd, xo, yo);
    ir_basis_synthesise(bg, ye, yo, out);
}

/* The backward of map_fwd for one frame: dx += ..., dA, dB, dbias += ... */
static void map_bwd(const IrBasis *bg, const IrBasis *bin, const double *A, const double *B, const double *x,
                    const double *dout, double *dx, double *dA, double *dB, double *dbias, double *work) {
    double *xe = work, *xo = xe + bin->d_even, *ge = xo + bin->d_odd, *go = ge + bg->d_even;
    double *dxe = go + bg->d_odd, *dxo = dxe + bin->d_even;
    ir_basis_analyse(bin, x, xe, xo);
    synth_t(bg, dout, ge, go);
    outer_acc(dA, bg->d_even, bin->d_even, ge, xe);
    outer_acc(dB, bg->d_odd, bin->d_odd, go, xo);
    if (dbias)
        for (int q = 0; q < bg->d_even; q++) dbias[q] += ge[q];
    memset(dxe, 0, sizeof(double) * (size_t)(bin->d_even + bin->d_odd));
    matvec_t_acc(A, bg->d_even, bin->d_even, ge, dxe);
    matvec_t_acc(B, bg->d_odd, bin->d_odd, go, dxo);
    analyse_t_acc(bin, dxe, dxo, dx);
}

/* The whole backward of an lstm / gru node, by recomputing its forward and
 * back-propagating through time. dy: gradient of the result sequence (NULL:
 * zero); ds: gradient of the final states ([layer][h, c for lstm][H], NULL:
 * zero). Fills the cache: dx, dinit (the initial states' gradient, when
 * init=), dparam. */
static void grad_recurrent(IrRun *r, const IrNode *f, const double *dy, const double *ds, const double *x,
                           const IrInterpOpts *o, RecCache *c) {
    bool lstm = f->op == IR_LSTM;
    int ng = lstm ? 4 : 3, N = r->batch, T = frames_of(r->time[f->id]), H = f->shape.feat;
    int L = f->a.layers > 0 ? f->a.layers : 1, Fin = f->in[0]->shape.feat, S = lstm ? 2 : 1;
    const IrNode *init = f->nin > 1 ? f->in[1] : NULL;
    long frames = (long)N * T;
    node_range(r, f, &c->pbase, &c->plen);
    c->dparam = alloc_zero(c->plen);
    PGrad d = {c->dparam, c->pbase};
    c->dx = alloc_zero(frames * Fin);
    if (init) c->dinit = alloc_zero((long)N * L * S * H);
    /* forward, layer by layer, keeping every layer's input, states and gates */
    double **X = sup_malloc(sizeof(double *) * (size_t)(L + 1));
    double **hseq = sup_malloc(sizeof(double *) * (size_t)L), **cseq = sup_malloc(sizeof(double *) * (size_t)L);
    double **gates = sup_malloc(sizeof(double *) * (size_t)L), **hn = sup_malloc(sizeof(double *) * (size_t)L);
    double *h0 = alloc_zero((long)L * N * H), *c0 = alloc_zero((long)L * N * H);
    if (init) {
        memcpy(h0, r->hstate[init->id], sizeof(double) * (size_t)L * N * H);
        if (lstm && init->op == IR_LSTM) memcpy(c0, r->cstate[init->id], sizeof(double) * (size_t)L * N * H);
    }
    RGate *G = sup_malloc(sizeof(RGate) * (size_t)(L * ng));
    long wmax = 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < ng; k++) {
            RGate *g = &G[l * ng + k];
            g->ax = need(r, f, "Wx.A", l, k, 0), g->bx = need(r, f, "Wx.B", l, k, 0);
            g->ah = need(r, f, "Wh.A", l, k, 0), g->bh = need(r, f, "Wh.B", l, k, 0);
            g->bias = need(r, f, "bias", l, k, 0);
            g->bias_h = ir_params_find(r->w, f, "bias_h", l, k, 0);
            g->Ax = ir_params_data(r->w, g->ax), g->Bx = ir_params_data(r->w, g->bx);
            g->Ah = ir_params_data(r->w, g->ah), g->Bh = ir_params_data(r->w, g->bh);
            g->b = ir_params_data(r->w, g->bias), g->b_h = g->bias_h ? ir_params_data(r->w, g->bias_h) : NULL;
            g->bin = g->ax->basis_in, g->bhid = g->ah->basis_in, g->bg = g->ax->basis_out;
            long need_w = 2L * (g->bin->n + g->bhid->n + g->bg->n) + 8;
            if (need_w > wmax) wmax = need_w;
        }
    double *work = alloc_zero(wmax), *tmp = alloc_zero(4L * H), *tmp2 = alloc_zero(4L * H);
    X[0] = (double *)x;
    for (int l = 0; l < L; l++) {
        int F = l == 0 ? Fin : H;
        hseq[l] = alloc_zero(frames * H), cseq[l] = alloc_zero(frames * H);
        gates[l] = alloc_zero(frames * ng * H), hn[l] = alloc_zero(frames * H);
        for (int b = 0; b < N; b++) {
            const double *hp = h0 + ((long)l * N + b) * H, *cp = c0 + ((long)l * N + b) * H;
            for (int t = 0; t < T; t++) {
                long fr = (long)b * T + t;
                const double *xt = X[l] + fr * F;
                double *gv = gates[l] + fr * ng * H, *h = hseq[l] + fr * H, *cc = cseq[l] + fr * H;
                for (int k = 0; k < ng; k++) {
                    const RGate *g = &G[l * ng + k];
                    double *pre = gv + (long)k * H;
                    map_fwd(g->bg, g->bin, g->Ax, g->Bx, g->b, xt, pre, work);
                    if (!lstm && k == 2) {
                        map_fwd(g->bg, g->bhid, g->Ah, g->Bh, g->b_h, hp, hn[l] + fr * H, work);
                    } else {
                        map_fwd(g->bg, g->bhid, g->Ah, g->Bh, NULL, hp, tmp, work);
                        for (int q = 0; q < H; q++) pre[q] += tmp[q];
                    }
                }
                if (lstm) {
                    for (int q = 0; q < H; q++) {
                        double gi = ir_interp_sigmoid(gv[q]), gf = ir_interp_sigmoid(gv[H + q]);
                        double gg = tanh(gv[2 * H + q]), go = ir_interp_sigmoid(gv[3 * H + q]);
                        gv[q] = gi, gv[H + q] = gf, gv[2 * H + q] = gg, gv[3 * H + q] = go;
                        cc[q] = gf * cp[q] + gi * gg;
                        h[q] = go * tanh(cc[q]);
                    }
                } else {
                    const double *hnv = hn[l] + fr * H;
                    for (int q = 0; q < H; q++) {
                        double gr = ir_interp_sigmoid(gv[q]), gz = ir_interp_sigmoid(gv[H + q]);
                        double gn = tanh(gv[2 * H + q] + gr * hnv[q]);
                        gv[q] = gr, gv[H + q] = gz, gv[2 * H + q] = gn;
                        h[q] = (1 - gz) * gn + gz * hp[q];
                    }
                }
                hp = h, cp = cc;
            }
        }
        if (l + 1 < L) {
            X[l + 1] = alloc_zero(frames * H);
            memcpy(X[l + 1], hseq[l], sizeof(double) * (size_t)(frames * H));
            if (dropout_on(o)) ir_interp_dropout(X[l + 1], frames * H, f->a.p, o->seed, f->id, l + 1);
        }
    }
    /* backward, top layer first */
    double *dY = alloc_zero(frames * H);
    if (dy) memcpy(dY, dy, sizeof(double) * (size_t)(frames * H));
    double *dh = alloc_zero(H), *dc = alloc_zero(H), *dhn = alloc_zero(H), *dcn = alloc_zero(H);
    double *pre_d = alloc_zero((long)ng * H);
    for (int l = L - 1; l >= 0; l--) {
        int F = l == 0 ? Fin : H;
        double *dX = l == 0 ? c->dx : alloc_zero(frames * H);
        for (int b = 0; b < N; b++) {
            /* gradients of the final states */
            memset(dhn, 0, sizeof(double) * (size_t)H), memset(dcn, 0, sizeof(double) * (size_t)H);
            if (ds) {
                const double *s = ds + ((long)b * L + l) * S * H;
                memcpy(dhn, s, sizeof(double) * (size_t)H);
                if (lstm) memcpy(dcn, s + H, sizeof(double) * (size_t)H);
            }
            for (int t = T - 1; t >= 0; t--) {
                long fr = (long)b * T + t;
                const double *gv = gates[l] + fr * ng * H;
                const double *hp = t > 0 ? hseq[l] + (fr - 1) * H : h0 + ((long)l * N + b) * H;
                const double *cp = t > 0 ? cseq[l] + (fr - 1) * H : c0 + ((long)l * N + b) * H;
                for (int q = 0; q < H; q++) dh[q] = dhn[q] + dY[fr * H + q];
                memset(dhn, 0, sizeof(double) * (size_t)H);
                double *hpart = tmp2; /* gradient of the h-part of each gate's pre-activation */
                if (lstm) {
                    const double *cc = cseq[l] + fr * H;
                    for (int q = 0; q < H; q++) {
                        double gi = gv[q], gf = gv[H + q], gg = gv[2 * H + q], go = gv[3 * H + q];
                        double tc = tanh(cc[q]);
                        double dcc = dcn[q] + dh[q] * go * (1 - tc * tc);
                        pre_d[q] = dcc * gg * gi * (1 - gi);
                        pre_d[H + q] = dcc * cp[q] * gf * (1 - gf);
                        pre_d[2 * H + q] = dcc * gi * (1 - gg * gg);
                        pre_d[3 * H + q] = dh[q] * tc * go * (1 - go);
                        dc[q] = dcc * gf;
                    }
                    memcpy(dcn, dc, sizeof(double) * (size_t)H);
                    memcpy(hpart, pre_d, sizeof(double) * (size_t)(4 * H));
                } else {
                    const double *hnv = hn[l] + fr * H;
                    for (int q = 0; q < H; q++) {
                        double gr = gv[q], gz = gv[H + q], gn = gv[2 * H + q];
                        double dn = dh[q] * (1 - gz) * (1 - gn * gn);
                        double dz = dh[q] * (hp[q] - gn);
                        dhn[q] += dh[q] * gz;
                        pre_d[2 * H + q] = dn;           /* x-part of n */
                        hpart[2 * H + q] = dn * gr;      /* h-part of n, inside r * (...) */
                        pre_d[q] = dn * hnv[q] * gr * (1 - gr);
                        pre_d[H + q] = dz * gz * (1 - gz);
                        hpart[q] = pre_d[q], hpart[H + q] = pre_d[H + q];
                    }
                }
                const double *xt = X[l] + fr * F;
                for (int k = 0; k < ng; k++) {
                    const RGate *g = &G[l * ng + k];
                    map_bwd(g->bg, g->bin, g->Ax, g->Bx, xt, pre_d + (long)k * H, dX + fr * F, pg(&d, g->ax),
                            pg(&d, g->bx), pg(&d, g->bias), work);
                    map_bwd(g->bg, g->bhid, g->Ah, g->Bh, hp, hpart + (long)k * H, dhn, pg(&d, g->ah), pg(&d, g->bh),
                            g->bias_h ? pg(&d, g->bias_h) : NULL, work);
                }
            }
            if (c->dinit) {
                double *s = c->dinit + ((long)b * L + l) * S * H;
                memcpy(s, dhn, sizeof(double) * (size_t)H);
                if (lstm) memcpy(s + H, dcn, sizeof(double) * (size_t)H);
            }
        }
        if (l > 0) {
            /* layer l's input is layer l-1's output after dropout */
            if (dropout_on(o)) ir_interp_dropout(dX, frames * H, f->a.p, o->seed, f->id, l);
            memcpy(dY, dX, sizeof(double) * (size_t)(frames * H));
            sup_free(dX);
        }
    }
    for (int l = 0; l < L; l++) {
        sup_free(hseq[l]), sup_free(cseq[l]), sup_free(gates[l]), sup_free(hn[l]);
        if (l > 0) sup_free(X[l]);
    }
    sup_free(X), sup_free(hseq), sup_free(cseq), sup_free(gates), sup_free(hn);
    sup_free(h0), sup_free(c0), sup_free(G), sup_free(work), sup_free(tmp), sup_free(tmp2);
    sup_free(dY), sup_free(dh), sup_free(dc), sup_free(dhn), sup_free(dcn), sup_free(pre_d);
    mask_node(r, f, &d);
}

/* ---- losses ---------------------------------------------------------------------------------- */

/* The loss of prediction y against target tg, and (if dy) its gradient. */
static bool loss_eval(const IrRun *r, const IrNode *ln, const double *y, const double *tg, int T, double *dy,
                      double *out, const char **why) {
    const IrNode *pred = ln->in[0];
    const IrDecl *d = r->p->outputs[ln->in[1]->a.io];
    int F = pred->shape.feat, N = r->batch;
    long rows = (long)N * T, size = rows * F;
    double L = 0;
    switch (ln->a.loss) {
    case IR_LOSS_MSE:
    case IR_LOSS_L1:
        for (long i = 0; i < size; i++) {
            double e = y[i] - tg[i];
            L += ln->a.loss == IR_LOSS_MSE ? e * e : fabs(e);
            if (dy) dy[i] = (ln->a.loss == IR_LOSS_MSE ? 2 * e : (e > 0) - (e < 0)) / (double)size;
        }
        L /= (double)size;
        break;
    case IR_LOSS_MPJPE: {
        int C = d->ncoords > 0 ? d->ncoords : 1, J = F / C;
        if (J * C != F) return *why = "mpjpe: the width is not joints x coordinates", false;
        long nj = rows * J;
        for (long j = 0; j < nj; j++) {
            double s = 0;
            for (int k = 0; k < C; k++) s += (y[j * C + k] - tg[j * C + k]) * (y[j * C + k] - tg[j * C + k]);
            double nrm = sqrt(s);
            L += nrm;
            if (dy)
                for (int k = 0; k < C; k++) dy[j * C + k] = nrm > 0 ? (y[j * C + k] - tg[j * C + k]) / nrm / (double)nj : 0.0;
        }
        L /= (double)nj;
        break;
    }
    case IR_LOSS_CROSS_ENTROPY:
        for (long i = 0; i < rows; i++) {
            const double *v = y + i * F;
            double cls = tg[i];
            if (!(cls >= 0 && cls < F) || cls != floor(cls))
                return *why = "cross_entropy: a target is not a class index of the output", false;
            double mx = -INFINITY, s = 0;
            for (int q = 0; q < F; q++) mx = v[q] > mx ? v[q] : mx;
            for (int q = 0; q < F; q++) s += exp(v[q] - mx);
            L += -(v[(int)cls] - mx - log(s));
            if (dy) {
                for (int q = 0; q < F; q++) dy[i * F + q] = exp(v[q] - mx) / s / (double)rows;
                dy[i * F + (int)cls] -= 1.0 / (double)rows;
            }
        }
        L /= (double)rows;
        break;
    default:
        return *why = "a loss node without a loss", false;
    }
    *out = L;
    return true;
}

/* ---- the nodes ---------------------------------------------------------------------------------- */

static const double *val(const IrRun *r, const IrNode *n) {
    const double *v = r->val[n->id];
    sup_assert(v != NULL);
    return v;
}

/* The gradient inputs of a recurrent grad / pgrad: dy (has a time axis) and /
 * or ds (no time axis), before the forward operands. */
static void rec_grads(const IrRun *r, const IrNode *n, const double **dy, const double **ds) {
    const IrNode *f = n->a.fwd;
    *dy = *ds = NULL;
    for (int i = 0; i < n->nin && n->in[i] != f->in[0]; i++) {
        if (n->in[i]->shape.time == IR_NO_TIME) *ds = val(r, n->in[i]);
        else *dy = val(r, n->in[i]);
    }
}

static RecCache *rec_cache(IrRun *r, const IrNode *n, const IrInterpOpts *o) {
    const IrNode *f = n->a.fwd;
    RecCache *c = &train_of(r)->rec[f->id];
    if (!c->done) {
        const double *dy, *ds;
        rec_grads(r, n, &dy, &ds);
        grad_recurrent(r, f, dy, ds, val(r, f->in[0]), o, c);
        c->done = true;
    }
    return c;
}

static bool run_grad(IrRun *r, const IrNode *n, const IrInterpOpts *o, double **yp, const char **why) {
    const IrNode *f = n->a.fwd;
    int wrt = n->a.wrt;
    bool rec_state = (f->op == IR_LSTM || f->op == IR_GRU) && wrt == 1;
    const IrNode *xin = f->in[wrt];
    int t = rec_state ? IR_NO_TIME : r->time[xin->id];
    r->time[n->id] = t;
    int F = n->shape.feat, N = r->batch;
    long rows = (long)N * frames_of(t), size = rows * F;
    if (!rec_state && F != xin->shape.feat) return *why = "a gradient's width differs from its tensor's", false;
    double *y = alloc_zero(size);
    *yp = y;
    r->val[n->id] = y;
    const double *dy = f->op == IR_LOSS ? NULL : val(r, n->in[0]);
    int Fy = f->shape.feat, Ty = frames_of(r->time[f->id]);
    switch (f->op) {
    case IR_LOSS: {
        double l;
        return loss_eval(r, f, val(r, n->in[0]), val(r, n->in[1]), frames_of(r->time[f->in[0]->id]), y, &l, why);
    }
    case IR_OUTPUT:
    case IR_ADD:
    case IR_FLATTEN: /* [T][F] row-major is already frame-major */
        memcpy(y, dy, sizeof(double) * (size_t)size);
        break;
    case IR_SUB:
        for (long i = 0; i < size; i++) y[i] = wrt == 0 ? dy[i] : -dy[i];
        break;
    case IR_DROPOUT:
        memcpy(y, dy, sizeof(double) * (size_t)size);
        if (dropout_on(o)) ir_interp_dropout(y, size, f->a.p, o->seed, f->id, 0);
        break;
    case IR_ACT: {
        const double *x = val(r, n->in[1]);
        const IrChi *c = &xin->chi;
        for (int q = 0; q < F; q++) {
            IrAct a = c->partner && c->sign[q] < 0 ? f->a.act_neg : f->a.act;
            for (long i = 0; i < rows; i++) y[i * F + q] = dy[i * F + q] * act_deriv(a, x[i * F + q], f->a.slope);
        }
        break;
    }
    case IR_CONCAT: {
        int off = 0;
        for (int k = 0; k < wrt; k++) off += f->in[k]->shape.feat;
        for (long i = 0; i < rows; i++) memcpy(y + i * F, dy + i * Fy + off, sizeof(double) * (size_t)F);
        break;
    }
    case IR_CROP: {
        int Tx = frames_of(r->time[xin->id]);
        const int s = f->a.stride > 0 ? f->a.stride : 1;
        for (int b = 0; b < N; b++)
            for (int j = 0; j < Ty; j++)
                memcpy(y + ((long)b * Tx + f->a.crop + (long)s * j) * F, dy + ((long)b * Ty + j) * F,
                       sizeof(double) * (size_t)F);
        break;
    }
    case IR_MEANPOOL:
    case IR_LAST: {
        int Tx = frames_of(r->time[xin->id]);
        for (int b = 0; b < N; b++)
            for (int tt = f->op == IR_LAST ? Tx - 1 : 0; tt < Tx; tt++)
                for (int q = 0; q < F; q++)
                    y[((long)b * Tx + tt) * F + q] = f->op == IR_LAST ? dy[(long)b * F + q] : dy[(long)b * F + q] / Tx;
        break;
    }
    case IR_REPEAT:
        for (int b = 0; b < N; b++)
            for (int tt = 0; tt < Ty; tt++)
                for (int q = 0; q < F; q++) y[(long)b * F + q] += dy[((long)b * Ty + tt) * F + q];
        break;
    case IR_SOFTMAX: {
        const double *s = val(r, n->in[1]);
        for (long i = 0; i < rows; i++) {
            double dot = 0;
            for (int q = 0; q < F; q++) dot += dy[i * F + q] * s[i * F + q];
            for (int q = 0; q < F; q++) y[i * F + q] = s[i * F + q] * (dy[i * F + q] - dot);
        }
        break;
    }
    case IR_LINEAR:
    case IR_INVARIANT:
    case IR_CONV1D:
        grad_linear(r, f, dy, NULL, y, NULL);
        break;
    case IR_BATCHNORM:
        grad_batchnorm(r, f, dy, val(r, n->in[1]), y, NULL, o);
        break;
    case IR_LSTM:
    case IR_GRU: {
        RecCache *c = rec_cache(r, n, o);
        memcpy(y, wrt == 0 ? c->dx : c->dinit, sizeof(double) * (size_t)size);
        break;
    }
    default:
        sup_bug("interpreter: no gradient of %s", ir_op_info[f->op].name);
    }
    return true;
}

static bool run_pgrad(IrRun *r, const IrNode *n, const IrInterpOpts *o, const char **why) {
    const IrNode *f = n->a.fwd;
    r->time[n->id] = IR_NO_TIME;
    r->val[n->id] = alloc_zero(r->batch);
    double *g = (double *)ir_run_grad(r);
    PGrad d = {g, 0};
    long base, len;
    node_range(r, f, &base, &len);
    memset(g + base, 0, sizeof(double) * (size_t)len);
    switch (f->op) {
    case IR_LINEAR:
    case IR_INVARIANT:
    case IR_CONV1D:
        grad_linear(r, f, val(r, n->in[0]), val(r, n->in[1]), NULL, &d);
        break;
    case IR_BATCHNORM:
        grad_batchnorm(r, f, val(r, n->in[0]), val(r, n->in[1]), NULL, &d, o);
        break;
    case IR_LSTM:
    case IR_GRU: {
        RecCache *c = rec_cache(r, n, o);
        memcpy(g + base, c->dparam, sizeof(double) * (size_t)len);
        /* autodiff puts a node's pgrad after its grads: nothing reads it again */
        sup_free(c->dparam);
        c->dparam = NULL;
        break;
    }
    default:
        return *why = "parameter gradient of an op without parameters", false;
    }
    mask_node(r, f, &d);
    return true;
}

bool ir_interp_train_node(IrRun *r, const IrNode *n, const IrInterpOpts *o, const char **why) {
    int N = r->batch;
    switch (n->op) {
    case IR_TARGET: {
        const IrDecl *d = r->p->outputs[n->a.io];
        const IrNode *out = d->node;
        double *tg = ir_run_target(r, n->a.io);
        if (r->train->target_time[n->a.io] != r->time[out->id])
            return *why = "the target's frames differ from the output's", false;
        r->time[n->id] = r->time[out->id];
        long size = (long)N * frames_of(r->time[out->id]) * target_feat(d);
        if (n->shape.feat != target_feat(d)) return *why = "a target's width disagrees with its output", false;
        r->val[n->id] = alloc_zero(size);
        memcpy(r->val[n->id], tg, sizeof(double) * (size_t)size);
        return true;
    }
    case IR_LOSS: {
        r->time[n->id] = IR_NO_TIME;
        double *y = alloc_zero(N);
        r->val[n->id] = y;
        double l;
        if (!loss_eval(r, n, val(r, n->in[0]), val(r, n->in[1]), frames_of(r->time[n->in[0]->id]), NULL, &l, why))
            return false;
        for (int b = 0; b < N; b++) y[b] = l; /* one number: the batch's mean, in every row */
        train_of(r)->loss = l;
        return true;
    }
    case IR_GRAD: {
        double *y;
        return run_grad(r, n, o, &y, why);
    }
    case IR_PGRAD:
        return run_pgrad(r, n, o, why);
    default:
        sup_bug("interpreter: op %s is not a training op", ir_op_info[n->op].name);
    }
}
