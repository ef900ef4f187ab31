/* ir/interp.c: the float64 reference interpreter.
 *
 * The reference for every other path (compiled float32 code, gradients): it
 * follows docs/design.md "Op semantics" literally and is written for clarity,
 * not speed, except that linear maps work on the even/odd components of whole
 * sequences at once so that the examples run in seconds. */
#include <math.h>
#include <string.h>

#include "ir/interp_run.h"
#include "support/philox.h"

enum { DEFAULT_FRAMES = 9 };

static int frames_of(int t) { return t == IR_NO_TIME ? 1 : t; }

static double *alloc_zero(long n) {
    double *d = sup_malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    memset(d, 0, sizeof(double) * (size_t)(n > 0 ? n : 1));
    return d;
}

IrRun *ir_run_new(const IrProgram *p, IrParams *w, int batch, const int *input_time) {
    sup_assert(batch >= 1);
    IrRun *r = sup_malloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->p = p;
    r->w = w;
    r->batch = batch;
    int nn = 0;
    ir_foreach(p, n) nn++;
    r->nnodes = nn;
    size_t ptrs = sizeof(void *) * (size_t)(nn + 1);
    r->nodes = sup_malloc(ptrs);
    r->val = sup_malloc(ptrs);
    r->hstate = sup_malloc(ptrs);
    r->cstate = sup_malloc(ptrs);
    r->time = sup_malloc(sizeof(int) * (size_t)(nn + 1));
    r->last_use = sup_malloc(sizeof(int) * (size_t)(nn + 1));
    memset(r->nodes, 0, ptrs);
    memset(r->val, 0, ptrs);
    memset(r->hstate, 0, ptrs);
    memset(r->cstate, 0, ptrs);
    ir_foreach(p, n) {
        if (n->id < 0 || n->id >= nn || r->nodes[n->id])
            sup_bug("interpreter: node ids not renumbered (ir_renumber)");
        r->nodes[n->id] = n;
        r->last_use[n->id] = n->id;
    }
    ir_foreach(p, n) for (int i = 0; i < n->nin; i++) {
        int *lu = &r->last_use[n->in[i]->id];
        if (n->id > *lu) *lu = n->id;
    }
    int ni = p->ninputs;
    r->inputs = sup_malloc(sizeof(double *) * (size_t)(ni + 1));
    r->input_time = sup_malloc(sizeof(int) * (size_t)(ni + 1));
    for (int i = 0; i < ni; i++) {
        const IrDecl *d = p->inputs[i];
        int t = IR_NO_TIME;
        if (d->seq) {
            t = input_time && input_time[i] > 0 ? input_time[i]
                : d->node && d->node->shape.time > 0 ? d->node->shape.time
                : d->frames > 0 ? d->frames
                : DEFAULT_FRAMES;
        }
        r->input_time[i] = t;
        r->inputs[i] = alloc_zero((long)batch * frames_of(t) * d->feat);
    }
    return r;
}

void ir_run_free(IrRun *r) {
    if (!r) return;
    for (int i = 0; i < r->nnodes; i++) {
        const IrNode *n = r->nodes[i];
        if (n && n->op != IR_INPUT) sup_free(r->val[i]);
        sup_free(r->hstate[i]);
        sup_free(r->cstate[i]);
    }
    for (int i = 0; i < r->p->ninputs; i++) sup_free(r->inputs[i]);
    sup_free(r->inputs);
    sup_free(r->input_time);
    sup_free(r->nodes);
    sup_free(r->val);
    sup_free(r->hstate);
    sup_free(r->cstate);
    sup_free(r->time);
    sup_free(r->last_use);
    ir_interp_train_free(r); /* hook: interp_grad.c */
    sup_free(r);
}

double *ir_run_input(IrRun *r, int i) {
    sup_assert(i >= 0 && i < r->p->ninputs);
    return r->inputs[i];
}

int ir_run_input_time(const IrRun *r, int i) { return frames_of(r->input_time[i]); }
const double *ir_run_value(const IrRun *r, const IrNode *n) { return r->val[n->id]; }
int ir_run_time(const IrRun *r, const IrNode *n) { return frames_of(r->time[n->id]); }
const double *ir_run_output(const IrRun *r, int i) { return r->val[r->p->outputs[i]->node->id]; }
long ir_run_output_size(const IrRun *r, int i) {
    const IrNode *n = r->p->outputs[i]->node;
    return (long)r->batch * frames_of(r->time[n->id]) * n->shape.feat;
}

void ir_decl_apply(const IrDecl *d, const double *x, double *y, long frames) {
    if (d->invariant || !d->chi.partner) {
        memcpy(y, x, sizeof(double) * (size_t)(frames * d->feat));
        return;
    }
    sup_assert(d->chi.n == d->feat);
    ir_chi_apply(&d->chi, x, y, frames);
}

/* ---- helpers ------------------------------------------------------------------------ */

/* y[r] += M[r][:] . x for a rows x cols matrix; four partial sums so that the
 * loop is not bound by the latency of one chain of additions. */
static void matvec_acc(const double *M, int rows, int cols, const double *x, double *y) {
    for (int r = 0; r < rows; r++) {
        const double *m = M + (long)r * cols;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int c = 0;
        for (; c + 4 <= cols; c += 4) {
            s0 += m[c] * x[c];
            s1 += m[c + 1] * x[c + 1];
            s2 += m[c + 2] * x[c + 2];
            s3 += m[c + 3] * x[c + 3];
        }
        for (; c < cols; c++) s0 += m[c] * x[c];
        y[r] += (s0 + s1) + (s2 + s3);
    }
}

/* Even and odd components of `frames` frames of x. */
static void analyse_all(const IrBasis *b, const double *x, long frames, double *xe, double *xo) {
    for (long t = 0; t < frames; t++)
        ir_basis_analyse(b, x + t * b->n, xe + t * b->d_even, xo + t * b->d_odd);
}

static const IrParamEntry *need(const IrRun *r, const IrNode *n, const char *name, int layer,
                                int gate, int tap) {
    const IrParamEntry *e = ir_params_find(r->w, n, name, layer, gate, tap);
    if (!e) sup_bug("interpreter: %s node %%%d has no parameter %s[%d,%d,%d]", ir_op_info[n->op].name,
                    n->id, name, layer, gate, tap);
    return e;
}

double ir_interp_act(IrAct a, double x, double slope) {
    switch (a) {
    case IR_ACT_RELU: return x > 0 ? x : 0.0;
    case IR_ACT_LEAKY_RELU: return x >= 0 ? x : slope * x;
    case IR_ACT_ELU: return x > 0 ? x : expm1(x);
    case IR_ACT_GELU: return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
    case IR_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case IR_ACT_TANH: return tanh(x);
    case IR_ACT_SOFTSIGN: return x / (1.0 + fabs(x));
    case IR_ACT_HARDTANH: return x < -1.0 ? -1.0 : x > 1.0 ? 1.0 : x;
    default: sup_bug("interpreter: unknown activation %d", (int)a);
    }
}

double ir_interp_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Inverted dropout in place. The mask of element k of node `id` (and recurrent layer
 * `sub`) is the compiled programs' mask at training step 0 (support/philox.h), so the
 * interpreter and the CPU and GPU programs drop the same elements. */
void ir_interp_dropout(double *x, long n, double p, uint64_t seed, int id, int sub) {
    if (p <= 0) return;
    const uint64_t stream = ((uint64_t)id << 8) | (uint64_t)sub;
    const uint32_t thr = sup_dropout_threshold(p);
    double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
    for (long k = 0; k < n; k++) x[k] = p < 1 && sup_dropout_keep(seed, stream, (uint64_t)k, thr) ? x[k] * scale : 0.0;
}

/* ---- linear maps: linear, invariant, conv1d ------------------------------------------- */

static void run_linear(IrRun *r, const IrNode *n, double *y, int t_in, int t_out) {
    const IrNode *x = n->in[0];
    int N = r->batch, k = 1, d = 1, s = 1, pad = 0;
    if (n->op == IR_CONV1D) k = n->a.kernel, d = n->a.dilation, s = n->a.stride, pad = n->a.padding;
    if (d < 1) d = 1;
    if (s < 1) s = 1;
    const IrParamEntry *a0 = need(r, n, "A", 0, 0, 0);
    const IrBasis *bi = a0->basis_in, *bo = a0->basis_out;
    int ti = frames_of(t_in), to = frames_of(t_out);
    long fin = (long)N * ti, fout = (long)N * to;
    double *xe = alloc_zero(fin * bi->d_even), *xo = alloc_zero(fin * bi->d_odd);
    double *ye = alloc_zero(fout * bo->d_even), *yo = alloc_zero(fout * bo->d_odd);
    analyse_all(bi, r->val[x->id], fin, xe, xo);
    const IrParamEntry *bias = ir_params_find(r->w, n, "bias", 0, 0, 0);
    if (bias)
        for (long f = 0; f < fout; f++)
            memcpy(ye + f * bo->d_even, ir_params_data(r->w, bias), sizeof(double) * (size_t)bo->d_even);
    for (int tap = 0; tap < k; tap++) {
        const double *A = ir_params_data(r->w, need(r, n, "A", 0, 0, tap));
        const double *B = ir_params_data(r->w, need(r, n, "B", 0, 0, tap));
        for (int b = 0; b < N; b++)
            for (int t = 0; t < to; t++) {
                int src = t * s - pad + tap * d; /* zero padding: taps outside add nothing */
                if (src < 0 || src >= ti) continue;
                long fi = (long)b * ti + src, fo = (long)b * to + t;
                matvec_acc(A, bo->d_even, bi->d_even, xe + fi * bi->d_even, ye + fo * bo->d_even);
                matvec_acc(B, bo->d_odd, bi->d_odd, xo + fi * bi->d_odd, yo + fo * bo->d_odd);
            }
    }
    for (long f = 0; f < fout; f++)
        ir_basis_synthesise(bo, ye + f * bo->d_even, yo + f * bo->d_odd, y + f * bo->n);
    sup_free(xe), sup_free(xo), sup_free(ye), sup_free(yo);
}

/* ---- batchnorm ------------------------------------------------------------------------------ */


static void run_batchnorm(IrRun *r, const IrNode *n, double *y, int t, const IrInterpOpts *o) {
    const double *x = r->val[n->in[0]->id];
    int F = n->shape.feat;
    long rows = (long)r->batch * frames_of(t);
    bool trivial = n->a.unconstrained || !n->chi.partner;
    const IrParamEntry *eg = need(r, n, "gamma", 0, 0, 0), *eb = need(r, n, "beta", 0, 0, 0);
    const IrParamEntry *em = need(r, n, "mean", 0, 0, 0), *ev = need(r, n, "var", 0, 0, 0);
    const IrBasis *basis = eb->basis_out;
    double *gamma = ir_params_data(r->w, eg), *beta_e = ir_params_data(r->w, eb);
    double *rmean_e = ir_params_data(r->w, em), *rvar = ir_params_data(r->w, ev);
    int *orb = sup_malloc(sizeof(int) * (size_t)(F + 1));
    ir_chi_orbits(&n->chi, trivial, orb);
    double *buf = alloc_zero(5L * F + basis->d_even + basis->d_odd + 1);
    double *mu = buf, *var = mu + F, *beta = var + F, *tmp = beta + F, *tmp2 = tmp + F;
    double *ze = tmp2 + F, *zo = ze + basis->d_even;
    /* beta lives in the even subspace: synthesise it with zero odd part */
    ir_basis_synthesise(basis, beta_e, zo, beta);
    double eps = n->a.eps > 0 ? n->a.eps : 1e-5;
    if (o->mode == IR_TRAINING) {
        /* statistics of the augmented batch {x, T x} (chirality.md 3):
         * mu = (m + T m)/2, E[x^2] averaged over partners */
        double *m = tmp, *q = tmp2;
        memset(m, 0, sizeof(double) * (size_t)F);
        memset(q, 0, sizeof(double) * (size_t)F);
        for (long i = 0; i < rows; i++)
            for (int f = 0; f < F; f++) {
                double v = x[i * F + f];
                m[f] += v;
                q[f] += v * v;
            }
        for (int f = 0; f < F; f++) m[f] /= (double)rows, q[f] /= (double)rows;
        for (int f = 0; f < F; f++) {
            int g = trivial ? f : n->chi.partner[f];
            double s = trivial ? 1.0 : n->chi.sign[f];
            mu[f] = 0.5 * (m[f] + s * m[g]);
            double ex2 = 0.5 * (q[f] + q[g]);
            var[f] = ex2 - mu[f] * mu[f];
            if (var[f] < 0) var[f] = 0; /* round-off on a constant feature */
        }
        if (o->update_running) {
            double mom = n->a.momentum; /* the elaborator sets the default 0.1 */
            double unbias = rows > 1 ? (double)rows / (double)(rows - 1) : 1.0;
            ir_basis_analyse(basis, mu, ze, zo);
            for (int k = 0; k < basis->d_even; k++) rmean_e[k] = (1 - mom) * rmean_e[k] + mom * ze[k];
            /* orbits are numbered in the order of their first features */
            for (int f = 0, next = 0; f < F; f++)
                if (orb[f] == next) rvar[next] = (1 - mom) * rvar[next] + mom * var[f] * unbias, next++;
        }
    } else {
        memset(zo, 0, sizeof(double) * (size_t)basis->d_odd);
        ir_basis_synthesise(basis, rmean_e, zo, mu);
        for (int f = 0; f < F; f++) var[f] = rvar[orb[f]];
    }
    for (int f = 0; f < F; f++) tmp[f] = gamma[orb[f]] / sqrt(var[f] + eps);
    for (long i = 0; i < rows; i++)
        for (int f = 0; f < F; f++) y[i * F + f] = (x[i * F + f] - mu[f]) * tmp[f] + beta[f];
    sup_free(buf);
    sup_free(orb);
}

/* ---- recurrences ------------------------------------------------------------------------- */

typedef struct Gate {
    const double *Axe, *Bxo, *Ahe, *Bho, *bias, *bias_h;
    const IrBasis *bx, *bh, *bg; /* input, hidden, gate bases */
} Gate;

/* Pre-activation of one gate: x-part (with bias) into gx; the h-part either
 * added to gx (gh == NULL) or separately into gh with bias_h (gru's n). */
static void gate_pre(const Gate *g, const double *xe, const double *xo, const double *he,
                     const double *ho, double *ge, double *go, double *gx, double *gh) {
    const IrBasis *bg = g->bg;
    for (int k = 0; k < bg->d_even; k++) ge[k] = g->bias[k];
    memset(go, 0, sizeof(double) * (size_t)bg->d_odd);
    matvec_acc(g->Axe, bg->d_even, g->bx->d_even, xe, ge);
    matvec_acc(g->Bxo, bg->d_odd, g->bx->d_odd, xo, go);
    if (gh) {
        ir_basis_synthesise(bg, ge, go, gx);
        for (int k = 0; k < bg->d_even; k++) ge[k] = g->bias_h[k];
        memset(go, 0, sizeof(double) * (size_t)bg->d_odd);
    }
    matvec_acc(g->Ahe, bg->d_even, g->bh->d_even, he, ge);
    matvec_acc(g->Bho, bg->d_odd, g->bh->d_odd, ho, go);
    ir_basis_synthesise(bg, ge, go, gh ? gh : gx);
}

static bool run_recurrent(IrRun *r, const IrNode *n, double *y, int t_in, const IrInterpOpts *o,
                          const char **why) {
    bool lstm = n->op == IR_LSTM;
    int ngates = lstm ? 4 : 3, N = r->batch, T = frames_of(t_in), H = n->shape.feat;
    int L = n->a.layers > 0 ? n->a.layers : 1;
    const IrNode *init = n->nin > 1 ? n->in[1] : NULL;
    if (init) {
        int il = init->a.layers > 0 ? init->a.layers : 1;
        if ((init->op != IR_LSTM && init->op != IR_GRU) || init->shape.feat != H || il != L) {
            *why = "init= names a recurrence of another width or depth";
            return false;
        }
    }
    double *hs = alloc_zero((long)L * N * H), *cs = alloc_zero((long)L * N * H);
    if (init) {
        memcpy(hs, r->hstate[init->id], sizeof(double) * (size_t)L * N * H);
        if (lstm && init->op == IR_LSTM) memcpy(cs, r->cstate[init->id], sizeof(double) * (size_t)L * N * H);
    }
    const double *in0 = r->val[n->in[0]->id];
    int Fin = n->in[0]->shape.feat;
    double *seq = NULL; /* the current layer's input sequence when it is not in0 */
    for (int l = 0; l < L; l++) {
        Gate g[4];
        for (int k = 0; k < ngates; k++) {
            const IrParamEntry *ax = need(r, n, "Wx.A", l, k, 0), *ah = need(r, n, "Wh.A", l, k, 0);
            const IrParamEntry *bb = need(r, n, "bias", l, k, 0);
            const IrParamEntry *bh = ir_params_find(r->w, n, "bias_h", l, k, 0);
            g[k] = (Gate){ir_params_data(r->w, ax), ir_params_data(r->w, need(r, n, "Wx.B", l, k, 0)),
                          ir_params_data(r->w, ah), ir_params_data(r->w, need(r, n, "Wh.B", l, k, 0)),
                          ir_params_data(r->w, bb), bh ? ir_params_data(r->w, bh) : NULL,
                          ax->basis_in, ah->basis_in, ax->basis_out};
        }
        const IrBasis *bx = g[0].bx, *bh = g[0].bh;
        const double *X = l == 0 ? in0 : seq;
        int F = l == 0 ? Fin : H;
        sup_assert(bx->n == F && bh->n == H);
        long frames = (long)N * T;
        double *xe = alloc_zero(frames * bx->d_even), *xo = alloc_zero(frames * bx->d_odd);
        analyse_all(bx, X, frames, xe, xo);
        double *out = alloc_zero(frames * H);
        int de = 0, dod = 0;
        for (int k = 0; k < ngates; k++) {
            if (g[k].bg->d_even > de) de = g[k].bg->d_even;
            if (g[k].bg->d_odd > dod) dod = g[k].bg->d_odd;
        }
        double *work = alloc_zero((long)(ngates + 1) * H + bh->d_even + bh->d_odd + de + dod);
        double *gv[4], *extra = work + (long)ngates * H;
        for (int k = 0; k < ngates; k++) gv[k] = work + (long)k * H;
        double *he = extra + H, *ho = he + bh->d_even, *ge = ho + bh->d_odd, *go = ge + de;
        for (int b = 0; b < N; b++) {
            double *h = hs + ((long)l * N + b) * H, *c = cs + ((long)l * N + b) * H;
            for (int t = 0; t < T; t++) {
                long fr = (long)b * T + t;
                const double *fxe = xe + fr * bx->d_even, *fxo = xo + fr * bx->d_odd;
                ir_basis_analyse(bh, h, he, ho);
                for (int k = 0; k < ngates; k++)
                    gate_pre(&g[k], fxe, fxo, he, ho, ge, go, gv[k], !lstm && k == 2 ? extra : NULL);
                double *o_ = out + fr * H;
                if (lstm) {
                    for (int f = 0; f < H; f++) {
                        double gi = ir_interp_sigmoid(gv[0][f]), gf = ir_interp_sigmoid(gv[1][f]);
                        double gg = tanh(gv[2][f]), go_ = ir_interp_sigmoid(gv[3][f]);
                        c[f] = gf * c[f] + gi * gg;
                        h[f] = go_ * tanh(c[f]);
                        o_[f] = h[f];
                    }
                } else {
                    for (int f = 0; f < H; f++) {
                        double gr = ir_interp_sigmoid(gv[0][f]), gz = ir_interp_sigmoid(gv[1][f]);
                        double gn = tanh(gv[2][f] + gr * extra[f]);
                        h[f] = (1 - gz) * gn + gz * h[f];
                        o_[f] = h[f];
                    }
                }
            }
        }
        sup_free(work), sup_free(xe), sup_free(xo);
        sup_free(seq);
        seq = out;
        /* PyTorch: dropout on every layer's output but the last, in training */
        if (l + 1 < L && o->mode == IR_TRAINING && o->dropout)
            ir_interp_dropout(seq, frames * H, n->a.p, o->seed, n->id, l + 1);
    }
    memcpy(y, seq, sizeof(double) * (size_t)N * T * H);
    sup_free(seq);
    r->hstate[n->id] = hs;
    r->cstate[n->id] = cs;
    return true;
}

/* ---- the graph -------------------------------------------------------------------------- */

/* Frames of a node's result by the op semantics (IR_NO_TIME: none); *why on error. */
int ir_interp_time_of(const IrRun *r, const IrNode *n, const char **why) {
    int t0 = n->nin ? r->time[n->in[0]->id] : IR_NO_TIME;
    switch (n->op) {
    case IR_INPUT: return r->input_time[n->a.io];
    case IR_CONV1D: {
        if (t0 == IR_NO_TIME) return *why = "conv1d of a tensor without a time axis", 0;
        int d = n->a.dilation > 0 ? n->a.dilation : 1, s = n->a.stride > 0 ? n->a.stride : 1;
        int span = t0 + 2 * n->a.padding - d * (n->a.kernel - 1) - 1;
        if (span < 0) return *why = "conv1d: the sequence is shorter than the kernel's span", 0;
        return span / s + 1;
    }
    case IR_CROP:
        if (t0 == IR_NO_TIME) return *why = "crop of a tensor without a time axis", 0;
        if (ir_crop_frames(t0, n->a.crop, n->a.stride) < 1) return *why = "crop removes every frame", 0;
        return ir_crop_frames(t0, n->a.crop, n->a.stride);
    case IR_MEANPOOL:
    case IR_LAST:
    case IR_FLATTEN:
        if (t0 == IR_NO_TIME) return *why = "a time reduction of a tensor without a time axis", 0;
        return IR_NO_TIME;
    case IR_REPEAT:
        if (t0 != IR_NO_TIME) return *why = "repeat of a tensor that has a time axis", 0;
        if (n->a.frames < 1) return *why = "repeat to no frames", 0;
        return n->a.frames;
    case IR_LSTM:
    case IR_GRU:
        if (t0 == IR_NO_TIME) return *why = "a recurrence over a tensor without a time axis", 0;
        return t0;
    default:
        for (int i = 1; i < n->nin; i++)
            if (r->time[n->in[i]->id] != t0) return *why = "operands with different numbers of frames", 0;
        return t0;
    }
}

static bool run_node(IrRun *r, const IrNode *n, const IrInterpOpts *o, const char **why) {
    /* hook: the training graph's ops live in interp_grad.c */
    if (ir_op_has(n->op, OPF_TRAIN)) return ir_interp_train_node(r, n, o, why);
    int t = ir_interp_time_of(r, n, why);
    if (*why) return false;
    r->time[n->id] = t;
    int F = n->shape.feat, T = frames_of(t), N = r->batch;
    long rows = (long)N * T, size = rows * F;
    if (n->op == IR_INPUT) {
        const IrDecl *d = r->p->inputs[n->a.io];
        if (d->feat != F) return *why = "an input's width disagrees with the shape pass", false;
        r->val[n->id] = r->inputs[n->a.io];
        return true;
    }
    const IrNode *x = n->in[0];
    const double *xv = r->val[x->id];
    int Fx = x->shape.feat;
    sup_assert(xv != NULL);
    double *y = alloc_zero(size);
    r->val[n->id] = y;
    switch (n->op) {
    case IR_OUTPUT:
    case IR_DROPOUT:
        if (Fx != F) return *why = "width changes through a type-keeping op", false;
        memcpy(y, xv, sizeof(double) * (size_t)size);
        if (n->op == IR_DROPOUT && o->mode == IR_TRAINING && o->dropout)
            ir_interp_dropout(y, size, n->a.p, o->seed, n->id, 0);
        break;
    case IR_LINEAR:
    case IR_INVARIANT:
    case IR_CONV1D:
        run_linear(r, n, y, r->time[x->id], t);
        break;
    case IR_BATCHNORM:
        run_batchnorm(r, n, y, t, o);
        break;
    case IR_ACT: {
        const IrChi *c = &x->chi;
        for (int f = 0; f < F; f++) {
            IrAct a = c->partner && c->sign[f] < 0 ? n->a.act_neg : n->a.act;
            for (long i = 0; i < rows; i++) y[i * F + f] = ir_interp_act(a, xv[i * F + f], n->a.slope);
        }
        break;
    }
    case IR_ADD:
    case IR_SUB: {
        const double *b = r->val[n->in[1]->id];
        if (Fx != F || n->in[1]->shape.feat != F) return *why = "operands of different widths", false;
        for (long i = 0; i < size; i++) y[i] = n->op == IR_ADD ? xv[i] + b[i] : xv[i] - b[i];
        break;
    }
    case IR_CONCAT: {
        int off = 0;
        for (int k = 0; k < n->nin; k++) {
            const IrNode *in = n->in[k];
            int Fk = in->shape.feat;
            const double *v = r->val[in->id];
            if (off + Fk > F) return *why = "concat wider than its result", false;
            for (long i = 0; i < rows; i++) memcpy(y + i * F + off, v + i * Fk, sizeof(double) * (size_t)Fk);
            off += Fk;
        }
        if (off != F) return *why = "concat narrower than its result", false;
        break;
    }
    case IR_CROP: {
        int Tx = frames_of(r->time[x->id]);
        const int s = n->a.stride > 0 ? n->a.stride : 1;
        for (int b = 0; b < N; b++)
            for (int j = 0; j < T; j++)
                memcpy(y + ((long)b * T + j) * F, xv + ((long)b * Tx + n->a.crop + (long)s * j) * F,
                       sizeof(double) * (size_t)F);
        break;
    }
    case IR_MEANPOOL:
    case IR_LAST: {
        int Tx = frames_of(r->time[x->id]);
        for (int b = 0; b < N; b++) {
            const double *xb = xv + (long)b * Tx * F;
            if (n->op == IR_LAST) {
                memcpy(y + (long)b * F, xb + (long)(Tx - 1) * F, sizeof(double) * (size_t)F);
                continue;
            }
            for (int tt = 0; tt < Tx; tt++)
                for (int f = 0; f < F; f++) y[(long)b * F + f] += xb[(long)tt * F + f];
            for (int f = 0; f < F; f++) y[(long)b * F + f] /= Tx;
        }
        break;
    }
    case IR_REPEAT:
        for (int b = 0; b < N; b++)
            for (int tt = 0; tt < T; tt++)
                memcpy(y + ((long)b * T + tt) * F, xv + (long)b * F, sizeof(double) * (size_t)F);
        break;
    case IR_FLATTEN: {
        int Tx = frames_of(r->time[x->id]);
        if ((long)Tx * Fx != F) return *why = "flatten: frames x width disagrees with the shape pass", false;
        memcpy(y, xv, sizeof(double) * (size_t)size); /* [T][F] row-major is already frame-major */
        break;
    }
    case IR_SOFTMAX:
        for (long i = 0; i < rows; i++) {
            const double *v = xv + i * F;
            double *u = y + i * F, mx = -INFINITY, s = 0;
            for (int f = 0; f < F; f++) mx = v[f] > mx ? v[f] : mx;
            for (int f = 0; f < F; f++) s += u[f] = exp(v[f] - mx);
            for (int f = 0; f < F; f++) u[f] /= s;
        }
        break;
    case IR_LSTM:
    case IR_GRU:
        return run_recurrent(r, n, y, r->time[x->id], o, why);
    default:
        sup_bug("interpreter: op %s not handled", ir_op_info[n->op].name);
    }
    return true;
}

bool ir_run_forward(IrRun *r, const IrInterpOpts *o, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    *why = NULL;
    /* a second run starts from scratch */
    for (int i = 0; i < r->nnodes; i++) {
        if (r->nodes[i]->op != IR_INPUT) sup_free(r->val[i]);
        r->val[i] = NULL;
        sup_free(r->hstate[i]), sup_free(r->cstate[i]);
        r->hstate[i] = r->cstate[i] = NULL;
    }
    ir_interp_train_reset(r); /* hook: interp_grad.c */
    for (const IrNode *n = r->p->first; n; n = n->next) {
        if (!run_node(r, n, o, why)) return false;
        if (o->keep_all) continue;
        for (int i = 0; i < n->nin; i++) {
            const IrNode *in = n->in[i];
            if (r->last_use[in->id] == n->id && in->op != IR_INPUT && in->op != IR_OUTPUT) {
                sup_free(r->val[in->id]);
                r->val[in->id] = NULL;
            }
        }
    }
    return true;
}
